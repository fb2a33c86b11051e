// Models to and from GGUF (nn/gguf_model.hpp): llama.cpp's names both ways for
// `llama` and `gpt2`, Hugging Face query/key rows interleaved for llama.cpp's RoPE
// (the model read back computes the same logits), stories260K with its vocabulary
// written as llama.cpp's own converter writes it, a q4_0 file whose tensors decode
// to llama.cpp's RTN with the fallback to F16 where rows are not whole blocks, and
// lowbit's GPT-2 pd-1m with its compact vocabulary over GPT-2's BPE.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/nn.hpp"
#include "lowbit/nn/gguf_model.hpp"
#include "lowbit/nn/gguf_vocab_read.hpp"
#include "lowbit/study/data.hpp"
#include "lowbit/quant/blocks/codec.hpp"
#include "lowbit/text/compact_vocab.hpp"
#include "lowbit/text/gpt2_bpe.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"
#include "../support/logits.hpp"

using namespace lowbit;
using lowbit::test::logits_of;
namespace fs = std::filesystem;

namespace {

fs::path temp_gguf(const char* name) {
  return fs::temp_directory_path() / (std::string(name) + "_" + std::to_string(::getpid()) + ".gguf");
}


}  // namespace

TEST_CASE("gguf model: names map to llama.cpp's and back") {
  using nn::Architecture;
  CHECK(nn::gguf_name_of(Architecture::llama, "model.embed_tokens.weight") == "token_embd.weight");
  CHECK(nn::gguf_name_of(Architecture::llama, "model.layers.11.self_attn.k_proj.weight") == "blk.11.attn_k.weight");
  CHECK(nn::gguf_name_of(Architecture::llama, "model.layers.0.mlp.down_proj.weight") == "blk.0.ffn_down.weight");
  CHECK(nn::gguf_name_of(Architecture::llama, "lm_head.weight") == "output.weight");
  CHECK(!nn::gguf_name_of(Architecture::llama, "model.layers.x.mlp.down_proj.weight"));
  CHECK(!nn::gguf_name_of(Architecture::llama, "model.layers.0.self_attn.rotary_emb.inv_freq"));
  CHECK(!nn::gguf_name_of(Architecture::llama, "transformer.h.0.attn.c_attn.weight"));
  CHECK(nn::gguf_name_of(Architecture::gpt2, "transformer.h.3.attn.c_attn.bias") == "blk.3.attn_qkv.bias");
  CHECK(nn::gguf_name_of(Architecture::gpt2, "transformer.h.0.mlp.c_proj.weight") == "blk.0.ffn_down.weight");
  CHECK(nn::gguf_name_of(Architecture::gpt2, "transformer.wpe.weight") == "position_embd.weight");
  CHECK(nn::gguf_name_of(Architecture::gpt2, "transformer.ln_f.bias") == "output_norm.bias");
  CHECK(nn::lowbit_name_of(Architecture::gpt2, "blk.2.ffn_up.weight") == "transformer.h.2.mlp.c_fc.weight");
  CHECK(nn::lowbit_name_of(Architecture::llama, "blk.2.ffn_up.weight") == "model.layers.2.mlp.up_proj.weight");
  CHECK(!nn::lowbit_name_of(Architecture::gpt2, "blk.2.attn_q.weight"));
  for (const auto& a : nn::gguf_archs)
    for (const auto& n : a.blocks) {
      const std::string lowbit = std::string(a.layer_prefix) + "7." + std::string(n.lowbit);
      CHECK(nn::lowbit_name_of(a.arch, *nn::gguf_name_of(a.arch, lowbit)) == lowbit);
    }
}

