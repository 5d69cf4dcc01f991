// Templates (specs/pipeline.md, "Templates"): what a call expands to, and
// every error, word for word, with its FILE:LINE:COL.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "spec/pipeline.h"
#include "../common/load_spec.h"

using sluice::spec::Expr;
using sluice::spec::ParsePipeline;
using sluice::spec::Pipeline;
using sluice::spec::Step;

namespace {

using sluice::testing::load_spec::Error;
using sluice::testing::load_spec::Load;

std::vector<std::string> Ids(const Pipeline& p) {
  std::vector<std::string> ids;
  for (const Step& s : p.steps) ids.push_back(s.id);
  return ids;
}

const Step& StepOf(const Pipeline& p, const std::string& id) {
  static const Step none;
  const Step* s = p.FindStep(id);
  EXPECT_NE(s, nullptr) << id;
  return s ? *s : none;
}

// The one expression of a step's shell line.
const Expr& RunExpr(const Pipeline& p, const std::string& id) {
  for (const auto& part : StepOf(p, id).run.at(0).parts)
    if (part.expr) return *part.expr;
  static const Expr none;
  ADD_FAILURE() << "no expression in " << id;
  return none;
}

// A scratch folder for specs with template files.
class Folder {
 public:
  Folder() : dir_(std::filesystem::temp_directory_path() / ("sluice-templates-" + std::to_string(getpid()))) {
    std::filesystem::create_directories(dir_ / "templates");
  }
  ~Folder() { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }

 private:
  std::filesystem::path dir_;
};

const char* kTrainEval = R"(templates:
  train-eval:
    params:
      lr: {type: float, default: 0.1}
      data: {type: string}
    steps:
      fit:
        run: ./fit.sh "${{ params.data }}" "${{ params.lr }}"
        outputs: {model: file}
      eval:
        needs: fit
        run: ./eval.sh "${{ steps.fit.outputs.model }}"
    outputs:
      model: ${{ steps.fit.outputs.model }}
)";

}  // namespace

TEST(SpecTemplatesTest, ACallAddsTheTemplatesStepsAsCallDotStepInPlaceOfTheCall) {
  Pipeline p = Load(std::string("name: demo\n") + kTrainEval + R"(steps:
  prep: {run: ./prep.sh}
  train:
    call: train-eval
    needs: prep
    with: {data: x.csv}
  report:
    needs: train
    run: echo done
)");
  EXPECT_EQ(Ids(p), (std::vector<std::string>{"prep", "train.fit", "train.eval", "report"}));
  EXPECT_EQ(StepOf(p, "train.fit").needs, std::vector<std::string>{"prep"});
  EXPECT_EQ(StepOf(p, "train.eval").needs, std::vector<std::string>{"train.fit"});
  EXPECT_EQ(StepOf(p, "report").needs, std::vector<std::string>{"train.eval"});
}

TEST(SpecTemplatesTest, AStepThatNeedsACallNeedsEveryLastStepOfIt) {
  Pipeline p = Load(R"(name: demo
templates:
  fan:
    steps:
      a: {run: "true"}
      b: {run: "true"}
      c: {needs: a, run: "true"}
steps:
  f: {call: fan}
  join: {needs: f, run: "true"}
)");
  EXPECT_EQ(StepOf(p, "f.a").needs, std::vector<std::string>{});
  EXPECT_EQ(StepOf(p, "join").needs, (std::vector<std::string>{"f.b", "f.c"}));
}

// A literal was checked when the spec loaded; an expression is checked when the step runs.
TEST(SpecTemplatesTest, TemplateParamsBecomeTheCallsValuesInsideTheTemplate) {
  Pipeline p = Load(std::string("name: demo\nparams:\n  rate: {type: float, default: 0.5}\n") + kTrainEval + R"(steps:
  a:
    call: train-eval
    with: {data: a.csv, lr: "${{ params.rate }}"}
  b:
    call: train-eval
    with: {data: b.csv}
)");
  auto values = [&](const std::string& id) {
    std::vector<std::string> out;
    for (const auto& part : StepOf(p, id).run.at(0).parts)
      if (!part.expr) continue;
      else if (part.expr->kind == Expr::Kind::kLiteral) out.push_back(part.expr->literal.Render());
      else if (part.expr->kind == Expr::Kind::kCall && part.expr->op == sluice::spec::kTemplateParamCheck)
        out.push_back("checked " + part.expr->args[0]->path[0] + "." + part.expr->args[0]->path[1]);
      else out.push_back("unchecked " + part.expr->path[0]);
    return out;
  };
  EXPECT_EQ(values("a.fit"), (std::vector<std::string>{"a.csv", "checked params.rate"}));
  EXPECT_EQ(values("b.fit"), (std::vector<std::string>{"b.csv", "0.1"}));
  // A sibling's output is the sibling of this call.
  EXPECT_EQ(RunExpr(p, "b.eval").path, (std::vector<std::string>{"steps", "b.fit", "outputs", "model"}));
}

