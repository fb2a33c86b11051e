// A reader for Hugging Face `tokenizer.json` files (the `tokenizers` format), for the
// BPE models of Llama 3, Qwen2/3 (byte-level) and Llama 2 / Mistral (SentencePiece
// style with byte fallback). The reference for every choice below is the JavaScript
// port @lenml/tokenizers 3.7.2 (transformers.js), whose ids the fixtures record
// (tests/fixtures/tokenizer_json/README.md):
//
//   encode(text): the text is made valid UTF-8 (one U+FFFD per maximal invalid
//   subpart, as a JS string would hold it); split on the contents of *all* added
//   tokens (leftmost, longest match; special or not); each other section is
//   normalized on its own, pre-tokenized, and each pre-token goes through BPE.
//   No special tokens are added (the post-processor is not applied).
//
// What a file may hold is deliberately narrow: anything else (another model type, a
// pre-tokenizer regex other than the two recognised ones, dropout, a code point that
// NFC must normalize but Unicode 14 does not assign, ...) is refused with a lowbit::Error naming the
// file and the JSON field, so that no input silently gets other ids than the
// reference's. \p{L} / \p{N} come from unicode_tables.hpp (Unicode 14; the fixtures'
// Node has Unicode 17), \s is JavaScript's (utf8.hpp's classify()).
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <cctype>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/text/piece_cache.hpp"
#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/merge_table.hpp"
#include "lowbit/text/nfc.hpp"
#include "lowbit/text/token_index.hpp"
#include "lowbit/text/utf8.hpp"

namespace lowbit::text {

namespace tokenizer_json_detail {

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline bool is_valid_utf8(std::string_view s) {
  constexpr std::uint64_t high_bits = 0x8080808080808080ull;
  for (std::size_t i = 0, len = 0; i < s.size(); i += len) {
    // Text is mostly ASCII: eight bytes without a high bit are eight code points.
    std::uint64_t word = 0;
    if (i + 8 <= s.size() && (std::memcpy(&word, s.data() + i, 8), (word & high_bits) == 0)) {
      len = 8;
      continue;
    }
    if (decode_utf8(s, i, len) == invalid_code_point) return false;
  }
  return true;
}

/// s with each maximal invalid subpart replaced by one U+FFFD: what JavaScript's
/// TextDecoder (WHATWG "utf-8", fatal false) gives, which is the string the
/// reference tokenizer sees for such bytes. decode_utf8 cannot be used for this: it
/// reports one invalid code point per byte, while e.g. E2 82 41 is one subpart + 'A'.
inline std::string replace_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned b = byte(i);
    int need = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (b < 0x80) need = 0;
    else if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) { need = 2; lo = b == 0xE0 ? 0xA0 : 0x80; hi = b == 0xED ? 0x9F : 0xBF; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 3; lo = b == 0xF0 ? 0x90 : 0x80; hi = b == 0xF4 ? 0x8F : 0xBF; }
    else need = -1;
    std::size_t j = i + 1;
    bool ok = need >= 0;
    for (int k = 0; ok && k < need; ++k) {
      ok = j < s.size() && byte(j) >= lo && byte(j) <= hi;
      if (ok) ++j, lo = 0x80, hi = 0xBF;
    }
    if (ok) out.append(s.substr(i, j - i));
    else out += "\xEF\xBF\xBD";
    i = j;  // after a failure, j is the offending byte, which starts afresh
  }
  return out;
}

/// Which Split regex a file names; only these two are hand-implemented.
enum class SplitRegex { none, llama3, qwen };

inline constexpr std::string_view llama3_regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view qwen_regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

