#include "exec/plugin_catalog.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "exec/builtin.h"
#include "exec/plugin_descriptor.h"
#include "spec/pipeline.h"
#include "util/strings.h"

#ifndef SLUICE_INSTALL_LIBDIR
#define SLUICE_INSTALL_LIBDIR "lib"
#endif

namespace sluice::exec {

namespace fs = std::filesystem;

namespace {

std::string Str(sluice_str s) { return s.data ? std::string(s.data, s.size) : std::string(); }

bool IsTypeId(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// The smallest tables this host can read: everything up to `run`.
constexpr uint32_t kMinPluginSize = offsetof(sluice_plugin, step_types) + sizeof(const sluice_step_type*);
constexpr uint32_t kMinStepTypeSize = offsetof(sluice_step_type, run) + sizeof(sluice_run_fn);
// A step type built with ABI 1.2 or later may declare its outputs.
constexpr uint32_t kOutputsStepTypeSize = offsetof(sluice_step_type, outputs) + sizeof(sluice_str);
// A step type built with ABI 1.3 or later may have flags.
constexpr uint32_t kFlagsStepTypeSize = offsetof(sluice_step_type, flags) + sizeof(uint32_t);

}  // namespace

const StepTypeInfo* PluginInfo::Find(const std::string& id) const {
  for (const StepTypeInfo& t : step_types)
    if (t.id == id) return &t;
  return nullptr;
}

Result<std::shared_ptr<PluginInfo>> LoadPlugin(const std::string& path) {
  // RTLD_LOCAL: two plugins' symbols never mix. Never unloaded: a plugin's
  // static data must outlive every attempt that may still run.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* e = ::dlerror();
    return Status::Incompatible("plugin " + path + " is not a loadable shared library: " + (e ? e : "unknown error"));
  }
  auto entry = reinterpret_cast<sluice_plugin_entry_fn>(::dlsym(handle, SLUICE_PLUGIN_ENTRY_SYMBOL));
  if (!entry)
    return Status::Incompatible("plugin " + path + " has no " SLUICE_PLUGIN_ENTRY_SYMBOL "() entry function");
  const sluice_plugin* p = entry(SLUICE_PLUGIN_ABI_MAJOR);
  if (!p) return Status::Incompatible("plugin " + path + ": " SLUICE_PLUGIN_ENTRY_SYMBOL "() returned no plugin");
  return ReadPlugin(p, path);
}

Status CheckPluginName(const std::string& path, const std::string& name) {
  if (IsPipelineName(name)) return Status::Ok();
  return Status::Incompatible("plugin " + path + ": name " + Quote(name) + " must match [a-z0-9][a-z0-9-]*");
}

Result<StepTypeInfo> MakeStepType(const std::string& path, std::string id, uint32_t revision, std::string description,
                                  nlohmann::json params_schema, const nlohmann::json& outputs) {
  StepTypeInfo s;
  s.id = std::move(id);
  if (!IsTypeId(s.id))
    return Status::Incompatible("plugin " + path + ": step type id " + Quote(s.id) + " must match [a-z0-9-]+");
  s.revision = revision;
  s.description = std::move(description);
  if (!params_schema.is_object())
    return Status::Incompatible("plugin " + path + ": the params schema of step type '" + s.id + "' is not a JSON object");
  s.params_schema = std::move(params_schema);
  if (outputs.is_null()) return s;
  if (!outputs.is_object())
    return Status::Incompatible("plugin " + path + ": the outputs of step type '" + s.id + "' are not a JSON object");
  const auto& kinds = spec::OutputKinds();
  s.outputs.emplace();
  for (const auto& [name, kind] : outputs.items()) {
    if (!kind.is_string() || std::find(kinds.begin(), kinds.end(), kind.get<std::string>()) == kinds.end())
      return Status::Incompatible("plugin " + path + ": output '" + name + "' of step type '" + s.id +
                                  "' has no known kind (kinds: " + Join(kinds, ", ") + ")");
    s.outputs->emplace_back(name, kind.get<std::string>());
  }
  return s;
}

nlohmann::json StepTypeJson(const StepTypeInfo& t) {
  nlohmann::json type = {{"id", t.id}, {"revision", t.revision}, {"description", t.description}, {"params", t.params_schema}};
  if (t.outputs) {
    nlohmann::json outputs = nlohmann::json::object();
    for (const auto& [name, kind] : *t.outputs) outputs[name] = kind;
    type["outputs"] = std::move(outputs);
  }
  if (t.nonblocking) type["nonblocking"] = true;
  return type;
}

Result<std::shared_ptr<PluginInfo>> ReadPlugin(const sluice_plugin* p, const std::string& path) {
  if (p->abi_major != SLUICE_PLUGIN_ABI_MAJOR)
    return Status::Incompatible("plugin " + path + " was built for plugin ABI " + std::to_string(p->abi_major) +
                                "; this sluice speaks ABI " + std::to_string(SLUICE_PLUGIN_ABI_MAJOR));
  if (p->struct_size < kMinPluginSize)
    return Status::Incompatible("plugin " + path + ": its plugin table is " + std::to_string(p->struct_size) +
                                " bytes, less than the " + std::to_string(kMinPluginSize) + " of ABI 1");
  auto info = std::make_shared<PluginInfo>();
  info->name = Str(p->name);
  info->version = Str(p->version);
  info->path = path;
  if (Status s = CheckPluginName(path, info->name); !s.ok()) return s;
  std::set<std::string> ids;
  // The step types are an array of them as the plugin was built: step by
  // their size then, which an older plugin's is smaller than ours.
  uint32_t stride = p->step_type_count > 0 ? p->step_types[0].struct_size : 0;
  for (uint32_t i = 0; i < p->step_type_count; ++i) {
    const sluice_step_type& t =
        *reinterpret_cast<const sluice_step_type*>(reinterpret_cast<const char*>(p->step_types) + size_t{i} * stride);
    if (t.struct_size < kMinStepTypeSize)
      return Status::Incompatible("plugin " + path + ": step type " + std::to_string(i) + " table is too small");
    if (t.struct_size != stride)
      return Status::Incompatible("plugin " + path + ": step type " + std::to_string(i) + " table is " +
                                  std::to_string(t.struct_size) + " bytes, the first one's " + std::to_string(stride));
    std::string schema = Str(t.params_schema);
    auto params = nlohmann::json::parse(schema.empty() ? "{}" : schema, nullptr, false);
    if (params.is_discarded()) params = nullptr;  // MakeStepType says it is not an object
    nlohmann::json outputs;  // null: not declared
    if (t.struct_size >= kOutputsStepTypeSize && t.outputs.size > 0) {
      outputs = nlohmann::json::parse(Str(t.outputs), nullptr, false);
      if (outputs.is_discarded() || outputs.is_null()) outputs = nlohmann::json::array();  // refused below
    }
    auto s = MakeStepType(path, Str(t.id), t.revision, Str(t.description), std::move(params), outputs);
    if (!s.ok()) return s.status();
    if (!ids.insert(s->id).second)
      return Status::Incompatible("plugin " + path + ": step type '" + s->id + "' is defined twice");
    if (!t.run) return Status::Incompatible("plugin " + path + ": step type '" + s->id + "' has no run function");
    s->run = t.run;
    s->nonblocking = t.struct_size >= kFlagsStepTypeSize && (t.flags & SLUICE_STEP_NONBLOCKING);
    info->step_types.push_back(std::move(*s));
  }
  return info;
}

std::vector<std::string> PluginCatalog::SearchPath(const std::string& spec_dir) {
  std::vector<std::string> folders;
  if (const char* env = std::getenv("SLUICE_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string dir;
    while (std::getline(ss, dir, ':'))
      if (!dir.empty()) folders.push_back(dir);
  }
  if (!spec_dir.empty()) folders.push_back((fs::path(spec_dir) / "plugins").string());
  std::error_code ec;
  fs::path bin = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (!ec) {
    // Installed: <prefix>/bin/sluice and <prefix>/<libdir>/sluice/plugins.
    folders.push_back((bin.parent_path() / SLUICE_INSTALL_LIBDIR / "sluice" / "plugins").lexically_normal().string());
    // A build tree: plugins/ beside the binary.
    folders.push_back((bin / "plugins").string());
  }
  return folders;
}

namespace {

// The *.so files of `folders`, in search-path order, each once.
std::vector<std::string> LibraryFiles(const std::vector<std::string>& folders) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& folder : folders) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(folder, ec))
      if (e.path().extension() == ".so") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::string path = fs::weakly_canonical(file, ec).string();
      if (seen.insert(path).second) out.push_back(path);  // not the same folder twice
    }
  }
  return out;
}

