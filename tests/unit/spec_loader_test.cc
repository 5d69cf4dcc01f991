// Every spec error, word for word, with its FILE:LINE:COL.
#include <gtest/gtest.h>

#include "spec/pipeline.h"
#include "spec/schema_check.h"
#include "../common/load_spec.h"

using sluice::spec::Pipeline;
using sluice::spec::Schedule;

namespace {

using sluice::testing::load_spec::Error;
using sluice::testing::load_spec::Load;

}  // namespace

TEST(SpecLoaderTest, LoadsEveryFieldOfAStep) {
  Pipeline p = Load(R"(name: demo
description: a demo
params:
  epochs: {type: int, default: 3, min: 1, max: 100}
  mode: {type: string, default: fast, enum: [fast, full]}
env: {KEY: value}
defaults:
  timeout: 30m
  retry: {limit: 2, backoff: {initial: 1s, factor: 2, max: 30s, jitter: true}}
steps:
  prepare:
    run: ./prepare.sh ${{ params.mode }}
  train:
    needs: [prepare]
    run: [python3, train.py, --epochs, "${{ params.epochs }}"]
    env: {OMP_NUM_THREADS: "2"}
    workdir: subdir
    timeout: 2h
    retry: {limit: 3}
    resources: {cpu: 2}
  shard:
    needs: [prepare]
    foreach: [a, b, c]
    run: ./shard.sh ${{ item }}
  report:
    needs: [train, shard]
    if: ${{ always() }}
    continue_on_error: true
    run: echo "${{ steps.train.outputs.accuracy }}"
)");
  ASSERT_EQ(p.steps.size(), 4u);
  EXPECT_EQ(p.name, "demo");
  EXPECT_EQ(p.params.size(), 2u);
  const auto& train = p.steps[1];
  EXPECT_FALSE(train.shell);
  EXPECT_EQ(train.run.size(), 4u);
  EXPECT_EQ(train.timeout->count(), 2 * 3600 * 1000);
  EXPECT_EQ(train.retry.limit, 3);
  EXPECT_EQ(train.retry.backoff.max.count(), 30000);  // from defaults
  EXPECT_EQ(train.cpu, 2);
  EXPECT_EQ(p.steps[0].timeout->count(), 30 * 60 * 1000);
  EXPECT_EQ(p.steps[0].retry.limit, 2);
  EXPECT_TRUE(p.steps[0].shell);
  EXPECT_EQ(p.steps[2].foreach_items.size(), 3u);
  EXPECT_TRUE(p.steps[3].continue_on_error);
  EXPECT_TRUE(p.steps[3].if_condition.has_value());
}

TEST(SpecLoaderTest, MalformedYamlNamesItsPlace) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: [x\n"),
            "p.yaml:4:1: malformed YAML: did not find expected ',' or ']' (while parsing a flow sequence)");
}

TEST(SpecLoaderTest, UnknownTopLevelKeySuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nstpes:\n  a: {run: x}\n"),
            "p.yaml:2:1: unknown key 'stpes' in the pipeline (did you mean 'steps'?)\n"
            "p.yaml:1:1: missing required key 'steps'");
}

TEST(SpecLoaderTest, UnknownStepKeySuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    need: [b]\n"),
            "p.yaml:5:5: unknown key 'need' in step 'a' (did you mean 'needs'?)");
}

TEST(SpecLoaderTest, MissingNameIsAnError) {
  EXPECT_EQ(Error("steps:\n  a: {run: x}\n"), "p.yaml:1:1: missing required key 'name'");
}

TEST(SpecLoaderTest, MissingStepsIsAnError) {
  EXPECT_EQ(Error("name: demo\n"), "p.yaml:1:1: missing required key 'steps'");
}

TEST(SpecLoaderTest, BadPipelineNameIsAnError) {
  EXPECT_EQ(Error("name: Demo\nsteps:\n  a: {run: x}\n"),
            "p.yaml:1:7: pipeline name 'Demo' must match [a-z0-9][a-z0-9-]*");
}

TEST(SpecLoaderTest, StepWithNeitherRunNorUsesIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    needs: []\n"), "p.yaml:3:3: step 'a' has neither 'run' nor 'uses'");
}

TEST(SpecLoaderTest, NeedsOfAnUnknownStepSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  prepare: {run: x}\n  train:\n    needs: [prep]\n    run: y\n"),
            "p.yaml:5:13: step 'train' needs unknown step 'prep' (did you mean 'prepare'?)");
}

TEST(SpecLoaderTest, CycleIsPrintedStepByStep) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {needs: [c], run: x}\n  b: {needs: [a], run: x}\n  c: {needs: [b], run: x}\n"),
            "p.yaml:4:15: dependency cycle: a -> c -> b -> a (each step needs the next)");
}

TEST(SpecLoaderTest, BadDurationIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    timeout: 10 minutes\n"),
            "p.yaml:5:14: bad duration '10 minutes' for timeout (use a number and a unit: 500ms, 10s, 5m, 2h)");
}

