#include "engine/env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

namespace sluice::engine {

namespace fs = std::filesystem;

namespace {

// Writes all of `text` to `fd`, then closes it.
Status WriteAll(int fd, const std::string& path, const std::string& text) {
  if (fd < 0) return Status::FromErrno("write " + path, errno);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("write " + path, e);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

std::optional<std::string> RealEnv::GetVar(const std::string& name) {
  if (const char* v = std::getenv(name.c_str())) return std::string(v);
  return std::nullopt;
}

FileSystem::Kind RealEnv::LinkStat(const std::string& path) {
  std::error_code ec;
  fs::file_type type = fs::symlink_status(path, ec).type();
  if (type == fs::file_type::not_found || type == fs::file_type::none) return Kind::kMissing;
  if (type == fs::file_type::regular) return Kind::kFile;
  if (type == fs::file_type::directory) return Kind::kDir;
  return Kind::kOther;
}

Status RealEnv::CreateDirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return Status::IoError("create " + path + ": " + ec.message());
  return Status::Ok();
}

Result<std::string> RealEnv::ReadFile(const std::string& path, size_t limit, int64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("read " + path + ": no such file");
    return Status::FromErrno("read " + path, errno);
  }
  struct stat st;
  *size = ::fstat(fd, &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  if (static_cast<uint64_t>(*size) > limit) {
    ::close(fd);
    return std::string();
  }
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  int read_errno = errno;
  ::close(fd);
  if (n < 0) return Status::FromErrno("read " + path, read_errno);
  *size = static_cast<int64_t>(text.size());
  return text;
}

Status RealEnv::WriteFile(const std::string& path, const std::string& text) {
  return WriteAll(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), path, text);
}

Status RealEnv::AppendFile(const std::string& path, const std::string& text) {
  return WriteAll(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644), path, text);
}

}  // namespace sluice::engine
