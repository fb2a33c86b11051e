// llama.cpp as the judge of lowbit's GGUF files (issue #13): a model exported by
// lowbit in each llama.cpp type, then scored on the study's test windows twice — by
// lowbit (the file read back into nn::Transformer) and by llama.cpp itself (the
// prebuilt libllama of node-llama-cpp@3.21.1: token ids fed directly, NLL from its
// logits in double). Built and run by run_judge.cmake; never linked into lowbit.
//
//   judge DATA_DIR GGML_LIB_DIR OUT_DIR MODEL[@WINDOWS] SPEC...
//
// MODEL: stories260K (llama2.c, TinyStories test split) or a lowbit GPT-2 folder such
// as models/pd-1m (Python docs test split); @WINDOWS scores only the first WINDOWS
// test windows.
// SPEC: f32, or a llama.cpp type with an optional method, TYPE[/rtn|/imatrix|/gptq|/qaft]
// (lowbit's files, nn/block_quantize.hpp; imatrix and GPTQ calibrate on the study's 128
// calibration sequences, which QAFT trains on, its learning rate chosen on the study's
// validation windows; f32/finetune is QAFT's control, the same training in float) or
// TYPE/llama.cpp and TYPE/llama.cpp-imatrix: the f32 file
// quantized by llama.cpp's own llama_model_quantize (pure: every tensor the type, with
// llama-quantize's fallbacks, so the file has lowbit's tensor types and size), without
// and with an importance matrix from the same calibration data (Σx² per input column
// of each linear layer, what llama-imatrix collects). For TYPE/rtn the judge also
// checks that every tensor of lowbit's file is byte for byte llama.cpp's. TYPE may also
// be a llama-quantize preset spelled as it spells it (Q4_K_M): lowbit's file then takes
// the preset's mixture (nn/llama_cpp_presets.hpp) and llama.cpp's file is not pure.
//
// lowbit scores each file with its activations rounded as llama.cpp's CPU kernels
// round them for each tensor's type, and GPT-2's GELU from ggml's float16 table
// (nn/llama_cpp_rounding.hpp); the plain float32 score is printed beside it. Each
// quantized file is also dequantized by llama.cpp itself (its quantizer asked for F32):
// those weights must be lowbit's decoded weights bit for bit, and llama.cpp's NLL of
// them lowbit's float32 score to 1e-4 ("dequantized:" lines). Exits 1 if stories260K's
// f32 file's NLL in llama.cpp is not the study's 1.41965, if an f32 or dequantized
// file's two NLLs differ by more than 1e-4, or a quantized file's by more than 1e-3.
// Quantized files cannot be held to 1e-4: every layer re-rounds its inputs to 8 bits
// (or F16), so a float difference of one ulp in a sum — lowbit and ggml add in
// different orders, ggml's integer dot products exactly — moves an activation to the
// next code now and then, and the model amplifies it. Layer by layer the two agree to
// ~1e-6 until such a flip (docs/results/llama.cpp.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ggml-backend.h>
#include <llama.h>

#include "lowbit/nn/block_quantize.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/gguf_model.hpp"
#include "lowbit/nn/llama_cpp_presets.hpp"
#include "lowbit/nn/llama_cpp_rounding.hpp"
#include "lowbit/nn/transformer.hpp"
#include "lowbit/study/block_qaft.hpp"
#include "lowbit/study/data.hpp"

namespace fs = std::filesystem;
using Windows = std::vector<std::span<const int>>;

