// What `sluice plan` says of each cached step, over files in memory and a
// scripted history of results.
#include <gtest/gtest.h>

#include <map>

#include "engine/cache_forecast.h"
#include "../common/fake_files.h"
#include "spec/pipeline.h"

using namespace sluice;
using namespace sluice::engine;
using sluice::testing::FakeFiles;
using Kind = CacheForecast::Kind;

namespace {

class FakeHistory : public ResultHistory {
 public:
  // Records what `f` forecast for each item of `step` as a result of run
  // `run` that ended at `finished_ms`.
  void Record(const std::string& step, const CacheForecast& f, int64_t run, int64_t finished_ms, bool foreach = false,
              Outputs outputs = {}) {
    for (size_t k = 0; k < f.fingerprints.size(); ++k) {
      int item = foreach ? static_cast<int>(k) : -1;
      CachedResult c{++ids_, run, step, finished_ms, outputs, produced};
      cached_[f.fingerprints[k].sha256] = c;
      AttemptRecord a;
      a.id = c.attempt_id;
      a.run_id = run;
      a.step_id = step;
      a.item = item;
      a.state = StepState::kSucceeded;
      a.identity = f.fingerprints[k].identity;
      a.fingerprint = f.fingerprints[k].sha256;
      a.finished_ms = finished_ms;
      latest_[{step, item}] = a;
    }
  }
  Result<std::optional<CachedResult>> FindCached(const std::string& fingerprint) override {
    auto it = cached_.find(fingerprint);
    if (it == cached_.end()) return std::optional<CachedResult>();
    return std::optional<CachedResult>(it->second);
  }
  Result<std::optional<AttemptRecord>> LatestResult(const std::string& step, int item) override {
    auto it = latest_.find({step, item});
    if (it == latest_.end()) return std::optional<AttemptRecord>();
    return std::optional<AttemptRecord>(it->second);
  }

  std::vector<LineageEdge> produced;  // what recorded results produced

 private:
  int64_t ids_ = 0;
  std::map<std::string, CachedResult> cached_;
  std::map<std::pair<std::string, int>, AttemptRecord> latest_;
};

class NoArtifacts : public ArtifactPublisher {
 public:
  Result<ArtifactRef> Publish(const std::string&, const std::string&) override { return Status::Internal("no"); }
  bool Verify(const ArtifactRef&) const override { return false; }
};

constexpr int64_t kHour = 3600'000;

class CacheForecastTest : public ::testing::Test {
 protected:
  // The forecast of every step of `yaml`, by id.
  std::map<std::string, CacheForecast> Forecast(const std::string& yaml) {
    auto p = spec::ParsePipeline("p.yaml", yaml);
    EXPECT_TRUE(p.ok()) << p.status().message();
    pipeline_ = std::move(*p);
    auto params = spec::ResolveParams(pipeline_, {});
    EXPECT_TRUE(params.ok());
    Plan plan = MakePlan(pipeline_);
    CacheForecastOptions o;
    o.spec_dir = "/spec";
    o.now_ms = now_ms_;
    o.files = &files_;
    o.artifacts = artifacts_;
    auto f = ForecastCache(plan, *params, ForecastPlan(plan, *params), history_, o);
    EXPECT_TRUE(f.ok()) << f.status().message();
    std::map<std::string, CacheForecast> out;
    for (size_t i = 0; i < pipeline_.steps.size(); ++i) out[pipeline_.steps[i].id] = (*f)[i];
    return out;
  }

  FakeFiles files_;
  FakeHistory history_;
  ArtifactPublisher* artifacts_ = nullptr;
  int64_t now_ms_ = 100 * kHour;
  spec::Pipeline pipeline_;
};

const char* kTrain = R"(name: t
steps:
  train: {run: python3 train.py, deps: [data], cache: true}
  report: {needs: [train], run: echo done}
)";

}  // namespace

TEST_F(CacheForecastTest, AStepWithoutAnEarlierResultRunsAndOneWithoutCacheIsNotForecast) {
  files_.Write("/spec/train.py", "1");
  files_.Write("/spec/data/a.csv", "1");
  auto f = Forecast(kTrain);
  EXPECT_EQ(f["train"].kind, Kind::kRuns);
  EXPECT_EQ(f["train"].why, "no earlier result");
  EXPECT_EQ(f["report"].kind, Kind::kOff);
}

TEST_F(CacheForecastTest, AnUnchangedStepIsCachedFromTheRunThatComputedIt) {
  files_.Write("/spec/train.py", "1");
  files_.Write("/spec/data/a.csv", "1");
  history_.Record("train", Forecast(kTrain)["train"], 4, now_ms_ - kHour);
  auto f = Forecast(kTrain);
  EXPECT_EQ(f["train"].kind, Kind::kCached);
  EXPECT_EQ(f["train"].run_id, 4);
}

TEST_F(CacheForecastTest, TheEditedFileIsTheReasonTheStepRuns) {
  files_.Write("/spec/train.py", "1");
  files_.Write("/spec/data/a.csv", "1");
  history_.Record("train", Forecast(kTrain)["train"], 1, now_ms_ - kHour);
  files_.Write("/spec/train.py", "2");
  auto f = Forecast(kTrain);
  EXPECT_EQ(f["train"].kind, Kind::kRuns);
  EXPECT_EQ(f["train"].why, "deps changed: train.py");
  files_.Write("/spec/train.py", "1");
  files_.Write("/spec/data/b.csv", "new");
  EXPECT_EQ(Forecast(kTrain)["train"].why, "deps changed: data");
}

