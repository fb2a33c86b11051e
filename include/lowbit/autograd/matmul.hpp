// matmul (batched, with transposes) and linear (x·Wᵀ + b, PyTorch nn.Linear layout).
#pragma once

#include "lowbit/autograd/gemm.hpp"
#include "lowbit/autograd/tensor.hpp"

namespace lowbit::autograd {

namespace detail {
inline Trans flip(Trans t) { return t == Trans::no ? Trans::yes : Trans::no; }
}  // namespace detail

/// op(a) · op(b) over matching leading (batch) dimensions; b may also be a plain
/// matrix shared by every batch entry. op(x) = x or xᵀ (of the last two dimensions).
template <class S>
BasicTensor<S> matmul(BasicTensor<S> a, BasicTensor<S> b, Trans ta = Trans::no, Trans tb = Trans::no) {
  auto& g = BasicGraph<S>::current("matmul");
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  lowbit::detail::check(sa.ndim >= 2 && sb.ndim >= 2, "matmul: operands need 2+ dimensions, got ", sa,
                        " and ", sb);
  const Index m = ta == Trans::no ? sa[-2] : sa[-1], k = ta == Trans::no ? sa[-1] : sa[-2];
  const Index kb = tb == Trans::no ? sb[-2] : sb[-1], n = tb == Trans::no ? sb[-1] : sb[-2];
  lowbit::detail::check(k == kb, "matmul: inner dimensions differ (", sa, " and ", sb, " give ", k, " vs ", kb,
                        ")");
  const bool shared_b = sb.ndim == 2;
  lowbit::detail::check(shared_b || sb.ndim == sa.ndim, "matmul: batch dimensions of ", sa, " and ", sb,
                        " differ");
  Shape out = sa;
  Index batch = 1;
  for (int i = 0; i < sa.ndim - 2; ++i) {
    lowbit::detail::check(shared_b || sa[i] == sb[i], "matmul: batch dimensions of ", sa, " and ", sb,
                          " differ");
    batch *= sa[i];
  }
  out.dims[static_cast<std::size_t>(out.ndim - 2)] = m;
  out.dims[static_cast<std::size_t>(out.ndim - 1)] = n;
  TensorImpl<S>* y = g.make(out);
  const Index lda = sa[-1], ldb = sb[-1];
  const Index stride_a = m * k, stride_b = shared_b ? 0 : k * n, stride_c = m * n;
  if (!shared_b || ta == Trans::yes) {
    for (Index i = 0; i < batch; ++i)
      gemm<S>(m, n, k, a.data() + i * stride_a, lda, ta, b.data() + i * stride_b, ldb, tb,
              y->data + i * stride_c, n);
  } else {  // shared b and plain a: one tall GEMM
    gemm<S>(batch * m, n, k, a.data(), lda, ta, b.data(), ldb, tb, y->data, n);
  }
  if (g.tracks({a.impl(), b.impl()}))
    g.record(y, {a.impl(), b.impl()},
             [a = a.impl(), b = b.impl(), y, m, n, k, lda, ldb, batch, stride_a, stride_b, stride_c, ta, tb] {
               for (Index i = 0; i < batch; ++i) {
                 const S* dc = y->grad + i * stride_c;
                 const S* av = a->data + i * stride_a;
                 const S* bv = b->data + i * stride_b;
                 if (a->grad) {
                   S* da = a->grad + i * stride_a;
                   if (ta == Trans::no)  // dA = dC·op(B)ᵀ
                     gemm<S>(m, k, n, dc, n, Trans::no, bv, ldb, detail::flip(tb), da, lda, S(1), S(1));
                   else  // dAᵀ = op(B)·dCᵀ
                     gemm<S>(k, m, n, bv, ldb, tb, dc, n, Trans::yes, da, lda, S(1), S(1));
                 }
                 if (b->grad) {
                   S* db = b->grad + i * stride_b;
                   if (tb == Trans::no)  // dB = op(A)ᵀ·dC
                     gemm<S>(k, n, m, av, lda, detail::flip(ta), dc, n, Trans::no, db, ldb, S(1), S(1));
                   else  // dBᵀ = dCᵀ·op(A)
                     gemm<S>(n, k, m, dc, n, Trans::yes, av, lda, ta, db, ldb, S(1), S(1));
                 }
               }
             });
  return BasicTensor<S>(y);
}

/// x·Wᵀ + bias for x [..., in], W [out, in] (nn.Linear layout), bias [out] or undefined.
template <class S>
BasicTensor<S> linear(BasicTensor<S> x, BasicTensor<S> w, BasicTensor<S> bias = {}) {
  auto& g = BasicGraph<S>::current("linear");
  const Shape& sx = x.shape();
  lowbit::detail::check(w.ndim() == 2, "linear: weight must be [out, in], got ", w.shape());
  const Index in = w.dim(1), out_f = w.dim(0);
  lowbit::detail::check(sx.ndim >= 1 && sx.last() == in, "linear: input ", sx, " does not end in ", in,
                        " features (weight ", w.shape(), ")");
  if (bias.defined())
    lowbit::detail::check(bias.ndim() == 1 && bias.dim(0) == out_f, "linear: bias ", bias.shape(),
                          " does not match ", out_f, " output features");
  Shape so = sx;
  so.dims[static_cast<std::size_t>(so.ndim - 1)] = out_f;
  TensorImpl<S>* y = g.make(so);
  const Index rows = sx.rows();
  gemm<S>(rows, out_f, in, x.data(), in, Trans::no, w.data(), in, Trans::yes, y->data, out_f);
  if (bias.defined())
    for (Index r = 0; r < rows; ++r)
      for (Index j = 0; j < out_f; ++j) y->data[r * out_f + j] += bias.data()[j];
  TensorImpl<S>* bi = bias.defined() ? bias.impl() : nullptr;
  if (g.tracks({x.impl(), w.impl(), bi}))
    g.record(y, {x.impl(), w.impl(), bi}, [x = x.impl(), w = w.impl(), bi, y, rows, in, out_f] {
      const S* dy = y->grad;
      if (x->grad)  // dX = dY·W
        gemm<S>(rows, in, out_f, dy, out_f, Trans::no, w->data, in, Trans::no, x->grad, in, S(1), S(1));
      if (w->grad)  // dW = dYᵀ·X
        gemm<S>(out_f, in, rows, dy, out_f, Trans::yes, x->data, in, Trans::no, w->grad, in, S(1), S(1));
      if (bi && bi->grad)
        for (Index r = 0; r < rows; ++r)
          for (Index j = 0; j < out_f; ++j) bi->grad[j] += dy[r * out_f + j];
    });
  return BasicTensor<S>(y);
}

}  // namespace lowbit::autograd
