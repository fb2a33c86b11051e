// Central finite-difference gradient checker in fp64 for lowbit::autograd ops.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "lowbit/autograd.hpp"
#include "../support/random.hpp"

namespace lowbit::test {

using DTensor = autograd::BasicTensor<double>;
using DGraph = autograd::BasicGraph<double>;

struct GradInput {
  autograd::Shape shape;
  std::vector<double> values;
};

inline GradInput random_input(autograd::Shape shape, std::uint32_t seed, double scale = 1.0) {
  const auto v = gaussian(static_cast<std::size_t>(shape.numel()), 1.0f, seed);
  GradInput in{shape, {}};
  for (float x : v) in.values.push_back(scale * static_cast<double>(x));
  return in;
}

/// Checks d/dx of L = Σ out ⊙ R (R a fixed random tensor) computed by backward()
/// against (L(x + h) − L(x − h)) / 2h for every element of every input.
inline void gradcheck(const std::string& what, std::vector<GradInput> inputs,
                      const std::function<DTensor(const std::vector<DTensor>&)>& fn, double h = 1e-6,
                      double atol = 1e-7, double rtol = 1e-6) {
  std::vector<double> weights;
  auto loss_of = [&](DGraph& g, const std::vector<DTensor>& xs) {
    DTensor out = fn(xs);
    if (weights.empty()) {
      const auto r = gaussian(static_cast<std::size_t>(out.numel()), 1.0f, 4242);
      weights.assign(r.begin(), r.end());
    }
    return autograd::sum(autograd::mul(out, g.constant(out.shape(), weights)));
  };
  std::vector<std::vector<double>> analytic;
  {
    DGraph g;
    std::vector<DTensor> xs;
    for (auto& in : inputs) xs.push_back(g.variable(in.shape, in.values));
    DTensor loss = loss_of(g, xs);
    autograd::backward(loss);
    for (auto& x : xs) {
      REQUIRE_MESSAGE(x.grad() != nullptr, what, ": no gradient reached an input");
      analytic.emplace_back(x.grad(), x.grad() + x.numel());
    }
  }
  autograd::NoGradGuard no_grad;
  DGraph g;
  auto eval = [&] {
    g.clear();
    std::vector<DTensor> xs;
    for (auto& in : inputs) xs.push_back(g.constant(in.shape, in.values));
    return loss_of(g, xs).item();
  };
  for (std::size_t k = 0; k < inputs.size(); ++k)
    for (std::size_t i = 0; i < inputs[k].values.size(); ++i) {
      const double x0 = inputs[k].values[i];
      inputs[k].values[i] = x0 + h;
      const double up = eval();
      inputs[k].values[i] = x0 - h;
      const double down = eval();
      inputs[k].values[i] = x0;
      const double numeric = (up - down) / (2 * h);
      const double a = analytic[k][i];
      INFO(what, ": input ", k, " element ", i, " analytic ", a, " numeric ", numeric);
      CHECK(std::abs(a - numeric) <= atol + rtol * std::abs(numeric));
    }
}

}  // namespace lowbit::test
