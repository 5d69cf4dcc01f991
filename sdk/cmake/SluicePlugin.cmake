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

# sluice_plugin_descriptor(<target> [DESTINATION <dir>])
#
# Opt-in: after each build of the plugin <target>, `sluice plugins describe`
# writes its descriptor, lib<name>.so.json, beside the library, so sluice
# reads the plugin's step types from it without loading the library (and what
# the library links) to check a spec (specs/plugin-abi.md, "Descriptors").
# Describing loads the library: a plugin that cannot load cannot use this.
# With DESTINATION (the one install(TARGETS) gives the library, relative to
# the prefix; call this after it), `cmake --install` describes the installed
# copy too: installing may rewrite a library (its RPATH, --strip), and a
# descriptor names the library's exact bytes.
# Expects SLUICE_EXECUTABLE: the sluice to run, a path or a target of this
# build (set by SluiceConfig.cmake, or by Sluice's own build).
function(sluice_plugin_descriptor target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "DESTINATION" "")
  set(sluice "${SLUICE_EXECUTABLE}")
  if(TARGET "${SLUICE_EXECUTABLE}")
    add_dependencies(${target} ${SLUICE_EXECUTABLE})
    set(sluice "$<TARGET_FILE:${SLUICE_EXECUTABLE}>")
  endif()
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND "${sluice}" plugins describe "$<TARGET_FILE:${target}>"
    VERBATIM)
  if(arg_DESTINATION)
    install(CODE "
      set(library \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${arg_DESTINATION}/$<TARGET_FILE_NAME:${target}>\")
      execute_process(COMMAND \"${sluice}\" plugins describe \"\${library}\" RESULT_VARIABLE failed)
      if(failed)
        message(FATAL_ERROR \"sluice plugins describe \${library} failed\")
      endif()")
  endif()
endfunction()
