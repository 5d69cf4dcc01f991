// Faults the real binary must survive (../shared/RELIABILITY.md 1, 4, 5):
// an I/O error at every write or sync of the store in a small run, a full
// disk, and kill -9 at random moments of a 200-step run. Each ends with an
// intact database and a run that resumes to success. The I/O faults come
// from an LD_PRELOAD shim (tests/fault/io_fault.c) in the shimmed process
// only; checks and resumes run without it.
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* kSmall = R"(name: small
steps:
  a:
    run: echo a >> ran.txt && echo "n=1" >> "$SLUICE_OUTPUT"
  b:
    needs: [a]
    run: echo b >> ran.txt && echo data > "$SLUICE_OUTPUTS_DIR/data"
    outputs: {data: file}
  c:
    needs: [b]
    run: echo c >> ran.txt && cat "${{ steps.b.outputs.data }}" > /dev/null
)";

// PRAGMA integrity_check of the sandbox's store, opened read-only and
// without Sluice's code (which would migrate it first); "ok" when intact.
std::string Integrity(const Sandbox& box) {
  fs::path db = box.home() / "sluice.db";
  if (!fs::exists(db)) return "ok";  // nothing was created: nothing to corrupt
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string e = sqlite3_errmsg(h);
    sqlite3_close(h);
    return "open: " + e;
  }
  std::string out;
  sqlite3_stmt* q = nullptr;
  sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, nullptr);
  while (q && sqlite3_step(q) == SQLITE_ROW) out += reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
  sqlite3_close(h);
  return out;
}

// Sets the shim's variables for the processes started until Clear().
class Shim {
 public:
  explicit Shim(const std::map<std::string, std::string>& vars) : vars_(vars) {
    ::setenv("LD_PRELOAD", SLUICE_IO_FAULT, 1);
    for (const auto& [k, v] : vars_) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~Shim() { Clear(); }
  void Clear() {
    ::unsetenv("LD_PRELOAD");
    for (const auto& [k, v] : vars_) ::unsetenv(k.c_str());
    vars_.clear();
  }

 private:
  std::map<std::string, std::string> vars_;
};

// Brings the sandbox's run to an end without faults: resume the run if it
// was created, else run the spec again. Returns the final state.
std::string Recover(const Sandbox& box) {
  Output runs = box.Sluice({"runs", "--format", "json"});
  json list = json::parse(runs.out, nullptr, false);
  bool have_run = list.is_array() ? !list.empty() : list.is_object() && list.contains("runs") && !list["runs"].empty();
  if (have_run && ShowRun(box, "1")["state"] == "succeeded") return "succeeded";  // the fault hit after the end
  Output o = have_run ? box.Sluice({"resume", "1"}) : box.Sluice({"run", "p.yaml"});
  if (o.code != 0 && have_run) {
    // A run the fault failed outright (it recorded the failure) is retried.
    o = box.Sluice({"retry", "1"});
  }
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  return ShowRun(box, "latest")["state"];
}

// Operations and bytes a fault-free run of kSmall writes to files whose path
// holds `path` (the store by default).
std::pair<long, long long> Measure(const std::string& path = "") {
  Sandbox box;
  box.Write("p.yaml", kSmall);
  std::map<std::string, std::string> vars = {{"SLUICE_FAULT_COUNT_FILE", (box.dir() / "count").string()}};
  if (!path.empty()) vars["SLUICE_FAULT_PATH"] = path;
  Shim shim(vars);
  EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  shim.Clear();
  std::istringstream in(box.Read("count"));
  std::pair<long, long long> m{0, 0};
  in >> m.first >> m.second;
  return m;
}

}  // namespace

TEST(FaultTest, AnIoErrorAtEveryWriteAndSyncOfTheStoreIsACleanFailureAndTheRunResumes) {
  long total = Measure().first;
  ASSERT_GT(total, 10);
  for (long n = 1; n <= total; ++n) {
    SCOPED_TRACE("fault at operation " + std::to_string(n) + " of " + std::to_string(total));
    Sandbox box;
    box.Write("p.yaml", kSmall);
    Shim shim({{"SLUICE_FAULT_AT", std::to_string(n)}});
    Output o = box.Sluice({"run", "p.yaml"});
    shim.Clear();
    EXPECT_LT(o.code, 128) << "killed by a signal: " << o.err;  // a clean exit, never a crash
    if (o.code != 0) {
      EXPECT_NE(o.err.find("sluice"), std::string::npos) << o.err;  // a message, not silence
    }
    EXPECT_EQ(Integrity(box), "ok");
    EXPECT_EQ(Recover(box), "succeeded");
  }
}

