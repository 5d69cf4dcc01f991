#include "serving/profiler.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace sluice::serving {

namespace {

using json = nlohmann::json;

// Bounds of sl125-v1 above 0: 1e-3, 2e-3, 5e-3, ... 5e5 (27 of them).
constexpr int kSymLogSide = 27;
const std::vector<double>& PositiveBounds() {
  static const std::vector<double> bounds = [] {
    std::vector<double> b;
    for (int k = -3; k <= 5; ++k)
      for (double m : {1.0, 2.0, 5.0}) b.push_back(m * std::pow(10.0, k));
    return b;
  }();
  return bounds;
}

// Parses a body as JSON, or discarded when too large, too deep or not JSON.
json ParseBounded(const std::shared_ptr<const std::string>& body) {
  if (!body || body->size() > kMaxProfiledBody) return json(json::value_t::discarded);
  json::parser_callback_t bounded = [](int depth, json::parse_event_t, json&) {
    return depth <= kMaxProfileJsonDepth;
  };
  return json::parse(*body, bounded, false);
}

// The values of an OIP `data` (flat or nested arrays), in row-major order.
void Flatten(const json& data, int depth, std::vector<const json*>* out) {
  if (depth > kMaxProfileJsonDepth) return;
  if (data.is_array()) {
    for (const json& x : data) Flatten(x, depth + 1, out);
  } else {
    out->push_back(&data);
  }
}

std::optional<double> Number(const json& x) {
  if (x.is_boolean()) return x.get<bool>() ? 1.0 : 0.0;
  if (!x.is_number()) return std::nullopt;
  double v = x.get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// The shape's dimensions, or empty when it is not an array of whole numbers.
std::vector<int64_t> Shape(const json& t) {
  std::vector<int64_t> dims;
  if (!t.contains("shape") || !t["shape"].is_array()) return dims;
  for (const json& d : t["shape"]) {
    if (!d.is_number_integer()) return {};
    dims.push_back(d.get<int64_t>());
  }
  return dims;
}

const json* FindOutput(const json& answer, const char* name) {
  if (!answer.is_object() || !answer.contains("outputs") || !answer["outputs"].is_array()) return nullptr;
  for (const json& o : answer["outputs"])
    if (o.is_object() && o.contains("name") && o["name"] == name && o.contains("data")) return &o;
  return nullptr;
}

json StatsJson(const ValueStats& s, const char* bins) {
  json j = {{"n", s.n}, {"sum", s.sum}, {"sumsq", s.sumsq}, {"min", s.min}, {"max", s.max}};
  if (!s.hist.empty()) {
    j["bins"] = bins;
    j["hist"] = s.hist;
  }
  return j;
}

}  // namespace

int SymLogBin(double value) {
  const auto& b = PositiveBounds();
  if (value >= 0) {
    // [0, 1e-3) is bin 28; [b[i], b[i+1]) is bin 29 + i; >= 5e5 is bin 55.
    int i = static_cast<int>(std::upper_bound(b.begin(), b.end(), value) - b.begin());
    return kSymLogSide + 1 + i;
  }
  // Mirror image: [-1e-3, 0) is bin 27; below -5e5 is bin 0.
  int i = static_cast<int>(std::lower_bound(b.begin(), b.end(), -value) - b.begin());
  return kSymLogSide - i;
}

int UnitBin(double value) {
  if (!(value > 0)) return 0;
  if (value >= 1) return kUnitBins - 1;
  return std::min(kUnitBins - 1, static_cast<int>(value * kUnitBins));
}

void ValueStats::Add(double v) {
  if (n == 0) min = max = v;
  min = std::min(min, v);
  max = std::max(max, v);
  ++n;
  sum += v;
  sumsq += v * v;
}

void ValueStats::Merge(const ValueStats& o) {
  if (o.n == 0) return;
  if (n == 0) {
    min = o.min;
    max = o.max;
  }
  min = std::min(min, o.min);
  max = std::max(max, o.max);
  n += o.n;
  sum += o.sum;
  sumsq += o.sumsq;
  if (hist.size() < o.hist.size()) hist.resize(o.hist.size(), 0);
  for (size_t i = 0; i < o.hist.size(); ++i) hist[i] += o.hist[i];
}

// ---- ProfileQueue ----

size_t ProfileQueue::Bytes(const ProfileSample& s) {
  return (s.request ? s.request->size() : 0) + (s.answer ? s.answer->size() : 0);
}

bool ProfileQueue::Offer(ProfileSample sample) {
  const size_t bytes = Bytes(sample);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || items_.size() >= capacity_ || bytes > max_bytes_ - bytes_) {
      ++dropped_;
      return false;
    }
    bytes_ += bytes;
    items_.push_back(std::move(sample));
  }
  cv_.notify_one();
  return true;
}

