// A decoder-only transformer on the autograd engine: GPT-2 (LayerNorm, learned
// positions, fused QKV, GELU-tanh, tied classifier) and Llama (RMSNorm, RoPE,
// grouped-query attention, SwiGLU), one readable forward pass for both.
//
// Weights are Parameters named as Hugging Face names them, in lowbit's canonical
// layout (linear weights [out, in]); the registry linear_layers() lists the
// transformer stack's linear layers for the solvers and the study.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/autograd/activation.hpp"
#include "lowbit/autograd/attention.hpp"
#include "lowbit/autograd/elementwise.hpp"
#include "lowbit/autograd/embedding.hpp"
#include "lowbit/autograd/matmul.hpp"
#include "lowbit/autograd/norm.hpp"
#include "lowbit/autograd/tensor.hpp"
#include "lowbit/autograd/views.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/config.hpp"
#include "lowbit/nn/linear_layer.hpp"

namespace lowbit::nn {

/// A copy of every parameter's values, to put a model back after an experiment.
using WeightSnapshot = std::vector<std::vector<float>>;

class Transformer {
 public:
  using Tensor = autograd::Tensor;
  using Parameter = autograd::Parameter;

  /// Random initialisation for pretraining, GPT-2's scheme: N(0, 0.02) weights, the
  /// residual output projections scaled by 1/√(2·layers), zero biases, unit norms.
  /// Deterministic for a seed on every platform.
  Transformer(TransformerConfig config, std::uint64_t seed) : config_(std::move(config)) {
    config_.validate("Transformer");
    build([&](const std::string& name, const std::vector<std::int64_t>& shape) {
      return initial_values(name, shape, seed);
    });
  }

  /// The weights of a loaded checkpoint (shapes and finiteness checked, names must match).
  explicit Transformer(const Checkpoint& ck) : config_(ck.config) {
    config_.validate(ck.source);
    std::map<std::string, bool> used;
    build([&](const std::string& name, const std::vector<std::int64_t>& shape) {
      used[name] = true;
      return ck.get(name, shape).values;
    });
    check_all_used(ck, used);
  }

  /// A Hugging Face folder (config.json + model.safetensors) or a llama2.c .bin file.
  static Transformer load(const std::filesystem::path& path) { return Transformer(load_checkpoint(path)); }

  /// A model whose weights stay in `ck` — for a Hugging Face folder, its memory-mapped
  /// shards in their stored type — until load_block / load_outside widen them, so
  /// memory holds only what is loaded (block-by-block quantization of a model larger
  /// than RAM). Names and shapes are checked here, values when loaded. A forward pass
  /// through a part that is not loaded is an error.
  static Transformer streaming(std::shared_ptr<const Checkpoint> ck) {
    lowbit::detail::check(ck != nullptr, "Transformer::streaming: no checkpoint");
    return Transformer(std::move(ck), Streaming{});
  }
  [[nodiscard]] bool is_streaming() const { return source_ != nullptr; }

  /// The parameters of block i (norms, layers' weights and biases), creation order.
  [[nodiscard]] std::vector<Parameter*> block_parameters(int i) {
    lowbit::detail::check(i >= 0 && i < config_.layers, "Transformer: no block ", i);
    const Block& b = blocks_[static_cast<std::size_t>(i)];
    std::vector<Parameter*> out;
    for (std::size_t k = b.param_begin; k < b.param_end; ++k) out.push_back(&params_[k]);
    return out;
  }
  /// The parameters outside the blocks: embeddings, final norm, classifier.
  [[nodiscard]] std::vector<Parameter*> outside_parameters() {
    std::vector<Parameter*> out;
    std::size_t k = 0;
    for (const Block& b : blocks_) {
      for (; k < b.param_begin; ++k) out.push_back(&params_[k]);
      k = b.param_end;
    }
    for (; k < params_.size(); ++k) out.push_back(&params_[k]);
    return out;
  }
  /// The tables embed() reads (token, and GPT-2's position embedding): what a
  /// streaming model must load to embed, without its final norm and classifier.
  [[nodiscard]] std::vector<Parameter*> embedding_parameters() {
    std::vector<Parameter*> out{wte_};
    if (wpe_) out.push_back(wpe_);
    return out;
  }
  /// Streaming: widens `ps` from the checkpoint (shape and finiteness checked).
  void load(const std::vector<Parameter*>& ps) {
    lowbit::detail::check(is_streaming(), "Transformer::load: not a streaming model");
    for (Parameter* p : ps) {
      const auto& s = p->shape();
      p->load(source_->get(p->name(), std::vector<std::int64_t>(s.dims.begin(), s.dims.begin() + s.ndim)).values);
    }
  }
  /// Streaming: frees `ps` (they can be loaded again from the checkpoint).
  void unload(const std::vector<Parameter*>& ps) {
    lowbit::detail::check(is_streaming(), "Transformer::unload: not a streaming model");
    for (Parameter* p : ps) p->unload();
  }

