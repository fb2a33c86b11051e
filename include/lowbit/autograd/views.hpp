// Shape ops: reshape (a view), transpose of two dimensions and slices of the last one (copies).
#pragma once

#include <array>

#include "lowbit/autograd/tensor.hpp"

namespace lowbit::autograd {

/// Same data under a new shape with as many elements (no copy: the result shares
/// x's buffer; gradients are added back to x's).
template <class S>
BasicTensor<S> reshape(BasicTensor<S> x, Shape shape) {
  auto& g = BasicGraph<S>::current("reshape");
  lowbit::detail::check(shape.numel() == x.numel(), "reshape: ", x.shape(), " has ", x.numel(),
                        " elements, ", shape, " has ", shape.numel());
  TensorImpl<S>* y = g.make(Shape{});  // one-element placeholder, then alias x's data
  y->shape = shape;
  y->data = x.data();
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y] {
      const Index n = x->shape.numel();
      for (Index i = 0; i < n; ++i) x->grad[i] += y->grad[i];
    });
  return BasicTensor<S>(y);
}

namespace detail {
// Strides of a row-major shape padded to four dimensions.
inline std::array<Index, 4> padded_dims(const Shape& s) {
  std::array<Index, 4> d{1, 1, 1, 1};
  for (int i = 0; i < s.ndim; ++i) d[static_cast<std::size_t>(4 - s.ndim + i)] = s[i];
  return d;
}

// dst[permuted index] (+)= src[index] for a swap of dimensions d0 and d1 (padded).
template <class S, bool Accumulate>
void swap_copy(const S* src, S* dst, const std::array<Index, 4>& d, int d0, int d1) {
  std::array<Index, 4> od = d;
  std::swap(od[static_cast<std::size_t>(d0)], od[static_cast<std::size_t>(d1)]);
  const std::array<Index, 4> os{od[1] * od[2] * od[3], od[2] * od[3], od[3], 1};
  std::array<Index, 4> i{};
  for (i[0] = 0; i[0] < d[0]; ++i[0])
    for (i[1] = 0; i[1] < d[1]; ++i[1])
      for (i[2] = 0; i[2] < d[2]; ++i[2]) {
        std::array<Index, 4> j = i;
        std::swap(j[static_cast<std::size_t>(d0)], j[static_cast<std::size_t>(d1)]);
        const S* s = src + ((i[0] * d[1] + i[1]) * d[2] + i[2]) * d[3];
        const Index base = j[0] * os[0] + j[1] * os[1] + j[2] * os[2] + j[3] * os[3];
        const Index step = os[static_cast<std::size_t>(d0 == 3 ? d1 : (d1 == 3 ? d0 : 3))];
        for (Index k = 0; k < d[3]; ++k) {
          if constexpr (Accumulate) dst[base + k * step] += s[k];
          else dst[base + k * step] = s[k];
        }
      }
}
}  // namespace detail

/// Swaps dimensions d0 and d1 (negative counts from the end); copies into the new layout.
template <class S>
BasicTensor<S> transpose(BasicTensor<S> x, int d0, int d1) {
  auto& g = BasicGraph<S>::current("transpose");
  Shape s = x.shape();
  if (d0 < 0) d0 += s.ndim;
  if (d1 < 0) d1 += s.ndim;
  lowbit::detail::check(d0 >= 0 && d0 < s.ndim && d1 >= 0 && d1 < s.ndim, "transpose: dimensions ", d0,
                        ", ", d1, " out of range for ", s);
  std::swap(s.dims[static_cast<std::size_t>(d0)], s.dims[static_cast<std::size_t>(d1)]);
  TensorImpl<S>* y = g.make(s);
  const int off = 4 - s.ndim;
  const auto d = detail::padded_dims(x.shape());
  detail::swap_copy<S, false>(x.data(), y->data, d, d0 + off, d1 + off);
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y, d0, d1, off] {
      // The gradient goes back through the same swap, seen from y's side.
      detail::swap_copy<S, true>(y->grad, x->grad, detail::padded_dims(y->shape), d0 + off, d1 + off);
    });
  return BasicTensor<S>(y);
}

/// Columns [begin, end) of the last dimension (a copy), e.g. q, k, v out of a fused projection.
template <class S>
BasicTensor<S> slice_last(BasicTensor<S> x, Index begin, Index end) {
  auto& g = BasicGraph<S>::current("slice_last");
  const Index c = x.shape().last();
  lowbit::detail::check(0 <= begin && begin <= end && end <= c, "slice_last: [", begin, ", ", end,
                        ") out of range for last dimension ", c, " of ", x.shape());
  Shape s = x.shape();
  s.dims[static_cast<std::size_t>(s.ndim - 1)] = end - begin;
  TensorImpl<S>* y = g.make(s);
  const Index rows = x.shape().rows(), w = end - begin;
  for (Index r = 0; r < rows; ++r) std::copy_n(x.data() + r * c + begin, w, y->data + r * w);
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y, rows, c, w, begin] {
      for (Index r = 0; r < rows; ++r)
        for (Index i = 0; i < w; ++i) x->grad[r * c + begin + i] += y->grad[r * w + i];
    });
  return BasicTensor<S>(y);
}

}  // namespace lowbit::autograd
