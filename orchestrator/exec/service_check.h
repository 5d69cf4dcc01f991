// Service checks (specs/pipeline.md "Services"): a free port on the
// loopback for a service attempt, and the `tcp` and `http` readiness checks,
// over plain POSIX sockets. Each call is bounded by `timeout_ms`; nothing
// is kept between calls. Any thread.
#pragma once

#include <string>

#include "util/status.h"

namespace sluice::exec {

// A TCP port of 127.0.0.1 no one listens on now (the kernel's pick of an
// ephemeral port, released at once: a service binds it next). IoError when
// no socket can be made.
Result<int> FreeLoopbackPort();

// Whether 127.0.0.1:`port` accepts a TCP connection within `timeout_ms`.
bool TcpReady(int port, int timeout_ms);

// Whether `GET path` on 127.0.0.1:`port` answers a 2xx or 3xx status line
// within `timeout_ms` (HTTP/1.0, the status line only is read).
bool HttpReady(int port, const std::string& path, int timeout_ms);

}  // namespace sluice::exec
