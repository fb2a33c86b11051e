// A GPTQ checkpoint (nn/gptq_export.hpp's layout) written block by block in bounded
// memory, by nn/blockwise.hpp's driver: one block widened at a time, its linears
// quantized (GPTQ in true-sequential order, or round-to-nearest) and packed into the
// work folder (`OUT.blocks/`, resumable), then model.safetensors streamed from the
// work folder and the checkpoint one tensor at a time. The folder is the one
// quantize_for_gptq_checkpoint + write_gptq_checkpoint write in memory, byte for byte.
#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/gptq_checkpoint.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/blockwise.hpp"
#include "lowbit/nn/gptq_export.hpp"
#include "lowbit/nn/rope_rows.hpp"
#include "lowbit/nn/save.hpp"

namespace lowbit::nn {

/// What quantize_gptq_checkpoint_blockwise did.
struct GptqBlockwiseResult {
  BlockwiseReport report;
  std::size_t quantized_layers = 0;
  std::vector<std::string> kept_float;  ///< linears whose shape QuantLinear cannot hold
};

/// Quantizes the checkpoint onto `spec`'s grid block by block (o.method: gptq or rtn)
/// and writes the GPTQ checkpoint folder `dir` (see the header).
inline GptqBlockwiseResult quantize_gptq_checkpoint_blockwise(const std::shared_ptr<const Checkpoint>& ck,
                                                          const QuantSpec& spec,
                                                          const std::vector<std::span<const int>>& calibration,
                                                          const std::filesystem::path& dir,
                                                          const GptqWriteOptions& write_options = {},
                                                          const BlockwiseOptions& o = {}) {
  namespace g = gptq_export_detail;
  g::check_spec(spec);
  lowbit::detail::check(o.method == BlockMethod::gptq || o.method == BlockMethod::rtn, "GPTQ checkpoint: method ",
                        block_method_name(o.method), " does not write one block by block (gptq or rtn do)");
  Transformer model = Transformer::streaming(ck);
  const TransformerConfig& c = model.config();
  const blockwise_detail::BlockStore store(
      o.work_dir.empty() ? std::filesystem::path(dir.string() + ".blocks") : o.work_dir,
      blockwise_detail::run_manifest(*ck, "gptq checkpoint", spec.str(), o, calibration));

  GptqExport meta;  // what the config files say; the layers themselves go to the work folder
  meta.spec = spec;
  meta.method = o.method == BlockMethod::gptq ? GptqExportMethod::gptq : GptqExportMethod::rtn;
  meta.options = o.gptq;
  meta.true_sequential = o.method == BlockMethod::gptq;
  std::set<std::string> quantized;
  for (const LinearLayer& l : model.linear_layers())
    if (g::fits_quant_linear(l)) quantized.insert(l.name);
    else meta.kept_float.push_back(l.name);
  const io::GptqQuantizeConfig qc = g::quantize_config(model, meta, quantized, write_options);

  io::SafetensorsWriter block;  // the packed layers of the block being quantized
  BlockSink sink;
  sink.encode = [&](const LinearLayer& l, const Hessian* h) {
    if (!quantized.count(l.name)) return;  // kept float: the checkpoint's values are written
    const GptqLayer layer = h ? g::gptq_layer(l, spec, o.gptq, *h) : g::rtn_layer(l, spec);
    io::add_gptq_linear(block, g::module_of(l.name), g::packed_layer(l, layer, c));
  };
  sink.save = [&](int b) {
    store.write(b, block);
    block = io::SafetensorsWriter{};
  };
  sink.restore = [&](int b) {  // GPTQ's next block reads this one quantized
    const io::SafetensorsFile f = store.open(b);
    const Index group = spec.granularity == ScaleLayout::Kind::group ? spec.group_size : 0;
    for (const LinearLayer& l : model.linear_layers()) {
      if (l.block != b || !quantized.count(l.name)) continue;
      std::vector<float> w = io::dequantize_gptq_linear(io::read_gptq_linear(f, g::module_of(l.name), spec.bits, group));
      if (hf_rope_rows_differ(c, l.name))
        w = permute_rope_rows<float>(w, l.out_features(), l.in_features(), c.head_dim(), RopeRows::to_interleaved);
      lowbit::detail::check(w.size() == l.weight->values().size(), "work folder: block ", b, ": layer '", l.name,
                            "' holds ", w.size(), " weights");
      std::copy(w.begin(), w.end(), l.weight->values().begin());
    }
  };
  GptqBlockwiseResult result{run_blocks(model, calibration, o, store, sink), quantized.size(), meta.kept_float};

  // model.safetensors: each quantized linear's four tensors from the work folder,
  // every other parameter from the checkpoint, produced one at a time as it is written.
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  std::vector<io::SafetensorsFile> blocks;
  for (int b = 0; b < c.layers; ++b) blocks.push_back(store.open(b));
  io::SafetensorsWriter out;
  out.set_metadata("format", "pt");
  for (autograd::Parameter* p : model.parameters()) {
    const std::string& name = p->name();
    if (quantized.count(name)) {
      const io::SafetensorsFile& f = blocks[static_cast<std::size_t>(model.linear(name).block)];
      for (const char* suffix : {".qweight", ".qzeros", ".scales", ".g_idx"}) {
        const std::string t = g::module_of(name) + suffix;
        const io::TensorInfo& info = f.info(t);
        out.add_deferred(t, info.dtype, info.shape, [&f, t](std::span<std::uint8_t> dst) {
          const auto bytes = f.bytes(t);
          std::copy(bytes.begin(), bytes.end(), dst.begin());
        });
      }
      continue;
    }
    const auto& s = p->shape();
    std::vector<std::int64_t> shape(s.dims.begin(), s.dims.begin() + s.ndim);
    if (hf_transposed(c, name, shape.size())) std::swap(shape[0], shape[1]);
    out.add_deferred(name, io_dtype(write_options.dtype), shape, [&, name](std::span<std::uint8_t> dst) {
      const Weight w = ck->get(name);
      std::vector<std::int64_t> file_shape = w.shape;
      std::vector<float> moved;
      store_as(hf_layout(c, name, file_shape, w.values, moved), write_options.dtype, dst);
    });
  }
  g::write_files(dir, c, qc, out, write_options);
  result.report.write_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  store.remove();
  return result;
}

}  // namespace lowbit::nn
