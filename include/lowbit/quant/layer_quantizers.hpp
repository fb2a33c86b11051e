// One quantizer per tensor name: a mixture of schemes (llama-quantize's Q4_K_M, a
// --scheme-for override) as a single object the training loop and the exporters ask
// "how is this layer quantized?". A name without a quantizer is not quantized (llama.cpp
// keeps it in F16).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "lowbit/core/matrix_view.hpp"
#include "lowbit/quant/spec_quantizer.hpp"

namespace lowbit {

class LayerQuantizers {
 public:
  void set(std::string name, SpecQuantizer q) { by_name_.insert_or_assign(std::move(name), std::move(q)); }

  /// The layer's quantizer, or null when the layer is not quantized.
  [[nodiscard]] const SpecQuantizer* find(std::string_view name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &it->second;
  }

  /// w ← Q(w) with the layer's quantizer; a layer without one is left as it is.
  void fake_quantize_in_place(MatrixView w, std::string_view name) const {
    if (const SpecQuantizer* q = find(name)) (void)q->fake_quantize_in_place(w, name);
  }

  [[nodiscard]] std::size_t size() const { return by_name_.size(); }

 private:
  std::map<std::string, SpecQuantizer, std::less<>> by_name_;
};

/// The quantizer of layer `name` under `q`: a single quantizer serves every layer.
template <class Quant>
const Quant* quantizer_of(const Quant& q, std::string_view /*name*/) {
  return &q;
}
inline const SpecQuantizer* quantizer_of(const LayerQuantizers& q, std::string_view name) { return q.find(name); }

}  // namespace lowbit
