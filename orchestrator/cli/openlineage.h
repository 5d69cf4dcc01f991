// OpenLineageEvents: sends an OpenLineage RunEvent (spec 2-0-2) per step
// attempt transition to a JSON Lines file and/or an HTTP endpoint (an
// OpenLineage consumer such as Marquez's POST /api/v1/lineage): START when an attempt starts,
// COMPLETE, FAIL or ABORT when it ends (a cache hit is a COMPLETE with the
// reused outputs). Each event names the job "<pipeline>.<step>" in a
// namespace, the attempt as a run (a UUID derived from the store and the
// attempt id) and the input and output artifacts as datasets in the "file"
// namespace, named by path. Other events pass through to the wrapped observer.
//
// Called on the engine's thread (it reads the store's lineage there). HTTP
// delivery never blocks it: events go to a bounded queue that a thread of
// its own posts, retrying connection errors, 429 and 5xx with backoff; what
// is still queued when the run ends gets a few seconds, then is reported as
// not delivered.
#pragma once

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "store/lineage.h"

namespace sluice::cli {

// Posts events to one URL from a thread of its own.
class OpenLineageHttp {
 public:
  struct Options {
    std::string url;                 // http(s)://host[:port]/path
    std::string api_key;             // sent as a bearer token if set
    int attempts = 5;                // per event
    double first_backoff_s = 0.2;    // doubled after each failed attempt
    double drain_s = 5;              // at the end, how long queued events may still take
    size_t max_queue = 10000;        // beyond it the oldest event is dropped
  };
  explicit OpenLineageHttp(Options o);
  ~OpenLineageHttp();  // delivers what is queued, for at most drain_s; reports losses on stderr
  // Empty if the URL is usable, else why not.
  const std::string& error() const { return error_; }
  void Send(std::string event);  // never blocks on the network

 private:
  void Work();
  bool Post(const std::string& body, std::string* why);

  Options o_;
  std::string error_, scheme_host_port_, path_;
  std::string host_, address_;  // the URL's host and the address it was checked at
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;          // GUARDED_BY(mu_)
  size_t dropped_ = 0;             // GUARDED_BY(mu_)
  std::string last_error_;         // GUARDED_BY(mu_)
  std::thread worker_;
};

class OpenLineageEvents : public engine::Observer {
 public:
  // Appends to `path` if it is not empty and posts to `http` if it is not
  // null; `next` gets every event too.
  OpenLineageEvents(const std::string& path, std::unique_ptr<OpenLineageHttp> http, const std::string& job_namespace,
                    const std::string& pipeline, const std::string& store_id, store::LineageStore* store,
                    engine::Observer* next);
  ~OpenLineageEvents() override;
  bool ok() const { return file_ != nullptr || path_.empty(); }

  void OnEvent(const engine::Event& e) override;
  void Idle() override;

 private:
  std::string RunId(int64_t attempt_id) const;

  std::string path_;
  std::FILE* file_;
  std::unique_ptr<OpenLineageHttp> http_;
  std::string namespace_, pipeline_, store_id_;
  store::LineageStore* store_;
  engine::Observer* next_;
};

}  // namespace sluice::cli
