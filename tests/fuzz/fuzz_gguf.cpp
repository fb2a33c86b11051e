// libFuzzer target: arbitrary bytes as a whole GGUF file. The reader must either
// accept (and then every tensor's bytes lie inside the buffer and decode) or throw
// lowbit::Error; any other outcome (crash, ASan/UBSan report, other exception) is a
// bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/io/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = lowbit::io::GgufFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz");
    for (const auto& t : f.tensors()) {
      const auto bytes = f.bytes(t.name);
      volatile std::uint8_t sink = 0;
      for (const auto b : bytes) sink = sink ^ b;  // touches every byte: ASan checks the ranges
      if (t.rows() * t.cols() <= (std::uint64_t{1} << 20)) (void)f.to_float(t.name);
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
