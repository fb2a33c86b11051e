// Seeded windows of token ids for calibration and evaluation tests: one LCG stream
// (Knuth's MMIX constants) read window after window, so a seed gives the same ids
// in every test that asks for the same shape.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lowbit::test {

struct TokenWindows {
  std::vector<std::vector<int>> ids;
  std::vector<std::span<const int>> spans;  ///< views of ids, one per window
};

/// `count` windows of ids in [0, vocab); window i has len − shrink·(i mod 3) tokens
/// (shrink > 0 gives windows of several lengths).
inline TokenWindows token_windows(int vocab, int count, int len, std::uint64_t seed, int shrink = 0) {
  TokenWindows w;
  std::uint64_t state = seed;
  for (int i = 0; i < count; ++i) {
    std::vector<int> t;
    for (int j = 0; j < len - shrink * (i % 3); ++j) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      t.push_back(static_cast<int>((state >> 33) % static_cast<std::uint64_t>(vocab)));
    }
    w.ids.push_back(std::move(t));
  }
  for (const auto& t : w.ids) w.spans.emplace_back(t);
  return w;
}

}  // namespace lowbit::test
