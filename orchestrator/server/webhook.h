// Webhook signatures, GitHub's way: the sender puts
// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by
// the shared secret>` on the request; we recompute it and compare in
// constant time. Used by `POST /hooks/{pipeline}` (on.webhook) of
// `sluice serve`.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace sluice::server {

// Ok if `header` (the X-Hub-Signature-256 value, empty when missing) signs
// `body` with `secret`; else Unauthenticated with a reason that says what
// was wrong with the header but nothing about the expected value.
Status VerifySignature(std::string_view secret, std::string_view body, std::string_view header);

// "sha256=<hex>" for `body`, as a sender computes it (for tests and clients).
std::string Sign(std::string_view secret, std::string_view body);

}  // namespace sluice::server
