// A model's logits for one sequence, copied out of a fresh graph.
#pragma once

#include <vector>

#include "lowbit/autograd/tensor.hpp"
#include "lowbit/nn/transformer.hpp"

namespace lowbit::test {

inline std::vector<float> logits_of(const nn::Transformer& m, const std::vector<int>& ids) {
  autograd::Graph g;
  autograd::NoGradGuard ng;
  const auto t = m.forward(ids, 1, static_cast<Index>(ids.size()));
  return {t.values().begin(), t.values().end()};
}

}  // namespace lowbit::test
