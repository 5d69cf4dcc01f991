// The spec loader (spec/loader.h): the run's outputs, the top-level
// `outputs:` mapping (specs/pipeline.md "Run outputs").
#include <algorithm>

#include "spec/loader.h"
#include "spec/pipeline.h"
#include "util/strings.h"

namespace sluice::spec::internal {

void Loader::LoadRunOutputs(const YamlNode& n) {
  if (n.IsNull()) return;
  size_t first_ref = p_.output_refs.size();
  reading_run_outputs_ = true;
  ForEachKey(n, {}, "outputs", [&](const std::string& name, const YamlNode& key, const YamlNode& v) {
    if (!IsIdentifier(name)) {
      Error(Pos(key), "run output name " + Quote(name) + " must match [A-Za-z_][A-Za-z0-9_-]*");
      return;
    }
    RunOutput o;
    o.name = name;
    o.pos = Pos(key);
    if (!Tmpl(v, "run output '" + name + "'", &o.value)) return;
    // A stand-in reader: a run output reads any step without needing it.
    Step reader;
    reader.id = name;
    CheckRefs(o.value, &reader, "run output " + name, /*item_allowed=*/false);
    p_.outputs.push_back(std::move(o));
  });
  reading_run_outputs_ = false;
  // Reads of steps that declare all their outputs are checked here; those of
  // plugin steps where the plugin is loaded (as for steps' reads).
  std::vector<OutputRef> refs(p_.output_refs.begin() + static_cast<std::ptrdiff_t>(first_ref), p_.output_refs.end());
  std::vector<std::string> checked, errors;
  for (const OutputRef& r : refs) {
    const Step* s = p_.FindStep(r.producer);
    if (!s || !s->uses.empty() || s->outputs.empty() || std::find(checked.begin(), checked.end(), r.producer) != checked.end()) continue;
    checked.push_back(r.producer);
    CheckOutputRefs(file_, refs, s->id, DeclaredOutputs(*s), &errors);
  }
  for (std::string& e : errors)
    if (errors_.size() < kMaxErrors) errors_.push_back(std::move(e));
}

}  // namespace sluice::spec::internal
