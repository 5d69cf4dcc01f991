// runs, show, logs: read-only views of runs in the store. Models, lineage
// and gc, and tokens have files of their own (model_commands.cc,
// lineage_commands.cc, token_commands.cc).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
#include "engine/plan.h"
#include "runs/approval.h"
#include "runs/verbs.h"
#include "spec/pipeline.h"
#include "store/run_json.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string StepLabel(const std::string& step, int item) {
  return item < 0 ? step : step + "[" + std::to_string(item) + "]";
}

using engine::AttemptRecord;
using engine::StepRecord;
using engine::StepState;

namespace {

// A run left running or pending by a sluice that is gone (kill -9, a
// reboot): shown as interrupted, with `sluice resume` as the way on.
using runs::Interrupted;

const char* ShownState(const store::RunRow& r) { return Interrupted(r) ? "interrupted" : engine::Name(r.state); }

std::string RunDuration(const store::RunRow& r) {
  if (Interrupted(r)) return "-";
  if (!r.started_ms) return "-";
  int64_t end = r.finished_ms ? r.finished_ms : WallClockMs();
  return FormatDuration(std::chrono::milliseconds(end - r.started_ms));
}

std::string OutputText(const spec::Value& v) {
  std::string s = v.Render();
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s.find('\n') == std::string::npos ? s : Quote(s);
}

// A foreach item's value beside its label: `sweep[2] 0.1`, at most 40
// characters, on one line.
std::string ItemText(const spec::Value& v) {
  std::string s = v.Render();
  if (s.find_first_of("\n\r\t") != std::string::npos) s = Quote(s);
  if (s.size() > 40) {
    size_t cut = 37;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
    s = s.substr(0, cut) + "...";
  }
  return s;
}

// The order `sluice show` lists a run's steps in: the plan's (by layer, then
// the spec's order) of the spec the run goes on with, as the store kept it
// with the spec, or, for a spec stored before it kept one, from the spec.
// Steps the spec does not have (a retry --reload dropped them) come last, by
// name.
std::unordered_map<std::string, size_t> StepOrder(store::RunsStore& runs, const store::RunRow& row) {
  std::unordered_map<std::string, size_t> rank;
  auto kept = runs.StepOrder(row.spec_hash);
  if (kept.ok() && !kept->empty()) {
    rank.reserve(kept->size());
    for (std::string& id : *kept) rank.emplace(std::move(id), rank.size());
    return rank;
  }
  auto text = runs.SpecText(row.spec_hash);
  if (!text.ok()) return rank;
  auto p = spec::ParsePipeline(row.spec_path, *text);
  if (!p.ok()) return rank;
  engine::Plan plan = engine::MakePlan(*p);
  for (size_t i : plan.order) rank.emplace(p->steps[i].id, rank.size());
  return rank;
}

}  // namespace

