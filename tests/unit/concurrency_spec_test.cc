// The spec's `concurrency:` and a step's `pool:`: their shapes, located
// errors word for word, and the group's rendering from params.
#include <gtest/gtest.h>

#include "spec/pipeline.h"
#include "../common/load_spec.h"

using sluice::spec::Pipeline;
using sluice::spec::RenderConcurrencyGroup;
using sluice::spec::Value;

namespace {

using sluice::testing::load_spec::Error;
using sluice::testing::load_spec::Load;

const char* kParams = "name: demo\nparams:\n  env: {type: string, default: prod}\n";

}  // namespace

TEST(ConcurrencySpecTest, AGroupIsRenderedFromTheRunsParams) {
  Pipeline p = Load(std::string(kParams) +
                    "concurrency: {group: \"deploy-${{ params.env }}\", cancel_in_progress: true}\n"
                    "steps:\n  a: {run: x}\n");
  ASSERT_TRUE(p.concurrency);
  EXPECT_TRUE(p.concurrency->cancel_in_progress);
  EXPECT_EQ(*RenderConcurrencyGroup(p, {{"env", Value::Str("staging")}}), "deploy-staging");
}

TEST(ConcurrencySpecTest, AGroupNameAloneIsTheShortFormWithoutCancelInProgress) {
  Pipeline p = Load("name: demo\nconcurrency: nightly\nsteps:\n  a: {run: x}\n");
  ASSERT_TRUE(p.concurrency);
  EXPECT_FALSE(p.concurrency->cancel_in_progress);
  EXPECT_EQ(*RenderConcurrencyGroup(p, {}), "nightly");
}

TEST(ConcurrencySpecTest, APipelineWithoutConcurrencyHasNoGroup) {
  Pipeline p = Load("name: demo\nsteps:\n  a: {run: x}\n");
  EXPECT_FALSE(p.concurrency);
  EXPECT_EQ(*RenderConcurrencyGroup(p, {}), "");
}

TEST(ConcurrencySpecTest, ConcurrencyWithoutAGroupIsAnError) {
  EXPECT_EQ(Error("name: demo\nconcurrency: {cancel_in_progress: true}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:14: concurrency needs a group (group: \"deploy-${{ params.env }}\")");
}

TEST(ConcurrencySpecTest, ConcurrencyAsAListIsAnError) {
  EXPECT_EQ(Error("name: demo\nconcurrency: [a]\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:14: concurrency must be a group name or {group: ..., cancel_in_progress: true|false}");
}

TEST(ConcurrencySpecTest, AnUnknownKeyInConcurrencyIsAnError) {
  EXPECT_EQ(Error("name: demo\nconcurrency: {group: g, cancel: true}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:25: unknown key 'cancel' in concurrency (did you mean 'cancel_in_progress'?)");
}

TEST(ConcurrencySpecTest, CancelInProgressMustBeABool) {
  EXPECT_EQ(Error("name: demo\nconcurrency: {group: g, cancel_in_progress: yes}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:45: cancel_in_progress must be true or false, not 'yes'");
}

TEST(ConcurrencySpecTest, AnEmptyGroupIsAnError) {
  EXPECT_EQ(Error("name: demo\nconcurrency: {group: \"\"}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:22: concurrency group must not be empty");
}

TEST(ConcurrencySpecTest, AGroupReadingAnUnknownParamIsAnError) {
  EXPECT_EQ(Error(std::string(kParams) + "concurrency: {group: \"d-${{ params.evn }}\"}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:4:25: concurrency group reads unknown param 'evn' (did you mean 'env'?)");
}

TEST(ConcurrencySpecTest, AGroupReadingAnythingButParamsIsAnError) {
  EXPECT_EQ(Error("name: demo\nconcurrency: {group: \"${{ steps.a.outputs.x }}\"}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:23: unknown name 'steps.a.outputs.x' (a concurrency group sees params.NAME only: it is "
            "rendered when the run is created)");
}

TEST(ConcurrencySpecTest, AGroupThatRendersEmptyIsALocatedErrorWhenTheRunIsCreated) {
  Pipeline p = Load(std::string(kParams) + "concurrency: \"${{ params.env }}\"\nsteps:\n  a: {run: x}\n");
  auto g = RenderConcurrencyGroup(p, {{"env", Value::Str("")}});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().message(), "p.yaml:4:14: concurrency group '${{ params.env }}' renders to an empty string");
}

TEST(ConcurrencySpecTest, AGroupOf256BytesIsAcceptedAnd257IsAnError) {
  Pipeline p = Load(std::string(kParams) + "concurrency: \"${{ params.env }}\"\nsteps:\n  a: {run: x}\n");
  EXPECT_TRUE(RenderConcurrencyGroup(p, {{"env", Value::Str(std::string(256, 'g'))}}).ok());
  auto g = RenderConcurrencyGroup(p, {{"env", Value::Str(std::string(257, 'g'))}});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().message(),
            "p.yaml:4:14: concurrency group '${{ params.env }}' renders to 257 bytes, over the limit of 256");
}

TEST(PoolSpecTest, AStepNamesAPoolAndHowManyOfItsSlotsItTakes) {
  Pipeline p = Load("name: demo\nsteps:\n  a: {run: x, pool: gpu, pool_slots: 2}\n  b: {run: x, pool: db.main}\n");
  EXPECT_EQ(p.steps[0].pool, "gpu");
  EXPECT_EQ(p.steps[0].pool_slots, 2);
  EXPECT_EQ(p.steps[0].pool_pos.line, 3);
  EXPECT_EQ(p.steps[1].pool, "db.main");
  EXPECT_EQ(p.steps[1].pool_slots, 1);
}

TEST(PoolSpecTest, PoolSlotsWithoutAPoolIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, pool_slots: 2}\n"),
            "p.yaml:3:27: step 'a': pool_slots needs a pool (pool: NAME)");
}

TEST(PoolSpecTest, PoolSlotsFrom1To10000AreAcceptedAnd0And10001AreErrors) {
  Load("name: demo\nsteps:\n  a: {run: x, pool: p, pool_slots: 10000}\n");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, pool: p, pool_slots: 0}\n"),
            "p.yaml:3:36: pool_slots must be a whole number from 1 to 10000, not '0'");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, pool: p, pool_slots: 10001}\n"),
            "p.yaml:3:36: pool_slots must be a whole number from 1 to 10000, not '10001'");
}