TEST(SpecTemplatesTest, ReadingACallsOutputReadsTheStepItsTemplateOutputNames) {
  Pipeline p = Load(std::string("name: demo\n") + kTrainEval + R"(steps:
  train: {call: train-eval, with: {data: x}}
  report:
    needs: train
    run: echo ${{ steps.train.outputs.model }}
)");
  EXPECT_EQ(RunExpr(p, "report").path, (std::vector<std::string>{"steps", "train.fit", "outputs", "model"}));
  ASSERT_FALSE(p.output_refs.empty());
  EXPECT_EQ(p.output_refs.back().producer, "train.fit");
}

TEST(SpecTemplatesTest, AStepOutputTheTemplateDoesNotDeclareIsAnErrorWithDidYouMean) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + R"(steps:
  train: {call: train-eval, with: {data: x}}
  report:
    needs: train
    run: echo ${{ steps.train.outputs.modle }}
)"),
            "p.yaml:20:19: template 'train-eval' (called as 'train') has no output 'modle' (did you mean 'model'?) "
            "(it declares model)");
}

TEST(SpecTemplatesTest, AnUnknownTemplateIsAnErrorAtTheCallWithDidYouMean) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + "steps:\n  train: {call: train-evl}\n"),
            "p.yaml:17:17: call 'train' calls unknown template 'train-evl' (did you mean 'train-eval'?)");
}

TEST(SpecTemplatesTest, AnUnknownWithParamIsAnErrorWithDidYouMean) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + "steps:\n  train: {call: train-eval, with: {data: x, rl: 1}}\n"),
            "p.yaml:17:45: template 'train-eval' has no param 'rl' (did you mean 'lr'?)");
}

TEST(SpecTemplatesTest, AMissingRequiredParamIsAnErrorAtTheCall) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + "steps:\n  train: {call: train-eval}\n"),
            "p.yaml:17:17: call 'train' of template 'train-eval' is missing required param 'data' (give it in with:)");
}

TEST(SpecTemplatesTest, ALiteralWithValueIsCheckedAgainstTheParamsType) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + "steps:\n  train: {call: train-eval, with: {data: x, lr: fast}}\n"),
            "p.yaml:17:49: template 'train-eval': param 'lr': 'fast' is not a float");
}

TEST(SpecTemplatesTest, APipelineParamOfAnotherTypeIsAnErrorAtLoad) {
  EXPECT_EQ(Error(std::string("name: demo\nparams:\n  mode: {type: string, default: a}\n") + kTrainEval +
                  "steps:\n  train: {call: train-eval, with: {data: x, lr: \"${{ params.mode }}\"}}\n"),
            "p.yaml:19:49: with lr: params.mode is string, but template param 'lr' is float");
}

TEST(SpecTemplatesTest, AnUnknownParamInsideATemplateNamesTheTemplate) {
  EXPECT_EQ(Error(R"(name: demo
params:
  rate: {type: float, default: 1}
templates:
  t:
    params: {rates: {type: float, default: 1}}
    steps:
      a: {run: "echo ${{ params.rate }}"}
steps:
  x: {call: t}
)"),
            "p.yaml:8:26: template 't' has no param 'rate' (did you mean 'rates'?)");
}

TEST(SpecTemplatesTest, AnInnerStepsUnknownNeedIsAnErrorWithTheTemplatesStepsAsSuggestions) {
  EXPECT_EQ(Error("name: demo\ntemplates:\n  t:\n    steps:\n      fit: {run: x}\n      eval: {needs: fitt, run: y}\nsteps:\n  a: {call: t}\n"),
            "p.yaml:6:21: step 'eval' needs unknown step 'fitt' (did you mean 'fit'?)");
}

