// GPTQ as the study runs it: the calibration windows' Hessians layer by layer in
// true-sequential order (nn::quantize_with_calibration), each layer solved at every
// damping of the grid and the one with the lowest calibration error kept
// (damp_search, the paper's per-layer search).
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lowbit/gptq/damp_search.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/study/unit_context.hpp"

namespace lowbit::study {

struct GptqUnit {
  QuantSpec q;

  UnitResult run(UnitContext& c) const {
    return c.post_training_unit("gptq", q, [&](UnitResult& u, std::vector<QuantizedTensor>& packed,
                                               std::map<std::string, double>& damp) { solve(c, u, damp, packed); });
  }

 private:
  void solve(UnitContext& c, UnitResult& u, std::map<std::string, double>& damp, std::vector<QuantizedTensor>& packed) const {
    Progress p("  gptq " + c.label(q.bits), static_cast<long>(c.model.linear_layers().size()), "layer",
               c.progress_stream(), 30.0);
    std::optional<SpecGptq<>> solver;  // one for every layer, but a block format's differ by layer
    if (!q.is_block()) solver.emplace(q);
    nn::quantize_with_calibration(
        c.model, c.setup.data.calibration,
        [&](const nn::LinearLayer& l, const Hessian& h) {
          c.check_stop();
          std::optional<SpecGptq<>> fitted;
          if (q.is_block()) {
            const auto fit = layer_scheme(q, l);
            if (!fit) return;  // no block type fits: full precision (llama.cpp: F16)
            fitted.emplace(*fit);
          }
          const SpecGptq<>& s = fitted ? *fitted : *solver;
          const DampSearchResult best =
              damp_search(s, l.weight->matrix(), h, std::span<const double>(c.options.damp_grid), l.name);
          const SolveResult& res = best.best_result;
          std::copy(res.weights.data(), res.weights.data() + res.weights.size(), l.weight->data());
          damp[l.name] = best.curve[best.best].used_percdamp;
          if (!res.retries.empty())
            u.notes.push_back(l.name + ": damping " + detail::num(res.retries.front().percdamp, 3) + " failed (" +
                              res.retries.front().reason + "), retried up to " + detail::num(res.percdamp, 3));
          if (c.options.save) packed.push_back(QuantizedTensor{res.params, res.codes});
        },
        {}, [&](std::size_t done, std::size_t) { p.update(static_cast<long>(done)); });
    p.finish();
  }
};

}  // namespace lowbit::study
