#include "steps/core.h"

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

constexpr sluice_step_type kTypes[] = {
    sluice::StepType<Wait>("wait", 1, "Waits for a duration (30s, 5m, 1h), honouring cancel",
                           R"({"type": "object", "additionalProperties": false, "required": ["duration"],
                               "properties": {"duration": {"type": "string", "description": "how long: 500ms, 30s, 5m, 1h"}}})",
                           R"({"waited_ms": "value"})"),
};

constexpr sluice_plugin kPlugin = {sizeof(sluice_plugin),
                                   SLUICE_PLUGIN_ABI_MAJOR,
                                   {"sluice", 6},
                                   {SLUICE_VERSION, sizeof(SLUICE_VERSION) - 1},
                                   sizeof(kTypes) / sizeof(kTypes[0]),
                                   kTypes};

}  // namespace

const sluice_plugin* CorePlugin() { return &kPlugin; }

}  // namespace sluice::steps
