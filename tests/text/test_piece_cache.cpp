// PieceCache against a std::map over random pieces: every length up to the limit (the
// inline one-token slots of at most eight bytes, longer pieces compared in the text,
// pieces of several ids), pieces that share a prefix, and growth from empty.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "lowbit/text/piece_cache.hpp"

namespace text = lowbit::text;

TEST_CASE("piece cache: finds what was inserted, with its ids, and nothing else") {
  std::mt19937 rng(7);
  // One text the pieces are views into (the encoders' contract); a small alphabet so
  // that pieces often share their first eight bytes and differ later.
  std::string textbuf;
  for (int i = 0; i < 400000; ++i) textbuf += "ab \xE2\x96"[rng() % 5];
  const std::string_view text_view(textbuf);

  text::PieceCache cache;
  std::map<std::string, std::pair<std::vector<int>, std::size_t>, std::less<>> reference;  // ids, where
  std::size_t inserted = 0, hits = 0;
  for (int round = 0; round < 60000; ++round) {
    const std::size_t len = rng() % 4 == 0 ? rng() % 300 : rng() % 12;
    const std::size_t at = rng() % (text_view.size() - len);
    const std::string_view piece = text_view.substr(at, len);
    std::span<const int> got;
    const bool found = cache.find(piece, got);
    const auto it = reference.find(piece);
    const bool kept = !piece.empty() && piece.size() < text::PieceCache::max_piece;
    REQUIRE(found == (kept && it != reference.end()));
    if (found) {
      ++hits;
      REQUIRE(std::vector<int>(got.begin(), got.end()) == it->second.first);
      continue;
    }
    std::vector<int> ids(rng() % 3 + 1);
    for (int& id : ids) id = static_cast<int>(rng() % 200000);
    cache.insert(piece, ids);
    if (kept) reference.emplace(std::string(piece), std::pair{ids, at}), ++inserted;
  }
  CHECK(inserted > 20000);  // several growths
  CHECK(hits > 1000);       // and many pieces seen again
  // A second pass finds every kept piece with its ids.
  for (const auto& [piece, value] : reference) {
    const auto& [ids, at] = value;
    std::span<const int> got;
    REQUIRE(cache.find(text_view.substr(at, piece.size()), got));
    CHECK(std::vector<int>(got.begin(), got.end()) == ids);
  }
  cache.clear();
  std::span<const int> got;
  CHECK_FALSE(cache.find(text_view.substr(0, 3), got));
}
