// The loss landscape as study units (the paper's Figure 3 and beyond), drawn after
// every quantized unit: "landscape" — radial profiles of the global NLL along random
// unit directions from w, the mean basin radius R(w), and straight segments from w to
// each unit's weights and from w_GPTQ to w_QAFT; "landscape-layers" (not with
// --quick) — one random direction inside each layer. The probes themselves are
// analysis/landscape.hpp's.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "lowbit/analysis/landscape.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/quant/spec_quantizer.hpp"
#include "lowbit/study/metrics.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/results_json.hpp"
#include "lowbit/study/unit_context.hpp"

namespace lowbit::study {

struct LandscapeUnits {
  /// Fills r.profiles, r.basin_radius and (not --quick) r.layer_profiles.
  void run(UnitContext& c, StudyResults& r) const {
    const ProbeScale scale = probe_scale_kept(c);
    const io::Json inputs = drawn_from(c, r, scale);
    const UnitResult u = with_profiles(c, "landscape", r.profiles, inputs, [&] { return whole_stack(c, r, scale); });
    r.basin_radius = u.basin_radius;
    if (!c.options.quick) {  // per layer: beyond the study, and ~layers × 12 evaluations
      io::Json layer_inputs = io::Json::object();  // the model's probes alone: no unit is drawn
      layer_inputs.set("probe_scale", io::Json::number(scale.whole));
      (void)with_profiles(c, "landscape-layers", r.layer_profiles, layer_inputs, [&] { return per_layer(c, scale); });
    }
  }

  /// How far the probes reach: ‖Q(W) − W‖ of round-to-nearest in the study's default
  /// scheme (per-tensor histogram-MSE) at 2 bits, over all quantizable layers and per
  /// layer. A property of the model alone — not of the run's scheme or widths — so
  /// that every run of one model probes the same radii and its R(w) compares across
  /// schemes: the basin radius is read off a quadratic fitted to the first radii, and
  /// radii scaled by each run's own ‖Δw_RTN‖ (7.3 for q4_0, 92.6 per-tensor on
  /// stories260K) gave one model radii 4× apart. For the default scheme's 8…2-bit
  /// runs this is the largest RTN distance, the scale those runs always used.
  struct ProbeScale {
    double whole = 0;
    std::vector<double> layer;  // in model.linear_layers() order
  };
  static ProbeScale probe_scale(UnitContext& c) {
    c.restore_fp();
    const SpecQuantizer q(default_study_scheme().with_bits(2));
    ProbeScale s;
    double total = 0;
    for (const auto& l : c.model.linear_layers()) {
      const Index rows = l.out_features(), cols = l.in_features();
      std::vector<float> wq(static_cast<std::size_t>(rows * cols));
      q.fake_quantize(l.weight->matrix(), MatrixView(wq.data(), rows, cols), l.name);
      // Summed as the RTN units' ‖ΔW‖² are, so that the default scheme's runs keep the
      // radii their RTN distance gave them, to the bit.
      const double d2 = squared_norm(weight_difference(l.weight->data(), wq.data(), rows, cols));
      s.layer.push_back(std::sqrt(d2));
      total += d2;
    }
    s.whole = std::sqrt(total);
    return s;
  }

 private:
  /// probe_scale, kept in units/probe-scale.json (with the run's identity, which the
  /// unit store checks like a unit's): a resumed run reuses it instead of quantizing
  /// every layer again. %.17g round-trips, so the radii are the same to the bit.
  static ProbeScale probe_scale_kept(UnitContext& c) {
    const auto file = c.options.out / "units" / "probe-scale.json";
    if (std::filesystem::exists(file)) {
      try {
        const io::Json j = io::Json::parse(io::read_file(file), file.string());
        ProbeScale s;
        s.whole = j.at("whole").as_double();
        for (const auto& v : j.at("layers").items()) s.layer.push_back(v.as_double());
        const bool usable = j.at("run").dump() == c.store.run().dump() && std::isfinite(s.whole) && s.whole > 0 &&
                            s.layer.size() == c.model.linear_layers().size() &&
                            std::all_of(s.layer.begin(), s.layer.end(), [](double v) { return std::isfinite(v) && v >= 0; });
        if (usable) {
          c.log("probe scale: kept in %s (%.6g)", file.string().c_str(), s.whole);
          return s;
        }
        c.log("warning: %s is not this run's or this model's probe scale; computing it again", file.string().c_str());
      } catch (const Error& e) {
        c.log("warning: %s is unreadable (%s); computing it again", file.string().c_str(), e.what());
      }
    }
    const ProbeScale s = probe_scale(c);
    io::Json j = io::Json::object(), layers = io::Json::array();
    for (const double v : s.layer) layers.push_back(io::Json::number(v));
    j.set("run", c.store.run());
    j.set("whole", io::Json::number(s.whole));
    j.set("layers", std::move(layers));
    io::write_file_atomic(file, j.dump() + "\n");
    return s;
  }

