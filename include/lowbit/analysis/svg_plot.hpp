// SvgPlot: figures as self-contained SVG (the study's, lowbit_pretrain's), so no Python is needed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/core/atomic_file.hpp"
#include "lowbit/core/error.hpp"

namespace lowbit::analysis {

/// One data series: markers, a polyline, or both.
struct Series {
  std::string label;
  std::vector<double> x, y;
  bool line = true;
  bool markers = true;
  std::string color;  ///< empty: taken from the palette in order
  bool dashed = false;
  bool in_legend = true;  ///< false: drawn, not listed (e.g. the 2nd..nth of a family drawn alike)
};

/// A vertical marker line across the plot at x, labelled at its top (e.g. a basin radius).
struct Marker {
  double x = 0;
  std::string label;
};

/// A 2-D plot with linear or log axes, a legend, and optional y = x reference line.
/// Non-finite points are skipped (and counted in a note), never drawn at infinity.
class SvgPlot {
 public:
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  bool identity_line = false;  ///< draws y = x across the visible range (QAFT vs GPTQ plots)
  int width = 640, height = 440;
  std::vector<Marker> markers;
  /// Unique within a document that holds several plots (panels()): names the clip path.
  std::string id = "plot";

  SvgPlot() = default;
  /// The set-up every figure starts from: its title and axis labels.
  SvgPlot(std::string t, std::string x, std::string y) : title(std::move(t)), x_label(std::move(x)), y_label(std::move(y)) {}

  Series& add(Series s) {
    series_.push_back(std::move(s));
    return series_.back();
  }
  /// Whether nothing has been added (a figure not worth writing).
  [[nodiscard]] bool empty() const { return series_.empty(); }

  /// The colour of the k-th series without its own: ten well-separated colours, then
  /// hues spaced by the golden angle, so no two series of a legend share one.
  static std::string palette_color(std::size_t k) {
    static const char* base[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    if (k < 10) return base[k];
    char buf[40];
    std::snprintf(buf, sizeof buf, "hsl(%.1f,65%%,%d%%)", std::fmod(static_cast<double>(k) * 137.508, 360.0),
                  k % 2 == 0 ? 40 : 55);
    return buf;
  }

  [[nodiscard]] std::string svg() const {
    double x0 = inf(), x1 = -inf(), y0 = inf(), y1 = -inf();
    int skipped = 0;
    for (const auto& s : series_)
      for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!usable(s.x[i], log_x) || !usable(s.y[i], log_y)) {
          ++skipped;
          continue;
        }
        x0 = std::min(x0, tx(s.x[i]));
        x1 = std::max(x1, tx(s.x[i]));
        y0 = std::min(y0, ty(s.y[i]));
        y1 = std::max(y1, ty(s.y[i]));
      }
    for (const Marker& m : markers)
      if (usable(m.x, log_x)) x0 = std::min(x0, tx(m.x)), x1 = std::max(x1, tx(m.x));
    if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (identity_line) x0 = y0 = std::min(x0, y0), x1 = y1 = std::max(x1, y1);
    pad(x0, x1);
    pad(y0, y1);
    const double L = 72, R = 150, T = 40, B = 56;
    const double pw = width - L - R, ph = height - T - B;
    const auto px = [&](double v) { return L + (tx(v) - x0) / (x1 - x0) * pw; };
    const auto py = [&](double v) { return T + ph - (ty(v) - y0) / (y1 - y0) * ph; };
    std::ostringstream o;
    o.precision(6);
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << L + pw / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << escape(title)
      << "</text>\n";
    // axes, ticks, grid
    o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\"" << ph
      << "\" fill=\"none\" stroke=\"black\"/>\n";
    for (const double t : ticks(x0, x1, log_x)) {
      const double X = L + (t - x0) / (x1 - x0) * pw;
      o << "<line x1=\"" << X << "\" y1=\"" << T << "\" x2=\"" << X << "\" y2=\"" << T + ph
        << "\" stroke=\"#ddd\"/><text x=\"" << X << "\" y=\"" << T + ph + 16 << "\" text-anchor=\"middle\">"
        << label(t, log_x) << "</text>\n";
    }
    for (const double t : ticks(y0, y1, log_y)) {
      const double Y = T + ph - (t - y0) / (y1 - y0) * ph;
      o << "<line x1=\"" << L << "\" y1=\"" << Y << "\" x2=\"" << L + pw << "\" y2=\"" << Y
        << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << Y + 4 << "\" text-anchor=\"end\">"
        << label(t, log_y) << "</text>\n";
    }
    o << "<text x=\"" << L + pw / 2 << "\" y=\"" << height - 14 << "\" text-anchor=\"middle\">" << escape(x_label)
      << "</text>\n<text transform=\"translate(18," << T + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
      << escape(y_label) << "</text>\n";
    o << "<clipPath id=\"" << id << "\"><rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\""
      << ph << "\"/></clipPath>\n<g clip-path=\"url(#" << id << ")\">\n";
    for (const Marker& m : markers) {
      if (!usable(m.x, log_x)) continue;
      const double X = px(m.x);
      o << "<line x1=\"" << X << "\" y1=\"" << T << "\" x2=\"" << X << "\" y2=\"" << T + ph
        << "\" stroke=\"#444\" stroke-dasharray=\"2 3\"/><text x=\"" << X + 3 << "\" y=\"" << T + 12
        << "\" font-size=\"10\">" << escape(m.label) << "</text>\n";
    }
    if (identity_line)
      o << "<line x1=\"" << L << "\" y1=\"" << T + ph << "\" x2=\"" << L + pw << "\" y2=\"" << T
        << "\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n";
    for (std::size_t k = 0; k < series_.size(); ++k) {
      const auto& s = series_[k];
      const std::string c = s.color.empty() ? palette_color(k) : s.color;
      std::ostringstream pts;
      pts.precision(6);
      for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
        if (usable(s.x[i], log_x) && usable(s.y[i], log_y)) pts << px(s.x[i]) << "," << py(s.y[i]) << " ";
      if (s.line)
        o << "<polyline fill=\"none\" stroke=\"" << c << "\" stroke-width=\"1.6\""
          << (s.dashed ? " stroke-dasharray=\"5 3\"" : "") << " points=\"" << pts.str() << "\"/>\n";
      if (s.markers)
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
          if (usable(s.x[i], log_x) && usable(s.y[i], log_y))
            o << "<circle cx=\"" << px(s.x[i]) << "\" cy=\"" << py(s.y[i]) << "\" r=\"3\" fill=\"" << c << "\"/>\n";
    }
    o << "</g>\n";
    for (std::size_t k = 0, row = 0; k < series_.size(); ++k) {  // legend
      if (!series_[k].in_legend) continue;
      const double Y = T + 10 + 18.0 * static_cast<double>(row++);
      const std::string c = series_[k].color.empty() ? palette_color(k) : series_[k].color;
      o << "<line x1=\"" << L + pw + 10 << "\" y1=\"" << Y << "\" x2=\"" << L + pw + 30 << "\" y2=\"" << Y
        << "\" stroke=\"" << c << "\" stroke-width=\"2\"/><text x=\"" << L + pw + 36 << "\" y=\"" << Y + 4
        << "\">" << escape(series_[k].label) << "</text>\n";
    }
    if (skipped > 0)
      o << "<text x=\"" << L << "\" y=\"" << height - 2 << "\" font-size=\"10\">" << skipped
        << " non-finite or non-positive point(s) not drawn</text>\n";
    o << "</svg>\n";
    return o.str();
  }

