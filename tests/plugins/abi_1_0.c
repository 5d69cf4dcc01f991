/* A plugin built before ABI 1.1: its step types are laid out as ABI 1.0 laid
 * them out, without `outputs` (ABI 1.2) or `flags` (ABI 1.3), so its table is
 * an array of smaller elements than the host's. The host must step through
 * it by the plugin's size and read nothing beyond it. */
#include <stddef.h>
#include <sluice/plugin.h>

typedef struct step_type_1_0 {
  uint32_t struct_size;
  sluice_str id;
  uint32_t revision;
  sluice_str description;
  sluice_str params_schema;
  sluice_run_fn run;
} step_type_1_0;

static sluice_status Run(const sluice_host* host, const sluice_step_call* call) {
  (void)call;
  host->output(host->host, (sluice_str)SLUICE_STR("anything"), (sluice_str)SLUICE_STR("1"));
  return SLUICE_STATUS_OK;
}

static const step_type_1_0 kTypes[] = {
    {sizeof(step_type_1_0), SLUICE_STR("old"), 1u, SLUICE_STR("Built for ABI 1.0"), SLUICE_STR("{}"), Run},
    {sizeof(step_type_1_0), SLUICE_STR("older"), 1u, SLUICE_STR("Its neighbour"), SLUICE_STR("{}"), Run}};
static const sluice_plugin kPlugin = {sizeof(sluice_plugin), SLUICE_PLUGIN_ABI_MAJOR, SLUICE_STR("abi-one-oh"),
                                      SLUICE_STR("1.0.0"), 2u, (const sluice_step_type*)(const void*)kTypes};

const sluice_plugin* sluice_plugin_entry(uint32_t host_abi_major) {
  (void)host_abi_major;
  return &kPlugin;
}
