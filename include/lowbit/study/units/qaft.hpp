// Quantization-aware fine-tuning as a study unit: one run per learning rate of the
// grid (each its own unit, "qaft-int4-lr1e-05", with the quantized validation NLL
// after every epoch), then the run with the lowest validation NLL is the unit
// "qaft-int4" — its weights and packed model copied under that name, and its test NLL
// after every epoch (Appendix B).
//
// Why the test curve only for the chosen rate: evaluating the test split after each
// of 8 epochs at each of 4 rates was most of QAFT's time on the pd models (1,162
// windows per evaluation, 421 of 978 s for a pd-200k rate), and only the chosen
// rate's curve is reported. So each rate keeps its quantized weights after every
// epoch in units/<rate>.epochs/ while it can still be chosen (the best so far); the
// chosen rate's are evaluated on the test split, then removed. A rate whose epoch
// weights are gone (its unit computed elsewhere) is trained again with its test
// curve: training is deterministic, so that is the same run.
#pragma once

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/study/qaft.hpp"
#include "lowbit/study/unit_context.hpp"

namespace lowbit::study {

struct QaftUnit {
  QuantSpec q;

  /// Each learning rate is its own unit, named with one significant digit: two
  /// rates that share a name (1e-4 and 1.4e-4) would share a unit, so refuse them.
  static void check_rate_keys(const UnitContext& c) {
    std::map<std::string, double> seen;
    for (const double lr : c.options.lr_grid) {
      const auto [it, fresh] = seen.emplace(rate_key(c, 2, lr), lr);
      if (!fresh)
        throw UsageError("--lr-grid: rates " + detail::num(it->second, 6) + " and " + detail::num(lr, 6) +
                         " share the unit name " + it->first.substr(it->first.rfind("-lr") + 1) +
                         "; use rates that differ in their first significant digit");
    }
  }

  UnitResult run(UnitContext& c) const {
    const std::string final_key = c.key("qaft", q.bits);
    if (auto done = c.store.reuse(final_key)) {
      remove_epochs(c);  // left by a run stopped between storing the unit and cleaning up
      return std::move(*done);
    }
    std::vector<UnitResult> runs;
    std::size_t best = 0;
    for (const double lr : c.options.lr_grid) {
      const std::string k = rate_key(c, q.bits, lr);
      runs.push_back(c.cached_or(k, [&] { return train(c, lr); }));
      if (runs.back().learning_rate != lr)
        throw UsageError(c.store.path(k).string() + ": records learning rate " +
                         detail::num(runs.back().learning_rate, 6) + ", not " + detail::num(lr, 6) +
                         "; delete it to recompute");
      // Only the best rate so far can still be chosen: the others' epoch weights go now,
      // so at most two rates' are on disk (the best and the one training).
      const std::size_t i = runs.size() - 1;
      if (i == 0) continue;
      if (better(runs[i], runs[best])) {
        remove_epochs(c, runs[best].learning_rate);
        best = i;
      } else {
        remove_epochs(c, lr);
      }
    }
    UnitResult u = runs[best];
    if (!std::isfinite(u.val_nll))
      u.notes.push_back("every learning rate ended with a validation NLL that is not a number");
    if (u.epoch_test_nll.size() != u.epoch_val_nll.size()) u = with_test_curve(c, std::move(u));
    u.lr_curve.clear();
    for (const auto& r : runs) u.lr_curve.emplace_back(r.learning_rate, r.val_nll);
    // The chosen run's weights and packed model are the unit's.
    for (const char* folder : {"weights", "models"}) {
      namespace fs = std::filesystem;
      const auto from = c.options.out / folder / (rate_key(c, q.bits, u.learning_rate) + ".safetensors");
      if (fs::exists(from))
        fs::copy_file(from, c.options.out / folder / (final_key + ".safetensors"), fs::copy_options::overwrite_existing);
    }
    c.store.store(final_key, u);
    remove_epochs(c);
    return u;
  }

 private:
  static std::string rate_key(const UnitContext& c, int bits, double lr) {
    char b[64];
    std::snprintf(b, sizeof b, "qaft-%s-lr%.0e", c.label(bits).c_str(), lr);
    return b;
  }

  static std::filesystem::path epochs_dir(const UnitContext& c, int bits, double lr) {
    return c.options.out / "units" / (rate_key(c, bits, lr) + ".epochs");
  }
  static std::filesystem::path epoch_file(const UnitContext& c, int bits, double lr, std::size_t epoch) {
    return epochs_dir(c, bits, lr) / ("epoch-" + std::to_string(epoch + 1) + ".safetensors");
  }

