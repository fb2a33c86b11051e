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
#include <vector>

#include "lowbit/autograd/embedding.hpp"
#include "lowbit/core/checked.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/llama2c.hpp"

namespace lowbit::nn {

enum class Architecture { gpt2, llama };


/// How RoPE's per-pair frequencies theta^(-2i/D) are rescaled for long contexts
/// (Hugging Face's rope_scaling). Only what changes the computation is kept.
struct RopeScaling {
  enum class Kind { none, llama3 };
  Kind kind = Kind::none;
  /// Llama 3.1's rule: frequencies whose wavelength exceeds original_context /
  /// low_freq_factor are divided by `factor`, those below original_context /
  /// high_freq_factor kept, the band between interpolated.
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  double original_context = 8192;
};

struct TransformerConfig {
  Architecture arch = Architecture::llama;
  /// The Hugging Face model_type ("llama", "mistral", "qwen2", "qwen3", "gpt2"; empty:
  /// the architecture's own): which family's config.json and class name are written
  /// back. The computation follows from the fields below, never from this name.
  std::string model_type;
  int dim = 0;        ///< model width
  int hidden = 0;     ///< MLP width
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;   ///< < heads: grouped-query attention
  int head_size = 0;  ///< features per head; 0: dim / heads (Qwen3 sets it explicitly)
  int vocab = 0;
  int context = 0;    ///< maximum positions
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  /// Which features of a head RoPE rotates together: llama2.c pairs (2i, 2i+1),
  /// Hugging Face Llama pairs (i, i + head/2) ("rotate_half").
  autograd::RopeStyle rope_style = autograd::RopeStyle::half;
  bool tied_head = false;  ///< classifier shares the token embedding
  bool qkv_bias = false;   ///< biases on q/k/v_proj (Qwen2; Llama's attention_bias)
  bool o_bias = false;     ///< a bias on o_proj (Llama's attention_bias)
  bool qk_norm = false;    ///< RMSNorm of each query and key head before RoPE (Qwen3)
  /// Mistral's sliding-window attention: > 0 limits each query to that many
  /// positions. lowbit computes full causal attention, which is the same while a
  /// sequence fits the window; longer sequences are refused (Transformer::block).
  int sliding_window = 0;

  [[nodiscard]] int head_dim() const { return head_size > 0 ? head_size : dim / heads; }
  [[nodiscard]] int q_dim() const { return heads * head_dim(); }
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
    lowbit::detail::check(head_size > 0 || dim % heads == 0, source, ": width ", dim, " is not a multiple of ",
                          heads, " heads (and no explicit head size is given)");
    lowbit::detail::check(head_size >= 0, source, ": head size must be positive, got ", head_size);
    lowbit::detail::check(arch == Architecture::llama || (head_dim() * heads == dim && !qk_norm && !qkv_bias),
                          source, ": GPT-2 has no explicit head size, q/k norms or separate q/k/v biases");
    lowbit::detail::check(sliding_window >= 0, source, ": sliding window must not be negative, got ",
                          sliding_window);
    lowbit::detail::check(heads % kv_heads == 0, source, ": ", heads, " heads are not a multiple of ", kv_heads,
                  " key/value heads");
    lowbit::detail::check(arch == Architecture::gpt2 || head_dim() % 2 == 0, source, ": head size ", head_dim(),
                  " is odd (RoPE needs pairs)");
    lowbit::detail::check(std::isfinite(norm_eps) && norm_eps > 0, source,
                          ": normalisation epsilon must be finite and positive, got ", norm_eps);
    lowbit::detail::check(std::isfinite(rope_theta) && rope_theta > 0, source,
                          ": rope_theta must be finite and positive, got ", rope_theta);
    if (rope_scaling.kind == RopeScaling::Kind::llama3) {
      const RopeScaling& r = rope_scaling;
      lowbit::detail::check(r.factor >= 1 && r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor &&
                                r.original_context > 0,
                            source, ": llama3 rope_scaling needs factor >= 1, 0 < low_freq_factor < "
                            "high_freq_factor and original_max_position_embeddings > 0, got factor ", r.factor,
                            ", low_freq_factor ", r.low_freq_factor, ", high_freq_factor ", r.high_freq_factor,
                            ", original_max_position_embeddings ", r.original_context);
    }
    (void)parameter_count(source);  // every size product must fit 64 bits
  }

