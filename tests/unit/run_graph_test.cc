// RunGraph: the DAG's changing state alone: no executor, no store, no files.
#include "engine/run_graph.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "spec/pipeline.h"

using namespace sluice;
using namespace sluice::engine;

namespace {

class RunGraphTest : public ::testing::Test {
 protected:
  // Loads `yaml` and starts a graph on it from `resume`.
  RunGraph& Start(const std::string& yaml, std::vector<StepRecord> resume = {}) {
    auto p = spec::ParsePipeline("p.yaml", yaml);
    EXPECT_TRUE(p.ok()) << p.status().message();
    pipeline_ = std::move(p.value());
    plan_ = MakePlan(pipeline_);
    graph_ = std::make_unique<RunGraph>(plan_);
    fresh_ = graph_->Restore(std::move(resume));
    return *graph_;
  }
  size_t Index(const std::string& id) const { return pipeline_.index.at(id); }
  // Every step to decide now, by id, in order.
  std::vector<std::string> Decidable() {
    std::vector<std::string> out;
    while (auto i = graph_->NextToDecide()) out.push_back(pipeline_.steps[*i].id);
    return out;
  }
  // Expands a plain step, starts its unit, and returns the unit.
  size_t ExpandPlain(const std::string& id) {
    RunGraph::Expansion x = graph_->Expand(Index(id), nullptr);
    EXPECT_EQ(x.end - x.first, 1u);
    graph_->PushReady(x.first);
    return x.first;
  }
  // Ends unit `u` in `state`; finishes its step if it was the last.
  void End(size_t u, StepState state) {
    graph_->unit_record(u).state = state;
    if (graph_->FinishUnit(u)) {
      size_t node = graph_->node_of(u);
      if (graph_->record(node).items) graph_->FoldItems(node);
      graph_->FinishStep(node);
    }
  }

  spec::Pipeline pipeline_;
  Plan plan_;
  std::unique_ptr<RunGraph> graph_;
  std::vector<const StepRecord*> fresh_;
};

}  // namespace

