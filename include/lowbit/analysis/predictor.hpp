// Small statistical models for the study's predictor (issue #15: when does GPTQ fail?)
// and the leave-one-group-out loop that judges them. The data are a few dozen points
// (models × bit widths × schemes), so the models are deliberately small and fully
// determined: ridge regression, L2-penalised logistic regression fitted by Newton's
// method, and a one-feature threshold rule. Features are standardised on each fitting
// set, so one penalty treats them alike and no held-out point leaks into a fit.
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::analysis {

/// Column means and spreads of a fitting set; apply() standardises rows and puts an
/// intercept column first.
struct Standardizer {
  Eigen::VectorXd mean, scale;

  static Standardizer fit(const Eigen::MatrixXd& x) {
    lowbit::detail::check(x.rows() > 0, "Standardizer: no rows to fit");
    Standardizer s;
    s.mean = x.colwise().mean().transpose();
    s.scale.resize(x.cols());
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      const double sd = std::sqrt((x.col(j).array() - s.mean(j)).square().mean());
      s.scale(j) = sd > 1e-12 ? sd : 1.0;  // a constant column stays constant (zero)
    }
    return s;
  }

  [[nodiscard]] Eigen::MatrixXd apply(const Eigen::MatrixXd& x) const {
    Eigen::MatrixXd z(x.rows(), x.cols() + 1);
    z.col(0).setOnes();
    for (Eigen::Index j = 0; j < x.cols(); ++j) z.col(j + 1) = (x.col(j).array() - mean(j)) / scale(j);
    return z;
  }
};

/// y ≈ β₀ + βᵀz, minimising ‖y − Zβ‖² + λ·n·‖β₁..‖² over n rows (the intercept
/// unpenalised; λ per row, so the shrinkage does not fade as points are added).
struct RidgeRegression {
  Standardizer standardizer;
  Eigen::VectorXd beta;

  static RidgeRegression fit(const Eigen::MatrixXd& x, const Eigen::VectorXd& y, double lambda = 1e-2) {
    lowbit::detail::check(x.rows() == y.size(), "RidgeRegression: ", x.rows(), " rows but ", y.size(), " targets");
    RidgeRegression r;
    r.standardizer = Standardizer::fit(x);
    const Eigen::MatrixXd z = r.standardizer.apply(x);
    Eigen::MatrixXd a = z.transpose() * z;
    a.diagonal().tail(x.cols()).array() += lambda * static_cast<double>(x.rows());
    r.beta = a.ldlt().solve(z.transpose() * y);
    return r;
  }

  [[nodiscard]] Eigen::VectorXd predict(const Eigen::MatrixXd& x) const { return standardizer.apply(x) * beta; }
};

/// P(y = 1 | x) = σ(β₀ + βᵀz), minimising the log loss + (λ/2)‖β₁..‖²·n by Newton's
/// method. With one class only in the fitting set it predicts that class's frequency
/// (the unpenalised intercept would run off to infinity).
struct LogisticRegression {
  Standardizer standardizer;
  Eigen::VectorXd beta;
  double constant = std::numeric_limits<double>::quiet_NaN();  // set when one class only

  static LogisticRegression fit(const Eigen::MatrixXd& x, const Eigen::VectorXd& y, double lambda = 0.1) {
    lowbit::detail::check(x.rows() == y.size() && x.rows() > 0, "LogisticRegression: ", x.rows(), " rows but ", y.size(),
                          " labels");
    LogisticRegression m;
    m.standardizer = Standardizer::fit(x);
    const double positives = y.sum();
    if (positives == 0 || positives == static_cast<double>(y.size())) {
      m.constant = positives / static_cast<double>(y.size());
      return m;
    }
    const Eigen::MatrixXd z = m.standardizer.apply(x);
    const double n = static_cast<double>(x.rows());
    m.beta = Eigen::VectorXd::Zero(z.cols());
    for (int it = 0; it < 100; ++it) {
      const Eigen::VectorXd p = sigmoid(z * m.beta);
      Eigen::VectorXd grad = z.transpose() * (p - y);
      Eigen::MatrixXd hess = z.transpose() * (p.array() * (1 - p.array())).matrix().asDiagonal() * z;
      grad.tail(x.cols()) += lambda * n * m.beta.tail(x.cols());
      hess.diagonal().tail(x.cols()).array() += lambda * n;
      hess.diagonal().array() += 1e-9;  // the intercept's row when every p is 0 or 1
      const Eigen::VectorXd step = hess.ldlt().solve(grad);
      m.beta -= step;
      if (step.norm() < 1e-10) break;
    }
    return m;
  }

