// What a study run is given, resolved and checked before any work: options, paths,
// the model (in memory, or --streaming from its files) and the data split.
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "lowbit/autograd/thread_pool.hpp"
#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/nn/checkpoint.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/study/data.hpp"
#include "lowbit/study/options.hpp"

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
    if (o.scheme.is_block() &&
        std::none_of(m.linear_layers().begin(), m.linear_layers().end(),
                     [&](const nn::LinearLayer& l) { return o.scheme.fallback_for(l.in_features()).has_value(); }))
      throw UsageError("--scheme " + o.scheme.str() + ": no layer's rows are whole blocks of it or of llama.cpp's "
                       "fallback type, so nothing would be quantized");
    for (const auto& l : m.linear_layers())  // a block format takes llama.cpp's fallback type instead
      if (!o.scheme.is_block() && !o.scheme.fits(l.in_features()))
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

}  // namespace lowbit::study
