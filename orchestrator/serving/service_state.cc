#include "serving/service_state.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "spec/source.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::serving {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Absolute(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  std::string out = (ec ? fs::path(path) : p).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();  // "dir/." normalizes to "dir/"
  return out;
}

// 9000 -> 90, 1250 -> 12.5: a weight or percent as the document writes it.
json Percent(int basis_points) {
  if (basis_points % 100 == 0) return basis_points / 100;
  return basis_points / 100.0;
}

// The options passed to the model server: those given, and the readiness
// deadline every version has.
json Options(const VersionSpec& v) {
  json o = json::object();
  if (v.threads > 0) o["threads"] = v.threads;
  if (v.max_batch > 0) o["max_batch"] = v.max_batch;
  if (v.max_wait_ms > 0) o["max_wait_ms"] = v.max_wait_ms;
  if (v.max_queue > 0) o["max_queue"] = v.max_queue;
  o["ready_timeout_ms"] = v.ready_timeout.count();
  return o;
}

json VersionJson(const VersionSpec& v) {
  json j = Options(v);
  j["replicas"] = v.replicas;
  if (v.kind == VersionSpec::Kind::kModel) {
    j["model"] = v.model;
  } else {
    j["command"] = v.command;
    j["env"] = v.env;
    j["workdir"] = Absolute(v.workdir);
    j["port_env"] = v.port_env;
  }
  return j;
}

std::string Names(const ServiceSpec& spec) {
  std::vector<std::string> names;
  for (const VersionSpec& v : spec.versions) names.push_back(v.name);
  return Join(names, ", ");
}

}  // namespace

std::string CanonicalSpecJson(const ServiceSpec& spec) {
  json doc = {{"service", spec.name}, {"timeout_ms", spec.timeout.count()}, {"max_inflight", spec.max_inflight}};
  json versions = json::object();
  for (const VersionSpec& v : spec.versions) versions[v.name] = VersionJson(v);
  doc["versions"] = versions;
  if (spec.traffic_given) {
    json traffic = json::object();
    for (const VersionSpec& v : spec.versions) traffic[v.name] = Percent(v.weight_bp);
    doc["traffic"] = traffic;
  }
  if (spec.sticky) {
    json sticky = {{"salt", spec.sticky->salt}};
    if (!spec.sticky->header.empty()) sticky["header"] = spec.sticky->header;
    else sticky["field"] = Join(spec.sticky->field, ".");
    doc["sticky"] = sticky;
  }
  if (spec.mirror) doc["mirror"] = {{"version", spec.mirror->version}, {"percent", Percent(spec.mirror->percent_bp)}};
  if (spec.auth) doc["auth"] = {{"token_env", spec.auth->token_env}};  // the name only, never the token
  if (spec.cache) doc["cache"] = {{"entries", spec.cache->entries}, {"ttl_ms", spec.cache->ttl.count()}};
  // Only when not the default, so that documents without `stats` keep their hash.
  if (spec.stats_sample != 1.0) doc["stats"] = {{"sample", spec.stats_sample}};
  return JsonText(doc);  // nlohmann's objects are sorted by key: canonical
}

RouteSettings RouteSettingsOfSpecJson(const std::string& spec_json) {
  RouteSettings out;
  json doc = json::parse(spec_json, nullptr, false);
  if (!doc.is_object()) return out;
  auto integer = [](const json& o, const char* key) -> std::optional<int64_t> {
    if (!o.contains(key) || !o[key].is_number_integer()) return std::nullopt;
    return o[key].get<int64_t>();
  };
  if (auto t = integer(doc, "timeout_ms")) out.timeout = std::clamp(Millis(*t), kMinTimeout, kMaxTimeout);
  if (auto m = integer(doc, "max_inflight")) out.max_inflight = static_cast<int>(std::clamp<int64_t>(*m, 1, kMaxInflight));
  if (doc.contains("stats") && doc["stats"].is_object() && doc["stats"].contains("sample") &&
      doc["stats"]["sample"].is_number())
    out.stats_sample = std::clamp(doc["stats"]["sample"].get<double>(), 0.0, 1.0);
  if (doc.contains("cache") && doc["cache"].is_object()) {
    const json& c = doc["cache"];
    auto entries = integer(c, "entries");
    auto ttl = integer(c, "ttl_ms");
    if (entries && ttl) {
      CacheSpec cache;
      cache.entries = static_cast<int>(std::clamp<int64_t>(*entries, 1, kMaxCacheEntries));
      cache.ttl = std::clamp(Millis(*ttl), kMinCacheTtl, kMaxCacheTtl);
      out.cache = cache;
    }
  }
  return out;
}

