#include "engine/run_outputs.h"

#include "engine/outputs.h"
#include "spec/template.h"

namespace sluice::engine {

std::vector<RunOutputValue> RenderRunOutputs(const RunScope& run) {
  const spec::Pipeline& p = *run.plan->pipeline;
  std::vector<RunOutputValue> out;
  if (p.outputs.empty()) return out;
  // The loader refused status functions and `item` in run outputs, so the
  // context's step (node 0) and unit (none) are never asked about.
  StepContext ctx(run, 0, nullptr);
  out.reserve(p.outputs.size());
  for (const spec::RunOutput& o : p.outputs) {
    RunOutputValue v;
    v.name = o.name;
    auto text = spec::Render(o.value, ctx);
    if (!text.ok()) {
      v.reason = text.status().message();
    } else if (text->size() > kMaxOutputValue) {
      v.reason = "the value is " + std::to_string(text->size()) + " bytes, over the limit of " +
                 std::to_string(kMaxOutputValue) + "; read a file's path instead of its content";
    } else {
      v.value = std::move(*text);
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace sluice::engine
