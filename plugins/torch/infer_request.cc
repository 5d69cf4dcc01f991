#include "infer_request.h"

#include <cmath>
#include <map>

#include "bounded_json.h"
#include "server/request_guard.h"

using nlohmann::json;

namespace sluice::torchplugin {
namespace {

using server::Refused;

constexpr size_t kMaxDepth = 16;
constexpr size_t kRoomForNames = 4096;

// Appends the numbers of a JSON array nested at most kMaxDepth deep (the
// parser saw to that) to `out`, as finite floats; `what` names the input.
void Flatten(const json& v, const std::string& what, std::vector<float>* out) {
  if (v.is_array()) {
    for (const json& e : v) Flatten(e, what, out);
  } else if (v.is_number()) {
    float f = v.get<float>();
    if (!std::isfinite(f)) throw Refused{400, what + " holds " + v.dump() + ", which is out of FP32's range"};
    out->push_back(f);
  } else {
    throw Refused{400, what + " holds " + std::string(v.type_name()) + " values; FP32 data must be numbers"};
  }
}

std::string Join(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// "[N, 1, 28, 28]" or "[N, 4]".
std::string Wanted(const std::vector<int64_t>& shape) {
  std::string want = "[N";
  for (int64_t d : shape) want += ", " + std::to_string(d);
  return want + "]";
}

void CheckDatatype(const json& in, const std::string& where) {
  if (!in.contains("datatype") || !in["datatype"].is_string() || in["datatype"].get<std::string>() != "FP32")
    throw Refused{400, where + ".datatype must be \"FP32\", not " + (in.contains("datatype") ? in["datatype"].dump() : "missing")};
}

// The integer dimensions of `where`.shape, which must have `rank` of them;
// `want` says what it should be.
std::vector<int64_t> Dims(const json& in, const std::string& where, size_t rank, const std::string& want) {
  const json* shape = in.contains("shape") ? &in["shape"] : nullptr;
  if (!shape || !shape->is_array() || shape->size() != rank)
    throw Refused{400, where + ".shape must be " + want + (shape ? ", not " + shape->dump() : "")};
  std::vector<int64_t> dims;
  for (const json& d : *shape) {
    if (!d.is_number_integer()) throw Refused{400, where + ".shape must be " + want + ", not " + shape->dump()};
    dims.push_back(d.get<int64_t>());
  }
  return dims;
}

void CheckRows(int64_t n, const std::string& where, const InputSignature& sig) {
  if (n < 1 || n > sig.max_rows)
    throw Refused{400, where + ".shape asks for " + std::to_string(n) + (sig.tabular() ? " rows" : " images") +
                           "; 1 to " + std::to_string(sig.max_rows) + " are allowed per request"};
}

// `where`.data as floats, exactly as many as `dims` say.
std::vector<float> Data(const json& in, const std::string& where, const std::vector<int64_t>& dims) {
  if (!in.contains("data") || !in["data"].is_array()) throw Refused{400, where + ".data must be an array of numbers"};
  int64_t expected = 1;
  for (int64_t d : dims) expected *= d;
  std::vector<float> values;
  values.reserve(size_t(expected));
  Flatten(in["data"], where + ".data", &values);
  if (int64_t(values.size()) != expected)
    throw Refused{400, where + ".data holds " + std::to_string(values.size()) + " numbers; shape " +
                           json(dims).dump() + " needs " + std::to_string(expected)};
  return values;
}

// One input [N, F] (or [N, C, H, W]): the form every model accepts.
InferInput OneTensor(const json& in, const InputSignature& sig) {
  const std::string where = "inputs[0]";
  CheckDatatype(in, where);
  std::string want = Wanted(sig.shape);
  std::vector<int64_t> dims = Dims(in, where, sig.shape.size() + 1, want);
  for (size_t i = 0; i < sig.shape.size(); ++i)
    if (dims[i + 1] != sig.shape[i]) throw Refused{400, where + ".shape must be " + want + ", not " + in["shape"].dump()};
  CheckRows(dims[0], where, sig);
  InferInput out;
  out.values = Data(in, where, dims);
  out.dims = std::move(dims);
  return out;
}

// One input per feature, named after it, each [N]: the columns of [N, F].
InferInput PerFeature(const json& inputs, const InputSignature& sig) {
  const int64_t f = sig.shape[0];
  const std::vector<std::string>& names = sig.feature_names;
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < names.size(); ++i) column[names[i]] = i;
  std::vector<std::vector<float>> columns(names.size());
  std::vector<bool> given(names.size(), false);
  int64_t n = -1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string where = "inputs[" + std::to_string(i) + "]";
    const json& in = inputs[i];
    if (!in.is_object()) throw Refused{400, where + " must be an object with name, shape, datatype and data"};
    if (!in.contains("name") || !in["name"].is_string())
      throw Refused{400, where + ".name must be a feature name (" + Join(names) + ")"};
    const std::string name = in["name"].get<std::string>();
    auto at = column.find(name);
    if (at == column.end())
      throw Refused{400, where + ".name '" + name + "' is not a feature of this model; its features are " + Join(names)};
    if (given[at->second]) throw Refused{400, where + ": feature '" + name + "' is given twice"};
    given[at->second] = true;
    CheckDatatype(in, where);
    std::vector<int64_t> dims = Dims(in, where, 1, "[N]");
    CheckRows(dims[0], where, sig);
    if (n >= 0 && dims[0] != n)
      throw Refused{400, where + ".shape is [" + std::to_string(dims[0]) + "] but inputs[0] has " + std::to_string(n) +
                             " rows; every feature needs the same N"};
    n = dims[0];
    columns[at->second] = Data(in, where, dims);
  }
  for (size_t c = 0; c < names.size(); ++c)
    if (!given[c])
      throw Refused{400, "feature '" + names[c] + "' has no input; give one input per feature (" + Join(names) +
                             ") or one input of shape " + Wanted(sig.shape)};
  InferInput out;
  out.dims = {n, f};
  out.values.resize(size_t(n * f));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < f; ++c) out.values[size_t(r * f + c)] = columns[size_t(c)][size_t(r)];
  return out;
}

}  // namespace

