// The run's outputs: the spec's top-level `outputs:` (specs/pipeline.md
// "Run outputs"), rendered once every step of the run, finally steps
// included, is final. Pure: reads the run through a RunScope, writes nothing;
// the Engine stores what it returns. Engine's thread only.
#pragma once

#include <vector>

#include "engine/attempt_render.h"
#include "engine/types.h"

namespace sluice::engine {

// Each output of the pipeline, in the spec's order: its rendered text, or
// none with the reason (an expression that failed, as a step's would: "${{
// steps.train.outputs.model }}: step 'train' has no output 'model' (it
// failed)"; a value over kMaxOutputValue).
std::vector<RunOutputValue> RenderRunOutputs(const RunScope& run);

}  // namespace sluice::engine
