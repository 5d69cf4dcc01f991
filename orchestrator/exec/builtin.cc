#include "exec/builtin.h"

#include <cstdlib>

#include "steps/core.h"

namespace sluice::exec {

namespace {

std::vector<BuiltinPlugin>& Plugins() {
  static std::vector<BuiltinPlugin> plugins = {
      // sluice/wait sleeps until its duration passes; sluice/approval until someone decides
      {steps::CorePlugin(), {"wait", "approval"}},
  };
  return plugins;
}

thread_local std::optional<BuiltinAttempt> t_attempt;

}  // namespace

const std::vector<BuiltinPlugin>& BuiltinPlugins() { return Plugins(); }

void RegisterBuiltinPlugin(BuiltinPlugin plugin) { Plugins().push_back(std::move(plugin)); }

std::optional<BuiltinAttempt> BuiltinAttemptFromEnv(const std::vector<std::string>& env) {
  BuiltinAttempt a;
  bool home = false, run = false, step = false, attempt = false;
  for (const std::string& e : env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos) continue;
    std::string key = e.substr(0, eq), value = e.substr(eq + 1);
    if (key.rfind("SLUICE_", 0) == 0) a.sluice_env[key] = value;
    if (key == "SLUICE_HOME") {
      a.home = value;
      home = true;
    } else if (key == "SLUICE_RUN_ID") {
      a.run_id = std::strtoll(value.c_str(), nullptr, 10);
      run = a.run_id > 0;
    } else if (key == "SLUICE_STEP") {
      a.step_id = value;
      step = !value.empty();
    } else if (key == "SLUICE_ATTEMPT") {
      a.attempt = static_cast<int>(std::strtol(value.c_str(), nullptr, 10));
      attempt = a.attempt > 0;
    }
  }
  if (!home || !run || !step || !attempt) return std::nullopt;
  return a;
}

std::optional<BuiltinAttempt> CurrentBuiltinAttempt() { return t_attempt; }

BuiltinAttemptScope::BuiltinAttemptScope(std::optional<BuiltinAttempt> attempt) : previous_(std::move(t_attempt)) {
  t_attempt = std::move(attempt);
}

BuiltinAttemptScope::~BuiltinAttemptScope() { t_attempt = std::move(previous_); }

}  // namespace sluice::exec
