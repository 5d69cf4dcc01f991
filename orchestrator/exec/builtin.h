// Step types compiled into the sluice binary. Each group is a plugin table
// like a library's (sdk/include/sluice/plugin.h), so a built-in step type
// gets everything a plugin's does: `uses: <plugin>/<type>`, the `with:`
// schema check, `isolation: inprocess | process`, its outputs checked at
// validate, a cache identity (the binary's version and the type's
// revision), and a line in `sluice plugins`. They are listed here, once; a
// library that names itself like one of them is refused.
#pragma once

#include <vector>

#include "sluice/plugin.h"

namespace sluice::exec {

// The built-in plugin tables, in listing order.
const std::vector<const sluice_plugin*>& BuiltinPlugins();

}  // namespace sluice::exec
