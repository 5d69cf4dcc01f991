// Value: what a `${{ }}` expression evaluates to, what a param holds and what
// a step output is. A small tagged union: null, bool, int, float, string, list.
//
// Outputs of subprocess steps are strings; comparisons treat a string that is
// a whole number as that number, so `steps.eval.outputs.accuracy >= 0.9`
// works (see specs/pipeline.md, "Expressions").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sluice::spec {

class Value;
using List = std::vector<Value>;
using Map = std::map<std::string, Value>;

class Value {
 public:
  enum class Type { kNull, kBool, kInt, kFloat, kString, kList, kMap };

  Value() = default;
  static Value Bool(bool b) { Value v; v.v_ = b; return v; }
  static Value Int(int64_t i) { Value v; v.v_ = i; return v; }
  static Value Float(double d) { Value v; v.v_ = d; return v; }
  static Value Str(std::string s) { Value v; v.v_ = std::move(s); return v; }
  static Value Of(List l) { Value v; v.v_ = std::move(l); return v; }
  static Value Of(Map m) { Value v; v.v_ = std::move(m); return v; }

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_list() const { return type() == Type::kList; }
  bool is_string() const { return type() == Type::kString; }
  bool is_map() const { return type() == Type::kMap; }
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return std::get<List>(v_); }
  const Map& as_map() const { return std::get<Map>(v_); }

  // The number this value stands for: ints, floats, and strings that are
  // entirely a decimal number. False for everything else.
  bool AsNumber(double* out) const;
  // null, false, 0, "", [] and {} are false; everything else is true.
  bool Truthy() const;
  // How the value reaches a command: strings as they are, numbers in their
  // shortest exact form, bools as true/false, null as "", lists and maps as
  // compact JSON.
  std::string Render() const;
  // Name of the type for messages: "int", "string", ...
  static const char* TypeName(Type t);

  nlohmann::json ToJson() const;
  static Value FromJson(const nlohmann::json& j);

  // Roughly how many bytes the value holds (strings and keys by length,
  // scalars as 8): what kMaxValueBytes (expr.h) bounds.
  size_t ApproxBytes() const;

  friend bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, List, Map> v_;
};

// Expression equality: numbers compare by value, a numeric string equals the
// number it spells, everything else compares by type and content.
bool LooseEquals(const Value& a, const Value& b);

}  // namespace sluice::spec