  /// Radii as fractions of 1.5 × the probe scale.
  static constexpr double fractions[] = {0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0};
  static std::vector<double> radii_up_to(double scale) {
    std::vector<double> radii;
    for (double f : fractions) radii.push_back(1.5 * scale * f);
    return radii;
  }

  /// What the landscape is drawn from: the model's probe scale, the units of this
  /// run and whether each one's weights are on disk (segments come from the
  /// weights). A rerun with more bit widths, or whose units gained weights, draws
  /// the landscape again instead of reusing one that lacks them.
  static io::Json drawn_from(const UnitContext& c, const StudyResults& r, const ProbeScale& scale) {
    io::Json a = io::Json::array();
    for (const auto& u : r.units) {
      io::Json e = io::Json::object();
      e.set("unit", io::Json::string(c.key(u.method, u.bits)));
      e.set("weights", io::Json::boolean(std::filesystem::exists(c.weights_path(c.key(u.method, u.bits)))));
      a.push_back(std::move(e));
    }
    io::Json in = io::Json::object();
    in.set("probe_scale", io::Json::number(scale.whole));
    in.set("units", std::move(a));
    return in;
  }

  /// A landscape unit and the profiles checkpointed beside it (units/<k>-profiles.json,
  /// written before the unit): unreadable profiles make the unit count as corrupt,
  /// so it is set aside and computed again.
  template <class F>
  static UnitResult with_profiles(UnitContext& c, const std::string& k, std::vector<Profile>& profiles,
                                  const io::Json& inputs, F&& f) {
    const auto side = profiles_path(c, k);
    UnitResult u = c.cached_or(k, f, &inputs);
    try {
      profiles = read_profiles(side);
      return u;
    } catch (const Error& e) {
      c.log("warning: %s is unreadable (%s); computing the %s unit again", side.string().c_str(), e.what(), k.c_str());
    }
    std::error_code ec;
    std::filesystem::rename(c.store.path(k), std::filesystem::path(c.store.path(k)) += ".corrupt", ec);
    u = c.cached_or(k, f, &inputs);
    profiles = read_profiles(side);
    return u;
  }

  static std::filesystem::path profiles_path(const UnitContext& c, const std::string& k) {
    return c.options.out / "units" / (k + "-profiles.json");
  }

  static std::vector<Profile> read_profiles(const std::filesystem::path& path) {
    lowbit::detail::check(std::filesystem::exists(path), path.string(), ": is missing");
    const io::Json j = io::Json::parse(io::read_file(path), path.string());
    lowbit::detail::check(j.find("profiles") && j.at("profiles").is_array(), path.string(), ": no 'profiles' array");
    return profiles_from_json(j, "profiles", path.string());
  }

  static void write_profiles(const UnitContext& c, const std::string& k, std::vector<Profile> profiles) {
    StudyResults tmp;
    tmp.profiles = std::move(profiles);
    io::write_file_atomic(profiles_path(c, k), to_json(tmp).dump() + "\n");
  }

  /// The global NLL on the first validation windows (8 with --quick, else 32).
  static auto probe_loss(UnitContext& c) {
    const auto& val = c.setup.data.validation;
    const long n = std::min<long>(c.options.quick ? 8 : 32, static_cast<long>(val.size()));
    return [&c, probe = std::vector<std::span<const int>>(val.begin(), val.begin() + n)] {
      c.check_stop();
      return nn::evaluate(c.model, probe).mean_nll();
    };
  }

  static analysis::ParameterSet linear_weights_of(UnitContext& c) {
    analysis::ParameterSet set;
    for (const auto& l : c.model.linear_layers()) set.add(l.weight->values());
    return set;
  }

  /// A segment that cannot be drawn: the unit was computed without --landscape,
  /// so its weights were not kept. Said on the log and in the report's notes.
  static void missing_weights(UnitContext& c, const std::string& unit, std::vector<std::string>& notes) {
    notes.push_back("no segment w -> " + unit + ": weights/" + unit +
                    ".safetensors is missing (the unit was computed without --landscape; delete units/" + unit +
                    ".json to recompute it with its weights)");
    c.log("warning: %s", notes.back().c_str());
  }

