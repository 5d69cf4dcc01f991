# Compiles one file against a module's include root (build/arrows/NAME) and
# checks the outcome: EXPECT=pass, or EXPECT=fail with MISSING (the header
# the compiler must report as not found; any other failure fails the test).
execute_process(
  COMMAND ${CXX} -std=c++20 -fsyntax-only -I${ROOT} -I${SDK} ${FILE}
  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(EXPECT STREQUAL "pass")
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${FILE} should compile against ${ROOT}:\n${err}")
  endif()
else()
  if(code EQUAL 0)
    message(FATAL_ERROR "${FILE} compiled against ${ROOT}; the include should be refused")
  endif()
  string(FIND "${err}" "${MISSING}: No such file" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${FILE} failed, but not for want of ${MISSING}:\n${err}")
  endif()
endif()
