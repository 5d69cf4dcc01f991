// Cron: five-field cron expressions, as in `on.schedule: [{cron: "0 3 * * *"}]`.
//
//   minute (0-59)  hour (0-23)  day-of-month (1-31)  month (1-12 or JAN-DEC)  day-of-week (0-7 or SUN-SAT; 7 is Sunday)
//
// Each field is `*` or a comma-separated list of `N`, `A-B`, `*/S`, `A-B/S`
// and `A/S` (A to the field's end, every S). Names are case-insensitive. As
// in Vixie cron, when both day fields are restricted a day matches either.
// @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly
// are accepted.
//
// Next() works on the wall clock of a time zone. Around daylight-saving
// changes: a wall-clock time that does not exist (spring forward) is
// skipped; one that happens twice (fall back) fires once, at its first
// occurrence.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "schedule/timezone.h"
#include "util/status.h"

namespace sluice::schedule {

class Cron {
 public:
  // Errors name the field and what is wrong with it.
  static Result<Cron> Parse(std::string_view text);

  // The first matching time strictly after `after` (Unix seconds), within
  // the next five years; none if there is none.
  std::optional<int64_t> Next(int64_t after, const TimeZone& tz) const;
  // The last matching time strictly before `before`, within the five years
  // before it; none if there is none. The start of the data interval that
  // ends at a fire time.
  std::optional<int64_t> Previous(int64_t before, const TimeZone& tz) const;

  const std::string& text() const { return text_; }

 private:
  bool DayMatches(const CivilTime& c) const;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;      // 1-31
  std::bitset<13> months_;    // 1-12
  std::bitset<7> weekdays_;   // 0-6
  bool days_restricted_ = false, weekdays_restricted_ = false;
};

}  // namespace sluice::schedule