  Transformer(Transformer&&) = default;  // deque moves keep parameter addresses
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  [[nodiscard]] const TransformerConfig& config() const { return config_; }
  /// The transformer stack's linear layers, block by block, stage by stage.
  [[nodiscard]] const std::vector<LinearLayer>& linear_layers() const { return linears_; }
  [[nodiscard]] const LinearLayer& linear(std::string_view name) const {
    for (const auto& l : linears_)
      if (l.name == name) return l;
    lowbit::detail::fail("model has no linear layer '", name, "'");
  }
  /// Every parameter, in creation order (embeddings, blocks, final norm, classifier).
  [[nodiscard]] std::vector<Parameter*> parameters() {
    std::vector<Parameter*> out;
    for (auto& p : params_) out.push_back(&p);
    return out;
  }
  [[nodiscard]] Parameter& parameter(std::string_view name) {
    for (auto& p : params_)
      if (p.name() == name) return p;
    lowbit::detail::fail("model has no parameter '", name, "'");
  }
  [[nodiscard]] Index parameter_count() const {
    Index n = 0;
    for (const auto& p : params_) n += p.numel();
    return n;
  }

  [[nodiscard]] WeightSnapshot snapshot() const {
    WeightSnapshot s;
    for (const auto& p : params_) {
      check_loaded(&p);
      s.emplace_back(p.values().begin(), p.values().end());
    }
    return s;
  }
  void restore(const WeightSnapshot& s) {
    lowbit::detail::check(s.size() == params_.size(), "Transformer::restore: snapshot of ", s.size(),
                  " parameters, model has ", params_.size());
    std::size_t i = 0;
    for (auto& p : params_) {
      lowbit::detail::check(s[i].size() == p.values().size(), "Transformer::restore: snapshot of '", p.name(),
                    "' has ", s[i].size(), " values, expected ", p.values().size());
      std::copy(s[i].begin(), s[i].end(), p.data());
      ++i;
    }
  }

  // ---- forward pass -----------------------------------------------------------

  /// Token (and, for GPT-2, position) embeddings of ids [batch, seq] at positions pos0…
  Tensor embed(std::span<const std::int32_t> ids, Index batch, Index seq, Index pos0 = 0) const {
    lowbit::detail::check(batch > 0 && seq > 0 && static_cast<Index>(ids.size()) == batch * seq, "Transformer: ",
                  ids.size(), " ids for batch ", batch, " × sequence ", seq);
    lowbit::detail::check(pos0 + seq <= config_.context, "Transformer: positions up to ", pos0 + seq,
                  " exceed the model's context of ", config_.context);
    check_loaded(wte_);
    if (wpe_) check_loaded(wpe_);
    Tensor x = autograd::embedding<float>(*wte_, ids, {batch, seq});
    if (config_.arch == Architecture::gpt2) {
      std::vector<std::int32_t> pos(static_cast<std::size_t>(batch * seq));
      for (Index b = 0; b < batch; ++b)
        for (Index t = 0; t < seq; ++t) pos[static_cast<std::size_t>(b * seq + t)] = static_cast<std::int32_t>(pos0 + t);
      x = autograd::add(x, autograd::embedding<float>(*wpe_, pos, {batch, seq}));
    }
    return x;
  }

