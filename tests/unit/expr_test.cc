#include <gtest/gtest.h>

#include "spec/expr.h"
#include "spec/template.h"

using namespace sluice;
using namespace sluice::spec;

namespace {

// A context with a fixed table of names.
class MapContext : public EvalContext {
 public:
  std::map<std::string, Value> values;
  bool success = true, failure = false;
  Result<Value> Lookup(const std::vector<std::string>& path) const override {
    std::string key;
    for (const auto& p : path) key += (key.empty() ? "" : ".") + p;
    auto it = values.find(key);
    if (it == values.end()) return Status::NotFound(key + " is not set");
    return it->second;
  }
  bool StatusFunction(std::string_view name) const override {
    return name == "always" ? true : name == "success" ? success : failure;
  }
};

Value Eval(const std::string& text, const MapContext& ctx) {
  std::unique_ptr<Expr> e;
  auto err = ParseExpr(text, &e);
  EXPECT_FALSE(err) << text << ": " << err->message;
  if (err) return Value();
  auto v = Evaluate(*e, ctx);
  EXPECT_TRUE(v.ok()) << v.status().message();
  return v.ok() ? v.value() : Value();
}

Template Parse(const std::string& text) {
  Template t;
  auto err = ParseTemplate(text, {1, 1}, 0, &t);
  EXPECT_FALSE(err) << (err ? err->second : "");
  return t;
}

}  // namespace

TEST(ExprTest, ComparesNumericStringsAsNumbers) {
  MapContext ctx;
  ctx.values["steps.eval.outputs.accuracy"] = Value::Str("0.93");
  ctx.values["params.min"] = Value::Float(0.9);
  EXPECT_TRUE(Eval("steps.eval.outputs.accuracy >= params.min", ctx).as_bool());
  EXPECT_FALSE(Eval("steps.eval.outputs.accuracy < 0.5", ctx).as_bool());
  EXPECT_TRUE(Eval("steps.eval.outputs.accuracy == 0.93", ctx).as_bool());
}

TEST(ExprTest, ComparesStringsByContent) {
  MapContext ctx;
  ctx.values["params.mode"] = Value::Str("full");
  EXPECT_TRUE(Eval("params.mode == 'full'", ctx).as_bool());
  EXPECT_TRUE(Eval("params.mode != \"fast\"", ctx).as_bool());
  EXPECT_TRUE(Eval("'it''s' == \"it's\"", ctx).as_bool());
}

TEST(ExprTest, LogicShortCircuitsAndRespectsParentheses) {
  MapContext ctx;
  ctx.values["params.a"] = Value::Bool(true);
  EXPECT_TRUE(Eval("params.a || steps.missing.state", ctx).Truthy());
  EXPECT_FALSE(Eval("!params.a && steps.missing.state", ctx).Truthy());
  EXPECT_TRUE(Eval("!(params.a && false) == true", ctx).Truthy());
  EXPECT_TRUE(Eval("1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 3", ctx).Truthy());
}

TEST(ExprTest, StatusFunctionsAskTheContext) {
  MapContext ctx;
  ctx.success = false;
  ctx.failure = true;
  EXPECT_TRUE(Eval("always()", ctx).as_bool());
  EXPECT_FALSE(Eval("success()", ctx).as_bool());
  EXPECT_TRUE(Eval("failure() && always()", ctx).as_bool());
}

TEST(ExprTest, FromJsonTurnsAnOutputIntoAList) {
  MapContext ctx;
  ctx.values["steps.s.outputs.shards"] = Value::Str("[\"a\", \"b\", 3]");
  Value v = Eval("fromJSON(steps.s.outputs.shards)", ctx);
  ASSERT_TRUE(v.is_list());
  EXPECT_EQ(v.as_list().size(), 3u);
  EXPECT_EQ(v.as_list()[2].as_int(), 3);
}

TEST(ExprTest, OrderingAListWithANumberIsAnError) {
  MapContext ctx;
  ctx.values["x"] = Value::Of({Value::Int(1)});
  std::unique_ptr<Expr> e;
  ASSERT_FALSE(ParseExpr("x < 3", &e));
  auto v = Evaluate(*e, ctx);
  EXPECT_EQ(v.status().message(), "cannot compare list '[1]' with int '3' using <");
}

TEST(ExprTest, ParseErrorsGiveTheOffset) {
  std::unique_ptr<Expr> e;
  auto err = ParseExpr("params.a == 'x", &e);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->offset, 12u);
  EXPECT_EQ(err->message, "unterminated string");
  err = ParseExpr("a < b < c", &e);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "comparisons do not chain; use && between them");
}

TEST(TemplateTest, RendersValuesIntoText) {
  MapContext ctx;
  ctx.values["params.epochs"] = Value::Int(3);
  ctx.values["params.lr"] = Value::Float(0.1);
  auto s = Render(Parse("--epochs=${{ params.epochs }} --lr ${{params.lr}}"), ctx);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "--epochs=3 --lr 0.1");
}

TEST(TemplateTest, ShellLinePassesValuesAsEnvironmentVariables) {
  MapContext ctx;
  ctx.values["params.v"] = Value::Str("$(touch /tmp/pwned); rm -rf ~ `id`\n'\"");
  auto line = RenderShell(Parse("echo ${{ params.v }} \"in ${{ params.v }} dq\" 'in ${{ params.v }} sq'"), ctx);
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->script,
            "echo \"${SLUICE_EXPR_1}\" \"in ${SLUICE_EXPR_2} dq\" 'in '\"${SLUICE_EXPR_3}\"' sq'");
  ASSERT_EQ(line->env.size(), 3u);
  EXPECT_EQ(line->env[0].second, "$(touch /tmp/pwned); rm -rf ~ `id`\n'\"");
}

