// sluice/plugin.h and sluice/plugin.hpp compile as C++17 and C++20 with every warning as an error.
#include <sluice/plugin.h>
#include <sluice/plugin.hpp>

namespace {
struct Hello : sluice::Step {
  void run(sluice::Context& ctx) override { ctx.log() << "hello"; }
};
}  // namespace

SLUICE_PLUGIN("cxx-hello", "1.0.0", sluice::StepType<Hello>("hello", 1, "Says hello", "{}"))