Result<store::ServiceState> ResolveService(const ServiceSpec& spec, store::RegistryStore& registry,
                                           const store::ServiceState* live) {
  std::vector<std::string> errors;
  auto error = [&](spec::SourcePos pos, const std::string& message) {
    errors.push_back(spec::At(spec.file, pos, message));
  };
  store::ServiceState out;
  out.name = spec.name;
  out.spec = CanonicalSpecJson(spec);
  if (spec.sticky) {
    out.sticky_header = spec.sticky->header;
    out.sticky_field = Join(spec.sticky->field, ".");
    out.sticky_salt = spec.sticky->salt;
  }
  if (spec.mirror) {
    out.mirror_version = spec.mirror->version;
    out.mirror_bp = spec.mirror->percent_bp;
  }
  if (spec.auth) {
    // Only the token's SHA-256 is kept; the token itself goes nowhere.
    const char* token = std::getenv(spec.auth->token_env.c_str());
    if (!token) error(spec.auth->token_env_pos, "auth.token_env: " + spec.auth->token_env + " is not set in this environment");
    else if (!*token) error(spec.auth->token_env_pos, "auth.token_env: " + spec.auth->token_env + " is empty");
    else out.infer_token_hash = Sha256Hex(token);
  }
  json pins = json::object();  // what each model resolved to: part of the hash
  for (const VersionSpec& v : spec.versions) {
    const std::string where = "versions." + v.name;
    store::ServiceVersionState s;
    s.name = v.name;
    s.replicas = v.replicas;
    s.weight_bp = v.weight_bp;
    s.options = JsonText(Options(v));
    if (v.kind == VersionSpec::Kind::kCommand) {
      s.kind = "command";
      s.command = JsonText(json(v.command));
      s.env = JsonText(json(v.env));
      s.workdir = Absolute(v.workdir);
      s.port_env = v.port_env;
      out.versions.push_back(std::move(s));
      continue;
    }
    s.kind = "model";
    s.model_ref = v.model;
    if (!v.model_file.empty()) {
      std::error_code ec;
      s.uri = Absolute(v.model_file);
      if (!fs::exists(s.uri, ec))
        error(v.model_pos, where + ".model: no file " + Quote(v.model) + " (looked for " + s.uri +
                               "); give a model file or NAME@VERSION, NAME@ALIAS, NAME@latest");
    } else {
      auto m = registry.ResolveModel(v.model);
      if (!m.ok()) {
        Code code = m.status().code();
        if (code != Code::kNotFound && code != Code::kInvalidSpec)
          return m.status().WithContext("resolve " + where + ".model " + v.model);
        error(v.model_pos, where + ".model: " + m.status().message());
      } else {
        s.model_name = m->name;
        s.model_version = m->version;
        s.artifact = m->artifact;
        s.uri = m->uri;
      }
    }
    pins[v.name] = {{"artifact", s.artifact}, {"uri", s.uri}, {"model", s.model_name}, {"version", s.model_version}};
    out.versions.push_back(std::move(s));
  }

  // No traffic with several versions: refused for a new service; an
  // existing one keeps its weights (ServicesStore::Apply), which must still
  // make a valid split of these versions.
  if (!spec.traffic_given && spec.versions.size() > 1) {
    if (!live) {
      std::string example;
      for (const VersionSpec& v : spec.versions)
        example += (example.empty() ? "" : ", ") + v.name + ": " + (example.empty() ? "100" : "0");
      error({1, 1}, "traffic: a new service with several versions needs traffic weights (versions: " + Names(spec) +
                        "), e.g. traffic: {" + example + "}");
    } else {
      out.keep_weights = true;
      int sum = 0;
      for (store::ServiceVersionState& s : out.versions) {
        s.weight_bp = 0;
        for (const store::ServiceVersionState& l : live->versions)
          if (l.name == s.name && l.state == "active") s.weight_bp = l.weight_bp;
        sum += s.weight_bp;
      }
      if (sum != 10'000)
        error({1, 1}, "traffic: omitted, so the weights in use are kept, but they add up to " + FormatPercent(sum) +
                          " over " + Names(spec) + ", not 100; give traffic");
      for (size_t i = 0; i < out.versions.size(); ++i) {
        const store::ServiceVersionState& s = out.versions[i];
        if (s.replicas == 0 && s.weight_bp > 0)
          error(spec.versions[i].pos, "versions." + s.name + ": 0 replicas cannot take weight " +
                                          FormatPercent(s.weight_bp) + " (kept, as traffic is omitted)");
        if (s.name == out.mirror_version && s.weight_bp > 0)
          error({1, 1}, "mirror.version: " + Quote(s.name) + " has weight " + FormatPercent(s.weight_bp) +
                            " (kept, as traffic is omitted); a mirrored version takes no live traffic");
      }
    }
  }
  if (!errors.empty()) return Status::InvalidSpec(Join(errors, "\n"));
  // A new token is a change (its hash differs); a service without auth
  // hashes as it did before auth existed.
  std::string hashed = out.spec + "\n" + JsonText(pins);
  if (!out.infer_token_hash.empty()) hashed += "\ninfer_token_hash:" + out.infer_token_hash;
  out.spec_hash = Sha256Hex(hashed);
  return out;
}

}  // namespace sluice::serving
