// libFuzzer target: arbitrary bytes as a quantized safetensors export
// (io/quantized_export.hpp). Each weight named by W.lowbit.bits metadata is read
// back with read_quantized; a weight it accepts must unpack to codes inside the
// format's qmin..qmax (every code is read, so ASan checks the packed ranges) and
// dequantize (which indexes the scales by the layout). Refusals are lowbit::Error;
// any other outcome (crash, ASan/UBSan report, another exception, an allocation
// beyond -rss_limit_mb) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/io/quantized_export.hpp"

namespace {

namespace io = lowbit::io;

[[noreturn]] void bug(const std::string& name, const char* what) {
  std::fprintf(stderr, "fuzz_quantized: weight '%s': %s\n", name.c_str(), what);
  std::abort();
}

std::optional<io::SafetensorsFile> open(const std::uint8_t* data, std::size_t size) {
  try {
    return io::SafetensorsFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz");
  } catch (const lowbit::Error&) {
    return std::nullopt;
  }
}

std::optional<io::QuantizedWeight> read(const io::SafetensorsFile& f, const std::string& name) {
  try {
    return io::read_quantized(f, name);
  } catch (const lowbit::Error&) {
    return std::nullopt;
  }
}

// An accepted weight is consistent with its layout, so nothing below may throw:
// a lowbit::Error here escapes and libFuzzer reports it.
void check_accepted(const std::string& name, const io::QuantizedWeight& q) {
  const lowbit::QuantizedTensor t = lowbit::unpack(q.packed);
  const auto rows = t.rows(), cols = t.cols();
  if (t.codes.size() != static_cast<std::size_t>(rows * cols)) bug(name, "unpack() gave the wrong number of codes");
  // read_quantized refuses codes the format cannot represent (a narrow int4 -8).
  const auto& f = q.packed.params.format;
  for (const std::int8_t c : t.codes)
    if (c < f.qmin || c > f.qmax) bug(name, "an accepted weight holds a code outside qmin..qmax");
  std::vector<float> out(t.codes.size());
  t.dequantize(lowbit::MatrixView(out.data(), rows, cols));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto f = open(data, size);
  if (!f) return 0;
  for (const std::string& name : io::quantized_names(*f))
    if (const auto q = read(*f, name)) check_accepted(name, *q);
  return 0;
}
