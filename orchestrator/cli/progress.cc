#include "cli/progress.h"

#include <ctime>

#include "util/duration.h"
#include "util/strings.h"

namespace sluice::cli {

using engine::Event;

std::string LocalTime(int64_t ms) {
  if (ms == 0) return "-";
  std::time_t t = ms / 1000;
  std::tm tm;
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

namespace {

std::string Label(const Event& e) {
  return e.item < 0 ? e.step : e.step + "[" + std::to_string(e.item) + "]";
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Progress::Progress(int64_t run_id, int total_steps, std::FILE* out, bool terminal)
    : run_id_(run_id), total_(total_steps), out_(out), terminal_(terminal), start_(std::chrono::steady_clock::now()) {
  if (terminal_) {
    ticker_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!stopped_) {
        Redraw();
        stop_cv_.wait_for(lock, std::chrono::milliseconds(200));
      }
    });
  }
}

Progress::~Progress() { Finish(); }

void Progress::Finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    if (terminal_) std::fprintf(out_, "\r\033[K");
    std::fflush(out_);
  }
  stop_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

void Progress::StepProgress(int64_t attempt_id, double fraction, const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = attempt_label_.find(attempt_id);
  if (it == attempt_label_.end()) return;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.0f%%", fraction * 100);
  progress_[it->second] = message.empty() ? pct : std::string(pct) + " " + message;
  // The ticker redraws: a plugin may report thousands of times a second.
  // Piped (CI, a log file), a line per step every kPipedProgressEvery at most,
  // so a long training step is not silent.
  if (terminal_) return;
  auto now = std::chrono::steady_clock::now();
  auto last = progress_printed_.find(attempt_id);
  if (last != progress_printed_.end() && now - last->second < kPipedProgressEvery) return;
  progress_printed_[attempt_id] = now;
  std::string line = IsoTime(NowMs()) + " run=" + std::to_string(run_id_) + " step=" + LogValue(it->second) +
                     " event=progress progress=" + pct;
  if (!message.empty()) line += " message=" + LogValue(message);
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void Progress::Idle() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::fflush(out_);
}

void Progress::Print(const std::string& line) {
  if (terminal_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", line.c_str());
}

void Progress::Redraw() {
  if (!terminal_ || stopped_) return;
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_);
  std::string running;
  int shown = 0;
  for (const std::string& r : running_) {
    if (shown++ == 4) {
      running += ", +" + std::to_string(running_.size() - 4);
      break;
    }
    if (!running.empty()) running += ", ";
    running += r;
    auto p = progress_.find(r);
    if (p != progress_.end()) running += " (" + p->second + ")";
  }
  char head[64];
  std::snprintf(head, sizeof head, "[%d/%d] ", done_, total_);
  std::string line = head + FormatDuration(elapsed);
  if (!running.empty()) line += "  running: " + running;
  if (failed_) line += "  failed: " + std::to_string(failed_);
  std::fprintf(out_, "\r\033[K%s", line.substr(0, 160).c_str());
  std::fflush(out_);
}

void Progress::OnEvent(const Event& e) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string label = Label(e);
  std::string line = IsoTime(NowMs()) + " run=" + std::to_string(run_id_);
  if (!e.step.empty()) line += " step=" + LogValue(label);
  if (e.attempt) line += " attempt=" + std::to_string(e.attempt);
  bool show_on_terminal = false;
  switch (e.kind) {
    case Event::Kind::kStarted:
      running_.insert(label);
      attempt_label_[e.attempt_id] = label;
      line += std::string(e.message == "adopted" ? " event=adopted" : " event=started");
      if (!e.job_id.empty()) line += " job=" + e.job_id;
      else if (e.pid != 0) line += " pid=" + std::to_string(e.pid);
      else line += " in-process";  // a plugin step on one of sluice's threads
      break;
    case Event::Kind::kFinished:
    case Event::Kind::kSkipped:
      running_.erase(label);
      progress_.erase(label);
      std::erase_if(attempt_label_, [&](const auto& kv) { return kv.second == label; });
      progress_printed_.erase(e.attempt_id);
      if (e.item < 0) {
        ++done_;
        if (e.state == engine::StepState::kFailed) ++failed_;
      }
      line += std::string(" event=") + engine::Name(e.state);
      if (!e.message.empty()) line += " reason=" + LogValue(e.message);
      show_on_terminal = e.state == engine::StepState::kFailed;
      break;
    case Event::Kind::kRetrying:
      running_.erase(label);
      line += " event=retrying reason=" + LogValue(e.message);
      show_on_terminal = true;
      break;
    case Event::Kind::kCancelling:
      line += " event=cancelling";
      show_on_terminal = true;
      break;
    case Event::Kind::kReady:
      line += " event=ready reason=" + LogValue(e.message);
      break;
    case Event::Kind::kWarning:
      line += " event=warning reason=" + LogValue(e.message);
      show_on_terminal = true;
      break;
    case Event::Kind::kRunFinished:
      line += std::string(" event=finished state=") + engine::Name(e.run_state);
      if (!e.message.empty()) line += " reason=" + LogValue(e.message);
      break;
  }
  if (!terminal_) {
    std::fprintf(out_, "%s\n", line.c_str());
    return;
  }
  if (show_on_terminal) {
    std::string msg = e.kind == Event::Kind::kCancelling ? "cancelling (Ctrl-C again to kill at once)"
                      : e.kind == Event::Kind::kWarning  ? (label.empty() ? "" : label + ": ") + "warning: " + e.message
                                                         : label + ": " + (e.kind == Event::Kind::kRetrying ? "" : "failed: ") + e.message;
    Print(msg);
  }
  Redraw();
}

}  // namespace sluice::cli
