// Embedding lookup (gradient: scatter-add into the table) and rotary position embedding.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "lowbit/autograd/tensor.hpp"

namespace lowbit::autograd {

/// Rows of table [V, C] picked by ids (shape ids_shape, at most three dimensions);
/// returns ids_shape + [C]. Every id must be in [0, V).
template <class S>
BasicTensor<S> embedding(BasicTensor<S> table, std::span<const std::int32_t> ids, Shape ids_shape) {
  auto& g = BasicGraph<S>::current("embedding");
  lowbit::detail::check(table.ndim() == 2, "embedding: table must be [vocab, dim], got ", table.shape());
  lowbit::detail::check(static_cast<Index>(ids.size()) == ids_shape.numel(), "embedding: ", ids.size(),
                        " ids for shape ", ids_shape);
  lowbit::detail::check(ids_shape.ndim < Shape::max_dims, "embedding: ids shape ", ids_shape,
                        " has too many dimensions");
  const Index vocab = table.dim(0), c = table.dim(1), n = ids_shape.numel();
  for (Index i = 0; i < n; ++i)
    lowbit::detail::check(ids[static_cast<std::size_t>(i)] >= 0 && ids[static_cast<std::size_t>(i)] < vocab,
                          "embedding: id ", ids[static_cast<std::size_t>(i)], " at position ", i,
                          " is outside the vocabulary [0, ", vocab, ")");
  Shape so = ids_shape;
  so.dims[static_cast<std::size_t>(so.ndim++)] = c;
  TensorImpl<S>* y = g.make(so);
  for (Index i = 0; i < n; ++i)
    std::copy_n(table.data() + ids[static_cast<std::size_t>(i)] * c, c, y->data + i * c);
  if (g.tracks({table.impl()})) {
    std::int32_t* saved = g.arena().template alloc<std::int32_t>(static_cast<std::size_t>(n));
    std::copy(ids.begin(), ids.end(), saved);
    g.record(y, {table.impl()}, [tb = table.impl(), y, saved, n, c] {
      for (Index i = 0; i < n; ++i) {
        S* row = tb->grad + saved[i] * c;
        for (Index j = 0; j < c; ++j) row[j] += y->grad[i * c + j];
      }
    });
  }
  return BasicTensor<S>(y);
}

/// Which elements of a head form a rotated pair.
enum class RopeStyle {
  interleaved,  ///< (2i, 2i+1): Meta's Llama and llama2.c
  half,         ///< (i, i + D/2): Hugging Face's rotate_half
};

/// Rotary position embedding of x [B, T, H, D] at positions pos0 … pos0+T−1: pair i
/// is rotated by angle pos·inv_freq[i] (D/2 frequencies; a model's RoPE scaling is
/// in them).
template <class S>
BasicTensor<S> rope(BasicTensor<S> x, RopeStyle style, std::type_identity_t<std::span<const S>> inv_freq,
                    Index pos0 = 0) {
  auto& g = BasicGraph<S>::current("rope");
  lowbit::detail::check(x.ndim() == 4, "rope: x must be [B, T, heads, head_dim], got ", x.shape());
  const Index batch = x.dim(0), t = x.dim(1), h = x.dim(2), d = x.dim(3), half = d / 2;
  lowbit::detail::check(d % 2 == 0, "rope: head_dim ", d, " must be even");
  lowbit::detail::check(static_cast<Index>(inv_freq.size()) == half, "rope: ", inv_freq.size(),
                        " frequencies for head_dim ", d, " (need ", half, ")");
  lowbit::detail::check(pos0 >= 0, "rope: pos0 ", pos0, " must not be negative");
  S* table = g.arena().template alloc<S>(static_cast<std::size_t>(2 * t * half));  // cos, sin per (pos, i)
  for (Index p = 0; p < t; ++p)
    for (Index i = 0; i < half; ++i) {
      const S angle = static_cast<S>(pos0 + p) * inv_freq[static_cast<std::size_t>(i)];
      table[2 * (p * half + i)] = std::cos(angle);
      table[2 * (p * half + i) + 1] = std::sin(angle);
    }
  const Index lo_step = style == RopeStyle::interleaved ? 2 : 1;  // index of pair i's first element: i·lo_step
  const Index partner = style == RopeStyle::interleaved ? 1 : half;
  auto rotate = [=](const S* in, S* out, S sign, bool accumulate) {
    for (Index b = 0; b < batch; ++b)
      for (Index p = 0; p < t; ++p)
        for (Index hh = 0; hh < h; ++hh) {
          const Index base = ((b * t + p) * h + hh) * d;
          for (Index i = 0; i < half; ++i) {
            const S c = table[2 * (p * half + i)], s = sign * table[2 * (p * half + i) + 1];
            const Index a0 = base + i * lo_step, a1 = a0 + partner;
            const S x0 = in[a0], x1 = in[a1];
            const S y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
            if (accumulate) {
              out[a0] += y0;
              out[a1] += y1;
            } else {
              out[a0] = y0;
              out[a1] = y1;
            }
          }
        }
  };
  TensorImpl<S>* y = g.make(x.shape());
  rotate(x.data(), y->data, S(1), false);
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y, rotate] { rotate(y->grad, x->grad, S(-1), true); });
  return BasicTensor<S>(y);
}

/// RoPE with the plain frequencies theta^(−2i/D).
template <class S>
BasicTensor<S> rope(BasicTensor<S> x, RopeStyle style, S theta = S(10000), Index pos0 = 0) {
  lowbit::detail::check(x.ndim() == 4, "rope: x must be [B, T, heads, head_dim], got ", x.shape());
  lowbit::detail::check(theta > S(0), "rope: theta ", theta, " must be positive");
  const Index d = x.dim(3);
  std::vector<S> inv_freq(static_cast<std::size_t>(d / 2));
  for (Index i = 0; i < d / 2; ++i)
    inv_freq[static_cast<std::size_t>(i)] = S(1) / std::pow(theta, static_cast<S>(2 * i) / static_cast<S>(d));
  return rope(x, style, std::span<const S>(inv_freq), pos0);
}

}  // namespace lowbit::autograd
