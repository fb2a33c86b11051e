// One optimizer step of a language model on a batch of token windows: what
// pretraining (train/pretrainer.hpp) and the study's quantization-aware fine-tuning
// (study/qaft.hpp) both take, so that the two stay one procedure — gradients
// cleared, the tape cleared, a forward pass (QAFT's hooks fake-quantize the weights
// on the way), cross-entropy over the targets (-100: ignored, for padding), the loss
// checked, backward, optional global-norm clipping, then each optimizer steps at
// the scheduled rate.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "lowbit/autograd/cross_entropy.hpp"
#include "lowbit/autograd/optim.hpp"
#include "lowbit/autograd/tensor.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/nn/transformer.hpp"

namespace lowbit::train {

/// ids and next-token targets, [batch, len] row-major.
struct LmBatch {
  std::span<const std::int32_t> ids, targets;
  Index batch = 0, len = 0;
};

struct LmStepSettings {
  double lr = 0;                ///< this step's learning rate (the caller's schedule)
  std::optional<double> clip;   ///< global gradient-norm limit, if any
  std::string_view who = "train";          ///< names the procedure in errors
  std::string_view hint = "lower the learning rate";  ///< what to try when the loss is not finite
};

struct LmStepReport {
  double loss = 0;
  double grad_norm = std::numeric_limits<double>::quiet_NaN();  ///< before clipping (NaN without clip)
};

/// One step. `trained`: the parameters whose gradients are cleared and clipped (the
/// optimizers' together); `step`: its index, for the message if the loss is not finite.
inline LmStepReport lm_step(nn::Transformer& model, autograd::Graph& graph, const std::vector<autograd::Parameter*>& trained,
                            std::span<autograd::AdamW* const> optimizers, const LmBatch& b, const LmStepSettings& s,
                            Index step, const nn::ForwardHooks& hooks = {}) {
  for (auto* p : trained) p->zero_grad();
  graph.clear();
  const autograd::Tensor loss = autograd::cross_entropy(model.forward(b.ids, b.batch, b.len, hooks), b.targets);
  LmStepReport r;
  r.loss = static_cast<double>(loss.item());
  lowbit::detail::check(std::isfinite(r.loss), s.who, ": the training loss is not finite at step ", step, " (", s.hint, ")");
  autograd::backward(loss);
  if (s.clip) r.grad_norm = autograd::clip_grad_norm(trained, *s.clip);
  for (auto* o : optimizers) {
    o->set_lr(s.lr);
    o->step();
  }
  return r;
}

}  // namespace lowbit::train
