#include "steps/core.h"
#include "steps/approval.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>

#include <sluice/plugin.hpp>

#include "util/duration.h"
#include "util/strings.h"

namespace sluice::steps {
namespace {

struct Wait : sluice::Step {
  void run(sluice::Context& ctx) override {
    std::string text = ctx.param<std::string>("duration");
    std::optional<Millis> d = ParseDuration(text);
    if (!d || d->count() < 0) throw std::runtime_error("duration: " + Quote(text) + " is not a duration (use 500ms, 30s, 5m, 1h)");
    Millis total = *d;
    auto start = std::chrono::steady_clock::now();
    auto end = start + total;
    ctx.log() << "waiting " << FormatDuration(total);
    auto next_report = start;
    while (true) {
      auto now = std::chrono::steady_clock::now();
      if (now >= end) break;
      ctx.stop_if_cancelled();
      if (now >= next_report && total.count() > 0) {
        double done = std::chrono::duration<double>(now - start) / std::chrono::duration<double>(total);
        ctx.progress(done, FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(end - now)) + " left");
        next_report = now + std::chrono::seconds(1);
      }
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::milliseconds(50)));
    }
    ctx.output("waited_ms", std::to_string(total.count()));
  }
};

ApprovalDesk* g_desk = nullptr;

// Waits until someone approves or rejects (steps/approval.h), or the
// request's deadline decides for them. A rejection fails the attempt, so
// `if: failure()` steps react; the decision's values become outputs either way.
struct Approval : sluice::Step {
  void run(sluice::Context& ctx) override {
    if (!g_desk) throw std::runtime_error("sluice/approval needs the store; this process has none");
    Result<ApprovalState> state = g_desk->Open(ctx.params());
    if (!state.ok()) throw std::runtime_error(state.status().message());
    std::string message = ctx.param<std::string>("message", std::string());
    std::string until;
    if (state->deadline_ms) {
      auto now_ms = std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
      until = " (times out in " + FormatDuration(Millis(std::max<int64_t>(0, state->deadline_ms - now_ms))) + ")";
    }
    ctx.log() << "waiting for approval" << (message.empty() ? "" : ": " + message) << until;
    ctx.progress(0, "waiting for approval");
    auto next_look = std::chrono::steady_clock::now() + kApprovalPoll;
    while (!state->decided) {
      ctx.stop_if_cancelled();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (std::chrono::steady_clock::now() < next_look) continue;
      next_look += kApprovalPoll;
      state = g_desk->Look();
      if (!state.ok()) throw std::runtime_error(state.status().message());
    }
    ctx.output("approved", state->approved ? "true" : "false");
    ctx.output("approver", state->by);
    ctx.output("comment", state->comment);
    for (const auto& [name, text] : state->values) ctx.output(name, text);
    std::string what = std::string(state->approved ? "approved" : "rejected") + " by " + state->by +
                       (state->comment.empty() ? "" : ": " + state->comment);
    ctx.log() << what;
    if (!state->approved) throw std::runtime_error(what);
  }
};

constexpr sluice_step_type kTypes[] = {
    sluice::StepType<Wait>("wait", 1, "Waits for a duration (30s, 5m, 1h), honouring cancel",
                           R"({"type": "object", "additionalProperties": false, "required": ["duration"],
                               "properties": {"duration": {"type": "string", "description": "how long: 500ms, 30s, 5m, 1h"}}})",
                           R"({"waited_ms": "value"})"),
    sluice::StepType<Approval>(
        "approval", 1, "Waits until a person approves or rejects (sluice approve, the API, the UI), or a timeout decides",
        R"json({"type": "object", "additionalProperties": false,
            "properties": {
              "message": {"type": "string", "description": "what the approver is asked"},
              "timeout": {"type": "string", "description": "how long to wait: 30m, 24h; none: forever"},
              "on_timeout": {"enum": ["reject", "approve"], "description": "the decision when the timeout passes (reject)"},
              "values": {"type": "object", "description": "values the approver gives, typed like params; each is an output",
                         "additionalProperties": {"type": "object"}}}})json",
        R"({"approved": "value", "approver": "value", "comment": "value"})"),
};

constexpr sluice_plugin kPlugin = {sizeof(sluice_plugin),
                                   SLUICE_PLUGIN_ABI_MAJOR,
                                   {"sluice", 6},
                                   {SLUICE_VERSION, sizeof(SLUICE_VERSION) - 1},
                                   sizeof(kTypes) / sizeof(kTypes[0]),
                                   kTypes};

}  // namespace

const sluice_plugin* CorePlugin() { return &kPlugin; }

void SetApprovalDesk(ApprovalDesk* desk) { g_desk = desk; }

}  // namespace sluice::steps
