// lineage and gc: what an artifact was made from and what it fed, and
// removing the files of artifacts nothing needs any more (their lineage
// stays on record).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "store/registry_json.h"
#include "util/duration.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

using engine::AttemptRecord;

namespace {

bool IsHash(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string Size(int64_t bytes) {
  char buf[32];
  if (bytes < 1024) std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else if (bytes < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1048576.0);
  return buf;
}

}  // namespace

int Lineage(const std::string& target, bool downstream, const std::string& format) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  std::string hash;
  int64_t attempt_id = 0;
  std::string base = target;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string last = base.substr(base.find_last_of('/') + 1);
  size_t slash = target.find('/');
  if (target.rfind("service:", 0) == 0) {
    // service:NAME/VERSION: the model artifact a service version serves.
    std::string rest = target.substr(8);
    size_t cut = rest.find('/');
    std::string name = rest.substr(0, cut), version = cut == std::string::npos ? "" : rest.substr(cut + 1);
    auto service = store->services().Get(name);
    if (!service.ok()) {
      std::cerr << "sluice: " << service.status().message() << "\n";
      return kExitFailed;
    }
    std::vector<std::string> names;
    for (const store::ServiceVersionState& v : service->versions) {
      names.push_back(v.name);
      if (v.name == version) hash = v.artifact;
    }
    if (std::find(names.begin(), names.end(), version) == names.end()) {
      std::cerr << "sluice: service " << name << " has no version " << Quote(version)
                << " (versions: " << Join(names, ", ") << "); use service:NAME/VERSION\n";
      return kExitUsage;
    }
    if (hash.empty()) {
      std::cerr << "sluice: version " << version << " of service " << name
                << " serves no registered artifact (a command, or a model file given by path)\n";
      return kExitFailed;
    }
  } else if (IsHash(target)) {
    hash = target;
  } else if (IsHash(last) && base.find("artifacts/") != std::string::npos) {
    hash = last;
  } else if (slash != std::string::npos) {
    // RUN/STEP or RUN/STEP[item]
    int64_t run;
    if (!ParseRunId(target.substr(0, slash), &run)) return kExitUsage;
    std::string step = target.substr(slash + 1);
    int item = -1;
    size_t bracket = step.find('[');
    if (bracket != std::string::npos && step.back() == ']') {
      item = std::atoi(step.substr(bracket + 1).c_str());
      step = step.substr(0, bracket);
    }
    auto a = store->runs().LatestAttempt(run, step, item);
    if (!a.ok()) {
      std::cerr << "sluice: " << a.status().message() << "\n";
      return kExitFailed;
    }
    attempt_id = a->id;
  } else {
    std::cerr << "sluice: " << Quote(target)
              << " is neither an artifact (a SHA-256 hash or a path under .sluice/artifacts), RUN/STEP, nor "
                 "service:NAME/VERSION\n";
    return kExitUsage;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto g = store->lineage().Lineage(hash, attempt_id, !downstream);
  auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  if (!g.ok()) {
    std::cerr << "sluice: " << g.status().message() << "\n";
    return kExitFailed;
  }
  if (!hash.empty() && g->artifacts.empty()) {
    std::cerr << "sluice: no artifact " << hash << " in the store\n";
    return kExitFailed;
  }
  auto label = [](const AttemptRecord& a) {
    return "run " + std::to_string(a.run_id) + " / " + StepLabel(a.step_id, a.item) + " #" + std::to_string(a.number);
  };
  std::map<int64_t, const AttemptRecord*> by_id;
  for (const AttemptRecord& a : g->attempts) by_id[a.id] = &a;
  if (format == "json") {
    nlohmann::json j = store::LineageJson(*g, downstream);
    j["query_us"] = took.count();
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  if (format == "dot") {
    std::cout << "digraph lineage {\n  rankdir=LR;\n";
    for (const auto& a : g->artifacts)
      std::cout << "  \"" << a.hash << "\" [shape=ellipse, label=\"" << a.kind << "\\n" << a.hash.substr(0, 12) << "\"];\n";
    for (const auto& a : g->attempts)
      std::cout << "  \"a" << a.id << "\" [shape=box, label=\"" << label(a) << "\\n" << engine::Name(a.state) << "\"];\n";
    for (const auto& e : g->edges) {
      if (e.role == "consumed") std::cout << "  \"" << e.hash << "\" -> \"a" << e.attempt_id << "\"";
      else std::cout << "  \"a" << e.attempt_id << "\" -> \"" << e.hash << "\"";
      std::cout << " [label=\"" << e.name << (e.role == "reused" ? " (cached)" : "") << "\"];\n";
    }
    std::cout << "}\n";
    return kExitOk;
  }
  std::printf("%s lineage: %s, %s (%lld us)\n", downstream ? "downstream" : "upstream",
              Plural(static_cast<int64_t>(g->artifacts.size()), "artifact").c_str(),
              Plural(static_cast<int64_t>(g->attempts.size()), "attempt").c_str(), static_cast<long long>(took.count()));
  for (const auto& a : g->artifacts) {
    std::printf("\nartifact %s  %s  %s\n  %s\n", a.hash.substr(0, 16).c_str(), a.kind.c_str(), Size(a.size).c_str(),
                a.uri.c_str());
    for (const auto& e : g->edges) {
      if (e.hash != a.hash || !by_id.count(e.attempt_id)) continue;
      const AttemptRecord& at = *by_id[e.attempt_id];
      std::printf("  %s by %s (%s, as %s)\n", e.role.c_str(), label(at).c_str(), engine::Name(at.state), e.name.c_str());
    }
  }
  return kExitOk;
}

int Gc(const std::string& older_than, bool dry_run) {
  auto age = ParseDuration(older_than);
  if (!age) {
    std::cerr << "sluice: bad duration " << Quote(older_than) << " for --older-than (e.g. 12h, 30d)\n";
    return kExitUsage;
  }
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto doomed = store->lineage().CollectableArtifacts(WallClockMs() - age->count());
  if (!doomed.ok()) {
    std::cerr << "sluice: " << doomed.status().message() << "\n";
    return kExitFailed;
  }
  namespace fs = std::filesystem;
  std::string root = fs::absolute(HomeDir()).lexically_normal().string() + "/artifacts/";
  int64_t bytes = 0;
  int removed = 0;
  for (const auto& [hash, size] : *doomed) {
    fs::path p = root + hash;
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;  // removed before
    if (dry_run) {
      std::printf("would remove %s (%s)\n", p.c_str(), Size(size).c_str());
    } else {
      // Published artifacts are read-only; their folders must be writable to empty them.
      if (fs::is_directory(p, ec))
        for (const auto& e : fs::recursive_directory_iterator(p, ec))
          if (e.is_directory()) fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
      fs::permissions(p, fs::perms::owner_all, fs::perm_options::add, ec);
      fs::remove_all(p, ec);
      if (ec) {
        std::cerr << "sluice: remove " << p << ": " << ec.message() << "\n";
        return kExitFailed;
      }
    }
    bytes += size;
    ++removed;
  }
  std::printf("%s %s, %s; their lineage stays on record\n", dry_run ? "would remove" : "removed",
              Plural(removed, "artifact").c_str(), Size(bytes).c_str());
  return kExitOk;
}

}  // namespace sluice::cli
