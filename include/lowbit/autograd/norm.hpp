// LayerNorm (GPT-2) and RMSNorm (Llama) over the last dimension.
#pragma once

#include <cmath>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/autograd/thread_pool.hpp"

namespace lowbit::autograd {

namespace detail {
template <class S>
Index norm_grain(Index c) {
  return std::max<Index>(1, (Index{1} << 14) / std::max<Index>(c, 1));
}
}  // namespace detail

/// (x − mean)/√(var + eps)·weight + bias per row (biased variance, as torch.nn.LayerNorm).
/// bias may be undefined.
template <class S>
BasicTensor<S> layer_norm(BasicTensor<S> x, BasicTensor<S> weight, BasicTensor<S> bias, S eps = S(1e-5)) {
  auto& g = BasicGraph<S>::current("layer_norm");
  const Index c = x.shape().last(), rows = x.shape().rows();
  lowbit::detail::check(weight.ndim() == 1 && weight.dim(0) == c, "layer_norm: weight ", weight.shape(),
                        " does not match the last dimension of ", x.shape());
  lowbit::detail::check(!bias.defined() || (bias.ndim() == 1 && bias.dim(0) == c), "layer_norm: bias ",
                        bias.defined() ? bias.shape() : Shape{}, " does not match ", c, " features");
  lowbit::detail::check(eps > S(0), "layer_norm: eps must be positive, got ", eps);
  TensorImpl<S>* y = g.make(x.shape());
  TensorImpl<S>* bi = bias.defined() ? bias.impl() : nullptr;
  const bool track = g.tracks({x.impl(), weight.impl(), bi});
  // Per row: mean and 1/σ, kept for the backward pass.
  S* stats = g.arena().template alloc<S>(static_cast<std::size_t>(2 * rows));
  const S *in = x.data(), *w = weight.data(), *b = bi ? bi->data : nullptr;
  S* out = y->data;
  parallel_for(rows, detail::norm_grain<S>(c), [=](Index r0, Index r1, int) {
    for (Index r = r0; r < r1; ++r) {
      const S* xr = in + r * c;
      S mu = 0;
      for (Index i = 0; i < c; ++i) mu += xr[i];
      mu /= static_cast<S>(c);
      S var = 0;
      for (Index i = 0; i < c; ++i) var += (xr[i] - mu) * (xr[i] - mu);
      var /= static_cast<S>(c);
      const S rstd = S(1) / std::sqrt(var + eps);
      stats[2 * r] = mu;
      stats[2 * r + 1] = rstd;
      S* yr = out + r * c;
      for (Index i = 0; i < c; ++i) yr[i] = (xr[i] - mu) * rstd * w[i] + (b ? b[i] : S(0));
    }
  });
  if (track)
    g.record(y, {x.impl(), weight.impl(), bi}, [x = x.impl(), w = weight.impl(), bi, y, stats, rows, c] {
      for (Index r = 0; r < rows; ++r) {
        const S *xr = x->data + r * c, *dy = y->grad + r * c;
        const S mu = stats[2 * r], rstd = stats[2 * r + 1];
        S mean_g = 0, mean_gx = 0;  // means of (dy·w) and (dy·w·x̂)
        for (Index i = 0; i < c; ++i) {
          const S xhat = (xr[i] - mu) * rstd, gi = dy[i] * w->data[i];
          mean_g += gi;
          mean_gx += gi * xhat;
          if (w->grad) w->grad[i] += dy[i] * xhat;
          if (bi && bi->grad) bi->grad[i] += dy[i];
        }
        mean_g /= static_cast<S>(c);
        mean_gx /= static_cast<S>(c);
        if (x->grad)
          for (Index i = 0; i < c; ++i) {
            const S xhat = (xr[i] - mu) * rstd;
            x->grad[r * c + i] += rstd * (dy[i] * w->data[i] - mean_g - xhat * mean_gx);
          }
      }
    });
  return BasicTensor<S>(y);
}

/// x/√(mean(x²) + eps)·weight per row (Llama's RMSNorm).
template <class S>
BasicTensor<S> rms_norm(BasicTensor<S> x, BasicTensor<S> weight, S eps = S(1e-5)) {
  auto& g = BasicGraph<S>::current("rms_norm");
  const Index c = x.shape().last(), rows = x.shape().rows();
  lowbit::detail::check(weight.ndim() == 1 && weight.dim(0) == c, "rms_norm: weight ", weight.shape(),
                        " does not match the last dimension of ", x.shape());
  lowbit::detail::check(eps > S(0), "rms_norm: eps must be positive, got ", eps);
  TensorImpl<S>* y = g.make(x.shape());
  S* rstds = g.arena().template alloc<S>(static_cast<std::size_t>(rows));
  const S *in = x.data(), *w = weight.data();
  S* out = y->data;
  parallel_for(rows, detail::norm_grain<S>(c), [=](Index r0, Index r1, int) {
    for (Index r = r0; r < r1; ++r) {
      const S* xr = in + r * c;
      S ms = 0;
      for (Index i = 0; i < c; ++i) ms += xr[i] * xr[i];
      const S rstd = S(1) / std::sqrt(ms / static_cast<S>(c) + eps);
      rstds[r] = rstd;
      for (Index i = 0; i < c; ++i) out[r * c + i] = xr[i] * rstd * w[i];
    }
  });
  if (g.tracks({x.impl(), weight.impl()}))
    g.record(y, {x.impl(), weight.impl()}, [x = x.impl(), w = weight.impl(), y, rstds, rows, c] {
      for (Index r = 0; r < rows; ++r) {
        const S *xr = x->data + r * c, *dy = y->grad + r * c;
        const S rstd = rstds[r];
        S mean_gx = 0;
        for (Index i = 0; i < c; ++i) {
          const S xhat = xr[i] * rstd;
          mean_gx += dy[i] * w->data[i] * xhat;
          if (w->grad) w->grad[i] += dy[i] * xhat;
        }
        mean_gx /= static_cast<S>(c);
        if (x->grad)
          for (Index i = 0; i < c; ++i)
            x->grad[r * c + i] += rstd * (dy[i] * w->data[i] - xr[i] * rstd * mean_gx);
      }
    });
  return BasicTensor<S>(y);
}

}  // namespace lowbit::autograd
