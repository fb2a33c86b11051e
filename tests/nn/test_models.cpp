// nn::Transformer against PyTorch forward passes: the real stories260K (llama2.c)
// and tiny Hugging Face GPT-2 / Llama checkpoints written by PyTorch.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "../io/shared_data.hpp"
#include "../support/fixture.hpp"
#include "tiny_config.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/autograd/cross_entropy.hpp"
#include "lowbit/nn.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"
#include "lowbit/text/tinystories.hpp"
#include "../support/logits.hpp"
#include "../support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using lowbit::Index;
using lowbit::test::logits_of;
using lowbit::test::temp_dir;
using lowbit::nn::Transformer;

std::vector<int> as_ids(const lowbit::test::FixtureTensor& t) {
  std::vector<int> ids;
  for (float v : t.values) ids.push_back(static_cast<int>(v));
  return ids;
}


// The fixtures' NLL protocol (scripts/fixtures/gen_hf_checkpoints.py): windows
// ids[s : s + ctx] for s = 0, ctx, 2·ctx, …, each predicting its last L − 1 tokens.
std::vector<std::span<const int>> hf_windows(const std::vector<int>& ids, std::size_t ctx) {
  std::vector<std::span<const int>> w;
  for (std::size_t s = 0; s + 1 < ids.size(); s += ctx) {
    const std::size_t n = std::min(ctx, ids.size() - s);
    if (n < 2) break;
    w.emplace_back(ids.data() + s, n);
  }
  return w;
}

void check_hf_reference(const std::string& name, int ctx, double tolerance = 1e-4) {
  const lowbit::test::Fixture ref("models/" + name + "/reference.txt");
  const Transformer m = Transformer::load(fs::path(LOWBIT_FIXTURE_DIR) / "models" / name);
  const auto ids = as_ids(ref["ids"]);
  const auto tally = lowbit::nn::evaluate(m, hf_windows(ids, static_cast<std::size_t>(ctx)));
  CHECK(tally.tokens() == static_cast<std::int64_t>(ref["tokens"].values[0]));
  const double want = ref["nll"].values[0];
  CHECK(std::abs(tally.mean_nll() - want) <= tolerance * std::abs(want));
  MESSAGE(name << ": NLL " << tally.mean_nll() << " vs PyTorch " << want);

  const std::vector<int> first(ids.begin(), ids.begin() + ctx);
  const auto logits = logits_of(m, first);
  const auto& pos = ref["logit_positions"].values;
  // The GPT-2 fixture samples 1024 of the 50257 columns; the Llama one keeps all.
  std::vector<float> cols;
  if (ref.has("logit_columns")) {
    cols = ref["logit_columns"].values;
  } else {
    for (int c = 0; c < m.config().vocab; ++c) cols.push_back(static_cast<float>(c));
  }
  const auto& want_logits = ref["logits"].values;
  const Index vocab = m.config().vocab;
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < pos.size(); ++i)
    for (std::size_t j = 0; j < cols.size(); ++j) {
      const double got = logits[static_cast<std::size_t>(static_cast<Index>(pos[i]) * vocab + static_cast<Index>(cols[j]))];
      const double w = want_logits[i * cols.size() + j];
      worst = std::max(worst, std::abs(got - w));
      scale = std::max(scale, std::abs(w));
    }
  MESSAGE(name << ": worst logit difference " << worst << " (largest logit " << scale << ")");
  CHECK(worst <= tolerance * std::max(1.0, scale));
}

using lowbit::test::tiny_config;


}  // namespace

