// A checkpoint seen through quantized layers: some weights replaced by lowbit-packed
// tensors (io/quantized_export.hpp's layout) kept in files, everything else read from
// the original checkpoint. Nothing is copied or widened up front: a streaming
// Transformer over the result decodes a quantized layer when its block is loaded, so
// a quantized model is evaluated block by block without ever being written whole.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/quantized_export.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/quant/packing.hpp"

namespace lowbit::nn {

namespace overlay_detail {

/// The base checkpoint's tensors by canonical name, with the named ones decoded from
/// their packed files instead.
class PackedOverlayFiles final : public TensorFiles {
 public:
  PackedOverlayFiles(std::shared_ptr<const Checkpoint> base, std::map<std::string, std::filesystem::path> packed)
      : base_(std::move(base)), packed_(std::move(packed)) {}
  std::vector<std::string> names() const override { return base_->names(); }
  std::vector<std::int64_t> shape(const std::string& name) const override { return base_->shape(name); }
  std::vector<float> to_float(const std::string& name) const override {
    const auto it = packed_.find(name);
    if (it == packed_.end()) return base_->get(name).values;
    const io::SafetensorsFile f = io::SafetensorsFile::open(it->second);
    const QuantizedTensor q = unpack(io::read_quantized(f, name).packed);
    const std::vector<std::int64_t> want = base_->shape(name);
    lowbit::detail::check(want.size() == 2 && want[0] == q.rows() && want[1] == q.cols(), "'", f.path(),
                          "': quantized layer '", name, "' is ", q.rows(), "x", q.cols(),
                          ", not the checkpoint's shape");
    std::vector<float> w(static_cast<std::size_t>(q.rows() * q.cols()));
    q.dequantize(MatrixView{w.data(), q.rows(), q.cols()});
    return w;
  }
  std::string source() const override { return base_->source + " with quantized layers"; }
  std::size_t file_count() const override { return 1; }

 private:
  std::shared_ptr<const Checkpoint> base_;
  std::map<std::string, std::filesystem::path> packed_;
};

}  // namespace overlay_detail

/// `base` with each weight named in `packed` (canonical name → the file holding it
/// packed) replaced by its dequantized codes.
inline std::shared_ptr<const Checkpoint> with_packed_layers(std::shared_ptr<const Checkpoint> base,
                                                            std::map<std::string, std::filesystem::path> packed) {
  lowbit::detail::check(base != nullptr, "with_packed_layers: no checkpoint");
  for (const auto& [name, path] : packed)
    lowbit::detail::check(base->contains(name), "with_packed_layers: checkpoint '", base->source,
                          "' has no tensor '", name, "'");
  auto ck = std::make_shared<Checkpoint>();
  ck->config = base->config;
  ck->source = base->source;
  for (const std::string& name : base->names()) ck->stored.emplace(name, name);
  ck->files = std::make_shared<overlay_detail::PackedOverlayFiles>(std::move(base), std::move(packed));
  return ck;
}

}  // namespace lowbit::nn
