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
    const std::string k = c.key("rtn", q.bits);
    return c.cached_or(k, [&] {
      UnitResult u;
      u.method = "rtn";
      u.bits = q.bits;
      if (c.streamed) {
        c.streamed->quantize(u, q, k);
        u.weight_bytes = model_bytes(c.model, c.options.scheme, q.bits);
        return u;
      }
      c.restore_fp();
      const auto t0 = UnitContext::clock::now();
      std::vector<QuantizedTensor> packed;
      if (q.is_block()) c.round_layers(c.block_quantizers(q), packed);
      else c.round_layers(SpecQuantizer(q), packed);
      u.seconds["quantize"] = UnitContext::seconds_since(t0);
      c.finish_quantized(u, k, packed);
      return u;
    });
  }
};

}  // namespace lowbit::study
