// `sluice schedules`: the `on.schedule` entries of pipeline specs and their
// next fire times, in each schedule's time zone; `sluice backfill`: one run
// per fire time of a past range.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/plugins.h"
#include "cli/progress.h"
#include "runs/verbs.h"
#include "server/launcher.h"
#include "util/strings.h"
#include "spec/pipeline.h"

namespace fs = std::filesystem;

namespace sluice::cli {
namespace {

// "2026-11-27 03:00 +01:00" on the schedule's wall clock.
std::string WallTime(int64_t utc, const schedule::TimeZone& tz) {
  int64_t offset = tz.OffsetAt(utc);
  schedule::CivilTime c = schedule::CivilFromSeconds(utc + offset);
  int64_t m = offset < 0 ? -offset / 60 : offset / 60;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d %c%02lld:%02lld", c.year, c.month, c.day, c.hour, c.minute,
                offset < 0 ? '-' : '+', static_cast<long long>(m / 60), static_cast<long long>(m % 60));
  return buf;
}

// The spec files named: folders stand for their *.yaml and *.yml files.
std::vector<std::string> SpecFiles(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) {
      files.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(p, ec))
      if (e.path().extension() == ".yaml" || e.path().extension() == ".yml") found.push_back(e.path().string());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace

int Schedules(const std::vector<std::string>& paths, int count, const std::string& format) {
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  int code = kExitOk;
  nlohmann::json out = nlohmann::json::array();
  bool header = false;
  for (const std::string& file : SpecFiles(paths)) {
    auto p = spec::LoadPipeline(file);
    if (!p.ok()) {
      std::cerr << (p.status().code() == Code::kIoError ? "sluice: " : "") << p.status().message() << "\n";
      code = kExitUsage;
      continue;
    }
    for (const spec::Schedule& s : p->schedules) {
      std::vector<int64_t> next;
      for (int64_t t = now; static_cast<int>(next.size()) < count;) {
        auto n = s.cron.Next(t, s.zone);
        if (!n) break;
        next.push_back(*n);
        t = *n;
      }
      if (format == "json") {
        nlohmann::json j = {{"pipeline", p->name}, {"file", file},          {"cron", s.cron.text()},
                            {"timezone", s.timezone}, {"catchup", spec::CatchupJson(s.catchup)},
                            {"overlap", spec::OverlapName(s.overlap)}, {"next", nlohmann::json::array()}};
        for (int64_t t : next) j["next"].push_back({{"utc", IsoTime(t * 1000)}, {"local", WallTime(t, s.zone)}});
        out.push_back(j);
        continue;
      }
      if (!header) {
        std::printf("%-24s %-22s %-16s %s\n", "PIPELINE", "CRON", "TIMEZONE", "NEXT");
        header = true;
      }
      std::string times;
      for (int64_t t : next) times += (times.empty() ? "" : ", ") + WallTime(t, s.zone);
      std::printf("%-24s %-22s %-16s %s\n", p->name.c_str(), s.cron.text().c_str(), s.timezone.c_str(),
                  times.empty() ? "(none in five years)" : times.c_str());
    }
  }
  if (format == "json") std::printf("%s\n", out.dump(2).c_str());
  else if (!header && code == kExitOk) std::printf("no schedules\n");
  return code;
}

}  // namespace sluice::cli

// --- sluice backfill ---------------------------------------------------------