TEST(FaultTest, AFullDiskIsACleanErrorThatCorruptsNothingAndTheRunResumesOnceThereIsSpace) {
  // What a whole run writes under SLUICE_HOME (every sandbox's home ends in /.sluice).
  long long total = Measure("/.sluice").second;
  ASSERT_GT(total, 4096);
  // Creating the store writes the first 40% or so, the run the next 40%, and
  // the checkpoint at exit the rest: the disk fills at nothing, then at nine
  // points of the run and of its end.
  std::vector<long long> limits = {0};
  for (int k = 8; k <= 16; ++k) limits.push_back(total * k / 20);
  for (long long limit : limits) {
    SCOPED_TRACE("disk full after " + std::to_string(limit) + " of " + std::to_string(total) + " bytes");
    Sandbox box;
    box.Write("p.yaml", kSmall);
    // Everything under SLUICE_HOME is on the full disk: the store, logs and artifacts.
    Shim shim({{"SLUICE_FAULT_PATH", box.home().string()}, {"SLUICE_FAULT_FULL_AFTER", std::to_string(limit)}});
    Output o = box.Sluice({"run", "p.yaml"});
    shim.Clear();
    EXPECT_LT(o.code, 128) << "killed by a signal: " << o.err;
    if (o.code != 0) {
      EXPECT_NE(o.err.find("full"), std::string::npos) << o.err;  // says why
    }
    EXPECT_EQ(Integrity(box), "ok");
    EXPECT_EQ(Recover(box), "succeeded");
  }
}

TEST(FaultTest, KillNineAtFiftyRandomMomentsOfA200StepRunLosesNothingAndRerunsOnlyLostAttempts) {
  Sandbox box;
  std::string spec = "name: big\nsteps:\n";
  for (int i = 0; i < 200; ++i) {
    spec += "  s" + std::to_string(i) + ":\n";
    if (i >= 2) spec += "    needs: [s" + std::to_string(i - 2) + "]\n";
    spec += "    run: sleep 0.05; echo s" + std::to_string(i) + " >> ran.txt\n";
  }
  box.Write("p.yaml", spec);
  std::mt19937 rng(20261201);
  // Longer than a resumed step (50 ms) takes to start and end, so a step is
  // rarely lost twice in a row (three times fails it, by design).
  std::uniform_int_distribution<int> delay_ms(60, 140);
  int kills = 0;
  for (int round = 0; round < 50; ++round) {
    pid_t pid = box.Start(round == 0 ? std::vector<std::string>{"run", "p.yaml", "--jobs", "2"}
                                     : std::vector<std::string>{"resume", "1"},
                         "round.log");
    // The delay counts from the round's first started step: a slow machine,
    // or a sanitizer build, may take longer than a whole delay to start.
    WaitFor([&] {
      std::string log = box.Read("round.log");
      return log.find("event=started") != std::string::npos || log.find("event=finished") != std::string::npos;
    }, std::chrono::seconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(pid, SIGKILL);
    int code = Sandbox::Reap(pid);
    if (code == 128 + SIGKILL) ++kills;
    else break;  // it finished before the kill
  }
  EXPECT_GE(kills, 40);  // most rounds were cut short
  Output o = box.Sluice({"resume", "1"});
  EXPECT_TRUE(o.code == 0 || o.err.find("already") != std::string::npos) << o.out << o.err;
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "succeeded");
  EXPECT_EQ(Integrity(box), "ok");
  // Every step succeeded; one that ran more than once had attempts recorded lost.
  std::map<std::string, int> ran, lost;
  std::istringstream in(box.Read("ran.txt"));
  for (std::string l; std::getline(in, l);) ++ran[l];
  for (const json& s : run["steps"]) {
    std::string id = s["id"];
    EXPECT_EQ(s["state"], "succeeded") << id << ": " << s.value("reason", "");
    for (const json& a : s.value("attempts", json::array()))
      if (a["state"] == "lost") ++lost[id];
    EXPECT_GE(ran[id], 1) << id;
    EXPECT_LE(ran[id], 1 + lost[id]) << id << " ran " << ran[id] << " times with " << lost[id] << " lost attempts";
  }
  std::cout << "kill -9 rounds: " << kills << "; lost attempts: "
            << std::accumulate(lost.begin(), lost.end(), 0, [](int n, const auto& e) { return n + e.second; }) << "\n";
}
