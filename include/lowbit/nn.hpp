// lowbit/nn: GPT-2 and Llama transformers on the autograd engine, their checkpoints,
// the registry of quantizable linear layers, evaluation and export.
#pragma once

#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/gguf_model.hpp"
#include "lowbit/nn/gptq_export.hpp"
#include "lowbit/nn/llama_cpp_rounding.hpp"
#include "lowbit/nn/linear_layer.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/nn/save.hpp"
#include "lowbit/nn/transformer.hpp"
