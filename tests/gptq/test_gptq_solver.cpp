// GPTQ solver properties: objective identities, GPTQ vs RTN, dead columns, damping
// retries, the dampening search, the swap-by-type interface and input checks.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <Eigen/Eigenvalues>

#include "gptq_test_util.hpp"

using namespace lowbit;
using lowbit::test::RowMatrix;

namespace {

Hessian damped(const Hessian& h, double damp) {
  Hessian d = h;
  d.matrix.diagonal().array() += static_cast<float>(damp);
  return d;
}

// stories260K (llama2.c), layer 0: wq/wk/wv and their real input activations
// rmsnorm(embedding)·rms_att for all 512 vocabulary tokens.
struct RealLayer {
  std::string name;
  RowMatrix w;
};
struct RealData {
  RowMatrix x;
  std::vector<RealLayer> layers;
};

bool load_stories(RealData& out, std::string& why) {
  const char* env = std::getenv("LOWBIT_DATA");
  const std::string root = env ? env : std::string(LOWBIT_SOURCE_DIR) + "/../shared/data";
  const std::string path = root + "/stories260K/stories260K.bin";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "'" + path + "' not found (set LOWBIT_DATA)";
    return false;
  }
  int header[7];
  in.read(reinterpret_cast<char*>(header), sizeof header);
  const int dim = header[0], n_layers = header[2], n_heads = header[3], n_kv = header[4];
  const int vocab = std::abs(header[5]);
  const int kv_dim = dim * n_kv / n_heads;
  auto read = [&](Index n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * 4));
    return v;
  };
  auto as_matrix = [](const std::vector<float>& v, Index off, Index r, Index c) {
    RowMatrix m(r, c);
    for (Index i = 0; i < m.size(); ++i) m.data()[i] = v[static_cast<std::size_t>(off + i)];
    return m;
  };
  const auto emb = read(Index{vocab} * dim);
  const auto rms = read(Index{n_layers} * dim);
  const auto wq = read(Index{n_layers} * dim * dim);
  const auto wk = read(Index{n_layers} * dim * kv_dim);
  const auto wv = read(Index{n_layers} * dim * kv_dim);
  if (!in) {
    why = "'" + path + "' is truncated";
    return false;
  }
  out.x = as_matrix(emb, 0, vocab, dim);
  for (Index t = 0; t < vocab; ++t) {
    const float ms = out.x.row(t).squaredNorm() / static_cast<float>(dim);
    const float inv = 1.0f / std::sqrt(ms + 1e-5f);
    for (Index c = 0; c < dim; ++c) out.x(t, c) *= inv * rms[static_cast<std::size_t>(c)];
  }
  out.layers = {{"layers.0.attention.wq", as_matrix(wq, 0, dim, dim)},
                {"layers.0.attention.wk", as_matrix(wk, 0, kv_dim, dim)},
                {"layers.0.attention.wv", as_matrix(wv, 0, kv_dim, dim)}};
  return true;
}

/// A caller written once for any solver type.
template <class Solver>
double objective_with(const Solver& solver, const RowMatrix& w, const Hessian& h) {
  const SolveResult r = solver.quantize(ConstMatrixView(w), h, "w");
  REQUIRE(r.after.has_value());
  return r.after->objective;
}

}  // namespace

TEST_CASE("gptq: twice the summed losses equal tr(ΔHΔᵀ) with the damped H") {
  const RowMatrix w = test::gaussian_matrix(24, 80, 0.1f, 5);
  const RowMatrix x = test::correlated_activations(400, 80, 6);
  const Hessian h = test::hessian_of(x);
  for (bool act : {false, true}) {
    CAPTURE(act);
    GptqOptions o;
    o.act_order = act;
    o.block_size = 32;
    const SolveResult r = Gptq<Int<4>, PerGroup<>>(o, PerGroup<>{16}).quantize(ConstMatrixView(w), h);
    REQUIRE(r.info() == Eigen::Success);
    CHECK(test::codes_reproduce_weights(r));
    CHECK(r.natural_groups() == !act);
    if (act) {
      CHECK_THROWS_WITH_AS((void)r.quantized_tensor(), doctest::Contains("g_idx"), Error);
    } else {
      RowMatrix back(r.rows(), r.cols());
      r.quantized_tensor().dequantize(MatrixView(back));
      CHECK(back == r.weights);
    }
    const double obj = layer_objective(ConstMatrixView(w), ConstMatrixView(r.weights), damped(h, r.damp));
    CHECK(2.0 * r.total_loss() == doctest::Approx(obj).epsilon(1e-3));
    // And the undamped objective reported is the same quantity without λ‖Δ‖².
    CHECK(r.after->objective == doctest::Approx(layer_objective(ConstMatrixView(w), ConstMatrixView(r.weights), h)));
  }
}