  /// A block's forward pass between stages: the residual stream and what the layers
  /// of the next stage read (LinearLayer::stage; every layer of a stage reads the
  /// same input).
  struct BlockState {
    Tensor x;      ///< residual stream [batch, seq, dim]: the block's input, then its output
    Tensor input;  ///< the next stage's input (undefined after the last stage)
    int next = 0;  ///< the next stage to run (4: the block is done)
  };
  static constexpr int block_stages = 4;

  /// Block i's state before its first stage: x and the first stage's input.
  BlockState begin_block(int i, Tensor x, Index pos0 = 0) const {
    const Block& b = checked_block(i, x, pos0);
    if (config_.arch == Architecture::gpt2)
      return {x, autograd::layer_norm(x, b.norm1->tensor(), b.norm1_bias->tensor(), config_.norm_eps), 0};
    return {x, autograd::rms_norm(x, b.norm1->tensor(), config_.norm_eps), 0};
  }

  /// Runs stage st.next of block i: its layers read st.input (with the weights they
  /// hold now); st.input becomes the next stage's input, st.x the residual stream.
  /// GPTQ's true-sequential order quantizes a stage's layers between two calls.
  void run_stage(int i, BlockState& st, const ForwardHooks& hooks = {}, Index pos0 = 0) const {
    const Block& b = checked_block(i, st.x, pos0);
    lowbit::detail::check(st.next >= 0 && st.next < block_stages, "Transformer::run_stage: block ", i,
                          " has no stage ", st.next);
    const Index batch = st.x.dim(0), seq = st.x.dim(1), hd = config_.head_dim();
    const Index hq = config_.heads, hkv = config_.kv_heads;
    const auto heads = [&](Tensor t, Index h) { return autograd::reshape(t, {batch, seq, h, hd}); };
    const bool gpt2 = config_.arch == Architecture::gpt2;
    switch (st.next++) {
      case 0: {  // attention: q, k, v (GPT-2: one fused c_attn) read the normalised x
        Tensor q, k, v;
        if (gpt2) {
          const Index dim = config_.dim;
          Tensor qkv = apply(b.first + 0, st.input, hooks);
          q = heads(autograd::slice_last(qkv, 0, dim), hq);
          k = heads(autograd::slice_last(qkv, dim, 2 * dim), hkv);
          v = heads(autograd::slice_last(qkv, 2 * dim, 3 * dim), hkv);
        } else {
          const auto rope = [&](Tensor t) {
            return autograd::rope(t, config_.rope_style, std::span<const float>(rope_freq_), pos0);
          };
          // Qwen3 normalises each head of q and k (over head_dim) before the rotation.
          const auto head_norm = [&](Tensor t, const Parameter* w) {
            return w ? autograd::rms_norm(t, w->tensor(), config_.norm_eps) : t;
          };
          // One statement per layer: hooks see the layers in registry order.
          q = rope(head_norm(heads(apply(b.first + 0, st.input, hooks), hq), b.q_norm));
          k = rope(head_norm(heads(apply(b.first + 1, st.input, hooks), hkv), b.k_norm));
          v = heads(apply(b.first + 2, st.input, hooks), hkv);
        }
        st.input = autograd::reshape(autograd::causal_attention(q, k, v), {batch, seq, hq * hd});
        return;
      }
      case 1: {  // attention output, then the MLP's normalisation
        st.x = autograd::add(st.x, apply(b.first + (gpt2 ? 1 : 3), st.input, hooks));
        st.input = gpt2 ? autograd::layer_norm(st.x, b.norm2->tensor(), b.norm2_bias->tensor(), config_.norm_eps)
                        : autograd::rms_norm(st.x, b.norm2->tensor(), config_.norm_eps);
        return;
      }
      case 2: {  // MLP input: GPT-2's c_fc and GELU, Llama's SwiGLU gate and up
        if (gpt2) {
          Tensor fc = apply(b.first + 2, st.input, hooks);
          st.input = hooks.gelu ? hooks.gelu(fc) : autograd::gelu_tanh(fc);
        } else {
          Tensor gate = autograd::silu(apply(b.first + 4, st.input, hooks));
          Tensor up = apply(b.first + 5, st.input, hooks);
          st.input = autograd::mul(gate, up);
        }
        return;
      }
      default: {  // MLP output
        st.x = autograd::add(st.x, apply(b.first + (gpt2 ? 3 : 6), st.input, hooks));
        st.input = Tensor{};
        return;
      }
    }
  }

