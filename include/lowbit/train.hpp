// lowbit/train: pretraining language models on the autograd engine — a step-indexed
// window sampler, the Pretrainer loop (AdamW, warm-up + cosine, clipping) and its
// bit-exact resumable state.
#pragma once

#include "lowbit/train/pretrainer.hpp"
#include "lowbit/train/train_state.hpp"
#include "lowbit/train/window_sampler.hpp"