  /// Parameters of a model with this config (tied classifier counted once), with
  /// overflow checks: validate() refuses a config whose sizes overflow 64 bits.
  [[nodiscard]] std::int64_t parameter_count(const std::string& source = "config") const {
    using i64 = std::int64_t;
    const std::string what = source + ": the parameter count";
    const i64 d = dim, ff = hidden, kv = static_cast<i64>(kv_heads) * head_dim(), V = vocab;
    const i64 qd = static_cast<i64>(heads) * head_dim(), hd = head_dim();
    const auto mul = [&](i64 a, i64 b) { return checked_mul(a, b, what); };
    const auto add = [&](i64 a, i64 b) { return checked_add(a, b, what); };
    i64 block = 0, outside = mul(V, d);
    if (arch == Architecture::gpt2) {
      // ln_1, ln_2 (weight + bias), c_attn, c_proj, c_fc, c_proj (weights + biases)
      block = add(add(mul(4, d), add(mul(mul(3, d), d), mul(3, d))), add(mul(d, d), d));
      block = add(block, add(add(mul(ff, d), ff), add(mul(d, ff), d)));
      outside = add(add(outside, mul(context, d)), mul(2, d));
    } else {
      block = add(add(mul(2, d), mul(mul(2, qd), d)), add(mul(mul(2, kv), d), mul(mul(3, ff), d)));
      if (qkv_bias) block = add(block, add(qd, mul(2, kv)));
      if (o_bias) block = add(block, d);
      if (qk_norm) block = add(block, mul(2, hd));
      outside = add(outside, d);
      if (!tied_head) outside = add(outside, mul(V, d));
    }
    return add(outside, mul(layers, block));
  }
};

/// RoPE's inverse frequency of each rotated pair, computed in float as Hugging Face
/// computes it (inv_freq = 1 / theta^(2i/D), then the rope_scaling rule), so the
/// angles match its float32 tables.
inline std::vector<float> rope_frequencies(const TransformerConfig& c) {
  const int d = c.head_dim();
  std::vector<float> f(static_cast<std::size_t>(d / 2));
  for (int i = 0; i < d / 2; ++i)
    f[static_cast<std::size_t>(i)] = 1.0f / std::pow(c.rope_theta, static_cast<float>(2 * i) / static_cast<float>(d));
  if (c.rope_scaling.kind == RopeScaling::Kind::llama3) {
    const RopeScaling& r = c.rope_scaling;
    const auto factor = static_cast<float>(r.factor), lo = static_cast<float>(r.low_freq_factor),
               hi = static_cast<float>(r.high_freq_factor), old = static_cast<float>(r.original_context);
    const float low_freq_wavelen = old / lo, high_freq_wavelen = old / hi;
    for (float& x : f) {
      const float wavelen = 6.28318530717958647692f / x;
      if (wavelen > low_freq_wavelen) {
        x /= factor;  // long wavelengths: interpolated positions
      } else if (!(wavelen < high_freq_wavelen)) {  // the band between: a blend of the two
        const float smooth = (old / wavelen - lo) / (hi - lo);
        x = (1 - smooth) * x / factor + smooth * x;
      }
    }
  }
  return f;
}

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

/// The Hugging Face families lowbit reads, one row per model_type: the only place
/// that names them. Llama-family rows differ in traits their configs do not spell.
struct HfFamily {
  std::string_view model_type;
  std::string_view class_name;  ///< what architectures[0] says
  Architecture arch;
  bool qkv_bias;  ///< q/k/v_proj always carry biases (Qwen2 has no config key for it)
  bool qk_norm;   ///< per-head q/k RMSNorm (Qwen3)
};
inline constexpr HfFamily hf_families[] = {
    {"llama", "LlamaForCausalLM", Architecture::llama, false, false},
    {"mistral", "MistralForCausalLM", Architecture::llama, false, false},
    {"qwen2", "Qwen2ForCausalLM", Architecture::llama, true, false},
    {"qwen3", "Qwen3ForCausalLM", Architecture::llama, false, true},
    {"gpt2", "GPT2LMHeadModel", Architecture::gpt2, false, false},
};

/// The family of `c` (an empty model_type: the architecture's first row).
inline const HfFamily& hf_family(const TransformerConfig& c) {
  for (const HfFamily& f : hf_families)
    if (c.model_type.empty() ? f.arch == c.arch : f.model_type == c.model_type) return f;
  std::string known;
  for (const HfFamily& f : hf_families) known += (known.empty() ? "" : ", ") + std::string(f.model_type);
  lowbit::detail::fail("model_type '", c.model_type, "' is not supported (", known, ")");
}

