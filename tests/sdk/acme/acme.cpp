#include <sluice/plugin.hpp>

struct Clean : sluice::Step {
  void run(sluice::Context& ctx) override {
    double threshold = ctx.param<double>("threshold");
    ctx.log() << "cleaning with threshold " << threshold;
    ctx.metric("kept", threshold * 100);
    ctx.output("kept", std::to_string(static_cast<int>(threshold * 100)));
  }
};

SLUICE_PLUGIN("acme", "1.2.0",
              sluice::StepType<Clean>("clean", 1, "Keeps rows above a threshold",
                                      R"({"type": "object", "required": ["threshold"], "additionalProperties": false,
                                          "properties": {"threshold": {"type": "number", "minimum": 0, "maximum": 1}}})"))