int Runs(int limit, const std::string& pipeline, const std::string& state, const std::string& format) {
  store::RunFilter filter;
  filter.limit = limit;
  filter.pipeline = pipeline;
  if (!state.empty()) {
    filter.state = engine::ParseRunState(state);
    if (!filter.state) {
      std::cerr << "sluice: --state must be queued, pending, running, succeeded, failed or cancelled\n";
      return kExitUsage;
    }
  }
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto runs = store->runs().ListRuns(filter);
  if (!runs.ok()) {
    std::cerr << "sluice: " << runs.status().message() << "\n";
    return kExitFailed;
  }
  if (format == "json") {
    nlohmann::json j = nlohmann::json::array();
    int64_t now = WallClockMs();
    for (const auto& r : *runs) j.push_back(store::RunJson(r, Interrupted(r), now));
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  std::printf("%-6s %-24s %-11s %-20s %s\n", "ID", "PIPELINE", "STATE", "STARTED", "DURATION");
  for (const auto& r : *runs)
    std::printf("%-6lld %-24s %-11s %-20s %s\n", static_cast<long long>(r.id), r.pipeline.c_str(), ShownState(r),
                LocalTime(r.started_ms ? r.started_ms : r.created_ms).c_str(), RunDuration(r).c_str());
  return kExitOk;
}

namespace {

// A step's approval under its line: what it waits for and how to give it,
// or who decided.
void PrintApproval(const store::ApprovalRow& a, bool running, const std::string& indent) {
  if (a.decision.empty()) {
    if (!running) return;
    std::printf("%s    waiting for approval%s%s\n", indent.c_str(), a.message.empty() ? "" : ": ", a.message.c_str());
    nlohmann::json specs = nlohmann::json::parse(a.value_specs, nullptr, false);
    std::string args;
    if (specs.is_array())
      for (const nlohmann::json& v : specs) {
        std::string name = v.value("name", ""), type = v.value("type", "");
        std::string def = v.contains("default") && !v["default"].is_null() ? ", default " + v["default"].dump() : "";
        std::printf("%s      value %s (%s%s)\n", indent.c_str(), name.c_str(), type.c_str(), def.c_str());
        args += " [-v " + name + "=VALUE]";
      }
    if (a.deadline_ms)
      std::printf("%s      %s at %s\n", indent.c_str(), a.on_timeout == "approve" ? "approved" : "rejected",
                  LocalTime(a.deadline_ms).c_str());
    std::printf("%s      sluice approve %lld %s%s  |  sluice reject %lld %s [--reason TEXT]\n", indent.c_str(),
                static_cast<long long>(a.run_id), a.step_id.c_str(), args.c_str(), static_cast<long long>(a.run_id),
                a.step_id.c_str());
    return;
  }
  std::printf("%s    %s by %s at %s%s%s\n", indent.c_str(), a.decision == "approve" ? "approved" : "rejected",
              a.decided_by.c_str(), LocalTime(a.decided_ms).c_str(), a.comment.empty() ? "" : ": ", a.comment.c_str());
}

}  // namespace

int Show(const std::string& run_text, const std::string& format) {
  int64_t id;
  if (!ParseRunId(run_text, &id)) return kExitUsage;
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto row = store->runs().GetRun(id);
  auto steps = row.ok() ? store->runs().LoadSteps(id) : Result<std::vector<StepRecord>>(row.status());
  auto attempts = steps.ok() ? store->runs().ListAttempts(id) : Result<std::vector<AttemptRecord>>(steps.status());
  auto metrics = attempts.ok() ? store->runs().ListMetrics(id) : Result<std::vector<store::MetricRow>>(attempts.status());
  auto outputs = metrics.ok() ? store->runs().RunOutputs(id)
                              : Result<std::vector<engine::RunOutputValue>>(metrics.status());
  if (!outputs.ok()) {
    std::cerr << "sluice: " << outputs.status().message() << "\n";
    return kExitFailed;
  }
  // Hashed by unit (a run may have 100,000 steps), read through a lookup
  // that adds nothing: an empty list for a unit that has none.
  auto unit_key = [](const std::string& step, int item) { return StepLabel(step, item); };
  // Metrics of each unit's latest attempt that has any.
  std::unordered_map<std::string, std::vector<const store::MetricRow*>> metrics_of;
  for (const store::MetricRow& m : *metrics) {
    auto& list = metrics_of[unit_key(m.step_id, m.item)];
    if (!list.empty() && list.front()->attempt != m.attempt) list.clear();
    list.push_back(&m);
  }
  // Attempts by unit, oldest first.
  std::unordered_map<std::string, std::vector<const AttemptRecord*>> by_unit;
  for (const AttemptRecord& a : *attempts) by_unit[unit_key(a.step_id, a.item)].push_back(&a);
  auto find = [](const auto& map, const std::string& key) -> const auto& {
    static const typename std::decay_t<decltype(map)>::mapped_type kNone;
    auto it = map.find(key);
    return it == map.end() ? kNone : it->second;
  };
  std::vector<const StepRecord*> ordered;
  std::map<std::string, std::vector<const StepRecord*>> items;
  std::map<std::string, size_t> item_count;
  for (const StepRecord& s : *steps)
    if (s.item < 0) {
      ordered.push_back(&s);
      if (s.items) item_count[s.step_id] = s.items->size();
    }
  for (const StepRecord& s : *steps)
    if (s.item >= 0 && item_count.count(s.step_id) && static_cast<size_t>(s.item) < item_count[s.step_id])
      items[s.step_id].push_back(&s);
  {
    std::unordered_map<std::string, size_t> rank = StepOrder(store->runs(), *row);
    std::vector<std::pair<size_t, const StepRecord*>> ranked;
    ranked.reserve(ordered.size());
    for (const StepRecord* s : ordered) {
      auto it = rank.find(s->step_id);
      ranked.push_back({it == rank.end() ? rank.size() : it->second, s});
    }
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second->step_id < b.second->step_id;
    });
    for (size_t i = 0; i < ranked.size(); ++i) ordered[i] = ranked[i].second;
  }
  store::UnitDurations durations(*attempts, WallClockMs());
  auto duration_text = [&](const StepRecord& s) -> std::string {
    std::optional<int64_t> ms = durations.Of(s.step_id, s.item);
    return ms ? FormatDuration(std::chrono::milliseconds(*ms)) : "-";
  };

  auto approvals = store->approvals().OfRun(id);
  if (!approvals.ok()) return Fail("sluice: " + approvals.status().message(), kExitFailed);
  std::map<std::string, const store::ApprovalRow*> approval_of;
  for (const store::ApprovalRow& a : *approvals) approval_of[a.step_id] = &a;

  if (format == "json") {
    nlohmann::json j = store::RunJson(*row, Interrupted(*row), WallClockMs());
    j["approvals"] = nlohmann::json::array();
    for (const store::ApprovalRow& a : *approvals) j["approvals"].push_back(runs::ApprovalJson(a));
    j["spec_path"] = row->spec_path;
    j["outputs"] = store::RunOutputsJson(*outputs);
    j["steps"] = nlohmann::json::array();
    auto unit_json = [&](const StepRecord& s) {
      nlohmann::json u = store::StepRecordJson(s, durations.Of(s.step_id, s.item));
      u["metrics"] = nlohmann::json::array();
      for (const store::MetricRow* m : find(metrics_of, unit_key(s.step_id, s.item)))
        u["metrics"].push_back(store::MetricJson(*m));
      u["attempts"] = nlohmann::json::array();
      for (const AttemptRecord* a : find(by_unit, unit_key(s.step_id, s.item))) u["attempts"].push_back(store::AttemptJson(*a));
      return u;
    };
    for (const StepRecord* s : ordered) {
      nlohmann::json step = unit_json(*s);
      if (s->items) {
        step["items"] = nlohmann::json::array();
        for (const StepRecord* i : find(items, s->step_id)) step["items"].push_back(unit_json(*i));
      }
      j["steps"].push_back(step);
    }
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }

  std::printf("run %lld  %s  %s  started %s  took %s\n", static_cast<long long>(row->id), row->pipeline.c_str(),
              ShownState(*row), LocalTime(row->started_ms).c_str(), RunDuration(*row).c_str());
  if (Interrupted(*row))
    std::printf("its driver (pid %lld) is gone; sluice resume %lld finishes it\n", static_cast<long long>(row->driver_pid),
                static_cast<long long>(row->id));
  if (row->interval)
    std::printf("scheduled for %s (data interval from %s)\n", IsoTime(row->interval->end_ms).c_str(),
                IsoTime(row->interval->start_ms).c_str());
  if (!row->group.empty()) {
    bool unfinished = row->state == engine::RunState::kPending || row->state == engine::RunState::kRunning;
    auto holder = unfinished ? store->concurrency().GroupHolder(row->group) : Result<int64_t>(int64_t{0});
    std::string where = "concurrency group " + Quote(row->group);
    if (!unfinished || !holder.ok()) std::printf("%s\n", where.c_str());
    else if (*holder == row->id) std::printf("%s: holds it\n", where.c_str());
    else if (*holder != 0) std::printf("%s: waiting for run %lld, which holds it\n", where.c_str(), static_cast<long long>(*holder));
    else std::printf("%s: waiting\n", where.c_str());
  }
  std::printf("spec %s\n", row->spec_path.c_str());
  auto params = nlohmann::json::parse(row->params_json, nullptr, false);
  if (params.is_object() && !params.empty()) {
    std::vector<std::string> parts;
    for (auto& [k, v] : params.items()) parts.push_back(k + "=" + spec::Value::FromJson(v).Render());
    std::printf("params %s\n", Join(parts, " ").c_str());
  }
  auto label_of = [&](const StepRecord& s) {
    return s.item < 0 ? s.step_id : "  " + StepLabel(s.step_id, s.item) + " " + ItemText(s.item_value);
  };
  int width = 24;
  for (const StepRecord* s : ordered) {
    width = std::max(width, static_cast<int>(label_of(*s).size()) + 1);
    for (const StepRecord* i : find(items, s->step_id)) width = std::max(width, static_cast<int>(label_of(*i).size()) + 1);
  }
  std::printf("\n%-*s %-10s %-8s %-9s %s\n", width, "STEP", "STATE", "ATTEMPTS", "DURATION", "DETAIL");
  auto print_unit = [&](const StepRecord& s, const std::string& indent) {
    const auto& tries = find(by_unit, unit_key(s.step_id, s.item));
    std::string label = label_of(s);
    std::string detail = s.reason;
    if (s.items && detail.empty()) detail = Plural(static_cast<int64_t>(s.items->size()), "item");
    std::printf("%-*s %-10s %-8s %-9s %s\n", width, label.c_str(), engine::Name(s.state),
                tries.empty() ? "-" : std::to_string(tries.size()).c_str(), duration_text(s).c_str(), detail.c_str());
    bool on_cluster = !tries.empty() && !tries.back()->job_id.empty();
    if (tries.size() > 1 || s.state == StepState::kFailed || on_cluster)
      for (const AttemptRecord* a : tries) {
        int64_t end = a->finished_ms ? a->finished_ms : WallClockMs();
        std::printf("%s    #%d %s %s%s%s%s\n", indent.c_str(), a->number, engine::Name(a->state),
                    FormatDuration(std::chrono::milliseconds(end - a->started_ms)).c_str(),
                    a->job_id.empty() ? "" : (" on " + a->job_id).c_str(), a->reason.empty() ? "" : ": ",
                    a->reason.c_str());
      }
    if (auto it = approval_of.find(s.step_id); s.item < 0 && it != approval_of.end())
      PrintApproval(*it->second, s.state == StepState::kRunning, indent);
    if (!s.items)
      for (const auto& [k, v] : s.outputs) std::printf("%s    %s = %s\n", indent.c_str(), k.c_str(), OutputText(v).c_str());
    // The last value of each metric, and how many there were.
    std::map<std::string, std::pair<const store::MetricRow*, int>> last;
    std::vector<std::string> order;
    for (const store::MetricRow* m : find(metrics_of, unit_key(s.step_id, s.item))) {
      auto& [row, count] = last[m->name];
      if (!row) order.push_back(m->name);
      row = m;
      ++count;
    }
    for (const std::string& name : order) {
      auto [row, count] = last[name];
      std::printf("%s    metric %s = %g (index %lld, %s)\n", indent.c_str(), name.c_str(), row->value,
                  static_cast<long long>(row->index), Plural(count, "value").c_str());
    }
  };
  for (const StepRecord* s : ordered) {
    print_unit(*s, "");
    for (const StepRecord* i : find(items, s->step_id)) print_unit(*i, "  ");
  }
  if (!outputs->empty()) std::printf("\noutputs\n");
  for (const engine::RunOutputValue& o : *outputs) {
    if (o.value) std::printf("  %s = %s\n", o.name.c_str(), OutputText(spec::Value::Str(*o.value)).c_str());
    else std::printf("  %s: none (%s)\n", o.name.c_str(), o.reason.c_str());
  }
  return kExitOk;
}

