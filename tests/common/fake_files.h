// FakeFiles: a file system in memory (engine/fingerprint.h's FileSystem) for
// tests of the fingerprint, the cache forecast and the engine. Not thread-safe.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/fingerprint.h"
#include "util/hash.h"

namespace sluice::testing {

// Files and folders by absolute path. Folders are made as files are written.
class FakeFiles : public engine::FileSystem {
 public:
  void Write(const std::string& path, const std::string& content) {
    files_[path] = content;
    for (std::string p = Parent(path); p.size() > 1; p = Parent(p)) dirs_.insert(p);
  }
  void MakeDir(const std::string& path) {
    for (std::string p = path; p.size() > 1; p = Parent(p)) dirs_.insert(p);
  }
  void Remove(const std::string& path) { files_.erase(path); }

  Kind Stat(const std::string& path) override {
    if (files_.count(path)) return Kind::kFile;
    if (dirs_.count(path)) return Kind::kDir;
    return Kind::kMissing;
  }
  Result<std::vector<Entry>> List(const std::string& path) override {
    ++lists;
    std::vector<Entry> out;
    for (const auto& [f, content] : files_)
      if (Parent(f) == path) out.push_back({Name(f), Kind::kFile, false});
    for (const std::string& d : dirs_)
      if (Parent(d) == path) out.push_back({Name(d), Kind::kDir, false});
    std::reverse(out.begin(), out.end());  // not sorted: the reader must not depend on the order
    return out;
  }
  Result<std::string> HashFile(const std::string& path) override {
    ++hashes;
    auto it = files_.find(path);
    if (it == files_.end()) return Status::IoError("open " + path + ": No such file or directory");
    return Sha256Hex(it->second);
  }

  int hashes = 0, lists = 0;

 private:
  static std::string Parent(const std::string& p) { return p.substr(0, p.rfind('/')); }
  static std::string Name(const std::string& p) { return p.substr(p.rfind('/') + 1); }
  std::map<std::string, std::string> files_;
  std::set<std::string> dirs_;
};

}  // namespace sluice::testing
