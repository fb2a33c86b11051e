// config.json and checkpoints from untrusted places (issue #17): integers are never
// narrowed silently, non-finite or mistyped numbers and unsupported values of keys
// that change the computation are errors naming the file and the key, and a config
// that implies more parameters than its checkpoint holds stops at the first tensor
// the file lacks, having allocated only what the file holds.
#include <doctest/doctest.h>

#include <string>

#include "lowbit/io/json.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/transformer.hpp"
#include "tiny_config.hpp"

namespace {

using lowbit::Error;
namespace nn = lowbit::nn;

const char* const kGpt2 =
    R"({"model_type": "gpt2", "n_embd": 16, "n_layer": 2, "n_head": 4, "vocab_size": 23, "n_positions": 12)";
const char* const kLlama =
    R"({"model_type": "llama", "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 23, "max_position_embeddings": 12)";

nn::TransformerConfig parse_text(const std::string& text) {
  return nn::config_from_hf_json(lowbit::io::Json::parse(text, "cfg.json"), "cfg.json");
}

// The base config with `extra` ("" or `, "key": value`) appended.
nn::TransformerConfig parse(const char* base, const std::string& extra) {
  return parse_text(std::string(base) + extra + "}");
}

void refused(const char* base, const std::string& extra, const char* needle) {
  INFO(extra);
  CHECK_THROWS_WITH_AS((void)parse(base, extra), doctest::Contains(needle), Error);
  CHECK_THROWS_WITH_AS((void)parse(base, extra), doctest::Contains("cfg.json"), Error);
}

}  // namespace

TEST_CASE("config: the plain GPT-2 and Llama configs load") {
  CHECK(parse(kGpt2, "").hidden == 64);
  CHECK(parse(kLlama, "").kv_heads == 4);
  CHECK(parse(kLlama, R"(, "num_key_value_heads": 2)").kv_heads == 2);
  CHECK(parse(kLlama, R"(, "hidden_act": "silu", "rope_scaling": null, "attention_bias": false, "head_dim": 4)").dim ==
        16);
}

TEST_CASE("config: the config.json files of real checkpoints load") {
  const std::string dir = std::string(LOWBIT_FIXTURE_DIR) + "/configs/";
  const auto tiny = nn::config_from_hf_file(dir + "tinyllama-1.1b-chat-v1.0.json");
  CHECK((tiny.layers == 22 && tiny.dim == 2048 && tiny.hidden == 5632 && tiny.heads == 32 && tiny.kv_heads == 4));
  CHECK((tiny.vocab == 32000 && !tiny.tied_head && tiny.rope_theta == 10000.0f && tiny.norm_eps == 1e-5f));
  const auto llama2 = nn::config_from_hf_file(dir + "llama-2-7b-hf.json");
  CHECK((llama2.layers == 32 && llama2.dim == 4096 && llama2.hidden == 11008 && llama2.kv_heads == 32));
  CHECK(llama2.parameter_count() == 6738415616);  // Llama-2-7B's published parameter count
  const auto smol = nn::config_from_hf_file(dir + "smollm2-135m.json");
  CHECK((smol.heads == 9 && smol.kv_heads == 3 && smol.head_dim() == 64 && smol.tied_head && smol.rope_theta == 1e5f));
  const auto gpt2 = nn::config_from_hf_file(dir + "gpt2.json");
  CHECK((gpt2.arch == nn::Architecture::gpt2 && gpt2.hidden == 3072 && gpt2.context == 1024 && gpt2.tied_head));
  CHECK(gpt2.parameter_count() == 124439808);  // GPT-2 small
}

TEST_CASE("config: neutral RoPE scaling and transformers 5's rope_parameters") {
  CHECK(parse(kLlama, R"(, "rope_scaling": {"rope_type": "default"})").dim == 16);
  CHECK(parse(kLlama, R"(, "rope_scaling": {"type": "dynamic", "factor": 1.0})").dim == 16);
  CHECK(parse(kLlama, R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0})").rope_theta == 5e5f);
  refused(kLlama, R"(, "rope_parameters": {"rope_type": "yarn", "factor": 8.0, "rope_theta": 500000.0})",
          "'rope_parameters' asks for a RoPE scaling lowbit does not implement");
  refused(kLlama, R"(, "rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 500000.0})",
          "'low_freq_factor' is missing");
  refused(kGpt2, R"(, "tie_word_embeddings": false)", "'tie_word_embeddings' = false");
}