bool ProfileQueue::Pop(ProfileSample* out) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return closed_ || !items_.empty(); });
  if (items_.empty()) return false;
  *out = std::move(items_.front());
  items_.pop_front();
  bytes_ -= Bytes(*out);
  return true;
}

void ProfileQueue::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

int64_t ProfileQueue::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

size_t ProfileQueue::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return items_.size();
}

// ---- ProfileAccumulator ----

void ProfileAccumulator::Add(const ProfileSample& sample) {
  const int64_t start = sample.at_ms - ((sample.at_ms % kWindowMs) + kWindowMs) % kWindowMs;
  Profile& p = windows_[Key(sample.service, sample.version, static_cast<int>(sample.role), start)];
  ++p.samples;
  const json request = ParseBounded(sample.request);
  const json answer = ParseBounded(sample.answer);
  if (!request.is_object() || !answer.is_object()) {
    ++p.unparsed;
    return;
  }
  std::vector<const json*> values;
  // Inputs: every numeric value, and per feature for [N, F].
  if (request.contains("inputs") && request["inputs"].is_array()) {
    for (const json& t : request["inputs"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("data")) continue;
      const std::string name = t["name"].get<std::string>().substr(0, kMaxClassNameBytes);
      auto found = p.inputs.find(name);
      if (found == p.inputs.end()) {
        if (p.inputs.size() >= kMaxProfiledTensors) {
          ++p.skipped_inputs;
          continue;
        }
        found = p.inputs.emplace(name, Tensor{}).first;
        found->second.values.hist.assign(kSymLogBins, 0);
      }
      Tensor& tensor = found->second;
      if (t.contains("datatype") && t["datatype"].is_string()) tensor.datatype = t["datatype"].get<std::string>();
      values.clear();
      Flatten(t["data"], 0, &values);
      const std::vector<int64_t> shape = Shape(t);
      int64_t width = 0;
      if (shape.size() == 2 && shape[1] > 0 && shape[0] >= 0 && static_cast<uint64_t>(shape[0]) <= values.size() &&
          static_cast<uint64_t>(shape[1]) <= values.size() &&
          static_cast<uint64_t>(shape[0]) * static_cast<uint64_t>(shape[1]) == values.size())
        width = shape[1];
      tensor.width = std::max(tensor.width, width);
      const size_t kept = std::min<size_t>(static_cast<size_t>(width), kMaxProfiledFeatures);
      if (tensor.features.size() < kept) tensor.features.resize(kept);
      for (size_t i = 0; i < values.size(); ++i) {
        auto v = Number(*values[i]);
        if (!v) continue;
        tensor.values.Add(*v);
        tensor.values.hist[SymLogBin(*v)] += 1;
        if (width > 0) {
          size_t f = i % static_cast<size_t>(width);
          if (f < kept) tensor.features[f].Add(*v);
        }
      }
    }
  }
  // Classes: `class` names, else `label` integers as text.
  auto count_class = [&](std::string name) {
    if (name.size() > kMaxClassNameBytes) name.resize(kMaxClassNameBytes);
    auto it = p.classes.find(name);
    if (it != p.classes.end()) ++it->second;
    else if (p.classes.size() < kMaxClassNames) p.classes.emplace(std::move(name), 1);
    else ++p.other_classes;
  };
  if (const json* c = FindOutput(answer, "class")) {
    values.clear();
    Flatten((*c)["data"], 0, &values);
    for (const json* x : values)
      if (x->is_string()) count_class(x->get<std::string>());
  } else if (const json* l = FindOutput(answer, "label")) {
    values.clear();
    Flatten((*l)["data"], 0, &values);
    for (const json* x : values)
      if (x->is_number_integer()) count_class(x->dump());
  }
  // The prediction: the largest probability of each row, else the raw output's values.
  if (const json* probs = FindOutput(answer, "probabilities")) {
    values.clear();
    Flatten((*probs)["data"], 0, &values);
    const std::vector<int64_t> shape = Shape(*probs);
    size_t k = shape.size() == 2 && shape[1] > 0 ? static_cast<size_t>(shape[1]) : values.size();
    if (p.max_probability.hist.empty()) p.max_probability.hist.assign(kUnitBins, 0);
    for (size_t row = 0; k > 0 && row + k <= values.size(); row += k) {
      std::optional<double> best;
      for (size_t j = row; j < row + k; ++j)
        if (auto v = Number(*values[j]); v && (!best || *v > *best)) best = v;
      if (!best) continue;
      p.max_probability.Add(*best);
      p.max_probability.hist[UnitBin(*best)] += 1;
    }
  } else if (const json* out = FindOutput(answer, "output")) {
    values.clear();
    Flatten((*out)["data"], 0, &values);
    if (p.output.hist.empty()) p.output.hist.assign(kSymLogBins, 0);
    for (const json* x : values) {
      if (auto v = Number(*x)) {
        p.output.Add(*v);
        p.output.hist[SymLogBin(*v)] += 1;
      }
    }
  }
}

