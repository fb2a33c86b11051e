// lowbit-study's driver: full precision, then RTN, GPTQ and QAFT at each bit width,
// the loss landscape, results.json and the report. Every finished unit (fp, each
// method × bits, each QAFT learning rate, the landscape) is written to
// --out/units/<key>.json at once (atomically) and reused on restart, so an
// interrupted run loses at most the unit in progress.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "lowbit/core/error.hpp"
#include "lowbit/core/fnv1a.hpp"
#include "lowbit/gptq/damp_search.hpp"
#include "lowbit/gptq/gptq.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/quantized_export.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/calibration.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/packing.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/study/data.hpp"
#include "lowbit/study/landscape.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/progress.hpp"
#include "lowbit/study/qaft.hpp"
#include "lowbit/study/report.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/results_json.hpp"
#include "lowbit/study/streamed_units.hpp"
#include "lowbit/study/unit_store.hpp"
#include "lowbit/version.hpp"

namespace lowbit::study {

/// Thrown between units (or epochs) when a stop was requested (Ctrl-C).
class Interrupted : public Error {
 public:
  using Error::Error;
};

/// Everything fixed before the run starts: resolved paths and the loaded inputs.
/// Constructing it validates every input, so errors surface before any work.
struct StudySetup {
  StudyOptions options;
  std::filesystem::path data_dir, model_path;
  /// --streaming: the files the model's blocks are widened from, one at a time.
  std::shared_ptr<const nn::Checkpoint> checkpoint;
  nn::Transformer model;
  StudyData data;
  std::string command;

  static StudySetup prepare(StudyOptions o, std::string command) {
    namespace fs = std::filesystem;
    fs::path data_dir;
    try {
      data_dir = io::data_dir(o.data.empty() ? std::nullopt : std::optional<fs::path>(o.data));
    } catch (const Error& e) {
      throw UsageError(std::string("--data: ") + e.what());
    }
    fs::path model = o.model.empty() ? data_dir / "stories260K" / "stories260K.bin" : o.model;
    if (!fs::exists(model)) throw UsageError("--model " + model.string() + ": does not exist");
    prepare_out_dir(o.out);
    if (o.threads > 0) autograd::set_num_threads(o.threads);
    std::shared_ptr<const nn::Checkpoint> ck;
    if (o.streaming) ck = std::make_shared<const nn::Checkpoint>(nn::load_checkpoint(model));
    nn::Transformer m = ck ? nn::Transformer::streaming(ck) : nn::Transformer::load(model);
    const long ood = o.quick ? 8 : 32;
    StudyData d = load_study_data(o, m.config(), model, data_dir, ood);
    for (const auto& l : m.linear_layers())
      if (!o.scheme.fits(l.in_features()))
        throw UsageError("--scheme " + o.scheme.str() + ": layer '" + l.name + "' has only " +
                         std::to_string(l.in_features()) + " input columns, fewer than a group");
    return StudySetup{std::move(o), data_dir, model, std::move(ck), std::move(m), std::move(d), std::move(command)};
  }

  /// Creates --out and checks that it is writable (a probe file written atomically).
  static void prepare_out_dir(const std::filesystem::path& out) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(out / "units", ec);
    if (ec || !fs::is_directory(out / "units"))
      throw UsageError("--out " + out.string() + ": cannot create the folder" + (ec ? " (" + ec.message() + ")" : ""));
    try {
      io::write_file_atomic(out / ".write-probe", "ok\n");
      fs::remove(out / ".write-probe", ec);
    } catch (const Error& e) {
      throw UsageError("--out " + out.string() + ": not writable (" + e.what() + ")");
    }
  }
};

/// FNV-1a 64 over every parameter's length and float32 values, in creation order:
/// a different checkpoint at the same path is a different run.
inline std::string model_fingerprint(const nn::WeightSnapshot& weights) {
  std::uint64_t h = fnv1a64_offset_basis;
  for (const auto& p : weights) {
    const std::uint64_t n = p.size();
    h = fnv1a64_of(p.data(), p.size(), fnv1a64_of(&n, 1, h));
  }
  return hex64(h);
}

/// The same fingerprint of a streaming model, its parameters widened one at a time.
inline std::string model_fingerprint(nn::Transformer& streaming) {
  std::uint64_t h = fnv1a64_offset_basis;
  for (autograd::Parameter* p : streaming.parameters()) {
    streaming.load({p});
    const std::span<const float> v = p->values();
    const std::uint64_t n = v.size();
    h = fnv1a64_of(v.data(), v.size(), fnv1a64_of(&n, 1, h));
    streaming.unload({p});
  }
  return hex64(h);
}

