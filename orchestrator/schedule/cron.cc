#include "schedule/cron.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "util/strings.h"

namespace sluice::schedule {
namespace {

struct Field {
  const char* name;
  int low, high;
  std::vector<std::string> names;  // names[i] is value low + i
};

const Field kFields[] = {
    {"minute", 0, 59, {}},
    {"hour", 0, 23, {}},
    {"day-of-month", 1, 31, {}},
    {"month", 1, 12, {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
    {"day-of-week", 0, 7, {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
};

std::vector<std::string> Split(std::string_view s, char by) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == by) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

// One value of a field: a number or a name.
Result<int> Value(const Field& f, const std::string& text) {
  std::string upper = text;
  for (char& ch : upper) ch = char(std::toupper(uint8_t(ch)));
  for (size_t i = 0; i < f.names.size(); ++i)
    if (upper == f.names[i]) return f.low + int(i);
  if (text.empty() || text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos)
    return Status::InvalidSpec(std::string(f.name) + ": " + Quote(text) + " is not a number" +
                               (f.names.empty() ? "" : " or a name like " + f.names[1]));
  int v = std::stoi(text);
  if (v < f.low || v > f.high)
    return Status::InvalidSpec(std::string(f.name) + ": " + text + " is out of range " + std::to_string(f.low) + "-" +
                               std::to_string(f.high));
  return v;
}

// Sets the bits of one field; `restricted` tells whether it was other than `*`.
Status ParseField(const Field& f, const std::string& text, std::vector<bool>* bits, bool* restricted) {
  bits->assign(size_t(f.high + 1), false);
  *restricted = text != "*";
  if (text.empty()) return Status::InvalidSpec(std::string(f.name) + " is empty");
  for (const std::string& item : Split(text, ',')) {
    if (item.empty()) return Status::InvalidSpec(std::string(f.name) + ": empty list item in " + Quote(text));
    std::vector<std::string> step_parts = Split(item, '/');
    if (step_parts.size() > 2) return Status::InvalidSpec(std::string(f.name) + ": " + Quote(item) + " has two '/'");
    int step = 1;
    if (step_parts.size() == 2) {
      const std::string& s = step_parts[1];
      if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos || std::stoi(s) == 0)
        return Status::InvalidSpec(std::string(f.name) + ": step " + Quote(s) + " must be a number from 1");
      step = std::stoi(s);
    }
    const std::string& range = step_parts[0];
    int low = f.low, high = f.high;
    if (range != "*") {
      std::vector<std::string> ends = Split(range, '-');
      if (ends.size() > 2) return Status::InvalidSpec(std::string(f.name) + ": " + Quote(range) + " is not a range A-B");
      auto a = Value(f, ends[0]);
      if (!a.ok()) return a.status();
      low = *a;
      high = step_parts.size() == 2 ? f.high : low;  // A/S runs to the field's end
      if (ends.size() == 2) {
        auto b = Value(f, ends[1]);
        if (!b.ok()) return b.status();
        high = *b;
        if (high < low)
          return Status::InvalidSpec(std::string(f.name) + ": range " + Quote(range) + " runs backwards");
      }
    }
    for (int v = low; v <= high; v += step) (*bits)[size_t(v)] = true;
  }
  return Status::Ok();
}

}  // namespace

Result<Cron> Cron::Parse(std::string_view text) {
  std::string t(text);
  static const std::pair<const char*, const char*> kMacros[] = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"}};
  std::string expanded = t;
  if (!t.empty() && t[0] == '@') {
    auto it = std::find_if(std::begin(kMacros), std::end(kMacros), [&](const auto& m) { return t == m.first; });
    if (it == std::end(kMacros))
      return Status::InvalidSpec("cron " + Quote(t) + ": unknown macro (use @yearly, @monthly, @weekly, @daily or @hourly)");
    expanded = it->second;
  }
  std::vector<std::string> fields;
  std::string cur;
  for (char ch : expanded) {
    if (ch == ' ' || ch == '\t') {
      if (!cur.empty()) fields.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) fields.push_back(cur);
  if (fields.size() != 5)
    return Status::InvalidSpec("cron " + Quote(t) + ": expected 5 fields (minute hour day-of-month month day-of-week), found " +
                               std::to_string(fields.size()));
  Cron c;
  c.text_ = t;
  std::vector<bool> bits[5];
  bool restricted[5];
  for (int i = 0; i < 5; ++i) {
    Status st = ParseField(kFields[i], fields[size_t(i)], &bits[i], &restricted[i]);
    if (!st.ok()) return Status::InvalidSpec("cron " + Quote(t) + ": " + st.message());
  }
  for (int v = 0; v < 60; ++v) c.minutes_[size_t(v)] = bits[0][size_t(v)];
  for (int v = 0; v < 24; ++v) c.hours_[size_t(v)] = bits[1][size_t(v)];
  for (int v = 1; v <= 31; ++v) c.days_[size_t(v)] = bits[2][size_t(v)];
  for (int v = 1; v <= 12; ++v) c.months_[size_t(v)] = bits[3][size_t(v)];
  for (int v = 0; v <= 7; ++v)
    if (bits[4][size_t(v)]) c.weekdays_[size_t(v % 7)] = true;  // 7 is Sunday
  c.days_restricted_ = restricted[2];
  c.weekdays_restricted_ = restricted[4];
  // A day-of-month no allowed month has ("0 0 30 2 *") would never fire.
  if (c.days_restricted_ && !c.weekdays_restricted_) {
    bool any = false;
    for (int m = 1; m <= 12 && !any; ++m)
      for (int d = 1; d <= DaysInMonth(2000, m) && !any; ++d) any = c.months_[size_t(m)] && c.days_[size_t(d)];
    if (!any) return Status::InvalidSpec("cron " + Quote(t) + ": no month of those has such a day; it would never run");
  }
  return c;
}

bool Cron::DayMatches(const CivilTime& c) const {
  bool dom = days_[size_t(c.day)], dow = weekdays_[size_t(c.weekday)];
  if (days_restricted_ && weekdays_restricted_) return dom || dow;
  return dom && dow;
}

std::optional<int64_t> Cron::Next(int64_t after, const TimeZone& tz) const {
  // Walk the wall clock minute by minute, skipping whole days, hours and
  // months that cannot match; map each candidate back to UTC.
  int64_t wall = after + tz.OffsetAt(after);
  wall = (wall / 60 + 1) * 60;  // the next whole wall-clock minute
  int64_t limit = wall + int64_t(5) * 366 * 86400;
  while (wall < limit) {
    CivilTime c = CivilFromSeconds(wall);
    if (!months_[size_t(c.month)]) {  // to the first of the next month
      int y = c.year + (c.month == 12), m = c.month == 12 ? 1 : c.month + 1;
      wall = DaysFromCivil(y, m, 1) * 86400;
      continue;
    }
    if (!DayMatches(c)) {
      wall = (DaysFromCivil(c.year, c.month, c.day) + 1) * 86400;
      continue;
    }
    if (!hours_[size_t(c.hour)]) {
      wall = (wall / 3600 + 1) * 3600;
      continue;
    }
    if (!minutes_[size_t(c.minute)]) {
      wall += 60;
      continue;
    }
    // The UTC times whose wall clock reads `wall`, with the offset in force
    // a day before or a day after (two around a change, else one). The
    // earliest real one counts: a repeated hour fires once.
    std::optional<int64_t> first;
    for (int64_t offset : {tz.OffsetAt(wall - 86400), tz.OffsetAt(wall + 86400)}) {
      int64_t utc = wall - offset;
      if (utc + tz.OffsetAt(utc) == wall && (!first || utc < *first)) first = utc;
    }
    if (first && *first > after) return first;
    wall += 60;  // this wall-clock time does not exist, or was already passed
  }
  return std::nullopt;
}

std::optional<int64_t> Cron::Previous(int64_t before, const TimeZone& tz) const {
  // Look back over a window four times wider each time, from an hour to
  // five years; in the first window that holds a match, walk forward to the
  // last one. The windows before it held none, so the walk covers at most
  // the matches of the oldest three quarters of one window.
  const int64_t horizon = int64_t(5) * 366 * 86400;
  for (int64_t back = 3600;; back *= 4) {
    back = std::min(back, horizon);
    std::optional<int64_t> t = Next(before - back - 1, tz);
    if (t && *t < before) {
      int64_t last = *t;
      for (std::optional<int64_t> n = Next(last, tz); n && *n < before; n = Next(last, tz)) last = *n;
      return last;
    }
    if (back == horizon) return std::nullopt;
  }
}

}  // namespace sluice::schedule
