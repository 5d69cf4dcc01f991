// The daily loop of the CLI, end to end: run, look (show, logs, runs),
// retry, and the model registry's housekeeping.
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// a -> b -> c, each cached and appending its name to ran.txt; b fails
// until the file `fixed` exists.
const char* kCachedChain = R"(name: chain
steps:
  a: {run: echo a >> ran.txt, cache: true}
  b: {needs: [a], run: "echo b >> ran.txt; test -e fixed", cache: true}
  c: {needs: [b], run: echo c >> ran.txt, cache: true}
)";

// The lines of `text` that start with `prefix`.
std::vector<std::string> LinesStartingWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
    at = end + 1;
  }
  return out;
}

// The first word of each line of `sluice show`'s step table.
std::vector<std::string> ShownSteps(const std::string& show) {
  std::vector<std::string> out;
  size_t table = show.find("\nSTEP ");
  if (table == std::string::npos) return out;
  size_t at = show.find('\n', table + 1) + 1;
  while (at < show.size()) {
    size_t end = show.find('\n', at);
    std::string line = show.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line[0] == ' ') continue;  // attempts, outputs, items
    out.push_back(line.substr(0, line.find(' ')));
  }
  return out;
}

}  // namespace

TEST(RetryTest, RetryFromAStepRunsItAndEverythingAfterItFreshInsteadOfFromTheCache) {
  Sandbox box;
  box.Write("p.yaml", kCachedChain);
  box.Write("fixed", "");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  Output o = box.Sluice({"retry", "1", "--from", "b"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  std::string ran = box.Read("ran.txt");
  EXPECT_EQ(CountLines(ran, "a"), 1);
  EXPECT_EQ(CountLines(ran, "b"), 2);
  EXPECT_EQ(CountLines(ran, "c"), 2);
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "b")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "c")["state"], "succeeded");
}

TEST(RetryTest, RetryNoCacheRunsDependantsThatWouldComeFromTheCache) {
  Sandbox box;
  box.Write("p.yaml", kCachedChain);
  box.Write("fixed", "");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);  // c's cache entry
  fs::remove(box.dir() / "fixed");
  ASSERT_EQ(box.Sluice({"run", "p.yaml", "--no-cache"}).code, 1);
  box.Write("fixed", "");
  Output o = box.Sluice({"retry", "2", "--no-cache"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(CountLines(box.Read("ran.txt"), "c"), 2);
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "c")["state"], "succeeded");
}

TEST(RetryTest, RunResumeAndRetryAllTakeNoCache) {
  Sandbox box;
  box.Write("p.yaml", "name: n\nsteps:\n  a: {run: 'true'}\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml", "--no-cache"}).code, 0);
  // Both parse the flag and get as far as the run's state.
  EXPECT_EQ(box.Sluice({"resume", "1", "--no-cache"}).err,
            "sluice: run 1 already succeeded; nothing to resume (sluice retry 1 runs failed steps again)\n");
  EXPECT_EQ(box.Sluice({"retry", "1", "--no-cache"}).err,
            "sluice: run 1 has no failed or cancelled steps; name one with --from STEP\n");
}

TEST(RetryTest, AStepsDurationIsItsLastAttemptsNotTheSpanSinceItsFirst) {
  Sandbox box;
  box.Write("p.yaml", R"(name: d
steps:
  flaky:
    run: 'if [ "$SLUICE_ATTEMPT" = 1 ]; then sleep 1; exit 1; fi'
    retry: {limit: 1, backoff: {initial: 1s}}
)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  json step = StepOf(ShowRun(box, "1"), "flaky");
  ASSERT_EQ(step["attempts"].size(), 2u);
  int64_t last = step["attempts"][1]["finished_ms"].get<int64_t>() - step["attempts"][1]["started_ms"].get<int64_t>();
  EXPECT_EQ(step["duration_ms"], last);
  EXPECT_LT(step["duration_ms"].get<int64_t>(), 900);  // not the 2 s since the first attempt began
  Output show = box.Sluice({"show", "1"});
  auto lines = LinesStartingWith(show.out, "flaky ");
  ASSERT_EQ(lines.size(), 1u) << show.out;
  std::istringstream columns(lines[0]);
  std::string id, state, attempts, duration;
  columns >> id >> state >> attempts >> duration;
  EXPECT_EQ(duration.substr(duration.size() - 2), "ms") << lines[0];  // under a second
}

