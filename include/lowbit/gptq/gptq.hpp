// Gptq<Format, Granularity, ScaleSearch, Backend>: the GPTQ layer solver
// (Frantar et al. 2022), following the reference gptq.py fasterquant step by step.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Core>

#include "lowbit/autograd/thread_pool.hpp"
#include "lowbit/backend/eigen.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/gptq/block_grid.hpp"
#include "lowbit/gptq/hessian.hpp"
#include "lowbit/gptq/result.hpp"
#include "lowbit/quant/abs_max.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"
#include "lowbit/quant/kernels.hpp"
#include "lowbit/quant/normal_float.hpp"
#include "lowbit/quant/quant_params.hpp"
#include "lowbit/quant/quantizer.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"

namespace lowbit {

struct GptqOptions {
  double percdamp = 0.01;     ///< λ = percdamp · mean(diag H), added to diag H
  Index block_size = 128;     ///< lazy-batch width (columns per trailing GEMM)
  bool act_order = false;     ///< process columns by descending diag(H)
  bool static_groups = false; ///< group scales from the original W instead of at each boundary
  int max_retries = 8;        ///< damping retries when H is not positive definite
  double retry_factor = 10.0; ///< percdamp multiplier per retry
  bool evaluate = true;       ///< compute the before/after layer errors (two extra GEMMs)
};

namespace detail {

inline void check_weight(ConstMatrixView w, std::string_view name) {
  check(!w.empty(), "weight '", name, "' is empty (", w.rows, "x", w.cols, ")");
  const SliceStats st = kernels::stats(w.data, w.size());
  if (!st.finite) {
    const Index i = kernels::first_non_finite(w.data, w.size());
    fail("weight '", name, "' has a non-finite value (", w.data[i], ") at [", i / w.cols, ", ", i % w.cols, "]");
  }
}

/// Shape, finiteness, symmetry (to fp32 round-off: the reference reads the lower
/// triangle only, and so do we) and a non-negative diagonal.
inline void check_hessian(const Hessian& h, Index cols, std::string_view name) {
  const ::Eigen::MatrixXf& m = h.matrix;
  check(m.rows() == m.cols(), "Hessian of '", name, "' must be square, got ", m.rows(), "x", m.cols());
  check(m.rows() == cols, "Hessian of '", name, "' is ", m.rows(), "x", m.cols(), " but the weight has ", cols,
        " columns (in_features)");
  if (!m.allFinite())
    for (Index j = 0; j < m.cols(); ++j)
      for (Index i = 0; i < m.rows(); ++i)
        if (!std::isfinite(m(i, j)))
          fail("Hessian of '", name, "' has a non-finite value (", m(i, j), ") at [", i, ", ", j, "]");
  for (Index d = 0; d < m.rows(); ++d)
    check(m(d, d) >= 0.0f, "Hessian of '", name, "' has a negative diagonal entry H[", d, ", ", d, "] = ", m(d, d),
          ": not a Hessian 2XᵀX/n");
  // Tile by tile, so that reading the transpose stays in cache. An accumulated H is
  // exactly symmetric, so each tile is first compared for equality with its
  // mirror (transposed into a local buffer, so the comparison runs on contiguous
  // floats); only a tile that differs gets the tolerance test.
  constexpr Index tile = 32;
  const Index n = m.rows();
  alignas(64) float mirror[tile * tile];
  for (Index j0 = 0; j0 < n; j0 += tile)
    for (Index i0 = j0; i0 < n; i0 += tile) {
      const Index tj = std::min(tile, n - j0), ti = std::min(tile, n - i0);
      for (Index i = 0; i < ti; ++i)
        for (Index j = 0; j < tj; ++j) mirror[j * tile + i] = m(j0 + j, i0 + i);
      bool differs = false;
      for (Index j = 0; j < tj; ++j) {
        const float* col = m.data() + (j0 + j) * n + i0;
        for (Index i = 0; i < ti; ++i) differs |= col[i] != mirror[j * tile + i];
      }
      if (!differs) continue;
      for (Index j = j0; j < std::min(j0 + tile, n); ++j)
        for (Index i = std::max(i0, j + 1); i < std::min(i0 + tile, n); ++i) {
          const double a = m(i, j), b = m(j, i);
          if (a == b) continue;
          const double tol = 1e-4 * (std::fabs(a) + std::fabs(b) + std::sqrt(double(m(i, i)) * double(m(j, j))));
          if (std::fabs(a - b) > tol)
            fail("Hessian of '", name, "' is not symmetric: H[", i, ", ", j, "] = ", a, " but H[", j, ", ", i,
                 "] = ", b);
        }
    }
}

inline void check_options(const GptqOptions& o, ScaleLayout::Kind kind) {
  check(std::isfinite(o.percdamp) && o.percdamp >= 0.0, "GptqOptions: percdamp must be finite and >= 0, got ",
        o.percdamp);
  check(o.block_size > 0, "GptqOptions: block_size must be positive, got ", o.block_size);
  check(o.max_retries >= 0, "GptqOptions: max_retries must be >= 0, got ", o.max_retries);
  check(std::isfinite(o.retry_factor) && o.retry_factor > 1.0, "GptqOptions: retry_factor must be > 1, got ",
        o.retry_factor);
  check(!o.static_groups || kind == ScaleLayout::Kind::group,
        "GptqOptions: static_groups needs a PerGroup granularity");
}

/// dst(r, perm[p]) = src(r, p): processing order → original column order (an
/// empty perm is the identity). A row-major source is read row by row; a
/// column-major one in 32 × 32 tiles.
template <class Src>
void unpermute(const Src& src, const std::vector<Index>& perm, SolveResult::RowMajorMatrix& dst) {
  const Index rows = src.rows(), cols = src.cols();
  auto at = [&](Index p) { return perm.empty() ? p : perm[static_cast<std::size_t>(p)]; };
  if constexpr (static_cast<bool>(Src::IsRowMajor)) {
    for (Index r = 0; r < rows; ++r) {
      const float* in = src.data() + r * cols;
      float* out = dst.data() + r * cols;
      if (perm.empty())
        std::copy(in, in + cols, out);
      else
        for (Index p = 0; p < cols; ++p) out[at(p)] = in[p];
    }
  } else {
    constexpr Index tile = 32;
    for (Index r0 = 0; r0 < rows; r0 += tile)
      for (Index p0 = 0; p0 < cols; p0 += tile)
        for (Index r = r0; r < std::min(r0 + tile, rows); ++r)
          for (Index p = p0; p < std::min(p0 + tile, cols); ++p) dst(r, at(p)) = src(r, p);
  }
}

}  // namespace detail

/// GPTQ for one linear layer W (rows = out_features × cols = in_features,
/// row-major) with Hessian H (cols × cols):
///   1. scales (per-tensor / per-channel) from the original W with ScaleSearch;
///   2. dead columns (H_dd = 0): H_dd ← 1, W[:, d] ← 0;
///   3. static groups: every group's scales from that W;
///   4. act-order: columns permuted by descending diag(H);
///   5. λ = percdamp·mean(diag H) on the diagonal, U = chol(H⁻¹) upper — retried with
///      damping × retry_factor while H is not positive definite;
///   6. blocks of block_size columns: each column quantized with the current
///      scales (dynamic groups: refreshed at each group boundary from W as it
///      stands at the start of the block, as the reference slices it), its error
///      (w−q)/U_jj fed back into the block's later columns, then one GEMM
///      W[:, i2:] -= Err·U[i1:i2, i2:];
///   7. the inverse permutation applied to Q, codes and losses.
///
/// Workspaces: the backend's n × n and rows × cols buffers (128 MiB for a 4096 × 4096
/// layer) are kept by the solver and reused by the next quantize() call, so a study
/// that quantizes layer after layer does not pay for fresh pages each time (on a VM a
/// page fault costs ~10 µs: 64 MiB in 4 KiB pages is ~0.2 s). Copies of a solver share
/// that workspace; a call that finds it busy (another thread) uses a fresh one, so
/// concurrent calls stay safe. release_workspace() frees it; quantize(w, h, ws, name)
/// takes a caller-owned workspace instead.
template <class Backend = backend::Eigen>
class SpecGptq {
 public:
  using backend_type = Backend;
  using workspace_type = typename Backend::GptqWorkspace;

