#include "spec/schema_check.h"

#include "spec/value.h"
#include "util/strings.h"

namespace sluice::spec {

namespace {

// "an integer", "a string or a number"
std::string WantedType(const nlohmann::json& type) {
  if (type.is_array()) {
    std::vector<std::string> parts;
    for (const auto& t : type) parts.push_back(WantedType(t));
    return Join(parts, " or ");
  }
  std::string t = type.is_string() ? type.get<std::string>() : type.dump();
  return (t == "object" || t == "array" || t == "integer") ? "an " + t : "a " + t;
}

class Checker {
 public:
  Checker(const std::string& file, const std::string& step_id, const std::string& what, std::vector<std::string>* errors)
      : file_(file), step_(step_id), what_(what), errors_(errors) {}

  void Check(const YamlNode& n, const nlohmann::json& schema, const std::string& path) {
    if (!schema.is_object()) return;
    bool expression = n.IsScalar() && n.scalar.find("${{") != std::string::npos;
    if (schema.contains("type") && !expression && !TypeMatches(n, schema["type"])) {
      Error(n.pos, Name(path) + " must be " + WantedType(schema["type"]) + ", not " + Describe(n));
      return;
    }
    if (expression) return;
    if (schema.contains("enum") && schema["enum"].is_array()) {
      bool found = false;
      for (const auto& e : schema["enum"]) found |= Matches(n, e);
      if (!found) Error(n.pos, Name(path) + " must be one of " + JoinJson(schema["enum"]) + ", not " + Describe(n));
    }
    if (schema.contains("const") && !Matches(n, schema["const"]))
      Error(n.pos, Name(path) + " must be " + schema["const"].dump());
    double d;
    if (n.IsScalar() && !n.quoted && Value::Str(n.scalar).AsNumber(&d)) {
      if (schema.contains("minimum") && schema["minimum"].is_number() && d < schema["minimum"].get<double>())
        Error(n.pos, Name(path) + " must be at least " + schema["minimum"].dump() + ", not " + n.scalar);
      if (schema.contains("maximum") && schema["maximum"].is_number() && d > schema["maximum"].get<double>())
        Error(n.pos, Name(path) + " must be at most " + schema["maximum"].dump() + ", not " + n.scalar);
    }
    if (n.IsScalar()) {
      if (schema.contains("minLength") && n.scalar.size() < schema["minLength"].get<size_t>())
        Error(n.pos, Name(path) + " must have at least " + Plural(schema["minLength"].get<int64_t>(), "character"));
      if (schema.contains("maxLength") && n.scalar.size() > schema["maxLength"].get<size_t>())
        Error(n.pos, Name(path) + " must have at most " + Plural(schema["maxLength"].get<int64_t>(), "character"));
    }
    if (n.IsSequence()) {
      if (schema.contains("minItems") && n.items.size() < schema["minItems"].get<size_t>())
        Error(n.pos, Name(path) + " needs at least " + Plural(schema["minItems"].get<int64_t>(), "item"));
      if (schema.contains("maxItems") && n.items.size() > schema["maxItems"].get<size_t>())
        Error(n.pos, Name(path) + " takes at most " + Plural(schema["maxItems"].get<int64_t>(), "item"));
      if (schema.contains("items"))
        for (size_t i = 0; i < n.items.size(); ++i) Check(n.items[i], schema["items"], path + "[" + std::to_string(i) + "]");
    }
    if (n.IsMap() || (n.IsNull() && path.empty())) CheckObject(n, schema, path);
  }

  void CheckMissing(SourcePos at, const nlohmann::json& schema) {
    if (schema.contains("required") && schema["required"].is_array())
      for (const auto& r : schema["required"])
        if (r.is_string()) Error(at, "missing required param '" + r.get<std::string>() + "' for " + what_);
  }