namespace detail {

inline TransformerConfig gpt2_config_from_hf(const io::Json& j, const std::string& source) {
  TransformerConfig c;
  c.arch = Architecture::gpt2;
  c.model_type = "gpt2";
  c.dim = json_int(j, "n_embd", source);
  c.layers = json_int(j, "n_layer", source);
  c.heads = json_int(j, "n_head", source);
  c.kv_heads = c.heads;
  c.vocab = json_int(j, "vocab_size", source);
  c.context = json_int(j, "n_positions", source);
  // n_inner absent or null means 4·n_embd, which must itself fit an int.
  const io::Json* inner = j.find("n_inner");
  if (inner && !inner->is_null()) {
    c.hidden = json_int(j, "n_inner", source);
  } else {
    const std::int64_t four = 4 * static_cast<std::int64_t>(c.dim);
    lowbit::detail::check(four <= std::numeric_limits<int>::max(), source, ": 4·n_embd = ", four,
                          " (the default MLP width, n_inner absent) does not fit an int");
    c.hidden = static_cast<int>(four);
  }
  c.norm_eps = static_cast<float>(json_number_or(j, "layer_norm_epsilon", source, 1e-5));
  c.tied_head = true;
  json_require(json_bool_or(j, "tie_word_embeddings", source, true), source, "tie_word_embeddings",
               "= false (a GPT-2 with its own classifier) is not supported");
  const io::Json* act = j.find("activation_function");
  json_require(!act || json_string_is(act, {"gelu_new", "gelu_pytorch_tanh"}), source, "activation_function",
               "must be \"gelu_new\" (GPT-2's tanh GELU), the only one supported");
  json_require(json_bool_or(j, "scale_attn_weights", source, true), source, "scale_attn_weights",
               "= false (unscaled attention) is not supported");
  json_require(!json_bool_or(j, "scale_attn_by_inverse_layer_idx", source, false), source,
               "scale_attn_by_inverse_layer_idx", "= true is not supported");
  json_require(!json_bool_or(j, "add_cross_attention", source, false), source, "add_cross_attention",
               "= true is not supported (decoder-only models)");
  return c;
}

/// rope_scaling (or transformers 5's rope_parameters) `v` under `key`: neutral, or
/// Llama 3's rule with all four of its numbers; anything else is refused.
inline RopeScaling rope_scaling_from_hf(const io::Json* v, const std::string& source, std::string_view key) {
  RopeScaling r;
  if (rope_scaling_is_neutral(v)) return r;
  json_require(v->is_object(), source, key, "must be an object or null");
  const io::Json* type = v->find("rope_type");
  if (!type) type = v->find("type");
  json_require(json_string_is(type, {"llama3"}), source, key,
               "asks for a RoPE scaling lowbit does not implement (supported: rope_type \"default\" or \"llama3\")");
  const std::string where = source + ": " + std::string(key);
  const auto need = [&](std::string_view k) {
    json_require(v->find(k) && v->find(k)->is_number(), where, k, "is missing (rope_type \"llama3\" needs it)");
    return json_number_or(*v, k, where, 0.0);
  };
  r.kind = RopeScaling::Kind::llama3;
  r.factor = need("factor");
  r.low_freq_factor = need("low_freq_factor");
  r.high_freq_factor = need("high_freq_factor");
  r.original_context = need("original_max_position_embeddings");
  return r;
}

inline TransformerConfig llama_family_config_from_hf(const io::Json& j, const HfFamily& fam,
                                                     const std::string& source) {
  TransformerConfig c;
  c.arch = Architecture::llama;
  c.model_type = std::string(fam.model_type);
  c.dim = json_int(j, "hidden_size", source);
  c.hidden = json_int(j, "intermediate_size", source);
  c.layers = json_int(j, "num_hidden_layers", source);
  c.heads = json_int(j, "num_attention_heads", source);
  c.kv_heads = json_int_or(j, "num_key_value_heads", source, c.heads);
  c.head_size = json_int_or(j, "head_dim", source, 0);
  json_require(j.find("head_dim") == nullptr || j.find("head_dim")->is_null() || c.head_size > 0, source,
               "head_dim", "must be positive");
  c.vocab = json_int(j, "vocab_size", source);
  c.context = json_int(j, "max_position_embeddings", source);
  c.norm_eps = static_cast<float>(json_number_or(j, "rms_norm_eps", source, 1e-6));
  c.rope_theta = static_cast<float>(json_number_or(j, "rope_theta", source, 10000.0));
  c.rope_scaling = rope_scaling_from_hf(j.find("rope_scaling"), source, "rope_scaling");
  // transformers 5 writes RoPE settings as one "rope_parameters" object instead.
  if (const io::Json* rp = j.find("rope_parameters"); rp && !rp->is_null()) {
    json_require(rp->is_object(), source, "rope_parameters", "must be an object");
    c.rope_scaling = rope_scaling_from_hf(rp, source, "rope_parameters");
    c.rope_theta =
        static_cast<float>(json_number_or(*rp, "rope_theta", source + ": rope_parameters", c.rope_theta));
  }
  c.rope_style = autograd::RopeStyle::half;
  c.tied_head = json_bool_or(j, "tie_word_embeddings", source, false);
  const io::Json* act = j.find("hidden_act");
  json_require(!act || json_string_is(act, {"silu", "swish"}), source, "hidden_act",
               "must be \"silu\" (SwiGLU), the only activation supported for this family");
  json_require(!json_bool_or(j, "mlp_bias", source, false), source, "mlp_bias", "= true is not supported");
  c.qk_norm = fam.qk_norm;
  if (fam.qkv_bias) {
    c.qkv_bias = true;  // Qwen2: q/k/v always, o never
  } else {
    c.qkv_bias = c.o_bias = json_bool_or(j, "attention_bias", source, false);  // Llama: all four or none
  }
  if (fam.model_type == "mistral") {
    c.sliding_window = json_int_or(j, "sliding_window", source, 0);
  } else {
    // Qwen2/Qwen3 keep sliding_window in every config but use it only when asked.
    json_require(!json_bool_or(j, "use_sliding_window", source, false), source, "use_sliding_window",
                 "= true (sliding-window attention in some layers) is not supported");
  }
  return c;
}

}  // namespace detail

