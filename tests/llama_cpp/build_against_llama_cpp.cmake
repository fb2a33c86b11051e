# Included by the llama.cpp judges' scripts (run_judge.cmake, run_tokenizers.cmake):
# builds one C++ source against the llama.cpp of node-llama-cpp@3.21.1 (headers from
# its source bundle, the prebuilt libllama), never linked into lowbit.
#   lowbit_build_against_llama_cpp(SOURCE EXE OK_VAR)
# Needs CXX, INCLUDE_DIR, SYSTEM_INCLUDES ('|'-separated), CACHE. Where the llama.cpp
# cache is missing it says "skipped:" and why, and sets OK_VAR to FALSE; sets
# llama_cpp_lib_dir for running the program.
set(llama_cpp_lib_dir "${CACHE}/npm/lx/package/bins/linux-x64")
set(llama_cpp_src_dir "${CACHE}/llama.cpp")

function(lowbit_build_against_llama_cpp source exe ok_var)
  foreach(need "${llama_cpp_lib_dir}/libllama.v0.4.0.so" "${llama_cpp_src_dir}/include/llama.h"
               "${llama_cpp_src_dir}/ggml/include/ggml-backend.h")
    if(NOT EXISTS "${need}")
      message("skipped: ${need} not found; scripts/fixtures/fetch_llama_cpp.sh ${CACHE} fetches llama.cpp (npm node-llama-cpp@3.21.1)")
      set(${ok_var} FALSE PARENT_SCOPE)
      return()
    endif()
  endforeach()
  string(REPLACE "|" ";" system_includes "${SYSTEM_INCLUDES}")
  set(isystem)
  foreach(d ${system_includes})
    # -isystem /usr/include would reorder the default directories and break
    # libstdc++'s #include_next <math.h> (as in tests/fuzz/run_fuzzer.cmake).
    if(NOT d MATCHES "^/usr(/local)?/include/?$")
      list(APPEND isystem -isystem ${d})
    endif()
  endforeach()
  get_filename_component(dir "${exe}" DIRECTORY)
  file(MAKE_DIRECTORY "${dir}")
  execute_process(
    COMMAND ${CXX} -O2 -std=c++20 -ffp-contract=off -march=native -I${INCLUDE_DIR} ${isystem}
            -I${llama_cpp_src_dir}/include -I${llama_cpp_src_dir}/ggml/include ${source} -L${llama_cpp_lib_dir}
            -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,${llama_cpp_lib_dir}
            -o ${exe}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building ${source} against llama.cpp failed (${rc})")
  endif()
  set(${ok_var} TRUE PARENT_SCOPE)
endfunction()
