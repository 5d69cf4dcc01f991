// FakeExecutor: a scripted engine::Executor for engine tests. Outcomes are
// scripted per step label ("train", "shard[1]"); an unscripted attempt
// succeeds after one second; its $SLUICE_OUTPUT is written to the Env given
// (the engine's, often a FakeFiles). It runs nothing: Wait() moves the FakeClock to
// the next scripted end (or to the deadline), so a test never sleeps.
// Not thread-safe; Wake() does nothing (nothing blocks).
#pragma once

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/env.h"
#include "engine/executor.h"
#include "fake_clock.h"

namespace sluice::testing {

class FakeExecutor : public engine::Executor {
 public:
  struct Outcome {
    int exit_code = 0;  // 127: the command cannot start
    std::chrono::milliseconds duration = std::chrono::seconds(1);
    std::string outputs;  // written to $SLUICE_OUTPUT
    bool ignores_sigterm = false;
  };
  FakeExecutor(FakeClock* clock, engine::Env* env) : clock_(clock), env_(env) {}

  std::map<std::string, std::deque<Outcome>> script;
  std::vector<std::pair<std::string, int64_t>> starts;  // label, start time in ms (FakeClock::Seconds)
  std::vector<std::string> stops;                       // "label TERM" / "label KILL"
  std::map<std::string, engine::AttemptRequest> last_request;
  size_t max_running = 0;
  // Services: ServicePort() hands out 40000, 40001, ...; a service (an
  // attempt with $SLUICE_SERVICE_PORT) is ready this long after its start
  // (unscripted: at once), as its tcp or http check sees it.
  std::map<std::string, std::chrono::milliseconds> ready_after;

  // Programs CheckStart() finds missing ("command not found: NAME").
  std::set<std::string> missing_programs;

  // The environment each attempt's CheckStart() was given, by step label.
  std::map<std::string, std::vector<std::string>> checked_env;

  Status CheckStart(const engine::AttemptRequest& r) override {
    checked_env[r.step_label] = r.env;
    if (!r.argv.empty() && missing_programs.count(r.argv[0])) return Status::StepFailed("command not found: " + r.argv[0]);
    return Status::Ok();
  }
  Result<int> ServicePort() override { return next_port_++; }
  bool ServiceReady(const engine::ServiceCheck& c) override {
    auto it = ready_at_.find(c.port);
    return it != ready_at_.end() && clock_->now >= it->second;
  }

  Result<engine::Started> Start(const engine::AttemptRequest& r) override {
    Outcome o;
    auto& q = script[r.step_label];
    if (!q.empty()) {
      o = q.front();
      q.pop_front();
    }
    if (o.exit_code == 127) return Status::StepFailed("command not found: " + r.argv[0]);
    for (const std::string& e : r.env)
      if (e.rfind("SLUICE_OUTPUT=", 0) == 0) WriteOutput(e.substr(14), o.outputs);
      else if (e.rfind("SLUICE_SERVICE_PORT=", 0) == 0) ready_at_[std::stoi(e.substr(20))] = clock_->now + ready_after[r.step_label];
    running_[r.attempt_id] = {r.step_label, clock_->now + o.duration, o.exit_code, 0, o.ignores_sigterm};
    starts.emplace_back(r.step_label, clock_->Seconds());
    last_request[r.step_label] = r;
    max_running = std::max(max_running, running_.size());
    return engine::Started{1000 + r.attempt_id, ""};
  }
  void Stop(int64_t id, bool hard) override {
    auto& r = running_.at(id);
    stops.push_back(r.label + (hard ? " KILL" : " TERM"));
    if (hard || !r.ignores_sigterm) {
      r.end = clock_->now;
      r.signal = hard ? 9 : 15;
    }
  }
  std::optional<engine::AttemptExit> Wait(engine::TimePoint deadline) override {
    auto next = running_.end();
    for (auto it = running_.begin(); it != running_.end(); ++it)
      if (next == running_.end() || it->second.end < next->second.end) next = it;
    if (next == running_.end() || next->second.end > deadline) {
      clock_->now = std::max(clock_->now, deadline);
      return std::nullopt;
    }
    clock_->now = std::max(clock_->now, next->second.end);
    engine::AttemptExit e{next->first, next->second.signal ? 128 + next->second.signal : next->second.exit,
                          next->second.signal};
    running_.erase(next);
    return e;
  }
  void Wake() override {}

 private:
  struct Running {
    std::string label;
    engine::TimePoint end;
    int exit;
    int signal;
    bool ignores_sigterm;
  };
  void WriteOutput(const std::string& path, const std::string& text) { (void)env_->WriteFile(path, text); }

  FakeClock* clock_;
  engine::Env* env_;
  std::map<int64_t, Running> running_;
  int next_port_ = 40000;
  std::map<int, engine::TimePoint> ready_at_;  // by port
};

}  // namespace sluice::testing
