# Builds the safetensors header fuzzer with clang++ (-fsanitize=fuzzer,address,
# undefined) and runs it for a bounded time on the committed seed corpus.
# Variables: CLANGXX, SOURCE, INCLUDE_DIR, CORPUS, DICT, WORK_DIR, SECONDS.
file(REMOVE_RECURSE ${WORK_DIR}/corpus)
file(MAKE_DIRECTORY ${WORK_DIR}/corpus)
set(exe ${WORK_DIR}/fuzz_safetensors_header)
# Rebuild only when the target or a lowbit header is newer than the binary.
set(stale TRUE)
if(EXISTS ${exe})
  set(stale FALSE)
  file(GLOB_RECURSE headers ${INCLUDE_DIR}/lowbit/*.hpp)
  foreach(dep ${SOURCE} ${headers})
    if(${dep} IS_NEWER_THAN ${exe})
      set(stale TRUE)
    endif()
  endforeach()
endif()
if(stale)
  execute_process(
    COMMAND ${CLANGXX} -std=c++20 -O1 -gline-tables-only -fno-omit-frame-pointer
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
            -I${INCLUDE_DIR} ${SOURCE} -o ${exe}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(REMOVE ${exe})
    message(FATAL_ERROR "building the fuzzer with ${CLANGXX} failed (${rc})")
  endif()
endif()
# New inputs go to the scratch corpus (first directory); the seeds stay untouched.
execute_process(
  COMMAND ${exe} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -dict=${DICT}
          -artifact_prefix=${WORK_DIR}/ ${WORK_DIR}/corpus ${CORPUS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the safetensors header fuzzer found a failure (exit ${rc}); the input is in ${WORK_DIR}")
endif()
