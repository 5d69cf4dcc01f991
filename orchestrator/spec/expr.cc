#include "spec/expr.h"

#include <regex.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "util/json.h"
#include "util/strings.h"

namespace sluice::spec {

bool IsStatusFunction(std::string_view name) {
  return name == "always" || name == "success" || name == "failure" || name == "cancelled";
}

namespace {

struct Function {
  const char* name;
  int min, max;  // arguments; max -1: any number
};
constexpr Function kFunctions[] = {
    {"always", 0, 0},     {"success", 0, 0},    {"failure", 0, 0},  {"cancelled", 0, 0}, {"fromJSON", 1, 1},
    {"toJSON", 1, 1},     {"contains", 2, 2},   {"startsWith", 2, 2}, {"endsWith", 2, 2}, {"format", 1, -1},
    {"join", 1, 2},       {"split", 2, 2},      {"replace", 3, 3},  {"lower", 1, 1},     {"upper", 1, 1},
    {"matches", 2, 2},    {"hashFiles", 1, -1},
};

}  // namespace

const std::vector<std::string>& KnownFunctions() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> names;
    for (const Function& f : kFunctions) names.push_back(f.name);
    return names;
  }();
  return k;
}

std::pair<int, int> FunctionArity(std::string_view name) {
  for (const Function& f : kFunctions)
    if (name == f.name) return {f.min, f.max};
  return {0, -1};
}

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

