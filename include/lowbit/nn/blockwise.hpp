// Quantizing a model block by block in bounded memory: the driver (run_blocks, which
// an output format feeds through a BlockSink) and the GGUF llama.cpp runs; a GPTQ
// checkpoint goes the same way (nn/blockwise_gptq.hpp).
//
// The model is a streaming Transformer over a Checkpoint whose tensors stay in their
// (memory-mapped) files. Calibration proceeds as GPTQ's sequential procedure does:
// the calibration windows' block inputs are held (BlockCalibration), one block is
// widened to fp32, its linears are quantized stage by stage in true-sequential
// order, its outputs become the next block's inputs, and the block is freed. Peak
// memory: one block in fp32 + the calibration state + one stage's Hessian and GPTQ
// workspace — not the model.
//
// Each finished block's encoded layers go to a work folder beside the output
// (`OUT.blocks/`, one file per block, written atomically) before the next block is
// read; a run with the same output, model, plan, method and calibration resumes
// after the last finished block (its layers are decoded and the calibration state
// passed through them instead of being re-quantized). The GGUF is written at the
// end from the folder and the checkpoint, one tensor at a time, then the folder is
// removed. The result is the file quantize_to_blocks + write_gguf write in memory,
// byte for byte.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/core/fnv1a.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/block_quantize.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/transformer.hpp"

namespace lowbit::nn {

struct BlockwiseOptions {
  BlockMethod method = BlockMethod::rtn;  ///< rtn, imatrix or gptq (QAFT trains the whole model)
  GptqOptions gptq;
  Index batch = 8;  ///< calibration windows per forward chunk
  /// Finished blocks, for resuming; empty: the output path + ".blocks".
  std::filesystem::path work_dir;
  /// After each layer: (layers done, layers in all), resumed blocks included.
  std::function<void(std::size_t, std::size_t)> progress;
};

struct BlockwiseReport {
  int resumed_blocks = 0;    ///< taken from the work folder of an interrupted run
  int quantized_blocks = 0;  ///< quantized in this run
  Index calibration_tokens = 0;
  double load_seconds = 0;    ///< widening blocks from the checkpoint
  double forward_seconds = 0; ///< calibration: the blocks' forward passes and Hessians
  double solve_seconds = 0;   ///< encoding the layers (GPTQ's solves, RTN)
  double write_seconds = 0;   ///< the GGUF file
};

namespace blockwise_detail {

/// What a work folder's blocks depend on: a folder made by another run is refused.
inline io::Json run_manifest(const Checkpoint& ck, std::string_view output, const std::string& plan,
                             const BlockwiseOptions& o, const std::vector<std::span<const int>>& calibration) {
  std::uint64_t h = fnv1a64_offset_basis;
  for (const auto& w : calibration) {
    h = fnv1a64(std::string_view(reinterpret_cast<const char*>(w.data()), w.size() * sizeof(int)), h);
    h = fnv1a64("|", h);
  }
  io::Json j = io::Json::object();
  j.set("lowbit_blockwise", io::Json::number(std::int64_t{1}));
  j.set("model", io::Json::string(ck.source));
  j.set("blocks", io::Json::number(static_cast<std::int64_t>(ck.config.layers)));
  j.set("output", io::Json::string(std::string(output)));
  j.set("method", io::Json::string(std::string(block_method_name(o.method))));
  j.set("plan", io::Json::string(plan));
  const bool calibrated = o.method != BlockMethod::rtn;
  j.set("calibration", io::Json::string(calibrated ? hex64(h) + " (" + std::to_string(calibration.size()) +
                                                         " windows, batch " + std::to_string(o.batch) + ")"
                                                   : "none"));
  if (o.method == BlockMethod::gptq) {
    const GptqOptions& g = o.gptq;
    j.set("gptq", io::Json::string("percdamp " + std::to_string(g.percdamp) + ", block_size " +
                                   std::to_string(g.block_size) + ", act_order " + (g.act_order ? "1" : "0") +
                                   ", static_groups " + (g.static_groups ? "1" : "0")));
  }
  return j;
}

/// The work folder: manifest.json and block-NNNNN.safetensors (each layer's bytes as
/// a U8 tensor, its ggml type in the metadata).
class BlockStore {
 public:
  BlockStore(std::filesystem::path dir, const io::Json& manifest) : dir_(std::move(dir)) {
    const auto manifest_path = dir_ / "manifest.json";
    std::error_code ec;
    if (std::filesystem::exists(manifest_path, ec)) {
      const io::Json old = io::Json::parse(io::read_file(manifest_path), manifest_path.string());
      for (const std::string& key : manifest.keys()) {
        const io::Json* v = old.is_object() ? old.find(key) : nullptr;
        lowbit::detail::check(v && v->dump() == manifest.at(key).dump(), "work folder '", dir_.string(),
                              "' holds blocks of another run (", key, ": ", v ? v->dump() : "missing", " there, ",
                              manifest.at(key).dump(), " now): remove it to start again");
      }
      return;
    }
    std::filesystem::create_directories(dir_, ec);
    lowbit::detail::check(std::filesystem::is_directory(dir_), "cannot create the work folder '", dir_.string(), "'");
    io::write_file_atomic(manifest_path, manifest.dump());
  }

