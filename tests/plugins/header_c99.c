/* sluice/plugin.h compiles as C99 with every warning as an error. */
#include <sluice/plugin.h>

static sluice_status Run(const sluice_host* host, const sluice_step_call* call) {
  (void)call;
  host->log(host->host, (sluice_str)SLUICE_STR("hello from C"));
  return SLUICE_STATUS_OK;
}

static const sluice_step_type kTypes[] = {
    {sizeof(sluice_step_type), SLUICE_STR("hello"), 1u, SLUICE_STR("Says hello"), SLUICE_STR("{}"), Run,
     SLUICE_STR("{}"), 0u}};
static const sluice_plugin kPlugin = {sizeof(sluice_plugin), SLUICE_PLUGIN_ABI_MAJOR, SLUICE_STR("c-hello"),
                                      SLUICE_STR("1.0.0"), 1u, kTypes};

const sluice_plugin* sluice_plugin_entry(uint32_t host_abi_major) {
  (void)host_abi_major;
  return &kPlugin;
}