TEST_F(RunGraphTest, OnlyStepsWithoutNeedsCanBeDecidedAtFirstInPlanOrder) {
  Start("name: t\nsteps:\n  c: {needs: [a, b], run: x}\n  b: {run: x}\n  a: {run: x}\n");
  EXPECT_EQ(Decidable(), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(fresh_.size(), 3u);  // a new run: every record is new
  EXPECT_EQ(graph_->counts().total, 3);
}

TEST_F(RunGraphTest, AStepBecomesDecidableWhenItsLastNeedFinishes) {
  Start("name: t\nsteps:\n  a: {run: x}\n  b: {run: x}\n  c: {needs: [a, b], run: x}\n");
  Decidable();
  size_t a = ExpandPlain("a"), b = ExpandPlain("b");
  End(a, StepState::kSucceeded);
  EXPECT_FALSE(graph_->HasToDecide());  // c still waits for b
  End(b, StepState::kFailed);
  EXPECT_EQ(Decidable(), (std::vector<std::string>{"c"}));
  EXPECT_EQ(graph_->counts().finished, 2);
  EXPECT_EQ(graph_->counts().failed, 1);
}

TEST_F(RunGraphTest, FinishingAStepQueuesOnlyItsOwnDependants) {
  Start("name: t\nsteps:\n  a: {run: x}\n  b: {run: x}\n  after_a: {needs: [a], run: x}\n"
        "  after_b: {needs: [b], run: x}\n");
  Decidable();
  size_t a = ExpandPlain("a");
  ExpandPlain("b");
  graph_->unit_record(a).state = StepState::kSucceeded;
  ASSERT_TRUE(graph_->FinishUnit(a));
  EXPECT_EQ(graph_->FinishStep(Index("a")), 1u);
  EXPECT_EQ(Decidable(), (std::vector<std::string>{"after_a"}));
}

TEST_F(RunGraphTest, ReadyUnitsStartInTheOrderTheyWereQueued) {
  Start("name: t\nsteps:\n  a: {run: x}\n  b: {run: x}\n");
  Decidable();
  size_t a = ExpandPlain("a"), b = ExpandPlain("b");
  ASSERT_EQ(graph_->ready().size(), 2u);
  EXPECT_EQ(graph_->ready().front(), a);
  graph_->PopReady();
  graph_->PushReady(a);  // a retry goes to the end of the line
  EXPECT_EQ(graph_->ready().front(), b);
  EXPECT_EQ(graph_->ready().back(), a);
}

TEST_F(RunGraphTest, AForeachStepExpandsIntoOneUnitPerItemAndRecordsItsList) {
  Start("name: t\nsteps:\n  s: {foreach: [p, q, r], run: x}\n");
  Decidable();
  spec::List items{spec::Value::Str("p"), spec::Value::Str("q"), spec::Value::Str("r")};
  RunGraph::Expansion x = graph_->Expand(Index("s"), &items);
  ASSERT_EQ(x.end - x.first, 3u);
  EXPECT_EQ(x.to_save.size(), 4u);  // the step's record and one per item
  EXPECT_EQ(graph_->record(Index("s")).state, StepState::kRunning);
  EXPECT_EQ(graph_->unit_record(x.first + 1).item, 1);
  EXPECT_EQ(graph_->unit_record(x.first + 1).item_value.as_string(), "q");
  EXPECT_EQ(graph_->unit_record(x.first + 1).step_id, "s");
  EXPECT_EQ(graph_->unfinished_units(Index("s")), 3);
}

TEST_F(RunGraphTest, AForeachStepFinishesWithItsLastItemAndFoldsTheirOutputsInItemOrder) {
  Start("name: t\nsteps:\n  s: {foreach: [p, q], run: x}\n  join: {needs: [s], run: x}\n");
  Decidable();
  spec::List items{spec::Value::Str("p"), spec::Value::Str("q")};
  RunGraph::Expansion x = graph_->Expand(Index("s"), &items);
  graph_->unit_record(x.first + 1).outputs["part"] = spec::Value::Str("B");
  graph_->unit_record(x.first + 1).state = StepState::kSucceeded;
  EXPECT_FALSE(graph_->FinishUnit(x.first + 1));
  graph_->unit_record(x.first).outputs["part"] = spec::Value::Str("A");
  graph_->unit_record(x.first).state = StepState::kSucceeded;
  ASSERT_TRUE(graph_->FinishUnit(x.first));
  graph_->FoldItems(Index("s"));
  const StepRecord& s = graph_->record(Index("s"));
  EXPECT_EQ(s.state, StepState::kSucceeded);
  EXPECT_EQ(s.outputs.at("part").Render(), "[\"A\",\"B\"]");
  graph_->FinishStep(Index("s"));
  EXPECT_EQ(Decidable(), (std::vector<std::string>{"join"}));
}

TEST_F(RunGraphTest, AForeachStepFailsIfAnItemFailedAndIsCancelledIfOneWasCancelled) {
  Start("name: t\nsteps:\n  f: {foreach: [p, q], run: x}\n  c: {foreach: [p, q], run: x}\n");
  Decidable();
  spec::List items{spec::Value::Str("p"), spec::Value::Str("q")};
  RunGraph::Expansion f = graph_->Expand(Index("f"), &items);
  End(f.first, StepState::kCancelled);
  End(f.first + 1, StepState::kFailed);
  EXPECT_EQ(graph_->record(Index("f")).state, StepState::kFailed);
  EXPECT_EQ(graph_->record(Index("f")).reason, "an item failed");
  RunGraph::Expansion c = graph_->Expand(Index("c"), &items);
  End(c.first, StepState::kSucceeded);
  End(c.first + 1, StepState::kCancelled);
  EXPECT_EQ(graph_->record(Index("c")).state, StepState::kCancelled);
  EXPECT_EQ(graph_->record(Index("c")).reason, "an item was cancelled");
  EXPECT_TRUE(graph_->AllFinished());
}

TEST_F(RunGraphTest, AForeachOverNoItemsHasNoUnitToFinish) {
  Start("name: t\nsteps:\n  s: {foreach: [], run: x}\n");
  Decidable();
  spec::List none;
  RunGraph::Expansion x = graph_->Expand(Index("s"), &none);
  EXPECT_EQ(x.first, x.end);
  EXPECT_EQ(graph_->unfinished_units(Index("s")), 0);
}

TEST_F(RunGraphTest, AResumeKeepsFinishedStepsAndQueuesWhatTheyUnblock) {
  StepRecord a{.step_id = "a", .state = StepState::kSucceeded, .tries = 1, .attempts = 1};
  StepRecord b{.step_id = "b", .state = StepState::kRunning, .tries = 1, .attempts = 1};
  Start("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n  c: {needs: [b], run: x}\n", {a, b});
  EXPECT_EQ(Decidable(), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(graph_->finished(Index("a")));
  EXPECT_EQ(graph_->record(Index("b")).attempts, 1);  // b goes on from its record
  ASSERT_EQ(fresh_.size(), 1u);                       // only c had no record
  EXPECT_EQ(fresh_[0]->step_id, "c");
  EXPECT_EQ(graph_->counts().finished, 1);
}

TEST_F(RunGraphTest, AResumedForeachStepKeepsTheRecordsOfItsItems) {
  StepRecord s{.step_id = "s", .state = StepState::kRunning};
  s.items = spec::List{spec::Value::Str("p"), spec::Value::Str("q")};
  StepRecord s0{.step_id = "s", .item = 0, .state = StepState::kSucceeded, .tries = 1, .attempts = 1};
  Start("name: t\nsteps:\n  s: {foreach: [p, q], run: x}\n", {s, s0});
  Decidable();
  spec::List items = *graph_->record(Index("s")).items;
  RunGraph::Expansion x = graph_->Expand(Index("s"), &items);
  EXPECT_EQ(graph_->unit_record(x.first).state, StepState::kSucceeded);
  EXPECT_EQ(graph_->unit_record(x.first).attempts, 1);
  EXPECT_EQ(x.to_save.size(), 2u);  // the step's record and item 1's new one
  EXPECT_EQ(graph_->unfinished_units(Index("s")), 1);
}

TEST_F(RunGraphTest, AFailureIsUpstreamOfEveryStepBelowItButNotOfItsSiblings) {
  Start("name: t\nsteps:\n  a: {run: x}\n  ok: {run: x}\n  b: {needs: [a], run: x}\n"
        "  c: {needs: [b], run: x}\n  d: {needs: [ok], run: x}\n");
  Decidable();
  size_t a = ExpandPlain("a"), ok = ExpandPlain("ok");
  End(a, StepState::kFailed);
  End(ok, StepState::kSucceeded);
  EXPECT_TRUE(graph_->upstream_failed(Index("b")));
  EXPECT_FALSE(graph_->upstream_failed(Index("d")));
  Decidable();
  End(ExpandPlain("b"), StepState::kSkipped);  // skipped: the failure passes on
  EXPECT_TRUE(graph_->upstream_failed(Index("c")));
}

TEST_F(RunGraphTest, AFailureThatContinuesOnErrorIsNotAFailureUpstream) {
  Start("name: t\nsteps:\n  a: {run: x, continue_on_error: true}\n  b: {needs: [a], run: x}\n");
  Decidable();
  End(ExpandPlain("a"), StepState::kFailed);
  EXPECT_FALSE(graph_->upstream_failed(Index("b")));
}

TEST_F(RunGraphTest, AResumedFailureIsUpstreamOfTheStepsDecidedAfterTheResume) {
  StepRecord a{.step_id = "a", .state = StepState::kFailed, .tries = 1, .attempts = 1};
  StepRecord b{.step_id = "b", .state = StepState::kSkipped};
  Start("name: t\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: x}\n  c: {needs: [b], run: x}\n", {a, b});
  EXPECT_EQ(Decidable(), (std::vector<std::string>{"c"}));
  EXPECT_TRUE(graph_->upstream_failed(Index("c")));
}

TEST_F(RunGraphTest, DroppingReadyUnitsKeepsTheOthersInLine) {
  Start("name: t\nsteps:\n  a: {run: x}\n  b: {run: x}\n  c: {run: x}\n");
  Decidable();
  size_t a = ExpandPlain("a"), b = ExpandPlain("b"), c = ExpandPlain("c");
  std::vector<size_t> dropped = graph_->DropReady([&](size_t u) { return u == b; });
  EXPECT_EQ(dropped, (std::vector<size_t>{a, c}));
  ASSERT_EQ(graph_->ready().size(), 1u);
  EXPECT_EQ(graph_->ready().front(), b);
}

TEST_F(RunGraphTest, AHundredThousandStepChainIsDecidedAndFinishedOneStepAtATime) {
  // Each finished step makes exactly its one dependant decidable. How long
  // this takes is dag_bench's to measure (the plan of 100,000 steps), not a
  // unit test's.
  std::string yaml = "name: t\nsteps:\n  s0: {run: x}\n";
  for (int i = 1; i < 100000; ++i)
    yaml += "  s" + std::to_string(i) + ": {needs: [s" + std::to_string(i - 1) + "], run: x}\n";
  Start(yaml);
  size_t steps = 0;
  while (auto i = graph_->NextToDecide()) {
    EXPECT_EQ(*i, steps);
    RunGraph::Expansion x = graph_->Expand(*i, nullptr);
    End(x.first, StepState::kSucceeded);
    ++steps;
  }
  EXPECT_EQ(steps, 100000u);
  EXPECT_TRUE(graph_->AllFinished());
}