namespace {

/// Mean NLL (nats per predicted token) of `windows` under llama.cpp.
double llama_cpp_nll(const fs::path& gguf, const Windows& windows, int context) {
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(gguf.c_str(), mp);
  if (model == nullptr) throw std::runtime_error("llama.cpp could not load " + gguf.string());
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<std::uint32_t>(context);
  cp.n_batch = cp.n_ubatch = static_cast<std::uint32_t>(context);
  // ggml gives each output element to one thread, so the NLL does not depend on the count.
  const int threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
  cp.n_threads = cp.n_threads_batch = threads;
  cp.type_k = cp.type_v = GGML_TYPE_F32;  // lowbit keeps keys and values in float32
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.no_perf = true;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) throw std::runtime_error("llama.cpp could not create a context for " + gguf.string());
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  double sum = 0.0;
  long count = 0;
  for (const auto& w : windows) {
    llama_memory_clear(llama_get_memory(ctx), true);
    llama_batch batch = llama_batch_init(static_cast<std::int32_t>(w.size()), 0, 1);
    for (std::size_t i = 0; i < w.size(); ++i) {
      batch.token[i] = w[i];
      batch.pos[i] = static_cast<llama_pos>(i);
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = 1;
    }
    batch.n_tokens = static_cast<std::int32_t>(w.size());
    if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed on " + gguf.string());
    for (std::size_t i = 0; i + 1 < w.size(); ++i) {
      const float* l = llama_get_logits_ith(ctx, static_cast<std::int32_t>(i));
      double top = l[0];
      for (int v = 1; v < vocab; ++v) top = std::max(top, static_cast<double>(l[v]));
      double z = 0.0;
      for (int v = 0; v < vocab; ++v) z += std::exp(static_cast<double>(l[v]) - top);
      sum += top + std::log(z) - static_cast<double>(l[w[i + 1]]);
      ++count;
    }
    llama_batch_free(batch);
  }
  llama_free(ctx);
  llama_model_free(model);
  return sum / static_cast<double>(count);
}

