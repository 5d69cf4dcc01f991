#include "server/webhook.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/hash.h"

namespace sluice::server {
namespace {

constexpr std::string_view kPrefix = "sha256=";

std::string Mac(std::string_view secret, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(body.data()),
       body.size(), mac, &len);
  return HexEncode(mac, len);
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
  std::string expected = Mac(secret, body);
  // Same length first (a length says nothing about the secret), then a
  // comparison whose time does not depend on where the strings differ.
  if (given.size() != expected.size() || CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0)
    return Status::Unauthenticated("X-Hub-Signature-256 does not match the body");
  return Status::Ok();
}

}  // namespace sluice::server
