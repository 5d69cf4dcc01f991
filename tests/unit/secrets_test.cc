// Secret names and masking (util/secrets.h).
#include <gtest/gtest.h>

#include "util/secrets.h"

using sluice::LooksSecret;
using sluice::SecretMask;

TEST(SecretsTest, NamesThatHoldSecretsLookSecretAndOthersDoNot) {
  for (const char* n : {"GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "OPENAI_API_KEY", "my_apikey", "SECRET",
                        "GOOGLE_APPLICATION_CREDENTIALS", "SSH_PRIVATE_KEY", "AWS_ACCESS_KEY_ID"})
    EXPECT_TRUE(LooksSecret(n)) << n;
  for (const char* n : {"PATH", "HOME", "TOKENIZERS_PARALLELISM", "SECRETARY", "KEYBOARD", "PASSENGERS", "LANG"})
    EXPECT_FALSE(LooksSecret(n)) << n;
}

TEST(SecretsTest, MaskReplacesEveryOccurrenceAndTheLongestSecretFirst) {
  SecretMask m({"abcd", "abcdefgh", "xyz"});  // xyz is under 4 bytes: not masked
  EXPECT_EQ(m.Mask("1 abcdefgh 2 abcd 3 xyz abcdabcd"), "1 *** 2 *** 3 xyz ******");
}

TEST(SecretsTest, AStreamMasksASecretCutAcrossChunksAtEveryPoint) {
  const std::string text = "before s3cr3t-value after s3cr3t-value";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    SecretMask m({"s3cr3t-value"});
    std::string out = m.Feed(text.substr(0, cut));
    out += m.Feed(text.substr(cut));
    out += m.Flush();
    EXPECT_EQ(out, "before *** after ***") << cut;
  }
}

TEST(SecretsTest, AStreamHoldsBackOnlyWhatCouldStartASecret) {
  SecretMask m({"secret-1"});
  EXPECT_EQ(m.Feed("hello sec"), "hello ");
  EXPECT_EQ(m.Feed("ond"), "second");
  EXPECT_EQ(m.Flush(), "");
}
