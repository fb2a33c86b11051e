// GPTQ: Hessian accumulation, the GPTQ and RTN layer solvers, the dampening search.
#pragma once

#include "lowbit/backend/eigen.hpp"
#include "lowbit/gptq/damp_search.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/gptq/result.hpp"
#include "lowbit/gptq/rtn.hpp"
#if defined(LOWBIT_HAS_CUDA)
#include "lowbit/backend/cuda.hpp"
#endif