TEST(TemplateTest, SingleExpressionKeepsItsType) {
  MapContext ctx;
  ctx.values["x"] = Value::Of({Value::Str("a")});
  auto v = EvaluateTemplate(Parse("  ${{ x }} "), ctx);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is_list());
}

TEST(TemplateTest, UnclosedExpressionIsAnError) {
  Template t;
  auto err = ParseTemplate("echo ${{ params.x", {3, 10}, 0, &t);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->first.line, 3);
  EXPECT_EQ(err->first.column, 15);
  EXPECT_EQ(err->second, "'${{' without a closing '}}'");
}

// --- The nesting limit (kMaxExprDepth) --------------------------------------

namespace {

std::optional<ExprError> ParseOnly(const std::string& text) {
  std::unique_ptr<Expr> e;
  return ParseExpr(text, &e);
}

// `op` between `n + 1` operands: n operators, a left-deep chain n levels deep.
std::string Chain(int n, const std::string& op) {
  std::string s = "true";
  for (int i = 0; i < n; ++i) s += " " + op + " true";
  return s;
}

const char* kTooDeep = "nested deeper than 32 levels of parentheses, operators and calls (the limit)";

}  // namespace

TEST(ExprTest, ThirtyTwoNestedParenthesesParseAndEvaluate) {
  MapContext ctx;
  EXPECT_EQ(Eval(std::string(32, '(') + "true" + std::string(32, ')'), ctx), Value::Bool(true));
  // The comparison inside is a level of its own.
  EXPECT_EQ(Eval(std::string(31, '(') + "1 == 1" + std::string(31, ')'), ctx), Value::Bool(true));
  EXPECT_TRUE(ParseOnly(std::string(32, '(') + "1 == 1" + std::string(32, ')')));
}

TEST(ExprTest, ThirtyThreeNestedParenthesesAreAnErrorAtTheThirtyThirdParenthesis) {
  auto err = ParseOnly(std::string(33, '(') + "true" + std::string(33, ')'));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->offset, 32u);
  EXPECT_EQ(err->message, kTooDeep);
}

TEST(ExprTest, AHundredThousandNestedParenthesesAreAnErrorNotAStackOverflow) {
  auto err = ParseOnly(std::string(100000, '(') + "true" + std::string(100000, ')'));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->offset, 32u);
  EXPECT_EQ(err->message, kTooDeep);
  err = ParseOnly(std::string(100000, '!') + "true");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->offset, 32u);
}

TEST(ExprTest, AChainOfThirtyTwoOperatorsParsesAndEvaluates) {
  MapContext ctx;
  EXPECT_EQ(Eval(Chain(32, "||"), ctx), Value::Bool(true));
  EXPECT_EQ(Eval(Chain(32, "&&"), ctx), Value::Bool(true));
}

TEST(ExprTest, AChainOfThirtyThreeOperatorsIsAnErrorAtTheThirtyThirdOperator) {
  for (const char* op : {"||", "&&"}) {
    std::string text = Chain(33, op);
    auto err = ParseOnly(text);
    ASSERT_TRUE(err) << op;
    EXPECT_EQ(err->offset, text.rfind(op)) << op;
    EXPECT_EQ(err->message, kTooDeep);
  }
  // A chain of a hundred thousand builds no tree deeper than the limit.
  auto err = ParseOnly(Chain(100000, "||"));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, kTooDeep);
}

TEST(ExprTest, NotsCallsAndComparisonsCountAsLevelsToo) {
  MapContext ctx;
  // 31 nots around a comparison: 32 levels.
  EXPECT_EQ(Eval(std::string(31, '!') + "1 == 1", ctx), Value::Bool(false));
  auto err = ParseOnly(std::string(32, '!') + "1 == 1");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->offset, 34u) << "the == that makes the 33rd level";
  EXPECT_EQ(err->message, kTooDeep);
  std::string calls;
  for (int i = 0; i < 32; ++i) calls += "toJSON(";
  EXPECT_FALSE(ParseOnly(calls + "1" + std::string(32, ')')));
  err = ParseOnly("toJSON(" + calls + "1" + std::string(33, ')'));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->offset, 32u * 7u) << "the 33rd call";
  EXPECT_EQ(err->message, kTooDeep);
}

TEST(ExprTest, FromJsonAcceptsSixtyFourNestedArraysAndRefusesSixtyFive) {
  MapContext ctx;
  ctx.values["steps.s.outputs.j"] = Value::Str(std::string(64, '[') + std::string(64, ']'));
  std::unique_ptr<Expr> e;
  ASSERT_FALSE(ParseExpr("fromJSON(steps.s.outputs.j)", &e));
  EXPECT_TRUE(Evaluate(*e, ctx).ok());
  ctx.values["steps.s.outputs.j"] = Value::Str(std::string(65, '[') + std::string(65, ']'));
  auto v = Evaluate(*e, ctx);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "fromJSON(): nested deeper than 64 levels (the limit)");
  // Deep enough to overflow the stack if it were converted.
  ctx.values["steps.s.outputs.j"] = Value::Str(std::string(1000000, '[') + std::string(1000000, ']'));
  EXPECT_EQ(Evaluate(*e, ctx).status().message(), "fromJSON(): nested deeper than 64 levels (the limit)");
}
