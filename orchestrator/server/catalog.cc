#include "server/catalog.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "util/strings.h"

namespace sluice::server {

namespace fs = std::filesystem;

Catalog::Catalog(std::string dir) : dir_(fs::weakly_canonical(fs::absolute(dir)).string()) {}

bool Inside(const fs::path& p, const fs::path& dir) {
  auto rel = p.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != ".." && !rel.is_absolute();
}

std::vector<std::shared_ptr<const CatalogEntry>> Catalog::List() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir_, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    fs::path p = it->path();
    std::string ext = p.extension().string();
    if (ext != ".yaml" && ext != ".yml") continue;
    std::error_code e2;
    fs::path real = fs::canonical(p, e2);
    if (e2 || !fs::is_regular_file(real, e2) || !Inside(real, dir_)) continue;  // outside the folder: refused
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  std::lock_guard<std::mutex> lock(mu_);
  std::unordered_map<std::string, Cached> next;
  std::vector<std::shared_ptr<const CatalogEntry>> out;
  std::map<std::string, std::string> seen;  // name -> file
  for (const fs::path& p : files) {
    std::error_code e2;
    auto size = fs::file_size(p, e2);
    auto mtime = fs::last_write_time(p, e2).time_since_epoch().count();
    Cached c;
    auto old = files_.find(p.string());
    if (old != files_.end() && old->second.size == size && old->second.mtime_ns == mtime) {
      c = old->second;
    } else {
      auto entry = std::make_shared<CatalogEntry>();
      entry->file = p.string();
      auto loaded = spec::LoadPipeline(p.string());
      if (loaded.ok()) {
        entry->name = loaded->name;
        entry->pipeline = std::make_shared<const spec::Pipeline>(std::move(*loaded));
      } else {
        entry->name = p.stem().string();
        entry->error = loaded.status().message();
      }
      c = Cached{mtime, size, entry};
    }
    next[p.string()] = c;
    auto [it, inserted] = seen.emplace(c.entry->name, p.string());
    if (!inserted) {  // two files, one name: the second is refused
      auto dup = std::make_shared<CatalogEntry>(*c.entry);
      dup->pipeline = nullptr;
      dup->name = p.filename().string();
      dup->error = p.string() + ":1:1: pipeline name " + Quote(c.entry->name) + " is already used by " + it->second;
      out.push_back(dup);
      continue;
    }
    out.push_back(c.entry);
  }
  files_ = std::move(next);
  return out;
}

std::shared_ptr<const CatalogEntry> Catalog::Find(const std::string& name) {
  for (auto& e : List())
    if (e->name == name) return e;
  return nullptr;
}

}  // namespace sluice::server
