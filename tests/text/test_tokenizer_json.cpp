// TjTokenizer against the ids of the JavaScript reference (@lenml/tokenizers 3.7.2)
// recorded in tests/fixtures/tokenizer_json/{llama2,llama3,qwen3}.json: every
// adversarial string, and the WikiText-2 / TinyStories / Python-docs corpora by
// count, FNV-1a of the ids and the first 2000 ids; plus hostile files. The real
// tokenizer.json files come from scripts/fixtures/fetch_tokenizers.sh; without them
// (or without the data) the tests say they skipped.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/core/fnv1a.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/python_docs.hpp"
#include "lowbit/text/tinystories.hpp"
#include "lowbit/text/tokenizer_json.hpp"
#include "../io/shared_data.hpp"

namespace {

namespace tj_fs = std::filesystem;
using TjJson = lowbit::io::Json;
using TjTokenizer = lowbit::text::TokenizerJson;

tj_fs::path tj_cache_dir() {
  if (const char* env = std::getenv("LOWBIT_TOKENIZERS_CACHE"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return tj_fs::path(home ? home : "/root") / ".cache" / "lowbit" / "tokenizers";
}

TjJson tj_fixture(const std::string& name) {
  const auto p = tj_fs::path(LOWBIT_FIXTURE_DIR) / "tokenizer_json" / (name + ".json");
  return TjJson::parse(lowbit::io::read_file(p), p.string());
}

// The tokenizer the fixture was made from, or nullopt (with the reason in `why`).
std::optional<TjTokenizer> tj_load(const TjJson& fx, std::string& why) {
  const TjJson& f = fx.at("config").at("files").at("tokenizer_json");
  const auto path = tj_cache_dir() / f.at("path").as_string();
  std::error_code ec;
  if (!tj_fs::is_regular_file(path, ec)) {
    why = "'" + path.string() + "' not found; run scripts/fixtures/fetch_tokenizers.sh (or set LOWBIT_TOKENIZERS_CACHE)";
    return std::nullopt;
  }
  // lowbit has no SHA-256, so the size stands in for the pinned sha256 (the fetch script checks the latter).
  if (static_cast<std::int64_t>(tj_fs::file_size(path, ec)) != f.at("bytes").as_int64()) {
    why = "'" + path.string() + "' does not have the fixture's size";
    return std::nullopt;
  }
  return TjTokenizer::load(path);
}

std::vector<int> tj_ints(const TjJson& a) {
  std::vector<int> v;
  for (const auto& x : a.items()) v.push_back(static_cast<int>(x.as_int64()));
  return v;
}

std::string tj_unhex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::uint64_t tj_ids_hash(const std::vector<int>& ids, std::uint64_t h = lowbit::fnv1a64_offset_basis) {
  std::vector<std::uint32_t> u(ids.begin(), ids.end());
  return lowbit::fnv1a64_of(u.data(), u.size(), h);
}

bool tj_is_nfc_refusal(const lowbit::Error& e) { return std::string(e.what()).find("normalizer NFC") != std::string::npos; }

struct TjCount {
  int passed = 0, failed = 0, skipped = 0;
};

void tj_check_adversarial(const std::string& name, const TjTokenizer& tok, const TjJson& fx) {
  TjCount n;
  for (const TjJson& c : fx.at("adversarial").items()) {
    const std::string id = c.at("id").as_string();
    const bool hex = c.find("hex") != nullptr;
    const std::string input = hex ? tj_unhex(c.at("hex").as_string()) : c.at("text").as_string();
    const std::vector<int> want = tj_ints(c.at("ids"));
    std::vector<int> got;
    try {
      got = tok.encode(input);
    } catch (const lowbit::Error& e) {
      if (!tj_is_nfc_refusal(e)) throw;
      MESSAGE("skipped: ", name, " '", id, "': ", std::string(e.what()));
      ++n.skipped;
      continue;
    }
    CAPTURE(name);
    CAPTURE(id);
    CHECK(got == want);
    if (hex) CHECK(tok.encode(c.at("text_replaced").as_string()) == want);  // the encoder's own U+FFFD rule
    if (!want.empty()) CHECK(tok.decode(want) == c.at("decoded").as_string());
    (got == want ? n.passed : n.failed)++;
  }
  MESSAGE(name, " adversarial: ", n.passed, " passed, ", n.failed, " failed, ", n.skipped, " skipped (NFC refused)");
}

// One corpus: documents in order. A document that the NFC check refuses is skipped
// (and with it the corpus totals); a document whose bytes differ skips the corpus.
void tj_check_corpus(const std::string& name, const std::string& key, const TjTokenizer& tok, const TjJson& corpus,
                     const std::vector<std::string>& docs) {
  const TjJson& rows = corpus.at("docs");
  REQUIRE(rows.size() == docs.size());
  for (std::size_t d = 0; d < docs.size(); ++d)
    if (static_cast<std::int64_t>(docs[d].size()) != rows[d][1].as_int64() ||
        lowbit::hex64(lowbit::fnv1a64(docs[d])) != rows[d][2].as_string()) {
      MESSAGE("skipped: ", key, ": document '", rows[d][0].as_string(), "' is not the fixture's input");
      return;
    }
  std::vector<int> all;
  std::size_t refused = 0;
  for (std::size_t d = 0; d < docs.size(); ++d) {
    std::vector<int> ids;
    try {
      ids = tok.encode(docs[d]);
    } catch (const lowbit::Error& e) {
      if (!tj_is_nfc_refusal(e)) throw;
      ++refused;
      continue;
    }
    CAPTURE(rows[d][0].as_string());
    CHECK(static_cast<std::int64_t>(ids.size()) == rows[d][3].as_int64());
    CHECK(lowbit::hex64(tj_ids_hash(ids)) == rows[d][4].as_string());
    if (refused == 0) all.insert(all.end(), ids.begin(), ids.end());
  }
  if (refused) {
    MESSAGE("skipped: ", name, " ", key, ": ", refused, " of ", docs.size(),
            " documents refused by the NFC check (non-NFC-provable text); totals not compared");
    return;
  }
  CHECK(static_cast<std::int64_t>(all.size()) == corpus.at("n_ids").as_int64());
  CHECK(lowbit::hex64(tj_ids_hash(all)) == corpus.at("ids_fnv1a64").as_string());
  const std::vector<int> first = tj_ints(corpus.at("first_ids"));
  std::size_t k = 0;
  while (k < first.size() && k < all.size() && all[k] == first[k]) ++k;
  CHECK_MESSAGE(k == std::min(first.size(), all.size()), key, ": first difference at id ", k);
  MESSAGE(name, " ", key, ": ", docs.size(), " documents, ", all.size(), " ids compared");
}

void tj_check_corpora(const std::string& name, const TjTokenizer& tok, const TjJson& fx) {
  const auto data_opt = lowbit::test::shared_data();
  if (!data_opt) {
    MESSAGE("skipped: ../shared/data not found (set LOWBIT_DATA); corpora not compared");
    return;
  }
  const TjJson& corpora = fx.at("corpora");
  tj_check_corpus(name, "wikitext2_test", tok, corpora.at("wikitext2_test"),
                  {lowbit::io::read_file(*data_opt / "wikitext-2" / "wiki.test.tokens")});
  tj_check_corpus(name, "tinystories_first246", tok, corpora.at("tinystories_first246"),
                  lowbit::text::tinystories_stories(
                      lowbit::io::read_file(*data_opt / "tinystories" / "TinyStories-valid.first246.txt")));
  std::vector<std::string> py;
  try {
    const auto docs = lowbit::text::PythonDocs::open();
    for (std::size_t i = 0; i < docs.files().size(); i += 12) py.push_back(docs.read(docs.files()[i]));
  } catch (const lowbit::Error& e) {
    MESSAGE("skipped: python docs: ", std::string(e.what()));
    return;
  }
  if (py.size() != corpora.at("python_docs_every12").at("docs").size()) {
    MESSAGE("skipped: python docs: ", py.size(), " files taken, not the fixture's count");
    return;
  }
  tj_check_corpus(name, "python_docs_every12", tok, corpora.at("python_docs_every12"), py);
}

void tj_check_config(const TjTokenizer& tok, const TjJson& fx) {
  const TjJson& cfg = fx.at("config");
  CHECK(tok.vocab_size() == cfg.at("js_reference").at("vocab_size_with_added").as_int64());
  for (const TjJson& a : cfg.at("added_tokens").items())
    CHECK(tok.token_id(a.at("content").as_string()) == std::optional<int>(static_cast<int>(a.at("id").as_int64())));
  const TjJson& probe = cfg.at("vocab_probe");
  for (std::size_t i = 0; i < probe.size(); ++i) {
    const TjJson& v = probe.value_at(i);
    CAPTURE(probe.keys()[i]);
    CHECK(tok.token_id(probe.keys()[i]) ==
          (v.is_null() ? std::nullopt : std::optional<int>(static_cast<int>(v.as_int64()))));
  }
}

void tj_run(const std::string& name) {
  const TjJson fx = tj_fixture(name);
  std::string why;
  const auto tok = tj_load(fx, why);
  if (!tok) {
    MESSAGE("skipped: ", name, ": ", why);
    return;
  }
  tj_check_config(*tok, fx);
  tj_check_adversarial(name, *tok, fx);
  tj_check_corpora(name, *tok, fx);
}

// A minimal SentencePiece-style file (no byte tokens, so unknown text becomes <unk>).
std::string tj_toy(const std::string& model_extra, const std::string& merges, const std::string& tail = "") {
  std::string v = "{\"<unk>\":0";
  int id = 1;
  for (const char* t : {"a", "b", "ab", "abb", "c"}) v += ",\"" + std::string(t) + "\":" + std::to_string(id++);
  v += "}";
  return "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\"," + model_extra + "\"vocab\":" + v +
         ",\"merges\":" + merges + "}" + tail + "}";
}

void tj_expect_error(const std::string& json, const std::string& needle) {
  CAPTURE(needle);
  try {
    (void)TjTokenizer::from_string(json, "toy.json");
    FAIL("no error");
  } catch (const lowbit::Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find(needle) != std::string::npos);
    CHECK(msg.find("toy.json") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("tokenizer_json: Llama 3 ids equal the reference's") { tj_run("llama3"); }
TEST_CASE("tokenizer_json: Qwen3 ids equal the reference's") { tj_run("qwen3"); }
TEST_CASE("tokenizer_json: Llama 2 (Mistral vocabulary) ids equal the reference's") { tj_run("llama2"); }

TEST_CASE("tokenizer_json: toy BPE merges by rank, falls back to unk, fuses unknowns") {
  const auto tok = TjTokenizer::from_string(tj_toy("\"fuse_unk\":true,", "[\"a b\",[\"ab\",\"b\"]]"), "toy.json");
  CHECK(tok.vocab_size() == 6);
  CHECK(tok.encode("abbab") == std::vector<int>{4, 3});
  CHECK(tok.encode("xyab") == std::vector<int>{0, 3});  // two unknowns fused into one <unk>
  CHECK(tok.encode("") == std::vector<int>{});
  // A long word takes the heap path; it must agree with the short path piece by piece.
  std::string long_word;
  std::vector<int> want;
  for (int i = 0; i < 40; ++i) long_word += "abbab", want.insert(want.end(), {4, 3});
  CHECK(tok.encode(long_word) == want);
  CHECK(tok.decode(std::vector<int>{4, 3}) == "abbab");
}

TEST_CASE("tokenizer_json: SentencePiece spaces read as marks cut words where the normalized text would") {
  // Prepend "▁" + Replace " " → "▁", tokens "▁▁" and "▁a": a "▁" in the text followed
  // by a space is a run of marks, one word's start, as in the normalized "▁a▁▁b"
  // (pieces "▁a", "▁▁b"); cutting before that space would give "▁a▁" + " b".
  const std::string json = R"({"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},)"
                           R"({"type":"Replace","pattern":{"String":" "},"content":"▁"}]},)"
                           R"("model":{"type":"BPE","unk_token":"<unk>","vocab":{"<unk>":0,"▁":1,"a":2,"b":3,)"
                           R"("▁▁":4,"▁a":5},"merges":["▁ ▁","▁ a"]}})";
  const auto tok = TjTokenizer::from_string(json, "spm_toy.json");
  CHECK(tok.encode("a\xE2\x96\x81 b") == std::vector<int>{5, 4, 3});
  CHECK(tok.encode("a  b") == std::vector<int>{5, 4, 3});       // two spaces: one run
  CHECK(tok.encode(" a b") == std::vector<int>{4, 2, 1, 3});    // "▁▁a" ("▁ ▁" merges first), "▁b"
  CHECK(tok.encode("b a") == std::vector<int>{1, 3, 5});
}

TEST_CASE("tokenizer_json: hostile and unsupported files are refused, naming the field") {
  tj_expect_error(tj_toy("", "[\"a b\"]").substr(0, 60), "toy.json");              // truncated JSON
  tj_expect_error(tj_toy("", "[\"a q\"]"), "model.merges[0]");                       // unknown part
  tj_expect_error(tj_toy("", "[\"b c\"]"), "model.merges[0]");                       // result not in vocab
  tj_expect_error(tj_toy("", "[\"a b\",\"a b\"]"), "model.merges[1]");               // repeated
  tj_expect_error(tj_toy("", "[\"a  b\"]"), "model.merges[0]");                      // two spaces
  tj_expect_error(tj_toy("", "[[\"a\"]]"), "model.merges[0]");                       // not a pair
  tj_expect_error(R"({"model":{"type":"Unigram","vocab":[]}})", "model.type");
  tj_expect_error(R"({"model":{"vocab":{}}})", "model.type");
  tj_expect_error(R"({"model":{"type":"BPE","vocab":{"a":99999999},"merges":[]}})", "model.vocab");
  tj_expect_error(R"({"model":{"type":"BPE","vocab":{"a":0,"b":0},"merges":[]}})", "model.vocab");
  tj_expect_error(R"({"model":{"type":"BPE","vocab":{"a":-1},"merges":[]}})", "model.vocab");
  tj_expect_error(R"({"model":{"type":"BPE","dropout":0.1,"vocab":{},"merges":[]}})", "model.dropout");
  tj_expect_error(R"({"model":{"type":"BPE","unk_token":"zz","vocab":{"a":0},"merges":[]}})", "model.unk_token");
  tj_expect_error(tj_toy("", "[]", R"(,"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated"})"),
                  "pre_tokenizer.pattern.Regex");
  tj_expect_error(tj_toy("", "[]", R"(,"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Isolated"}]})"),
                  "pre_tokenizer.pretokenizers[0].pattern.Regex");
  tj_expect_error(tj_toy("", "[]", R"(,"pre_tokenizer":{"type":"Whitespace"})"), "pre_tokenizer.type");
  tj_expect_error(tj_toy("", "[]", R"(,"normalizer":{"type":"Lowercase"})"), "normalizer.type");
  tj_expect_error(tj_toy("", "[]", R"(,"decoder":{"type":"CTC"})"), "decoder.type");
  tj_expect_error(tj_toy("", "[]", R"(,"added_tokens":[{"id":1,"content":"zz"}])"), "added_tokens[0]");
  tj_expect_error(tj_toy("", "[]", R"(,"added_tokens":[{"id":6,"content":"q","lstrip":true}])"),
                  "added_tokens[0].lstrip");
  tj_expect_error(tj_toy("", "[]", R"(,"truncation":{"max_length":4})"), "truncation");
  tj_expect_error(tj_toy("", "[]", R"(,"added_tokens":[{"id":2000000000,"content":"q"}])"), "added_tokens[0].id");
  tj_expect_error(R"({"model":{"type":"BPE","vocab":{"a":1.5},"merges":[]}})", "model.vocab");
  // A byte-level file whose vocabulary lacks a byte.
  tj_expect_error(R"({"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}})",
                  "model.vocab");
  // NFC: NFD input gives the NFC ids; a code point unassigned in Unicode 14 is refused.
  const auto nfc = TjTokenizer::from_string(tj_toy("", "[\"a b\"]", R"(,"normalizer":{"type":"NFC"})"), "toy.json");
  CHECK(nfc.encode("ab") == std::vector<int>{3});
  CHECK_THROWS_WITH_AS((void)nfc.encode("a\xF0\x91\xBB\x80"), doctest::Contains("normalizer NFC"), lowbit::Error);
  // decode of an id that is not in the vocabulary.
  CHECK_THROWS_AS((void)nfc.decode(std::vector<int>{77}), lowbit::Error);
}

