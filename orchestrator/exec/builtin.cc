#include "exec/builtin.h"

#include "steps/core.h"

namespace sluice::exec {

const std::vector<BuiltinPlugin>& BuiltinPlugins() {
  static const std::vector<BuiltinPlugin> plugins = {
      {steps::CorePlugin(), {"wait"}},  // sluice/wait sleeps until its duration passes
  };
  return plugins;
}

}  // namespace sluice::exec
