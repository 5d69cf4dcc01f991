// libFuzzer target: the request parsing of `sluice serve` (Beast's parsers
// with the server's limits, then the Request the API sees), through
// server::ParseRequest, which runs the same code as a connection. No input
// may crash it, and no request that passes may exceed the limits.
//
// The first byte picks the limits: the server's defaults, or small ones the
// fuzzer can cross with short inputs (header and body limits, 413/431).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/http.h"

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
  return 0;
}
