#include "server/webhook.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/hash.h"

namespace sluice::server {
namespace {

constexpr std::string_view kPrefix = "sha256=";
constexpr std::string_view kStandardPrefix = "whsec_";

std::string RawMac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string Mac(std::string_view secret, std::string_view body) {
  std::string raw = RawMac(secret, body);
  return HexEncode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

// Same length first (a length says nothing about the secret), then a
// comparison whose time does not depend on where the strings differ.
bool SameBytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string Sign(std::string_view secret, std::string_view body) { return std::string(kPrefix) + Mac(secret, body); }

Status VerifySignature(std::string_view secret, std::string_view body, std::string_view header) {
  if (header.empty()) return Status::Unauthenticated("missing X-Hub-Signature-256 header");
  if (header.substr(0, kPrefix.size()) != kPrefix)
    return Status::Unauthenticated("X-Hub-Signature-256 must start with sha256=");
  std::string given(header.substr(kPrefix.size()));
  for (char& c : given)
    if (c >= 'A' && c <= 'F') c = char(c - 'A' + 'a');  // hex digits in either case
  if (!SameBytes(given, Mac(secret, body))) return Status::Unauthenticated("X-Hub-Signature-256 does not match the body");
  return Status::Ok();
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  auto bad = [] { return Status::InvalidSpec("not base64"); };
  if (text.empty() || text.size() % 4 != 0) return bad();
  size_t pad = text.back() == '=' ? (text[text.size() - 2] == '=' ? 2 : 1) : 0;
  for (size_t i = 0; i < text.size() - pad; ++i) {
    char c = text[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!ok) return bad();  // EVP_DecodeBlock would skip spaces and stop at other bytes
  }
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return bad();
  out.resize(static_cast<size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zero bytes
  return out;
}

Result<std::string> DecodeStandardSecret(std::string_view secret) {
  if (secret.substr(0, kStandardPrefix.size()) != kStandardPrefix) return std::string(secret);
  auto key = Base64Decode(secret.substr(kStandardPrefix.size()));
  if (!key.ok()) return Status::InvalidSpec("the secret starts with whsec_ but the rest is not base64");
  return key;
}

std::string SignStandard(std::string_view key, std::string_view id, int64_t timestamp, std::string_view body) {
  std::string content = std::string(id) + "." + std::to_string(timestamp) + "." + std::string(body);
  return "v1," + Base64Encode(RawMac(key, content));
}

Status VerifyStandardSignature(std::string_view key, std::string_view id, std::string_view timestamp,
                               std::string_view body, std::string_view signature, int64_t now_s) {
  if (id.empty()) return Status::Unauthenticated("missing webhook-id header");
  if (timestamp.empty()) return Status::Unauthenticated("missing webhook-timestamp header");
  if (signature.empty()) return Status::Unauthenticated("missing webhook-signature header");
  if (timestamp.size() > 12 || timestamp.find_first_not_of("0123456789") != std::string_view::npos)
    return Status::Unauthenticated("webhook-timestamp must be Unix seconds (digits only)");
  int64_t ts = std::stoll(std::string(timestamp));
  int64_t off = now_s - ts;
  if (off > kTimestampToleranceSeconds)
    return Status::Unauthenticated("webhook-timestamp is " + std::to_string(off) + " s old, more than the " +
                                   std::to_string(kTimestampToleranceSeconds) + " s allowed (a replay, or a clock that is off)");
  if (-off > kTimestampToleranceSeconds)
    return Status::Unauthenticated("webhook-timestamp is " + std::to_string(-off) + " s in the future, more than the " +
                                   std::to_string(kTimestampToleranceSeconds) + " s allowed");
  std::string expected =
      RawMac(key, std::string(id) + "." + std::string(timestamp) + "." + std::string(body));
  bool any_v1 = false, match = false;
  size_t pos = 0;
  while (pos < signature.size()) {
    size_t end = signature.find(' ', pos);
    std::string_view one = signature.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? signature.size() : end + 1;
    if (one.substr(0, 3) != "v1,") continue;
    any_v1 = true;
    auto given = Base64Decode(one.substr(3));
    // Every v1 entry is compared, so the time taken does not say which one matched.
    if (given.ok() && SameBytes(*given, expected)) match = true;
  }
  if (!any_v1) return Status::Unauthenticated("webhook-signature has no v1,<base64> signature");
  if (!match) return Status::Unauthenticated("webhook-signature does not match webhook-id, webhook-timestamp and the body");
  return Status::Ok();
}

}  // namespace sluice::server
