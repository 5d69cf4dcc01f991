// RegistryStore: the model registry (MLflow's is the reference): named
// models with numbered versions, each a registered artifact, aliases that
// point at versions, archived and deleted versions (specs/store.md, schema
// versions 4 and 9). Services and their versions live in services.h.
//
// Who uses it: the engine through RunsStore (a step's `register:`), `sluice
// models` (list, promote, archive, delete, register), `sluice serve-model`
// (resolving NAME@VERSION or NAME@ALIAS).
//
// Writes other than RegisterModel are transactions of their own:
// REQUIRES: no journal batch is open (db.h; checked, an Internal error).
// One object per thread, like its Db.
#pragma once

#include <string>
#include <vector>

#include "store/db.h"

namespace sluice::store {

// One registered version of a model.
struct ModelVersion {
  std::string name;
  int version = 0;
  std::string artifact;              // hash
  std::string uri;                   // the published file or folder
  int64_t run_id = 0;                // the producing run (0: registered by hand)
  std::string step_id;
  int64_t attempt_id = 0;            // the registering attempt (0: registered by hand)
  int64_t created_ms = 0;
  int64_t archived_ms = 0;           // 0 unless archived
  std::vector<std::string> aliases;  // staging, production, ...
};

// An alias and who moved it last.
struct ModelAlias {
  std::string alias;
  int version = 0;
  int64_t updated_ms = 0;
  std::string updated_by;  // 'user:LOGIN' (CLI), 'token:NAME' (API, UI); empty for aliases set before schema 18
};

class RegistryStore {
 public:
  explicit RegistryStore(Db& db) : db_(db) {}

  // Registers `artifact` as a version of model `name`; returns its number.
  // A journal write: it joins the batch, committed by the next Flush()
  // (RunsStore::RegisterModel for the engine; `sluice models register`
  // flushes itself). Registering the same artifact under a name again gives
  // its existing version (an archived one stays archived), unless that
  // version was deleted: then it is a new version. Version numbers are never
  // given twice.
  Result<int> RegisterModel(const std::string& name, const std::string& artifact, int64_t run_id,
                            const std::string& step_id, int64_t attempt_id, int64_t now_ms);
  // Every version of `name` (all models when empty), oldest first, archived
  // ones included (archived_ms set); deleted ones are never listed.
  Result<std::vector<ModelVersion>> ListModels(const std::string& name);
  // "fashion@3", "fashion@production", or "fashion@latest" (the newest
  // version that is not archived, unless an alias is named latest). A
  // deleted version resolves to nothing.
  Result<ModelVersion> ResolveModel(const std::string& ref);

  // The aliases of `name`, by alias.
  Result<std::vector<ModelAlias>> ListAliases(const std::string& name);

  // Moves `alias` to `version`, which must be neither archived nor deleted,
  // recording `by` (who) and `now_ms` (when).
  // REQUIRES: no journal batch is open.
  Status SetAlias(const std::string& name, int version, const std::string& alias, const std::string& by, int64_t now_ms);
  // Removes `alias`; returns the version it pointed at. With `expected` > 0
  // it is removed only if it points there.
  // REQUIRES: no journal batch is open.
  Result<int> RemoveAlias(const std::string& name, const std::string& alias, int expected);
  // Archives (or with `archived` false, restores) a version: archived
  // versions are left out of `sluice models` and of @latest, and still
  // resolve by their number. Refused while an alias points at the version.
  // REQUIRES: no journal batch is open.
  Status ArchiveModel(const std::string& name, int version, bool archived, int64_t now_ms);
  // Deletes a version: it no longer resolves, is not listed, and no longer
  // keeps its artifact from `sluice gc`. Refused while an alias points at it.
  // REQUIRES: no journal batch is open.
  Status DeleteModel(const std::string& name, int version, int64_t now_ms);

 private:
  // A version's row (NotFound if there is none), with its aliases.
  struct VersionState {
    bool archived = false, deleted = false;
    std::vector<std::string> aliases;
  };
  Result<VersionState> FindVersion(const std::string& name, int version);

  Db& db_;
};

}  // namespace sluice::store
