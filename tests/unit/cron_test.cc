// The cron parser and next-fire times, against a table of known answers
// (worked out independently with Python's zoneinfo over the same tzdata),
// daylight-saving changes included.
#include "schedule/cron.h"

#include <gtest/gtest.h>

namespace sluice::schedule {
namespace {

// Unix seconds of a UTC civil time.
int64_t Utc(int y, int mo, int d, int h, int mi) { return DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60; }

struct Case {
  const char* cron;
  const char* zone;
  int64_t after, next;
};

TEST(CronTest, NextFireTimesMatchTheTable) {
  const Case cases[] = {
      {"0 3 * * *", "UTC", Utc(2026, 1, 1, 0, 0), Utc(2026, 1, 1, 3, 0)},
      {"0 3 * * *", "UTC", Utc(2026, 1, 1, 3, 0), Utc(2026, 1, 2, 3, 0)},  // strictly after
      {"*/15 * * * *", "UTC", Utc(2026, 11, 26, 10, 7), Utc(2026, 11, 26, 10, 15)},
      {"5-10/2 * * * *", "UTC", Utc(2026, 11, 26, 10, 7), Utc(2026, 11, 26, 10, 9)},
      {"50/5 * * * *", "UTC", Utc(2026, 11, 26, 10, 56), Utc(2026, 11, 26, 11, 50)},
      {"0 9 * * MON-FRI", "UTC", Utc(2026, 11, 27, 10, 0), Utc(2026, 11, 30, 9, 0)},  // Friday -> Monday
      {"0 0 * * 7", "UTC", Utc(2026, 11, 26, 0, 0), Utc(2026, 11, 29, 0, 0)},         // 7 is Sunday
      {"0 0 1,15 * 5", "UTC", Utc(2026, 11, 25, 12, 0), Utc(2026, 11, 27, 0, 0)},     // either day field
      {"0 0 1,15 * 5", "UTC", Utc(2026, 11, 28, 0, 0), Utc(2026, 12, 1, 0, 0)},
      {"0 0 29 feb *", "UTC", Utc(2026, 3, 1, 0, 0), Utc(2028, 2, 29, 0, 0)},
      {"30 12 31 * *", "UTC", Utc(2026, 11, 1, 0, 0), Utc(2026, 12, 31, 12, 30)},
      {"@daily", "UTC", Utc(2026, 11, 26, 10, 0), Utc(2026, 11, 27, 0, 0)},
      {"@hourly", "UTC", Utc(2026, 11, 26, 10, 0), Utc(2026, 11, 26, 11, 0)},
      {"0 3 * * *", "Europe/Berlin", Utc(2026, 1, 10, 0, 0), Utc(2026, 1, 10, 2, 0)},   // CET, UTC+1
      {"0 3 * * *", "Europe/Berlin", Utc(2026, 7, 10, 0, 0), Utc(2026, 7, 10, 1, 0)},   // CEST, UTC+2
      // Spring forward (2026-03-29 02:00 -> 03:00): 02:30 does not exist that day.
      {"30 2 * * *", "Europe/Berlin", Utc(2026, 3, 28, 12, 0), Utc(2026, 3, 30, 0, 30)},
      // Fall back (2026-10-25 03:00 -> 02:00): 02:30 happens twice, fires at the first.
      {"30 2 * * *", "Europe/Berlin", Utc(2026, 10, 24, 12, 0), Utc(2026, 10, 25, 0, 30)},
      {"30 2 * * *", "Europe/Berlin", Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 26, 1, 30)},
      {"30 2 * * *", "Europe/Berlin", Utc(2026, 10, 25, 1, 10), Utc(2026, 10, 26, 1, 30)},  // not the repeat
      {"0 2 * * *", "America/New_York", Utc(2026, 3, 7, 12, 0), Utc(2026, 3, 9, 6, 0)},       // skipped 02:00
      {"30 1 * * *", "America/New_York", Utc(2026, 10, 31, 12, 0), Utc(2026, 11, 1, 5, 30)},  // EDT's 01:30
      {"*/30 * * * *", "America/New_York", Utc(2026, 11, 1, 5, 30), Utc(2026, 11, 1, 7, 0)},  // 01:00-01:59 once
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.cron) + " in " + c.zone + " after " + std::to_string(c.after));
    auto cron = Cron::Parse(c.cron);
    ASSERT_TRUE(cron.ok()) << cron.status().message();
    auto tz = TimeZone::Load(c.zone);
    ASSERT_TRUE(tz.ok()) << tz.status().message();
    auto next = cron->Next(c.after, *tz);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(*next, c.next) << "off by " << (*next - c.next) / 60 << " minutes";
  }
}

