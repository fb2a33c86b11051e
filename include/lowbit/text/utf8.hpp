// UTF-8 decoding one code point at a time, and Unicode letter / number / space
// classes for the GPT-2 pre-tokenizer.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>

#include "lowbit/text/unicode_tables.hpp"

namespace lowbit::text {

/// Decodes the code point at s[i]; sets `len` to its byte length. Malformed bytes
/// (stray continuation bytes, overlongs, surrogates, truncated sequences) decode
/// as one byte each with code point `invalid_code_point`, which is in no class
/// (so they are pre-tokenized like punctuation and keep their raw bytes).
inline constexpr char32_t invalid_code_point = 0xFFFFFFFF;

inline char32_t decode_utf8(std::string_view s, std::size_t i, std::size_t& len) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const std::size_t left = s.size() - i;
  const unsigned c = b(0);
  len = 1;
  if (c < 0x80) return c;
  const auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF && cont(1)) {
    len = 2;
    return ((c & 0x1F) << 6) | (b(1) & 0x3F);
  }
  if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
    const char32_t cp = ((c & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) {
      len = 3;
      return cp;
    }
  }
  if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    const char32_t cp = ((c & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    if (cp >= 0x10000 && cp <= 0x10FFFF) {
      len = 4;
      return cp;
    }
  }
  return invalid_code_point;
}

enum class CharClass : std::uint8_t { other, letter, number, space };

namespace classes {
template <std::size_t N>
constexpr bool in_ranges(const std::uint32_t (&r)[N][2], char32_t cp) {
  const auto* it = std::upper_bound(std::begin(r), std::end(r), static_cast<std::uint32_t>(cp),
                                    [](std::uint32_t v, const std::uint32_t(&range)[2]) { return v < range[0]; });
  return it != std::begin(r) && cp <= (*(it - 1))[1];
}

/// JavaScript's \s (ECMAScript WhiteSpace + LineTerminator), the reference encoder's.
constexpr bool js_space(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

constexpr CharClass classify_slow(char32_t cp) {
  if (cp == invalid_code_point) return CharClass::other;
  if (js_space(cp)) return CharClass::space;
  if (in_ranges(unicode::letter_ranges, cp)) return CharClass::letter;
  if (in_ranges(unicode::number_ranges, cp)) return CharClass::number;
  return CharClass::other;
}

inline constexpr auto ascii_classes = [] {
  std::array<CharClass, 128> t{};
  for (char32_t c = 0; c < 128; ++c) t[c] = classify_slow(c);
  return t;
}();
}  // namespace classes

/// \s / \p{L} / \p{N} / anything else, as the GPT-2 pattern sees a code point.
inline CharClass classify(char32_t cp) {
  return cp < 128 ? classes::ascii_classes[cp] : classes::classify_slow(cp);
}

/// The class of the code point at s[p], its byte length in `len`: ASCII bytes from a
/// table without decoding (pre-tokenizers ask this of nearly every byte of the text).
inline CharClass class_at(std::string_view s, std::size_t p, std::size_t& len) {
  if (const auto c = static_cast<unsigned char>(s[p]); c < 0x80) {
    len = 1;
    return classes::ascii_classes[c];
  }
  return classify(decode_utf8(s, p, len));
}

/// The end of the run of code points of class c that starts at s[p] (p itself when
/// s[p] is of another class). The pre-tokenizers' innermost loop: ASCII bytes are
/// classified from the table one after the other, without a length to carry.
inline std::size_t class_run_end(std::string_view s, std::size_t p, CharClass c) {
  const std::size_t n = s.size();
  while (p < n) {
    if (const auto b = static_cast<unsigned char>(s[p]); b < 0x80) {
      if (classes::ascii_classes[b] != c) break;
      ++p;
      continue;
    }
    std::size_t len = 0;
    if (classify(decode_utf8(s, p, len)) != c) break;
    p += len;
  }
  return p;
}

}  // namespace lowbit::text
