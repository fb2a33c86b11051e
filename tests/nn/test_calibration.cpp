// nn::quantize_with_calibration and nn::layer_hessians against Hessians accumulated
// by hand (in double) from layer inputs captured with ForwardHooks::on_input, one
// window at a time; and GPTQ int4 over the real stories260K against RTN.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "../io/shared_data.hpp"
#include "lowbit/gptq.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/nn.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/text/llama2c_tokenizer.hpp"
#include "lowbit/text/tinystories.hpp"
#include "tiny_config.hpp"

namespace {

using lowbit::Hessian;
using lowbit::Index;
using lowbit::nn::Architecture;
using lowbit::nn::CalibrationOrder;
using lowbit::nn::LinearLayer;
using lowbit::nn::Transformer;

using lowbit::test::tiny_config;

// Random token windows of unequal lengths (full context and shorter), so that
// batching groups lengths and splits groups.
struct Windows {
  std::vector<std::vector<int>> tokens;
  std::vector<std::span<const int>> spans;
};
Windows random_windows(int vocab, const std::vector<int>& lengths, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  Windows w;
  for (int len : lengths) {
    std::vector<int> t(static_cast<std::size_t>(len));
    for (auto& v : t) v = tok(gen);
    w.tokens.push_back(std::move(t));
  }
  for (const auto& t : w.tokens) w.spans.emplace_back(t);
  return w;
}
const std::vector<int> kLengths{12, 7, 12, 5, 7, 12, 12};

// H = (2/n)·Σ_tokens x xᵀ of `layer`'s inputs, n = number of windows (the
// reference's sequence count), in double, running each window alone.
Eigen::MatrixXd hessian_by_hand(const Transformer& m, const std::string& layer,
                                const std::vector<std::span<const int>>& windows) {
  const Index in = m.linear(layer).in_features();
  Eigen::MatrixXd h = Eigen::MatrixXd::Zero(in, in);
  lowbit::nn::ForwardHooks hooks;
  hooks.on_input = [&](const LinearLayer& l, lowbit::autograd::Tensor x) {
    if (l.name != layer) return;
    const Index rows = x.numel() / in;
    for (Index r = 0; r < rows; ++r) {
      const Eigen::Map<const Eigen::VectorXf> v(x.data() + r * in, in);
      h += v.cast<double>() * v.cast<double>().transpose();
    }
  };
  for (const auto w : windows) {
    lowbit::autograd::Graph g;
    lowbit::autograd::NoGradGuard ng;
    (void)m.forward(w, 1, static_cast<Index>(w.size()), hooks);
  }
  return h * (2.0 / static_cast<double>(windows.size()));
}

double relative_difference(const Eigen::MatrixXf& a, const Eigen::MatrixXd& b) {
  return (a.cast<double>() - b).norm() / b.norm();
}

// Records every Hessian handed to a solve and writes back `replace(layer)`.
struct Recorder {
  std::vector<std::string> names;
  std::vector<Hessian> hessians;
};

// RTN int2 per channel: a solve that changes the weights a lot, independent of H.
void rtn_int2(const LinearLayer& l) {
  const lowbit::Rtn<lowbit::Int<2>, lowbit::PerChannel> rtn;
  const auto r = rtn.quantize(lowbit::ConstMatrixView(l.weight->matrix()), l.name);
  std::copy(r.weights.data(), r.weights.data() + r.weights.size(), l.weight->data());
}

}  // namespace

TEST_CASE("calibration, parallel order: each layer's Hessian is (2/n)·ΣXᵀX of its inputs, n = windows") {
  for (auto arch : {Architecture::gpt2, Architecture::llama}) {
    Transformer m(tiny_config(arch), 5);
    const auto w = random_windows(m.config().vocab, kLengths, 1);
    Recorder rec;
    lowbit::nn::CalibrationOptions o;
    o.order = CalibrationOrder::parallel;
    o.batch = 2;
    std::vector<std::size_t> progress;
    lowbit::nn::quantize_with_calibration(
        m, w.spans,
        [&](const LinearLayer& l, const Hessian& h) {
          rec.names.push_back(l.name);
          rec.hessians.push_back(h);
          rtn_int2(l);  // must not change the other layers' Hessians in this order
        },
        o, [&](std::size_t done, std::size_t total) {
          CHECK(total == m.linear_layers().size());
          progress.push_back(done);
        });
    const Transformer fresh(tiny_config(arch), 5);
    REQUIRE(rec.names.size() == fresh.linear_layers().size());
    REQUIRE(progress.size() == rec.names.size());
    const auto by_layer = lowbit::nn::layer_hessians(fresh, w.spans, 3);
    for (std::size_t i = 0; i < rec.names.size(); ++i) {
      CHECK(progress[i] == i + 1);
      CHECK(rec.names[i] == fresh.linear_layers()[i].name);  // registry order
      const auto want = hessian_by_hand(fresh, rec.names[i], w.spans);
      INFO(rec.names[i]);
      CHECK(rec.hessians[i].samples == doctest::Approx(static_cast<double>(kLengths.size())));
      CHECK(rec.hessians[i].tokens == 67);
      CHECK(relative_difference(rec.hessians[i].matrix, want) < 1e-5);
      CHECK(relative_difference(by_layer[i].matrix, want) < 1e-5);
    }
  }
}

