// Civil time (proleptic Gregorian) from and to days since 1970-01-01,
// without a zone: what schedules and ISO timestamps are built from.
#pragma once

#include <cstdint>

namespace sluice {

// Civil time (proleptic Gregorian), without a zone.
struct CivilTime {
  int year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  int weekday = 4;  // 0 Sunday ... 6 Saturday
};

// Days since 1970-01-01 of a civil date, and back.
int64_t DaysFromCivil(int year, int month, int day);
CivilTime CivilFromSeconds(int64_t seconds);  // seconds since 1970-01-01T00:00 of some clock
int DaysInMonth(int year, int month);

}  // namespace sluice
