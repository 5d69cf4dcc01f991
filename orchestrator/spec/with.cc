#include <cmath>

#include "spec/pipeline.h"
#include "util/strings.h"

namespace sluice::spec {

std::pair<std::string, std::string> SplitUses(const std::string& uses) {
  size_t slash = uses.find('/');
  if (slash == std::string::npos) return {uses, ""};
  return {uses.substr(0, slash), uses.substr(slash + 1)};
}

namespace {

// A plain scalar as YAML's core schema reads it.
nlohmann::json PlainScalar(const std::string& s) {
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  double d;
  if (Value::Str(s).AsNumber(&d)) {
    bool integral = s.find_first_of(".eE") == std::string::npos && std::fabs(d) < 9e15;
    if (integral) return static_cast<int64_t>(d);
    return d;
  }
  return s;
}

}  // namespace

Value YamlValue(const YamlNode& n) {
  switch (n.kind) {
    case YamlNode::Kind::kNull: return Value();
    case YamlNode::Kind::kMap: {
      Map m;
      for (const auto& [k, v] : n.entries) m[k.scalar] = YamlValue(v);
      return Value::Of(std::move(m));
    }
    case YamlNode::Kind::kSequence: {
      List l;
      for (const YamlNode& v : n.items) l.push_back(YamlValue(v));
      return Value::Of(std::move(l));
    }
    case YamlNode::Kind::kScalar: break;
  }
  return n.quoted ? Value::Str(n.scalar) : Value::FromJson(PlainScalar(n.scalar));
}

Result<nlohmann::json> RenderWith(const YamlNode& n, const EvalContext& ctx) {
  switch (n.kind) {
    case YamlNode::Kind::kNull: return nlohmann::json(nullptr);
    case YamlNode::Kind::kMap: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, v] : n.entries) {
        auto r = RenderWith(v, ctx);
        if (!r.ok()) return r.status().WithContext(k.scalar);
        o[k.scalar] = std::move(*r);
      }
      return o;
    }
    case YamlNode::Kind::kSequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const YamlNode& v : n.items) {
        auto r = RenderWith(v, ctx);
        if (!r.ok()) return r.status();
        a.push_back(std::move(*r));
      }
      return a;
    }
    case YamlNode::Kind::kScalar:
      break;
  }
  if (n.scalar.find("${{") == std::string::npos) return n.quoted ? nlohmann::json(n.scalar) : PlainScalar(n.scalar);
  Template t;
  if (auto err = ParseTemplate(n.scalar, n.pos, 0, &t)) return Status::InvalidSpec(err->second);
  auto v = EvaluateTemplate(t, ctx);
  if (!v.ok()) return v.status();
  return v->ToJson();
}

}  // namespace sluice::spec
