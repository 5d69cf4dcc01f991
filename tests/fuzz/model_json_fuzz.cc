// libFuzzer target: JSON request decoding of the model server
// (`sluice serve-model`, plugins/torch/model_server.cc), through the same
// bounded parser it uses (plugins/torch/bounded_json.h) with the server's
// bounds for a 1x28x28 model, then the walks the server does on an accepted
// body (flattening "data", dump() of fields for messages).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bounded_json.h"

namespace {

using json = nlohmann::json;

constexpr size_t kMaxDepth = 16;                   // model_server.cc's kMaxDepth
constexpr size_t kMaxValues = 256 * 784 + 4096;    // max_images x C x H x W + 4,096

size_t Depth(const json& j) {
  size_t d = 0;
  if (j.is_structured())
    for (const auto& e : j) d = std::max(d, Depth(e) + 1);
  return d;
}

size_t Count(const json& j) {
  size_t n = 1;
  if (j.is_structured())
    for (const auto& e : j) n += Count(e);
  return n;
}

void Flatten(const json& v, std::vector<float>* out) {
  if (v.is_array()) {
    for (const json& e : v) Flatten(e, out);
  } else if (v.is_number()) {
    out->push_back(v.get<float>());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  json req;
  std::string why = sluice::torchplugin::ParseBounded(body, kMaxDepth, kMaxValues, &req);
  if (!why.empty()) return 0;
  // Accepted: within every bound, whatever the input.
  if (Depth(req) > kMaxDepth || Count(req) > kMaxValues) std::abort();
  (void)req.dump();
  if (!req.is_object() || !req.contains("inputs") || !req["inputs"].is_array() || req["inputs"].empty()) return 0;
  const json& in = req["inputs"][0];
  if (!in.is_object()) return 0;
  if (in.contains("shape")) (void)in["shape"].dump();
  std::vector<float> values;
  if (in.contains("data")) Flatten(in["data"], &values);
  for (float f : values)
    if (std::isnan(f)) std::abort();  // NaN cannot get through
  return 0;
}
