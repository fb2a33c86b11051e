// BlockGrid: what GPTQ rounds a llama.cpp block-format weight onto. A block format
// fixes its scales before the column loop (like static groups): llama.cpp's own
// quantizer encodes W once, and every weight then goes to the nearest level of its
// sub-block's grid, scale·level − min. The codes GPTQ chose are written back into
// the encoded rows under the same scales, so the result is a file llama.cpp reads
// and decodes to exactly the Q GPTQ's error feedback saw.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/blocks/codec.hpp"

namespace lowbit {

class BlockGrid {
 public:
  /// The grid of `encoded` (rows × row_bytes(t, cols) bytes, as blocks::quantize gives).
  BlockGrid(blocks::BlockType t, std::vector<std::uint8_t> encoded, Index rows, Index cols,
            std::string_view name = "weight")
      : type_(t),
        rows_(rows),
        cols_(cols),
        sub_(blocks::info(t).sub_block),
        row_bytes_(blocks::row_bytes(t, cols, name)),
        encoded_(std::move(encoded)),
        levels_(blocks::levels(t)),
        usable_(t == blocks::BlockType::tq2_0 ? 3 : levels_.size()) {
    detail::check(encoded_.size() == row_bytes_ * static_cast<std::size_t>(rows), "BlockGrid: '", name, "' has ",
                  encoded_.size(), " encoded bytes for ", rows, " rows of ", row_bytes_);
    grids_.resize(static_cast<std::size_t>(rows * (cols / sub_)));
    for (Index r = 0; r < rows; ++r) blocks::grid_row(t, row(r), cols, grids_.data() + r * (cols / sub_));
    uniform_ = std::adjacent_find(levels_.begin(), levels_.begin() + static_cast<std::ptrdiff_t>(usable_),
                                  [](float a, float b) { return b != a + 1.0f; }) ==
               levels_.begin() + static_cast<std::ptrdiff_t>(usable_);
  }

  /// The representable value of row r, column c nearest to x, and its code.
  /// tq2_0 rounds onto codes 0..2 only: llama.cpp never writes its fourth code.
  float round(Index r, Index c, float x, std::uint8_t& code) const {
    const blocks::SubBlockGrid g = grids_[static_cast<std::size_t>(r * (cols_ / sub_) + c / sub_)];
    std::size_t k = 0;
    if (g.scale == 0.0f || !std::isfinite(g.scale) || !std::isfinite(x)) {
      // Every code decodes alike (or x is not a number: the error feedback left
      // float32, and the solver's end-of-block check retries with more damping).
      k = nearest_level_to_zero();
    } else if (uniform_) {
      const float lo = levels_[0], hi = levels_[usable_ - 1];
      const float t = std::clamp(std::nearbyint((x + g.min) / g.scale), lo, hi);
      k = static_cast<std::size_t>(t - lo);
    } else {
      float best = std::fabs(g.scale * levels_[0] - g.min - x);
      for (std::size_t i = 1; i < usable_; ++i) {
        const float d = std::fabs(g.scale * levels_[i] - g.min - x);
        if (d < best) {
          best = d;
          k = i;
        }
      }
    }
    code = static_cast<std::uint8_t>(k);
    return g.scale * levels_[k] - g.min;  // the decoder's expression, bit for bit
  }

  /// Rewrites every row's codes (rows × cols, indices into blocks::levels), keeping
  /// the scales.
  void set_codes(std::span<const std::uint8_t> codes) {
    detail::check(codes.size() == static_cast<std::size_t>(rows_ * cols_), "BlockGrid::set_codes: ", codes.size(),
                  " codes for ", rows_, "x", cols_);
    for (Index r = 0; r < rows_; ++r) blocks::set_codes_row(type_, row(r), codes.data() + r * cols_, cols_);
  }

  [[nodiscard]] const std::vector<std::uint8_t>& encoded() const { return encoded_; }
  [[nodiscard]] std::vector<std::uint8_t> release() { return std::move(encoded_); }

 private:
  std::uint8_t* row(Index r) { return encoded_.data() + static_cast<std::size_t>(r) * row_bytes_; }

  std::size_t nearest_level_to_zero() const {
    std::size_t k = 0;
    for (std::size_t i = 1; i < usable_; ++i)
      if (std::fabs(levels_[i]) < std::fabs(levels_[k])) k = i;
    return k;
  }

  blocks::BlockType type_;
  Index rows_, cols_, sub_;
  std::size_t row_bytes_;
  std::vector<std::uint8_t> encoded_;
  std::span<const float> levels_;
  std::size_t usable_;
  bool uniform_ = true;
  std::vector<blocks::SubBlockGrid> grids_;
};

}  // namespace lowbit
