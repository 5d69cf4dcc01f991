#include "store/artifacts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <vector>

#include "util/hash.h"

namespace sluice::store {

namespace fs = std::filesystem;

namespace {

// A published file's hash: a link is never followed.
Result<std::string> HashFile(const std::string& path, int64_t* size) {
  return Sha256File(path, {.follow_links = false, .size = size});
}

void MakeReadOnly(const fs::path& p) {
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(p, ec))
      fs::permissions(e.path(), fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                      fs::perm_options::remove, ec);
  }
  fs::permissions(p, fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write, fs::perm_options::remove,
                  ec);
}

// Only regular files and folders are published: a symlink (to $HOME, to the
// store's own database) would be hashed and made read-only where it points,
// and a FIFO or device would hang or mislead the hash.
Status CheckPublishable(const std::string& path) {
  auto refuse = [&](const fs::path& p, const char* what) {
    std::string shown = p == fs::path(path) ? p.filename().string() : p.lexically_relative(fs::path(path).parent_path()).string();
    return Status::StepFailed(shown + " is " + what + ": only regular files and folders are published");
  };
  auto kind = [](fs::file_type t) -> const char* {
    switch (t) {
      case fs::file_type::symlink: return "a symbolic link";
      case fs::file_type::fifo: return "a FIFO";
      case fs::file_type::socket: return "a socket";
      case fs::file_type::block:
      case fs::file_type::character: return "a device";
      default: return "not a regular file";
    }
  };
  std::error_code ec;
  fs::file_status st = fs::symlink_status(path, ec);
  if (ec) return Status::IoError("stat " + path + ": " + ec.message());
  if (st.type() == fs::file_type::regular) return Status::Ok();
  if (st.type() != fs::file_type::directory) return refuse(path, kind(st.type()));
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    fs::file_type t = it->symlink_status(ec).type();
    if (t != fs::file_type::regular && t != fs::file_type::directory) return refuse(it->path(), kind(t));
  }
  if (ec) return Status::IoError("list " + path + ": " + ec.message());
  return Status::Ok();
}

// The stamp without its change time, which a rename and a chmod move.
std::string Unmoved(const std::string& stamp) { return stamp.substr(0, stamp.rfind(':')); }

}  // namespace

Result<std::string> HashPath(const std::string& path, int64_t* size) {
  *size = 0;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return HashFile(path, size);
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
    if (!e.is_regular_file()) continue;
    auto h = HashFile(e.path().string(), size);
    if (!h.ok()) return h.status();
    files.emplace_back(fs::relative(e.path(), path).string(), *h);
  }
  if (ec) return Status::IoError("hash " + path + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::string listing;
  for (const auto& [rel, h] : files) listing += rel + '\0' + h + '\n';
  return Sha256Hex(listing);
}

std::string StampOf(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  auto ns = [](const timespec& t) { return std::to_string(int64_t{t.tv_sec} * 1000000000 + t.tv_nsec); };
  return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" + ns(st.st_mtim) + ":" + ns(st.st_ctim);
}

ArtifactStore::ArtifactStore(std::string root) : root_(std::move(root)) {}

Result<engine::ArtifactRef> ArtifactStore::Publish(const std::string& path, const std::string& kind) {
  engine::ArtifactRef a;
  a.kind = kind;
  if (Status st = CheckPublishable(path); !st.ok()) return st;
  std::string before = StampOf(path);  // a file written while it was hashed gets no stamp
  auto hash = HashPath(path, &a.size);
  if (!hash.ok()) return hash.status();
  a.hash = *hash;
  a.uri = PathOf(a.hash);
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return Status::IoError("create " + root_ + ": " + ec.message());
  if (fs::exists(a.uri, ec)) {
    fs::remove_all(path, ec);  // stored once
    return a;
  }
  // rename(2) within one file system is atomic; the attempt folder lives
  // under the same SLUICE_HOME, so it is.
  if (::rename(path.c_str(), a.uri.c_str()) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST) {  // published meanwhile by someone else
      fs::remove_all(path, ec);
      return a;
    }
    return Status::FromErrno("publish " + path + " as " + a.uri, errno);
  }
  MakeReadOnly(a.uri);
  std::string after = StampOf(a.uri);
  if (!before.empty() && !after.empty() && Unmoved(after) == Unmoved(before)) a.stamp = after;
  return a;
}

bool ArtifactStore::Verify(const engine::ArtifactRef& artifact) const {
  std::string path = PathOf(artifact.hash);
  if (!artifact.stamp.empty() && StampOf(path) == artifact.stamp) return true;
  int64_t size = 0;
  std::error_code ec;
  if (!fs::exists(path, ec)) return false;
  auto h = HashPath(path, &size);
  return h.ok() && *h == artifact.hash;
}

}  // namespace sluice::store
