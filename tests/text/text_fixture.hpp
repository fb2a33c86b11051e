// Reader for tests/fixtures/text/*.txt (scripts/fixtures/gen_text_fixtures.py):
// '#' comments, "case <kind> <payload...>" lines each followed by "ids <n> <ids...>",
// and free "key values..." summary lines.
#pragma once

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::test {

/// The opening of a toy GPT-2 vocab.json: all 256 byte tokens in GPT-2's byte
/// alphabet, ids 0..255, each followed by a comma (append entries and "}").
inline std::string gpt2_byte_vocab_entries() {
  std::string vocab = "{";
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t cp = keep ? char32_t(b) : char32_t(256 + extra++);
    std::string u;
    if (cp < 0x80) u += char(cp);
    else { u += char(0xC0 | (cp >> 6)); u += char(0x80 | (cp & 0x3F)); }
    if (u == "\"" || u == "\\") u = "\\" + u;
    vocab += "\"" + u + "\":" + std::to_string(b) + ",";
  }
  return vocab;
}

struct TextCase {
  std::vector<std::string> head;  ///< the words after "case"
  std::vector<int> ids;
};

struct TextFixture {
  std::vector<TextCase> cases;
  std::map<std::string, std::vector<std::string>> summary;

  explicit TextFixture(const std::string& file) {
    const std::string path = std::string(LOWBIT_FIXTURE_DIR) + "/" + file;
    std::ifstream in(path);
    if (!in) detail::fail("fixture '", path, "' cannot be opened");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream ls(line);
      std::string key;
      ls >> key;
      std::vector<std::string> words;
      for (std::string w; ls >> w;) words.push_back(w);
      if (key == "case") {
        cases.push_back({words, {}});
      } else if (key == "ids") {
        if (cases.empty() || words.empty()) detail::fail("fixture '", path, "': ids without a case");
        const auto n = std::stoul(words[0]);
        if (words.size() != n + 1) detail::fail("fixture '", path, "': ids count mismatch");
        for (std::size_t i = 1; i < words.size(); ++i) cases.back().ids.push_back(std::stoi(words[i]));
      } else {
        summary[key] = words;
      }
    }
  }
};

inline std::string from_hex(const std::string& h) {
  if (h == "-") return "";
  std::string s;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) s += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return s;
}

}  // namespace lowbit::test
