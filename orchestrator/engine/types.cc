#include "engine/types.h"

namespace sluice::engine {

namespace {
const char* kRunNames[] = {"pending", "running", "succeeded", "failed", "cancelled", "queued"};
const char* kStepNames[] = {"pending", "running", "succeeded", "failed", "skipped", "cached", "cancelled", "lost"};
}  // namespace

const char* Name(RunState s) { return kRunNames[static_cast<int>(s)]; }
const char* Name(StepState s) { return kStepNames[static_cast<int>(s)]; }

std::optional<RunState> ParseRunState(const std::string& s) {
  for (int i = 0; i < 6; ++i)
    if (s == kRunNames[i]) return static_cast<RunState>(i);
  return std::nullopt;
}

std::optional<StepState> ParseStepState(const std::string& s) {
  for (int i = 0; i < 8; ++i)
    if (s == kStepNames[i]) return static_cast<StepState>(i);
  return std::nullopt;
}

const char* Name(LineageEdge::Role r) {
  switch (r) {
    case LineageEdge::Role::kConsumed: return "consumed";
    case LineageEdge::Role::kProduced: return "produced";
    case LineageEdge::Role::kReused: return "reused";
  }
  return "?";
}

bool IsFinal(StepState s) {
  return s == StepState::kSucceeded || s == StepState::kFailed || s == StepState::kSkipped ||
         s == StepState::kCached || s == StepState::kCancelled;
}

}  // namespace sluice::engine