/// FNV-1a 64 over the token ids of every window of every split, in order.
inline std::string data_fingerprint(const StudyData& d) {
  std::uint64_t h = fnv1a64_offset_basis;
  for (const auto* split : {&d.calibration, &d.validation, &d.test, &d.ood}) {
    const std::uint64_t n = split->size();
    h = fnv1a64_of(&n, 1, h);
    for (const auto& w : *split) {
      const std::uint64_t len = w.size();
      h = fnv1a64_of(w.data(), w.size(), fnv1a64_of(&len, 1, h));
    }
  }
  return hex64(h);
}

/// The study's scheme without its bit width ("int:g64:asym"): the units sweep the bits.
inline std::string scheme_family(const QuantSpec& s) {
  const std::string t = s.str();
  if (s.is_nf4()) return t;  // one bit width: nothing to leave out
  const auto colon = t.find(':');
  return colon == std::string::npos ? std::string("int") : "int" + t.substr(colon);
}

/// The run's quantizer as run.json records it. Schemes the study's earlier options
/// could express keep their earlier text, so that those results folders (the
/// committed docs/results runs among them) still resume; any other scheme is
/// recorded by its spelling without the bit width.
inline std::string quantizer_identity(const QuantSpec& s) {
  const bool earlier = s.codes == CodeSet::narrow && s.storage == ScaleStorage::f32 && s.search != SearchKind::weighted;
  if (!earlier) return "scheme " + scheme_family(s);
  const std::string g = s.granularity == ScaleLayout::Kind::tensor    ? "per-tensor"
                        : s.granularity == ScaleLayout::Kind::channel ? "per-channel"
                                                                      : "per-group of " + std::to_string(s.group_size);
  const char* search = s.search == SearchKind::hist        ? "histogram-MSE (PyTorch-compatible)"
                       : s.search == SearchKind::hist_true ? "histogram-MSE (true grid)"
                       : s.search == SearchKind::absmax    ? "abs-max"
                                                           : "MSE shrink (GPTQ)";
  return "symmetric, " + g + ", " + search + " scales";
}

/// The settings a unit's result depends on; a resumed run must match them.
/// `fingerprint`: model_fingerprint of the full-precision model.
inline io::Json run_identity(const StudySetup& s, const std::string& fingerprint) {
  using io::Json;
  const StudyOptions& o = s.options;
  Json j = Json::object();
  j.set("model", Json::string(std::filesystem::absolute(s.model_path).lexically_normal().string()));
  j.set("data", Json::string(s.data.description));
  j.set("quantizer", Json::string(quantizer_identity(o.scheme)));
  j.set("calib", Json::number(static_cast<std::int64_t>(o.calib)));
  j.set("seq_len", Json::number(static_cast<std::int64_t>(o.seq_len)));
  j.set("seed", Json::number_u64(o.seed));
  j.set("damp_grid", detail::numbers(o.damp_grid));
  j.set("qaft_epochs", Json::number(static_cast<std::int64_t>(o.qaft_epochs)));
  // Recorded when not 8, the batch of every run before --qaft-batch: those still resume.
  if (o.qaft_batch != 8) j.set("qaft_batch", Json::number(static_cast<std::int64_t>(o.qaft_batch)));
  j.set("lr_decay", Json::number(o.lr_decay));
  j.set("lr_grid", detail::numbers(o.lr_grid));
  j.set("directions", Json::number(static_cast<std::int64_t>(o.directions)));
  j.set("quick", Json::boolean(o.quick));  // the landscape's probe windows and per-layer profiles
  j.set("ood", Json::string(s.data.ood_description));
  j.set("model_fingerprint", Json::string(fingerprint));
  // Block-by-block units batch their sums differently (the last bits differ), so a
  // folder holds one kind; in-memory runs keep their earlier identity.
  if (o.streaming) j.set("streaming", Json::boolean(true));
  j.set("data_fingerprint", Json::string(data_fingerprint(s.data)));
  j.set("lowbit_version", Json::string(lowbit::version));
  return j;
}

class StudyRunner {
 public:
  /// Not movable: the streamed units' stop check refers to this runner.
  StudyRunner(StudyRunner&&) = delete;
  StudyRunner& operator=(StudyRunner&&) = delete;

