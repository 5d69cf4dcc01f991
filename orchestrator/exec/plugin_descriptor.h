// Plugin descriptors: what a plugin library's table says, written beside the
// library as LIB.json (specs/plugin-abi.md, "Descriptors"), so that checking
// a spec against a plugin's step types does not load the library and what
// it links (libsluice-torch.so pulls in libtorch, about 0.3 s).
//
// A descriptor names the library file by its size and SHA-256; one that does
// not match the file beside it is refused, never trusted. The library itself
// is loaded when an in-process attempt of it first starts, and its table must
// then be the one the descriptor gave. Functions only; no state.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "exec/plugin_catalog.h"
#include "util/status.h"

namespace sluice::exec {

// The one format this sluice writes and reads.
inline constexpr int kDescriptorFormat = 1;

// Where the descriptor of `library` is: beside it, `library` + ".json".
std::string DescriptorPath(const std::string& library);

// Writes the descriptor of `plugin` (read from a library, by LoadPlugin) for
// the file `library`, which holds that library's bytes: its size and SHA-256
// are taken now. Atomic: a reader sees the old descriptor or the new one.
Status WriteDescriptor(const PluginInfo& plugin, const std::string& library);

// The plugin the descriptor beside `library` describes, checked as a table
// is (exec/plugin_catalog.h), with `descriptor` and `library_sha256` set.
// Incompatible, naming the descriptor and saying how to rewrite it, when it
// is not a descriptor of this format or ABI major, or the library's size or
// SHA-256 is not the one it names.
Result<std::shared_ptr<PluginInfo>> ReadDescribedPlugin(const std::string& library);

// Loads the library of a plugin read from its descriptor, so its step types
// can run. Incompatible when it cannot be loaded, or when its table (name,
// version, step types, schemas, outputs) is not the one the descriptor gave.
Result<std::shared_ptr<PluginInfo>> OpenDescribedLibrary(const PluginInfo& described);

}  // namespace sluice::exec
