#include <gtest/gtest.h>

#include <chrono>

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
  ctx.values["x"] = Value::Of(List{Value::Int(1)});
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
  ctx.values["x"] = Value::Of(List{Value::Str("a")});
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

// Expressions over data ---------------------------------------------------

namespace {

// The error evaluating `text` gives (it must parse).
Status EvalError(const std::string& text, const MapContext& ctx) {
  std::unique_ptr<Expr> e;
  auto err = ParseExpr(text, &e);
  EXPECT_FALSE(err) << text << ": " << err->message;
  if (err) return Status::Internal("no parse");
  auto v = Evaluate(*e, ctx);
  EXPECT_FALSE(v.ok()) << text << " gave " << v->Render();
  return v.ok() ? Status::Ok() : v.status();
}

Value Map2(const std::string& k1, Value v1, const std::string& k2, Value v2) {
  Map m;
  m[k1] = std::move(v1);
  m[k2] = std::move(v2);
  return Value::Of(std::move(m));
}

}  // namespace

TEST(ExprTest, FromJsonTurnsAnObjectIntoAMapThatRendersAsCompactJson) {
  MapContext ctx;
  ctx.values["steps.a.outputs.cfg"] = Value::Str(R"({"b": [1, 2], "a": {"x": true}})");
  Value v = Eval("fromJSON(steps.a.outputs.cfg)", ctx);
  ASSERT_TRUE(v.is_map());
  EXPECT_EQ(v.Render(), R"({"a":{"x":true},"b":[1,2]})");
  EXPECT_FALSE(Eval("fromJSON('{}')", ctx).Truthy());
}

TEST(ExprTest, MemberAndIndexAccessWorkAfterAnyValue) {
  MapContext ctx;
  ctx.values["item"] = Map2("lr", Value::Float(0.1), "learning-rate", Value::Int(3));
  ctx.values["steps.a.outputs.cfg"] = Value::Str(R"({"layers": [{"size": 64}, {"size": 128}]})");
  EXPECT_EQ(Eval("item.lr", ctx), Value::Float(0.1));
  EXPECT_EQ(Eval("item['lr']", ctx), Value::Float(0.1));
  EXPECT_EQ(Eval("item.learning-rate", ctx), Value::Int(3));
  EXPECT_EQ(Eval("fromJSON(steps.a.outputs.cfg).layers[1].size", ctx), Value::Int(128));
  EXPECT_EQ(Eval("fromJSON(steps.a.outputs.cfg)['layers'][0]['size']", ctx), Value::Int(64));
  EXPECT_EQ(Eval("(fromJSON('[[1,2],[3]]'))[1][0]", ctx), Value::Int(3));
  EXPECT_EQ(Eval("fromJSON('[10,20]')[1 + 0]", ctx), Value::Int(20));
}

TEST(ExprTest, AMissingKeyOrAnIndexPastTheEndIsNull) {
  MapContext ctx;
  ctx.values["item"] = Map2("a", Value::Int(1), "b", Value::Int(2));
  EXPECT_TRUE(Eval("item.missing", ctx).is_null());
  EXPECT_TRUE(Eval("item.missing.deeper", ctx).is_null());
  EXPECT_TRUE(Eval("fromJSON('[1]')[1]", ctx).is_null());
}

TEST(ExprTest, AMemberOfANonMapIsAnErrorNamingTheType) {
  MapContext ctx;
  ctx.values["params.name"] = Value::Str("abc");
  EXPECT_EQ(EvalError("params.name.first", ctx).message(),
            "cannot read member 'first' of a string (string 'abc'): only maps have members and lists indexes "
            "(at character 1 of the expression)");
  EXPECT_EQ(EvalError("fromJSON('[1]').x", ctx).message(),
            "a list's index must be a whole number, not string 'x' (at character 1 of the expression)");
  EXPECT_EQ(EvalError("fromJSON('{}')[0]", ctx).message(),
            "a map's key must be a string, not int '0' (at character 1 of the expression)");
}

