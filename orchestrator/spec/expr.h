// The `${{ }}` expression language: references (params.x, steps.s.outputs.k,
// steps.s.state, env.X, item), literals, comparison and logic operators,
// parentheses and a few functions. Grammar and semantics: specs/pipeline.md.
//
// Parsing happens once, when the spec is loaded; evaluation happens when the
// engine needs a value, against an EvalContext it supplies. Exprs are
// immutable after parsing and may be shared between threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spec/value.h"
#include "util/status.h"

namespace sluice::spec {

struct Expr {
  enum class Kind { kLiteral, kRef, kNot, kAnd, kOr, kCompare, kCall };
  Kind kind = Kind::kLiteral;
  Value literal;                             // kLiteral
  std::vector<std::string> path;             // kRef: {"steps", "train", "outputs", "acc"}
  std::string op;                            // kCompare: == != < <= > >=; kCall: function name
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

// The deepest nesting an expression may have: each `(`, `!`, function call
// and binary operator (`||`, `&&`, a comparison) is one level around what it
// holds, so 32 nested parentheses, or a chain of 32 `||`, is the most. The
// evaluator and the loader recurse over expressions; this bounds their stack.
constexpr int kMaxExprDepth = 32;
// The deepest JSON fromJSON() accepts: 64 nested arrays or objects.
constexpr int kMaxJsonDepth = 64;

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
};

// Evaluates `e`. Errors: a lookup that fails, an ordering comparison between
// values that are neither both numbers nor both strings, bad function input.
Result<Value> Evaluate(const Expr& e, const EvalContext& ctx);

// The function names the language knows, for checks and "did you mean".
const std::vector<std::string>& KnownFunctions();

// The call the loader puts around a template param's value that is known
// only when the step runs: it checks the value as a literal `with:` value is
// checked when the spec loads. Its name cannot be written in a spec.
// Defined in params.cc, with the checks it reuses.
inline constexpr std::string_view kTemplateParamCheck = "template param";
Result<Value> EvaluateTemplateParam(const Expr& call, const EvalContext& ctx);

}  // namespace sluice::spec
