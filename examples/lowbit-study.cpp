// lowbit-study: the study "Understanding the difficulty of low-precision post-training
// quantization of LLMs" (Xu et al., 2024) on a real model, as one command.
//
//   lowbit-study --quick                     # stories260K, reduced grid, a few minutes
//   lowbit-study --out docs/results/stories260K --landscape
//   lowbit-study --help
//
// Exit status: 0 done, 1 failed during the run, 2 bad flags or unreadable inputs
// (before any work), 130 interrupted (finished units are kept; run again to resume).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <lowbit/core/tool_main.hpp>
#include <lowbit/lowbit.hpp>
#include <lowbit/study.hpp>

namespace {

std::atomic<bool> stop_requested{false};

extern "C" void on_interrupt(int) {
  if (stop_requested.exchange(true)) std::_Exit(130);  // a second Ctrl-C: stop at once
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string command = "lowbit-study";
  for (const auto& a : args) command += " " + a;
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(lowbit::study::study_usage(), stdout);
      return 0;
    }
  std::optional<lowbit::study::StudySetup> setup;
  const int prepared = lowbit::cli::guarded("lowbit-study", "reading the model and data", lowbit::cli::exit_bad_input, [&] {
    try {
      auto options = lowbit::study::parse_study_options(args);
      if (!options.compare.empty() || !options.predict.empty()) {  // no study: finished runs read back
        if (!options.compare.empty()) {
          lowbit::study::write_compare(options.compare, options.out, command);
          std::fprintf(stderr, "lowbit-study: wrote %s and fig2_compare.svg\n", (options.out / "compare.md").string().c_str());
        }
        if (!options.predict.empty()) {
          lowbit::study::write_predictor(options.predict, options.out, command);
          std::fprintf(stderr, "lowbit-study: wrote %s, predictor.csv and fig_predictor.svg\n",
                       (options.out / "predictor.md").string().c_str());
        }
        return lowbit::cli::exit_ok;
      }
      setup.emplace(lowbit::study::StudySetup::prepare(std::move(options), command));
    } catch (const lowbit::study::UsageError& e) {
      std::fprintf(stderr, "lowbit-study: %s\n\n%s", e.what(), lowbit::study::study_usage());
      return lowbit::cli::exit_bad_input;
    }
    return lowbit::cli::exit_ok;
  });
  if (prepared != lowbit::cli::exit_ok || !setup) return prepared;  // an error, or --compare done
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  return lowbit::cli::guarded("lowbit-study", "running the study", lowbit::cli::exit_failed, [&] {
    try {
      lowbit::study::StudyRunner runner(*setup, &stop_requested);
      runner.run();
    } catch (const lowbit::study::Interrupted& e) {
      std::fprintf(stderr, "\nlowbit-study: %s; run the same command again to resume\n", e.what());
      return lowbit::cli::exit_interrupted;
    } catch (const lowbit::study::FolderBusy& e) {  // another lowbit-study runs on --out
      std::fprintf(stderr, "lowbit-study: %s\n", e.what());
      return lowbit::cli::exit_busy;
    } catch (const lowbit::study::UsageError& e) {  // --out holds another run
      std::fprintf(stderr, "lowbit-study: %s\n", e.what());
      return lowbit::cli::exit_bad_input;
    }
    return lowbit::cli::exit_ok;
  });
}
