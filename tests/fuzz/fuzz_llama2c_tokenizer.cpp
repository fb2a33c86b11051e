// libFuzzer target: llama2.c tokenizer files. Input layout: the tokenizer file,
// then a text of k bytes, then one byte k (a trailer, so mutating the text leaves
// the file intact). from_bytes must refuse with lowbit::Error or give a tokenizer
// that encodes a fixed string and the text to in-range ids, the same ids as
// run.c's quadratic loop (encode_reference), and decodes them without throwing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/text/llama2c_tokenizer.hpp"

namespace {

using lowbit::text::Llama2cTokenizer;

[[noreturn]] void bug(const char* what, std::string_view text) {
  std::fprintf(stderr, "fuzz_llama2c_tokenizer: %s (text of %zu bytes)\n", what, text.size());
  std::abort();
}

std::optional<Llama2cTokenizer> load(std::string_view file) {
  try {
    return Llama2cTokenizer::from_bytes(file, 0, "fuzz");
  } catch (const lowbit::Error&) {
    return std::nullopt;
  }
}

// On a loaded tokenizer nothing may throw: a lowbit::Error escapes and libFuzzer
// reports it.
void round(const Llama2cTokenizer& tok, std::string_view text, bool bos, bool eos) {
  const std::vector<int> ids = tok.encode(text, bos, eos);
  for (const int id : ids)
    if (id < 0 || id >= tok.vocab_size()) bug("encode() gave an id outside the vocabulary", text);
  if (ids != tok.encode_reference(text, bos, eos)) bug("encode() and encode_reference() disagree", text);
  (void)tok.decode(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data), size - 1);
  const std::size_t k = std::min<std::size_t>(data[size - 1], all.size());
  const auto tok = load(all.substr(0, all.size() - k));
  if (!tok) return 0;
  round(*tok, "Once upon a time, a tiny \xE4\xB8\xAD bird said <0x41> \xFF\x80 hi", true, false);
  round(*tok, all.substr(all.size() - k), true, true);
  return 0;
}
