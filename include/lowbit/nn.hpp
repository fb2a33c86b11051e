// lowbit/nn: GPT-2 and Llama transformers on the autograd engine, their checkpoints,
// the registry of quantizable linear layers, evaluation and export.
#pragma once

#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/gguf_llama.hpp"
#include "lowbit/nn/linear_layer.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/nn/save.hpp"
#include "lowbit/nn/transformer.hpp"
