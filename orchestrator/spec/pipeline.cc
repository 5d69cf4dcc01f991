#include "spec/pipeline.h"

#include <algorithm>
#include <set>

#include "util/secrets.h"
#include "util/strings.h"

namespace sluice::spec {

const char* ParamTypeName(ParamSpec::Type t) {
  switch (t) {
    case ParamSpec::Type::kInt: return "int";
    case ParamSpec::Type::kFloat: return "float";
    case ParamSpec::Type::kString: return "string";
    case ParamSpec::Type::kBool: return "bool";
  }
  return "?";
}

const std::vector<std::string>& OutputKinds() {
  static const std::vector<std::string> k = {"value", "file", "dir", "dataset", "model", "metrics"};
  return k;
}

std::vector<std::string> DeclaredOutputs(const Step& s) {
  std::vector<std::string> names;
  for (const auto& [name, kind] : s.outputs) names.push_back(name);
  if (s.registration) names.push_back("registered");
  return names;
}

void CheckOutputRefs(const std::string& file, const std::vector<OutputRef>& refs, const std::string& producer,
                     const std::vector<std::string>& known, std::vector<std::string>* errors) {
  for (const OutputRef& r : refs) {
    if (r.producer != producer || std::find(known.begin(), known.end(), r.name) != known.end()) continue;
    std::string has = known.empty() ? "none" : Join(known, ", ");
    errors->push_back(At(r.file.empty() ? file : r.file, r.pos, (r.run_output ? "run output '" : "step '") + r.reader + "' reads steps." + producer + ".outputs." + r.name +
                                          ", which step '" + producer + "' does not declare" + DidYouMean(r.name, known) +
                                          " (it declares " + has + ")"));
  }
}

std::vector<std::string> Ancestors(const Pipeline& p, const std::string& id) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::vector<std::string> stack = {id};
  while (!stack.empty()) {
    const Step* s = p.FindStep(stack.back());
    stack.pop_back();
    if (!s) continue;
    for (const std::string& n : s->needs)
      if (seen.insert(n).second) {
        out.push_back(n);
        stack.push_back(n);
      }
  }
  return out;
}

bool IsSecretName(const Pipeline& p, std::string_view name) {
  auto listed = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), name) != v.end(); };
  if (LooksSecret(name) || name == "SLUICE_OPENLINEAGE_API_KEY" || listed(p.secrets)) return true;
  if (p.webhook && p.webhook->secret_env == name) return true;
  return std::any_of(p.steps.begin(), p.steps.end(), [&](const Step& s) { return listed(s.secrets); });
}

}  // namespace sluice::spec
