#include <algorithm>
#include <cmath>
#include <optional>

#include "spec/pipeline.h"
#include "util/strings.h"

namespace sluice::spec {

Result<Value> CoerceParam(const ParamSpec& ps, const std::string& text) {
  auto bad = [&]() {
    return Status::InvalidSpec("param '" + ps.name + "': " + Quote(text) + " is not " +
                               (ps.type == ParamSpec::Type::kInt ? "an " : "a ") + ParamTypeName(ps.type));
  };
  double d;
  switch (ps.type) {
    case ParamSpec::Type::kString: return Value::Str(text);
    case ParamSpec::Type::kBool:
      if (text == "true" || text == "True") return Value::Bool(true);
      if (text == "false" || text == "False") return Value::Bool(false);
      return bad();
    case ParamSpec::Type::kInt:
      if (!Value::Str(text).AsNumber(&d) || d != std::floor(d) || std::fabs(d) > 9.007199254740992e15 ||
          text.find_first_of(".eE") != std::string::npos)
        return bad();
      return Value::Int(static_cast<int64_t>(d));
    case ParamSpec::Type::kFloat:
      if (!Value::Str(text).AsNumber(&d)) return bad();
      return Value::Float(d);
  }
  return bad();
}

namespace {

// 100 rather than 100.0 for limits that are whole numbers.
std::string NumberText(double d) {
  if (d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
  return Value::Float(d).Render();
}

}  // namespace

Result<Value> CheckParam(const ParamSpec& ps, const std::string& text, const std::string& what) {
  auto v = CoerceParam(ps, text);
  if (!v.ok()) {
    if (what.empty()) return v;
    return Status::InvalidSpec("param '" + ps.name + "': " + what + Quote(text) + " is not " +
                               (ps.type == ParamSpec::Type::kInt ? "an " : "a ") + ParamTypeName(ps.type));
  }
  double d;
  if (v->AsNumber(&d) && ps.type != ParamSpec::Type::kString) {
    if (ps.min && d < *ps.min)
      return Status::InvalidSpec("param '" + ps.name + "': " + what + text + " is below the minimum " + NumberText(*ps.min));
    if (ps.max && d > *ps.max)
      return Status::InvalidSpec("param '" + ps.name + "': " + what + text + " is above the maximum " + NumberText(*ps.max));
  }
  if (!ps.allowed.empty() && std::find(ps.allowed.begin(), ps.allowed.end(), *v) == ps.allowed.end()) {
    std::vector<std::string> names;
    for (const Value& a : ps.allowed) names.push_back(a.Render());
    return Status::InvalidSpec("param '" + ps.name + "': " + what + Quote(text) + " is not one of " + Join(names, ", "));
  }
  return v;
}

namespace {

// ResolveParams and ResolveValues: `noun` names an entry ("param",
// "value"), `at(pos, message)` locates a message (pos null: the entries as
// a whole).
template <typename At>
Result<ParamValues> Resolve(const std::vector<ParamSpec>& specs,
                            const std::vector<std::pair<std::string, std::string>>& given, const std::string& via,
                            const std::string& noun, At at) {
  ParamValues values;
  std::vector<std::string> errors;
  std::vector<std::string> names;
  auto find = [&](const std::string& name) -> const ParamSpec* {
    for (const ParamSpec& ps : specs)
      if (ps.name == name) return &ps;
    return nullptr;
  };
  for (const ParamSpec& ps : specs) names.push_back(ps.name);
  for (const auto& [key, text] : given) {
    const ParamSpec* ps = find(key);
    if (!ps) {
      errors.push_back(at(nullptr, "unknown " + noun + " " + Quote(key) + " given " + via + DidYouMean(key, names)));
      continue;
    }
    if (!IsUtf8(text)) {
      errors.push_back(at(&ps->pos, noun + " '" + key + "': the value is not UTF-8 text (given " + via + ")"));
      continue;
    }
    auto v = CheckParam(*ps, text);
    if (v.ok()) {
      values[key] = *v;
      continue;
    }
    std::string m = v.status().message();  // "param 'x': ...", worded for what is given
    if (m.rfind("param ", 0) == 0) m = noun + m.substr(5);
    errors.push_back(at(&ps->pos, m + " (given " + via + ")"));
  }
  for (const ParamSpec& ps : specs) {
    if (values.count(ps.name)) continue;
    bool overridden = std::any_of(given.begin(), given.end(), [&](auto& o) { return o.first == ps.name; });
    if (overridden) continue;
    if (ps.default_value) values[ps.name] = *ps.default_value;
    else errors.push_back(at(&ps.pos, noun + " '" + ps.name + "' has no default; give it " +
                                          (via.rfind("with -", 0) == 0 ? via + " " + ps.name + "=VALUE" : via)));
  }
  if (!errors.empty()) return Status::InvalidSpec(Join(errors, "\n"));
  return values;
}

}  // namespace

Result<ParamValues> ResolveParams(const Pipeline& p, const std::vector<std::pair<std::string, std::string>>& overrides,
                                  const std::string& via) {
  return Resolve(p.params, overrides, via, "param", [&](const SourcePos* pos, const std::string& m) {
    return At(p.file, pos ? *pos : p.params_pos, m);
  });
}

Result<ParamValues> ResolveValues(const std::vector<ParamSpec>& specs,
                                  const std::vector<std::pair<std::string, std::string>>& given, const std::string& via) {
  return Resolve(specs, given, via, "value", [](const SourcePos*, const std::string& m) { return m; });
}

nlohmann::json ParamSpecJson(const ParamSpec& ps) {
  nlohmann::json j = {{"name", ps.name}, {"type", ParamTypeName(ps.type)}, {"description", ps.description}};
  j["default"] = ps.default_value ? ps.default_value->ToJson() : nlohmann::json();
  j["required"] = !ps.default_value;
  if (ps.min) j["min"] = *ps.min;
  if (ps.max) j["max"] = *ps.max;
  if (!ps.allowed.empty()) {
    j["enum"] = nlohmann::json::array();
    for (const auto& v : ps.allowed) j["enum"].push_back(v.ToJson());
  }
  return j;
}

std::optional<std::string> ParamText(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number_integer()) return j.dump();
  if (j.is_number()) return Value::Float(j.get<double>()).Render();
  return std::nullopt;
}

Result<ParamSpec> ParamSpecFromJson(const std::string& name, const nlohmann::json& j) {
  ParamSpec ps;
  ps.name = name;
  auto bad = [&](const std::string& m) { return Status::InvalidSpec("param '" + name + "': " + m); };
  if (!IsIdentifier(name)) return bad("the name must match [A-Za-z_][A-Za-z0-9_-]*");
  if (!j.is_object()) return bad("expected a mapping such as {type: int, default: 2}");
  std::string type = j.value("type", "");
  bool known = false;
  for (auto t : {ParamSpec::Type::kInt, ParamSpec::Type::kFloat, ParamSpec::Type::kString, ParamSpec::Type::kBool})
    if (type == ParamTypeName(t)) {
      ps.type = t;
      known = true;
    }
  if (!known) return bad("unknown type " + Quote(type) + " (use int, float, string or bool)");
  bool numeric = ps.type == ParamSpec::Type::kInt || ps.type == ParamSpec::Type::kFloat;
  for (const char* limit : {"min", "max"}) {
    if (!j.contains(limit) || j[limit].is_null()) continue;
    if (!numeric) return bad(std::string(limit) + " applies to int and float params only");
    if (!j[limit].is_number()) return bad(std::string(limit) + " must be a number");
    (std::string(limit) == "min" ? ps.min : ps.max) = j[limit].get<double>();
  }
  if (j.contains("enum") && !j["enum"].is_null()) {
    if (!j["enum"].is_array() || j["enum"].empty()) return bad("enum must be a non-empty list");
    for (const nlohmann::json& a : j["enum"]) {
      auto text = ParamText(a);
      if (!text) return bad("an enum value must be a scalar");
      auto v = CoerceParam(ps, *text);
      if (!v.ok()) return v.status();
      ps.allowed.push_back(*v);
    }
  }
  if (j.contains("default") && !j["default"].is_null()) {
    auto text = ParamText(j["default"]);
    if (!text) return bad("the default must be a scalar");
    auto v = CheckParam(ps, *text, "default ");
    if (!v.ok()) return v.status();
    ps.default_value = *v;
  }
  if (j.contains("description") && j["description"].is_string()) ps.description = j["description"].get<std::string>();
  return ps;
}

nlohmann::json CatchupJson(Schedule::Catchup c) {
  if (c == Schedule::Catchup::kEvery) return "all";
  return c == Schedule::Catchup::kLatest;
}

const char* OverlapName(Schedule::Overlap o) {
  switch (o) {
    case Schedule::Overlap::kForbid: return "forbid";
    case Schedule::Overlap::kReplace: return "replace";
    case Schedule::Overlap::kAllow: break;
  }
  return "allow";
}

nlohmann::json ParamsJson(const ParamValues& values) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values) j[k] = v.ToJson();
  return j;
}

