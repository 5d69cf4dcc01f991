// Mirror agreement (specs/services.md "Mirror agreement"): whether the
// mirror version's answer to a copied request says what the live answer
// said, counted per (service, mirror version) in the mirror's windows
// (mirror_compared, mirror_agreed) for deploy/shadow.
//
//   - AnswersAgree: the rule; pure.
//   - MirrorPair: the two answers of one mirrored request; whichever
//     arrives second (on any I/O thread) hands both to the comparer. Lock
//     free; made only for a request that is mirrored.
//   - MirrorComparer: a bounded queue (kCompareQueuePairs pairs,
//     kCompareQueueBytes of bodies) and one thread that applies the rule
//     and counts the outcome into the mirror version's WindowStats, so no
//     I/O thread parses an answer. A full queue skips the comparison (not
//     counted as compared; counted in skipped()).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "serving/stats.h"

namespace sluice::serving {

inline constexpr size_t kCompareQueuePairs = 256;
inline constexpr size_t kCompareQueueBytes = 64 << 20;
inline constexpr size_t kMaxComparedBody = 16 << 20;  // larger answers are compared byte for byte

// Whether two 200 answers agree. Both OIP v2 JSON with an `outputs` array:
// they agree when they have the same outputs (by name, else by position)
// and each pair agrees: for class scores (datatype FP16, BF16, FP32 or
// FP64, shape [k] or [1, k] with k >= 2, in both) the index of the largest
// value (the first of equal ones) is the same; for anything else the
// `data` arrays are equal (JSON equality: 1 equals 1.0, "a" only "a").
// Other fields of the answers (ids, timings, model_version) are ignored.
// Otherwise (not JSON, no outputs, over kMaxComparedBody): equal bytes.
bool AnswersAgree(std::string_view live, std::string_view mirror);

class MirrorComparer;

// The two answers of one mirrored request. Each side is set once.
class MirrorPair {
 public:
  MirrorPair(std::shared_ptr<WindowStats> mirror_stats, MirrorComparer* comparer)
      : stats_(std::move(mirror_stats)), comparer_(comparer) {}
  // status 0: no answer (the copy was dropped, or the live request failed).
  // The second call offers both answers to the comparer when both are 200.
  void SetLive(int status, std::shared_ptr<const std::string> body) { Set(&live_, status, std::move(body)); }
  void SetMirror(int status, std::shared_ptr<const std::string> body) { Set(&mirror_, status, std::move(body)); }

 private:
  struct Side {
    int status = 0;
    std::shared_ptr<const std::string> body;
  };
  void Set(Side* side, int status, std::shared_ptr<const std::string> body);
  std::shared_ptr<WindowStats> stats_;
  MirrorComparer* comparer_;
  Side live_, mirror_;
  std::atomic<int> arrived_{0};
};

class MirrorComparer {
 public:
  explicit MirrorComparer(size_t capacity = kCompareQueuePairs, size_t max_bytes = kCompareQueueBytes);
  ~MirrorComparer();  // Stop()
  MirrorComparer(const MirrorComparer&) = delete;
  MirrorComparer& operator=(const MirrorComparer&) = delete;

  // Queues a comparison; false (counted in skipped()) when stopped or full.
  // Thread-safe; never blocks beyond a short lock.
  bool Offer(std::shared_ptr<WindowStats> stats, std::shared_ptr<const std::string> live,
             std::shared_ptr<const std::string> mirror);
  // Compares what is queued, then stops the thread. Idempotent.
  void Stop();
  int64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }

 private:
  struct Item {
    std::shared_ptr<WindowStats> stats;
    std::shared_ptr<const std::string> live, mirror;
  };
  void Run();
  const size_t capacity_, max_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;  // GUARDED_BY(mu_)
  size_t bytes_ = 0;        // GUARDED_BY(mu_)
  bool stopped_ = false;    // GUARDED_BY(mu_)
  std::atomic<int64_t> skipped_{0};
  std::thread thread_;
};

}  // namespace sluice::serving