  SpecGptq() : SpecGptq(QuantSpec{}) {}
  explicit SpecGptq(QuantSpec spec, GptqOptions options = {}, SearchSettings settings = {})
      : options_(options), quantizer_(spec, settings), row_quantizer_(per_channel(spec), settings) {}

  [[nodiscard]] GptqOptions& options() { return options_; }
  [[nodiscard]] const GptqOptions& options() const { return options_; }
  [[nodiscard]] const QuantSpec& spec() const { return quantizer_.spec(); }

  /// Quantizes W with Hessian H, reusing the solver's workspace (see above).
  [[nodiscard]] SolveResult quantize(ConstMatrixView w, const Hessian& h, std::string_view name = "weight") const {
    std::unique_lock<std::mutex> lock(cache_->mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
      workspace_type local;
      return quantize(w, h, local, name);
    }
    if (!cache_->workspace) cache_->workspace = std::make_unique<workspace_type>();
    return quantize(w, h, *cache_->workspace, name);
  }

  /// Frees the workspace kept for the next call (it is made again when needed).
  void release_workspace() const {
    const std::lock_guard<std::mutex> lock(cache_->mutex);
    cache_->workspace.reset();
  }

  /// Quantizes W with Hessian H in a caller-owned workspace (any previous contents
  /// are overwritten; its buffers only grow).
  [[nodiscard]] SolveResult quantize(ConstMatrixView w, const Hessian& h, workspace_type& ws,
                                     std::string_view name = "weight") const {
    using RowMajor = SolveResult::RowMajorMatrix;
    detail::check_weight(w, name);
    detail::check_hessian(h, w.cols, name);
    std::vector<float> importance;
    const SpecQuantizer quantizer = with_importance(quantizer_, h.matrix, importance);
    const FormatInfo format = quantizer.format_info();
    const ScaleLayout layout = quantizer.spec().layout(w.rows, w.cols, name);
    detail::check_options(options_, layout.kind);
    std::string why;
    detail::check(Backend::available(&why), "GPTQ backend '", Backend::name, "' is unavailable: ", why);

    const auto start = std::chrono::steady_clock::now();
    const Index rows = w.rows, cols = w.cols;
    // A block format's scales are fixed from W before the loop, like static groups.
    const bool block = quantizer.spec().is_block();
    const bool grouped = layout.kind == ScaleLayout::Kind::group;
    const bool dynamic_groups = grouped && !options_.static_groups && !block;
    const Index group = grouped ? layout.group_size : cols;
    const Index groups = layout.groups_per_row();

    SolveResult res;
    // 1. Scales from the original W (overwritten group by group for dynamic groups).
    if (block) {
      res.params = QuantParams{format, layout, {}};  // the scales live in the encoded rows
    } else if (grouped) {
      res.params = QuantParams{format, layout, std::vector<float>(static_cast<std::size_t>(layout.num_scales()), 0.0f)};
      if (format.asymmetric()) res.params.zeros.assign(res.params.scales.size(), 0.0f);
    } else {
      res.params = quantizer.params(w, name);
    }

    // 2. Dead columns: H_dd = 0 → H_dd = 1 (done by the backend while it copies H)
    // and W[:, d] = 0 (done while the working copy of W is made).
    const ::Eigen::MatrixXf& hm = h.matrix;
    std::vector<bool> dead(static_cast<std::size_t>(cols), false);
    double mean_diag = 0.0;
    for (Index d = 0; d < cols; ++d) {
      dead[static_cast<std::size_t>(d)] = hm(d, d) == 0.0f;
      mean_diag += dead[static_cast<std::size_t>(d)] ? 1.0 : static_cast<double>(hm(d, d));
    }
    mean_diag /= static_cast<double>(cols);

    // 3. Static groups: every group's scales from the dead-zeroed W.
    QuantParams static_params;
    std::optional<BlockGrid> grid;
    if (block) {
      grid.emplace(block_grid(quantizer, w, dead, name));
    } else if (grouped && options_.static_groups) {
      RowMajor wz = ::Eigen::Map<const RowMajor>(w.data, rows, cols);
      for (Index d = 0; d < cols; ++d)
        if (dead[static_cast<std::size_t>(d)]) wz.col(d).setZero();
      static_params = quantizer.params(ConstMatrixView(wz), name);
      res.params.scales = static_params.scales;
      res.params.zeros = static_params.zeros;
    }

    // 4. Act-order: processing position p takes original column perm[p].
    std::vector<Index> perm(static_cast<std::size_t>(cols));
    std::iota(perm.begin(), perm.end(), Index{0});
    if (options_.act_order) {
      auto diag = [&](Index c) { return dead[static_cast<std::size_t>(c)] ? 1.0f : hm(c, c); };
      std::stable_sort(perm.begin(), perm.end(), [&](Index a, Index b) { return diag(a) > diag(b); });
      res.permutation = perm;
    }

    // 5. Damping and U, retried; 6. the column loop. Backends take an empty
    // order for the identity, which lets them copy instead of gathering.
    const std::vector<Index> identity;
    const std::vector<Index>& backend_order = options_.act_order ? perm : identity;
    double percdamp = options_.percdamp;
    std::vector<double> losses_c;
    std::vector<std::uint8_t> block_codes(block ? static_cast<std::size_t>(rows * cols) : 0);
    bool solved = false;
    for (int attempt = 0; attempt <= options_.max_retries; ++attempt) {
      const double damp = percdamp * mean_diag;
      std::string reason;
      if (ws.factor_inverse(hm, backend_order, static_cast<float>(damp), reason)) {
        ws.load_weights(w, backend_order, dead);
        if (column_loops(ws, rows, cols, group, groups, dynamic_groups, perm, static_params, res.params, losses_c,
                         grid ? &*grid : nullptr, block_codes, importance, name)) {
          solved = true;
          res.percdamp = percdamp;
          res.damp = damp;
          break;
        }
        reason = "error feedback overflowed float32 (H numerically singular, or weights too large)";
      }
      res.retries.push_back({percdamp, damp, reason});
      percdamp = std::max(percdamp * options_.retry_factor, 1e-6);
    }

    if (!solved) {
      res.status = ::Eigen::NumericalIssue;
      res.message = failure_message(w, res.retries, name);
      res.permutation.clear();
      res.weights = RowMajor(rows, cols);
      if (block) {
        res.block_data = quantizer.encode(w, name);
        blocks::dequantize(quantizer.spec().block, res.block_data.data(), MatrixView(res.weights), name);
        res.params = QuantParams{format, layout, {}};
      } else {
        res.params = quantizer.fake_quantize(w, MatrixView(res.weights), name);
        res.codes = res.params.codes(w);
      }
      res.group_index = natural_group_index(cols, grouped ? group : 0);
      res.column_losses.assign(static_cast<std::size_t>(cols), 0.0);
    } else {
      // 7. Back to the original column order.
      res.column_losses.resize(static_cast<std::size_t>(cols));
      res.group_index.resize(static_cast<std::size_t>(cols));
      res.weights.resize(rows, cols);
      backend::detail::prefault(res.weights.data(), static_cast<std::size_t>(rows * cols) * sizeof(float));
      detail::unpermute(ws.quantized(), backend_order, res.weights);
      for (Index p = 0; p < cols; ++p) {
        const Index c = perm[static_cast<std::size_t>(p)];
        res.column_losses[static_cast<std::size_t>(c)] = losses_c[static_cast<std::size_t>(p)];
        res.group_index[static_cast<std::size_t>(c)] = grouped ? (dynamic_groups ? p / group : c / group) : 0;
      }
      // Codes from Q = code·scale (exact, so re-quantizing Q with its own scales
      // gives them back): one sequential pass per run of a shared scale. A block
      // format's codes were kept by the loop and go back into its encoded rows.
      if (block) {
        grid->set_codes(block_codes);
        res.block_data = grid->release();
      } else if (res.natural_groups()) {
        res.codes = res.params.codes(ConstMatrixView(res.weights));
      } else {
        res.codes.resize(static_cast<std::size_t>(rows * cols));
        for (Index r = 0; r < rows; ++r) {
          const float* q = res.weights.data() + r * cols;
          std::int8_t* code = res.codes.data() + r * cols;
          for (Index c = 0; c < cols; ++c) {
            const auto k = static_cast<std::size_t>(r * groups + res.group_index[static_cast<std::size_t>(c)]);
            code[c] = format.non_uniform()
                          ? static_cast<std::int8_t>(nf4::code(q[c] * nf4::inverse(res.params.scales[k])) - 8)
                          : static_cast<std::int8_t>(std::nearbyint(q[c] / res.params.scales[k]) + res.params.zero(k));
          }
        }
      }
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    if (options_.evaluate) {
      RowMajor rtn(rows, cols);
      quantizer.fake_quantize(w, MatrixView(rtn), name);
      res.before = detail::layer_error(w, ConstMatrixView(rtn), h);
      res.after = detail::layer_error(w, ConstMatrixView(res.weights), h);
    }
    return res;
  }

 private:
  /// The quantizer with diag(H) as its per-column importance (1 for dead columns, as
  /// step 2 sets H_dd) where the spec reads one: SearchKind::weighted, and block
  /// formats whose llama.cpp quantizer takes an importance matrix (llama.cpp's
  /// imatrix is Σ x² per column, diag(H) up to a factor). `storage` keeps the
  /// values alive for the returned copy.
  static SpecQuantizer with_importance(const SpecQuantizer& q, const ::Eigen::MatrixXf& hm,
                                       std::vector<float>& storage) {
    const QuantSpec& s = q.spec();
    const bool wanted = s.is_block() ? blocks::info(s.block).uses_importance : s.search == SearchKind::weighted;
    SpecQuantizer out = q;
    if (!wanted) return out;
    storage.resize(static_cast<std::size_t>(hm.cols()));
    for (Index d = 0; d < hm.cols(); ++d) storage[static_cast<std::size_t>(d)] = hm(d, d) == 0.0f ? 1.0f : hm(d, d);
    out.set_importance(storage);
    return out;
  }

  /// A block format's grid: llama.cpp's quantizer (with its importance) on the
  /// dead-zeroed W.
  static BlockGrid block_grid(const SpecQuantizer& q, ConstMatrixView w, const std::vector<bool>& dead,
                              std::string_view name) {
    SolveResult::RowMajorMatrix wz = ::Eigen::Map<const SolveResult::RowMajorMatrix>(w.data, w.rows, w.cols);
    for (Index d = 0; d < w.cols; ++d)
      if (dead[static_cast<std::size_t>(d)]) wz.col(d).setZero();
    return BlockGrid(q.spec().block, q.encode(ConstMatrixView(wz), name), w.rows, w.cols, name);
  }

  static QuantSpec per_channel(QuantSpec s) {
    s.granularity = ScaleLayout::Kind::channel;
    s.group_size = 0;
    return s;
  }

  /// Why every attempt failed: H never factored (not positive definite), or it did
  /// but the error feedback left float32 — then the weights' magnitude is the
  /// likelier culprit, and saying "not positive definite" would mislead.
  static std::string failure_message(ConstMatrixView w, const std::vector<DampRetry>& retries, std::string_view name) {
    const auto factored = std::count_if(retries.begin(), retries.end(),
                                        [](const DampRetry& r) { return r.reason.rfind("error feedback", 0) == 0; });
    const std::string last = std::to_string(retries.back().percdamp);
    if (factored == 0)
      return "GPTQ on '" + std::string(name) + "': H is not positive definite even with percdamp " + last +
             "; returned round-to-nearest";
    float largest = 0.0f;
    for (Index i = 0; i < w.size(); ++i) largest = std::max(largest, std::fabs(w.data[i]));
    return "GPTQ on '" + std::string(name) + "': H factored at " + std::to_string(factored) + " of " +
           std::to_string(retries.size()) + " dampings (up to percdamp " + last +
           ") but the error feedback overflowed float32 each time (the largest |w| is " + shown(largest) +
           "); returned round-to-nearest";
  }

  static std::string shown(float v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", static_cast<double>(v));
    return b;
  }

  static std::vector<Index> natural_group_index(Index cols, Index group) {
    std::vector<Index> g(static_cast<std::size_t>(cols), 0);
    if (group > 0)
      for (Index c = 0; c < cols; ++c) g[static_cast<std::size_t>(c)] = c / group;
    return g;
  }

  /// The fixed cut of W's rows for step 6: about 8 chunks, each a multiple of 16
  /// rows and at least 128, so that each chunk's lazy-batch GEMM stays big (16
  /// chunks of 256 rows cost one thread 3 % at 4096², 8 cost 1 %). It depends on the
  /// row count alone, never on the thread count, so neither do results.
  struct RowChunks {
    Index width = 0, count = 0;
    RowChunks(Index rows, bool split) {
      width = split ? std::max<Index>(128, ((rows + 7) / 8 + 15) / 16 * 16) : rows;
      count = width == 0 ? 0 : (rows + width - 1) / width;
    }
  };

  /// Step 6 over all rows. Once U is known GPTQ treats each row of W on its own
  /// (its scales, its error feedback), so a workspace that splits rows runs fixed
  /// row chunks across lowbit's pool, each through every block; the losses are
  /// summed chunk by chunk in order. Returns false if any chunk's error feedback
  /// stopped being finite.
  template <class Workspace>
  bool column_loops(Workspace& ws, Index rows, Index cols, Index group, Index groups, bool dynamic_groups,
                    const std::vector<Index>& perm, const QuantParams& static_params, QuantParams& params,
                    std::vector<double>& losses_c, const BlockGrid* grid, std::vector<std::uint8_t>& block_codes,
                    std::span<const float> importance, std::string_view name) const {
    const RowChunks chunks(rows, Workspace::splits_rows);
    std::vector<std::vector<double>> losses(static_cast<std::size_t>(chunks.count));
    std::vector<char> finite(static_cast<std::size_t>(chunks.count), 0);
    autograd::parallel_chunks(rows, chunks.width, [&](Index r0, Index r1) {
      const auto k = static_cast<std::size_t>(r0 / chunks.width);
      finite[k] = column_loop(ws, r0, r1, cols, group, groups, dynamic_groups, perm, static_params, params, losses[k],
                              grid, block_codes, importance, name);
    });
    losses_c.assign(static_cast<std::size_t>(cols), 0.0);
    for (Index k = 0; k < chunks.count; ++k) {
      if (!finite[static_cast<std::size_t>(k)]) return false;
      for (Index p = 0; p < cols; ++p)
        losses_c[static_cast<std::size_t>(p)] += losses[static_cast<std::size_t>(k)][static_cast<std::size_t>(p)];
    }
    return true;
  }

  /// Step 6 on rows [r0, r1): quantizes their columns in processing order into the
  /// workspace (quantized() gives Q, rows × cols, processing order); losses_c per
  /// position, over these rows. Returns false if the error feedback stopped being finite.
  template <class Workspace>
  bool column_loop(Workspace& ws, Index r0, Index r1, Index cols, Index group, Index groups, bool dynamic_groups,
                   const std::vector<Index>& perm, const QuantParams& static_params, QuantParams& params,
                   std::vector<double>& losses_c, const BlockGrid* grid, std::vector<std::uint8_t>& block_codes,
                   std::span<const float> importance, std::string_view name) const {
    const Index rows = r1 - r0;  // local row r is W's row r0 + r
    using ::Eigen::MatrixXf;
    // Dynamic groups' scales, one group at a time; with an importance, the group's
    // columns are those at processing positions p..p+G (act-order permutes them).
    SpecQuantizer row_quantizer = row_quantizer_;
    std::vector<float> group_importance;
    const FormatInfo& format = params.format;
    const ScaleLayout::Kind kind = params.layout.kind;
    losses_c.assign(static_cast<std::size_t>(cols), 0.0);

    // Each row's grid step as two arrays (scale, factor), so that a column is
    // quantized with one vector kernel.
    // An asymmetric grid adds each row's code bounds [qmin - z, qmax - z].
    std::vector<float> step_scale(static_cast<std::size_t>(rows)), step_factor(static_cast<std::size_t>(rows));
    std::vector<float> step_lo, step_hi;
    if (format.asymmetric()) {
      step_lo.resize(static_cast<std::size_t>(rows));
      step_hi.resize(static_cast<std::size_t>(rows));
    }
    Index current = -1;  // group whose scales are in the step arrays
    auto load_steps = [&](const QuantParams& from, Index g) {
      for (Index r = 0; r < rows; ++r) {
        const auto k =
            kind == ScaleLayout::Kind::tensor ? std::size_t{0} : static_cast<std::size_t>((r0 + r) * groups + g);
        const GridStep step = GridStep::make(from.scales[k], format.division);
        step_scale[static_cast<std::size_t>(r)] = step.scale;
        step_factor[static_cast<std::size_t>(r)] = step.factor;
        if (!step_lo.empty()) {
          step_lo[static_cast<std::size_t>(r)] = static_cast<float>(format.qmin) - from.zero(k);
          step_hi[static_cast<std::size_t>(r)] = static_cast<float>(format.qmax) - from.zero(k);
        }
      }
      current = g;
    };
    if (kind != ScaleLayout::Kind::group && grid == nullptr) load_steps(params, 0);

    const Index bs = options_.block_size;
    MatrixXf w1, u1, q1, err(rows, std::min(bs, cols));
    SolveResult::RowMajorMatrix slice;
    ::Eigen::VectorXf qcol(rows);
    constexpr Index sub = 16;
    for (Index i1 = 0; i1 < cols; i1 += bs) {
      const Index i2 = std::min(i1 + bs, cols), count = i2 - i1;
      w1 = ws.columns(i1, i2, r0, r1);
      u1 = ws.u_block(i1, i2);
      err.resize(rows, count);
      q1.resize(rows, count);
      for (Index i = 0; i < count; ++i) {
        const Index p = i1 + i;
        if (kind == ScaleLayout::Kind::group && grid == nullptr) {
          if (dynamic_groups) {
            if (p % group == 0) {
              // Scales from W[:, p:p+G] as it stands at the block start (the
              // reference slices the full W, which the in-block updates do not touch).
              slice = ws.columns(p, std::min(p + group, cols), r0, r1);
              if (!slice.allFinite()) return false;
              if (!importance.empty()) {
                group_importance.resize(static_cast<std::size_t>(slice.cols()));
                for (Index j = 0; j < slice.cols(); ++j)
                  group_importance[static_cast<std::size_t>(j)] =
                      importance[static_cast<std::size_t>(perm[static_cast<std::size_t>(p + j)])];
                row_quantizer.set_importance(group_importance);
              }
              const QuantParams gp = row_quantizer.params(ConstMatrixView(slice), name);
              const Index g = p / group;
              for (Index r = 0; r < rows; ++r) {
                const auto k = static_cast<std::size_t>((r0 + r) * groups + g);
                params.scales[k] = gp.scales[static_cast<std::size_t>(r)];
                if (!params.zeros.empty()) params.zeros[k] = gp.zeros[static_cast<std::size_t>(r)];
              }
              load_steps(params, g);
            }
          } else {
            const Index g = perm[static_cast<std::size_t>(p)] / group;
            if (g != current) load_steps(static_params, g);
          }
        }
        const float d = u1(i, i);
        if (grid != nullptr) {
          const Index c = perm[static_cast<std::size_t>(p)];
          for (Index r = 0; r < rows; ++r)
            qcol(r) = grid->round(r0 + r, c, w1(r, i), block_codes[static_cast<std::size_t>((r0 + r) * cols + c)]);
        } else if (format.non_uniform()) {
          nf4::fake_quantize_each(w1.col(i).data(), qcol.data(), rows, step_scale.data(), step_factor.data());
        } else if (step_lo.empty())
          kernels::fake_quantize_each(w1.col(i).data(), qcol.data(), rows, step_scale.data(), step_factor.data(),
                                      format.division, format.qmin, format.qmax);
        else
          kernels::fake_quantize_each_bounded(w1.col(i).data(), qcol.data(), rows, step_scale.data(),
                                              step_factor.data(), step_lo.data(), step_hi.data(), format.division);
        q1.col(i) = qcol;
        err.col(i) = (w1.col(i) - qcol) / d;
        losses_c[static_cast<std::size_t>(p)] = 0.5 * err.col(i).template cast<double>().squaredNorm();
        // Error feedback inside the block, itself in two levels: rank-1 updates
        // within a sub-block of `sub` columns (cache-resident), then one small
        // GEMM from the finished sub-block onto the rest of the block. Same
        // arithmetic as the reference's rank-1 sweep, in another order.
        const Index s0 = (i / sub) * sub, s1 = std::min(s0 + sub, count);
        if (i + 1 < s1) w1.middleCols(i + 1, s1 - i - 1).noalias() -= err.col(i) * u1.row(i).segment(i + 1, s1 - i - 1);
        if (i + 1 == s1 && s1 < count)
          w1.rightCols(count - s1).noalias() -=
              err.middleCols(s0, s1 - s0) * u1.block(s0, s1, s1 - s0, count - s1);
      }
      if (!err.allFinite()) return false;
      ws.trailing_update(i1, i2, err, r0);
      ws.store_quantized(i1, q1, r0);
    }
    return true;
  }

  /// The workspace kept between calls; created on first use (a backend's
  /// workspace may hold device handles).
  struct WorkspaceCache {
    std::mutex mutex;
    std::unique_ptr<workspace_type> workspace;
  };

  GptqOptions options_{};
  SpecQuantizer quantizer_;
  SpecQuantizer row_quantizer_;  ///< per-channel twin: dynamic groups' scales, one group at a time
  std::shared_ptr<WorkspaceCache> cache_ = std::make_shared<WorkspaceCache>();
};

/// GPTQ with every choice in the type: Gptq<Int<4>, PerGroup<128>, HistogramMse<>>.
/// The solver is SpecGptq's, for the QuantSpec those policies name.
template <QuantFormat Format, class Granularity = PerTensor, class ScaleSearch = AbsMax,
          class Backend = backend::Eigen>
  requires ScaleSearchFor<ScaleSearch, Format>
class Gptq : public SpecGptq<Backend> {
 public:
  using format_type = Format;
  using granularity_type = Granularity;
  using search_type = ScaleSearch;

  Gptq() : Gptq(GptqOptions{}) {}
  explicit Gptq(GptqOptions options, Granularity granularity = {}, ScaleSearch search = {})
      : SpecGptq<Backend>(spec_of<Format, Granularity, ScaleSearch>(granularity), options, settings_of(search)),
        granularity_(granularity) {}

  [[nodiscard]] const Granularity& granularity() const { return granularity_; }

 private:
  [[no_unique_address]] Granularity granularity_{};
};

}  // namespace lowbit