  StudyRunner(StudySetup& setup, const std::atomic<bool>* stop = nullptr, FILE* log = stderr)
      : s_(setup), o_(setup.options), grid_(o_.scheme.is_nf4() ? "nf" : "int"), model_(setup.model), stop_(stop), log_(log),
        fp_(model_.is_streaming() ? nn::WeightSnapshot{} : model_.snapshot()),
        fp_linear_(model_.is_streaming() ? std::vector<std::vector<float>>{} : linear_weights(model_)),
        store_(o_.out, run_identity(setup, model_.is_streaming() ? model_fingerprint(model_) : model_fingerprint(fp_)), log) {
    if (model_.is_streaming())
      streamed_.emplace(setup.checkpoint, setup.data, o_, [this] { check_stop(); }, log_);
  }

  StudyResults run() {
    check_lr_keys();
    store_.lock();
    store_.check_run_file();
    StudyResults r;
    r.model = s_.model_path.filename().string() + " (" + std::to_string(model_.config().layers) + " layers, d=" +
              std::to_string(model_.config().dim) + ")";
    r.data = s_.data.description;
    r.ood_data = s_.data.ood_description;
    r.grid = grid_;
    r.parameters = static_cast<long>(model_.parameter_count());
    for (const auto& l : model_.linear_layers()) r.quantized_parameters += static_cast<long>(l.weight->numel());
    r.fp_weight_bytes = 4.0 * static_cast<double>(r.parameters);
    log("lowbit-study: %s, %zu quantizable layers (%ld of %ld parameters); %s", r.model.c_str(),
        model_.linear_layers().size(), r.quantized_parameters, r.parameters,
        ("scheme " + scheme_family(o_.scheme) + " (" + o_.scheme.describe().substr(5) + ")").c_str());
    log("data: %s", r.data.c_str());

    const UnitResult fp = cached_or("fp", [&] { return full_precision(); });
    r.fp_test_nll = fp.test_nll;
    r.fp_val_nll = fp.val_nll;
    r.fp_ood_nll = fp.ood_nll;
    log("full precision: test NLL %.5f (PPL %.3f), validation %.5f", fp.test_nll, std::exp(fp.test_nll), fp.val_nll);

    for (const int bits : o_.bits)
      for (const Method m : o_.methods) {
        const QuantSpec q = o_.scheme.with_bits(bits);
        UnitResult u;
        if (m == Method::rtn) u = cached_or(key("rtn", bits), [&] { return rtn(q); });
        if (m == Method::gptq) u = cached_or(key("gptq", bits), [&] { return gptq(q); });
        if (m == Method::qaft) u = qaft(q);
        log("%-5s %s: test NLL %.5f (PPL %.3f)%s", u.method.c_str(), label(bits).c_str(), u.test_nll, u.test_ppl(),
            m == Method::qaft ? (", learning rate " + detail::num(u.learning_rate, 3)).c_str() : "");
        r.units.push_back(std::move(u));
      }
    if (!streamed_) model_.restore(fp_);
    if (o_.landscape) landscape(r);
    io::write_file_atomic(o_.out / "results.json", to_json(r).dump() + "\n");
    write_report(r, o_.out, s_.command);
    log("wrote %s (results.json, report.md, CSVs, SVG figures)", o_.out.string().c_str());
    return r;
  }

 private:
  using clock = std::chrono::steady_clock;

  /// "int4" or "nf4" (StudyResults::label); unit keys and logs use it.
  [[nodiscard]] std::string label(int bits) const { return grid_ + std::to_string(bits); }
  [[nodiscard]] std::string key(const std::string& method, int bits) const { return method + "-" + label(bits); }

  template <class... A>
  void log(const char* fmt, A... a) {
    if (!log_) return;
    std::fprintf(log_, fmt, a...);
    std::fputc('\n', log_);
    std::fflush(log_);
  }

  void check_stop() const {
    if (stop_ && stop_->load()) throw Interrupted("interrupted: finished units are kept in " + o_.out.string());
  }

  /// The unit `k` from its checkpoint, or computed by f() and checkpointed.
  template <class F>
  UnitResult cached_or(const std::string& k, F&& f, const io::Json* inputs = nullptr) {
    if (auto u = store_.reuse(k, inputs)) {
      if (streamed_) streamed_->discard(k);  // a work folder left by a kill after the store
      return std::move(*u);
    }
    check_stop();
    const auto t0 = clock::now();
    UnitResult u = f();
    u.seconds["total"] = std::chrono::duration<double>(clock::now() - t0).count();
    store_.store(k, u, inputs);
    if (streamed_) streamed_->discard(k);  // only now: until the store, the blocks are the unit
    return u;
  }

  double nll(const std::vector<std::span<const int>>& windows, const char* what) {
    if (windows.empty()) return nan_value;
    Progress p(std::string("  eval ") + what, static_cast<long>(windows.size()), "win", log_ ? log_ : stderr, 30.0,
               /*lines_when_piped=*/false);
    nn::Evaluator ev(model_);
    const auto t = ev.evaluate(windows, {}, [&](std::size_t done, std::size_t) {
      p.update(static_cast<long>(done));
      check_stop();
    });
    return t.mean_nll();
  }

