// The `${{ }}` expression language: references (params.x, steps.s.outputs.k,
// steps.s.state, env.X, item), literals, member and index access (item.lr,
// x[0], x['key']), arithmetic, comparison, logic and `??` operators,
// parentheses and a set of functions. Grammar and semantics: specs/pipeline.md.
//
// Parsing happens once, when the spec is loaded; evaluation happens when the
// engine needs a value, against an EvalContext it supplies. Exprs are
// immutable after parsing and may be shared between threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spec/value.h"
#include "util/status.h"

namespace sluice::spec {

struct Expr {
  // kIndex: args[0][args[1]] (`a.b` is a['b']); kArith: + - * / %; kNeg:
  // unary minus; kCoalesce: args[0] ?? args[1].
  enum class Kind { kLiteral, kRef, kNot, kAnd, kOr, kCompare, kCall, kIndex, kArith, kNeg, kCoalesce };
  Kind kind = Kind::kLiteral;
  Value literal;                             // kLiteral
  // kRef: the name as far as the context resolves it: {"steps", "train",
  // "outputs", "acc"}, {"params", "x"}, {"item"}; parts after that
  // (`item.lr`) are kIndex nodes around the kRef.
  std::vector<std::string> path;
  std::string op;                            // kCompare: == != < <= > >=; kArith: + - * / %; kCall: function name
  std::vector<std::unique_ptr<Expr>> args;   // operands, call arguments
  size_t offset = 0;                         // byte offset in the expression's text
};

// True if `e` calls always(), success() or failure() anywhere: an `if:`
// without one means `success() && (if)`, as in GitHub Actions.
bool CallsStatusFunction(const Expr& e);
// always, success, failure or cancelled: the functions that read the run's state.
bool IsStatusFunction(std::string_view name);

struct ExprError {
  size_t offset;        // byte offset in the text where the problem is
  std::string message;  // "expected ')'", "unknown function 'sucess' (did you mean ...)"
};

// The deepest nesting an expression may have: each `(`, `!`, unary `-`,
// function call, member or index access (`.b`, `[i]` after a value) and
// binary operator (`||`, `&&`, `??`, a comparison, arithmetic) is one level
// around what it holds, so 32 nested parentheses, or a chain of 32 `||`, is
// the most. (`steps.a.outputs.b`, `params.x` and `item` are one reference,
// level 0; `item.lr` is one level.) The
// evaluator and the loader recurse over expressions; this bounds their stack.
constexpr int kMaxExprDepth = 32;
// The deepest JSON fromJSON() accepts: 64 nested arrays or objects.
constexpr int kMaxJsonDepth = 64;
// The largest value an expression may build (format, join, split, replace,
// `+`, toJSON), by Value::ApproxBytes: 1 MiB. Step outputs are at most 64 KiB
// and argv elements 128 KiB, so this is room, not a target; it stops
// `join(split(x, ''), ...)`-style blow-ups from taking the engine's memory.
constexpr size_t kMaxValueBytes = 1 << 20;
// matches(s, pattern): POSIX extended regular expressions (glibc's regcomp /
// regexec, which need neither backtracking nor recursion without
// back-references, so back-references are refused). A pattern of at most
// 256 bytes, the counts of its `{m,n}` repetitions multiplied together at
// most 1000 (they multiply the compiled automaton), a subject of at most 64 KiB.
constexpr size_t kMaxPatternBytes = 256;
constexpr long kMaxRepeatProduct = 1000;
constexpr size_t kMaxMatchSubjectBytes = 64 * 1024;

// Parses `text` (the part between `${{` and `}}`). On failure returns the
// error; nesting over kMaxExprDepth is one, at the construct that crosses it.
std::optional<ExprError> ParseExpr(std::string_view text, std::unique_ptr<Expr>* out);

// Calls `visit` for every kRef and kCall node, in source order.
template <typename F>
void VisitExpr(const Expr& e, F&& visit) {
  if (e.kind == Expr::Kind::kRef || e.kind == Expr::Kind::kCall) visit(e);
  for (const auto& a : e.args) VisitExpr(*a, visit);
}

// What an expression can see. The engine implements it per step; the loader
// never evaluates (it only checks names).
class EvalContext {
 public:
  virtual ~EvalContext() = default;
  // The value at `path` (a kRef's path), or an error naming what is missing.
  virtual Result<Value> Lookup(const std::vector<std::string>& path) const = 0;
  // always(), success(), failure(), cancelled(): true/false for the step being decided.
  virtual bool StatusFunction(std::string_view name) const = 0;
  // hashFiles(patterns...): the hex SHA-256 over the files the globs match
  // under the spec's folder ('' for none). Contexts without files refuse.
  virtual Result<std::string> HashFiles(const std::vector<std::string>& patterns) const {
    (void)patterns;
    return Status::InvalidSpec("hashFiles() is not available here");
  }
};

// Evaluates `e`. Errors: a lookup that fails (NotFound when the name or
// output does not exist: what `??` replaces), an ordering comparison between
// values that are neither both numbers nor both strings, a member of a value
// that is not a map, arithmetic on non-numbers, division by zero, bad
// function input, a value over kMaxValueBytes.
Result<Value> Evaluate(const Expr& e, const EvalContext& ctx);

// The function names the language knows, for checks and "did you mean".
const std::vector<std::string>& KnownFunctions();
// How many arguments function `name` takes: {min, max}, max -1 for any number.
// Only for names KnownFunctions() holds.
std::pair<int, int> FunctionArity(std::string_view name);

// The call the loader puts around a template param's value that is known
// only when the step runs: it checks the value as a literal `with:` value is
// checked when the spec loads. Its name cannot be written in a spec.
// Defined in params.cc, with the checks it reuses.
inline constexpr std::string_view kTemplateParamCheck = "template param";
Result<Value> EvaluateTemplateParam(const Expr& call, const EvalContext& ctx);

}  // namespace sluice::spec
