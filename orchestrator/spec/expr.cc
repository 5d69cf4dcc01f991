#include "spec/expr.h"

#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "util/json.h"
#include "util/strings.h"

namespace sluice::spec {

bool IsStatusFunction(std::string_view name) {
  return name == "always" || name == "success" || name == "failure" || name == "cancelled";
}

const std::vector<std::string>& KnownFunctions() {
  static const std::vector<std::string> k = {"always", "success", "failure", "cancelled", "fromJSON", "toJSON"};
  return k;
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : t_(text) {}

  std::optional<ExprError> Parse(std::unique_ptr<Expr>* out) {
    Skip();
    if (pos_ >= t_.size()) return ExprError{pos_, "empty expression"};
    auto e = ParseOr();
    levels_.clear();
    if (!error_ && (Skip(), pos_ < t_.size()))
      Fail(pos_, "unexpected " + Quote(t_.substr(pos_, 1)) + " after the expression");
    if (error_) return error_;
    *out = std::move(e);
    return std::nullopt;
  }

 private:
  void Fail(size_t at, std::string msg) {
    if (!error_) error_ = ExprError{at, std::move(msg)};
  }

  // Nesting. Every `(`, `!`, function call and binary operator is one level
  // around what it holds; a reference or literal is level 0. Two checks keep
  // to kMaxExprDepth: Enter() before the parser recurses into something
  // (which bounds the parser's own stack: `((((...` fails at the 33rd `(`),
  // and Wrap() when a construct is complete (which bounds the tree, whose
  // depth the evaluator and the loader's checks recurse over: `a || b || ...`
  // builds a left-deep tree without recursing).
  bool Enter(size_t at) {
    if (open_ >= kMaxExprDepth) {
      TooDeep(at);
      return false;
    }
    ++open_;
    return true;
  }
  void Leave() { --open_; }
  int Level(const Expr* e) const {
    auto it = levels_.find(e);
    return it == levels_.end() ? 0 : it->second;
  }
  // Records that `e` is one level around parts as deep as `inner`.
  void Wrap(const Expr* e, int inner, size_t at) {
    if (inner + 1 > kMaxExprDepth) TooDeep(at);
    levels_[e] = inner + 1;
  }
  void TooDeep(size_t at) {
    Fail(at, "nested deeper than " + std::to_string(kMaxExprDepth) +
                 " levels of parentheses, operators and calls (the limit)");
  }
  // A binary operator node over `left` and the operand parsed by `right`.
  template <typename ParseRight>
  std::unique_ptr<Expr> Binary(Expr::Kind k, std::unique_ptr<Expr> left, size_t op_at, ParseRight right) {
    auto n = Node(k, left->offset);
    int inner = Level(left.get());
    n->args.push_back(std::move(left));
    if (Enter(op_at)) {
      n->args.push_back((this->*right)());
      Leave();
    } else {
      n->args.push_back(Node(Expr::Kind::kLiteral, op_at));
    }
    Wrap(n.get(), std::max(inner, Level(n->args[1].get())), op_at);
    return n;
  }
  void Skip() {
    while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r'))
      ++pos_;
  }
  bool Eat(std::string_view tok) {
    Skip();
    if (t_.substr(pos_, tok.size()) == tok) {
      pos_ += tok.size();
      return true;
    }
    return false;
  }
  static bool IdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
  static bool IdentChar(char c) { return IdentStart(c) || (c >= '0' && c <= '9') || c == '-'; }

  std::unique_ptr<Expr> Node(Expr::Kind k, size_t at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->offset = at;
    return e;
  }

  std::unique_ptr<Expr> ParseOr() {
    auto left = ParseAnd();
    while (!error_ && (Skip(), true) && Eat("||"))
      left = Binary(Expr::Kind::kOr, std::move(left), pos_ - 2, &Parser::ParseAnd);
    return left;
  }
  std::unique_ptr<Expr> ParseAnd() {
    auto left = ParseCompare();
    while (!error_ && Eat("&&")) left = Binary(Expr::Kind::kAnd, std::move(left), pos_ - 2, &Parser::ParseCompare);
    return left;
  }
  std::unique_ptr<Expr> ParseCompare() {
    auto left = ParseUnary();
    if (error_) return left;
    Skip();
    static const char* kOps[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (const char* op : kOps) {
      if (Eat(op)) {
        auto n = Binary(Expr::Kind::kCompare, std::move(left), pos_ - std::string_view(op).size(), &Parser::ParseUnary);
        n->op = op;
        Skip();
        for (const char* op2 : kOps)
          if (t_.substr(pos_, std::string_view(op2).size()) == op2)
            Fail(pos_, "comparisons do not chain; use && between them");
        return n;
      }
    }
    return left;
  }
  std::unique_ptr<Expr> ParseUnary() {
    Skip();
    size_t at = pos_;
    if (pos_ < t_.size() && t_[pos_] == '!' && t_.substr(pos_, 2) != "!=") {
      ++pos_;
      auto n = Node(Expr::Kind::kNot, at);
      if (!Enter(at)) return n;
      n->args.push_back(ParseUnary());
      Leave();
      Wrap(n.get(), Level(n->args[0].get()), at);
      return n;
    }
    return ParsePrimary();
  }
  std::unique_ptr<Expr> ParsePrimary() {
    Skip();
    size_t at = pos_;
    if (pos_ >= t_.size()) {
      Fail(at, "expected a value at the end of the expression");
      return Node(Expr::Kind::kLiteral, at);
    }
    char c = t_[pos_];
    if (c == '(') {
      ++pos_;
      if (!Enter(at)) return Node(Expr::Kind::kLiteral, at);
      auto e = ParseOr();
      Leave();
      if (!Eat(")")) Fail(pos_, "expected ')'");
      Wrap(e.get(), Level(e.get()), at);  // the parentheses leave no node but count as a level
      return e;
    }
    if (c == '\'' || c == '"') return ParseString(c);
    if ((c >= '0' && c <= '9') || c == '-' || c == '.') return ParseNumber();
    if (IdentStart(c)) return ParseName();
    Fail(at, "unexpected " + Quote(t_.substr(pos_, 1)));
    return Node(Expr::Kind::kLiteral, at);
  }
  std::unique_ptr<Expr> ParseString(char quote) {
    size_t at = pos_++;
    std::string s;
    while (true) {
      if (pos_ >= t_.size()) {
        Fail(at, "unterminated string");
        break;
      }
      char c = t_[pos_++];
      if (c == quote) {
        if (pos_ < t_.size() && t_[pos_] == quote) {  // 'it''s'
          s += quote;
          ++pos_;
          continue;
        }
        break;
      }
      s += c;
    }
    auto n = Node(Expr::Kind::kLiteral, at);
    n->literal = Value::Str(std::move(s));
    return n;
  }
  std::unique_ptr<Expr> ParseNumber() {
    size_t at = pos_;
    if (t_[pos_] == '-') ++pos_;
    bool is_float = false;
    while (pos_ < t_.size() && ((t_[pos_] >= '0' && t_[pos_] <= '9') || t_[pos_] == '.' || t_[pos_] == 'e' ||
                                t_[pos_] == 'E' || ((t_[pos_] == '-' || t_[pos_] == '+') && (t_[pos_ - 1] == 'e' || t_[pos_ - 1] == 'E')))) {
      if (t_[pos_] == '.' || t_[pos_] == 'e' || t_[pos_] == 'E') is_float = true;
      ++pos_;
    }
    std::string text(t_.substr(at, pos_ - at));
    auto n = Node(Expr::Kind::kLiteral, at);
    try {
      size_t used = 0;
      if (is_float) n->literal = Value::Float(std::stod(text, &used));
      else n->literal = Value::Int(std::stoll(text, &used));
      if (used != text.size()) throw std::invalid_argument(text);
    } catch (const std::exception&) {
      Fail(at, "bad number " + Quote(text));
    }
    return n;
  }
  std::unique_ptr<Expr> ParseName() {
    size_t at = pos_;
    std::vector<std::string> path;
    while (true) {
      size_t s = pos_;
      while (pos_ < t_.size() && IdentChar(t_[pos_])) ++pos_;
      path.emplace_back(t_.substr(s, pos_ - s));
      if (pos_ < t_.size() && t_[pos_] == '.' && pos_ + 1 < t_.size() && IdentStart(t_[pos_ + 1])) {
        ++pos_;
        continue;
      }
      break;
    }
    if (path.size() == 1) {
      const std::string& w = path[0];
      if (w == "true" || w == "false") {
        auto n = Node(Expr::Kind::kLiteral, at);
        n->literal = Value::Bool(w == "true");
        return n;
      }
      if (w == "null") return Node(Expr::Kind::kLiteral, at);
      Skip();
      if (pos_ < t_.size() && t_[pos_] == '(') {
        ++pos_;
        auto n = Node(Expr::Kind::kCall, at);
        n->op = w;
        if (!Enter(at)) return n;
        int inner = 0;
        if (!Eat(")")) {
          do {
            n->args.push_back(ParseOr());
            inner = std::max(inner, Level(n->args.back().get()));
          } while (!error_ && Eat(","));
          if (!Eat(")")) Fail(pos_, "expected ')' after the arguments of " + w + "()");
        }
        Leave();
        Wrap(n.get(), inner, at);
        return n;
      }
    }
    auto n = Node(Expr::Kind::kRef, at);
    n->path = std::move(path);
    return n;
  }

  std::string_view t_;
  size_t pos_ = 0;
  std::optional<ExprError> error_;
  int open_ = 0;                                   // constructs the parser is inside
  std::unordered_map<const Expr*, int> levels_;    // nodes above level 0
};

std::string Describe(const Value& v) {
  return std::string(Value::TypeName(v.type())) + " " + Quote(v.Render());
}

Result<Value> Compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Value::Bool(LooseEquals(a, b));
  if (op == "!=") return Value::Bool(!LooseEquals(a, b));
  int cmp;
  double x, y;
  if (a.AsNumber(&x) && b.AsNumber(&y)) cmp = x < y ? -1 : (x > y ? 1 : 0);
  else if (a.is_string() && b.is_string()) cmp = a.as_string().compare(b.as_string());
  else return Status::InvalidSpec("cannot compare " + Describe(a) + " with " + Describe(b) + " using " + op);
  bool r = op == "<" ? cmp < 0 : op == "<=" ? cmp <= 0 : op == ">" ? cmp > 0 : cmp >= 0;
  return Value::Bool(r);
}

}  // namespace