  /// Transformer block i on x [batch, seq, dim].
  Tensor block(int i, Tensor x, const ForwardHooks& hooks = {}, Index pos0 = 0) const {
    BlockState st = begin_block(i, x, pos0);
    while (st.next < block_stages) run_stage(i, st, hooks, pos0);
    return st.x;
  }

  /// Final norm and classifier: logits [batch, seq, vocab].
  Tensor head(Tensor x, const ForwardHooks& hooks = {}) const {
    check_loaded(norm_f_);
    check_loaded(lm_head_ ? lm_head_ : wte_);
    x = config_.arch == Architecture::gpt2
            ? autograd::layer_norm(x, norm_f_->tensor(), norm_f_bias_->tensor(), config_.norm_eps)
            : autograd::rms_norm(x, norm_f_->tensor(), config_.norm_eps);
    const Parameter* w = lm_head_ ? lm_head_ : wte_;
    if (hooks.input) x = hooks.input(w->name(), x);
    return autograd::linear(x, w->tensor());
  }

  /// Logits [batch, seq, vocab] of ids [batch, seq] (row-major), on the current Graph.
  Tensor forward(std::span<const std::int32_t> ids, Index batch, Index seq, const ForwardHooks& hooks = {},
                 Index pos0 = 0) const {
    Tensor x = embed(ids, batch, seq, pos0);
    for (int i = 0; i < config_.layers; ++i) x = block(i, x, hooks, pos0);
    return head(x, hooks);
  }

 private:
  struct Streaming {};
  Transformer(std::shared_ptr<const Checkpoint> ck, Streaming) : config_(ck->config), source_(std::move(ck)) {
    config_.validate(source_->source);
    std::map<std::string, bool> used;
    build([&](const std::string& name, const std::vector<std::int64_t>& shape) {
      used[name] = true;
      lowbit::detail::check(source_->contains(name), "checkpoint '", source_->source, "' has no tensor '", name, "'");
      if (const auto got = source_->shape(name); got != shape) (void)source_->get(name, shape);  // names the shapes
      return std::vector<float>{};
    });
    check_all_used(*source_, used);
  }

  void check_all_used(const Checkpoint& ck, const std::map<std::string, bool>& used) const {
    for (const std::string& name : ck.names()) {
      const bool tied_copy = config_.tied_head && name == "lm_head.weight";
      const bool rope_buffer = name.find("rotary_emb.inv_freq") != std::string::npos;
      if (!used.count(name) && !tied_copy && !rope_buffer)
        lowbit::detail::fail("checkpoint '", ck.source, "': tensor '", name, "' is not part of a ",
                             config_.arch == Architecture::gpt2 ? "GPT-2" : "Llama", " model with this config");
    }
  }

  struct Block {
    std::size_t param_begin = 0, param_end = 0;  ///< the block's parameters in params_
    Parameter *norm1 = nullptr, *norm1_bias = nullptr, *norm2 = nullptr, *norm2_bias = nullptr;
    Parameter *q_norm = nullptr, *k_norm = nullptr;  ///< Qwen3's per-head RMSNorm weights
    std::size_t first = 0;  ///< index of the block's first layer in linears_
  };

