// libFuzzer target: the answer parsing of the gateway's client to its
// replicas (server/upstream.h), through server::ParseUpstreamResponse,
// which runs the same parser, limits and conversion as a connection. No
// input may crash it, and no answer that passes may exceed the limits.
//
// The first byte picks the limits (bit 0: the defaults, or small ones the
// fuzzer can cross with short inputs) and the method (bit 1: HEAD, whose
// answer has no body, else POST).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/upstream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  sluice::server::UpstreamOptions options;
  if (data[0] & 1) {
    options.max_header = 256;
    options.max_body = 64;
  }
  std::string_view method = (data[0] & 2) ? "HEAD" : "POST";
  std::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);
  sluice::server::UpstreamResponse r;
  std::string why;
  auto result = sluice::server::ParseUpstreamResponse(wire, method, options, &r, &why);
  if (result == sluice::server::UpstreamParse::kBad && why.empty()) std::abort();  // a refusal says why
  if (result != sluice::server::UpstreamParse::kResponse) return 0;
  if (r.body.size() > options.max_body) std::abort();
  if (method == "HEAD" && !r.body.empty()) std::abort();
  if (r.status < 100 || r.status > 999 || (r.status < 200 && r.status != 101)) std::abort();
  size_t header_bytes = 0;
  for (const auto& [k, v] : r.headers) {
    header_bytes += k.size() + v.size();
    for (char c : k)
      if (c >= 'A' && c <= 'Z') std::abort();  // names are lower case
  }
  if (header_bytes > options.max_header) std::abort();
  (void)r.Header("content-type");
  return 0;
}
