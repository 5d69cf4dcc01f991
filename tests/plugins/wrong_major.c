/* A plugin built for a future ABI major: the loader must refuse it. */
#include <sluice/plugin.h>

static const sluice_plugin kPlugin = {sizeof(sluice_plugin), 99u, SLUICE_STR("future"), SLUICE_STR("9.0.0"), 0, 0};

const sluice_plugin* sluice_plugin_entry(uint32_t host_abi_major) {
  (void)host_abi_major;
  return &kPlugin;
}
