#include "util/secrets.h"

#include <algorithm>
#include <cctype>

namespace sluice {

bool LooksSecret(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper.find("API_KEY") != std::string::npos || upper.find("ACCESS_KEY") != std::string::npos) return true;
  size_t start = 0;
  while (start <= upper.size()) {
    size_t end = upper.find('_', start);
    if (end == std::string::npos) end = upper.size();
    std::string_view part = std::string_view(upper).substr(start, end - start);
    for (std::string_view s : {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "APIKEY", "PRIVATE"})
      if (part == s) return true;
    start = end + 1;
  }
  return false;
}

SecretMask::SecretMask(std::vector<std::string> values) {
  for (std::string& v : values)
    if (v.size() >= 4) values_.push_back(std::move(v));
  std::sort(values_.begin(), values_.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  values_.erase(std::unique(values_.begin(), values_.end()), values_.end());
  for (const std::string& v : values_) longest_ = std::max(longest_, v.size());
}

size_t SecretMask::MatchAt(std::string_view text, size_t i) const {
  for (const std::string& v : values_)
    if (text.compare(i, v.size(), v) == 0) return v.size();
  return 0;
}

std::string SecretMask::Mask(std::string_view text) const {
  if (values_.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (size_t n = MatchAt(text, i)) {
      out += "***";
      i += n;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string SecretMask::Feed(std::string_view chunk) {
  if (values_.empty()) return std::string(chunk);
  held_.append(chunk);
  // Mask what is held, but keep back a tail that could be the start of a
  // secret the next chunk completes.
  std::string out;
  size_t i = 0;
  while (i < held_.size()) {
    if (held_.size() - i < longest_) {
      bool could_start = false;
      for (const std::string& v : values_)
        if (v.compare(0, held_.size() - i, held_, i, held_.size() - i) == 0) could_start = true;
      if (could_start) break;
    }
    if (size_t n = MatchAt(held_, i)) {
      out += "***";
      i += n;
    } else {
      out += held_[i++];
    }
  }
  held_.erase(0, i);
  return out;
}

std::string SecretMask::Flush() {
  std::string out = Mask(held_);
  held_.clear();
  return out;
}

}  // namespace sluice
