// FakeFiles: an engine::Env in memory (engine/env.h: environment variables,
// files and folders; its FileSystem part is what a fingerprint reads) for
// tests of the fingerprint, the cache forecast and the engine, so none needs
// a temp folder. Not thread-safe.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <optional>

#include "engine/env.h"
#include "util/hash.h"

namespace sluice::testing {

// Files and folders by absolute path. Folders are made as files are written.
class FakeFiles : public engine::Env {
 public:
  std::map<std::string, std::string> vars;  // the environment GetVar reads

  std::string Read(const std::string& path) const {
    auto it = files_.find(path);
    return it == files_.end() ? "" : it->second;
  }
  bool Exists(const std::string& path) const { return files_.count(path) || dirs_.count(path); }

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

  std::optional<std::string> GetVar(const std::string& name) override {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  }
  Kind LinkStat(const std::string& path) override { return Stat(path); }
  Status CreateDirs(const std::string& path) override {
    MakeDir(path);
    return Status::Ok();
  }
  Result<std::string> ReadFile(const std::string& path, size_t limit, int64_t* size) override {
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound("read " + path + ": no such file");
    *size = static_cast<int64_t>(it->second.size());
    return it->second.size() > limit ? std::string() : it->second;
  }
  Status WriteFile(const std::string& path, const std::string& text) override {
    Write(path, text);
    return Status::Ok();
  }
  Status AppendFile(const std::string& path, const std::string& text) override {
    Write(path, Read(path) + text);
    return Status::Ok();
  }

  int hashes = 0, lists = 0;

 private:
  static std::string Parent(const std::string& p) { return p.substr(0, p.rfind('/')); }
  static std::string Name(const std::string& p) { return p.substr(p.rfind('/') + 1); }
  std::map<std::string, std::string> files_;
  std::set<std::string> dirs_;
};

}  // namespace sluice::testing
