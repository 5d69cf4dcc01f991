// plugins, plugins install, plugins describe, and PluginsFor (plugins.h).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/plugins.h"
#include "exec/plugin_descriptor.h"
#include "spec/schema_check.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::cli {

namespace fs = std::filesystem;

Result<exec::PluginCatalog> PluginsFor(const spec::Pipeline& p) {
  std::set<std::string> names;
  for (const spec::Step& s : p.steps)
    if (!s.uses.empty()) names.insert(spec::SplitUses(s.uses).first);
  if (names.empty()) return exec::PluginCatalog{};
  std::string dir = fs::absolute(p.file).parent_path().string();
  std::vector<std::string> folders = exec::PluginCatalog::SearchPath(dir);
  exec::PluginCatalog catalog = exec::PluginCatalog::LoadFor(folders, names);
  std::vector<std::string> errors;
  bool explain = false;
  for (const spec::Step& s : p.steps) {
    if (s.uses.empty()) continue;
    auto [plugin_name, type_id] = spec::SplitUses(s.uses);
    const exec::PluginInfo* plugin = catalog.Find(plugin_name);
    if (!plugin) {
      std::vector<std::string> names;
      for (const auto& x : catalog.plugins()) names.push_back(x->name);
      errors.push_back(spec::At(p.file, s.uses_pos,
                                "step '" + s.id + "' uses unknown plugin " + Quote(plugin_name) + DidYouMean(plugin_name, names)));
      explain = true;
      continue;
    }
    const exec::StepTypeInfo* type = plugin->Find(type_id);
    if (!type) {
      std::vector<std::string> ids;
      for (const auto& t : plugin->step_types) ids.push_back(t.id);
      errors.push_back(spec::At(p.file, s.uses_pos, "plugin '" + plugin_name + "' has no step type " + Quote(type_id) +
                                                        DidYouMean(type_id, ids) + " (it has " + Join(ids, ", ") + ")"));
      continue;
    }
    spec::CheckParamsAgainstSchema(p.file, s.id, s.uses, s.with ? &*s.with : nullptr, s.uses_pos, type->params_schema,
                                   &errors);
    if (type->outputs) {
      std::vector<std::string> known = spec::DeclaredOutputs(s);
      for (const spec::ParamSpec& v : s.approval_values) known.push_back(v.name);
      for (const auto& [name, kind] : *type->outputs)
        if (std::find(known.begin(), known.end(), name) == known.end()) known.push_back(name);
      spec::CheckOutputRefs(p.file, p.output_refs, s.id, known, &errors);
    }
  }
  if (explain) {
    errors.push_back("sluice: plugins are looked for in " + Join(folders, ", "));
    for (const std::string& r : catalog.refused()) errors.push_back("sluice: refused " + r);
  }
  if (!errors.empty()) return Status::InvalidSpec(Join(errors, "\n"));
  return catalog;
}

int Plugins(const std::string& dir, const std::string& format) {
  std::vector<std::string> folders = exec::PluginCatalog::SearchPath(fs::absolute(dir).lexically_normal().string());
  exec::PluginCatalog catalog = exec::PluginCatalog::Load(folders);
  if (format == "json") {
    nlohmann::json j = {{"search_path", folders}, {"refused", catalog.refused()}, {"plugins", nlohmann::json::array()}};
    for (const auto& p : catalog.plugins()) {
      nlohmann::json types = nlohmann::json::array();
      for (const auto& t : p->step_types) types.push_back(exec::StepTypeJson(t));
      j["plugins"].push_back({{"name", p->name}, {"version", p->version}, {"path", p->path}, {"step_types", types}});
    }
    std::cout << JsonText(j, 2) << "\n";
    return kExitOk;
  }
  std::printf("search path: %s\n", Join(folders, ":").c_str());
  for (const auto& p : catalog.plugins()) {
    std::printf("\n%s %s  (%s)\n", p->name.c_str(), p->version.c_str(), p->path.c_str());
    for (const auto& t : p->step_types) {
      std::printf("  %s/%s  rev %u  %s\n", p->name.c_str(), t.id.c_str(), t.revision, t.description.c_str());
      const auto& props = t.params_schema.value("properties", nlohmann::json::object());
      auto required = t.params_schema.value("required", nlohmann::json::array());
      for (auto it = props.begin(); it != props.end(); ++it) {
        bool req = std::find(required.begin(), required.end(), it.key()) != required.end();
        std::string type = it->contains("type") ? ((*it)["type"].is_string() ? (*it)["type"].get<std::string>() : (*it)["type"].dump())
                           : it->contains("enum") ? "one of " + (*it)["enum"].dump()
                                                  : "any";
        std::string line = "    " + it.key() + ": " + type + (req ? ", required" : "");
        if (it->contains("default")) line += ", default " + (*it)["default"].dump();
        if (it->contains("description")) line += "  " + (*it)["description"].get<std::string>();
        std::printf("%s\n", line.c_str());
      }
      if (t.outputs) {
        std::vector<std::string> outputs;
        for (const auto& [name, kind] : *t.outputs) outputs.push_back(name + " (" + kind + ")");
        std::printf("    outputs: %s\n", outputs.empty() ? "none" : Join(outputs, ", ").c_str());
      }
    }
  }
  for (const std::string& r : catalog.refused()) std::printf("\nrefused: %s\n", r.c_str());
  if (catalog.plugins().empty() && catalog.refused().empty()) std::printf("\nno plugins found\n");
  return kExitOk;
}