  /// The file a block is (or will be) written to.
  [[nodiscard]] std::filesystem::path path(int block) const {
    char name[32];
    std::snprintf(name, sizeof name, "block-%05d.safetensors", block);
    return dir_ / name;
  }

  [[nodiscard]] bool has(int block) const {
    std::error_code ec;
    return std::filesystem::exists(path(block), ec);
  }
  /// A block's file, written atomically: a block is in the folder whole or not at all.
  void write(int block, const io::SafetensorsWriter& w) const { w.write(path(block)); }
  [[nodiscard]] io::SafetensorsFile open(int block) const { return io::SafetensorsFile::open(path(block)); }

  /// GGUF's encoded layers: each layer's bytes as a U8 tensor, its ggml type in the metadata.
  void write(int block, const std::map<std::string, EncodedTensor>& layers) const {
    io::SafetensorsWriter w;
    for (const auto& [name, e] : layers) {
      w.add(name, io::DType::U8, {static_cast<std::int64_t>(e.bytes.size())}, e.bytes);
      w.set_metadata(name, std::to_string(e.ggml_type));
    }
    write(block, w);
  }
  [[nodiscard]] std::map<std::string, EncodedTensor> read(int block) const {
    const auto f = open(block);
    std::map<std::string, EncodedTensor> out;
    for (const auto& t : f.tensors()) {
      const auto it = f.metadata().find(t.name);
      lowbit::detail::check(it != f.metadata().end(), "work file '", f.path(), "': tensor '", t.name,
                            "' has no ggml type in the metadata");
      EncodedTensor e;
      const std::string& v = it->second;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), e.ggml_type);
      lowbit::detail::check(ec == std::errc() && end == v.data() + v.size() && io::ggml_type_info(e.ggml_type),
                            "work file '", f.path(), "': tensor '", t.name, "' has ggml type '", v, "'");
      const auto b = f.bytes(t.name);
      e.bytes.assign(b.begin(), b.end());
      out.emplace(t.name, std::move(e));
    }
    return out;
  }
  void remove() const {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  std::filesystem::path dir_;
};

/// What an engine decodes `e` to, into w (rows × cols): F32, F16 or a block type.
inline void decode_into(const EncodedTensor& e, std::span<float> w, Index rows, Index cols, const std::string& name) {
  const auto n = static_cast<std::size_t>(rows * cols);
  lowbit::detail::check(w.size() == n, "decode '", name, "': ", w.size(), " values for ", rows, "x", cols);
  if (e.ggml_type == 0) {
    lowbit::detail::check(e.bytes.size() == n * 4, "decode '", name, "': ", e.bytes.size(), " bytes of F32");
    std::memcpy(w.data(), e.bytes.data(), n * 4);
  } else if (e.ggml_type == 1) {
    lowbit::detail::check(e.bytes.size() == n * 2, "decode '", name, "': ", e.bytes.size(), " bytes of F16");
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t h = 0;
      std::memcpy(&h, e.bytes.data() + 2 * i, 2);
      w[i] = io::f16_to_f32(h);
    }
  } else {
    const auto info = io::ggml_type_info(e.ggml_type);
    lowbit::detail::check(info && info->block, "decode '", name, "': ggml type ", e.ggml_type, " is not one lowbit decodes");
    blocks::dequantize(*info->block, e.bytes.data(), MatrixView(w.data(), rows, cols), name);
  }
}

}  // namespace blockwise_detail

