// A two-layer GPT-style transformer trained by the engine on a fixed synthetic task,
// then fine-tuned with STE fake-quantized weights (QAFT).
#include <cmath>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "lowbit/autograd.hpp"
#include "lowbit/quant.hpp"
#include "../support/random.hpp"

using namespace lowbit::autograd;

namespace {

constexpr Index vocab = 12, ctx = 16, dim = 32, heads = 4, layers = 2, batch = 4;

// Sequence s counts modulo `vocab` in steps of steps[s]: after two tokens the rest is
// determined, but only attention can tell which step a sequence uses.
std::vector<std::int32_t> make_tokens() {
  const int steps[batch] = {1, 2, 3, 5};
  std::vector<std::int32_t> t;
  for (int s = 0; s < batch; ++s)
    for (int i = 0; i <= ctx; ++i) t.push_back(static_cast<std::int32_t>((3 * s + steps[s] * i) % vocab));
  return t;  // batch × (ctx + 1)
}

struct ToyGpt {
  std::deque<Parameter> params;  // deque: stable addresses
  Parameter& add_param(const std::string& name, Shape shape, float stddev, float fill = 0.0f) {
    std::vector<float> v = stddev > 0 ? lowbit::test::gaussian(static_cast<std::size_t>(shape.numel()), stddev,
                                                               static_cast<std::uint32_t>(params.size() + 1))
                                      : std::vector<float>(static_cast<std::size_t>(shape.numel()), fill);
    return params.emplace_back(name, shape, std::move(v));
  }
  struct Block {
    Parameter *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *out_w, *out_b;
  };
  Parameter *wte, *wpe, *lnf_w, *lnf_b;
  std::vector<Block> blocks;

  ToyGpt() {
    wte = &add_param("wte", Shape{vocab, dim}, 0.1f);
    wpe = &add_param("wpe", Shape{ctx, dim}, 0.02f);
    for (Index l = 0; l < layers; ++l) {
      std::string p = "h";
      p.append(std::to_string(l)).push_back('.');
      auto n = [&p](const char* leaf) { return std::string(p).append(leaf); };
      Block b{};
      b.ln1_w = &add_param(n("ln1.w"), Shape{dim}, 0, 1.0f);
      b.ln1_b = &add_param(n("ln1.b"), Shape{dim}, 0);
      b.qkv_w = &add_param(n("qkv.w"), Shape{3 * dim, dim}, 0.1f);
      b.qkv_b = &add_param(n("qkv.b"), Shape{3 * dim}, 0);
      b.proj_w = &add_param(n("proj.w"), Shape{dim, dim}, 0.05f);
      b.proj_b = &add_param(n("proj.b"), Shape{dim}, 0);
      b.ln2_w = &add_param(n("ln2.w"), Shape{dim}, 0, 1.0f);
      b.ln2_b = &add_param(n("ln2.b"), Shape{dim}, 0);
      b.fc_w = &add_param(n("fc.w"), Shape{4 * dim, dim}, 0.1f);
      b.fc_b = &add_param(n("fc.b"), Shape{4 * dim}, 0);
      b.out_w = &add_param(n("out.w"), Shape{dim, 4 * dim}, 0.05f);
      b.out_b = &add_param(n("out.b"), Shape{dim}, 0);
      blocks.push_back(b);
    }
    lnf_w = &add_param("lnf.w", Shape{dim}, 0, 1.0f);
    lnf_b = &add_param("lnf.b", Shape{dim}, 0);
  }

  std::vector<Parameter*> all() {
    std::vector<Parameter*> v;
    for (auto& p : params) v.push_back(&p);
    return v;
  }

