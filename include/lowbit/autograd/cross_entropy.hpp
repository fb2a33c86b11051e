// Fused log-softmax + cross-entropy over a large vocabulary (mean over kept tokens, ignore-index).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/autograd/thread_pool.hpp"

namespace lowbit::autograd {

namespace detail {

// The two exp passes over a row of the vocabulary, which dominate cross_entropy at
// V ≈ 20k–50k (libm's scalar expf was 10% of a pretraining step). SIMD for float
// with xsimd::exp (within an ulp or two of std::exp; lanes summed at the end) and
// the scalar formula on the tail; Simd = false is the scalar reference.

/// Σ_j exp(row[j] − shift).
template <bool Simd = true, class S>
S sum_exp(const S* row, Index n, S shift) {
  Index j = 0;
  S total = 0;
  if constexpr (Simd && std::is_same_v<S, float>) {
    using V = xsimd::batch<float>;
    constexpr Index w = static_cast<Index>(V::size);
    V acc(0.0f);
    const V vs(shift);
    for (; j + w <= n; j += w) acc += xsimd::exp(V::load_unaligned(row + j) - vs);
    total = xsimd::hadd(acc);
  }
  for (; j < n; ++j) total += std::exp(row[j] - shift);
  return total;
}

/// d[j] += scale·exp(row[j] − shift).
template <bool Simd = true, class S>
void add_scaled_exp(S* d, const S* row, Index n, S shift, S scale) {
  Index j = 0;
  if constexpr (Simd && std::is_same_v<S, float>) {
    using V = xsimd::batch<float>;
    constexpr Index w = static_cast<Index>(V::size);
    const V vs(shift), vw(scale);
    for (; j + w <= n; j += w)
      (V::load_unaligned(d + j) + vw * xsimd::exp(V::load_unaligned(row + j) - vs)).store_unaligned(d + j);
  }
  for (; j < n; ++j) d[j] += scale * std::exp(row[j] - shift);
}

}  // namespace detail

/// mean over rows r with targets[r] ≠ ignore_index of logsumexp(logits[r]) − logits[r, targets[r]]
/// for logits [..., V]; matches torch.nn.functional.cross_entropy(reduction='mean').
/// The gradient (softmax − one-hot)/count is formed in backward from the saved
/// log-sum-exp, so no probability matrix is stored. When every target is ignored the
/// loss is 0 with zero gradient (PyTorch would return NaN).
template <class S>
BasicTensor<S> cross_entropy(BasicTensor<S> logits, std::span<const std::int32_t> targets,
                             std::int32_t ignore_index = -100) {
  auto& g = BasicGraph<S>::current("cross_entropy");
  const Index vocab = logits.shape().last(), rows = logits.shape().rows();
  lowbit::detail::check(static_cast<Index>(targets.size()) == rows, "cross_entropy: ", targets.size(),
                        " targets for logits ", logits.shape(), " (", rows, " rows)");
  Index count = 0;
  for (Index r = 0; r < rows; ++r) {
    const std::int32_t tr = targets[static_cast<std::size_t>(r)];
    if (tr == ignore_index) continue;
    lowbit::detail::check(tr >= 0 && tr < vocab, "cross_entropy: target ", tr, " at row ", r,
                          " is outside [0, ", vocab, ") and is not the ignore index ", ignore_index);
    ++count;
  }
  S* lse = g.arena().template alloc<S>(static_cast<std::size_t>(rows));
  std::int32_t* tg = g.arena().template alloc<std::int32_t>(static_cast<std::size_t>(rows));
  std::copy(targets.begin(), targets.end(), tg);
  const S* x = logits.data();
  parallel_for(rows, std::max<Index>(1, (Index{1} << 15) / std::max<Index>(vocab, 1)),
               [=](Index r0, Index r1, int) {
                 for (Index r = r0; r < r1; ++r) {
                   if (tg[r] == ignore_index) continue;
                   const S* row = x + r * vocab;
                   const S mx = *std::max_element(row, row + vocab);
                   lse[r] = mx + std::log(detail::sum_exp(row, vocab, mx));
                 }
               });
  double loss = 0;
  for (Index r = 0; r < rows; ++r)
    if (tg[r] != ignore_index) loss += static_cast<double>(lse[r] - x[r * vocab + tg[r]]);
  TensorImpl<S>* y = g.make(Shape{1});
  y->data[0] = count ? static_cast<S>(loss / static_cast<double>(count)) : S(0);
  if (count && g.tracks({logits.impl()}))
    g.record(y, {logits.impl()}, [lg = logits.impl(), y, lse, tg, rows, vocab, count, ignore_index] {
      const S w = y->grad[0] / static_cast<S>(count);
      const S* x = lg->data;
      S* dx = lg->grad;
      parallel_for(rows, std::max<Index>(1, (Index{1} << 15) / std::max<Index>(vocab, 1)),
                   [=](Index r0, Index r1, int) {
                     for (Index r = r0; r < r1; ++r) {
                       if (tg[r] == ignore_index) continue;
                       const S* row = x + r * vocab;
                       S* drow = dx + r * vocab;
                       detail::add_scaled_exp(drow, row, vocab, lse[r], w);
                       drow[tg[r]] -= w;
                     }
                   });
    });
  return BasicTensor<S>(y);
}

}  // namespace lowbit::autograd