/// What the block-by-block driver does with a block's layers, for one output format.
struct BlockSink {
  /// Encodes a layer of the block being quantized (Hessian null for RTN), leaving in
  /// its weights what the format stores: the next block's calibration reads them.
  std::function<void(const LinearLayer&, const Hessian*)> encode;
  /// Writes the block's encoded layers into the work folder.
  std::function<void(int block)> save;
  /// A block the work folder already holds: puts what it stores back into the
  /// model's weights where the next block's calibration needs them (GPTQ), and checks
  /// that it holds every layer.
  std::function<void(int block)> restore;
};

/// Quantizes every block of the streaming `model` in order (see the header): widens
/// it, calibrates and encodes its layers through `sink` (or restores it from the work
/// folder), passes the calibration state through it, frees it.
inline BlockwiseReport run_blocks(Transformer& model, const std::vector<std::span<const int>>& calibration,
                                  const BlockwiseOptions& o, const blockwise_detail::BlockStore& store,
                                  const BlockSink& sink) {
  const auto& layers = model.linear_layers();
  const bool calibrated = o.method != BlockMethod::rtn;
  lowbit::detail::check(!calibrated || !calibration.empty(), "block-by-block quantization: ",
                        block_method_name(o.method), " needs calibration windows");
  std::size_t done = 0;
  const auto solved = [&] {
    ++done;
    if (o.progress) o.progress(done, layers.size());
  };

  BlockwiseReport report;
  // The calibration windows' embeddings: only the embedding tables are loaded for it.
  std::optional<BlockCalibration> cal;
  if (calibrated) {
    const std::vector<autograd::Parameter*> tables = model.embedding_parameters();
    model.load(tables);
    CalibrationOptions co;
    co.order = o.method == BlockMethod::gptq ? CalibrationOrder::sequential : CalibrationOrder::parallel;
    co.batch = o.batch;
    cal.emplace(model, calibration, co);
    model.unload(tables);
    report.calibration_tokens = cal->tokens();
  }

  using clock = std::chrono::steady_clock;
  const auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  for (int b = 0; b < model.config().layers; ++b) {
    const std::vector<autograd::Parameter*> params = model.block_parameters(b);
    const auto in_block = [&] {
      for (const auto& l : layers)
        if (l.block == b) solved();
    };
    const bool resumed = store.has(b);
    if (resumed && !calibrated) {  // nothing to pass through: the file is all we need
      in_block();
      ++report.resumed_blocks;
      continue;
    }
    auto t0 = clock::now();
    model.load(params);
    report.load_seconds += since(t0);
    t0 = clock::now();
    double solving = 0;
    if (resumed) {
      sink.restore(b);
      in_block();
      cal->pass_block(b);
      ++report.resumed_blocks;
    } else {
      const auto encode = [&](const LinearLayer& l, const Hessian* h) {
        const auto ts = clock::now();
        sink.encode(l, h);
        solving += since(ts);
        solved();
      };
      if (calibrated) {
        // The last block's output feeds nothing: its final stage is not run.
        cal->quantize_block(b, [&](const LinearLayer& l, const Hessian& h) { encode(l, &h); },
                            b + 1 < model.config().layers);
      } else {
        for (const auto& l : layers)
          if (l.block == b) encode(l, nullptr);
      }
      sink.save(b);
      ++report.quantized_blocks;
    }
    report.solve_seconds += solving;
    report.forward_seconds += since(t0) - solving;
    model.unload(params);
  }
  return report;
}

