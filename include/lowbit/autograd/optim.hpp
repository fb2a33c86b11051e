// Optimizers (AdamW, SGD), learning-rate schedules and global-norm gradient clipping.
#pragma once

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "lowbit/autograd/tensor.hpp"

namespace lowbit::autograd {

/// Learning rate at a 0-based step: linear warm-up from base/warmup to base over
/// `warmup_steps`, then constant, linear decay or cosine decay to base·final_fraction
/// at `total_steps` (the study decays linearly by one order of magnitude: 0.1).
struct LrSchedule {
  enum class Kind { constant, linear, cosine };
  Kind kind = Kind::constant;
  double base_lr = 1e-3;
  Index warmup_steps = 0;
  Index total_steps = 0;
  double final_fraction = 0.1;

  [[nodiscard]] double at(Index step) const {
    lowbit::detail::check(step >= 0, "LrSchedule: negative step ", step);
    if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    if (kind == Kind::constant) return base_lr;
    lowbit::detail::check(total_steps > warmup_steps, "LrSchedule: total_steps (", total_steps,
                          ") must exceed warmup_steps (", warmup_steps, ") for a decaying schedule");
    const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) /
                                              static_cast<double>(total_steps - warmup_steps));
    if (kind == Kind::linear) return base_lr * (1.0 - (1.0 - final_fraction) * progress);
    return base_lr * (final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
  }
};

/// Scales all gradients so that their joint L2 norm is at most max_norm (as
/// torch.nn.utils.clip_grad_norm_: factor max_norm/(norm + 1e-6) when below 1).
/// Returns the norm before clipping. Frozen parameters are skipped.
template <class S>
double clip_grad_norm(const std::vector<BasicParameter<S>*>& params, double max_norm) {
  lowbit::detail::check(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  double sq = 0;
  for (const auto* p : params)
    if (p->trainable())
      for (Index i = 0; i < p->numel(); ++i) sq += static_cast<double>(p->grad()[i]) * p->grad()[i];
  const double norm = std::sqrt(sq);
  lowbit::detail::check(std::isfinite(norm), "clip_grad_norm: the gradient norm is not finite");
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1)
    for (auto* p : params)
      if (p->trainable())
        for (Index i = 0; i < p->numel(); ++i) p->grad()[i] *= static_cast<S>(coef);
  return norm;
}

namespace detail {
template <class S>
void check_params(const std::vector<BasicParameter<S>*>& params, const char* who) {
  for (std::size_t i = 0; i < params.size(); ++i)
    lowbit::detail::check(params[i] != nullptr, who, ": parameter ", i, " is null");
}
}  // namespace detail

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  ///< decoupled; 0 allowed (the study's QAFT uses 0)
};

/// AdamW with torch.optim.AdamW's (1.13, single-tensor) update order and roundings.
/// Only trainable parameters are updated.
template <class S>
class BasicAdamW {
 public:
  BasicAdamW(std::vector<BasicParameter<S>*> params, AdamWOptions opt = {}) : params_(std::move(params)), opt_(opt) {
    detail::check_params(params_, "AdamW");
    lowbit::detail::check(opt.lr >= 0 && opt.eps >= 0 && opt.weight_decay >= 0 && opt.beta1 >= 0 &&
                              opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
                          "AdamW: invalid options (lr ", opt.lr, ", betas ", opt.beta1, "/", opt.beta2, ", eps ",
                          opt.eps, ", weight_decay ", opt.weight_decay, ")");
    for (auto* p : params_) {
      m_.emplace_back(static_cast<std::size_t>(p->numel()), S(0));
      v_.emplace_back(static_cast<std::size_t>(p->numel()), S(0));
    }
  }

  void set_lr(double lr) { opt_.lr = lr; }
  [[nodiscard]] double lr() const { return opt_.lr; }
  [[nodiscard]] Index steps() const { return step_; }

