// What lowbit's tools (lowbit-study, lowbit-quantize, lowbit_pretrain) share on their
// command lines: a UsageError that names the flag and the value, and the parsers of
// numbers and lists that throw it.
#pragma once

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::cli {

/// A command-line mistake: the message names the flag and says what was wrong. The
/// tools print it with their usage and exit with status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

inline std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

[[noreturn]] inline void usage_fail(std::string_view flag, std::string_view value, std::string_view why) {
  std::ostringstream m;
  m << flag << " " << value << ": " << why;
  throw UsageError(m.str());
}

inline double parse_number(std::string_view flag, const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x)) usage_fail(flag, v, "is not a number");
  return x;
}

inline long parse_positive(std::string_view flag, const std::string& v, bool allow_zero = false) {
  const double x = parse_number(flag, v);
  if (x != std::floor(x) || x < (allow_zero ? 0 : 1) || x > 1e12)
    usage_fail(flag, v, allow_zero ? "must be a non-negative integer" : "must be a positive integer");
  return static_cast<long>(x);
}

inline std::vector<double> parse_positive_list(std::string_view flag, const std::string& v) {
  std::vector<double> out;
  for (const auto& part : split(v, ',')) {
    const double x = parse_number(flag, part);
    if (!(x > 0)) usage_fail(flag, v, "values must be positive");
    out.push_back(x);
  }
  return out;
}

}  // namespace lowbit::cli
