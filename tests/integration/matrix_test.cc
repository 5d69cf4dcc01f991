// Matrix fan-out, per-item if, fail_fast, max_parallel and expressions over
// data, through the real `sluice run`: real processes, a real SQLite store.
#include <gtest/gtest.h>

#include "harness.h"
#include "util/hash.h"

using namespace sluice::testing;

TEST(MatrixTest, AMatrixRunsEachCombinationAndItsDependantReadsTheOutputsInItemOrder) {
  Sandbox box;
  box.Write("p.yaml", R"(name: matrix
params:
  lrs: {type: string, default: '[0.1, 0.01]'}
steps:
  train:
    foreach:
      matrix: {lr: "${{ fromJSON(params.lrs) }}", depth: [3, 5]}
      exclude: [{lr: 0.01, depth: 5}]
      include: [{depth: 3, warmup: 100}, {lr: 1.0, depth: 1}]
    run: echo "acc=${{ format('{0}/{1}/{2}', item.lr, item.depth, item.warmup ?? 'none') }}" >> "$SLUICE_OUTPUT"
  report:
    needs: [train]
    run: ['python3', '-c', 'import sys; open("report.out", "w").write(sys.argv[1])', '${{ steps.train.outputs.acc }}']
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("report.out"), R"(["0.1/3/100","0.1/5/none","0.01/3/100","1.0/1/none"])");
  nlohmann::json train = StepOf(ShowRun(box, "latest"), "train");
  ASSERT_EQ(train["items"].size(), 4u);
  EXPECT_EQ(train["items"][0]["item_value"], nlohmann::json::parse(R"({"depth":3,"lr":0.1,"warmup":100})"));
}

TEST(MatrixTest, AnItemWhoseIfIsFalseIsSkippedAndKeepsItsPlaceInTheFanIn) {
  Sandbox box;
  box.Write("p.yaml", R"(name: per-item-if
steps:
  each:
    foreach: [{name: a, on: true}, {name: b, on: false}, {name: c, on: true}]
    if: item.on
    run: echo "n=${{ upper(item.name) }}" >> "$SLUICE_OUTPUT"
  join:
    needs: [each]
    run: ['sh', '-c', 'printf "%s" "$1" > join.out', 'x', '${{ steps.each.outputs.n }}']
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("join.out"), R"(["A",null,"C"])");
  nlohmann::json each = StepOf(ShowRun(box, "latest"), "each");
  EXPECT_EQ(each["state"], "succeeded");
  EXPECT_EQ(each["items"][1]["state"], "skipped");
  EXPECT_EQ(each["items"][1]["reason"], "if: item.on is false");
}

TEST(MatrixTest, FailFastCancelsTheItemsNotStarted) {
  Sandbox box;
  box.Write("p.yaml", R"(name: fail-fast
steps:
  each:
    foreach: [a, b, c, d]
    fail_fast: true
    run: touch "ran-${{ item }}" && test "${{ item }}" != b
)");
  Output o = box.Sluice({"run", "p.yaml", "--jobs", "1"});
  EXPECT_NE(o.code, 0) << o.out << o.err;
  EXPECT_TRUE(box.Exists("ran-a"));
  EXPECT_TRUE(box.Exists("ran-b"));
  EXPECT_FALSE(box.Exists("ran-c"));
  EXPECT_FALSE(box.Exists("ran-d"));
  nlohmann::json each = StepOf(ShowRun(box, "latest"), "each");
  EXPECT_EQ(each["state"], "failed");
  EXPECT_EQ(each["items"][2]["state"], "cancelled");
  EXPECT_EQ(each["items"][3]["reason"], "fail_fast: item 1 failed");
}

TEST(MatrixTest, MaxParallelBoundsTheItemsRunningAtOnce) {
  Sandbox box;
  // Each item counts the others running when it starts (a marker file per
  // running item). A count can only be too low (two starting together), never too high.
  box.Write("p.yaml", R"(name: max-parallel
steps:
  each:
    foreach: [a, b, c, d, e, f]
    max_parallel: 2
    run: ls running.* 2>/dev/null | wc -l >> counts && touch "running.${{ item }}" && sleep 0.3 && rm "running.${{ item }}"
)");
  Output o = box.Sluice({"run", "p.yaml", "--jobs", "6"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  std::string counts = box.Read("counts");
  EXPECT_EQ(CountLines(counts, "0") + CountLines(counts, "1"), 6) << counts;
}

TEST(MatrixTest, HashFilesHashesTheMatchingFilesOfTheSpecsFolder) {
  Sandbox box;
  box.Write("data/b.csv", "2\n");
  box.Write("data/a.csv", "1\n");
  box.Write("data/notes.txt", "x\n");
  box.Write("p.yaml", R"(name: hash
steps:
  h:
    run: ['sh', '-c', 'printf "%s|%s" "$1" "$2" > hash.out', 'x', "${{ hashFiles('data/*.csv') }}", "${{ hashFiles('none/**') }}"]
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_EQ(box.Read("hash.out"), sluice::Sha256Hex(sluice::Sha256Hex("1\n") + sluice::Sha256Hex("2\n")) + "|");
}

TEST(MatrixTest, DivisionByZeroFailsTheStepWithThePlace) {
  Sandbox box;
  box.Write("p.yaml", "name: div\nparams:\n  n: {type: int, default: 0}\nsteps:\n  s:\n    run: echo ${{ 10 / params.n }}\n");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_NE(o.code, 0);
  nlohmann::json s = StepOf(ShowRun(box, "latest"), "s");
  EXPECT_NE(s["reason"].get<std::string>().find("division by zero (at character 5 of the expression)"), std::string::npos)
      << s.dump();
}
