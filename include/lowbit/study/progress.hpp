// Progress: a bar with rate and ETA on a terminal, plain lines in logs.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace lowbit::study {

/// Reports `done / total` units of one phase. On a terminal it redraws one line
/// (bar, rate, ETA) at most 10 times a second; otherwise it prints a plain line
/// every `log_every` seconds and at the end, so CI logs stay readable.
class Progress {
 public:
  /// `lines_when_piped` = false keeps short phases out of logs: nothing is printed
  /// unless `out` is a terminal.
  Progress(std::string label, long total, std::string unit = "it", FILE* out = stderr, double log_every = 10.0,
           bool lines_when_piped = true)
      : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out),
        tty_(::isatty(::fileno(out)) != 0), silent_(!tty_ && !lines_when_piped), log_every_(log_every),
        start_(clock::now()), last_(start_) {}
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() { finish(); }

  void advance(long n = 1) { update(done_ + n); }

  void update(long done) {
    done_ = done;
    const auto now = clock::now();
    const double since = seconds(now - last_);
    if (done_ < total_ && since < (tty_ ? 0.1 : log_every_)) return;
    last_ = now;
    draw(now);
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    if (done_ != drawn_) draw(clock::now());
    if (tty_ && !silent_) std::fputc('\n', out_);
    std::fflush(out_);
  }

  [[nodiscard]] double elapsed() const { return seconds(clock::now() - start_); }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

  static std::string hms(double s) {
    char buf[32];
    const long t = static_cast<long>(s + 0.5);
    if (t >= 3600)
      std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
      std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
  }

  void draw(clock::time_point now) {
    drawn_ = done_;
    if (silent_) return;
    const double el = seconds(now - start_);
    const double rate = el > 0 ? static_cast<double>(done_) / el : 0.0;
    const double eta = rate > 0 && total_ > done_ ? static_cast<double>(total_ - done_) / rate : 0.0;
    const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    if (tty_) {
      constexpr int width = 28;
      std::string bar(static_cast<std::size_t>(frac * width + 0.5), '#');
      bar.resize(width, '.');
      std::fprintf(out_, "\r%-28s [%s] %ld/%ld %.2f %s/s  %s elapsed, ETA %s   ", label_.c_str(), bar.c_str(),
                   done_, total_, rate, unit_.c_str(), hms(el).c_str(), hms(eta).c_str());
    } else {
      std::fprintf(out_, "%s: %ld/%ld (%.0f%%) %.2f %s/s, %s elapsed, ETA %s\n", label_.c_str(), done_, total_,
                   100 * frac, rate, unit_.c_str(), hms(el).c_str(), hms(eta).c_str());
    }
    std::fflush(out_);
  }

  std::string label_, unit_;
  long total_, done_ = 0, drawn_ = -1;
  FILE* out_;
  bool tty_, silent_;
  double log_every_;
  clock::time_point start_, last_;
  bool finished_ = false;
};

}  // namespace lowbit::study