std::optional<ExprError> ParseExpr(std::string_view text, std::unique_ptr<Expr>* out) {
  return Parser(text).Parse(out);
}

Result<Value> Evaluate(const Expr& e, const EvalContext& ctx) {
  switch (e.kind) {
    case Expr::Kind::kLiteral: return e.literal;
    case Expr::Kind::kRef: return ctx.Lookup(e.path);
    case Expr::Kind::kNot: {
      auto v = Evaluate(*e.args[0], ctx);
      if (!v.ok()) return v;
      return Value::Bool(!v->Truthy());
    }
    case Expr::Kind::kAnd:
    case Expr::Kind::kOr: {
      auto left = Evaluate(*e.args[0], ctx);
      if (!left.ok()) return left;
      bool t = left->Truthy();
      if ((e.kind == Expr::Kind::kAnd) != t) return left;  // short-circuit: && stops on false, || on true
      return Evaluate(*e.args[1], ctx);
    }
    case Expr::Kind::kCompare: {
      auto a = Evaluate(*e.args[0], ctx);
      if (!a.ok()) return a;
      auto b = Evaluate(*e.args[1], ctx);
      if (!b.ok()) return b;
      return Compare(e.op, *a, *b);
    }
    case Expr::Kind::kCall: {
      if (IsStatusFunction(e.op)) return Value::Bool(ctx.StatusFunction(e.op));
      if (e.op == kTemplateParamCheck) return EvaluateTemplateParam(e, ctx);
      auto arg = Evaluate(*e.args.at(0), ctx);
      if (!arg.ok()) return arg;
      if (e.op == "toJSON") return Value::Str(JsonText(arg->ToJson()));
      // fromJSON
      if (!arg->is_string()) return Status::InvalidSpec("fromJSON() needs a string, got " + Describe(*arg));
      // Value::FromJson and rendering recurse: refuse a document nested deeper than they may go.
      bool too_deep = false;
      auto depth_check = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
        bool opens = event == nlohmann::json::parse_event_t::array_start ||
                     event == nlohmann::json::parse_event_t::object_start;
        if (opens && depth >= kMaxJsonDepth) too_deep = true;
        return !too_deep;
      };
      auto j = nlohmann::json::parse(arg->as_string(), depth_check, /*allow_exceptions=*/false);
      if (too_deep)
        return Status::InvalidSpec("fromJSON(): nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (the limit)");
      if (j.is_discarded()) return Status::InvalidSpec("fromJSON(): not JSON: " + Quote(arg->as_string().substr(0, 80)));
      return Value::FromJson(j);
    }
  }
  return Status::Internal("unknown expression kind");
}

bool CallsStatusFunction(const Expr& e) {
  if (e.kind == Expr::Kind::kCall && IsStatusFunction(e.op)) return true;
  for (const auto& a : e.args)
    if (CallsStatusFunction(*a)) return true;
  return false;
}

}  // namespace sluice::spec
