// GPT-2's byte-level BPE tokenizer (OpenAI encoder.py semantics), from
// encoder.json + vocab.bpe or Hugging Face's vocab.json + merges.txt.
//
// encode(text): the pre-tokenizer pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// hand-implemented over UTF-8 code points (pretokenize()), then BPE on each piece's
// bytes: repeatedly merge every occurrence of the adjacent pair with the lowest
// merge rank, left to right, until no pair has a rank. Working on token ids instead
// of byte-mapped strings is equivalent because every merge result is a vocabulary
// entry (checked on load). Special tokens such as <|endoftext|> are not recognised
// inside text (like tiktoken's encode_ordinary and the reference JS encoder); add
// eos_id() yourself. \p{L} / \p{N} follow the Unicode tables in unicode_tables.hpp,
// \s follows JavaScript's definition (the reference encoder's).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/text/merge_table.hpp"
#include "lowbit/text/piece_cache.hpp"
#include "lowbit/text/utf8.hpp"

namespace lowbit::text {

/// GPT-2's byte → code point map, in which byte-level vocabularies (GPT-2's, and
/// tokenizer.json's ByteLevel ones) are written so that they are text: printable
/// Latin-1 bytes map to themselves, the other 68 bytes to 256+k.
inline std::array<char32_t, 256> byte_level_alphabet() {
  std::array<char32_t, 256> m{};
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    m[static_cast<std::size_t>(b)] = keep ? char32_t(b) : char32_t(256 + extra++);
  }
  return m;
}

/// Splits text into GPT-2 pre-tokens, calling f(std::string_view piece) for each.
template <class F>
void pretokenize(std::string_view s, F&& f) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  std::size_t len = 0;
  const auto class_at = [&](std::size_t p, std::size_t& l) { return text::class_at(s, p, l); };
  // End of the run of code points of class c starting at p.
  const auto run_end = [&](std::size_t p, CharClass c) {
    std::size_t l = 0;
    while (p < n && class_at(p, l) == c) p += l;
    return p;
  };
  while (i < n) {
    // 's 't 're 've 'm 'll 'd
    if (s[i] == '\'' && i + 1 < n) {
      const char a = s[i + 1];
      std::size_t m = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') m = 2;
      else if (i + 2 < n && ((a == 'r' && s[i + 2] == 'e') || (a == 'v' && s[i + 2] == 'e') ||
                             (a == 'l' && s[i + 2] == 'l')))
        m = 3;
      if (m) {
        f(s.substr(i, m));
        i += m;
        continue;
      }
    }
    const CharClass c = class_at(i, len);
    if (c != CharClass::space) {
      // \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+
      const std::size_t e = run_end(i, c);
      f(s.substr(i, e - i));
      i = e;
      continue;
    }
    if (s[i] == ' ' && i + 1 < n) {
      std::size_t l2 = 0;
      const CharClass next = class_at(i + 1, l2);
      if (next != CharClass::space) {  // " ?" joined to the following run
        const std::size_t e = run_end(i + 1, next);
        f(s.substr(i, e - i));
        i = e;
        continue;
      }
    }
    // Whitespace run: \s+(?!\S) leaves the last space for the next word when a
    // non-space follows and the run has at least two code points; else \s+.
    std::size_t p = i, last = i, count = 0;
    while (p < n) {
      std::size_t l = 0;
      if (class_at(p, l) != CharClass::space) break;
      last = p;
      p += l;
      ++count;
    }
    const std::size_t e = (p < n && count >= 2) ? last : p;
    f(s.substr(i, e - i));
    i = e;
  }
}