std::string Describe(const Value& v) {
  std::string text = v.Render();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return std::string(Value::TypeName(v.type())) + " " + Quote(text);
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

// Where in the expression a node stands, for run-time errors.
std::string At(const Expr& e) { return " (at character " + std::to_string(e.offset + 1) + " of the expression)"; }

Status TooBig(const std::string& what) {
  return Status::InvalidSpec(what + " would build a value over " + std::to_string(kMaxValueBytes) +
                             " bytes (the limit)");
}

Result<Value> Bounded(Value v, const std::string& what) {
  if (v.ApproxBytes() > kMaxValueBytes) return TooBig(what);
  return v;
}

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

char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
std::string AsciiCase(std::string s, bool upper) {
  for (char& c : s) c = upper ? (c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c) : AsciiLower(c);
  return s;
}
// contains, startsWith, endsWith and list membership ignore ASCII case, as in GitHub Actions.
bool SameText(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return AsciiLower(x) == AsciiLower(y);
         });
}
bool HasText(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (SameText(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

Result<Value> Contains(const Value& hay, const Value& needle) {
  if (hay.is_list()) {
    for (const Value& v : hay.as_list()) {
      bool same = v.is_string() && needle.is_string() ? SameText(v.as_string(), needle.as_string()) : LooseEquals(v, needle);
      if (same) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (hay.is_map()) return Status::InvalidSpec("contains() needs a string or a list to look in, got " + Describe(hay));
  return Value::Bool(HasText(hay.Render(), needle.Render()));
}

Result<Value> Format(const std::vector<Value>& args) {
  if (!args[0].is_string()) return Status::InvalidSpec("format() needs a string first, got " + Describe(args[0]));
  const std::string& f = args[0].as_string();
  std::string out;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {  // {{ and }} are literal braces
      out += c;
      ++i;
    } else if (c == '{') {
      size_t close = f.find('}', i);
      std::string digits = close == std::string::npos ? "" : f.substr(i + 1, close - i - 1);
      if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string::npos)
        return Status::InvalidSpec("format(): bad placeholder at character " + std::to_string(i + 1) + " of " + Quote(f) +
                                   " (write {0}, {1}, ...; {{ and }} for braces)");
      size_t k = std::stoul(digits) + 1;
      if (k >= args.size())
        return Status::InvalidSpec("format(): " + Quote("{" + digits + "}") + " but only " +
                                   std::to_string(args.size() - 1) + " values follow the format");
      out += args[k].Render();
      i = close;
    } else if (c == '}') {
      return Status::InvalidSpec("format(): a lone '}' at character " + std::to_string(i + 1) + " of " + Quote(f) +
                                 " (write }} for a brace)");
    } else {
      out += c;
    }
    if (out.size() > kMaxValueBytes) return TooBig("format()");
  }
  return Value::Str(std::move(out));
}

Result<Value> JoinList(const std::vector<Value>& args) {
  std::string sep = args.size() > 1 ? args[1].Render() : ",";
  if (args[0].is_string()) return args[0];
  if (!args[0].is_list()) return Status::InvalidSpec("join() needs a list, got " + Describe(args[0]));
  std::string out;
  for (size_t i = 0; i < args[0].as_list().size(); ++i) {
    if (i > 0) out += sep;
    out += args[0].as_list()[i].Render();
    if (out.size() > kMaxValueBytes) return TooBig("join()");
  }
  return Value::Str(std::move(out));
}

Result<Value> Split(const Value& s, const Value& sep) {
  if (s.is_list() || s.is_map()) return Status::InvalidSpec("split() needs a string, got " + Describe(s));
  std::string text = s.Render(), by = sep.Render();
  if (by.empty()) return Status::InvalidSpec("split(): the separator is empty");
  List parts;
  size_t bytes = 8, start = 0;
  while (true) {
    size_t at = text.find(by, start);
    std::string piece = text.substr(start, at == std::string::npos ? std::string::npos : at - start);
    bytes += piece.size() + 8;
    if (bytes > kMaxValueBytes) return TooBig("split()");
    parts.push_back(Value::Str(std::move(piece)));
    if (at == std::string::npos) break;
    start = at + by.size();
  }
  return Value::Of(std::move(parts));
}

Result<Value> Replace(const Value& s, const Value& from, const Value& to) {
  if (s.is_list() || s.is_map()) return Status::InvalidSpec("replace() needs a string, got " + Describe(s));
  std::string text = s.Render(), old = from.Render(), with = to.Render();
  if (old.empty()) return Status::InvalidSpec("replace(): the text to replace is empty");
  std::string out;
  size_t start = 0;
  while (true) {
    size_t at = text.find(old, start);
    out.append(text, start, at == std::string::npos ? std::string::npos : at - start);
    if (at == std::string::npos) break;
    out += with;
    if (out.size() > kMaxValueBytes) return TooBig("replace()");
    start = at + old.size();
  }
  if (out.size() > kMaxValueBytes) return TooBig("replace()");
  return Value::Str(std::move(out));
}

// What makes a pattern's cost unbounded or its automaton large: a
// back-reference, or `{m,n}` counts whose product passes the limit.
std::string PatternProblem(const std::string& p) {
  if (p.size() > kMaxPatternBytes)
    return "the pattern is " + std::to_string(p.size()) + " bytes, over the limit of " + std::to_string(kMaxPatternBytes);
  long product = 1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      if (p[i + 1] >= '1' && p[i + 1] <= '9') return "back-references (\\1 ...) are not supported";
      ++i;
    } else if (p[i] == '[') {  // a bracket expression: its braces are characters
      size_t j = i + 1;
      if (j < p.size() && p[j] == '^') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      while (j < p.size() && p[j] != ']') ++j;
      i = j;
    } else if (p[i] == '{') {
      long count = 0;
      for (size_t j = i + 1; j < p.size() && p[j] != '}'; ++j)
        if (p[j] >= '0' && p[j] <= '9') {
          long n = 0;
          while (j < p.size() && p[j] >= '0' && p[j] <= '9' && n <= kMaxRepeatProduct) n = n * 10 + (p[j++] - '0');
          --j;
          count = std::max(count, n);
        }
      product *= std::max(count, 1L);
      if (product > kMaxRepeatProduct)
        return "its {m,n} repetition counts multiply to more than " + std::to_string(kMaxRepeatProduct) + " (the limit)";
    }
  }
  return "";
}

Result<Value> Matches(const Value& s, const Value& pattern) {
  if (!pattern.is_string()) return Status::InvalidSpec("matches() needs a string pattern, got " + Describe(pattern));
  const std::string& p = pattern.as_string();
  std::string problem = PatternProblem(p);
  if (!problem.empty()) return Status::InvalidSpec("matches(): pattern " + Quote(p.substr(0, 80)) + ": " + problem);
  if (s.is_list() || s.is_map()) return Status::InvalidSpec("matches() needs a string, got " + Describe(s));
  std::string text = s.Render();
  if (text.size() > kMaxMatchSubjectBytes)
    return Status::InvalidSpec("matches(): the text is " + std::to_string(text.size()) + " bytes, over the limit of " +
                               std::to_string(kMaxMatchSubjectBytes));
  if (text.find('\0') != std::string::npos) return Status::InvalidSpec("matches(): the text holds a NUL byte");
  regex_t re;
  int rc = ::regcomp(&re, p.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char buf[128];
    ::regerror(rc, &re, buf, sizeof buf);
    return Status::InvalidSpec("matches(): bad pattern " + Quote(p) + ": " + buf);
  }
  bool found = ::regexec(&re, text.c_str(), 0, nullptr, 0) == 0;
  ::regfree(&re);
  return Value::Bool(found);
}

Result<Value> FromJson(const Value& arg) {
  if (!arg.is_string()) return Status::InvalidSpec("fromJSON() needs a string, got " + Describe(arg));
  // Value::FromJson and rendering recurse: refuse a document nested deeper than they may go.
  bool too_deep = false;
  auto depth_check = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    bool opens = event == nlohmann::json::parse_event_t::array_start ||
                 event == nlohmann::json::parse_event_t::object_start;
    if (opens && depth >= kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  auto j = nlohmann::json::parse(arg.as_string(), depth_check, /*allow_exceptions=*/false);
  if (too_deep)
    return Status::InvalidSpec("fromJSON(): nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (the limit)");
  if (j.is_discarded()) return Status::InvalidSpec("fromJSON(): not JSON: " + Quote(arg.as_string().substr(0, 80)));
  return Value::FromJson(j);
}

Result<Value> Call(const Expr& e, const std::vector<Value>& a, const EvalContext& ctx) {
  const std::string& f = e.op;
  if (f == "toJSON") return Bounded(Value::Str(JsonText(a[0].ToJson())), "toJSON()");
  if (f == "fromJSON") return FromJson(a[0]);
  if (f == "contains") return Contains(a[0], a[1]);
  if (f == "startsWith" || f == "endsWith") {
    std::string s = a[0].Render(), x = a[1].Render();
    if (x.size() > s.size()) return Value::Bool(false);
    return Value::Bool(SameText(f == "startsWith" ? std::string_view(s).substr(0, x.size())
                                                  : std::string_view(s).substr(s.size() - x.size()),
                                x));
  }
  if (f == "format") return Format(a);
  if (f == "join") return JoinList(a);
  if (f == "split") return Split(a[0], a[1]);
  if (f == "replace") return Replace(a[0], a[1], a[2]);
  if (f == "lower" || f == "upper") return Value::Str(AsciiCase(a[0].Render(), f == "upper"));
  if (f == "matches") return Matches(a[0], a[1]);
  if (f == "hashFiles") {
    std::vector<std::string> patterns;
    for (const Value& v : a) {
      if (!v.is_string()) return Status::InvalidSpec("hashFiles() needs strings (globs), got " + Describe(v));
      patterns.push_back(v.as_string());
    }
    auto h = ctx.HashFiles(patterns);
    if (!h.ok()) return h.status();
    return Value::Str(std::move(*h));
  }
  return Status::InvalidSpec("unknown function " + Quote(f + "()"));
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
      auto r = Call(e, args, ctx);
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
