// The study's full-precision, RTN and GPTQ units of a model that stays in its files
// (lowbit-study --streaming): one block in fp32 at a time, as lowbit-quantize does,
// so the post-training side of the study runs on a model larger than memory. QAFT and
// the loss landscape move the whole model at once and stay in-memory only.
//
// A quantized unit, in three passes over the blocks:
//  1. quantize (nn::run_blocks): the calibration windows go block by block, each
//     block's linears quantized in GPTQ's true-sequential order (RTN needs no
//     calibration); every finished block's packed codes go to units/<key>.blocks/
//     with its layers' ‖ΔW‖² and chosen damping in the file's metadata, so an
//     interrupted unit resumes after its last finished block;
//  2. evaluate: the checkpoint seen through those packed layers
//     (nn::with_packed_layers) is scored by nn::evaluate_blockwise on the test,
//     validation and out-of-domain windows;
//  3. layer metrics: the full-precision model runs the test windows again, block by
//     block, and each layer's output MSE ‖ΔW·X‖²/(tokens·rows) is summed from that
//     pass's Hessians and the packed layers — the in-memory runner's figure (X from
//     the full-precision model) over groups of windows whose activations fit.
// The work folder is removed once the unit's result is on disk (units/<key>.json,
// written by the runner, which then calls discard()).
//
// Results equal the in-memory runner's up to the last bits of batched sums (the
// test compares them).
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "lowbit/core/error.hpp"
#include "lowbit/gptq/damp_search.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/quantized_export.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/blockwise.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/evaluate_blockwise.hpp"
#include "lowbit/nn/packed_overlay.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/packing.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/study/data.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/progress.hpp"
#include "lowbit/study/report.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/results_json.hpp"

namespace lowbit::study {

class StreamedUnits {
 public:
  /// `check_stop` throws when the run should stop (between layers and blocks).
  StreamedUnits(std::shared_ptr<const nn::Checkpoint> ck, const StudyData& data, const StudyOptions& o,
                std::function<void()> check_stop, FILE* log)
      : ck_(std::move(ck)), data_(data), o_(o), check_stop_(std::move(check_stop)), log_(log ? log : stderr) {}

  /// Test, validation and out-of-domain NLL of the checkpoint as its files hold it.
  void evaluate_fp(UnitResult& u) { evaluate(ck_, u); }

  /// An RTN or GPTQ unit (u.method) at q's bit width; `key` names its work folder.
  void quantize(UnitResult& u, const QuantSpec& q, const std::string& key) {
    using clock = std::chrono::steady_clock;
    const bool gptq = u.method == "gptq";
    const auto dir = o_.out / "units" / (key + ".blocks");
    nn::BlockwiseOptions bo;
    bo.method = gptq ? nn::BlockMethod::gptq : nn::BlockMethod::rtn;
    const nn::blockwise_detail::BlockStore store(
        dir, nn::blockwise_detail::run_manifest(*ck_, "study unit " + key, plan(q), bo, data_.calibration));
    nn::Transformer model = nn::Transformer::streaming(ck_);
    auto t0 = clock::now();
    const int blocks = model.config().layers;
    if (const int kept = finished_blocks(store, blocks); kept > 0)
      std::fprintf(log_, "  %s: %d of %d blocks from an interrupted run (%s)\n", key.c_str(), kept, blocks,
                   dir.string().c_str());
    if (finished_blocks(store, blocks) < blocks) {
      Progress p("  " + key, static_cast<long>(model.linear_layers().size()), "layer", log_, 30.0);
      bo.progress = [&](std::size_t done, std::size_t) {
        p.update(static_cast<long>(done));
        check_stop_();
      };
      (void)nn::run_blocks(model, data_.calibration, bo, store, sink(model, q, gptq, store));
      p.finish();
    }
    u.seconds["quantize"] = seconds_since(t0);

    std::map<std::string, std::filesystem::path> packed;
    for (const auto& l : model.linear_layers()) packed.emplace(l.name, store.path(l.block));
    const auto quantized = nn::with_packed_layers(ck_, packed);
    evaluate(quantized, u);
    t0 = clock::now();
    layer_metrics(model, store, *quantized, u);
    u.seconds["layer_metrics"] = seconds_since(t0);
  }

