// libFuzzer target: arbitrary bytes as a llama2.c checkpoint. parse_llama2c must
// refuse with lowbit::Error or return tensors that all lie inside the parsed data
// (every value is read through values(), so ASan checks each range) and together
// cover it exactly. Any other outcome (crash, ASan/UBSan report, another
// exception, an allocation beyond -rss_limit_mb) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include "lowbit/io/llama2c.hpp"

namespace {

std::optional<lowbit::io::Llama2cCheckpoint> parse(const std::uint8_t* data, std::size_t size) {
  try {
    return lowbit::io::parse_llama2c(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const lowbit::Error&) {
    return std::nullopt;
  }
}

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_llama2c_checkpoint: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto ck = parse(data, size);
  if (!ck) return 0;
  // Accepted, so reading it back must not throw: a lowbit::Error here escapes and
  // libFuzzer reports it.
  std::size_t floats = 0;
  volatile std::uint32_t sink = 0;
  for (const auto& t : ck->tensors) {
    const auto values = ck->values(t.name);
    for (const float v : values) {
      std::uint32_t bits = 0;
      std::memcpy(&bits, &v, 4);  // bits, not arithmetic: NaN payloads are fine here
      sink = sink ^ bits;
    }
    floats += values.size();
  }
  if (floats != ck->data.size()) bug("the tensors do not cover the data exactly");
  // RoPE block skipped, everything else kept: 28 header bytes + 4 per float.
  const std::size_t rope = static_cast<std::size_t>(ck->config.seq_len) * static_cast<std::size_t>(ck->config.head_size());
  if (28 + 4 * (floats + rope) != size) bug("the tensors and the RoPE block do not add up to the file size");
  if (ck->classifier().size() != static_cast<std::size_t>(ck->config.vocab_size) * static_cast<std::size_t>(ck->config.dim))
    bug("the classifier is not [vocab, dim]");
  return 0;
}