TEST_CASE("gptq: layer objective at most RTN's on real weights and activations (stories260K)") {
  RealData data;
  std::string why;
  if (!load_stories(data, why)) {
    MESSAGE("skipped: stories260K is unavailable: " << why);
    return;
  }
  const Hessian h = test::hessian_of(data.x);
  for (const auto& layer : data.layers) {
    CAPTURE(layer.name);
    const ConstMatrixView w(layer.w);
    {
      const SolveResult g = Gptq<Int<4>, PerChannel>().quantize(w, h, layer.name);
      const SolveResult r = Rtn<Int<4>, PerChannel>().quantize(w, h, layer.name);
      CHECK(g.after->objective < r.after->objective);
      CHECK(g.before->objective == doctest::Approx(r.after->objective));
    }
    {
      GptqOptions o;
      o.act_order = true;
      const SolveResult g = Gptq<Int<3>, PerGroup<>>(o, PerGroup<>{16}).quantize(w, h, layer.name);
      const SolveResult r = Rtn<Int<3>, PerGroup<>>(RtnOptions{}, PerGroup<>{16}).quantize(w, h, layer.name);
      CHECK(g.after->objective < r.after->objective);
      CHECK(test::codes_reproduce_weights(g));
    }
    {
      const SolveResult g = Gptq<Int<2>, PerTensor, MseShrink>().quantize(w, h, layer.name);
      CHECK(g.after->objective < g.before->objective);
    }
  }
}

TEST_CASE("gptq: layer objective at most RTN's on correlated activations with outlier features") {
  const RowMatrix w = test::gaussian_matrix(48, 96, 0.05f, 21);
  const RowMatrix x = test::correlated_activations(512, 96, 22);
  const Hessian h = test::hessian_of(x);
  const double gptq = objective_with(Gptq<Int<4>, PerChannel>(), w, h);
  const double rtn = objective_with(Rtn<Int<4>, PerChannel>(), w, h);
  CHECK(gptq < 0.9 * rtn);
  // The output MSE measured on X agrees with the one derived from H.
  const SolveResult r = Gptq<Int<4>, PerChannel>().quantize(ConstMatrixView(w), h);
  CHECK(r.after->output_mse ==
        doctest::Approx(output_mse(ConstMatrixView(w), ConstMatrixView(r.weights), ConstMatrixView(x))).epsilon(1e-3));
}

TEST_CASE("gptq: a dead column is zeroed and the rest is GPTQ on the layer without it") {
  const Index rows = 8, cols = 24, dead = 9;
  const RowMatrix w = test::gaussian_matrix(rows, cols, 0.3f, 31);
  RowMatrix x = test::correlated_activations(200, cols, 32);
  x.col(dead).setZero();
  const Hessian h = test::hessian_of(x);
  REQUIRE(h.matrix(dead, dead) == 0.0f);

  RowMatrix w_red(rows, cols - 1), x_red(200, cols - 1);
  for (Index c = 0, k = 0; c < cols; ++c)
    if (c != dead) {
      w_red.col(k) = w.col(c);
      x_red.col(k++) = x.col(c);
    }
  const Hessian h_red = test::hessian_of(x_red);

  // Without damping the dead column cannot shift λ = percdamp·mean(diag H). One
  // dynamic group per row takes its scales from the dead-zeroed W, where an extra
  // zero changes no abs-max: both layers get the same scales.
  for (bool act : {false, true}) {
    CAPTURE(act);
    GptqOptions o;
    o.percdamp = 0.0;
    o.block_size = 5;
    o.act_order = act;
    const SolveResult full = Gptq<Int<4>, PerGroup<>>(o, PerGroup<>{cols}).quantize(ConstMatrixView(w), h);
    REQUIRE(full.info() == Eigen::Success);
    for (Index r = 0; r < rows; ++r) CHECK(full.weights(r, dead) == 0.0f);
    CHECK(full.column_losses[dead] == 0.0);
    const SolveResult red =
        Gptq<Int<4>, PerGroup<>>(o, PerGroup<>{cols - 1}).quantize(ConstMatrixView(w_red), h_red);
    for (Index c = 0, k = 0; c < cols; ++c)
      if (c != dead) {
        for (Index r = 0; r < rows; ++r) CHECK(full.weights(r, c) == doctest::Approx(red.weights(r, k)).epsilon(1e-4));
        ++k;
      }
  }
}