TEST_CASE("gguf llama: a Hugging Face Llama read back from GGUF computes the same logits") {
  const nn::Checkpoint ck = nn::load_checkpoint(fs::path(LOWBIT_FIXTURE_DIR) / "models" / "llama_tiny");
  REQUIRE(ck.config.rope_style == autograd::RopeStyle::half);
  const fs::path path = temp_gguf("lowbit_llama_tiny");
  nn::write_gguf(path, ck);
  const nn::Checkpoint back = nn::load_gguf(path);
  fs::remove(path);
  CHECK(back.config.rope_style == autograd::RopeStyle::interleaved);
  CHECK(back.config.dim == ck.config.dim);
  CHECK(back.config.kv_heads == ck.config.kv_heads);
  CHECK(back.config.tied_head == ck.config.tied_head);
  CHECK(back.config.norm_eps == ck.config.norm_eps);
  CHECK(back.config.rope_theta == ck.config.rope_theta);
  // Every weight but q/k is stored as it was; q/k rows are permuted, not changed.
  REQUIRE(ck.names().size() == back.names().size());
  for (const std::string& name : ck.names()) {
    CAPTURE(name);
    const nn::Weight w = ck.get(name);
    REQUIRE(back.weights.count(name) == 1);
    const auto& b = back.weights.at(name);
    CHECK(b.shape == w.shape);
    const bool qk = name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight");
    if (!qk) CHECK(std::memcmp(b.values.data(), w.values.data(), w.values.size() * sizeof(float)) == 0);
  }
  const nn::Transformer a(ck), c(back);
  std::vector<int> ids;
  for (int i = 0; i < std::min(ck.config.context, 12); ++i) ids.push_back((i * 7 + 3) % ck.config.vocab);
  const auto la = logits_of(a, ids), lc = logits_of(c, ids);
  REQUIRE(la.size() == lc.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < la.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(la[i] - lc[i])));
  CHECK(worst < 1e-5);
}

