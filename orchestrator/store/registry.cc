#include "store/registry.h"

#include <algorithm>
#include <cstdlib>

#include <sqlite3.h>

#include "util/strings.h"

namespace sluice::store {

namespace {

Status DeletedVersion(const std::string& name, int version) {
  return Status::NotFound("model '" + name + "' has no version " + std::to_string(version) + " (it was deleted)");
}

// Why a version that aliases point at is not archived or deleted: an alias
// like production must never point at something hidden or gone.
Status AliasesInTheWay(const std::string& name, int version, const std::vector<std::string>& aliases,
                       const std::string& what) {
  std::string ref = name + "@" + std::to_string(version);
  return Status::Incompatible(
      (aliases.size() == 1 ? "alias " + Quote(aliases[0]) + " points" : "aliases " + Join(aliases, ", ") + " point") +
      " at " + ref + "; move or remove " + (aliases.size() == 1 ? "it" : "them") + " before it is " + what +
      " (sluice models promote " + name + " --alias " + aliases[0] + " --remove)");
}

}  // namespace

Result<int> RegistryStore::RegisterModel(const std::string& name, const std::string& artifact, int64_t run_id,
                                         const std::string& step_id, int64_t attempt_id, int64_t now_ms) {
  Status st = db_.JoinBatch();
  if (!st.ok()) return st;
  {
    Query q = db_.Prepare("SELECT version FROM model_versions WHERE name = ? AND artifact = ? AND deleted_ms IS NULL");
    q.Bind(1, name).Bind(2, artifact);
    if (q.Step() == SQLITE_ROW) return static_cast<int>(q.Int(0));  // the same model: the same version
  }
  Query ins = db_.Prepare(
      "INSERT INTO model_versions(name, version, artifact, run_id, step_id, attempt_id, created_ms) "
      "SELECT ?1, IFNULL(MAX(version), 0) + 1, ?2, ?3, ?4, ?5, ?6 FROM model_versions WHERE name = ?1 "
      "RETURNING version");
  ins.Bind(1, name).Bind(2, artifact).Bind(6, now_ms);
  if (run_id) ins.Bind(3, run_id).Bind(4, step_id).Bind(5, attempt_id);
  else ins.BindNull(3).BindNull(4).BindNull(5);
  if (ins.Step() != SQLITE_ROW) return db_.Abandon(db_.Error("register model " + name));
  return static_cast<int>(ins.Int(0));
}

Result<RegistryStore::VersionState> RegistryStore::FindVersion(const std::string& name, int version) {
  std::string ref = name + "@" + std::to_string(version);
  VersionState v;
  {
    Query q = db_.Prepare(
        "SELECT archived_ms IS NOT NULL, deleted_ms IS NOT NULL FROM model_versions WHERE name = ? AND version = ?");
    q.Bind(1, name).Bind(2, version);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("model '" + name + "' has no version " + std::to_string(version));
    if (rc != SQLITE_ROW) return db_.Error("look up " + ref);
    v.archived = q.Int(0) != 0;
    v.deleted = q.Int(1) != 0;
  }
  Query q = db_.Prepare("SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias");
  q.Bind(1, name).Bind(2, version);
  Status st = q.ForEachRow("read the aliases of " + ref, [&] { v.aliases.push_back(q.Text(0)); });
  if (!st.ok()) return st;
  return v;
}

Result<std::vector<ModelAlias>> RegistryStore::ListAliases(const std::string& name) {
  Query q = db_.Prepare("SELECT alias, version, updated_ms, IFNULL(updated_by, '') FROM model_aliases WHERE name = ? ORDER BY alias");
  q.Bind(1, name);
  std::vector<ModelAlias> out;
  Status st = q.ForEachRow("read the aliases of model " + name, [&] {
    out.push_back({q.Text(0), static_cast<int>(q.Int(1)), q.Int(2), q.Text(3)});
  });
  if (!st.ok()) return st;
  return out;
}

Status RegistryStore::SetAlias(const std::string& name, int version, const std::string& alias, const std::string& by,
                               int64_t now_ms) {
  if (Status st = db_.RequireNoBatch("SetAlias"); !st.ok()) return st;
  auto v = FindVersion(name, version);
  if (!v.ok()) return v.status();
  if (v->deleted) return DeletedVersion(name, version);
  if (v->archived)
    return Status::Incompatible(name + "@" + std::to_string(version) + " is archived; an alias points only at a version "
                                "in use (sluice models unarchive " + name + "@" + std::to_string(version) + ")");
  Query q = db_.Prepare(
      "INSERT OR REPLACE INTO model_aliases(name, alias, version, updated_ms, updated_by) VALUES (?, ?, ?, ?, ?)");
  q.Bind(1, name).Bind(2, alias).Bind(3, version).Bind(4, now_ms).Bind(5, by);
  if (q.Step() != SQLITE_DONE) return db_.Error("set alias " + alias + " of model " + name);
  return Status::Ok();
}

Result<int> RegistryStore::RemoveAlias(const std::string& name, const std::string& alias, int expected) {
  if (Status st = db_.RequireNoBatch("RemoveAlias"); !st.ok()) return st;
  int version = 0;
  {
    Query q = db_.Prepare("SELECT version FROM model_aliases WHERE name = ? AND alias = ?");
    q.Bind(1, name).Bind(2, alias);
    int rc = q.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("model '" + name + "' has no alias " + Quote(alias));
    if (rc != SQLITE_ROW) return db_.Error("read alias " + alias + " of model " + name);
    version = static_cast<int>(q.Int(0));
  }
  if (expected > 0 && expected != version)
    return Status::Incompatible(name + "@" + alias + " points at version " + std::to_string(version) + ", not " +
                                std::to_string(expected) + "; nothing removed");
  Query q = db_.Prepare("DELETE FROM model_aliases WHERE name = ? AND alias = ? AND version = ?");
  q.Bind(1, name).Bind(2, alias).Bind(3, version);
  if (q.Step() != SQLITE_DONE) return db_.Error("remove alias " + alias + " of model " + name);
  return version;
}

Status RegistryStore::ArchiveModel(const std::string& name, int version, bool archived, int64_t now_ms) {
  if (Status st = db_.RequireNoBatch("ArchiveModel"); !st.ok()) return st;
  auto v = FindVersion(name, version);
  if (!v.ok()) return v.status();
  if (v->deleted) return DeletedVersion(name, version);
  if (archived && !v->aliases.empty()) return AliasesInTheWay(name, version, v->aliases, "archived");
  Query q = db_.Prepare(archived
                            ? "UPDATE model_versions SET archived_ms = IFNULL(archived_ms, ?1) WHERE name = ?2 AND version = ?3"
                            : "UPDATE model_versions SET archived_ms = NULL WHERE name = ?2 AND version = ?3");
  q.Bind(1, now_ms).Bind(2, name).Bind(3, version);
  if (q.Step() != SQLITE_DONE)
    return db_.Error(std::string(archived ? "archive " : "unarchive ") + name + "@" + std::to_string(version));
  return Status::Ok();
}

Status RegistryStore::DeleteModel(const std::string& name, int version, int64_t now_ms) {
  if (Status st = db_.RequireNoBatch("DeleteModel"); !st.ok()) return st;
  auto v = FindVersion(name, version);
  if (!v.ok()) return v.status();
  if (v->deleted) return DeletedVersion(name, version);
  if (!v->aliases.empty()) return AliasesInTheWay(name, version, v->aliases, "deleted");
  Query q = db_.Prepare("UPDATE model_versions SET deleted_ms = ? WHERE name = ? AND version = ?");
  q.Bind(1, now_ms).Bind(2, name).Bind(3, version);
  if (q.Step() != SQLITE_DONE) return db_.Error("delete " + name + "@" + std::to_string(version));
  return Status::Ok();
}

Result<std::vector<ModelVersion>> RegistryStore::ListModels(const std::string& name) {
  Query q = db_.Prepare(
      "SELECT v.name, v.version, v.artifact, a.uri, IFNULL(v.run_id, 0), IFNULL(v.step_id, ''), v.created_ms,"
      " (SELECT group_concat(alias, ',') FROM (SELECT alias FROM model_aliases m"
      "   WHERE m.name = v.name AND m.version = v.version ORDER BY alias)),"
      " IFNULL(v.attempt_id, 0), IFNULL(v.archived_ms, 0)"
      " FROM model_versions v JOIN artifacts a ON a.hash = v.artifact"
      " WHERE (?1 = '' OR v.name = ?1) AND v.deleted_ms IS NULL ORDER BY v.name, v.version");
  q.Bind(1, name);
  std::vector<ModelVersion> out;
  Status st = q.ForEachRow("list models", [&] {
    ModelVersion m;
    m.name = q.Text(0);
    m.version = static_cast<int>(q.Int(1));
    m.artifact = q.Text(2);
    m.uri = q.Text(3);
    m.run_id = q.Int(4);
    m.step_id = q.Text(5);
    m.created_ms = q.Int(6);
    m.attempt_id = q.Int(8);
    m.archived_ms = q.Int(9);
    std::string aliases = q.Text(7);
    for (size_t start = 0; !aliases.empty() && start <= aliases.size();) {
      size_t comma = aliases.find(',', start);
      m.aliases.push_back(aliases.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    out.push_back(std::move(m));
  });
  if (!st.ok()) return st;
  return out;
}

Result<ModelVersion> RegistryStore::ResolveModel(const std::string& ref) {
  size_t at = ref.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == ref.size())
    return Status::InvalidSpec(Quote(ref) + " is not NAME@VERSION or NAME@ALIAS");
  std::string name = ref.substr(0, at), which = ref.substr(at + 1);
  auto all = ListModels(name);
  if (!all.ok()) return all.status();
  bool numeric = which.find_first_not_of("0123456789") == std::string::npos;
  if (numeric && which.size() < 10) {
    int version = std::atoi(which.c_str());
    if (std::none_of(all->begin(), all->end(), [&](const ModelVersion& m) { return m.version == version; })) {
      auto v = FindVersion(name, version);
      if (v.ok() && v->deleted) return DeletedVersion(name, version);
      if (!v.ok() && v.status().code() != Code::kNotFound) return v.status();
    }
  }
  if (all->empty()) return Status::NotFound("no model named '" + name + "'");
  for (const ModelVersion& m : *all) {
    if (numeric && std::to_string(m.version) == which) return m;
    if (!numeric && std::find(m.aliases.begin(), m.aliases.end(), which) != m.aliases.end()) return m;
  }
  if (which == "latest") {  // the newest version in use, unless an alias is named so
    const ModelVersion* newest = nullptr;
    for (const ModelVersion& m : *all)
      if (!m.archived_ms && (!newest || m.version > newest->version)) newest = &m;
    if (newest) return *newest;
    return Status::NotFound("model '" + name + "' has only archived versions; name one by its number (" + name + "@" +
                            std::to_string(all->back().version) + ")");
  }
  return Status::NotFound("model '" + name + "' has no " + (numeric ? "version " : "alias ") + Quote(which));
}

}  // namespace sluice::store
