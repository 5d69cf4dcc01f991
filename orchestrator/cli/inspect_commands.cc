// runs, show, logs: read-only views of the store.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
#include "engine/plan.h"
#include "runs/verbs.h"
#include "spec/pipeline.h"
#include "store/run_json.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

using engine::AttemptRecord;
using engine::StepRecord;
using engine::StepState;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A run left running or pending by a sluice that is gone (kill -9, a
// reboot): shown as interrupted, with `sluice resume` as the way on.
using runs::Interrupted;

const char* ShownState(const store::RunRow& r) { return Interrupted(r) ? "interrupted" : engine::Name(r.state); }

std::string RunDuration(const store::RunRow& r) {
  if (Interrupted(r)) return "-";
  if (!r.started_ms) return "-";
  int64_t end = r.finished_ms ? r.finished_ms : NowMs();
  return FormatDuration(std::chrono::milliseconds(end - r.started_ms));
}

std::string StepLabel(const std::string& id, int item) {
  return item < 0 ? id : id + "[" + std::to_string(item) + "]";
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
// the spec's order) of the spec the run goes on with. Steps the spec does not
// have (a retry --reload dropped them) come last, by name.
std::map<std::string, size_t> StepOrder(store::RunsStore& runs, const store::RunRow& row) {
  std::map<std::string, size_t> rank;
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
    int64_t now = NowMs();
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

int Show(const std::string& run_text, const std::string& format) {
  int64_t id;
  if (!ParseRunId(run_text, &id)) return kExitUsage;
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto row = store->runs().GetRun(id);
  auto steps = row.ok() ? store->runs().LoadSteps(id) : Result<std::vector<StepRecord>>(row.status());
  auto attempts = steps.ok() ? store->runs().ListAttempts(id) : Result<std::vector<AttemptRecord>>(steps.status());
  auto metrics = attempts.ok() ? store->runs().ListMetrics(id) : Result<std::vector<store::MetricRow>>(attempts.status());
  if (!metrics.ok()) {
    std::cerr << "sluice: " << metrics.status().message() << "\n";
    return kExitFailed;
  }
  // Metrics of each unit's latest attempt that has any, by (step, item).
  std::map<std::pair<std::string, int>, std::vector<const store::MetricRow*>> metrics_of;
  for (const store::MetricRow& m : *metrics) {
    auto& list = metrics_of[{m.step_id, m.item}];
    if (!list.empty() && list.front()->attempt != m.attempt) list.clear();
    list.push_back(&m);
  }
  // Attempts by (step, item), oldest first.
  std::map<std::pair<std::string, int>, std::vector<const AttemptRecord*>> by_unit;
  for (const AttemptRecord& a : *attempts) by_unit[{a.step_id, a.item}].push_back(&a);
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
  std::map<std::string, size_t> rank = StepOrder(store->runs(), *row);
  auto rank_of = [&](const StepRecord* s) {
    auto it = rank.find(s->step_id);
    return it == rank.end() ? rank.size() : it->second;
  };
  std::stable_sort(ordered.begin(), ordered.end(), [&](const StepRecord* a, const StepRecord* b) {
    return std::make_pair(rank_of(a), a->step_id) < std::make_pair(rank_of(b), b->step_id);
  });
  store::UnitDurations durations(*attempts, NowMs());
  auto duration_text = [&](const StepRecord& s) -> std::string {
    std::optional<int64_t> ms = durations.Of(s.step_id, s.item);
    return ms ? FormatDuration(std::chrono::milliseconds(*ms)) : "-";
  };

  if (format == "json") {
    nlohmann::json j = store::RunJson(*row, Interrupted(*row), NowMs());
    j["spec_path"] = row->spec_path;
    j["steps"] = nlohmann::json::array();
    auto unit_json = [&](const StepRecord& s) {
      nlohmann::json u = store::StepRecordJson(s, durations.Of(s.step_id, s.item));
      u["metrics"] = nlohmann::json::array();
      for (const store::MetricRow* m : metrics_of[{s.step_id, s.item}]) u["metrics"].push_back(store::MetricJson(*m));
      u["attempts"] = nlohmann::json::array();
      for (const AttemptRecord* a : by_unit[{s.step_id, s.item}]) u["attempts"].push_back(store::AttemptJson(*a));
      return u;
    };
    for (const StepRecord* s : ordered) {
      nlohmann::json step = unit_json(*s);
      if (s->items) {
        step["items"] = nlohmann::json::array();
        for (const StepRecord* i : items[s->step_id]) step["items"].push_back(unit_json(*i));
      }
      j["steps"].push_back(step);
    }
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }

  std::printf("run %lld  %s  %s  started %s  took %s\n", static_cast<long long>(row->id), row->pipeline.c_str(),
              ShownState(*row), LocalTime(row->started_ms).c_str(), RunDuration(*row).c_str());
  if (Interrupted(*row))
    std::printf("its sluice (pid %lld) is gone; sluice resume %lld finishes it\n", static_cast<long long>(row->owner_pid),
                static_cast<long long>(row->id));
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
    for (const StepRecord* i : items[s->step_id]) width = std::max(width, static_cast<int>(label_of(*i).size()) + 1);
  }
  std::printf("\n%-*s %-10s %-8s %-9s %s\n", width, "STEP", "STATE", "ATTEMPTS", "DURATION", "DETAIL");
  auto print_unit = [&](const StepRecord& s, const std::string& indent) {
    const auto& tries = by_unit[{s.step_id, s.item}];
    std::string label = label_of(s);
    std::string detail = s.reason;
    if (s.items && detail.empty()) detail = Plural(static_cast<int64_t>(s.items->size()), "item");
    std::printf("%-*s %-10s %-8s %-9s %s\n", width, label.c_str(), engine::Name(s.state),
                tries.empty() ? "-" : std::to_string(tries.size()).c_str(), duration_text(s).c_str(), detail.c_str());
    bool on_cluster = !tries.empty() && !tries.back()->job_id.empty();
    if (tries.size() > 1 || s.state == StepState::kFailed || on_cluster)
      for (const AttemptRecord* a : tries) {
        int64_t end = a->finished_ms ? a->finished_ms : NowMs();
        std::printf("%s    #%d %s %s%s%s%s\n", indent.c_str(), a->number, engine::Name(a->state),
                    FormatDuration(std::chrono::milliseconds(end - a->started_ms)).c_str(),
                    a->job_id.empty() ? "" : (" on " + a->job_id).c_str(), a->reason.empty() ? "" : ": ",
                    a->reason.c_str());
      }
    if (!s.items)
      for (const auto& [k, v] : s.outputs) std::printf("%s    %s = %s\n", indent.c_str(), k.c_str(), OutputText(v).c_str());
    // The last value of each metric, and how many there were.
    std::map<std::string, std::pair<const store::MetricRow*, int>> last;
    std::vector<std::string> order;
    for (const store::MetricRow* m : metrics_of[{s.step_id, s.item}]) {
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
    for (const StepRecord* i : items[s->step_id]) print_unit(*i, "  ");
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
  // A step that never wrote anything has no log file: its log is empty.
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

namespace sluice::cli {

namespace {

bool IsHash(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string Size(int64_t bytes) {
  char buf[32];
  if (bytes < 1024) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else if (bytes < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1048576.0);
  return buf;
}

}  // namespace

int Lineage(const std::string& target, bool downstream, const std::string& format) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  std::string hash;
  int64_t attempt_id = 0;
  std::string base = target;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string last = base.substr(base.find_last_of('/') + 1);
  size_t slash = target.find('/');
  if (IsHash(target)) {
    hash = target;
  } else if (IsHash(last) && base.find("artifacts/") != std::string::npos) {
    hash = last;
  } else if (slash != std::string::npos) {
    // RUN/STEP or RUN/STEP[item]
    int64_t run;
    if (!ParseRunId(target.substr(0, slash), &run)) return kExitUsage;
    std::string step = target.substr(slash + 1);
    int item = -1;
    size_t bracket = step.find('[');
    if (bracket != std::string::npos && step.back() == ']') {
      item = std::atoi(step.substr(bracket + 1).c_str());
      step = step.substr(0, bracket);
    }
    auto a = store->runs().LatestAttempt(run, step, item);
    if (!a.ok()) {
      std::cerr << "sluice: " << a.status().message() << "\n";
      return kExitFailed;
    }
    attempt_id = a->id;
  } else {
    std::cerr << "sluice: " << Quote(target)
              << " is neither an artifact (a SHA-256 hash or a path under .sluice/artifacts) nor RUN/STEP\n";
    return kExitUsage;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto g = store->lineage().Lineage(hash, attempt_id, !downstream);
  auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  if (!g.ok()) {
    std::cerr << "sluice: " << g.status().message() << "\n";
    return kExitFailed;
  }
  if (!hash.empty() && g->artifacts.empty()) {
    std::cerr << "sluice: no artifact " << hash << " in the store\n";
    return kExitFailed;
  }
  auto label = [](const AttemptRecord& a) {
    return "run " + std::to_string(a.run_id) + " / " + StepLabel(a.step_id, a.item) + " #" + std::to_string(a.number);
  };
  std::map<int64_t, const AttemptRecord*> by_id;
  for (const AttemptRecord& a : g->attempts) by_id[a.id] = &a;
  if (format == "json") {
    nlohmann::json j = {{"direction", downstream ? "downstream" : "upstream"},
                        {"artifacts", nlohmann::json::array()}, {"attempts", nlohmann::json::array()},
                        {"edges", nlohmann::json::array()}, {"query_us", took.count()}};
    for (const auto& a : g->artifacts)
      j["artifacts"].push_back({{"hash", a.hash}, {"kind", a.kind}, {"size", a.size}, {"uri", a.uri}});
    for (const auto& a : g->attempts) {
      nlohmann::json at = {{"id", a.id}, {"run", a.run_id}, {"step", a.step_id}, {"attempt", a.number},
                           {"state", engine::Name(a.state)}};
      if (a.item >= 0) at["item"] = a.item;
      auto identity = nlohmann::json::parse(a.identity, nullptr, false);
      if (!identity.is_discarded()) at["identity"] = identity;
      j["attempts"].push_back(at);
    }
    for (const auto& e : g->edges)
      j["edges"].push_back({{"attempt", e.attempt_id}, {"artifact", e.hash}, {"role", e.role}, {"name", e.name}});
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  if (format == "dot") {
    std::cout << "digraph lineage {\n  rankdir=LR;\n";
    for (const auto& a : g->artifacts)
      std::cout << "  \"" << a.hash << "\" [shape=ellipse, label=\"" << a.kind << "\\n" << a.hash.substr(0, 12) << "\"];\n";
    for (const auto& a : g->attempts)
      std::cout << "  \"a" << a.id << "\" [shape=box, label=\"" << label(a) << "\\n" << engine::Name(a.state) << "\"];\n";
    for (const auto& e : g->edges) {
      if (e.role == "consumed") std::cout << "  \"" << e.hash << "\" -> \"a" << e.attempt_id << "\"";
      else std::cout << "  \"a" << e.attempt_id << "\" -> \"" << e.hash << "\"";
      std::cout << " [label=\"" << e.name << (e.role == "reused" ? " (cached)" : "") << "\"];\n";
    }
    std::cout << "}\n";
    return kExitOk;
  }
  std::printf("%s lineage: %s, %s (%lld us)\n", downstream ? "downstream" : "upstream",
              Plural(static_cast<int64_t>(g->artifacts.size()), "artifact").c_str(),
              Plural(static_cast<int64_t>(g->attempts.size()), "attempt").c_str(), static_cast<long long>(took.count()));
  for (const auto& a : g->artifacts) {
    std::printf("\nartifact %s  %s  %s\n  %s\n", a.hash.substr(0, 16).c_str(), a.kind.c_str(), Size(a.size).c_str(),
                a.uri.c_str());
    for (const auto& e : g->edges) {
      if (e.hash != a.hash || !by_id.count(e.attempt_id)) continue;
      const AttemptRecord& at = *by_id[e.attempt_id];
      std::printf("  %s by %s (%s, as %s)\n", e.role.c_str(), label(at).c_str(), engine::Name(at.state), e.name.c_str());
    }
  }
  return kExitOk;
}

}  // namespace sluice::cli

namespace sluice::cli {

int Models(const std::string& name, bool all, const std::string& format) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto models = store->registry().ListModels(name);
  if (!models.ok()) {
    std::cerr << "sluice: " << models.status().message() << "\n";
    return kExitFailed;
  }
  // Archived versions only with --all.
  size_t archived = static_cast<size_t>(
      std::count_if(models->begin(), models->end(), [](const store::ModelVersion& m) { return m.archived_ms != 0; }));
  if (!all) std::erase_if(*models, [](const store::ModelVersion& m) { return m.archived_ms != 0; });
  // What the registering attempt measured, latest value per name (a model
  // registered by hand has none).
  auto metrics_of = [&](const store::ModelVersion& m) {
    std::map<std::string, double> last;
    if (!m.attempt_id) return last;
    auto rows = store->runs().ListAttemptMetrics(m.attempt_id);
    if (rows.ok())
      for (const auto& row : *rows) last[row.name] = row.value;
    return last;
  };
  if (format == "json") {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& m : *models)
      j.push_back({{"name", m.name}, {"version", m.version}, {"aliases", m.aliases}, {"artifact", m.artifact},
                   {"uri", m.uri}, {"run", m.run_id}, {"step", m.step_id}, {"created_ms", m.created_ms},
                   {"archived", m.archived_ms != 0}, {"metrics", metrics_of(m)}});
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  std::string hidden =
      !all && archived ? Plural(static_cast<int64_t>(archived), "archived version") + " not shown: sluice models --all" : "";
  if (models->empty()) {
    std::printf("no registered models%s%s\n", name.empty() ? "" : (" named " + Quote(name)).c_str(),
                hidden.empty() ? "" : (" in use (" + hidden + ")").c_str());
    return kExitOk;
  }
  std::printf("%-20s %-8s %-20s %-8s %-14s %-20s %s\n", "MODEL", "VERSION", "ALIASES", "RUN", "STEP", "CREATED", "METRICS");
  for (const auto& m : *models) {
    std::string metrics;
    int shown = 0;
    for (const auto& [k, v] : metrics_of(m)) {
      if (k.find('/') != std::string::npos || shown++ == 3) continue;  // per-class figures stay in `sluice show`
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s=%.4g", metrics.empty() ? "" : " ", k.c_str(), v);
      metrics += buf;
    }
    // An archived version has no aliases: the column says it is archived.
    std::string aliases = m.archived_ms ? "(archived)" : m.aliases.empty() ? "-" : Join(m.aliases, ",");
    std::printf("%-20s %-8d %-20s %-8s %-14s %-20s %s\n", m.name.c_str(), m.version, aliases.c_str(),
                m.run_id ? std::to_string(m.run_id).c_str() : "-", m.step_id.empty() ? "-" : m.step_id.c_str(),
                LocalTime(m.created_ms).c_str(), metrics.c_str());
  }
  if (!hidden.empty()) std::printf("(%s)\n", hidden.c_str());
  return kExitOk;
}

int PromoteModel(const std::string& name, int version, const std::string& alias, bool remove) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  if (remove) {
    auto was = store->registry().RemoveAlias(name, alias, version);
    if (!was.ok()) {
      std::cerr << "sluice: " << was.status().message() << "\n";
      return kExitFailed;
    }
    std::printf("%s@%s removed (it pointed at version %d)\n", name.c_str(), alias.c_str(), *was);
    return kExitOk;
  }
  if (version <= 0) {
    std::cerr << "sluice: models promote needs the VERSION the alias is to point at (or --remove)\n";
    return kExitUsage;
  }
  if (!IsPipelineName(alias)) {
    std::cerr << "sluice: alias " << Quote(alias) << " must match [a-z0-9][a-z0-9-]*\n";
    return kExitUsage;
  }
  Status st = store->registry().SetAlias(name, version, alias, NowMs());
  if (!st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitFailed;
  }
  std::printf("%s@%s is now version %d\n", name.c_str(), alias.c_str(), version);
  return kExitOk;
}

namespace {

// NAME@VERSION with a number, for the commands that change one version;
// prints the error (naming `verb`) and returns false for anything else.
bool ParseVersionRef(const std::string& ref, const std::string& verb, std::string* name, int* version) {
  size_t at = ref.find('@');
  std::string which = at == std::string::npos ? "" : ref.substr(at + 1);
  if (at == std::string::npos || at == 0 || which.empty()) {
    std::cerr << "sluice: " << Quote(ref) << " is not NAME@VERSION (e.g. fashion@3)\n";
    return false;
  }
  *name = ref.substr(0, at);
  if (which.size() > 9 || which.find_first_not_of("0123456789") != std::string::npos || std::atoi(which.c_str()) <= 0) {
    std::cerr << "sluice: " << verb << " takes NAME@VERSION with a version number, not " << Quote(which) << "\n";
    return false;
  }
  *version = std::atoi(which.c_str());
  return true;
}

}  // namespace

int ArchiveModel(const std::string& ref, bool archived) {
  std::string name;
  int version = 0;
  if (!ParseVersionRef(ref, archived ? "archive" : "unarchive", &name, &version)) return kExitUsage;
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->registry().ArchiveModel(name, version, archived, NowMs());
  if (!st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitFailed;
  }
  std::string v = name + "@" + std::to_string(version);
  if (archived)
    std::printf("%s archived: left out of sluice models and of %s@latest; %s still resolves\n", v.c_str(), name.c_str(),
                v.c_str());
  else
    std::printf("%s is in use again\n", v.c_str());
  return kExitOk;
}

int DeleteModel(const std::string& ref) {
  std::string name;
  int version = 0;
  if (!ParseVersionRef(ref, "delete", &name, &version)) return kExitUsage;
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->registry().DeleteModel(name, version, NowMs());
  if (!st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitFailed;
  }
  std::printf("%s@%d deleted; sluice gc removes its file once nothing else needs it\n", name.c_str(), version);
  return kExitOk;
}

int RegisterModel(const std::string& artifact, const std::string& name) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  if (!IsPipelineName(name)) {
    std::cerr << "sluice: model name " << Quote(name) << " must match [a-z0-9][a-z0-9-]*\n";
    return kExitUsage;
  }
  std::string hash = std::filesystem::path(artifact).filename().string();
  auto known = store->lineage().HasArtifact(hash);
  if (!known.ok() || !*known) {
    std::cerr << "sluice: no artifact " << Quote(hash) << " in the store (give a hash or a path under .sluice/artifacts)\n";
    return kExitFailed;
  }
  // Only what a step declared as a model is registered; the error names the
  // step that made the artifact.
  auto g = store->lineage().Lineage(hash, 0, /*upstream=*/true);
  if (!g.ok()) {
    std::cerr << "sluice: " << g.status().message() << "\n";
    return kExitFailed;
  }
  // The kind its first producer declared; content some step registered as
  // a model is one whatever that producer said.
  std::string kind;
  for (const auto& a : g->artifacts)
    if (a.hash == hash) kind = a.kind;
  auto registered = store->registry().ListModels("");
  if (registered.ok() && std::any_of(registered->begin(), registered->end(),
                                     [&](const store::ModelVersion& m) { return m.artifact == hash; }))
    kind = "model";
  if (kind != "model") {
    std::string made_by;
    const store::LineageStore::Graph::Edge* first = nullptr;
    for (const auto& e : g->edges)
      if (e.hash == hash && e.role == "produced" && (!first || e.attempt_id < first->attempt_id)) first = &e;
    if (first)
      for (const auto& at : g->attempts)
        if (at.id == first->attempt_id)
          made_by = " (output '" + first->name + "' of run " + std::to_string(at.run_id) + " step " +
                    StepLabel(at.step_id, at.item) + ")";
    std::cerr << "sluice: artifact " << hash.substr(0, 12) << " has kind " << kind << made_by
              << ", not model; only outputs of kind model are registered\n";
    return kExitFailed;
  }
  auto version = store->registry().RegisterModel(name, hash, 0, "", 0, NowMs());
  Status st = version.ok() ? store->db().Flush() : version.status();
  if (!st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitFailed;
  }
  std::printf("%s@%d\n", name.c_str(), *version);
  return kExitOk;
}

int ModelPath(const std::string& ref) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto m = store->registry().ResolveModel(ref);
  if (!m.ok()) {
    std::cerr << "sluice: " << m.status().message() << "\n";
    return m.status().code() == Code::kInvalidSpec ? kExitUsage : kExitFailed;
  }
  std::printf("%s\n", m->uri.c_str());
  return kExitOk;
}

}  // namespace sluice::cli

namespace sluice::cli {

int Gc(const std::string& older_than, bool dry_run) {
  auto age = ParseDuration(older_than);
  if (!age) {
    std::cerr << "sluice: bad duration " << Quote(older_than) << " for --older-than (e.g. 12h, 30d)\n";
    return kExitUsage;
  }
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto doomed = store->lineage().CollectableArtifacts(NowMs() - age->count());
  if (!doomed.ok()) {
    std::cerr << "sluice: " << doomed.status().message() << "\n";
    return kExitFailed;
  }
  namespace fs = std::filesystem;
  std::string root = fs::absolute(HomeDir()).lexically_normal().string() + "/artifacts/";
  int64_t bytes = 0;
  int removed = 0;
  for (const auto& [hash, size] : *doomed) {
    fs::path p = root + hash;
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;  // removed before
    if (dry_run) {
      std::printf("would remove %s (%s)\n", p.c_str(), Size(size).c_str());
    } else {
      // Published artifacts are read-only; their folders must be writable to empty them.
      if (fs::is_directory(p, ec))
        for (const auto& e : fs::recursive_directory_iterator(p, ec))
          if (e.is_directory()) fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
      fs::permissions(p, fs::perms::owner_all, fs::perm_options::add, ec);
      fs::remove_all(p, ec);
      if (ec) {
        std::cerr << "sluice: remove " << p << ": " << ec.message() << "\n";
        return kExitFailed;
      }
    }
    bytes += size;
    ++removed;
  }
  std::printf("%s %s, %s; their lineage stays on record\n", dry_run ? "would remove" : "removed",
              Plural(removed, "artifact").c_str(), Size(bytes).c_str());
  return kExitOk;
}

}  // namespace sluice::cli

namespace sluice::cli {

int CreateToken(const std::string& name, const std::string& scope_text) {
  auto scope = store::ParseTokenScope(scope_text);
  if (!scope) {
    std::cerr << "sluice: --scope must be read, run or admin, not " << Quote(scope_text) << "\n";
    return kExitUsage;
  }
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto token = store->access().CreateToken(name, *scope, NowMs());
  if (!token.ok()) {
    std::cerr << "sluice: " << token.status().message() << "\n";
    return kExitFailed;
  }
  std::printf("%s\n", token->c_str());
  std::cerr << "token '" << name << "' (scope " << scope_text
            << ") created; only its hash is stored, so keep it now: it cannot be shown again\n";
  return kExitOk;
}

int ListTokens(const std::string& format) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto tokens = store->access().ListTokens();
  if (!tokens.ok()) {
    std::cerr << "sluice: " << tokens.status().message() << "\n";
    return kExitFailed;
  }
  if (format == "json") {
    nlohmann::json j = nlohmann::json::array();
    for (const store::Token& t : *tokens)
      j.push_back({{"id", t.id},
                   {"name", t.name},
                   {"scope", store::TokenScopeName(t.scope)},
                   {"created", IsoTime(t.created_ms)},
                   {"revoked", t.revoked_ms ? nlohmann::json(IsoTime(t.revoked_ms)) : nlohmann::json()}});
    std::printf("%s\n", JsonText(j, 2).c_str());
    return kExitOk;
  }
  std::printf("%-4s %-20s %-6s %-20s %s\n", "ID", "NAME", "SCOPE", "CREATED", "STATE");
  for (const store::Token& t : *tokens)
    std::printf("%-4lld %-20s %-6s %-20s %s\n", static_cast<long long>(t.id), t.name.c_str(),
                store::TokenScopeName(t.scope), LocalTime(t.created_ms).c_str(),
                t.revoked_ms ? ("revoked " + LocalTime(t.revoked_ms)).c_str() : "valid");
  return kExitOk;
}

int RevokeToken(int64_t id) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->access().RevokeToken(id, NowMs());
  if (!st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitFailed;
  }
  std::printf("token %lld revoked\n", static_cast<long long>(id));
  return kExitOk;
}

}  // namespace sluice::cli
