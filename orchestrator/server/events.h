// EventHub: live updates for `GET /api/events` and followed logs. Runs are
// driven by other processes, so the hub watches the store: every `poll`
// it reads SQLite's data_version (one cheap query), and when another
// connection has committed it reads what changed and sends one event per
// change:
//   event: run   data: {"run": 12, "pipeline": "p", "state": "running"}
//   event: step  data: {"run": 12, "step": "train", "item": -1, "state": "succeeded", "attempts": 1}
// Its work per change is proportional to what changed, not to the size of
// the runs: runs are compared for the pending, running, queued and newest
// ones (an index walk), and step records are read only if written since the
// last one it read (steps.seq, specs/store.md version 13). A step record
// rewritten with the state and attempts last sent for it sends nothing. The
// events of one look go to each client as one write.
// Followed logs get `log` events (data: {"text": "..."}) as the file grows
// and one `end` event once their attempt has finished and all was sent.
// Every stream gets a comment every 15 s, so dead clients are noticed. A
// new subscriber gets `hello` once it is subscribed: what it reads after
// that, plus the events that follow, is the whole story.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "server/http.h"
#include "store/runs.h"

namespace sluice::server {

class EventHub {
 public:
  explicit EventHub(std::string db_path, std::chrono::milliseconds poll = std::chrono::milliseconds(20));
  ~EventHub();

  // run_id 0: every run's events.
  void Subscribe(std::shared_ptr<EventStream> stream, int64_t run_id);
  // Sends the log at `path` from `offset` on until attempt `number` of
  // (run, step, item) has finished.
  void FollowLog(std::shared_ptr<EventStream> stream, const std::string& path, int64_t offset, int64_t run_id,
                 const std::string& step, int item, int number);

 private:
  struct Subscriber {
    std::shared_ptr<EventStream> stream;
    int64_t run_id;
    bool greeted;  // sent `hello`, after the hub's first look
  };
  struct Follow {
    std::shared_ptr<EventStream> stream;
    std::string path;
    int64_t offset;
    int64_t run_id;
    std::string step;
    int item, number;
    bool finished = false;
    bool checked = false;  // its attempt's state read at least once
  };
  // A run the hub compares (pending, running, queued or among the newest):
  // its state, and its step records as the hub last read them.
  struct RunSeen {
    std::string state;
    std::map<std::pair<std::string, int>, std::pair<engine::StepState, int>> steps;  // (step, item) -> (state, attempts)
  };
  // The events of one look, formatted once: every client's text, and each run's.
  struct Outbox {
    std::string all;
    std::map<int64_t, std::string> by_run;
    void Add(int64_t run_id, const char* event, const std::string& data);
  };

  void Loop();
  // Reads what changed since the last look (the first look only sets the
  // baseline) into `out`. REQUIRES: mu_ is held.
  void Scan(store::RunsStore& store, Outbox* out);
  void Deliver(const Outbox& out);
  void Greet(Subscriber& s);  // REQUIRES: mu_ is held
  void PumpLogs(store::RunsStore& store, bool store_changed);

  std::string db_path_;
  std::chrono::milliseconds poll_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<Subscriber> subscribers_;
  std::vector<Follow> follows_;
  std::map<int64_t, RunSeen> seen_;
  int64_t step_seq_ = -1;  // the last step record read (steps.seq); -1 before the first look
  std::thread thread_;
};

}  // namespace sluice::server