TEST(SpecLoaderTest, MaxActiveRunsIsAWholeNumberFromOne) {
  EXPECT_EQ(Load("name: demo\nmax_active_runs: 2\nsteps:\n  a: {run: x}\n").max_active_runs, 2);
  EXPECT_EQ(Load("name: demo\nsteps:\n  a: {run: x}\n").max_active_runs, 0);
  EXPECT_EQ(Error("name: demo\nmax_active_runs: 0\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:18: max_active_runs must be a whole number from 1 to 10000, not '0'");
  EXPECT_EQ(Error("name: demo\nmax_active_runs: 1.5\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:18: max_active_runs must be a whole number from 1 to 10000, not '1.5'");
  EXPECT_EQ(Error("name: demo\nmax_active_runs: many\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:18: max_active_runs must be a number, not 'many'");
  EXPECT_EQ(Error("name: demo\nmax_activ_runs: 2\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:1: unknown key 'max_activ_runs' in the pipeline (did you mean 'max_active_runs'?)");
}

TEST(SpecLoaderTest, ParamDefaultOfTheWrongTypeIsAnError) {
  EXPECT_EQ(Error("name: demo\nparams:\n  epochs: {type: int, default: three}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:3:32: param 'epochs': default 'three' is not an int");
}

TEST(SpecLoaderTest, ParamDefaultOutOfRangeIsAnError) {
  EXPECT_EQ(Error("name: demo\nparams:\n  epochs: {type: int, default: 500, max: 100}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:3:32: param 'epochs': default 500 is above the maximum 100");
}

TEST(SpecLoaderTest, ExpressionThatDoesNotParseNamesTheColumn) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ params.x == }}\n"),
            "p.yaml:4:31: bad expression ' params.x == ': expected a value at the end of the expression");
}

TEST(SpecLoaderTest, ExpressionNamingAnUnknownParamSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nparams:\n  epochs: {type: int, default: 1}\nsteps:\n  a:\n    run: echo ${{ params.epoch }}\n"),
            "p.yaml:6:19: unknown param 'epoch' (did you mean 'epochs'?)");
}

TEST(SpecLoaderTest, ExpressionNamingAnUnknownStepSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  train: {run: x}\n  report:\n    needs: [train]\n"
                  "    run: echo ${{ steps.tran.outputs.acc }}\n"),
            "p.yaml:6:19: unknown step 'tran' (did you mean 'train'?)");
}

TEST(SpecLoaderTest, ReadingAStepThatIsNotNeededIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  train: {run: x}\n  report:\n    run: echo ${{ steps.train.outputs.acc }}\n"),
            "p.yaml:5:19: step 'report' reads steps.train but does not need it (add 'train' to its needs)");
}

TEST(SpecLoaderTest, ItemOutsideForeachIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ item }}\n"),
            "p.yaml:4:19: 'item' is only defined inside a step with foreach");
}

TEST(SpecLoaderTest, ForeachThatIsNotAListIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    foreach: abc\n    run: echo ${{ item }}\n"),
            "p.yaml:4:14: foreach must be a list, a ${{ }} expression that gives a list, or {matrix: ...}");
}

TEST(SpecLoaderTest, UnknownFunctionSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    if: ${{ sucess() }}\n    run: x\n"),
            "p.yaml:4:13: unknown function 'sucess()' (did you mean 'success'?)");
}

TEST(SpecLoaderTest, ReportsEveryErrorInOneGo) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, timeout: soon}\n  b: {needs: [c], run: y}\n"),
            "p.yaml:3:24: bad duration 'soon' for timeout (use a number and a unit: 500ms, 10s, 5m, 2h)\n"
            "p.yaml:4:15: step 'b' needs unknown step 'c'");
}

TEST(SpecLoaderTest, DuplicateKeyIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x}\n  a: {run: y}\n"), "p.yaml:4:3: key 'a' appears twice in steps");
}

TEST(SpecLoaderTest, UsesMustNamePluginAndStepType) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {uses: split}\n"),
            "p.yaml:3:13: step 'a': uses must be <plugin>/<step type>, each [a-z0-9][a-z0-9-]*, not 'split'");
}

TEST(SpecLoaderTest, WithBelongsToPluginSteps) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: x\n    with: {k: 1}\n"),
            "p.yaml:5:11: step 'a': with is for plugin steps (uses); a run step takes env or arguments");
}

TEST(SpecLoaderTest, IsolationIsProcessOrInprocess) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    uses: data/split\n    isolation: thread\n"),
            "p.yaml:5:16: step 'a': isolation must be process or inprocess, not 'thread'");
}

TEST(SpecLoaderTest, ExpressionsInWithAreChecked) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    uses: data/split\n    with: {input: '${{ steps.b.outputs.x }}'}\n"),
            "p.yaml:5:24: unknown step 'b'");
}

TEST(ParamsTest, OverridesAreTypedAndChecked) {
  Pipeline p = Load("name: demo\nparams:\n  epochs: {type: int, default: 3, min: 1, max: 100}\n"
                    "  lr: {type: float, default: 0.1}\n  mode: {type: string, default: fast, enum: [fast, full]}\n"
                    "  dry: {type: bool, default: false}\nsteps:\n  a: {run: x}\n");
  auto v = sluice::spec::ResolveParams(p, {{"epochs", "7"}, {"lr", "0.5"}, {"dry", "true"}});
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->at("epochs").as_int(), 7);
  EXPECT_DOUBLE_EQ(v->at("lr").as_float(), 0.5);
  EXPECT_EQ(v->at("mode").as_string(), "fast");
  EXPECT_TRUE(v->at("dry").as_bool());
}

TEST(ParamsTest, BadOverrideTypeNamesTheParam) {
  Pipeline p = Load("name: demo\nparams:\n  epochs: {type: int, default: 3}\nsteps:\n  a: {run: x}\n");
  auto v = sluice::spec::ResolveParams(p, {{"epochs", "3.5"}});
  EXPECT_EQ(v.status().message(), "p.yaml:3:3: param 'epochs': '3.5' is not an int (given with -p)");
}

