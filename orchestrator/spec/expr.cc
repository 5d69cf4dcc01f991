// The expression language (spec/expr.h): its parser and evaluator. The
// functions are in expr_functions.cc.
#include "spec/expr.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <unordered_map>

#include "spec/expr_functions.h"
#include "util/strings.h"

namespace sluice::spec {

namespace internal {

std::string Describe(const Value& v) {
  std::string text = v.Render();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return std::string(Value::TypeName(v.type())) + " " + Quote(text);
}

Status TooBig(const std::string& what) {
  return Status::InvalidSpec(what + " would build a value over " + std::to_string(kMaxValueBytes) +
                             " bytes (the limit)");
}

Result<Value> Bounded(Value v, const std::string& what) {
  if (v.ApproxBytes() > kMaxValueBytes) return TooBig(what);
  return v;
}

}  // namespace internal

using internal::Bounded;
using internal::Describe;
using internal::TooBig;

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : t_(text) {}

  std::optional<ExprError> Parse(std::unique_ptr<Expr>* out) {
    Skip();
    if (pos_ >= t_.size()) return ExprError{pos_, "empty expression"};
    auto e = ParseTop();
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

  // Precedence, loosest first: ?? (as in C#), ||, &&, comparisons, + -,
  // * / %, unary ! and -, then member and index access.
  std::unique_ptr<Expr> ParseTop() {
    auto left = ParseOr();
    while (!error_ && Eat("??"))
      left = Binary(Expr::Kind::kCoalesce, std::move(left), pos_ - 2, &Parser::ParseOr);
    return left;
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
    auto left = ParseAdditive();
    if (error_) return left;
    Skip();
    static const char* kOps[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (const char* op : kOps) {
      if (Eat(op)) {
        auto n = Binary(Expr::Kind::kCompare, std::move(left), pos_ - std::string_view(op).size(), &Parser::ParseAdditive);
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
  // `-` right after a name belongs to the name (step ids may hold `-`):
  // `a - 1` subtracts, `a-1` is the name a-1.
  std::unique_ptr<Expr> ParseAdditive() {
    auto left = ParseMultiplicative();
    while (!error_ && (Skip(), pos_ < t_.size()) && (t_[pos_] == '+' || t_[pos_] == '-')) {
      size_t op_at = pos_;
      std::string op(1, t_[pos_++]);
      left = Binary(Expr::Kind::kArith, std::move(left), pos_ - 1, &Parser::ParseMultiplicative);
      left->op = op;
      left->offset = op_at;  // run-time errors point at the operator
    }
    return left;
  }
  std::unique_ptr<Expr> ParseMultiplicative() {
    auto left = ParseUnary();
    while (!error_ && (Skip(), pos_ < t_.size()) && (t_[pos_] == '*' || t_[pos_] == '/' || t_[pos_] == '%')) {
      size_t op_at = pos_;
      std::string op(1, t_[pos_++]);
      left = Binary(Expr::Kind::kArith, std::move(left), pos_ - 1, &Parser::ParseUnary);
      left->op = op;
      left->offset = op_at;
    }
    return left;
  }
  std::unique_ptr<Expr> ParseUnary() {
    Skip();
    size_t at = pos_;
    bool is_not = pos_ < t_.size() && t_[pos_] == '!' && t_.substr(pos_, 2) != "!=";
    // `-3` is a literal; `-x` and `- 3` negate.
    bool is_neg = pos_ + 1 < t_.size() && t_[pos_] == '-' && !(t_[pos_ + 1] >= '0' && t_[pos_ + 1] <= '9');
    if (is_not || is_neg) {
      ++pos_;
      auto n = Node(is_not ? Expr::Kind::kNot : Expr::Kind::kNeg, at);
      if (!Enter(at)) return n;
      n->args.push_back(ParseUnary());
      Leave();
      Wrap(n.get(), Level(n->args[0].get()), at);
      return n;
    }
    return ParsePostfix(ParsePrimary());
  }
  // `.name` and `[expr]` after a value.
  std::unique_ptr<Expr> ParsePostfix(std::unique_ptr<Expr> e) {
    while (!error_) {
      Skip();
      if (pos_ + 1 < t_.size() && t_[pos_] == '.' && IdentStart(t_[pos_ + 1])) {
        size_t at = pos_++;
        size_t s = pos_;
        while (pos_ < t_.size() && IdentChar(t_[pos_])) ++pos_;
        e = Member(std::move(e), std::string(t_.substr(s, pos_ - s)), at);
      } else if (pos_ < t_.size() && t_[pos_] == '[') {
        size_t at = pos_++;
        auto n = Node(Expr::Kind::kIndex, e->offset);
        int inner = Level(e.get());
        n->args.push_back(std::move(e));
        if (!Enter(at)) return n;
        n->args.push_back(ParseTop());
        Leave();
        if (!error_ && !Eat("]")) Fail(pos_, "expected ']'");
        Wrap(n.get(), std::max(inner, Level(n->args[1].get())), at);
        e = std::move(n);
      } else {
        break;
      }
    }
    return e;
  }
  // e['name'], one level around e.
  std::unique_ptr<Expr> Member(std::unique_ptr<Expr> e, std::string name, size_t at) {
    auto n = Node(Expr::Kind::kIndex, e->offset);
    int inner = Level(e.get());
    auto key = Node(Expr::Kind::kLiteral, at + 1);
    key->literal = Value::Str(std::move(name));
    n->args.push_back(std::move(e));
    n->args.push_back(std::move(key));
    Wrap(n.get(), inner, at);
    return n;
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
      auto e = ParseTop();
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
            n->args.push_back(ParseTop());
            inner = std::max(inner, Level(n->args.back().get()));
          } while (!error_ && Eat(","));
          if (!Eat(")")) Fail(pos_, "expected ')' after the arguments of " + w + "()");
        }
        Leave();
        Wrap(n.get(), inner, at);
        return n;
      }
    }
    // The context resolves params.x, env.X, item, steps.s.state and
    // steps.s.outputs.k; what follows is member access into that value.
    size_t keep = path.size();
    const std::string& root = path[0];
    if (root == "params" || root == "env") keep = 2;
    else if (root == "item") keep = 1;
    else if (root == "steps") keep = path.size() >= 3 && path[2] == "state" ? 3 : 4;
    keep = std::min(keep, path.size());
    auto n = Node(Expr::Kind::kRef, at);
    n->path.assign(path.begin(), path.begin() + static_cast<std::ptrdiff_t>(keep));
    std::unique_ptr<Expr> e = std::move(n);
    size_t member_at = at;
    for (size_t i = 0; i < keep; ++i) member_at += path[i].size() + (i > 0 ? 1 : 0);
    for (size_t i = keep; i < path.size(); ++i) {
      e = Member(std::move(e), path[i], member_at);
      member_at += path[i].size() + 1;
    }
    return e;
  }

  std::string_view t_;
  size_t pos_ = 0;
  std::optional<ExprError> error_;
  int open_ = 0;                                   // constructs the parser is inside
  std::unordered_map<const Expr*, int> levels_;    // nodes above level 0
};

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

// Where in the expression a node stands, for run-time errors.
std::string At(const Expr& e) { return " (at character " + std::to_string(e.offset + 1) + " of the expression)"; }

// a.b and a[i]. A missing key or an index past the end gives null, as in
// GitHub Actions, and so does any member of null (so `a.b.c ?? d` works when
// a.b is missing); a negative index, a key of the wrong type, or a member of
// anything but a map, a list or null is an error naming the type.
Result<Value> Index(const Value& obj, const Value& key, const Expr& e) {
  if (obj.is_null()) return Value();
  if (obj.is_map()) {
    if (!key.is_string()) return Status::InvalidSpec("a map's key must be a string, not " + Describe(key) + At(e));
    auto it = obj.as_map().find(key.as_string());
    return it == obj.as_map().end() ? Value() : it->second;
  }
  if (obj.is_list()) {
    double d;
    if (key.is_string() || !key.AsNumber(&d) || d != std::floor(d))
      return Status::InvalidSpec("a list's index must be a whole number, not " + Describe(key) + At(e));
    if (d < 0) return Status::InvalidSpec("index " + key.Render() + " is negative; lists count from 0" + At(e));
    if (d >= static_cast<double>(obj.as_list().size())) return Value();
    return obj.as_list()[static_cast<size_t>(d)];
  }
  std::string what = key.is_string() ? "member " + Quote(key.as_string()) : "index " + key.Render();
  return Status::InvalidSpec("cannot read " + what + " of a " + Value::TypeName(obj.type()) + " (" + Describe(obj) +
                             "): only maps have members and lists indexes" + At(e));
}

// A number as an int when it is one: ints, and strings that spell a whole
// number in int64 range; other numbers (floats, "0.5") as a double.
struct Number {
  bool is_int = false;
  int64_t i = 0;
  double d = 0;
};
bool AsArithNumber(const Value& v, Number* n) {
  if (v.type() == Value::Type::kInt) {
    *n = {true, v.as_int(), static_cast<double>(v.as_int())};
    return true;
  }
  if (!v.AsNumber(&n->d)) return false;
  n->is_int = false;
  if (v.is_string()) {
    const std::string& s = v.as_string();
    int64_t i;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (ec == std::errc() && p == s.data() + s.size()) *n = {true, i, static_cast<double>(i)};
  }
  return true;
}

Result<Value> Arith(const Expr& e, const Value& a, const Value& b) {
  const std::string& op = e.op;
  Number x, y;
  bool numbers = AsArithNumber(a, &x) && AsArithNumber(b, &y);
  if (op == "+" && !numbers) {
    // + joins two strings or two lists; a number with a non-number is an error.
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > kMaxValueBytes) return TooBig("'+'" + At(e));
      return Value::Str(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      List l = a.as_list();
      l.insert(l.end(), b.as_list().begin(), b.as_list().end());
      return Bounded(Value::Of(std::move(l)), "'+'" + At(e));
    }
  }
  if (!numbers)
    return Status::InvalidSpec("cannot compute " + Describe(a) + " " + op + " " + Describe(b) +
                               ": arithmetic needs numbers" + (op == "+" ? " (or two strings, or two lists)" : "") + At(e));
  if ((op == "/" || op == "%") && y.d == 0) return Status::InvalidSpec("division by zero" + At(e));
  if (x.is_int && y.is_int) {
    int64_t r;
    bool overflow = false;
    if (op == "+") overflow = __builtin_add_overflow(x.i, y.i, &r);
    else if (op == "-") overflow = __builtin_sub_overflow(x.i, y.i, &r);
    else if (op == "*") overflow = __builtin_mul_overflow(x.i, y.i, &r);
    else if (x.i == INT64_MIN && y.i == -1) overflow = true;
    else if (op == "%") r = x.i % y.i;
    else if (x.i % y.i == 0) r = x.i / y.i;        // exact: stays an int
    else return Value::Float(x.d / y.d);            // 7 / 2 is 3.5
    if (!overflow) return Value::Int(r);
    // Past int64: the result is a float, as in JSON.
  }
  if (op == "+") return Value::Float(x.d + y.d);
  if (op == "-") return Value::Float(x.d - y.d);
  if (op == "*") return Value::Float(x.d * y.d);
  if (op == "/") return Value::Float(x.d / y.d);
  return Value::Float(std::fmod(x.d, y.d));
}

