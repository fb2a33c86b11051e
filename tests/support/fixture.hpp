// Reader for the text fixtures written by scripts/fixtures/*.py:
//   tensor <name> <ndim> <d0> … <d_{ndim-1}>
//   <values as C99 hex floats, whitespace separated>
// Lines starting with '#' are comments.
#pragma once

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::test {

struct FixtureTensor {
  std::vector<long> shape;
  std::vector<float> values;
  [[nodiscard]] long rows() const { return shape.size() >= 2 ? shape[0] : 1; }
  [[nodiscard]] long cols() const {
    if (shape.empty()) return 1;
    long c = 1;
    for (std::size_t i = shape.size() >= 2 ? 1 : 0; i < shape.size(); ++i) c *= shape[i];
    return c;
  }
  [[nodiscard]] float scalar() const { return values.at(0); }
};

class Fixture {
 public:
  explicit Fixture(const std::string& file) : path_(std::string(LOWBIT_FIXTURE_DIR) + "/" + file) {
    std::ifstream in(path_);
    if (!in) detail::fail("fixture '", path_, "' cannot be opened");
    std::string token;
    while (in >> token) {
      if (token[0] == '#') {
        std::getline(in, token);
        continue;
      }
      if (token != "tensor") detail::fail("fixture '", path_, "': expected 'tensor', got '", token, "'");
      std::string name;
      int ndim = 0;
      in >> name >> ndim;
      FixtureTensor t;
      long n = 1;
      for (int d = 0; d < ndim; ++d) {
        long s = 0;
        in >> s;
        t.shape.push_back(s);
        n *= s;
      }
      t.values.reserve(static_cast<std::size_t>(n));
      for (long i = 0; i < n; ++i) {
        in >> token;
        t.values.push_back(std::strtof(token.c_str(), nullptr));
      }
      if (!in) detail::fail("fixture '", path_, "': truncated tensor '", name, "'");
      order_.push_back(name);
      tensors_.emplace(name, std::move(t));
    }
  }

  [[nodiscard]] bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  [[nodiscard]] const FixtureTensor& operator[](const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) detail::fail("fixture '", path_, "' has no tensor '", name, "'");
    return it->second;
  }
  [[nodiscard]] const std::vector<std::string>& names() const { return order_; }

 private:
  std::string path_;
  std::map<std::string, FixtureTensor> tensors_;
  std::vector<std::string> order_;
};

}  // namespace lowbit::test
