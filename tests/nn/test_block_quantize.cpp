// A whole model into llama.cpp block types (nn/block_quantize.hpp) on stories260K:
// round-to-nearest gives llama.cpp's own bytes, the model then holds exactly what the
// file decodes to, a Hugging Face-layout copy of the model exports to the same file
// byte for byte, and GPTQ onto q4_0 (and llama.cpp's imatrix quantizer) beat plain
// round-to-nearest in NLL, and so does QAFT through q4_0, whose file holds the weights
// its training saw.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/nn.hpp"
#include "lowbit/nn/block_quantize.hpp"
#include "lowbit/nn/llama_cpp_presets.hpp"
#include "tiny_config.hpp"
#include "lowbit/study/block_qaft.hpp"
#include "lowbit/study/data.hpp"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

fs::path temp_gguf(const std::string& name) {
  return fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()) + ".gguf");
}

struct Stories {
  nn::Checkpoint ck;
  text::Llama2cTokenizer tok;
  study::StudyData data;
};

// calib 32, a quarter of the study's calibration set, keeps a test quick.
Stories load(const fs::path& dir, long calib = 32) {
  const fs::path model = dir / "stories260K" / "stories260K.bin";
  nn::Checkpoint ck = nn::load_checkpoint(model);
  auto tok = text::Llama2cTokenizer::load(dir / "stories260K" / "tok512.bin", ck.config.vocab);
  study::StudyOptions o;
  o.calib = calib;
  auto data = study::load_study_data(o, ck.config, model, dir, 0);
  return {std::move(ck), std::move(tok), std::move(data)};
}

}  // namespace

