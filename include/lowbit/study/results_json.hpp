// StudyResults and UnitResult to and from JSON: results.json, and the per-unit
// checkpoints that make a run resumable. NaN (not measured) is written as null.
#pragma once

#include <cmath>
#include <string>

#include "lowbit/io/json.hpp"
#include "lowbit/study/results.hpp"

namespace lowbit::study {

namespace detail {

inline io::Json number_or_null(double v) { return std::isfinite(v) ? io::Json::number(v) : io::Json::null(); }

inline io::Json numbers(const std::vector<double>& v) {
  io::Json a = io::Json::array();
  for (double x : v) a.push_back(number_or_null(x));
  return a;
}

inline double read_number(const io::Json& j, std::string_view key, const std::string& where) {
  const io::Json* v = j.find(key);
  if (!v || v->is_null()) return nan_value;
  lowbit::detail::check(v->is_number(), where, ": '", key, "' is not a number");
  return v->as_double();
}

inline std::vector<double> read_numbers(const io::Json& j, std::string_view key, const std::string& where) {
  std::vector<double> out;
  const io::Json* v = j.find(key);
  if (!v) return out;
  lowbit::detail::check(v->is_array(), where, ": '", key, "' is not an array");
  for (const auto& x : v->items()) out.push_back(x.is_null() ? nan_value : x.as_double());
  return out;
}

inline std::string read_string(const io::Json& j, std::string_view key, const std::string& where) {
  const io::Json* v = j.find(key);
  lowbit::detail::check(v && v->is_string(), where, ": '", key, "' is missing or not a string");
  return v->as_string();
}

}  // namespace detail

inline io::Json to_json(const UnitResult& u) {
  using io::Json;
  using detail::number_or_null;
  Json j = Json::object();
  j.set("method", Json::string(u.method));
  if (UnitResult::has_bits(u.method)) j.set("bits", Json::number(static_cast<std::int64_t>(u.bits)));
  j.set("test_nll", number_or_null(u.test_nll));
  j.set("test_ppl", number_or_null(std::isfinite(u.test_nll) ? u.test_ppl() : nan_value));
  j.set("val_nll", number_or_null(u.val_nll));
  j.set("ood_nll", number_or_null(u.ood_nll));
  j.set("weight_distance", number_or_null(u.weight_distance));
  j.set("weight_bytes", number_or_null(u.weight_bytes));
  j.set("learning_rate", number_or_null(u.learning_rate));
  if (std::isfinite(u.basin_radius)) j.set("basin_radius", number_or_null(u.basin_radius));
  j.set("epoch_test_nll", detail::numbers(u.epoch_test_nll));
  j.set("epoch_val_nll", detail::numbers(u.epoch_val_nll));
  Json curve = Json::array();
  for (const auto& [lr, nll] : u.lr_curve) {
    Json p = Json::array();
    p.push_back(number_or_null(lr));
    p.push_back(number_or_null(nll));
    curve.push_back(std::move(p));
  }
  j.set("lr_curve", std::move(curve));
  Json layers = Json::array();
  for (const auto& l : u.layers) {
    Json e = Json::object();
    e.set("name", Json::string(l.name));
    e.set("output_mse", number_or_null(l.output_mse));
    e.set("weight_sq_error", number_or_null(l.weight_sq_error));
    e.set("damp", number_or_null(l.damp));
    layers.push_back(std::move(e));
  }
  j.set("layers", std::move(layers));
  Json secs = Json::object();
  for (const auto& [k, v] : u.seconds) secs.set(k, number_or_null(v));
  j.set("seconds", std::move(secs));
  Json notes = Json::array();
  for (const auto& n : u.notes) notes.push_back(Json::string(n));
  j.set("notes", std::move(notes));
  return j;
}

/// Reads a unit back; `where` names the file for messages.
inline UnitResult unit_from_json(const io::Json& j, const std::string& where) {
  lowbit::detail::check(j.is_object(), where, ": a unit result must be a JSON object");
  UnitResult u;
  u.method = detail::read_string(j, "method", where);
  if (UnitResult::has_bits(u.method)) {  // files before 2026-12-07 also record 8 for fp and the landscape
    const double bits = detail::read_number(j, "bits", where);
    lowbit::detail::check(bits >= 2 && bits <= 8, where, ": 'bits' must be 2..8");
    u.bits = static_cast<int>(bits);
  }
  u.test_nll = detail::read_number(j, "test_nll", where);
  u.val_nll = detail::read_number(j, "val_nll", where);
  u.ood_nll = detail::read_number(j, "ood_nll", where);
  u.weight_distance = detail::read_number(j, "weight_distance", where);
  u.weight_bytes = detail::read_number(j, "weight_bytes", where);
  u.learning_rate = detail::read_number(j, "learning_rate", where);
  if (j.find("basin_radius")) {
    u.basin_radius = detail::read_number(j, "basin_radius", where);
  } else if (u.method == "landscape") {  // files before 2026-12-07 kept R(w) in weight_distance
    u.basin_radius = u.weight_distance;
    u.weight_distance = nan_value;
  }
  u.epoch_test_nll = detail::read_numbers(j, "epoch_test_nll", where);
  u.epoch_val_nll = detail::read_numbers(j, "epoch_val_nll", where);
  if (const io::Json* c = j.find("lr_curve"); c && c->is_array())
    for (const auto& p : c->items()) {
      lowbit::detail::check(p.is_array() && p.size() == 2, where, ": 'lr_curve' entries must be [rate, nll]");
      u.lr_curve.emplace_back(p[0].is_null() ? nan_value : p[0].as_double(),
                              p[1].is_null() ? nan_value : p[1].as_double());
    }
  if (const io::Json* ls = j.find("layers"); ls && ls->is_array())
    for (const auto& e : ls->items()) {
      LayerResult l;
      l.name = detail::read_string(e, "name", where);
      l.output_mse = detail::read_number(e, "output_mse", where);
      l.weight_sq_error = detail::read_number(e, "weight_sq_error", where);
      l.damp = detail::read_number(e, "damp", where);
      u.layers.push_back(std::move(l));
    }
  if (const io::Json* s = j.find("seconds"); s && s->is_object())
    for (std::size_t i = 0; i < s->keys().size(); ++i)
      u.seconds[s->keys()[i]] = s->value_at(i).is_null() ? nan_value : s->value_at(i).as_double();
  if (const io::Json* n = j.find("notes"); n && n->is_array())
    for (const auto& x : n->items()) u.notes.push_back(x.as_string());
  return u;
}

inline io::Json to_json(const StudyResults& r) {
  using io::Json;
  using detail::number_or_null;
  Json j = Json::object();
  j.set("model", Json::string(r.model));
  j.set("data", Json::string(r.data));
  j.set("ood_data", Json::string(r.ood_data));
  j.set("parameters", Json::number(static_cast<std::int64_t>(r.parameters)));
  j.set("quantized_parameters", Json::number(static_cast<std::int64_t>(r.quantized_parameters)));
  j.set("fp_test_nll", number_or_null(r.fp_test_nll));
  j.set("fp_val_nll", number_or_null(r.fp_val_nll));
  j.set("fp_ood_nll", number_or_null(r.fp_ood_nll));
  j.set("fp_weight_bytes", number_or_null(r.fp_weight_bytes));
  j.set("grid", Json::string(r.grid));
  if (!r.notes.empty()) {
    Json notes = Json::array();
    for (const auto& n : r.notes) notes.push_back(Json::string(n));
    j.set("notes", std::move(notes));
  }
  j.set("basin_radius", number_or_null(r.basin_radius));
  Json units = Json::array();
  for (const auto& u : r.units) units.push_back(to_json(u));
  j.set("units", std::move(units));
  const auto profiles = [](const std::vector<Profile>& ps) {
    Json a = Json::array();
    for (const auto& p : ps) {
      Json e = Json::object();
      e.set("label", Json::string(p.label));
      e.set("t", detail::numbers(p.t));
      e.set("nll", detail::numbers(p.nll));
      e.set("basin_radius", number_or_null(p.basin_radius));
      a.push_back(std::move(e));
    }
    return a;
  };
  j.set("profiles", profiles(r.profiles));
  j.set("layer_profiles", profiles(r.layer_profiles));
  return j;
}

/// The profiles a results object (or a landscape unit's profiles file) holds under
/// `key`; none when the key is absent.
inline std::vector<Profile> profiles_from_json(const io::Json& j, std::string_view key, const std::string& where) {
  std::vector<Profile> out;
  if (const io::Json* a = j.find(key); a && a->is_array())
    for (const auto& e : a->items()) {
      Profile p;
      p.label = detail::read_string(e, "label", where);
      p.t = detail::read_numbers(e, "t", where);
      p.nll = detail::read_numbers(e, "nll", where);
      p.basin_radius = detail::read_number(e, "basin_radius", where);
      out.push_back(std::move(p));
    }
  return out;
}

/// Reads results.json back (lowbit-study --compare); `where` names the file. A run
/// written before results.json recorded its grid reads as "int" (read_compared_run
/// then takes the grid from run.json).
inline StudyResults results_from_json(const io::Json& j, const std::string& where) {
  lowbit::detail::check(j.is_object(), where, ": results must be a JSON object");
  StudyResults r;
  r.model = detail::read_string(j, "model", where);
  r.data = detail::read_string(j, "data", where);
  if (j.find("ood_data")) r.ood_data = detail::read_string(j, "ood_data", where);
  r.parameters = static_cast<long>(detail::read_number(j, "parameters", where));
  r.quantized_parameters = static_cast<long>(detail::read_number(j, "quantized_parameters", where));
  r.fp_test_nll = detail::read_number(j, "fp_test_nll", where);
  r.fp_val_nll = detail::read_number(j, "fp_val_nll", where);
  r.fp_ood_nll = detail::read_number(j, "fp_ood_nll", where);
  r.fp_weight_bytes = detail::read_number(j, "fp_weight_bytes", where);
  r.basin_radius = detail::read_number(j, "basin_radius", where);
  if (j.find("grid")) r.grid = detail::read_string(j, "grid", where);
  if (const io::Json* n = j.find("notes"); n && n->is_array())
    for (const auto& x : n->items()) r.notes.push_back(x.as_string());
  const io::Json* units = j.find("units");
  lowbit::detail::check(units && units->is_array(), where, ": 'units' is missing or not an array");
  for (const auto& u : units->items()) r.units.push_back(unit_from_json(u, where));
  r.profiles = profiles_from_json(j, "profiles", where);
  r.layer_profiles = profiles_from_json(j, "layer_profiles", where);
  return r;
}

}  // namespace lowbit::study