  /// The lower final validation NLL; a number beats NaN; the earlier rate wins ties.
  static bool better(const UnitResult& a, const UnitResult& b) {
    return std::isfinite(a.val_nll) && (!std::isfinite(b.val_nll) || a.val_nll < b.val_nll);
  }

  /// Removes one rate's kept epoch weights, or (no rate given) every rate's.
  void remove_epochs(const UnitContext& c, std::optional<double> lr = std::nullopt) const {
    std::error_code ec;
    if (lr) std::filesystem::remove_all(epochs_dir(c, q.bits, *lr), ec);
    else
      for (const double r : c.options.lr_grid) std::filesystem::remove_all(epochs_dir(c, q.bits, r), ec);
  }

  /// The chosen rate's unit with its test NLL after every epoch: from its kept epoch
  /// weights — each checked to be this run's by its validation NLL, which must be the
  /// one recorded — or else the rate trained again with the test split evaluated as it
  /// goes (the same run: training is deterministic).
  UnitResult with_test_curve(UnitContext& c, UnitResult chosen) const {
    const double lr = chosen.learning_rate;
    const auto& val = c.setup.data.validation;
    std::vector<double> curve;
    for (std::size_t e = 0; e < chosen.epoch_val_nll.size(); ++e) {
      if (!c.read_linear_weights(epoch_file(c, q.bits, lr, e))) break;
      const double v = c.nll(val, "validation"), recorded = chosen.epoch_val_nll[e];
      if (!(std::fabs(v - recorded) <= 1e-7 * std::max(1.0, std::fabs(recorded)))) {
        c.log("  %s: the kept weights of epoch %zu give validation NLL %.9g, not the recorded %.9g: not this run's",
              rate_key(c, q.bits, lr).c_str(), e + 1, v, recorded);
        break;
      }
      curve.push_back(c.nll(c.setup.data.test, "test"));
      c.log("    qaft %s, learning rate %g, epoch %zu: test NLL %.5f", c.label(q.bits).c_str(), lr, e + 1, curve.back());
    }
    c.restore_fp();
    if (curve.size() == chosen.epoch_val_nll.size()) {
      chosen.epoch_test_nll = std::move(curve);
      return chosen;
    }
    const std::string k = rate_key(c, q.bits, lr);
    c.log("  %s: its epoch weights are gone; training it again for its test curve", k.c_str());
    std::filesystem::remove(c.store.path(k));
    UnitResult again = c.cached_or(k, [&] { return train(c, lr, /*test_each_epoch=*/true); });
    if (again.epoch_val_nll != chosen.epoch_val_nll)
      c.log("warning: %s trained again ends at validation NLL %.9g, not %.9g (training not reproducible here?); "
            "its new run is the unit", k.c_str(), again.val_nll, chosen.val_nll);
    return again;
  }

  UnitResult train(UnitContext& c, double lr, bool test_each_epoch = false) const {
    if (q.is_block()) return train_with(c, lr, c.block_quantizers(q), test_each_epoch);  // layers no type fits stay frozen
    return train_with(c, lr, SpecQuantizer(q), test_each_epoch);
  }

  template <class Quant>
  UnitResult train_with(UnitContext& c, double lr, const Quant& quantizer, bool test_each_epoch) const {
    UnitResult u;
    u.method = "qaft";
    u.bits = q.bits;
    u.learning_rate = lr;
    c.restore_fp();
    const auto& data = c.setup.data;
    c.log("  qaft %s, learning rate %g: %ld epoch(s) over %zu sequences", c.label(q.bits).c_str(), lr,
          c.options.qaft_epochs, data.calibration.size());
    QaftOptions opt;
    opt.lr = lr;
    opt.epochs = c.options.qaft_epochs;
    opt.batch = c.options.qaft_batch;
    opt.lr_decay = c.options.lr_decay;
    opt.seed = c.options.seed;
    const auto t0 = UnitContext::clock::now();
    qaft_train(c.model, data.calibration, quantizer, opt, [&](long epoch, double loss) {
      with_quantized_weights(c.model, quantizer, [&] {
        u.epoch_val_nll.push_back(c.nll(data.validation, "validation"));
        if (test_each_epoch) u.epoch_test_nll.push_back(c.nll(data.test, "test"));
        else c.write_linear_weights(epoch_file(c, q.bits, lr, static_cast<std::size_t>(epoch)));
      });
      c.log("    epoch %ld: train loss %.5f, quantized validation NLL %.5f", epoch + 1, loss, u.epoch_val_nll.back());
      c.check_stop();
    });
    u.seconds["train"] = UnitContext::seconds_since(t0);
    std::vector<QuantizedTensor> packed;
    c.round_layers(quantizer, packed);
    c.finish_quantized(u, rate_key(c, q.bits, lr), packed);
    return u;
  }
};

}  // namespace lowbit::study
