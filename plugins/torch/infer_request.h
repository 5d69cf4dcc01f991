// The input of an Open Inference Protocol v2 infer request, checked against
// the input signature a model file declares (specs/model-server.md):
//
//   image    [C, H, W]: one FP32 input of shape [N, C, H, W]
//   tabular  [F] with feature names: one FP32 input of shape [N, F], or one
//            FP32 input per feature, named after it, each of shape [N]
//
// `data` may be flat (row-major) or nested, as OIP allows. The body is
// parsed with its bounds checked as it is read (bounded_json.h: nesting
// depth, the count of values, finite numbers), so a request costs memory in
// proportion to the largest allowed one at most. Free of libtorch (the
// model server turns the values into a tensor), so it compiles fast and a
// fuzz target can run it as the server does.
//
// Threading: pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice::torchplugin {

// What a model file says about its input.
struct InputSignature {
  // [C, H, W] for an image model, [F] for a tabular one.
  std::vector<int64_t> shape;
  // Tabular only: F names, or empty (then only the [N, F] form is accepted).
  std::vector<std::string> feature_names;
  // At most this many rows (images) per request.
  int64_t max_rows = 256;

  bool tabular() const { return shape.size() == 1; }
  // The largest count of JSON values an allowed request holds, with room
  // for names and the id.
  size_t MaxJsonValues() const;
};

// A request's input, ready for the model.
struct InferInput {
  std::vector<int64_t> dims;  // [N, C, H, W] or [N, F]
  std::vector<float> values;  // row-major, as many as dims say
  nlohmann::json id;          // the request's "id", null if none
};

// Parses and checks `body` against `signature`. Throws server::Refused
// (status 400, the reason naming the problem: which input, which feature,
// which shape was wanted) for anything else.
// REQUIRES: signature.shape is 1 or 3 positive dimensions; feature_names
// empty or F distinct names.
InferInput ParseInferRequest(std::string_view body, const InputSignature& signature);

// The signature as OIP metadata's "inputs": one tensor [-1, C, H, W] or
// [-1, F], the latter with "parameters": {"feature_names": [...]} when the
// model names its features.
nlohmann::json InputMetadata(const InputSignature& signature);

}  // namespace sluice::torchplugin
