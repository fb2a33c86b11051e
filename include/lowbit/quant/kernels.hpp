// The element-wise kernels behind every quantizer: range statistics, fake-quantize
// and integer codes. Each has a plain scalar reference (`*_scalar`) kept beside the
// xsimd path; the two agree bit for bit (tests/quant/test_kernels.cpp), because
// every step is one IEEE operation: multiply or divide, round-half-even, min/max.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <xsimd/xsimd.hpp>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/format.hpp"

namespace lowbit {

/// Range of a slice, and whether every value in it is finite.
struct SliceStats {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  bool finite = true;
};

/// What a scale search returns for one slice: its scale and, for an asymmetric
/// grid, its signed zero (FormatInfo::zero_for; 0 for symmetric grids).
struct SliceScale {
  float scale = 1.0f;
  float zero = 0.0f;
};

/// What multiplies (or divides) x before rounding: 1/scale in float32 for
/// Division::reciprocal (PyTorch), the scale itself for Division::exact (GPTQ).
struct GridStep {
  float scale;
  float factor;
  Division division;
  static GridStep make(float scale, Division d) {
    return {scale, d == Division::reciprocal ? 1.0f / scale : scale, d};
  }
};

namespace kernels {

using simd = xsimd::batch<float>;
inline constexpr Index lanes = static_cast<Index>(simd::size);

// ---- statistics -------------------------------------------------------------

inline SliceStats stats_scalar(const float* x, Index n) {
  SliceStats s;
  for (Index i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) s.finite = false;
    s.min = std::min(s.min, x[i]);
    s.max = std::max(s.max, x[i]);
  }
  return s;
}

/// Index of the first non-finite value, or n.
inline Index first_non_finite(const float* x, Index n) {
  for (Index i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return n;
}

/// Number of leading elements to handle one by one so that x + head is aligned to
/// a whole SIMD vector (n if x is not even float-aligned). A vector load that
/// straddles two cache lines costs two: on a stream from memory that alone makes a
/// pass over a malloc'ed (16-byte aligned) buffer up to twice as slow.
inline Index head_to_align(const float* x, Index n) {
  constexpr auto bytes = static_cast<std::uintptr_t>(sizeof(simd));
  const auto addr = reinterpret_cast<std::uintptr_t>(x);
  if (addr % sizeof(float) != 0) return n;
  return std::min(n, static_cast<Index>((bytes - addr % bytes) % bytes / sizeof(float)));
}

/// Slices shorter than this are not peeled to alignment: for a group of 128 the
/// scalar head and tail would cost more than the split loads they avoid.
inline constexpr Index align_from = 512;

inline SliceStats merge(SliceStats a, SliceStats b) {
  return {std::min(a.min, b.min), std::max(a.max, b.max), a.finite && b.finite};
}

/// Min, max and finiteness in one read-only pass (aligned vectors for long slices). Four
/// independent accumulator sets keep the loop at memory speed rather than at the
/// latency of one min/max chain. Finiteness costs one add per vector: the sum of
/// the values is NaN or ±inf if any value is, and otherwise only when the sum
/// itself overflows, a case then settled exactly by first_non_finite.
inline SliceStats stats(const float* x, Index n) {
  const Index head = n >= align_from ? head_to_align(x, n) : 0;
  SliceStats s = stats_scalar(x, head);
  const float* a = x + head;
  const Index m = n - head;
  constexpr int ways = 4;
  simd lo0(std::numeric_limits<float>::infinity()), lo1 = lo0, lo2 = lo0, lo3 = lo0;
  simd hi0(-std::numeric_limits<float>::infinity()), hi1 = hi0, hi2 = hi0, hi3 = hi0;
  simd sum(0.0f);
  Index i = 0;
  for (; i + ways * lanes <= m; i += ways * lanes) {
    const simd v0 = simd::load_unaligned(a + i), v1 = simd::load_unaligned(a + i + lanes);
    const simd v2 = simd::load_unaligned(a + i + 2 * lanes), v3 = simd::load_unaligned(a + i + 3 * lanes);
    lo0 = xsimd::min(lo0, v0);
    lo1 = xsimd::min(lo1, v1);
    lo2 = xsimd::min(lo2, v2);
    lo3 = xsimd::min(lo3, v3);
    hi0 = xsimd::max(hi0, v0);
    hi1 = xsimd::max(hi1, v1);
    hi2 = xsimd::max(hi2, v2);
    hi3 = xsimd::max(hi3, v3);
    sum += (v0 + v1) + (v2 + v3);
  }
  for (; i + lanes <= m; i += lanes) {
    const simd v = simd::load_unaligned(a + i);
    lo0 = xsimd::min(lo0, v);
    hi0 = xsimd::max(hi0, v);
    sum += v;
  }
  lo0 = xsimd::min(xsimd::min(lo0, lo1), xsimd::min(lo2, lo3));
  hi0 = xsimd::max(xsimd::max(hi0, hi1), xsimd::max(hi2, hi3));
  alignas(64) float lo[simd::size], hi[simd::size], total[simd::size];
  lo0.store_aligned(lo);
  hi0.store_aligned(hi);
  sum.store_aligned(total);
  bool finite = true;
  for (std::size_t k = 0; k < simd::size; ++k) {
    s.min = std::min(s.min, lo[k]);
    s.max = std::max(s.max, hi[k]);
    finite = finite && std::isfinite(total[k]);
  }
  if (!finite) s.finite = s.finite && first_non_finite(a, i) == i;
  return merge(s, stats_scalar(a + i, m - i));
}

// ---- fake-quantize ------------------------------------------------------------

/// q = clamp(round_half_even(x ⊙ step), qmin, qmax); y = q * scale. Adding +0.0
/// turns -0.0 into +0.0, as PyTorch's integer round trip does.
inline float fake_quantize_one(float x, GridStep g, float qmin, float qmax) {
  const float t = g.division == Division::reciprocal ? x * g.factor : x / g.factor;
  const float q = std::clamp(std::nearbyint(t), qmin, qmax) + 0.0f;
  return q * g.scale;
}

inline void fake_quantize_scalar(const float* x, float* y, Index n, GridStep g, int qmin, int qmax) {
  for (Index i = 0; i < n; ++i)
    y[i] = fake_quantize_one(x[i], g, static_cast<float>(qmin), static_cast<float>(qmax));
}

template <Division D>
inline simd grid_codes(simd v, simd factor, simd lo, simd hi) {
  const simd t = D == Division::reciprocal ? v * factor : v / factor;
  return xsimd::clip(xsimd::nearbyint(t), lo, hi) + simd(0.0f);
}

/// How an output is written. `cached`: plain stores, for outputs read again soon.
/// `streaming`: non-temporal stores, for outputs much larger than the caches; they
/// skip reading each line before overwriting it (a third of a copy's traffic) and do
/// not evict the input. Use store_for(bytes) to choose. Streaming stores are weakly
/// ordered: after the last streaming call, call streaming_fence() before another
/// thread may read the output (one fence per tensor, not per slice: a fence drains
/// the write-combining buffers and costs as much as a short slice).
enum class Store { cached, streaming };

/// Outputs from this size on are streamed (several times a core's L2), when they
/// are written in runs of at least streaming_run values: a short run (a group of
/// 128) starts and ends in lines shared with its neighbours, and mixing plain and
/// streaming stores on one line is slower than either.
inline constexpr std::size_t streaming_bytes = std::size_t{8} << 20;
inline constexpr Index streaming_run = 1024;
inline Store store_for(std::size_t bytes, Index run = streaming_run) {
  return bytes >= streaming_bytes && run >= streaming_run ? Store::streaming : Store::cached;
}

/// Non-temporal store of one aligned vector where the ISA has one (x86), else a
/// plain aligned store.
template <class Batch>
inline void store_streaming(float* p, const Batch& v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(Batch) == 64) {
    _mm512_stream_ps(p, v);
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(Batch) == 32) {
    _mm256_stream_ps(p, v);
    return;
  }
#endif
#if defined(__SSE__)
  if constexpr (sizeof(Batch) == 16) {
    _mm_stream_ps(p, v);
    return;
  }
#endif
  v.store_aligned(p);
}

/// Orders streaming stores before later stores (other threads may read the output
/// once this thread signals it is done).
inline void streaming_fence() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

// ---- large outputs: huge pages and prefaulting ---------------------------------

/// Asks the kernel to back [p, p + bytes) with transparent huge pages (Linux;
/// a hint, harmless elsewhere). Call before the memory is first touched.
inline void advise_huge_pages(void* p, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + huge - 1) / huge * huge;
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) / huge * huge;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

