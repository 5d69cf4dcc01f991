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
