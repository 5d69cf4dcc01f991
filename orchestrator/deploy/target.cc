#include "deploy/target.h"

#include <functional>

#include "serving/service_spec.h"
#include "serving/service_state.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::deploy {

namespace {

using nlohmann::json;

constexpr const char* kProvisional = "candidate";

// The live spec document with `versions` edited by `edit`, and a hash that
// changes with it (the store's "same hash: no change" rule).
// `live` without its versions on their way out (removing): they are not
// part of the desired state, and applying them again would bring them back.
store::ServiceState ActiveOnly(const store::ServiceState& live) {
  store::ServiceState s = live;
  std::erase_if(s.versions, [](const store::ServiceVersionState& v) { return v.state != "active"; });
  return s;
}

void EditDocument(store::ServiceState* s, const std::string& salt, const std::function<void(json&)>& edit) {
  json doc = json::parse(s->spec, nullptr, false);
  if (!doc.is_object()) doc = {{"service", s->name}};
  if (!doc.contains("versions") || !doc["versions"].is_object()) doc["versions"] = json::object();
  edit(doc["versions"]);
  doc.erase("traffic");  // the weights are the store's, moved by SetTraffic
  s->spec = JsonText(doc);
  s->spec_hash = Sha256Hex(s->spec + '\0' + salt);
  s->keep_weights = true;
}

}  // namespace

Result<Candidate> ResolveCandidate(const json& with, const std::string& service, const std::string& fallback_name,
                                   const std::string& where, store::RegistryStore& registry) {
  json v = json::object();
  if (with.contains("version")) {
    if (with.contains("model") || with.contains("replicas"))
      return Status::InvalidSpec(where + ": give with.version or with.model (and replicas), not both");
    v = with["version"];
    if (!v.is_object()) return Status::InvalidSpec(where + ": with.version must be an object like a service.yaml version");
  } else if (with.contains("model")) {
    v["model"] = with["model"];
    if (with.contains("replicas")) v["replicas"] = with["replicas"];
  } else {
    return Status::InvalidSpec(where + ": say what to deploy: with.model (fashion@3) or with.version ({command: [...]})");
  }
  std::string name;
  if (v.contains("name")) {
    if (!v["name"].is_string()) return Status::InvalidSpec(where + ": with.version.name must be a string");
    name = v["name"].get<std::string>();
    v.erase("name");
  }
  json doc = {{"service", service}, {"versions", {{name.empty() ? kProvisional : name, v}}}};
  auto spec = serving::ParseServiceSpec(where, JsonText(doc));
  if (!spec.ok()) return spec.status();
  auto state = serving::ResolveService(*spec, registry, nullptr);
  if (!state.ok()) return state.status();
  Candidate c;
  c.version = state->versions.at(0);
  json canonical = json::parse(serving::CanonicalSpecJson(*spec));
  c.document = canonical["versions"][name.empty() ? kProvisional : name];
  if (name.empty()) name = c.version.model_version > 0 ? "v" + std::to_string(c.version.model_version) : fallback_name;
  c.version.name = name;
  c.version.weight_bp = 0;
  return c;
}

store::ServiceState NewService(const std::string& service, const Candidate& c) {
  store::ServiceState s;
  s.name = service;
  s.versions = {c.version};
  s.versions[0].weight_bp = 10'000;
  json doc = {{"service", service}, {"versions", {{c.version.name, c.document}}}};
  s.spec = JsonText(doc);
  s.spec_hash = Sha256Hex(s.spec + '\0' + JsonText(VersionStateJson(c.version)));
  return s;
}

store::ServiceState WithVersion(const store::ServiceState& live, const Candidate& c) {
  store::ServiceState s = ActiveOnly(live);
  bool replaced = false;
  for (store::ServiceVersionState& v : s.versions)
    if (v.name == c.version.name) {
      int weight = v.weight_bp;
      v = c.version;
      v.weight_bp = weight;
      replaced = true;
    }
  if (!replaced) s.versions.push_back(c.version);
  EditDocument(&s, JsonText(VersionStateJson(c.version)), [&](json& versions) { versions[c.version.name] = c.document; });
  return s;
}