namespace {

// A chain of `depth` templates, t1 calling t2 ... the last one holding a step.
std::string Chain(int depth) {
  std::string yaml = "name: demo\ntemplates:\n";
  for (int i = 1; i < depth; ++i)
    yaml += "  t" + std::to_string(i) + ":\n    steps:\n      c: {call: t" + std::to_string(i + 1) + "}\n";
  yaml += "  t" + std::to_string(depth) + ":\n    steps:\n      leaf: {run: \"true\"}\n";
  return yaml + "steps:\n  top: {call: t1}\n";
}

}  // namespace

TEST(SpecTemplatesTest, CallsNestedToTheLimitLoadAndOneMoreIsAnErrorShowingTheChain) {
  Pipeline p = Load(Chain(8));
  EXPECT_EQ(Ids(p), std::vector<std::string>{"top.c.c.c.c.c.c.c.leaf"});
  EXPECT_EQ(Error(Chain(9)),
            "p.yaml:26:17: call 'c': template calls nest deeper than 8 levels (the limit): "
            "t1 -> t2 -> t3 -> t4 -> t5 -> t6 -> t7 -> t8 -> t9");
}

TEST(SpecTemplatesTest, ATemplateThatCallsItselfThroughAnotherIsAnErrorAtTheCall) {
  EXPECT_EQ(Error(R"(name: demo
templates:
  a:
    steps: {x: {call: b}}
  b:
    steps: {y: {call: a}}
steps:
  top: {call: a}
)"),
            "p.yaml:6:23: call 'y': template 'a' calls itself: a -> b -> a");
}

TEST(SpecTemplatesTest, TheCallsIfJoinsTheIfOfEveryStepOfTheTemplate) {
  Pipeline p = Load(R"(name: demo
params:
  go: {type: bool, default: true}
templates:
  t:
    steps:
      a: {run: "true"}
      b: {needs: a, if: always(), run: "true"}
steps:
  x: {call: t, if: params.go}
)");
  EXPECT_EQ(StepOf(p, "x.a").if_condition->source, "params.go");
  EXPECT_EQ(StepOf(p, "x.b").if_condition->source, "(params.go) && (always())");
  EXPECT_TRUE(StepOf(p, "x.b").if_checks_status);
}

TEST(SpecTemplatesTest, ATemplateParamInAShellLineIsCheckedLikeAPipelineParam) {
  std::string as_param = Error("name: demo\nparams: {msg: {type: string, default: hi}}\nsteps:\n  a:\n    run: sh -c \"echo ${{ params.msg }}\"\n");
  std::string in_template = Error(
      "name: demo\ntemplates:\n  t:\n    params: {msg: {type: string, default: hi}}\n    steps:\n      a:\n        "
      "run: sh -c \"echo ${{ params.msg }}\"\nsteps:\n  x: {call: t}\n");
  // The same refusal, at the template's line.
  ASSERT_EQ(as_param.substr(0, 12), "p.yaml:5:22:");
  EXPECT_EQ(in_template, "p.yaml:7:26:" + as_param.substr(12));
}

TEST(SpecTemplatesTest, ATemplateFileIsReadFromTheSpecsFolderAndItsErrorsPointIntoIt) {
  Folder f;
  std::string tfile = f.Write("templates/train.yaml", R"(params:
  lr: {type: float, default: 0.1}
steps:
  fit:
    run: ./fit.sh "${{ params.lr }}"
    outputs: {model: file}
  eval: {needs: fit, run: "./eval.sh ${{ steps.fit.outputs.modle }}"}
outputs:
  model: ${{ steps.fit.outputs.model }}
)");
  std::string spec = f.Write("p.yaml", R"(name: demo
templates:
  train: {uses: ./templates/train.yaml}
steps:
  a: {call: train, with: {lr: 0.2}}
)");
  auto p = sluice::spec::LoadPipeline(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), tfile + ":7:42: step 'a.eval' reads steps.a.fit.outputs.modle, which step 'a.fit' does not "
                                          "declare (did you mean 'model'?) (it declares model)");
  f.Write("templates/train.yaml", "params:\n  lr: {type: float}\nsteps:\n  fit: {run: x, retyr: 2}\n");
  p = sluice::spec::LoadPipeline(spec);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), tfile + ":4:17: unknown key 'retyr' in step 'fit' (did you mean 'retry'?)");
}

TEST(SpecTemplatesTest, ATemplateFileOutsideTheSpecsFolderIsRefused) {
  EXPECT_EQ(Error("name: demo\ntemplates:\n  t: {uses: ../t.yaml}\nsteps:\n  a: {call: t}\n"),
            "p.yaml:3:13: template 't': uses '../t.yaml' is outside the spec's folder (a template file is a path relative "
            "to the spec's folder, inside it)");
}

