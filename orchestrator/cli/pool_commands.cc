// pool set, list, delete: named pools of slots that steps of every run share
// (a step's `pool:`; specs/pipeline.md "Pools").
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
#include "spec/pipeline.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

int SetPool(const std::string& name, int slots) {
  if (!spec::IsValidPoolName(name))
    return Fail("sluice: pool name " + Quote(name) +
                    " must be 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit",
                kExitUsage);
  if (slots < 0 || slots > 10000) return Fail("sluice: --slots must be from 0 to 10000", kExitUsage);
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->concurrency().SetPool(name, slots, WallClockMs());
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  std::printf("pool %s: %d slots\n", name.c_str(), slots);
  return kExitOk;
}

int ListPools(const std::string& format) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  auto pools = store->concurrency().ListPools();
  if (!pools.ok()) return Fail("sluice: " + pools.status().message(), kExitFailed);
  if (format == "json") {
    nlohmann::json j = nlohmann::json::array();
    for (const store::PoolRow& p : *pools) {
      nlohmann::json leases = nlohmann::json::array();
      for (const store::PoolLeaseRow& l : p.leases)
        leases.push_back({{"run", l.run_id},
                          {"step", l.step_id},
                          {"item", l.item < 0 ? nlohmann::json() : nlohmann::json(l.item)},
                          {"slots", l.slots},
                          {"since", IsoTime(l.leased_ms)}});
      j.push_back({{"name", p.name}, {"slots", p.slots}, {"used", p.used()}, {"leases", leases}});
    }
    std::printf("%s\n", JsonText(j, 2).c_str());
    return kExitOk;
  }
  std::printf("%-24s %5s %5s  %s\n", "POOL", "SLOTS", "USED", "HELD BY");
  for (const store::PoolRow& p : *pools) {
    std::string held;
    for (const store::PoolLeaseRow& l : p.leases) {
      if (!held.empty()) held += ", ";
      held += "run ";
      held += std::to_string(l.run_id);
      held += ' ';
      held += l.step_id;
      if (l.item >= 0) held.append(1, '[').append(std::to_string(l.item)).append(1, ']');
    }
    std::printf("%-24s %5d %5d  %s\n", p.name.c_str(), p.slots, p.used(), held.empty() ? "-" : held.c_str());
  }
  return kExitOk;
}

int DeletePool(const std::string& name) {
  auto store = OpenStore();
  if (!store) return kExitFailed;
  Status st = store->concurrency().DeletePool(name);
  if (!st.ok()) return Fail("sluice: " + st.message(), kExitFailed);
  std::printf("pool %s deleted\n", name.c_str());
  return kExitOk;
}

}  // namespace sluice::cli