namespace sluice::cli {
namespace {

// A time given to --from or --to: YYYY-MM-DD, YYYY-MM-DDTHH:MM or
// YYYY-MM-DDTHH:MM:SS, on the schedule's wall clock, or the same with a
// trailing Z for UTC. `end_of_day`: a date alone stands for its last second.
std::optional<int64_t> ParseWhen(const std::string& text, const schedule::TimeZone& tz, bool end_of_day) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  char tail[8] = {0};
  std::string body = text;
  bool utc = !body.empty() && body.back() == 'Z';
  if (utc) body.pop_back();
  int n = std::sscanf(body.c_str(), "%4d-%2d-%2d%7s", &y, &mo, &d, tail);
  if (n < 3 || body.size() < 10) return std::nullopt;
  bool date_only = body.size() == 10;
  if (!date_only) {
    if (std::sscanf(body.c_str() + 10, "T%2d:%2d:%2d", &h, &mi, &s) < 2) return std::nullopt;
    if (body.size() != 16 && body.size() != 19) return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 || h < 0 || mi < 0 || s < 0) return std::nullopt;
  if (schedule::CivilFromSeconds(DaysFromCivil(y, mo, d) * 86400).day != d) return std::nullopt;  // 2026-02-30
  int64_t wall = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  if (date_only && end_of_day) wall += 86399;
  if (utc) return wall;
  return wall - tz.OffsetAt(wall - tz.OffsetAt(wall));
}

std::atomic<int> g_backfill_interrupts{0};
void OnBackfillInterrupt(int) { ++g_backfill_interrupts; }

}  // namespace