TEST(ExprTest, ANegativeIndexIsAnError) {
  MapContext ctx;
  EXPECT_EQ(EvalError("fromJSON('[1,2]')[-1]", ctx).message(),
            "index -1 is negative; lists count from 0 (at character 1 of the expression)");
}

TEST(ExprTest, ArithmeticKeepsIntsWhereExact) {
  MapContext ctx;
  ctx.values["steps.a.outputs.n"] = Value::Str("7");
  EXPECT_EQ(Eval("1 + 2 * 3", ctx), Value::Int(7));
  EXPECT_EQ(Eval("(1 + 2) * 3", ctx), Value::Int(9));
  EXPECT_EQ(Eval("steps.a.outputs.n - 1", ctx), Value::Int(6));
  EXPECT_EQ(Eval("steps.a.outputs.n / 2", ctx), Value::Float(3.5));
  EXPECT_EQ(Eval("8 / 2", ctx), Value::Int(4));
  EXPECT_EQ(Eval("7 % 3", ctx), Value::Int(1));
  EXPECT_EQ(Eval("0.5 * 4", ctx), Value::Float(2.0));
  EXPECT_EQ(Eval("10 - 2 - 3", ctx), Value::Int(5)) << "left to right";
  EXPECT_EQ(Eval("-steps.a.outputs.n", ctx), Value::Int(-7));
  EXPECT_EQ(Eval("- (2 + 3)", ctx), Value::Int(-5));
  EXPECT_EQ(Eval("9223372036854775807 + 1", ctx), Value::Float(9223372036854775808.0)) << "past int64: a float";
}

TEST(ExprTest, ArithmeticBindsTighterThanComparisonAndLogic) {
  MapContext ctx;
  EXPECT_EQ(Eval("1 + 1 == 2 && 2 * 2 > 3", ctx), Value::Bool(true));
}

TEST(ExprTest, PlusJoinsTwoStringsOrTwoLists) {
  MapContext ctx;
  EXPECT_EQ(Eval("'run-' + 'a'", ctx), Value::Str("run-a"));
  EXPECT_EQ(Eval("toJSON(fromJSON('[1]') + fromJSON('[2]'))", ctx), Value::Str("[1,2]"));
  EXPECT_EQ(EvalError("'a' * 2", ctx).message(),
            "cannot compute string 'a' * int '2': arithmetic needs numbers (at character 5 of the expression)");
}

TEST(ExprTest, DivisionByZeroIsAnErrorNamingThePlace) {
  MapContext ctx;
  EXPECT_EQ(EvalError("1 + 4 / 0", ctx).message(), "division by zero (at character 7 of the expression)");
  EXPECT_EQ(EvalError("4 % 0", ctx).message(), "division by zero (at character 3 of the expression)");
}

TEST(ExprTest, CoalesceReplacesNullAndWhatCannotBeReadButNotTypeErrors) {
  MapContext ctx;
  ctx.values["item"] = Map2("a", Value::Int(1), "b", Value());
  ctx.values["params.s"] = Value::Str("x");
  EXPECT_EQ(Eval("item.b ?? 5", ctx), Value::Int(5));
  EXPECT_EQ(Eval("item.missing ?? 'd'", ctx), Value::Str("d"));
  EXPECT_EQ(Eval("steps.a.outputs.unset ?? 'd'", ctx), Value::Str("d")) << "a lookup that fails";
  EXPECT_EQ(Eval("item.a ?? 5", ctx), Value::Int(1));
  EXPECT_EQ(Eval("0 ?? 5", ctx), Value::Int(0)) << "only null, not every falsy value";
  EXPECT_EQ(EvalError("params.s.x ?? 1", ctx).code(), Code::kInvalidSpec);
}

TEST(ExprTest, ContainsLooksForTextOrAListMemberIgnoringCase) {
  MapContext ctx;
  EXPECT_EQ(Eval("contains('Hello World', 'WORLD')", ctx), Value::Bool(true));
  EXPECT_EQ(Eval("contains('Hello', 'x')", ctx), Value::Bool(false));
  EXPECT_EQ(Eval("contains(fromJSON('[\"GPU\", 3]'), 'gpu')", ctx), Value::Bool(true));
  EXPECT_EQ(Eval("contains(fromJSON('[\"GPU\", 3]'), '3')", ctx), Value::Bool(true));
  EXPECT_EQ(Eval("contains(fromJSON('[\"GPU\"]'), 'cpu')", ctx), Value::Bool(false));
}

