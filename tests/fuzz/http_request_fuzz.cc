// libFuzzer target: the request parsing of the project's HTTP server, which
// `sluice serve` and the model server (`sluice serve-model`) both run on
// (Beast's parsers with the server's limits, then the Request a handler
// sees), through server::ParseRequest, which runs the same code as a
// connection; then the model server's header checks (Screen in
// orchestrator/server/request_guard.h) on every request that passes. No input may
// crash them, and no request that passes may exceed the limits.
//
// The first byte picks the limits: bit 0, the server's defaults or small
// ones the fuzzer can cross with short inputs (header and body limits,
// 413/431); bit 1, whether the model server's checks want a token.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/http.h"
#include "server/request_guard.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  sluice::server::ServerOptions options;
  if (data[0] & 1) {
    options.max_header = 256;
    options.max_body = 64;
  }
  std::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);
  sluice::server::Request r;
  auto result = sluice::server::ParseRequest(wire, options, &r);
  if (result != sluice::server::ParseResult::kRequest) return 0;
  if (r.body.size() > options.max_body) std::abort();
  size_t header_bytes = 0;
  for (const auto& [k, v] : r.headers) {
    header_bytes += k.size() + v.size();
    for (char c : k)
      if (c >= 'A' && c <= 'Z') std::abort();  // names are lower case
  }
  if (header_bytes > options.max_header) std::abort();
  if (r.target.empty() || r.target[0] != '/') std::abort();
  (void)r.Header("authorization");
  (void)r.Query("limit");

  sluice::server::Guard guard;
  guard.allowed_hosts = {"models.internal"};
  if (data[0] & 2) guard.token = "s3rv3r-t0ken";
  auto refused = sluice::server::Screen(r, guard);
  if (refused && refused->status != 401 && refused->status != 403 && refused->status != 431) std::abort();
  if (refused && refused->status == 401 && guard.token.empty()) std::abort();  // no token, no 401
  return 0;
}
