// The pure half of the run verbs (verbs.h): retry's plan, --reload's changed
// steps and carried params, and how a run's spec file compares with the
// spec stored with it.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <variant>

#include <nlohmann/json.hpp>

#include "engine/plan.h"
#include "runs/verbs.h"
#include "spec/yaml_tree.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::runs {

using engine::StepState;

namespace {

// A node as written, without positions; map keys sorted.
std::string Canonical(const spec::YamlNode& n) {
  switch (n.kind) {
    case spec::YamlNode::Kind::kNull: return "~";
    case spec::YamlNode::Kind::kScalar: {
      std::string out = n.quoted ? "q" : "p";  // appended, not "q" + ...: GCC 12 warns there (-Wrestrict)
      out += JsonString(n.scalar);
      return out;
    }
    case spec::YamlNode::Kind::kSequence: {
      std::string out = "[";
      for (const spec::YamlNode& i : n.items) out += Canonical(i) + ",";
      return out + "]";
    }
    case spec::YamlNode::Kind::kMap: {
      std::vector<std::string> entries;
      for (const spec::YamlEntry& e : n.entries) entries.push_back(Canonical(e.first) + ":" + Canonical(e.second));
      std::sort(entries.begin(), entries.end());
      std::string out = "{";
      out += Join(entries, ",");
      out += "}";
      return out;
    }
  }
  return "";
}

// Under this key, `templates:` (a call's steps are defined by it and by the
// call's entry); kTemplateFile in it when a template is in its own file,
// which the run did not store, so a call's steps count as changed.
const char* const kTemplates = "#templates";
const char* const kTemplateFile = "#file";

// Each step's definition by id; under "" the keys every step inherits (env,
// defaults, secrets).
std::map<std::string, std::string> StepDefinitions(const std::string& text) {
  std::map<std::string, std::string> out;
  auto tree = spec::ParseYaml(text);
  const spec::YamlNode* root = std::get_if<spec::YamlNode>(&tree);
  if (!root || !root->IsMap()) return out;
  for (const spec::YamlEntry& e : root->entries) {
    const std::string& key = e.first.scalar;
    if ((key == "steps" || key == "finally") && e.second.IsMap())
      for (const spec::YamlEntry& step : e.second.entries) out[step.first.scalar] = Canonical(step.second);
    else if (key == "env" || key == "defaults" || key == "secrets")
      out[""] += key + "=" + Canonical(e.second) + ";";
    else if (key == "templates" && e.second.IsMap())
      for (const spec::YamlEntry& t : e.second.entries) {
        out[kTemplates] += Canonical(t.first) + "=" + Canonical(t.second) + ";";
        if (t.second.IsMap())
          for (const spec::YamlEntry& k : t.second.entries)
            if (k.first.IsScalar() && k.first.scalar == "uses") out[kTemplates] += kTemplateFile;
      }
  }
  return out;
}

// A step's definition: its entry, or for a step of a call (CALL.STEP...)
// the call's entry and the templates.
std::string DefinitionOf(std::map<std::string, std::string>& defs, const std::string& id) {
  size_t dot = id.find('.');
  if (dot == std::string::npos) return defs.count(id) ? "s" + defs[id] : "";
  std::string call = id.substr(0, dot);
  return defs.count(call) ? "c" + defs[call] + "|" + defs[kTemplates] : "";
}

}  // namespace

