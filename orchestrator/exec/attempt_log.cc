#include "exec/attempt_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace sluice::exec {

namespace {

std::string MiB(size_t bytes) {
  return bytes % (1 << 20) == 0 ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes) + " bytes";
}

}  // namespace

AttemptLog::AttemptLog(std::string path, size_t head, size_t tail) : path_(std::move(path)), head_(head), tail_(tail) {}

AttemptLog::~AttemptLog() { Close(); }

AttemptLog::AttemptLog(AttemptLog&& other) noexcept { *this = std::move(other); }

AttemptLog& AttemptLog::operator=(AttemptLog&& other) noexcept {
  if (this != &other) {
    Close();
    path_ = std::move(other.path_);
    head_ = other.head_;
    tail_ = other.tail_;
    fd_ = std::exchange(other.fd_, -1);
    written_ = other.written_;
    held_ = std::exchange(other.held_, 0);
    ring_ = std::move(other.ring_);
    ring_start_ = other.ring_start_;
  }
  return *this;
}

void AttemptLog::Append(std::string_view data) {
  if (fd_ < 0 && !path_.empty()) fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  for (size_t off = 0; fd_ >= 0 && off < data.size();) {
    ssize_t w = ::write(fd_, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
}

void AttemptLog::Write(std::string_view data) {
  if (data.empty()) return;
  if (written_ < head_) {
    size_t n = std::min(data.size(), head_ - written_);
    Append(data.substr(0, n));
    written_ += n;
    data.remove_prefix(n);
    if (data.empty()) return;
    Append("\n[sluice: this log is over " + MiB(head_) + "; the output from here on is held back, and its last " +
           MiB(tail_) + " are written here when the attempt ends]\n");
  }
  held_ += data.size();
  if (tail_ == 0) return;
  if (data.size() >= tail_) {  // the ring is all new bytes
    ring_.assign(data.end() - static_cast<std::ptrdiff_t>(tail_), data.end());
    ring_start_ = 0;
    return;
  }
  if (ring_.size() < tail_) {
    size_t room = tail_ - ring_.size();
    size_t n = std::min(room, data.size());
    ring_.insert(ring_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
    data.remove_prefix(n);
  }
  while (!data.empty()) {  // full: overwrite the oldest bytes
    size_t n = std::min(data.size(), tail_ - ring_start_);
    std::memcpy(ring_.data() + ring_start_, data.data(), n);
    ring_start_ = (ring_start_ + n) % tail_;
    data.remove_prefix(n);
  }
}

void AttemptLog::Close() {
  if (held_ > 0) {
    size_t dropped = held_ - ring_.size();
    Append("[sluice: " + std::to_string(dropped) + " bytes of output were dropped here; the last " +
           std::to_string(ring_.size()) + " follow]\n");
    Append(std::string_view(ring_.data() + ring_start_, ring_.size() - ring_start_));
    Append(std::string_view(ring_.data(), ring_start_));
    held_ = 0;
    ring_.clear();
    ring_.shrink_to_fit();
    ring_start_ = 0;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace sluice::exec
