#include "spec/template.h"

#include "util/strings.h"

namespace sluice::spec {

bool Template::HasExpressions() const {
  for (const Part& p : parts)
    if (p.expr) return true;
  return false;
}

const Expr* Template::SingleExpression() const {
  const Expr* found = nullptr;
  for (const Part& p : parts) {
    if (p.expr) {
      if (found) return nullptr;
      found = p.expr.get();
    } else if (p.text.find_first_not_of(" \t\n") != std::string::npos) {
      return nullptr;
    }
  }
  return found;
}

namespace {

// Positions of bytes of a scalar that starts at `pos`, asked for in
// increasing order: one pass over the text for all of them (a line of many
// expressions must not cost time quadratic in its length).
class Positions {
 public:
  Positions(std::string_view text, SourcePos pos, int column_shift) : text_(text), start_(pos), at_(pos) {
    at_.column += column_shift;
  }
  SourcePos Of(size_t offset) {
    for (; done_ < offset && done_ < text_.size() && !lost_; ++done_) {
      // Continuation lines of a block scalar: the column is unknowable from
      // here, so report the scalar's own position.
      if (text_[done_] == '\n') lost_ = true;
      else ++at_.column;
    }
    return lost_ ? start_ : at_;
  }

 private:
  std::string_view text_;
  SourcePos start_, at_;
  size_t done_ = 0;
  bool lost_ = false;
};

// An expression for a message: on one line (escaped as Quote does) and at
// most 100 bytes of it, so a hostile expression does not fill the error.
std::string QuoteExpression(std::string_view body) {
  constexpr size_t kShown = 100;
  if (body.size() <= kShown) return Quote(body);
  return Quote(std::string(body.substr(0, kShown)) + "...");
}

}  // namespace

std::optional<std::pair<SourcePos, std::string>> ParseTemplate(std::string_view text, SourcePos pos,
                                                               int column_shift, Template* out) {
  out->parts.clear();
  out->source = std::string(text);
  out->pos = pos;
  Positions positions(text, pos, column_shift);
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find("${{", i);
    if (open == std::string_view::npos) {
      out->parts.push_back({std::string(text.substr(i)), nullptr, "", {}});
      break;
    }
    if (open > i) out->parts.push_back({std::string(text.substr(i, open - i)), nullptr, "", {}});
    size_t close = text.find("}}", open + 3);
    SourcePos at = positions.Of(open);
    if (close == std::string_view::npos) return std::make_pair(at, std::string("'${{' without a closing '}}'"));
    std::string_view body = text.substr(open + 3, close - open - 3);
    std::unique_ptr<Expr> e;
    if (auto err = ParseExpr(body, &e)) {
      return std::make_pair(positions.Of(open + 3 + err->offset),
                            "bad expression " + QuoteExpression(body) + ": " + err->message);
    }
    Template::Part part;
    part.expr = std::move(e);
    part.expr_text = std::string(body);
    part.pos = at;
    out->parts.push_back(std::move(part));
    i = close + 2;
  }
  return std::nullopt;
}

namespace {

Result<Value> EvalPart(const Template::Part& p, const EvalContext& ctx) {
  auto v = Evaluate(*p.expr, ctx);
  if (!v.ok()) return v.status().WithContext("${{" + p.expr_text + "}}");
  return v;
}

}  // namespace

Result<std::string> Render(const Template& t, const EvalContext& ctx) {
  std::string out;
  for (const Template::Part& p : t.parts) {
    if (!p.expr) {
      out += p.text;
      continue;
    }
    auto v = EvalPart(p, ctx);
    if (!v.ok()) return v.status();
    out += v->Render();
  }
  return out;
}

Result<Value> EvaluateTemplate(const Template& t, const EvalContext& ctx) {
  if (const Expr* e = t.SingleExpression()) {
    for (const Template::Part& p : t.parts)
      if (p.expr.get() == e) return EvalPart(p, ctx);
  }
  auto s = Render(t, ctx);
  if (!s.ok()) return s.status();
  return Value::Str(std::move(s.value()));
}

Result<ShellLine> RenderShell(const Template& t, const EvalContext& ctx) {
  ShellLine line;
  enum class Quoting { kNone, kSingle, kDouble } q = Quoting::kNone;
  bool escaped = false;
  for (const Template::Part& p : t.parts) {
    if (!p.expr) {
      for (char c : p.text) {
        if (escaped) escaped = false;
        else if (q == Quoting::kSingle) { if (c == '\'') q = Quoting::kNone; }
        else if (c == '\\') escaped = true;
        else if (q == Quoting::kDouble) { if (c == '"') q = Quoting::kNone; }
        else if (c == '\'') q = Quoting::kSingle;
        else if (c == '"') q = Quoting::kDouble;
      }
      line.script += p.text;
      continue;
    }
    auto v = EvalPart(p, ctx);
    if (!v.ok()) return v.status();
    std::string name = "SLUICE_EXPR_" + std::to_string(line.env.size() + 1);
    line.env.emplace_back(name, v->Render());
    std::string ref = "${" + name + "}";
    escaped = false;  // a backslash before ${{ }} escapes only the quote we insert
    switch (q) {
      case Quoting::kNone: line.script += "\"" + ref + "\""; break;
      case Quoting::kDouble: line.script += ref; break;
      case Quoting::kSingle: line.script += "'\"" + ref + "\"'"; break;
    }
  }
  return line;
}

}  // namespace sluice::spec
