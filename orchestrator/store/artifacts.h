// ArtifactStore: the content-addressed folder of published step outputs,
// $SLUICE_HOME/artifacts/<sha256>. A file or folder a step declared as an
// output is hashed, then moved in with one rename (atomic: a reader sees
// all of it or none); content already there is stored once. Published
// artifacts are made read-only.
//
// Hash of a file: SHA-256 of its bytes. Hash of a folder: SHA-256 of the
// sorted list of "<relative path>\0<file hash>\n" lines of its files (empty
// folders and file modes do not count).
//
// Thread-compatible: one object per thread.
#pragma once

#include <string>

#include "engine/run_store.h"
#include "util/status.h"

namespace sluice::store {

class ArtifactStore : public engine::ArtifactPublisher {
 public:
  explicit ArtifactStore(std::string root);  // created on first publish
  const std::string& root() const { return root_; }

  // Hashes `path` (a file or a folder) and moves it into the store, unless
  // the same content is there already (then `path` is removed).
  Result<engine::ArtifactRef> Publish(const std::string& path, const std::string& kind) override;
  // True if the published artifact is present and still has its hash.
  bool Verify(const engine::ArtifactRef& artifact) const override;
  std::string PathOf(const std::string& hash) const { return root_ + "/" + hash; }

 private:
  std::string root_;
};

// SHA-256 of a file or folder as defined above; `size` gets the byte count.
Result<std::string> HashPath(const std::string& path, int64_t* size);
// A regular file's stamp (engine::ArtifactRef::stamp); empty for anything else.
std::string StampOf(const std::string& path);

}  // namespace sluice::store