WindowProfile ProfileAccumulator::Render(const Key& key, const Profile& p) {
  WindowProfile w;
  w.service = std::get<0>(key);
  w.version = std::get<1>(key);
  w.role = static_cast<Role>(std::get<2>(key));
  w.start_ms = std::get<3>(key);
  json classes = json::object();
  for (const auto& [name, n] : p.classes) classes[name] = n;
  if (p.other_classes > 0) classes[kOtherClass] = p.other_classes + (p.classes.count(kOtherClass) ? p.classes.at(kOtherClass) : 0);
  w.classes = classes.dump(-1, ' ', false, json::error_handler_t::replace);
  json payload = {{"format", "sluice-profile-v1"}, {"samples", p.samples}, {"unparsed", p.unparsed}};
  json inputs = json::object();
  for (const auto& [name, t] : p.inputs) {
    json j = {{"datatype", t.datatype}, {"values", StatsJson(t.values, "sl125-v1")}};
    if (t.width > 0) {
      j["width"] = t.width;
      json f = {{"n", json::array()}, {"sum", json::array()}, {"sumsq", json::array()},
                {"min", json::array()}, {"max", json::array()}};
      for (const ValueStats& s : t.features) {
        f["n"].push_back(s.n);
        f["sum"].push_back(s.sum);
        f["sumsq"].push_back(s.sumsq);
        f["min"].push_back(s.min);
        f["max"].push_back(s.max);
      }
      j["features"] = std::move(f);
    }
    inputs[name] = std::move(j);
  }
  payload["inputs"] = std::move(inputs);
  if (p.skipped_inputs > 0) payload["skipped_inputs"] = p.skipped_inputs;
  json prediction = json::object();
  if (p.max_probability.n > 0) prediction["max_probability"] = StatsJson(p.max_probability, "p10-v1");
  if (p.output.n > 0) prediction["output"] = StatsJson(p.output, "sl125-v1");
  payload["prediction"] = std::move(prediction);
  w.payload = payload.dump(-1, ' ', false, json::error_handler_t::replace);
  return w;
}

std::vector<WindowProfile> ProfileAccumulator::Take(std::optional<int64_t> now_ms) {
  std::vector<WindowProfile> out;
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now_ms && std::get<3>(it->first) + kWindowMs + kFlushLagMs > *now_ms) {
      ++it;
      continue;
    }
    out.push_back(Render(it->first, it->second));
    it = windows_.erase(it);
  }
  return out;
}

std::vector<WindowProfile> ProfileAccumulator::TakeClosed(int64_t now_ms) { return Take(now_ms); }
std::vector<WindowProfile> ProfileAccumulator::TakeAll() { return Take(std::nullopt); }

// ---- Profiler ----

Profiler::Profiler() : thread_([this] { Run(); }) {}

Profiler::~Profiler() {
  queue_.Close();
  if (thread_.joinable()) thread_.join();
}

void Profiler::Run() {
  ProfileSample sample;
  while (queue_.Pop(&sample)) {
    std::lock_guard<std::mutex> lock(mu_);
    acc_.Add(sample);
    sample = ProfileSample{};  // let go of the bodies now
  }
}

std::vector<WindowProfile> Profiler::TakeClosed(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  return acc_.TakeClosed(now_ms);
}

std::vector<WindowProfile> Profiler::StopAndTakeAll() {
  queue_.Close();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  return acc_.TakeAll();
}

}  // namespace sluice::serving