/// From a Hugging Face config.json (a model_type of hf_families).
inline TransformerConfig config_from_hf_json(const io::Json& j, const std::string& source) {
  lowbit::detail::check(j.is_object(), source, ": expected a JSON object");
  const io::Json* type = j.find("model_type");
  lowbit::detail::check(type && type->is_string(), source, ": 'model_type' is missing");
  TransformerConfig probe;
  probe.model_type = type->as_string();
  const HfFamily* fam = nullptr;
  try {
    fam = &hf_family(probe);
  } catch (const Error& e) {
    lowbit::detail::fail(source, ": ", e.what());
  }
  TransformerConfig c = fam->arch == Architecture::gpt2 ? detail::gpt2_config_from_hf(j, source)
                                                        : detail::llama_family_config_from_hf(j, *fam, source);
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
    const HfFamily& fam = hf_family(c);
    arch.push_back(Json::string(std::string(fam.class_name)));
    j.set("architectures", std::move(arch));
    j.set("model_type", Json::string(std::string(fam.model_type)));
    j.set("hidden_size", num(c.dim));
    j.set("intermediate_size", num(c.hidden));
    j.set("num_hidden_layers", num(c.layers));
    j.set("num_attention_heads", num(c.heads));
    j.set("num_key_value_heads", num(c.kv_heads));
    if (c.head_size > 0) j.set("head_dim", num(c.head_size));
    j.set("vocab_size", num(c.vocab));
    j.set("max_position_embeddings", num(c.context));
    j.set("rms_norm_eps", Json::number(static_cast<double>(c.norm_eps)));
    j.set("rope_theta", Json::number(static_cast<double>(c.rope_theta)));
    if (c.rope_scaling.kind == RopeScaling::Kind::llama3) {
      Json r = Json::object();
      r.set("rope_type", Json::string("llama3"));
      r.set("factor", Json::number(c.rope_scaling.factor));
      r.set("low_freq_factor", Json::number(c.rope_scaling.low_freq_factor));
      r.set("high_freq_factor", Json::number(c.rope_scaling.high_freq_factor));
      r.set("original_max_position_embeddings", Json::number(c.rope_scaling.original_context));
      j.set("rope_scaling", std::move(r));
    }
    j.set("hidden_act", Json::string("silu"));
    j.set("tie_word_embeddings", Json::boolean(c.tied_head));
    if (!fam.qkv_bias) j.set("attention_bias", Json::boolean(c.o_bias));
    if (fam.model_type == "mistral")
      j.set("sliding_window", c.sliding_window > 0 ? num(c.sliding_window) : Json::null());
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
