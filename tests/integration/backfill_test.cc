// `sluice backfill` and scheduled runs' data intervals, end to end: real
// driver processes, a real SQLite file.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "store/open.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

// A daily pipeline whose step appends its run's scheduled time and interval
// start to seen.txt, and fails while a file fail-<scheduled time> exists.
const char* kDaily = R"(name: daily
on:
  schedule: [{cron: "0 3 * * *"}]
steps:
  load:
    env: {AT: "${{ run.scheduled_time }}", FROM: "${{ run.interval_start }}"}
    run: 'echo "$AT $FROM" >> seen.txt; test ! -e "fail-$AT"'
)";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) out.push_back(text.substr(start, nl - start));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(BackfillTest, StartsOneRunPerFireTimeEachReadingItsScheduledTimeAndDataInterval) {
  Sandbox box;
  box.Write("daily.yaml", kDaily);
  Output o = box.Sluice({"backfill", "daily.yaml", "--from", "2026-11-01", "--to", "2026-11-03"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(Lines(box.Read("seen.txt")),
            (std::vector<std::string>{"2026-11-01T03:00:00Z 2026-10-31T03:00:00Z", "2026-11-02T03:00:00Z 2026-11-01T03:00:00Z",
                                      "2026-11-03T03:00:00Z 2026-11-02T03:00:00Z"}));
  EXPECT_NE(o.out.find("3 interval(s): 3 run and succeeded, 0 failed or cancelled, 0 skipped"), std::string::npos) << o.out;
  json runs = json::parse(box.Sluice({"runs", "--format", "json"}).out);
  ASSERT_EQ(runs.size(), 3u);
  for (const json& r : runs) {
    EXPECT_EQ(r["trigger"], "backfill");
    EXPECT_EQ(r["state"], "succeeded");
    EXPECT_EQ(r["scheduled"].get<std::string>().substr(10), "T03:00:00.000Z");
  }
  EXPECT_NE(box.Sluice({"show", "latest"}).out.find("scheduled for 2026-11-0"), std::string::npos);
}

TEST(BackfillTest, ARunFromTheCommandLineReadsNoScheduledTime) {
  Sandbox box;
  box.Write("daily.yaml", kDaily);
  ASSERT_EQ(box.Sluice({"run", "daily.yaml"}).code, 0);
  EXPECT_EQ(box.Read("seen.txt"), " \n");
}

TEST(BackfillTest, ASecondBackfillSkipsSucceededIntervalsAndRunsFailedOnesAgain) {
  Sandbox box;
  box.Write("daily.yaml", kDaily);
  box.Write("fail-2026-11-02T03:00:00Z", "");
  Output first = box.Sluice({"backfill", "daily.yaml", "--from", "2026-11-01", "--to", "2026-11-03"});
  EXPECT_EQ(first.code, 1) << first.out << first.err;
  EXPECT_NE(first.out.find("2026-11-02T03:00:00.000Z run 2 failed"), std::string::npos) << first.out;
  std::filesystem::remove(box.dir() / "fail-2026-11-02T03:00:00Z");
  Output second = box.Sluice({"backfill", "daily.yaml", "--from", "2026-11-01", "--to", "2026-11-03"});
  EXPECT_EQ(second.code, 0) << second.out << second.err;
  EXPECT_NE(second.out.find("1 run and succeeded, 0 failed or cancelled, 2 skipped"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("2026-11-01T03:00:00.000Z skipped: run 1 is succeeded"), std::string::npos) << second.out;
  Output all = box.Sluice({"backfill", "daily.yaml", "--from", "2026-11-01", "--to", "2026-11-03", "--reprocess", "all"});
  EXPECT_EQ(all.code, 0);
  EXPECT_NE(all.out.find("3 run and succeeded"), std::string::npos) << all.out;
}

TEST(BackfillTest, MaxActiveBoundsTheRunsThatGoAtOnce) {
  Sandbox box;
  // Two runs at once would find the other's lock folder and fail.
  box.Write("locked.yaml", R"(name: locked
on:
  schedule: [{cron: "0 * * * *"}]
steps:
  hold: {run: 'mkdir lock && sleep 0.3 && rmdir lock'}
)");
  Output o = box.Sluice({"backfill", "locked.yaml", "--from", "2026-11-01T00:00", "--to", "2026-11-01T03:00", "--max-active", "1"});
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("4 interval(s): 4 run and succeeded"), std::string::npos) << o.out;
}

TEST(BackfillTest, TimesAreOnTheSchedulesClockUnlessTheyEndInZ) {
  Sandbox box;
  box.Write("berlin.yaml", R"(name: berlin
on:
  schedule: [{cron: "30 0 * * *", timezone: Europe/Berlin}]
steps:
  a: {run: 'true'}
)");
  // 00:30 in Berlin on 2026-11-02 is 23:30 UTC on 2026-11-01.
  Output o = box.Sluice({"backfill", "berlin.yaml", "--from", "2026-11-02", "--to", "2026-11-02"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("2026-11-01T23:30:00.000Z run 1 succeeded"), std::string::npos) << o.out;
  o = box.Sluice({"backfill", "berlin.yaml", "--from", "2026-11-02T00:00Z", "--to", "2026-11-02T23:59Z"});
  EXPECT_NE(o.out.find("2026-11-02T23:30:00.000Z run 2 succeeded"), std::string::npos) << o.out;
}

TEST(BackfillTest, BadRangesAndSpecsWithoutASchedulesAreRefusedWithTheWayOut) {
  Sandbox box;
  box.Write("daily.yaml", kDaily);
  box.Write("plain.yaml", "name: plain\nsteps:\n  a: {run: 'true'}\n");
  box.Write("minutely.yaml", "name: minutely\non:\n  schedule: [{cron: '* * * * *'}]\nsteps:\n  a: {run: 'true'}\n");
  auto err = [&](std::vector<std::string> args) {
    Output o = box.Sluice(args);
    EXPECT_EQ(o.code, 2) << o.out;
    return o.err;
  };
  EXPECT_EQ(err({"backfill", "plain.yaml", "--from", "2026-11-01", "--to", "2026-11-02"}),
            "sluice: plain.yaml has no on.schedule: a backfill starts one run per fire time of a schedule (add on: "
            "{schedule: [{cron: \"0 3 * * *\"}]})\n");
  EXPECT_EQ(err({"backfill", "daily.yaml", "--from", "2026-02-30", "--to", "2026-03-02"}),
            "sluice: --from '2026-02-30' is not a time (use 2026-11-01, 2026-11-01T03:00 or 2026-11-01T03:00:00, on "
            "the schedule's clock; a trailing Z means UTC)\n");
  EXPECT_EQ(err({"backfill", "daily.yaml", "--from", "2026-11-05", "--to", "2026-11-01"}),
            "sluice: --to '2026-11-01' is before --from '2026-11-05'\n");
  EXPECT_EQ(err({"backfill", "daily.yaml", "--from", "2026-11-01", "--to", "2026-11-02", "--schedule", "2"}),
            "sluice: --schedule 2: daily.yaml has 1 schedule(s), numbered from 1\n");
  // 10,000 fire times is the limit: one minute more is refused before any run starts.
  Output at_limit = box.Sluice({"backfill", "minutely.yaml", "--from", "2026-11-01T00:00Z", "--to", "2026-11-07T22:39Z",
                                "--dry-run"});
  EXPECT_EQ(at_limit.code, 0) << at_limit.err;
  EXPECT_EQ(std::count(at_limit.out.begin(), at_limit.out.end(), '\n'), 10000);
  EXPECT_EQ(err({"backfill", "minutely.yaml", "--from", "2026-11-01T00:00Z", "--to", "2026-11-07T22:40Z"}),
            "sluice: from 2026-11-01T00:00Z to 2026-11-07T22:40Z the schedule '* * * * *' fires more than 10000 times "
            "(the limit of one backfill); narrow --from and --to\n");
  EXPECT_FALSE(box.Exists(".sluice/sluice.db") && !json::parse(box.Sluice({"runs", "--format", "json"}).out).empty());
}
