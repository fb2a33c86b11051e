// lowbit-study's driver: full precision, then RTN, GPTQ and QAFT at each bit width,
// the loss landscape, results.json and the report. Each kind of unit is its own
// header (study/units/); every finished unit (fp, each method × bits, each QAFT
// learning rate, the landscape) is written to --out/units/<key>.json at once
// (atomically) and reused on restart, so an interrupted run loses at most the unit in
// progress.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "lowbit/io/file.hpp"
#include "lowbit/study/report.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/heldout.hpp"
#include "lowbit/study/results_json.hpp"
#include "lowbit/study/setup.hpp"
#include "lowbit/study/unit_context.hpp"
#include "lowbit/study/units/full_precision.hpp"
#include "lowbit/study/units/gptq.hpp"
#include "lowbit/study/units/landscape.hpp"
#include "lowbit/study/units/qaft.hpp"
#include "lowbit/study/units/rtn.hpp"

namespace lowbit::study {

class StudyRunner {
 public:
  StudyRunner(StudySetup& setup, const std::atomic<bool>* stop = nullptr, FILE* log = stderr) : c_(setup, stop, log) {}

  StudyResults run() {
    const StudyOptions& o = c_.options;
    QaftUnit::check_rate_keys(c_);
    c_.store.lock();
    c_.store.check_run_file();
    StudyResults r = describe();
    const UnitResult fp = FullPrecisionUnit{}.run(c_);
    r.fp_test_nll = fp.test_nll;
    r.fp_val_nll = fp.val_nll;
    r.fp_ood_nll = fp.ood_nll;
    c_.log("full precision: test NLL %.5f (PPL %.3f), validation %.5f", fp.test_nll, std::exp(fp.test_nll), fp.val_nll);

    for (const int bits : o.bits)
      for (const Method m : o.methods) {
        const QuantSpec q = o.scheme.with_bits(bits);
        const UnitResult u = m == Method::rtn ? RtnUnit{q}.run(c_) : m == Method::gptq ? GptqUnit{q}.run(c_) : QaftUnit{q}.run(c_);
        c_.log("%-5s %s: test NLL %.5f (PPL %.3f)%s", u.method.c_str(), c_.label(bits).c_str(), u.test_nll, u.test_ppl(),
               m == Method::qaft ? (", learning rate " + detail::num(u.learning_rate, 3)).c_str() : "");
        r.units.push_back(u);
      }
    if (!c_.streamed) c_.restore_fp();
    if (o.landscape) LandscapeUnits{}.run(c_, r);
    if (o.heldout) write_heldout(c_, r);
    io::write_file_atomic(o.out / "results.json", to_json(r).dump() + "\n");
    write_report(r, o.out, c_.setup.command);
    c_.log("wrote %s (results.json, report.md, CSVs, SVG figures)", o.out.string().c_str());
    return r;
  }

 private:
  /// The run's model and data as results.json and the report name them.
  StudyResults describe() {
    const nn::Transformer& m = c_.model;
    StudyResults r;
    r.model = c_.setup.model_path.filename().string() + " (" + std::to_string(m.config().layers) + " layers, d=" +
              std::to_string(m.config().dim) + ")";
    r.data = c_.setup.data.description;
    r.ood_data = c_.setup.data.ood_description;
    r.grid = c_.grid;
    r.parameters = static_cast<long>(m.parameter_count());
    for (const auto& l : m.linear_layers()) r.quantized_parameters += static_cast<long>(l.weight->numel());
    r.fp_weight_bytes = 4.0 * static_cast<double>(r.parameters);
    const QuantSpec& q = c_.options.scheme;
    const std::string scheme = q.is_block() ? q.describe() : "scheme " + scheme_family(q) + " (" + q.describe().substr(5) + ")";
    c_.log("lowbit-study: %s, %zu quantizable layers (%ld of %ld parameters); %s", r.model.c_str(),
           m.linear_layers().size(), r.quantized_parameters, r.parameters, scheme.c_str());
    c_.log("data: %s", r.data.c_str());
    if (q.is_block()) {
      r.notes.push_back(block_layer_types(q));
      c_.log("%s", r.notes.back().c_str());
    }
    return r;
  }

  /// "layers by llama.cpp type: q4_k 28, q5_0 7 (fallback), full precision 0": which
  /// type each layer of a block-format run is quantized in (layer_scheme).
  std::string block_layer_types(const QuantSpec& q) const {
    std::map<std::string, int> count;
    int full = 0;
    for (const auto& l : c_.model.linear_layers()) {
      if (const auto fit = layer_scheme(q, l)) ++count[fit->str()];
      else ++full;
    }
    std::string s = "layers by llama.cpp type (its fallback where a row is not whole blocks):";
    for (const auto& [name, n] : count) s += " " + name + " " + std::to_string(n) + ",";
    return s + " full precision (no block type fits: fp32 here, F16 in llama.cpp) " + std::to_string(full);
  }

  UnitContext c_;
};

}  // namespace lowbit::study
