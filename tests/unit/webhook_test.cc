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

// Svix's documented example (docs.svix.com, "Verifying signatures manually").
constexpr const char* kSvixSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kSvixId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kSvixTime = 1614265330;
constexpr const char* kSvixBody = "{\"test\": 2432232314}";
constexpr const char* kSvixSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

std::string Reason(const Status& s) { return s.code() == Code::kUnauthenticated ? s.message() : "not refused: " + s.message(); }

TEST(WebhookTest, AWhsecSecretIsBase64AfterItsPrefixAndAnyOtherSecretIsItsOwnBytes) {
  auto key = DecodeStandardSecret(kSvixSecret);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, *Base64Decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
  EXPECT_EQ(key->size(), 24u);
  EXPECT_EQ(*DecodeStandardSecret("plain secret"), "plain secret");
  EXPECT_EQ(*DecodeStandardSecret("whsec_aGk="), "hi");
  EXPECT_EQ(*DecodeStandardSecret("whsec_aA=="), "h");
  for (const char* bad : {"whsec_", "whsec_not base64", "whsec_aGk", "whsec_a===", "whsec_aG\nk="})
    EXPECT_EQ(DecodeStandardSecret(bad).status().message(), "the secret starts with whsec_ but the rest is not base64") << bad;
  EXPECT_EQ(Base64Encode("hi"), "aGk=");
  EXPECT_EQ(Base64Encode(""), "");
}

TEST(WebhookTest, AStandardWebhooksSignatureMatchesSvixsDocumentedExample) {
  std::string key = *DecodeStandardSecret(kSvixSecret);
  EXPECT_EQ(SignStandard(key, kSvixId, kSvixTime, kSvixBody), kSvixSignature);
  EXPECT_TRUE(VerifyStandardSignature(key, kSvixId, "1614265330", kSvixBody, kSvixSignature, kSvixTime).ok());
  // One of several space-separated signatures is enough; other versions are ignored.
  std::string several = std::string("v1a,AAAA v1,") + Base64Encode(std::string(32, 'x')) + " " + kSvixSignature;
  EXPECT_TRUE(VerifyStandardSignature(key, kSvixId, "1614265330", kSvixBody, several, kSvixTime).ok());
}

TEST(WebhookTest, ATimestampExactlyFiveMinutesAwayIsAcceptedAndOneSecondMoreIsRefused) {
  std::string key = *DecodeStandardSecret(kSvixSecret);
  auto verify = [&](int64_t now) {
    return VerifyStandardSignature(key, kSvixId, "1614265330", kSvixBody, kSvixSignature, now);
  };
  EXPECT_TRUE(verify(kSvixTime + 300).ok());
  EXPECT_TRUE(verify(kSvixTime - 300).ok());
  EXPECT_EQ(Reason(verify(kSvixTime + 301)),
            "webhook-timestamp is 301 s old, more than the 300 s allowed (a replay, or a clock that is off)");
  EXPECT_EQ(Reason(verify(kSvixTime - 301)), "webhook-timestamp is 301 s in the future, more than the 300 s allowed");
}

TEST(WebhookTest, BadOrMissingStandardWebhooksHeadersAreRefusedWithAReason) {
  std::string key = *DecodeStandardSecret(kSvixSecret);
  auto verify = [&](std::string_view id, std::string_view ts, std::string_view body, std::string_view sig) {
    return Reason(VerifyStandardSignature(key, id, ts, body, sig, kSvixTime));
  };
  const std::string mismatch = "webhook-signature does not match webhook-id, webhook-timestamp and the body";
  EXPECT_EQ(verify("", "1614265330", kSvixBody, kSvixSignature), "missing webhook-id header");
  EXPECT_EQ(verify(kSvixId, "", kSvixBody, kSvixSignature), "missing webhook-timestamp header");
  EXPECT_EQ(verify(kSvixId, "1614265330", kSvixBody, ""), "missing webhook-signature header");
  EXPECT_EQ(verify(kSvixId, "1614265330.0", kSvixBody, kSvixSignature), "webhook-timestamp must be Unix seconds (digits only)");
  EXPECT_EQ(verify(kSvixId, "-1", kSvixBody, kSvixSignature), "webhook-timestamp must be Unix seconds (digits only)");
  EXPECT_EQ(verify(kSvixId, "1614265330", kSvixBody, "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            "webhook-signature has no v1,<base64> signature");
  EXPECT_EQ(verify(kSvixId, "1614265330", "{\"test\": 1}", kSvixSignature), mismatch);         // another body
  EXPECT_EQ(verify("msg_other", "1614265330", kSvixBody, kSvixSignature), mismatch);            // another id
  EXPECT_EQ(verify(kSvixId, "1614265331", kSvixBody, kSvixSignature), mismatch);                // another time
  EXPECT_EQ(verify(kSvixId, "1614265330", kSvixBody, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="), mismatch);
  EXPECT_EQ(verify(kSvixId, "1614265330", kSvixBody, "v1,not-base64"), mismatch);
  EXPECT_EQ(verify(kSvixId, "1614265330", kSvixBody, "v1,"), mismatch);
  // The raw secret, not decoded, is the wrong key.
  EXPECT_EQ(Reason(VerifyStandardSignature(kSvixSecret, kSvixId, "1614265330", kSvixBody, kSvixSignature, kSvixTime)), mismatch);
}

}  // namespace
}  // namespace sluice::server
