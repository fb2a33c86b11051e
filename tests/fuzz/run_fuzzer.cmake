# Builds one fuzz target with clang++ (-fsanitize=fuzzer,address,undefined) and
# runs it for a bounded time on its committed seed corpus.
# Variables: CLANGXX, NAME, SOURCE, INCLUDE_DIR, SYSTEM_INCLUDES ('|'-separated,
# may be empty), CORPUS, DICT, WORK_DIR, SECONDS.
foreach(var CLANGXX NAME SOURCE INCLUDE_DIR CORPUS DICT WORK_DIR SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR}/corpus)
file(MAKE_DIRECTORY ${WORK_DIR}/corpus)
set(exe ${WORK_DIR}/fuzz_${NAME})
set(depfile ${exe}.d)
set(stamp ${exe}.cmd)
# Dependencies' headers as -isystem: out of the depfile (they change with the
# distribution, not with lowbit) and quiet.
set(isystem)
string(REPLACE "|" ";" system_dirs "${SYSTEM_INCLUDES}")
foreach(dir ${system_dirs})
  # The default directories stay where the compiler has them: -isystem /usr/include
  # would reorder them and break libstdc++'s #include_next <stdlib.h>.
  if(NOT dir MATCHES "^/usr(/local)?/include/?$")
    list(APPEND isystem -isystem ${dir})
  endif()
endforeach()
set(build_cmd ${CLANGXX} -std=c++20 -O1 -gline-tables-only -fno-omit-frame-pointer
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
              -I${INCLUDE_DIR} ${isystem} -MMD -MF ${depfile} ${SOURCE} -o ${exe})

# Rebuild only when stale: no binary, other flags or compiler than last time, or a
# file the compiler read (clang's own dependency list: the target and just the
# lowbit headers it includes) newer than the binary.
set(stale TRUE)
if(EXISTS ${exe} AND EXISTS ${depfile} AND EXISTS ${stamp})
  file(READ ${stamp} last_cmd)
  if(last_cmd STREQUAL "${build_cmd}")
    set(stale FALSE)
    file(READ ${depfile} deps)
    string(REPLACE "\\\n" " " deps "${deps}")   # make-style line continuations
    string(REGEX REPLACE "^[^:]*:" "" deps "${deps}")  # drop the "binary:" rule head
    separate_arguments(deps UNIX_COMMAND "${deps}")
    foreach(dep ${deps})
      if(NOT EXISTS ${dep} OR ${dep} IS_NEWER_THAN ${exe})
        set(stale TRUE)
        break()
      endif()
    endforeach()
  endif()
endif()
if(stale)
  message(STATUS "building fuzz_${NAME} with ${CLANGXX}")
  execute_process(COMMAND ${build_cmd} WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(REMOVE ${exe} ${stamp})
    message(FATAL_ERROR "building fuzz_${NAME} with ${CLANGXX} failed (${rc})")
  endif()
  file(WRITE ${stamp} "${build_cmd}")
endif()

# New inputs go to the scratch corpus (first directory); the seeds stay untouched.
# Artifacts (crash-*, leak-*, timeout-*, oom-*) land in WORK_DIR.
file(GLOB old_artifacts ${WORK_DIR}/crash-* ${WORK_DIR}/leak-* ${WORK_DIR}/timeout-* ${WORK_DIR}/oom-*
                        ${WORK_DIR}/slow-unit-*)
if(old_artifacts)
  file(REMOVE ${old_artifacts})
endif()
execute_process(
  COMMAND ${exe} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -dict=${DICT}
          -print_final_stats=1 -artifact_prefix=${WORK_DIR}/ ${WORK_DIR}/corpus ${CORPUS}
  WORKING_DIRECTORY ${WORK_DIR}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB artifacts ${WORK_DIR}/crash-* ${WORK_DIR}/leak-* ${WORK_DIR}/timeout-* ${WORK_DIR}/oom-*)
  message(FATAL_ERROR "the ${NAME} fuzzer found a failure (exit ${rc}); the input: ${artifacts}\n"
                      "reproduce with: ${exe} <input>")
endif()
