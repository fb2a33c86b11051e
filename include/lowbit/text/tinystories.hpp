// TinyStories: stories split from the official validation text, the study's split
// by story index, and context windows for llama2.c models (docs/data.md).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"

namespace lowbit::text {

/// Stories of a TinyStories text: the pieces between "<|endoftext|>" markers, each
/// stripped of surrounding whitespace (Python's str.strip(), ASCII), empty ones
/// dropped. A full strip (not only newlines) is what reproduces the shared
/// README's token counts: the first story starts with a space.
inline std::vector<std::string> tinystories_stories(std::string_view text) {
  static constexpr std::string_view marker = "<|endoftext|>", ws = " \t\n\r\f\v";
  std::vector<std::string> out;
  std::size_t p = 0;
  for (;;) {
    const std::size_t e = text.find(marker, p);
    std::string_view piece = text.substr(p, e == std::string_view::npos ? std::string_view::npos : e - p);
    const std::size_t b = piece.find_first_not_of(ws);
    if (b != std::string_view::npos) {
      piece = piece.substr(b, piece.find_last_not_of(ws) - b + 1);
      out.emplace_back(piece);
    }
    if (e == std::string_view::npos) break;
    p = e + marker.size();
  }
  return out;
}

/// The study's split of TinyStories-valid.first246.txt by story index.
struct StoryRange {
  std::size_t begin, end;  ///< [begin, end)
};
inline constexpr StoryRange tinystories_calibration{0, 128};
inline constexpr StoryRange tinystories_validation{128, 166};
inline constexpr StoryRange tinystories_test{166, 246};

/// [BOS] + encode(story), llama2.c style.
inline std::vector<int> tinystories_tokens(const Llama2cTokenizer& tok, std::string_view story) {
  return tok.encode(story, /*bos=*/true, /*eos=*/false);
}

/// Windows of at most `context` tokens over one story's tokens. A story longer
/// than the context is cut into windows that each start with the previous window's
/// last token, so every token after the first is predicted exactly once
/// (sum of (window length - 1) = tokens - 1).
inline std::vector<std::span<const int>> story_windows(std::span<const int> tokens, std::ptrdiff_t context) {
  detail::check(context >= 2, "story_windows: context must be at least 2 tokens, got ", context);
  std::vector<std::span<const int>> w;
  if (tokens.size() < 2) return w;
  const auto n = static_cast<std::ptrdiff_t>(tokens.size());
  for (std::ptrdiff_t s = 0; s < n - 1; s += context - 1) {
    const std::ptrdiff_t len = std::min(context, n - s);
    w.push_back(tokens.subspan(static_cast<std::size_t>(s), static_cast<std::size_t>(len)));
  }
  return w;
}

}  // namespace lowbit::text
