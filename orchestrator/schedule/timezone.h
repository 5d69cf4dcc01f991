// TimeZone: UTC offsets of an IANA time zone, read from the system's
// compiled tz database (/usr/share/zoneinfo, TZif version 2 or later).
//
// Debian's tzdata files list every transition up to 2037; after the last one
// the last offset holds (a schedule in 2038 or later may be an hour off in
// zones with daylight-saving time). Thread-compatible: const after Load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/civil_time.h"

#include "util/status.h"

namespace sluice::schedule {

class TimeZone {
 public:
  // "UTC" (or "") needs no file. Names are like "Europe/Berlin"; anything
  // with "..", a leading '/' or other characters than [A-Za-z0-9_+-/] is refused.
  static Result<TimeZone> Load(const std::string& name, const std::string& zoneinfo_dir = "/usr/share/zoneinfo");
  static TimeZone Utc();

  const std::string& name() const { return name_; }
  // Seconds east of UTC in effect at `utc` (Unix seconds).
  int64_t OffsetAt(int64_t utc) const;

 private:
  std::string name_ = "UTC";
  std::vector<int64_t> transitions_;  // Unix seconds, ascending
  std::vector<int64_t> offsets_;      // offsets_[i] holds from transitions_[i]; initial_ before the first
  int64_t initial_ = 0;
};

using sluice::CivilFromSeconds;
using sluice::CivilTime;
using sluice::DaysFromCivil;
using sluice::DaysInMonth;

}  // namespace sluice::schedule