std::unique_ptr<Expr> TemplateParamCheck(std::unique_ptr<Expr> value, const ParamSpec& ps, const std::string& where) {
  nlohmann::json j = {{"where", where}, {"name", ps.name}, {"type", ParamTypeName(ps.type)}};
  if (ps.min) j["min"] = *ps.min;
  if (ps.max) j["max"] = *ps.max;
  if (!ps.allowed.empty()) {
    j["enum"] = nlohmann::json::array();
    for (const Value& v : ps.allowed) j["enum"].push_back(v.ToJson());
  }
  auto call = std::make_unique<Expr>();
  call->kind = Expr::Kind::kCall;
  call->op = std::string(kTemplateParamCheck);
  call->offset = value->offset;
  call->args.push_back(std::move(value));
  auto spec = std::make_unique<Expr>();
  spec->literal = Value::Str(j.dump());
  call->args.push_back(std::move(spec));
  return call;
}

Result<Value> EvaluateTemplateParam(const Expr& call, const EvalContext& ctx) {
  auto v = Evaluate(*call.args.at(0), ctx);
  if (!v.ok()) return v;
  auto j = nlohmann::json::parse(call.args.at(1)->literal.as_string(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::Internal("a template param check without its param");
  ParamSpec ps;
  ps.name = j.value("name", "");
  for (auto t : {ParamSpec::Type::kInt, ParamSpec::Type::kFloat, ParamSpec::Type::kString, ParamSpec::Type::kBool})
    if (j.value("type", "") == ParamTypeName(t)) ps.type = t;
  if (j.contains("min")) ps.min = j["min"].get<double>();
  if (j.contains("max")) ps.max = j["max"].get<double>();
  if (j.contains("enum"))
    for (const auto& a : j["enum"]) ps.allowed.push_back(Value::FromJson(a));
  const std::string where = j.value("where", "") + ": ";
  const std::string which = " (the value of with: " + ps.name + ")";
  if (v->is_list())
    return Status::InvalidSpec(where + "param '" + ps.name + "': a list is not " +
                               (ps.type == ParamSpec::Type::kInt ? "an " : "a ") + ParamTypeName(ps.type) + which);
  auto checked = CheckParam(ps, v->Render());
  if (!checked.ok()) return Status::InvalidSpec(where + checked.status().message() + which);
  return checked;
}

}  // namespace sluice::spec