  [[nodiscard]] Eigen::VectorXd probability(const Eigen::MatrixXd& x) const {
    if (!std::isnan(constant)) return Eigen::VectorXd::Constant(x.rows(), constant);
    return sigmoid(standardizer.apply(x) * beta);
  }

 private:
  static Eigen::VectorXd sigmoid(const Eigen::VectorXd& t) { return (1.0 / (1.0 + (-t.array()).exp())).matrix(); }
};

/// "Positive when x > threshold" (or below it): the cut and direction that classify
/// the fitting set best, the cut halfway between neighbouring values. Ties prefer
/// "above" (the study's hypothesis: a larger perturbation favours QAFT), then the
/// lowest cut.
struct ThresholdRule {
  double threshold = 0;
  bool above = true;

  static ThresholdRule fit(const std::vector<double>& x, const std::vector<int>& y) {
    lowbit::detail::check(x.size() == y.size() && !x.empty(), "ThresholdRule: ", x.size(), " values but ", y.size(),
                          " labels");
    std::vector<double> v = x;
    std::sort(v.begin(), v.end());
    std::vector<double> cuts = {v.front() - 1};
    for (std::size_t i = 0; i + 1 < v.size(); ++i)
      if (v[i + 1] > v[i]) cuts.push_back(0.5 * (v[i] + v[i + 1]));
    cuts.push_back(v.back() + 1);
    ThresholdRule best;
    long best_correct = -1;
    for (const bool above : {true, false})
      for (const double c : cuts) {
        const ThresholdRule r{c, above};
        long correct = 0;
        for (std::size_t i = 0; i < x.size(); ++i) correct += r.predict(x[i]) == y[i] ? 1 : 0;
        if (correct > best_correct) best_correct = correct, best = r;
      }
    return best;
  }

  [[nodiscard]] int predict(double x) const { return (above ? x > threshold : x < threshold) ? 1 : 0; }
};

/// For each group, `fit_predict(train_rows, test_rows)` fitted without that group and
/// returning predictions for its rows; the predictions in row order. A group alone
/// (no other group to fit on) gets NaN.
template <class FitPredict>
std::vector<double> leave_one_group_out(const std::vector<std::string>& groups, FitPredict&& fit_predict) {
  std::vector<double> out(groups.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<std::string> names = groups;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.size() < 2) return out;
  for (const auto& g : names) {
    std::vector<int> train, test;
    for (std::size_t i = 0; i < groups.size(); ++i) (groups[i] == g ? test : train).push_back(static_cast<int>(i));
    const std::vector<double> p = fit_predict(train, test);
    lowbit::detail::check(p.size() == test.size(), "leave_one_group_out: ", p.size(), " predictions for ", test.size(),
                          " rows");
    for (std::size_t k = 0; k < test.size(); ++k) out[static_cast<std::size_t>(test[k])] = p[k];
  }
  return out;
}

/// Spearman's rank correlation (average ranks for ties); NaN below 3 points.
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  lowbit::detail::check(a.size() == b.size(), "spearman: ", a.size(), " vs ", b.size(), " values");
  if (a.size() < 3) return std::numeric_limits<double>::quiet_NaN();
  const auto ranks = [](const std::vector<double>& v) {
    std::vector<std::size_t> idx(v.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](std::size_t i, std::size_t j) { return v[i] < v[j]; });
    Eigen::VectorXd r(static_cast<Eigen::Index>(v.size()));
    for (std::size_t i = 0; i < idx.size();) {
      std::size_t j = i;
      while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
      for (std::size_t k = i; k <= j; ++k) r(static_cast<Eigen::Index>(idx[k])) = 0.5 * static_cast<double>(i + j);
      i = j + 1;
    }
    return r;
  };
  const Eigen::VectorXd ra = ranks(a), rb = ranks(b);
  const Eigen::ArrayXd da = ra.array() - ra.mean(), db = rb.array() - rb.mean();
  const double den = std::sqrt((da * da).sum() * (db * db).sum());
  return den > 0 ? (da * db).sum() / den : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace lowbit::analysis