TEST_CASE("stories260K: mean NLL on the TinyStories head matches a PyTorch forward to 1e-5") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const lowbit::test::Fixture ref("models/stories260k_reference.txt");
  const Transformer m = Transformer::load(data / "stories260K" / "stories260K.bin");
  CHECK(m.config().layers == 5);
  CHECK(m.config().kv_heads == 4);
  const auto tok = lowbit::text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", m.config().vocab);
  const auto stories = lowbit::text::tinystories_stories(
      lowbit::io::read_file(data / "tinystories" / "TinyStories-valid.head.txt"));
  REQUIRE(stories.size() == 46);
  std::vector<std::vector<int>> tokens;
  std::vector<std::span<const int>> windows;
  for (const auto& s : stories) tokens.push_back(lowbit::text::tinystories_tokens(tok, s));
  for (const auto& t : tokens)
    for (auto w : lowbit::text::story_windows(t, m.config().context)) windows.push_back(w);
  const auto tally = lowbit::nn::evaluate(m, windows);
  CHECK(tally.tokens() == static_cast<std::int64_t>(ref["tokens_head"].values[0]));
  MESSAGE("stories260K head NLL " << tally.mean_nll() << " vs PyTorch " << ref["nll_head"].values[0]);
  CHECK(std::abs(tally.mean_nll() - ref["nll_head"].values[0]) <= 1e-5);

  // Logits of the first story's first 64 tokens at positions 0, 1, 31, 63.
  const auto& story0 = ref["story0.tokens"].values;
  const auto story0_ids = as_ids(ref["story0.tokens"]);
  const std::vector<int> first64(story0_ids.begin(), story0_ids.begin() + 64);
  CHECK(static_cast<int>(story0[1]) == tokens[0][1]);
  const auto logits = logits_of(m, first64);
  const auto& want = ref["story0.logits_pos_0_1_31_63"].values;
  const int positions[] = {0, 1, 31, 63};
  double worst = 0;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 512; ++j)
      worst = std::max(worst, std::abs(static_cast<double>(logits[static_cast<std::size_t>(positions[i] * 512 + j)]) -
                                        want[static_cast<std::size_t>(i * 512 + j)]));
  MESSAGE("stories260K worst logit difference " << worst);
  CHECK(worst < 2e-5);

  // Greedy generation from "Once upon a time" picks PyTorch's tokens.
  const auto prompt = tok.encode("Once upon a time", true, false);
  const auto out = lowbit::nn::generate_greedy(m, prompt, 40);
  CHECK(out == as_ids(ref["greedy.tokens"]));
  MESSAGE("greedy: " << tok.decode(std::span<const int>(out).subspan(1)));
}

TEST_CASE("stories260K: the study's 246 stories give PyTorch's NLL to 1e-5") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const lowbit::test::Fixture ref("models/stories260k_reference.txt");
  const Transformer m = Transformer::load(data / "stories260K" / "stories260K.bin");
  const auto tok = lowbit::text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", m.config().vocab);
  std::vector<std::vector<int>> tokens;
  std::vector<std::span<const int>> windows;
  for (const auto& s : lowbit::text::tinystories_stories(
           lowbit::io::read_file(data / "tinystories" / "TinyStories-valid.first246.txt")))
    tokens.push_back(lowbit::text::tinystories_tokens(tok, s));
  for (const auto& t : tokens)
    for (auto w : lowbit::text::story_windows(t, m.config().context)) windows.push_back(w);
  const auto tally = lowbit::nn::evaluate(m, windows);
  CHECK(tally.tokens() == static_cast<std::int64_t>(ref["tokens_first246"].values[0]));
  CHECK(std::abs(tally.mean_nll() - ref["nll_first246"].values[0]) <= 1e-5);
}

TEST_CASE("GPT-2 (HF layout, PyTorch-written, F16, real vocabulary): NLL and logits to 1e-4 relative") {
  check_hf_reference("gpt2_tiny", 128);
}

TEST_CASE("Llama (HF layout, PyTorch-written, BF16, GQA, rotate_half RoPE): NLL and logits to 1e-4 relative") {
  check_hf_reference("llama_tiny", 256);
}

// The Llama family as config.json describes it, each written by PyTorch as sharded
// BF16 folders with model.safetensors.index.json (scripts/fixtures/gen_hf_checkpoints.py).
TEST_CASE("Llama 3 (sharded BF16, llama3 RoPE scaling, explicit head_dim, tied): NLL and logits to 1e-5 relative") {
  check_hf_reference("llama3_tiny", 256, 1e-5);
}

TEST_CASE("Mistral (three BF16 shards, GQA, sliding window wider than the context): NLL and logits to 1e-5 relative") {
  check_hf_reference("mistral_tiny", 256, 1e-5);
}

TEST_CASE("Qwen2 (sharded BF16, q/k/v biases, tied): NLL and logits to 1e-5 relative") {
  check_hf_reference("qwen2_tiny", 256, 1e-5);
}

TEST_CASE("Qwen3 (sharded BF16, per-head q/k RMSNorm, head_dim 32 with width 64): NLL and logits to 1e-5 relative") {
  check_hf_reference("qwen3_tiny", 256, 1e-5);
}

