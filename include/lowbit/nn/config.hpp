// TransformerConfig: one description of the decoder-only models lowbit runs, read
// from a Hugging Face config.json (GPT-2 or Llama) or a llama2.c header.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>

#include "lowbit/autograd/embedding.hpp"
#include "lowbit/core/checked.hpp"
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
    lowbit::detail::check(std::isfinite(norm_eps) && norm_eps > 0, source,
                          ": normalisation epsilon must be finite and positive, got ", norm_eps);
    lowbit::detail::check(std::isfinite(rope_theta) && rope_theta > 0, source,
                          ": rope_theta must be finite and positive, got ", rope_theta);
    (void)parameter_count(source);  // every size product must fit 64 bits
  }

  /// Parameters of a model with this config (tied classifier counted once), with
  /// overflow checks: validate() refuses a config whose sizes overflow 64 bits.
  [[nodiscard]] std::int64_t parameter_count(const std::string& source = "config") const {
    using i64 = std::int64_t;
    const std::string what = source + ": the parameter count";
    const i64 d = dim, ff = hidden, kv = static_cast<i64>(kv_heads) * head_dim(), V = vocab;
    const auto mul = [&](i64 a, i64 b) { return checked_mul(a, b, what); };
    const auto add = [&](i64 a, i64 b) { return checked_add(a, b, what); };
    i64 block = 0, outside = mul(V, d);
    if (arch == Architecture::gpt2) {
      // ln_1, ln_2 (weight + bias), c_attn, c_proj, c_fc, c_proj (weights + biases)
      block = add(add(mul(4, d), add(mul(mul(3, d), d), mul(3, d))), add(mul(d, d), d));
      block = add(block, add(add(mul(ff, d), ff), add(mul(d, ff), d)));
      outside = add(add(outside, mul(context, d)), mul(2, d));
    } else {
      block = add(add(mul(2, d), mul(mul(2, d), d)), add(mul(mul(2, kv), d), mul(mul(3, ff), d)));
      outside = add(outside, d);
      if (!tied_head) outside = add(outside, mul(V, d));
    }
    return add(outside, mul(layers, block));
  }
};

