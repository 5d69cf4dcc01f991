// `sluice schedules`: the `on.schedule` entries of pipeline specs and their
// next fire times, in each schedule's time zone.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
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
                            {"timezone", s.timezone}, {"catchup", s.catchup}, {"next", nlohmann::json::array()}};
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
