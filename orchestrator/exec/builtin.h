// Step types compiled into the sluice binary. Each group is a plugin table
// like a library's (sdk/include/sluice/plugin.h), so a built-in step type
// gets everything a plugin's does: `uses: <plugin>/<type>`, the `with:`
// schema check, `isolation: inprocess | process`, its outputs checked at
// validate, a cache identity (the binary's version and the type's
// revision), and a line in `sluice plugins`. They are listed here, once; a
// library that names itself like one of them is refused.
//
// A registration may also say what the ABI cannot: which of its step types
// only wait. Such a type (sluice/wait, the deploy/* step types) sleeps on a timer
// or on another service's answer and uses no CPU of this machine, so its
// attempts take no local slot (LocalExecutor::Slots): with --jobs 1, a
// ten-minute canary does not hold back a training step. A third party's
// plugin cannot claim this; its step types always take resources.cpu slots.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sluice/plugin.h"

namespace sluice::exec {

struct BuiltinPlugin {
  const sluice_plugin* table;
  // Ids of the table's step types that only wait and take no local slot.
  // An id the table does not have makes the catalog refuse the plugin.
  std::vector<std::string> waiting_types;
};

// The built-in plugins, in listing order: sluice's own (sluice/wait), then
// those registered.
const std::vector<BuiltinPlugin>& BuiltinPlugins();
// Adds a built-in plugin whose module sits above exec/ (deploy/ drives the
// store and the gateway, which exec/ must not see). cli/main.cc registers
// them before anything reads the catalog. Not thread-safe: call it first.
void RegisterBuiltinPlugin(BuiltinPlugin plugin);

// The attempt a built-in step type runs for, from the attempt's environment
// (SLUICE_HOME, SLUICE_RUN_ID, SLUICE_STEP, SLUICE_ATTEMPT): what the ABI's
// call does not carry and a step type that drives the store needs (its
// file, and the run and step that own what it changes). A third party's
// plugin reads these from its process environment like any step.
struct BuiltinAttempt {
  std::string home;                  // absolute; the store is home + "/sluice.db"
  int64_t run_id = 0;
  std::string step_id;
  int attempt = 0;
  // Every SLUICE_* variable of the attempt's environment (the four above,
  // and the run's settings such as SLUICE_OPENLINEAGE_FILE), by name.
  std::map<std::string, std::string> sluice_env;
};
// Parsed from "KEY=value" entries; nullopt if one of the four is missing.
std::optional<BuiltinAttempt> BuiltinAttemptFromEnv(const std::vector<std::string>& env);
// The attempt whose built-in step type runs on this thread, set by the
// runners (in-process and in a plugin host) around the call; nullopt
// outside one.
std::optional<BuiltinAttempt> CurrentBuiltinAttempt();
// Makes `attempt` this thread's current one while it lives.
class BuiltinAttemptScope {
 public:
  explicit BuiltinAttemptScope(std::optional<BuiltinAttempt> attempt);
  ~BuiltinAttemptScope();
  BuiltinAttemptScope(const BuiltinAttemptScope&) = delete;
  BuiltinAttemptScope& operator=(const BuiltinAttemptScope&) = delete;

 private:
  std::optional<BuiltinAttempt> previous_;
};

}  // namespace sluice::exec
