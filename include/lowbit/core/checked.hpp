// Overflow-checked size arithmetic for sizes that a file header or a flag decides.
//
// A header that claims 2^24 layers of 2^24 × 2^24 weights must be refused, not
// wrapped around 2^64 into a small number that then "matches" the file size.
// Every product or sum of untrusted sizes goes through these: on overflow they
// throw lowbit::Error with the caller's description of what was being sized.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "lowbit/core/error.hpp"

namespace lowbit {

/// a · b, or Error("<what>: a × b overflows") when the product does not fit T.
template <std::integral T>
[[nodiscard]] T checked_mul(T a, T b, std::string_view what) {
  T r{};
  if (__builtin_mul_overflow(a, b, &r)) detail::fail(what, ": ", a, " × ", b, " overflows a ", sizeof(T) * 8, "-bit size");
  return r;
}

/// a + b, or Error on overflow.
template <std::integral T>
[[nodiscard]] T checked_add(T a, T b, std::string_view what) {
  T r{};
  if (__builtin_add_overflow(a, b, &r)) detail::fail(what, ": ", a, " + ", b, " overflows a ", sizeof(T) * 8, "-bit size");
  return r;
}

/// The product of all factors (e.g. a tensor's element count from its shape).
template <std::integral T>
[[nodiscard]] T checked_product(std::initializer_list<T> factors, std::string_view what) {
  T r = 1;
  for (const T f : factors) r = checked_mul(r, f, what);
  return r;
}

}  // namespace lowbit
