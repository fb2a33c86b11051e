// Round-to-nearest: every registered layer's weights replaced by Q(W) of the run's
// scheme at one bit width, no calibration data (a block format: llama.cpp's own
// quantizer of each layer's type).
#pragma once

#include <vector>

#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/study/unit_context.hpp"

namespace lowbit::study {

struct RtnUnit {
  QuantSpec q;

  UnitResult run(UnitContext& c) const {
    return c.post_training_unit("rtn", q, [&](UnitResult&, std::vector<QuantizedTensor>& packed, auto&) {
      if (q.is_block()) c.round_layers(c.block_quantizers(q), packed);
      else c.round_layers(SpecQuantizer(q), packed);
    });
  }
};

}  // namespace lowbit::study
