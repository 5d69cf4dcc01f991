// Webhook signatures, two ways, for `POST /hooks/{pipeline}` (on.webhook) of
// `sluice serve`:
//   - GitHub's: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
//     body, keyed by the shared secret>`. Nothing signed says when it was
//     sent, so the server bounds replays by remembering bodies (api.cc).
//   - Standard Webhooks (Svix's scheme): `webhook-id`, `webhook-timestamp`
//     (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//     "<id>.<timestamp>.<body>">`, a space-separated list of signatures of
//     which one must match; a timestamp more than kTimestampTolerance from
//     the server's clock is refused, which bounds a replay to that window.
// Every comparison is constant-time. Pure functions: any thread may call them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace sluice::server {

// How long the server remembers a pipeline's deliveries (ids and SHA-256 of
// bodies): the same id or the same body again within it starts no run.
constexpr int64_t kReplayWindowSeconds = 24 * 3600;

// How far a Standard Webhooks timestamp may be from the server's clock, either way.
constexpr int64_t kTimestampToleranceSeconds = 5 * 60;

// Ok if `header` (the X-Hub-Signature-256 value, empty when missing) signs
// `body` with `secret`; else Unauthenticated with a reason that says what
// was wrong with the header but nothing about the expected value.
Status VerifySignature(std::string_view secret, std::string_view body, std::string_view header);

// "sha256=<hex>" for `body`, as a sender computes it (for tests and clients).
std::string Sign(std::string_view secret, std::string_view body);

// The HMAC key of a Standard Webhooks secret: for "whsec_<base64>" the
// decoded bytes (InvalidSpec if the rest is not base64), else the secret's
// own bytes.
Result<std::string> DecodeStandardSecret(std::string_view secret);

// Ok if the Standard Webhooks headers sign `body` with `key` (the decoded
// secret) and `timestamp` is within kTimestampToleranceSeconds of `now_s`
// (Unix seconds; exactly the tolerance is accepted); else Unauthenticated
// with the reason. Empty strings are missing headers. Signatures other than
// `v1,` ones (v1a, ...) are ignored.
Status VerifyStandardSignature(std::string_view key, std::string_view id, std::string_view timestamp,
                               std::string_view body, std::string_view signature, int64_t now_s);

// "v1,<base64>" for a delivery, as a Standard Webhooks sender computes it
// with the decoded key (for tests and clients).
std::string SignStandard(std::string_view key, std::string_view id, int64_t timestamp, std::string_view body);

// Base64 (RFC 4648, with padding) of bytes, and back (nullopt-like
// InvalidSpec for anything that is not canonical base64).
std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace sluice::server