  void write(const std::filesystem::path& path) const { write_file_atomic(path, svg()); }

  /// Several plots as panels of one SVG, `columns` to a row (each its own nested
  /// <svg>; give each plot a distinct `id`).
  static std::string panels(const std::vector<SvgPlot>& plots, int columns) {
    lowbit::detail::check(columns > 0, "SvgPlot::panels: columns must be positive");
    int w = 0, h = 0, row_h = 0, x = 0, y = 0, col = 0;
    std::ostringstream body;
    for (const SvgPlot& p : plots) {
      if (col == columns) col = 0, x = 0, y += row_h, row_h = 0;
      std::string s = p.svg();
      s.insert(4, " x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) + "\"");  // after "<svg"
      body << s;
      x += p.width;
      w = std::max(w, x);
      row_h = std::max(row_h, p.height);
      h = std::max(h, y + row_h);
      ++col;
    }
    std::ostringstream o;
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << body.str() << "</svg>\n";
    return o.str();
  }

 private:
  static double inf() { return std::numeric_limits<double>::infinity(); }
  static bool usable(double v, bool log) { return std::isfinite(v) && (!log || v > 0); }
  double tx(double v) const { return log_x ? std::log10(v) : v; }
  double ty(double v) const { return log_y ? std::log10(v) : v; }
  static void pad(double& a, double& b) {
    if (a == b) {
      a -= 0.5;
      b += 0.5;
      return;
    }
    const double m = 0.05 * (b - a);
    a -= m;
    b += m;
  }
  // Ticks in transformed units: 1-2-5 steps on linear axes; on log axes decades, or
  // 1, 2 and 5 times each decade when the axis spans under three (a span inside one
  // decade would otherwise have no tick at all).
  static std::vector<double> ticks(double a, double b, bool log) {
    std::vector<double> t;
    if (log && b - a >= 3) {
      for (double e = std::ceil(a); e <= b; e += std::max(1.0, std::floor((b - a) / 8))) t.push_back(e);
      return t;
    }
    if (log) {
      for (double e = std::floor(a); e <= b; ++e)
        for (const double m : {1.0, 2.0, 5.0})
          if (const double v = e + std::log10(m); v >= a && v <= b) t.push_back(v);
      return t;
    }
    const double raw = (b - a) / 6, mag = std::pow(10, std::floor(std::log10(raw)));
    const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
    for (double v = std::ceil(a / step) * step; v <= b; v += step) t.push_back(std::fabs(v) < 1e-12 * step ? 0 : v);
    return t;
  }
  // A log axis's tick at 10^t as a number a reader takes in at once: 200, 5k, 1M, 2e-05.
  static std::string label(double t, bool log) {
    char buf[32];
    if (!log) {
      std::snprintf(buf, sizeof buf, "%g", t);
      return buf;
    }
    const double v = std::pow(10.0, t);
    const double r = std::round(v / std::pow(10.0, std::floor(t + 1e-9))) * std::pow(10.0, std::floor(t + 1e-9));
    if (r >= 1e9) std::snprintf(buf, sizeof buf, "%gG", r / 1e9);
    else if (r >= 1e6) std::snprintf(buf, sizeof buf, "%gM", r / 1e6);
    else if (r >= 1e3) std::snprintf(buf, sizeof buf, "%gk", r / 1e3);
    else std::snprintf(buf, sizeof buf, "%g", r);
    return buf;
  }
  static std::string escape(const std::string& s) {
    std::string r;
    for (char ch : s) {
      if (ch == '<') r += "&lt;";
      else if (ch == '>') r += "&gt;";
      else if (ch == '&') r += "&amp;";
      else r += ch;
    }
    return r;
  }
  std::vector<Series> series_;
};

}  // namespace lowbit::analysis
