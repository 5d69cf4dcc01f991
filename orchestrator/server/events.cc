#include "server/events.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "store/open.h"
#include "util/json.h"
#include "util/strings.h"

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
  // hello misses nothing between that read and its first event. Before the
  // hub's first look (its baseline), `hello` waits for it: a change committed
  // before the baseline would be in it, and sent to nobody.
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.push_back({stream, run_id, step_seq_ >= 0});
  if (subscribers_.back().greeted) Greet(subscribers_.back());
}

void EventHub::Greet(Subscriber& s) {
  s.greeted = true;
  s.stream->Send("hello", nlohmann::json{{"run", s.run_id}}.dump());
}

void EventHub::FollowLog(std::shared_ptr<EventStream> stream, const std::string& path, int64_t offset, int64_t run_id,
                         const std::string& step, int item, int number) {
  std::lock_guard<std::mutex> lock(mu_);
  follows_.push_back({std::move(stream), path, offset, run_id, step, item, number});
  cv_.notify_all();
}

void EventHub::Outbox::Add(int64_t run_id, const char* event, const std::string& data) {
  std::string text = EventStream::FormatEvent(event, data);
  all += text;
  by_run[run_id] += text;
}

void EventHub::Deliver(const Outbox& out) {
  if (out.all.empty()) return;
  for (auto& s : subscribers_) {
    if (s.run_id == 0) {
      s.stream->SendText(out.all);
    } else if (auto it = out.by_run.find(s.run_id); it != out.by_run.end()) {
      s.stream->SendText(it->second);
    }
  }
}

void EventHub::Loop() {
  std::unique_ptr<store::Store> store;
  int64_t version = -1;
  auto last_ping = std::chrono::steady_clock::now();
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
      bool primed = step_seq_ >= 0;  // the state at start is the baseline, not news
      Outbox out;
      Scan(store->runs(), &out);
      Deliver(out);
      if (step_seq_ >= 0)
        for (auto& s : subscribers_)
          if (!s.greeted) Greet(s);
      changed = primed;
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

void EventHub::Scan(store::RunsStore& store, Outbox* out) {
  bool baseline = step_seq_ < 0;
  if (baseline) {
    auto last = store.LastStepSeq();
    if (!last.ok()) return;
    step_seq_ = *last;
  }
  bool quiet = baseline || subscribers_.empty();
  // The runs: the newest, and every one that may still change (by index).
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
  std::map<int64_t, RunSeen> next;
  for (auto& [id, row] : runs) {
    RunSeen& now = next[id];
    now.state = engine::Name(row.state);
    auto old = seen_.find(id);
    if (old != seen_.end()) now.steps = std::move(old->second.steps);
    if (!quiet && (old == seen_.end() || old->second.state != now.state))
      out->Add(id, "run",
               "{\"pipeline\":" + JsonString(row.pipeline) + ",\"run\":" + std::to_string(id) + ",\"state\":\"" + now.state +
                   "\"}");
  }
  seen_ = std::move(next);
  if (baseline) return;
  // The step records written since the last look, and only those.
  auto changes = store.StepsWrittenAfter(step_seq_);
  if (!changes.ok()) return;
  for (const store::StepChange& c : *changes) {
    step_seq_ = std::max(step_seq_, c.seq);
    if (auto run = seen_.find(c.run_id); run != seen_.end()) {
      std::pair<engine::StepState, int> value{c.state, c.attempts};
      auto [it, added] = run->second.steps.try_emplace({c.step_id, c.item}, value);
      if (!added && it->second == value) continue;  // rewritten, but nothing a client shows changed
      it->second = value;
    }
    if (quiet) continue;
    out->Add(c.run_id, "step",
             "{\"attempts\":" + std::to_string(c.attempts) + ",\"item\":" + std::to_string(c.item) +
                 ",\"run\":" + std::to_string(c.run_id) + ",\"state\":\"" + engine::Name(c.state) +
                 "\",\"step\":" + JsonString(c.step_id) + "}");
  }
}

void EventHub::PumpLogs(store::RunsStore& store, bool store_changed) {
  if (follows_.empty()) return;
  for (Follow& f : follows_) {
    if (!f.stream->open()) continue;
    if (store_changed || !f.checked) {
      f.checked = true;
      if (auto attempts = store.StepAttempts(f.run_id, f.step, f.item); attempts.ok())
        for (const auto& a : *attempts)
          if (a.number == f.number) f.finished = a.state != engine::StepState::kRunning;
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
