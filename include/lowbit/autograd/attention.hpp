// Fused causal self-attention with grouped-query heads; one T×T score buffer per worker thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "lowbit/autograd/gemm.hpp"
#include "lowbit/autograd/tensor.hpp"
#include "lowbit/autograd/thread_pool.hpp"

namespace lowbit::autograd {

/// softmax(q·kᵀ·scale + causal mask)·v for q [B, T, Hq, D] and k, v [B, T, Hkv, D]
/// (the layout a fused projection reshapes to, no transposes needed). Hq must be a
/// multiple of Hkv: query head h reads kv head h / (Hq/Hkv) (GQA; Hkv = Hq is plain
/// multi-head attention). scale ≤ 0 means 1/√D. Returns [B, T, Hq, D].
///
/// Memory: the forward pass keeps only the per-row log-sum-exp (B·Hq·T values); the
/// probabilities are recomputed in backward, as FlashAttention does. Each worker holds
/// one T×T buffer at a time in forward (two in backward: P and dP).
template <class S>
BasicTensor<S> causal_attention(BasicTensor<S> q, BasicTensor<S> k, BasicTensor<S> v, S scale = S(0)) {
  auto& g = BasicGraph<S>::current("causal_attention");
  lowbit::detail::check(q.ndim() == 4 && k.ndim() == 4 && v.ndim() == 4,
                        "causal_attention: q, k, v must be [B, T, heads, head_dim], got ", q.shape(), ", ",
                        k.shape(), ", ", v.shape());
  const Index batch = q.dim(0), t = q.dim(1), hq = q.dim(2), d = q.dim(3), hkv = k.dim(2);
  lowbit::detail::check(k.shape() == v.shape(), "causal_attention: k ", k.shape(), " and v ", v.shape(),
                        " differ");
  lowbit::detail::check(k.dim(0) == batch && k.dim(1) == t && k.dim(3) == d, "causal_attention: k ",
                        k.shape(), " does not match q ", q.shape());
  lowbit::detail::check(hkv > 0 && hq % hkv == 0, "causal_attention: ", hq,
                        " query heads are not a multiple of ", hkv, " key/value heads");
  if (scale <= S(0)) scale = S(1) / std::sqrt(static_cast<S>(d));
  TensorImpl<S>* y = g.make(q.shape());
  const bool track = g.tracks({q.impl(), k.impl(), v.impl()});
  S* lse = track ? g.arena().template alloc<S>(static_cast<std::size_t>(batch * hq * t)) : nullptr;
  const int threads = num_threads();
  S* scratch = g.arena().template alloc<S>(static_cast<std::size_t>(threads * t * t));
  const Index ldq = hq * d, ldk = hkv * d, group = hq / hkv;
  const S *qd = q.data(), *kd = k.data(), *vd = v.data();
  S* out = y->data;
  parallel_for(batch * hq, 1, [=](Index i0, Index i1, int thread) {
    S* p = scratch + static_cast<Index>(thread) * t * t;
    for (Index i = i0; i < i1; ++i) {
      const Index b = i / hq, h = i % hq, hk = h / group;
      const S* qh = qd + b * t * ldq + h * d;
      const S* kh = kd + b * t * ldk + hk * d;
      const S* vh = vd + b * t * ldk + hk * d;
      gemm<S>(t, t, d, qh, ldq, Trans::no, kh, ldk, Trans::yes, p, t, scale, S(0), false);
      for (Index r = 0; r < t; ++r) {
        S* row = p + r * t;
        const S mx = *std::max_element(row, row + r + 1);
        S total = 0;
        for (Index j = 0; j <= r; ++j) total += (row[j] = std::exp(row[j] - mx));
        const S inv = S(1) / total;
        for (Index j = 0; j <= r; ++j) row[j] *= inv;
        std::fill(row + r + 1, row + t, S(0));
        if (lse) lse[i * t + r] = mx + std::log(total);
      }
      gemm<S>(t, d, t, p, t, Trans::no, vh, ldk, Trans::no, out + b * t * ldq + h * d, ldq, S(1), S(0), false);
    }
  });
  if (track)
    g.record(y, {q.impl(), k.impl(), v.impl()},
             [gp = &g, q = q.impl(), k = k.impl(), v = v.impl(), y, lse, batch, t, hq, hkv, d, scale] {
               const Index ldq = hq * d, ldk = hkv * d, group = hq / hkv;
               const int threads = num_threads();
               S* scratch = gp->arena().template alloc<S>(static_cast<std::size_t>(2 * threads * t * t));
               parallel_for(batch * hkv, 1, [=](Index i0, Index i1, int thread) {
                 S* p = scratch + 2 * static_cast<Index>(thread) * t * t;
                 S* dp = p + t * t;
                 for (Index i = i0; i < i1; ++i) {
                   const Index b = i / hkv, hk = i % hkv;
                   const S* kh = k->data + b * t * ldk + hk * d;
                   const S* vh = v->data + b * t * ldk + hk * d;
                   S* dk = k->grad ? k->grad + b * t * ldk + hk * d : nullptr;
                   S* dv = v->grad ? v->grad + b * t * ldk + hk * d : nullptr;
                   for (Index h = hk * group; h < (hk + 1) * group; ++h) {
                     const Index off = b * t * ldq + h * d;
                     const S *qh = q->data + off, *oh = y->data + off, *doh = y->grad + off;
                     const S* l = lse + (b * hq + h) * t;
                     gemm<S>(t, t, d, qh, ldq, Trans::no, kh, ldk, Trans::yes, p, t, scale, S(0), false);
                     for (Index r = 0; r < t; ++r) {
                       S* row = p + r * t;
                       for (Index j = 0; j <= r; ++j) row[j] = std::exp(row[j] - l[r]);
                       std::fill(row + r + 1, row + t, S(0));
                     }
                     if (dv) gemm<S>(t, d, t, p, t, Trans::yes, doh, ldq, Trans::no, dv, ldk, S(1), S(1), false);
                     gemm<S>(t, t, d, doh, ldq, Trans::no, vh, ldk, Trans::yes, dp, t, S(1), S(0), false);
                     for (Index r = 0; r < t; ++r) {  // dS = P ⊙ (dP − rowsum(dO ⊙ O))
                       S di = 0;
                       for (Index c = 0; c < d; ++c) di += doh[r * ldq + c] * oh[r * ldq + c];
                       S* dsr = dp + r * t;
                       const S* pr = p + r * t;
                       for (Index j = 0; j <= r; ++j) dsr[j] = pr[j] * (dsr[j] - di);
                       std::fill(dsr + r + 1, dsr + t, S(0));
                     }
                     if (q->grad)
                       gemm<S>(t, d, t, dp, t, Trans::no, kh, ldk, Trans::no, q->grad + off, ldq, scale, S(1), false);
                     if (dk) gemm<S>(t, d, t, dp, t, Trans::yes, qh, ldq, Trans::no, dk, ldk, scale, S(1), false);
                   }
                 }
               });
             });
  return BasicTensor<S>(y);
}

}  // namespace lowbit::autograd