TEST(SpecTemplatesTest, ASpecSentToTheApiReadsNoTemplateFile) {
  auto p = ParsePipeline("/etc/p.yaml", "name: demo\ntemplates:\n  t: {uses: passwd}\nsteps:\n  a: {call: t}\n",
                         /*read_template_files=*/false);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "/etc/p.yaml:3:13: template 't': uses: 'passwd' is not read for a spec sent to the API; validate it with "
            "sluice validate");
}

TEST(SpecTemplatesTest, AWithValueThatReadsAStepTheCallDoesNotNeedIsAnError) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + R"(steps:
  prep:
    run: ./prep.sh
    outputs: {data: file}
  train:
    call: train-eval
    with: {data: "${{ steps.prep.outputs.data }}"}
)"),
            "p.yaml:22:23: call 'train' reads steps.prep but does not need it (add 'prep' to its needs)");
}

TEST(SpecTemplatesTest, ACallHasNoStateOfItsOwn) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + R"(steps:
  train: {call: train-eval, with: {data: x}}
  after: {needs: train, if: "steps.train.state == 'succeeded'", run: "true"}
)"),
            "p.yaml:18:30: 'train' calls template 'train-eval'; read its outputs: steps.train.outputs.<name> (it declares model)");
}

TEST(SpecTemplatesTest, AStepKeyOnACallIsAnError) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + "steps:\n  train: {call: train-eval, with: {data: x}, retry: 2}\n"),
            "p.yaml:17:46: unknown key 'retry' in call 'train'");
}

TEST(SpecTemplatesTest, APluginStepInsideATemplateCannotUseExpressionsInWith) {
  EXPECT_EQ(Error(R"(name: demo
templates:
  t:
    params: {n: {type: int, default: 1}}
    steps:
      p: {uses: demo/echo, with: {n: "${{ params.n }}"}}
steps:
  x: {call: t}
)"),
            "p.yaml:6:38: step 'p': a plugin step inside a template cannot use ${{ }} in with: yet; pass the value to a run step");
}

TEST(SpecTemplatesTest, ANestedCallPassesParamsDownAndItsOutputUp) {
  Pipeline p = Load(R"(name: demo
templates:
  inner:
    params: {x: {type: int}}
    steps:
      work:
        run: echo "${{ params.x }}" >> "$SLUICE_OUTPUT"
        outputs: {o: value}
    outputs: {o: "${{ steps.work.outputs.o }}"}
  outer:
    params: {lr: {type: int, default: 4}}
    steps:
      sub: {call: inner, with: {x: "${{ params.lr }}"}}
      after: {needs: sub, run: "echo ${{ steps.sub.outputs.o }}"}
    outputs: {m: "${{ steps.sub.outputs.o }}"}
steps:
  top: {call: outer}
  read: {needs: top, run: "echo ${{ steps.top.outputs.m }}"}
)");
  EXPECT_EQ(Ids(p), (std::vector<std::string>{"top.sub.work", "top.after", "read"}));
  const Expr& x = RunExpr(p, "top.sub.work");
  ASSERT_EQ(x.op, sluice::spec::kTemplateParamCheck);
  EXPECT_EQ(x.args[0]->literal.Render(), "4");
  EXPECT_EQ(RunExpr(p, "top.after").path, (std::vector<std::string>{"steps", "top.sub.work", "outputs", "o"}));
  EXPECT_EQ(RunExpr(p, "read").path, (std::vector<std::string>{"steps", "top.sub.work", "outputs", "o"}));
  EXPECT_EQ(StepOf(p, "read").needs, std::vector<std::string>{"top.after"});
}

TEST(SpecTemplatesTest, AFinallyStepMayCallATemplateAndTheCallsStepsAreFinallySteps) {
  Pipeline p = Load(
      "name: demo\ntemplates:\n  notify: {steps: {send: {run: x}, log: {needs: send, run: x}}}\n"
      "steps:\n  a: {run: x}\nfinally:\n  n: {call: notify}\n");
  ASSERT_TRUE(p.FindStep("n.send") && p.FindStep("n.log"));
  EXPECT_TRUE(p.FindStep("n.send")->is_finally);
  EXPECT_TRUE(p.FindStep("n.log")->is_finally);
  EXPECT_FALSE(p.FindStep("a")->is_finally);
}

