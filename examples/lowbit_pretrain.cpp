// lowbit_pretrain: pretrains a GPT-2-architecture model from scratch on the Python
// 3.11 documentation sources with lowbit's own autograd, resumably, and exports it
// as a Hugging Face folder with its compact vocabulary, split lists, training log,
// reproducing command and test / WikiText-2 NLL. docs/pretrain.md is the manual.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <lowbit/autograd/thread_pool.hpp>
#include <lowbit/core/tool_main.hpp>
#include <lowbit/analysis/landscape.hpp>
#include <lowbit/analysis/svg_plot.hpp>
#include <lowbit/core/cli.hpp>
#include <lowbit/io/file.hpp>
#include <lowbit/io/json.hpp>
#include <lowbit/nn.hpp>
#include <lowbit/text/compact_vocab.hpp>
#include <lowbit/text/gpt2_bpe.hpp>
#include <lowbit/text/python_docs.hpp>
#include <lowbit/text/unigram.hpp>
#include <lowbit/text/wikitext.hpp>
#include <lowbit/text/windows.hpp>
#include <lowbit/train/pretrainer.hpp>

namespace {

namespace fs = std::filesystem;
using lowbit::Index;
using lowbit::io::Json;
using lowbit::cli::UsageError;
using lowbit::cli::parse_number;
using lowbit::cli::parse_positive;
using lowbit::cli::usage_fail;

const char* usage() {
  return "usage: lowbit_pretrain --name NAME --run-dir DIR [options]\n"
         "  --name NAME            model name (letters, digits, '-', '_')\n"
         "  --layers L --dim D --heads H --context T   GPT-2 shape (defaults 4, 128, 4, 128)\n"
         "  --batch B              windows per step (default 16)\n"
         "  --steps N              optimizer steps (default 1000)\n"
         "  --lr X                 peak learning rate (default 1e-3)\n"
         "  --warmup N             warm-up steps (default 100)\n"
         "  --final-lr-fraction F  cosine decays to lr*F (default 0.1)\n"
         "  --weight-decay X       AdamW decay on matrices (default 0.1)\n"
         "  --clip X               gradient-norm clip (default 1.0)\n"
         "  --seed S               initialisation and sampling seed (default 0)\n"
         "  --threads K            worker threads (default 1)\n"
         "  --run-dir DIR          run state, log and token cache (required)\n"
         "  --resume               continue the run in DIR (starts fresh if DIR has no state)\n"
         "  --eval-every M         validation NLL (and a log row, and a state save) every M steps (default 100)\n"
         "  --save-minutes X       also save the state every X minutes (default 5)\n"
         "  --val-tokens N         tokens of the periodic validation subset (default 32768)\n"
         "  --out DIR              export folder (default models/NAME)\n"
         "  --dtype f16|f32        exported weight type (default f16)\n"
         "  --corpus DIR           Python docs sources (default: $LOWBIT_PYTHON_DOCS or Debian's folder)\n"
         "  --data DIR             shared data: gpt2-bpe, wikitext-2 (default: $LOWBIT_DATA, else ../shared/data)\n"
         "  --directions K         random directions of the final radial loss profiles (default 3)\n";
}

struct Options {
  std::string name;
  int layers = 4, dim = 128, heads = 4, context = 128;
  long batch = 16, steps = 1000, warmup = 100;
  double lr = 1e-3, final_lr_fraction = 0.1, weight_decay = 0.1, clip = 1.0;
  std::uint64_t seed = 0;
  int threads = 1;
  fs::path run_dir, out, corpus, data;
  bool resume = false;
  long eval_every = 100;
  double save_minutes = 5;
  long val_tokens = 32768;
  lowbit::nn::SaveDType dtype = lowbit::nn::SaveDType::f16;
  long directions = 3;
};

Options parse(const std::vector<std::string>& args) {
  Options o;
  bool steps_set = false, warmup_set = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    const auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage_fail(flag, "", "needs a value");
      return args[++i];
    };
    const auto positive_int = [&](int limit) {
      const std::string& v = value();
      const long x = parse_positive(flag, v);
      if (x > limit) usage_fail(flag, v, "is too large (at most " + std::to_string(limit) + ")");
      return static_cast<int>(x);
    };
    const auto fraction = [&](double lo, double hi, bool open_lo) {
      const std::string& v = value();
      const double x = parse_number(flag, v);
      if (x < lo || x > hi || (open_lo && x == lo)) {
        std::ostringstream range;
        range << "must be in " << (open_lo ? "(" : "[") << lo << ", " << hi << "]";
        usage_fail(flag, v, range.str());
      }
      return x;
    };
    if (flag == "--name") {
      o.name = value();
      if (o.name.empty() || o.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                                std::string::npos)
        usage_fail(flag, o.name, "must be non-empty letters, digits, '-', '_' or '.'");
    } else if (flag == "--layers") {
      o.layers = positive_int(256);
    } else if (flag == "--dim") {
      o.dim = positive_int(65536);
    } else if (flag == "--heads") {
      o.heads = positive_int(4096);
    } else if (flag == "--context") {
      o.context = positive_int(1 << 16);
      if (o.context < 2) usage_fail(flag, args[i], "must be at least 2");
    } else if (flag == "--batch") {
      o.batch = positive_int(1 << 20);
    } else if (flag == "--steps") {
      o.steps = parse_positive(flag, value());
      steps_set = true;
    } else if (flag == "--warmup") {
      o.warmup = parse_positive(flag, value(), true);
      warmup_set = true;
    } else if (flag == "--lr") {
      o.lr = fraction(0, 1, true);
    } else if (flag == "--final-lr-fraction") {
      o.final_lr_fraction = fraction(0, 1, false);
    } else if (flag == "--weight-decay") {
      o.weight_decay = fraction(0, 10, false);
    } else if (flag == "--clip") {
      o.clip = fraction(0, 1e6, true);
    } else if (flag == "--seed") {
      o.seed = static_cast<std::uint64_t>(parse_positive(flag, value(), true));
    } else if (flag == "--threads") {
      o.threads = positive_int(lowbit::autograd::ThreadPool::max_threads);
    } else if (flag == "--run-dir") {
      o.run_dir = value();
    } else if (flag == "--resume") {
      o.resume = true;
    } else if (flag == "--eval-every") {
      o.eval_every = parse_positive(flag, value());
    } else if (flag == "--save-minutes") {
      o.save_minutes = fraction(0, 1e6, true);
    } else if (flag == "--val-tokens") {
      o.val_tokens = parse_positive(flag, value());
    } else if (flag == "--out") {
      o.out = value();
    } else if (flag == "--dtype") {
      const std::string& v = value();
      if (v == "f16") o.dtype = lowbit::nn::SaveDType::f16;
      else if (v == "f32") o.dtype = lowbit::nn::SaveDType::f32;
      else usage_fail(flag, v, "is f16 or f32");
    } else if (flag == "--corpus") {
      o.corpus = value();
    } else if (flag == "--data") {
      o.data = value();
    } else if (flag == "--directions") {
      o.directions = parse_positive(flag, value(), true);
    } else {
      usage_fail(flag, "", "is not an option (see --help)");
    }
  }
  if (o.name.empty()) usage_fail("--name", "", "is required");
  if (o.run_dir.empty()) usage_fail("--run-dir", "", "is required");
  if (o.dim % o.heads != 0)
    usage_fail("--heads", std::to_string(o.heads), "must divide --dim " + std::to_string(o.dim));
  if (o.warmup >= o.steps)
    usage_fail(warmup_set ? "--warmup" : "--steps", std::to_string(warmup_set ? o.warmup : o.steps),
               steps_set || warmup_set ? "warm-up must be shorter than the run" : "default warm-up needs more steps");
  if (o.val_tokens < o.context)
    usage_fail("--val-tokens", std::to_string(o.val_tokens), "must hold at least one window of --context tokens");
  if (o.out.empty()) o.out = fs::path("models") / o.name;
  return o;
}

