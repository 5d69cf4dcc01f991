// token create, list, revoke: API tokens for `sluice serve`.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

int CreateToken(const std::string& name, const std::string& scope_text) {
  auto scope = store::ParseTokenScope(scope_text);
  if (!scope) {
    std::cerr << "sluice: --scope must be read, run or admin, not " << Quote(scope_text) << "\n";
    return kExitUsage;
  }
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto token = store->access().CreateToken(name, *scope, WallClockMs());
  if (!token.ok()) {
    std::cerr << "sluice: " << token.status().message() << "\n";
    return kExitFailed;
  }
  std::printf("%s\n", token->c_str());
  std::cerr << "token '" << name << "' (scope " << scope_text
            << ") created; only its hash is stored, so keep it now: it cannot be shown again\n";
  return kExitOk;
}

int ListTokens(const std::string& format) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto tokens = store->access().ListTokens();
  if (!tokens.ok()) {
    std::cerr << "sluice: " << tokens.status().message() << "\n";
    return kExitFailed;
  }
  if (format == "json") {
    nlohmann::json j = nlohmann::json::array();
    for (const store::Token& t : *tokens)
      j.push_back({{"id", t.id},
                   {"name", t.name},
                   {"scope", store::TokenScopeName(t.scope)},
                   {"created", IsoTime(t.created_ms)},
                   {"revoked", t.revoked_ms ? nlohmann::json(IsoTime(t.revoked_ms)) : nlohmann::json()}});
    std::printf("%s\n", JsonText(j, 2).c_str());
    return kExitOk;
  }
  std::printf("%-4s %-20s %-6s %-20s %s\n", "ID", "NAME", "SCOPE", "CREATED", "STATE");
  for (const store::Token& t : *tokens)
    std::printf("%-4lld %-20s %-6s %-20s %s\n", static_cast<long long>(t.id), t.name.c_str(),
                store::TokenScopeName(t.scope), LocalTime(t.created_ms).c_str(),
                t.revoked_ms ? ("revoked " + LocalTime(t.revoked_ms)).c_str() : "valid");
  return kExitOk;
}

int RevokeToken(int64_t id) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->access().RevokeToken(id, WallClockMs());
  if (!st.ok()) {
    std::cerr << "sluice: " << st.message() << "\n";
    return kExitFailed;
  }
  std::printf("token %lld revoked\n", static_cast<long long>(id));
  return kExitOk;
}

}  // namespace sluice::cli