/// Maps in [p, p + bytes) now, as transparent huge pages where the kernel has them:
/// one madvise(MADV_POPULATE_WRITE) call (Linux ≥ 5.14) instead of a trap per page
/// at first touch. Contents are kept. A hint: harmless where unsupported.
inline void prefault(void* p, std::size_t bytes) {
  advise_huge_pages(p, bytes);
#if defined(__linux__)
#ifndef MADV_POPULATE_WRITE
  constexpr int populate_write = 23;  // from <linux/mman.h>, for older C libraries
#else
  constexpr int populate_write = MADV_POPULATE_WRITE;
#endif
  constexpr std::uintptr_t page = 4096;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) / page * page;
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, populate_write);
#endif
}

template <Division D, Store S>
inline void fake_quantize_simd(const float* x, float* y, Index n, GridStep g, int qmin, int qmax,
                               const float* prefetch) {
  const simd factor(g.factor), scale(g.scale);
  const simd lo(static_cast<float>(qmin)), hi(static_cast<float>(qmax));
  // Aligned stores (and loads, when x is aligned alike); streaming stores need them.
  Index i = S == Store::streaming || n >= align_from ? head_to_align(y, n) : 0;
  fake_quantize_scalar(x, y, i, g, qmin, qmax);
  for (; i + lanes <= n; i += lanes) {
    if (prefetch != nullptr) __builtin_prefetch(prefetch + i);
    const simd q = grid_codes<D>(simd::load_unaligned(x + i), factor, lo, hi) * scale;
    if constexpr (S == Store::streaming)
      store_streaming(y + i, q);
    else
      q.store_unaligned(y + i);
  }
  fake_quantize_scalar(x + i, y + i, n - i, g, qmin, qmax);
}

