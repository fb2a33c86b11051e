# Builds tests/llama_cpp/judge.cpp against the llama.cpp of node-llama-cpp@3.21.1
# (headers from its source bundle, the prebuilt libllama) and runs it once per model.
# Where the llama.cpp cache or the shared data is missing it says "skipped:" and why.
#   -DCXX -DSOURCE -DINCLUDE_DIR -DSYSTEM_INCLUDES (|-separated) -DCACHE -DDATA -DWORK_DIR
#   -DRUNS: runs separated by '|', each "MODEL[@WINDOWS],TYPE,TYPE,..." (judge.cpp)
#   -DKEEP_GOING=ON: a disagreement is a warning, and the next model still runs
set(lib_dir "${CACHE}/npm/lx/package/bins/linux-x64")
set(src_dir "${CACHE}/llama.cpp")
foreach(need "${lib_dir}/libllama.v0.4.0.so" "${src_dir}/include/llama.h" "${src_dir}/ggml/include/ggml-backend.h")
  if(NOT EXISTS "${need}")
    message("skipped: ${need} not found; scripts/fixtures/fetch_llama_cpp.sh ${CACHE} fetches llama.cpp (npm node-llama-cpp@3.21.1)")
    return()
  endif()
endforeach()
if(NOT EXISTS "${DATA}/stories260K/stories260K.bin")
  message("skipped: ${DATA}/stories260K not found (set LOWBIT_DATA; see ../shared/README.md)")
  return()
endif()
file(MAKE_DIRECTORY "${WORK_DIR}")
string(REPLACE "|" ";" system_includes "${SYSTEM_INCLUDES}")
set(isystem)
foreach(d ${system_includes})
  # -isystem /usr/include would reorder the default directories and break
  # libstdc++'s #include_next <math.h> (as in tests/fuzz/run_fuzzer.cmake).
  if(NOT d MATCHES "^/usr(/local)?/include/?$")
    list(APPEND isystem -isystem ${d})
  endif()
endforeach()
execute_process(
  COMMAND ${CXX} -O2 -std=c++20 -ffp-contract=off -march=native -I${INCLUDE_DIR} ${isystem}
          -I${src_dir}/include -I${src_dir}/ggml/include ${SOURCE} -L${lib_dir}
          -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,${lib_dir}
          -o ${WORK_DIR}/judge
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the llama.cpp judge failed (${rc})")
endif()
string(REPLACE "|" ";" runs "${RUNS}")
foreach(run ${runs})
  string(REPLACE "," ";" args "${run}")
  list(GET args 0 model)
  if(NOT model MATCHES "^stories260K")
    if(NOT EXISTS "${DATA}/gpt2-bpe/encoder.json")
      message("skipped ${model}: ${DATA}/gpt2-bpe not found")
      continue()
    endif()
    if(NOT EXISTS "/usr/share/doc/python3.11/html/_sources" AND NOT DEFINED ENV{LOWBIT_PYTHON_DOCS})
      message("skipped ${model}: the Python docs corpus (python3.11-doc) is not installed")
      continue()
    endif()
  endif()
  message("judge ${model}:")
  execute_process(COMMAND ${WORK_DIR}/judge ${DATA} ${lib_dir} ${WORK_DIR}/out ${args} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 AND KEEP_GOING)
    message(WARNING "llama.cpp and lowbit disagree on lowbit's GGUF files of ${model} (judge exit ${rc})")
  elseif(NOT rc EQUAL 0)
    message(FATAL_ERROR "llama.cpp and lowbit disagree on lowbit's GGUF files of ${model} (judge exit ${rc})")
  endif()
endforeach()