  /// Test, validation and out-of-domain NLL of the model as it is now.
  void evaluate_into(UnitResult& u) {
    const auto t0 = clock::now();
    u.test_nll = nll(s_.data.test, "test");
    u.val_nll = nll(s_.data.validation, "validation");
    u.ood_nll = nll(s_.data.ood, "out-of-domain");
    u.seconds["evaluate"] = std::chrono::duration<double>(clock::now() - t0).count();
  }

  UnitResult full_precision() {
    UnitResult u;
    u.method = "fp";
    u.bits = 8;  // placeholder; fp is stored separately in StudyResults
    if (streamed_) {
      streamed_->evaluate_fp(u);
      return u;
    }
    model_.restore(fp_);
    evaluate_into(u);
    return u;
  }

  /// Per-layer output MSE on test inputs (X from the full-precision model), ‖ΔW‖² and
  /// the whole-stack distance of the model's current (quantized) weights from fp.
  void weight_metrics(UnitResult& u, const std::map<std::string, double>& damp = {}) {
    if (test_hessians_.empty()) {
      const auto t0 = clock::now();
      const auto cur = model_.snapshot();
      model_.restore(fp_);
      test_hessians_ = nn::layer_hessians(model_, s_.data.test);
      model_.restore(cur);
      u.seconds["test_hessians"] = std::chrono::duration<double>(clock::now() - t0).count();
    }
    const auto& fp_linear = fp_linear_;
    double total = 0;
    u.layers.clear();
    for (std::size_t i = 0; i < model_.linear_layers().size(); ++i) {
      const auto& l = model_.linear_layers()[i];
      const Index rows = l.out_features(), cols = l.in_features();
      Eigen::MatrixXf delta(rows, cols);
      for (Index r = 0; r < rows; ++r)
        for (Index c = 0; c < cols; ++c)
          delta(r, c) = l.weight->data()[r * cols + c] - fp_linear[i][static_cast<std::size_t>(r * cols + c)];
      LayerResult lr;
      lr.name = l.name;
      lr.weight_sq_error = static_cast<double>(delta.cast<double>().squaredNorm());
      const Eigen::MatrixXd dh = delta.cast<double>() * test_hessians_[i].matrix.cast<double>();
      const double objective = (dh.array() * delta.cast<double>().array()).sum();
      lr.output_mse = test_hessians_[i].output_mse(objective, rows);
      if (const auto it = damp.find(l.name); it != damp.end()) lr.damp = it->second;
      total += lr.weight_sq_error;
      u.layers.push_back(std::move(lr));
    }
    u.weight_distance = std::sqrt(total);
    u.weight_bytes = model_bytes(u.bits);
  }

  /// Packed codes + one scale per slice (and zero points) for the quantized layers at
  /// `bits`, fp32 for the rest.
  [[nodiscard]] double model_bytes(int bits) const {
    double bytes = 4.0 * static_cast<double>(model_.parameter_count());
    const QuantSpec q = o_.scheme.with_bits(bits);
    for (const auto& l : model_.linear_layers()) {
      const Index rows = l.out_features(), cols = l.in_features();
      const auto scales = static_cast<double>(q.layout(rows, cols, l.name).num_scales());
      const double scale_bytes = q.storage == ScaleStorage::f32 ? 4.0 : 2.0;
      const double zero_bytes = q.codes == CodeSet::asym ? std::ceil(scales * bits / 8.0) : 0.0;
      bytes += -4.0 * static_cast<double>(rows * cols) +
               static_cast<double>(rows * packed_bytes(cols, bits)) + scale_bytes * scales + zero_bytes;
    }
    return bytes;
  }

  /// A unit of a streaming model (study/streamed_units.hpp).
  UnitResult streamed(const std::string& method, const QuantSpec& q) {
    UnitResult u;
    u.method = method;
    u.bits = q.bits;
    streamed_->quantize(u, q, key(method, q.bits));
    u.weight_bytes = model_bytes(q.bits);
    return u;
  }

  /// The registered layers' weights, in registry order (taken once, from the fp model).
  static std::vector<std::vector<float>> linear_weights(const nn::Transformer& m) {
    std::vector<std::vector<float>> out;
    for (const auto& l : m.linear_layers()) out.emplace_back(l.weight->values().begin(), l.weight->values().end());
    return out;
  }

