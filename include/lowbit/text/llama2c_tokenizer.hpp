// llama2.c's tokenizer file (tokenizer.bin / tok512.bin) and run.c's encoder.
//
// File: int32 max_token_length, then per token: float32 score, int32 byte length,
// the bytes. Ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS); ids 3..258 are the byte
// fallback tokens <0x00>..<0xFF> (id = byte + 3).
//
// encode() follows run.c: optional BOS; a dummy-prefix " " token when the text is
// not empty; each UTF-8 code point (run.c's grouping: a lead byte plus up to three
// continuation bytes) looked up as a whole token, else its bytes as byte-fallback
// ids; then, repeatedly, the adjacent pair whose concatenation is a token with the
// highest score (the leftmost on ties) is merged, until no pair merges; optional EOS.
// As in run.c, a pair must score above -1e10 (its starting best) to merge at all, so
// tokens scored -1e10 or lower, or NaN, are never formed by merging.
// run.c stops at a NUL byte (C string); this encoder reads the whole string_view.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"

namespace lowbit::text {

class Llama2cTokenizer {
 public:
  static constexpr int bos_id = 1;
  static constexpr int eos_id = 2;
  /// run.c's starting best score: a merge must score above it to happen.
  static constexpr float merge_score_floor = -1e10f;

  /// Reads a tokenizer file; `vocab_size` is the model's (the file holds no count:
  /// 0 means "every entry in the file").
  static Llama2cTokenizer load(const std::filesystem::path& path, int vocab_size = 0) {
    return from_bytes(io::read_file(path), vocab_size, path.string());
  }

  /// Parses a tokenizer file held in memory (tests, fuzzing); `label` names it in
  /// messages, `vocab_size` as for load().
  static Llama2cTokenizer from_bytes(std::string_view b, int vocab_size, const std::string& label) {
    const auto where = [&] { return "llama2.c tokenizer '" + label + "'"; };
    detail::check(b.size() >= 4, where(), ": too short for the max token length");
    Llama2cTokenizer t;
    std::int32_t max_len = 0;
    std::memcpy(&max_len, b.data(), 4);
    detail::check(max_len > 0, where(), ": max token length ", max_len, " is not positive");
    t.max_token_length_ = max_len;
    std::size_t p = 4;
    while (p < b.size() && (vocab_size == 0 || static_cast<int>(t.pieces_.size()) < vocab_size)) {
      const auto id = t.pieces_.size();
      detail::check(b.size() - p >= 8, where(), ": entry ", id, " is truncated (score and length)");
      float score = 0;
      std::int32_t len = 0;
      std::memcpy(&score, b.data() + p, 4);
      std::memcpy(&len, b.data() + p + 4, 4);
      p += 8;
      detail::check(len >= 0 && static_cast<std::size_t>(len) <= b.size() - p, where(), ": entry ", id,
                    " has byte length ", len, " beyond the end of the file");
      detail::check(len <= max_len, where(), ": entry ", id, " is ", len, " bytes, longer than the max ", max_len);
      t.pieces_.emplace_back(b.data() + p, static_cast<std::size_t>(len));
      t.scores_.push_back(score);
      p += static_cast<std::size_t>(len);
    }
    detail::check(vocab_size == 0 || static_cast<int>(t.pieces_.size()) == vocab_size, where(), ": holds ",
                  t.pieces_.size(), " tokens, the model needs ", vocab_size);
    detail::check(t.pieces_.size() >= 259, where(), ": ", t.pieces_.size(),
                  " tokens cannot hold <unk>, <s>, </s> and the 256 byte tokens");
    // run.c looks strings up by binary search; with unique strings any lookup is
    // the same. On duplicates keep the lowest id (documented choice).
    for (std::size_t i = 0; i < t.pieces_.size(); ++i) t.lookup_.emplace(t.pieces_[i], static_cast<int>(i));
    const auto space = t.lookup_.find(" ");
    detail::check(space != t.lookup_.end(), where(), ": no \" \" token for the dummy prefix");
    t.space_id_ = space->second;
    t.build_merges();
    return t;
  }

  [[nodiscard]] int vocab_size() const { return static_cast<int>(pieces_.size()); }
  [[nodiscard]] int max_token_length() const { return max_token_length_; }
  [[nodiscard]] const std::string& piece(int id) const {
    detail::check(id >= 0 && id < vocab_size(), "llama2.c tokenizer: id ", id, " outside [0, ", vocab_size(), ")");
    return pieces_[static_cast<std::size_t>(id)];
  }
  [[nodiscard]] float score(int id) const { (void)piece(id); return scores_[static_cast<std::size_t>(id)]; }

