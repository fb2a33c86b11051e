// A study run's identity: the settings every unit's result depends on, and the
// fingerprints of the model and the data — what a resumed run must match (UnitStore).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "lowbit/core/fnv1a.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/quant/spec.hpp"
#include "lowbit/study/data.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/results_json.hpp"
#include "lowbit/study/setup.hpp"
#include "lowbit/version.hpp"

namespace lowbit::study {

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

/// StudyResults::grid of a run of scheme `s`: "int", "nf", or the block format's name.
inline std::string study_grid(const QuantSpec& s) {
  return s.is_block() ? s.str() : s.is_nf4() ? "nf" : "int";
}

/// The study's scheme without its bit width ("int:g64:asym"): the units sweep the bits.
inline std::string scheme_family(const QuantSpec& s) {
  const std::string t = s.str();
  if (s.is_nf4() || s.is_block()) return t;  // one bit width: nothing to leave out
  const auto colon = t.find(':');
  return colon == std::string::npos ? std::string("int") : "int" + t.substr(colon);
}

/// The run's quantizer as run.json records it. Schemes the study's earlier options
/// could express keep their earlier text, so that those results folders (the
/// committed docs/results runs among them) still resume; any other scheme is
/// recorded by its spelling without the bit width.
inline std::string quantizer_identity(const QuantSpec& s) {
  const bool earlier = !s.is_block() && s.codes == CodeSet::narrow && s.storage == ScaleStorage::f32 &&
                       s.search != SearchKind::weighted;
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

}  // namespace lowbit::study
