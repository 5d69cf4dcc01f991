// The API's routes for the model registry, a run's artifacts and the
// lineage graph (server/api.h, specs/api.yaml). The JSON views are the
// CLI's (store/registry_json.h): `sluice models` and `sluice lineage`.
#include "server/api.h"
#include "server/api_helpers.h"

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "store/open.h"
#include "store/registry_json.h"
#include "util/strings.h"

namespace sluice::server {

namespace fs = std::filesystem;
using json = nlohmann::json;

using internal::Json;
using internal::NowMs;
using internal::ParseId;
using internal::ResolveInside;

namespace {

bool IsHash(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A version number as a query or body value: 1 to 9 digits, above 0.
bool ParseVersion(const std::string& text, int* version) {
  int64_t v = 0;
  if (text.size() > 9 || !ParseId(text, &v)) return false;
  *version = static_cast<int>(v);
  return true;
}

// What an artifact's file is served as. Pictures as themselves, so the UI
// can show them with <img> (an SVG shown so runs no script, and opened by
// itself it is an attachment under `sandbox`); anything else as bytes. A
// file artifact has no name of its own: its first bytes tell.
std::string ArtifactType(const fs::path& file, const std::string& sub) {
  std::string ext = fs::path(sub).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (!sub.empty()) return "application/octet-stream";
  std::ifstream in(file, std::ios::binary);
  std::string head(512, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.rfind("\x89PNG\r\n\x1a\n", 0) == 0) return "image/png";
  size_t start = head.find_first_not_of(" \t\r\n");
  if (start != std::string::npos && (head.compare(start, 4, "<svg") == 0 ||
                                     (head.compare(start, 5, "<?xml") == 0 && head.find("<svg") != std::string::npos)))
    return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

Response Api::ListModels() {
  auto& store = ThreadStore();
  auto versions = store.registry().ListModels("");
  if (!versions.ok()) return ErrorResponse(500, "internal", versions.status().message());
  // One entry per model, its versions oldest first; the key metrics are
  // those without a '/' (per-class figures stay on the model's page).
  std::map<std::string, json> models;
  for (const store::ModelVersion& m : *versions) {
    std::map<std::string, double> key;
    for (const auto& [name, value] : store::VersionMetrics(store.runs(), m))
      if (name.find('/') == std::string::npos) key[name] = value;
    json& model = models[m.name];
    if (model.is_null()) model = {{"name", m.name}, {"versions", json::array()}, {"aliases", json::array()}};
    model["versions"].push_back(store::ModelVersionJson(m, key));
  }
  json out = json::array();
  for (auto& [name, model] : models) {
    auto aliases = store.registry().ListAliases(name);
    if (!aliases.ok()) return ErrorResponse(500, "internal", aliases.status().message());
    for (const store::ModelAlias& a : *aliases) model["aliases"].push_back(store::ModelAliasJson(a));
    out.push_back(std::move(model));
  }
  return Json(200, {{"models", out}});
}

Response Api::GetModel(const std::string& name) {
  auto& store = ThreadStore();
  auto versions = store.registry().ListModels(name);
  if (!versions.ok()) return ErrorResponse(500, "internal", versions.status().message());
  if (versions->empty()) return ErrorResponse(404, "not_found", "no model " + Quote(name) + " (sluice models lists them)");
  json out = {{"name", name}, {"versions", json::array()}, {"aliases", json::array()}};
  for (const store::ModelVersion& m : *versions)
    out["versions"].push_back(store::ModelVersionJson(m, store::VersionMetrics(store.runs(), m)));
  auto aliases = store.registry().ListAliases(name);
  if (!aliases.ok()) return ErrorResponse(500, "internal", aliases.status().message());
  for (const store::ModelAlias& a : *aliases) out["aliases"].push_back(store::ModelAliasJson(a));
  return Json(200, out);
}

Response Api::SetModelAlias(const Request& r, const std::string& name) {
  json body = json::parse(r.body, nullptr, false);
  const char* shape = "expected {\"alias\": \"production\", \"version\": 3}";
  if (!body.is_object() || !body.contains("alias") || !body["alias"].is_string() || !body.contains("version") ||
      !body["version"].is_number_integer())
    return ErrorResponse(400, "bad_request", shape);
  std::string alias = body["alias"];
  int64_t version = body["version"];
  if (!IsPipelineName(alias) || alias.size() > 64)
    return ErrorResponse(400, "bad_request", "alias " + Quote(alias) + " must match [a-z0-9][a-z0-9-]* (at most 64 characters)");
  if (alias == "latest")
    return ErrorResponse(400, "bad_request", "alias 'latest' is taken: NAME@latest is the newest version in use");
  if (version <= 0 || version > 999999999)
    return ErrorResponse(400, "bad_request", "version " + std::to_string(version) + " is not a version number (1, 2, ...)");
  auto& store = ThreadStore();
  auto versions = store.registry().ListModels(name);
  if (!versions.ok()) return ErrorResponse(500, "internal", versions.status().message());
  if (versions->empty()) return ErrorResponse(404, "not_found", "no model " + Quote(name) + " (sluice models lists them)");
  Status st = store.registry().SetAlias(name, static_cast<int>(version), alias, Actor(), NowMs());
  if (st.code() == Code::kNotFound) return ErrorResponse(404, "not_found", st.message());
  if (st.code() == Code::kIncompatible) return ErrorResponse(409, "conflict", st.message());
  if (!st.ok()) return ErrorResponse(500, "internal", st.message());
  return Json(200, {{"name", name}, {"alias", alias}, {"version", version}, {"updated_by", Actor()}});
}

Response Api::RunArtifacts(const Request& r, int64_t id) {
  auto& store = ThreadStore();
  if (!store.runs().GetRun(id).ok()) return ErrorResponse(404, "not_found", "no run " + std::to_string(id));
  std::string step = r.Query("step").value_or("");
  auto rows = store.lineage().RunArtifacts(id, step);
  if (!rows.ok()) return ErrorResponse(500, "internal", rows.status().message());
  json out = json::array();
  for (const auto& a : *rows) {
    json j = {{"step", a.step_id},         {"attempt", a.attempt},     {"attempt_id", a.attempt_id},
              {"role", a.role},            {"name", a.name},           {"hash", a.artifact.hash},
              {"kind", a.artifact.kind},   {"size", a.artifact.size}};
    if (a.item >= 0) j["item"] = a.item;
    out.push_back(std::move(j));
  }
  return Json(200, {{"run", id}, {"artifacts", out}});
}

Response Api::LineageGraph(const Request& r) {
  auto& store = ThreadStore();
  std::string direction = r.Query("direction").value_or("upstream");
  if (direction != "upstream" && direction != "downstream")
    return ErrorResponse(400, "bad_request", "direction is upstream or downstream, not " + Quote(direction));
  auto artifact = r.Query("artifact"), run = r.Query("run"), model = r.Query("model");
  if (int(artifact.has_value()) + int(run.has_value()) + int(model.has_value()) != 1)
    return ErrorResponse(400, "bad_request",
                         "name one start: artifact=HASH, run=ID&step=STEP, or model=NAME&version=VERSION");
  std::string hash;
  int64_t attempt_id = 0;
  if (artifact) {
    if (!IsHash(*artifact)) return ErrorResponse(400, "bad_request", "artifact is a SHA-256 hash (64 hex digits)");
    hash = *artifact;
  } else if (run) {
    int64_t run_id = 0;
    if (!ParseId(*run, &run_id)) return ErrorResponse(400, "bad_request", "run is a run id (1, 2, ...), not " + Quote(*run));
    std::string step = r.Query("step").value_or("");
    if (step.empty()) return ErrorResponse(400, "bad_request", "run=ID needs step=STEP");
    int item = -1;
    if (auto it = r.Query("item")) {
      int v = 0;
      if (*it != "0" && !ParseVersion(*it, &v)) return ErrorResponse(400, "bad_request", "item is a foreach item's index (0, 1, ...)");
      item = v;
    }
    auto a = store.runs().LatestAttempt(run_id, step, item);
    if (!a.ok()) return ErrorResponse(404, "not_found", a.status().message());
    attempt_id = a->id;
  } else {
    std::string version = r.Query("version").value_or("");
    if (version.empty()) return ErrorResponse(400, "bad_request", "model=NAME needs version=VERSION (a number or an alias)");
    auto m = store.registry().ResolveModel(*model + "@" + version);
    if (!m.ok())
      return ErrorResponse(m.status().code() == Code::kInvalidSpec ? 400 : 404,
                           m.status().code() == Code::kInvalidSpec ? "bad_request" : "not_found", m.status().message());
    hash = m->artifact;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto g = store.lineage().Lineage(hash, attempt_id, direction == "upstream");
  if (!g.ok()) return ErrorResponse(500, "internal", g.status().message());
  if (!hash.empty() && g->artifacts.empty()) return ErrorResponse(404, "not_found", "no artifact " + hash + " in the store");
  int64_t took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  Response res;
  res.headers.emplace_back("Cache-Control", "no-store");
  res.body = store::LineageJsonText(*g, direction == "downstream") + ",\"query_us\":" + std::to_string(took) + "}";
  return res;
}

Response Api::Artifact(const Request& r, const std::string& hash) {
  bool hex = hash.size() == 64 && hash.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) return ErrorResponse(404, "not_found", "artifacts are named by their SHA-256 (64 hex digits)");
  fs::path root = options_.home + "/artifacts";
  fs::path base = root / hash;
  auto real = ResolveInside(base, root);
  if (!real) return ErrorResponse(404, "not_found", "no artifact " + hash);
  fs::path file = *real;
  std::string sub = r.Query("path").value_or("");
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    if (sub.empty()) {
      json files = json::array();
      for (auto it = fs::recursive_directory_iterator(file, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file()) files.push_back({{"path", it->path().lexically_relative(file).string()}, {"size", it->file_size()}});
      return Json(200, {{"hash", hash}, {"kind", "dir"}, {"files", files}});
    }
    auto inner = ResolveInside(file / sub, file);
    if (fs::path(sub).is_absolute() || !inner) return ErrorResponse(404, "not_found", "no file " + Quote(sub) + " in artifact " + hash);
    file = *inner;
  } else if (!sub.empty()) {
    return ErrorResponse(404, "not_found", "artifact " + hash + " is a file, not a folder");
  }
  if (!fs::is_regular_file(file, ec)) return ErrorResponse(404, "not_found", "not a file");
  auto size = fs::file_size(file, ec);
  if (size > (256u << 20)) return ErrorResponse(413, "too_large", "the file is over 256 MB; read it from the store's folder");
  std::ifstream in(file, std::ios::binary);
  Response res;
  res.content_type = ArtifactType(file, sub);
  res.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::string name = sub.empty() ? hash : fs::path(sub).filename().string();
  std::string safe;
  for (char c : name) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  res.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + safe + "\"");
  // Opened in a tab anyway, an HTML artifact runs no script in the UI's origin.
  res.headers.emplace_back("Content-Security-Policy", "sandbox");
  return res;
}

}  // namespace sluice::server