namespace detail {

/// A required integer key that must fit `int` (config integers are never narrowed
/// silently: 4294967300 layers is an error, not 4).
inline int json_int(const io::Json& j, std::string_view key, const std::string& source) {
  const io::Json* v = j.find(key);
  lowbit::detail::check(v && v->is_number(), source, ": '", key, "' is missing or not a number");
  std::int64_t x = 0;
  try {
    x = v->as_int64();
  } catch (const Error&) {
    lowbit::detail::fail(source, ": '", key, "' = ", v->number_text(), " is not an integer that fits 64 bits");
  }
  lowbit::detail::check(x >= 0 && x <= std::numeric_limits<int>::max(), source, ": '", key, "' = ", x,
                        " is out of range (0 .. ", std::numeric_limits<int>::max(), ")");
  return static_cast<int>(x);
}

/// An optional integer key (absent or null: `fallback`).
inline int json_int_or(const io::Json& j, std::string_view key, const std::string& source, int fallback) {
  const io::Json* v = j.find(key);
  return v && !v->is_null() ? json_int(j, key, source) : fallback;
}

/// An optional number key: absent or null gives `fallback`; any other type, or a
/// value that is not finite, is an error naming the key.
inline double json_number_or(const io::Json& j, std::string_view key, const std::string& source, double fallback) {
  const io::Json* v = j.find(key);
  if (!v || v->is_null()) return fallback;
  lowbit::detail::check(v->is_number(), source, ": '", key, "' must be a number, got a ",
                        io::Json::type_name(v->type()));
  double x = 0;
  try {
    x = v->as_double();
  } catch (const Error&) {
    lowbit::detail::fail(source, ": '", key, "' = ", v->number_text(), " is out of the range of a double");
  }
  lowbit::detail::check(std::isfinite(x) && std::isfinite(static_cast<float>(x)), source, ": '", key, "' = ",
                        v->number_text(), " is not a finite float");
  return x;
}

/// An optional boolean key (absent or null: `fallback`).
inline bool json_bool_or(const io::Json& j, std::string_view key, const std::string& source, bool fallback) {
  const io::Json* v = j.find(key);
  if (!v || v->is_null()) return fallback;
  lowbit::detail::check(v->is_bool(), source, ": '", key, "' must be true or false, got a ",
                        io::Json::type_name(v->type()));
  return v->as_bool();
}

/// A key that changes the computation in a way lowbit does not implement must be
/// absent or have its neutral value; anything else is an error naming the key.
inline void json_require(bool ok, const std::string& source, std::string_view key, std::string_view why) {
  lowbit::detail::check(ok, source, ": '", key, "' ", why);
}

/// RoPE scaling that changes nothing: absent, null, type "default", or a factor of
/// exactly 1 (as some exporters write for "linear" or "dynamic").
inline bool rope_scaling_is_neutral(const io::Json* v) {
  if (!v || v->is_null()) return true;
  if (!v->is_object()) return false;
  for (const char* k : {"rope_type", "type"})
    if (const io::Json* t = v->find(k); t && t->is_string() && t->as_string() == "default") return true;
  const io::Json* f = v->find("factor");
  return f && f->is_number() && f->as_double() == 1.0;
}

inline bool json_string_is(const io::Json* v, std::initializer_list<std::string_view> allowed) {
  if (!v || !v->is_string()) return false;
  for (const auto a : allowed)
    if (v->as_string() == a) return true;
  return false;
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
    // n_inner absent or null means 4·n_embd, which must itself fit an int.
    const io::Json* inner = j.find("n_inner");
    if (inner && !inner->is_null()) {
      c.hidden = detail::json_int(j, "n_inner", source);
    } else {
      const std::int64_t four = 4 * static_cast<std::int64_t>(c.dim);
      lowbit::detail::check(four <= std::numeric_limits<int>::max(), source, ": 4·n_embd = ", four,
                            " (the default MLP width, n_inner absent) does not fit an int");
      c.hidden = static_cast<int>(four);
    }
    c.norm_eps = static_cast<float>(detail::json_number_or(j, "layer_norm_epsilon", source, 1e-5));
    c.tied_head = true;
    detail::json_require(detail::json_bool_or(j, "tie_word_embeddings", source, true), source, "tie_word_embeddings",
                         "= false (a GPT-2 with its own classifier) is not supported");
    const io::Json* act = j.find("activation_function");
    detail::json_require(!act || detail::json_string_is(act, {"gelu_new", "gelu_pytorch_tanh"}), source,
                         "activation_function", "must be \"gelu_new\" (GPT-2's tanh GELU), the only one supported");
    detail::json_require(detail::json_bool_or(j, "scale_attn_weights", source, true), source, "scale_attn_weights",
                         "= false (unscaled attention) is not supported");
    detail::json_require(!detail::json_bool_or(j, "scale_attn_by_inverse_layer_idx", source, false), source,
                         "scale_attn_by_inverse_layer_idx", "= true is not supported");
    detail::json_require(!detail::json_bool_or(j, "add_cross_attention", source, false), source,
                         "add_cross_attention", "= true is not supported (decoder-only models)");
  } else if (type->as_string() == "llama") {
    c.arch = Architecture::llama;
    c.dim = detail::json_int(j, "hidden_size", source);
    c.hidden = detail::json_int(j, "intermediate_size", source);
    c.layers = detail::json_int(j, "num_hidden_layers", source);
    c.heads = detail::json_int(j, "num_attention_heads", source);
    c.kv_heads = detail::json_int_or(j, "num_key_value_heads", source, c.heads);
    c.vocab = detail::json_int(j, "vocab_size", source);
    c.context = detail::json_int(j, "max_position_embeddings", source);
    c.norm_eps = static_cast<float>(detail::json_number_or(j, "rms_norm_eps", source, 1e-6));
    c.rope_theta = static_cast<float>(detail::json_number_or(j, "rope_theta", source, 10000.0));
    // transformers 5 writes RoPE settings as one "rope_parameters" object instead.
    if (const io::Json* rp = j.find("rope_parameters"); rp && !rp->is_null()) {
      detail::json_require(rp->is_object(), source, "rope_parameters", "must be an object");
      detail::json_require(detail::rope_scaling_is_neutral(rp), source, "rope_parameters",
                           "asks for RoPE scaling, which is not supported yet (rope_type \"default\" only)");
      c.rope_theta = static_cast<float>(detail::json_number_or(*rp, "rope_theta", source + ": rope_parameters",
                                                               c.rope_theta));
    }
    c.rope_style = autograd::RopeStyle::half;
    c.tied_head = detail::json_bool_or(j, "tie_word_embeddings", source, false);
    const io::Json* act = j.find("hidden_act");
    detail::json_require(!act || detail::json_string_is(act, {"silu", "swish"}), source, "hidden_act",
                         "must be \"silu\" (SwiGLU), the only activation supported for Llama");
    detail::json_require(detail::rope_scaling_is_neutral(j.find("rope_scaling")), source, "rope_scaling",
                         "is not supported yet (only null, type \"default\" or factor 1)");
    detail::json_require(!detail::json_bool_or(j, "attention_bias", source, false), source, "attention_bias",
                         "= true (biases on q/k/v/o) is not supported");
    detail::json_require(!detail::json_bool_or(j, "mlp_bias", source, false), source, "mlp_bias",
                         "= true is not supported");
    if (const io::Json* hd = j.find("head_dim"); hd && !hd->is_null() && c.heads > 0)
      detail::json_require(detail::json_int(j, "head_dim", source) == c.dim / c.heads, source, "head_dim",
                           "differs from hidden_size / num_attention_heads, which is not supported");
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
