#include "serving/mirror.h"

#include <nlohmann/json.hpp>

namespace sluice::serving {

namespace {

using json = nlohmann::json;

constexpr int kMaxCompareJsonDepth = 32;

json ParseBounded(std::string_view text) {
  if (text.size() > kMaxComparedBody) return json();
  json::parser_callback_t bounded = [](int depth, json::parse_event_t, json&) { return depth <= kMaxCompareJsonDepth; };
  return json::parse(text.begin(), text.end(), bounded, false);
}

// The k of an output that looks like class scores, else 0.
size_t ScoreCount(const json& output) {
  if (!output.is_object()) return 0;
  const auto type = output.find("datatype");
  const auto shape = output.find("shape");
  if (type == output.end() || !type->is_string() || shape == output.end() || !shape->is_array()) return 0;
  const std::string& t = type->get_ref<const std::string&>();
  if (t != "FP16" && t != "BF16" && t != "FP32" && t != "FP64") return 0;
  int64_t k = 0;
  if (shape->size() == 1 && (*shape)[0].is_number_integer()) k = (*shape)[0].get<int64_t>();
  else if (shape->size() == 2 && (*shape)[0] == 1 && (*shape)[1].is_number_integer()) k = (*shape)[1].get<int64_t>();
  return k >= 2 ? static_cast<size_t>(k) : 0;
}

// The numbers of `data`, flattened (OIP allows a nested array); false when
// something else is in it.
bool Flatten(const json& data, std::vector<double>* out) {
  if (data.is_number()) {
    out->push_back(data.get<double>());
    return true;
  }
  if (!data.is_array()) return false;
  for (const json& x : data)
    if (!Flatten(x, out)) return false;
  return true;
}

// The index of the largest value (the first of equal ones); -1 for k values that are not there.
int64_t Argmax(const json& output, size_t k) {
  const auto data = output.find("data");
  if (data == output.end()) return -1;
  std::vector<double> values;
  if (!Flatten(*data, &values) || values.size() != k) return -1;
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i)
    if (values[i] > values[best]) best = i;
  return static_cast<int64_t>(best);
}

bool OutputsAgree(const json& a, const json& b) {
  const size_t k = ScoreCount(a);
  if (k > 0 && ScoreCount(b) == k) {
    const int64_t i = Argmax(a, k);
    return i >= 0 && i == Argmax(b, k);
  }
  const auto da = a.is_object() ? a.find("data") : a.end();
  const auto db = b.is_object() ? b.find("data") : b.end();
  if (da == a.end() || db == b.end()) return false;
  return *da == *db;
}

const json* OutputNamed(const json& outputs, const std::string& name) {
  for (const json& o : outputs)
    if (o.is_object() && o.contains("name") && o["name"] == name) return &o;
  return nullptr;
}

}  // namespace

bool AnswersAgree(std::string_view live, std::string_view mirror) {
  const json a = ParseBounded(live), b = ParseBounded(mirror);
  const bool oip = a.is_object() && b.is_object() && a.contains("outputs") && b.contains("outputs") &&
                   a["outputs"].is_array() && b["outputs"].is_array();
  if (!oip) return live == mirror;
  const json& oa = a["outputs"];
  const json& ob = b["outputs"];
  if (oa.size() != ob.size()) return false;
  for (size_t i = 0; i < oa.size(); ++i) {
    const json* other = nullptr;
    if (oa[i].is_object() && oa[i].contains("name") && oa[i]["name"].is_string())
      other = OutputNamed(ob, oa[i]["name"].get<std::string>());
    else
      other = &ob[i];
    if (other == nullptr || !OutputsAgree(oa[i], *other)) return false;
  }
  return true;
}

void MirrorPair::Set(Side* side, int status, std::shared_ptr<const std::string> body) {
  side->status = status;
  side->body = std::move(body);
  // acq_rel: the second arrival sees the first's side.
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) != 1) return;
  if (live_.status == 200 && mirror_.status == 200 && live_.body && mirror_.body && comparer_)
    comparer_->Offer(stats_, std::move(live_.body), std::move(mirror_.body));
}

MirrorComparer::MirrorComparer(size_t capacity, size_t max_bytes)
    : capacity_(capacity), max_bytes_(max_bytes), thread_([this] { Run(); }) {}

MirrorComparer::~MirrorComparer() { Stop(); }

bool MirrorComparer::Offer(std::shared_ptr<WindowStats> stats, std::shared_ptr<const std::string> live,
                           std::shared_ptr<const std::string> mirror) {
  const size_t bytes = live->size() + mirror->size();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_ || items_.size() >= capacity_ || bytes > max_bytes_ - bytes_) {
      skipped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    bytes_ += bytes;
    items_.push_back({std::move(stats), std::move(live), std::move(mirror)});
  }
  cv_.notify_one();
  return true;
}

void MirrorComparer::Run() {
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopped_ || !items_.empty(); });
      if (items_.empty()) return;
      item = std::move(items_.front());
      items_.pop_front();
      bytes_ -= item.live->size() + item.mirror->size();
    }
    const bool agreed = AnswersAgree(*item.live, *item.mirror);
    item.stats->RecordMirror(agreed ? MirrorOutcome::kAgreed : MirrorOutcome::kDisagreed);
  }
}

void MirrorComparer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace sluice::serving