  /// Removes unit `key`'s work folder: call once its result is stored (a no-op for a
  /// unit that has none).
  void discard(const std::string& key) const {
    std::error_code ec;
    std::filesystem::remove_all(o_.out / "units" / (key + ".blocks"), ec);
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  /// What a unit's blocks depend on besides the model and calibration windows.
  [[nodiscard]] std::string plan(const QuantSpec& q) const {
    std::string s = q.str() + ", damp grid";
    for (const double d : o_.damp_grid) s += " " + detail::num(d, 6);
    return s;
  }

  static int finished_blocks(const nn::blockwise_detail::BlockStore& store, int blocks) {
    int n = 0;
    while (n < blocks && store.has(n)) ++n;
    return n;
  }

  /// The metadata key of a layer's figures (a JSON object) in its block file.
  static std::string meta_key(const std::string& layer) { return "lowbit.study." + layer; }

  /// Quantizes each layer (RTN, or GPTQ with the study's damping search), leaves its
  /// decoded codes in the weights the next stage reads, and packs it for the block file.
  nn::BlockSink sink(nn::Transformer& model, const QuantSpec& q, bool gptq,
                     const nn::blockwise_detail::BlockStore& store) {
    auto block = std::make_shared<io::SafetensorsWriter>();
    const auto quantizer = std::make_shared<SpecQuantizer>(q);
    const auto solver = std::make_shared<SpecGptq<>>(q);
    nn::BlockSink s;
    s.encode = [this, block, quantizer, solver, gptq, q](const nn::LinearLayer& l, const Hessian* h) {
      check_stop_();
      const MatrixView w = l.weight->matrix();
      QuantizedTensor t;
      std::string note;
      double damp = nan_value;
      if (gptq) {
        const DampSearchResult best = damp_search(*solver, w, *h, std::span<const double>(o_.damp_grid), l.name);
        const SolveResult& res = best.best_result;
        t = QuantizedTensor{res.params, res.codes};
        damp = best.curve[best.best].used_percdamp;
        if (!res.retries.empty())
          note = l.name + ": damping " + detail::num(res.retries.front().percdamp, 3) + " failed (" +
                 res.retries.front().reason + "), retried up to " + detail::num(res.percdamp, 3);
      } else {
        t = quantizer->quantize(w, l.name);
      }
      std::vector<float> decoded(static_cast<std::size_t>(w.rows * w.cols));
      t.dequantize(MatrixView{decoded.data(), w.rows, w.cols});
      double sq = 0;
      for (std::size_t i = 0; i < decoded.size(); ++i) {
        const double d = static_cast<double>(decoded[i]) - static_cast<double>(w.data[i]);
        sq += d * d;
      }
      std::copy(decoded.begin(), decoded.end(), w.data);
      io::add_quantized(*block, l.name, pack(t), gptq ? "gptq" : "rtn");
      io::Json figures = io::Json::object();
      figures.set("weight_sq_error", io::Json::number(sq));
      figures.set("damp", std::isfinite(damp) ? io::Json::number(damp) : io::Json::null());
      if (!note.empty()) figures.set("note", io::Json::string(note));
      block->set_metadata(meta_key(l.name), figures.dump());
    };
    s.save = [block, &store](int b) {
      store.write(b, *block);
      *block = io::SafetensorsWriter{};
    };
    s.restore = [&model, &store](int b) {  // GPTQ's next block reads this one quantized
      const io::SafetensorsFile f = store.open(b);
      for (const auto& l : model.linear_layers()) {
        if (l.block != b) continue;
        const QuantizedTensor t = unpack(io::read_quantized(f, l.name).packed);
        t.dequantize(l.weight->matrix());
      }
    };
    return s;
  }

  double nll(const std::shared_ptr<const nn::Checkpoint>& ck, const std::vector<std::span<const int>>& windows,
             const char* what) {
    if (windows.empty()) return nan_value;
    nn::Transformer model = nn::Transformer::streaming(ck);
    Progress p(std::string("  eval ") + what, model.config().layers, "block", log_, 30.0, /*lines_when_piped=*/false);
    nn::BlockwiseEvalOptions eo;
    eo.progress = [&](std::size_t done, std::size_t total) {
      p.update(static_cast<long>(done * static_cast<std::size_t>(model.config().layers) / total));
      check_stop_();
    };
    return nn::evaluate_blockwise(model, windows, eo).tally.mean_nll();
  }

  void evaluate(const std::shared_ptr<const nn::Checkpoint>& ck, UnitResult& u) {
    const auto t0 = std::chrono::steady_clock::now();
    u.test_nll = nll(ck, data_.test, "test");
    u.val_nll = nll(ck, data_.validation, "validation");
    u.ood_nll = nll(ck, data_.ood, "out-of-domain");
    u.seconds["evaluate"] = seconds_since(t0);
  }

  /// ‖ΔW‖² and the chosen damping from the block files; each layer's output MSE on
  /// the test windows, X from the full-precision model (see the header).
  void layer_metrics(nn::Transformer& model, const nn::blockwise_detail::BlockStore& store,
                     const nn::Checkpoint& quantized, UnitResult& u) {
    const auto& layers = model.linear_layers();
    std::vector<double> mse_tokens(layers.size(), 0.0), tokens(layers.size(), 0.0);
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < layers.size(); ++i) index.emplace(layers[i].name, i);
    const auto groups = nn::eval_detail::groups_of(data_.test, nn::eval_detail::state_bytes_per_token(model),
                                                   nn::BlockwiseEvalOptions{}.state_bytes);
    Progress p("  layer MSE", static_cast<long>(groups.size()) * model.config().layers, "block", log_, 30.0, false);
    for (const auto& [first, end] : groups) {
      const std::vector<std::span<const int>> windows(data_.test.begin() + static_cast<std::ptrdiff_t>(first),
                                                      data_.test.begin() + static_cast<std::ptrdiff_t>(end));
      const std::vector<autograd::Parameter*> tables = model.embedding_parameters();
      model.load(tables);
      nn::CalibrationOptions co;
      co.order = nn::CalibrationOrder::parallel;  // the full-precision model's inputs
      nn::BlockCalibration state(model, windows, co);
      model.unload(tables);
      for (int b = 0; b < model.config().layers; ++b) {
        const std::vector<autograd::Parameter*> params = model.block_parameters(b);
        model.load(params);
        state.quantize_block(b, [&](const nn::LinearLayer& l, const Hessian& h) {
          const std::vector<float> q = quantized.get(l.name).values;
          const Index rows = l.out_features(), cols = l.in_features();
          Eigen::MatrixXf delta(rows, cols);
          for (Index r = 0; r < rows; ++r)
            for (Index c = 0; c < cols; ++c)
              delta(r, c) = q[static_cast<std::size_t>(r * cols + c)] - l.weight->data()[r * cols + c];
          const Eigen::MatrixXd dd = delta.cast<double>();
          const double objective = ((dd * h.matrix.cast<double>()).array() * dd.array()).sum();
          const std::size_t i = index.at(l.name);
          mse_tokens[i] += h.output_mse(objective, rows) * static_cast<double>(h.tokens);
          tokens[i] += static_cast<double>(h.tokens);
        }, b + 1 < model.config().layers);
        model.unload(params);
        p.advance();
        check_stop_();
      }
    }
    p.finish();
    double total = 0;
    u.layers.clear();
    for (int b = 0; b < model.config().layers; ++b) {
      const io::SafetensorsFile f = store.open(b);
      for (const auto& l : layers) {
        if (l.block != b) continue;
        const auto it = f.metadata().find(meta_key(l.name));
        lowbit::detail::check(it != f.metadata().end(), "'", f.path(), "': metadata '", meta_key(l.name),
                              "' is missing");
        const io::Json figures = io::Json::parse(it->second, f.path());
        LayerResult lr;
        lr.name = l.name;
        lr.weight_sq_error = detail::read_number(figures, "weight_sq_error", f.path());
        lr.damp = detail::read_number(figures, "damp", f.path());
        const std::size_t i = index.at(l.name);
        lr.output_mse = tokens[i] > 0 ? mse_tokens[i] / tokens[i] : nan_value;
        if (const io::Json* note = figures.find("note")) {
          lowbit::detail::check(note->is_string(), "'", f.path(), "': metadata '", meta_key(l.name),
                                "': note is not a string");
          u.notes.push_back(note->as_string());
        }
        total += lr.weight_sq_error;
        u.layers.push_back(std::move(lr));
      }
    }
    u.weight_distance = std::sqrt(total);
  }

  std::shared_ptr<const nn::Checkpoint> ck_;
  const StudyData& data_;
  const StudyOptions& o_;
  std::function<void()> check_stop_;
  FILE* log_;
};

}  // namespace lowbit::study
