// The expression language's functions (spec/expr_functions.h): their
// names and arities, and what each does.
#include "spec/expr_functions.h"

#include <regex.h>

#include <algorithm>
#include <string>
#include <vector>

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

namespace internal {

namespace {

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

}  // namespace

Result<Value> CallFunction(const Expr& e, const std::vector<Value>& a, const EvalContext& ctx) {
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


}  // namespace internal

}  // namespace sluice::spec