store::ServiceState WithoutVersion(const store::ServiceState& live, const std::string& name) {
  store::ServiceState s = ActiveOnly(live);
  std::erase_if(s.versions, [&](const store::ServiceVersionState& v) { return v.name == name; });
  EditDocument(&s, "without " + name, [&](json& versions) { versions.erase(name); });
  return s;
}

store::ServiceState WithSticky(const store::ServiceState& live, const std::string& header, const std::string& field) {
  store::ServiceState s = ActiveOnly(live);
  s.sticky_header = header;
  s.sticky_field = header.empty() ? field : "";
  s.sticky_salt = live.name;
  json doc = json::parse(s.spec, nullptr, false);
  if (!doc.is_object()) doc = {{"service", s.name}};
  json sticky = {{"salt", s.sticky_salt}};
  if (!header.empty()) sticky["header"] = header;
  else sticky["field"] = field;
  doc["sticky"] = sticky;
  doc.erase("traffic");  // the weights are the store's, moved by SetTraffic
  s.spec = JsonText(doc);
  s.spec_hash = Sha256Hex(s.spec + '\0' + "sticky");
  s.keep_weights = true;
  return s;
}

json VersionDocument(const store::ServiceState& live, const std::string& name) {
  json doc = json::parse(live.spec, nullptr, false);
  if (!doc.is_object() || !doc.contains("versions") || !doc["versions"].contains(name)) return nullptr;
  return doc["versions"][name];
}

json VersionStateJson(const store::ServiceVersionState& v) {
  return {{"name", v.name},       {"kind", v.kind},         {"model_ref", v.model_ref}, {"model_name", v.model_name},
          {"model_version", v.model_version}, {"artifact", v.artifact}, {"uri", v.uri}, {"command", v.command},
          {"env", v.env},         {"workdir", v.workdir},   {"port_env", v.port_env}, {"options", v.options},
          {"replicas", v.replicas}};
}

Result<Candidate> CandidateFromJson(const json& saved) {
  if (!saved.is_object() || !saved.contains("state") || !saved["state"].is_object())
    return Status::InvalidSpec("the saved version is not an object with a state");
  const json& j = saved["state"];
  Candidate c;
  try {
    store::ServiceVersionState& v = c.version;
    v.name = j.at("name").get<std::string>();
    v.kind = j.at("kind").get<std::string>();
    v.model_ref = j.at("model_ref").get<std::string>();
    v.model_name = j.at("model_name").get<std::string>();
    v.model_version = j.at("model_version").get<int>();
    v.artifact = j.at("artifact").get<std::string>();
    v.uri = j.at("uri").get<std::string>();
    v.command = j.at("command").get<std::string>();
    v.env = j.at("env").get<std::string>();
    v.workdir = j.at("workdir").get<std::string>();
    v.port_env = j.at("port_env").get<std::string>();
    v.options = j.at("options").get<std::string>();
    v.replicas = j.at("replicas").get<int>();
  } catch (const json::exception& e) {
    return Status::InvalidSpec(std::string("the saved version is incomplete: ") + e.what());
  }
  c.document = saved.value("document", json::object());
  return c;
}

bool SameWhatRuns(const store::ServiceVersionState& a, const store::ServiceVersionState& b) {
  if (a.kind != b.kind || a.options != b.options || a.replicas != b.replicas) return false;
  if (a.kind == "model") return a.artifact.empty() ? a.uri == b.uri && b.artifact.empty() : a.artifact == b.artifact;
  return a.command == b.command && a.env == b.env && a.workdir == b.workdir && a.port_env == b.port_env;
}

}  // namespace sluice::deploy