size_t InputSignature::MaxJsonValues() const {
  size_t per_row = 1;
  for (int64_t d : shape) per_row *= size_t(d);
  // Per-feature inputs add an object, a name, a shape and its N per feature.
  return size_t(max_rows) * per_row + kRoomForNames + 8 * feature_names.size();
}

InferInput ParseInferRequest(std::string_view body, const InputSignature& sig) {
  json req;
  std::string why = ParseBounded(body, kMaxDepth, sig.MaxJsonValues(), &req);
  if (!why.empty()) throw Refused{400, why};
  if (!req.is_object()) throw Refused{400, "the request body must be a JSON object with \"inputs\""};
  json id = req.contains("id") ? req["id"] : json();
  const json* inputs = req.contains("inputs") ? &req["inputs"] : nullptr;
  // Per feature: more than one input, or one [N] input named after a feature.
  bool per_feature = false;
  if (sig.tabular() && !sig.feature_names.empty() && inputs && inputs->is_array() && !inputs->empty()) {
    const json& first = (*inputs)[0];
    bool one_dim = first.is_object() && first.contains("shape") && first["shape"].is_array() && first["shape"].size() == 1;
    per_feature = inputs->size() > 1 || one_dim;
  }
  InferInput out;
  if (per_feature) {
    out = PerFeature(*inputs, sig);
  } else {
    if (!inputs || !inputs->is_array() || inputs->size() != 1)
      throw Refused{400, sig.tabular() && !sig.feature_names.empty()
                             ? "\"inputs\" must be one input of shape " + Wanted(sig.shape) + " or one input per feature (" +
                                   Join(sig.feature_names) + ")"
                             : "\"inputs\" must be an array of exactly one input tensor"};
    const json& in = (*inputs)[0];
    if (!in.is_object()) throw Refused{400, "inputs[0] must be an object with name, shape, datatype and data"};
    out = OneTensor(in, sig);
  }
  out.id = std::move(id);
  return out;
}

json InputMetadata(const InputSignature& sig) {
  json input = {{"name", "input"}, {"datatype", "FP32"}, {"shape", json::array({-1})}};
  for (int64_t d : sig.shape) input["shape"].push_back(d);
  if (sig.tabular() && !sig.feature_names.empty()) input["parameters"] = {{"feature_names", sig.feature_names}};
  return json::array({input});
}

}  // namespace sluice::torchplugin
