#include "store/access.h"

#include <openssl/rand.h>
#include <sqlite3.h>

#include "util/hash.h"

namespace sluice::store {

const char* TokenScopeName(TokenScope s) {
  switch (s) {
    case TokenScope::kRead: return "read";
    case TokenScope::kRun: return "run";
    case TokenScope::kAdmin: return "admin";
  }
  return "read";
}

std::optional<TokenScope> ParseTokenScope(const std::string& text) {
  if (text == "read") return TokenScope::kRead;
  if (text == "run") return TokenScope::kRun;
  if (text == "admin") return TokenScope::kAdmin;
  return std::nullopt;
}

Result<std::string> AccessStore::CreateToken(const std::string& name, TokenScope scope, int64_t now_ms) {
  if (Status st = db_.RequireNoBatch("CreateToken"); !st.ok()) return st;
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) return Status::Internal("no random bytes for a token");
  std::string token = "slc_" + HexEncode(random, sizeof random);
  Query q = db_.Prepare("INSERT INTO tokens(name, scope, hash, created_ms) VALUES (?, ?, ?, ?)");
  q.Bind(1, name).Bind(2, std::string(TokenScopeName(scope))).Bind(3, Sha256Hex(token)).Bind(4, now_ms);
  if (q.Step() != SQLITE_DONE) return db_.Error("create a token");
  return token;
}

Result<std::optional<Token>> AccessStore::FindToken(const std::string& text) {
  Query q = db_.Prepare("SELECT id, name, scope, created_ms FROM tokens WHERE hash = ? AND revoked_ms IS NULL");
  q.Bind(1, Sha256Hex(text));
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<Token>();
  if (rc != SQLITE_ROW) return db_.Error("look up a token");
  Token t;
  t.id = q.Int(0);
  t.name = q.Text(1);
  t.scope = ParseTokenScope(q.Text(2)).value_or(TokenScope::kRead);
  t.created_ms = q.Int(3);
  return std::optional<Token>(t);
}

Result<std::vector<Token>> AccessStore::ListTokens() {
  Query q = db_.Prepare("SELECT id, name, scope, created_ms, IFNULL(revoked_ms, 0) FROM tokens ORDER BY id");
  std::vector<Token> out;
  Status st = q.ForEachRow("list tokens", [&] {
    Token t;
    t.id = q.Int(0);
    t.name = q.Text(1);
    t.scope = ParseTokenScope(q.Text(2)).value_or(TokenScope::kRead);
    t.created_ms = q.Int(3);
    t.revoked_ms = q.Int(4);
    out.push_back(std::move(t));
  });
  if (!st.ok()) return st;
  return out;
}

Status AccessStore::RevokeToken(int64_t id, int64_t now_ms) {
  if (Status st = db_.RequireNoBatch("RevokeToken"); !st.ok()) return st;
  Query q = db_.Prepare("UPDATE tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL");
  q.Bind(1, now_ms).Bind(2, id);
  if (q.Step() != SQLITE_DONE) return db_.Error("revoke token " + std::to_string(id));
  if (db_.Changes() == 0) return Status::NotFound("no valid token with id " + std::to_string(id));
  return Status::Ok();
}

Result<std::optional<int64_t>> AccessStore::LastFire(const std::string& pipeline, const std::string& schedule) {
  Query q = db_.Prepare("SELECT fired_ms FROM schedule_fires WHERE pipeline = ? AND schedule = ?");
  q.Bind(1, pipeline).Bind(2, schedule);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return std::optional<int64_t>();
  if (rc != SQLITE_ROW) return db_.Error("read schedule of " + pipeline);
  return std::optional<int64_t>(q.Int(0));
}

Status AccessStore::SetLastFire(const std::string& pipeline, const std::string& schedule, int64_t fired_ms) {
  if (Status st = db_.RequireNoBatch("SetLastFire"); !st.ok()) return st;
  Query q = db_.Prepare(
      "INSERT INTO schedule_fires(pipeline, schedule, fired_ms) VALUES (?, ?, ?) "
      "ON CONFLICT(pipeline, schedule) DO UPDATE SET fired_ms = excluded.fired_ms");
  q.Bind(1, pipeline).Bind(2, schedule).Bind(3, fired_ms);
  if (q.Step() != SQLITE_DONE) return db_.Error("save schedule of " + pipeline);
  return Status::Ok();
}

Result<DeliveryCheck> AccessStore::RecordDelivery(const std::string& pipeline, const std::string& delivery,
                                                  const std::string& body_sha256, int64_t now_ms, int64_t window_ms) {
  DeliveryCheck out;
  Status st = db_.Transaction("RecordDelivery", [&] {
    {
      // Rows older than the window say nothing any more.
      Query prune = db_.Prepare("DELETE FROM webhook_deliveries WHERE received_ms < ?");
      if (prune.Bind(1, now_ms - window_ms).Step() != SQLITE_DONE) return db_.Error("prune webhook deliveries");
    }
    {
      Query q = db_.Prepare("SELECT IFNULL(run_id, 0) FROM webhook_deliveries WHERE pipeline = ? AND delivery = ?");
      int rc = q.Bind(1, pipeline).Bind(2, delivery).Step();
      if (rc == SQLITE_ROW) {
        out.duplicate = true;
        out.run_id = q.Int(0);
        out.earlier_delivery = delivery;
      } else if (rc != SQLITE_DONE) {
        return db_.Error("read webhook delivery");
      }
    }
    if (!out.duplicate) {
      Query q = db_.Prepare(
          "SELECT IFNULL(run_id, 0), delivery FROM webhook_deliveries WHERE pipeline = ? AND body_sha256 = ? "
          "ORDER BY received_ms LIMIT 1");
      int rc = q.Bind(1, pipeline).Bind(2, body_sha256).Step();
      if (rc == SQLITE_ROW) {
        out.duplicate = true;
        out.same_body = true;
        out.run_id = q.Int(0);
        out.earlier_delivery = q.Text(1);
      } else if (rc != SQLITE_DONE) {
        return db_.Error("read webhook deliveries");
      }
    }
    if (!out.duplicate) {
      Query ins =
          db_.Prepare("INSERT INTO webhook_deliveries(pipeline, delivery, received_ms, body_sha256) VALUES (?, ?, ?, ?)");
      if (ins.Bind(1, pipeline).Bind(2, delivery).Bind(3, now_ms).Bind(4, body_sha256).Step() != SQLITE_DONE)
        return db_.Error("record webhook delivery");
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Status AccessStore::SetDeliveryRun(const std::string& pipeline, const std::string& delivery, int64_t run_id) {
  if (Status st = db_.RequireNoBatch("SetDeliveryRun"); !st.ok()) return st;
  Query q = db_.Prepare("UPDATE webhook_deliveries SET run_id = ? WHERE pipeline = ? AND delivery = ?");
  q.Bind(1, run_id).Bind(2, pipeline).Bind(3, delivery);
  if (q.Step() != SQLITE_DONE) return db_.Error("record webhook delivery's run");
  return Status::Ok();
}

}  // namespace sluice::store