  /// Saves the model's current quantizable weights (for the landscape) and, with
  /// --save, the packed model.
  void save_weights(const std::string& k, const std::vector<QuantizedTensor>& packed, const std::string& method) {
    namespace fs = std::filesystem;
    if (o_.landscape) {
      fs::create_directories(o_.out / "weights");
      io::SafetensorsWriter w;
      for (const auto& l : model_.linear_layers())
        w.add_f32(l.name, {l.out_features(), l.in_features()}, l.weight->values());
      w.write(o_.out / "weights" / (k + ".safetensors"));
    }
    if (o_.save && !packed.empty()) {
      fs::create_directories(o_.out / "models");
      io::SafetensorsWriter w;
      std::size_t i = 0;
      for (auto* p : model_.parameters()) {
        bool is_linear = false;
        for (const auto& l : model_.linear_layers()) is_linear = is_linear || l.weight == p;
        if (is_linear) {
          io::add_quantized(w, p->name(), pack(packed[i++]), method);
        } else {
          const auto& sh = p->shape();
          w.add_f32(p->name(), std::vector<std::int64_t>(sh.dims.begin(), sh.dims.begin() + sh.ndim), p->values());
        }
      }
      w.write(o_.out / "models" / (k + ".safetensors"));
    }
  }

  bool load_weights(const std::string& k) {
    const auto path = o_.out / "weights" / (k + ".safetensors");
    if (!std::filesystem::exists(path)) return false;
    const auto f = io::SafetensorsFile::open(path);
    for (const auto& l : model_.linear_layers()) {
      const auto v = f.to_float(l.name);
      lowbit::detail::check(static_cast<Index>(v.size()) == l.weight->numel(), path.string(), ": tensor '", l.name,
                            "' has the wrong size");
      std::copy(v.begin(), v.end(), l.weight->data());
    }
    return true;
  }

  /// Q(W) into every registered layer — RTN, and QAFT's final weights — and, with
  /// --save, their integer codes.
  template <class Quant>
  void round_layers(const Quant& quantizer, std::vector<QuantizedTensor>& packed) {
    for (const auto& l : model_.linear_layers()) {
      if (o_.save) packed.push_back(quantizer.quantize(l.weight->matrix(), l.name));
      quantizer.fake_quantize_in_place(l.weight->matrix(), l.name);
    }
  }

  UnitResult rtn(const QuantSpec& q) {
    if (streamed_) return streamed("rtn", q);
    UnitResult u;
    u.method = "rtn";
    u.bits = q.bits;
    model_.restore(fp_);
    const auto t0 = clock::now();
    std::vector<QuantizedTensor> packed;
    round_layers(SpecQuantizer(q), packed);
    u.seconds["quantize"] = std::chrono::duration<double>(clock::now() - t0).count();
    finish_unit(u, key("rtn", q.bits), packed);
    return u;
  }

  UnitResult gptq(const QuantSpec& q) {
    if (streamed_) return streamed("gptq", q);
    UnitResult u;
    u.method = "gptq";
    u.bits = q.bits;
    model_.restore(fp_);
    const auto t0 = clock::now();
    std::map<std::string, double> damp;
    std::vector<QuantizedTensor> packed;
    Progress p("  gptq " + label(q.bits), static_cast<long>(model_.linear_layers().size()), "layer",
               log_ ? log_ : stderr, 30.0);
    {
      const SpecGptq<> solver(q);
      nn::quantize_with_calibration(
          model_, s_.data.calibration,
          [&](const nn::LinearLayer& l, const Hessian& h) {
            check_stop();
            const DampSearchResult best =
                damp_search(solver, l.weight->matrix(), h, std::span<const double>(o_.damp_grid), l.name);
            const SolveResult& res = best.best_result;
            std::copy(res.weights.data(), res.weights.data() + res.weights.size(), l.weight->data());
            damp[l.name] = best.curve[best.best].used_percdamp;
            if (!res.retries.empty())
              u.notes.push_back(l.name + ": damping " + detail::num(res.retries.front().percdamp, 3) + " failed (" +
                                res.retries.front().reason + "), retried up to " + detail::num(res.percdamp, 3));
            if (o_.save) packed.push_back(QuantizedTensor{res.params, res.codes});
          },
          {}, [&](std::size_t done, std::size_t) { p.update(static_cast<long>(done)); });
    }
    p.finish();
    u.seconds["quantize"] = std::chrono::duration<double>(clock::now() - t0).count();
    finish_unit(u, key("gptq", q.bits), packed, damp);
    return u;
  }

  void finish_unit(UnitResult& u, const std::string& k, const std::vector<QuantizedTensor>& packed,
                   const std::map<std::string, double>& damp = {}) {
    evaluate_into(u);
    weight_metrics(u, damp);
    save_weights(k, packed, u.method);
  }

