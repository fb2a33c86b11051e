// Deterministic test data.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace lowbit::test {

inline std::vector<float> gaussian(std::size_t n, float stddev = 1.0f, std::uint32_t seed = 1) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

inline std::vector<float> uniform(std::size_t n, float lo, float hi, std::uint32_t seed = 1) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

}  // namespace lowbit::test