TEST(ParamsTest, OverrideOutOfRangeNamesTheLimit) {
  Pipeline p = Load("name: demo\nparams:\n  epochs: {type: int, default: 3, min: 1, max: 100}\nsteps:\n  a: {run: x}\n");
  auto v = sluice::spec::ResolveParams(p, {{"epochs", "0"}});
  EXPECT_EQ(v.status().message(), "p.yaml:3:3: param 'epochs': 0 is below the minimum 1 (given with -p)");
}

TEST(ParamsTest, OverrideOutsideTheEnumListsTheChoices) {
  Pipeline p = Load("name: demo\nparams:\n  mode: {type: string, default: fast, enum: [fast, full]}\nsteps:\n  a: {run: x}\n");
  auto v = sluice::spec::ResolveParams(p, {{"mode", "slow"}});
  EXPECT_EQ(v.status().message(), "p.yaml:3:3: param 'mode': 'slow' is not one of fast, full (given with -p)");
}

TEST(ParamsTest, UnknownOverrideKeySuggestsTheRightOne) {
  Pipeline p = Load("name: demo\nparams:\n  epochs: {type: int, default: 3}\nsteps:\n  a: {run: x}\n");
  auto v = sluice::spec::ResolveParams(p, {{"epoch", "3"}});
  EXPECT_EQ(v.status().message(), "p.yaml:2:1: unknown param 'epoch' given with -p (did you mean 'epochs'?)");
}

TEST(ParamsTest, ParamWithoutDefaultMustBeGiven) {
  Pipeline p = Load("name: demo\nparams:\n  data: {type: string}\nsteps:\n  a: {run: x}\n");
  auto v = sluice::spec::ResolveParams(p, {});
  EXPECT_EQ(v.status().message(), "p.yaml:3:3: param 'data' has no default; give it with -p data=VALUE");
}

TEST(SpecLoaderTest, LoadsSchedulesWithTheirZonesAndCatchup) {
  Pipeline p = Load(R"(name: nightly
on:
  schedule:
    - {cron: "0 3 * * *", timezone: Europe/Berlin}
    - {cron: "@hourly", catchup: false}
  webhook: {secret_env: HOOK_SECRET}
steps:
  a: {run: "true"}
)");
  ASSERT_EQ(p.schedules.size(), 2u);
  EXPECT_EQ(p.schedules[0].cron.text(), "0 3 * * *");
  EXPECT_EQ(p.schedules[0].timezone, "Europe/Berlin");
  EXPECT_EQ(p.schedules[0].catchup, Schedule::Catchup::kLatest);
  EXPECT_EQ(p.schedules[1].timezone, "UTC");
  EXPECT_EQ(p.schedules[1].catchup, Schedule::Catchup::kNone);
  ASSERT_TRUE(p.webhook.has_value());
}

TEST(SpecLoaderTest, CatchupAllStartsARunPerMissedTimeAndAnythingElseIsAnError) {
  Pipeline p = Load("name: n\non:\n  schedule: [{cron: \"@daily\", catchup: all}]\nsteps:\n  a: {run: \"true\"}\n");
  ASSERT_EQ(p.schedules.size(), 1u);
  EXPECT_EQ(p.schedules[0].catchup, Schedule::Catchup::kEvery);
  EXPECT_EQ(Error("name: n\non:\n  schedule: [{cron: \"@daily\", catchup: every}]\nsteps:\n  a: {run: \"true\"}\n"),
            "p.yaml:3:40: catchup must be true, false or all, not 'every'");
}

TEST(SpecLoaderTest, ExpressionsReadTheRunsScheduledTimeAndDataInterval) {
  Load(R"(name: n
steps:
  a:
    run: [echo, "${{ run.scheduled_time }}", "${{ run.interval_start }}", "${{ run.interval_end }}"]
    if: ${{ run.scheduled_time != null }}
)");
  EXPECT_EQ(Error("name: n\nsteps:\n  a: {run: \"echo ${{ run.scheduled }}\"}\n"),
            "p.yaml:3:22: unknown name 'run.scheduled' (a run has scheduled_time, interval_start and interval_end, "
            "and in finally steps state and failed_steps) (did you mean 'scheduled_time'?)");
}

TEST(SpecLoaderTest, AWebhookMapsParamsFromTheEvent) {
  Pipeline p = Load(R"(name: hooked
params:
  branch: {type: string, default: main}
on:
  webhook:
    secret_env: HOOK_SECRET
    params: {branch: "${{ event.ref }}"}
steps:
  a: {run: "true"}
)");
  ASSERT_TRUE(p.webhook.has_value());
  EXPECT_EQ(p.webhook->secret_env, "HOOK_SECRET");
  ASSERT_EQ(p.webhook->params.size(), 1u);
  EXPECT_EQ(p.webhook->params[0].first, "branch");
  EXPECT_EQ(p.webhook->params[0].second.source, "${{ event.ref }}");
}

