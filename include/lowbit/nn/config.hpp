// TransformerConfig: one description of the decoder-only models lowbit runs, read
// from a Hugging Face config.json (GPT-2 or Llama) or a llama2.c header.
#pragma once

#include <filesystem>
#include <string>

#include "lowbit/autograd/embedding.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/llama2c.hpp"

namespace lowbit::nn {

enum class Architecture { gpt2, llama };


struct TransformerConfig {
  Architecture arch = Architecture::llama;
  int dim = 0;        ///< model width
  int hidden = 0;     ///< MLP width
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;   ///< < heads: grouped-query attention
  int vocab = 0;
  int context = 0;    ///< maximum positions
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  /// Which features of a head RoPE rotates together: llama2.c pairs (2i, 2i+1),
  /// Hugging Face Llama pairs (i, i + head/2) ("rotate_half").
  autograd::RopeStyle rope_style = autograd::RopeStyle::half;
  bool tied_head = false;  ///< classifier shares the token embedding

  [[nodiscard]] int head_dim() const { return dim / heads; }
  [[nodiscard]] int kv_dim() const { return kv_heads * head_dim(); }

  void validate(const std::string& source) const {
    const auto positive = [&](long v, const char* what) {
      lowbit::detail::check(v > 0, source, ": ", what, " must be positive, got ", v);
    };
    positive(dim, "model width");
    positive(hidden, "MLP width");
    positive(layers, "layer count");
    positive(heads, "head count");
    positive(kv_heads, "key/value head count");
    positive(vocab, "vocabulary size");
    positive(context, "context length");
    lowbit::detail::check(dim % heads == 0, source, ": width ", dim, " is not a multiple of ", heads, " heads");
    lowbit::detail::check(heads % kv_heads == 0, source, ": ", heads, " heads are not a multiple of ", kv_heads,
                  " key/value heads");
    lowbit::detail::check(arch == Architecture::gpt2 || head_dim() % 2 == 0, source, ": head size ", head_dim(),
                  " is odd (RoPE needs pairs)");
    lowbit::detail::check(norm_eps > 0, source, ": normalisation epsilon must be positive");
  }
};

namespace detail {
inline int json_int(const io::Json& j, std::string_view key, const std::string& source) {
  const io::Json* v = j.find(key);
  lowbit::detail::check(v && v->is_number(), source, ": '", key, "' is missing or not a number");
  return static_cast<int>(v->as_int64());
}
inline double json_number_or(const io::Json& j, std::string_view key, double fallback) {
  const io::Json* v = j.find(key);
  return v && v->is_number() ? v->as_double() : fallback;
}
}  // namespace detail

/// From a Hugging Face config.json (model_type gpt2 or llama).
inline TransformerConfig config_from_hf_json(const io::Json& j, const std::string& source) {
  lowbit::detail::check(j.is_object(), source, ": expected a JSON object");
  const io::Json* type = j.find("model_type");
  lowbit::detail::check(type && type->is_string(), source, ": 'model_type' is missing");
  TransformerConfig c;
  if (type->as_string() == "gpt2") {
    c.arch = Architecture::gpt2;
    c.dim = detail::json_int(j, "n_embd", source);
    c.layers = detail::json_int(j, "n_layer", source);
    c.heads = detail::json_int(j, "n_head", source);
    c.kv_heads = c.heads;
    c.vocab = detail::json_int(j, "vocab_size", source);
    c.context = detail::json_int(j, "n_positions", source);
    const io::Json* inner = j.find("n_inner");
    c.hidden = inner && inner->is_number() ? static_cast<int>(inner->as_int64()) : 4 * c.dim;
    c.norm_eps = static_cast<float>(detail::json_number_or(j, "layer_norm_epsilon", 1e-5));
    c.tied_head = true;
    const io::Json* act = j.find("activation_function");
    lowbit::detail::check(!act || (act->is_string() && (act->as_string() == "gelu_new" ||
                                                         act->as_string() == "gelu_pytorch_tanh")),
                          source, ": only the tanh GELU (gelu_new) of GPT-2 is supported");
  } else if (type->as_string() == "llama") {
    c.arch = Architecture::llama;
    c.dim = detail::json_int(j, "hidden_size", source);
    c.hidden = detail::json_int(j, "intermediate_size", source);
    c.layers = detail::json_int(j, "num_hidden_layers", source);
    c.heads = detail::json_int(j, "num_attention_heads", source);
    const io::Json* kv = j.find("num_key_value_heads");
    c.kv_heads = kv && kv->is_number() ? static_cast<int>(kv->as_int64()) : c.heads;
    c.vocab = detail::json_int(j, "vocab_size", source);
    c.context = detail::json_int(j, "max_position_embeddings", source);
    c.norm_eps = static_cast<float>(detail::json_number_or(j, "rms_norm_eps", 1e-6));
    c.rope_theta = static_cast<float>(detail::json_number_or(j, "rope_theta", 10000.0));
    c.rope_style = autograd::RopeStyle::half;
    const io::Json* tie = j.find("tie_word_embeddings");
    c.tied_head = tie && tie->is_bool() && tie->as_bool();
  } else {
    lowbit::detail::fail(source, ": model_type '", type->as_string(), "' is not supported (gpt2, llama)");
  }
  c.validate(source);
  return c;
}

inline TransformerConfig config_from_hf_file(const std::filesystem::path& path) {
  return config_from_hf_json(io::Json::parse(io::read_file(path), path.string()), path.string());
}

/// The Hugging Face config.json of `c` (what config_from_hf_json reads back).
/// llama2.c's interleaved RoPE has no HF config equivalent: such a model is saved with
/// its q/k rows permuted to HF's layout by the exporter, so the config says nothing.
inline io::Json config_to_hf_json(const TransformerConfig& c) {
  using io::Json;
  Json j = Json::object();
  const auto num = [](int v) { return Json::number(static_cast<std::int64_t>(v)); };
  Json arch = Json::array();
  if (c.arch == Architecture::gpt2) {
    arch.push_back(Json::string("GPT2LMHeadModel"));
    j.set("architectures", std::move(arch));
    j.set("model_type", Json::string("gpt2"));
    j.set("n_embd", num(c.dim));
    j.set("n_inner", num(c.hidden));
    j.set("n_layer", num(c.layers));
    j.set("n_head", num(c.heads));
    j.set("n_positions", num(c.context));
    j.set("n_ctx", num(c.context));
    j.set("vocab_size", num(c.vocab));
    j.set("layer_norm_epsilon", Json::number(static_cast<double>(c.norm_eps)));
    j.set("activation_function", Json::string("gelu_new"));
    j.set("tie_word_embeddings", Json::boolean(true));
  } else {
    arch.push_back(Json::string("LlamaForCausalLM"));
    j.set("architectures", std::move(arch));
    j.set("model_type", Json::string("llama"));
    j.set("hidden_size", num(c.dim));
    j.set("intermediate_size", num(c.hidden));
    j.set("num_hidden_layers", num(c.layers));
    j.set("num_attention_heads", num(c.heads));
    j.set("num_key_value_heads", num(c.kv_heads));
    j.set("vocab_size", num(c.vocab));
    j.set("max_position_embeddings", num(c.context));
    j.set("rms_norm_eps", Json::number(static_cast<double>(c.norm_eps)));
    j.set("rope_theta", Json::number(static_cast<double>(c.rope_theta)));
    j.set("hidden_act", Json::string("silu"));
    j.set("tie_word_embeddings", Json::boolean(c.tied_head));
  }
  return j;
}

/// From a llama2.c checkpoint header (interleaved RoPE pairs, RMSNorm eps 1e-5).
inline TransformerConfig config_from_llama2c(const io::Llama2cConfig& h, const std::string& source) {
  TransformerConfig c;
  c.arch = Architecture::llama;
  c.dim = h.dim;
  c.hidden = h.hidden_dim;
  c.layers = h.n_layers;
  c.heads = h.n_heads;
  c.kv_heads = h.n_kv_heads;
  c.vocab = h.vocab_size;
  c.context = h.seq_len;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_style = autograd::RopeStyle::interleaved;
  c.tied_head = h.shared_classifier;
  c.validate(source);
  return c;
}

}  // namespace lowbit::nn
