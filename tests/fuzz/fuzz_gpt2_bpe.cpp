// libFuzzer target: GPT-2 BPE vocabularies. Input layout: encoder.json bytes, NUL,
// vocab.bpe bytes, NUL, a text (NUL cannot occur in valid JSON or in a merge line,
// so the separators cost the fuzzer nothing). from_strings must refuse with
// lowbit::Error or give a tokenizer that encodes a fixed string and the text to
// in-range ids which decode back to the text (byte-level BPE is lossless).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/text/gpt2_bpe.hpp"

namespace {

using lowbit::text::Gpt2Tokenizer;

[[noreturn]] void bug(const char* what, std::string_view text) {
  std::fprintf(stderr, "fuzz_gpt2_bpe: %s (text of %zu bytes)\n", what, text.size());
  std::abort();
}

// The next NUL-terminated field of `rest` (all of it when there is no NUL).
std::string_view field(std::string_view& rest) {
  const std::size_t nul = rest.find('\0');
  const std::string_view f = rest.substr(0, nul);
  rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  return f;
}

std::optional<Gpt2Tokenizer> load(std::string_view vocab, std::string_view merges) {
  try {
    return Gpt2Tokenizer::from_strings(vocab, merges, "fuzz.json", "fuzz.bpe");
  } catch (const lowbit::Error&) {
    return std::nullopt;
  }
}

// On a loaded tokenizer nothing may throw: a lowbit::Error escapes and libFuzzer
// reports it.
void round(const Gpt2Tokenizer& tok, std::string_view text) {
  const std::vector<int> ids = tok.encode(text);
  for (const int id : ids)
    if (id < 0 || id >= tok.vocab_size()) bug("encode() gave an id outside the vocabulary", text);
  if (tok.decode(ids) != text) bug("decode(encode(text)) is not the text", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const std::string_view vocab = field(rest);
  const std::string_view merges = field(rest);
  const auto tok = load(vocab, merges);
  if (!tok) return 0;
  round(*tok, "Hello world's 12 tests\n\n  don't \xE4\xB8\xAD\xF0\x9F\x98\x80 \xFF\x80 ab  ");
  round(*tok, rest);
  return 0;
}