// Whether `path` is named as plugin `name`'s library: lib<name>.so or libsluice-<name>.so.
bool NamedFor(const std::string& path, const std::string& name) {
  std::string file = fs::path(path).filename().string();
  return file == "lib" + name + ".so" || file == "libsluice-" + name + ".so";
}

// A built-in plugin's table, with what its registration adds.
Result<std::shared_ptr<PluginInfo>> ReadBuiltin(const BuiltinPlugin& builtin) {
  auto p = ReadPlugin(builtin.table, kBuiltinPath);
  if (!p.ok()) return p;
  for (StepTypeInfo& t : (*p)->step_types) t.builtin = true;
  for (const std::string& id : builtin.waiting_types) {
    auto it = std::find_if((*p)->step_types.begin(), (*p)->step_types.end(),
                           [&](const StepTypeInfo& t) { return t.id == id; });
    if (it == (*p)->step_types.end())
      return Status::Internal("built-in plugin " + Quote((*p)->name) + " registers " + Quote(id) +
                              " as a waiting step type, but has no such step type");
    it->takes_slot = false;
  }
  return p;
}

}  // namespace

PluginCatalog::PluginCatalog() {
  for (const BuiltinPlugin& builtin : BuiltinPlugins()) {
    auto p = ReadBuiltin(builtin);
    if (p.ok()) plugins_.push_back(std::move(*p));
    else refused_.push_back(p.status().message());  // a defect of this binary, shown by sluice plugins
  }
}