Result<Value> Negate(const Expr& e, const Value& v) {
  Number x;
  if (!AsArithNumber(v, &x)) return Status::InvalidSpec("cannot negate " + Describe(v) + ": not a number" + At(e));
  if (x.is_int && x.i != INT64_MIN) return Value::Int(-x.i);
  return Value::Float(-x.d);
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
    case Expr::Kind::kNeg: {
      auto v = Evaluate(*e.args[0], ctx);
      if (!v.ok()) return v;
      return Negate(e, *v);
    }
    case Expr::Kind::kAnd:
    case Expr::Kind::kOr: {
      auto left = Evaluate(*e.args[0], ctx);
      if (!left.ok()) return left;
      bool t = left->Truthy();
      if ((e.kind == Expr::Kind::kAnd) != t) return left;  // short-circuit: && stops on false, || on true
      return Evaluate(*e.args[1], ctx);
    }
    case Expr::Kind::kCoalesce: {
      // The right side stands in for null and for what cannot be read (a
      // missing output, param or variable: NotFound), never for a type error.
      auto left = Evaluate(*e.args[0], ctx);
      if (!left.ok() && left.status().code() != Code::kNotFound) return left;
      if (left.ok() && !left->is_null()) return left;
      return Evaluate(*e.args[1], ctx);
    }
    case Expr::Kind::kCompare:
    case Expr::Kind::kArith:
    case Expr::Kind::kIndex: {
      auto a = Evaluate(*e.args[0], ctx);
      if (!a.ok()) return a;
      auto b = Evaluate(*e.args[1], ctx);
      if (!b.ok()) return b;
      if (e.kind == Expr::Kind::kCompare) return Compare(e.op, *a, *b);
      if (e.kind == Expr::Kind::kArith) return Arith(e, *a, *b);
      return Index(*a, *b, e);
    }
    case Expr::Kind::kCall: {
      if (IsStatusFunction(e.op)) return Value::Bool(ctx.StatusFunction(e.op));
      if (e.op == kTemplateParamCheck) return EvaluateTemplateParam(e, ctx);
      auto [min, max] = FunctionArity(e.op);
      int n = static_cast<int>(e.args.size());
      if (n < min || (max >= 0 && n > max))
        return Status::InvalidSpec(e.op + "() takes " + std::to_string(min) +
                                   (max == min ? "" : max < 0 ? " or more" : " or " + std::to_string(max)) + " arguments");
      std::vector<Value> args;
      args.reserve(e.args.size());
      for (const auto& a : e.args) {
        auto v = Evaluate(*a, ctx);
        if (!v.ok()) return v;
        args.push_back(std::move(*v));
      }
      auto r = internal::CallFunction(e, args, ctx);
      if (!r.ok()) return r.status().code() == Code::kNotFound ? Status::InvalidSpec(r.status().message()) : r;
      return r;
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
