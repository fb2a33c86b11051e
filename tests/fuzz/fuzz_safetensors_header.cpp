// libFuzzer target: arbitrary bytes as a whole safetensors file. The header parser
// must either accept (and then every tensor's bytes must be readable inside the
// buffer) or throw lowbit::Error; any other outcome (crash, ASan/UBSan report,
// other exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = lowbit::io::SafetensorsFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz");
    for (const auto& t : f.tensors()) {
      const auto bytes = f.bytes(t.name);
      volatile std::uint8_t sink = 0;
      for (const auto b : bytes) sink = sink ^ b;  // touches every byte: ASan checks the ranges
      if (t.dtype == lowbit::io::DType::F32 || t.dtype == lowbit::io::DType::F16 ||
          t.dtype == lowbit::io::DType::BF16 || t.dtype == lowbit::io::DType::F64)
        (void)f.to_float(t.name);
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
