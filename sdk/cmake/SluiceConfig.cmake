# find_package(Sluice) for plugin authors: gives sluice_add_plugin() and
# the SDK headers (sluice/plugin.h, sluice/plugin.hpp).
include(CMakeFindDependencyMacro)
find_dependency(nlohmann_json 3)
get_filename_component(SLUICE_SDK_INCLUDE_DIR "${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
set(SLUICE_PLUGIN_VERSION_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/plugin.map")
include("${CMAKE_CURRENT_LIST_DIR}/SluicePlugin.cmake")
set(Sluice_FOUND TRUE)
