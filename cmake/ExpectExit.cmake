# Runs PROGRAM with ARGS (a ;-list) and fails unless it exits with EXPECT_CODE and its
# output contains EXPECT_TEXT. Used for command-line error handling tests.
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${args} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT code STREQUAL "${EXPECT_CODE}")
  message(FATAL_ERROR "${PROGRAM} ${ARGS}: exit code ${code}, expected ${EXPECT_CODE}\n${out}${err}")
endif()
string(FIND "${out}${err}" "${EXPECT_TEXT}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "${PROGRAM} ${ARGS}: output lacks '${EXPECT_TEXT}':\n${out}${err}")
endif()
message(STATUS "exit code ${code} and '${EXPECT_TEXT}' as expected")
