// AttemptLog: an attempt's log file, bounded. It keeps the first
// kLogHeadBytes of the output as they come and the last kLogTailBytes in
// memory, written after a line that says how much was dropped when the
// attempt ends. The file only grows, so readers that follow it by offset
// (`sluice logs -f`, the API) never see it change under them. A runaway
// step costs at most head + tail bytes of disk and tail bytes of memory.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::exec {

constexpr size_t kLogHeadBytes = 8 << 20;  // 8 MiB
constexpr size_t kLogTailBytes = 8 << 20;  // 8 MiB

class AttemptLog {
 public:
  AttemptLog() = default;  // writes nothing
  explicit AttemptLog(std::string path, size_t head = kLogHeadBytes, size_t tail = kLogTailBytes);
  ~AttemptLog();
  AttemptLog(const AttemptLog&) = delete;
  AttemptLog& operator=(const AttemptLog&) = delete;
  AttemptLog(AttemptLog&& other) noexcept;
  AttemptLog& operator=(AttemptLog&& other) noexcept;

  // Appends `data` (opening the file on the first write). A log that cannot
  // be written loses output, never the step.
  void Write(std::string_view data);
  // Writes the kept tail, if output was held back, and closes the file.
  void Close();

  const std::string& path() const { return path_; }

 private:
  void Append(std::string_view data);

  std::string path_;
  size_t head_ = kLogHeadBytes, tail_ = kLogTailBytes;
  int fd_ = -1;
  size_t written_ = 0;        // bytes of output written to the file as they came
  size_t held_ = 0;           // bytes of output past the head, kept or dropped
  std::vector<char> ring_;    // the last tail_ bytes past the head
  size_t ring_start_ = 0;     // where the oldest kept byte is, once the ring is full
};

}  // namespace sluice::exec
