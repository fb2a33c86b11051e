// The Llama 3 / Qwen pre-tokenizer (split_llama3_style) against the version it
// replaced in 807c138, kept here as the reference: that one asked each position's
// class again for every alternative, so it reads as the regex does. Random strings
// over the characters whose classes the alternatives turn on — ASCII letters, digits,
// punctuation, the apostrophe of contractions, spaces, tabs, CR/LF, a non-ASCII
// letter, an ideographic space, an invalid byte — for Llama 3's 1–3 digits and
// Qwen's single digits. The real-tokenizer fixtures test the same code on real text
// but skip where the npm files were not fetched; this one always runs.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "lowbit/text/tokenizer_json.hpp"

namespace {
using lowbit::text::CharClass;

template <class F>
void reference_split(std::string_view s, std::size_t max_digits, F&& f) {
  using lowbit::text::class_at;
  const std::size_t n = s.size();
  std::size_t len = 0;
  const auto cls = [&](std::size_t p) {
    std::size_t l = 0;
    return p < n ? class_at(s, p, l) : CharClass::space;
  };
  const auto run_end = [&](std::size_t p, CharClass c) {
    std::size_t l = 0;
    while (p < n && class_at(s, p, l) == c) p += l;
    return p;
  };
  const auto is_crlf = [&](std::size_t p) { return p < n && (s[p] == '\r' || s[p] == '\n'); };
  std::size_t i = 0;
  const auto emit = [&](std::size_t e) {
    f(s.substr(i, e - i));
    i = e;
  };
  while (i < n) {
    if (const std::size_t m = lowbit::text::tokenizer_json_detail::contraction_length(s, i)) { emit(i + m); continue; }
    const CharClass c = class_at(s, i, len);
    if (c == CharClass::letter) { emit(run_end(i + len, c)); continue; }
    if (c != CharClass::number && !is_crlf(i) && i + len < n && cls(i + len) == CharClass::letter) {
      emit(run_end(i + len, CharClass::letter));
      continue;
    }
    if (c == CharClass::number) {
      std::size_t e = i, k = 0, l = 0;
      while (k < max_digits && e < n && class_at(s, e, l) == CharClass::number) e += l, ++k;
      emit(e);
      continue;
    }
    const std::size_t p = (s[i] == ' ' && cls(i + 1) == CharClass::other) ? i + 1 : i;
    if (cls(p) == CharClass::other) {
      std::size_t e = run_end(p, CharClass::other);
      while (is_crlf(e)) ++e;
      emit(e);
      continue;
    }
    std::size_t e = i, last = i, last_crlf = n, count = 0, l = 0;
    while (e < n && class_at(s, e, l) == CharClass::space) {
      if (s[e] == '\r' || s[e] == '\n') last_crlf = e;
      last = e;
      e += l;
      ++count;
    }
    if (last_crlf != n) { emit(last_crlf + 1); continue; }
    emit((e < n && count >= 2) ? last : e);
  }
}

std::vector<std::string> pieces(std::string_view s, std::size_t max_digits, bool reference) {
  std::vector<std::string> out;
  const auto f = [&](std::string_view p) { out.emplace_back(p); };
  if (reference) reference_split(s, max_digits, f);
  else lowbit::text::tokenizer_json_detail::split_llama3_style(s, max_digits, f);
  return out;
}
}  // namespace

TEST_CASE("llama3 split: the same pieces as the reference it replaced, on random text") {
  const std::vector<std::string> alphabet = {" ", " ", "\t", "\r", "\n", "a", "Z", "s", "t", "1", "7", "!", ".",
                                             "'", "\xC3\xA9" /* é */, "\xE3\x80\x80" /* ideographic space */,
                                             "\xFF" /* invalid */};
  std::mt19937 rng(3);
  int compared = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const std::size_t len = rng() % 24;
    for (std::size_t k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
    for (const std::size_t digits : {std::size_t{1}, std::size_t{3}}) {
      const auto got = pieces(s, digits, false), want = pieces(s, digits, true);
      if (got != want) {
        FAIL_CHECK("split differs on \"" << s << "\" (max_digits " << digits << ")");
        return;
      }
      ++compared;
    }
  }
  CHECK(compared == 40000);
  // Each alternative once, by hand (Llama 3's 1-3 digits).
  CHECK(pieces("Hello world's 12345  x\n\n  y!!\r\n", 3, false) ==
        std::vector<std::string>{"Hello", " world", "'s", " ", "123", "45", " ", " x", "\n\n", " ", " y", "!!\r\n"});
}
