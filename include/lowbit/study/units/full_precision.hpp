// The study's reference unit "fp": the model as given, evaluated on the test,
// validation and out-of-domain windows.
#pragma once

#include "lowbit/study/unit_context.hpp"

namespace lowbit::study {

struct FullPrecisionUnit {
  UnitResult run(UnitContext& c) const {
    return c.cached_or("fp", [&] {
      UnitResult u;
      u.method = "fp";
      if (c.streamed) {
        c.streamed->evaluate_fp(u);
        return u;
      }
      c.restore_fp();
      c.evaluate_into(u);
      return u;
    });
  }
};

}  // namespace lowbit::study
