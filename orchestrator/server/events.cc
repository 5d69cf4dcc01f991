#include "server/events.h"

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "store/open.h"
#include "util/json.h"

namespace sluice::server {

using engine::RunState;

EventHub::EventHub(std::string db_path, std::chrono::milliseconds poll)
    : db_path_(std::move(db_path)), poll_(poll), thread_([this] { Loop(); }) {}

EventHub::~EventHub() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EventHub::Subscribe(std::shared_ptr<EventStream> stream, int64_t run_id) {
  // Subscribed first, then `hello`: a client that reads the state after its
  // hello misses nothing between that read and its first event.
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.push_back({stream, run_id});
  stream->Send("hello", nlohmann::json{{"run", run_id}}.dump());
}

void EventHub::FollowLog(std::shared_ptr<EventStream> stream, const std::string& path, int64_t offset, int64_t run_id,
                         const std::string& step, int item, int number) {
  std::lock_guard<std::mutex> lock(mu_);
  follows_.push_back({std::move(stream), path, offset, run_id, step, item, number});
  cv_.notify_all();
}

void EventHub::Broadcast(int64_t run_id, const char* event, const std::string& data) {
  for (auto& s : subscribers_)
    if (s.run_id == 0 || s.run_id == run_id) s.stream->Send(event, data);
}

void EventHub::Loop() {
  std::unique_ptr<store::Store> store;
  int64_t version = -1;
  auto last_ping = std::chrono::steady_clock::now();
  bool primed = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, poll_);
    if (stop_) break;
    if (!store) {
      auto s = store::Store::Open(db_path_);
      if (!s.ok()) continue;
      store = std::move(*s);
    }
    auto v = store->db().DataVersion();
    bool changed = v.ok() && *v != version;
    if (changed) {
      version = *v;
      if (!primed) {  // the state at start is the baseline, not news
        Scan(store->runs());
        primed = true;
        changed = false;
      } else {
        Scan(store->runs());
      }
    }
    PumpLogs(store->runs(), changed);
    auto now = std::chrono::steady_clock::now();
    if (now - last_ping > std::chrono::seconds(15)) {
      last_ping = now;
      for (auto& s : subscribers_) s.stream->Send("", "ping");
    }
    std::erase_if(subscribers_, [](const Subscriber& s) { return !s.stream->open(); });
  }
}

// Called with mu_ held, on the hub's thread.
void EventHub::Scan(store::RunsStore& store) {
  std::map<int64_t, store::RunRow> runs;
  store::RunFilter f;
  f.limit = 20;
  if (auto r = store.ListRuns(f); r.ok())
    for (auto& row : *r) runs[row.id] = row;
  for (RunState s : {RunState::kQueued, RunState::kPending, RunState::kRunning}) {
    store::RunFilter g;
    g.state = s;
    g.limit = 1000;
    if (auto r = store.ListRuns(g); r.ok())
      for (auto& row : *r) runs[row.id] = row;
  }
  bool quiet = seen_.empty() && subscribers_.empty();
  std::map<int64_t, RunSeen> next;
  for (auto& [id, row] : runs) {
    RunSeen now;
    now.state = engine::Name(row.state);
    auto old = seen_.find(id);
    bool unchanged_final = old != seen_.end() && old->second.state == now.state &&
                           row.state != RunState::kPending && row.state != RunState::kRunning &&
                           row.state != RunState::kQueued;
    if (unchanged_final) {  // nothing moves in a finished run
      next[id] = std::move(old->second);
      continue;
    }
    if (auto steps = store.LoadSteps(id); steps.ok())
      for (auto& s : *steps) now.steps[{s.step_id, s.item}] = {engine::Name(s.state), s.attempts};
    if (!quiet) {
      if (old == seen_.end() || old->second.state != now.state)
        Broadcast(id, "run", nlohmann::json{{"run", id}, {"pipeline", row.pipeline}, {"state", now.state}}.dump());
      for (auto& [key, value] : now.steps) {
        const std::pair<std::string, int>* before = nullptr;
        if (old != seen_.end()) {
          auto it = old->second.steps.find(key);
          if (it != old->second.steps.end()) before = &it->second;
        }
        if (before && *before == value) continue;
        Broadcast(id, "step",
                  nlohmann::json{{"run", id}, {"step", key.first}, {"item", key.second}, {"state", value.first},
                                 {"attempts", value.second}}
                      .dump());
      }
    }
    next[id] = std::move(now);
  }
  seen_ = std::move(next);
}

void EventHub::PumpLogs(store::RunsStore& store, bool store_changed) {
  if (follows_.empty()) return;
  std::map<int64_t, std::vector<engine::AttemptRecord>> attempts;
  for (Follow& f : follows_) {
    if (!f.stream->open()) continue;
    if (store_changed || !f.checked) {
      f.checked = true;
      if (!attempts.count(f.run_id)) {
        auto a = store.ListAttempts(f.run_id);
        attempts[f.run_id] = a.ok() ? *a : std::vector<engine::AttemptRecord>{};
      }
      for (const auto& a : attempts[f.run_id])
        if (a.step_id == f.step && a.item == f.item && a.number == f.number)
          f.finished = a.state != engine::StepState::kRunning;
    }
    // The text first, then (if the attempt had finished before we read) the end.
    bool finished = f.finished;
    std::ifstream in(f.path, std::ios::binary);
    if (in) {
      in.seekg(f.offset);
      std::string chunk(64 * 1024, '\0');
      while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || in.gcount() > 0) {
        std::string text = chunk.substr(0, static_cast<size_t>(in.gcount()));
        f.offset += static_cast<int64_t>(text.size());
        f.stream->Send("log", JsonText(nlohmann::json{{"text", text}, {"offset", f.offset}}));
        if (text.size() < chunk.size()) break;
      }
    }
    if (finished) {
      f.stream->Send("end", "{}");
      f.stream->Close();
    }
  }
  std::erase_if(follows_, [](const Follow& f) { return !f.stream->open() || f.finished; });
}

}  // namespace sluice::server
