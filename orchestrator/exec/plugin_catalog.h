// PluginCatalog: the step plugins Sluice can use, found and loaded with
// dlopen from the plugin search path (specs/plugin-abi.md):
//   1. each folder of $SLUICE_PLUGIN_PATH (':'-separated), in order;
//   2. plugins/ beside the spec;
//   3. the installed plugin folder, found from the running binary
//      (<prefix>/bin/sluice -> <prefix>/lib/sluice/plugins);
//   4. plugins/ beside the sluice executable (where a build tree puts ours).
// Every file named *.so in those folders is a plugin; its name comes from its
// table, not from the file name. A library with a descriptor beside it
// (LIB.json, exec/plugin_descriptor.h) is read from the descriptor and not
// loaded: its step types have no run function until OpenDescribedLibrary(). LoadFor() opens only the files named
// lib<name>.so or libsluice-<name>.so when those give every plugin it needs
// (a plugin that links a large library should not slow down every run), and
// everything otherwise.
//
// A file that cannot be a plugin is refused with a message naming it (and
// both ABI majors when they differ); refusals do not stop the others from
// loading. Libraries stay loaded for the catalog's life. Read-only after
// Load(), so it may be shared between threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/plugin.h"
#include "util/status.h"

namespace sluice::exec {

struct StepTypeInfo {
  std::string id;
  uint32_t revision = 0;
  std::string description;
  nlohmann::json params_schema;
  sluice_run_fn run = nullptr;  // null when read from a descriptor
  // The outputs run() sets (name, kind), if the step type declares them.
  std::optional<std::vector<std::pair<std::string, std::string>>> outputs;
  // False for a built-in step type registered as one that only waits
  // (exec/builtin.h): its attempts take no local slot. A library's: true.
  bool takes_slot = true;
  // Compiled into sluice: its run() may read CurrentBuiltinAttempt().
  bool builtin = false;
  // Declared SLUICE_STEP_NONBLOCKING: run in process, it runs on the
  // engine's thread.
  bool nonblocking = false;
};

// What `path` says of a plugin compiled into the sluice binary.
inline constexpr const char* kBuiltinPath = "built into sluice";

struct PluginInfo {
  std::string name;
  std::string version;
  std::string path;      // the library file, or kBuiltinPath
  std::vector<StepTypeInfo> step_types;
  // Read from this descriptor instead of the library (empty: from the library).
  std::string descriptor;
  // The library file's SHA-256 when reading the descriptor checked it (else
  // empty): the cache's code identity uses it rather than hash the file again.
  std::string library_sha256;
  const StepTypeInfo* Find(const std::string& id) const;
  bool builtin() const { return path == kBuiltinPath; }
  bool described() const { return !descriptor.empty(); }
};

// Loads one library. Errors: not a shared library, no entry symbol, a wrong
// ABI major, a bad or repeated step type id, a params schema that is not JSON.
Result<std::shared_ptr<PluginInfo>> LoadPlugin(const std::string& path);
// Reads a plugin table, from a library at `path` or built in, with the same checks.
Result<std::shared_ptr<PluginInfo>> ReadPlugin(const sluice_plugin* table, const std::string& path);
// A step type of the library at `path`, checked as a table's is: its id, its
// params schema (a JSON object) and its outputs (an object of known kinds,
// or null: not declared). Shared by the table and the descriptor readers.
Result<StepTypeInfo> MakeStepType(const std::string& path, std::string id, uint32_t revision, std::string description,
                                  nlohmann::json params_schema, const nlohmann::json& outputs);
// A step type as JSON: id, revision, description, params, and outputs and
// nonblocking when it declares them (`sluice plugins --format json`, descriptors).
nlohmann::json StepTypeJson(const StepTypeInfo& t);
// Whether `name` may name a plugin; Incompatible naming `path` if not.
Status CheckPluginName(const std::string& path, const std::string& name);
// The built-in plugin `name` (exec/builtin.h), for a plugin host.
Result<std::shared_ptr<PluginInfo>> LoadBuiltinPlugin(const std::string& name);

// A catalog always holds the plugins built into sluice (exec/builtin.h),
// first: a library of the same name is refused.
class PluginCatalog {
 public:
  PluginCatalog();
  // The search path for a spec in `spec_dir` (empty: none beside a spec).
  static std::vector<std::string> SearchPath(const std::string& spec_dir);
  // Loads every plugin found in `folders`.
  static PluginCatalog Load(const std::vector<std::string>& folders);
  // Loads what is needed to find the plugins `names`.
  static PluginCatalog LoadFor(const std::vector<std::string>& folders, const std::set<std::string>& names);

  const std::vector<std::shared_ptr<PluginInfo>>& plugins() const { return plugins_; }
  // Messages about files that were refused.
  const std::vector<std::string>& refused() const { return refused_; }
  const PluginInfo* Find(const std::string& name) const;

 private:
  // Reads one library's descriptor, or loads the library if it has none,
  // unless it is in the catalog already.
  void Add(const std::string& path);
  std::vector<std::shared_ptr<PluginInfo>> plugins_;
  std::vector<std::string> refused_;
};

}  // namespace sluice::exec
