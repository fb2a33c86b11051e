// QuantSpec: one run-time value that describes a quantization scheme completely —
// which codes exist, how many bits, which weights share a scale, how scales are
// stored and how they are searched — with the one grammar that parses and prints
// it. Every tool, the study, the result files and the exporters take schemes
// through this header; nothing else parses scheme strings.
//
//   int4                 symmetric narrow int4, one scale per tensor, abs-max
//   int4:g128:asym       quant.py's asymmetric grid, groups of 128
//   int3:channel:hist    PyTorch-compatible histogram-MSE scales per channel
//   int4:g32:f16         scales rounded to float16 (what an engine stores)
//   nf4:g64              QLoRA's NormalFloat with an absmax per 64 (bitsandbytes)
//   q4_k, iq4_nl, mxfp4  llama.cpp's block formats (quant/blocks/block_type.hpp)
//
// The printed form is canonical: base, granularity, code set, storage, search, with
// the defaults (narrow, tensor, f32, absmax) left out, so str(parse(s)) == s for
// every canonical s and parse(str(q)) == q for every spec (tests/quant/test_spec.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/blocks/block_type.hpp"
#include "lowbit/quant/format.hpp"
#include "lowbit/quant/granularity.hpp"

namespace lowbit {

/// How a scale is stored (and therefore which value the weights are rounded with).
enum class ScaleStorage : std::uint8_t { f32, f16, bf16 };

/// How a slice's scale is chosen.
enum class SearchKind : std::uint8_t {
  absmax,     ///< the observed range, nothing clips (MinMaxObserver, quant.py mse=False)
  hist,       ///< PyTorch 1.13 HistogramObserver, bit for bit
  hist_true,  ///< histogram MSE against the format's true grid
  mse,        ///< quant.py's shrink grid (mse=True): norm 2.4, grid 100, maxshrink 0.8
  weighted,   ///< shrink grid minimising Σ_j imp_j·(q(w_j) - w_j)² (importance per column)
};

/// One spelling of one choice, and what it means (for usage text and docs).
template <class E>
struct Choice {
  E value;
  std::string_view token;
  std::string_view about;
};

inline constexpr std::array<Choice<CodeSet>, 4> code_set_choices{{
    {CodeSet::narrow, "narrow", "symmetric, codes ±(2^(B-1)-1), scale absmax/(2^(B-1)-1) (default)"},
    {CodeSet::full, "full", "symmetric, codes -2^(B-1)..2^(B-1)-1, scale absmax/(2^(B-1)-0.5)"},
    {CodeSet::gptq, "gptq", "GPTQ quant.py sym=True: codes 0..2^B-1 around 2^(B-1), x / scale"},
    {CodeSet::asym, "asym", "GPTQ quant.py sym=False: codes 0..2^B-1 with a zero point per slice"},
}};

inline constexpr std::array<Choice<ScaleStorage>, 3> storage_choices{{
    {ScaleStorage::f32, "f32", "float32 scales (default)"},
    {ScaleStorage::f16, "f16", "scales rounded to float16"},
    {ScaleStorage::bf16, "bf16", "scales rounded to bfloat16"},
}};

inline constexpr std::array<Choice<SearchKind>, 5> search_choices{{
    {SearchKind::absmax, "absmax", "scale from the observed range (default)"},
    {SearchKind::hist, "hist", "PyTorch HistogramObserver's MSE search, bit-compatible"},
    {SearchKind::hist_true, "hist-true", "histogram MSE against the format's own grid"},
    {SearchKind::mse, "mse", "GPTQ quant.py's shrink grid (mse=True)"},
    {SearchKind::weighted, "weighted", "shrink grid weighted by a per-column importance (diag(H), imatrix)"},
}};

namespace spec_detail {

template <class E, std::size_t N>
std::optional<E> find(const std::array<Choice<E>, N>& table, std::string_view token) {
  for (const auto& c : table)
    if (c.token == token) return c.value;
  return std::nullopt;
}

template <class E, std::size_t N>
std::string_view token_of(const std::array<Choice<E>, N>& table, E value) {
  for (const auto& c : table)
    if (c.value == value) return c.token;
  return "?";
}

template <class E, std::size_t N>
std::string tokens(const std::array<Choice<E>, N>& table) {
  std::string s;
  for (const auto& c : table) {
    if (!s.empty()) s += ", ";
    s += c.token;
  }
  return s;
}

/// A positive decimal integer, or nullopt (no sign, no spaces, at most 9 digits).
inline std::optional<long> positive(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  long v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v <= 0) return std::nullopt;
  return v;
}

inline std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == ':') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

}  // namespace spec_detail

/// A complete quantization scheme (see the header comment for the grammar).
struct QuantSpec {
  CodeSet codes = CodeSet::narrow;
  int bits = 4;
  ScaleLayout::Kind granularity = ScaleLayout::Kind::tensor;
  Index group_size = 0;  ///< for ScaleLayout::Kind::group
  ScaleStorage storage = ScaleStorage::f32;
  SearchKind search = SearchKind::absmax;
  blocks::BlockType block = blocks::BlockType::q8_0;  ///< for CodeSet::block