TEST_CASE("tokenizer_json: invalid UTF-8 becomes one U+FFFD per maximal subpart (WHATWG)") {
  using lowbit::text::tokenizer_json_detail::replace_invalid_utf8;
  const std::string r = "\xEF\xBF\xBD";
  CHECK(replace_invalid_utf8("\xFF") == r);
  CHECK(replace_invalid_utf8("\xE2\x82\x41\x42") == r + "AB");                  // truncated 3-byte + AB
  CHECK(replace_invalid_utf8("\xED\xA0\x80\xED\xBF\xBF") == r + r + r + r + r + r);  // surrogates: 6
  CHECK(replace_invalid_utf8("\xC0\xAF") == r + r);                               // overlong
  CHECK(replace_invalid_utf8("\xF0\x9F\x98") == r);                               // truncated 4-byte
  CHECK(replace_invalid_utf8("\xF4\x90\x80\x80") == r + r + r + r);               // above U+10FFFF
  CHECK(replace_invalid_utf8("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80") == "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");
}

TEST_CASE("tokenizer_json: NFC, and its fast check for text NFC provably leaves alone") {
  using lowbit::text::nfc;
  CHECK(nfc("e\xCC\x81") == std::optional<std::string>("\xC3\xA9"));                 // e + U+0301 → é
  CHECK(nfc("\xE2\x84\xAB") == std::optional<std::string>("\xC3\x85"));             // Angstrom sign → Å
  CHECK(nfc("a\xCC\x81\xCC\xA3") == std::optional<std::string>("\xE1\xBA\xA1\xCC\x81"));  // reordered: ạ + U+0301
  CHECK(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") == std::optional<std::string>("\xEA\xB0\x81"));  // jamo → 각
  CHECK(nfc("\xCC\x81" "a") == std::optional<std::string>("\xCC\x81" "a"));                // a leading mark stays
  std::size_t at = 99;
  CHECK(nfc("ab\xF0\x91\xBB\x80", &at) == std::nullopt);                            // U+11EC0: unassigned in 14
  CHECK(at == 2);
  using lowbit::text::nfc_unproven_at;
  constexpr auto none = std::string_view::npos;
  CHECK(nfc_unproven_at("plain ASCII, caf\xC3\xA9, \xE4\xB8\xAD\xE6\x96\x87, \xF0\x9F\x98\x80, \xEF\xBF\xBD") == none);
  CHECK(nfc_unproven_at("\xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xB7") == none);  // क्ष: virama after a plain consonant
  CHECK(nfc_unproven_at("e\xCC\x81") == 1);                               // NFD é: U+0301 composes
  CHECK(nfc_unproven_at("\xE2\x84\xAB") == 0);                            // U+212B ANGSTROM SIGN: singleton
  CHECK(nfc_unproven_at("\xC3\xA9\xE0\xA5\x8D") == 2);                     // a mark after a decomposing letter
  CHECK(nfc_unproven_at("\xEA\xAF\x80") == none);                          // U+ABC0, assigned in 14
  CHECK(nfc_unproven_at("\xF0\x91\xBB\x80") == 0);                         // U+11EC0: unassigned in Unicode 14
}

// GPT-2's files recast as a tokenizer.json (ByteLevel with its own regex, "a b" merges):
// the ByteLevel use_regex path against lowbit's GPT-2 encoder, itself checked against
// the reference JS encoder in test_gpt2_bpe.cpp.
TEST_CASE("tokenizer_json: a GPT-2 tokenizer.json gives Gpt2Tokenizer's ids on WikiText-2") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const auto dir = data / "gpt2-bpe";
  const std::string merges = lowbit::io::read_file(dir / "vocab.bpe");
  std::string json = R"({"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},)"
                     R"("decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":)" +
                     lowbit::io::read_file(dir / "encoder.json") + R"(,"merges":[)";
  bool first = true;
  for (std::size_t p = 0; p < merges.size();) {
    std::size_t e = merges.find('\n', p);
    if (e == std::string::npos) e = merges.size();
    const std::string line = merges.substr(p, e - p);
    p = e + 1;
    if (line.empty() || line.starts_with("#version")) continue;
    if (!first) json += ",";
    first = false;
    TjJson::write_string(json, line);
  }
  json += "]}}";
  const auto tok = TjTokenizer::from_string(json, "gpt2 tokenizer.json");
  const auto ref = lowbit::text::Gpt2Tokenizer::from_dir(dir);
  const std::string text = lowbit::io::read_file(data / "wikitext-2" / "wiki.test.tokens");
  const std::vector<int> ids = tok.encode(text);
  CHECK(ids == ref.encode(text));
  CHECK(tok.decode(ids) == text);
  CHECK(tok.vocab_size() == ref.vocab_size());
}

