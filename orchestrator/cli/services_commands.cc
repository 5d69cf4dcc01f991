// services apply, list, show, history, delete: services' desired state in
// the store (specs/services-design.md; the JSON of `--json` is in its "as
// built" notes). These read and write the store only: the gateway
// (serving/gateway.h; apply starts one in the background if none runs)
// makes the desired state so.
//
// The actor recorded for a change is `user:` + the login name: the
// password entry of the real user id (getpwuid), else $LOGNAME, else
// `uid-N`.
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "serving/service_spec.h"
#include "serving/service_state.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

namespace {

using nlohmann::json;

std::string Actor() {
  const passwd* pw = ::getpwuid(::getuid());
  if (pw && pw->pw_name && *pw->pw_name) return "user:" + std::string(pw->pw_name);
  if (const char* login = std::getenv("LOGNAME"); login && *login) return "user:" + std::string(login);
  return "user:uid-" + std::to_string(::getuid());
}

// Prints that there is no service `name`, naming those there are.
int NoSuchService(store::ServicesStore& services, const std::string& name) {
  std::vector<std::string> names;
  if (auto all = services.List(); all.ok())
    for (const store::ServiceState& s : *all) names.push_back(s.name);
  std::string known = names.empty() ? "there are none; sluice services apply FILE makes one"
                                    : "services: " + Join(names, ", ");
  return Fail("sluice: no service named " + Quote(name) + " (" + known + ")" + DidYouMean(name, names), kExitFailed);
}

// What a version runs, in a few words: fashion@2, the model file, or the command.
std::string WhatRuns(const store::ServiceVersionState& v) {
  if (v.kind == "command") {
    json argv = json::parse(v.command, nullptr, false);
    std::vector<std::string> words;
    if (argv.is_array())
      for (const json& w : argv) words.push_back(w.is_string() ? w.get<std::string>() : w.dump());
    return "command: " + Join(words, " ");
  }
  if (!v.model_name.empty()) return v.model_name + "@" + std::to_string(v.model_version);
  return v.uri;
}

json ParsedOr(const std::string& text, json fallback) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

json ServiceJson(const store::ServiceState& s, bool with_spec) {
  json versions = json::array();
  for (const store::ServiceVersionState& v : s.versions) {
    json j = {{"name", v.name},          {"kind", v.kind},        {"revision", v.revision},
              {"weight", serving::FormatPercent(v.weight_bp)},    {"weight_bp", v.weight_bp},
              {"replicas", v.replicas},  {"state", v.state},      {"options", ParsedOr(v.options, json::object())}};
    if (v.kind == "command") {
      j["command"] = ParsedOr(v.command, json::array());
      j["env"] = ParsedOr(v.env, json::object());
      j["workdir"] = v.workdir;
      j["port_env"] = v.port_env;
    } else {
      j["model"] = {{"ref", v.model_ref}, {"uri", v.uri}};
      if (!v.model_name.empty()) {
        j["model"]["name"] = v.model_name;
        j["model"]["version"] = v.model_version;
        j["model"]["artifact"] = v.artifact;
      }
    }
    versions.push_back(std::move(j));
  }
  json sticky = nullptr;
  if (!s.sticky_header.empty()) sticky = {{"header", s.sticky_header}, {"salt", s.sticky_salt}};
  else if (!s.sticky_field.empty()) sticky = {{"field", s.sticky_field}, {"salt", s.sticky_salt}};
  json mirror = nullptr;
  if (!s.mirror_version.empty())
    mirror = {{"version", s.mirror_version}, {"percent", serving::FormatPercent(s.mirror_bp)}};
  json j = {{"name", s.name},
            {"generation", s.generation},
            {"created_ms", s.created_ms},
            {"updated_ms", s.updated_ms},
            {"traffic_owner", s.traffic_owner.empty() ? json(nullptr) : json(s.traffic_owner)},
            {"sticky", sticky},
            {"mirror", mirror},
            {"versions", versions}};
  if (with_spec) {
    j["spec"] = ParsedOr(s.spec, json(s.spec));
    j["spec_hash"] = s.spec_hash;
  }
  return j;
}

// A service for people: a heading with its settings, then a row per version.
void PrintService(const store::ServiceState& s) {
  std::string heading = s.name + ": generation " + std::to_string(s.generation);
  if (!s.sticky_header.empty()) heading += ", sticky by header " + s.sticky_header;
  if (!s.sticky_field.empty()) heading += ", sticky by field " + s.sticky_field;
  if (!s.mirror_version.empty())
    heading += ", mirror " + serving::FormatPercent(s.mirror_bp) + "% of requests to " + s.mirror_version;
  if (!s.traffic_owner.empty()) heading += ", weights driven by " + s.traffic_owner;
  std::printf("%s\n", heading.c_str());
  std::printf("  %-16s %-32s %-8s %-7s %-8s %s\n", "VERSION", "MODEL", "REVISION", "WEIGHT", "REPLICAS", "STATE");
  for (const store::ServiceVersionState& v : s.versions)
    std::printf("  %-16s %-32s %-8d %-7s %-8d %s\n", v.name.c_str(), WhatRuns(v).c_str(), v.revision,
                (serving::FormatPercent(v.weight_bp) + "%").c_str(), v.replicas, v.state.c_str());
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
  auto services = store->services().List();
  if (!services.ok()) return Fail("sluice: " + services.status().message(), kExitFailed);
  if (as_json) {
    json j = json::array();
    for (const store::ServiceState& s : *services) j.push_back(ServiceJson(s, false));
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
  auto s = store->services().Get(name);
  if (!s.ok() && s.status().code() == Code::kNotFound) return NoSuchService(store->services(), name);
  if (!s.ok()) return Fail("sluice: " + s.status().message(), kExitFailed);
  if (as_json) {
    std::cout << JsonText(ServiceJson(*s, true), 2) << "\n";
    return kExitOk;
  }
  PrintService(*s);
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

int DeleteService(const std::string& name, const std::string& reason) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->services().Delete(name, Actor(), reason.empty() ? "delete " + name : reason, WallClockMs());
  if (st.code() == Code::kNotFound) return NoSuchService(store->services(), name);
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  std::printf("service %s: deleted (its history stays: sluice services history %s)\n", name.c_str(), name.c_str());
  return kExitOk;
}

}  // namespace sluice::cli
