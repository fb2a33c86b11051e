// Granularity: which elements of a [rows = out_features, cols = in_features]
// weight share one scale.
#pragma once

#include <string>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit {

/// Where the scales of one weight live. Groups run along a row (input features);
/// when `group_size` does not divide `cols`, each row ends with one shorter tail
/// group of cols % group_size elements that gets its own scale.
struct ScaleLayout {
  enum class Kind { tensor, channel, group };
  Kind kind = Kind::tensor;
  Index rows = 0;
  Index cols = 0;
  Index group_size = 0;  ///< elements per scale along a row (cols for tensor/channel)

  [[nodiscard]] Index groups_per_row() const {
    // cols / g rounded up, without forming cols + g - 1 (which can overflow)
    return kind == Kind::tensor ? 1 : cols / group_size + (cols % group_size != 0 ? 1 : 0);
  }
  [[nodiscard]] Index num_scales() const { return kind == Kind::tensor ? 1 : rows * groups_per_row(); }
  [[nodiscard]] Index scale_index(Index r, Index c) const {
    switch (kind) {
      case Kind::tensor: return 0;
      case Kind::channel: return r;
      case Kind::group: return r * groups_per_row() + c / group_size;
    }
    return 0;
  }
  [[nodiscard]] std::string describe() const {
    switch (kind) {
      case Kind::tensor: return "tensor";
      case Kind::channel: return "channel";
      case Kind::group: return "group:" + std::to_string(group_size);
    }
    return "?";
  }
};

/// One scale for the whole tensor.
struct PerTensor {
  [[nodiscard]] ScaleLayout layout(Index rows, Index cols) const {
    return {ScaleLayout::Kind::tensor, rows, cols, cols};
  }
};

/// One scale per output channel (row).
struct PerChannel {
  [[nodiscard]] ScaleLayout layout(Index rows, Index cols) const {
    return {ScaleLayout::Kind::channel, rows, cols, cols};
  }
};

inline constexpr Index dynamic_group = 0;

namespace detail {
inline ScaleLayout group_layout(Index g, Index rows, Index cols) {
  check(g > 0, "PerGroup: group size must be positive, got ", g);
  check(g <= cols, "PerGroup: group size ", g, " does not fit a row of ", cols, " columns");
  return {ScaleLayout::Kind::group, rows, cols, g};
}
}  // namespace detail

/// One scale per G consecutive input columns of each row. PerGroup<> (G = 0) takes
/// the size at run time: PerGroup<>{128}.
template <Index G = dynamic_group>
struct PerGroup {
  static_assert(G > 0, "group size must be positive");
  [[nodiscard]] constexpr Index group_size() const { return G; }
  [[nodiscard]] ScaleLayout layout(Index rows, Index cols) const {
    return detail::group_layout(G, rows, cols);
  }
};

template <>
struct PerGroup<dynamic_group> {
  Index size = 128;
  constexpr PerGroup() = default;
  constexpr explicit PerGroup(Index g) : size(g) {}
  [[nodiscard]] constexpr Index group_size() const { return size; }
  [[nodiscard]] ScaleLayout layout(Index rows, Index cols) const {
    return detail::group_layout(size, rows, cols);
  }
};

}  // namespace lowbit