TEST_CASE("config: the Llama family's variants: Mistral, Qwen2, Qwen3, Llama 3 RoPE, biases, explicit head size") {
  const auto family = [](const char* type, const std::string& extra) {
    return parse_text(std::string(R"({"model_type": ")") + type + R"(", "hidden_size": 16, "intermediate_size": 40,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 23,
        "max_position_embeddings": 12)" + extra + "}");
  };
  const auto mistral = family("mistral", R"(, "sliding_window": 4096)");
  CHECK((mistral.sliding_window == 4096 && !mistral.qkv_bias && mistral.model_type == "mistral"));
  CHECK(family("mistral", R"(, "sliding_window": null)").sliding_window == 0);
  const auto qwen2 = family("qwen2", R"(, "use_sliding_window": false, "sliding_window": 4096, "tie_word_embeddings": true)");
  CHECK((qwen2.qkv_bias && !qwen2.o_bias && qwen2.sliding_window == 0 && qwen2.tied_head));
  const auto qwen3 = family("qwen3", R"(, "head_dim": 8, "attention_bias": false)");
  CHECK((qwen3.qk_norm && qwen3.head_dim() == 8 && qwen3.q_dim() == 32 && qwen3.kv_dim() == 16));
  const auto biased = family("llama", R"(, "attention_bias": true)");
  CHECK((biased.qkv_bias && biased.o_bias));
  const auto llama3 = family("llama", R"(, "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3",
      "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  CHECK(llama3.rope_scaling.kind == nn::RopeScaling::Kind::llama3);
  CHECK(llama3.rope_scaling.original_context == 8192);
  // Each variant's config.json reads back as itself, and its parameter count is the model's.
  for (const auto& c : {mistral, qwen2, qwen3, biased, llama3}) {
    CAPTURE(c.model_type);
    const auto back = nn::config_from_hf_json(nn::config_to_hf_json(c), "back.json");
    CHECK((back.model_type == c.model_type && back.head_dim() == c.head_dim() && back.qkv_bias == c.qkv_bias &&
           back.o_bias == c.o_bias && back.qk_norm == c.qk_norm && back.sliding_window == c.sliding_window &&
           back.rope_scaling.kind == c.rope_scaling.kind && back.tied_head == c.tied_head));
    CHECK(nn::rope_frequencies(back) == nn::rope_frequencies(c));
    CHECK(c.parameter_count() == nn::Transformer(c, 1).parameter_count());
  }
}

TEST_CASE("config: Llama 3's RoPE rule keeps high frequencies, divides low ones by the factor, blends the band") {
  nn::TransformerConfig c = lowbit::test::tiny_config(nn::Architecture::llama);
  c.head_size = 16;
  c.rope_theta = 500000.0f;
  const std::vector<float> plain = nn::rope_frequencies(c);
  c.rope_scaling = {nn::RopeScaling::Kind::llama3, 8.0, 1.0, 4.0, 64.0};
  const std::vector<float> scaled = nn::rope_frequencies(c);
  REQUIRE(scaled.size() == 8);
  int kept = 0, divided = 0, blended = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    const double wavelen = 2 * 3.14159265358979 / plain[i];
    if (wavelen < 16) {
      CHECK(scaled[i] == plain[i]);
      ++kept;
    } else if (wavelen > 64) {
      CHECK(scaled[i] == doctest::Approx(plain[i] / 8).epsilon(1e-6));
      ++divided;
    } else {
      CHECK((scaled[i] < plain[i] && scaled[i] > plain[i] / 8));
      ++blended;
    }
  }
  CHECK((kept > 0 && divided > 0 && blended > 0));
}

TEST_CASE("config: integers out of int range are errors, not narrowed") {
  // 4294967300 used to load as 4 layers.
  CHECK_THROWS_WITH_AS((void)parse_text(R"({"model_type": "gpt2", "n_embd": 16, "n_layer": 4294967300, "n_head": 4,
                                           "vocab_size": 23, "n_positions": 12})"),
                       doctest::Contains("'n_layer' = 4294967300 is out of range"), Error);
  refused(kLlama, R"(, "num_key_value_heads": -2)", "'num_key_value_heads' = -2 is out of range");
  refused(kLlama, R"(, "num_key_value_heads": 2.5)", "'num_key_value_heads' = 2.5 is not an integer");
  refused(kLlama, R"(, "num_key_value_heads": 99999999999999999999)", "is not an integer that fits 64 bits");
}

