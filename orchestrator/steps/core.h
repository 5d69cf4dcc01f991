// The `sluice` built-in plugin: step types that need nothing but the
// orchestrator. `sluice/wait` waits for a duration (a pause between two
// steps: let caches settle, give a canary's traffic time), honouring cancel.
#pragma once

#include "sluice/plugin.h"

namespace sluice::steps {

const sluice_plugin* CorePlugin();

}  // namespace sluice::steps
