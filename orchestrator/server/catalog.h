// Catalog: the pipelines of the folder `sluice serve --dir` names. Every
// *.yaml / *.yml file directly in it is loaded (valid or not); a file that
// is a symlink to somewhere outside the folder is refused. Files are loaded
// again when their size or modification time changes.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "spec/pipeline.h"

namespace sluice::server {

// True if the path `p` lies under `dir` (both already resolved or both
// lexically normal): the check behind every file the server reads.
bool Inside(const std::filesystem::path& p, const std::filesystem::path& dir);

struct CatalogEntry {
  std::string name;          // the pipeline's name; the file's stem if it has none
  std::string file;          // absolute path
  std::string error;         // FILE:LINE:COL lines; empty when valid
  std::shared_ptr<const spec::Pipeline> pipeline;  // null when invalid
};

class Catalog {
 public:
  explicit Catalog(std::string dir);
  const std::string& dir() const { return dir_; }
  // Every pipeline, by name. Reads the folder again (cheap when nothing changed).
  std::vector<std::shared_ptr<const CatalogEntry>> List();
  // One by name; null if there is none.
  std::shared_ptr<const CatalogEntry> Find(const std::string& name);

 private:
  struct Cached {
    int64_t mtime_ns = 0;
    uintmax_t size = 0;
    std::shared_ptr<const CatalogEntry> entry;
  };
  std::string dir_;
  std::mutex mu_;
  std::unordered_map<std::string, Cached> files_;
};

}  // namespace sluice::server