TEST(ExprTest, StartsWithAndEndsWithIgnoreCase) {
  MapContext ctx;
  EXPECT_EQ(Eval("startsWith('refs/heads/main', 'REFS/')", ctx), Value::Bool(true));
  EXPECT_EQ(Eval("endsWith('model.PT', '.pt')", ctx), Value::Bool(true));
  EXPECT_EQ(Eval("endsWith('pt', 'model.pt')", ctx), Value::Bool(false));
}

TEST(ExprTest, FormatFillsPlaceholdersAndKeepsDoubledBraces) {
  MapContext ctx;
  EXPECT_EQ(Eval("format('{0}-{1}-{0}', 'a', 2)", ctx), Value::Str("a-2-a"));
  EXPECT_EQ(Eval("format('{{literal}} {0}', 1)", ctx), Value::Str("{literal} 1"));
  EXPECT_EQ(EvalError("format('{1}', 'a')", ctx).message(), "format(): '{1}' but only 1 values follow the format");
  EXPECT_EQ(EvalError("format('a}')", ctx).message(),
            "format(): a lone '}' at character 2 of 'a}' (write }} for a brace)");
}

TEST(ExprTest, JoinSplitAndReplace) {
  MapContext ctx;
  EXPECT_EQ(Eval("join(fromJSON('[1, \"b\", true]'))", ctx), Value::Str("1,b,true"));
  EXPECT_EQ(Eval("join(fromJSON('[1, 2]'), ' + ')", ctx), Value::Str("1 + 2"));
  EXPECT_EQ(Eval("join('single', '-')", ctx), Value::Str("single"));
  EXPECT_EQ(Eval("toJSON(split('a,b,,c', ','))", ctx), Value::Str(R"(["a","b","","c"])"));
  EXPECT_EQ(Eval("replace('a-b-c', '-', '_')", ctx), Value::Str("a_b_c"));
  EXPECT_EQ(EvalError("split('abc', '')", ctx).message(), "split(): the separator is empty");
}

TEST(ExprTest, LowerAndUpperChangeAsciiCase) {
  MapContext ctx;
  EXPECT_EQ(Eval("lower('MiXeD 1')", ctx), Value::Str("mixed 1"));
  EXPECT_EQ(Eval("upper('MiXeD 1')", ctx), Value::Str("MIXED 1"));
}

TEST(ExprTest, MatchesSearchesWithAnExtendedRegularExpression) {
  MapContext ctx;
  EXPECT_EQ(Eval("matches('v1.2.3', '^v[0-9]+\\.[0-9]+\\.[0-9]+$')", ctx), Value::Bool(true));
  EXPECT_EQ(Eval("matches('release-7', 'rel(ease)?-[0-9]')", ctx), Value::Bool(true));
  EXPECT_EQ(Eval("matches('main', '^v')", ctx), Value::Bool(false));
}

TEST(ExprTest, MatchesRefusesBackReferencesAndBadPatterns) {
  MapContext ctx;
  EXPECT_EQ(EvalError("matches('aa', '(a)\\1')", ctx).message(),
            "matches(): pattern '(a)\\1': back-references (\\1 ...) are not supported");
  EXPECT_EQ(EvalError("matches('a', '(')", ctx).code(), Code::kInvalidSpec);
}

