// deploy::Deployment (deploy/rollout.h), the drive every strategy shares:
// start, shift, pause with analysis, promote, roll back. About 610 lines,
// kept in one file: they are one object's life, and each phase reads and
// changes the state the others leave.
#include "deploy/rollout.h"

#include <httplib.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <thread>

#include "engine/types.h"
#include "serving/gateway_launch.h"
#include "serving/service_spec.h"
#include "serving/stats.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::deploy {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr Millis kTick{50};            // how often a wait looks at cancel
constexpr Millis kRequestPoll{200};    // how often it reads a person's request from the store
constexpr Millis kSettle{1000};        // between a weight change and the removal of the version that lost it

std::string Pct(int bp) { return serving::FormatPercent(bp) + "%"; }

json MeasurementJson(const Measurement& m) {
  json j = {{"verdict", VerdictName(m.verdict)}, {"requests", m.requests}, {"errors", m.errors},
            {"error_rate", m.error_rate}, {"reason", m.reason}};
  auto ms = [](const std::optional<double>& v) { return v && std::isfinite(*v) ? json(*v) : json(nullptr); };
  j["p99_ms"] = ms(m.p99_ms);
  j["p50_ms"] = ms(m.p50_ms);
  return j;
}

}  // namespace

int64_t Deployment::Now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Deployment::Deployment(sluice::Context& ctx, std::string strategy) : ctx_(ctx), strategy_(std::move(strategy)) {
  std::optional<exec::BuiltinAttempt> a = exec::CurrentBuiltinAttempt();
  if (!a) throw std::runtime_error("deploy/" + strategy_ + " runs only inside sluice (no attempt on this thread)");
  attempt_ = *a;
  auto store = store::Store::Open(attempt_.home + "/sluice.db");
  if (!store.ok()) throw std::runtime_error(store.status().message());
  store_ = std::move(*store);
  service_ = ctx_.param<std::string>("service");
  owner_ = "run:" + std::to_string(attempt_.run_id) + "/" + attempt_.step_id;
  if (ctx_.params().contains("abort_delay")) {
    std::string text = ctx_.param<std::string>("abort_delay");
    std::optional<Millis> d = ParseDuration(text);
    if (!d || d->count() < 0) throw std::runtime_error("abort_delay: " + Quote(text) + " is not a duration (use 0s, 5s, 1m)");
    abort_delay_ = *d;
  }
}

void Deployment::Check(const Status& st, const std::string& what) {
  if (!st.ok()) throw std::runtime_error(what + ": " + st.message());
}

void Deployment::Note(const std::string& kind, const std::string& message, const json& data) {
  ctx_.log() << "rollout " << rollout_.id << " of service " << service_ << ": " << kind << ": " << message;
  if (rollout_.id == 0 || ended_) return;
  Status st = store_->rollouts().Record(rollout_.id, kind, message, data.is_null() ? "" : JsonText(data), Now());
  if (!st.ok()) ctx_.log() << "rollout " << rollout_.id << ": could not record the event: " << st.message();
}

Candidate Deployment::ResolveCandidate() {
  auto c = deploy::ResolveCandidate(ctx_.params(), service_, "run" + std::to_string(attempt_.run_id),
                                    ctx_.workdir() + "/" + attempt_.step_id + ".with", store_->registry());
  if (!c.ok()) throw std::runtime_error(c.status().message());
  return std::move(*c);
}