RetryPlan PlanRetry(const spec::Pipeline& p, const std::vector<engine::StepRecord>& records, const std::string& from,
                    const std::vector<std::string>& changed) {
  RetryPlan out;
  out.changed = changed;
  std::set<size_t> roots, whole;
  if (!from.empty()) {
    if (!p.FindStep(from)) {
      std::vector<std::string> ids;
      for (const spec::Step& x : p.steps) ids.push_back(x.id);
      out.refused.why = Refusal::Why::kNoSuchStep;
      out.refused.hint = DidYouMean(from, ids);
      return out;
    }
    roots.insert(p.index.at(from));
    whole.insert(p.index.at(from));
  } else {
    for (const engine::StepRecord& rec : records)
      if (rec.item < 0 && (rec.state == StepState::kFailed || rec.state == StepState::kCancelled) &&
          p.index.count(rec.step_id))
        roots.insert(p.index.at(rec.step_id));
  }
  for (const std::string& c : changed) {
    roots.insert(p.index.at(c));
    whole.insert(p.index.at(c));
  }
  if (roots.empty()) {
    out.refused.why = Refusal::Why::kNothingToRetry;
    return out;
  }
  // Everything downstream of a root runs again from scratch.
  engine::Plan plan = engine::MakePlan(p);
  std::set<size_t> downstream;
  std::vector<size_t> stack(roots.begin(), roots.end());
  while (!stack.empty()) {
    size_t i = stack.back();
    stack.pop_back();
    for (size_t d : plan.dependants[i])
      if (downstream.insert(d).second) stack.push_back(d);
  }
  // The finally steps run again after the steps that do, whatever they did.
  for (size_t i = 0; i < p.steps.size(); ++i)
    if (p.steps[i].is_finally) downstream.insert(i);
  // In a call with foreach, the steps after a root that runs only its
  // failed items run only the items that did not succeed, as it does.
  std::set<std::string> item_chains;
  for (size_t i : roots)
    if (!whole.count(i) && !p.steps[i].chain.empty()) item_chains.insert(p.steps[i].chain);
  std::set<size_t> after_whole;
  stack.assign(whole.begin(), whole.end());
  while (!stack.empty()) {
    size_t i = stack.back();
    stack.pop_back();
    for (size_t d : plan.dependants[i])
      if (after_whole.insert(d).second) stack.push_back(d);
  }
  for (size_t i : downstream) {
    bool items_only = item_chains.count(p.steps[i].chain) && !after_whole.count(i) && !whole.count(i);
    (items_only ? out.failed_items : out.rerun).push_back(p.steps[i].id);
  }
  for (size_t i : roots)
    if (!downstream.count(i)) (whole.count(i) ? out.rerun : out.failed_items).push_back(p.steps[i].id);
  return out;
}

std::vector<std::string> ChangedSteps(const std::string& before_text, const spec::Pipeline& now) {
  auto before = StepDefinitions(before_text), after = StepDefinitions(now.text);
  bool all = before[""] != after[""];
  std::vector<std::string> changed;
  bool files = after[kTemplates].find(kTemplateFile) != std::string::npos;
  for (const spec::Step& s : now.steps) {
    std::string was = DefinitionOf(before, s.id);
    bool in_file = files && s.id.find('.') != std::string::npos;
    if (all || in_file || was.empty() || was != DefinitionOf(after, s.id)) changed.push_back(s.id);
  }
  return changed;
}

SpecFile CompareSpecFile(const store::RunRow& row) {
  std::ifstream in(row.spec_path, std::ios::binary);
  if (!in) return SpecFile::kGone;
  std::ostringstream text;
  text << in.rdbuf();
  return Sha256Hex(text.str()) == row.spec_hash ? SpecFile::kSame : SpecFile::kChanged;
}

Result<spec::Pipeline> ReloadSpec(const store::RunRow& row) {
  auto p = spec::LoadPipeline(row.spec_path);
  if (!p.ok()) return p.status();
  if (p->name != row.pipeline)
    return Status::Incompatible(row.spec_path + " now names pipeline " + Quote(p->name) + ", not " +
                                Quote(row.pipeline));
  return std::move(*p);
}

Result<spec::ParamValues> CarryParams(const store::RunRow& row, const spec::Pipeline& p, const std::string& via) {
  auto stored = nlohmann::json::parse(row.params_json, nullptr, false);
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const spec::ParamSpec& ps : p.params)
    if (stored.is_object() && stored.contains(ps.name))
      overrides.emplace_back(ps.name, spec::Value::FromJson(stored[ps.name]).Render());
  return spec::ResolveParams(p, overrides, via);
}

}  // namespace sluice::runs
