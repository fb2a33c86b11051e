// libFuzzer target: arbitrary bytes as one GPTQ checkpoint's model.safetensors
// (io/gptq_checkpoint.hpp). The first byte picks the bits (2, 3, 4, 8) and the second
// the group size (-1, 16, 32, 64, 128) a quantize_config.json would give; the rest is
// the file. Every NAME.qweight is read back with read_gptq_linear; a linear it accepts
// must dequantize (which indexes qweight, qzeros, scales and g_idx through the
// shapes it checked, so ASan checks them) to finite values only. Refusals are
// lowbit::Error; anything else (crash, sanitizer report, another exception, a
// non-finite weight) is a bug.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/io/gptq_checkpoint.hpp"

namespace {

namespace io = lowbit::io;

std::optional<io::SafetensorsFile> open(const std::uint8_t* data, std::size_t size) {
  try {
    return io::SafetensorsFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz");
  } catch (const lowbit::Error&) {
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr int bits_of[] = {2, 3, 4, 8};
  static constexpr int groups_of[] = {-1, 16, 32, 64, 128};
  const int bits = bits_of[data[0] % 4];
  const int group = groups_of[data[1] % 5];
  const auto f = open(data + 2, size - 2);
  if (!f) return 0;
  for (const auto& t : f->tensors()) {
    const std::string suffix = ".qweight";
    if (t.name.size() <= suffix.size() || t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string name = t.name.substr(0, t.name.size() - suffix.size());
    std::optional<io::GptqLinear> p;
    try {
      p = io::read_gptq_linear(*f, name, bits, group);
    } catch (const lowbit::Error&) {
      continue;
    }
    const std::vector<float> w = io::dequantize_gptq_linear(*p);
    if (w.size() != static_cast<std::size_t>(p->in * p->out)) {
      std::fprintf(stderr, "fuzz_gptq_checkpoint: '%s' dequantized to %zu values\n", name.c_str(), w.size());
      std::abort();
    }
    for (const float v : w)
      if (!std::isfinite(v)) {
        std::fprintf(stderr, "fuzz_gptq_checkpoint: '%s' dequantized to a non-finite value\n", name.c_str());
        std::abort();
      }
  }
  return 0;
}