TEST_CASE("gguf llama: stories260K with its vocabulary, in F32 and q4_0") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const nn::Checkpoint ck = nn::load_checkpoint(data / "stories260K" / "stories260K.bin");
  const auto tok = text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", ck.config.vocab);
  const fs::path path = temp_gguf("lowbit_stories260k");

  const nn::GgufVocab vocab = nn::gguf_spm_vocab(tok);
  nn::write_gguf(path, ck, &vocab, {}, "stories260K");
  {
    const io::GgufFile f = io::GgufFile::open(path);
    CHECK(f.string("tokenizer.ggml.model") == "llama");
    CHECK(f.integer("llama.block_count") == 5);
    CHECK(f.integer("llama.attention.head_count_kv") == 4);
    const auto& tokens = f.at("tokenizer.ggml.tokens").items;
    const auto& types = f.at("tokenizer.ggml.token_type").items;
    REQUIRE(tokens.size() == 512);
    CHECK(tokens[1].s == "<s>");
    CHECK(types[1].i == 3);
    CHECK(tokens[3].s == "<0x00>");
    CHECK(types[3].i == 6);
    CHECK(tokens[259].s == "\xe2\x96\x81t");  // " t" with SentencePiece's space
    CHECK(types[259].i == 1);
    CHECK(f.find_tensor("output.weight") == nullptr);  // tied: llama.cpp reuses token_embd
    const nn::Checkpoint back = nn::load_gguf(path);
    REQUIRE(back.weights.size() == ck.weights.size());
    for (const auto& [name, w] : ck.weights) {
      CAPTURE(name);
      CHECK(back.weights.at(name).values == w.values);  // llama2.c's rows are llama.cpp's
    }
  }

  nn::write_gguf(path, ck, &vocab, nn::gguf_rtn_codec(QuantSpec::parse("q4_0")), "stories260K");
  const io::GgufFile f = io::GgufFile::open(path);
  const nn::Checkpoint back = nn::load_gguf(path);
  fs::remove(path);
  for (const auto& [name, w] : ck.weights) {
    CAPTURE(name);
    const io::GgufTensorInfo& t = f.tensor(*nn::gguf_name_of(nn::Architecture::llama, name));
    const auto& got = back.weights.at(name).values;
    if (w.shape.size() == 1) {
      CHECK(t.ggml_type == 0);
      CHECK(got == w.values);
    } else if (w.shape[1] % 32 != 0) {  // w2's rows of 172: llama.cpp keeps such a tensor in F16
      CHECK(t.ggml_type == 1);
      std::size_t differ = 0;
      for (std::size_t i = 0; i < got.size(); ++i) differ += got[i] != io::f16_to_f32(io::f32_to_f16(w.values[i]));
      CHECK(differ == 0);
    } else {
      CHECK(t.ggml_type == 2);
      const ConstMatrixView m(w.values.data(), w.shape[0], w.shape[1]);
      const auto bytes = blocks::quantize(blocks::BlockType::q4_0, m, name, nullptr);
      std::vector<float> want(w.values.size());
      blocks::dequantize(blocks::BlockType::q4_0, bytes.data(), MatrixView(want.data(), w.shape[0], w.shape[1]), name);
      CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("gguf input: stories260K as F16 GGUF carries its vocabulary back, and its tokenizer is llama2.c's") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const nn::Checkpoint ck = nn::load_checkpoint(data / "stories260K" / "stories260K.bin");
  const auto tok = text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", ck.config.vocab);
  const fs::path path = temp_gguf("lowbit_stories260k_f16");
  const nn::GgufVocab vocab = nn::gguf_spm_vocab(tok);
  nn::write_gguf(path, ck, &vocab, nn::gguf_float_codec(*nn::gguf_float_type("f16")), "stories260K");

  const io::GgufFile f = io::GgufFile::open(path);
  CHECK(f.tensor("blk.0.attn_q.weight").ggml_type == 1);  // matrices F16,
  CHECK(f.tensor("blk.0.attn_norm.weight").ggml_type == 0);  // norms F32
  const nn::GgufVocab back = nn::read_gguf_vocab(f);
  CHECK(back.model == vocab.model);
  CHECK(back.tokens == vocab.tokens);
  CHECK(back.scores == vocab.scores);
  CHECK(back.types == vocab.types);
  CHECK(back.unk == vocab.unk);
  CHECK(back.bos == vocab.bos);
  CHECK(back.eos == vocab.eos);
  CHECK(back.add_bos == vocab.add_bos);
  CHECK(back.extra.empty());

  // The tokenizer rebuilt from the file gives tok512.bin's ids on every story.
  const text::Llama2cTokenizer rebuilt = nn::llama2c_tokenizer_of(back, path.string());
  const auto stories = text::tinystories_stories(io::read_file(data / "tinystories" / "TinyStories-valid.first246.txt"));
  std::size_t ids = 0;
  for (const auto& story : stories) {
    const auto want = tok.encode(story, true, false);
    CHECK(rebuilt.encode(story, true, false) == want);
    ids += want.size();
  }
  CHECK(ids > 50000);
  // So the study's data for the GGUF model is the llama2.c model's, window for window.
  study::StudyOptions so;
  so.calib = 16;
  so.seq_len = 128;
  const auto from_gguf = study::load_study_data(so, ck.config, path, data, 4);
  const auto from_bin = study::load_study_data(so, ck.config, data / "stories260K" / "stories260K.bin", data, 4);
  REQUIRE(from_gguf.calibration.size() == from_bin.calibration.size());
  for (std::size_t i = 0; i < from_bin.calibration.size(); ++i)
    CHECK(std::vector<int>(from_gguf.calibration[i].begin(), from_gguf.calibration[i].end()) ==
          std::vector<int>(from_bin.calibration[i].begin(), from_bin.calibration[i].end()));
  CHECK(from_gguf.test.size() == from_bin.test.size());
  CHECK(study::StudyData::predicted(from_gguf.ood) == study::StudyData::predicted(from_bin.ood));
  // The weights read back are the F16 values.
  const nn::Checkpoint lazy = nn::load_checkpoint(path);
  const auto w = lazy.get("model.layers.0.self_attn.q_proj.weight").values;
  const auto orig = ck.get("model.layers.0.self_attn.q_proj.weight").values;
  std::size_t differ = 0;
  for (std::size_t i = 0; i < w.size(); ++i) differ += w[i] != io::f16_to_f32(io::f32_to_f16(orig[i]));
  CHECK(differ == 0);
  fs::remove(path);
}

TEST_CASE("gguf input: vocabularies read back as written, and bad metadata is named") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const nn::GgufVocab gpt2 = nn::gguf_gpt2_vocab(data / "gpt2-bpe");
  io::GgufWriter w;
  w.set("general.architecture", io::GgufValue::string("gpt2"));
  gpt2.set(w);
  const fs::path path = temp_gguf("lowbit_vocab_only");
  w.write(path, [](std::size_t, std::vector<std::uint8_t>&) {});
  {
    const nn::GgufVocab back = nn::read_gguf_vocab(io::GgufFile::open(path));
    CHECK(back.model == "gpt2");
    CHECK(back.pre == gpt2.pre);
    CHECK(back.tokens == gpt2.tokens);
    CHECK(back.merges == gpt2.merges);
    CHECK(back.types == gpt2.types);
    CHECK(back.bos == gpt2.bos);
    CHECK(back.eos == gpt2.eos);
    CHECK_THROWS_WITH(nn::llama2c_tokenizer_of(back, "x.gguf"), doctest::Contains("this one is 'gpt2'"));
  }
  // Keys GgufVocab has no field for come back as they were, and are written again.
  {
    io::GgufWriter x;
    x.set("tokenizer.ggml.model", io::GgufValue::string("llama"));
    x.set("tokenizer.ggml.tokens", io::GgufValue::strings(std::vector<std::string>{"a", "b"}));
    x.set("tokenizer.ggml.add_space_prefix", io::GgufValue::boolean(false));
    x.write(path, [](std::size_t, std::vector<std::uint8_t>&) {});
    const nn::GgufVocab v = nn::read_gguf_vocab(io::GgufFile::open(path));
    REQUIRE(v.extra.size() == 1);
    CHECK(v.extra[0].first == "tokenizer.ggml.add_space_prefix");
    io::GgufWriter again;
    v.set(again);
    again.write(path, [](std::size_t, std::vector<std::uint8_t>&) {});
    const io::GgufFile f = io::GgufFile::open(path);
    REQUIRE(f.find("tokenizer.ggml.add_space_prefix") != nullptr);
    CHECK(f.at("tokenizer.ggml.add_space_prefix").u == 0);
  }
  // A token type array of the wrong length, and a BOS id past the vocabulary.
  io::GgufWriter bad;
  bad.set("tokenizer.ggml.model", io::GgufValue::string("llama"));
  bad.set("tokenizer.ggml.tokens", io::GgufValue::strings(std::vector<std::string>{"a", "b"}));
  bad.set("tokenizer.ggml.token_type", io::GgufValue::i32s(std::vector<std::int32_t>{1}));
  bad.write(path, [](std::size_t, std::vector<std::uint8_t>&) {});
  CHECK_THROWS_WITH(nn::read_gguf_vocab(io::GgufFile::open(path)),
                    doctest::Contains("'tokenizer.ggml.token_type' has 1 entries for 2 tokens"));
  io::GgufWriter bad_id;
  bad_id.set("tokenizer.ggml.model", io::GgufValue::string("llama"));
  bad_id.set("tokenizer.ggml.tokens", io::GgufValue::strings(std::vector<std::string>{"a", "b"}));
  bad_id.set("tokenizer.ggml.bos_token_id", io::GgufValue::u32(7));
  bad_id.write(path, [](std::size_t, std::vector<std::uint8_t>&) {});
  CHECK_THROWS_WITH(nn::read_gguf_vocab(io::GgufFile::open(path)), doctest::Contains("tokenizer.ggml.bos_token_id"));
  // No tokenizer at all: no_vocab.
  io::GgufWriter none;
  none.set("general.architecture", io::GgufValue::string("llama"));
  none.write(path, [](std::size_t, std::vector<std::uint8_t>&) {});
  CHECK(nn::read_gguf_vocab(io::GgufFile::open(path)).is_none());
  fs::remove(path);
}