TEST(SpecLoaderTest, AWebhookParamMayCallAFunctionOfTheEvent) {
  // The check of the names a webhook param reads once read a call's (empty) path; the fuzzer found it.
  Pipeline p = Load(R"(name: hooked
params:
  commits: {type: string, default: "[]"}
on:
  webhook:
    secret_env: HOOK_SECRET
    params: {commits: "${{ toJSON(event.commits) }}"}
steps:
  a: {run: "true"}
)");
  ASSERT_TRUE(p.webhook.has_value());
  EXPECT_EQ(Error(R"(name: bad
params:
  commits: {type: string, default: "[]"}
on:
  webhook:
    secret_env: HOOK_SECRET
    params: {commits: "${{ toJSON(steps.a.outputs.x) }}"}
steps:
  a: {run: "true"}
)"),
            "p.yaml:7:24: unknown name 'steps.a.outputs.x' (webhook params see event, the delivery's JSON, and event_name)");
  EXPECT_EQ(Error(R"(name: bad
params:
  commits: {type: string, default: "[]"}
on:
  webhook:
    secret_env: HOOK_SECRET
    params: {commits: "${{ toJSN(event.commits) }}"}
steps:
  a: {run: "true"}
)"),
            "p.yaml:7:24: unknown function 'toJSN()' (did you mean 'toJSON'?)");
}

TEST(SpecLoaderTest, WebhookErrorsNameThePlace) {
  EXPECT_EQ(Error(R"(name: bad
params:
  branch: {type: string, default: main}
on:
  webhook:
    secret_env: NOT-A-NAME
    params: {brnch: "${{ event.ref }}", branch: "${{ steps.a.outputs.x }}"}
steps:
  a: {run: "true"}
)"),
            "p.yaml:6:17: secret_env must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)\n"
            "p.yaml:7:14: on.webhook sets unknown param 'brnch' (did you mean 'branch'?)\n"
            "p.yaml:7:50: unknown name 'steps.a.outputs.x' (webhook params see event, the delivery's JSON, and event_name)");
  EXPECT_EQ(Error("name: bad\non: {webhook: {params: {}}}\nsteps: {a: {run: 'true'}}\n"),
            "p.yaml:2:15: on.webhook needs secret_env: the variable that holds its HMAC secret");
}

TEST(SpecLoaderTest, ScheduleErrorsNameThePlace) {
  EXPECT_EQ(Error(R"(name: bad
on:
  schedule:
    - {cron: "0 25 * * *"}
    - {cron: "0 3 * * *", timezone: Europe/Berlinn}
    - {crn: "0 3 * * *"}
    - {timezone: UTC}
steps:
  a: {run: "true"}
)"),
            "p.yaml:4:14: cron '0 25 * * *': hour: 25 is out of range 0-23\n"
            "p.yaml:5:37: unknown time zone 'Europe/Berlinn' (no /usr/share/zoneinfo/Europe/Berlinn; Debian's tzdata "
            "installs them)\n"
            "p.yaml:6:8: unknown key 'crn' in a schedule (did you mean 'cron'?)\n"
            "p.yaml:7:7: a schedule needs cron: \"MIN HOUR DAY MONTH WEEKDAY\"");
  EXPECT_EQ(Error("name: bad\non: {schedule: {cron: x}}\nsteps: {a: {run: 'true'}}\n"),
            "p.yaml:2:16: on.schedule must be a list of {cron: \"...\", timezone: ..., catchup: ..., overlap: ...}");
  EXPECT_EQ(Error("name: bad\non: {cron: x}\nsteps: {a: {run: 'true'}}\n"),
            "p.yaml:2:6: unknown key 'cron' in on");
}

// --- Limits against hostile specs (specs/pipeline.md, "Limits") -------------

namespace {

// A plugin step whose `with:` (depth 4: top map, steps, the step, with) holds `value` under `k`.
std::string WithValue(const std::string& value) {
  return "name: demo\nsteps:\n  a:\n    uses: data/split\n    with:\n      k: " + value + "\n";
}

std::string Nested(int levels, const std::string& inner = "x") {
  return std::string(levels, '[') + inner + std::string(levels, ']');
}

// An anchor on a list of `n - 1` scalars (n nodes) and `copies` aliases of it.
std::string AnchorAndAliases(int n, int copies) {
  std::string s = "name: demo\nsteps:\n  a:\n    uses: data/split\n    with:\n      big: &big [x";
  for (int i = 1; i < n - 1; ++i) s += ",x";
  s += "]\n      copies: [";
  for (int i = 0; i < copies; ++i) s += i ? ", *big" : "*big";
  return s + "]\n";
}

}  // namespace

TEST(SpecLoaderTest, YamlNestedExactlyAtTheDepthLimitLoads) {
  // with: is depth 4, so 60 brackets make depth 64.
  Pipeline p = Load(WithValue(Nested(60)));
  EXPECT_EQ(p.steps.size(), 1u);
}

TEST(SpecLoaderTest, YamlNestedOneLevelPastTheDepthLimitIsAnErrorAtTheLevelThatCrossesIt) {
  EXPECT_EQ(Error(WithValue(Nested(61))), "p.yaml:6:70: the YAML nests deeper than 64 levels (the limit)");
}

TEST(SpecLoaderTest, DeeplyNestedYamlIsRefusedWithoutExhaustingTheStack) {
  EXPECT_EQ(Error(WithValue(Nested(200000))), "p.yaml:6:70: the YAML nests deeper than 64 levels (the limit)");
}

TEST(SpecLoaderTest, AnAliasCountsAtTheDepthItIsCopiedTo) {
  // The anchored list is 60 deep; copied into with: (4 open levels) it reaches 64, one map further 65.
  Load(WithValue("&d " + Nested(60)) + "      again: *d\n");
  EXPECT_EQ(Error(WithValue("&d " + Nested(60)) + "      again: {k: *d}\n"),
            "p.yaml:7:18: this alias nests the YAML deeper than 64 levels (the limit)");
}