  /// The profile from `from` to `to` at the fractions ts, x axis in distance units.
  static Profile segment(analysis::ParameterSet& set, const std::vector<float>& from, const std::vector<float>& to,
                         std::string label, const auto& loss) {
    static const std::vector<double> ts = {0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0};
    const double dist = analysis::distance(from, to);
    Profile pr;
    pr.label = std::move(label);
    for (double t : ts) pr.t.push_back(t * dist);
    pr.nll = analysis::profile(set, from, analysis::difference(from, to), ts, loss);
    return pr;
  }

  UnitResult whole_stack(UnitContext& c, const StudyResults& r, const ProbeScale& scale) const {
    UnitResult u;
    u.method = "landscape";
    c.restore_fp();
    analysis::ParameterSet set = linear_weights_of(c);
    const std::vector<float> base = set.snapshot();
    const auto loss = probe_loss(c);
    lowbit::detail::check(scale.whole > 0, "landscape: 2-bit round-to-nearest leaves every weight as it is, so there is "
                          "no scale to probe at (are all quantizable weights zero?)");
    const std::vector<double> radii = radii_up_to(scale.whole);
    std::vector<Profile> profiles;
    double radius_sum = 0;
    int radius_count = 0;
    const long directions = c.options.directions;
    Progress p("  landscape", directions, "dir", c.progress_stream(), 30.0);
    for (long k = 0; k < directions; ++k) {
      const auto dir = analysis::random_unit_direction(set.size(), c.options.seed * 1000 + static_cast<std::uint64_t>(k) + 1);
      Profile pr;
      pr.label = random_label(k);
      pr.t = radii;
      pr.nll = analysis::profile(set, base, dir, radii, loss);
      pr.basin_radius = analysis::basin_radius(radii, pr.nll).radius;
      if (std::isfinite(pr.basin_radius)) radius_sum += pr.basin_radius, ++radius_count;
      profiles.push_back(std::move(pr));
      p.advance();
    }
    p.finish();
    // Segments w → w_method.
    for (const auto& x : r.units) {
      c.restore_fp();
      if (!c.load_weights(c.key(x.method, x.bits))) {
        missing_weights(c, c.key(x.method, x.bits), u.notes);
        continue;
      }
      const std::vector<float> target = set.snapshot();
      c.restore_fp();
      profiles.push_back(segment(set, base, target, segment_label(x.method, c.label(x.bits)), loss));
    }
    // Segments w_GPTQ → w_QAFT: is there a barrier between the two solutions?
    for (const int bits : c.options.bits) {
      c.restore_fp();
      if (!c.load_weights(c.key("gptq", bits))) continue;
      const std::vector<float> from = set.snapshot();
      if (!c.load_weights(c.key("qaft", bits))) continue;
      const std::vector<float> to = set.snapshot();
      profiles.push_back(segment(set, from, to, solutions_segment_label(c.label(bits)), loss));
    }
    c.restore_fp();
    write_profiles(c, "landscape", std::move(profiles));
    u.basin_radius = radius_count > 0 ? radius_sum / radius_count : nan_value;
    if (radius_count < directions)
      u.notes.push_back(std::to_string(directions - radius_count) +
                        " radial profile(s) stayed quadratic up to the largest radius probed");
    return u;
  }

  /// One layer at a time: a random unit direction inside that layer's weight, radii up
  /// to 1.5 × that layer's probe scale, and its basin radius.
  UnitResult per_layer(UnitContext& c, const ProbeScale& scale) const {
    c.restore_fp();
    const auto loss = probe_loss(c);
    std::vector<Profile> profiles;
    Progress p("  layer landscape", static_cast<long>(c.model.linear_layers().size()), "layer", c.progress_stream(), 30.0);
    std::uint64_t k = 0;
    std::size_t index = 0;
    for (const auto& l : c.model.linear_layers()) {
      const double r_max = scale.layer[index++];
      if (!(r_max > 0)) continue;
      analysis::ParameterSet set;
      set.add(l.weight->values());
      const std::vector<float> base = set.snapshot();
      const std::vector<double> radii = radii_up_to(r_max);
      Profile pr;
      pr.label = "layer " + l.name;
      pr.t = radii;
      pr.nll = analysis::profile(set, base, analysis::random_unit_direction(set.size(), c.options.seed * 7919 + 100 + k++),
                                 radii, loss);
      pr.basin_radius = analysis::basin_radius(radii, pr.nll).radius;
      profiles.push_back(std::move(pr));
      p.advance();
    }
    p.finish();
    write_profiles(c, "landscape-layers", std::move(profiles));
    UnitResult u;
    u.method = "landscape-layers";
    return u;
  }
};

}  // namespace lowbit::study
