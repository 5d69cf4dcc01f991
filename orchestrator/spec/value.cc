#include "spec/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "util/json.h"

namespace sluice::spec {

namespace {

bool ParseNumber(const std::string& s, double* out) {
  if (s.empty() || s.size() > 64) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, *out);
  return ec == std::errc() && p == e && std::isfinite(*out);
}

std::string FormatFloat(double d) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

bool Value::AsNumber(double* out) const {
  switch (type()) {
    case Type::kInt: *out = static_cast<double>(as_int()); return true;
    case Type::kFloat: *out = as_float(); return true;
    case Type::kString: return ParseNumber(as_string(), out);
    default: return false;
  }
}

bool Value::Truthy() const {
  switch (type()) {
    case Type::kNull: return false;
    case Type::kBool: return as_bool();
    case Type::kInt: return as_int() != 0;
    case Type::kFloat: return as_float() != 0;
    case Type::kString: return !as_string().empty();
    case Type::kList: return !as_list().empty();
    case Type::kMap: return !as_map().empty();
  }
  return false;
}

std::string Value::Render() const {
  switch (type()) {
    case Type::kNull: return "";
    case Type::kBool: return as_bool() ? "true" : "false";
    case Type::kInt: return std::to_string(as_int());
    case Type::kFloat: return FormatFloat(as_float());
    case Type::kString: return as_string();
    case Type::kList:
    case Type::kMap: return JsonText(ToJson());
  }
  return "";
}

const char* Value::TypeName(Type t) {
  switch (t) {
    case Type::kNull: return "null";
    case Type::kBool: return "bool";
    case Type::kInt: return "int";
    case Type::kFloat: return "float";
    case Type::kString: return "string";
    case Type::kList: return "list";
    case Type::kMap: return "map";
  }
  return "?";
}

nlohmann::json Value::ToJson() const {
  switch (type()) {
    case Type::kNull: return nullptr;
    case Type::kBool: return as_bool();
    case Type::kInt: return as_int();
    case Type::kFloat: return as_float();
    case Type::kString: return as_string();
    case Type::kList: {
      nlohmann::json a = nlohmann::json::array();
      for (const Value& v : as_list()) a.push_back(v.ToJson());
      return a;
    }
    case Type::kMap: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, v] : as_map()) o[k] = v.ToJson();
      return o;
    }
  }
  return nullptr;
}

Value Value::FromJson(const nlohmann::json& j) {
  if (j.is_boolean()) return Bool(j.get<bool>());
  if (j.is_number_integer()) return Int(j.get<int64_t>());
  if (j.is_number()) return Float(j.get<double>());
  if (j.is_string()) return Str(j.get<std::string>());
  if (j.is_array()) {
    List l;
    for (const auto& e : j) l.push_back(FromJson(e));
    return Of(std::move(l));
  }
  if (j.is_object()) {
    Map m;
    for (const auto& [k, v] : j.items()) m[k] = FromJson(v);
    return Of(std::move(m));
  }
  return Value();
}

size_t Value::ApproxBytes() const {
  switch (type()) {
    case Type::kString: return as_string().size();
    case Type::kList: {
      size_t n = 8;
      for (const Value& v : as_list()) n += v.ApproxBytes();
      return n;
    }
    case Type::kMap: {
      size_t n = 8;
      for (const auto& [k, v] : as_map()) n += k.size() + v.ApproxBytes();
      return n;
    }
    default: return 8;
  }
}

bool LooseEquals(const Value& a, const Value& b) {
  double x, y;
  bool a_num = a.type() == Value::Type::kInt || a.type() == Value::Type::kFloat;
  bool b_num = b.type() == Value::Type::kInt || b.type() == Value::Type::kFloat;
  if ((a_num || b_num) && a.AsNumber(&x) && b.AsNumber(&y)) return x == y;
  return a == b;
}

}  // namespace sluice::spec
