// LineageStore::Lineage: which artifacts, attempts and edges a walk up or
// down the lineage returns, on a small graph with a diamond, an output
// nothing consumed and a cache hit's reused output:
//
//   a1 -x-> a2 -y-> a4 -w-> a5 -v->
//      -x-> a3 -z-> a4
//           a2 -q-> (nothing)
//   a6 reused w (a cache hit of a4's work) -w-> a7 -u->
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <tuple>

#include "store/open.h"
#include "../common/temp_store.h"

using namespace sluice;

namespace {

using Role = engine::LineageEdge::Role;
using Edge = std::tuple<std::string, std::string, std::string>;  // attempt's step, artifact, role

class LineageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = sluice::testing::OpenStore(sluice::testing::TempDb("lineage"));
    ASSERT_TRUE(store_);
    run_ = *store_->runs().CreateRun("demo", "x", "p", "/", "{}", 1, 0);
    Attempt("a1", {}, {{Role::kProduced, "x"}});
    Attempt("a2", {"x"}, {{Role::kProduced, "y"}, {Role::kProduced, "q"}});
    Attempt("a3", {"x"}, {{Role::kProduced, "z"}});
    Attempt("a4", {"y", "z"}, {{Role::kProduced, "w"}});
    Attempt("a5", {"w"}, {{Role::kProduced, "v"}});
    Attempt("a6", {"y", "z"}, {{Role::kReused, "w"}});
    Attempt("a7", {"w"}, {{Role::kProduced, "u"}});
  }

  // An attempt of step `step` that consumed `inputs` and produced or reused `outputs`.
  void Attempt(const std::string& step, const std::vector<std::string>& inputs,
               const std::vector<std::pair<Role, std::string>>& outputs) {
    engine::StepRecord rec{.step_id = step, .state = engine::StepState::kSucceeded};
    engine::AttemptRecord a{.run_id = run_, .step_id = step, .number = 1, .log_path = "-"};
    ASSERT_TRUE(store_->runs().BeginAttempt(&a, rec).ok());
    std::vector<engine::LineageEdge> edges;
    for (const std::string& in : inputs) edges.push_back({Role::kConsumed, "in-" + in, Artifact(in)});
    for (const auto& [role, out] : outputs) edges.push_back({role, "out-" + out, Artifact(out)});
    ASSERT_TRUE(store_->runs().SaveLineage(a, edges).ok());
    ASSERT_TRUE(store_->runs().Flush().ok());
    ids_[step] = a.id;
    steps_[a.id] = step;
  }

  static engine::ArtifactRef Artifact(const std::string& name) { return {Hash(name), "file", 1, "/a/" + name}; }
  static std::string Hash(const std::string& name) { return std::string(64 - name.size(), '0') + name; }

  // The walk's artifacts (by name), attempts (by step) and edges.
  struct Seen {
    std::set<std::string> artifacts, attempts;
    std::set<Edge> edges;
  };
  Seen Walk(const std::string& artifact, const std::string& step, bool upstream) {
    auto g = store_->lineage().Lineage(artifact.empty() ? "" : Hash(artifact), step.empty() ? 0 : ids_.at(step), upstream);
    EXPECT_TRUE(g.ok()) << g.status().message();
    Seen s;
    if (!g.ok()) return s;
    for (const auto& a : g->artifacts) s.artifacts.insert(a.hash.substr(a.hash.find_first_not_of('0')));
    for (const auto& a : g->attempts) s.attempts.insert(a.step_id);
    for (const auto& e : g->edges) s.edges.insert({steps_.at(e.attempt_id), e.hash.substr(e.hash.find_first_not_of('0')), e.role});
    EXPECT_EQ(s.artifacts.size(), g->artifacts.size()) << "an artifact came twice";
    EXPECT_EQ(s.attempts.size(), g->attempts.size()) << "an attempt came twice";
    EXPECT_EQ(s.edges.size(), g->edges.size()) << "an edge came twice";
    return s;
  }

  std::unique_ptr<store::Store> store_;
  int64_t run_ = 0;
  std::map<std::string, int64_t> ids_;
  std::map<int64_t, std::string> steps_;
};

}  // namespace

TEST_F(LineageStoreTest, UpstreamOfAnArtifactHasItsProducersAndEverythingTheyConsumedTransitively) {
  Seen s = Walk("w", "", /*upstream=*/true);
  EXPECT_EQ(s.artifacts, (std::set<std::string>{"w", "y", "z", "x"}));
  EXPECT_EQ(s.attempts, (std::set<std::string>{"a4", "a2", "a3", "a1"}));
  EXPECT_EQ(s.edges, (std::set<Edge>{{"a4", "w", "produced"}, {"a4", "y", "consumed"}, {"a4", "z", "consumed"},
                                     {"a2", "y", "produced"}, {"a2", "x", "consumed"}, {"a3", "z", "produced"},
                                     {"a3", "x", "consumed"}, {"a1", "x", "produced"}}));
}

TEST_F(LineageStoreTest, DownstreamOfAnArtifactHasItsConsumersAndEverythingTheyProducedOrReusedTransitively) {
  Seen s = Walk("y", "", /*upstream=*/false);
  EXPECT_EQ(s.artifacts, (std::set<std::string>{"y", "w", "v", "u"}));
  EXPECT_EQ(s.attempts, (std::set<std::string>{"a4", "a6", "a5", "a7"}));
  EXPECT_EQ(s.edges, (std::set<Edge>{{"a4", "y", "consumed"}, {"a4", "w", "produced"}, {"a6", "y", "consumed"},
                                     {"a6", "w", "reused"}, {"a5", "w", "consumed"}, {"a5", "v", "produced"},
                                     {"a7", "w", "consumed"}, {"a7", "u", "produced"}}));
}

