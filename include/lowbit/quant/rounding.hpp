// Round half to even, exactly as torch.round / std::nearbyint in the default mode.
#pragma once

#include <cmath>

namespace lowbit {

/// Rounds to the nearest integer, ties to even (torch.round, numpy.rint).
/// std::nearbyint honours the current rounding mode, which is round-to-nearest-even
/// unless a program changed it; lowbit never does.
inline float round_half_even(float x) { return std::nearbyint(x); }

}  // namespace lowbit
