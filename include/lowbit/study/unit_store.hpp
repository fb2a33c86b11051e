// The resumable units of a study run: --out/units/<key>.json, one per finished
// piece of work, and the lock that keeps a second run off the same --out.
//
// What resume guarantees (docs/reliability.md):
//  * a unit is reused only if its file records its own key (equal to its file name)
//    and the run settings it was computed under (equal to this run's: every setting
//    that changes a result, the model's and data's fingerprints, lowbit's version);
//    a unit from another run or copied under another name is refused with an error
//    naming the file and what differs — deleting run.json does not drop the guard;
//  * a unit file that cannot be read (truncated, not JSON, fields missing) is set
//    aside as <key>.json.corrupt with a warning and computed again;
//  * units are written atomically (temporary file, then rename), so a kill at any
//    moment leaves either the old file or the complete new one;
//  * one run at a time per --out: a second run is refused at once (flock on
//    --out/lock, released by the kernel when the holder exits).
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/study/options.hpp"
#include "lowbit/study/results.hpp"
#include "lowbit/study/results_json.hpp"

namespace lowbit::study {

/// --out is held by another lowbit-study: nothing was done, the same command can be
/// tried later (lowbit-study exits with cli::exit_busy, so a script running several
/// studies can go on to the next folder — scripts/study_schemes.sh).
class FolderBusy : public UsageError {
 public:
  using UsageError::UsageError;
};

class UnitStore {
 public:
  /// `run` is this run's identity (run_identity()); `log` may be null; `grid` names
  /// the run's bit widths in unit keys (StudyResults::grid).
  UnitStore(std::filesystem::path out, io::Json run, FILE* log, std::string grid = "int")
      : out_(std::move(out)), run_(std::move(run)), log_(log), grid_(std::move(grid)) {}

  [[nodiscard]] std::filesystem::path path(const std::string& key) const { return out_ / "units" / (key + ".json"); }
  [[nodiscard]] const io::Json& run() const { return run_; }

  /// Takes --out/lock for the life of the store; FolderBusy if another run holds
  /// it (a filesystem without locks gets a warning and no lock).
  void lock() {
    try {
      lock_ = std::make_unique<io::FileLock>(out_ / "lock");
    } catch (const io::LockHeld& e) {
      throw FolderBusy("--out " + out_.string() + ": another lowbit-study is running on this folder (" + e.what() +
                       "); wait for it to finish or use another --out");
    } catch (const Error& e) {
      throw UsageError("--out " + out_.string() + ": " + e.what());
    }
    if (!lock_->locked() && log_)
      std::fprintf(log_, "warning: %s does not support file locks; nothing stops a second run on it\n",
                   out_.string().c_str());
  }

  /// Before any work: run.json and every unit already in the folder must have been
  /// computed with this run's settings (a folder holding another run is refused,
  /// naming the file and the setting); run.json is written only once that holds.
  void check_run_file() const {
    const auto file = out_ / "run.json";
    if (std::filesystem::exists(file)) {
      io::Json before;
      try {
        before = io::Json::parse(io::read_file(file), file.string());
      } catch (const Error& e) {
        throw UsageError("--out " + out_.string() + ": run.json cannot be read (" + e.what() +
                         "); delete it to start over in this folder");
      }
      if (const auto k = first_difference(before, run_))
        throw UsageError("--out " + out_.string() + ": holds a run with a different '" + *k + "' (" + shown(before, *k) +
                         " there, " + shown(run_, *k) + " now); use another --out or delete it");
    }
    for (const auto& entry : std::filesystem::directory_iterator(out_ / "units")) {
      const auto& p = entry.path();
      if (p.extension() != ".json" || p.filename().string().ends_with("-profiles.json")) continue;
      std::optional<io::Json> j;
      try {
        j = io::Json::parse(io::read_file(p), p.string());
      } catch (const Error&) {
        continue;  // corrupt: set aside when its unit comes up
      }
      if (const io::Json* recorded = j->is_object() ? j->find("run") : nullptr)
        if (const auto k = first_difference(*recorded, run_)) throw stale(p, *recorded, *k);
    }
    if (!std::filesystem::exists(file)) io::write_file_atomic(file, run_.dump() + "\n");
  }