  // Linear weights go through `weight()` so QAFT can fake-quantize them.
  template <class WeightFn>
  Tensor loss(const std::vector<std::int32_t>& tokens, WeightFn weight) {
    std::vector<std::int32_t> in, target;
    for (Index s = 0; s < batch; ++s)
      for (Index i = 0; i < ctx; ++i) {
        in.push_back(tokens[static_cast<std::size_t>(s * (ctx + 1) + i)]);
        target.push_back(tokens[static_cast<std::size_t>(s * (ctx + 1) + i + 1)]);
      }
    std::vector<std::int32_t> pos;
    for (Index s = 0; s < batch; ++s)
      for (Index i = 0; i < ctx; ++i) pos.push_back(static_cast<std::int32_t>(i));
    Tensor x = add(embedding(wte->tensor(), std::span<const std::int32_t>(in), Shape{batch, ctx}),
                   embedding(wpe->tensor(), std::span<const std::int32_t>(pos), Shape{batch, ctx}));
    for (auto& b : blocks) {
      Tensor h = layer_norm(x, b.ln1_w->tensor(), b.ln1_b->tensor());
      Tensor qkv = linear(h, weight(*b.qkv_w), b.qkv_b->tensor());
      const Shape hs{batch, ctx, heads, dim / heads};
      Tensor q = reshape(slice_last(qkv, 0, dim), hs);
      Tensor k = reshape(slice_last(qkv, dim, 2 * dim), hs);
      Tensor v = reshape(slice_last(qkv, 2 * dim, 3 * dim), hs);
      Tensor a = reshape(causal_attention(q, k, v), Shape{batch, ctx, dim});
      x = add(x, linear(a, weight(*b.proj_w), b.proj_b->tensor()));
      h = layer_norm(x, b.ln2_w->tensor(), b.ln2_b->tensor());
      x = add(x, linear(gelu_tanh(linear(h, weight(*b.fc_w), b.fc_b->tensor())), weight(*b.out_w),
                        b.out_b->tensor()));
    }
    Tensor logits = linear(layer_norm(x, lnf_w->tensor(), lnf_b->tensor()), wte->tensor());  // tied head
    return cross_entropy(logits, std::span<const std::int32_t>(target));
  }
};

}  // namespace

TEST_CASE("toy transformer: AdamW drives the loss down, then QAFT lowers the int2 loss") {
  ToyGpt model;
  const auto tokens = make_tokens();
  auto plain = [](Parameter& p) { return p.tensor(); };
  AdamW opt(model.all(), AdamWOptions{3e-3, 0.9, 0.999, 1e-8, 0.0});
  const int steps = 200;
  const LrSchedule sched{LrSchedule::Kind::linear, 1e-2, 10, steps, 0.1};
  Graph g;
  float first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    g.clear();
    Tensor loss = model.loss(tokens, plain);
    if (s == 0) first = loss.item();
    last = loss.item();
    opt.zero_grad();
    backward(loss);
    clip_grad_norm(model.all(), 1.0);
    opt.set_lr(sched.at(s));
    opt.step();
  }
  MESSAGE("toy transformer loss ", first, " -> ", last, " (uniform: ", std::log(float(vocab)), ")");
  CHECK(first == doctest::Approx(std::log(float(vocab))).epsilon(0.25));
  CHECK(last < 0.2f * first);

  // QAFT: every linear weight of the stack fake-quantized to int2 (ternary) per channel (the
  // observer recomputes scales each step), straight-through gradients, AdamW without
  // weight decay, linear decay by 10x.
  const lowbit::Quantizer<lowbit::Int<2>, lowbit::PerChannel, lowbit::AbsMax> q;
  auto quantized = [&](Parameter& p) { return fake_quant_ste(p.tensor(), q); };
  float before = 0;
  {
    NoGradGuard no_grad;
    g.clear();
    before = model.loss(tokens, quantized).item();
  }
  AdamW qaft(model.all(), AdamWOptions{1e-3, 0.9, 0.999, 1e-8, 0.0});
  const LrSchedule qsched{LrSchedule::Kind::linear, 1e-3, 0, 60, 0.1};
  for (int s = 0; s < 60; ++s) {
    g.clear();
    Tensor loss = model.loss(tokens, quantized);
    qaft.zero_grad();
    backward(loss);
    qaft.set_lr(qsched.at(s));
    qaft.step();
  }
  float after = 0;
  {
    NoGradGuard no_grad;
    g.clear();
    after = model.loss(tokens, quantized).item();
  }
  MESSAGE("int2 fake-quantized loss before QAFT ", before, ", after ", after, " (fp model ", last, ")");
  CHECK(after < 0.5f * before);
}
