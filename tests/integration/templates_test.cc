// Templates end to end: the `sluice` binary runs a spec whose calls expand
// to CALL.STEP steps, with real processes and a real store.
#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"

using namespace sluice::testing;
using nlohmann::json;

namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

size_t IndexOf(const std::vector<std::string>& lines, const std::string& line) {
  auto it = std::find(lines.begin(), lines.end(), line);
  EXPECT_NE(it, lines.end()) << line;
  return it - lines.begin();
}

}  // namespace

// Argo's dag-diamond-steps (A, then B and C, then D, each an echo of a
// message) as a template, called twice: the second call needs the first and
// reads its output.
TEST(TemplatesTest, ArgosDiamondAsATemplateCalledTwiceRunsBothDiamondsInOrder) {
  Sandbox box;
  box.Write("p.yaml", R"(name: diamonds
templates:
  diamond:
    params:
      message: {type: string}
    steps:
      A:
        run: echo "${{ params.message }}-A" >> order.txt
      B:
        needs: A
        run: echo "${{ params.message }}-B" >> order.txt
      C:
        needs: A
        run: echo "${{ params.message }}-C" >> order.txt
      D:
        needs: [B, C]
        run: echo "${{ params.message }}-D" >> order.txt && echo "last=${{ params.message }}-D" >> "$SLUICE_OUTPUT"
        outputs: {last: value}
    outputs:
      last: ${{ steps.D.outputs.last }}
steps:
  first:
    call: diamond
    with: {message: one}
  second:
    call: diamond
    needs: first
    with: {message: "${{ steps.first.outputs.last }}"}
  report:
    needs: second
    run: echo "${{ steps.second.outputs.last }}" > report.txt
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  auto lines = Lines(box.Read("order.txt"));
  ASSERT_EQ(lines.size(), 8u) << box.Read("order.txt");
  EXPECT_EQ(lines[0], "one-A");
  EXPECT_LT(IndexOf(lines, "one-B"), IndexOf(lines, "one-D"));
  EXPECT_LT(IndexOf(lines, "one-C"), IndexOf(lines, "one-D"));
  EXPECT_EQ(lines[4], "one-D-A");  // the second diamond starts after the first one's last step
  EXPECT_EQ(lines[7], "one-D-D");
  EXPECT_EQ(box.Read("report.txt"), "one-D-D\n");
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "first.A")["state"], "succeeded");
  EXPECT_EQ(StepOf(run, "second.D")["outputs"]["last"], "one-D-D");
  EXPECT_EQ(box.Sluice({"logs", "1", "second.D"}).code, 0);
}

TEST(TemplatesTest, ATemplateFromAnotherFileRunsAndItsParamReachesTheShellAsAValue) {
  Sandbox box;
  box.Write("templates/say.yaml", R"(params:
  msg: {type: string}
steps:
  say:
    run: echo ${{ params.msg }} > said.txt
)");
  box.Write("p.yaml", R"yaml(name: say
params:
  msg: {type: string, default: "$(touch pwned)"}
templates:
  say: {uses: ./templates/say.yaml}
steps:
  hello:
    call: say
    with: {msg: "${{ params.msg }}"}
)yaml");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(box.Read("said.txt"), "$(touch pwned)\n");
  EXPECT_FALSE(box.Exists("pwned"));
  EXPECT_EQ(StepOf(ShowRun(box, "1"), "hello.say")["state"], "succeeded");
}

TEST(TemplatesTest, AStepOfATemplateIsCachedOnTheNextRunWithTheSameValues) {
  Sandbox box;
  box.Write("p.yaml", R"(name: cached
params:
  n: {type: int, default: 1}
templates:
  work:
    params:
      n: {type: int}
    steps:
      fit:
        run: echo "${{ params.n }}" >> ran.txt
        cache: true
steps:
  w:
    call: work
    with: {n: "${{ params.n }}"}
)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "w.fit")["state"], "cached");
  EXPECT_EQ(box.Read("ran.txt"), "1\n");
  ASSERT_EQ(box.Sluice({"run", "p.yaml", "-p", "n=2"}).code, 0);  // another value: another fingerprint
  EXPECT_EQ(StepOf(ShowRun(box, "3"), "w.fit")["state"], "succeeded");
  EXPECT_EQ(box.Read("ran.txt"), "1\n2\n");
}

