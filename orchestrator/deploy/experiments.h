// The experiment strategies of the `deploy` built-in plugin (specs/deploy.md,
// sections deploy/shadow and deploy/ab-test), registered by step_types.cc's
// one table:
//   deploy/shadow   mirrors a share of the live requests to the candidate
//                   for a duration and compares: agreement of the answers
//                   (the gateway's mirror counters), dropped copies, the
//                   candidate's error rate and p99 against the live
//                   version's; promotes if the thresholds hold and asked.
//   deploy/ab-test  a sticky split by a request key; each interval, the
//                   callers' feedback per variant (FeedbackStore) and the
//                   exposures per variant (/metrics) go through the
//                   sample-ratio check, the guardrails and DecideAB
//                   (abtest.h); promotes the winner B if asked, else keeps A.
// Each drives one Deployment (rollout.h) on the attempt's thread.
#pragma once

#include "sluice/plugin.h"

namespace sluice::deploy {

sluice_step_type ShadowStepType();
sluice_step_type ABTestStepType();

}  // namespace sluice::deploy