TEST(SpecLoaderTest, AnchorsAndAliasesCopyingExactlyTheNodeLimitLoad) {
  // The anchor keeps one copy of its 10,000 nodes, nine aliases copy 90,000 more.
  Pipeline p = Load(AnchorAndAliases(10000, 9));
  EXPECT_EQ(p.steps.size(), 1u);
}

TEST(SpecLoaderTest, AnAliasCopyingOneNodePastTheLimitIsAnErrorAtTheAlias) {
  EXPECT_EQ(Error(AnchorAndAliases(10000, 10)),
            "p.yaml:7:70: the anchors and aliases in this spec copy more than 100000 nodes (the limit)");
  // One node past the other way: an anchor one node larger, and the ninth alias is one too many.
  EXPECT_EQ(Error(AnchorAndAliases(10001, 9)), "p.yaml:7:64: the anchors and aliases in this spec copy more than 100000 nodes (the limit)");
}

TEST(SpecLoaderTest, ABillionLaughsIsRefusedAtTheAliasThatSpendsTheBudget) {
  std::string s = "name: demo\nsteps:\n  a:\n    uses: data/split\n    with:\n      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    s += "      l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + prev;
    for (int k = 1; k < 10; ++k) s += ", " + prev;
    s += "]\n";
  }
  // By the end of l3 (11,111 nodes) 24,674 nodes are spent; l4's seventh alias of l3 crosses 100,000.
  EXPECT_EQ(Error(s), "p.yaml:10:46: the anchors and aliases in this spec copy more than 100000 nodes (the limit)");
}

TEST(SpecLoaderTest, AnchorsAndAliasesCopyingExactlyTheByteLimitLoad) {
  // A 1 MiB scalar: the anchor's copy and 15 aliases are 16 MiB of text.
  std::string big(1 << 20, 'x');
  Pipeline p = Load(WithValue("&s " + big) + "      copies: [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\n");
  EXPECT_EQ(p.steps.size(), 1u);
}

TEST(SpecLoaderTest, AnAliasCopyingOneBytePastTheByteLimitIsAnErrorAtTheAlias) {
  std::string big((1 << 20) + 1, 'x');
  EXPECT_EQ(Error(WithValue("&s " + big) + "      copies: [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\n"),
            "p.yaml:7:72: the anchors and aliases in this spec copy more than 16777216 bytes of text (the limit)");
}

TEST(SpecLoaderTest, ASpecExactlyAtTheSizeLimitLoads) {
  std::string s = "name: demo\nsteps: {a: {run: [\"true\"]}}\n# ";
  s += std::string((16 << 20) - s.size() - 1, 'x') + "\n";
  ASSERT_EQ(s.size(), 16u << 20);
  Load(s);
}

TEST(SpecLoaderTest, ASpecOneBytePastTheSizeLimitIsAnError) {
  std::string s = "name: demo\nsteps: {a: {run: [\"true\"]}}\n# ";
  s += std::string((16 << 20) - s.size(), 'x') + "\n";
  EXPECT_EQ(Error(s), "p.yaml:1:1: the spec is 16777217 bytes, over the limit of 16777216 bytes (16 MiB)");
}

TEST(SpecLoaderTest, AnExpressionNestedExactlyAtTheLimitLoads) {
  Load("name: demo\nsteps:\n  a:\n    run: [\"true\"]\n    if: ${{ " + std::string(32, '(') + "true" + std::string(32, ')') + " }}\n");
}

TEST(SpecLoaderTest, AnExpressionNestedOnePastTheLimitIsAnErrorAtTheParenthesisThatCrossesIt) {
  std::string expr = std::string(33, '(') + "true" + std::string(33, ')');
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: [\"true\"]\n    if: ${{ " + expr + " }}\n"),
            "p.yaml:5:45: bad expression ' " + expr +
                " ': nested deeper than 32 levels of parentheses, operators and calls (the limit)");
}

TEST(SpecLoaderTest, AnErrorQuotingANewlineStaysOnOneLine) {
  // Found by tests/fuzz/spec_loader_fuzz: the expression's newline started a line with no FILE:LINE:COL.
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: [\"true\"]\n    if: \"${{ true\\n == }}\"\n"),
            "p.yaml:5:9: bad expression ' true\\n == ': expected a value at the end of the expression");
}

TEST(SpecLoaderTest, AnErrorQuotesAtMostAHundredBytesOfTheExpression) {
  std::string expr = " true ==" + std::string(200, ' ') + ") ";
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: [\"true\"]\n    if: ${{" + expr + "}}\n"),
            "p.yaml:5:220: bad expression ' true ==" + std::string(92, ' ') + "...': unexpected ')'");
}

TEST(SpecLoaderTest, ATimeZoneThatNamesAFolderIsALocatedErrorNotAnAbort) {
  // Found by tests/fuzz/spec_loader_fuzz: reading /usr/share/zoneinfo/Etc/ threw out of the loader.
  std::string error = Error("name: tz\non:\n  schedule:\n    - {cron: \"0 3 * * *\", timezone: Etc/}\nsteps:\n  a: {run: [\"true\"]}\n");
  EXPECT_EQ(error, "p.yaml:4:37: unknown time zone 'Etc/' (no /usr/share/zoneinfo/Etc/; Debian's tzdata installs them)");
}

