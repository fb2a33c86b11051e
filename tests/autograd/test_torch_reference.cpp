// Outputs and gradients against PyTorch 1.13 (tests/fixtures/autograd, made by
// scripts/fixtures/gen_autograd_fixtures.py).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "lowbit/autograd.hpp"
#include "../support/fixture.hpp"

using namespace lowbit::autograd;
using lowbit::test::Fixture;
using lowbit::test::FixtureTensor;

namespace {

const Fixture& ops() {
  static const Fixture f("autograd/ops.txt");
  return f;
}
const Fixture& optim() {
  static const Fixture f("autograd/optim.txt");
  return f;
}

Shape shape_of(const FixtureTensor& t) {
  Shape s;
  for (long d : t.shape) s.dims[static_cast<std::size_t>(s.ndim++)] = d;
  if (s.ndim == 0) s = Shape{1};
  return s;
}

Tensor input(Graph& g, const FixtureTensor& t) { return g.variable(shape_of(t), t.values); }

void expect_close(std::span<const float> got, const FixtureTensor& want, const std::string& what,
                  float atol = 2e-6f, float rtol = 2e-5f) {
  REQUIRE_MESSAGE(got.size() == want.values.size(), what, ": size ", got.size(), " vs ", want.values.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(what, "[", i, "]: got ", got[i], " torch ", want.values[i]);
    CHECK(std::abs(got[i] - want.values[i]) <= atol + rtol * std::abs(want.values[i]));
  }
}

// Σ y ⊙ dy as the loss, so input gradients are the vector-Jacobian products PyTorch recorded.
void backprop(Graph& g, Tensor y, const FixtureTensor& dy) {
  backward(sum(mul(y, g.constant(y.shape(), dy.values))));
}

}  // namespace

TEST_CASE("torch: cross_entropy with ignore_index and large logits") {
  const auto& f = ops();
  Graph g;
  Tensor x = input(g, f["ce.logits"]);
  std::vector<std::int32_t> targets;
  for (float t : f["ce.targets"].values) targets.push_back(static_cast<std::int32_t>(t));
  Tensor loss = cross_entropy(x, std::span<const std::int32_t>(targets), -100);
  CHECK(loss.item() == doctest::Approx(f["ce.loss"].scalar()).epsilon(1e-6));
  backward(loss);
  expect_close(x.grads(), f["ce.grad"], "ce.grad");
}

TEST_CASE("torch: causal attention, multi-head and grouped-query") {
  const auto& f = ops();
  for (std::string c : {"mha", "gqa"}) {
    Graph g;
    const std::string p = "attn." + c + ".";
    Tensor q = input(g, f[p + "q"]), k = input(g, f[p + "k"]), v = input(g, f[p + "v"]);
    Tensor y = causal_attention(q, k, v);
    expect_close(y.values(), f[p + "out"], p + "out");
    backprop(g, y, f[p + "dout"]);
    expect_close(q.grads(), f[p + "dq"], p + "dq");
    expect_close(k.grads(), f[p + "dk"], p + "dk");
    expect_close(v.grads(), f[p + "dv"], p + "dv");
  }
}

TEST_CASE("torch: layer_norm and rms_norm outputs and gradients") {
  const auto& f = ops();
  {
    Graph g;
    Tensor x = input(g, f["ln.x"]), w = input(g, f["ln.w"]), b = input(g, f["ln.b"]);
    Tensor y = layer_norm(x, w, b, 1e-5f);
    expect_close(y.values(), f["ln.y"], "ln.y");
    backprop(g, y, f["ln.dy"]);
    expect_close(x.grads(), f["ln.dx"], "ln.dx");
    expect_close(w.grads(), f["ln.dw"], "ln.dw");
    expect_close(b.grads(), f["ln.db"], "ln.db");
  }
  Graph g;
  Tensor x = input(g, f["rms.x"]), w = input(g, f["rms.w"]);
  Tensor y = rms_norm(x, w, 1e-6f);
  expect_close(y.values(), f["rms.y"], "rms.y");
  backprop(g, y, f["rms.dy"]);
  expect_close(x.grads(), f["rms.dx"], "rms.dx");
  expect_close(w.grads(), f["rms.dw"], "rms.dw");
}

TEST_CASE("torch: gelu(tanh), silu, softmax") {
  const auto& f = ops();
  for (std::string op : {"gelu", "silu", "softmax"}) {
    Graph g;
    Tensor x = input(g, f[op + ".x"]);
    Tensor y = op == "gelu" ? gelu_tanh(x) : op == "silu" ? silu(x) : softmax(x);
    expect_close(y.values(), f[op + ".y"], op + ".y");
    backprop(g, y, f[op + ".dy"]);
    expect_close(x.grads(), f[op + ".dx"], op + ".dx");
  }
}

