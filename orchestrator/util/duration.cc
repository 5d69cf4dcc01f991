#include "util/duration.h"

#include <cmath>
#include <cstdio>

namespace sluice {

std::optional<Millis> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    bool dot = false;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || (text[i] == '.' && !dot))) {
      if (text[i] == '.') dot = true;
      ++i;
    }
    if (i == start || (i - start == 1 && dot)) return std::nullopt;
    double number = std::stod(std::string(text.substr(start, i - start)));
    size_t unit_start = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    double scale;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60e3;
    else if (unit == "h") scale = 3600e3;
    else if (unit == "d") scale = 86400e3;
    else return std::nullopt;
    total_ms += number * scale;
  }
  if (total_ms > 1e15) return std::nullopt;
  return Millis(static_cast<int64_t>(std::llround(total_ms)));
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  char buf[64];
  if (ms < 1000) std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  else if (ms < 60000) std::snprintf(buf, sizeof buf, "%.1fs", ms / 1000.0);
  else if (ms < 3600000)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60000),
                  static_cast<long long>(ms / 1000 % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3600000),
                  static_cast<long long>(ms / 60000 % 60));
  return buf;
}

}  // namespace sluice