/// Fake-quantizes n values (x and y may alias). With Store::streaming the caller
/// ends with streaming_fence(). `prefetch`, if given, points to n
/// floats that the caller reads next (the next row of a per-channel pass): they are
/// fetched into cache while this slice is computed, so that the next scale search
/// reads from cache instead of waiting on memory.
inline void fake_quantize(const float* x, float* y, Index n, GridStep g, int qmin, int qmax,
                          Store store = Store::cached, const float* prefetch = nullptr) {
  const bool reciprocal = g.division == Division::reciprocal;
  if (store == Store::streaming) {
    if (reciprocal)
      fake_quantize_simd<Division::reciprocal, Store::streaming>(x, y, n, g, qmin, qmax, prefetch);
    else
      fake_quantize_simd<Division::exact, Store::streaming>(x, y, n, g, qmin, qmax, prefetch);
  } else {
    if (reciprocal)
      fake_quantize_simd<Division::reciprocal, Store::cached>(x, y, n, g, qmin, qmax, prefetch);
    else
      fake_quantize_simd<Division::exact, Store::cached>(x, y, n, g, qmin, qmax, prefetch);
  }
}

/// Fake-quantizes a row of n values in groups of `group` consecutive values, group k
/// with grid step steps[k] (the last group may be shorter). The reference: one
/// fake_quantize_scalar per group.
inline void fake_quantize_groups_scalar(const float* x, float* y, Index n, Index group, const GridStep* steps,
                                        int qmin, int qmax) {
  for (Index c0 = 0, k = 0; c0 < n; c0 += group, ++k)
    fake_quantize_scalar(x + c0, y + c0, std::min(group, n - c0), steps[k], qmin, qmax);
}

/// Lane indices 0, 1, ..., lanes-1 as floats (exact: lanes is small).
inline simd lane_index() {
  alignas(64) float v[simd::size];
  for (std::size_t k = 0; k < simd::size; ++k) v[k] = static_cast<float>(k);
  return simd::load_aligned(v);
}