  /// Each learning rate is its own unit, named with one significant digit: two
  /// rates that share a name (1e-4 and 1.4e-4) would share a unit, so refuse them.
  void check_lr_keys() const {
    std::map<std::string, double> seen;
    for (const double lr : o_.lr_grid) {
      const auto [it, fresh] = seen.emplace(lr_key(2, lr), lr);
      if (!fresh)
        throw UsageError("--lr-grid: rates " + detail::num(it->second, 6) + " and " + detail::num(lr, 6) +
                         " share the unit name " + it->first.substr(10) +
                         "; use rates that differ in their first significant digit");
    }
  }

  [[nodiscard]] std::string lr_key(int bits, double lr) const {
    char b[64];
    std::snprintf(b, sizeof b, "qaft-%s-lr%.0e", label(bits).c_str(), lr);
    return b;
  }

  /// One QAFT run per learning rate (each its own unit), then the best on validation.
  UnitResult qaft(const QuantSpec& q) {
    const std::string final_key = key("qaft", q.bits);
    if (auto done = store_.reuse(final_key)) return std::move(*done);
    std::vector<UnitResult> runs;
    for (const double lr : o_.lr_grid) {
      runs.push_back(cached_or(lr_key(q.bits, lr), [&] { return qaft_run(q, lr); }));
      if (runs.back().learning_rate != lr)
        throw UsageError(store_.path(lr_key(q.bits, lr)).string() + ": records learning rate " +
                         detail::num(runs.back().learning_rate, 6) + ", not " + detail::num(lr, 6) +
                         "; delete it to recompute");
    }
    std::size_t best = 0;
    for (std::size_t i = 1; i < runs.size(); ++i)
      if (runs[i].val_nll < runs[best].val_nll) best = i;
    UnitResult u = runs[best];
    u.lr_curve.clear();
    for (const auto& r : runs) u.lr_curve.emplace_back(r.learning_rate, r.val_nll);
    // The chosen run's weights and packed model are the unit's.
    for (const char* folder : {"weights", "models"}) {
      namespace fs = std::filesystem;
      const auto from = o_.out / folder / (lr_key(q.bits, u.learning_rate) + ".safetensors");
      if (fs::exists(from))
        fs::copy_file(from, o_.out / folder / (final_key + ".safetensors"), fs::copy_options::overwrite_existing);
    }
    store_.store(final_key, u);
    return u;
  }

  UnitResult qaft_run(const QuantSpec& q, double lr) {
    UnitResult u;
    u.method = "qaft";
    u.bits = q.bits;
    u.learning_rate = lr;
    model_.restore(fp_);
    log("  qaft %s, learning rate %g: %ld epoch(s) over %zu sequences", label(q.bits).c_str(), lr, o_.qaft_epochs,
        s_.data.calibration.size());
    std::vector<QuantizedTensor> packed;
    {
      const SpecQuantizer quantizer(q);
      QaftOptions opt;
      opt.lr = lr;
      opt.epochs = o_.qaft_epochs;
      opt.batch = o_.qaft_batch;
      opt.lr_decay = o_.lr_decay;
      opt.seed = o_.seed;
      const auto t0 = clock::now();
      qaft_train(model_, s_.data.calibration, quantizer, opt, [&](long epoch, double loss) {
        with_quantized_weights(model_, quantizer, [&] {
          u.epoch_val_nll.push_back(nll(s_.data.validation, "validation"));
          u.epoch_test_nll.push_back(nll(s_.data.test, "test"));
        });
        log("    epoch %ld: train loss %.5f, quantized validation NLL %.5f, test NLL %.5f", epoch + 1, loss,
            u.epoch_val_nll.back(), u.epoch_test_nll.back());
        check_stop();
      });
      u.seconds["train"] = std::chrono::duration<double>(clock::now() - t0).count();
      round_layers(quantizer, packed);
    }
    finish_unit(u, lr_key(q.bits, lr), packed);
    return u;
  }

  /// Radial profiles along random directions from w (Figure 3), the basin radius,
  /// and straight segments from w to each method's weights.
  void landscape(StudyResults& r) {
    const io::Json inputs = landscape_inputs(r);
    const UnitResult cached = with_profiles("landscape", r.profiles, inputs, [&] { return landscape_unit(r); });
    r.basin_radius = cached.weight_distance;  // the landscape unit keeps mean R(w) there
    if (!o_.quick)  // per layer: beyond the study, and ~layers × 12 evaluations
      (void)with_profiles("landscape-layers", r.layer_profiles, inputs, [&] { return layer_landscape_unit(r); });
  }

