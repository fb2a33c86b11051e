// Pretraining a Transformer from scratch on one token stream: random windows,
// cross-entropy, global-norm clipping, AdamW with warm-up and cosine decay, and a
// state that resumes bit-exactly (parameters, moments, step; the sampler and the
// schedule are functions of the step). docs/pretrain.md describes the protocol.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/autograd/cross_entropy.hpp"
#include "lowbit/autograd/optim.hpp"
#include "lowbit/autograd/tensor.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/train/lm_step.hpp"
#include "lowbit/train/train_state.hpp"
#include "lowbit/train/window_sampler.hpp"

namespace lowbit::train {

struct PretrainSettings {
  nn::TransformerConfig model;  ///< vocab and context included
  Index batch = 16;             ///< windows per step
  Index steps = 1000;           ///< total optimizer steps (the cosine ends here)
  double lr = 1e-3;
  Index warmup = 100;
  double final_lr_fraction = 0.1;  ///< cosine decays to lr·this
  double weight_decay = 0.1;       ///< on matrices only (GPT-2 / nanoGPT practice)
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double clip = 1.0;             ///< global gradient-norm limit
  std::uint64_t seed = 0;        ///< initialisation and sampling
  std::uint64_t data_key = 0;    ///< fingerprint of the training data, part of the run key

  void validate() const {
    model.validate("pretrain");
    lowbit::detail::check(batch >= 1, "pretrain: batch must be positive, got ", batch);
    lowbit::detail::check(steps >= 1, "pretrain: steps must be positive, got ", steps);
    lowbit::detail::check(warmup >= 0 && warmup < steps, "pretrain: warm-up of ", warmup,
                          " steps must be non-negative and below the ", steps, " steps");
    lowbit::detail::check(lr > 0 && std::isfinite(lr), "pretrain: learning rate must be positive, got ", lr);
    lowbit::detail::check(final_lr_fraction >= 0 && final_lr_fraction <= 1,
                          "pretrain: final learning-rate fraction must be in [0, 1], got ", final_lr_fraction);
    lowbit::detail::check(clip > 0, "pretrain: gradient clip must be positive, got ", clip);
    lowbit::detail::check(weight_decay >= 0, "pretrain: weight decay must be non-negative, got ", weight_decay);
  }

  /// Every setting that decides the trajectory, as text (hashed into the run key).
  [[nodiscard]] std::string describe() const {
    std::ostringstream s;
    s.precision(17);
    s << "arch=" << (model.arch == nn::Architecture::gpt2 ? "gpt2" : "llama") << ";layers=" << model.layers
      << ";dim=" << model.dim << ";hidden=" << model.hidden << ";heads=" << model.heads << ";vocab=" << model.vocab
      << ";context=" << model.context << ";batch=" << batch << ";steps=" << steps << ";lr=" << lr
      << ";warmup=" << warmup << ";final=" << final_lr_fraction << ";wd=" << weight_decay << ";betas=" << beta1
      << "," << beta2 << ";eps=" << eps << ";clip=" << clip << ";seed=" << seed << ";data=" << data_key;
    return s.str();
  }
  [[nodiscard]] std::uint64_t run_key() const {
    const std::string d = describe();
    return detail::fnv1a64_bytes(d.data(), d.size());
  }

  [[nodiscard]] autograd::LrSchedule schedule() const {
    autograd::LrSchedule s;
    s.kind = autograd::LrSchedule::Kind::cosine;
    s.base_lr = lr;
    s.warmup_steps = warmup;
    s.total_steps = steps;
    s.final_fraction = final_lr_fraction;
    return s;
  }
};

/// What one step did.
struct StepReport {
  Index step = 0;          ///< 0-based index of the step just taken
  double loss = 0;         ///< mean cross-entropy of its batch (nats/token), before the update
  double grad_norm = 0;    ///< before clipping
  double lr = 0;
};

/// Owns a Graph, which becomes the thread's current one (graphs nest like scopes):
/// keep one Pretrainer alive at a time per thread; evaluations that make and drop
/// their own graph meanwhile are fine.
class Pretrainer {
 public:
  /// A fresh model (GPT-2 initialisation from settings.seed) trained on `train_tokens`,
  /// which must outlive the trainer and hold ids below settings.model.vocab.
  Pretrainer(PretrainSettings settings, std::span<const int> train_tokens)
      : settings_((settings.validate(), std::move(settings))),
        model_(settings_.model, settings_.seed),
        sampler_(train_tokens, settings_.model.context, settings_.batch, settings_.seed),
        graph_(std::size_t{1} << 24) {
    for (std::size_t i = 0; i < train_tokens.size(); ++i)
      lowbit::detail::check(train_tokens[i] >= 0 && train_tokens[i] < settings_.model.vocab, "pretrain: token ", i,
                            " of the training stream has id ", train_tokens[i], ", outside the model's vocabulary [0, ",
                            settings_.model.vocab, ")");
    // Weight decay on matrices only: decaying norms, biases would pull them to 0
    // for no regularisation benefit (the GPT-2 / nanoGPT split).
    std::vector<autograd::Parameter*> decayed, plain;
    for (auto* p : model_.parameters()) (p->shape().ndim >= 2 ? decayed : plain).push_back(p);
    autograd::AdamWOptions o;
    o.lr = settings_.lr;
    o.beta1 = settings_.beta1;
    o.beta2 = settings_.beta2;
    o.eps = settings_.eps;
    o.weight_decay = settings_.weight_decay;
    decayed_.emplace_back(decayed, o);
    o.weight_decay = 0;
    plain_.emplace_back(plain, o);
    decayed_params_ = std::move(decayed);
    plain_params_ = std::move(plain);
  }