fs::path data_dir(const Options& o) {
  if (!o.data.empty()) return o.data;
  if (const char* env = std::getenv("LOWBIT_DATA"); env && *env) return env;
  return "../shared/data";
}

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop = true; }

using lowbit::hex64;

std::string hms(double s) {
  char b[32];
  const long t = static_cast<long>(s + 0.5);
  std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  return b;
}

// ---- token cache: GPT-2 ids of the three splits, keyed by the corpus fingerprint ----

struct Streams {
  std::vector<int> train, validation, test;
};

std::string encode_streams(const Streams& s, std::uint64_t fingerprint) {
  std::string out = "LBTOKS01";
  lowbit::train::detail::put(out, fingerprint);
  for (const auto* v : {&s.train, &s.validation, &s.test}) {
    lowbit::train::detail::put(out, static_cast<std::uint64_t>(v->size()));
    out.append(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(int));
  }
  lowbit::train::detail::put(out, lowbit::train::detail::fnv1a64_bytes(out.data(), out.size()));
  return out;
}

// The cached streams when the cache is intact and of this corpus; nothing otherwise.
std::optional<Streams> read_streams(const fs::path& path, std::uint64_t fingerprint) {
  if (!fs::exists(path)) return std::nullopt;
  const std::string bytes = lowbit::io::read_file(path);
  if (bytes.size() < 24 || bytes.compare(0, 8, "LBTOKS01") != 0) return std::nullopt;
  std::uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (stored != lowbit::train::detail::fnv1a64_bytes(bytes.data(), bytes.size() - 8)) return std::nullopt;
  lowbit::train::detail::Reader r(std::string_view(bytes).substr(8, bytes.size() - 16), path.string());
  if (r.get<std::uint64_t>("fingerprint") != fingerprint) return std::nullopt;
  Streams s;
  for (auto* v : {&s.train, &s.validation, &s.test}) {
    const auto n = r.get<std::uint64_t>("stream size");
    const auto raw = r.take(static_cast<std::size_t>(n) * sizeof(int), "stream");
    v->resize(static_cast<std::size_t>(n));
    std::memcpy(v->data(), raw.data(), raw.size());
  }
  return s;
}

