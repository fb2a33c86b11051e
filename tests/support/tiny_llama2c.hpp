// A tiny llama2.c v0 checkpoint for the study's tests: `layers` blocks of width `dim`,
// MLP `hidden`, 2 heads, 1 kv head, the stories260K 512-token vocabulary (shared
// classifier), context 512, N(0, 0.1) weights from `seed` in run.c's order, with the
// tokenizer copied beside it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>

namespace lowbit::test {

inline std::filesystem::path write_tiny_llama2c(const std::filesystem::path& dir, const std::filesystem::path& tokenizer,
                                                int layers = 1, int dim = 16, int hidden = 32, unsigned seed = 5) {
  std::filesystem::create_directories(dir);
  const int d = dim, h = hidden, L = layers, H = 2, KV = 1, V = 512, T = 512, hd = d / H, kv = KV * hd;
  const std::int32_t header[7] = {d, h, L, H, KV, V, T};
  const long floats = static_cast<long>(V) * d + L * d + L * d * d + 2L * L * d * kv + L * d * d + L * d +
                      3L * L * h * d + d + static_cast<long>(T) * hd;
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  std::ofstream out(dir / "tiny.bin", std::ios::binary);
  out.write(reinterpret_cast<const char*>(header), sizeof header);
  for (long i = 0; i < floats; ++i) {
    const float v = nd(gen);
    out.write(reinterpret_cast<const char*>(&v), 4);
  }
  out.close();
  std::filesystem::copy_file(tokenizer, dir / "tok512.bin", std::filesystem::copy_options::overwrite_existing);
  return dir / "tiny.bin";
}

}  // namespace lowbit::test