// The output is aligned once per row (scalar head), so a row streams even when its
// start is not aligned; a vector that straddles two groups (at most one boundary,
// since group >= lanes) takes each lane's step by a blend on the lane index. The loop
// is shared by every grid: vec(x, factor, scale) fake-quantizes a vector, one(x,
// step) a single value (the head and tail), so integer grids and NF4 stream alike.
template <Store S, class Vec, class One>
inline void fake_quantize_groups_with(const float* x, float* y, Index n, Index group, const GridStep* steps, Vec vec,
                                      One one, const float* prefetch) {
  const simd iota = lane_index();
  const Index head = S == Store::streaming || n >= align_from ? head_to_align(y, n) : 0;
  Index i = 0;
  for (; i < head; ++i) y[i] = one(x[i], steps[i / group]);
  if (i + lanes <= n) {
    Index k = i / group, boundary = (k + 1) * group;
    simd factor(steps[k].factor), scale(steps[k].scale);
    for (; i + lanes <= n; i += lanes) {
      if (i >= boundary) {
        ++k;
        boundary += group;
        factor = simd(steps[k].factor);
        scale = simd(steps[k].scale);
      }
      if (prefetch != nullptr) __builtin_prefetch(prefetch + i);
      simd f = factor, sc = scale;
      if (i + lanes > boundary) {  // lanes from the boundary on belong to group k + 1
        const auto first = iota < simd(static_cast<float>(boundary - i));
        f = xsimd::select(first, factor, simd(steps[k + 1].factor));
        sc = xsimd::select(first, scale, simd(steps[k + 1].scale));
      }
      const simd q = vec(simd::load_unaligned(x + i), f, sc);
      if constexpr (S == Store::streaming)
        store_streaming(y + i, q);
      else
        q.store_unaligned(y + i);
    }
  }
  for (; i < n; ++i) y[i] = one(x[i], steps[i / group]);
}

template <Division D, Store S>
inline void fake_quantize_groups_simd(const float* x, float* y, Index n, Index group, const GridStep* steps,
                                      int qmin, int qmax, const float* prefetch) {
  const float qlo = static_cast<float>(qmin), qhi = static_cast<float>(qmax);
  const simd lo(qlo), hi(qhi);
  fake_quantize_groups_with<S>(
      x, y, n, group, steps, [&](simd v, simd f, simd sc) { return grid_codes<D>(v, f, lo, hi) * sc; },
      [&](float v, GridStep g) { return fake_quantize_one(v, g, qlo, qhi); }, prefetch);
}

/// fake_quantize over a whole row of groups (all steps of one division): one call per
/// row rather than per group, so a large output streams past the cache in runs of a
/// row even when the groups are short. Groups shorter than a vector take the scalar
/// path. With Store::streaming the caller fences as for fake_quantize.
inline void fake_quantize_groups(const float* x, float* y, Index n, Index group, const GridStep* steps, int qmin,
                                 int qmax, Store store = Store::cached, const float* prefetch = nullptr) {
  detail::check(group >= 1, "fake_quantize_groups: group size ", group, " must be positive");
  if (n <= 0) return;
  if (group < lanes) {
    fake_quantize_groups_scalar(x, y, n, group, steps, qmin, qmax);
    return;
  }
  const bool reciprocal = steps[0].division == Division::reciprocal;
  if (store == Store::streaming) {
    if (reciprocal)
      fake_quantize_groups_simd<Division::reciprocal, Store::streaming>(x, y, n, group, steps, qmin, qmax, prefetch);
    else
      fake_quantize_groups_simd<Division::exact, Store::streaming>(x, y, n, group, steps, qmin, qmax, prefetch);
  } else {
    if (reciprocal)
      fake_quantize_groups_simd<Division::reciprocal, Store::cached>(x, y, n, group, steps, qmin, qmax, prefetch);
    else
      fake_quantize_groups_simd<Division::exact, Store::cached>(x, y, n, group, steps, qmin, qmax, prefetch);
  }
}

/// Fake-quantizes n values, each with its own grid step (scale[i], factor[i] as
/// GridStep::make gives them): a GPTQ column, whose rows have their own scales.
inline void fake_quantize_each_scalar(const float* x, float* y, Index n, const float* scale, const float* factor,
                                      Division d, int qmin, int qmax) {
  for (Index i = 0; i < n; ++i)
    y[i] = fake_quantize_one(x[i], GridStep{scale[i], factor[i], d}, static_cast<float>(qmin),
                             static_cast<float>(qmax));
}