TEST_CASE("gptq: an indefinite H is retried with more damping and each retry reported") {
  const Index cols = 32;
  const RowMatrix w = test::gaussian_matrix(6, cols, 0.3f, 41);
  const RowMatrix x = test::gaussian_matrix(300, cols, 1.0f, 42);
  Hessian h = test::hessian_of(x);
  // Push the smallest eigenvalue to -5% of mean(diag H): percdamp 0.01 fails,
  // 0.1 succeeds.
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(h.matrix.cast<double>());
  const double mean_diag = h.matrix.diagonal().cast<double>().mean();
  const Eigen::VectorXd v = es.eigenvectors().col(0);
  const double shift = es.eigenvalues()[0] + 0.05 * mean_diag;
  h.matrix -= (shift * v * v.transpose()).cast<float>();
  h.matrix = ((h.matrix + h.matrix.transpose()) * 0.5f).eval();
  const double damped_mean = h.matrix.diagonal().cast<double>().mean();

  const SolveResult r = Gptq<Int<4>, PerChannel>().quantize(ConstMatrixView(w), h);
  REQUIRE(r.info() == Eigen::Success);
  REQUIRE(r.retries.size() == 1);
  CHECK(r.retries[0].percdamp == doctest::Approx(0.01));
  CHECK(r.retries[0].damp == doctest::Approx(0.01 * damped_mean).epsilon(1e-4));
  CHECK(r.retries[0].reason.find("positive definite") != std::string::npos);
  CHECK(r.percdamp == doctest::Approx(0.1));
  CHECK(r.weights.allFinite());
  CHECK(test::codes_reproduce_weights(r));

  // Hopeless within the allowed retries: info() says so, weights are RTN, never NaN.
  GptqOptions o;
  o.max_retries = 0;
  const SolveResult bad = Gptq<Int<4>, PerChannel>(o).quantize(ConstMatrixView(w), h);
  CHECK(bad.info() == Eigen::NumericalIssue);
  CHECK(bad.retries.size() == 1);
  CHECK(!bad.message.empty());
  const SolveResult rtn = Rtn<Int<4>, PerChannel>().quantize(ConstMatrixView(w));
  CHECK(bad.weights == rtn.weights);
  CHECK(bad.after->objective == doctest::Approx(bad.before->objective));
}

TEST_CASE("gptq: dampening search returns the curve and its argmin; huge damping is RTN") {
  const RowMatrix w = test::gaussian_matrix(32, 64, 0.1f, 51);
  const RowMatrix x = test::correlated_activations(256, 64, 52);
  const Hessian h = test::hessian_of(x);
  const Gptq<Int<3>, PerChannel> gptq;
  const DampSearchResult s = damp_search(gptq, ConstMatrixView(w), h);
  REQUIRE(s.curve.size() == 8);
  CHECK(s.curve.front().percdamp == 1e-3);
  CHECK(s.curve.back().percdamp == 1e4);
  for (const auto& p : s.curve) {
    CHECK(p.ok);
    CHECK(s.curve[s.best].output_mse <= p.output_mse);
  }
  CHECK(s.best_result.percdamp == s.curve[s.best].percdamp);
  CHECK(s.best_result.after->output_mse == s.curve[s.best].output_mse);

  const SolveResult rtn = Rtn<Int<3>, PerChannel>().quantize(ConstMatrixView(w), h);
  // As damping grows, H + λI → λI and GPTQ's error feedback vanishes.
  CHECK(s.curve.back().objective == doctest::Approx(rtn.after->objective).epsilon(1e-2));
  CHECK(s.curve[s.best].objective < rtn.after->objective);
  GptqOptions o;
  o.percdamp = 1e7;
  const SolveResult huge = Gptq<Int<3>, PerChannel>(o).quantize(ConstMatrixView(w), h);
  CHECK(huge.codes == rtn.codes);
  CHECK(huge.weights == rtn.weights);

  const std::vector<double> grid{0.1, 1.0};
  CHECK(damp_search(gptq, ConstMatrixView(w), h, grid).curve.size() == 2);
  CHECK_THROWS_AS(damp_search(gptq, ConstMatrixView(w), h, std::span<const double>()), Error);
}