  /// The unit `key` if a valid file for it exists; nullopt if it is absent or was
  /// corrupt (then set aside with a warning). A file from another run or under the
  /// wrong name is a UsageError. `inputs`, when given, describes what the unit was
  /// drawn from within this run (the landscape: which units, with which weights);
  /// a unit recorded with other inputs is out of date and computed again.
  [[nodiscard]] std::optional<UnitResult> reuse(const std::string& key, const io::Json* inputs = nullptr) const {
    const auto file = path(key);
    if (!std::filesystem::exists(file)) return std::nullopt;
    io::Json j;
    UnitResult u;
    try {
      j = io::Json::parse(io::read_file(file), file.string());
      u = unit_from_json(j, file.string());
      lowbit::detail::check(j.find("key") && j.at("key").is_string() && j.find("run") && j.at("run").is_object(),
                            file.string(), ": no recorded key and run settings (written by an older lowbit?)");
    } catch (const Error& e) {
      set_aside(file, e.what());
      return std::nullopt;
    }
    const std::string recorded = j.at("key").as_string();
    if (recorded != key || !method_and_bits_match(u, key))
      throw UsageError(file.string() + ": records unit '" + recorded + "' (" + u.method + ", " +
                       std::to_string(u.bits) + " bits), not '" + key +
                       "': the file was renamed or copied; delete it to recompute");
    if (const auto k = first_difference(j.at("run"), run_)) throw stale(file, j.at("run"), *k);
    if (inputs && (!j.find("inputs") || j.at("inputs").dump() != inputs->dump())) {
      if (log_) std::fprintf(log_, "%s: the units it is drawn from have changed; computing it again\n", key.c_str());
      return std::nullopt;
    }
    if (log_) std::fprintf(log_, "%s: reusing %s\n", key.c_str(), file.string().c_str());
    return u;
  }

  /// Writes unit `key` atomically, with its key, this run's settings and its inputs.
  void store(const std::string& key, const UnitResult& u, const io::Json* inputs = nullptr) const {
    io::Json j = to_json(u);
    j.set("key", io::Json::string(key));
    j.set("run", run_);
    if (inputs) j.set("inputs", *inputs);
    io::write_file_atomic(path(key), j.dump() + "\n");
  }

 private:
  /// The unit's method and bits must be what its key names: "rtn-int4" is an
  /// RTN int4 unit, "qaft-int3-lr1e-03" a QAFT int3 one, "gptq-q4_k" a GPTQ q4_k one
  /// (unit_label of the run's grid); keys of units without a bit width (fp,
  /// landscape, landscape-layers) name the method alone.
  [[nodiscard]] bool method_and_bits_match(const UnitResult& u, const std::string& key) const {
    if (!UnitResult::has_bits(u.method)) return key == u.method;
    const std::string head = u.method + "-" + unit_label(grid_, u.bits);
    return key.compare(0, head.size(), head) == 0 && (key.size() == head.size() || key[head.size()] == '-');
  }

  UsageError stale(const std::filesystem::path& file, const io::Json& recorded, const std::string& k) const {
    return UsageError(file.string() + ": was computed with a different '" + k + "' (" + shown(recorded, k) +
                      " there, " + shown(run_, k) + " now); delete it, or use another --out");
  }

  /// A setting recorded on one side only counts too: some ("streaming") are recorded
  /// only when set.
  static std::optional<std::string> first_difference(const io::Json& there, const io::Json& now) {
    for (const auto& k : now.keys()) {
      const io::Json* b = there.is_object() ? there.find(k) : nullptr;
      if (!b || b->dump() != now.at(k).dump()) return k;
    }
    if (there.is_object())
      for (const auto& k : there.keys())
        if (!now.find(k)) return k;
    return std::nullopt;
  }

  static std::string shown(const io::Json& j, const std::string& key) {
    const io::Json* v = j.is_object() ? j.find(key) : nullptr;
    return v ? v->dump() : std::string("missing");
  }

  void set_aside(const std::filesystem::path& file, const std::string& why) const {
    auto aside = file;
    aside += ".corrupt";
    std::error_code ec;
    std::filesystem::rename(file, aside, ec);
    if (log_)
      std::fprintf(log_, "warning: %s is unreadable (%s); kept as %s and computing the unit again\n",
                   file.string().c_str(), why.c_str(), ec ? "(could not rename)" : aside.string().c_str());
  }

  std::filesystem::path out_;
  io::Json run_;
  FILE* log_;
  std::string grid_;
  std::unique_ptr<io::FileLock> lock_;
};

}  // namespace lowbit::study
