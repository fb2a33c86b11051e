// What the fixture tests against the GPTQ reference (symmetric and asymmetric
// grids) share: reading a case, running it through the typed façade, and checking
// per-column losses and the act-order permutation.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "lowbit/gptq.hpp"
#include "gptq_test_util.hpp"
#include "../support/fixture.hpp"

namespace lowbit::test {

inline RowMatrix matrix_of(const FixtureTensor& t) {
  RowMatrix m(t.rows(), t.cols());
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = t.values[static_cast<std::size_t>(i)];
  return m;
}

/// One GPTQ case of a reference fixture: quant.py's and gptq.py's arguments.
struct ReferenceCase {
  std::string layer, name;
  int bits;
  bool perchannel, actorder, stat, mse;
  Index groupsize, blocksize;

  /// The case's arguments, stored under "<layer>.<name>.".
  static ReferenceCase read(const Fixture& f, const std::string& layer, const std::string& name) {
    const std::string p = layer + "." + name + ".";
    return {layer,
            name,
            static_cast<int>(f[p + "bits"].scalar()),
            f[p + "perchannel"].scalar() != 0.0f,
            f[p + "actorder"].scalar() != 0.0f,
            f[p + "static"].scalar() != 0.0f,
            f[p + "mse"].scalar() != 0.0f,
            static_cast<Index>(f[p + "groupsize"].scalar()),
            static_cast<Index>(f[p + "blocksize"].scalar())};
  }
};

template <class Format, class Granularity, class Search>
SolveResult run_reference(const ReferenceCase& c, const RowMatrix& w, const Hessian& h, Granularity g) {
  GptqOptions o;
  o.percdamp = 0.01;
  o.block_size = c.blocksize;
  o.act_order = c.actorder;
  o.static_groups = c.stat;
  o.evaluate = false;
  return Gptq<Format, Granularity, Search>(o, g).quantize(ConstMatrixView(w), h, c.name);
}

/// The case through Gptq<Fmt<B>, granularity, AbsMax or MseShrink>, as the
/// reference's arguments choose them.
template <template <int> class Fmt, int B>
SolveResult run_reference_bits(const ReferenceCase& c, const RowMatrix& w, const Hessian& h) {
  using F = Fmt<B>;
  if (c.groupsize > 0) {
    if (c.mse) return run_reference<F, PerGroup<>, MseShrink>(c, w, h, PerGroup<>{c.groupsize});
    return run_reference<F, PerGroup<>, AbsMax>(c, w, h, PerGroup<>{c.groupsize});
  }
  if (c.perchannel) {
    if (c.mse) return run_reference<F, PerChannel, MseShrink>(c, w, h, PerChannel{});
    return run_reference<F, PerChannel, AbsMax>(c, w, h, PerChannel{});
  }
  if (c.mse) return run_reference<F, PerTensor, MseShrink>(c, w, h, PerTensor{});
  return run_reference<F, PerTensor, AbsMax>(c, w, h, PerTensor{});
}

template <template <int> class Fmt>
SolveResult run_reference_case(const ReferenceCase& c, const RowMatrix& w, const Hessian& h) {
  switch (c.bits) {
    case 2: return run_reference_bits<Fmt, 2>(c, w, h);
    case 3: return run_reference_bits<Fmt, 3>(c, w, h);
    case 4: return run_reference_bits<Fmt, 4>(c, w, h);
    case 8: return run_reference_bits<Fmt, 8>(c, w, h);
    default: FAIL("fixture has an unexpected bit width ", c.bits);
  }
  return {};
}

/// r's losses equal the reference's `<p>losses` (per column and in total), and with
/// act-order its permutation equals `<p>perm` up to ties between dead columns.
inline void check_losses_and_order(const Fixture& f, const std::string& p, const SolveResult& r, const Hessian& h,
                                   bool actorder) {
  const auto& losses = f[p + "losses"].values;
  REQUIRE(losses.size() == r.column_losses.size());
  double total_ref = 0.0;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    CHECK(r.column_losses[i] == doctest::Approx(losses[i]).epsilon(2e-3).scale(1e-6));
    total_ref += losses[i];
  }
  CHECK(r.total_loss() == doctest::Approx(total_ref).epsilon(1e-4));

  if (!actorder) {
    CHECK(r.permutation.empty());
    return;
  }
  const auto& perm = f[p + "perm"].values;
  REQUIRE(r.permutation.size() == perm.size());
  // Dead columns tie at H_dd = 1; their relative order changes nothing.
  const auto& hm = h.matrix;
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const auto ref = static_cast<Index>(perm[i]);
    if (hm(ref, ref) != 0.0f) CHECK(r.permutation[i] == ref);
  }
}

}  // namespace lowbit::test