TEST_CASE("config: GPT-2's default MLP width 4·n_embd must fit an int") {
  // n_embd = 6e8 made 4·dim a negative MLP width.
  CHECK_THROWS_WITH_AS((void)parse_text(R"({"model_type": "gpt2", "n_embd": 600000000, "n_layer": 1, "n_head": 1,
                                           "vocab_size": 2, "n_positions": 2})"),
                       doctest::Contains("4·n_embd = 2400000000"), Error);
}

TEST_CASE("config: epsilons and rope_theta must be finite numbers") {
  refused(kLlama, R"(, "rms_norm_eps": 1e39)", "'rms_norm_eps' = 1e39 is not a finite float");
  refused(kLlama, R"(, "rms_norm_eps": 1e999)", "'rms_norm_eps' = 1e999 is out of the range of a double");
  refused(kGpt2, R"(, "layer_norm_epsilon": 0)", "epsilon must be finite and positive");
  refused(kLlama, R"(, "rope_theta": "abc")", "'rope_theta' must be a number, got a string");
  refused(kLlama, R"(, "rope_theta": -1)", "rope_theta must be finite and positive");
}

TEST_CASE("config: unsupported values of keys that change the computation are errors naming the key") {
  refused(kLlama, R"(, "hidden_act": "gelu")", "'hidden_act' must be \"silu\"");
  refused(kLlama, R"(, "rope_scaling": {"rope_type": "linear", "factor": 2.0})", "'rope_scaling' asks for a RoPE");
  refused(kLlama, R"(, "mlp_bias": true)", "'mlp_bias'");
  refused(kLlama, R"(, "head_dim": 0)", "'head_dim' must be positive");
  refused(R"({"model_type": "qwen2", "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2,
             "num_attention_heads": 4, "vocab_size": 23, "max_position_embeddings": 12)",
          R"(, "use_sliding_window": true)", "'use_sliding_window' = true");
  CHECK_THROWS_WITH_AS((void)parse_text(R"({"model_type": "bert"})"),
                       doctest::Contains("model_type 'bert' is not supported (llama, mistral, qwen2, qwen3, gpt2)"),
                       Error);
  refused(kLlama, R"(, "tie_word_embeddings": "yes")", "'tie_word_embeddings' must be true or false");
  refused(kGpt2, R"(, "activation_function": "relu")", "'activation_function'");
  refused(kGpt2, R"(, "scale_attn_by_inverse_layer_idx": true)", "'scale_attn_by_inverse_layer_idx'");
  refused(kGpt2, R"(, "scale_attn_weights": false)", "'scale_attn_weights'");
}

TEST_CASE("config: the parameter count is exact and overflow-checked") {
  for (const auto arch : {nn::Architecture::gpt2, nn::Architecture::llama}) {
    const auto c = lowbit::test::tiny_config(arch);
    const nn::Transformer m(c, 1);
    CHECK(c.parameter_count() == m.parameter_count());
  }
  auto huge = lowbit::test::tiny_config(nn::Architecture::llama);
  huge.dim = 1 << 30;
  huge.heads = 1 << 20;
  huge.kv_heads = 1 << 20;
  huge.hidden = 1 << 30;
  huge.layers = 1 << 30;
  CHECK_THROWS_WITH_AS(huge.validate("huge.json"), doctest::Contains("huge.json: the parameter count"), Error);
}

// Regression (issue #17): n_layer = 1e9 in config.json allocated ~40 GB of
// parameters before the first tensor was looked up (then std::bad_alloc).
TEST_CASE("checkpoint: a config claiming more layers than the file holds stops at the first missing tensor") {
  const auto small = lowbit::test::tiny_config(nn::Architecture::gpt2);
  nn::Transformer donor(small, 3);
  nn::Checkpoint ck;
  ck.config = small;
  ck.config.layers = 1000000000;
  ck.source = "huge/model.safetensors";
  for (auto* p : donor.parameters())
    ck.weights[p->name()] =
        nn::Weight{{p->shape().dims.begin(), p->shape().dims.begin() + p->shape().ndim}, {p->values().begin(), p->values().end()}};
  CHECK_THROWS_WITH_AS((void)nn::Transformer(ck),
                       doctest::Contains("'huge/model.safetensors' has no tensor 'transformer.h.2.ln_1.weight'"), Error);
}
