// Element-wise ops: add and mul with trailing-dimension broadcasting, scale, sum, mean.
#pragma once

#include <algorithm>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/autograd/thread_pool.hpp"

namespace lowbit::autograd {

namespace detail {

/// b broadcasts against a when b's dimensions equal a's trailing ones (numpy's rule
/// without size-1 stretching), e.g. a bias [C] against activations [B, T, C].
inline void check_broadcast(const Shape& a, const Shape& b, const char* op) {
  bool ok = b.ndim <= a.ndim;
  for (int i = 1; ok && i <= b.ndim; ++i) ok = a[-i] == b[-i];
  lowbit::detail::check(ok, op, ": shape ", b, " does not broadcast against ", a,
                        " (its dimensions must equal the trailing dimensions)");
}

inline constexpr Index elementwise_grain = 1 << 15;

/// How many rows of b's size a holds (none when b is empty: then so is a).
inline Index broadcast_rows(Index a_size, Index b_size) { return b_size == 0 ? 0 : a_size / b_size; }

/// A new node y = op(a, b), b broadcast over a's leading dimensions: the rows of a
/// (each b's size) split across the pool.
template <class S, class Op>
TensorImpl<S>* broadcast_forward(BasicGraph<S>& g, const BasicTensor<S>& a, const BasicTensor<S>& b, const char* name,
                                 Op op) {
  check_broadcast(a.shape(), b.shape(), name);
  TensorImpl<S>* y = g.make(a.shape());
  const Index m = b.numel(), rows = broadcast_rows(a.numel(), m);
  const S *x = a.data(), *z = b.data();
  S* o = y->data;
  parallel_for(rows, std::max<Index>(1, elementwise_grain / std::max<Index>(m, 1)), [=](Index r0, Index r1, int) {
    for (Index r = r0; r < r1; ++r)
      for (Index i = 0; i < m; ++i) o[r * m + i] = op(x[r * m + i], z[i]);
  });
  return y;
}

}  // namespace detail

/// a + b, b broadcast over a's leading dimensions.
template <class S>
BasicTensor<S> add(BasicTensor<S> a, BasicTensor<S> b) {
  auto& g = BasicGraph<S>::current("add");
  TensorImpl<S>* y = detail::broadcast_forward(g, a, b, "add", [](S u, S v) { return u + v; });
  const Index m = b.numel(), rows = detail::broadcast_rows(a.numel(), m);
  if (g.tracks({a.impl(), b.impl()}))
    g.record(y, {a.impl(), b.impl()}, [a = a.impl(), b = b.impl(), y, rows, m] {
      const S* dy = y->grad;
      if (a->grad)
        for (Index i = 0; i < rows * m; ++i) a->grad[i] += dy[i];
      if (b->grad)
        for (Index r = 0; r < rows; ++r)
          for (Index i = 0; i < m; ++i) b->grad[i] += dy[r * m + i];
    });
  return BasicTensor<S>(y);
}

/// a ⊙ b, b broadcast over a's leading dimensions.
template <class S>
BasicTensor<S> mul(BasicTensor<S> a, BasicTensor<S> b) {
  auto& g = BasicGraph<S>::current("mul");
  TensorImpl<S>* y = detail::broadcast_forward(g, a, b, "mul", [](S u, S v) { return u * v; });
  const Index m = b.numel(), rows = detail::broadcast_rows(a.numel(), m);
  if (g.tracks({a.impl(), b.impl()}))
    g.record(y, {a.impl(), b.impl()}, [a = a.impl(), b = b.impl(), y, rows, m] {
      const S* dy = y->grad;
      for (Index r = 0; r < rows; ++r)
        for (Index i = 0; i < m; ++i) {
          const Index k = r * m + i;
          if (a->grad) a->grad[k] += dy[k] * b->data[i];
          if (b->grad) b->grad[i] += dy[k] * a->data[k];
        }
    });
  return BasicTensor<S>(y);
}

/// s · x for a constant s.
template <class S>
BasicTensor<S> scale(BasicTensor<S> x, S s) {
  auto& g = BasicGraph<S>::current("scale");
  TensorImpl<S>* y = g.make(x.shape());
  const Index n = x.numel();
  for (Index i = 0; i < n; ++i) y->data[i] = s * x.data()[i];
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y, n, s] {
      for (Index i = 0; i < n; ++i) x->grad[i] += s * y->grad[i];
    });
  return BasicTensor<S>(y);
}

/// Sum of all elements (shape [1]); accumulated in double.
template <class S>
BasicTensor<S> sum(BasicTensor<S> x) {
  auto& g = BasicGraph<S>::current("sum");
  TensorImpl<S>* y = g.make(Shape{1});
  double acc = 0;
  const Index n = x.numel();
  for (Index i = 0; i < n; ++i) acc += static_cast<double>(x.data()[i]);
  y->data[0] = static_cast<S>(acc);
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y, n] {
      for (Index i = 0; i < n; ++i) x->grad[i] += y->grad[0];
    });
  return BasicTensor<S>(y);
}

/// Mean of all elements (shape [1]).
template <class S>
BasicTensor<S> mean(BasicTensor<S> x) {
  lowbit::detail::check(x.numel() > 0, "mean: empty tensor of shape ", x.shape());
  return scale(sum(x), S(1) / static_cast<S>(x.numel()));
}

}  // namespace lowbit::autograd