TEST(CronTest, NamesAreCaseInsensitiveAndEqualTheirNumbers) {
  auto a = Cron::Parse("0 0 * jan-Mar mon,WED,fri");
  auto b = Cron::Parse("0 0 * 1-3 1,3,5");
  ASSERT_TRUE(a.ok() && b.ok());
  for (int64_t t = Utc(2026, 1, 1, 0, 0); t < Utc(2026, 5, 1, 0, 0); t = *a->Next(t, TimeZone::Utc()))
    EXPECT_EQ(a->Next(t, TimeZone::Utc()), b->Next(t, TimeZone::Utc()));
}

TEST(CronTest, PreviousIsTheFireTimeThatNextWouldGiveBeforeIt) {
  // For every fire time t of each schedule, Previous(Next(t)) == t; and
  // Previous of a time between two fire times is the earlier one.
  // (A leap day fires every four years: 5 of them stay well inside the
  // years Next searches.)
  struct Case {
    const char* text;
    const char* zone;
    int fires;
  };
  const Case schedules[] = {{"*/5 * * * *", "UTC", 40},   {"0 3 * * *", "Europe/Berlin", 40},
                            {"30 2 * * *", "Europe/Berlin", 40}, {"0 0 1 * *", "UTC", 40},
                            {"0 9 * * MON-FRI", "America/New_York", 40}, {"0 0 29 2 *", "UTC", 5}};
  for (const auto& [text, zone, fires] : schedules) {
    auto cron = Cron::Parse(text);
    auto tz = TimeZone::Load(zone);
    ASSERT_TRUE(cron.ok() && tz.ok()) << text;
    int64_t t = *cron->Next(Utc(2026, 2, 20, 0, 0), *tz);
    for (int i = 0; i < fires; ++i) {
      int64_t next = *cron->Next(t, *tz);
      EXPECT_EQ(cron->Previous(next, *tz), t) << text << " " << zone << " before " << next;
      EXPECT_EQ(cron->Previous(next - 1, *tz), t) << text;
      EXPECT_EQ(cron->Previous(t + 1, *tz), t) << text;
      t = next;
    }
  }
}

TEST(CronTest, PreviousOfAFireTimeIsStrictlyBeforeIt) {
  auto cron = Cron::Parse("0 * * * *");
  ASSERT_TRUE(cron.ok());
  EXPECT_EQ(cron->Previous(Utc(2026, 3, 1, 5, 0), TimeZone::Utc()), Utc(2026, 3, 1, 4, 0));
}

TEST(CronTest, BadExpressionsAreRefusedNamingTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"* * *", "cron '* * *': expected 5 fields (minute hour day-of-month month day-of-week), found 3"},
      {"61 * * * *", "cron '61 * * * *': minute: 61 is out of range 0-59"},
      {"* 24 * * *", "cron '* 24 * * *': hour: 24 is out of range 0-23"},
      {"* * 0 * *", "cron '* * 0 * *': day-of-month: 0 is out of range 1-31"},
      {"*/0 * * * *", "cron '*/0 * * * *': minute: step '0' must be a number from 1"},
      {"5-1 * * * *", "cron '5-1 * * * *': minute: range '5-1' runs backwards"},
      {"0 0 * * MON-FRY", "cron '0 0 * * MON-FRY': day-of-week: 'FRY' is not a number or a name like MON"},
      {"0 0 30 2 *", "cron '0 0 30 2 *': no month of those has such a day; it would never run"},
      {"0 0 1,,2 * *", "cron '0 0 1,,2 * *': day-of-month: empty list item in '1,,2'"},
      {"@often", "cron '@often': unknown macro (use @yearly, @monthly, @weekly, @daily or @hourly)"},
  };
  for (const auto& [text, message] : cases) {
    auto c = Cron::Parse(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().message(), message);
  }
}

TEST(CronTest, ZoneNamesThatAreNotZonesAreRefused) {
  EXPECT_EQ(TimeZone::Load("../../etc/passwd").status().message(),
            "time zone '../../etc/passwd' is not an IANA zone name like Europe/Berlin");
  EXPECT_FALSE(TimeZone::Load("Mars/Olympus_Mons").ok());
  EXPECT_FALSE(TimeZone::Load("Europe/Berlin", "/nonexistent").ok());
}

}  // namespace
}  // namespace sluice::schedule
