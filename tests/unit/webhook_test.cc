// Webhook signatures: good, bad, missing, malformed, and a known vector.
#include "server/webhook.h"

#include <gtest/gtest.h>

#include <cctype>

namespace sluice::server {
namespace {

TEST(WebhookTest, ASignatureFromTheSharedSecretIsAccepted) {
  // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
  EXPECT_EQ(Sign("It's a Secret to Everybody", "Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  EXPECT_TRUE(VerifySignature("It's a Secret to Everybody", "Hello, World!",
                              "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
                  .ok());
  EXPECT_TRUE(VerifySignature("s", "{}", "sha256=" + [] {
                std::string hex = Sign("s", "{}").substr(7);
                for (char& c : hex) c = char(std::toupper(static_cast<unsigned char>(c)));
                return hex;
              }())
                  .ok());
}

TEST(WebhookTest, MissingMalformedOrWrongSignaturesAreRefusedWithAReason) {
  std::string good = Sign("secret", "{\"ref\": \"main\"}");
  auto reason = [](const Status& s) { return s.code() == Code::kUnauthenticated ? s.message() : "not refused"; };
  EXPECT_EQ(reason(VerifySignature("secret", "{\"ref\": \"main\"}", "")), "missing X-Hub-Signature-256 header");
  EXPECT_EQ(reason(VerifySignature("secret", "{\"ref\": \"main\"}", good.substr(7))),
            "X-Hub-Signature-256 must start with sha256=");
  EXPECT_EQ(reason(VerifySignature("other", "{\"ref\": \"main\"}", good)), "X-Hub-Signature-256 does not match the body");
  EXPECT_EQ(reason(VerifySignature("secret", "{\"ref\": \"evil\"}", good)), "X-Hub-Signature-256 does not match the body");
  EXPECT_EQ(reason(VerifySignature("secret", "{\"ref\": \"main\"}", good.substr(0, good.size() - 2))),
            "X-Hub-Signature-256 does not match the body");
}

}  // namespace
}  // namespace sluice::server
