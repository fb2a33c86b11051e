// --heldout: do the reported figures generalise? Every unit's model is measured again
// on text no choice of the study ever saw — TinyStories-valid.next.txt, the 132
// stories after the study's split (../shared/README.md) — from the weights the unit
// kept (weights/<key>.safetensors, written with --landscape), next to its test NLL on
// the study's own split; and for each bit width, whether the methods keep their order.
// Written to heldout.csv and heldout.md; nothing else of the run depends on it.
#pragma once

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/study/report.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/unit_context.hpp"

namespace lowbit::study {

struct HeldOutRow {
  std::string unit;  ///< "fp", "rtn-int4", ...
  std::string method;
  int bits = 0;
  double test_nll = nan_value, heldout_nll = nan_value;
};

/// The methods of one bit width in order of `nll` (best first), e.g. "qaft < gptq < rtn".
inline std::string method_order(std::vector<const HeldOutRow*> rows, double HeldOutRow::*nll) {
  std::stable_sort(rows.begin(), rows.end(), [&](const HeldOutRow* a, const HeldOutRow* b) { return a->*nll < b->*nll; });
  std::string out;
  for (const auto* r : rows) out += (out.empty() ? "" : " < ") + r->method;
  return out;
}

/// Largest minus smallest `nll` among the rows: how far apart the methods are.
inline double spread(const std::vector<const HeldOutRow*>& rows, double HeldOutRow::*nll) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* r : rows) lo = std::min(lo, r->*nll), hi = std::max(hi, r->*nll);
  return rows.empty() ? nan_value : hi - lo;
}

inline std::string heldout_markdown(const std::vector<HeldOutRow>& rows, const StudyResults& r, const std::string& data,
                                    const std::vector<std::string>& notes) {
  using detail::num;
  std::ostringstream o;
  o << "# Held-out re-measure\n\n"
    << "Every unit's model on " << data << ", which no choice of the study saw (learning rates and damping were "
    << "chosen on the validation stories), next to its test NLL on the study's split.\n\n"
    << "| unit | test NLL (study split) | held-out NLL |\n|---|---|---|\n";
  for (const auto& x : rows) o << "| " << x.unit << " | " << num(x.test_nll, 6) << " | " << num(x.heldout_nll, 6) << " |\n";
  o << "\n## Order of the methods per bit width (lowest NLL first)\n\n"
    << "| bits | study test split | held-out | same order | spread of the test NLLs | spread of the held-out NLLs |\n"
    << "|---|---|---|---|---|---|\n";
  std::vector<int> widths;
  for (const auto& x : rows)
    if (x.bits > 0 && std::find(widths.begin(), widths.end(), x.bits) == widths.end()) widths.push_back(x.bits);
  for (const int b : widths) {
    std::vector<const HeldOutRow*> at;
    for (const auto& x : rows)
      if (x.bits == b && std::isfinite(x.heldout_nll)) at.push_back(&x);
    if (at.size() < 2) {
      o << "| " << r.label(b) << " | n/a | n/a | n/a (fewer than two methods measured) | | |\n";
      continue;
    }
    const std::string test = method_order(at, &HeldOutRow::test_nll), held = method_order(at, &HeldOutRow::heldout_nll);
    o << "| " << r.label(b) << " | " << test << " | " << held << " | " << (test == held ? "yes" : "**no**") << " | "
      << num(spread(at, &HeldOutRow::test_nll), 3) << " | " << num(spread(at, &HeldOutRow::heldout_nll), 3) << " |\n";
  }
  for (const auto& n : notes) o << "\n- " << n;
  if (!notes.empty()) o << "\n";
  return o.str();
}

/// Measures and writes heldout.csv / heldout.md into --out.
inline void write_heldout(UnitContext& c, const StudyResults& r) {
  const auto& data = c.setup.data;
  std::vector<HeldOutRow> rows;
  std::vector<std::string> notes;
  c.restore_fp();
  rows.push_back({"fp", "fp", 0, r.fp_test_nll, c.nll(data.heldout, "held-out")});
  for (const auto& u : r.units) {
    const std::string k = c.key(u.method, u.bits);  // load_weights sets every linear layer: no restore needed
    HeldOutRow row{k, u.method, u.bits, u.test_nll, nan_value};
    if (c.load_weights(k)) row.heldout_nll = c.nll(data.heldout, "held-out");
    else notes.push_back("no weights/" + k + ".safetensors (the unit was computed without --landscape)");
    c.log("held-out %-10s test NLL %.5f, held-out NLL %.5f", k.c_str(), row.test_nll, row.heldout_nll);
    rows.push_back(std::move(row));
  }
  c.restore_fp();
  std::ostringstream csv;
  csv << "unit,method,bits,test_nll,heldout_nll\n";
  for (const auto& x : rows)
    csv << x.unit << "," << x.method << "," << x.bits << "," << detail::num(x.test_nll) << "," << detail::num(x.heldout_nll) << "\n";
  io::write_file_atomic(c.options.out / "heldout.csv", csv.str());
  io::write_file_atomic(c.options.out / "heldout.md", heldout_markdown(rows, r, data.heldout_description, notes));
}

}  // namespace lowbit::study