TEST_CASE("gguf model: a file of an architecture lowbit does not know is refused by name") {
  const fs::path path = temp_gguf("lowbit_not_llama");
  io::GgufWriter w;
  w.set("general.architecture", io::GgufValue::string("bert"));
  w.write(path, std::vector<std::vector<std::uint8_t>>{});
  CHECK_THROWS_WITH_AS(nn::load_gguf(path), doctest::Contains("architecture 'bert' is not one lowbit reads (llama, gpt2)"),
                       Error);
  io::GgufWriter v;
  v.set("general.architecture", io::GgufValue::string("llama"));
  v.write(path, std::vector<std::vector<std::uint8_t>>{});
  CHECK_THROWS_WITH_AS(nn::load_gguf(path), doctest::Contains("metadata 'llama.embedding_length' is missing"),
                       Error);
  fs::remove(path);
}

TEST_CASE("gguf gpt2: pd-1m read back from GGUF computes the same logits") {
  const nn::Checkpoint ck = nn::load_checkpoint(fs::path(LOWBIT_SOURCE_DIR) / "models" / "pd-1m");
  REQUIRE(ck.config.arch == nn::Architecture::gpt2);
  const fs::path path = temp_gguf("lowbit_pd1m");
  nn::write_gguf(path, ck, nullptr, {}, "pd-1m");
  {
    const io::GgufFile f = io::GgufFile::open(path);
    CHECK(f.string("general.architecture") == "gpt2");
    CHECK(f.integer("gpt2.embedding_length") == 128);
    CHECK(f.integer("gpt2.feed_forward_length") == 512);
    CHECK(f.at("gpt2.attention.layer_norm_epsilon").f == doctest::Approx(1e-5));
    CHECK(f.tensor("blk.0.attn_qkv.weight").ne == std::vector<std::uint64_t>{128, 384});  // ne = [in, out]
    CHECK(f.tensor("blk.4.ffn_down.weight").ne == std::vector<std::uint64_t>{512, 128});
    CHECK(f.find_tensor("output.weight") == nullptr);  // tied: llama.cpp reuses token_embd
  }
  const nn::Checkpoint back = nn::load_gguf(path);
  CHECK(back.config.arch == nn::Architecture::gpt2);
  CHECK(back.config.tied_head);
  CHECK(back.config.norm_eps == ck.config.norm_eps);
  REQUIRE(back.names() == ck.names());
  for (const std::string& name : ck.names()) {
    CAPTURE(name);
    CHECK(back.weights.at(name).values == ck.get(name).values);
  }
  const nn::Transformer a(ck), b(back);
  const std::vector<int> ids{5, 17, 300, 2, 9000, 21629, 41};
  CHECK(logits_of(a, ids) == logits_of(b, ids));

  // q4_k: rows of 512 (mlp.c_proj) take it; rows of 128 take llama.cpp's fallback
  // q5_0; biases, norms and the position embedding stay F32.
  nn::write_gguf(path, ck, nullptr, nn::gguf_rtn_codec(QuantSpec::parse("q4_k")), "pd-1m");
  const io::GgufFile f = io::GgufFile::open(path);
  CHECK(f.tensor("blk.0.ffn_down.weight").ggml_type == 12);  // GGML_TYPE_Q4_K
  CHECK(f.tensor("blk.0.ffn_up.weight").ggml_type == 6);     // GGML_TYPE_Q5_0
  CHECK(f.tensor("token_embd.weight").ggml_type == 6);
  CHECK(f.tensor("position_embd.weight").ggml_type == 0);
  CHECK(f.tensor("blk.0.attn_qkv.bias").ggml_type == 0);
  const nn::Checkpoint q = nn::load_gguf(path);
  fs::remove(path);
  const nn::Weight w = ck.get("transformer.h.0.mlp.c_proj.weight");
  const auto bytes = blocks::quantize(blocks::BlockType::q4_k, ConstMatrixView(w.values.data(), w.shape[0], w.shape[1]),
                                      "c_proj", nullptr);
  std::vector<float> want(w.values.size());
  blocks::dequantize(blocks::BlockType::q4_k, bytes.data(), MatrixView(want.data(), w.shape[0], w.shape[1]), "c_proj");
  CHECK(q.weights.at("transformer.h.0.mlp.c_proj.weight").values == want);
}