TEST_CASE("calibration, sequential order: a layer sees its inputs with every earlier stage already quantized") {
  for (auto arch : {Architecture::gpt2, Architecture::llama}) {
    Transformer m(tiny_config(arch), 9);
    const auto w = random_windows(m.config().vocab, kLengths, 2);
    Recorder rec;
    lowbit::nn::CalibrationOptions o;  // sequential by default
    o.batch = 3;
    lowbit::nn::quantize_with_calibration(m, w.spans, [&](const LinearLayer& l, const Hessian& h) {
      rec.names.push_back(l.name);
      rec.hessians.push_back(h);
      rtn_int2(l);
    }, o);
    const Transformer original(tiny_config(arch), 9);
    REQUIRE(rec.names.size() == original.linear_layers().size());
    const auto parallel = lowbit::nn::layer_hessians(original, w.spans);
    // Every layer after the first stage: by hand from a model whose layers of
    // earlier (block, stage) are replaced by their RTN int2 weights.
    int compared = 0;
    for (std::size_t i = 0; i < rec.names.size(); ++i) {
      const LinearLayer& target = original.linear_layers()[i];
      if (target.block == 0 && target.stage == 0) continue;
      Transformer partly(tiny_config(arch), 9);
      for (const auto& l : partly.linear_layers())
        if (l.block * 4 + l.stage < target.block * 4 + target.stage) rtn_int2(l);
      const auto want = hessian_by_hand(partly, target.name, w.spans);
      INFO(target.name);
      CHECK(relative_difference(rec.hessians[i].matrix, want) < 1e-5);
      CHECK(relative_difference(parallel[i].matrix, want) > 1e-3);  // the order matters
      ++compared;
    }
    CHECK(compared == static_cast<int>(rec.names.size()) - (arch == Architecture::gpt2 ? 1 : 3));
    // The first stage reads the embeddings: the same in both orders.
    CHECK(relative_difference(rec.hessians[0].matrix, parallel[0].matrix.cast<double>()) < 1e-6);
    // And the model ends up with every layer replaced.
    for (std::size_t i = 0; i < rec.names.size(); ++i) {
      Transformer q(tiny_config(arch), 9);
      rtn_int2(q.linear_layers()[i]);
      const auto a = m.linear_layers()[i].weight->values(), b = q.linear_layers()[i].weight->values();
      CHECK(std::equal(a.begin(), a.end(), b.begin()));
    }
  }
}

TEST_CASE("calibration: with a solve that keeps the weights, sequential and parallel Hessians agree") {
  for (auto arch : {Architecture::gpt2, Architecture::llama}) {
    std::vector<Hessian> seq, par;
    for (auto order : {CalibrationOrder::sequential, CalibrationOrder::parallel}) {
      Transformer m(tiny_config(arch), 4);
      const auto w = random_windows(m.config().vocab, kLengths, 3);
      lowbit::nn::CalibrationOptions o;
      o.order = order;
      o.batch = order == CalibrationOrder::sequential ? 4 : 1;
      o.count = lowbit::SampleCount::tokens;
      auto& out = order == CalibrationOrder::sequential ? seq : par;
      lowbit::nn::quantize_with_calibration(m, w.spans, [&](const LinearLayer& l, const Hessian& h) {
        out.push_back(h);
        const std::vector<float> same(l.weight->values().begin(), l.weight->values().end());
        std::copy(same.begin(), same.end(), l.weight->data());
      }, o);
    }
    REQUIRE(seq.size() == par.size());
    for (std::size_t i = 0; i < seq.size(); ++i) {
      CHECK(seq[i].samples == 67.0);  // counting tokens
      CHECK(relative_difference(seq[i].matrix, par[i].matrix.cast<double>()) < 1e-5);
    }
  }
}