TEST_CASE("linear-layer registry: the transformer stack only, block by block, stage by stage") {
  using lowbit::nn::Architecture;
  using lowbit::nn::LinearRole;
  const Transformer llama(tiny_config(Architecture::llama), 1);
  const auto& ll = llama.linear_layers();
  REQUIRE(ll.size() == 14);
  CHECK(ll[0].name == "model.layers.0.self_attn.q_proj.weight");
  CHECK(ll[1].role == LinearRole::k);
  CHECK(ll[1].out_features() == 8);  // 2 kv heads × head size 4
  CHECK(ll[4].name == "model.layers.0.mlp.gate_proj.weight");
  CHECK(ll[6].in_features() == 40);
  CHECK(ll[13].name == "model.layers.1.mlp.down_proj.weight");
  int previous = -1;
  for (const auto& l : ll) {
    CHECK(l.bias == nullptr);
    CHECK(l.block * 4 + l.stage >= previous);
    previous = l.block * 4 + l.stage;
  }
  const Transformer gpt2(tiny_config(Architecture::gpt2), 1);
  const auto& gl = gpt2.linear_layers();
  REQUIRE(gl.size() == 8);
  CHECK(gl[0].name == "transformer.h.0.attn.c_attn.weight");
  CHECK(gl[0].out_features() == 48);
  CHECK(gl[0].bias != nullptr);
  CHECK(gl[3].role == LinearRole::mlp_out);
  CHECK_THROWS_AS((void)gpt2.linear("transformer.wte.weight"), lowbit::Error);
}

TEST_CASE("forward hooks: every layer's input is seen, and a weight hook replaces the weight") {
  using lowbit::nn::Architecture;
  for (auto arch : {Architecture::gpt2, Architecture::llama}) {
    Transformer m(tiny_config(arch), 7);
    const std::vector<int> ids{1, 5, 2, 22, 0, 9};
    std::vector<std::string> seen;
    lowbit::nn::ForwardHooks hooks;
    hooks.on_input = [&](const lowbit::nn::LinearLayer& l, lowbit::autograd::Tensor x) {
      seen.push_back(l.name);
      CHECK(x.shape().last() == l.in_features());
      CHECK(x.shape().rows() == 6);
    };
    {
      lowbit::autograd::Graph g;
      (void)m.forward(ids, 1, 6, hooks);
    }
    REQUIRE(seen.size() == m.linear_layers().size());
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == m.linear_layers()[i].name);

    // A weight hook returning zeros for one layer = zeroing that parameter.
    const auto& target = m.linear_layers()[1];
    std::vector<float> zeros(static_cast<std::size_t>(target.weight->numel()), 0.0f);
    lowbit::nn::ForwardHooks zero_hook;
    zero_hook.weight = [&](const lowbit::nn::LinearLayer& l) {
      return &l == &target ? lowbit::autograd::Graph::current("test").constant(target.weight->shape(), zeros)
                           : lowbit::autograd::Tensor{};
    };
    std::vector<float> hooked;
    {
      lowbit::autograd::Graph g;
      const auto t = m.forward(ids, 1, 6, zero_hook);
      hooked.assign(t.values().begin(), t.values().end());
    }
    const auto original = logits_of(m, ids);
    std::fill(target.weight->data(), target.weight->data() + target.weight->numel(), 0.0f);
    const auto zeroed = logits_of(m, ids);
    CHECK(hooked == zeroed);
    CHECK(hooked != original);
  }
}