TEST_CASE("gguf gpt2: a compact vocabulary is GPT-2's token texts, merges and an unknown token") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const fs::path model = fs::path(LOWBIT_SOURCE_DIR) / "models" / "pd-1m";
  const auto compact = text::CompactVocab::load(model / "compact_vocab.json");
  const nn::GgufVocab v = nn::gguf_gpt2_vocab(data / "gpt2-bpe", &compact);
  REQUIRE(v.size() == compact.size());
  CHECK(v.model == "gpt2");
  CHECK(v.pre == "gpt-2");
  CHECK(v.merges.size() == 50000);
  CHECK(v.merges.front() == "\xc4\xa0 t");  // "Ġ t", GPT-2's first merge
  CHECK(v.unk == static_cast<std::uint32_t>(compact.unk_id()));
  CHECK(v.types.back() == static_cast<std::int32_t>(nn::GgufTokenType::unknown));
  REQUIRE(v.eos.has_value());
  CHECK(compact.to_gpt2(static_cast<int>(*v.eos)) == 50256);
  CHECK(v.tokens[*v.eos] == "<|endoftext|>");
  // Each kept id's text is GPT-2's byte-level text of its GPT-2 id.
  const auto tok = text::Gpt2Tokenizer::from_dir(data / "gpt2-bpe");
  const nn::GgufVocab full = nn::gguf_gpt2_vocab(data / "gpt2-bpe");
  REQUIRE(full.size() == 50257);
  CHECK(full.tokens[262] == "\xc4\xa0the");  // "Ġthe"
  for (int c = 0; c < compact.unk_id(); c += 97) CHECK(v.tokens[static_cast<std::size_t>(c)] == full.tokens[static_cast<std::size_t>(compact.to_gpt2(c))]);
  CHECK(tok.token_bytes(262) == " the");

  const nn::Checkpoint ck = nn::load_checkpoint(model);
  const fs::path path = temp_gguf("lowbit_pd1m_vocab");
  nn::write_gguf(path, ck, &v, {}, "pd-1m");
  const io::GgufFile f = io::GgufFile::open(path);
  fs::remove(path);
  CHECK(f.string("tokenizer.ggml.model") == "gpt2");
  CHECK(f.at("tokenizer.ggml.merges").items.size() == 50000);
  CHECK(f.at("tokenizer.ggml.tokens").items.size() == static_cast<std::size_t>(compact.size()));
}
