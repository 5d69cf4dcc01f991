#include "serving/service_view.h"

#include <cstdio>

#include "serving/service_spec.h"
#include "util/strings.h"

namespace sluice::serving {

namespace {

using nlohmann::json;

json ParsedOr(const std::string& text, json fallback) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

json Nullable(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json ReplicaJson(const store::ReplicaRow& r) {
  return {{"slot", r.slot},
          {"revision", r.revision},
          {"pid", r.pid == 0 ? json(nullptr) : json(r.pid)},
          {"port", r.port == 0 ? json(nullptr) : json(r.port)},
          {"state", r.state},
          {"restarts", r.restarts},
          {"last_exit", r.last_exit.empty() ? json(nullptr) : json(r.last_exit)},
          {"log", r.log_path},
          {"started_ms", r.started_ms == 0 ? json(nullptr) : json(r.started_ms)},
          {"ready_ms", r.ready_ms == 0 ? json(nullptr) : json(r.ready_ms)},
          {"updated_ms", r.updated_ms}};
}

// Fills the replica rows and last minute of `view.state`.
Status Complete(ServiceView& view, store::ServicesStore& services, store::GatewayStore& gateway, int64_t now_ms) {
  auto replicas = services.Replicas(view.state.name);
  if (!replicas.ok()) return replicas.status();
  view.replicas = std::move(*replicas);
  LastMinuteSpan(now_ms, &view.from_ms, &view.to_ms);
  auto rows = gateway.Windows(view.state.name, "", "live", view.from_ms, view.to_ms);
  if (!rows.ok()) return rows.status();
  std::map<std::string, std::vector<Window>> by_version;
  for (const store::WindowRow& row : *rows) by_version[row.version].push_back(WindowFromRow(row));
  for (const store::ServiceVersionState& v : view.state.versions) {
    Window sum = SumWindows(by_version[v.name], Role::kLive, view.from_ms, view.to_ms);
    VersionFigures f;
    f.requests = sum.requests;
    f.errors = sum.errors;
    f.requests_per_s = static_cast<double>(sum.requests) * 1000.0 / static_cast<double>(kLastMinuteMs);
    if (sum.requests > 0) f.error_rate = static_cast<double>(sum.errors) / static_cast<double>(sum.requests);
    f.p50_ms = LatencyQuantileMs(sum, 0.5);
    f.p99_ms = LatencyQuantileMs(sum, 0.99);
    view.last_minute[v.name] = f;
  }
  return Status::Ok();
}

}  // namespace

Window WindowFromRow(const store::WindowRow& row) {
  Window w;
  w.role = row.role == "mirror" ? Role::kMirror : row.role == "pinned" ? Role::kPinned : Role::kLive;
  w.start_ms = row.start_ms;
  w.end_ms = row.start_ms + kWindowMs;
  w.requests = row.requests;
  w.errors = row.errors;
  json codes = json::parse(row.codes, nullptr, false);
  if (codes.is_object())
    for (const auto& [code, n] : codes.items()) {
      if (!n.is_number_integer()) continue;
      int slot = kStatusSlotCount - 1;  // other
      for (int i = 0; i < static_cast<int>(kStatusSlots.size()); ++i)
        if (code == std::to_string(kStatusSlots[i])) slot = i;
      w.status[slot] += n.get<int64_t>();
    }
  if (row.latency_bounds == "v1") {
    json latency = json::parse(row.latency, nullptr, false);
    if (latency.is_array())
      for (int i = 0; i < kLatencyBuckets && i < static_cast<int>(latency.size()); ++i)
        if (latency[i].is_number_integer()) w.latency[i] = latency[i].get<int64_t>();
    w.latency_sum_us = row.latency_sum_us;
    w.latency_max_us = row.latency_max_us;
  }
  return w;
}

void LastMinuteSpan(int64_t now_ms, int64_t* from_ms, int64_t* to_ms) {
  int64_t flushed = now_ms - kFlushLagMs;
  *to_ms = flushed >= 0 ? flushed / kWindowMs * kWindowMs : 0;
  *from_ms = *to_ms - kLastMinuteMs;
}

Result<ServiceView> ReadServiceView(store::ServicesStore& services, store::GatewayStore& gateway,
                                    const std::string& name, int64_t now_ms) {
  auto state = services.Get(name);
  if (!state.ok()) return state.status();
  ServiceView view;
  view.state = std::move(*state);
  if (Status st = Complete(view, services, gateway, now_ms); !st.ok()) return st;
  return view;
}

Result<std::vector<ServiceView>> ReadServiceViews(store::ServicesStore& services, store::GatewayStore& gateway,
                                                  int64_t now_ms) {
  auto all = services.List();
  if (!all.ok()) return all.status();
  std::vector<ServiceView> out;
  for (store::ServiceState& s : *all) {
    ServiceView view;
    view.state = std::move(s);
    if (Status st = Complete(view, services, gateway, now_ms); !st.ok()) return st;
    out.push_back(std::move(view));
  }
  return out;
}

json ServiceViewJson(const ServiceView& view, bool with_spec) {
  const store::ServiceState& s = view.state;
  json versions = json::array();
  for (const store::ServiceVersionState& v : s.versions) {
    json j = {{"name", v.name},          {"kind", v.kind},        {"revision", v.revision},
              {"weight", FormatPercent(v.weight_bp)},             {"weight_bp", v.weight_bp},
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
    json rows = json::array();
    for (const store::ReplicaRow& r : view.replicas)
      if (r.version == v.name) rows.push_back(ReplicaJson(r));
    j["replica_rows"] = std::move(rows);
    VersionFigures f;
    if (auto it = view.last_minute.find(v.name); it != view.last_minute.end()) f = it->second;
    j["last_minute"] = {{"from_ms", view.from_ms},         {"to_ms", view.to_ms},
                        {"requests", f.requests},          {"errors", f.errors},
                        {"requests_per_s", f.requests_per_s}, {"error_rate", Nullable(f.error_rate)},
                        {"p50_ms", Nullable(f.p50_ms)},    {"p99_ms", Nullable(f.p99_ms)}};
    versions.push_back(std::move(j));
  }
  json sticky = nullptr;
  if (!s.sticky_header.empty()) sticky = {{"header", s.sticky_header}, {"salt", s.sticky_salt}};
  else if (!s.sticky_field.empty()) sticky = {{"field", s.sticky_field}, {"salt", s.sticky_salt}};
  json mirror = nullptr;
  if (!s.mirror_version.empty()) mirror = {{"version", s.mirror_version}, {"percent", FormatPercent(s.mirror_bp)}};
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

json GatewayJson(const std::optional<store::GatewayRecord>& g, int64_t now_ms) {
  if (!g) return nullptr;
  return {{"pid", g->pid},
          {"url", "http://" + g->listen + ":" + std::to_string(g->port)},
          {"mode", g->mode},
          {"started_ms", g->started_ms},
          {"heartbeat_ms", g->heartbeat_ms},
          {"heartbeat_age_ms", now_ms - g->heartbeat_ms},
          {"stop_requested", g->stop_requested}};
}

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

std::string FormatRate(double per_s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", per_s);
  return text;
}

std::string FormatErrorRate(const std::optional<double>& rate) {
  if (!rate) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", *rate * 100.0);
  return text;
}

std::string FormatMs(const std::optional<double>& ms) {
  if (!ms) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%g ms", *ms);
  return text;
}

}  // namespace sluice::serving