  Pretrainer(const Pretrainer&) = delete;
  Pretrainer& operator=(const Pretrainer&) = delete;

  [[nodiscard]] const PretrainSettings& settings() const { return settings_; }
  [[nodiscard]] nn::Transformer& model() { return model_; }
  [[nodiscard]] const nn::Transformer& model() const { return model_; }
  [[nodiscard]] Index steps_done() const { return step_; }
  [[nodiscard]] bool finished() const { return step_ >= settings_.steps; }
  [[nodiscard]] Index tokens_per_step() const { return settings_.batch * settings_.model.context; }

  /// One optimizer step on the batch of the current step index.
  StepReport step() {
    lowbit::detail::check(!finished(), "pretrain: all ", settings_.steps, " steps are done");
    StepReport r;
    r.step = step_;
    r.lr = settings_.schedule().at(step_);
    // The graph made in the constructor must still be the innermost one on this
    // thread (graphs nest like scopes): two trainers alive at once would mix tapes.
    lowbit::detail::check(&autograd::Graph::current("pretrain") == &graph_,
                          "pretrain: another autograd Graph was created after this trainer and is still alive; "
                          "train with one Pretrainer at a time per thread");
    sampler_.fill(step_, inputs_, targets_);
    autograd::AdamW* const optimizers[] = {&decayed_.front(), &plain_.front()};
    const LmStepReport s = lm_step(model_, graph_, model_.parameters(), optimizers,
                                   {inputs_, targets_, settings_.batch, settings_.model.context},
                                   {r.lr, settings_.clip, "pretrain", "lower the learning rate"}, step_);
    r.loss = s.loss;
    r.grad_norm = s.grad_norm;
    ++step_;
    return r;
  }

  /// Everything a bit-exact resume needs (the sampler and schedule follow from the step).
  [[nodiscard]] TrainState state() const {
    TrainState s;
    s.step = static_cast<std::uint64_t>(step_);
    s.run_key = settings_.run_key();
    const auto add = [&](const std::vector<autograd::Parameter*>& ps, const autograd::AdamW& o) {
      for (std::size_t k = 0; k < ps.size(); ++k) {
        TensorState t;
        t.name = ps[k]->name();
        t.values.assign(ps[k]->values().begin(), ps[k]->values().end());
        t.m = o.first_moments()[k];
        t.v = o.second_moments()[k];
        s.tensors.push_back(std::move(t));
      }
    };
    add(decayed_params_, decayed_.front());
    add(plain_params_, plain_.front());
    return s;
  }

  /// Puts the trainer in a saved state of the same run (settings and data must match).
  void restore(const TrainState& s, const std::string& source = "train state") {
    lowbit::detail::check(s.run_key == settings_.run_key(), source,
                          ": saved by a run with different settings or data (run key ", s.run_key, ", this run ",
                          settings_.run_key(), "); use the original command or a fresh run folder");
    lowbit::detail::check(s.step <= static_cast<std::uint64_t>(settings_.steps), source, ": step ", s.step,
                          " is beyond the run's ", settings_.steps, " steps");
    const std::size_t expected = decayed_params_.size() + plain_params_.size();
    lowbit::detail::check(s.tensors.size() == expected, source, ": ", s.tensors.size(), " tensors, the model has ",
                          expected);
    std::size_t i = 0;
    const auto load = [&](const std::vector<autograd::Parameter*>& ps, autograd::AdamW& o) {
      std::vector<std::vector<float>> m, v;
      for (auto* p : ps) {
        const TensorState& t = s.tensors[i++];
        lowbit::detail::check(t.name == p->name() && static_cast<Index>(t.values.size()) == p->numel(), source,
                              ": tensor '", t.name, "' (", t.values.size(), " values) where the model has '",
                              p->name(), "' (", p->numel(), ")");
        std::copy(t.values.begin(), t.values.end(), p->data());
        m.push_back(t.m);
        v.push_back(t.v);
      }
      o.load_state(static_cast<Index>(s.step), std::move(m), std::move(v));
    };
    load(decayed_params_, decayed_.front());
    load(plain_params_, plain_.front());
    step_ = static_cast<Index>(s.step);
  }

 private:
  PretrainSettings settings_;
  nn::Transformer model_;
  WindowSampler sampler_;
  autograd::Graph graph_;
  // AdamW is neither copyable nor default-constructible: hold each in a one-slot vector.
  std::vector<autograd::AdamW> decayed_, plain_;
  std::vector<autograd::Parameter*> decayed_params_, plain_params_;
  std::vector<std::int32_t> inputs_, targets_;
  Index step_ = 0;
};

}  // namespace lowbit::train
