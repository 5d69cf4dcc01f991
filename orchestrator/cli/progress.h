// What `sluice run` prints while a run goes on. On a terminal: a status line
// redrawn in place (steps done / total, running steps, failures, elapsed),
// with failures and retries printed above it. Piped: one plain line per
// event, with run and step ids in it, for logs and scripts; lines are
// written out whenever the engine waits, not one write per line; a plugin
// step's progress gets a line at most every 10 s.
//
// OnEvent() is called from the engine's thread; a ticker thread redraws the
// terminal line so the elapsed time moves. Both take mutex_.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "engine/engine.h"

namespace sluice::cli {

class Progress : public engine::Observer {
 public:
  // Piped, a step's progress is printed at most this often.
  static constexpr std::chrono::seconds kPipedProgressEvery{10};

  Progress(int64_t run_id, int total_steps, std::FILE* out, bool terminal);
  ~Progress() override;
  void OnEvent(const engine::Event& e) override;
  void Idle() override;
  // A plugin step's progress: shown in the status line until it ends.
  void StepProgress(int64_t attempt_id, double fraction, const std::string& message);
  // Stops the ticker and clears the status line.
  void Finish();

 private:
  void Redraw();  // REQUIRES: mutex_ held
  void Print(const std::string& line);  // REQUIRES: mutex_ held

  const int64_t run_id_;
  const int total_;
  std::FILE* out_;
  const bool terminal_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
  int done_ = 0, failed_ = 0;
  std::set<std::string> running_;
  std::map<int64_t, std::string> attempt_label_;   // running attempts (by id) to their step labels
  std::map<std::string, std::string> progress_;    // step label -> "45% epoch 3"
  std::map<int64_t, std::chrono::steady_clock::time_point> progress_printed_;  // piped: when each attempt's last line went out
  std::thread ticker_;
};

// "2026-11-25 23:59:01" in local time
std::string LocalTime(int64_t ms_since_epoch);

}  // namespace sluice::cli
