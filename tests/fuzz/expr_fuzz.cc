// libFuzzer target: the `${{ }}` expression parser and evaluator, and the
// template parser around it. No input may crash them; an error's offset is
// inside the text; whatever parses evaluates against a context that answers
// every name (so fromJSON, comparisons and logic all run).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "spec/expr.h"
#include "spec/template.h"

namespace {

using sluice::Result;
using sluice::spec::Value;

// Every name is set: to the text's own bytes for strings, so fromJSON sees fuzzed JSON.
class AnyContext : public sluice::spec::EvalContext {
 public:
  explicit AnyContext(std::string text) : text_(std::move(text)) {}
  Result<Value> Lookup(const std::vector<std::string>& path) const override {
    switch (path.size() % 4) {
      case 0: return Value::Str(text_);
      case 1: return Value::Int(static_cast<int64_t>(path.back().size()) - 3);
      case 2: return Value::Of(sluice::spec::List{Value::Str("a"), Value::Float(0.5), Value()});
      default: return sluice::Status::NotFound(path.back() + " is not set");
    }
  }
  bool StatusFunction(std::string_view name) const override { return name != "failure"; }

 private:
  std::string text_;
};

// The loader refuses unknown functions and calls with the wrong number of
// arguments before anything evaluates; only what passes that is evaluated.
bool CallsAsTheLoaderAllows(const sluice::spec::Expr& e) {
  bool ok = true;
  sluice::spec::VisitExpr(e, [&](const sluice::spec::Expr& x) {
    if (x.kind != sluice::spec::Expr::Kind::kCall) return;
    bool status_fn = x.op == "always" || x.op == "success" || x.op == "failure";
    bool known = status_fn || x.op == "toJSON" || x.op == "fromJSON";
    if (!known || x.args.size() != (status_fn ? 0u : 1u)) ok = false;
  });
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  AnyContext ctx(text);
  std::unique_ptr<sluice::spec::Expr> e;
  if (auto err = sluice::spec::ParseExpr(text, &e)) {
    if (err->offset > text.size() || err->message.empty()) std::abort();
  } else {
    if (CallsAsTheLoaderAllows(*e)) {
      auto v = sluice::spec::Evaluate(*e, ctx);
      if (v.ok()) (void)v->Render();
    }
  }
  sluice::spec::Template t;
  if (!sluice::spec::ParseTemplate(text, {1, 1}, 0, &t)) {
    (void)t.SingleExpression();
    bool calls_ok = true;
    for (const auto& part : t.parts)
      if (part.expr && !CallsAsTheLoaderAllows(*part.expr)) calls_ok = false;
    if (calls_ok) (void)sluice::spec::RenderShell(t, ctx);
  }
  return 0;
}