TEST(SpecTemplatesTest, ACallWithForeachRunsEveryStepOfItsTemplateOncePerItem) {
  Pipeline p = Load(std::string("name: demo\n") + kTrainEval + R"(steps:
  train:
    call: train-eval
    foreach: [a.csv, b.csv]
    with: {data: "${{ item }}"}
  report:
    needs: train
    run: echo done
)");
  const Step& fit = StepOf(p, "train.fit");
  const Step& eval = StepOf(p, "train.eval");
  EXPECT_EQ(fit.chain, "train");
  EXPECT_EQ(eval.chain, "train");
  EXPECT_TRUE(fit.has_foreach);
  EXPECT_TRUE(eval.has_foreach);
  ASSERT_EQ(fit.foreach_items.size(), 2u);  // the first step holds the call's items
  EXPECT_EQ(fit.foreach_items[1].as_string(), "b.csv");
  EXPECT_TRUE(fit.item_needs.empty());
  EXPECT_EQ(eval.item_needs, std::vector<std::string>{"train.fit"});  // item k waits for fit's item k
  EXPECT_TRUE(eval.foreach_items.empty());
  EXPECT_TRUE(StepOf(p, "report").chain.empty());
}

TEST(SpecTemplatesTest, ACallsForeachReadsTheCallersNamesNotTheTemplates) {
  Pipeline p = Load(std::string("name: demo\nparams:\n  sets: {type: string, default: '[\"a\"]'}\n") + kTrainEval + R"(steps:
  train:
    call: train-eval
    foreach: ${{ fromJSON(params.sets) }}
    with: {data: "${{ item }}"}
)");
  const Step& fit = StepOf(p, "train.fit");
  ASSERT_TRUE(fit.foreach_expr.has_value());
  EXPECT_EQ(fit.foreach_expr->source, "${{ fromJSON(params.sets) }}");
}

TEST(SpecTemplatesTest, ItemInTheWithOfACallWithoutForeachIsAnError) {
  EXPECT_EQ(Error(std::string("name: demo\n") + kTrainEval + "steps:\n  train: {call: train-eval, with: {data: \"${{ item }}\"}}\n"),
            "p.yaml:17:47: 'item' is only defined inside a step with foreach");
}

TEST(SpecTemplatesTest, AStepWithItsOwnForeachInsideACallWithForeachIsAnError) {
  EXPECT_EQ(Error(R"(name: demo
templates:
  t:
    steps:
      a: {run: "true", foreach: [1, 2]}
steps:
  x: {call: t, foreach: [p, q]}
)"),
            "p.yaml:5:7: step 'a' has its own foreach, but call 'x' runs its template once per item; give the call one list "
            "(a matrix of both)");
}

TEST(SpecTemplatesTest, ACallWithForeachInsideACallWithForeachIsAnError) {
  EXPECT_EQ(Error(R"(name: demo
templates:
  inner:
    steps:
      a: {run: "true"}
  outer:
    steps:
      i: {call: inner, foreach: [1, 2]}
steps:
  x: {call: outer, foreach: [p, q]}
)"),
            "p.yaml:8:33: call 'i' has foreach inside call 'x', which has a foreach too; give the outer call one list (a "
            "matrix of both)");
}

TEST(SpecTemplatesTest, AnApprovalInsideACallWithForeachIsAnError) {
  EXPECT_EQ(Error(R"(name: demo
templates:
  t:
    steps:
      ok: {uses: sluice/approval}
steps:
  x: {call: t, foreach: [p, q]}
)"),
            "p.yaml:5:7: step 'ok': sluice/approval asks once per step, but call 'x' runs its template once per item");
}

TEST(SpecTemplatesTest, AFinallyCallsWithAndIfReadTheRunAndStepsAsAFinallyStepDoes) {
  Pipeline p = Load(R"(name: demo
templates:
  notify:
    params: {state: {type: string}, out: {type: string}}
    steps: {send: {run: "echo ${{ params.state }} ${{ params.out }}"}}
steps:
  a: {run: x, outputs: {o: value}}
finally:
  n:
    call: notify
    if: ${{ run.state == 'failed' }}
    with: {state: "${{ run.state }}", out: "${{ steps.a.outputs.o }}"}
)");
  ASSERT_TRUE(p.FindStep("n.send"));
  EXPECT_TRUE(p.FindStep("n.send")->is_finally);
}
