// Non-owning views of row-major fp32 matrices: the currency of the quantizer API.
#pragma once

#include <cstddef>
#include <span>
#include <type_traits>

#include <Eigen/Core>

#include "lowbit/core/error.hpp"

namespace lowbit {

using Index = std::ptrdiff_t;

/// A rows × cols row-major matrix at `data` (rows are contiguous; weights are
/// stored [out_features, in_features] as in PyTorch's nn.Linear).
template <class T>
struct BasicMatrixView {
  T* data = nullptr;
  Index rows = 0;
  Index cols = 0;

  constexpr BasicMatrixView() = default;
  constexpr BasicMatrixView(T* d, Index r, Index c) : data(d), rows(r), cols(c) {}

  /// A mutable view converts to a read-only one.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  constexpr BasicMatrixView(BasicMatrixView<U> other)  // NOLINT(google-explicit-constructor)
      : data(other.data), rows(other.rows), cols(other.cols) {}

  /// Any contiguous row-major Eigen matrix (or map) views as itself.
  template <class Derived>
    requires(static_cast<bool>(Derived::IsRowMajor) || Derived::ColsAtCompileTime == 1)
  BasicMatrixView(Derived& m)  // NOLINT(google-explicit-constructor)
      : data(m.data()), rows(m.rows()), cols(m.cols()) {}
  template <class Derived>
    requires(std::is_const_v<T> &&
             (static_cast<bool>(Derived::IsRowMajor) || Derived::ColsAtCompileTime == 1))
  BasicMatrixView(const Derived& m)  // NOLINT(google-explicit-constructor)
      : data(m.data()), rows(m.rows()), cols(m.cols()) {}

  [[nodiscard]] constexpr Index size() const { return rows * cols; }
  [[nodiscard]] constexpr bool empty() const { return size() == 0; }
  [[nodiscard]] std::span<T> span() const { return {data, static_cast<std::size_t>(size())}; }
  [[nodiscard]] T* row(Index r) const { return data + r * cols; }
  [[nodiscard]] T& operator()(Index r, Index c) const { return data[r * cols + c]; }
};

using MatrixView = BasicMatrixView<float>;
using ConstMatrixView = BasicMatrixView<const float>;

/// A flat buffer of n values viewed as a 1 × n matrix.
inline ConstMatrixView as_row(std::span<const float> v) {
  return {v.data(), 1, static_cast<Index>(v.size())};
}
inline MatrixView as_row(std::span<float> v) { return {v.data(), 1, static_cast<Index>(v.size())}; }

namespace detail {
inline void check_same_shape(ConstMatrixView a, ConstMatrixView b, const char* what) {
  check(a.rows == b.rows && a.cols == b.cols, what, ": output buffer is ", b.rows, "x", b.cols,
        " but the input is ", a.rows, "x", a.cols);
}
}  // namespace detail
}  // namespace lowbit
