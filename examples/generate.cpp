// generate: greedy decoding with a transformer checkpoint, by default the real
// stories260K (llama2.c) and its 512-token tokenizer.
//
//   generate [--data DIR] [--model PATH] [--prompt TEXT] [--steps N]
//
// DIR defaults to $LOWBIT_DATA, else ../shared/data. PATH is a llama2.c .bin (read
// with DIR/stories260K/tok512.bin) or a Hugging Face GPT-2 folder (read with the
// GPT-2 BPE in DIR/gpt2-bpe). Stops at the end-of-text token, after N tokens, or
// at the model's context. Exit status 2 on bad flags or unreadable files.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <lowbit/core/tool_main.hpp>
#include <lowbit/nn.hpp>
#include <lowbit/text/gpt2_bpe.hpp>
#include <lowbit/text/llama2c_tokenizer.hpp>

namespace {

constexpr const char* kUsage = "usage: generate [--data DIR] [--model PATH] [--prompt TEXT] [--steps N]\n";

int usage_error(const std::string& what) {
  std::fprintf(stderr, "%sgenerate: %s\n", kUsage, what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  fs::path data = std::getenv("LOWBIT_DATA") ? std::getenv("LOWBIT_DATA") : "../shared/data";
  std::optional<fs::path> model_path;
  std::string prompt = "Once upon a time";
  long steps = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (flag != "--data" && flag != "--model" && flag != "--prompt" && flag != "--steps")
      return usage_error("unknown argument '" + flag + "'");
    if (i + 1 >= argc) return usage_error("flag " + flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--data") data = value;
    else if (flag == "--model") model_path = value;
    else if (flag == "--prompt") prompt = value;
    else {
      char* end = nullptr;
      steps = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || steps < 1 || steps > 1000000)
        return usage_error("--steps must be a positive integer, got '" + value + "'");
    }
  }
  if (prompt.empty()) return usage_error("--prompt must not be empty");
  return lowbit::cli::guarded("generate", "generating", lowbit::cli::exit_failed, [&] {
    try {
      const fs::path path = model_path ? *model_path : data / "stories260K" / "stories260K.bin";
      const lowbit::nn::Transformer model = lowbit::nn::Transformer::load(path);
      const auto& c = model.config();
      std::vector<int> out;
      std::string text;
      if (c.arch == lowbit::nn::Architecture::gpt2) {
        const auto tok = lowbit::text::Gpt2Tokenizer::from_dir(data / "gpt2-bpe");
        const auto ids = tok.encode(prompt);
        out = lowbit::nn::generate_greedy(model, ids, static_cast<int>(steps), tok.eos_id());
        text = tok.decode(out);
      } else {
        const auto tok = lowbit::text::Llama2cTokenizer::load(data / "stories260K" / "tok512.bin", c.vocab);
        const auto ids = tok.encode(prompt, /*bos=*/true, /*eos=*/false);
        out = lowbit::nn::generate_greedy(model, ids, static_cast<int>(steps), lowbit::text::Llama2cTokenizer::eos_id);
        text = tok.decode(out);
      }
      std::printf("%s\n", text.c_str());
      std::fprintf(stderr, "[%s: %zu tokens, %s, %d layers, d=%lld]\n", path.string().c_str(), out.size(),
                   c.arch == lowbit::nn::Architecture::gpt2 ? "GPT-2" : "Llama", c.layers, static_cast<long long>(c.dim));
    } catch (const lowbit::Error& e) {
      std::fprintf(stderr, "generate: %s\n(set --data or LOWBIT_DATA to the folder holding stories260K/, or --model)\n",
                   e.what());
      return lowbit::cli::exit_bad_input;
    }
    return lowbit::cli::exit_ok;
  });
}
