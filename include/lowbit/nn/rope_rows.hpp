// The two layouts of RoPE's query/key rows, and the permutation between them.
//
// Within each head of head_dim rows, llama2.c, Meta's code and llama.cpp rotate
// adjacent pairs (2i, 2i+1); Hugging Face's rotate_half pairs (i, i + head_dim/2).
// Moving row 2i + a of a head to a·head_dim/2 + i turns the first layout into the
// second (HF's convert_llama_weights_to_hf.py); the inverse is what llama.cpp's
// convert_hf_to_gguf.py applies to Hugging Face weights.
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"

namespace lowbit::nn {

enum class RopeRows { to_half, to_interleaved };

/// The rows of a [rows, cols] row-major query or key weight (rows a multiple of an
/// even head_dim) in the other layout. T may be a byte: rows of an encoded weight
/// (a block format encodes each row on its own) move the same way.
template <class T>
std::vector<T> permute_rope_rows(std::span<const T> w, Index rows, Index cols, Index head_dim, RopeRows to) {
  lowbit::detail::check(head_dim > 0 && head_dim % 2 == 0 && rows % head_dim == 0 &&
                            static_cast<Index>(w.size()) == rows * cols,
                        "permute_rope_rows: ", rows, " rows of ", cols, " do not split into heads of ", head_dim);
  std::vector<T> out(w.size());
  for (Index r = 0; r < rows; ++r) {
    const Index head = r / head_dim, within = r % head_dim;
    const Index half = head * head_dim + (within % 2) * (head_dim / 2) + within / 2;  // interleaved row r's place
    const Index from = to == RopeRows::to_half ? r : half, dest = to == RopeRows::to_half ? half : r;
    std::copy_n(w.data() + from * cols, cols, out.data() + dest * cols);
  }
  return out;
}

}  // namespace lowbit::nn