TEST_CASE("tokenizer_json: added tokens found whether they all start alike (memchr) or not") {
  // "<x>" and "<xy>" both start with "<": the scan jumps from "<" to "<"; adding "q!"
  // makes two first bytes and the byte-by-byte scan. Same ids either way, leftmost
  // then longest, a "<" that starts none left to the model (unk here).
  const std::string alike = R"(,"added_tokens":[{"id":6,"content":"<x>"},{"id":7,"content":"<xy>"}])";
  const std::string mixed = R"(,"added_tokens":[{"id":6,"content":"<x>"},{"id":7,"content":"<xy>"},{"id":8,"content":"q!"}])";
  for (const auto& tail : {alike, mixed}) {
    CAPTURE(tail);
    const auto tok = TjTokenizer::from_string(tj_toy("", "[\"a b\"]", tail), "toy.json");
    CHECK(tok.encode("a<x>b<xy><c<") == std::vector<int>{1, 6, 2, 7, 0, 5, 0});
    CHECK(tok.encode("<x><x>") == std::vector<int>{6, 6});
    CHECK(tok.encode("<") == std::vector<int>{0});
    CHECK(tok.encode("ab") == std::vector<int>{3});
  }
  const auto tok = TjTokenizer::from_string(tj_toy("", "[\"a b\"]", mixed), "toy.json");
  CHECK(tok.encode("aq!<xy") == std::vector<int>{1, 8, 0, 0, 0});  // "<xy" is no added token: unk per symbol
}
