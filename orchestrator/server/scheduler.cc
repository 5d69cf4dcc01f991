#include "server/scheduler.h"

#include <chrono>
#include <cstdio>

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
      int64_t latest = *next;
      for (int i = 0; i < 1000000; ++i) {  // the newest fire time not after now
        auto n = s.cron.Next(latest, s.zone);
        if (!n || *n > now) break;
        latest = *n;
      }
      bool fire = !first_look || s.catchup;
      if (fire) {
        auto params = spec::ResolveParams(p, {});
        if (!params.ok()) {
          std::fprintf(stderr, "%s event=schedule-skipped pipeline=%s cron=%s reason=%s\n", IsoTime(now * 1000).c_str(),
                       p.name.c_str(), Quote(key).c_str(), Quote(params.status().message()).c_str());
        } else {
          auto id = launcher_->Start(runs, p, *params, "schedule");
          if (id.ok())
            std::printf("%s event=schedule-fired pipeline=%s run=%lld cron=%s for=%s\n", IsoTime(now * 1000).c_str(),
                        p.name.c_str(), static_cast<long long>(*id), Quote(key).c_str(), IsoTime(latest * 1000).c_str());
          else
            std::fprintf(stderr, "%s event=schedule-failed pipeline=%s cron=%s reason=%s\n",
                         IsoTime(now * 1000).c_str(), p.name.c_str(), Quote(key).c_str(),
                         Quote(id.status().message()).c_str());
          std::fflush(stdout);
        }
      }
      Remember(fires, p.name, key, latest * 1000);
    }
  }
}

}  // namespace sluice::server