/// Length of a contraction 's 't 're 've 'm 'll 'd at s[i] (ASCII case-insensitive,
/// as the JS port rewrites (?i:...)), or 0.
inline std::size_t contraction_length(std::string_view s, std::size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const auto lower = [&](std::size_t k) { return k < s.size() ? static_cast<char>(s[k] | 0x20) : '\0'; };
  const char a = lower(i + 1), b = lower(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

/// The end of the Llama 3 / Qwen piece that starts with white space at s[i]:
/// \s*[\r\n]+ ends after the run's last CR/LF, if it has one; else \s+(?!\S) leaves
/// the run's last white space to the next piece (when one follows and the run has two
/// or more); else \s+.
inline std::size_t whitespace_piece_end(std::string_view s, std::size_t i) {
  const std::size_t n = s.size();
  std::size_t e = i, last = i, last_crlf = n, count = 0, l = 0;
  while (e < n && class_at(s, e, l) == CharClass::space) {
    if (s[e] == '\r' || s[e] == '\n') last_crlf = e;
    last = e;
    e += l;
    ++count;
  }
  if (last_crlf != n) return last_crlf + 1;
  return (e < n && count >= 2) ? last : e;
}

/// The Llama 3 Split pattern (max_digits 3) or Qwen's (max_digits 1), over code
/// points of valid UTF-8, calling f(piece) for each match. Every code point is
/// matched by some alternative, so Isolated splitting leaves no gaps.
template <class F>
void split_llama3_style(std::string_view s, std::size_t max_digits, F&& f) {
  const std::size_t n = s.size();
  const auto is_crlf = [&](std::size_t p) { return p < n && (s[p] == '\r' || s[p] == '\n'); };
  std::size_t i = 0;
  while (i < n) {
    std::size_t len = 0, e = 0;
    const CharClass c = class_at(s, i, len);
    if (c == CharClass::letter) {  // \p{L}+ (most pieces: words)
      e = class_run_end(s, i + len, c);
    } else if (const std::size_t m = contraction_length(s, i)) {  // the first alternative wins
      e = i + m;
    } else if (c == CharClass::number) {  // \p{N}{1,max_digits}
      e = i + len;
      for (std::size_t k = 1, l = 0; k < max_digits && e < n && class_at(s, e, l) == CharClass::number; ++k) e += l;
    } else {
      std::size_t next_len = 0;
      const CharClass next = i + len < n ? class_at(s, i + len, next_len) : CharClass::space;
      if (next == CharClass::letter && !is_crlf(i)) {  // [^\r\n\p{L}\p{N}]?\p{L}+
        e = class_run_end(s, i + len + next_len, CharClass::letter);
      } else if (c == CharClass::other || (s[i] == ' ' && next == CharClass::other)) {  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
        e = class_run_end(s, i + len, CharClass::other);
        while (is_crlf(e)) ++e;
      } else {
        e = whitespace_piece_end(s, i);
      }
    }
    f(s.substr(i, e - i));
    i = e;
  }
}

/// Transparent hash so that maps keyed by std::string take std::string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using IdMap = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

}  // namespace tokenizer_json_detail

class TokenizerJson {
 public:
  /// Reads and checks a tokenizer.json; Error naming the file and field otherwise.
  static TokenizerJson load(const std::filesystem::path& tokenizer_json) {
    return from_string(io::read_file(tokenizer_json), tokenizer_json.string());
  }
  /// The same from the file's contents; `label` names it in messages.
  static TokenizerJson from_string(std::string_view json, const std::string& label = "tokenizer.json") {
    TokenizerJson t;
    t.file_ = label;
    const io::Json root = io::Json::parse(json, label);
    t.check(root.is_object(), "(top level)", "is not a JSON object");
    t.load_all(root);
    return t;
  }

  /// Number of ids (model vocabulary and added tokens): the largest id + 1.
  [[nodiscard]] int vocab_size() const { return static_cast<int>(tokens_.size()); }
  /// Id of an added token's content, or of a vocabulary entry as the file writes it.
  [[nodiscard]] std::optional<int> token_id(std::string_view token) const {
    if (const auto it = added_ids_.find(token); it != added_ids_.end()) return it->second;
    std::string bytes(token);
    if (byte_level_ && !unmap(token, bytes)) return std::nullopt;
    if (const int id = ids_.find(bytes); id >= 0) return id;
    return std::nullopt;
  }
  /// Whether the id is one of the file's added_tokens (special or not).
  [[nodiscard]] bool is_added(int id) const { return id >= 0 && id < vocab_size() && added_[static_cast<std::size_t>(id)]; }

  /// Token ids of text, without special tokens. Thread-safe.
  [[nodiscard]] std::vector<int> encode(std::string_view text) const {
    namespace d = tokenizer_json_detail;
    std::string fixed;
    if (!d::is_valid_utf8(text)) {
      fixed = d::replace_invalid_utf8(text);
      text = fixed;
    }
    Workspace w;
    w.out.reserve(text.size() / 3 + 16);
    split_added(text, [&](std::string_view section, int added_id) {
      if (added_id >= 0) w.out.push_back(added_id);
      else encode_section(section, w);
    });
    return std::move(w.out);
  }

  /// Text of ids, as the reference's decode(ids, {skip_special_tokens: false,
  /// clean_up_tokenization_spaces: false}).
  [[nodiscard]] std::string decode(std::span<const int> ids) const {
    std::vector<std::string> toks;
    toks.reserve(ids.size());
    for (const int id : ids) {
      detail::check(id >= 0 && id < vocab_size() && has_id_[static_cast<std::size_t>(id)], "tokenizer.json '", file_,
                    "': decode: token id ", id, " is not in the vocabulary");
      toks.push_back(tokens_[static_cast<std::size_t>(id)]);
    }
    return run_decoder(std::move(toks), ids);
  }

  // ---- what a converter (GGUF's tokenizer.ggml.*) needs ------------------------
  /// Whether tokens are byte-level (GPT-2's byte-to-character alphabet).
  [[nodiscard]] bool byte_level() const { return byte_level_; }
  /// The Split pre-tokenizer's pattern (none for SentencePiece-style vocabularies).
  [[nodiscard]] tokenizer_json_detail::SplitRegex split() const { return split_; }
  /// Whether an id has a token (a file may leave gaps).
  [[nodiscard]] bool has_token(int id) const {
    return id >= 0 && id < vocab_size() && has_id_[static_cast<std::size_t>(id)];
  }
  /// An id's text as the file writes it: an added token's content, else the
  /// model.vocab key (byte-level characters for a byte-level vocabulary).
  [[nodiscard]] std::string written_token(int id) const {
    detail::check(has_token(id), "tokenizer.json '", file_, "': no token has id ", id);
    const std::string& t = tokens_[static_cast<std::size_t>(id)];
    if (!byte_level_ || !in_model_[static_cast<std::size_t>(id)]) return t;
    static const auto alphabet = text::byte_level_alphabet();  // per call: once per merge when converting
    std::string out;
    for (const char c : t) tokenizer_json_detail::append_utf8(out, alphabet[static_cast<unsigned char>(c)]);
    return out;
  }
  /// Whether an added token is marked "special" (control tokens, which a model's
  /// text never spells); false for other ids.
  [[nodiscard]] bool is_special(int id) const { return is_added(id) && special_[static_cast<std::size_t>(id)]; }
  /// The merge rules as (left id, right id), lowest rank first.
  [[nodiscard]] std::vector<std::pair<int, int>> merge_pairs() const {
    std::vector<std::pair<std::uint32_t, std::pair<int, int>>> ranked;
    ranked.reserve(merges_.size());
    merges_.for_each([&](int a, int b, const Merge& m) { ranked.push_back({m.rank, {a, b}}); });
    std::sort(ranked.begin(), ranked.end());
    std::vector<std::pair<int, int>> out;
    out.reserve(ranked.size());
    for (const auto& r : ranked) out.push_back(r.second);
    return out;
  }
  /// The token the merge rule (a, b) makes; -1 if there is no such rule.
  [[nodiscard]] int merge_result(int a, int b) const {
    const Merge* m = merges_.find(a, b);
    return m ? m->id : -1;
  }
  /// Whether the id is a byte-fallback token <0xNN> of a SentencePiece-style vocabulary.
  [[nodiscard]] bool is_byte_token(int id) const {
    return !byte_level_ && id >= 0 && std::find(byte_id_.begin(), byte_id_.end(), id) != byte_id_.end();
  }
  /// model.ignore_merges: a pre-token that is a whole vocabulary entry is that token.
  [[nodiscard]] bool ignore_merges() const { return ignore_merges_; }
  /// A ByteLevel pre-tokenizer with its own GPT-2 regex (use_regex).
  [[nodiscard]] bool byte_level_regex() const { return byte_level_regex_; }
  /// Whether the normalizer is SentencePiece's as Hugging Face writes it: Prepend "▁",
  /// then Replace " " → "▁", nothing else.
  [[nodiscard]] bool spm_normalizer() const {
    return norm_.size() == 2 && norm_[0].kind == Norm::prepend && norm_[0].a == word_mark &&
           norm_[1].kind == Norm::replace && norm_[1].a == " " && norm_[1].b == word_mark;
  }
  /// Whether the normalizer is NFC alone (Qwen): llama.cpp leaves it to its caller.
  [[nodiscard]] bool nfc_normalizer() const { return norm_.size() == 1 && norm_[0].kind == Norm::nfc; }
  /// model.unk_token's id, if it has one.
  [[nodiscard]] std::optional<int> unk_id() const { return unk_ >= 0 ? std::optional<int>(unk_) : std::nullopt; }
  /// The special token the post-processor puts before / after a single sequence
  /// (a TemplateProcessing, possibly inside a Sequence), if it does: what the
  /// tokenizer adds as BOS / EOS unless tokenizer_config.json says otherwise.
  [[nodiscard]] std::optional<int> template_bos() const { return template_bos_; }
  [[nodiscard]] std::optional<int> template_eos() const { return template_eos_; }

 private:
  using Merge = MergeTable::Merge;
  enum class Norm { prepend, replace, nfc };
  struct NormStep {
    Norm kind;
    std::string a, b;  // prepend: a; replace: a → b
  };
  enum class Dec { byte_level, replace, byte_fallback, fuse, strip };
  struct DecStep {
    Dec kind;
    std::string a, b;
    int start = 0, stop = 0;
  };
  struct Workspace {
    std::vector<int> out;
    PieceCache cache;
    std::vector<int> ids;
    std::vector<std::uint32_t> pos;
  };

  // ---- errors -------------------------------------------------------------------
  template <class... Parts>
  void check(bool ok, std::string_view field, const Parts&... parts) const {
    if (!ok) detail::fail("tokenizer.json '", file_, "': ", field, ": ", parts...);
  }
  const io::Json& need(const io::Json& obj, std::string_view key, std::string_view field) const {
    const io::Json* v = obj.find(key);
    check(v != nullptr, field, "missing key \"", key, "\"");
    return *v;
  }
  bool flag(const io::Json& obj, std::string_view key, std::string_view field, bool dflt) const {
    const io::Json* v = obj.find(key);
    if (!v || v->is_null()) return dflt;
    check(v->is_bool(), field, "\"", key, "\" is not true/false");
    return v->as_bool();
  }
  std::int64_t id_of(const io::Json& v, std::string_view field) const {
    check(v.is_number(), field, "an id is not a number");
    const std::string& t = v.number_text();
    check(t.find_first_not_of("0123456789") == std::string::npos && t.size() <= 9, field, "id ", t,
          " is not an integer in [0, 10^9)");
    return v.as_int64();
  }
  std::string str(const io::Json& v, std::string_view field) const {
    check(v.is_string(), field, "expected a string, got ", io::Json::type_name(v.type()));
    return v.as_string();
  }

  // ---- loading ------------------------------------------------------------------
  void load_all(const io::Json& root) {
    for (const char* key : {"truncation", "padding"}) {
      const io::Json* v = root.find(key);
      check(!v || v->is_null(), key, "must be null: lowbit's encode() neither truncates nor pads");
    }
    // Ids must be below the number of tokens the file lists (true of dense vocabularies),
    // which bounds the tables a hostile file can make us allocate by its own size.
    const io::Json* added = root.find("added_tokens");
    const io::Json* vocab = root.find("model") && root.find("model")->is_object() ? root.find("model")->find("vocab") : nullptr;
    max_id_ = static_cast<std::int64_t>((added && added->is_array() ? added->size() : 0) +
                                        (vocab && vocab->is_object() ? vocab->size() : 0));
    load_pre_tokenizer(root.find("pre_tokenizer"));
    load_model(need(root, "model", "model"));
    words_independent_ = !byte_level_ && words_are_independent();
    if (const io::Json* a = root.find("added_tokens"); a && !a->is_null()) load_added(*a);
    load_normalizer(root.find("normalizer"), "normalizer");
    load_decoder(root.find("decoder"), "decoder");
    load_post_processor(root.find("post_processor"), "post_processor");
    load_symbol_ids();
    spaces_as_marks_ = spm_normalizer() && words_independent_ && !ignore_merges_ && word_mark_id_ >= 0 &&
                       split_ == tokenizer_json_detail::SplitRegex::none && !byte_level_regex_;
  }

  // A SentencePiece-style piece starts as one symbol per code point, each looked up
  // by its bytes in the model vocabulary; most are ASCII or the word mark, whose ids
  // are kept here once it is loaded.
  void load_symbol_ids() {
    for (std::size_t c = 0; c < ascii_id_.size(); ++c) ascii_id_[c] = ids_.find(std::string(1, static_cast<char>(c)));
    word_mark_id_ = ids_.find(word_mark);
  }

  // Only what BOS / EOS need: the special tokens a TemplateProcessing puts around a
  // single sequence. encode() never applies the post-processor, so other kinds are
  // no concern of its ids.
  void load_post_processor(const io::Json* p, const std::string& field) {
    if (!p || !p->is_object()) return;
    const io::Json* type = p->find("type");
    if (!type || !type->is_string()) return;
    if (type->as_string() == "Sequence") {
      const io::Json* list = p->find("processors");
      if (list && list->is_array())
        for (std::size_t i = 0; i < list->size(); ++i)
          load_post_processor(&(*list)[i], field + ".processors[" + std::to_string(i) + "]");
      return;
    }
    if (type->as_string() != "TemplateProcessing") return;
    const io::Json& single = need(*p, "single", field);
    check(single.is_array() && single.size() > 0, field + ".single", "is not a non-empty array");
    const auto special_at = [&](std::size_t k) -> std::optional<int> {
      const io::Json* st = single[k].is_object() ? single[k].find("SpecialToken") : nullptr;
      if (!st) return std::nullopt;
      const std::string name = str(need(*st, "id", field + ".single"), field + ".single[].SpecialToken.id");
      const io::Json* specials = p->find("special_tokens");
      const io::Json* entry = specials && specials->is_object() ? specials->find(name) : nullptr;
      const io::Json* ids = entry && entry->is_object() ? entry->find("ids") : nullptr;
      check(ids && ids->is_array() && ids->size() == 1, field + ".special_tokens", "\"", name,
            "\" has no entry with exactly one id");
      const std::int64_t id = id_of((*ids)[0], field + ".special_tokens");
      check(has_token(static_cast<int>(id)), field + ".special_tokens", "\"", name, "\" has id ", id,
            ", which no token has");
      return static_cast<int>(id);
    };
    template_bos_ = special_at(0);
    if (single.size() > 1) template_eos_ = special_at(single.size() - 1);
  }

  void load_pre_tokenizer(const io::Json* p) {
    if (!p || p->is_null()) return;
    check(p->is_object(), "pre_tokenizer", "is not an object");
    const std::string type = str(need(*p, "type", "pre_tokenizer"), "pre_tokenizer.type");
    if (type != "Sequence") return load_pre_step(*p, "pre_tokenizer", true);
    const io::Json& list = need(*p, "pretokenizers", "pre_tokenizer");
    check(list.is_array(), "pre_tokenizer.pretokenizers", "is not an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      load_pre_step(list[i], "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]", i + 1 == list.size());
  }

  // Split must come before ByteLevel (it splits the text, ByteLevel maps bytes).
  void load_pre_step(const io::Json& p, const std::string& field, bool last) {
    namespace d = tokenizer_json_detail;
    check(p.is_object(), field, "is not an object");
    const std::string type = str(need(p, "type", field), field + ".type");
    if (type == "Split") {
      check(split_ == d::SplitRegex::none && !byte_level_, field, "only one Split, before ByteLevel, is supported");
      const io::Json& pat = need(p, "pattern", field);
      const io::Json* re = pat.is_object() ? pat.find("Regex") : nullptr;
      check(re && re->is_string(), field + ".pattern", "only a {\"Regex\": ...} pattern is supported");
      const std::string& r = re->as_string();
      if (r == d::llama3_regex) split_ = d::SplitRegex::llama3;
      else if (r == d::qwen_regex) split_ = d::SplitRegex::qwen;
      else check(false, field + ".pattern.Regex", "unsupported regex \"", r,
                 "\" (lowbit hand-implements only the Llama 3 and Qwen2 patterns)");
      const io::Json* beh = p.find("behavior");
      check(beh && beh->is_string() && beh->as_string() == "Isolated", field + ".behavior",
            "only \"Isolated\" is supported");
      check(!flag(p, "invert", field, false), field + ".invert", "only false is supported");
      return;
    }
    if (type == "ByteLevel") {
      check(last && !byte_level_, field, "ByteLevel must be the last pre-tokenizer");
      byte_level_ = true;
      check(!flag(p, "add_prefix_space", field, false), field + ".add_prefix_space", "only false is supported");
      byte_level_regex_ = flag(p, "use_regex", field, true);
      return;
    }
    check(false, field + ".type", "unsupported pre-tokenizer \"", type, "\"");
  }

  void load_model(const io::Json& m) {
    check(m.is_object(), "model", "is not an object");
    const io::Json* type = m.find("type");
    check(type && type->is_string(), "model.type", "missing or not a string");
    check(type->as_string() == "BPE", "model.type", "unsupported model \"", type->as_string(), "\" (only BPE)");
    const io::Json* dropout = m.find("dropout");
    check(!dropout || dropout->is_null(), "model.dropout", "must be null (dropout makes encoding random)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const io::Json* v = m.find(key);
      check(!v || v->is_null() || (v->is_string() && v->as_string().empty()), std::string("model.") + key,
            "only null or \"\" is supported");
    }
    byte_fallback_ = flag(m, "byte_fallback", "model", false);
    fuse_unk_ = flag(m, "fuse_unk", "model", false);
    ignore_merges_ = flag(m, "ignore_merges", "model", false);
    tokenizer_json_detail::IdMap written;  // vocabulary as the file writes it
    load_vocab(need(m, "vocab", "model"), written);
    load_merges(need(m, "merges", "model"), written);
    const io::Json* unk = m.find("unk_token");
    if (unk && !unk->is_null()) {
      const auto it = written.find(str(*unk, "model.unk_token"));
      check(it != written.end(), "model.unk_token", "\"", unk->as_string(), "\" is not in model.vocab");
      unk_ = it->second;
    }
    load_byte_ids();
  }


  void load_vocab(const io::Json& v, tokenizer_json_detail::IdMap& written) {
    check(v.is_object(), "model.vocab", "is not an object of token → id");
    written.reserve(v.size());
    ids_.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::string& tok = v.keys()[i];
      const io::Json& idv = v.value_at(i);
      const std::int64_t id = id_of(idv, "model.vocab");
      check(id < max_id_, "model.vocab", "id ", id, " of \"", tok, "\" is not below the ", max_id_, " tokens listed");
      check(!tok.empty() && tokenizer_json_detail::is_valid_utf8(tok), "model.vocab", "token ", i,
            " is empty or not UTF-8");
      std::string bytes = tok;
      if (byte_level_)
        check(unmap(tok, bytes), "model.vocab", "token \"", tok, "\" holds a character outside the byte-level alphabet");
      check(written.emplace(tok, static_cast<int>(id)).second, "model.vocab", "token \"", tok, "\" is repeated");
      check(ids_.insert(bytes, static_cast<int>(id)), "model.vocab", "two tokens have the bytes of \"", tok, "\"");
      set_token(static_cast<int>(id), std::move(bytes), "model.vocab");
      in_model_[static_cast<std::size_t>(id)] = true;
    }
  }

  void set_token(int id, std::string bytes, std::string_view field) {
    const auto i = static_cast<std::size_t>(id);
    if (i >= tokens_.size()) {
      tokens_.resize(i + 1);
      has_id_.resize(i + 1, false);
      added_.resize(i + 1, false);
      in_model_.resize(i + 1, false);
      special_.resize(i + 1, false);
    }
    check(!has_id_[i], field, "id ", id, " is given twice");
    has_id_[i] = true;
    tokens_[i] = std::move(bytes);
  }

  void load_merges(const io::Json& list, const tokenizer_json_detail::IdMap& written) {
    check(list.is_array(), "model.merges", "is not an array");
    merges_.reserve(list.size());
    for (std::size_t r = 0; r < list.size(); ++r) {
      const std::string field = "model.merges[" + std::to_string(r) + "]";
      std::string a, b;
      const io::Json& e = list[r];
      if (e.is_string()) {  // "a b", as tokenizers < 0.20 writes them
        const std::string& s = e.as_string();
        const std::size_t sp = s.find(' ');
        check(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
              field, "\"", s, "\" is not two tokens separated by one space");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {  // ["a", "b"], tokenizers >= 0.20
        check(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), field,
              "is neither \"a b\" nor [\"a\", \"b\"]");
        a = e[0].as_string();
        b = e[1].as_string();
      }
      const auto ia = written.find(a), ib = written.find(b), im = written.find(a + b);
      check(ia != written.end() && ib != written.end(), field, "\"", a, "\" + \"", b, "\" names a token not in model.vocab");
      check(im != written.end(), field, "the merge result \"", a + b, "\" is not in model.vocab");
      check(merges_.insert(ia->second, ib->second, {static_cast<std::uint32_t>(r), im->second}),
            field, "\"", a, "\" + \"", b, "\" is repeated");
    }
  }

  // Byte-level: the id of each byte's symbol. Byte fallback: the <0xNN> ids (-1 if absent).
  void load_byte_ids() {
    byte_id_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      const std::string key = byte_level_ ? std::string(1, static_cast<char>(b)) : std::string(name);
      byte_id_[static_cast<std::size_t>(b)] = ids_.find(key);
      check(byte_id_[static_cast<std::size_t>(b)] >= 0 || !byte_level_, "model.vocab", "no token for byte ", b, " in a byte-level vocabulary");
    }
  }

  void load_added(const io::Json& list) {
    check(list.is_array(), "added_tokens", "is not an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      const io::Json& t = list[i];
      check(t.is_object(), field, "is not an object");
      const std::int64_t id = id_of(need(t, "id", field), field + ".id");
      check(id < max_id_, field + ".id", id, " is not below the ", max_id_, " tokens listed");
      const std::string content = str(need(t, "content", field), field + ".content");
      check(!content.empty() && tokenizer_json_detail::is_valid_utf8(content), field + ".content", "is empty or not UTF-8");
      // The reference ignores these flags (it always matches the bare content); refuse
      // rather than give ids that a tokenizers-faithful reader would not.
      for (const char* key : {"lstrip", "rstrip", "single_word", "normalized"})
        check(!flag(t, key, field, false), field + "." + key, "only false is supported");
      add_token(static_cast<int>(id), content, field);
      special_[static_cast<std::size_t>(id)] = flag(t, "special", field, false);
    }
  }

  void add_token(int id, const std::string& content, const std::string& field) {
    const auto i = static_cast<std::size_t>(id);
    const bool in_model = i < has_id_.size() && has_id_[i];
    std::string as_model = content;
    const bool mappable = !byte_level_ || unmap(content, as_model);
    check(!in_model || (mappable && tokens_[i] == as_model), field, "id ", id,
          " is a model.vocab token with other text than \"", content, "\"");
    if (const int other = ids_.find(as_model); mappable && other >= 0)
      check(other == id, field, "\"", content, "\" is model.vocab token ", other, ", not ", id);
    check(added_ids_.emplace(content, id).second, field, "\"", content, "\" is repeated");
    if (!in_model) set_token(id, content, field);
    added_[i] = true;
    added_by_first_[static_cast<unsigned char>(content[0])].push_back(content);
    added_first_[static_cast<unsigned char>(content[0])] = true;
    only_added_first_ = the_only_true(added_first_);
    auto& v = added_by_first_[static_cast<unsigned char>(content[0])];
    std::stable_sort(v.begin(), v.end(), [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
  }

  void load_normalizer(const io::Json* n, const std::string& field) {
    if (!n || n->is_null()) return;
    check(n->is_object(), field, "is not an object");
    const std::string type = str(need(*n, "type", field), field + ".type");
    if (type == "Sequence") {
      const io::Json& list = need(*n, "normalizers", field);
      check(list.is_array(), field + ".normalizers", "is not an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        load_normalizer(&list[i], field + ".normalizers[" + std::to_string(i) + "]");
    } else if (type == "Prepend") {
      norm_.push_back({Norm::prepend, str(need(*n, "prepend", field), field + ".prepend"), {}});
    } else if (type == "Replace") {
      norm_.push_back({Norm::replace, string_pattern(*n, field), str(need(*n, "content", field), field + ".content")});
    } else if (type == "NFC") {
      norm_.push_back({Norm::nfc, {}, {}});
    } else {
      check(false, field + ".type", "unsupported normalizer \"", type, "\"");
    }
  }

  std::string string_pattern(const io::Json& n, const std::string& field) const {
    const io::Json& pat = need(n, "pattern", field);
    const io::Json* s = pat.is_object() ? pat.find("String") : nullptr;
    check(s && s->is_string() && !s->as_string().empty(), field + ".pattern",
          "only a non-empty {\"String\": ...} pattern is supported");
    return s->as_string();
  }

  void load_decoder(const io::Json* n, const std::string& field) {
    if (!n || n->is_null()) return;
    check(n->is_object(), field, "is not an object");
    const std::string type = str(need(*n, "type", field), field + ".type");
    if (type == "Sequence") {
      const io::Json& list = need(*n, "decoders", field);
      check(list.is_array(), field + ".decoders", "is not an array");
      for (std::size_t i = 0; i < list.size(); ++i) load_decoder(&list[i], field + ".decoders[" + std::to_string(i) + "]");
    } else if (type == "ByteLevel") {
      check(byte_level_, field, "a ByteLevel decoder needs a ByteLevel pre-tokenizer");
      dec_.push_back({Dec::byte_level, {}, {}});
    } else if (type == "Replace") {
      dec_.push_back({Dec::replace, string_pattern(*n, field), str(need(*n, "content", field), field + ".content")});
    } else if (type == "ByteFallback") {
      dec_.push_back({Dec::byte_fallback, {}, {}});
    } else if (type == "Fuse") {
      dec_.push_back({Dec::fuse, {}, {}});
    } else if (type == "Strip") {
      DecStep s{Dec::strip, str(need(*n, "content", field), field + ".content"), {}};
      check(s.a.size() == 1, field + ".content", "only a one-byte content is supported");
      const io::Json &a = need(*n, "start", field), &b = need(*n, "stop", field);
      check(a.is_number() && b.is_number(), field, "start/stop are not numbers");
      s.start = static_cast<int>(std::clamp<std::int64_t>(a.as_int64(), 0, 1 << 20));
      s.stop = static_cast<int>(std::clamp<std::int64_t>(b.as_int64(), 0, 1 << 20));
      dec_.push_back(std::move(s));
    } else {
      check(false, field + ".type", "unsupported decoder \"", type, "\"");
    }
  }

  // Byte-mapped token text → raw bytes; false if a character is outside the alphabet.
  bool unmap(std::string_view token, std::string& bytes) const {
    static const auto table = [] {
      std::unordered_map<char32_t, std::uint8_t> m;
      const auto a = text::byte_level_alphabet();
      for (int b = 0; b < 256; ++b) m[a[static_cast<std::size_t>(b)]] = static_cast<std::uint8_t>(b);
      return m;
    }();
    bytes.clear();
    for (std::size_t i = 0, len = 0; i < token.size(); i += len) {
      const auto it = table.find(decode_utf8(token, i, len));
      if (it == table.end()) return false;
      bytes += static_cast<char>(it->second);
    }
    return true;
  }

  // ---- encoding -----------------------------------------------------------------
  const Merge* merge_of(int a, int b) const { return merges_.find(a, b); }

  // The one byte flagged, or -1 if none or several are.
  static int the_only_true(const std::array<bool, 256>& flags) {
    int only = -1;
    for (int b = 0; b < 256; ++b)
      if (flags[static_cast<std::size_t>(b)]) {
        if (only >= 0) return -1;
        only = b;
      }
    return only;
  }

  // Calls f(section, -1) for text between added tokens and f(content, id) for each
  // added token: leftmost, then longest match, like the reference's DictionarySplitter.
  template <class F>
  void split_added(std::string_view s, F&& f) const {
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size();) {
      if (only_added_first_ >= 0) {  // all start alike ("<|...", "<s>"): memchr's vector scan
        const void* p = std::memchr(s.data() + i, only_added_first_, s.size() - i);
        if (!p) break;
        i = static_cast<std::size_t>(static_cast<const char*>(p) - s.data());
      } else if (!added_first_[static_cast<unsigned char>(s[i])]) {
        ++i;  // most bytes start none
        continue;
      }
      const auto& cands = added_by_first_[static_cast<unsigned char>(s[i])];
      const std::string* hit = nullptr;
      for (const auto& c : cands)
        if (s.substr(i).starts_with(c)) { hit = &c; break; }  // sorted longest first
      if (!hit) { ++i; continue; }
      if (i > start) f(s.substr(start, i - start), -1);
      f(std::string_view(*hit), added_ids_.find(*hit)->second);
      i += hit->size();
      start = i;
    }
    if (start < s.size()) f(s.substr(start), -1);
  }

  void encode_section(std::string_view section, Workspace& w) const {
    if (spaces_as_marks_) return encode_spaced(section, w);
    std::string normalized;
    // Text NFC leaves as it is (most text) is not copied, and its pieces stay cached.
    const bool normalizes = !norm_.empty() && !(nfc_normalizer() && nfc_unproven_at(section) == std::string_view::npos);
    if (normalizes) {
      normalized = normalize(section);
      section = normalized;
    }
    if (section.empty()) return;
    const std::size_t first = w.out.size();
    const auto by_bytes = [&](std::string_view piece) {
      if (byte_level_regex_) pretokenize(piece, [&](std::string_view p) { encode_cached(p, w); });
      else if (words_independent_) by_words(piece, w);
      else encode_cached(piece, w);
    };
    if (split_ == tokenizer_json_detail::SplitRegex::none) by_bytes(section);
    else tokenizer_json_detail::split_llama3_style(section, split_ == tokenizer_json_detail::SplitRegex::llama3 ? 3 : 1, by_bytes);
    if (fuse_unk_ && unk_ >= 0) fuse_unknowns(w.out, first);
    // The cache holds views into `normalized`, which dies here.
    if (normalizes) w.cache.clear();
  }

  // SentencePiece's word mark "▁" (U+2581) in UTF-8.
  static constexpr std::string_view word_mark = "\xE2\x96\x81";

  // Whether no vocabulary token holds a word mark right after another character. Then
  // no merge can join across the start of a word (a mark after a non-mark), so BPE
  // over a whole section equals BPE over its words one at a time, in the same merge
  // order within each — and words repeat, so the piece cache serves them. Without a
  // pre-tokenizer (Llama 2, Mistral) a section is otherwise a whole document.
  [[nodiscard]] bool words_are_independent() const {
    bool independent = true;
    ids_.for_each_token([&](std::string_view t) {
      for (std::size_t p = t.find(word_mark, 1); p != std::string_view::npos; p = t.find(word_mark, p + 1))
        if (!t.substr(0, p).ends_with(word_mark)) independent = false;
    });
    return independent;
  }

  // A section cut before each word mark that follows a non-mark (words_are_independent).
  void by_words(std::string_view piece, Workspace& w) const {
    std::size_t start = 0;
    for (std::size_t p = piece.find(word_mark, 1); p != std::string_view::npos; p = piece.find(word_mark, p + 1)) {
      if (piece.substr(0, p).ends_with(word_mark)) continue;  // inside a run of marks
      encode_cached(piece.substr(start, p - start), w);
      start = p;
    }
    encode_cached(piece.substr(start), w);
  }

  // SentencePiece's normalizer (a word mark before the text, each space a mark) and
  // words_are_independent, without writing the normalized text: the section is cut
  // into words before each space that follows a non-mark, as by_words cuts before
  // marks (not cutting before a "▁" the text holds is still exact: no merge joins
  // across a mark after a non-mark), and encode_piece reads each space as the mark. The pieces are then the
  // text's own bytes (shorter keys for the piece cache, no copy, a one-byte search);
  // the first word carries the prepended mark and is encoded without the cache.
  // Same symbols, so the same BPE and ids as normalize + by_words.
  void encode_spaced(std::string_view section, Workspace& w) const {
    const std::size_t first = w.out.size();
    // A space starts a word unless it follows a mark — another space, or a "▁" the
    // text holds itself: a run of marks is one word's start (tokens such as "▁▁").
    const auto starts_word = [&](std::size_t p) {
      return section[p - 1] != ' ' && !section.substr(0, p).ends_with(word_mark);
    };
    std::size_t cut = section.size();
    for (std::size_t p = section.find(' ', 1); p != std::string_view::npos; p = section.find(' ', p + 1))
      if (starts_word(p)) { cut = p; break; }
    encode_piece(section.substr(0, cut), w, /*leading_mark=*/true);
    std::size_t start = cut;
    for (std::size_t p = section.find(' ', cut + 1); p != std::string_view::npos; p = section.find(' ', p + 1)) {
      if (!starts_word(p)) continue;  // inside a run of marks
      encode_cached(section.substr(start, p - start), w);
      start = p;
    }
    if (start < section.size()) encode_cached(section.substr(start), w);
    if (fuse_unk_ && unk_ >= 0) fuse_unknowns(w.out, first);
  }

  void fuse_unknowns(std::vector<int>& out, std::size_t first) const {
    std::size_t k = first;
    for (std::size_t i = first; i < out.size(); ++i)
      if (!(out[i] == unk_ && k > first && out[k - 1] == unk_)) out[k++] = out[i];
    out.resize(k);
  }

  void encode_cached(std::string_view piece, Workspace& w) const {
    std::span<const int> hit;
    const PieceKey k = piece_key(piece);
    // With ignore_merges a piece seen for the first time is looked up in the
    // vocabulary next, a miss to memory: its slot starts loading while the cache is
    // probed (for a piece the cache holds, a wasted prefetch of one line).
    if (ignore_merges_) ids_.prefetch(k);
    if (w.cache.find(piece, k, hit)) {
      w.out.insert(w.out.end(), hit.begin(), hit.end());
      return;
    }
    const std::size_t before = w.out.size();
    // ignore_merges: a piece that is a vocabulary token is that token, without BPE
    // (every piece with ignore_merges comes through here: encode_spaced never has it).
    if (const int id = ignore_merges_ ? ids_.find(piece, k) : -1; id >= 0) w.out.push_back(id);
    else encode_piece(piece, w);
    w.cache.insert(piece, k, std::span<const int>(w.out).subspan(before));
  }

  // One pre-token: its symbols (bytes, or code points for a SentencePiece-style
  // vocabulary; -1 for a code point the vocabulary lacks), BPE, then fallbacks.
  // `leading_mark`: the piece is read after a word mark (encode_spaced's first word).
  void encode_piece(std::string_view piece, Workspace& w, bool leading_mark = false) const {
    w.ids.clear();
    w.pos.clear();
    if (leading_mark) {
      w.pos.push_back(0);  // never read: the mark is a vocabulary token
      w.ids.push_back(word_mark_id_);
    }
    for (std::size_t i = 0, len = 1; i < piece.size(); i += len) {
      w.pos.push_back(static_cast<std::uint32_t>(i));
      const auto c = static_cast<unsigned char>(piece[i]);
      if (byte_level_) { w.ids.push_back(byte_id_[c]); continue; }
      if (c == ' ' && spaces_as_marks_) { len = 1; w.ids.push_back(word_mark_id_); continue; }
      if (c < 0x80) { len = 1; w.ids.push_back(ascii_id_[c]); continue; }
      if (piece.substr(i, word_mark.size()) == word_mark) { len = word_mark.size(); w.ids.push_back(word_mark_id_); continue; }
      decode_utf8(piece, i, len);
      w.ids.push_back(ids_.find(piece.substr(i, len)));
    }
    if (w.ids.size() <= small_word) bpe_small(w.ids, w.pos);
    else bpe_heap(w.ids, w.pos);
    for (std::size_t k = 0; k < w.ids.size(); ++k) {
      if (w.ids[k] >= 0) { w.out.push_back(w.ids[k]); continue; }
      std::size_t len = 0;
      decode_utf8(piece, w.pos[k], len);
      fallback(piece.substr(w.pos[k], len), w.out);
    }
  }

  // A code point outside the vocabulary: its <0xNN> byte tokens if all exist, else unk.
  void fallback(std::string_view ch, std::vector<int>& out) const {
    bool all = byte_fallback_;
    for (const char c : ch) all = all && byte_id_[static_cast<unsigned char>(c)] >= 0;
    if (all) {
      for (const char c : ch) out.push_back(byte_id_[static_cast<unsigned char>(c)]);
      return;
    }
    detail::check(unk_ >= 0, "tokenizer.json '", file_, "': model.unk_token: the text holds \"", ch,
                  "\", which the vocabulary cannot spell, and there is no unk_token");
    out.push_back(unk_);
  }

  // BPE as the reference does it: repeatedly merge the adjacent pair with the lowest
  // (rank, start position), one pair at a time. Quadratic scans; for short words
  // (at most small_word symbols). Each pair's merge is looked up once and kept: a
  // merge changes only the pairs on either side of it, and the lookups (a hash table
  // of hundreds of thousands of merges) are what costs, not the scans.
  static constexpr std::size_t small_word = 48;
  void bpe_small(std::vector<int>& ids, std::vector<std::uint32_t>& pos) const {
    std::array<const Merge*, small_word> pair{};  // pair[k]: the merge of ids[k], ids[k+1]
    std::size_t n = ids.size();
    for (std::size_t k = 0; k + 1 < n; ++k) merges_.prefetch(ids[k], ids[k + 1]);
    for (std::size_t k = 0; k + 1 < n; ++k) pair[k] = merge_of(ids[k], ids[k + 1]);
    while (n > 1) {
      const Merge* best = nullptr;
      std::size_t at = 0;
      for (std::size_t k = 0; k + 1 < n; ++k)
        if (pair[k] && (!best || pair[k]->rank < best->rank)) best = pair[k], at = k;
      if (!best) break;
      ids[at] = best->id;
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(at) + 1);
      pos.erase(pos.begin() + static_cast<std::ptrdiff_t>(at) + 1);
      --n;
      for (std::size_t k = at + 1; k + 1 < n; ++k) pair[k] = pair[k + 1];
      if (at > 0) merges_.prefetch(ids[at - 1], ids[at]);
      if (at + 1 < n) merges_.prefetch(ids[at], ids[at + 1]);
      if (at > 0) pair[at - 1] = merge_of(ids[at - 1], ids[at]);
      if (at + 1 < n) pair[at] = merge_of(ids[at], ids[at + 1]);
    }
  }

  // The same order with a heap over a linked list: O(n log n), for long words (a
  // SentencePiece-style section without pre-tokenizer can be a whole document).
  void bpe_heap(std::vector<int>& ids, std::vector<std::uint32_t>& pos) const {
    const std::size_t n = ids.size();
    std::vector<std::int64_t> next(n), prev(n);
    for (std::size_t k = 0; k < n; ++k) next[k] = k + 1 < n ? std::int64_t(k + 1) : -1, prev[k] = std::int64_t(k) - 1;
    struct Entry {
      std::uint32_t rank;
      std::uint32_t left;  // node index: the start order, which breaks rank ties
      int a, b;
      bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
    const auto push = [&](std::int64_t k) {
      if (k < 0 || next[static_cast<std::size_t>(k)] < 0) return;
      const int a = ids[static_cast<std::size_t>(k)], b = ids[static_cast<std::size_t>(next[static_cast<std::size_t>(k)])];
      if (const Merge* m = merge_of(a, b)) heap.push({m->rank, static_cast<std::uint32_t>(k), a, b});
    };
    for (std::size_t k = 0; k + 1 < n; ++k) push(std::int64_t(k));
    std::vector<bool> dead(n, false);
    while (!heap.empty()) {
      const Entry e = heap.top();
      heap.pop();
      const std::size_t k = e.left;
      const std::int64_t r = next[k];
      // Stale if the left node died or either side grew since (a node's text only grows).
      if (dead[k] || r < 0 || ids[k] != e.a || ids[static_cast<std::size_t>(r)] != e.b) continue;
      ids[k] = merge_of(e.a, e.b)->id;
      dead[static_cast<std::size_t>(r)] = true;
      next[k] = next[static_cast<std::size_t>(r)];
      if (next[k] >= 0) prev[static_cast<std::size_t>(next[k])] = std::int64_t(k);
      push(prev[k]);
      push(std::int64_t(k));
    }
    std::size_t w = 0;
    for (std::size_t k = 0; k < n; ++k)
      if (!dead[k]) ids[w] = ids[k], pos[w] = pos[k], ++w;
    ids.resize(w);
    pos.resize(w);
  }

  // ---- normalization --------------------------------------------------------------
  std::string normalize(std::string_view s) const {
    std::string cur(s);
    for (const NormStep& st : norm_) {
      if (st.kind == Norm::prepend) cur = st.a + cur;
      else if (st.kind == Norm::replace) cur = replace_all(cur, st.a, st.b);
      else cur = nfc_or_fail(cur);
    }
    return cur;
  }

  static std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size() + s.size() / 4);
    for (std::size_t i = 0;;) {
      const std::size_t j = s.find(from, i);
      if (j == std::string_view::npos) { out.append(s.substr(i)); return out; }
      out.append(s.substr(i, j - i)).append(to);
      i = j + from.size();
    }
  }

  // NFC from Unicode 14 tables (nfc.hpp). A code point unassigned in 14 is refused:
  // the reference's Unicode 17 may normalize it, and a guess could change the ids.
  std::string nfc_or_fail(std::string_view s) const {
    std::size_t at = 0;
    if (auto r = nfc(s, &at)) return std::move(*r);
    std::size_t len = 0;
    char hex[16];
    std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(decode_utf8(s, at, len)));
    detail::fail("tokenizer.json '", file_, "': normalizer NFC: the text holds ", hex, " at byte ", at,
                 ", which is unassigned in Unicode 14 (lowbit's NFC data), so its normalization is unknown");
  }

  // ---- decoding -------------------------------------------------------------------
  std::string run_decoder(std::vector<std::string> toks, std::span<const int> ids) const {
    for (const DecStep& st : dec_) {
      if (st.kind == Dec::byte_level) toks = decode_byte_level(toks, ids);
      else if (st.kind == Dec::replace) for (auto& t : toks) t = replace_all(t, st.a, st.b);
      else if (st.kind == Dec::byte_fallback) toks = decode_byte_fallback(toks);
      else if (st.kind == Dec::fuse) toks = fuse(toks);
      else for (auto& t : toks) t = strip(t, st);
    }
    std::string out;
    for (const auto& t : toks) out += t;
    return out;
  }

  static std::vector<std::string> fuse(const std::vector<std::string>& toks) {
    std::string all;
    for (const auto& t : toks) all += t;
    return {all};
  }

  // Runs of model tokens become text (invalid UTF-8 replaced); added tokens stay apart,
  // so a byte sequence is never completed across one.
  std::vector<std::string> decode_byte_level(const std::vector<std::string>& toks, std::span<const int> ids) const {
    std::vector<std::string> out;
    std::string run;
    for (std::size_t k = 0; k < toks.size(); ++k) {
      if (!is_added(ids[k])) { run += toks[k]; continue; }
      if (!run.empty()) out.push_back(tokenizer_json_detail::replace_invalid_utf8(run)), run.clear();
      out.push_back(toks[k]);
    }
    if (!run.empty()) out.push_back(tokenizer_json_detail::replace_invalid_utf8(run));
    return out;
  }

  static std::vector<std::string> decode_byte_fallback(const std::vector<std::string>& toks) {
    std::vector<std::string> out;
    std::string bytes;
    bool pending = false;
    for (const auto& t : toks) {
      unsigned v = 0;
      const bool is_byte = t.size() == 6 && t.starts_with("<0x") && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
                           std::isxdigit(static_cast<unsigned char>(t[4])) && std::sscanf(t.c_str() + 3, "%2x", &v) == 1;
      if (is_byte) { bytes += static_cast<char>(v); pending = true; continue; }
      if (pending) out.push_back(tokenizer_json_detail::replace_invalid_utf8(bytes)), bytes.clear(), pending = false;
      out.push_back(t);
    }
    if (pending) out.push_back(tokenizer_json_detail::replace_invalid_utf8(bytes));
    return out;
  }

  static std::string strip(const std::string& t, const DecStep& st) {
    std::size_t b = 0, e = t.size();
    while (b < e && b < static_cast<std::size_t>(st.start) && t[b] == st.a[0]) ++b;
    for (int k = 0; k < st.stop && e > b && t[e - 1] == st.a[0]; ++k) --e;
    return t.substr(b, e - b);
  }

  std::string file_;
  std::vector<std::string> tokens_;  // id → text (raw bytes for a byte-level vocabulary)
  std::vector<bool> has_id_, added_;
  std::vector<bool> in_model_, special_;  // a model.vocab token; an added token marked special
  std::optional<int> template_bos_, template_eos_;
  TokenIndex ids_;                          // model vocabulary, by raw bytes
  tokenizer_json_detail::IdMap added_ids_;  // added tokens, by content
  std::array<std::vector<std::string>, 256> added_by_first_;  // longest first
  std::array<bool, 256> added_first_{};  // whether an added token starts with the byte
  int only_added_first_ = -1;            // the byte every added token starts with, if there is one
  MergeTable merges_;
  std::array<int, 256> byte_id_{};
  std::array<int, 128> ascii_id_{};  // the one-byte token of each ASCII character, or -1
  int word_mark_id_ = -1;
  bool spaces_as_marks_ = false;  // encode_spaced instead of normalize + by_words
  std::vector<NormStep> norm_;
  std::vector<DecStep> dec_;
  tokenizer_json_detail::SplitRegex split_ = tokenizer_json_detail::SplitRegex::none;
  bool byte_level_ = false, byte_level_regex_ = false, byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  bool words_independent_ = false;  // words_are_independent(), for SentencePiece-style vocabularies
  int unk_ = -1;
  std::int64_t max_id_ = 0;
};

}  // namespace lowbit::text
