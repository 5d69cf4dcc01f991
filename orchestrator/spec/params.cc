#include <algorithm>
#include <cmath>

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

Result<ParamValues> ResolveParams(const Pipeline& p, const std::vector<std::pair<std::string, std::string>>& overrides,
                                  const std::string& via) {
  ParamValues values;
  std::vector<std::string> errors;
  std::vector<std::string> names;
  for (const ParamSpec& ps : p.params) names.push_back(ps.name);
  for (const auto& [key, text] : overrides) {
    const ParamSpec* ps = p.FindParam(key);
    if (!ps) {
      errors.push_back(At(p.file, p.params_pos, "unknown param " + Quote(key) + " given " + via + DidYouMean(key, names)));
      continue;
    }
    if (!IsUtf8(text)) {
      errors.push_back(At(p.file, ps->pos, "param '" + key + "': the value is not UTF-8 text (given " + via + ")"));
      continue;
    }
    auto v = CheckParam(*ps, text);
    if (!v.ok()) errors.push_back(At(p.file, ps->pos, v.status().message() + " (given " + via + ")"));
    else values[key] = *v;
  }
  for (const ParamSpec& ps : p.params) {
    if (values.count(ps.name)) continue;
    bool overridden = std::any_of(overrides.begin(), overrides.end(), [&](auto& o) { return o.first == ps.name; });
    if (overridden) continue;
    if (ps.default_value) values[ps.name] = *ps.default_value;
    else errors.push_back(At(p.file, ps.pos, "param '" + ps.name + "' has no default; give it " +
                                          (via == "with -p" ? "with -p " + ps.name + "=VALUE" : via)));
  }
  if (!errors.empty()) return Status::InvalidSpec(Join(errors, "\n"));
  return values;
}

nlohmann::json CatchupJson(Schedule::Catchup c) {
  if (c == Schedule::Catchup::kEvery) return "all";
  return c == Schedule::Catchup::kLatest;
}

nlohmann::json ParamsJson(const ParamValues& values) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values) j[k] = v.ToJson();
  return j;
}

}  // namespace sluice::spec
