// What every unit of a study run works with (study/units/*.hpp): the model in memory
// and its full-precision weights, the data, the unit store, the log and the stop
// check — and the steps units share: evaluating the model as it is now, measuring and
// saving a quantized model's weights, reusing a unit already on disk.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/quantized_export.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/layer_quantizers.hpp"
#include "lowbit/quant/packing.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/study/metrics.hpp"
#include "lowbit/study/progress.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/run_identity.hpp"
#include "lowbit/study/setup.hpp"
#include "lowbit/study/streamed_units.hpp"
#include "lowbit/study/unit_store.hpp"

namespace lowbit::study {

class UnitContext {
 public:
  using clock = std::chrono::steady_clock;

  /// Not movable: the streamed units' stop check refers to this context.
  UnitContext(UnitContext&&) = delete;
  UnitContext& operator=(UnitContext&&) = delete;

  UnitContext(StudySetup& s, const std::atomic<bool>* stop, FILE* log)
      : stop_(stop), log_(log),
        fp_(s.model.is_streaming() ? nn::WeightSnapshot{} : s.model.snapshot()),
        fp_linear_(s.model.is_streaming() ? std::vector<std::vector<float>>{} : linear_weights(s.model)),
        metrics_(fp_linear_, s.data.test),
        setup(s), options(s.options), model(s.model), grid(study_grid(options.scheme)),
        store(options.out, run_identity(s, model.is_streaming() ? model_fingerprint(model) : model_fingerprint(fp_)), log,
              grid) {
    if (model.is_streaming()) streamed.emplace(s.checkpoint, s.data, options, [this] { check_stop(); }, log_);
  }

 private:
  // First: the public members' initializers use them.
  const std::atomic<bool>* stop_;
  FILE* log_;
  nn::WeightSnapshot fp_;
  std::vector<std::vector<float>> fp_linear_;  ///< fp_ of the registered layers only
  WeightMetrics metrics_;

 public:
  StudySetup& setup;
  const StudyOptions& options;
  nn::Transformer& model;
  const std::string grid;  ///< StudyResults::grid of this run's scheme
  UnitStore store;
  std::optional<StreamedUnits> streamed;  ///< --streaming: the model stays in its files

  /// "int4", "nf4" or "q4_k" (unit_label); unit keys and logs use it.
  [[nodiscard]] std::string label(int bits) const { return unit_label(grid, bits); }
  [[nodiscard]] std::string key(const std::string& method, int bits) const { return method + "-" + label(bits); }

  template <class... A>
  void log(const char* fmt, A... a) const {
    if (!log_) return;
    std::fprintf(log_, fmt, a...);
    std::fputc('\n', log_);
    std::fflush(log_);
  }
  [[nodiscard]] FILE* progress_stream() const { return log_ ? log_ : stderr; }

  /// Throws Interrupted when a stop was requested (Ctrl-C); units call it between steps.
  void check_stop() const {
    if (stop_ && stop_->load()) throw Interrupted("interrupted: finished units are kept in " + options.out.string());
  }

  /// The unit `k` from its file, or computed by f() and stored. `inputs`: what the
  /// unit was drawn from within this run (UnitStore::reuse).
  template <class F>
  UnitResult cached_or(const std::string& k, F&& f, const io::Json* inputs = nullptr) {
    if (auto u = store.reuse(k, inputs)) {
      if (streamed) streamed->discard(k);  // a work folder left by a kill after the store
      return std::move(*u);
    }
    check_stop();
    const auto t0 = clock::now();
    UnitResult u = f();
    u.seconds["total"] = seconds_since(t0);
    store.store(k, u, inputs);
    if (streamed) streamed->discard(k);  // only now: until the store, the blocks are the unit
    return u;
  }

  static double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

  /// The model's weights back at full precision.
  void restore_fp() { model.restore(fp_); }

  /// Mean NLL of the model as it is now over `windows` (NaN for none).
  double nll(const std::vector<std::span<const int>>& windows, const char* what) {
    if (windows.empty()) return nan_value;
    Progress p(std::string("  eval ") + what, static_cast<long>(windows.size()), "win", progress_stream(), 30.0,
               /*lines_when_piped=*/false);
    nn::Evaluator ev(model);
    const auto t = ev.evaluate(windows, {}, [&](std::size_t done, std::size_t) {
      p.update(static_cast<long>(done));
      check_stop();
    });
    return t.mean_nll();
  }

  /// Test, validation and out-of-domain NLL of the model as it is now.
  void evaluate_into(UnitResult& u) {
    const auto t0 = clock::now();
    u.test_nll = nll(setup.data.test, "test");
    u.val_nll = nll(setup.data.validation, "validation");
    u.ood_nll = nll(setup.data.ood, "out-of-domain");
    u.seconds["evaluate"] = seconds_since(t0);
  }

