// Secrets: which environment variables are secrets, and masking their
// values as `***` in what Sluice writes (logs, outputs, reasons), the way
// GitHub Actions prints them. specs/pipeline.md ("Secrets and the step
// environment") states the rules.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// True for a name that looks like it holds a secret: one of its `_`-separated
// parts is TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL(S), APIKEY or
// PRIVATE, or it has API_KEY or ACCESS_KEY in it (any case). GITHUB_TOKEN,
// AWS_SECRET_ACCESS_KEY and DB_PASSWORD do; TOKENIZERS_PARALLELISM does not.
bool LooksSecret(std::string_view name);

// Replaces every occurrence of the secret values with "***". Values shorter
// than 4 bytes are not masked (masking "1" would hide every digit); a
// pipeline should not use such secrets. Not thread-safe; one per stream.
class SecretMask {
 public:
  SecretMask() = default;
  explicit SecretMask(std::vector<std::string> values);

  bool empty() const { return values_.empty(); }
  // A whole text: masked.
  std::string Mask(std::string_view text) const;
  // A stream cut in arbitrary chunks: what can be written now. A secret split
  // across two chunks is still masked; up to (longest secret - 1) bytes are
  // held back until the next Feed or Flush.
  std::string Feed(std::string_view chunk);
  std::string Flush();

 private:
  // The length of the secret that starts at text[i], or 0.
  size_t MatchAt(std::string_view text, size_t i) const;

  std::vector<std::string> values_;  // longest first, so a secret inside another is masked whole
  size_t longest_ = 0;
  std::string held_;
};

}  // namespace sluice