  /// What the landscape is drawn from: the units of this run and whether each
  /// one's weights are on disk (radii come from the RTN units, segments from the
  /// weights). A rerun with more bit widths, or whose units gained weights, draws
  /// the landscape again instead of reusing one that lacks them.
  io::Json landscape_inputs(const StudyResults& r) const {
    io::Json a = io::Json::array();
    for (const auto& u : r.units) {
      io::Json e = io::Json::object();
      e.set("unit", io::Json::string(u.key()));
      e.set("weights", io::Json::boolean(std::filesystem::exists(o_.out / "weights" / (u.key() + ".safetensors"))));
      a.push_back(std::move(e));
    }
    return a;
  }

  /// A landscape unit and the profiles checkpointed beside it (units/<k>-profiles.json,
  /// written before the unit): unreadable profiles make the unit count as corrupt,
  /// so it is set aside and computed again.
  template <class F>
  UnitResult with_profiles(const std::string& k, std::vector<Profile>& profiles, const io::Json& inputs, F&& f) {
    const auto side = o_.out / "units" / (k + "-profiles.json");
    UnitResult u = cached_or(k, f, &inputs);
    try {
      profiles = read_profiles(side);
      return u;
    } catch (const Error& e) {
      log("warning: %s is unreadable (%s); computing the %s unit again", side.string().c_str(), e.what(), k.c_str());
    }
    std::error_code ec;
    std::filesystem::rename(store_.path(k), std::filesystem::path(store_.path(k)) += ".corrupt", ec);
    u = cached_or(k, f, &inputs);
    profiles = read_profiles(side);
    return u;
  }

  /// Profiles checkpointed beside a landscape unit.
  static std::vector<Profile> read_profiles(const std::filesystem::path& path) {
    std::vector<Profile> out;
    lowbit::detail::check(std::filesystem::exists(path), path.string(), ": is missing");
    const io::Json j = io::Json::parse(io::read_file(path), path.string());
    for (const auto& e : j.at("profiles").items()) {
      Profile p;
      p.label = e.at("label").as_string();
      p.t = detail::read_numbers(e, "t", path.string());
      p.nll = detail::read_numbers(e, "nll", path.string());
      p.basin_radius = detail::read_number(e, "basin_radius", path.string());
      out.push_back(std::move(p));
    }
    return out;
  }

  std::vector<std::span<const int>> landscape_probe() const {
    const long n = std::min<long>(o_.quick ? 8 : 32, static_cast<long>(s_.data.validation.size()));
    return {s_.data.validation.begin(), s_.data.validation.begin() + n};
  }

  /// One layer at a time: a random unit direction inside that layer's weight, radii up
  /// to 1.5 × the largest ‖W_RTN − W‖ of that layer in this run, and its basin radius.
  UnitResult layer_landscape_unit(const StudyResults& r) {
    model_.restore(fp_);
    const auto probe = landscape_probe();
    const auto loss = [&] {
      check_stop();
      return nn::evaluate(model_, probe).mean_nll();
    };
    const std::vector<double> fractions = {0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0};
    StudyResults tmp;
    Progress p("  layer landscape", static_cast<long>(model_.linear_layers().size()), "layer", log_ ? log_ : stderr,
               30.0);
    std::uint64_t k = 0;
    for (const auto& l : model_.linear_layers()) {
      double r_max = 0;
      for (const auto& u : r.units)
        if (u.method == "rtn")
          for (const auto& lr : u.layers)
            if (lr.name == l.name) r_max = std::max(r_max, std::sqrt(lr.weight_sq_error));
      if (!(r_max > 0)) continue;
      ParameterSet set;
      set.add(l.weight->values());
      const std::vector<float> base = set.snapshot();
      std::vector<double> radii;
      for (double f : fractions) radii.push_back(1.5 * r_max * f);
      Profile pr;
      pr.label = "layer " + l.name;
      pr.t = radii;
      pr.nll = profile(set, base, random_unit_direction(set.size(), o_.seed * 7919 + 100 + k++), radii, loss);
      pr.basin_radius = basin_radius(radii, pr.nll).radius;
      tmp.profiles.push_back(std::move(pr));
      p.advance();
    }
    p.finish();
    io::write_file_atomic(o_.out / "units" / "landscape-layers-profiles.json", to_json(tmp).dump() + "\n");
    UnitResult u;
    u.method = "landscape-layers";
    u.bits = 8;
    return u;
  }