TEST(SpecLoaderTest, AZeroTimeoutIsRefusedAndOneMillisecondIsAccepted) {
  EXPECT_EQ(Error("name: t\nsteps:\n  a: {run: x, timeout: 0s}\n"),
            "p.yaml:3:24: timeout must be longer than 0 (leave it out for no timeout)");
  EXPECT_EQ(Error("name: t\ndefaults: {timeout: 0ms}\nsteps:\n  a: {run: x}\n"),
            "p.yaml:2:21: timeout must be longer than 0 (leave it out for no timeout)");
  EXPECT_EQ(Load("name: t\nsteps:\n  a: {run: x, timeout: 1ms}\n").steps[0].timeout, sluice::Millis(1));
}

TEST(SpecLoaderTest, AnEmptyFileSaysItIsEmpty) {
  EXPECT_EQ(Error(""), "p.yaml:1:1: the file is empty; a pipeline needs 'name' and 'steps'");
  EXPECT_EQ(Error("\n  \n"), "p.yaml:1:1: the file is empty; a pipeline needs 'name' and 'steps'");
}

TEST(SpecLoaderTest, ABadByteIsLocatedWhereItIs) {
  EXPECT_EQ(Error("name: x\nsteps:\n  a: {run: \"echo \xff\"}\n"),
            "p.yaml:3:18: the file is not UTF-8 here (byte 0xff); save it as UTF-8");
  EXPECT_EQ(Error("name: x\n# caf\xc3\xa9 \xc3\n"), "p.yaml:2:8: the file is not UTF-8 here (byte 0xc3); save it as UTF-8");
}

TEST(SpecLoaderTest, AMergeKeyBringsInAnAnchoredMapAndTheStepsOwnKeysWin) {
  Pipeline p = Load(
      "name: demo\n"
      "x-common: &common\n"
      "  timeout: 5m\n"
      "  retry: 2\n"
      "  env: {A: common}\n"
      "steps:\n"
      "  a:\n"
      "    <<: *common\n"
      "    run: x\n"
      "    retry: 4\n");
  ASSERT_EQ(p.steps.size(), 1u);
  EXPECT_EQ(p.steps[0].retry.limit, 4);
  EXPECT_EQ(p.steps[0].timeout, std::chrono::minutes(5));
  ASSERT_EQ(p.steps[0].env.size(), 1u);
}

TEST(SpecLoaderTest, AMergeKeyListTakesTheEarlierMapFirst) {
  Pipeline p = Load(
      "name: demo\n"
      "x-a: &a {retry: 1}\n"
      "x-b: &b {retry: 2, timeout: 1m}\n"
      "steps:\n"
      "  a: {<<: [*a, *b], run: x}\n");
  EXPECT_EQ(p.steps[0].retry.limit, 1);
  EXPECT_EQ(p.steps[0].timeout, std::chrono::minutes(1));
}

TEST(SpecLoaderTest, AMergeKeyOfAScalarIsALocatedError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    <<: 3\n    run: x\n"),
            "p.yaml:4:9: a merge key '<<' takes a mapping or a list of mappings (an alias such as *common)");
}

TEST(SpecLoaderTest, XKeysAreTheUsersOwnAndIgnoredInTheRootAndInSteps) {
  Pipeline p = Load("name: demo\nx-notes: anything [at] all\nsteps:\n  a: {run: x, x-owner: ml-team}\n");
  EXPECT_EQ(p.steps.size(), 1u);
}

TEST(SpecLoaderTest, AKeyThatOnlyLooksLikeAMergeKeyWhenQuotedIsUnknown) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {'<<': {retry: 1}, run: x}\n"),
            "p.yaml:3:7: unknown key '<<' in step 'a'");
}

TEST(SpecLoaderTest, AReadOfAnOutputARunStepDoesNotDeclareSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n"
                  "  a: {run: x, outputs: {model: model, accuracy: value}}\n"
                  "  b: {needs: [a], run: 'echo ${{ steps.a.outputs.acuracy }}'}\n"),
            "p.yaml:4:34: step 'b' reads steps.a.outputs.acuracy, which step 'a' does not declare (did you mean "
            "'accuracy'?) (it declares model, accuracy)");
}

TEST(SpecLoaderTest, ARunStepThatRegistersAModelDeclaresRegistered) {
  Load("name: demo\nsteps:\n"
       "  a: {run: x, outputs: {model: model}, register: {name: m}}\n"
       "  b: {needs: [a], run: 'echo ${{ steps.a.outputs.registered }}'}\n");
}

TEST(SpecLoaderTest, ReadsOfARunStepThatDeclaresNoOutputsAreNotChecked) {
  Load("name: demo\nsteps:\n  a: {run: x}\n  b: {needs: [a], run: 'echo ${{ steps.a.outputs.anything }}'}\n");
}

TEST(SpecLoaderTest, DepsAndCacheMaxAgeLoadAndACacheMapInDefaultsGivesItsMaxAge) {
  Pipeline p = Load(R"(name: demo
defaults:
  cache: {max_age: 7d}
steps:
  a: {run: x, deps: [train.py, 'data/*.csv', ./src/]}
  b: {run: x, cache: true, deps: model.pt}
  c: {run: x, cache: {max_age: 1h30m}}
  d: {run: x, cache: false}
)");
  const auto& a = *p.FindStep("a");
  ASSERT_EQ(a.deps.size(), 3u);
  EXPECT_EQ(a.deps[1].pattern, "data/*.csv");
  EXPECT_EQ(a.deps[1].pos, (sluice::spec::SourcePos{5, 33}));  // inside the quotes
  EXPECT_TRUE(a.cache);
  EXPECT_EQ(a.cache_max_age, sluice::Millis(7 * 86400000LL));
  EXPECT_EQ(p.FindStep("b")->deps[0].pattern, "model.pt");
  EXPECT_EQ(p.FindStep("b")->cache_max_age, sluice::Millis(7 * 86400000LL));
  EXPECT_EQ(p.FindStep("c")->cache_max_age, sluice::Millis(5400000));
  EXPECT_FALSE(p.FindStep("d")->cache);
  EXPECT_FALSE(Load("name: x\nsteps:\n  a: {run: x}\n").steps[0].cache_max_age.has_value());
}