TEST_CASE("calibration: bad windows and options raise lowbit::Error naming the problem") {
  Transformer m(tiny_config(Architecture::llama), 1);
  const auto none = [](const LinearLayer&, const Hessian&) {};
  const std::vector<int> ok{1, 2, 3}, too_long(13, 1), out_of_vocab{1, 23, 2}, negative{-1, 2};
  const std::vector<int> empty;
  using Spans = std::vector<std::span<const int>>;
  CHECK_THROWS_WITH_AS(lowbit::nn::quantize_with_calibration(m, Spans{}, none), doctest::Contains("no calibration windows"),
                       lowbit::Error);
  CHECK_THROWS_WITH_AS(lowbit::nn::quantize_with_calibration(m, Spans{ok, too_long}, none),
                       doctest::Contains("window 1 has 13 tokens, more than the model's context of 12"), lowbit::Error);
  CHECK_THROWS_WITH_AS(lowbit::nn::quantize_with_calibration(m, Spans{out_of_vocab}, none),
                       doctest::Contains("token id 23 at position 1, outside the vocabulary [0, 23)"), lowbit::Error);
  CHECK_THROWS_WITH_AS((void)lowbit::nn::layer_hessians(m, Spans{ok, negative}),
                       doctest::Contains("window 1 has token id -1"), lowbit::Error);
  CHECK_THROWS_WITH_AS((void)lowbit::nn::layer_hessians(m, Spans{ok, empty}), doctest::Contains("window 1 is empty"),
                       lowbit::Error);
  CHECK_THROWS_WITH_AS((void)lowbit::nn::layer_hessians(m, Spans{ok}, 0), doctest::Contains("batch"), lowbit::Error);
  // A failing solve propagates, and nothing was quantized before the first solve.
  const auto before = m.snapshot();
  CHECK_THROWS_WITH_AS(lowbit::nn::quantize_with_calibration(
                           m, Spans{ok}, [](const LinearLayer& l, const Hessian&) { lowbit::detail::fail("solve ", l.name); }),
                       doctest::Contains("solve model.layers.0.self_attn.q_proj.weight"), lowbit::Error);
  CHECK(m.snapshot() == before);
}

TEST_CASE("stories260K: GPTQ int4 through sequential calibration beats RTN on every layer, NLL near fp") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  Transformer m = Transformer::load(data / "stories260K" / "stories260K.bin");
  const auto tok = lowbit::text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", m.config().vocab);
  const auto stories = lowbit::text::tinystories_stories(
      lowbit::io::read_file(data / "tinystories" / "TinyStories-valid.first246.txt"));
  REQUIRE(stories.size() == 246);
  const auto windows_of = [&](lowbit::text::StoryRange r, std::vector<std::vector<int>>& keep) {
    std::vector<std::span<const int>> w;
    keep.reserve(r.end - r.begin);
    for (std::size_t s = r.begin; s < r.end; ++s) keep.push_back(lowbit::text::tinystories_tokens(tok, stories[s]));
    for (const auto& t : keep)
      for (auto x : lowbit::text::story_windows(t, m.config().context)) w.push_back(x);
    return w;
  };
  std::vector<std::vector<int>> calib_tokens, valid_tokens;
  const auto calib = windows_of({0, 16}, calib_tokens);  // 16 of the study's calibration stories
  const auto valid = windows_of({128, 148}, valid_tokens);  // 20 of the 38 validation stories

  const double fp = lowbit::nn::evaluate(m, valid).mean_nll();
  const auto original = m.snapshot();
  // RTN everywhere, for the NLL comparison.
  const lowbit::Rtn<lowbit::Int<4>, lowbit::PerChannel> rtn;
  for (const auto& l : m.linear_layers()) {
    const auto r = rtn.quantize(lowbit::ConstMatrixView(l.weight->matrix()), l.name);
    std::copy(r.weights.data(), r.weights.data() + r.weights.size(), l.weight->data());
  }
  const double rtn_nll = lowbit::nn::evaluate(m, valid).mean_nll();
  m.restore(original);

  const lowbit::Gptq<lowbit::Int<4>, lowbit::PerChannel> gptq;
  int better = 0, layers = 0;
  lowbit::nn::quantize_with_calibration(m, calib, [&](const LinearLayer& l, const Hessian& h) {
    const lowbit::ConstMatrixView w(l.weight->matrix());
    const auto g = gptq.quantize(w, h, l.name);
    REQUIRE(g.info() == Eigen::Success);
    const auto r = rtn.quantize(w, h, l.name);
    // Output MSE on this layer's calibration inputs (tr(ΔHΔᵀ) rescaled by the counts).
    INFO(l.name << ": GPTQ " << g.after->output_mse << ", RTN " << r.after->output_mse);
    CHECK(g.after->output_mse < r.after->output_mse);
    better += g.after->output_mse < r.after->output_mse;
    ++layers;
    std::copy(g.weights.data(), g.weights.data() + g.weights.size(), l.weight->data());
  });
  CHECK(layers == 35);
  const double gptq_nll = lowbit::nn::evaluate(m, valid).mean_nll();
  MESSAGE("stories260K int4 per-channel, validation stories 128..147: NLL fp " << fp << ", RTN " << rtn_nll
                                                                               << ", GPTQ (16 stories, sequential) "
                                                                               << gptq_nll << "; GPTQ beat RTN on "
                                                                               << better << "/" << layers << " layers");
  CHECK(std::isfinite(gptq_nll));
  CHECK(gptq_nll < fp + 0.25);
  CHECK(gptq_nll < rtn_nll);
  CHECK(gptq_nll > fp - 0.05);
}