TEST_F(LineageStoreTest, UpstreamOfAnAttemptStartsFromWhatItConsumed) {
  Seen s = Walk("", "a5", /*upstream=*/true);
  EXPECT_EQ(s.artifacts, (std::set<std::string>{"w", "y", "z", "x"}));
  EXPECT_EQ(s.attempts, (std::set<std::string>{"a5", "a4", "a2", "a3", "a1"}));
  EXPECT_TRUE(s.edges.count({"a5", "w", "consumed"}));
  EXPECT_FALSE(s.edges.count({"a5", "v", "produced"})) << "what the attempt produced is downstream of it";
}

TEST_F(LineageStoreTest, DownstreamOfAnAttemptStartsFromWhatItProduced) {
  Seen s = Walk("", "a2", /*upstream=*/false);
  EXPECT_EQ(s.artifacts, (std::set<std::string>{"y", "q", "w", "v", "u"}));
  EXPECT_EQ(s.attempts, (std::set<std::string>{"a2", "a4", "a6", "a5", "a7"}));
  EXPECT_FALSE(s.edges.count({"a2", "x", "consumed"})) << "what the attempt consumed is upstream of it";
}

TEST_F(LineageStoreTest, AnArtifactWithoutProducersIsItsOwnUpstream) {
  Seen s = Walk("nothing", "", /*upstream=*/true);
  EXPECT_TRUE(s.attempts.empty());
  EXPECT_TRUE(s.edges.empty());
  EXPECT_TRUE(s.artifacts.empty()) << "an unknown hash has no artifact row";
  s = Walk("u", "", /*upstream=*/false);
  EXPECT_EQ(s.artifacts, (std::set<std::string>{"u"}));
  EXPECT_TRUE(s.attempts.empty());
}

TEST_F(LineageStoreTest, AReusedOutputIsNotWalkedUpToTheCacheHitThatReusedIt) {
  Seen s = Walk("u", "", /*upstream=*/true);
  EXPECT_EQ(s.attempts, (std::set<std::string>{"a7", "a4", "a2", "a3", "a1"}));
}

TEST_F(LineageStoreTest, TheCacheFindsTheNewestSucceededAttemptOfAFingerprintPastItsFailedAndCachedOnes) {
  // One attempt of step `c` that ended in `state` with fingerprint "fp".
  auto end = [&](engine::StepState state, int number) {
    engine::StepRecord rec{.step_id = "c", .state = state};
    engine::AttemptRecord a{.run_id = run_, .step_id = "c", .number = number, .log_path = "-"};
    EXPECT_TRUE(store_->runs().BeginAttempt(&a, rec).ok());
    a.state = state;
    a.fingerprint = "fp";
    a.identity = "{}";
    EXPECT_TRUE(store_->runs().FinishAttempt(&a, rec).ok());
    EXPECT_TRUE(store_->runs().Flush().ok());
    return a.id;
  };
  EXPECT_FALSE(*store_->runs().FindCached("fp")) << "nothing ended yet";
  end(engine::StepState::kFailed, 1);
  EXPECT_FALSE(*store_->runs().FindCached("fp")) << "a failed attempt is not reused";
  end(engine::StepState::kSucceeded, 2);
  int64_t newest = end(engine::StepState::kSucceeded, 3);
  for (int k = 4; k < 40; ++k) end(k % 2 ? engine::StepState::kCached : engine::StepState::kFailed, k);
  auto hit = store_->runs().FindCached("fp");
  ASSERT_TRUE(hit.ok() && *hit);
  EXPECT_EQ((*hit)->attempt_id, newest);
  EXPECT_FALSE(*store_->runs().FindCached("other"));
}

TEST_F(LineageStoreTest, TheCacheHandsBackTheStampAFileWasPublishedWithAndNoneForAnArtifactWithout) {
  engine::StepRecord rec{.step_id = "c", .state = engine::StepState::kSucceeded};
  engine::AttemptRecord a{.run_id = run_, .step_id = "c", .number = 1, .log_path = "-"};
  ASSERT_TRUE(store_->runs().BeginAttempt(&a, rec).ok());
  a.state = engine::StepState::kSucceeded;
  a.fingerprint = "fp";
  a.identity = "{}";
  engine::ArtifactRef stamped = Artifact("s"), unstamped = Artifact("t");
  stamped.stamp = "12:3:1700000000000000001:1700000000000000002";
  ASSERT_TRUE(store_->runs().SaveLineage(a, {{Role::kProduced, "s", stamped}, {Role::kProduced, "t", unstamped}}).ok());
  ASSERT_TRUE(store_->runs().FinishAttempt(&a, rec).ok());
  ASSERT_TRUE(store_->runs().Flush().ok());
  auto hit = store_->runs().FindCached("fp");
  ASSERT_TRUE(hit.ok() && *hit);
  ASSERT_EQ((*hit)->produced.size(), 2u);
  EXPECT_EQ((*hit)->produced[0].artifact.stamp, stamped.stamp);
  EXPECT_EQ((*hit)->produced[1].artifact.stamp, "");
}
