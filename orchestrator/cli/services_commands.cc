// services apply, list, show, history, delete, promote, abort: services' desired state in
// the store, shown as serving/service_view.h shapes it (the admin API's
// GET /api/services says the same) (specs/services-design.md; the JSON of `--json` is in its "as
// built" notes). These read and write the store only: the gateway
// (serving/gateway.h; apply starts one in the background if none runs)
// makes the desired state so. promote and abort ask the service's active
// rollout (store/rollouts.h), which its deploy step takes on its next look;
// show prints the active (or last) rollout with its last events.
//
// The actor recorded for a change is `user:` + the login name: the
// password entry of the real user id (getpwuid), else $LOGNAME, else
// `uid-N`.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "serving/rollout_view.h"
#include "serving/service_spec.h"
#include "serving/service_state.h"
#include "serving/service_view.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

namespace {

using nlohmann::json;

// Prints that there is no service `name`, naming those there are.
int NoSuchService(store::ServicesStore& services, const std::string& name) {
  std::vector<std::string> names;
  if (auto all = services.List(); all.ok())
    for (const store::ServiceState& s : *all) names.push_back(s.name);
  std::string known = names.empty() ? "there are none; sluice services apply FILE makes one"
                                    : "services: " + Join(names, ", ");
  return Fail("sluice: no service named " + Quote(name) + " (" + known + ")" + DidYouMean(name, names), kExitFailed);
}

json ParsedOr(const std::string& text, json fallback) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

// A service for people: a heading with its settings, then a row per version
// (with its last minute) and a line per replica row the gateway keeps.
void PrintService(const serving::ServiceView& view) {
  const store::ServiceState& s = view.state;
  std::string heading = s.name + ": generation " + std::to_string(s.generation);
  if (!s.sticky_header.empty()) heading += ", sticky by header " + s.sticky_header;
  if (!s.sticky_field.empty()) heading += ", sticky by field " + s.sticky_field;
  if (!s.mirror_version.empty())
    heading += ", mirror " + serving::FormatPercent(s.mirror_bp) + "% of requests to " + s.mirror_version;
  if (!s.traffic_owner.empty()) heading += ", weights driven by " + s.traffic_owner;
  std::printf("%s\n", heading.c_str());
  std::printf("  %-16s %-32s %-8s %-7s %-8s %-8s %-6s %-6s %-8s %s\n", "VERSION", "MODEL", "REVISION", "WEIGHT",
              "REPLICAS", "STATE", "REQ/S", "ERRORS", "P50", "P99");
  for (const store::ServiceVersionState& v : s.versions) {
    serving::VersionFigures f;
    if (auto it = view.last_minute.find(v.name); it != view.last_minute.end()) f = it->second;
    std::printf("  %-16s %-32s %-8d %-7s %-8d %-8s %-6s %-6s %-8s %s\n", v.name.c_str(), serving::WhatRuns(v).c_str(),
                v.revision, (serving::FormatPercent(v.weight_bp) + "%").c_str(), v.replicas, v.state.c_str(),
                serving::FormatRate(f.requests_per_s).c_str(), serving::FormatErrorRate(f.error_rate).c_str(),
                serving::FormatMs(f.p50_ms).c_str(), serving::FormatMs(f.p99_ms).c_str());
    for (const store::ReplicaRow& r : view.replicas) {
      if (r.version != v.name) continue;
      std::string line = "    replica " + std::to_string(r.slot) + ": " + r.state;
      if (r.pid) line += ", pid " + std::to_string(r.pid);
      if (r.port) line += ", port " + std::to_string(r.port);
      line += ", revision " + std::to_string(r.revision);
      line += ", " + std::to_string(r.restarts) + (r.restarts == 1 ? " restart" : " restarts");
      if (!r.last_exit.empty()) line += ", last " + r.last_exit;
      std::printf("%s\n", line.c_str());
    }
  }
}

constexpr size_t kShownEvents = 10;

// The rollout `show` prints: the active one, else the last; nullopt for
// none.
Result<std::optional<store::RolloutRecord>> ShownRollout(store::RolloutsStore& rollouts, const std::string& service) {
  auto active = rollouts.ActiveOfService(service);
  if (!active.ok() || *active) return active;
  auto last = rollouts.OfService(service, 1);
  if (!last.ok()) return last.status();
  if (last->empty()) return std::optional<store::RolloutRecord>();
  return std::optional<store::RolloutRecord>(last->front());
}

// The last kShownEvents events of a rollout, oldest first, and how many it has.
Result<std::vector<store::RolloutEvent>> LastEvents(store::RolloutsStore& rollouts, int64_t id, size_t* total) {
  auto events = rollouts.Events(id, 0);
  if (!events.ok()) return events.status();
  *total = events->size();
  if (events->size() > kShownEvents) events->erase(events->begin(), events->end() - kShownEvents);
  return events;
}

// A rollout for people: what it is, where it is, why, what was asked of it,
// then its last events with their figures.
void PrintRollout(const store::RolloutRecord& r, const std::vector<store::RolloutEvent>& events, size_t total) {
  std::printf("\nrollout %lld: %s of %s", static_cast<long long>(r.id), r.strategy.c_str(),
              r.candidate_version.c_str());
  if (!r.stable_version.empty()) std::printf(" over %s", r.stable_version.c_str());
  std::printf(" (run %lld, step %s), %s\n", static_cast<long long>(r.run_id), r.step_id.c_str(),
              store::RolloutStateName(r.state));
  std::printf("  step %d, candidate weight %s%%, started %s", r.step_index + 1,
              serving::FormatPercent(r.candidate_bp).c_str(), IsoTime(r.started_ms).c_str());
  if (r.ended_ms) std::printf(", ended %s", IsoTime(r.ended_ms).c_str());
  std::printf("\n");
  if (!r.reason.empty()) std::printf("  reason: %s\n", r.reason.c_str());
  if (!r.request.empty()) std::printf("  requested: %s by %s (pending)\n", r.request.c_str(), r.request_actor.c_str());
  if (total > events.size())
    std::printf("  events (last %zu of %zu):\n", events.size(), total);
  else
    std::printf("  events:\n");
  for (const store::RolloutEvent& e : events) {
    std::string line = "    " + IsoTime(e.at_ms) + "  " + e.kind;
    line.resize(std::max(line.size(), size_t{44}), ' ');
    line += " " + e.message;
    if (!e.data.empty()) line += "  " + e.data;
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

int ServicesApply(const std::string& file, const std::string& reason, int port, bool no_gateway,
                  const std::string& wait_timeout) {
  std::optional<std::chrono::milliseconds> wait;
  if (!wait_timeout.empty()) {
    wait = ParseDuration(wait_timeout);
    if (!wait || wait->count() <= 0)
      return Fail("sluice: bad duration " + Quote(wait_timeout) + " for --wait-timeout (use 30s, 2m)", kExitUsage);
  }
  auto spec = serving::LoadServiceSpec(file);
  if (!spec.ok())
    return Fail((spec.status().code() == Code::kInvalidSpec ? "" : "sluice: ") + spec.status().message(), kExitUsage);
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto live = store->services().Get(spec->name);
  if (!live.ok() && live.status().code() != Code::kNotFound)
    return Fail("sluice: " + live.status().message(), kExitFailed);
  auto desired = serving::ResolveService(*spec, store->registry(), live.ok() ? &*live : nullptr);
  if (!desired.ok()) {
    bool spec_error = desired.status().code() == Code::kInvalidSpec;
    return Fail((spec_error ? "" : "sluice: ") + desired.status().message(), spec_error ? kExitUsage : kExitFailed);
  }
  auto outcome = store->services().Apply(*desired, Actor(), reason.empty() ? "apply " + file : reason, WallClockMs());
  if (!outcome.ok()) return Fail("sluice: " + outcome.status().message(), kExitFailed);
  if (outcome->changed)
    std::printf("service %s: applied (change %lld, generation %lld)\n", spec->name.c_str(),
                static_cast<long long>(outcome->change_id), static_cast<long long>(outcome->generation));
  else
    std::printf("service %s: unchanged\n", spec->name.c_str());
  std::fflush(stdout);
  if (no_gateway) return kExitOk;
  int started = EnsureGateway(port);
  if (started != kExitOk || !wait) return started;
  return WaitForReplicas(spec->name, *wait);
}

int Services(bool as_json) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto services = serving::ReadServiceViews(store->services(), store->gateway(), WallClockMs());
  if (!services.ok()) return Fail("sluice: " + services.status().message(), kExitFailed);
  if (as_json) {
    json j = json::array();
    for (const serving::ServiceView& s : *services) j.push_back(serving::ServiceViewJson(s, false));
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  if (services->empty()) {
    std::printf("no services in %s (make one: sluice services apply service.yaml)\n", HomeDir().c_str());
    return kExitOk;
  }
  for (size_t i = 0; i < services->size(); ++i) {
    if (i) std::printf("\n");
    PrintService((*services)[i]);
  }
  return kExitOk;
}

int ShowService(const std::string& name, bool as_json) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto view = serving::ReadServiceView(store->services(), store->gateway(), name, WallClockMs());
  if (!view.ok() && view.status().code() == Code::kNotFound) return NoSuchService(store->services(), name);
  if (!view.ok()) return Fail("sluice: " + view.status().message(), kExitFailed);
  auto rollout = ShownRollout(store->rollouts(), name);
  if (!rollout.ok()) return Fail("sluice: " + rollout.status().message(), kExitFailed);
  std::vector<store::RolloutEvent> events;
  size_t total = 0;
  if (*rollout) {
    auto last = LastEvents(store->rollouts(), (*rollout)->id, &total);
    if (!last.ok()) return Fail("sluice: " + last.status().message(), kExitFailed);
    events = std::move(*last);
  }
  if (as_json) {
    json j = serving::ServiceViewJson(*view, true);
    j["rollout"] = nullptr;
    if (*rollout) {
      j["rollout"] = serving::RolloutJson(**rollout);
      j["rollout"]["events"] = json::array();
      for (const store::RolloutEvent& e : events) j["rollout"]["events"].push_back(serving::RolloutEventJson(e));
    }
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  PrintService(*view);
  if (*rollout) PrintRollout(**rollout, events, total);
  const store::ServiceState* s = &view->state;
  std::printf("\napplied %s, created %s; spec (sha256 %s):\n%s\n", IsoTime(s->updated_ms).c_str(),
              IsoTime(s->created_ms).c_str(), s->spec_hash.substr(0, 12).c_str(),
              JsonText(ParsedOr(s->spec, json(s->spec)), 2).c_str());
  return kExitOk;
}

int ServiceHistory(const std::string& name, int limit) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto rows = store->services().History(name, 0, limit);
  if (!rows.ok()) return Fail("sluice: " + rows.status().message(), kExitFailed);
  if (rows->empty()) return NoSuchService(store->services(), name);  // a deleted service keeps its rows
  std::printf("%-8s %-24s %-8s %-24s %s\n", "CHANGE", "TIME", "KIND", "ACTOR", "REASON");
  for (const store::ServiceChange& c : *rows)
    std::printf("%-8lld %-24s %-8s %-24s %s\n", static_cast<long long>(c.id), IsoTime(c.at_ms).c_str(), c.kind.c_str(),
                c.actor.c_str(), c.reason.c_str());
  return kExitOk;
}

int AskRollout(const std::string& name, const std::string& what) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto id = store->rollouts().Request(name, what, Actor(), WallClockMs());
  if (!id.ok() && id.status().code() == Code::kNotFound) {
    if (auto s = store->services().Get(name); !s.ok() && s.status().code() == Code::kNotFound)
      return NoSuchService(store->services(), name);
    return Fail("sluice: " + id.status().message() + " (sluice services show " + name + " shows its last)", kExitFailed);
  }
  if (!id.ok()) return Fail("sluice: " + id.status().message(), kExitFailed);
  std::printf("service %s: %s requested of rollout %lld (its deploy step takes it on its next look)\n", name.c_str(),
              what.c_str(), static_cast<long long>(*id));
  return kExitOk;
}

int DeleteService(const std::string& name, const std::string& reason) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->services().Delete(name, Actor(), reason.empty() ? "delete " + name : reason, WallClockMs());
  if (st.code() == Code::kNotFound) return NoSuchService(store->services(), name);
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  std::printf("service %s: deleted (its history stays: sluice services history %s)\n", name.c_str(), name.c_str());
  return kExitOk;
}

std::string Actor() {
  const passwd* pw = ::getpwuid(::getuid());
  if (pw && pw->pw_name && *pw->pw_name) return "user:" + std::string(pw->pw_name);
  if (const char* login = std::getenv("LOGNAME"); login && *login) return "user:" + std::string(login);
  return "user:uid-" + std::to_string(::getuid());
}

}  // namespace sluice::cli
