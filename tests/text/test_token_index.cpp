// TokenIndex against a std::map over random tokens: lengths around the inline prefix
// (at most eight bytes decided by the slot, longer ones compared in bytes_), tokens
// that share their first eight bytes, NUL bytes (so zero padding cannot make "a" and
// "a\0" one token), tokens too long for a slot, growth from empty, and refusals.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <string>

#include "lowbit/core/error.hpp"
#include "lowbit/text/token_index.hpp"

namespace text = lowbit::text;

TEST_CASE("token index: finds every token inserted, with its id, and nothing else") {
  std::mt19937 rng(11);
  const std::string alphabet("ab\0\xE2", 4);  // small: shared prefixes are common
  const auto random_token = [&] {
    const std::size_t len = rng() % 50 == 0 ? 2040 + rng() % 20 : rng() % 14;  // a few past the slot's size field
    std::string t;
    for (std::size_t k = 0; k < len; ++k) t += alphabet[rng() % alphabet.size()];
    return t;
  };
  text::TokenIndex index;
  std::map<std::string, int> reference;
  for (int id = 0; id < 30000; ++id) {
    const std::string t = random_token();
    const bool fresh = reference.emplace(t, id).second;
    CHECK(index.insert(t, id) == fresh);
  }
  CHECK(index.size() == reference.size());
  for (const auto& [t, id] : reference) CHECK(index.find(t) == id);
  for (int k = 0; k < 20000; ++k) {
    const std::string t = random_token();
    const auto it = reference.find(t);
    CHECK(index.find(t) == (it == reference.end() ? -1 : it->second));
  }
  std::size_t listed = 0;
  index.for_each_token([&](std::string_view t) { listed += reference.count(std::string(t)); });
  CHECK(listed == reference.size());
}

TEST_CASE("token index: zero padding does not join a token with its NUL-extended twin") {
  text::TokenIndex index;
  CHECK(index.insert(std::string_view("a"), 1));
  CHECK(index.insert(std::string_view("a\0", 2), 2));
  CHECK(index.insert(std::string_view(""), 3));
  CHECK(index.insert(std::string_view("\0", 1), 4));
  CHECK(index.find(std::string_view("a")) == 1);
  CHECK(index.find(std::string_view("a\0", 2)) == 2);
  CHECK(index.find(std::string_view("")) == 3);
  CHECK(index.find(std::string_view("\0", 1)) == 4);
  CHECK(index.find(std::string_view("a\0\0", 3)) == -1);
}

TEST_CASE("token index: an id beyond what a slot holds is refused") {
  text::TokenIndex index;
  CHECK_THROWS_AS(index.insert("x", -1), lowbit::Error);
  CHECK_THROWS_AS(index.insert("x", 1 << 21), lowbit::Error);
  CHECK(index.insert("x", (1 << 21) - 1));  // the largest a slot holds
  CHECK(index.find("x") == (1 << 21) - 1);
}