 private:
  void CheckObject(const YamlNode& n, const nlohmann::json& schema, const std::string& path) {
    const nlohmann::json empty = nlohmann::json::object();
    const nlohmann::json& props = schema.contains("properties") ? schema["properties"] : empty;
    std::vector<std::string> names;
    for (auto it = props.begin(); it != props.end(); ++it) names.push_back(it.key());
    for (const auto& [k, v] : n.entries) {
      std::string child = path.empty() ? k.scalar : path + "." + k.scalar;
      if (props.contains(k.scalar)) {
        Check(v, props[k.scalar], child);
      } else if (schema.contains("additionalProperties")) {
        const auto& extra = schema["additionalProperties"];
        if (extra.is_boolean() && !extra.get<bool>())
          Error(k.pos, "unknown param " + Quote(child) + " for " + what_ + DidYouMean(k.scalar, names));
        else if (extra.is_object())
          Check(v, extra, child);
      }
    }
    if (schema.contains("required") && schema["required"].is_array())
      for (const auto& r : schema["required"]) {
        if (!r.is_string()) continue;
        bool present = false;
        for (const auto& [k, v] : n.entries) present |= k.scalar == r.get<std::string>();
        if (!present)
          Error(n.pos, "missing required param '" + (path.empty() ? "" : path + ".") + r.get<std::string>() + "' for " + what_);
      }
  }

  static bool IsInteger(const std::string& s) {
    double d;
    return Value::Str(s).AsNumber(&d) && s.find_first_of(".eE") == std::string::npos;
  }
  static bool TypeMatches(const YamlNode& n, const nlohmann::json& type) {
    if (type.is_array()) {
      for (const auto& t : type)
        if (TypeMatches(n, t)) return true;
      return false;
    }
    if (!type.is_string()) return true;
    const std::string t = type.get<std::string>();
    double d;
    bool plain = n.IsScalar() && !n.quoted;
    if (t == "object") return n.IsMap();
    if (t == "array") return n.IsSequence();
    if (t == "null") return n.IsNull();
    if (t == "string") return n.IsScalar();
    if (t == "boolean") return plain && (n.scalar == "true" || n.scalar == "false" || n.scalar == "True" || n.scalar == "False");
    if (t == "number") return plain && Value::Str(n.scalar).AsNumber(&d);
    if (t == "integer") return plain && IsInteger(n.scalar);
    return true;
  }
  static bool Matches(const YamlNode& n, const nlohmann::json& v) {
    if (!n.IsScalar()) return false;
    if (v.is_string()) return n.scalar == v.get<std::string>();
    double d;
    if (v.is_number() && Value::Str(n.scalar).AsNumber(&d)) return d == v.get<double>();
    if (v.is_boolean()) return n.scalar == (v.get<bool>() ? "true" : "false");
    return false;
  }
  static std::string JoinJson(const nlohmann::json& a) {
    std::vector<std::string> parts;
    for (const auto& v : a) parts.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    return Join(parts, ", ");
  }
  static std::string Describe(const YamlNode& n) {
    if (n.IsMap()) return "a mapping";
    if (n.IsSequence()) return "a list";
    if (n.IsNull()) return "empty";
    return Quote(n.scalar);
  }
  std::string Name(const std::string& path) const { return "param '" + path + "' of " + what_; }
  void Error(SourcePos pos, const std::string& m) { errors_->push_back(At(file_, pos, "step '" + step_ + "': " + m)); }

  const std::string& file_;
  const std::string& step_;
  const std::string& what_;
  std::vector<std::string>* errors_;
};

}  // namespace

void CheckParamsAgainstSchema(const std::string& file, const std::string& step_id, const std::string& what,
                              const YamlNode* with, SourcePos at, const nlohmann::json& schema,
                              std::vector<std::string>* errors) {
  Checker c(file, step_id, what, errors);
  if (with) c.Check(*with, schema, "");
  else c.CheckMissing(at, schema);
}

namespace {

bool JsonTypeMatches(const nlohmann::json& v, const nlohmann::json& type) {
  if (type.is_array()) {
    for (const auto& t : type)
      if (JsonTypeMatches(v, t)) return true;
    return false;
  }
  if (!type.is_string()) return true;
  const std::string t = type.get<std::string>();
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())));
  return true;
}