TEST(SpecLoaderTest, DepsOutsideTheSpecFolderAndBadCacheValuesAreRefusedAtTheirPlace) {
  EXPECT_EQ(Error(R"(name: bad
steps:
  train:
    run: x
    deps: [../shared/lib.py, /etc/hosts, 'a/../../b', "${{ params.x }}", '', ~/x, {a: 1}]
  other: {run: x, deps: {a: 1}}
  c1: {run: x, cache: yes}
  c2: {run: x, cache: {max_age: 0s}}
  c3: {run: x, cache: {max_age: soon}}
  c4: {run: x, cache: {maxage: 1d}}
)"),
            "p.yaml:5:12: step 'train': dep '../shared/lib.py' is outside the spec's folder; deps must stay under it\n"
            "p.yaml:5:30: step 'train': dep '/etc/hosts' is an absolute path; deps are relative to the spec's folder\n"
            "p.yaml:5:43: step 'train': dep 'a/../../b' is outside the spec's folder; deps must stay under it\n"
            "p.yaml:5:56: step 'train': dep '${{ params.x }}' has an expression; deps are literal paths and globs\n"
            "p.yaml:5:75: step 'train': dep '' is empty\n"
            "p.yaml:5:78: step 'train': dep '~/x' starts with ~; deps are relative to the spec's folder\n"
            "p.yaml:5:83: each entry of deps must be a single value\n"
            "p.yaml:6:25: step 'other': deps must be a path or a list of paths and globs, relative to the spec's folder\n"
            "p.yaml:7:23: cache must be true, false or {max_age: 7d}, not 'yes'\n"
            "p.yaml:8:33: cache max_age must be longer than 0 (use cache: false to never reuse a result)\n"
            "p.yaml:9:33: bad duration 'soon' for cache max_age (use a number and a unit: 500ms, 10s, 5m, 2h)\n"
            "p.yaml:10:24: unknown key 'maxage' in cache (did you mean 'max_age'?)");
}

TEST(SchemaCheckTest, ABoundOfOneIsCountedInTheSingular) {
  nlohmann::json schema = nlohmann::json::parse(R"({"type": "object", "properties": {
      "tag": {"type": "string", "minLength": 1}, "tags": {"type": "array", "minItems": 1}}})");
  nlohmann::json params = {{"tag", ""}};
  EXPECT_EQ(sluice::spec::CheckRenderedParams(&params, schema), "param 'tag' must have at least 1 character");
  params = {{"tags", nlohmann::json::array()}};
  EXPECT_EQ(sluice::spec::CheckRenderedParams(&params, schema), "param 'tags' needs at least 1 item");
}

TEST(SpecLoaderTest, AWholeNumberFarPastItsRangeIsALocatedErrorNotAnOverflow) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a: {run: x, retry: {limit: 1e60}}\n"),
            "p.yaml:3:30: retry limit must be a whole number from 0 to 1000, not '1e60'");
}

// Expressions over data and matrix fan-out --------------------------------

TEST(SpecLoaderTest, AFunctionWithTheWrongNumberOfArgumentsIsAnErrorAtTheCall) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ replace('a', 'b') }}\n"),
            "p.yaml:4:19: replace() takes 3 arguments, not 2");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ join() }}\n"),
            "p.yaml:4:19: join() takes 1 or 2 arguments, not 0");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ format() }}\n"),
            "p.yaml:4:19: format() takes 1 or more arguments, not 0");
}

TEST(SpecLoaderTest, AnUnknownFunctionAmongTheNewOnesSuggestsTheRightOne) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ startswith('a', 'b') }}\n"),
            "p.yaml:4:19: unknown function 'startswith()' (did you mean 'startsWith'?)");
}

TEST(SpecLoaderTest, NamesInMemberPathsAreStillChecked) {
  EXPECT_EQ(Error("name: demo\nparams:\n  cfg: {type: string, default: '{}'}\nsteps:\n  a:\n"
                  "    run: echo ${{ fromJSON(params.cfgs).layers[0] }}\n"),
            "p.yaml:6:28: unknown param 'cfgs' (did you mean 'cfg'?)");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ item.lr }}\n"),
            "p.yaml:4:19: 'item' is only defined inside a step with foreach");
  Load("name: demo\nparams:\n  cfg: {type: string, default: '{}'}\nsteps:\n  a:\n"
       "    run: echo ${{ fromJSON(params.cfg).layers[0].size + 1 }}\n");
}

TEST(SpecLoaderTest, AHashFilesGlobOutsideTheFolderIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ hashFiles('../x/*.csv') }}\n"),
            "p.yaml:4:19: hashFiles(): '../x/*.csv' is outside the spec's folder; deps must stay under it");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    run: echo ${{ hashFiles('data/*.csv', '/etc/passwd') }}\n"),
            "p.yaml:4:19: hashFiles(): '/etc/passwd' is an absolute path; deps are relative to the spec's folder");
}

