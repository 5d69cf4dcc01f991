// Step types compiled into the sluice binary. Each group is a plugin table
// like a library's (sdk/include/sluice/plugin.h), so a built-in step type
// gets everything a plugin's does: `uses: <plugin>/<type>`, the `with:`
// schema check, `isolation: inprocess | process`, its outputs checked at
// validate, a cache identity (the binary's version and the type's
// revision), and a line in `sluice plugins`. They are listed here, once; a
// library that names itself like one of them is refused.
//
// A registration may also say what the ABI cannot: which of its step types
// only wait. Such a type (sluice/wait; deploy/canary next) sleeps on a timer
// or on another service's answer and uses no CPU of this machine, so its
// attempts take no local slot (LocalExecutor::Slots): with --jobs 1, a
// ten-minute canary does not hold back a training step. A third party's
// plugin cannot claim this; its step types always take resources.cpu slots.
#pragma once

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

// The built-in plugins, in listing order.
const std::vector<BuiltinPlugin>& BuiltinPlugins();

}  // namespace sluice::exec
