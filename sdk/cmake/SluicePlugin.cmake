# sluice_add_plugin(<name> <sources>...)
#
# Builds the step plugin lib<name>.so: C++17 or later, hidden symbols, a
# linker version script that exports only sluice_plugin_entry (visibility
# flags alone do not hide symbols pulled in from static archives), and
# -z defs so a missing symbol fails the build instead of the load.
# Expects SLUICE_SDK_INCLUDE_DIR and SLUICE_PLUGIN_VERSION_SCRIPT (set by
# SluiceConfig.cmake, or by Sluice's own build).
function(sluice_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_compile_features(${name} PRIVATE cxx_std_17)
  target_include_directories(${name} PRIVATE ${SLUICE_SDK_INCLUDE_DIR})
  if(TARGET nlohmann_json::nlohmann_json)
    target_link_libraries(${name} PRIVATE nlohmann_json::nlohmann_json)
  endif()
  set_target_properties(${name} PROPERTIES
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS ${SLUICE_PLUGIN_VERSION_SCRIPT})
  target_link_options(${name} PRIVATE
    "LINKER:--version-script=${SLUICE_PLUGIN_VERSION_SCRIPT}" "LINKER:-z,defs")
endfunction()