TEST(SpecLoaderTest, AForeachStepsIfMayReadItem) {
  Pipeline p = Load("name: demo\nsteps:\n  a:\n    foreach: [1, 2]\n    if: item != '2'\n    run: echo ${{ item }}\n");
  EXPECT_TRUE(p.steps[0].if_reads_item);
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    if: item != '2'\n    run: x\n"),
            "p.yaml:4:9: 'item' is only defined inside a step with foreach");
}

TEST(SpecLoaderTest, ForeachItemsWrittenAsMapsAreTypedMaps) {
  Pipeline p = Load("name: demo\nsteps:\n  a:\n    foreach: [{lr: 0.1, deep: true}, plain]\n    run: echo ${{ item.lr }}\n");
  ASSERT_EQ(p.steps[0].foreach_items.size(), 2u);
  EXPECT_EQ(p.steps[0].foreach_items[0].Render(), R"({"deep":true,"lr":0.1})");
  EXPECT_EQ(p.steps[0].foreach_items[1], sluice::spec::Value::Str("plain"));
}

TEST(SpecLoaderTest, LoadsAMatrixWithIncludeAndExclude) {
  Pipeline p = Load(R"(name: demo
params:
  lrs: {type: string, default: '[0.1]'}
steps:
  train:
    foreach:
      matrix: {lr: "${{ fromJSON(params.lrs) }}", depth: [3, 5]}
      include: [{depth: 3, extra: x}]
      exclude: [{depth: 5}]
    fail_fast: true
    max_parallel: 2
    run: echo ${{ item.lr }} ${{ item.depth }}
)");
  const auto& s = p.steps[0];
  ASSERT_TRUE(s.matrix);
  ASSERT_EQ(s.matrix->axes.size(), 2u);
  EXPECT_EQ(s.matrix->axes[0].key, "lr");
  EXPECT_TRUE(s.matrix->axes[0].expr);
  EXPECT_EQ(s.matrix->axes[1].values.size(), 2u);
  EXPECT_EQ(s.matrix->include.size(), 1u);
  EXPECT_EQ(s.matrix->exclude.size(), 1u);
  EXPECT_TRUE(s.fail_fast);
  EXPECT_EQ(s.max_parallel, 2);
}

TEST(SpecLoaderTest, AMatrixKeyThatIsNotAListIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    foreach: {matrix: {lr: 0.1}}\n    run: x\n"),
            "p.yaml:4:28: step 'a' foreach: matrix lr must be a list or one ${{ }} expression that gives a list");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    foreach: {matrix: {lr: [1]}, include: [3]}\n    run: x\n"),
            "p.yaml:4:44: step 'a' foreach: each entry of include must be a mapping of matrix keys to values");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    foreach: {matrix: {lr: [1]}, incude: [3]}\n    run: x\n"),
            "p.yaml:4:34: unknown key 'incude' in step 'a' foreach (did you mean 'include'?)");
}

TEST(SpecLoaderTest, AMatrixExpressionReadingAnUnknownParamIsAnError) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    foreach: {matrix: {lr: '${{ params.lrs }}'}}\n    run: x\n"),
            "p.yaml:4:33: unknown param 'lrs'");
}

namespace {

// A matrix of `n` combinations: n = a * 10 with a values of key a and 10 of b.
std::string MatrixOf(int a) {
  std::string values;
  for (int i = 0; i < a; ++i) {
    if (i) values += ", ";
    values += std::to_string(i);
  }
  return "name: demo\nsteps:\n  s:\n    foreach:\n      matrix:\n        a: [" + values +
         "]\n        b: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n    run: x\n";
}

}  // namespace

TEST(SpecLoaderTest, AMatrixOfTenThousandCombinationsLoadsAndOneMoreIsAnError) {
  Pipeline p = Load(MatrixOf(1000));
  EXPECT_EQ(p.steps[0].matrix->axes[0].values.size(), 1000u);
  std::string yaml = MatrixOf(1000);
  yaml.replace(yaml.find("    run: x"), 0, "      include: [{a: x, b: y}]\n");
  EXPECT_EQ(Error(yaml), "p.yaml:5:7: step 's' foreach: the matrix makes 10001 or more combinations, over the limit of 10000");
}

TEST(SpecLoaderTest, AForeachListOfTenThousandItemsLoadsAndOneMoreIsAnError) {
  std::string items;
  for (int i = 0; i < 10000; ++i) {
    if (i) items += ',';
    items += std::to_string(i);
  }
  Load("name: demo\nsteps:\n  s:\n    foreach: [" + items + "]\n    run: x\n");
  EXPECT_EQ(Error("name: demo\nsteps:\n  s:\n    foreach: [" + items + ",x]\n    run: x\n"),
            "p.yaml:4:" + std::to_string(15 + items.size() + 1) + ": foreach has more than 10000 items (the limit)");
}

TEST(SpecLoaderTest, FailFastAndMaxParallelNeedForeach) {
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    max_parallel: 2\n    run: x\n"),
            "p.yaml:4:5: step 'a': max_parallel is for a step with foreach");
  EXPECT_EQ(Error("name: demo\nsteps:\n  a:\n    foreach: [1]\n    max_parallel: 0\n    run: x\n"),
            "p.yaml:5:19: max_parallel must be a whole number from 1 to 10000, not '0'");
}