TEST(RetryTest, RetryWarnsInOneLineWhenTheSpecFileChangedAndRunsTheStoredSpec) {
  Sandbox box;
  box.Write("p.yaml", "name: w\nsteps:\n  a: {run: 'echo old >> ran.txt; test -e fixed'}\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  box.Write("p.yaml", "name: w\nsteps:\n  a: {run: 'echo new >> ran.txt'}\n");
  box.Write("fixed", "");
  Output o = box.Sluice({"retry", "1"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(o.err, "sluice: " + (box.dir() / "p.yaml").string() +
                       " changed since run 1 started; retrying with the spec stored with the run "
                       "(--reload uses the file as it is now)\n");
  EXPECT_EQ(box.Read("ran.txt"), "old\nold\n");
}

TEST(RetryTest, RetryReloadRunsTheCurrentFileAndRerunsTheStepsWhoseDefinitionChanged) {
  Sandbox box;
  box.Write("p.yaml", R"(name: r
steps:
  prep: {run: echo prep >> ran.txt}
  train: {needs: [prep], run: echo train >> ran.txt}
  report: {needs: [train], run: echo report >> ran.txt}
  side: {needs: [prep], run: echo side >> ran.txt}
  broken: {run: "echo broken >> ran.txt; exit 1"}
)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  box.Write("p.yaml", R"(name: r
steps:
  prep: {run: echo prep >> ran.txt}
  train: {needs: [prep], run: echo train2 >> ran.txt}
  report: {needs: [train], run: echo report >> ran.txt}
  side: {needs: [prep], run: echo side >> ran.txt}
  broken: {run: "echo fixed >> ran.txt"}
  added: {run: echo added >> ran.txt}
)");
  Output o = box.Sluice({"retry", "1", "--reload"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(o.err, "");
  EXPECT_NE(o.out.find("retrying run 1 with the current p.yaml: 4 steps again (changed: train, broken, added)\n"),
            std::string::npos) << o.out;
  std::string ran = box.Read("ran.txt");
  EXPECT_EQ(CountLines(ran, "prep"), 1);
  EXPECT_EQ(CountLines(ran, "side"), 1);
  EXPECT_EQ(CountLines(ran, "train2"), 1);
  EXPECT_EQ(CountLines(ran, "report"), 2);  // after a changed step
  EXPECT_EQ(CountLines(ran, "fixed"), 1);
  EXPECT_EQ(CountLines(ran, "added"), 1);
  json run = ShowRun(box, "1");
  EXPECT_EQ(run["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "added")["state"], "succeeded");
  // The run now holds the current spec: retrying again warns of nothing.
  o = box.Sluice({"retry", "1", "--from", "report"});
  EXPECT_EQ(o.err, "");
}

TEST(RetryTest, RetryReloadRefusesAnInvalidFileWithItsLocatedErrorsAndChangesNothing) {
  Sandbox box;
  box.Write("p.yaml", "name: v\nsteps:\n  a: {run: 'exit 1'}\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  box.Write("p.yaml", "name: v\nsteps:\n  a: {run: 'true', needs: [nope]}\n");
  Output o = box.Sluice({"retry", "1", "--reload"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, (box.dir() / "p.yaml").string() + ":3:28: step 'a' needs unknown step 'nope'\n");
  EXPECT_EQ(ShowRun(box, "1")["state"], "failed");
  box.Write("p.yaml", "name: other\nsteps:\n  a: {run: 'true'}\n");
  o = box.Sluice({"retry", "1", "--reload"});
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(o.err, "sluice: " + (box.dir() / "p.yaml").string() +
                       " now names pipeline 'other', not 'v'; start a new run with sluice run\n");
}

TEST(ShowTest, ShowListsStepsInDagOrderWithTiesInSpecOrder) {
  Sandbox box;
  box.Write("p.yaml", R"(name: o
steps:
  report: {needs: [train], run: 'true'}
  train: {needs: [prep, other], run: 'true'}
  prep: {run: 'sleep 0.3'}
  other: {run: 'true'}
)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml", "--jobs", "2"}).code, 0);
  Output o = box.Sluice({"show", "1"});
  EXPECT_EQ(ShownSteps(o.out), (std::vector<std::string>{"prep", "other", "train", "report"})) << o.out;
  json run = ShowRun(box, "1");
  std::vector<std::string> ids;
  for (const json& s : run["steps"]) ids.push_back(s["id"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"prep", "other", "train", "report"}));
}

TEST(ShowTest, ShowPrintsEachForeachItemsValueCutToAReadableLength) {
  Sandbox box;
  std::string long_item(100, 'x');
  box.Write("p.yaml", "name: f\nsteps:\n  sweep:\n    foreach: [0.1, 0.01, " + long_item + "]\n    run: 'true'\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  Output o = box.Sluice({"show", "1"});
  EXPECT_EQ(LinesStartingWith(o.out, "  sweep[0] 0.1 ").size(), 1u) << o.out;
  EXPECT_EQ(LinesStartingWith(o.out, "  sweep[1] 0.01 ").size(), 1u) << o.out;
  EXPECT_EQ(LinesStartingWith(o.out, "  sweep[2] " + std::string(37, 'x') + "... ").size(), 1u) << o.out;
}

TEST(LogsTest, LogsOfACachedStepPrintTheLogOfTheRunItCameFrom) {
  Sandbox box;
  box.Write("p.yaml", "name: l\nsteps:\n  a: {run: echo hello from a, cache: true}\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(StepOf(ShowRun(box, "2"), "a")["state"], "cached");
  Output o = box.Sluice({"logs", "2", "a"});
  EXPECT_EQ(o.code, 0);
  EXPECT_EQ(o.out, "hello from a\n");
  EXPECT_EQ(o.err, "sluice: run 2 step a was cached from run 1 step a; its log:\n");
}

TEST(LogsTest, CommandsGivenLatestNameTheRunByItsNumber) {
  Sandbox box;
  box.Write("p.yaml", "name: l\nsteps:\n  a: {run: 'test -e fixed'}\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  box.Write("fixed", "");
  Output o = box.Sluice({"retry", "latest"});
  EXPECT_NE(o.out.find("retrying run 1: 1 step again\n"), std::string::npos) << o.out;
  o = box.Sluice({"logs", "latest", "nope"});
  EXPECT_EQ(o.err, "sluice: run 1 has no attempts of step 'nope'\n");
  o = box.Sluice({"cancel", "latest"});
  EXPECT_EQ(o.err, "sluice: run 1 already succeeded\n");
  o = box.Sluice({"resume", "latest"});
  EXPECT_EQ(o.err, "sluice: run 1 already succeeded; nothing to resume (sluice retry 1 runs failed steps again)\n");
}

TEST(LogsTest, CountsOfOneAreSingular) {
  Sandbox box;
  box.Write("p.yaml", "name: one\nsteps:\n  a: {run: 'echo x > \"$SLUICE_OUTPUTS_DIR/o\"', outputs: {o: file}}\n");
  EXPECT_EQ(box.Sluice({"validate", "p.yaml"}).out, "p.yaml: ok (pipeline one, 1 step)\n");
  EXPECT_EQ(box.Sluice({"plan", "p.yaml"}).out.substr(0, 36), "pipeline one: 1 step in 1 layer\nlaye");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(box.Sluice({"gc", "--older-than", "0s", "--dry-run"}).out.find("would remove 1 artifacts"), std::string::npos);
  Output lineage = box.Sluice({"lineage", "1/a"});
  EXPECT_EQ(lineage.out.rfind("upstream lineage: 0 artifacts, 1 attempt (", 0), 0u) << lineage.out;
}

TEST(RunsTest, RunsFiltersByPipelineAndState) {
  Sandbox box;
  box.Write("good.yaml", "name: good\nsteps:\n  a: {run: 'true'}\n");
  box.Write("bad.yaml", "name: bad\nsteps:\n  a: {run: 'false'}\n");
  ASSERT_EQ(box.Sluice({"run", "good.yaml"}).code, 0);
  ASSERT_EQ(box.Sluice({"run", "bad.yaml"}).code, 1);
  ASSERT_EQ(box.Sluice({"run", "good.yaml"}).code, 0);
  json j = json::parse(box.Sluice({"runs", "--pipeline", "good", "--format", "json"}).out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["id"], 3);
  EXPECT_EQ(j[1]["id"], 1);
  j = json::parse(box.Sluice({"runs", "--state", "failed", "--format", "json"}).out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["pipeline"], "bad");
  j = json::parse(box.Sluice({"runs", "--pipeline", "bad", "--state", "succeeded", "--format", "json"}).out);
  EXPECT_EQ(j.size(), 0u);
  EXPECT_EQ(box.Sluice({"runs", "--state", "finished"}).code, 2);
}

namespace {

// Registers model `fashion` from step train (two versions: the params
// change the content) with an evaluate step beside it.
class ModelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    box_.Write("p.yaml", R"(name: reg
params:
  n: {type: int, default: 1}
steps:
  data:
    run: 'echo d > "$SLUICE_OUTPUTS_DIR/d"'
    outputs: {d: dataset}
  train:
    needs: [data]
    run: |
      echo ${{ params.n }} > "$SLUICE_OUTPUTS_DIR/model"
      echo '{"loss": 0.5}' > "$SLUICE_OUTPUTS_DIR/scores"
    outputs: {model: model, scores: metrics}
    register: {name: fashion}
  evaluate:
    needs: [train]
    run: |
      echo '{"accuracy": 0.9}' > "$SLUICE_OUTPUTS_DIR/scores"
    outputs: {scores: metrics}
)");
    for (const char* n : {"n=1", "n=2"}) ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", n}).code, 0);
  }
  json Models(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"models", "--format", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    Output o = box_.Sluice(args);
    EXPECT_EQ(o.code, 0) << o.err;
    return json::parse(o.out, nullptr, false);
  }
  Sandbox box_;
};

}  // namespace

TEST_F(ModelsTest, AnArchivedVersionIsHiddenUnlessAllAndIsNotLatest) {
  Output o = box_.Sluice({"models", "archive", "fashion@2"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "fashion@2 archived: left out of sluice models and of fashion@latest; fashion@2 still resolves\n");
  json j = Models();
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["version"], 1);
  j = Models({"--all"});
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["archived"], true);
  EXPECT_NE(box_.Sluice({"models", "--all"}).out.find("(archived)"), std::string::npos);
  std::string one = box_.Sluice({"models", "path", "fashion@1"}).out;
  EXPECT_EQ(box_.Sluice({"models", "path", "fashion@latest"}).out, one);
  EXPECT_EQ(box_.Sluice({"models", "path", "fashion@2"}).code, 0);
  EXPECT_EQ(box_.Sluice({"models", "unarchive", "fashion@2"}).out, "fashion@2 is in use again\n");
  EXPECT_NE(box_.Sluice({"models", "path", "fashion@latest"}).out, one);
}

TEST_F(ModelsTest, ADeletedVersionIsGoneAndItsNumberIsNotGivenAgain) {
  Output o = box_.Sluice({"models", "delete", "fashion@2"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "fashion@2 deleted; sluice gc removes its file once nothing else needs it\n");
  EXPECT_EQ(Models({"--all"}).size(), 1u);
  EXPECT_EQ(box_.Sluice({"models", "path", "fashion@2"}).err, "sluice: model 'fashion' has no version 2 (it was deleted)\n");
  ASSERT_EQ(box_.Sluice({"run", "p.yaml", "-p", "n=2"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box_, "3"), "train")["outputs"]["registered"], "fashion@3");
  EXPECT_EQ(box_.Sluice({"models", "delete", "fashion@production"}).err,
            "sluice: delete takes NAME@VERSION with a version number, not 'production'\n");
}

TEST_F(ModelsTest, AVersionAnAliasPointsAtIsRefusedForArchiveAndDeleteUntilTheAliasIsRemoved) {
  ASSERT_EQ(box_.Sluice({"models", "promote", "fashion", "2", "--alias", "production"}).code, 0);
  Output o = box_.Sluice({"models", "delete", "fashion@2"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "sluice: alias 'production' points at fashion@2; move or remove it before it is deleted "
                   "(sluice models promote fashion --alias production --remove)\n");
  EXPECT_EQ(box_.Sluice({"models", "archive", "fashion@2"}).code, 1);
  o = box_.Sluice({"models", "promote", "fashion", "--alias", "production", "--remove"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "fashion@production removed (it pointed at version 2)\n");
  EXPECT_EQ(box_.Sluice({"models", "path", "fashion@production"}).err, "sluice: model 'fashion' has no alias 'production'\n");
  EXPECT_EQ(box_.Sluice({"models", "delete", "fashion@2"}).code, 0);
  EXPECT_EQ(box_.Sluice({"models", "promote", "fashion", "--alias", "staging"}).code, 2);  // no version, no --remove
}

TEST_F(ModelsTest, RegisteringAnArtifactThatIsNotAModelIsRefusedNamingTheStepThatMadeIt) {
  std::string data = StepOf(ShowRun(box_, "1"), "data")["outputs"]["d"];
  Output o = box_.Sluice({"models", "register", data, "--name", "other"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "sluice: artifact " + fs::path(data).filename().string().substr(0, 12) +
                       " has kind dataset (output 'd' of run 1 step data), not model; only outputs of kind model are "
                       "registered\n");
  EXPECT_EQ(Models().size(), 2u);
}

TEST_F(ModelsTest, ModelsShowsTheRegisteringStepsMetricsNotEveryMetricOfTheRun) {
  json j = Models();
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["metrics"], (json{{"loss", 0.5}}));
  Output text = box_.Sluice({"models", "fashion"});
  EXPECT_NE(text.out.find("loss=0.5"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("accuracy"), std::string::npos) << text.out;
}

TEST(ModelsCacheTest, ACachedRegisteringStepRegistersItsModelAgainAfterItsVersionWasDeleted) {
  Sandbox box;
  box.Write("p.yaml", R"(name: c
steps:
  train:
    run: echo 1 > "$SLUICE_OUTPUTS_DIR/model"
    outputs: {model: model}
    register: {name: m}
    cache: true
)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "train")["outputs"]["registered"], "m@1");  // the same version
  ASSERT_EQ(box.Sluice({"models", "delete", "m@1"}).code, 0);
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  json train = StepOf(ShowRun(box, "3"), "train");
  EXPECT_EQ(train["state"], "cached");
  EXPECT_EQ(train["outputs"]["registered"], "m@2");
  EXPECT_EQ(box.Sluice({"models", "path", "m@latest"}).out, train["outputs"]["model"].get<std::string>() + "\n");
}