TEST_CASE("block quantize: RTN is llama.cpp's bytes, and the model holds what the file decodes to") {
  LOWBIT_REQUIRE_SHARED_DATA(dir);
  const Stories s = load(dir);
  const QuantSpec q4 = QuantSpec::parse("q4_0");
  nn::Transformer m(s.ck);
  const auto enc = nn::quantize_to_blocks(m, q4, nn::BlockMethod::rtn);
  REQUIRE(enc.size() == m.linear_layers().size());
  for (const auto& l : m.linear_layers()) {
    CAPTURE(l.name);
    const auto& e = enc.at(l.name);
    const auto& w = s.ck.weights.at(l.name);
    const ConstMatrixView wv(w.values.data(), w.shape[0], w.shape[1]);
    if (w.shape[1] % 32 != 0) {
      CHECK(e.ggml_type == 1);  // w2's rows of 172: F16
      continue;
    }
    CHECK(e.ggml_type == 2);
    CHECK(e.bytes == blocks::quantize(blocks::BlockType::q4_0, wv, l.name, nullptr));
    std::vector<float> decoded(w.values.size());
    blocks::dequantize(blocks::BlockType::q4_0, e.bytes.data(), MatrixView(decoded.data(), w.shape[0], w.shape[1]));
    const auto held = l.weight->values();
    CHECK(std::memcmp(held.data(), decoded.data(), decoded.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("block quantize: a Hugging Face-layout copy exports to the same GGUF, byte for byte") {
  LOWBIT_REQUIRE_SHARED_DATA(dir);
  const Stories s = load(dir);
  nn::Checkpoint hf = s.ck;  // q/k rows in rotate_half order, the config saying so
  hf.config.rope_style = autograd::RopeStyle::half;
  for (auto& [name, w] : hf.weights)
    if (name.ends_with("q_proj.weight") || name.ends_with("k_proj.weight"))
      w.values = nn::permute_rope_rows<float>(w.values, w.shape[0], w.shape[1], hf.config.head_dim(),
                                              nn::RopeRows::to_half);
  const QuantSpec q8 = QuantSpec::parse("q8_0");
  const fs::path a = temp_gguf("lowbit_interleaved"), b = temp_gguf("lowbit_half");
  nn::Transformer mi(s.ck), mh(hf);
  const nn::GgufVocab vocab = nn::gguf_spm_vocab(s.tok);
  nn::write_gguf(a, mi, nn::quantize_to_blocks(mi, q8, nn::BlockMethod::rtn), q8, &vocab);
  nn::write_gguf(b, mh, nn::quantize_to_blocks(mh, q8, nn::BlockMethod::rtn), q8, &vocab);
  const std::string fa = io::read_file(a), fb = io::read_file(b);
  fs::remove(a);
  fs::remove(b);
  CHECK(fa.size() == fb.size());
  CHECK(fa == fb);
}

TEST_CASE("block quantize: GPTQ onto q4_0 and llama.cpp's imatrix quantizer beat round-to-nearest in NLL") {
  LOWBIT_REQUIRE_SHARED_DATA(dir);
  const Stories s = load(dir);
  const QuantSpec q4 = QuantSpec::parse("q4_0");
  const auto nll = [&](nn::BlockMethod method) {
    nn::Transformer m(s.ck);
    (void)nn::quantize_to_blocks(m, q4, method, s.data.calibration);
    return nn::evaluate(m, s.data.validation).mean_nll();
  };
  const double fp = nn::evaluate(nn::Transformer(s.ck), s.data.validation).mean_nll();
  const double rtn = nll(nn::BlockMethod::rtn), imatrix = nll(nn::BlockMethod::rtn_imatrix),
               gptq = nll(nn::BlockMethod::gptq);
  std::string report = "stories260K q4_0 validation NLL: fp ";
  report += std::to_string(fp) + ", RTN " + std::to_string(rtn) + ", imatrix " + std::to_string(imatrix) + ", GPTQ ";
  report += std::to_string(gptq);
  MESSAGE(report);
  CHECK(fp < gptq);
  CHECK(gptq < rtn);
  CHECK(imatrix < rtn);
  CHECK_THROWS_WITH_AS((void)nn::quantize_to_blocks(*std::make_unique<nn::Transformer>(s.ck), q4,
                                                    nn::BlockMethod::gptq),
                       doctest::Contains("gptq needs calibration windows"), Error);
  nn::Transformer m(s.ck);
  CHECK_THROWS_WITH_AS((void)nn::quantize_to_blocks(m, QuantSpec::parse("int4:g32"), nn::BlockMethod::rtn),
                       doctest::Contains("int4:g32 is not a llama.cpp block format"), Error);
  CHECK_THROWS_WITH_AS((void)nn::parse_block_method("awq", "--method"),
                       doctest::Contains("--method 'awq' is not one of rtn, imatrix, gptq"), Error);
}

TEST_CASE("block quantize: QAFT through q4_0 trains the forward pass the file holds, and beats round-to-nearest") {
  LOWBIT_REQUIRE_SHARED_DATA(dir);
  const Stories s = load(dir, 128);  // the study's protocol: 128 sequences, one epoch
  const nn::BlockPlan plan(QuantSpec::parse("q4_0"));
  nn::Transformer rtn(s.ck);  // the whole file's weights, embedding included
  nn::round_other_tensors(rtn, plan);
  (void)nn::quantize_to_blocks(rtn, plan, nn::BlockMethod::rtn);
  const double rtn_nll = nn::evaluate(rtn, s.data.validation).mean_nll();

  nn::Transformer m(s.ck);
  study::QaftOptions opt;
  opt.lr = 1e-4;  // the better of the study's two rates here (lowbit-quantize --lr 1e-4,1e-3)
  study::qaft_to_blocks(m, plan, s.data.calibration, opt);
  // The embedding already holds llama.cpp's q4_0 of itself; w2 (rows of 172, F16 in
  // the file) has no q4_0 quantizer and stays frozen; every other layer trained.
  const auto& emb = s.ck.weights.at("model.embed_tokens.weight");
  std::vector<float> emb_q4(emb.values.size());
  const ConstMatrixView ev(emb.values.data(), emb.shape[0], emb.shape[1]);
  const auto emb_bytes = blocks::quantize(blocks::BlockType::q4_0, ev, "embed", nullptr);
  blocks::dequantize(blocks::BlockType::q4_0, emb_bytes.data(), MatrixView(emb_q4.data(), emb.shape[0], emb.shape[1]));
  for (auto* p : m.parameters())
    if (p->name() == "model.embed_tokens.weight") CHECK(std::memcmp(p->values().data(), emb_q4.data(), emb_q4.size() * 4) == 0);
  const LayerQuantizers quantizers = nn::block_quantizers(m, plan);
  for (const auto& l : m.linear_layers()) {
    CAPTURE(l.name);
    const auto& before = s.ck.weights.at(l.name).values;
    const bool same = std::memcmp(l.weight->values().data(), before.data(), before.size() * 4) == 0;
    CHECK(same == (l.in_features() % 32 != 0));
    CHECK((quantizers.find(l.name) == nullptr) == (l.in_features() % 32 != 0));
  }
  double seen = 0;  // the quantized model as training's forward pass computed it
  study::with_quantized_weights(m, quantizers, [&] { seen = nn::evaluate(m, s.data.validation).mean_nll(); });

  const auto encoded = nn::quantize_to_blocks(m, plan, nn::BlockMethod::qaft);
  const double qaft_nll = nn::evaluate(m, s.data.validation).mean_nll();
  const fs::path file = temp_gguf("qaft_q4_0");
  nn::write_gguf(file, m, encoded, plan);
  const double file_nll = nn::evaluate(nn::Transformer(nn::load_gguf(file)), s.data.validation).mean_nll();
  fs::remove(file);
  std::string report = "stories260K q4_0 validation NLL: RTN " + std::to_string(rtn_nll) + ", QAFT " +
                       std::to_string(qaft_nll) + " (as trained " + std::to_string(seen) + ", from the file ";
  report += std::to_string(file_nll) + ")";
  MESSAGE(report);
  CHECK(qaft_nll == doctest::Approx(file_nll).epsilon(1e-6));
  CHECK(std::abs(qaft_nll - seen) < 1e-4);  // only w2's float16 rounding differs
  CHECK(qaft_nll < rtn_nll);

  // QAFT's control (study::NoQuantization): the same training in float trains every
  // layer, w2 included, and its loss falls from epoch to epoch.
  nn::Transformer ft(s.ck);
  std::vector<double> losses;
  opt.epochs = 2;
  study::qaft_train(ft, s.data.calibration, study::NoQuantization{}, opt,
                    [&](long, double loss) { losses.push_back(loss); });
  REQUIRE(losses.size() == 2);
  CHECK(losses[1] < losses[0]);
  for (const auto& l : ft.linear_layers()) {
    CAPTURE(l.name);
    const auto& before = s.ck.weights.at(l.name).values;
    CHECK(std::memcmp(l.weight->values().data(), before.data(), before.size() * 4) != 0);
  }
}

TEST_CASE("block quantize: a plan gives tensors matching a pattern another type, as llama-quantize --tensor-type") {
  nn::BlockPlan plan(QuantSpec::parse("q8_0"));
  plan.add("attn_v=q4_0");
  plan.add("token_embd=q5_0");
  plan.add("blk\\.1\\..*=q4_1");  // first match wins: blk.1.attn_v stays q4_0
  CHECK(plan.str() == "q8_0,attn_v=q4_0,token_embd=q5_0,blk\\.1\\..*=q4_1");
  CHECK(plan.spec_for("blk.0.attn_v.weight").str() == "q4_0");
  CHECK(plan.spec_for("blk.1.attn_v.weight").str() == "q4_0");
  CHECK(plan.spec_for("blk.1.ffn_up.weight").str() == "q4_1");
  CHECK(plan.spec_for("blk.0.ffn_up.weight").str() == "q8_0");
  CHECK(plan.spec_for(nn::Architecture::llama, "model.embed_tokens.weight").str() == "q5_0");
  CHECK_THROWS_WITH_AS(plan.add("ffn_down", "--scheme-for"),
                       doctest::Contains("--scheme-for 'ffn_down': expected PATTERN=TYPE"), Error);
  CHECK_THROWS_WITH_AS(plan.add("ffn_down=int4:g32", "--scheme-for"),
                       doctest::Contains("int4:g32 is not a llama.cpp block format"), Error);
  CHECK_THROWS_WITH_AS(plan.add("ffn_(down=q6_k", "--scheme-for"),
                       doctest::Contains("'ffn_(down' is not a regular expression"), Error);

  // The file holds the planned types (rows of 64 fit every one of them).
  const nn::Checkpoint ck = nn::load_checkpoint(fs::path(LOWBIT_FIXTURE_DIR) / "models" / "llama_tiny");
  nn::Transformer m(ck);
  nn::BlockPlan tiny(QuantSpec::parse("q8_0"));
  tiny.add("attn_v=q4_0");
  tiny.add("token_embd=q5_0");
  const auto enc = nn::quantize_to_blocks(m, tiny, nn::BlockMethod::rtn);
  const fs::path path = temp_gguf("lowbit_plan");
  nn::write_gguf(path, m, enc, tiny);
  const io::GgufFile f = io::GgufFile::open(path);
  fs::remove(path);
  for (const auto& t : f.tensors()) {
    CAPTURE(t.name);
    if (t.ne.size() < 2) CHECK(t.ggml_type == 0);
    else if (t.name.find("attn_v") != std::string::npos) CHECK(t.ggml_type == (t.ne[0] % 32 == 0 ? 2u : 1u));
    else if (t.name == "token_embd.weight") CHECK(t.ggml_type == (t.ne[0] % 32 == 0 ? 6u : 1u));
    else CHECK(t.ggml_type == (t.ne[0] % 32 == 0 ? 8u : 1u));
  }
}

TEST_CASE("block quantize: llama-quantize presets as plans (checked against llama.cpp itself by llama_cpp.judge)") {
  nn::TransformerConfig gpt2;  // pd-5m's shape
  gpt2.arch = nn::Architecture::gpt2;
  gpt2.dim = 256;
  gpt2.hidden = 1024;
  gpt2.layers = 6;
  gpt2.heads = gpt2.kv_heads = 8;
  gpt2.vocab = 21630;
  gpt2.context = 128;
  gpt2.tied_head = true;
  const nn::BlockPlan m = nn::llama_cpp_preset("Q4_K_M", gpt2);
  CHECK(m.base().str() == "q4_k");
  // use_more_bits(i, 6): i >= 5 or i % 3 == 2, so layers 2 and 5 get Q6_K.
  for (int i = 0; i < 6; ++i) {
    CAPTURE(i);
    const std::string want = i == 2 || i == 5 ? "q6_k" : "q4_k", blk = "blk." + std::to_string(i);
    CHECK(m.spec_for(blk + ".attn_qkv.weight").str() == want);  // GPT-2's fused qkv is llama.cpp's attn_v
    CHECK(m.spec_for(blk + ".ffn_down.weight").str() == want);
    CHECK(m.spec_for(blk + ".ffn_up.weight").str() == "q4_k");
  }
  CHECK(m.spec_for("token_embd.weight").str() == "q6_k");  // tied: the classifier's type
  CHECK(nn::llama_cpp_preset("q8_0", gpt2).spec_for("token_embd.weight").str() == "q8_0");

  nn::TransformerConfig llama = test::tiny_config(nn::Architecture::llama);
  llama.layers = 5;
  llama.dim = 64;
  const nn::BlockPlan k3 = nn::llama_cpp_preset("Q3_K_M", llama);
  CHECK(k3.spec_for("blk.1.attn_v.weight").str() == "q5_k");
  CHECK(k3.spec_for("blk.2.attn_v.weight").str() == "q4_k");
  CHECK(k3.spec_for("blk.0.attn_output.weight").str() == "q4_k");
  CHECK(k3.spec_for("blk.0.ffn_down.weight").str() == "q4_k");
  CHECK(k3.spec_for("blk.0.attn_q.weight").str() == "q3_k");
  CHECK(k3.spec_for("output.weight").str() == "q8_0");  // rows of 64 are not whole q3_k blocks
  const nn::BlockPlan q4 = nn::llama_cpp_preset("Q4_0", llama, true);
  CHECK(q4.spec_for("output.weight").str() == "q6_k");        // then llama.cpp's fallback for rows of 64
  CHECK(q4.spec_for("blk.0.ffn_down.weight").str() == "q4_0");  // n/8 = 0 layers protected with an imatrix
  CHECK_THROWS_WITH_AS((void)nn::llama_cpp_preset("Q4_K_XL", llama),
                       doctest::Contains("llama.cpp preset 'Q4_K_XL' is not one lowbit knows (Q8_0, Q6_K"), Error);
}