  /// A segment that cannot be drawn: the unit was computed without --landscape,
  /// so its weights were not kept. Said on the log and in the report's notes.
  void missing_weights(const std::string& unit, std::vector<std::string>& notes) {
    notes.push_back("no segment w -> " + unit + ": weights/" + unit +
                    ".safetensors is missing (the unit was computed without --landscape; delete units/" + unit +
                    ".json to recompute it with its weights)");
    log("warning: %s", notes.back().c_str());
  }

  UnitResult landscape_unit(const StudyResults& r) {
    std::vector<std::string> notes;
    model_.restore(fp_);
    ParameterSet set;
    for (const auto& l : model_.linear_layers()) set.add(l.weight->values());
    const std::vector<float> base = set.snapshot();
    const auto probe = landscape_probe();
    const auto loss = [&] {
      check_stop();
      return nn::evaluate(model_, probe).mean_nll();
    };
    double r_max = 0;
    for (const auto& u : r.units)
      if (u.method == "rtn") r_max = std::max(r_max, u.weight_distance);
    if (!(r_max > 0)) r_max = 0.1 * std::sqrt(static_cast<double>(set.size())) * 0.02;  // no RTN unit: a guess
    r_max *= 1.5;
    const std::vector<double> fractions = {0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0};
    std::vector<double> radii;
    for (double f : fractions) radii.push_back(f * r_max);
    StudyResults tmp;
    double radius_sum = 0;
    int radius_count = 0;
    Progress p("  landscape", o_.directions, "dir", log_ ? log_ : stderr, 30.0);
    for (long k = 0; k < o_.directions; ++k) {
      const auto dir = random_unit_direction(set.size(), o_.seed * 1000 + static_cast<std::uint64_t>(k) + 1);
      Profile pr;
      pr.label = "random " + std::to_string(k);
      pr.t = radii;
      pr.nll = profile(set, base, dir, radii, loss);
      const BasinEstimate b = basin_radius(radii, pr.nll);
      pr.basin_radius = b.radius;
      if (std::isfinite(b.radius)) radius_sum += b.radius, ++radius_count;
      tmp.profiles.push_back(std::move(pr));
      p.advance();
    }
    p.finish();
    // Segments w → w_method (t = fraction of the way, x axis in distance units).
    const std::vector<double> ts = {0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0};
    for (const auto& u : r.units) {
      model_.restore(fp_);
      if (!load_weights(key(u.method, u.bits))) {
        missing_weights(u.key(), notes);
        continue;
      }
      const std::vector<float> target = set.snapshot();
      model_.restore(fp_);
      const double dist = distance(base, target);
      Profile pr;
      pr.label = "w -> w_" + u.method + " (int" + std::to_string(u.bits) + ")";
      for (double t : ts) pr.t.push_back(t * dist);
      pr.nll = profile(set, base, difference(base, target), ts, loss);
      tmp.profiles.push_back(std::move(pr));
    }
    // Segments w_GPTQ → w_QAFT: is there a barrier between the two solutions?
    for (const int bits : o_.bits) {
      model_.restore(fp_);
      if (!load_weights(key("gptq", bits))) continue;
      const std::vector<float> from = set.snapshot();
      if (!load_weights(key("qaft", bits))) continue;
      const std::vector<float> to = set.snapshot();
      const double dist = distance(from, to);
      Profile pr;
      pr.label = "w_gptq -> w_qaft (" + label(bits) + ")";
      for (double t : ts) pr.t.push_back(t * dist);
      pr.nll = profile(set, from, difference(from, to), ts, loss);
      tmp.profiles.push_back(std::move(pr));
    }
    model_.restore(fp_);
    io::Json j = to_json(tmp);
    io::write_file_atomic(o_.out / "units" / "landscape-profiles.json", j.dump() + "\n");
    UnitResult u;
    u.method = "landscape";
    u.bits = 8;
    u.weight_distance = radius_count > 0 ? radius_sum / radius_count : nan_value;
    u.notes = std::move(notes);
    if (radius_count < o_.directions)
      u.notes.push_back(std::to_string(o_.directions - radius_count) +
                        " radial profile(s) stayed quadratic up to the largest radius probed");
    return u;
  }

  StudySetup& s_;
  const StudyOptions& o_;
  std::string grid_;  ///< StudyResults::grid of this run's scheme
  nn::Transformer& model_;
  const std::atomic<bool>* stop_;
  FILE* log_;
  nn::WeightSnapshot fp_;
  std::vector<std::vector<float>> fp_linear_;  ///< fp_ of the registered layers only
  std::vector<Hessian> test_hessians_;
  UnitStore store_;
  std::optional<StreamedUnits> streamed_;  ///< --streaming
};

}  // namespace lowbit::study
