// lowbit I/O: JSON, safetensors (plain and quantized), GPTQ checkpoint tensors, GGUF, llama2.c checkpoints.
#pragma once

#include "lowbit/io/file.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/gptq_checkpoint.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/llama2c.hpp"
#include "lowbit/io/quantized_export.hpp"
#include "lowbit/io/safetensors.hpp"
