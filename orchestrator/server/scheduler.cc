#include "server/scheduler.h"

#include <chrono>
#include <cstdio>
#include <deque>
#include <string_view>

#include "runs/verbs.h"
#include "store/open.h"
#include "util/strings.h"

namespace sluice::server {

Scheduler::Scheduler(Catalog* catalog, Launcher* launcher, std::string db_path)
    : catalog_(catalog), launcher_(launcher), db_path_(std::move(db_path)), thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Scheduler::Loop() {
  std::unique_ptr<store::Store> store;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!store) {
      auto s = store::Store::Open(db_path_);
      if (s.ok()) store = std::move(*s);
    }
    if (store) {
      lock.unlock();
      int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
      Tick(store->access(), store->runs(), now);
      lock.lock();
    }
    cv_.wait_for(lock, std::chrono::milliseconds(500));
  }
}

namespace {
void Remember(store::AccessStore& fires, const std::string& pipeline, const std::string& key, int64_t ms) {
  Status st = fires.SetLastFire(pipeline, key, ms);
  if (!st.ok()) std::fprintf(stderr, "sluice: schedule %s of %s: %s\n", key.c_str(), pipeline.c_str(), st.message().c_str());
}
}  // namespace

namespace {

// The pipeline's runs that are active: queued, or pending or running and
// not left behind by a driver that is gone (an interrupted run is not active).
Result<std::vector<store::RunRow>> ActiveRuns(store::RunsStore& runs, const std::string& pipeline) {
  std::vector<store::RunRow> out;
  for (engine::RunState state : {engine::RunState::kQueued, engine::RunState::kPending, engine::RunState::kRunning}) {
    store::RunFilter f;
    f.pipeline = pipeline;
    f.state = state;
    f.limit = 1000;
    auto rows = runs.ListRuns(f);
    if (!rows.ok()) return rows.status();
    for (store::RunRow& r : *rows)
      if (!runs::Interrupted(r)) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

bool Scheduler::MayFire(store::RunsStore& runs, const spec::Pipeline& p, const spec::Schedule& s, int64_t now) {
  if (s.overlap == spec::Schedule::Overlap::kAllow) return true;
  std::string key = s.cron.text() + " " + s.timezone;
  // A skipped fire goes to stderr, as other skips do; a replacement to stdout, beside the fire.
  auto log = [&](const char* event, const std::string& reason) {
    FILE* to = std::string_view(event) == "schedule-skipped" ? stderr : stdout;
    std::fprintf(to, "%s event=%s pipeline=%s cron=%s reason=%s\n", IsoTime(now * 1000).c_str(), event,
                 p.name.c_str(), Quote(key).c_str(), Quote(reason).c_str());
  };
  auto active = ActiveRuns(runs, p.name);
  if (!active.ok()) {
    log("schedule-skipped", active.status().message());
    return false;
  }
  if (active->empty()) return true;
  if (s.overlap == spec::Schedule::Overlap::kForbid) {
    log("schedule-skipped", "run " + std::to_string(active->front().id) + " is active (overlap: forbid)");
    return false;
  }
  // replace: each active run is cancelled as `sluice cancel` cancels it.
  runs::RunVerbs verbs(runs, launcher_->home());
  for (const store::RunRow& row : *active) {
    auto cancel = verbs.Cancel(row);
    Status st = cancel.ok() ? Status::Ok() : cancel.status();
    if (st.ok() && cancel->was_queued) launcher_->Forget(runs, row.id);
    else if (st.ok() && !cancel->refused && !cancel->driven) st = verbs.CancelUndriven(row.id);
    if (!st.ok()) {
      log("schedule-skipped", "cancel run " + std::to_string(row.id) + ": " + st.message());
      return false;
    }
    log("schedule-replaced", "run " + std::to_string(row.id) + " cancelled (overlap: replace)");
  }
  return true;
}

void Scheduler::Fire(store::RunsStore& runs, const spec::Pipeline& p, const spec::Schedule& s, int64_t at, int64_t now) {
  std::string key = s.cron.text() + " " + s.timezone;
  if (!MayFire(runs, p, s, now)) return;
  auto params = spec::ResolveParams(p, {});
  if (!params.ok()) {
    std::fprintf(stderr, "%s event=schedule-skipped pipeline=%s cron=%s reason=%s\n", IsoTime(now * 1000).c_str(),
                 p.name.c_str(), Quote(key).c_str(), Quote(params.status().message()).c_str());
    return;
  }
  engine::DataInterval interval{.start_ms = at * 1000, .end_ms = at * 1000};
  if (auto before = s.cron.Previous(at, s.zone)) interval.start_ms = *before * 1000;
  auto id = launcher_->Start(runs, p, *params, "schedule", interval);
  if (id.ok())
    std::printf("%s event=schedule-fired pipeline=%s run=%lld cron=%s for=%s\n", IsoTime(now * 1000).c_str(),
                p.name.c_str(), static_cast<long long>(*id), Quote(key).c_str(), IsoTime(at * 1000).c_str());
  else
    std::fprintf(stderr, "%s event=schedule-failed pipeline=%s cron=%s reason=%s\n", IsoTime(now * 1000).c_str(),
                 p.name.c_str(), Quote(key).c_str(), Quote(id.status().message()).c_str());
  std::fflush(stdout);
}

void Scheduler::Tick(store::AccessStore& fires, store::RunsStore& runs, int64_t now) {
  for (const auto& entry : catalog_->List()) {
    if (!entry->pipeline) continue;
    const spec::Pipeline& p = *entry->pipeline;
    for (const spec::Schedule& s : p.schedules) {
      std::string key = s.cron.text() + " " + s.timezone;
      auto last = fires.LastFire(p.name, key);
      if (!last.ok()) continue;
      bool first_look = handled_.insert(p.name + "\n" + key).second;
      if (!*last) {  // new schedule: count from now
        Remember(fires, p.name, key, now * 1000);
        continue;
      }
      auto next = s.cron.Next(**last / 1000, s.zone);
      if (!next || *next > now) continue;
      // The fire times due since the last one handled, oldest first; with
      // catchup: all only the newest kMaxCatchupRuns are kept.
      std::deque<int64_t> due = {*next};
      size_t dropped = 0;
      for (int i = 0; i < 1000000; ++i) {
        auto n = s.cron.Next(due.back(), s.zone);
        if (!n || *n > now) break;
        due.push_back(*n);
        if (due.size() > static_cast<size_t>(spec::Schedule::kMaxCatchupRuns)) {
          due.pop_front();
          ++dropped;
        }
      }
      int64_t latest = due.back();
      bool every = s.catchup == spec::Schedule::Catchup::kEvery;
      // On the first look after a start, the missed times are caught up as
      // the schedule says; afterwards each tick fires the newest time due.
      // Catching up every missed time with `replace` would cancel each run
      // the moment it starts: only the newest fires.
      if (!every || s.overlap == spec::Schedule::Overlap::kReplace) due.erase(due.begin(), due.end() - 1);
      if (first_look && s.catchup == spec::Schedule::Catchup::kNone) due.clear();
      if (dropped > 0 && every)
        std::fprintf(stderr, "%s event=schedule-catchup-capped pipeline=%s cron=%s dropped=%zu kept=%zu\n",
                     IsoTime(now * 1000).c_str(), p.name.c_str(), Quote(key).c_str(), dropped, due.size());
      if (every && s.overlap == spec::Schedule::Overlap::kForbid && !due.empty()) {
        // One at a time, oldest first: a missed time waits (not handled
        // yet) until no run of the pipeline is active.
        auto active = ActiveRuns(runs, p.name);
        if (!active.ok() || !active->empty()) continue;
        Fire(runs, p, s, due.front(), now);
        Remember(fires, p.name, key, due.front() * 1000);
        continue;
      }
      for (int64_t at : due) Fire(runs, p, s, at, now);
      Remember(fires, p.name, key, latest * 1000);
    }
  }
}

}  // namespace sluice::server
