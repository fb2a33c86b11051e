// The weighted scale searches of llama.cpp's quantizers, each written once and
// shared by every block format that runs it: the importance-weighted legacy types
// (q4_0..q5_1) and the k-quants (q2_k..q6_k). Each picks a group's codes and scale
// (and minimum) by trying a fan of inverse scales, or by coordinate descent, and
// refitting each by weighted least squares; see ref_math.hpp for the float rules
// that keep the results bit-identical to ggml's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lowbit/quant/blocks/ref_math.hpp"

namespace lowbit::blocks::impl::ref {

/// Weighted symmetric search (llama.cpp's make_qx_quants, rmse_type 1): codes
/// L[i] in 0..2·nmax-1 meaning L[i]-nmax, and the returned scale d minimises
/// sum w·(x - d·(L-nmax))². It starts from the scale that maps the extreme weight
/// to -nmax, then tries 18 nearby reciprocal scales -(nmax ± 0.1·k)/max, keeping a
/// candidate only when it is strictly better (first one wins ties). `w` null means
/// w = x². L is written for every group, all zero when the group is.
inline float symmetric_search(int n, int nmax, const float* x, std::int8_t* L, const float* w) {
  float amax = 0.0f;
  const float max = signed_abs_max(n, x, amax);
  if (amax < group_max_eps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const auto weight = [&](int i) { return w ? w[i] : x[i] * x[i]; };
  const auto level = [&](float iscale, int i) { return clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1); };
  // Weighted sums sum w·x·l and sum w·l² of the levels one reciprocal scale picks.
  const auto sums = [&](float iscale, float& sumlx, float& suml2) {
    sumlx = 0.0f;
    suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float l = static_cast<float>(level(iscale, i));
      const float wi = weight(i);
      sumlx += wi * x[i] * l;
      suml2 += wi * l * l;
    }
  };
  const auto keep = [&](float iscale) {
    for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(nmax + level(iscale, i));
  };

  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  sums(iscale, sumlx, suml2);
  keep(iscale);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, sumlx, suml2);
    // sumlx²/suml2 is the error reduction of the least-squares scale: bigger wins.
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      keep(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/// q3_k's unweighted-reference grid (llama.cpp's make_q3_quants with do_rmse):
/// l in [-nmax, nmax-1] from -nmax/max, then up to 5 sweeps of coordinate descent
/// on the x²-weighted least-squares error. Writes L = l + nmax; returns the scale.
inline float q3_search(int n, int nmax, const float* x, std::int8_t* L) {
  float amax = 0.0f;
  const float max = signed_abs_max(n, x, amax);
  if (amax < group_max_eps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<std::int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const auto li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * li * li;
      // The code minimising the error with the other codes held fixed.
      const int nl = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (nl == L[i]) continue;
      slx += w * x[i] * static_cast<float>(nl);
      sl2 += w * static_cast<float>(nl) * static_cast<float>(nl);
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<std::int8_t>(nl);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/// The trial fan of one affine (scale and minimum) search.
struct AffineSearch {
  float rmin;    ///< first trial adds rmin to nmax
  float rdelta;  ///< step between trials
  int nstep;     ///< trials 0..nstep; below 1, only the plain min/max grid
  bool use_mad;  ///< error |e| instead of e² (q2_k's reference encoder)
};

/// Weighted search for scale and minimum (llama.cpp's make_qkx2_quants, and
/// make_qkx3_quants with weights: the two agree whenever weights are given):
/// codes L in [0, nmax] decode to scale·L + min with min <= 0, so zero stays
/// representable. It starts from the plain min/max grid, then refits scale and
/// minimum together by weighted least squares for each trial inverse scale
/// (rmin + rdelta·k + nmax)/(max - min), keeping one only when its weighted error
/// is strictly smaller. Returns the scale and writes -min to `neg_min`. `w` is
/// required (every caller has weights); n <= 256.
inline float affine_search(int n, int nmax, const float* x, const float* w, std::uint8_t* L, float* neg_min,
                           AffineSearch s) {
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  // make_qkx3's test; make_qkx2 has `max == min`, the same here since min <= max.
  if (max <= min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -min;
    return 0.0f;
  }
  const auto level = [&](float iscale, int i) { return clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax); };
  const auto error = [&](float scale, float mn, const std::uint8_t* q) {
    float e = 0;
    for (int i = 0; i < n; ++i) {
      float diff = scale * static_cast<float>(q[i]) + mn - x[i];
      diff = s.use_mad ? std::fabs(diff) : diff * diff;
      e += w[i] * diff;
    }
    return e;
  };
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::uint8_t>(level(iscale, i));
  float best_error = error(scale, min, L);
  if (s.nstep < 1) {
    *neg_min = -min;
    return scale;
  }
  // An accepted candidate's minimum replaces `min` at once, so the later
  // candidates are measured from it (range max - min and offsets x - min), as in
  // llama.cpp.
  std::uint8_t aux[256];
  for (int is = 0; is <= s.nstep; ++is) {
    iscale = (s.rmin + s.rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = level(iscale, i);
      aux[i] = static_cast<std::uint8_t>(l);
      const auto fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {  // a positive offset would lose exact zero: refit scale alone
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    const float cur_error = error(this_scale, this_min, aux);
    if (cur_error < best_error) {
      for (int i = 0; i < n; ++i) L[i] = aux[i];
      best_error = cur_error;
      scale = this_scale;
      min = this_min;
    }
  }
  *neg_min = -min;
  return scale;
}

/// Quantizes a super-block's non-negative sub-block scales (or minima) to codes in
/// [0, nmax] under one positive scale, weighted by `qw` (llama.cpp's
/// make_qp_quants): 9 trial inverse scales around nmax/max, then up to 5 sweeps of
/// coordinate descent on the weighted least-squares error. Returns the scale.
inline float positive_search(int n, int nmax, const float* x, std::uint8_t* L, const float* qw) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];  // ggml's MAX macro, NaN order included
  if (max < group_max_eps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(L[i]);
    best_mse += qw[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * static_cast<float>(is) + static_cast<float>(nmax)) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
      const float diff = x[i] - scale_is * static_cast<float>(l);
      mse += qw[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  // The sums use the unclamped-below int code; L keeps its uint8 truncation.
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = static_cast<std::uint8_t>(l);
    const auto fl = static_cast<float>(l);
    sumlx += qw[i] * x[i] * fl;
    suml2 += qw[i] * fl * fl;
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = qw[i];
      const auto li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      float sl2 = suml2 - w * li * li;
      if (!(slx > 0 && sl2 > 0)) continue;
      const int nl = std::min(nmax, nearest_int(x[i] * sl2 / slx));
      if (nl == static_cast<int>(L[i])) continue;
      slx += w * x[i] * static_cast<float>(nl);
      sl2 += w * static_cast<float>(nl) * static_cast<float>(nl);
      if (slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<std::uint8_t>(nl);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace lowbit::blocks::impl::ref