  friend bool operator==(const QuantSpec&, const QuantSpec&) = default;

  [[nodiscard]] bool is_block() const { return codes == CodeSet::block; }
  [[nodiscard]] bool is_nf4() const { return codes == CodeSet::nf4; }

  /// Checks a spec built in code as parse() checks text: an Error naming the spec
  /// for bits outside 2..8, a group size that is not positive, or an NF4 spec with
  /// other than 4 bits or another search than absmax.
  void validate() const {
    if (is_block()) return;
    lowbit::detail::check(bits >= 2 && bits <= 8, "QuantSpec: ", bits, " bits is outside 2..8");
    lowbit::detail::check(!is_nf4() || bits == 4, "QuantSpec: nf4 has 4 bits, got ", bits);
    lowbit::detail::check(!is_nf4() || search == SearchKind::absmax, "QuantSpec nf4: ", nf4_search_rule);
    lowbit::detail::check(granularity != ScaleLayout::Kind::group || group_size > 0, "QuantSpec ", str(),
                          ": the group size must be positive, got ", group_size);
  }

  /// Why NF4 takes no search (one sentence, shared by validate() and parse()).
  static constexpr std::string_view nf4_search_rule =
      "its scale is the slice's absmax, as bitsandbytes computes it; the searches are for int<B> grids";

  /// The same scheme at another bit width (integer grids; the study's bit sweep).
  [[nodiscard]] QuantSpec with_bits(int b) const {
    QuantSpec s = *this;
    s.bits = b;
    s.validate();
    return s;
  }

  /// The integer grid (not for block formats).
  [[nodiscard]] FormatInfo format() const {
    lowbit::detail::check(!is_block(), "QuantSpec ", str(), ": a block format has no single integer grid");
    return integer_format(codes, bits);
  }

  /// Where the scales of a rows × cols weight live; an Error naming `tensor` when
  /// the scheme cannot apply (a group wider than the row, a row that is not a
  /// whole number of blocks).
  [[nodiscard]] ScaleLayout layout(Index rows, Index cols, std::string_view tensor = "weight") const {
    validate();
    if (is_block()) {
      (void)blocks::row_bytes(block, cols, tensor);
      const Index g = blocks::info(block).sub_block;
      return {ScaleLayout::Kind::group, rows, cols, g};
    }
    switch (granularity) {
      case ScaleLayout::Kind::tensor: return {ScaleLayout::Kind::tensor, rows, cols, cols};
      case ScaleLayout::Kind::channel: return {ScaleLayout::Kind::channel, rows, cols, cols};
      case ScaleLayout::Kind::group: break;
    }
    lowbit::detail::check(group_size <= cols, "tensor '", tensor, "': ", str(), ": a group of ", group_size,
                          " does not fit a row of ", cols, " columns");
    return {ScaleLayout::Kind::group, rows, cols, group_size};
  }

  /// Whether the scheme applies to rows of `cols` weights.
  [[nodiscard]] bool fits(Index cols) const {
    if (is_block()) return cols > 0 && cols % blocks::info(block).block_elems == 0;
    return granularity != ScaleLayout::Kind::group || (group_size > 0 && group_size <= cols);
  }

  /// The scheme a tool uses for rows of `cols` weights when this one cannot apply
  /// (docs/formats.md, "Shapes a scheme does not fit"): itself when it fits; for a
  /// block format llama.cpp's own fallback (llama-quantize's tensor_type_fallback:
  /// q2_k, q3_k, tq2_0 → q4_0; q4_k → q5_0; q5_k → q5_1; q6_k → q8_0; a 32-block
  /// type stays), and nullopt when even that does not fit — llama.cpp then keeps
  /// the tensor in F16; for an integer grid whose group is wider than the row, one
  /// group per row (per-channel).
  [[nodiscard]] std::optional<QuantSpec> fallback_for(Index cols) const {
    if (fits(cols)) return *this;
    QuantSpec s = *this;
    if (!is_block()) {
      s.granularity = ScaleLayout::Kind::channel;
      s.group_size = 0;
      return s;
    }
    using blocks::BlockType;
    switch (block) {
      case BlockType::q2_k:
      case BlockType::q3_k:
      case BlockType::tq2_0: s.block = BlockType::q4_0; break;
      case BlockType::q4_k: s.block = BlockType::q5_0; break;
      case BlockType::q5_k: s.block = BlockType::q5_1; break;
      case BlockType::q6_k: s.block = BlockType::q8_0; break;
      default: break;
    }
    if (s.fits(cols)) return s;
    return std::nullopt;
  }

  /// Stored bits per weight of a rows × cols weight, scales (and zeros) included.
  [[nodiscard]] double bits_per_weight(Index rows, Index cols) const {
    if (is_block()) return blocks::bits_per_weight(block);
    const ScaleLayout l = layout(rows, cols);
    const double scale_bits = storage == ScaleStorage::f32 ? 32.0 : 16.0;
    const double per_scale = scale_bits + (codes == CodeSet::asym ? bits : 0);
    return bits + per_scale * static_cast<double>(l.num_scales()) / (static_cast<double>(rows) * cols);
  }