TEST_CASE("the model's gradients match finite differences of its loss") {
  using lowbit::nn::Architecture;
  for (auto arch : {Architecture::gpt2, Architecture::llama}) {
    Transformer m(tiny_config(arch), 3);
    const std::vector<int> ids{3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
    const std::vector<int> targets{1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
    const auto loss = [&] {
      lowbit::autograd::Graph g;
      lowbit::autograd::NoGradGuard ng;
      return static_cast<double>(lowbit::autograd::cross_entropy(m.forward(ids, 2, 5), targets).item());
    };
    for (auto* p : m.parameters()) p->zero_grad();
    {
      lowbit::autograd::Graph g;
      lowbit::autograd::backward(lowbit::autograd::cross_entropy(m.forward(ids, 2, 5), targets));
    }
    int checked = 0;
    for (auto* p : m.parameters()) {
      // Largest-gradient entry of every parameter: its finite difference is well above float noise.
      const auto gr = p->grads();
      const auto k = static_cast<std::size_t>(std::max_element(gr.begin(), gr.end(), [](float a, float b) {
                                                return std::abs(a) < std::abs(b);
                                              }) - gr.begin());
      if (std::abs(gr[k]) < 1e-3f) continue;
      const float saved = p->data()[k];
      const float h = 1e-2f * std::max(1.0f, std::abs(saved));
      p->data()[k] = saved + h;
      const double up = loss();
      p->data()[k] = saved - h;
      const double down = loss();
      p->data()[k] = saved;
      const double fd = (up - down) / (2.0 * static_cast<double>(h));
      INFO(p->name() << "[" << k << "]: autograd " << gr[k] << ", finite difference " << fd);
      CHECK(std::abs(fd - gr[k]) <= 3e-2 * std::abs(fd) + 2e-4);
      ++checked;
    }
    CHECK(checked >= 10);
  }
}

TEST_CASE("save_hf then load gives the same model (GPT-2 Conv1D transposes, llama2.c RoPE permutation)") {
  using lowbit::nn::Architecture;
  const std::vector<int> ids{1, 5, 2, 22, 0, 9, 4};
  for (auto arch : {Architecture::gpt2, Architecture::llama}) {
    auto cfg = tiny_config(arch);
    if (arch == Architecture::llama) cfg.rope_style = lowbit::autograd::RopeStyle::interleaved;  // as llama2.c
    Transformer m(cfg, 11);
    const auto dir = temp_dir(arch == Architecture::gpt2 ? "gpt2" : "llama");
    lowbit::nn::save_hf(m, dir);
    const Transformer back = Transformer::load(dir);
    CHECK(back.config().rope_style == lowbit::autograd::RopeStyle::half);
    const auto a = logits_of(m, ids), b = logits_of(back, ids);
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    CHECK(worst < 1e-5);
    fs::remove_all(dir);
  }
}

TEST_CASE("random initialisation is deterministic per seed, GPT-2's scale") {
  const auto cfg = tiny_config(lowbit::nn::Architecture::gpt2);
  Transformer a(cfg, 5), b(cfg, 5), c(cfg, 6);
  const auto sa = a.snapshot(), sb = b.snapshot(), sc = c.snapshot();
  CHECK(sa == sb);
  CHECK(sa != sc);
  const auto& wte = a.parameter("transformer.wte.weight");
  double ss = 0;
  for (float v : wte.values()) ss += static_cast<double>(v) * v;
  const double sd = std::sqrt(ss / static_cast<double>(wte.numel()));
  CHECK(sd == doctest::Approx(0.02).epsilon(0.15));
  a.restore(sc);
  CHECK(a.snapshot() == sc);
}

TEST_CASE("checkpoint errors name the file and the tensor") {
  const auto cfg = tiny_config(lowbit::nn::Architecture::gpt2);
  Transformer m(cfg, 2);
  const auto dir = temp_dir("errors");
  lowbit::nn::save_hf(m, dir);
  const auto rewrite = [&](const std::string& skip, const std::string& extra, float poison) {
    const auto file = lowbit::io::SafetensorsFile::open(dir / "model.safetensors");
    lowbit::io::SafetensorsWriter w;
    for (const auto& t : file.tensors()) {
      if (t.name == skip) continue;
      auto v = file.to_float(t.name);
      if (t.name == "transformer.h.1.ln_2.weight") v[3] = poison;
      w.add_f32(t.name, t.shape, v);
    }
    if (!extra.empty()) w.add_f32(extra, {2}, std::vector<float>{1, 2});
    const auto bad = temp_dir("bad");
    fs::copy_file(dir / "config.json", bad / "config.json");
    w.write(bad / "model.safetensors");
    return bad;
  };
  CHECK_THROWS_WITH_AS(Transformer::load(rewrite("transformer.h.0.mlp.c_fc.bias", "", 1.0f)),
                       doctest::Contains("has no tensor 'transformer.h.0.mlp.c_fc.bias'"), lowbit::Error);
  CHECK_THROWS_WITH_AS(Transformer::load(rewrite("", "", NAN)),
                       doctest::Contains("'transformer.h.1.ln_2.weight' has a non-finite value"), lowbit::Error);
  CHECK_THROWS_WITH_AS(Transformer::load(rewrite("", "transformer.h.7.attn.c_attn.bias", 1.0f)),
                       doctest::Contains("'transformer.h.7.attn.c_attn.bias' is not part of a GPT-2 model"),
                       lowbit::Error);
  // Shape that disagrees with config.json.
  auto wider = cfg;
  wider.hidden = 41;
  const auto bad = temp_dir("shape");
  lowbit::io::write_file_atomic(bad / "config.json", lowbit::nn::config_to_hf_json(wider).dump());
  fs::copy_file(dir / "model.safetensors", bad / "model.safetensors");
  CHECK_THROWS_WITH_AS(Transformer::load(bad), doctest::Contains("but the config needs"), lowbit::Error);
  CHECK_THROWS_WITH_AS(Transformer::load(dir / "nope"), doctest::Contains("does not exist"), lowbit::Error);
  fs::remove_all(dir);
  fs::remove_all(bad);
}
