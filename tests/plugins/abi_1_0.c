/* A plugin built before ABI 1.1: its step type table ends before `outputs`.
 * What lies beyond its size is not JSON; the host must not read it. */
#include <stddef.h>
#include <sluice/plugin.h>

static sluice_status Run(const sluice_host* host, const sluice_step_call* call) {
  (void)call;
  host->output(host->host, (sluice_str)SLUICE_STR("anything"), (sluice_str)SLUICE_STR("1"));
  return SLUICE_STATUS_OK;
}

static const sluice_step_type kTypes[] = {{offsetof(sluice_step_type, outputs), SLUICE_STR("old"), 1u,
                                           SLUICE_STR("Built for ABI 1.0"), SLUICE_STR("{}"), Run,
                                           SLUICE_STR("not JSON: beyond the table's size")}};
static const sluice_plugin kPlugin = {sizeof(sluice_plugin), SLUICE_PLUGIN_ABI_MAJOR, SLUICE_STR("abi-one-oh"),
                                      SLUICE_STR("1.0.0"), 1u, kTypes};

const sluice_plugin* sluice_plugin_entry(uint32_t host_abi_major) {
  (void)host_abi_major;
  return &kPlugin;
}