void Deployment::Begin(const Candidate& c) {
  auto active = store_->rollouts().ActiveOfStep(attempt_.run_id, attempt_.step_id);
  Check(active.status(), "read the rollouts of service " + service_);
  if (*active) {
    rollout_ = **active;
    resumed_ = true;
    Note("resume", "attempt " + std::to_string(attempt_.attempt) + " continues at step " +
                       std::to_string(rollout_.step_index) + " (" + rollout_.candidate_version + " at " +
                       Pct(rollout_.candidate_bp) + ")");
    return;
  }
  TakeOverEndedRollout();
  WaitUntilGone(c.version.name);
  const int64_t now = Now();
  auto live = store_->services().Get(service_);
  if (!live.ok() && live.status().code() != Code::kNotFound) Check(live.status(), "read service " + service_);
  rollout_.service = service_;
  rollout_.strategy = strategy_;
  rollout_.run_id = attempt_.run_id;
  rollout_.step_id = attempt_.step_id;
  rollout_.candidate_version = c.version.name;
  rollout_.config = JsonText(ctx_.params());
  std::string start;
  if (!live.ok()) {
    // Nothing serves yet: the candidate becomes the service, all traffic once ready.
    auto applied = store_->services().Apply(NewService(service_, c), owner_, "deploy/" + strategy_ + ": new service", now);
    Check(applied.status(), "apply service " + service_);
    start = "new service " + service_ + " with " + c.version.name + " (" + serving::FormatPercent(10'000) +
            "% once ready)";
  } else {
    // The stable version: the one with all the weight.
    const store::ServiceVersionState* stable = nullptr;
    std::vector<std::string> split;
    for (const store::ServiceVersionState& v : live->versions) {
      if (v.state != "active") continue;
      if (v.weight_bp == 10'000) stable = &v;
      if (v.weight_bp > 0) split.push_back(v.name + " " + Pct(v.weight_bp));
    }
    if (!stable)
      throw std::runtime_error("service " + service_ + " splits its traffic (" + Join(split, ", ") +
                               "); a rollout starts from one version at 100%: sluice services abort " + service_ +
                               " or set the weights");
    if (stable->name == c.version.name)
      throw std::runtime_error("version " + c.version.name + " already takes all the traffic of service " + service_ +
                               "; to deploy something else under that name, name the candidate: with.version.name");
    rollout_.stable_version = stable->name;
    // What the stable version is, kept for deploy/rollback once it is gone.
    json previous = {{"state", VersionStateJson(*stable)}, {"document", VersionDocument(*live, stable->name)}};
    rollout_.outputs = JsonText(json{{"previous", previous}});
    auto applied = store_->services().Apply(WithVersion(*live, c), owner_,
                                            "deploy/" + strategy_ + ": add " + c.version.name + " at 0%", now);
    Check(applied.status(), "apply service " + service_);
    start = strategy_ + " of " + c.version.name + " against " + stable->name;
  }
  Check(store_->services().SetTrafficOwner(service_, owner_, "", owner_, "deploy/" + strategy_ + " takes the weights", now),
        "take the weights of service " + service_);
  auto id = store_->rollouts().Create(rollout_, start, now);
  if (!id.ok()) {
    (void)store_->services().SetTrafficOwner(service_, "", owner_, owner_, "the rollout was not recorded", Now());
    Check(id.status(), "record the rollout");
  }
  rollout_.id = *id;
  if (!rollout_.outputs.empty())
    Check(store_->rollouts().Advance(rollout_.id, {store::RolloutState::kProgressing, 0, 0, start, rollout_.outputs},
                                     "shift", "candidate " + c.version.name + " at 0%", "", Now()),
          "record the rollout");
  ctx_.log() << "rollout " << rollout_.id << " of service " << service_ << ": start: " << start;
  auto gateway = serving::EnsureGateway(store_->gateway(), attempt_.home, 0);
  if (!gateway.ok()) RollBack(store::RolloutState::kAborted, gateway.status().message(), Millis(0));
  if (gateway->started)
    Note("gateway", "started a gateway: pid " + std::to_string(gateway->gateway.pid) + ", http://" +
                        gateway->gateway.listen + ":" + std::to_string(gateway->gateway.port));
}

void Deployment::TakeOverEndedRollout() {
  auto other = store_->rollouts().ActiveOfService(service_);
  if (!other.ok() || !*other) return;
  const store::RolloutRecord& o = **other;
  auto run = store_->runs().GetRun(o.run_id);
  if (run.ok() && (run->state == engine::RunState::kRunning || run->state == engine::RunState::kPending ||
                   run->state == engine::RunState::kQueued))
    return;  // still driven, or to be resumed: Create refuses, naming it
  const std::string why = "its run " + std::to_string(o.run_id) + " ended" +
                          (run.ok() ? std::string(" (") + engine::Name(run->state) + ")" : std::string()) +
                          " without finishing it";
  const std::string owner = o.Owner();
  const int64_t now = Now();
  if (!o.stable_version.empty()) {
    store::TrafficChange change;
    change.owner = owner;
    change.weights_bp = {{o.stable_version, 10'000}};
    Check(store_->services().SetTraffic(service_, change, owner_, "rollout " + std::to_string(o.id) + ": " + why, now)
              .status(),
          "set the weights of service " + service_);
  }
  Check(store_->rollouts().Advance(o.id, {store::RolloutState::kAborted, o.step_index, 0, "aborted: " + why, ""},
                                   "abort", "aborted by " + owner_ + ": " + why, "", now),
        "abort rollout " + std::to_string(o.id));
  std::this_thread::sleep_for(kSettle);  // the new weights first, then the removal (LetRunFor)
  if (auto live = store_->services().Get(service_); live.ok() && !o.stable_version.empty())
    for (const store::ServiceVersionState& v : live->versions)
      if (v.name == o.candidate_version && v.state == "active")
        Check(store_->services().Apply(WithoutVersion(*live, o.candidate_version), owner, why, now).status(),
              "take " + o.candidate_version + " out of service " + service_);
  Check(store_->services().SetTrafficOwner(service_, "", owner, owner_, "rollout " + std::to_string(o.id) + ": " + why,
                                           now),
        "hand back the weights of service " + service_);
  ctx_.log() << "rollout " << o.id << " of service " << service_ << ": aborted: " << why << "; "
             << (o.stable_version.empty() ? o.candidate_version : o.stable_version) << " keeps all traffic";
}

void Deployment::WaitUntilGone(const std::string& version) {
  bool said = false;
  const auto deadline = Clock::now() + std::chrono::minutes(5);
  while (true) {
    auto live = store_->services().Get(service_);
    if (!live.ok()) return;
    bool removing = false;
    for (const store::ServiceVersionState& v : live->versions) removing |= v.name == version && v.state == "removing";
    if (!removing) return;
    if (Clock::now() >= deadline)
      throw std::runtime_error("version " + version + " of service " + service_ +
                               " is still being taken out after 5 min; see sluice services show " + service_);
    if (!said) ctx_.log() << "rollout of service " << service_ << ": waiting for the old " << version
                          << " to stop before it comes back";
    said = true;
    if (ctx_.cancelled()) throw sluice::Cancelled{};
    std::this_thread::sleep_for(kTick);
  }
}

void Deployment::Drive(const std::function<void()>& body) {
  try {
    body();
  } catch (const sluice::Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    // A rollout that ends without a decision (a store or gateway error,
    // a bad param found late) leaves the traffic where it was before it.
    if (rollout_.id == 0 || ended_) throw;
    RollBack(store::RolloutState::kAborted, e.what(), Millis(0));
  }
}

bool Deployment::Tick() {
  if (ctx_.cancelled()) {
    try {
      RollBack(store::RolloutState::kAborted, "the run was cancelled", Millis(0));
    } catch (const std::runtime_error&) {
    }
    throw sluice::Cancelled{};
  }
  if (Clock::now() < next_request_poll_) return false;
  next_request_poll_ = Clock::now() + kRequestPoll;
  auto request = store_->rollouts().TakeRequest(rollout_.id, Now());
  if (!request.ok()) {
    ctx_.log() << "rollout " << rollout_.id << ": could not read requests: " << request.status().message();
    return false;
  }
  if (request->what == "abort") RollBack(store::RolloutState::kAborted, "aborted by " + request->actor, abort_delay_);
  if (request->what == "promote") promoted_by_ = request->actor;
  return request->what == "promote";
}

void Deployment::WaitReady(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last;
  while (true) {
    auto waiting = serving::ReplicasNotReady(store_->services(), service_, rollout_.candidate_version);
    if (!waiting.ok()) RollBack(store::RolloutState::kAborted, waiting.status().message(), Millis(0));
    // The replica rows say ready; the gateway's own routing table (what a
    // shift routes by) may lag them by a control step: ask it.
    if (waiting->empty() && GatewayRoutesTo(rollout_.candidate_version)) {
      Note("ready", rollout_.candidate_version + " is ready");
      return;
    }
    if (waiting->empty()) waiting->push_back("the gateway has not put " + rollout_.candidate_version + " in rotation yet");
    std::string now = Join(*waiting, "; ");
    if (now != last) ctx_.log() << "rollout " << rollout_.id << ": waiting: " << now;
    last = now;
    if (Clock::now() >= deadline)
      RollBack(store::RolloutState::kRolledBack,
               rollout_.candidate_version + " was not ready within " + FormatDuration(timeout) + ": " + now,
               Millis(0));
    Tick();  // a promote request cannot skip readiness
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

bool Deployment::GatewayRoutesTo(const std::string& version) {
  auto row = store_->gateway().Read();
  if (!row.ok() || !*row) return false;
  httplib::Client client((*row)->listen, (*row)->port);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(2, 0);
  auto r = client.Get("/v2/models/" + service_ + "/versions/" + version + "/ready");
  return r && r->status == 200;
}

void Deployment::SetWeights(int candidate_bp, const std::string& reason) {
  store::TrafficChange change;
  change.owner = owner_;
  if (rollout_.stable_version.empty() || candidate_bp == 10'000) {
    change.weights_bp = {{rollout_.candidate_version, 10'000}};
  } else if (candidate_bp == 0) {
    change.weights_bp = {{rollout_.stable_version, 10'000}};
  } else {
    change.weights_bp = {{rollout_.candidate_version, candidate_bp}, {rollout_.stable_version, 10'000 - candidate_bp}};
  }
  auto live = store_->services().Get(service_);
  if (live.ok() && !live->mirror_version.empty() && live->mirror_version == rollout_.candidate_version)
    change.set_mirror = true;  // deploy/shadow's mirror ends with any move of the weights
  auto st = store_->services().SetTraffic(service_, change, owner_, reason, Now());
  Check(st.status(), "set the weights of service " + service_);
}

void Deployment::SetMirror(int bp, const std::string& reason) {
  store::TrafficChange change;
  change.owner = owner_;
  change.weights_bp = {{rollout_.stable_version, 10'000}};
  change.set_mirror = true;
  if (bp > 0) {
    change.mirror_version = rollout_.candidate_version;
    change.mirror_bp = bp;
  }
  auto st = store_->services().SetTraffic(service_, change, owner_, reason, Now());
  Check(st.status(), "set the mirror of service " + service_);
  Note("mirror", bp > 0 ? Pct(bp) + " of the live requests copied to " + rollout_.candidate_version : "mirror off",
       json{{"mirror_bp", bp}});
}

int64_t Deployment::FirstEventAt(const std::string& kind) {
  auto events = store_->rollouts().Events(rollout_.id, 0);
  if (!events.ok()) return 0;
  for (const store::RolloutEvent& e : *events)
    if (e.kind == kind) return e.at_ms;
  return 0;
}

void Deployment::Shift(int step_index, int candidate_bp, const std::string& why) {
  SetWeights(candidate_bp, why);
  std::string message = rollout_.candidate_version + " " + Pct(candidate_bp) +
                        (rollout_.stable_version.empty() ? "" : ", " + rollout_.stable_version + " " +
                                                                     Pct(10'000 - candidate_bp));
  rollout_.step_index = step_index;
  rollout_.candidate_bp = candidate_bp;
  Check(store_->rollouts().Advance(rollout_.id, {store::RolloutState::kProgressing, step_index, candidate_bp, why, ""},
                                   "shift", message, JsonText(json{{"candidate_bp", candidate_bp}, {"step", step_index}}), Now()),
        "record the shift");
  ctx_.log() << "rollout " << rollout_.id << " of service " << service_ << ": shift: " << message << " (" << why << ")";
}

Result<Snapshot> Deployment::Scrape() {
  auto row = store_->gateway().Read();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound("no gateway serves the store");
  httplib::Client client((*row)->listen, (*row)->port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  auto r = client.Get("/metrics");
  if (!r) return Status::IoError("GET /metrics of the gateway: " + httplib::to_string(r.error()));
  if (r->status != 200) return Status::IoError("GET /metrics of the gateway answered " + std::to_string(r->status));
  return ParseMetrics(r->body);
}

Deployment::PauseEnd Deployment::Pause(int step_index, std::optional<Millis> duration, const AnalysisSpec* analysis,
                                       const std::string& role) {
  Clock::time_point end = duration ? Clock::now() + *duration : Clock::time_point::max();
  bool paused = false;
  auto pause = [&](const std::string& why) {
    paused = true;
    Check(store_->rollouts().Advance(rollout_.id, {store::RolloutState::kPaused, step_index, rollout_.candidate_bp, why, ""},
                                     "pause", why + "; paused until a person promotes or aborts", "", Now()),
          "record the pause");
  };
  if (!duration) pause("a step without a pause duration");
  std::optional<Snapshot> since;
  Clock::time_point next_window = Clock::now();
  std::optional<AnalysisTally> tally;
  int window = 0, scrape_errors = 0;
  if (analysis) {
    tally.emplace(*analysis);
    auto first = Scrape();
    if (first.ok()) since = std::move(*first);
    next_window = Clock::now() + analysis->interval;
  }
  const auto started = Clock::now();
  const int64_t started_ms = Now();
  int class_failures = 0;
  auto next_progress = started;
  while (true) {
    if (Tick()) return PauseEnd::kPromoteRequested;
    auto now = Clock::now();
    if (!paused && now >= end) return PauseEnd::kElapsed;
    if (!paused && duration && now >= next_progress && duration->count() > 0) {
      double done = std::chrono::duration<double>(now - started) / std::chrono::duration<double>(*duration);
      ctx_.progress(std::min(1.0, done), "step " + std::to_string(step_index + 1) + ": " + rollout_.candidate_version +
                                             " at " + Pct(rollout_.candidate_bp));
      next_progress = now + std::chrono::seconds(1);
    }
    if (analysis && !paused && now >= next_window) {
      next_window = now + analysis->interval;
      auto snap = Scrape();
      if (!snap.ok()) {
        // A gateway that died (kill -9, a crash) is started again: it
        // restores the weights from the store, and the rollout goes on.
        auto gateway = serving::EnsureGateway(store_->gateway(), attempt_.home, 0);
        if (gateway.ok() && gateway->started)
          Note("gateway", "the gateway was gone (" + snap.status().message() + "); started another: pid " +
                              std::to_string(gateway->gateway.pid) + ", port " + std::to_string(gateway->gateway.port));
      }
      if (!snap.ok() || !since) {
        // Not a measurement: the gateway could not be read (Argo's consecutiveErrorLimit).
        std::string why = snap.ok() ? "no earlier reading of the gateway's /metrics" : snap.status().message();
        if (snap.ok()) since = std::move(*snap);
        if (++scrape_errors >= 3)
          RollBack(store::RolloutState::kRolledBack, "the analysis could not read the gateway 3 times: " + why,
                   abort_delay_);
        Note("analysis", "no measurement: " + why);
        continue;
      }
      scrape_errors = 0;
      Snapshot grew = Increase(*since, *snap);
      since = std::move(*snap);
      Measurement m = tally->Add(CountsOf(grew, {service_, rollout_.candidate_version, role}));
      ++window;
      json data = MeasurementJson(m);
      data["window"] = window;
      data["step"] = step_index;
      Note("analysis", "window " + std::to_string(window) + ": " + VerdictName(m.verdict) + ": " + m.reason, data);
      if (analysis->max_class_distance && !rollout_.stable_version.empty() && role == "live") {
        Measurement c = JudgeClasses(*analysis, ClassesSince(rollout_.candidate_version, started_ms),
                                     ClassesSince(rollout_.stable_version, started_ms));
        json cdata = MeasurementJson(c);
        cdata["window"] = window;
        cdata["step"] = step_index;
        Note("analysis", "window " + std::to_string(window) + ": classes: " + VerdictName(c.verdict) + ": " + c.reason,
             cdata);
        if (c.verdict == Verdict::kFail && ++class_failures > analysis->failure_limit)
          RollBack(store::RolloutState::kRolledBack, c.reason, abort_delay_);
      }
      switch (tally->next()) {
        case AnalysisTally::Next::kFail:
          RollBack(store::RolloutState::kRolledBack,
                   (m.verdict == Verdict::kInconclusive ? "inconclusive: " : "") + m.reason, abort_delay_);
        case AnalysisTally::Next::kPause:
          pause("inconclusive: " + m.reason);
          break;
        case AnalysisTally::Next::kContinue:
          break;
      }
    }
    std::this_thread::sleep_for(kTick);
  }
}

std::map<std::string, int64_t> Deployment::ClassesSince(const std::string& version, int64_t since_ms) {
  std::map<std::string, int64_t> out;
  int64_t from = since_ms - since_ms % serving::kWindowMs;
  auto windows = store_->gateway().Windows(service_, version, "live", from, Now() + serving::kWindowMs);
  if (!windows.ok()) return out;
  for (const store::WindowRow& w : *windows) {
    json classes = json::parse(w.classes.empty() ? "{}" : w.classes, nullptr, false);
    if (!classes.is_object()) continue;
    for (const auto& [name, n] : classes.items())
      if (n.is_number_integer()) out[name] += n.get<int64_t>();
  }
  return out;
}

void Deployment::LetRunFor(const std::string& version, Millis delay) {
  // The gateway applies a weight change and a version's removal at its next
  // look at the store, but takes the removed version's replicas out of
  // rotation before it routes by the new weights: a request routed by the
  // old weights in between would find none. kSettle keeps the two changes
  // apart, whatever the delay asked (and a cancel).
  const auto settle = Clock::now() + kSettle;
  if (delay.count() > 0 && !ctx_.cancelled())
    ctx_.log() << "rollout " << rollout_.id << ": " << version << " stops in " << FormatDuration(delay);
  auto until = Clock::now() + delay;
  while ((Clock::now() < until && !ctx_.cancelled()) || Clock::now() < settle) std::this_thread::sleep_for(kTick);
}

void Deployment::RemoveVersion(const std::string& name, const std::string& reason) {
  auto live = store_->services().Get(service_);
  if (!live.ok()) {
    ctx_.log() << "rollout " << rollout_.id << ": could not read service " << service_ << ": " << live.status().message();
    return;
  }
  bool present = false;
  for (const store::ServiceVersionState& v : live->versions) present |= v.name == name && v.state == "active";
  if (!present) return;
  auto st = store_->services().Apply(WithoutVersion(*live, name), owner_, reason, Now());
  if (!st.ok()) ctx_.log() << "rollout " << rollout_.id << ": could not remove " << name << ": " << st.status().message();
}

void Deployment::Release() {
  Status st = store_->services().SetTrafficOwner(service_, "", owner_, owner_, "deploy/" + strategy_ + " ended", Now());
  if (!st.ok()) ctx_.log() << "rollout " << rollout_.id << ": could not hand the weights back: " << st.message();
}

void Deployment::RollBack(store::RolloutState state, const std::string& why, Millis delay) {
  if (ended_) throw std::runtime_error("rolled back: " + why);
  std::string error;
  if (!rollout_.stable_version.empty()) {
    try {
      SetWeights(0, "rolled back: " + why);  // first: every request on stable now
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
  }
  ctx_.log() << "rollout " << rollout_.id << " of service " << service_ << ": rollback: all traffic to "
             << (rollout_.stable_version.empty() ? "nothing (no stable version)" : rollout_.stable_version) << ": "
             << why;
  if (rollout_.id != 0) {
    Status st = store_->rollouts().Advance(rollout_.id, {state, rollout_.step_index, 0, "rolled back: " + why, ""},
                                           state == store::RolloutState::kAborted ? "abort" : "rollback",
                                           "all traffic to " + rollout_.stable_version + ": " + why, "", Now());
    if (!st.ok()) ctx_.log() << "rollout " << rollout_.id << ": could not record the rollback: " << st.message();
  }
  ended_ = true;
  LetRunFor(rollout_.candidate_version, delay);
  // A new service that never served: the candidate stays, at 0 replicas' worth of nothing to roll back to.
  if (!rollout_.stable_version.empty()) RemoveVersion(rollout_.candidate_version, "rolled back: " + why);
  Release();
  ctx_.output("version", rollout_.stable_version);
  ctx_.output("rolled_back", "true");
  throw std::runtime_error("rolled back: " + why + (error.empty() ? "" : " (and " + error + ")"));
}

void Deployment::EmitPromotionEvent(const std::string& artifact_uri) {
  auto var = [&](const char* name) {
    auto it = attempt_.sluice_env.find(name);
    return it == attempt_.sluice_env.end() ? std::string() : it->second;
  };
  const std::string file = var("SLUICE_OPENLINEAGE_FILE"), url = var("SLUICE_OPENLINEAGE_URL");
  if (file.empty() && url.empty()) return;
  std::string job_namespace = var("SLUICE_OPENLINEAGE_NAMESPACE");
  if (job_namespace.empty()) job_namespace = "sluice";
  json ev = {{"eventType", "COMPLETE"},
             {"eventTime", IsoTime(Now())},
             {"producer", "https://github.com/sluice-orchestrator/sluice/tree/v" SLUICE_VERSION},
             {"schemaURL", "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"},
             {"run", {{"runId", Sha256Hex(attempt_.home + "/rollout/" + std::to_string(rollout_.id)).substr(0, 32)}}},
             {"job", {{"namespace", job_namespace}, {"name", "service." + service_ + ".promote"}}},
             {"inputs", json::array()},
             {"outputs", {{{"namespace", "sluice-service"}, {"name", service_ + "/" + rollout_.candidate_version}}}}};
  // An OpenLineage run id is a UUID: format the hash's first 32 hex digits as one.
  std::string id = ev["run"]["runId"];
  ev["run"]["runId"] = id.substr(0, 8) + "-" + id.substr(8, 4) + "-" + id.substr(12, 4) + "-" + id.substr(16, 4) + "-" +
                       id.substr(20, 12);
  if (!artifact_uri.empty()) ev["inputs"].push_back({{"namespace", "file"}, {"name", artifact_uri}});
  std::string text = JsonText(ev);
  if (!file.empty()) {
    std::ofstream out(file, std::ios::app);
    out << text << "\n";
    if (!out) ctx_.log() << "rollout " << rollout_.id << ": could not append the promotion event to " << file;
  }
  if (!url.empty()) {
    std::string base = url, path = "/api/v1/lineage";
    size_t scheme = base.find("://");
    size_t slash = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    if (slash != std::string::npos) {
      path = base.substr(slash);
      base = base.substr(0, slash);
    }
    httplib::Client client(base);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    auto r = client.Post(path, text, "application/json");
    if (!r || r->status / 100 != 2)
      ctx_.log() << "rollout " << rollout_.id << ": the promotion event was not delivered to " << url << ": "
                 << (r ? "status " + std::to_string(r->status) : httplib::to_string(r.error()));
  }
}

void Deployment::End(store::RolloutState state, const std::string& why, json outputs, Millis delay) {
  SetWeights(0, why);  // first: every request on stable now
  rollout_.candidate_bp = 0;
  outputs["version"] = rollout_.stable_version;
  outputs["candidate"] = rollout_.candidate_version;
  Check(store_->rollouts().Advance(rollout_.id, {state, rollout_.step_index, 0, why, JsonText(outputs)}, "end",
                                   "all traffic stays on " + rollout_.stable_version + ": " + why, "", Now()),
        "record the end");
  ctx_.log() << "rollout " << rollout_.id << " of service " << service_ << ": end: " << rollout_.stable_version
             << " keeps all traffic: " << why;
  ended_ = true;
  LetRunFor(rollout_.candidate_version, delay);
  RemoveVersion(rollout_.candidate_version, "deploy/" + strategy_ + ": " + why);
  Release();
  ctx_.output("version", rollout_.stable_version);
  ctx_.output("previous", rollout_.stable_version);
  ctx_.output("rollout", std::to_string(rollout_.id));
  ctx_.output("rolled_back", "false");
}

void Deployment::Promote(Millis scale_down_delay, const std::string& why, json outputs) {
  if (rollout_.candidate_bp != 10'000) SetWeights(10'000, why);  // a last step at 100% has shifted already
  rollout_.candidate_bp = 10'000;
  Note("promote", rollout_.candidate_version + " takes all traffic: " + why);
  if (!rollout_.stable_version.empty()) {
    LetRunFor(rollout_.stable_version, scale_down_delay);  // promoted already: a cancel only skips the wait
    RemoveVersion(rollout_.stable_version, "deploy/" + strategy_ + ": " + rollout_.candidate_version + " promoted");
  }
  auto saved = json::parse(rollout_.outputs.empty() ? "{}" : rollout_.outputs, nullptr, false);
  if (saved.is_object() && saved.contains("previous")) outputs["previous"] = saved["previous"];
  outputs["version"] = rollout_.candidate_version;
  outputs["stable_before"] = rollout_.stable_version;
  Check(store_->rollouts().Advance(rollout_.id, {store::RolloutState::kPromoted, rollout_.step_index, 10'000, why,
                                                 JsonText(outputs)},
                                   "end", "promoted " + rollout_.candidate_version, "", Now()),
        "record the promotion");
  ended_ = true;
  Release();
  std::string artifact_uri;
  if (auto live = store_->services().Get(service_); live.ok())
    for (const store::ServiceVersionState& v : live->versions)
      if (v.name == rollout_.candidate_version) artifact_uri = v.uri;
  EmitPromotionEvent(artifact_uri);
  ctx_.output("version", rollout_.candidate_version);
  ctx_.output("previous", rollout_.stable_version);
  ctx_.output("rollout", std::to_string(rollout_.id));
  ctx_.output("rolled_back", "false");
}

}  // namespace sluice::deploy
