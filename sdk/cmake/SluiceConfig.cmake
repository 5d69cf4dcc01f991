# find_package(Sluice) for plugin authors: gives sluice_add_plugin(),
# sluice_plugin_descriptor() and the SDK headers (sluice/plugin.h, sluice/plugin.hpp).
#
# What it needs: nothing for a C plugin (sluice/plugin.h is plain C99). The
# C++ helper sluice/plugin.hpp hands params over as nlohmann::json, so a C++
# plugin needs nlohmann-json 3 (Debian: nlohmann-json3-dev); when it is
# installed, sluice_add_plugin() links it, and when it is not, including
# plugin.hpp stops the build with that message.
find_package(nlohmann_json 3 QUIET)
get_filename_component(SLUICE_SDK_INCLUDE_DIR "${CMAKE_CURRENT_LIST_DIR}/../../../include" ABSOLUTE)
set(SLUICE_PLUGIN_VERSION_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/plugin.map")
# The installed sluice (<prefix>/lib/cmake/Sluice -> <prefix>/bin/sluice), for sluice_plugin_descriptor().
get_filename_component(SLUICE_EXECUTABLE "${CMAKE_CURRENT_LIST_DIR}/../../../bin/sluice" ABSOLUTE)
include("${CMAKE_CURRENT_LIST_DIR}/SluicePlugin.cmake")
set(Sluice_FOUND TRUE)
