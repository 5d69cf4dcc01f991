// seed_lineage: puts a chain of N artifacts in a store the way a run of N
// steps would record it, each step consuming the previous step's output and
// producing the next (RunsStore's journal: SaveSteps, BeginAttempt,
// SaveLineage, FinishAttempt), without running N processes. For the tests
// that measure the lineage view and GET /api/lineage on a long chain.
// Prints the run's id and the last artifact's hash.
//
// usage: seed_lineage DB N
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "store/open.h"
#include "util/hash.h"

namespace {

using sluice::Status;
namespace engine = sluice::engine;
namespace store = sluice::store;

int Fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "seed_lineage: %s: %s\n", what.c_str(), st.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: seed_lineage DB N\n");
    return 2;
  }
  const std::string db = argv[1];
  const int n = std::stoi(argv[2]);
  auto opened = store::Store::Open(db);
  if (!opened.ok()) return Fail("open " + db, opened.status());
  store::RunsStore& runs = (*opened)->runs();
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  std::string spec = "name: chain\nsteps:\n  s0: {run: \"true\"}\n";
  auto run = runs.CreateRun("chain", spec, "chain.yaml", "/", "{}", 1, now);
  if (!run.ok()) return Fail("create the run", run.status());
  std::vector<engine::StepRecord> steps(static_cast<size_t>(n));
  std::vector<const engine::StepRecord*> refs;
  for (int k = 0; k < n; ++k) {
    steps[size_t(k)].step_id = "s" + std::to_string(k);
    refs.push_back(&steps[size_t(k)]);
  }
  if (Status st = runs.SaveSteps(*run, refs); !st.ok()) return Fail("save the steps", st);
  engine::ArtifactRef prev;
  for (int k = 0; k < n; ++k) {
    engine::StepRecord& s = steps[size_t(k)];
    engine::AttemptRecord a;
    a.run_id = *run;
    a.step_id = s.step_id;
    a.number = 1;
    a.started_ms = now + k;
    s.state = engine::StepState::kRunning;
    s.attempts = 1;
    if (Status st = runs.BeginAttempt(&a, s); !st.ok()) return Fail("begin " + s.step_id, st);
    std::string content = "artifact " + std::to_string(k);
    engine::ArtifactRef out{sluice::Sha256Hex(content), "file", static_cast<int64_t>(content.size()), "/nowhere"};
    std::vector<engine::LineageEdge> edges;
    if (k > 0) edges.push_back({engine::LineageEdge::Role::kConsumed, "s" + std::to_string(k - 1) + ".out", prev});
    edges.push_back({engine::LineageEdge::Role::kProduced, "out", out});
    if (Status st = runs.SaveLineage(a, edges); !st.ok()) return Fail("record the lineage of " + s.step_id, st);
    a.state = engine::StepState::kSucceeded;
    a.exit_code = 0;
    a.finished_ms = now + k + 1;
    s.state = engine::StepState::kSucceeded;
    if (Status st = runs.FinishAttempt(&a, s); !st.ok()) return Fail("finish " + s.step_id, st);
    if (k % 500 == 499)
      if (Status st = runs.Flush(); !st.ok()) return Fail("flush", st);
    prev = out;
  }
  if (Status st = runs.SetRunState(*run, engine::RunState::kSucceeded, now + n + 1); !st.ok()) return Fail("finish the run", st);
  if (Status st = runs.Flush(); !st.ok()) return Fail("flush", st);
  std::printf("%lld %s\n", static_cast<long long>(*run), prev.hash.c_str());
  return 0;
}