TEST(PoolSpecTest, APoolNameIsALiteralNameNotAnExpression) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, pool: \"${{ params.p }}\"}\n"),
            "p.yaml:3:21: step 'a': pool must be a literal name, not an expression");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, pool: \"-gpu\"}\n"),
            "p.yaml:3:21: step 'a': pool name '-gpu' must be 1 to 64 letters, digits, '_', '-' or '.', starting "
            "with a letter or digit");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, pool: [a]}\n"), "p.yaml:3:21: pool must be a single value");
}

TEST(PoolSpecTest, APoolNameOf64CharactersIsAcceptedAnd65IsAnError) {
  EXPECT_TRUE(sluice::spec::IsValidPoolName(std::string(64, 'p')));
  EXPECT_FALSE(sluice::spec::IsValidPoolName(std::string(65, 'p')));
  Load("name: demo\nsteps:\n  a: {run: x, pool: " + std::string(64, 'p') + "}\n");
}

TEST(ScheduleOverlapSpecTest, OverlapIsAllowForbidOrReplaceAndAllowByDefault) {
  Pipeline p = Load("name: demo\non:\n  schedule:\n    - {cron: \"@daily\"}\n    - {cron: \"@hourly\", overlap: forbid}\n"
                    "    - {cron: \"@weekly\", overlap: replace}\n    - {cron: \"@monthly\", overlap: allow}\n"
                    "steps:\n  a: {run: x}\n");
  using O = sluice::spec::Schedule::Overlap;
  ASSERT_EQ(p.schedules.size(), 4u);
  EXPECT_EQ(p.schedules[0].overlap, O::kAllow);
  EXPECT_EQ(p.schedules[1].overlap, O::kForbid);
  EXPECT_EQ(p.schedules[2].overlap, O::kReplace);
  EXPECT_EQ(p.schedules[3].overlap, O::kAllow);
}

TEST(ScheduleOverlapSpecTest, AnUnknownOverlapIsAnError) {
  EXPECT_EQ(Error("name: demo\non:\n  schedule: [{cron: \"@daily\", overlap: skip}]\nsteps:\n  a: {run: x}\n"),
            "p.yaml:3:40: overlap must be allow, forbid or replace, not 'skip'");
}