  void step() {
    ++step_;
    const S decay = static_cast<S>(1.0 - opt_.lr * opt_.weight_decay);
    const S b1 = static_cast<S>(opt_.beta1), b2 = static_cast<S>(opt_.beta2);
    const S one_b1 = static_cast<S>(1.0 - opt_.beta1), one_b2 = static_cast<S>(1.0 - opt_.beta2);
    const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(step_));
    const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(step_));
    const S neg_step = static_cast<S>(-opt_.lr / bc1);
    const S bc2_sqrt = static_cast<S>(std::sqrt(bc2));
    const S eps = static_cast<S>(opt_.eps);
    for (std::size_t k = 0; k < params_.size(); ++k) {
      auto* p = params_[k];
      if (!p->trainable()) continue;
      S *w = p->data(), *g = p->grad(), *m = m_[k].data(), *v = v_[k].data();
      for (Index i = 0; i < p->numel(); ++i) {
        w[i] = w[i] * decay;
        m[i] = m[i] * b1 + one_b1 * g[i];
        v[i] = v[i] * b2 + one_b2 * g[i] * g[i];
        const S denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        w[i] = w[i] + neg_step * m[i] / denom;
      }
    }
  }

  void zero_grad() {
    for (auto* p : params_) p->zero_grad();
  }

  /// The moments per parameter (constructor order), for saving a resumable state.
  [[nodiscard]] const std::vector<std::vector<S>>& first_moments() const { return m_; }
  [[nodiscard]] const std::vector<std::vector<S>>& second_moments() const { return v_; }
  /// Restores a saved state: the step count (bias corrections) and both moments,
  /// checked against this optimizer's parameters.
  void load_state(Index steps, std::vector<std::vector<S>> m, std::vector<std::vector<S>> v) {
    lowbit::detail::check(steps >= 0, "AdamW::load_state: negative step count ", steps);
    lowbit::detail::check(m.size() == params_.size() && v.size() == params_.size(), "AdamW::load_state: moments of ",
                          m.size(), "/", v.size(), " parameters, the optimizer has ", params_.size());
    for (std::size_t k = 0; k < params_.size(); ++k)
      lowbit::detail::check(static_cast<Index>(m[k].size()) == params_[k]->numel() &&
                                static_cast<Index>(v[k].size()) == params_[k]->numel(),
                            "AdamW::load_state: moments of parameter ", k, " have ", m[k].size(), "/", v[k].size(),
                            " values, expected ", params_[k]->numel());
    step_ = steps;
    m_ = std::move(m);
    v_ = std::move(v);
  }

 private:
  std::vector<BasicParameter<S>*> params_;
  AdamWOptions opt_;
  std::vector<std::vector<S>> m_, v_;
  Index step_ = 0;
};

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  ///< L2, added to the gradient (torch.optim.SGD)
};

/// SGD with optional momentum and L2 weight decay, as torch.optim.SGD (no Nesterov).
template <class S>
class BasicSgd {
 public:
  BasicSgd(std::vector<BasicParameter<S>*> params, SgdOptions opt = {}) : params_(std::move(params)), opt_(opt) {
    detail::check_params(params_, "SGD");
    lowbit::detail::check(opt.lr >= 0 && opt.momentum >= 0 && opt.weight_decay >= 0, "SGD: invalid options (lr ",
                          opt.lr, ", momentum ", opt.momentum, ", weight_decay ", opt.weight_decay, ")");
    for (auto* p : params_) buf_.emplace_back(static_cast<std::size_t>(p->numel()), S(0));
  }
  void set_lr(double lr) { opt_.lr = lr; }
  [[nodiscard]] double lr() const { return opt_.lr; }

  void step() {
    const S lr = static_cast<S>(opt_.lr), wd = static_cast<S>(opt_.weight_decay), mom = static_cast<S>(opt_.momentum);
    const S keep = static_cast<S>(1.0 - opt_.dampening);
    for (std::size_t k = 0; k < params_.size(); ++k) {
      auto* p = params_[k];
      if (!p->trainable()) continue;
      S *w = p->data(), *g = p->grad(), *b = buf_[k].data();
      for (Index i = 0; i < p->numel(); ++i) {
        S d = g[i];
        if (opt_.weight_decay != 0) d = d + wd * w[i];
        if (opt_.momentum != 0) {
          b[i] = first_ ? d : b[i] * mom + keep * d;
          d = b[i];
        }
        w[i] = w[i] - lr * d;
      }
    }
    first_ = false;
  }
  void zero_grad() {
    for (auto* p : params_) p->zero_grad();
  }

 private:
  std::vector<BasicParameter<S>*> params_;
  SgdOptions opt_;
  std::vector<std::vector<S>> buf_;
  bool first_ = true;
};

using AdamW = BasicAdamW<float>;
using Sgd = BasicSgd<float>;

}  // namespace lowbit::autograd