TEST(ExprTest, MatchesBoundsPatternSubjectAndRepetitionCounts) {
  MapContext ctx;
  ctx.values["params.p"] = Value::Str(std::string(kMaxPatternBytes, 'a'));
  ctx.values["params.s"] = Value::Str(std::string(kMaxMatchSubjectBytes, 'a'));
  EXPECT_EQ(Eval("matches(params.s, params.p)", ctx), Value::Bool(true));
  ctx.values["params.p"] = Value::Str(std::string(kMaxPatternBytes + 1, 'a'));
  EXPECT_EQ(EvalError("matches('a', params.p)", ctx).message().substr(0, 60),
            "matches(): pattern '" + std::string(40, 'a'));
  ctx.values["params.s"] = Value::Str(std::string(kMaxMatchSubjectBytes + 1, 'a'));
  EXPECT_EQ(EvalError("matches(params.s, 'a')", ctx).message(),
            "matches(): the text is 65537 bytes, over the limit of 65536");
  EXPECT_EQ(Eval("matches('aaa', '(a{10}){100}')", ctx), Value::Bool(false)) << "10 x 100 = 1000, the most";
  EXPECT_EQ(EvalError("matches('aaa', '(a{10}){101}')", ctx).message(),
            "matches(): pattern '(a{10}){101}': its {m,n} repetition counts multiply to more than 1000 (the limit)");
  EXPECT_EQ(Eval("matches('{', '[{]')", ctx), Value::Bool(true)) << "a brace in brackets is a character";
}

TEST(ExprTest, MatchesOnAPathologicalPatternEndsQuickly) {
  MapContext ctx;
  ctx.values["params.s"] = Value::Str(std::string(kMaxMatchSubjectBytes - 1, 'a') + "b");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Eval("matches(params.s, '^(a+)+$')", ctx), Value::Bool(false));
  EXPECT_EQ(Eval("matches(params.s, '^(a|aa)*c$')", ctx), Value::Bool(false));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ExprTest, HashFilesAsksTheContextAndPlainContextsRefuse) {
  MapContext ctx;
  EXPECT_EQ(EvalError("hashFiles('*.csv')", ctx).message(), "hashFiles() is not available here");
}

TEST(ExprTest, ABuiltValueMayBeOneMebibyteAndNotOneBytePast) {
  MapContext ctx;
  ctx.values["params.half"] = Value::Str(std::string(kMaxValueBytes / 2, 'x'));
  ctx.values["params.one"] = Value::Str("x");
  EXPECT_EQ(Eval("params.half + params.half", ctx).as_string().size(), kMaxValueBytes);
  EXPECT_EQ(EvalError("params.half + params.half + params.one", ctx).message(),
            "'+' (at character 27 of the expression) would build a value over 1048576 bytes (the limit)");
  EXPECT_EQ(Eval("format('{0}{0}', params.half)", ctx).as_string().size(), kMaxValueBytes);
  EXPECT_EQ(EvalError("format('{0}{0}{1}', params.half, params.one)", ctx).message(),
            "format() would build a value over 1048576 bytes (the limit)");
  EXPECT_EQ(EvalError("replace(params.half, 'x', 'xxx')", ctx).message(),
            "replace() would build a value over 1048576 bytes (the limit)");
  EXPECT_EQ(EvalError("split(params.half, 'x')", ctx).message(),
            "split() would build a value over 1048576 bytes (the limit)");
  EXPECT_EQ(Eval("join(fromJSON('[1,2]'), params.half)", ctx).as_string().size(), kMaxValueBytes / 2 + 2);
}

TEST(ExprTest, MemberAccessAndUnaryMinusCountAsLevels) {
  std::string deep = "item";
  for (int i = 0; i < 32; ++i) deep += ".a";
  EXPECT_FALSE(ParseOnly(deep));
  auto err = ParseOnly(deep + ".a");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, kTooDeep);
  EXPECT_TRUE(ParseOnly(std::string(100000, '-') + "x"));
  std::string indexes = "x";
  for (int i = 0; i < 1000; ++i) indexes += "[0]";
  err = ParseOnly(indexes);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, kTooDeep);
}

TEST(ExprTest, ArityIsCheckedWhenEvaluating) {
  MapContext ctx;
  EXPECT_EQ(EvalError("replace('a', 'b')", ctx).message(), "replace() takes 3 arguments");
  EXPECT_EQ(EvalError("join()", ctx).message(), "join() takes 1 or 2 arguments");
}
