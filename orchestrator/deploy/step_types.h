// The `deploy` built-in plugin: deployment strategies as pipeline step
// types (specs/deploy.md), over the serving gateway's store
// (specs/services.md):
//   deploy/canary      weight steps with pauses and analysis, automatic rollback
//   deploy/blue-green  the candidate beside the live version, a smoke check on
//                      its preview route, one atomic switch, a watch after it
//   deploy/rollback    back to the version the last promotion replaced
// Each drives one rollout (rollout.h) that a resumed run continues. They
// only wait on the gateway and the store, so their attempts take no local
// slot (exec/builtin.h); cli/main.cc registers the plugin.
#pragma once

#include "sluice/plugin.h"

namespace sluice::deploy {

const sluice_plugin* DeployPlugin();

}  // namespace sluice::deploy
