// AccessStore: who may use `sluice serve` and what triggered runs: API
// tokens (stored as SHA-256 hashes only), the last fire time of each
// pipeline's schedules, and the webhook deliveries seen (specs/store.md,
// schema versions 5, 6 and 8).
//
// Who uses it: `sluice token`, the server's API (tokens, webhook
// deliveries) and its scheduler (fire times).
//
// Writes are transactions of their own:
// REQUIRES: no journal batch is open (db.h; checked, an Internal error).
// One object per thread, like its Db.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/db.h"

namespace sluice::store {

// What an API token may do: read < run (start, cancel, retry) < admin.
enum class TokenScope { kRead, kRun, kAdmin };
const char* TokenScopeName(TokenScope s);
std::optional<TokenScope> ParseTokenScope(const std::string& text);

struct Token {
  int64_t id = 0;
  std::string name;
  TokenScope scope = TokenScope::kRead;
  int64_t created_ms = 0;
  int64_t revoked_ms = 0;  // 0 while valid
  bool Allows(TokenScope needed) const { return static_cast<int>(scope) >= static_cast<int>(needed); }
};

// What RecordDelivery found.
struct DeliveryCheck {
  bool duplicate = false;        // the delivery id, or the body, was seen within the window
  bool same_body = false;        // a duplicate by its body (under another delivery id)
  int64_t run_id = 0;            // the run the earlier delivery started (0 if none yet)
  std::string earlier_delivery;  // the earlier delivery's id
};

class AccessStore {
 public:
  explicit AccessStore(Db& db) : db_(db) {}

  // API tokens: the text ("slc_" and 64 hex digits) is returned once by
  // CreateToken; only its SHA-256 is stored. FindToken finds a valid one.
  // REQUIRES: no journal batch is open.
  Result<std::string> CreateToken(const std::string& name, TokenScope scope, int64_t now_ms);
  Result<std::optional<Token>> FindToken(const std::string& text);
  Result<std::vector<Token>> ListTokens();
  // REQUIRES: no journal batch is open.
  Status RevokeToken(int64_t id, int64_t now_ms);

  // The server's schedules: the last fire time handled per pipeline and
  // schedule ("<cron> <timezone>"); none before the first.
  Result<std::optional<int64_t>> LastFire(const std::string& pipeline, const std::string& schedule);
  // REQUIRES: no journal batch is open.
  Status SetLastFire(const std::string& pipeline, const std::string& schedule, int64_t fired_ms);

  // Webhook deliveries, in one transaction: forgets deliveries received
  // before now_ms - window_ms; then a delivery whose id, or whose body's
  // SHA-256, the pipeline saw since is a duplicate (with the run the earlier
  // one started); anything else is recorded.
  // REQUIRES: no journal batch is open.
  Result<DeliveryCheck> RecordDelivery(const std::string& pipeline, const std::string& delivery,
                                       const std::string& body_sha256, int64_t now_ms, int64_t window_ms);
  // REQUIRES: no journal batch is open.
  Status SetDeliveryRun(const std::string& pipeline, const std::string& delivery, int64_t run_id);

 private:
  Db& db_;
};

}  // namespace sluice::store
