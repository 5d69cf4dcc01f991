// The gateway's side of feedback (POST /v2/models/{service}/feedback,
// specs/services.md "Feedback"): what a caller reports of an answer, a
// reward or a label, for the version that gave it. deploy/ab-test reads
// the rows (store/feedback.h) per variant.
//
//   - RecentAnswers: per service, which version gave each of the last N
//     live answers, by request id (x-request-id). I/O threads Remember
//     when a live answer goes out and Find when feedback names a request
//     id. Thread-safe (one mutex; Remember is a map insert and a ring
//     slot, Find a lookup).
//   - ParseFeedback: the body's fields, checked; pure.
//   - FeedbackQueue: resolved rows on their way from the I/O threads to the
//     control thread, which writes them in batches; bounded, never blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/feedback.h"
#include "util/status.h"

namespace sluice::serving {

inline constexpr size_t kRememberedAnswers = 100000;  // per service: request ids feedback can name
inline constexpr size_t kMaxFeedbackBody = 64 << 10;  // a larger body is refused (400)
inline constexpr size_t kMaxFeedbackLabel = 256;      // bytes of a label
inline constexpr size_t kFeedbackQueueRows = 10000;   // rows waiting for the control thread; then 503
inline constexpr int64_t kFeedbackWriteEveryMs = 250; // the control thread writes what is queued this often

// The last `capacity` request ids of one service and the version that
// answered each. Remembering the capacity+1-th forgets the oldest; an id
// remembered again counts as new (its latest version is kept, and it is
// forgotten only when its latest entry is the oldest).
class RecentAnswers {
 public:
  explicit RecentAnswers(size_t capacity);
  RecentAnswers(const RecentAnswers&) = delete;
  RecentAnswers& operator=(const RecentAnswers&) = delete;

  void Remember(std::string_view request_id, std::string_view version);
  // The version that answered `request_id`; nullopt once forgotten or never seen.
  std::optional<std::string> Find(std::string_view request_id) const;
  size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    std::string version;
    uint64_t sequence = 0;  // of its latest Remember
  };
  const size_t capacity_;
  mutable std::mutex mu_;
  uint64_t next_sequence_ = 0;                        // GUARDED_BY(mu_)
  std::vector<std::string> ring_;                     // GUARDED_BY(mu_): ids by sequence % capacity
  std::unordered_map<std::string, Entry> by_id_;      // GUARDED_BY(mu_)
};

// A feedback body, checked: exactly one of request_id and key, exactly one
// of reward (finite) and label (at most kMaxFeedbackLabel bytes).
struct FeedbackRequest {
  std::string request_id;            // empty: by key
  std::string key;                   // a string, or an integer's text; empty: by request id
  std::optional<double> reward;
  std::optional<std::string> label;
  std::optional<int64_t> at_ms;      // when the outcome happened; absent: on arrival
};
// InvalidSpec naming the field ("reward: not a finite number") for a body
// that is not a JSON object of those fields (unknown fields included), or
// larger than kMaxFeedbackBody.
Result<FeedbackRequest> ParseFeedback(const std::string& body);

// Thread-safe bounded queue of rows.
class FeedbackQueue {
 public:
  explicit FeedbackQueue(size_t capacity = kFeedbackQueueRows) : capacity_(capacity) {}
  // Queues the row; false when `capacity` rows are waiting (nothing queued).
  bool Offer(store::FeedbackRow row);
  // Every queued row, oldest first; the queue is left empty.
  std::vector<store::FeedbackRow> TakeAll();

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::vector<store::FeedbackRow> rows_;  // GUARDED_BY(mu_)
};

}  // namespace sluice::serving
