// FeedbackStore: what callers report of the gateway's answers
// (POST /v2/models/{service}/feedback, specs/services.md "Feedback";
// the `feedback` table of specs/store.md, schema version 12): a reward or a
// label for the version (variant) that answered a request, or that a
// sticky key routes to. deploy/ab-test sums it per variant with Summary.
//
// Who writes: the gateway's control thread, in batches of what its I/O
// threads queued (one transaction per batch). Who reads: deploy/ab-test,
// tests. One object per thread, like its Db.
// REQUIRES (Append): no journal batch is open (db.h; checked).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "store/db.h"

namespace sluice::store {

// One row. Exactly one of request_id and key is set (non-empty), and
// exactly one of reward and label.
struct FeedbackRow {
  std::string service, version;
  std::string request_id;            // empty: by key
  std::string key;                   // empty: by request id
  std::optional<double> reward;      // finite
  std::optional<std::string> label;  // at most 256 bytes (the gateway checks)
  int64_t at_ms = 0;                 // when the outcome happened (the caller's at_ms, else arrival)
};

// The feedback of one version over an interval.
struct FeedbackSummary {
  int64_t count = 0;                  // rows, rewards and labels alike
  int64_t rewards = 0;                // rows with a reward
  int64_t positive_rewards = 0;       // rows with a reward above 0 (an A/B test's successes)
  double reward_sum = 0, reward_sq_sum = 0;
  std::map<std::string, int64_t> labels;  // label -> rows
};

class FeedbackStore {
 public:
  explicit FeedbackStore(Db& db) : db_(db) {}

  // Writes every row in one transaction (none on failure). An empty
  // `rows` writes nothing. REQUIRES: no journal batch is open.
  Status Append(const std::vector<FeedbackRow>& rows);
  // Per version of `service`, the rows with from_ms <= at_ms < to_ms.
  // Versions without a row are absent.
  Result<std::map<std::string, FeedbackSummary>> Summary(const std::string& service, int64_t from_ms, int64_t to_ms);
  // The rows of `service` with from_ms <= at_ms < to_ms, oldest first
  // (by at_ms, then by arrival). For tests and exports.
  Result<std::vector<FeedbackRow>> Rows(const std::string& service, int64_t from_ms, int64_t to_ms);

 private:
  Db& db_;
};

}  // namespace sluice::store
