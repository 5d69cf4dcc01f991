// libFuzzer target: JSON request decoding for the model server
// (`sluice serve-model`, plugins/torch/model_server.cc).
//
// The model server decodes a request inside ParseInfer, which is private to
// model_server.cc and needs libtorch, so this target fuzzes what the decoding
// rests on: nlohmann::json::parse with the limits a request must meet, from
// BoundedJson below (a depth-checking parser callback and a size check),
// followed by the walks the server does on an accepted body (a recursive
// flatten of "data", dump() of fields for messages). The server should
// decode through the same bounds: see the note in issue 19's report.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;

constexpr size_t kMaxBody = 16 << 20;  // the model server's max_body_bytes default
constexpr int kMaxDepth = 64;          // arrays and objects nested at most this deep

// The body as JSON if it is JSON within the limits; discarded otherwise.
// `too_deep` tells the two refusals apart.
json BoundedJson(std::string_view body, bool* too_deep) {
  *too_deep = false;
  if (body.size() > kMaxBody) return json(json::value_t::discarded);
  auto check = [&](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::array_start || event == json::parse_event_t::object_start) && depth >= kMaxDepth)
      *too_deep = true;
    return !*too_deep;
  };
  json j = json::parse(body.begin(), body.end(), check, /*allow_exceptions=*/false);
  if (*too_deep) return json(json::value_t::discarded);
  return j;
}

int Depth(const json& j) {
  int d = 0;
  if (j.is_structured())
    for (const auto& e : j) d = std::max(d, Depth(e) + 1);
  return d;
}

// As model_server.cc's Flatten: numbers of a nested array, or false.
bool Flatten(const json& v, std::vector<float>* out) {
  if (v.is_array()) {
    for (const json& e : v)
      if (!Flatten(e, out)) return false;
    return true;
  }
  if (!v.is_number()) return false;
  out->push_back(v.get<float>());
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  bool too_deep = false;
  json req = BoundedJson(body, &too_deep);
  if (req.is_discarded()) return 0;
  if (Depth(req) >= kMaxDepth + 1) std::abort();  // the callback let a too-deep document through
  (void)req.dump();
  // The server's handler catches std::exception and answers 500 (a
  // "datatype" that is not a string throws json::type_error in value()):
  // a wrong status, not a crash, so it is caught here as there.
  try {
    if (!req.is_object()) return 0;
    const json* inputs = req.contains("inputs") ? &req["inputs"] : nullptr;
    if (!inputs || !inputs->is_array() || inputs->empty()) return 0;
    const json& in = (*inputs)[0];
    if (!in.is_object()) return 0;
    (void)in.value("datatype", std::string());
    if (in.contains("shape")) (void)in["shape"].dump();
    std::vector<float> values;
    if (in.contains("data")) (void)Flatten(in["data"], &values);
  } catch (const json::exception&) {
  }
  return 0;
}