  /// A post-training unit (RTN, GPTQ) of `method` at q: from its file; else block by
  /// block (--streaming); else in memory, where quantize(u, packed, damp) puts Q(W)
  /// into the model's layers (GPTQ also records each layer's damping), then the model
  /// is evaluated and measured (finish_quantized).
  template <class Quantize>
  UnitResult post_training_unit(const std::string& method, const QuantSpec& q, Quantize&& quantize) {
    const std::string k = key(method, q.bits);
    return cached_or(k, [&] {
      UnitResult u;
      u.method = method;
      u.bits = q.bits;
      if (streamed) {
        streamed->quantize(u, q, k);
        u.weight_bytes = model_bytes(model, options.scheme, q.bits);
        return u;
      }
      restore_fp();
      const auto t0 = clock::now();
      std::map<std::string, double> damp;
      std::vector<QuantizedTensor> packed;
      quantize(u, packed, damp);
      u.seconds["quantize"] = seconds_since(t0);
      finish_quantized(u, k, packed, damp);
      return u;
    });
  }

  /// A quantized model in memory, done: its NLLs, its weights' metrics (with GPTQ's
  /// damping per layer) and bytes, and its weights saved (saved_weights()).
  void finish_quantized(UnitResult& u, const std::string& k, const std::vector<QuantizedTensor>& packed,
                        const std::map<std::string, double>& damp = {}) {
    evaluate_into(u);
    const auto t0 = clock::now();
    metrics_.measure(model, u, damp, [&](auto&& at_fp) {
      const auto cur = model.snapshot();
      restore_fp();
      at_fp();
      model.restore(cur);
      u.seconds["test_hessians"] = seconds_since(t0);
    });
    u.weight_bytes = model_bytes(model, options.scheme, u.bits);
    save_weights(k, packed, u.method);
  }

  /// Each layer's quantizer for a block format (layer_scheme: llama.cpp's type for
  /// the layer, round-to-nearest as llama.cpp encodes it); layers no block type fits
  /// have none and stay at full precision.
  [[nodiscard]] LayerQuantizers block_quantizers(const QuantSpec& q) const { return nn::block_quantizers(model, q); }

  /// Q(W) into every registered layer — RTN, and QAFT's final weights — and, with
  /// --save, their integer codes (integer grids only: options refuse --save with a
  /// block format).
  template <class Quant>
  void round_layers(const Quant& quantizer, std::vector<QuantizedTensor>& packed) {
    for (const auto& l : model.linear_layers()) {
      if constexpr (std::is_same_v<Quant, SpecQuantizer>)
        if (options.save) packed.push_back(quantizer.quantize(l.weight->matrix(), l.name));
      quantizer.fake_quantize_in_place(l.weight->matrix(), l.name);
    }
  }

  /// weights/<k>.safetensors: the quantizable weights a unit ended with, for the
  /// landscape (only with --landscape).
  [[nodiscard]] std::filesystem::path weights_path(const std::string& k) const {
    return options.out / "weights" / (k + ".safetensors");
  }

  /// Sets the model's quantizable weights to weights/<k>.safetensors; false if absent.
  bool load_weights(const std::string& k) { return read_linear_weights(weights_path(k)); }

  /// The model's quantizable (linear) weights as they are now, into `path` (f32).
  void write_linear_weights(const std::filesystem::path& path) const {
    std::filesystem::create_directories(path.parent_path());
    io::SafetensorsWriter w;
    for (const auto& l : model.linear_layers()) w.add_f32(l.name, {l.out_features(), l.in_features()}, l.weight->values());
    w.write(path);
  }

  /// Sets the model's quantizable weights to those written at `path`; false if absent.
  bool read_linear_weights(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) return false;
    const auto f = io::SafetensorsFile::open(path);
    for (const auto& l : model.linear_layers()) {
      const auto v = f.to_float(l.name);
      lowbit::detail::check(static_cast<Index>(v.size()) == l.weight->numel(), path.string(), ": tensor '", l.name,
                            "' has the wrong size");
      std::copy(v.begin(), v.end(), l.weight->data());
    }
    return true;
  }

 private:
  /// Saves the model's current quantizable weights (for the landscape) and, with
  /// --save, the packed model (models/<k>.safetensors).
  void save_weights(const std::string& k, const std::vector<QuantizedTensor>& packed, const std::string& method) {
    namespace fs = std::filesystem;
    if (options.landscape) write_linear_weights(weights_path(k));
    if (!options.save || packed.empty()) return;
    fs::create_directories(options.out / "models");
    io::SafetensorsWriter w;
    std::size_t i = 0;
    for (auto* p : model.parameters()) {
      bool is_linear = false;
      for (const auto& l : model.linear_layers()) is_linear = is_linear || l.weight == p;
      if (is_linear) {
        io::add_quantized(w, p->name(), pack(packed[i++]), method);
      } else {
        const auto& sh = p->shape();
        w.add_f32(p->name(), std::vector<std::int64_t>(sh.dims.begin(), sh.dims.begin() + sh.ndim), p->values());
      }
    }
    w.write(options.out / "models" / (k + ".safetensors"));
  }

};

}  // namespace lowbit::study
