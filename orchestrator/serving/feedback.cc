#include "serving/feedback.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "util/strings.h"

namespace sluice::serving {

RecentAnswers::RecentAnswers(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

void RecentAnswers::Remember(std::string_view request_id, std::string_view version) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t sequence = next_sequence_++;
  if (sequence < capacity_) ring_.emplace_back();  // the ring grows to its capacity, then turns
  std::string& slot = ring_[sequence % capacity_];
  if (sequence >= capacity_) {  // the slot holds the oldest id: forget it unless remembered again since
    auto old = by_id_.find(slot);
    if (old != by_id_.end() && old->second.sequence == sequence - capacity_) by_id_.erase(old);
  }
  slot.assign(request_id);
  Entry& e = by_id_[slot];
  e.version.assign(version);
  e.sequence = sequence;
}

std::optional<std::string> RecentAnswers::Find(std::string_view request_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(std::string(request_id));
  if (it == by_id_.end()) return std::nullopt;
  return it->second.version;
}

Result<FeedbackRequest> ParseFeedback(const std::string& body) {
  using json = nlohmann::json;
  auto bad = [](const std::string& m) { return Status::InvalidSpec(m); };
  if (body.size() > kMaxFeedbackBody)
    return bad("body: " + std::to_string(body.size()) + " bytes, more than the " + std::to_string(kMaxFeedbackBody) +
               " a feedback may have");
  // The field being read, for a number too large for a double (1e999):
  // the one way valid JSON can carry a non-finite number.
  std::string field;
  json::parser_callback_t bounded = [&field](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) field = parsed.get<std::string>();
    return depth <= 8;
  };
  json doc;
  try {
    doc = json::parse(body, bounded);
  } catch (const json::out_of_range& e) {
    if (e.id == 406 && !field.empty()) {  // number overflow
      if (field == "reward") return bad("reward: not a finite number");
      return bad(field + ": a number out of range");
    }
    doc = json();
  } catch (const json::exception&) {
    doc = json();
  }
  if (!doc.is_object()) return bad("body: not a JSON object (give request_id or key, and reward or label)");
  FeedbackRequest f;
  bool has_reward = false, has_label = false, has_id = false, has_key = false;
  for (const auto& [name, value] : doc.items()) {
    if (name == "request_id") {
      if (!value.is_string() || value.get_ref<const std::string&>().empty())
        return bad("request_id: not a non-empty string");
      f.request_id = value.get<std::string>();
      has_id = true;
    } else if (name == "key") {
      if (value.is_string() && !value.get_ref<const std::string&>().empty()) f.key = value.get<std::string>();
      else if (value.is_number_integer()) f.key = value.dump();
      else return bad("key: not a non-empty string or an integer");
      has_key = true;
    } else if (name == "reward") {
      if (!value.is_number() || !std::isfinite(value.get<double>())) return bad("reward: not a finite number");
      f.reward = value.get<double>();
      has_reward = true;
    } else if (name == "label") {
      if (!value.is_string()) return bad("label: not a string");
      if (value.get_ref<const std::string&>().size() > kMaxFeedbackLabel)
        return bad("label: " + std::to_string(value.get_ref<const std::string&>().size()) + " bytes, more than " +
                   std::to_string(kMaxFeedbackLabel));
      f.label = value.get<std::string>();
      has_label = true;
    } else if (name == "at_ms") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0)
        return bad("at_ms: not a non-negative integer (milliseconds since the epoch)");
      f.at_ms = value.get<int64_t>();
    } else {
      return bad("unknown field " + Quote(name) + " (fields: request_id, key, reward, label, at_ms)");
    }
  }
  if (has_id && has_key) return bad("request_id and key: give one, not both");
  if (!has_id && !has_key) return bad("request_id or key: one is required");
  if (has_reward && has_label) return bad("reward and label: give one, not both");
  if (!has_reward && !has_label) return bad("reward or label: one is required");
  return f;
}

bool FeedbackQueue::Offer(store::FeedbackRow row) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rows_.size() >= capacity_) return false;
  rows_.push_back(std::move(row));
  return true;
}

std::vector<store::FeedbackRow> FeedbackQueue::TakeAll() {
  std::vector<store::FeedbackRow> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.swap(rows_);
  return out;
}

}  // namespace sluice::serving