Result<std::shared_ptr<PluginInfo>> LoadBuiltinPlugin(const std::string& name) {
  for (const BuiltinPlugin& builtin : BuiltinPlugins())
    if (std::string_view(builtin.table->name.data, builtin.table->name.size) == name) return ReadBuiltin(builtin);
  return Status::NotFound("this sluice has no built-in plugin " + Quote(name));
}

void PluginCatalog::Add(const std::string& path) {
  if (std::any_of(plugins_.begin(), plugins_.end(), [&](const auto& p) { return p->path == path; })) return;
  std::error_code ec;
  auto p = fs::exists(DescriptorPath(path), ec) ? ReadDescribedPlugin(path) : LoadPlugin(path);
  if (!p.ok()) {
    refused_.push_back(p.status().message());
    return;
  }
  if (const PluginInfo* other = Find((*p)->name)) {
    refused_.push_back("plugin " + path + " is named '" + (*p)->name + "' like " +
                       (other->builtin() ? "the step types built into sluice" : other->path + ", which was found first") +
                       "; rename or remove one");
    return;
  }
  plugins_.push_back(std::move(*p));
}

PluginCatalog PluginCatalog::Load(const std::vector<std::string>& folders) {
  PluginCatalog c;
  for (const std::string& path : LibraryFiles(folders)) c.Add(path);
  return c;
}

PluginCatalog PluginCatalog::LoadFor(const std::vector<std::string>& folders, const std::set<std::string>& names) {
  std::vector<std::string> files = LibraryFiles(folders);
  PluginCatalog c;
  for (const std::string& name : names)
    for (const std::string& path : files)
      if (NamedFor(path, name)) {
        c.Add(path);
        if (c.Find(name)) break;
      }
  bool all = std::all_of(names.begin(), names.end(), [&](const std::string& n) { return c.Find(n) != nullptr; });
  if (all) return c;
  for (const std::string& path : files) c.Add(path);
  return c;
}

const PluginInfo* PluginCatalog::Find(const std::string& name) const {
  for (const auto& p : plugins_)
    if (p->name == name) return p.get();
  return nullptr;
}

}  // namespace sluice::exec