  /// The canonical spelling.
  [[nodiscard]] std::string str() const {
    using namespace spec_detail;
    if (is_block()) return blocks::info(block).name;
    std::string s = is_nf4() ? "nf" : "int";
    s += std::to_string(bits);
    const auto option = [&s](std::string_view t) {
      s += ':';
      s += t;
    };
    if (granularity != ScaleLayout::Kind::tensor) option(granularity_str());
    if (codes != CodeSet::narrow && !is_nf4()) option(token_of(code_set_choices, codes));
    if (storage != ScaleStorage::f32) option(token_of(storage_choices, storage));
    if (search != SearchKind::absmax) option(token_of(search_choices, search));
    return s;
  }

  /// A sentence for logs and reports ("int4 narrow, per-group of 128, ...").
  [[nodiscard]] std::string describe() const {
    using namespace spec_detail;
    if (is_block()) {
      const auto& b = blocks::info(block);
      return std::string("llama.cpp ") + b.name + " (" + b.code_set + ")";
    }
    std::string g = granularity == ScaleLayout::Kind::tensor    ? "per-tensor"
                    : granularity == ScaleLayout::Kind::channel ? "per-channel"
                                                                : "per-group of " + std::to_string(group_size);
    for (const auto& c : search_choices)
      if (c.value == search) g += ", " + std::string(c.about);
    for (const auto& c : storage_choices)
      if (c.value == storage) g += ", " + std::string(c.about);
    if (is_nf4()) return "nf4 (QLoRA NormalFloat, absmax scales), " + g;
    for (const auto& c : code_set_choices)
      if (c.value == codes) return "int" + std::to_string(bits) + " " + std::string(c.token) + ", " + g;
    return g;
  }

  /// Parses a scheme. Throws lowbit::Error naming the offending part and the valid
  /// choices. `what` names where the text came from (a flag, a file field).
  static QuantSpec parse(std::string_view text, std::string_view what = "scheme") {
    using namespace spec_detail;
    const auto parts = split(text);
    auto bad = [&](std::string_view part, const std::string& why) -> QuantSpec {
      lowbit::detail::fail(what, " '", text, "': '", part, "' ", why);
    };
    QuantSpec s;
    const std::string_view base = parts[0];
    if (auto b = blocks::find_block_type(base)) {
      s.codes = CodeSet::block;
      s.block = *b;
      s.bits = 0;
      if (parts.size() > 1)
        return bad(parts[1], std::string("cannot modify a llama.cpp block format: ") + blocks::info(*b).name +
                                 " fixes its codes, blocks and scales");
      return s;
    }
    const bool nf = base == "nf4";
    const auto b = nf ? std::optional<long>(4) : base.substr(0, 3) == "int" ? positive(base.substr(3)) : std::nullopt;
    if (!b)
      return bad(base, "is not a scheme: expected int2..int8, nf4 or a llama.cpp type (" +
                           blocks::block_type_names() + ")");
    if (*b < 2 || *b > 8) return bad(base, "has " + std::to_string(*b) + " bits; integer grids have 2 to 8");
    s.bits = static_cast<int>(*b);
    if (nf) s.codes = CodeSet::nf4;
    bool seen[4] = {false, false, false, false};  // code set, granularity, storage, search
    auto once = [&](int slot, std::string_view part) {
      if (seen[slot]) bad(part, "repeats an option already given");
      seen[slot] = true;
    };
    for (std::size_t i = 1; i < parts.size(); ++i) {
      const std::string_view p = parts[i];
      if (auto c = find(code_set_choices, p)) {
        if (nf) return bad(p, "does not apply to nf4: its codes are NormalFloat's level table");
        once(0, p);
        s.codes = *c;
      } else if (p == "tensor" || p == "channel") {
        once(1, p);
        s.granularity = p == "tensor" ? ScaleLayout::Kind::tensor : ScaleLayout::Kind::channel;
      } else if (p.size() > 1 && p[0] == 'g' && positive(p.substr(1))) {
        once(1, p);
        s.granularity = ScaleLayout::Kind::group;
        s.group_size = *positive(p.substr(1));
      } else if (auto st = find(storage_choices, p)) {
        once(2, p);
        s.storage = *st;
      } else if (auto se = find(search_choices, p)) {
        once(3, p);
        if (nf && *se != SearchKind::absmax) return bad(p, std::string("does not apply to nf4: ") + std::string(nf4_search_rule));
        s.search = *se;
      } else {
        return bad(p, "is not an option: code sets " + tokens(code_set_choices) +
                          "; granularity tensor, channel, g<N>; scales " + tokens(storage_choices) + "; searches " +
                          tokens(search_choices));
      }
    }
    return s;
  }

  /// The canonical text of the granularity alone ("tensor", "channel", "g128").
  [[nodiscard]] std::string granularity_str() const {
    if (granularity == ScaleLayout::Kind::tensor) return "tensor";
    if (granularity == ScaleLayout::Kind::channel) return "channel";
    std::string g = "g";
    g += std::to_string(group_size);
    return g;
  }

};

}  // namespace lowbit