/// Quantizes the checkpoint block by block into the GGUF `out` (see the header).
/// `calibration`: the windows imatrix and GPTQ need (ignored by rtn).
inline BlockwiseReport quantize_gguf_blockwise(const std::shared_ptr<const Checkpoint>& ck, const BlockPlan& plan,
                                               const std::vector<std::span<const int>>& calibration,
                                               const std::filesystem::path& out, const GgufVocab* vocab = nullptr,
                                               std::string_view model_name = "lowbit",
                                               const BlockwiseOptions& o = {}) {
  using blockwise_detail::BlockStore;
  lowbit::detail::check(o.method != BlockMethod::qaft, "block-by-block quantization: QAFT trains the whole model; "
                        "quantize it in memory (quantize_to_blocks after study::qaft_to_blocks)");
  check_gguf_writable(ck->config);
  Transformer model = Transformer::streaming(ck);
  const BlockStore store(o.work_dir.empty() ? std::filesystem::path(out.string() + ".blocks") : o.work_dir,
                         blockwise_detail::run_manifest(*ck, "gguf", plan.str(), o, calibration));
  const auto& layers = model.linear_layers();
  const auto spec = [&](const LinearLayer& l) -> const QuantSpec& { return plan.spec_for(model.config().arch, l.name); };
  std::map<std::string, EncodedTensor> encoded;  // the block being quantized
  BlockSink sink;
  sink.encode = [&](const LinearLayer& l, const Hessian* h) {
    encoded[l.name] = block_detail::encode_layer(l, spec(l), o.method, h, o.gptq);
  };
  sink.save = [&](int b) {
    store.write(b, encoded);
    encoded.clear();
  };
  sink.restore = [&](int b) {
    // GPTQ's next block reads this one quantized; the imatrix's reads it as it was.
    const auto stored = store.read(b);
    for (const auto& l : layers) {
      if (l.block != b) continue;
      const auto it = stored.find(l.name);
      lowbit::detail::check(it != stored.end(), "work folder: block ", b, " has no layer '", l.name, "'");
      if (o.method == BlockMethod::gptq)
        blockwise_detail::decode_into(it->second, l.weight->values(), l.out_features(), l.in_features(), l.name);
    }
  };
  BlockwiseReport report = run_blocks(model, calibration, o, store, sink);
  using clock = std::chrono::steady_clock;
  const auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };

  // The file: the blocks' layers from the work folder, every other tensor from the
  // checkpoint by llama.cpp's round-to-nearest, one tensor in memory at a time.
  int cached_block = -1;
  std::map<std::string, EncodedTensor> cached;
  std::map<std::string, int> block_of;
  for (const auto& l : layers) block_of[l.name] = l.block;
  const GgufCodec codec = gguf_encoded_codec(ck->config, plan, [&](const std::string& name) -> const EncodedTensor* {
    const auto it = block_of.find(name);
    if (it == block_of.end()) return nullptr;
    if (it->second != cached_block) {
      cached = store.read(it->second);
      cached_block = it->second;
    }
    const auto e = cached.find(name);
    lowbit::detail::check(e != cached.end(), "work folder: block ", it->second, " has no layer '", name, "'");
    return &e->second;
  });
  const auto tw = clock::now();
  write_gguf(out, *ck, vocab, codec, model_name);
  report.write_seconds = since(tw);
  store.remove();
  return report;
}

}  // namespace lowbit::nn