int Backfill(const std::string& file, const std::string& from, const std::string& to, int schedule_number,
             int max_active, const std::string& reprocess, bool dry_run, const Overrides& overrides) {
  auto p = spec::LoadPipeline(file);
  if (!p.ok()) return Fail((p.status().code() == Code::kIoError ? "sluice: " : "") + p.status().message(), kExitUsage);
  if (p->schedules.empty())
    return Fail("sluice: " + file + " has no on.schedule: a backfill starts one run per fire time of a schedule "
                "(add on: {schedule: [{cron: \"0 3 * * *\"}]})", kExitUsage);
  if (schedule_number < 1 || schedule_number > static_cast<int>(p->schedules.size()))
    return Fail("sluice: --schedule " + std::to_string(schedule_number) + ": " + file + " has " +
                std::to_string(p->schedules.size()) + " schedule(s), numbered from 1", kExitUsage);
  const spec::Schedule& sched = p->schedules[static_cast<size_t>(schedule_number - 1)];
  auto first = ParseWhen(from, sched.zone, false);
  auto last = ParseWhen(to, sched.zone, true);
  for (const auto& [given, flag, at] : {std::tuple{from, "--from", first}, std::tuple{to, "--to", last}})
    if (!at)
      return Fail(std::string("sluice: ") + flag + " " + Quote(given) + " is not a time (use 2026-11-01, "
                  "2026-11-01T03:00 or 2026-11-01T03:00:00, on the schedule's clock; a trailing Z means UTC)", kExitUsage);
  if (*last < *first) return Fail("sluice: --to " + Quote(to) + " is before --from " + Quote(from), kExitUsage);
  auto params = spec::ResolveParams(*p, overrides);
  if (!params.ok()) return Fail(params.status().message(), kExitUsage);
  if (auto plugins = PluginsFor(*p); !plugins.ok()) return Fail(plugins.status().message(), kExitUsage);

  // The fire times, each with the interval from the one before.
  std::vector<engine::DataInterval> intervals;
  for (auto t = sched.cron.Next(*first - 1, sched.zone); t && *t <= *last; t = sched.cron.Next(*t, sched.zone)) {
    if (intervals.size() == kMaxBackfillRuns)
      return Fail("sluice: from " + from + " to " + to + " the schedule '" + sched.cron.text() + "' fires more than " +
                  std::to_string(kMaxBackfillRuns) + " times (the limit of one backfill); narrow --from and --to",
                  kExitUsage);
    auto before = sched.cron.Previous(*t, sched.zone);
    intervals.push_back({.start_ms = (before ? *before : *t) * 1000, .end_ms = *t * 1000});
  }
  if (intervals.empty()) {
    std::printf("backfill %s: the schedule '%s' does not fire from %s to %s; nothing to run\n", p->name.c_str(),
                sched.cron.text().c_str(), from.c_str(), to.c_str());
    return kExitOk;
  }
  if (dry_run) {
    for (const engine::DataInterval& in : intervals)
      std::printf("%s (interval from %s)\n", IsoTime(in.end_ms).c_str(), IsoTime(in.start_ms).c_str());
    return kExitOk;
  }
  auto store = OpenStore();
  if (!store) return kExitFailed;
  store::RunsStore& runs = store->runs();
  // An interval whose newest run succeeded or is still going is done
  // (unless --reprocess all); one whose newest run failed or was cancelled
  // runs again.
  auto existing = runs.ScheduledRuns(p->name, intervals.front().end_ms, intervals.back().end_ms);
  if (!existing.ok()) return Fail("sluice: " + existing.status().message(), kExitFailed);
  std::map<int64_t, store::RunRow> newest;
  for (store::RunRow& r : *existing) newest[r.interval->end_ms] = std::move(r);

  std::error_code ec;
  std::string program = fs::read_symlink("/proc/self/exe", ec).string();
  std::string home = fs::absolute(HomeDir()).lexically_normal().string();
  server::Launcher launcher(home, program, max_active);
  g_backfill_interrupts = 0;
  auto interrupts = std::make_unique<InterruptHandler>(OnBackfillInterrupt);

  std::vector<int64_t> started;
  int skipped = 0;
  for (const engine::DataInterval& in : intervals) {
    std::string when = IsoTime(in.end_ms);
    auto it = newest.find(in.end_ms);
    if (reprocess != "all" && it != newest.end() && it->second.state != engine::RunState::kFailed &&
        it->second.state != engine::RunState::kCancelled) {
      std::printf("%s skipped: run %lld is %s\n", when.c_str(), static_cast<long long>(it->second.id),
                  engine::Name(it->second.state));
      ++skipped;
      continue;
    }
    auto id = launcher.Start(runs, *p, *params, "backfill", in);
    if (!id.ok()) {
      std::fprintf(stderr, "sluice: %s: %s\n", when.c_str(), id.status().message().c_str());
      break;
    }
    std::printf("%s run %lld (interval from %s)\n", when.c_str(), static_cast<long long>(*id), IsoTime(in.start_ms).c_str());
    started.push_back(*id);
    if (g_backfill_interrupts) break;
  }
  std::fflush(stdout);

  // Wait for every run started here to end, each reported as it does.
  std::map<int64_t, engine::RunState> ended;
  while (ended.size() < started.size() && !g_backfill_interrupts) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (int64_t id : started) {
      if (ended.count(id)) continue;
      auto row = runs.GetRun(id);
      if (!row.ok()) continue;
      if (row->state == engine::RunState::kSucceeded || row->state == engine::RunState::kFailed ||
          row->state == engine::RunState::kCancelled) {
        ended[id] = row->state;
        std::printf("%s run %lld %s\n", IsoTime(row->interval->end_ms).c_str(), static_cast<long long>(id),
                    engine::Name(row->state));
        std::fflush(stdout);
      }
    }
  }
  bool interrupted = g_backfill_interrupts > 0;
  if (interrupted) {
    // Ctrl-C: the drivers cancel their runs (as Ctrl-C in `sluice run`
    // does), and runs still queued here are cancelled where they wait.
    std::fprintf(stderr, "sluice: backfill interrupted: cancelling its runs\n");
    launcher.Stop(std::chrono::seconds(10));
    runs::RunVerbs verbs(runs, home);
    for (int64_t id : started) {
      auto row = runs.GetRun(id);
      if (row.ok() && row->state == engine::RunState::kQueued) (void)verbs.Cancel(*row);
    }
  } else {
    launcher.Stop(std::chrono::seconds(10));
  }
  interrupts.reset();
  int failed = 0, succeeded = 0;
  for (const auto& [id, state] : ended) (state == engine::RunState::kSucceeded ? succeeded : failed) += 1;
  std::printf("backfill %s: %zu interval(s): %d run and succeeded, %d failed or cancelled, %d skipped%s\n",
              p->name.c_str(), intervals.size(), succeeded, failed, skipped,
              interrupted ? ", interrupted" : "");
  if (interrupted) return kExitCancelled;
  return failed > 0 ? kExitFailed : kExitOk;
}

}  // namespace sluice::cli