  /// Block i, checked against x [batch, seq, dim] and the positions it covers.
  const Block& checked_block(int i, const Tensor& x, Index pos0) const {
    lowbit::detail::check(i >= 0 && i < config_.layers, "Transformer::block: no block ", i);
    lowbit::detail::check(x.ndim() == 3 && x.dim(2) == config_.dim, "Transformer::block: input ", x.shape(),
                          " is not [batch, seq, ", config_.dim, "]");
    lowbit::detail::check(config_.sliding_window == 0 || pos0 + x.dim(1) <= config_.sliding_window, "Transformer: ",
                          pos0 + x.dim(1), " positions exceed the sliding window of ", config_.sliding_window,
                          " (sliding-window attention beyond the window is not implemented)");
    const Block& b = blocks_[static_cast<std::size_t>(i)];
    lowbit::detail::check(params_[b.param_begin].loaded(), "Transformer: block ", i,
                          " is not loaded (a streaming model: load(block_parameters(", i, ")) first)");
    return b;
  }
  void check_loaded(const Parameter* p) const {
    lowbit::detail::check(p->loaded(), "Transformer: '", p->name(),
                          "' is not loaded (a streaming model: load(outside_parameters()) first)");
  }

  Tensor apply(std::size_t layer, Tensor input, const ForwardHooks& hooks) const {
    const LinearLayer& l = linears_[layer];
    if (hooks.on_input) hooks.on_input(l, input);
    if (hooks.input) input = hooks.input(l.name, input);
    Tensor w;
    if (hooks.weight) w = hooks.weight(l);
    if (!w.defined()) w = l.weight->tensor();
    return autograd::linear(input, w, l.bias ? l.bias->tensor() : Tensor{});
  }

  template <class Values>
  Parameter* add_param(Values& values, const std::string& name, std::vector<std::int64_t> shape) {
    autograd::Shape s;
    for (auto d : shape) s.dims[static_cast<std::size_t>(s.ndim++)] = d;
    std::vector<float> v = values(name, shape);
    if (source_) return &params_.emplace_back(name, s, Parameter::Unloaded{});
    return &params_.emplace_back(name, s, std::move(v));
  }

  template <class Values>
  void add_linear(Values& values, const std::string& name, int block, LinearRole role, int stage, Index out,
                  Index in, bool bias) {
    LinearLayer l;
    l.name = name + ".weight";
    l.block = block;
    l.role = role;
    l.stage = stage;
    l.weight = add_param(values, l.name, {out, in});
    if (bias) l.bias = add_param(values, name + ".bias", {out});
    linears_.push_back(std::move(l));
  }

  /// Creates every parameter in a fixed order, asking `values(name, shape)` for its values.
  template <class Values>
  void build(Values&& values) {
    const TransformerConfig& c = config_;
    if (c.arch == Architecture::llama) rope_freq_ = rope_frequencies(c);
    const Index d = c.dim, ff = c.hidden, kv = c.kv_dim(), qd = c.q_dim(), hd = c.head_dim();
    // Blocks are added one at a time, never resized to c.layers up front: loading a
    // checkpoint whose config.json claims 10^9 layers stops at the first tensor the
    // file lacks, having allocated only what the file holds.
    if (c.arch == Architecture::gpt2) {
      wte_ = add_param(values, "transformer.wte.weight", {c.vocab, d});
      wpe_ = add_param(values, "transformer.wpe.weight", {c.context, d});
      for (int i = 0; i < c.layers; ++i) {
        const std::string p = "transformer.h." + std::to_string(i) + ".";
        Block& b = blocks_.emplace_back();
        b.first = linears_.size();
        b.param_begin = params_.size();
        b.norm1 = add_param(values, p + "ln_1.weight", {d});
        b.norm1_bias = add_param(values, p + "ln_1.bias", {d});
        add_linear(values, p + "attn.c_attn", i, LinearRole::qkv, 0, 3 * d, d, true);
        add_linear(values, p + "attn.c_proj", i, LinearRole::attn_out, 1, d, d, true);
        b.norm2 = add_param(values, p + "ln_2.weight", {d});
        b.norm2_bias = add_param(values, p + "ln_2.bias", {d});
        add_linear(values, p + "mlp.c_fc", i, LinearRole::mlp_in, 2, ff, d, true);
        add_linear(values, p + "mlp.c_proj", i, LinearRole::mlp_out, 3, d, ff, true);
        b.param_end = params_.size();
      }
      norm_f_ = add_param(values, "transformer.ln_f.weight", {d});
      norm_f_bias_ = add_param(values, "transformer.ln_f.bias", {d});
    } else {
      wte_ = add_param(values, "model.embed_tokens.weight", {c.vocab, d});
      for (int i = 0; i < c.layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        Block& b = blocks_.emplace_back();
        b.first = linears_.size();
        b.param_begin = params_.size();
        b.norm1 = add_param(values, p + "input_layernorm.weight", {d});
        add_linear(values, p + "self_attn.q_proj", i, LinearRole::q, 0, qd, d, c.qkv_bias);
        add_linear(values, p + "self_attn.k_proj", i, LinearRole::k, 0, kv, d, c.qkv_bias);
        add_linear(values, p + "self_attn.v_proj", i, LinearRole::v, 0, kv, d, c.qkv_bias);
        if (c.qk_norm) {
          b.q_norm = add_param(values, p + "self_attn.q_norm.weight", {hd});
          b.k_norm = add_param(values, p + "self_attn.k_norm.weight", {hd});
        }
        add_linear(values, p + "self_attn.o_proj", i, LinearRole::attn_out, 1, d, qd, c.o_bias);
        b.norm2 = add_param(values, p + "post_attention_layernorm.weight", {d});
        add_linear(values, p + "mlp.gate_proj", i, LinearRole::gate, 2, ff, d, false);
        add_linear(values, p + "mlp.up_proj", i, LinearRole::up, 2, ff, d, false);
        add_linear(values, p + "mlp.down_proj", i, LinearRole::mlp_out, 3, d, ff, false);
        b.param_end = params_.size();
      }
      norm_f_ = add_param(values, "model.norm.weight", {d});
      if (!c.tied_head) lm_head_ = add_param(values, "lm_head.weight", {c.vocab, d});
    }
  }