class Gpt2Tokenizer {
 public:
  /// Loads encoder.json / vocab.json (token → id) and vocab.bpe / merges.txt.
  static Gpt2Tokenizer from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges) {
    return from_strings(io::read_file(vocab_json), io::read_file(merges), vocab_json.string(), merges.string());
  }
  /// The same from the two files' contents held in memory (tests, fuzzing); the
  /// labels name them in messages.
  static Gpt2Tokenizer from_strings(std::string_view vocab_json, std::string_view merges,
                                    const std::string& vocab_label = "vocab.json",
                                    const std::string& merges_label = "merges.txt") {
    Gpt2Tokenizer t;
    t.load_vocab(vocab_json, vocab_label);
    t.load_merges(merges, merges_label);
    return t;
  }
  /// A directory holding encoder.json + vocab.bpe, or vocab.json + merges.txt.
  static Gpt2Tokenizer from_dir(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    if (fs::exists(dir / "encoder.json") && fs::exists(dir / "vocab.bpe"))
      return from_files(dir / "encoder.json", dir / "vocab.bpe");
    if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"))
      return from_files(dir / "vocab.json", dir / "merges.txt");
    detail::fail("GPT-2 tokenizer: '", dir.string(),
                 "' holds neither encoder.json + vocab.bpe nor vocab.json + merges.txt");
  }

  [[nodiscard]] int vocab_size() const { return static_cast<int>(vocab_.size()); }
  /// Id of <|endoftext|> (50256 for GPT-2), or -1 if the vocabulary lacks it.
  [[nodiscard]] int eos_id() const {
    const auto it = ids_.find("<|endoftext|>");
    return it == ids_.end() ? -1 : it->second;
  }
  /// Raw bytes of a token.
  [[nodiscard]] const std::string& token_bytes(int id) const {
    detail::check(id >= 0 && id < vocab_size(), "GPT-2 tokenizer: token id ", id, " outside [0, ", vocab_size(), ")");
    return vocab_[static_cast<std::size_t>(id)];
  }

  /// Token ids of text. Thread-safe (the word cache is local to the call, so encode
  /// a whole document in one call to benefit from it).
  [[nodiscard]] std::vector<int> encode(std::string_view text) const {
    std::vector<int> out;
    out.reserve(text.size() / 4 + 16);
    PieceCache cache;
    std::vector<int> word;
    pretokenize(text, [&](std::string_view piece) {
      std::span<const int> hit;
      if (cache.find(piece, hit)) {
        out.insert(out.end(), hit.begin(), hit.end());
        return;
      }
      bpe(piece, word);
      cache.insert(piece, word);
      out.insert(out.end(), word.begin(), word.end());
    });
    return out;
  }

  /// Bytes of the ids, concatenated (may be invalid UTF-8 if ids cut a character).
  [[nodiscard]] std::string decode(std::span<const int> ids) const {
    std::string s;
    for (const int id : ids) s += token_bytes(id);
    return s;
  }

  /// BPE of one pre-token's bytes into ids (no pre-tokenization).
  void bpe(std::string_view piece, std::vector<int>& word) const {
    word.clear();
    for (const char ch : piece) word.push_back(byte_id_[static_cast<unsigned char>(ch)]);
    while (word.size() > 1) {
      std::uint32_t best_rank = UINT32_MAX;
      int best_a = -1, best_b = -1, merged = -1;
      for (std::size_t k = 0; k + 1 < word.size(); ++k) {
        const MergeTable::Merge* m = merges_.find(word[k], word[k + 1]);
        if (m != nullptr && m->rank < best_rank) {
          best_rank = m->rank;
          best_a = word[k];
          best_b = word[k + 1];
          merged = m->id;
        }
      }
      if (merged < 0) break;
      std::size_t w = 0;
      for (std::size_t k = 0; k < word.size();) {
        if (k + 1 < word.size() && word[k] == best_a && word[k + 1] == best_b) {
          word[w++] = merged;
          k += 2;
        } else {
          word[w++] = word[k++];
        }
      }
      word.resize(w);
    }
  }

 private:


  // Byte-mapped token text → raw bytes.
  std::string unmap(std::string_view token, const std::string& file) const {
    std::string bytes;
    for (std::size_t i = 0; i < token.size();) {
      std::size_t len = 0;
      const char32_t cp = decode_utf8(token, i, len);
      const auto it = char_byte_.find(cp);
      if (it == char_byte_.end())
        detail::fail("GPT-2 tokenizer '", file, "': token \"", token,
                     "\" holds a character outside GPT-2's byte alphabet");
      bytes += static_cast<char>(it->second);
      i += len;
    }
    return bytes;
  }

  void load_vocab(std::string_view text, const std::string& file) {
    const auto m = byte_level_alphabet();
    for (int b = 0; b < 256; ++b) char_byte_[m[static_cast<std::size_t>(b)]] = static_cast<std::uint8_t>(b);
    const io::Json j = io::Json::parse(text, file);
    detail::check(j.is_object(), "GPT-2 tokenizer '", file, "': expected a JSON object of token → id");
    vocab_.assign(j.size(), std::string());
    std::vector<bool> seen(j.size(), false);
    for (std::size_t i = 0; i < j.size(); ++i) {
      const std::string& tok = j.keys()[i];
      const io::Json& v = j.value_at(i);
      detail::check(v.is_number(), "GPT-2 tokenizer '", file, "': id of \"", tok, "\" is not a number");
      const std::int64_t id = v.as_int64();
      detail::check(id >= 0 && id < static_cast<std::int64_t>(j.size()) && !seen[static_cast<std::size_t>(id)],
                    "GPT-2 tokenizer '", file, "': id ", id, " of \"", tok,
                    "\" is repeated or outside [0, ", j.size(), ")");
      seen[static_cast<std::size_t>(id)] = true;
      // Special tokens like <|endoftext|> are stored as written.
      const bool special = tok.size() > 4 && tok.starts_with("<|") && tok.ends_with("|>");
      std::string bytes = special ? tok : unmap(tok, file);
      detail::check(ids_.emplace(bytes, static_cast<int>(id)).second, "GPT-2 tokenizer '", file,
                    "': two tokens have the same bytes (\"", tok, "\")");
      vocab_[static_cast<std::size_t>(id)] = std::move(bytes);
    }
    for (int b = 0; b < 256; ++b) {
      const auto it = ids_.find(std::string(1, static_cast<char>(b)));
      detail::check(it != ids_.end(), "GPT-2 tokenizer '", file, "': no token for byte ", b);
      byte_id_[static_cast<std::size_t>(b)] = it->second;
    }
  }

  void load_merges(std::string_view text, const std::string& file) {
    std::uint32_t rank = 0;
    std::size_t line_no = 0;
    for (std::size_t p = 0; p < text.size();) {
      std::size_t e = text.find('\n', p);
      if (e == std::string_view::npos) e = text.size();
      std::string_view line(text.data() + p, e - p);
      p = e + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
      const std::size_t sp = line.find(' ');
      detail::check(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                        line.find(' ', sp + 1) == std::string_view::npos,
                    "GPT-2 tokenizer '", file, "' line ", line_no, ": expected two tokens separated by one space");
      const std::string a = unmap(line.substr(0, sp), file), b = unmap(line.substr(sp + 1), file);
      const auto ia = ids_.find(a), ib = ids_.find(b), im = ids_.find(a + b);
      detail::check(ia != ids_.end() && ib != ids_.end() && im != ids_.end(), "GPT-2 tokenizer '", file,
                    "' line ", line_no, ": merge \"", line, "\" uses or makes a token missing from the vocabulary");
      detail::check(merges_.insert(ia->second, ib->second, {rank, im->second}),
                    "GPT-2 tokenizer '", file, "' line ", line_no, ": merge \"", line, "\" is repeated");
      ++rank;
    }
    detail::check(rank > 0, "GPT-2 tokenizer '", file, "': no merges");
  }

  std::vector<std::string> vocab_;                 // id → bytes
  std::unordered_map<std::string, int> ids_;       // bytes → id
  std::unordered_map<char32_t, std::uint8_t> char_byte_;
  std::array<int, 256> byte_id_{};
  MergeTable merges_;
};

}  // namespace lowbit::text