TEST(TemplatesTest, AWithValueKnownOnlyAtRunTimeIsCheckedAgainstTheTemplateParamWhenTheStepRuns) {
  Sandbox box;
  box.Write("p.yaml", R"(name: typed
templates:
  fit:
    params:
      epochs: {type: int, max: 10}
    steps:
      go:
        run: echo "${{ params.epochs }}" > epochs.txt
steps:
  count:
    run: echo "n=$N" >> "$SLUICE_OUTPUT"
    env: {N: "${{ env.EPOCHS_FOR_TEST }}"}
    outputs: {n: value}
  train:
    call: fit
    needs: count
    with: {epochs: "${{ steps.count.outputs.n }}"}
)");
  ASSERT_EQ(setenv("EPOCHS_FOR_TEST", "7", 1), 0);
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(box.Read("epochs.txt"), "7\n");
  ASSERT_EQ(setenv("EPOCHS_FOR_TEST", "11", 1), 0);
  EXPECT_NE(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box, "2"), "train.go")["reason"],
            "run: ${{ params.epochs }}: call 'train' of template 'fit': param 'epochs': 11 is above the maximum 10 (the value of with: epochs)");
  ASSERT_EQ(setenv("EPOCHS_FOR_TEST", "many", 1), 0);
  EXPECT_NE(box.Sluice({"run", "p.yaml"}).code, 0);
  EXPECT_EQ(StepOf(ShowRun(box, "3"), "train.go")["reason"],
            "run: ${{ params.epochs }}: call 'train' of template 'fit': param 'epochs': 'many' is not an int (the value of with: epochs)");
  unsetenv("EPOCHS_FOR_TEST");
}

