// OpenLineageFile: writes an OpenLineage RunEvent (spec 2-0-2) per step
// attempt transition to a JSON Lines file: START when an attempt starts,
// COMPLETE, FAIL or ABORT when it ends (a cache hit is a COMPLETE with the
// reused outputs). Each event names the job "<pipeline>.<step>" in a
// namespace, the attempt as a run (a UUID derived from the store and the
// attempt id) and the input and output artifacts as datasets in the "file"
// namespace, named by path. Other events pass through to the wrapped observer.
//
// Called on the engine's thread (it reads the store's lineage there).
#pragma once

#include <cstdio>
#include <string>

#include "engine/engine.h"
#include "store/store.h"

namespace sluice::cli {

class OpenLineageFile : public engine::Observer {
 public:
  // Appends to `path`; `next` gets every event too.
  OpenLineageFile(const std::string& path, const std::string& job_namespace, const std::string& pipeline,
                  const std::string& store_id, store::Store* store, engine::Observer* next);
  ~OpenLineageFile() override;
  bool ok() const { return file_ != nullptr; }

  void OnEvent(const engine::Event& e) override;
  void Idle() override;

 private:
  std::string RunId(int64_t attempt_id) const;

  std::FILE* file_;
  std::string namespace_, pipeline_, store_id_;
  store::Store* store_;
  engine::Observer* next_;
};

}  // namespace sluice::cli
