// WikiText-2 as the GPTQ / Hugging Face perplexity protocol reads it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"

namespace lowbit::text {

/// Joins a raw WikiText split the way `"\n\n".join(dataset["text"])` does with
/// Hugging Face's wikitext loader: each line of the file (with its '\n') is a row,
/// whitespace-only lines become "", and rows are joined with "\n\n". With GPT-2's
/// tokenizer the test split gives 287,644 tokens.
inline std::string wikitext_hf_join(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  bool first = true;
  std::size_t p = 0;
  while (p < raw.size()) {
    std::size_t e = raw.find('\n', p);
    const std::size_t end = e == std::string_view::npos ? raw.size() : e + 1;
    const std::string_view line = raw.substr(p, end - p);
    p = end;
    if (!first) out += "\n\n";
    first = false;
    // Python's str.strip() whitespace, restricted to ASCII (the file is ASCII-spaced).
    if (line.find_first_not_of(" \t\n\r\f\v") != std::string_view::npos) out += line;
  }
  return out;
}

/// Reads `wikitext-2/<file>` under the data directory, e.g. "wiki.test.raw",
/// "wiki.valid.tokens", "wiki.test.tokens".
inline std::string load_wikitext2(const std::filesystem::path& data_dir, std::string_view file) {
  const auto path = data_dir / "wikitext-2" / std::string(file);
  detail::check(std::filesystem::exists(path), "WikiText-2: '", path.string(),
                "' does not exist (see ../shared/README.md for the files available)");
  return io::read_file(path);
}

}  // namespace lowbit::text