template <Division D>
inline void fake_quantize_each_simd(const float* x, float* y, Index n, const float* scale, const float* factor,
                                    int qmin, int qmax) {
  const simd lo(static_cast<float>(qmin)), hi(static_cast<float>(qmax));
  Index i = 0;
  for (; i + lanes <= n; i += lanes)
    (grid_codes<D>(simd::load_unaligned(x + i), simd::load_unaligned(factor + i), lo, hi) *
     simd::load_unaligned(scale + i))
        .store_unaligned(y + i);
  fake_quantize_each_scalar(x + i, y + i, n - i, scale + i, factor + i, D, qmin, qmax);
}

inline void fake_quantize_each(const float* x, float* y, Index n, const float* scale, const float* factor,
                               Division d, int qmin, int qmax) {
  if (d == Division::reciprocal)
    fake_quantize_each_simd<Division::reciprocal>(x, y, n, scale, factor, qmin, qmax);
  else
    fake_quantize_each_simd<Division::exact>(x, y, n, scale, factor, qmin, qmax);
}

/// fake_quantize_each with per-value code bounds lo[i]..hi[i] (an asymmetric
/// grid's [qmin - z, qmax - z] for each row's zero z).
inline void fake_quantize_each_bounded_scalar(const float* x, float* y, Index n, const float* scale,
                                              const float* factor, const float* lo, const float* hi, Division d) {
  for (Index i = 0; i < n; ++i) y[i] = fake_quantize_one(x[i], GridStep{scale[i], factor[i], d}, lo[i], hi[i]);
}

template <Division D>
inline void fake_quantize_each_bounded_simd(const float* x, float* y, Index n, const float* scale,
                                            const float* factor, const float* lo, const float* hi) {
  Index i = 0;
  for (; i + lanes <= n; i += lanes)
    (grid_codes<D>(simd::load_unaligned(x + i), simd::load_unaligned(factor + i), simd::load_unaligned(lo + i),
                   simd::load_unaligned(hi + i)) *
     simd::load_unaligned(scale + i))
        .store_unaligned(y + i);
  fake_quantize_each_bounded_scalar(x + i, y + i, n - i, scale + i, factor + i, lo + i, hi + i, D);
}

inline void fake_quantize_each_bounded(const float* x, float* y, Index n, const float* scale, const float* factor,
                                       const float* lo, const float* hi, Division d) {
  if (d == Division::reciprocal)
    fake_quantize_each_bounded_simd<Division::reciprocal>(x, y, n, scale, factor, lo, hi);
  else
    fake_quantize_each_bounded_simd<Division::exact>(x, y, n, scale, factor, lo, hi);
}

// ---- integer codes ------------------------------------------------------------

inline void codes_scalar(const float* x, std::int8_t* q, Index n, GridStep g, int qmin, int qmax) {
  for (Index i = 0; i < n; ++i) {
    const float t = g.division == Division::reciprocal ? x[i] * g.factor : x[i] / g.factor;
    q[i] = static_cast<std::int8_t>(
        std::clamp(std::nearbyint(t), static_cast<float>(qmin), static_cast<float>(qmax)));
  }
}

template <Division D>
inline void codes_simd(const float* x, std::int8_t* q, Index n, GridStep g, int qmin, int qmax) {
  const simd factor(g.factor);
  const simd lo(static_cast<float>(qmin)), hi(static_cast<float>(qmax));
  alignas(64) std::int32_t tmp[simd::size];
  Index i = 0;
  for (; i + lanes <= n; i += lanes) {
    xsimd::to_int(grid_codes<D>(simd::load_unaligned(x + i), factor, lo, hi)).store_aligned(tmp);
    for (std::size_t k = 0; k < simd::size; ++k) q[i + static_cast<Index>(k)] = static_cast<std::int8_t>(tmp[k]);
  }
  codes_scalar(x + i, q + i, n - i, g, qmin, qmax);
}

/// Signed integer codes of n values.
inline void codes(const float* x, std::int8_t* q, Index n, GridStep g, int qmin, int qmax) {
  if (g.division == Division::reciprocal)
    codes_simd<Division::reciprocal>(x, q, n, g, qmin, qmax);
  else
    codes_simd<Division::exact>(x, q, n, g, qmin, qmax);
}

/// y = code * scale (+0.0 for code 0, as PyTorch's dequantize gives).
inline void dequantize(const std::int8_t* q, float* y, Index n, float scale) {
  for (Index i = 0; i < n; ++i) y[i] = static_cast<float>(q[i]) * scale;
}

}  // namespace kernels
}  // namespace lowbit
