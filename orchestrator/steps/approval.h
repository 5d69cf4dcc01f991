// What the sluice/approval step type (steps/core.cc) asks of the store,
// behind an interface because steps/ sits below store/ (STYLE.md: the
// direction of dependencies). runs/approval.h implements it over the
// `approvals` table; cli/main.cc installs it before anything runs, in
// `sluice run` and in a plugin host alike.
//
// The waiting step learns of a decision by looking every kApprovalPoll (the
// engine's cancel poll): a decision is a row in the store, made by another
// process (sluice approve, the server), so there is nothing to wake it but
// the store itself. A driver that dies while waiting loses nothing: the
// resumed attempt opens the same request and finds the decision made
// meanwhile, or keeps waiting for the first request's deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace sluice::steps {

inline constexpr std::chrono::milliseconds kApprovalPoll{250};

// A request's state as the step sees it.
struct ApprovalState {
  bool decided = false;
  bool approved = false;
  std::string by;        // "user:<login>", "token:<name>", "timeout"
  std::string comment;
  std::vector<std::pair<std::string, std::string>> values;  // the outputs it gives: name -> text
  int64_t deadline_ms = 0;                                  // 0: none
};

// Called on the attempt's thread, which the runner has made the current
// built-in attempt (exec/builtin.h): that names the store, run and step.
class ApprovalDesk {
 public:
  virtual ~ApprovalDesk() = default;
  // Opens the step's request from its `with:` (message, timeout,
  // on_timeout, values), or finds the one an earlier attempt opened.
  // InvalidSpec for a `with:` that cannot be a request.
  virtual Result<ApprovalState> Open(const nlohmann::json& with) = 0;
  // The request's state now; once its deadline has passed, the timeout's
  // decision unless someone decided first.
  virtual Result<ApprovalState> Look() = 0;
};

// Not owned; it must outlive every attempt. Not thread-safe: call it first.
void SetApprovalDesk(ApprovalDesk* desk);

}  // namespace sluice::steps
