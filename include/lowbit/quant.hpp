// The quantizer core: schemes (QuantSpec), formats, granularities, scale searches,
// kernels, packing, and llama.cpp's block formats.
#pragma once

#include "lowbit/quant/abs_max.hpp"
#include "lowbit/quant/blocks/block_type.hpp"
#include "lowbit/quant/blocks/codec.hpp"
#include "lowbit/quant/blocks/grid.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/histogram.hpp"
#include "lowbit/quant/histogram_mse.hpp"
#include "lowbit/quant/kernels.hpp"
#include "lowbit/quant/mse_shrink.hpp"
#include "lowbit/quant/normal_float.hpp"
#include "lowbit/quant/packing.hpp"
#include "lowbit/quant/quant_params.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/rounding.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/quant/weighted_shrink.hpp"
