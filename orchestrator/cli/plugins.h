// PluginsFor: the plugins a pipeline's steps use, loaded and checked, for
// the commands that check or run a spec (validate, plan, run, retry --reload).
#pragma once

#include "exec/plugin_catalog.h"
#include "spec/pipeline.h"
#include "util/status.h"

namespace sluice::cli {

// Loads the plugins a pipeline's steps use, and checks each `uses:` and
// `with:` against them. A pipeline without plugin steps loads nothing.
// InvalidSpec with one located line per problem (and, for an unknown
// plugin, where plugins were looked for and which were refused).
Result<exec::PluginCatalog> PluginsFor(const spec::Pipeline& p);

}  // namespace sluice::cli