TEST_F(CacheForecastTest, AResultExactlyMaxAgeOldIsReusedAndAnOlderOneIsNot) {
  const char* yaml = "name: t\nsteps:\n  s: {run: echo, cache: {max_age: 1h}}\n";
  history_.Record("s", Forecast(yaml)["s"], 1, now_ms_ - kHour);
  EXPECT_EQ(Forecast(yaml)["s"].kind, Kind::kCached);
  now_ms_ += 1000;
  auto f = Forecast(yaml);
  EXPECT_EQ(f["s"].kind, Kind::kRuns);
  EXPECT_EQ(f["s"].why, "the result of run 1 is 1h00m01s old, older than max_age 1h");
}

TEST_F(CacheForecastTest, AResultWhoseArtifactIsGoneRuns) {
  const char* yaml = "name: t\nsteps:\n  s: {run: echo, cache: true}\n";
  history_.produced = {{LineageEdge::Role::kProduced, "model", {"abc", "model", 1, "/a/abc"}}};
  history_.Record("s", Forecast(yaml)["s"], 2, now_ms_);
  NoArtifacts none;
  artifacts_ = &none;
  auto f = Forecast(yaml);
  EXPECT_EQ(f["s"].kind, Kind::kRuns);
  EXPECT_EQ(f["s"].why, "the result of run 2 is damaged (artifact abc is missing or changed)");
}

TEST_F(CacheForecastTest, AStepReadsTheOutputsOfACachedStepAndDependsOnThoseOfOneThatRuns) {
  const char* yaml = R"(name: t
steps:
  prepare: {run: sh prepare.sh, cache: true}
  train:
    needs: [prepare]
    run: python3 train.py "${{ steps.prepare.outputs.rows }}"
    deps: [data]
    cache: true
)";
  files_.Write("/spec/prepare.sh", "1");
  files_.Write("/spec/train.py", "1");
  files_.Write("/spec/data/a.csv", "1");
  auto f = Forecast(yaml);
  EXPECT_EQ(f["train"].kind, Kind::kAtRunTime);
  EXPECT_EQ(f["train"].why, "depends on outputs of 'prepare'; cached if they match");
  history_.Record("prepare", f["prepare"], 1, now_ms_, false, {{"rows", spec::Value::Str("10")}});
  f = Forecast(yaml);  // prepare's outputs are its cached result's: train's identity is known
  ASSERT_EQ(f["prepare"].kind, Kind::kCached);
  EXPECT_EQ(f["train"].kind, Kind::kRuns);
  EXPECT_EQ(f["train"].why, "no earlier result");
  history_.Record("train", f["train"], 1, now_ms_);
  EXPECT_EQ(Forecast(yaml)["train"].kind, Kind::kCached);
  // prepare changes: train waits for its outputs, but a changed dep of its own is known now.
  files_.Write("/spec/prepare.sh", "2");
  f = Forecast(yaml);
  EXPECT_EQ(f["prepare"].why, "deps changed: prepare.sh");
  EXPECT_EQ(f["train"].kind, Kind::kAtRunTime);
  files_.Write("/spec/data/a.csv", "2");
  f = Forecast(yaml);
  EXPECT_EQ(f["train"].kind, Kind::kRuns);
  EXPECT_EQ(f["train"].why, "deps changed: data");
}

TEST_F(CacheForecastTest, ForeachItemsAreForecastOneByOne) {
  const char* yaml = "name: t\nsteps:\n  s: {foreach: [a, b], run: 'wc -l ${{ item }}.csv', cache: true}\n";
  files_.Write("/spec/a.csv", "1");
  files_.Write("/spec/b.csv", "1");
  auto f = Forecast(yaml);
  ASSERT_EQ(f["s"].fingerprints.size(), 2u);
  history_.Record("s", f["s"], 3, now_ms_, /*foreach=*/true);
  EXPECT_EQ(Forecast(yaml)["s"].kind, Kind::kCached);
  files_.Write("/spec/b.csv", "2");
  f = Forecast(yaml);
  EXPECT_EQ(f["s"].kind, Kind::kRuns);
  EXPECT_EQ(f["s"].why, "item 1: deps changed: b.csv (1 of 2 items run)");
}

TEST_F(CacheForecastTest, ADepThatMatchesNothingIsForecastAsAFailureBeforeTheStepStarts) {
  auto f = Forecast("name: t\nsteps:\n  s: {run: echo, deps: [model.pt], cache: true}\n");
  EXPECT_EQ(f["s"].kind, Kind::kRuns);
  EXPECT_EQ(f["s"].why, "fails before it starts: deps: 'model.pt' of step 's' matches no file or folder in /spec");
}

TEST_F(CacheForecastTest, AFinallyStepReadingTheRunsStateIsDecidedAtRunTime) {
  files_.Write("/spec/notify.sh", "1");
  auto f = Forecast("name: t\nsteps:\n  a: {run: x}\nfinally:\n"
                    "  notify: {run: 'sh notify.sh ${{ run.state }}', cache: true}\n");
  EXPECT_EQ(f["notify"].kind, Kind::kAtRunTime);
  EXPECT_EQ(f["notify"].why, "depends on the run's state; cached if they match");
}

TEST_F(CacheForecastTest, AStepReadingTheExitCodeOfAStepThatRunsIsDecidedAtRunTime) {
  files_.Write("/spec/train.py", "1");
  auto f = Forecast("name: t\nsteps:\n  a: {run: python3 train.py, cache: true}\n"
                    "  b: {needs: a, run: 'echo ${{ steps.a.exit_code }}', cache: true}\n");
  EXPECT_EQ(f["b"].kind, Kind::kAtRunTime);
  EXPECT_EQ(f["b"].why, "depends on outputs of 'a'; cached if they match");
}