namespace {

// The attempt a cached attempt reused, from the reason Engine::ReuseCached
// gives it: "cached: the outputs of run N, step X (attempt id K)".
std::optional<AttemptRecord> CachedSource(store::RunsStore& runs, const AttemptRecord& cached) {
  size_t run_at = cached.reason.find("of run "), id_at = cached.reason.find("(attempt id ");
  if (run_at == std::string::npos || id_at == std::string::npos) return std::nullopt;
  int64_t run = std::atoll(cached.reason.c_str() + run_at + 7);
  int64_t attempt = std::atoll(cached.reason.c_str() + id_at + 12);
  auto attempts = runs.ListAttempts(run);
  if (!attempts.ok()) return std::nullopt;
  for (const AttemptRecord& a : *attempts)
    if (a.id == attempt) return a;
  return std::nullopt;
}

}  // namespace

int Logs(const std::string& run_text, const std::string& step_text, int attempt_number, bool follow) {
  int64_t id;
  if (!ParseRunId(run_text, &id)) return kExitUsage;
  std::string step = step_text;
  int item = -1;
  size_t bracket = step.find('[');
  if (bracket != std::string::npos && step.back() == ']') {
    item = std::atoi(step.substr(bracket + 1).c_str());
    step = step.substr(0, bracket);
  }
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto find = [&]() -> Result<AttemptRecord> {
    auto attempts = store->runs().ListAttempts(id);
    if (!attempts.ok()) return attempts.status();
    std::vector<std::string> names;
    std::vector<int> items_seen;
    const AttemptRecord* chosen = nullptr;
    for (const AttemptRecord& a : *attempts) {
      names.push_back(a.step_id);
      if (a.step_id != step) continue;
      if (a.item != item) {
        items_seen.push_back(a.item);
        continue;
      }
      if (attempt_number == 0 || a.number == attempt_number) chosen = &a;
    }
    if (chosen) return *chosen;
    if (item < 0 && !items_seen.empty())
      return Status::NotFound("step '" + step + "' has items; name one, e.g. " + step + "[0]");
    if (std::find(names.begin(), names.end(), step) == names.end())
      return Status::NotFound("run " + std::to_string(id) + " has no attempts of step " + Quote(step) +
                              DidYouMean(step, names));
    return Status::NotFound("run " + std::to_string(id) + " has no attempt " + std::to_string(attempt_number) + " of " +
                            step_text);
  };
  auto a = find();
  if (!a.ok()) {
    std::cerr << "sluice: " << a.status().message() << "\n";
    return kExitFailed;
  }
  if (a->state == StepState::kCached) {
    // A cache hit ran nothing: its log is the one of the attempt it reused.
    std::string here = "run " + std::to_string(id) + " step " + StepLabel(a->step_id, a->item);
    auto source = CachedSource(store->runs(), *a);
    if (!source) {
      std::cerr << "sluice: " << here << " came from the cache (" << a->reason
                << "); sluice logs RUN STEP of that run shows its log\n";
      return kExitOk;
    }
    std::string there = "run " + std::to_string(source->run_id) + " step " + StepLabel(source->step_id, source->item);
    std::error_code ec;
    if (!std::filesystem::exists(source->log_path, ec)) {
      std::cerr << "sluice: " << here << " was cached from " << there << ", which wrote no output\n";
      return kExitOk;
    }
    std::cerr << "sluice: " << here << " was cached from " << there << "; its log:\n";
    a = std::move(*source);
  }
  // An attempt that wrote nothing, or never started, has no log file: its
  // log is empty, and what it ended with is said on stderr.
  if (a->state != StepState::kRunning && !a->reason.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(a->log_path, ec))
      std::cerr << "sluice: run " << id << " step " << StepLabel(a->step_id, a->item) << " attempt " << a->number
                << " wrote no log; it ended " << engine::Name(a->state) << ": " << a->reason << "\n";
  }
  std::ifstream f(a->log_path, std::ios::binary);
  char buf[65536];
  auto drain = [&]() {
    if (!f.is_open()) f.open(a->log_path, std::ios::binary);
    if (!f) return;
    f.clear();
    while (f.read(buf, sizeof buf) || f.gcount() > 0) std::fwrite(buf, 1, static_cast<size_t>(f.gcount()), stdout);
    f.clear();
    std::fflush(stdout);
  };
  drain();
  while (follow && a->state == StepState::kRunning) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    drain();
    auto now = find();
    if (!now.ok()) break;
    a = std::move(now);
  }
  drain();
  return kExitOk;
}

}  // namespace sluice::cli
