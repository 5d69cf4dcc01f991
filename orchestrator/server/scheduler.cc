#include "server/scheduler.h"

#include <chrono>
#include <cstdio>
#include <deque>

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

void Scheduler::Fire(store::RunsStore& runs, const spec::Pipeline& p, const spec::Schedule& s, int64_t at, int64_t now) {
  std::string key = s.cron.text() + " " + s.timezone;
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
      // On the first look after a start, the missed times are caught up as
      // the schedule says; afterwards each tick fires the newest time due.
      if (s.catchup != spec::Schedule::Catchup::kEvery) due.erase(due.begin(), due.end() - 1);
      if (first_look && s.catchup == spec::Schedule::Catchup::kNone) due.clear();
      if (dropped > 0 && s.catchup == spec::Schedule::Catchup::kEvery)
        std::fprintf(stderr, "%s event=schedule-catchup-capped pipeline=%s cron=%s dropped=%zu kept=%zu\n",
                     IsoTime(now * 1000).c_str(), p.name.c_str(), Quote(key).c_str(), dropped, due.size());
      for (int64_t at : due) Fire(runs, p, s, at, now);
      Remember(fires, p.name, key, latest * 1000);
    }
  }
}

}  // namespace sluice::server
