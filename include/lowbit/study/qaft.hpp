// Quantization-aware fine-tuning as the study runs it: the quantizable linear
// weights are fake-quantized in every forward pass (scales re-observed from the
// current weights each step, straight-through gradient), everything else is frozen;
// AdamW without weight decay; the learning rate decays linearly by `lr_decay` over
// the run; the calibration sequences are the training set.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <span>
#include <type_traits>
#include <vector>

#include "lowbit/autograd/cross_entropy.hpp"
#include "lowbit/autograd/fake_quant.hpp"
#include "lowbit/autograd/optim.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/layer_quantizers.hpp"
#include "lowbit/text/windows.hpp"
#include "lowbit/train/lm_step.hpp"

namespace lowbit::study {

struct QaftOptions {
  double lr = 1e-4;
  long epochs = 1;
  double lr_decay = 0.1;  ///< final rate = lr · lr_decay (linear)
  Index batch = 8;        ///< sequences per step (right-padded; padding is ignored by the loss)
  std::uint64_t seed = 0; ///< shuffles the sequences each epoch
};

/// QAFT's control run: the same fine-tuning of the same layers with float weights (no
/// fake quantization) — how much of a QAFT model's gain is fine-tuning on the
/// calibration data rather than adapting to the grid.
struct NoQuantization {};

/// Writes Q(W) of every registered layer into the model (what an inference engine
/// would run), using `quantizer` — the same one RTN and the QAFT forward use.
template <class Quant>
void quantize_linear_layers(nn::Transformer& model, const Quant& quantizer) {
  for (const auto& l : model.linear_layers()) {
    const MatrixView w = l.weight->matrix();
    quantizer.fake_quantize_in_place(w, l.name);
  }
}

/// Sets model's quantizable weights to Q(latent), runs f(), then puts the latent
/// weights back (also when f throws).
template <class Quant, class F>
void with_quantized_weights(nn::Transformer& model, const Quant& quantizer, F&& f) {
  std::vector<std::vector<float>> latent;
  for (const auto& l : model.linear_layers()) latent.emplace_back(l.weight->values().begin(), l.weight->values().end());
  struct Restore {
    nn::Transformer& m;
    std::vector<std::vector<float>>& saved;
    ~Restore() {
      std::size_t i = 0;
      for (const auto& l : m.linear_layers()) std::copy(saved[i].begin(), saved[i].end(), l.weight->data()), ++i;
    }
  } restore{model, latent};
  quantize_linear_layers(model, quantizer);
  f();
}

/// Trains `model` in place. `on_epoch(epoch, mean_train_loss)` runs after every epoch
/// (the caller evaluates the quantized model there, e.g. with with_quantized_weights).
/// The model keeps its latent (unquantized) weights; trainable flags are restored.
/// `on_step(done, total)` follows the optimizer steps (a progress bar; it may throw to stop).
/// `quantizer` is one quantizer for every layer, or LayerQuantizers (a mixture):
/// a layer that has no quantizer there is not quantized, and stays frozen; or
/// NoQuantization, which trains every layer in float.
template <class Quant>
void qaft_train(nn::Transformer& model, const std::vector<std::span<const int>>& sequences, const Quant& quantizer,
                const QaftOptions& opt, const std::function<void(long, double)>& on_epoch = {},
                const std::function<void(Index, Index)>& on_step = {}) {
  lowbit::detail::check(!sequences.empty(), "QAFT: no training sequences");
  lowbit::detail::check(opt.lr > 0 && opt.epochs >= 1 && opt.batch >= 1 && opt.lr_decay > 0 && opt.lr_decay <= 1,
                        "QAFT: invalid options (lr ", opt.lr, ", epochs ", opt.epochs, ", batch ", opt.batch,
                        ", decay ", opt.lr_decay, ")");
  for (auto s : sequences) lowbit::detail::check(s.size() >= 2, "QAFT: a training sequence has fewer than 2 tokens");

  // Only the registered linear weights train.
  std::vector<autograd::Parameter*> all = model.parameters(), trained;
  std::vector<bool> was_trainable;
  for (auto* p : all) {
    was_trainable.push_back(p->trainable());
    p->set_trainable(false);
  }
  constexpr bool quantized = !std::is_same_v<Quant, NoQuantization>;
  for (const auto& l : model.linear_layers()) {
    if constexpr (quantized)
      if (quantizer_of(quantizer, l.name) == nullptr) continue;
    l.weight->set_trainable(true);
    trained.push_back(l.weight);
  }
  lowbit::detail::check(!trained.empty(), "QAFT: no layer is quantized, so none trains");
  struct RestoreFlags {
    std::vector<autograd::Parameter*>& ps;
    std::vector<bool>& flags;
    ~RestoreFlags() {
      for (std::size_t i = 0; i < ps.size(); ++i) ps[i]->set_trainable(flags[i]);
    }
  } restore_flags{all, was_trainable};

  autograd::AdamWOptions ao;
  ao.lr = opt.lr;
  ao.weight_decay = 0.0;
  autograd::AdamW adam(trained, ao);
  const Index n = static_cast<Index>(sequences.size());
  const Index steps_per_epoch = (n + opt.batch - 1) / opt.batch;
  autograd::LrSchedule schedule;
  schedule.kind = autograd::LrSchedule::Kind::linear;
  schedule.base_lr = opt.lr;
  schedule.total_steps = std::max<Index>(2, steps_per_epoch * opt.epochs);
  schedule.final_fraction = opt.lr_decay;

  nn::ForwardHooks hooks;
  if constexpr (quantized)
    hooks.weight = [&](const nn::LinearLayer& l) {
      const auto* q = quantizer_of(quantizer, l.name);
      return q ? autograd::fake_quant_ste(l.weight->tensor(), *q, {}, l.name) : l.weight->tensor();
    };

  autograd::AdamW* const optimizers[] = {&adam};
  const std::string too_high = [&] {
    std::ostringstream m;
    m << "learning rate " << opt.lr << " too high?";
    return m.str();
  }();
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::mt19937_64 gen(opt.seed);
  std::vector<std::int32_t> ids, targets;
  autograd::Graph g;
  Index step = 0;
  for (long epoch = 0; epoch < opt.epochs; ++epoch) {
    for (Index i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
    for (Index i = n - 1; i > 0; --i)  // Fisher–Yates with the portable draw
      std::swap(order[static_cast<std::size_t>(i)],
                order[static_cast<std::size_t>(text::uniform_below(gen, static_cast<std::uint64_t>(i + 1)))]);
    double loss_sum = 0;
    for (Index b0 = 0; b0 < n; b0 += opt.batch) {
      const Index bn = std::min(opt.batch, n - b0);
      Index len = 0;
      for (Index i = 0; i < bn; ++i)
        len = std::max(len, static_cast<Index>(sequences[static_cast<std::size_t>(order[static_cast<std::size_t>(b0 + i)])].size()) - 1);
      ids.assign(static_cast<std::size_t>(bn * len), 0);
      targets.assign(static_cast<std::size_t>(bn * len), -100);  // padding: ignored by the loss
      for (Index i = 0; i < bn; ++i) {
        const auto s = sequences[static_cast<std::size_t>(order[static_cast<std::size_t>(b0 + i)])];
        for (std::size_t t = 0; t + 1 < s.size(); ++t) {
          ids[static_cast<std::size_t>(i * len) + t] = s[t];
          targets[static_cast<std::size_t>(i * len) + t] = s[t + 1];
        }
      }
      const train::LmStepSettings settings{schedule.at(step), std::nullopt, "QAFT", too_high};
      loss_sum += train::lm_step(model, g, trained, optimizers, {ids, targets, bn, len}, settings, step, hooks).loss;
      ++step;
      if (on_step) on_step(step, steps_per_epoch * opt.epochs);
    }
    if (on_epoch) on_epoch(epoch, loss_sum / static_cast<double>(steps_per_epoch));
  }
}

}  // namespace lowbit::study
