#include "exec/builtin.h"

#include "steps/core.h"

namespace sluice::exec {

const std::vector<const sluice_plugin*>& BuiltinPlugins() {
  static const std::vector<const sluice_plugin*> tables = {steps::CorePlugin()};
  return tables;
}

}  // namespace sluice::exec