TEST_CASE("rtn: same result type; no Hessian, no objective") {
  const RowMatrix w = test::gaussian_matrix(8, 40, 0.2f, 61);
  const Rtn<Int<4>, PerGroup<16>> rtn;
  const SolveResult r = rtn.quantize(ConstMatrixView(w));
  CHECK(!r.after.has_value());
  CHECK(r.info() == Eigen::Success);
  CHECK(test::codes_reproduce_weights(r));
  RowMatrix direct(8, 40);
  Quantizer<Int<4>, PerGroup<16>>().fake_quantize(ConstMatrixView(w), MatrixView(direct));
  CHECK(r.weights == direct);
}

TEST_CASE("gptq: every bad input is a lowbit::Error naming what was wrong") {
  const RowMatrix w = test::gaussian_matrix(4, 8, 0.2f, 71);
  const Hessian h = test::hessian_of(test::correlated_activations(40, 8, 72));
  const Gptq<Int<4>, PerChannel> gptq;
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const Hessian wrong = test::hessian_of(test::correlated_activations(40, 6, 73));
  CHECK(message([&] { (void)gptq.quantize(ConstMatrixView(w), wrong, "blk.q"); }).find("6x6") != std::string::npos);
  RowMatrix nan_w = w;
  nan_w(2, 3) = std::nanf("");
  CHECK(message([&] { (void)gptq.quantize(ConstMatrixView(nan_w), h, "blk.q"); }).find("[2, 3]") != std::string::npos);
  Hessian nan_h = h;
  nan_h.matrix(1, 2) = INFINITY;
  CHECK(message([&] { (void)gptq.quantize(ConstMatrixView(w), nan_h); }).find("non-finite") != std::string::npos);
  Hessian asym = h;
  asym.matrix(5, 1) += 1.0f;
  CHECK(message([&] { (void)gptq.quantize(ConstMatrixView(w), asym); }).find("not symmetric") != std::string::npos);
  Hessian neg = h;
  neg.matrix(3, 3) = -1.0f;
  CHECK(message([&] { (void)gptq.quantize(ConstMatrixView(w), neg); }).find("negative diagonal") != std::string::npos);
  CHECK(message([&] { (void)Hessian::from_matrix(ConstMatrixView(w)); }).find("square") != std::string::npos);
  CHECK(message([&] { (void)gptq.quantize(ConstMatrixView(), h); }).find("empty") != std::string::npos);

  GptqOptions o;
  o.static_groups = true;
  CHECK(message([&] { (void)Gptq<Int<4>, PerChannel>(o).quantize(ConstMatrixView(w), h); }).find("static_groups") !=
        std::string::npos);
  o = {};
  o.block_size = 0;
  CHECK(message([&] { (void)Gptq<Int<4>, PerChannel>(o).quantize(ConstMatrixView(w), h); }).find("block_size") !=
        std::string::npos);
  o = {};
  o.percdamp = -1.0;
  CHECK(message([&] { (void)Gptq<Int<4>, PerChannel>(o).quantize(ConstMatrixView(w), h); }).find("percdamp") !=
        std::string::npos);
  CHECK(message([&] { (void)Gptq<Int<4>, PerGroup<>>(GptqOptions{}, PerGroup<>{9}).quantize(ConstMatrixView(w), h); })
            .find("a group of 9") != std::string::npos);
}