TEST_CASE("torch: rotary embedding, interleaved (Meta/llama2.c) and half (Hugging Face)") {
  const auto& f = ops();
  for (std::string style : {"interleaved", "half"}) {
    Graph g;
    const std::string p = "rope." + style + ".";
    Tensor x = input(g, f[p + "x"]);
    Tensor y = rope(x, style == "half" ? RopeStyle::half : RopeStyle::interleaved, 10000.0f, 3);
    expect_close(y.values(), f[p + "y"], p + "y", 1e-5f, 1e-5f);
    backprop(g, y, f[p + "dy"]);
    expect_close(x.grads(), f[p + "dx"], p + "dx", 1e-5f, 1e-5f);
  }
}

TEST_CASE("torch: STE fake-quant forward and clipped-gradient mask (fake_quantize_per_*_affine)") {
  const auto& f = ops();
  const auto& w0 = f["fq.tensor.w"];
  for (std::string kind : {"tensor", "channel"}) {
    const std::string p = "fq." + kind + ".";
    lowbit::QuantParams params;
    params.format = lowbit::Int<4>::info();
    params.layout.rows = 3;
    params.layout.cols = 10;
    if (kind == "tensor") {
      params.layout.kind = lowbit::ScaleLayout::Kind::tensor;
      params.layout.group_size = 10;
      params.scales = {0.25f};
    } else {
      params.layout.kind = lowbit::ScaleLayout::Kind::channel;
      params.layout.group_size = 10;
      params.scales = f[p + "scales"].values;
    }
    Graph g;
    Tensor w = input(g, w0);
    Tensor y = fake_quant_ste(w, params, SteOptions{SteGradient::mask_clipped});
    expect_close(y.values(), f[p + "y"], p + "y", 0, 0);
    backprop(g, y, f[p + "dy"]);
    expect_close(w.grads(), f[p + "dw"], p + "dw", 0, 0);
  }
}

TEST_CASE("torch: AdamW trajectory with linear LR decay, weight decay 0 and 0.01") {
  const auto& f = optim();
  const auto& a = f["quad.a"].values;
  const auto& c = f["quad.c"].values;
  for (std::string wd : {"0_0", "0_01"}) {
    Parameter p("p", Shape{8}, f["quad.p0"].values);
    AdamW opt({&p}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, wd == "0_0" ? 0.0 : 0.01});
    const LrSchedule sched{LrSchedule::Kind::linear, 0.1, 0, 20, 0.1};
    const auto& traj = f["adamw.wd" + wd + ".traj"];
    for (int s = 0; s < 20; ++s) {
      opt.set_lr(sched.at(s));
      opt.zero_grad();
      // Gradient of 0.5·Σ a(p − c)² through the engine.
      Graph g;
      Tensor d = add(p.tensor(), scale(g.constant(Shape{8}, c), -1.0f));
      backward(scale(sum(mul(mul(d, d), g.constant(Shape{8}, a))), 0.5f));
      opt.step();
      for (int i = 0; i < 8; ++i) {
        INFO("wd ", wd, " step ", s, " element ", i);
        CHECK(p.data()[i] == doctest::Approx(traj.values[static_cast<std::size_t>(s * 8 + i)]).epsilon(2e-5));
      }
    }
  }
}

TEST_CASE("torch: SGD with momentum and weight decay trajectory; clip_grad_norm") {
  const auto& f = optim();
  const auto& a = f["quad.a"].values;
  const auto& c = f["quad.c"].values;
  Parameter p("p", Shape{8}, f["quad.p0"].values);
  Sgd opt({&p}, SgdOptions{0.05, 0.9, 0.0, 0.01});
  const auto& traj = f["sgd.traj"];
  for (int s = 0; s < 20; ++s) {
    opt.zero_grad();
    for (int i = 0; i < 8; ++i) p.grad()[i] = a[static_cast<std::size_t>(i)] * (p.data()[i] - c[static_cast<std::size_t>(i)]);
    opt.step();
    for (int i = 0; i < 8; ++i)
      CHECK(p.data()[i] == doctest::Approx(traj.values[static_cast<std::size_t>(s * 8 + i)]).epsilon(2e-5));
  }
  Parameter p1("p1", Shape{5}), p2("p2", Shape{2, 3});
  std::copy(f["clip.g1"].values.begin(), f["clip.g1"].values.end(), p1.grad());
  std::copy(f["clip.g2"].values.begin(), f["clip.g2"].values.end(), p2.grad());
  const double norm = clip_grad_norm<float>({&p1, &p2}, 1.5);
  CHECK(norm == doctest::Approx(f["clip.norm"].scalar()).epsilon(1e-6));
  expect_close(p1.grads(), f["clip.clipped1"], "clipped1");
  expect_close(p2.grads(), f["clip.clipped2"], "clipped2");
}
