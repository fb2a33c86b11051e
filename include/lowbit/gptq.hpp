// GPTQ: Hessian accumulation, the GPTQ and RTN layer solvers (onto any QuantSpec,
// llama.cpp's block formats included), the dampening search.
#pragma once

#include "lowbit/backend/eigen.hpp"
#include "lowbit/gptq/block_grid.hpp"
#include "lowbit/gptq/damp_search.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/gptq/result.hpp"
#include "lowbit/gptq/rtn.hpp"
#if defined(LOWBIT_HAS_CUDA)
#include "lowbit/backend/cuda.hpp"
#endif
