// Shape: up to four dimensions, stored inline so that making a tensor never allocates.
#pragma once

#include <array>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::autograd {

using lowbit::Index;

/// Row-major dimensions of a dense tensor (at most four: batch, time, heads, head_dim).
struct Shape {
  static constexpr int max_dims = 4;
  std::array<Index, max_dims> dims{};
  int ndim = 0;

  constexpr Shape() = default;
  Shape(std::initializer_list<Index> d) {
    lowbit::detail::check(d.size() <= max_dims, "Shape: ", d.size(), " dimensions, at most ", max_dims,
                  " are supported");
    for (const Index x : d) {
      lowbit::detail::check(x >= 0, "Shape: negative dimension ", x);
      dims[static_cast<std::size_t>(ndim++)] = x;
    }
  }

  [[nodiscard]] Index operator[](int i) const {
    if (i < 0) i += ndim;
    lowbit::detail::check(i >= 0 && i < ndim, "Shape: dimension ", i, " of a ", ndim, "-d shape");
    return dims[static_cast<std::size_t>(i)];
  }
  [[nodiscard]] Index numel() const {
    Index n = 1;
    for (int i = 0; i < ndim; ++i) n *= dims[static_cast<std::size_t>(i)];
    return n;
  }
  /// Last dimension (the contiguous one) and the product of the others.
  [[nodiscard]] Index last() const { return ndim == 0 ? 1 : dims[static_cast<std::size_t>(ndim - 1)]; }
  [[nodiscard]] Index rows() const { return ndim == 0 ? 1 : numel() / (last() == 0 ? 1 : last()); }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; ++i)
      if (a.dims[static_cast<std::size_t>(i)] != b.dims[static_cast<std::size_t>(i)]) return false;
    return true;
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '[';
    for (int i = 0; i < s.ndim; ++i) os << (i ? "," : "") << s.dims[static_cast<std::size_t>(i)];
    return os << ']';
  }
  [[nodiscard]] std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
};

}  // namespace lowbit::autograd
