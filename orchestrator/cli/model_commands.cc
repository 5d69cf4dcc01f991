// models: the model registry's commands (list, promote, archive, delete,
// register, path).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
#include "store/registry_json.h"
#include "util/json.h"
#include "util/strings.h"

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
  auto metrics_of = [&](const store::ModelVersion& m) { return store::VersionMetrics(store->runs(), m); };
  if (format == "json") {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& m : *models) j.push_back(store::ModelVersionJson(m, metrics_of(m)));
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
  Status st = store->registry().SetAlias(name, version, alias, Actor(), WallClockMs());
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
  Status st = store->registry().ArchiveModel(name, version, archived, WallClockMs());
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
  Status st = store->registry().DeleteModel(name, version, WallClockMs());
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
  auto version = store->registry().RegisterModel(name, hash, 0, "", 0, WallClockMs());
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
