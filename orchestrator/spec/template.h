// Template: a spec string that may hold `${{ expr }}` parts, such as a `run:`
// line, an env value or a workdir. Parsed once by the loader; rendered by the
// engine for each attempt.
//
// Two ways to render. Render() concatenates the values (argv elements, env
// values, paths). RenderShell() never puts a value into shell text: each
// expression becomes a reference to an environment variable SLUICE_EXPR_<n>
// that carries the value byte for byte, quoted to suit where it stands in the
// line (outside quotes, inside "...", inside '...').
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spec/expr.h"
#include "spec/source.h"

namespace sluice::spec {

struct Template {
  struct Part {
    std::string text;                   // literal text (when expr is null)
    std::shared_ptr<const Expr> expr;   // an expression part
    std::string expr_text;              // the source of the expression, for messages
    SourcePos pos;                      // where the `${{` is, as well as we know
  };
  std::vector<Part> parts;
  std::string source;  // the string as written
  SourcePos pos;       // where the scalar starts

  bool HasExpressions() const;
  // The single expression if the string is exactly `${{ e }}` (spaces around
  // allowed), else null. Such templates keep the value's type (a list stays a list).
  const Expr* SingleExpression() const;
};

// Parses `text`. `pos` is where the text starts in the file and `column_shift`
// is 1 for a quoted scalar (the quote itself), so error columns point into
// the line. Returns the first error with its position.
std::optional<std::pair<SourcePos, std::string>> ParseTemplate(std::string_view text, SourcePos pos,
                                                               int column_shift, Template* out);

// The template with every expression replaced by its rendered value.
Result<std::string> Render(const Template& t, const EvalContext& ctx);
// Evaluates a template that is one expression to its typed value; other
// templates render to a string value.
Result<Value> EvaluateTemplate(const Template& t, const EvalContext& ctx);

struct ShellLine {
  std::string script;                                       // for `sh -c`
  std::vector<std::pair<std::string, std::string>> env;     // SLUICE_EXPR_<n> -> value
};
Result<ShellLine> RenderShell(const Template& t, const EvalContext& ctx);

}  // namespace sluice::spec
