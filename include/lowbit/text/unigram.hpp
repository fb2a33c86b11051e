// Add-one (Laplace) smoothed unigram model: the floor any language model trained
// on the same tokens should beat. p(v) = (count(v) + 1) / (N + V) over a
// vocabulary of V ids fitted on N tokens; mean_nll is -mean(log p) in nats/token.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::text {

class UnigramModel {
 public:
  /// Counts `tokens` (ids in [0, vocab_size)).
  static UnigramModel fit(std::span<const int> tokens, int vocab_size) {
    detail::check(vocab_size > 0, "UnigramModel: vocab_size must be positive, got ", vocab_size);
    UnigramModel m;
    m.counts_.assign(static_cast<std::size_t>(vocab_size), 0);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      detail::check(tokens[i] >= 0 && tokens[i] < vocab_size, "UnigramModel::fit: token ", i, " has id ", tokens[i],
                    ", outside [0, ", vocab_size, ")");
      ++m.counts_[static_cast<std::size_t>(tokens[i])];
    }
    m.total_ = tokens.size();
    return m;
  }

  [[nodiscard]] int vocab_size() const { return static_cast<int>(counts_.size()); }
  [[nodiscard]] std::uint64_t count(int id) const { return counts_.at(static_cast<std::size_t>(id)); }
  [[nodiscard]] std::uint64_t total() const { return total_; }

  /// log p(id), natural log.
  [[nodiscard]] double log_prob(int id) const {
    detail::check(id >= 0 && id < vocab_size(), "UnigramModel: id ", id, " outside [0, ", vocab_size(), ")");
    return std::log(static_cast<double>(counts_[static_cast<std::size_t>(id)]) + 1.0) -
           std::log(static_cast<double>(total_) + static_cast<double>(counts_.size()));
  }

  /// Mean negative log-likelihood (nats/token) of `tokens`; refuses an empty span.
  [[nodiscard]] double mean_nll(std::span<const int> tokens) const {
    detail::check(!tokens.empty(), "UnigramModel::mean_nll: no tokens to evaluate");
    double sum = 0;  // accumulate counts per id first: exact and order-independent
    std::vector<std::uint64_t> seen(counts_.size(), 0);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      detail::check(tokens[i] >= 0 && tokens[i] < vocab_size(), "UnigramModel::mean_nll: token ", i, " has id ",
                    tokens[i], ", outside [0, ", vocab_size(), ")");
      ++seen[static_cast<std::size_t>(tokens[i])];
    }
    for (int id = 0; id < vocab_size(); ++id)
      if (seen[static_cast<std::size_t>(id)]) sum -= static_cast<double>(seen[static_cast<std::size_t>(id)]) * log_prob(id);
    return sum / static_cast<double>(tokens.size());
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
};

}  // namespace lowbit::text