/// llama_ftype of a preset (Q4_K_M, ...: llama-quantize's mixture) or of a type (its
/// pure quantization gives that type), nullopt for neither.
std::optional<llama_ftype> ftype_of(const std::string& type) {
  static const std::vector<std::pair<std::string, llama_ftype>> presets{
      {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},     {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},     {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},     {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
      {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
      {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
      {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},     {"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL},
  };
  for (const auto& [t, f] : presets)
    if (t == type) return f;
  static const std::vector<std::pair<std::string, llama_ftype>> table{
      {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},   {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},   {"q5_k", LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},   {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},   {"q4_k", LLAMA_FTYPE_MOSTLY_Q4_K_M},
      {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},   {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},   {"q3_k", LLAMA_FTYPE_MOSTLY_Q3_K_M},
      {"q2_k", LLAMA_FTYPE_MOSTLY_Q2_K},   {"tq2_0", LLAMA_FTYPE_MOSTLY_TQ2_0}, {"iq4_nl", LLAMA_FTYPE_MOSTLY_IQ4_NL},
      {"mxfp4", LLAMA_FTYPE_MOSTLY_MXFP4_MOE},
  };
  for (const auto& [t, f] : table)
    if (t == type) return f;
  return std::nullopt;
}

/// A llama-quantize preset as it spells it (Q4_K_M), not a lower-case type (q4_k).
bool is_preset(const std::string& type) {
  const auto* p = lowbit::nn::find_llama_cpp_preset(type);
  return p != nullptr && p->name == type;
}

/// `f32` quantized by llama.cpp into `out` (see the header); `importance` by GGUF name.
void llama_cpp_quantize(const fs::path& f32, const fs::path& out, const std::string& type,
                        const std::map<std::string, std::vector<float>>* importance) {
  const auto ftype = ftype_of(type);
  if (!ftype) throw std::runtime_error("judge: llama.cpp has no ftype for " + type);
  llama_model_quantize_params p = llama_model_quantize_default_params();
  p.nthread = 1;
  p.ftype = *ftype;
  p.pure = !is_preset(type);  // a type: every tensor that type; a preset: llama.cpp's mixture
  std::vector<llama_model_imatrix_data> im;
  if (importance != nullptr) {
    for (const auto& [name, v] : *importance) im.push_back({name.c_str(), v.data(), v.size()});
    im.push_back({nullptr, nullptr, 0});
    p.imatrix = im.data();
  }
  if (llama_model_quantize(f32.c_str(), out.c_str(), &p) != 0)
    throw std::runtime_error("llama_model_quantize failed on " + f32.string());
}

/// Σx²/n per input column of each registered layer (diag(H), up to a factor the
/// quantizers ignore) over the calibration windows, by GGUF tensor name.
std::map<std::string, std::vector<float>> importance_matrix(const lowbit::nn::Checkpoint& ck,
                                                            const Windows& calibration) {
  const lowbit::nn::Transformer m(ck);
  const auto hs = lowbit::nn::layer_hessians(m, calibration);
  std::map<std::string, std::vector<float>> out;
  for (std::size_t i = 0; i < hs.size(); ++i) {
    const auto& h = hs[i].matrix;
    std::vector<float> d(static_cast<std::size_t>(h.cols()));
    for (lowbit::Index c = 0; c < h.cols(); ++c) d[static_cast<std::size_t>(c)] = h(c, c);
    out[*lowbit::nn::gguf_name_of(ck.config.arch, m.linear_layers()[i].name)] = std::move(d);
  }
  return out;
}

/// `quantized` dequantized by llama.cpp itself into an F32 GGUF `out`: its quantizer,
/// asked for F32 with requantizing allowed, widens every tensor with ggml's own
/// to_float and copies the rest.
void llama_cpp_dequantize(const fs::path& quantized, const fs::path& out) {
  llama_model_quantize_params p = llama_model_quantize_default_params();
  p.nthread = 1;
  p.ftype = LLAMA_FTYPE_ALL_F32;
  p.allow_requantize = true;
  p.pure = true;
  if (llama_model_quantize(quantized.c_str(), out.c_str(), &p) != 0)
    throw std::runtime_error("llama_model_quantize could not dequantize " + quantized.string());
}

/// Names of the tensors whose bytes differ between two GGUF files (empty: identical data).
std::string differing_tensors(const fs::path& a, const fs::path& b) {
  const lowbit::io::GgufFile fa = lowbit::io::GgufFile::open(a), fb = lowbit::io::GgufFile::open(b);
  std::string diff;
  for (const auto& t : fa.tensors()) {
    const auto* u = fb.find_tensor(t.name);
    const auto x = fa.bytes(t.name);
    if (u == nullptr || u->ggml_type != t.ggml_type || fb.bytes(t.name).size() != x.size() ||
        !std::equal(x.begin(), x.end(), fb.bytes(t.name).begin()))
      diff += " " + t.name;
  }
  return diff;
}

/// The study's QAFT (one epoch over the calibration sequences, AdamW, linear decay to
/// a tenth) through `plan`'s types at learning rates 1e-4 and 1e-3, the one with the
/// lower validation NLL written to `file`. Returns "  qaft lr X (validation NLL Y)".
std::string qaft_file(const lowbit::nn::Checkpoint& ck, const lowbit::nn::BlockPlan& plan,
                      const lowbit::study::StudyData& d, const fs::path& file, const lowbit::nn::GgufVocab& vocab,
                      const std::string& name) {
  double best = INFINITY, best_lr = 0;
  for (const double lr : {1e-4, 1e-3}) {
    lowbit::nn::Transformer q(ck);
    lowbit::study::QaftOptions opt;
    opt.lr = lr;
    lowbit::study::qaft_to_blocks(q, plan, d.calibration, opt);
    const auto encoded = lowbit::nn::quantize_to_blocks(q, plan, lowbit::nn::BlockMethod::qaft);
    const double val = lowbit::nn::evaluate(q, d.validation).mean_nll();
    if (val < best) {
      lowbit::nn::write_gguf(file, q, encoded, plan, &vocab, name);
      best = val;
      best_lr = lr;
    }
  }
  char note[96];
  std::snprintf(note, sizeof note, "  qaft lr %.0e (validation NLL %.5f)", best_lr, best);
  return note;
}

/// QAFT's control: the f32 model fine-tuned as qaft_file trains, without quantization
/// (study::NoQuantization), the better rate on validation written as an F32 file.
std::string finetune_file(const lowbit::nn::Checkpoint& ck, const lowbit::study::StudyData& d, const fs::path& file,
                          const lowbit::nn::GgufVocab& vocab, const std::string& name) {
  double best = INFINITY, best_lr = 0;
  for (const double lr : {1e-4, 1e-3}) {
    lowbit::nn::Transformer m(ck);
    lowbit::study::QaftOptions opt;
    opt.lr = lr;
    lowbit::study::qaft_train(m, d.calibration, lowbit::study::NoQuantization{}, opt);
    const double val = lowbit::nn::evaluate(m, d.validation).mean_nll();
    if (val < best) {
      lowbit::nn::write_gguf(file, lowbit::nn::checkpoint_of(m, name), &vocab, {}, name);
      best = val;
      best_lr = lr;
    }
  }
  char note[96];
  std::snprintf(note, sizeof note, "  fine-tuned lr %.0e (validation NLL %.5f)", best_lr, best);
  return note;
}

/// How closely lowbit (activations rounded as llama.cpp rounds them) must agree.
double tolerance(const std::string& type) { return type == "f32" ? 1e-4 : 1e-3; }

/// The same dequantized weights in both engines: llama.cpp's own dequantization of the
/// quantized `file` must hold lowbit's decoded weights bit for bit, and llama.cpp's NLL
/// of those weights (an F32 file: float activations on both sides, as lowbit's `plain`
/// score) must equal lowbit's to 1e-4, as for an F32 export. What is left between
/// `file`'s two scores is then llama.cpp's rounding of activations, not the weights.
/// Prints one line; returns 1 on a failure.
int check_dequantized(const fs::path& file, double plain, const Windows& test, int context,
                      const lowbit::nn::GgufVocab& vocab, const std::string& name) {
  fs::path theirs = file, ours = file;
  theirs.replace_extension(".dequantized-by-llama.cpp.gguf");
  ours.replace_extension(".dequantized-by-lowbit.gguf");
  llama_cpp_dequantize(file, theirs);
  lowbit::nn::write_gguf(ours, lowbit::nn::load_gguf(file), &vocab, {}, name);
  const std::string differ = differing_tensors(ours, theirs);
  const double nll = llama_cpp_nll(theirs, test, context);
  const bool ok = differ.empty() && std::fabs(nll - plain) <= tolerance("f32");
  std::printf("  dequantized: weights %s  llama.cpp %.6f  lowbit %.6f  diff %+.2e  %s\n",
              differ.empty() ? "= llama.cpp's" : ("differ from llama.cpp's:" + differ).c_str(), nll, plain,
              nll - plain, ok ? "ok" : "MISMATCH");
  std::fflush(stdout);
  fs::remove(theirs);
  fs::remove(ours);
  return ok ? 0 : 1;
}

void quiet(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: judge DATA_DIR GGML_LIB_DIR OUT_DIR MODEL[@WINDOWS] TYPE...\n");
    return 2;
  }
  const fs::path data = argv[1], out = argv[3];
  llama_log_set(quiet, nullptr);
  ggml_backend_load_all_from_path(argv[2]);
  llama_backend_init();
  fs::create_directories(out);
  try {
    std::string model_arg = argv[4];
    std::size_t limit = 0;
    if (const auto at = model_arg.find('@'); at != std::string::npos) {
      limit = std::stoul(model_arg.substr(at + 1));
      model_arg.resize(at);
    }
    const bool stories = model_arg == "stories260K";
    const fs::path model = stories ? data / "stories260K" / "stories260K.bin" : fs::path(model_arg);
    const std::string name = stories ? "stories260K" : model.filename().string();
    const lowbit::nn::Checkpoint ck = lowbit::nn::load_checkpoint(model);
    lowbit::nn::GgufVocab vocab;
    if (stories) {
      vocab = lowbit::nn::gguf_spm_vocab(
          lowbit::text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", ck.config.vocab));
    } else {
      const auto compact = lowbit::text::CompactVocab::load(lowbit::study::compact_vocab_path(model));
      vocab = lowbit::nn::gguf_gpt2_vocab(data / "gpt2-bpe", &compact);
    }
    lowbit::study::StudyData d = lowbit::study::load_study_data({}, ck.config, model, data, 0);
    if (limit > 0 && d.test.size() > limit) d.test.resize(limit);
    int failures = 0;
    const fs::path f32 = out / (name + "-f32.gguf");  // what llama.cpp's own quantizer starts from
    lowbit::nn::write_gguf(f32, ck, &vocab, {}, name);
    for (int a = 5; a < argc; ++a) {
      const std::string arg = argv[a];
      const std::string type = arg.substr(0, arg.find('/'));
      std::string label = arg;
      for (char& ch : label) ch = ch == '/' ? '-' : ch;
      const fs::path file = out / (name + "-" + label + ".gguf");
      const std::string how = arg.find('/') == std::string::npos ? "rtn" : arg.substr(arg.find('/') + 1);
      std::string how_note;
      if (type == "f32" && how == "finetune") {
        how_note = finetune_file(ck, d, file, vocab, name);
      } else if (how == "llama.cpp" || how == "llama.cpp-imatrix") {
        const auto im = how == "llama.cpp-imatrix" ? importance_matrix(ck, d.calibration)
                                                   : std::map<std::string, std::vector<float>>{};
        llama_cpp_quantize(f32, file, type, how == "llama.cpp-imatrix" ? &im : nullptr);
      } else if (type != "f32") {
        const auto method = lowbit::nn::parse_block_method(how, "judge: method");
        const lowbit::nn::BlockPlan plan =
            is_preset(type) ? lowbit::nn::llama_cpp_preset(type, ck.config, lowbit::nn::uses_importance(method))
                            : lowbit::nn::BlockPlan(lowbit::QuantSpec::parse(type, "judge: type"));
        if (method == lowbit::nn::BlockMethod::qaft) {
          how_note = qaft_file(ck, plan, d, file, vocab, name);
        } else {
          lowbit::nn::Transformer q(ck);
          const auto encoded = lowbit::nn::quantize_to_blocks(q, plan, method, d.calibration);
          lowbit::nn::write_gguf(file, q, encoded, plan, &vocab, name);
        }
      }
      std::string same = how_note;  // and lowbit's round-to-nearest against llama.cpp's own quantizer
      if (how == "rtn" && type != "f32" && ftype_of(type)) {
        const fs::path theirs = out / (name + "-" + type + "-llama.cpp-check.gguf");
        llama_cpp_quantize(f32, theirs, type, nullptr);
        const std::string differ = differing_tensors(file, theirs);
        same = differ.empty() ? "  tensors = llama.cpp's" : "  tensors differ from llama.cpp's:" + differ;
        failures += differ.empty() ? 0 : 1;
      }
      const lowbit::nn::Transformer m(lowbit::nn::load_gguf(file));
      const double plain = lowbit::nn::evaluate(m, d.test).mean_nll();
      const double ours =
          lowbit::nn::evaluate(m, d.test, lowbit::nn::llama_cpp_rounding_hooks(lowbit::nn::gguf_weight_types(file)))
              .mean_nll();
      const double theirs = llama_cpp_nll(file, d.test, ck.config.context);
      const bool agree = std::fabs(ours - theirs) <= tolerance(type);
      const bool f32_ok = arg != "f32" || !stories || std::fabs(theirs - 1.41965) <= 5e-6;
      std::printf("%-20s %9ju bytes  lowbit %.6f (float activations %.6f)  llama.cpp %.6f  diff %+.2e  %s%s\n",
                  arg.c_str(), static_cast<std::uintmax_t>(fs::file_size(file)), ours, plain, theirs, theirs - ours,
                  agree && f32_ok ? "ok" : "MISMATCH", same.c_str());
      std::fflush(stdout);
      failures += agree && f32_ok ? 0 : 1;
      if (type != "f32") failures += check_dequantized(file, plain, d.test, ck.config.context, vocab, name);
    }
    llama_backend_free();
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "judge: %s\n", e.what());
    return 1;
  }
}