std::string Shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// The first problem of `v` at `path` against `schema`, or "". Fills in the
// `default` of each property the object leaves out.
std::string CheckJson(nlohmann::json* v, const nlohmann::json& schema, const std::string& path) {
  if (!schema.is_object()) return "";
  std::string name = "param '" + path + "'";
  if (schema.contains("type") && !JsonTypeMatches(*v, schema["type"]))
    return name + " must be " + WantedType(schema["type"]) + ", not " + Shown(*v);
  if (schema.contains("enum") && schema["enum"].is_array()) {
    bool found = false;
    for (const auto& e : schema["enum"]) found |= e == *v;
    if (!found) return name + " must be one of " + schema["enum"].dump() + ", not " + Shown(*v);
  }
  if (schema.contains("const") && schema["const"] != *v) return name + " must be " + schema["const"].dump();
  if (v->is_number()) {
    double d = v->get<double>();
    if (schema.contains("minimum") && schema["minimum"].is_number() && d < schema["minimum"].get<double>())
      return name + " must be at least " + schema["minimum"].dump() + ", not " + Shown(*v);
    if (schema.contains("maximum") && schema["maximum"].is_number() && d > schema["maximum"].get<double>())
      return name + " must be at most " + schema["maximum"].dump() + ", not " + Shown(*v);
  }
  if (v->is_string()) {
    size_t n = v->get_ref<const std::string&>().size();
    if (schema.contains("minLength") && schema["minLength"].is_number() && n < schema["minLength"].get<size_t>())
      return name + " must have at least " + Plural(schema["minLength"].get<int64_t>(), "character");
    if (schema.contains("maxLength") && schema["maxLength"].is_number() && n > schema["maxLength"].get<size_t>())
      return name + " must have at most " + Plural(schema["maxLength"].get<int64_t>(), "character");
  }
  if (v->is_array()) {
    if (schema.contains("minItems") && schema["minItems"].is_number() && v->size() < schema["minItems"].get<size_t>())
      return name + " needs at least " + Plural(schema["minItems"].get<int64_t>(), "item");
    if (schema.contains("maxItems") && schema["maxItems"].is_number() && v->size() > schema["maxItems"].get<size_t>())
      return name + " takes at most " + Plural(schema["maxItems"].get<int64_t>(), "item");
    if (schema.contains("items"))
      for (size_t i = 0; i < v->size(); ++i)
        if (auto e = CheckJson(&(*v)[i], schema["items"], path + "[" + std::to_string(i) + "]"); !e.empty()) return e;
  }
  if (v->is_object()) {
    const nlohmann::json empty = nlohmann::json::object();
    const nlohmann::json& props = schema.contains("properties") && schema["properties"].is_object() ? schema["properties"] : empty;
    for (auto it = v->begin(); it != v->end(); ++it) {
      std::string child = path.empty() ? it.key() : path + "." + it.key();
      if (props.contains(it.key())) {
        if (auto e = CheckJson(&it.value(), props[it.key()], child); !e.empty()) return e;
      } else if (schema.contains("additionalProperties")) {
        const auto& extra = schema["additionalProperties"];
        if (extra.is_boolean() && !extra.get<bool>()) return "unknown param '" + child + "'";
        if (extra.is_object())
          if (auto e = CheckJson(&it.value(), extra, child); !e.empty()) return e;
      }
    }
    if (schema.contains("required") && schema["required"].is_array())
      for (const auto& r : schema["required"])
        if (r.is_string() && !v->contains(r.get<std::string>()))
          return "missing required param '" + (path.empty() ? "" : path + ".") + r.get<std::string>() + "'";
    for (auto it = props.begin(); it != props.end(); ++it)
      if (!v->contains(it.key()) && it.value().is_object() && it.value().contains("default"))
        (*v)[it.key()] = it.value()["default"];
  }
  return "";
}

}  // namespace

std::string CheckRenderedParams(nlohmann::json* params, const nlohmann::json& schema) {
  if (params->is_null()) *params = nlohmann::json::object();
  return CheckJson(params, schema, "");
}

}  // namespace sluice::spec
