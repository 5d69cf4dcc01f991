#include "exec/plugin_descriptor.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "util/hash.h"
#include "util/json.h"
#include "util/strings.h"

namespace sluice::exec {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What the descriptor says of the plugin, without the file it names: the
// part a loaded library's table must agree with.
json Contents(const PluginInfo& p) {
  json types = json::array();
  for (const StepTypeInfo& t : p.step_types) types.push_back(StepTypeJson(t));
  return {{"name", p.name}, {"version", p.version}, {"step_types", std::move(types)}};
}

std::string RewriteHint(const std::string& library) {
  return "; rewrite it with 'sluice plugins describe " + library + "'";
}

std::string Short(const std::string& sha256) { return sha256.substr(0, 12); }

// Where a library's table and its descriptor part ways, in a few words.
std::string Difference(const json& library, const json& descriptor) {
  for (const char* key : {"name", "version"})
    if (library[key] != descriptor[key])
      return std::string("its ") + key + " is " + Quote(library[key].get<std::string>()) + ", the descriptor says " +
             Quote(descriptor[key].get<std::string>());
  std::vector<std::string> ids, described_ids;
  for (const json& t : library["step_types"]) ids.push_back(t["id"]);
  for (const json& t : descriptor["step_types"]) described_ids.push_back(t["id"]);
  if (ids != described_ids)
    return "its step types are " + Join(ids, ", ") + ", the descriptor lists " + Join(described_ids, ", ");
  for (size_t i = 0; i < ids.size(); ++i)
    if (library["step_types"][i] != descriptor["step_types"][i])
      return "step type '" + ids[i] + "' differs";
  return "";
}

}  // namespace

std::string DescriptorPath(const std::string& library) { return library + ".json"; }

Status WriteDescriptor(const PluginInfo& plugin, const std::string& library) {
  int64_t size = 0;
  auto sha = Sha256File(library, {.follow_links = true, .size = &size});
  if (!sha.ok()) return sha.status().WithContext("describe plugin " + library);
  json j = {{"sluice_plugin_descriptor", kDescriptorFormat},
            {"abi_major", SLUICE_PLUGIN_ABI_MAJOR},
            {"library", {{"file", fs::path(library).filename().string()}, {"size", size}, {"sha256", *sha}}}};
  j.update(Contents(plugin));
  std::string path = DescriptorPath(library);
  std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::trunc);
    out << JsonText(j, 2) << "\n";
    out.close();
    if (!out) return Status::IoError("write " + partial + ": " + std::strerror(errno));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    Status s = Status::FromErrno("rename " + partial + " to " + path, errno);
    std::remove(partial.c_str());
    return s;
  }
  return Status::Ok();
}

Result<std::shared_ptr<PluginInfo>> ReadDescribedPlugin(const std::string& library) {
  std::string path = DescriptorPath(library);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return Status::IoError("plugin " + library + ": read its descriptor " + path + ": " + std::strerror(errno));
  auto bad = [&](const std::string& why) {
    return Status::Incompatible("plugin " + library + ": its descriptor " + path + " " + why + RewriteHint(library));
  };
  json j = json::parse(text.str(), nullptr, false);
  if (!j.is_object()) return bad("is not a JSON object");
  auto info = std::make_shared<PluginInfo>();
  info->path = library;
  info->descriptor = path;
  try {
    int format = j.value("sluice_plugin_descriptor", 0);
    if (format != kDescriptorFormat)
      return bad("has format " + std::to_string(format) + "; this sluice reads format " +
                 std::to_string(kDescriptorFormat));
    uint32_t abi = j.at("abi_major").get<uint32_t>();
    if (abi != SLUICE_PLUGIN_ABI_MAJOR)
      return Status::Incompatible("plugin " + library + " was built for plugin ABI " + std::to_string(abi) +
                                  " (its descriptor says); this sluice speaks ABI " +
                                  std::to_string(SLUICE_PLUGIN_ABI_MAJOR));
    // The file the descriptor names, by size first (a stat), then by hash.
    const json& file = j.at("library");
    int64_t described_size = file.at("size").get<int64_t>();
    std::error_code ec;
    auto size = static_cast<int64_t>(fs::file_size(library, ec));
    if (ec) return Status::IoError("plugin " + library + ": " + ec.message());
    if (size != described_size)
      return bad("was written for another build of the library (the library is " + std::to_string(size) +
                 " bytes, the descriptor says " + std::to_string(described_size) + ")");
    auto sha = Sha256File(library);
    if (!sha.ok()) return sha.status().WithContext("plugin " + library);
    std::string described_sha = file.at("sha256").get<std::string>();
    if (*sha != described_sha)
      return bad("was written for another build of the library (its SHA-256 is " + Short(*sha) +
                 "..., the descriptor says " + Short(described_sha) + "...)");
    info->library_sha256 = *sha;

    info->name = j.at("name").get<std::string>();
    info->version = j.at("version").get<std::string>();
    if (Status s = CheckPluginName(library, info->name); !s.ok()) return s;
    std::set<std::string> ids;
    for (const json& t : j.at("step_types")) {
      auto s = MakeStepType(library, t.at("id").get<std::string>(), t.at("revision").get<uint32_t>(),
                            t.value("description", std::string()), t.at("params"), t.value("outputs", json()));
      if (!s.ok()) return s.status();
      if (!ids.insert(s->id).second)
        return Status::Incompatible("plugin " + library + ": step type '" + s->id + "' is defined twice");
      s->nonblocking = t.value("nonblocking", false);
      info->step_types.push_back(std::move(*s));
    }
  } catch (const json::exception& e) {
    return bad(std::string("is malformed: ") + e.what());
  }
  return info;
}

Result<std::shared_ptr<PluginInfo>> OpenDescribedLibrary(const PluginInfo& described) {
  auto loaded = LoadPlugin(described.path);
  if (!loaded.ok()) return loaded;
  json library = Contents(**loaded), descriptor = Contents(described);
  if (library != descriptor)
    return Status::Incompatible("plugin " + described.path + " does not match its descriptor " + described.descriptor +
                                " (" + Difference(library, descriptor) + ")" + RewriteHint(described.path));
  return loaded;
}

}  // namespace sluice::exec
