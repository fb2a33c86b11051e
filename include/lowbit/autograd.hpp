// lowbit::autograd — reverse-mode autograd over dense fp32/fp64 tensors for
// straight-through-estimator fine-tuning (QAFT). docs/autograd.md describes the API.
#pragma once

#include "lowbit/autograd/activation.hpp"
#include "lowbit/autograd/arena.hpp"
#include "lowbit/autograd/attention.hpp"
#include "lowbit/autograd/cross_entropy.hpp"
#include "lowbit/autograd/elementwise.hpp"
#include "lowbit/autograd/embedding.hpp"
#include "lowbit/autograd/fake_quant.hpp"
#include "lowbit/autograd/gemm.hpp"
#include "lowbit/autograd/matmul.hpp"
#include "lowbit/autograd/norm.hpp"
#include "lowbit/autograd/optim.hpp"
#include "lowbit/autograd/shape.hpp"
#include "lowbit/autograd/tensor.hpp"
#include "lowbit/autograd/thread_pool.hpp"
#include "lowbit/autograd/views.hpp"