  /// GPT-2's initialisation, from a counter-based generator so that every
  /// parameter's values depend only on (seed, name), not on creation order.
  [[nodiscard]] std::vector<float> initial_values(const std::string& name, const std::vector<std::int64_t>& shape,
                                                  std::uint64_t seed) const {
    std::size_t n = 1;
    for (auto s : shape) n *= static_cast<std::size_t>(s);
    const auto ends_with = [&](std::string_view suffix) {
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    const bool is_norm = ends_with("ln_1.weight") || ends_with("ln_2.weight") || ends_with("ln_f.weight") ||
                         ends_with("layernorm.weight") || ends_with("norm.weight");
    if (is_norm) return std::vector<float>(n, 1.0f);
    if (ends_with(".bias")) return std::vector<float>(n, 0.0f);
    double std = 0.02;
    if (ends_with("attn.c_proj.weight") || ends_with("mlp.c_proj.weight") || ends_with("o_proj.weight") ||
        ends_with("down_proj.weight"))
      std /= std::sqrt(2.0 * config_.layers);
    std::uint64_t state = seed ^ 0x9E3779B97F4A7C15ull;
    for (unsigned char ch : name) state = (state ^ ch) * 0x100000001B3ull;  // FNV-1a over the name
    const auto next = [&state] {  // splitmix64
      std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      return z ^ (z >> 31);
    };
    std::vector<float> v(n);
    const double two_pi = 6.283185307179586;
    for (std::size_t i = 0; i < n; i += 2) {  // Box–Muller, two normals per pair of uniforms
      const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53;
      const double u2 = static_cast<double>(next() >> 11) * 0x1.0p-53;
      const double r = std * std::sqrt(-2.0 * std::log(u1));
      v[i] = static_cast<float>(r * std::cos(two_pi * u2));
      if (i + 1 < n) v[i + 1] = static_cast<float>(r * std::sin(two_pi * u2));
    }
    return v;
  }

  TransformerConfig config_;
  std::vector<float> rope_freq_;  ///< RoPE's inverse frequency per pair (Llama family)
  std::deque<Parameter> params_;
  std::vector<LinearLayer> linears_;
  std::vector<Block> blocks_;
  std::shared_ptr<const Checkpoint> source_;  ///< a streaming model's weights (null: all in memory)
  Parameter *wte_ = nullptr, *wpe_ = nullptr, *norm_f_ = nullptr, *norm_f_bias_ = nullptr, *lm_head_ = nullptr;
};

}  // namespace lowbit::nn
