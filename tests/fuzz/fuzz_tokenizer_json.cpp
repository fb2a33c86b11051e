// libFuzzer target: arbitrary text as a Hugging Face tokenizer.json. from_string must
// refuse with lowbit::Error or accept; an accepted tokenizer must encode texts (the
// input itself included: any bytes, invalid UTF-8 too) into ids below vocab_size(),
// or refuse with lowbit::Error (text its vocabulary cannot spell and no unk_token),
// and decode what it encoded.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/text/tokenizer_json.hpp"

namespace {

[[noreturn]] void bug(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_tokenizer_json: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void round_trip(const lowbit::text::TokenizerJson& tok, std::string_view text) {
  std::vector<int> ids;
  try {
    ids = tok.encode(text);
  } catch (const lowbit::Error&) {
    return;
  }
  for (const int id : ids)
    if (id < 0 || id >= tok.vocab_size()) bug("encode() gave an id outside the vocabulary", text);
  try {
    (void)tok.decode(ids);
  } catch (const lowbit::Error&) {
    // ids of the file's vocabulary can still lack a token text (holes): refused by name
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::optional<lowbit::text::TokenizerJson> tok;
  try {
    tok.emplace(lowbit::text::TokenizerJson::from_string(input, "fuzz"));
  } catch (const lowbit::Error&) {
    return 0;
  }
  for (const std::string_view text : {"Hello, world! It's 2024.", "  \n\t x", "\xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80 \xFF\xFE",
                                      "\xE2\x96\x81" "a\xE2\x96\x81\xE2\x96\x81" "b", "<s>ab</s>"})
    round_trip(*tok, text);
  round_trip(*tok, input.substr(0, 512));
  return 0;
}
