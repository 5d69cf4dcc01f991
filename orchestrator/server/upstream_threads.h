// Internal to sluice_http (http_server.cc and upstream.cc; not in the
// library's include root, so nothing outside sees Asio through it): how an
// owner of I/O threads (HttpServer, the standalone upstream client) makes
// upstream clients on them and ends them before its threads stop.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "server/upstream.h"

namespace sluice::server::upstream_internal {

class Engine;  // an UpstreamClient on a set of io_contexts (upstream.cc)

// Marks the calling thread as I/O thread `index` of the contexts of `owner`
// (any pointer unique to the owner). Called first on each I/O thread.
void EnterIoThread(const void* owner, size_t index);

// A client whose requests run on `contexts` (one thread each, marked with
// EnterIoThread(owner, i)). The contexts must outlive every use of Send and
// Forget until StopEngines has returned; after it the client may outlive them.
std::shared_ptr<Engine> MakeEngine(const void* owner, std::vector<boost::asio::io_context*> contexts,
                                   UpstreamOptions options);
std::shared_ptr<UpstreamClient> AsClient(std::shared_ptr<Engine> engine);

// Ends every pending request of `engines` (callbacks called with an error on
// their own I/O thread) and closes their connections, on each context's
// thread, and returns once all have done so. REQUIRES: the contexts' threads
// run and the caller is not one of them.
void StopEngines(const std::vector<std::shared_ptr<Engine>>& engines,
                 const std::vector<boost::asio::io_context*>& contexts);

}  // namespace sluice::server::upstream_internal