// ---- training log CSV ----

struct LogRow {
  long step = 0;
  long long tokens = 0;
  double train_loss = 0, val_nll = 0, lr = 0, tokens_per_s = 0, wall_s = 0;
};
constexpr const char* log_header = "step,tokens,train_loss,val_nll,lr,tokens_per_s,wall_s";

std::string format_row(const LogRow& r) {
  char b[256];
  std::snprintf(b, sizeof b, "%ld,%lld,%.6f,%.6f,%.6g,%.1f,%.1f", r.step, r.tokens, r.train_loss, r.val_nll, r.lr,
                r.tokens_per_s, r.wall_s);
  return b;
}

std::vector<LogRow> read_log(const fs::path& path) {
  std::vector<LogRow> rows;
  if (!fs::exists(path)) return rows;
  std::istringstream in(lowbit::io::read_file(path));
  std::string line;
  std::getline(in, line);
  lowbit::detail::check(line == log_header, "training log '", path.string(), "': unexpected header '", line, "'");
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    LogRow r;
    const int got = std::sscanf(line.c_str(), "%ld,%lld,%lf,%lf,%lf,%lf,%lf", &r.step, &r.tokens, &r.train_loss,
                                &r.val_nll, &r.lr, &r.tokens_per_s, &r.wall_s);
    lowbit::detail::check(got == 7, "training log '", path.string(), "': malformed row '", line, "'");
    rows.push_back(r);
  }
  return rows;
}

void write_log(const fs::path& path, const std::vector<LogRow>& rows) {
  std::string s = std::string(log_header) + "\n";
  for (const auto& r : rows) s += format_row(r) + "\n";
  lowbit::io::write_file_atomic(path, s);
}

// Evenly spaced windows of the validation stream, `tokens` tokens in all.
std::vector<std::span<const int>> subset(const std::vector<std::span<const int>>& all, long tokens, long context) {
  return lowbit::text::spread_windows(all, static_cast<std::size_t>(std::max(1L, tokens / context)));
}

std::string join_args(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i) s += ' ';
    const std::string a = argv[i];
    s += a.find_first_of(" \t'\"$") == std::string::npos ? a : "'" + a + "'";
  }
  return s;
}

Json num(double x) { return Json::number(x); }
Json integer(long long x) { return Json::number(static_cast<std::int64_t>(x)); }