int InstallPlugin(const std::string& library, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(library, ec)) return Fail("sluice: " + Quote(library) + " is not a file", kExitUsage);
  fs::path source = fs::absolute(library).lexically_normal();
  auto info = exec::LoadPlugin(source.string());
  if (!info.ok()) return Fail("sluice: not installed: " + info.status().message(), kExitUsage);
  fs::path folder = fs::absolute(dir).lexically_normal() / "plugins";
  fs::path target = folder / source.filename();
  // Another library in the folder that holds a plugin of the same name would
  // make both refused: name it.
  for (const fs::directory_entry& e : fs::directory_iterator(folder, ec)) {
    if (e.path().extension() != ".so" || e.path().filename() == target.filename()) continue;
    auto other = exec::LoadPlugin(e.path().string());
    if (other.ok() && (*other)->name == (*info)->name)
      return Fail("sluice: not installed: " + e.path().string() + " already holds plugin " + Quote((*info)->name) +
                      " (version " + (*other)->version + "); remove it first",
                  kExitUsage);
  }
  fs::create_directories(folder, ec);
  if (ec) return Fail("sluice: create " + folder.string() + ": " + ec.message(), kExitFailed);
  if (fs::exists(target, ec) && fs::equivalent(source, target, ec))
    return Fail("sluice: " + source.string() + " is already the installed file", kExitUsage);
  // The old descriptor goes first: a reader in between loads the new library
  // itself rather than refuse it as not matching.
  fs::path descriptor = exec::DescriptorPath(target.string());
  fs::remove(descriptor, ec);
  if (ec) return Fail("sluice: remove " + descriptor.string() + ": " + ec.message(), kExitFailed);
  // Copy, then rename over: a process that loaded the old file keeps it.
  fs::path partial = target;
  partial += ".partial";
  fs::copy_file(source, partial, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(partial, target, ec);
  if (ec) {
    fs::remove(partial);
    return Fail("sluice: copy to " + target.string() + ": " + ec.message(), kExitFailed);
  }
  if (Status d = exec::WriteDescriptor(**info, target.string()); !d.ok())
    return Fail("sluice: installed " + target.string() + " without a descriptor: " + d.message(), kExitFailed);
  std::printf("installed %s %s (%s) as %s\n", (*info)->name.c_str(), (*info)->version.c_str(),
              Plural(static_cast<int64_t>((*info)->step_types.size()), "step type").c_str(), target.c_str());
  return kExitOk;
}

int DescribePlugin(const std::string& library) {
  std::error_code ec;
  if (!fs::is_regular_file(library, ec)) return Fail("sluice: " + Quote(library) + " is not a file", kExitUsage);
  std::string path = fs::absolute(library).lexically_normal().string();
  auto info = exec::LoadPlugin(path);
  if (!info.ok()) return Fail("sluice: not described: " + info.status().message(), kExitUsage);
  if (Status s = exec::WriteDescriptor(**info, path); !s.ok()) return Fail("sluice: " + s.message(), kExitFailed);
  std::printf("described %s %s (%s) in %s\n", (*info)->name.c_str(), (*info)->version.c_str(),
              Plural(static_cast<int64_t>((*info)->step_types.size()), "step type").c_str(),
              exec::DescriptorPath(path).c_str());
  return kExitOk;
}

}  // namespace sluice::cli