// A foreach of a template (airflow#25032's mapped task group): extract ->
// train -> eval once per data set, each item's chain reading its own
// values, and the call's output a list in item order.
TEST(TemplatesTest, AForeachOfATemplateRunsOneChainPerItemAndFansInInItemOrder) {
  Sandbox box;
  box.Write("p.yaml", R"(name: chains
templates:
  per-set:
    params:
      set: {type: string}
    steps:
      extract:
        run: echo "rows=${{ params.set }}-rows" >> "$SLUICE_OUTPUT"
        outputs: {rows: value}
      train:
        needs: extract
        run: echo "model=${{ steps.extract.outputs.rows }}-model" >> "$SLUICE_OUTPUT"
        outputs: {model: value}
      eval:
        needs: train
        run: echo "score=${{ steps.train.outputs.model }}-scored" >> "$SLUICE_OUTPUT"
        outputs: {score: value}
    outputs:
      score: ${{ steps.eval.outputs.score }}
steps:
  sets:
    call: per-set
    foreach: [a, b, c]
    with: {set: "${{ item }}"}
  report:
    needs: sets
    run: echo "${{ join(steps.sets.outputs.score, ',') }}" > report.txt
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(box.Read("report.txt"), "a-rows-model-scored,b-rows-model-scored,c-rows-model-scored\n");
  json run = ShowRun(box, "1");
  json train = StepOf(run, "sets.train");
  ASSERT_EQ(train["items"].size(), 3u);
  EXPECT_EQ(train["items"][1]["outputs"]["model"], "b-rows-model");
  EXPECT_EQ(StepOf(run, "sets.eval")["state"], "succeeded");
}

// Item 1's first step waits for item 0's last one: it can only finish if
// item 0's chain goes on without waiting for every item's first step.
TEST(TemplatesTest, AnItemsChainGoesOnWhileAnotherItemsFirstStepStillRuns) {
  Sandbox box;
  box.Write("p.yaml", R"(name: pipelined
templates:
  t:
    params:
      i: {type: string}
    steps:
      extract:
        run: 'if [ "$I" = 1 ]; then for n in $(seq 200); do [ -f done-0 ] && exit 0; sleep 0.05; done; exit 1; fi'
        env: {I: "${{ params.i }}"}
      train:
        needs: extract
        run: touch "done-$I"
        env: {I: "${{ params.i }}"}
steps:
  sets:
    call: t
    foreach: ["0", "1"]
    with: {i: "${{ item }}"}
)");
  Output o = box.Sluice({"run", "p.yaml", "--jobs", "2"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(box.Exists("done-1"));
}

// Item b fails in its first step: its own chain stops there, a's and c's
// go on; the call (and so the run) fails and what needs it does not run.
// Retrying the run runs b's chain alone.
TEST(TemplatesTest, AFailedItemStopsOnlyItsOwnChainAndARetryRunsThatChainAlone) {
  Sandbox box;
  box.Write("p.yaml", R"(name: isolated
templates:
  t:
    params:
      i: {type: string}
    steps:
      fit:
        run: '[ "$I" != b ] || [ -f fixed ]'
        env: {I: "${{ params.i }}"}
      score:
        needs: fit
        run: echo "$I" >> scored.txt
        env: {I: "${{ params.i }}"}
steps:
  each:
    call: t
    foreach: [a, b, c]
    with: {i: "${{ item }}"}
  after:
    needs: each
    run: touch after
)");
  Output o = box.Sluice({"run", "p.yaml"});
  EXPECT_EQ(o.code, 1) << o.err;
  std::vector<std::string> scored = Lines(box.Read("scored.txt"));
  std::sort(scored.begin(), scored.end());
  EXPECT_EQ(scored, (std::vector<std::string>{"a", "c"}));
  EXPECT_FALSE(box.Exists("after"));
  json run = ShowRun(box, "1");
  EXPECT_EQ(StepOf(run, "each.fit")["state"], "failed");
  json score = StepOf(run, "each.score");
  EXPECT_EQ(score["items"][1]["state"], "skipped");
  EXPECT_EQ(score["items"][1]["reason"], "a needed step did not succeed");
  EXPECT_EQ(score["items"][2]["state"], "succeeded");

  box.Write("fixed", "");
  Output retry = box.Sluice({"retry", "1"});
  ASSERT_EQ(retry.code, 0) << retry.out << retry.err;
  scored = Lines(box.Read("scored.txt"));
  std::sort(scored.begin(), scored.end());
  EXPECT_EQ(scored, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(box.Exists("after"));
}

// The call's list may come from a step upstream, known only at run time.
TEST(TemplatesTest, AForeachOfATemplateOverAnUpstreamOutputMakesItsItemsWhenTheRunGetsThere) {
  Sandbox box;
  box.Write("p.yaml", R"(name: dynamic
templates:
  t:
    params:
      name: {type: string}
    steps:
      one:
        run: echo "v=${{ params.name }}!" >> "$SLUICE_OUTPUT"
        outputs: {v: value}
      two:
        needs: one
        run: echo "${{ steps.one.outputs.v }}" >> made.txt
steps:
  list:
    run: echo 'names=["x", "y"]' >> "$SLUICE_OUTPUT"
    outputs: {names: value}
  each:
    call: t
    needs: list
    foreach: ${{ fromJSON(steps.list.outputs.names) }}
    with: {name: "${{ item }}"}
)");
  Output o = box.Sluice({"run", "p.yaml"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<std::string> made = Lines(box.Read("made.txt"));
  std::sort(made.begin(), made.end());
  EXPECT_EQ(made, (std::vector<std::string>{"x!", "y!"}));
}

// The first step of every chain finished; item b of the second failed. A
// retry runs item b of the second step alone, and it still reads item b's
// output of the first (kept from the run it resumes).
TEST(TemplatesTest, ARetriedItemReadsItsOwnItemOfAStepThatFinishedBeforeTheRetry) {
  Sandbox box;
  box.Write("p.yaml", R"(name: kept
templates:
  t:
    params:
      i: {type: string}
    steps:
      fit:
        run: echo "m=model-$I" >> "$SLUICE_OUTPUT" && echo "$I" >> fitted.txt
        env: {I: "${{ params.i }}"}
        outputs: {m: value}
      score:
        needs: fit
        run: '[ "$M" != model-b ] || [ -f fixed ] && echo "$M" >> scored.txt'
        env: {M: "${{ steps.fit.outputs.m }}"}
steps:
  each:
    call: t
    foreach: [a, b]
    with: {i: "${{ item }}"}
)");
  EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  box.Write("fixed", "");
  Output retry = box.Sluice({"retry", "1"});
  ASSERT_EQ(retry.code, 0) << retry.out << retry.err;
  std::vector<std::string> fitted = Lines(box.Read("fitted.txt"));  // each once: not again on the retry
  std::sort(fitted.begin(), fitted.end());
  EXPECT_EQ(fitted, (std::vector<std::string>{"a", "b"}));
  std::vector<std::string> scored = Lines(box.Read("scored.txt"));
  std::sort(scored.begin(), scored.end());
  EXPECT_EQ(scored, (std::vector<std::string>{"model-a", "model-b"}));
}

// A finally step that calls a template hands it the run's state.
TEST(TemplatesTest, AFinallyCallPassesTheRunsStateToItsTemplate) {
  Sandbox box;
  box.Write("p.yaml", R"(name: notified
templates:
  notify:
    params:
      state: {type: string}
    steps:
      send:
        run: echo "$S" > notified.txt
        env: {S: "${{ params.state }}"}
steps:
  a:
    run: "false"
finally:
  n:
    call: notify
    if: ${{ run.state == 'failed' }}
    with: {state: "${{ run.state }}"}
)");
  EXPECT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  EXPECT_EQ(box.Read("notified.txt"), "failed\n");
}

// --reload compares a call's steps by the call and the templates: an
// unchanged call does not run again, one whose template changed does.
TEST(TemplatesTest, RetryReloadRunsAgainOnlyTheCallsWhoseCallOrTemplateChanged) {
  Sandbox box;
  const std::string head = R"(name: reloaded
templates:
  t:
    params:
      n: {type: string}
    steps:
      go:
        run: echo "$N" >> ran.txt
        env: {N: "${{ params.n }}"}
)";
  box.Write("p.yaml", head + R"(steps:
  one: {call: t, with: {n: one}}
  two: {call: t, with: {n: two}}
  broken: {run: "false"}
)");
  ASSERT_EQ(box.Sluice({"run", "p.yaml"}).code, 1);
  box.Write("p.yaml", head + R"(steps:
  one: {call: t, with: {n: one}}
  two: {call: t, with: {n: two-changed}}
  broken: {run: "true"}
)");
  Output o = box.Sluice({"retry", "1", "--reload"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("(changed: two.go, broken)"), std::string::npos) << o.out;
  std::vector<std::string> ran = Lines(box.Read("ran.txt"));
  std::sort(ran.begin(), ran.end());
  EXPECT_EQ(ran, (std::vector<std::string>{"one", "two", "two-changed"}));  // one ran once
}
