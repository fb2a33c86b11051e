// Activations: GELU (tanh approximation, as GPT-2), SiLU, softmax over the last dimension.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "lowbit/autograd/elementwise.hpp"
#include "lowbit/autograd/tensor.hpp"
#include "lowbit/autograd/thread_pool.hpp"

namespace lowbit::autograd {

namespace detail {

template <class S>
struct GeluTanh {
  static constexpr S c = S(0.7978845608028654);  // sqrt(2/π)
  static constexpr S a = S(0.044715);
  static S value(S x) { return S(0.5) * x * (S(1) + std::tanh(c * (x + a * x * x * x))); }
  static S derivative(S x) {
    const S t = std::tanh(c * (x + a * x * x * x));
    return S(0.5) * (S(1) + t) + S(0.5) * x * (S(1) - t * t) * c * (S(1) + S(3) * a * x * x);
  }
  // Same formulas on SIMD batches (xsimd's tanh), used for float.
  template <class V>
  static V value(V x) {
    return V(S(0.5)) * x * (V(S(1)) + xsimd::tanh(V(c) * (x + V(a) * x * x * x)));
  }
  template <class V>
  static V derivative(V x) {
    const V t = xsimd::tanh(V(c) * (x + V(a) * x * x * x));
    return V(S(0.5)) * (V(S(1)) + t) + V(S(0.5)) * x * (V(S(1)) - t * t) * V(c) * (V(S(1)) + V(S(3) * a) * x * x);
  }
};

template <class S>
struct Silu {
  static S sigmoid(S x) { return S(1) / (S(1) + std::exp(-x)); }
  static S value(S x) { return x * sigmoid(x); }
  static S derivative(S x) {
    const S s = sigmoid(x);
    return s * (S(1) + x * (S(1) - s));
  }
  template <class V>
  static V value(V x) {
    return x / (V(S(1)) + xsimd::exp(-x));
  }
  template <class V>
  static V derivative(V x) {
    const V s = V(S(1)) / (V(S(1)) + xsimd::exp(-x));
    return s * (V(S(1)) + x * (V(S(1)) - s));
  }
};

// y[i] = F::value(x[i]) (Derivative = false) or dx[i] += dy[i]·F::derivative(x[i]),
// SIMD for float with the scalar formula on the tail; Simd = false is the scalar reference.
template <class F, bool Derivative, bool Simd = true, class S>
void pointwise_kernel(const S* x, const std::type_identity_t<S>* dy, S* out, Index n) {
  Index i = 0;
  if constexpr (Simd && std::is_same_v<S, float>) {
    using V = xsimd::batch<float>;
    constexpr Index w = static_cast<Index>(V::size);
    for (; i + w <= n; i += w) {
      const V v = V::load_unaligned(x + i);
      if constexpr (Derivative)
        (V::load_unaligned(out + i) + V::load_unaligned(dy + i) * F::derivative(v)).store_unaligned(out + i);
      else
        F::value(v).store_unaligned(out + i);
    }
  }
  for (; i < n; ++i) {
    if constexpr (Derivative) out[i] += dy[i] * F::derivative(x[i]);
    else out[i] = F::value(x[i]);
  }
}

template <class F, class S>
BasicTensor<S> pointwise(BasicTensor<S> x, const char* op) {
  auto& g = BasicGraph<S>::current(op);
  TensorImpl<S>* y = g.make(x.shape());
  const S* in = x.data();
  S* out = y->data;
  parallel_for(x.numel(), elementwise_grain,
               [=](Index b, Index e, int) { pointwise_kernel<F, false>(in + b, nullptr, out + b, e - b); });
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y] {
      const S *in = x->data, *dy = y->grad;
      S* dx = x->grad;
      parallel_for(x->shape.numel(), elementwise_grain,
                   [=](Index b, Index e, int) { pointwise_kernel<F, true>(in + b, dy + b, dx + b, e - b); });
    });
  return BasicTensor<S>(y);
}

}  // namespace detail

/// 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))): torch's GELU(approximate='tanh'), GPT-2's "gelu_new".
template <class S>
BasicTensor<S> gelu_tanh(BasicTensor<S> x) {
  return detail::pointwise<detail::GeluTanh<S>>(x, "gelu_tanh");
}

/// x·σ(x) (Llama's SwiGLU gate: mul(silu(gate), up)).
template <class S>
BasicTensor<S> silu(BasicTensor<S> x) {
  return detail::pointwise<detail::Silu<S>>(x, "silu");
}

/// Softmax over the last dimension (max-subtracted).
template <class S>
BasicTensor<S> softmax(BasicTensor<S> x) {
  auto& g = BasicGraph<S>::current("softmax");
  TensorImpl<S>* y = g.make(x.shape());
  const Index n = x.shape().last(), rows = x.shape().rows();
  const S* in = x.data();
  S* out = y->data;
  parallel_for(rows, std::max<Index>(1, detail::elementwise_grain / std::max<Index>(n, 1)),
               [=](Index r0, Index r1, int) {
                 for (Index r = r0; r < r1; ++r) {
                   const S* xr = in + r * n;
                   S* yr = out + r * n;
                   const S mx = *std::max_element(xr, xr + n);
                   S total = 0;
                   for (Index i = 0; i < n; ++i) total += (yr[i] = std::exp(xr[i] - mx));
                   for (Index i = 0; i < n; ++i) yr[i] /= total;
                 }
               });
  if (g.tracks({x.impl()}))
    g.record(y, {x.impl()}, [x = x.impl(), y, n, rows] {
      for (Index r = 0; r < rows; ++r) {
        const S *yr = y->data + r * n, *dy = y->grad + r * n;
        S dot = 0;
        for (Index i = 0; i < n; ++i) dot += dy[i] * yr[i];
        for (Index i = 0; i < n; ++i) x->grad[r * n + i] += yr[i] * (dy[i] - dot);
      }
    });
  return BasicTensor<S>(y);
}

}  // namespace lowbit::autograd