  /// run.c's encode(). Same ids as encode_reference(), in O(n log n): the
  /// candidate pairs sit in a heap ordered by (score desc, position asc), which is
  /// run.c's choice (highest score, leftmost on ties), with stale entries skipped.
  [[nodiscard]] std::vector<int> encode(std::string_view text, bool bos, bool eos) const {
    std::vector<int> t = initial_tokens(text, bos);
    const auto n = static_cast<int>(t.size());
    std::vector<int> prev(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n));
    std::vector<char> alive(static_cast<std::size_t>(n), 1);
    for (int i = 0; i < n; ++i) {
      prev[static_cast<std::size_t>(i)] = i - 1;
      next[static_cast<std::size_t>(i)] = i + 1 < n ? i + 1 : -1;
    }
    struct Candidate {
      float score;
      int left, right, left_id, right_id, merged;
      bool operator<(const Candidate& o) const {  // max-heap: higher score, then smaller position
        return score != o.score ? score < o.score : left > o.left;
      }
    };
    std::priority_queue<Candidate> heap;
    const auto offer = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      const int m = merge_of(t[static_cast<std::size_t>(l)], t[static_cast<std::size_t>(r)]);
      // Only merges run.c's loop can pick: its best score starts at -1e10 and a pair
      // must beat it, so pairs scoring -1e10 or less (or NaN) never merge there.
      if (m >= 0 && scores_[static_cast<std::size_t>(m)] > merge_score_floor)
        heap.push({scores_[static_cast<std::size_t>(m)], l, r, t[static_cast<std::size_t>(l)],
                   t[static_cast<std::size_t>(r)], m});
    };
    for (int i = 0; i + 1 < n; ++i) offer(i, i + 1);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      const auto l = static_cast<std::size_t>(c.left), r = static_cast<std::size_t>(c.right);
      if (!alive[l] || !alive[r] || next[l] != c.right || t[l] != c.left_id || t[r] != c.right_id) continue;
      t[l] = c.merged;
      alive[r] = 0;
      next[l] = next[r];
      if (next[r] >= 0) prev[static_cast<std::size_t>(next[r])] = c.left;
      offer(prev[l], c.left);
      offer(c.left, next[l]);
    }
    std::vector<int> out;
    out.reserve(t.size() + 1);
    for (int i = 0; i < n; ++i)
      if (alive[static_cast<std::size_t>(i)]) out.push_back(t[static_cast<std::size_t>(i)]);
    if (eos) out.push_back(eos_id);
    return out;
  }

  /// run.c's encode() loop as written there (quadratic): the reference encode() is
  /// tested against.
  [[nodiscard]] std::vector<int> encode_reference(std::string_view text, bool bos, bool eos) const {
    std::vector<int> t = initial_tokens(text, bos);
    std::string merged;
    for (;;) {
      float best = merge_score_floor;
      int best_id = -1;
      std::size_t best_at = 0;
      for (std::size_t k = 0; k + 1 < t.size(); ++k) {
        merged = pieces_[static_cast<std::size_t>(t[k])];
        merged += pieces_[static_cast<std::size_t>(t[k + 1])];
        const auto it = lookup_.find(merged);
        if (it != lookup_.end() && scores_[static_cast<std::size_t>(it->second)] > best) {
          best = scores_[static_cast<std::size_t>(it->second)];
          best_id = it->second;
          best_at = k;
        }
      }
      if (best_id < 0) break;
      t[best_at] = best_id;
      t.erase(t.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
    }
    if (eos) t.push_back(eos_id);
    return t;
  }

  /// run.c's decode(prev, token): the piece, without its leading space right after
  /// BOS, and <0xHH> byte tokens as the raw byte.
  [[nodiscard]] std::string decode(int prev, int token) const {
    std::string_view p = piece(token);
    if (prev == bos_id && !p.empty() && p[0] == ' ') p.remove_prefix(1);
    if (p.size() == 6 && p.substr(0, 3) == "<0x" && p[5] == '>') {
      const auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        return -1;
      };
      const int hi = hex(p[3]), lo = hex(p[4]);
      if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
    }
    return std::string(p);
  }

  /// Text of a sequence as run.c prints it token by token (BOS/EOS print nothing).
  [[nodiscard]] std::string decode(std::span<const int> ids) const {
    std::string s;
    int prev = -1;
    for (const int id : ids) {
      if (id != bos_id && id != eos_id) s += decode(prev, id);
      prev = id;
    }
    return s;
  }

 private:
  // BOS, the dummy prefix, then code points or their byte-fallback ids (run.c).
  [[nodiscard]] std::vector<int> initial_tokens(std::string_view text, bool bos) const {
    std::vector<int> t;
    t.reserve(text.size() + 3);
    if (bos) t.push_back(bos_id);
    if (!text.empty()) t.push_back(space_id_);
    std::string buf;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if ((c & 0xC0) != 0x80) buf.clear();
      buf += static_cast<char>(c);
      const bool next_cont = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
      if (next_cont && buf.size() < 4) continue;
      if (const auto it = lookup_.find(buf); it != lookup_.end()) {
        t.push_back(it->second);
      } else {
        for (const char b : buf) t.push_back(static_cast<unsigned char>(b) + 3);
      }
      buf.clear();
    }
    return t;
  }

  static std::uint64_t pair_key(int a, int b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  /// Id of piece(a) + piece(b), or -1: the same answer as looking up the
  /// concatenated string, precomputed from every token's split points.
  [[nodiscard]] int merge_of(int a, int b) const {
    const auto it = merges_.find(pair_key(canonical_[static_cast<std::size_t>(a)], canonical_[static_cast<std::size_t>(b)]));
    return it == merges_.end() ? -1 : it->second;
  }
  void build_merges() {
    canonical_.resize(pieces_.size());
    for (std::size_t i = 0; i < pieces_.size(); ++i) canonical_[i] = lookup_.at(pieces_[i]);
    for (const auto& [str, id] : lookup_)
      for (std::size_t s = 0; s <= str.size(); ++s) {  // empty halves too, should a token be ""
        const auto a = lookup_.find(str.substr(0, s)), b = lookup_.find(str.substr(s));
        if (a != lookup_.end() && b != lookup_.end()) merges_.emplace(pair_key(a->second, b->second), id);
      }
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> lookup_;
  std::vector<int> canonical_;                     // id → the id lookups return for its string
  std::unordered_map<std::uint64_t, int> merges_;  // (canonical a, canonical b) → id of a + b
  int max_token_length_ = 0;
  int space_id_ = -1;
};

}  // namespace lowbit::text
