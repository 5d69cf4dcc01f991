// testkit: a plugin for Sluice's own tests, built with the SDK like any other.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <unistd.h>

#include <sluice/plugin.hpp>

namespace {

// Does nothing: for measuring the cost of a plugin step.
struct Noop : sluice::Step {
  void run(sluice::Context&) override {}
};

// Says whether it runs on its process's main thread (in `sluice run`, the
// engine's): output main_thread, yes or no.
struct Thread : sluice::Step {
  void run(sluice::Context& ctx) override { ctx.output("main_thread", gettid() == getpid() ? "yes" : "no"); }
};

// Sets every param as an output, logs a line, and reports a metric per
// epoch when given `epochs`.
struct Echo : sluice::Step {
  void run(sluice::Context& ctx) override {
    for (auto it = ctx.params().begin(); it != ctx.params().end(); ++it)
      ctx.output(it.key(), it->is_string() ? it->get<std::string>() : it->dump());
    ctx.log() << "echo attempt " << ctx.attempt();
    int epochs = ctx.param<int>("epochs", 0);
    for (int e = 1; e <= epochs; ++e) ctx.metric("loss", 1.0 / e, e);
  }
};

// Throws with the given message.
struct Fail : sluice::Step {
  void run(sluice::Context& ctx) override { throw std::runtime_error(ctx.param<std::string>("message")); }
};

// Ends the process the way `how` says: segv, abort or exit.
struct Crash : sluice::Step {
  void run(sluice::Context& ctx) override {
    std::string how = ctx.param<std::string>("how");
    std::fflush(stdout);
    if (how == "segv") std::raise(SIGSEGV);
    if (how == "abort") std::abort();
    std::exit(3);
  }
};

// Waits `seconds`, stopping when cancelled unless told to ignore it.
struct Wait : sluice::Step {
  void run(sluice::Context& ctx) override {
    double seconds = ctx.param<double>("seconds");
    bool ignore = ctx.param<bool>("ignore_cancel", false);
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < end) {
      if (!ignore) ctx.stop_if_cancelled();
      ctx.progress(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / seconds, "waiting");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ctx.output("waited", "yes");
  }
};

}  // namespace

#ifndef TESTKIT_VERSION
#define TESTKIT_VERSION "0.3.1"
#endif
#ifndef TESTKIT_NAME
#define TESTKIT_NAME "testkit"
#endif

SLUICE_PLUGIN(TESTKIT_NAME, TESTKIT_VERSION,
              sluice::StepType<Noop>("noop", 1, "Does nothing", R"({"type": "object", "additionalProperties": false})", "{}",
                                     SLUICE_STEP_NONBLOCKING),
              sluice::StepType<Echo>("echo", 1, "Sets its params as outputs",
                                     R"({"type": "object", "properties": {"epochs": {"type": "integer", "minimum": 0},
                                                                          "greeting": {"type": "string", "default": "hello"}}})"),
              sluice::StepType<Fail>("fail", 1, "Throws",
                                     R"({"type": "object", "properties": {"message": {"type": "string"}},
                                         "required": ["message"], "additionalProperties": false})"),
              sluice::StepType<Crash>("crash", 1, "Ends its process",
                                      R"({"type": "object", "properties": {"how": {"enum": ["segv", "abort", "exit"]}},
                                          "required": ["how"], "additionalProperties": false})"),
              sluice::StepType<Wait>("wait", 2, "Waits, honouring cancel unless told not to",
                                     R"({"type": "object",
                                         "properties": {"seconds": {"type": "number", "minimum": 0, "description": "how long"},
                                                        "ignore_cancel": {"type": "boolean"}},
                                         "required": ["seconds"], "additionalProperties": false})"),
              sluice::StepType<Thread>("thread", 1, "Says whether it runs on the main thread", "{}",
                                       R"({"main_thread": "value"})"),
              sluice::StepType<Thread>("thread-nonblocking", 1, "Says whether it runs on the main thread", "{}",
                                       R"({"main_thread": "value"})", SLUICE_STEP_NONBLOCKING))