int run(const Options& o, const std::string& command) {
  using clock = std::chrono::steady_clock;
  lowbit::autograd::set_num_threads(o.threads);
  fs::create_directories(o.run_dir);
  const fs::path state_path = o.run_dir / "state.bin", log_path = o.run_dir / "train_log.csv";
  if (!o.resume && fs::exists(state_path))
    throw UsageError("--run-dir " + o.run_dir.string() +
                     ": the folder holds a training state; pass --resume to continue it or choose a new folder");

  // Corpus, split, tokens (cached in the run folder), compact vocabulary.
  const auto docs = lowbit::text::PythonDocs::open(o.corpus.empty() ? std::nullopt : std::optional<fs::path>(o.corpus));
  const std::uint64_t fingerprint = docs.fingerprint();
  std::fprintf(stderr, "corpus %s: %zu files, fingerprint %s, split %s\n", docs.root().string().c_str(),
               docs.files().size(), hex64(fingerprint).c_str(),
               std::string(lowbit::text::python_docs_split_version).c_str());
  const auto tok = lowbit::text::Gpt2Tokenizer::from_dir(data_dir(o) / "gpt2-bpe");
  const fs::path cache = o.run_dir / "tokens.bin";
  Streams gpt2;
  if (auto cached = read_streams(cache, fingerprint)) {
    gpt2 = std::move(*cached);
  } else {
    std::fprintf(stderr, "encoding the corpus with GPT-2's BPE...\n");
    gpt2.train = lowbit::text::encode_python_docs(docs, lowbit::text::Split::train, tok, 2);
    gpt2.validation = lowbit::text::encode_python_docs(docs, lowbit::text::Split::validation, tok, 2);
    gpt2.test = lowbit::text::encode_python_docs(docs, lowbit::text::Split::test, tok, 2);
    lowbit::io::write_file_atomic(cache, encode_streams(gpt2, fingerprint));
  }
  const auto vocab = lowbit::text::CompactVocab::from_tokens(gpt2.train);
  const std::vector<int> train = vocab.to_compact(gpt2.train), val = vocab.to_compact(gpt2.validation),
                         test = vocab.to_compact(gpt2.test);
  const auto unknown = [&](const std::vector<int>& ids) { return std::count(ids.begin(), ids.end(), vocab.unk_id()); };
  const long val_unk = unknown(val), test_unk = unknown(test);
  std::fprintf(stderr,
               "tokens: train %zu, validation %zu (%ld unknown), test %zu (%ld unknown); compact vocabulary %d "
               "(of %d)\n",
               train.size(), val.size(), val_unk, test.size(), test_unk, vocab.size(), vocab.gpt2_vocab_size());

  lowbit::train::PretrainSettings s;
  s.model.arch = lowbit::nn::Architecture::gpt2;
  s.model.layers = o.layers;
  s.model.dim = o.dim;
  s.model.hidden = 4 * o.dim;
  s.model.heads = o.heads;
  s.model.kv_heads = o.heads;
  s.model.vocab = vocab.size();
  s.model.context = o.context;
  s.model.norm_eps = 1e-5f;
  s.model.tied_head = true;
  s.batch = o.batch;
  s.steps = o.steps;
  s.lr = o.lr;
  s.warmup = o.warmup;
  s.final_lr_fraction = o.final_lr_fraction;
  s.weight_decay = o.weight_decay;
  s.clip = o.clip;
  s.seed = o.seed;
  s.data_key = fingerprint;
  lowbit::train::Pretrainer trainer(s, train);
  const Index embedding = static_cast<Index>(vocab.size() + o.context) * o.dim;
  std::fprintf(stderr, "model: %d layers, d=%d, %d heads, context %d: %td parameters (%td non-embedding)\n",
               o.layers, o.dim, o.heads, o.context, trainer.model().parameter_count(),
               trainer.model().parameter_count() - embedding);

  std::vector<LogRow> log;
  double wall0 = 0;
  if (o.resume && fs::exists(state_path)) {
    trainer.restore(lowbit::train::read_train_state(state_path), state_path.string());
    for (const auto& r : read_log(log_path))
      if (r.step <= trainer.steps_done()) log.push_back(r);
    if (!log.empty()) wall0 = log.back().wall_s;
    std::fprintf(stderr, "resumed at step %td of %ld\n", trainer.steps_done(), o.steps);
  } else if (o.resume) {
    std::fprintf(stderr, "no state in %s: starting a fresh run\n", o.run_dir.string().c_str());
  }
  {
    Json run = Json::object();
    run.set("name", Json::string(o.name));
    run.set("command", Json::string(command));
    run.set("settings", Json::string(s.describe()));
    run.set("run_key", Json::string(hex64(s.run_key())));
    run.set("corpus_fingerprint", Json::string(hex64(fingerprint)));
    lowbit::io::write_file_atomic(o.run_dir / "run.json", run.dump() + "\n");
  }

  const auto all_val_windows = lowbit::text::eval_windows(val, o.context);
  const auto val_subset = subset(all_val_windows, o.val_tokens, o.context);
  const auto save = [&] {
    lowbit::train::write_train_state(state_path, trainer.state());
    write_log(log_path, log);
  };

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const auto t0 = clock::now();
  auto last_save = t0, last_print = t0;
  const Index start_step = trainer.steps_done();
  double loss_sum = 0;
  long loss_n = 0;
  while (!trainer.finished() && !g_stop) {
    const auto r = trainer.step();
    loss_sum += r.loss;
    ++loss_n;
    const Index done = trainer.steps_done();
    const auto now = clock::now();
    const double session_s = std::chrono::duration<double>(now - t0).count();
    const double tps = static_cast<double>((done - start_step) * trainer.tokens_per_step()) / session_s;
    if (std::chrono::duration<double>(now - last_print).count() >= 30 || done == o.steps) {
      last_print = now;
      const double eta = static_cast<double>((o.steps - done) * trainer.tokens_per_step()) / tps;
      std::fprintf(stderr, "step %td/%ld  loss %.4f  lr %.3g  |g| %.3f  %.0f tokens/s  wall %s  ETA %s\n", done,
                   o.steps, r.loss, r.lr, r.grad_norm, tps, hms(wall0 + session_s).c_str(), hms(eta).c_str());
    }
    if (done % o.eval_every == 0 || done == o.steps) {
      LogRow row;
      row.step = static_cast<long>(done);
      row.tokens = static_cast<long long>(done) * trainer.tokens_per_step();
      row.train_loss = loss_sum / static_cast<double>(loss_n);
      row.val_nll = lowbit::nn::evaluate(trainer.model(), val_subset).mean_nll();
      row.lr = r.lr;
      row.tokens_per_s = tps;
      row.wall_s = wall0 + std::chrono::duration<double>(clock::now() - t0).count();
      log.push_back(row);
      loss_sum = 0;
      loss_n = 0;
      std::fprintf(stderr, "eval step %ld: train %.4f  validation %.4f\n", row.step, row.train_loss, row.val_nll);
      save();
      last_save = clock::now();
    } else if (std::chrono::duration<double>(now - last_save).count() >= 60 * o.save_minutes) {
      save();
      last_save = now;
    }
  }
  std::signal(SIGTERM, SIG_DFL);  // the export and evaluations below stop at once
  std::signal(SIGINT, SIG_DFL);
  if (!trainer.finished()) {
    save();
    std::fprintf(stderr, "stopped by a signal at step %td; state saved, continue with --resume\n",
                 trainer.steps_done());
    return 0;
  }

  // ---- export, then every final figure from the exported (possibly f16) weights ----
  std::fprintf(stderr, "exporting to %s\n", o.out.string().c_str());
  fs::create_directories(o.out / "splits");
  lowbit::nn::save_hf(trainer.model(), o.out, o.dtype,
                      {{"lowbit.name", o.name},
                       {"lowbit.corpus", "python3.11-doc rst sources"},
                       {"lowbit.corpus_fingerprint", hex64(fingerprint)},
                       {"lowbit.split", std::string(lowbit::text::python_docs_split_version)},
                       {"lowbit.seed", std::to_string(o.seed)},
                       {"lowbit.steps", std::to_string(o.steps)},
                       {"lowbit.vocab", "compact_vocab.json"}});
  vocab.save(o.out / "compact_vocab.json");
  for (const auto split : {lowbit::text::Split::train, lowbit::text::Split::validation, lowbit::text::Split::test}) {
    std::string list;
    for (const auto& f : docs.files(split)) list += f.relative_path + "\n";
    lowbit::io::write_file_atomic(o.out / "splits" / (std::string(lowbit::text::split_name(split)) + ".txt"), list);
  }
  write_log(o.out / "train_log.csv", log);
  lowbit::io::write_file_atomic(o.out / "command.txt", command + "\n");

  const auto exported = lowbit::nn::Transformer::load(o.out);
  const auto nll = [&](const std::vector<std::span<const int>>& windows, const char* what) {
    std::fprintf(stderr, "evaluating %s (%zu windows)...\n", what, windows.size());
    return lowbit::nn::evaluate(exported, windows);
  };
  const auto test_windows = lowbit::text::eval_windows(test, o.context);
  const std::vector<std::span<const int>> test_head(test_windows.begin(),
                                                    test_windows.begin() + std::min<std::ptrdiff_t>(16, std::ssize(test_windows)));
  const auto t_val = nll(all_val_windows, "validation");
  const auto t_test = nll(test_windows, "test");
  const auto t_head = nll(test_head, "the first 16 test windows");
  const std::string wiki_text =
      lowbit::text::wikitext_hf_join(lowbit::text::load_wikitext2(data_dir(o), "wiki.test.raw"));
  const std::vector<int> wiki_gpt2 = tok.encode(wiki_text);
  const std::vector<int> wiki = vocab.to_compact(wiki_gpt2);
  const long wiki_unk = std::count(wiki.begin(), wiki.end(), vocab.unk_id());
  const auto t_wiki = nll(lowbit::text::eval_windows(wiki, o.context), "WikiText-2 test");
  const auto unigram = lowbit::text::UnigramModel::fit(train, vocab.size());
  const auto predicted = [](const std::vector<std::span<const int>>& windows) {
    std::vector<int> out;  // the tokens the windows predict: all but each window's first
    for (const auto& w : windows) out.insert(out.end(), w.begin() + 1, w.end());
    return out;
  };
  const double uni_test = unigram.mean_nll(predicted(test_windows));
  const double uni_wiki = unigram.mean_nll(predicted(lowbit::text::eval_windows(wiki, o.context)));

  // Radial loss profiles from w along random unit directions (all parameters), on the
  // validation subset: a trained minimum rises on both sides.
  lowbit::nn::Transformer probe = lowbit::nn::Transformer::load(o.out);
  lowbit::analysis::ParameterSet set;
  for (auto* p : probe.parameters()) set.add(p->values());
  const std::vector<float> w = set.snapshot();
  double wnorm = 0;
  for (float x : w) wnorm += static_cast<double>(x) * x;
  wnorm = std::sqrt(wnorm);
  const std::vector<double> fractions = {-0.1, -0.05, -0.02, -0.01, 0, 0.01, 0.02, 0.05, 0.1};
  std::vector<double> radii;
  for (double f : fractions) radii.push_back(f * wnorm);
  const auto profile_windows = subset(all_val_windows, 8L * o.context, o.context);
  Json profiles = Json::array();
  lowbit::analysis::SvgPlot radial(o.name + ": validation NLL along random unit directions",
                                   "distance from w (fraction of |w|)", "validation NLL (nats/token)");
  for (long d = 0; d < o.directions; ++d) {
    std::fprintf(stderr, "radial profile %ld/%ld...\n", d + 1, o.directions);
    const auto dir = lowbit::analysis::random_unit_direction(set.size(), 1000 + static_cast<std::uint64_t>(d));
    const auto losses = lowbit::analysis::profile(set, w, dir, radii, [&] {
      return lowbit::nn::evaluate(probe, profile_windows).mean_nll();
    });
    Json p = Json::object(), jl = Json::array();
    for (double l : losses) jl.push_back(num(l));
    p.set("direction_seed", integer(1000 + d));
    p.set("losses", std::move(jl));
    profiles.push_back(std::move(p));
    lowbit::analysis::Series line;
    line.label = "direction " + std::to_string(d);
    line.x = fractions;
    line.y = losses;
    radial.add(std::move(line));
  }

  // Convergence: validation NLL over the last 10% of the steps.
  double val_at_90 = std::nan(""), val_last = log.empty() ? std::nan("") : log.back().val_nll;
  for (const auto& r : log)
    if (r.step <= static_cast<long>(0.9 * static_cast<double>(o.steps))) val_at_90 = r.val_nll;

  Json res = Json::object();
  res.set("name", Json::string(o.name));
  res.set("command", Json::string(command));
  res.set("settings", Json::string(s.describe()));
  res.set("corpus_fingerprint", Json::string(hex64(fingerprint)));
  res.set("split", Json::string(std::string(lowbit::text::python_docs_split_version)));
  res.set("dtype", Json::string(o.dtype == lowbit::nn::SaveDType::f16 ? "f16" : "f32"));
  res.set("parameters", integer(exported.parameter_count()));
  res.set("non_embedding_parameters", integer(exported.parameter_count() - embedding));
  res.set("compact_vocab", integer(vocab.size()));
  res.set("train_tokens", integer(static_cast<long long>(train.size())));
  res.set("tokens_seen", integer(static_cast<long long>(o.steps) * o.batch * o.context));
  res.set("wall_s", num(log.empty() ? 0.0 : log.back().wall_s));
  const auto tally = [&](const lowbit::text::NllTally& t) {
    Json j = Json::object();
    j.set("nll", num(t.mean_nll()));
    j.set("perplexity", num(t.perplexity()));
    j.set("tokens", integer(t.tokens()));
    return j;
  };
  Json vj = tally(t_val), tj = tally(t_test);
  vj.set("unknown_tokens_in_split", integer(val_unk));
  tj.set("unknown_tokens_in_split", integer(test_unk));
  res.set("validation", std::move(vj));
  res.set("test", std::move(tj));
  res.set("test_head16", tally(t_head));
  Json wj = tally(t_wiki);
  wj.set("unknown_tokens", integer(wiki_unk));
  wj.set("tokens_total", integer(static_cast<long long>(wiki.size())));
  res.set("wikitext2_test", std::move(wj));
  Json uj = Json::object();
  uj.set("test_nll", num(uni_test));
  uj.set("wikitext2_test_nll", num(uni_wiki));
  res.set("unigram_add_one", std::move(uj));
  Json conv = Json::object();
  if (std::isfinite(val_at_90)) conv.set("val_nll_at_90pct", num(val_at_90));
  if (std::isfinite(val_last)) conv.set("val_nll_final", num(val_last));
  res.set("convergence", std::move(conv));
  Json radial_j = Json::object(), jf = Json::array();
  for (double f : fractions) jf.push_back(num(f));
  radial_j.set("radius_fraction_of_norm", std::move(jf));
  radial_j.set("weight_norm", num(wnorm));
  radial_j.set("profiles", std::move(profiles));
  res.set("radial_profiles", std::move(radial_j));
  lowbit::io::write_file_atomic(o.out / "results.json", res.dump() + "\n");
  radial.write(o.out / "radial_profiles.svg");

  lowbit::analysis::SvgPlot curve(o.name + ": training curve", "tokens", "NLL (nats/token)");
  lowbit::analysis::Series tr, va;
  tr.label = "train (mean since previous row)";
  va.label = "validation subset";
  for (const auto& r : log) {
    tr.x.push_back(static_cast<double>(r.tokens));
    tr.y.push_back(r.train_loss);
    va.x.push_back(static_cast<double>(r.tokens));
    va.y.push_back(r.val_nll);
  }
  curve.add(tr);
  curve.add(va);
  curve.write(o.out / "train_curve.svg");
  std::fprintf(stderr, "test NLL %.4f (ppl %.2f), unigram %.4f; WikiText-2 NLL %.4f (unigram %.4f)\n",
               t_test.mean_nll(), t_test.perplexity(), uni_test, t_wiki.mean_nll(), uni_wiki);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::fputs(usage(), stdout);
    return 0;
  }
  std::optional<Options> o;
  const int parsed = lowbit::cli::guarded("lowbit_pretrain", "reading the flags", lowbit::cli::exit_bad_input, [&] {
    try {
      o.emplace(parse(args));
    } catch (const UsageError& e) {
      std::fprintf(stderr, "lowbit_pretrain: %s\n%s", e.what(), usage());
      return lowbit::cli::exit_bad_input;
    }
    return lowbit::cli::exit_ok;
  });
  if (parsed != lowbit::cli::exit_ok) return parsed;
  return lowbit::cli::guarded("lowbit_pretrain", "training", lowbit::cli::exit_failed, [&] {
    try {
      return run(*o, join_args(argc, argv));
    } catch (const UsageError& e) {  // a run folder that holds another run
      std::fprintf(stderr, "lowbit_pretrain: %s\n", e.what());
      return lowbit::cli::exit_bad_input;
    }
  });
}
