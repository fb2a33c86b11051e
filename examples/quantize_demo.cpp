// quantize_demo: fake-quantizes the linear weights of the real stories260K model
// (llama2.c checkpoint) with every bit width and scale search, and prints the
// relative weight error ‖Q(W) − W‖² / ‖W‖² of each combination.
//
//   quantize_demo [--data DIR]    (default: $LOWBIT_DATA, else ../shared/data)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <lowbit/core/tool_main.hpp>
#include <lowbit/lowbit.hpp>

namespace {

struct Linear {
  std::string name;
  lowbit::Index rows, cols;
  std::vector<float> w;
};

// The transformer's linear weights from a llama2.c v0 checkpoint: a 7-int header
// (dim, hidden, layers, heads, kv_heads, vocab, seq_len), then fp32 tensors in
// run.c's order. The full reader lives with the models; this demo needs only these.
std::vector<Linear> load_llama2c_linears(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) lowbit::detail::fail("cannot open '", file.string(), "'");
  int h[7];
  in.read(reinterpret_cast<char*>(h), sizeof h);
  if (!in) lowbit::detail::fail("'", file.string(), "': truncated header");
  const long dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4];
  const long vocab = std::labs(h[5]), kv_dim = dim * kv_heads / heads;
  const auto skip = [&](long floats) { in.seekg(floats * 4, std::ios::cur); };
  const auto read = [&](const std::string& name, long per_layer_rows, long cols, std::vector<Linear>& out) {
    for (long l = 0; l < layers; ++l) {
      Linear lin{"layers." + std::to_string(l) + "." + name, per_layer_rows, cols,
                 std::vector<float>(static_cast<std::size_t>(per_layer_rows * cols))};
      in.read(reinterpret_cast<char*>(lin.w.data()), static_cast<std::streamsize>(lin.w.size() * 4));
      out.push_back(std::move(lin));
    }
  };
  std::vector<Linear> out;
  skip(vocab * dim);   // token embedding
  skip(layers * dim);  // attention RMSNorm weights
  read("wq", dim, dim, out);
  read("wk", kv_dim, dim, out);
  read("wv", kv_dim, dim, out);
  read("wo", dim, dim, out);
  skip(layers * dim);  // FFN RMSNorm weights
  read("w1", hidden, dim, out);
  read("w2", dim, hidden, out);
  read("w3", hidden, dim, out);
  if (!in) lowbit::detail::fail("'", file.string(), "': truncated weights");
  return out;
}

template <class Q>
double relative_error(const std::vector<Linear>& layers, const Q& q) {
  double err = 0, ref = 0;
  for (const auto& l : layers) {
    std::vector<float> y(l.w.size());
    q.fake_quantize(lowbit::ConstMatrixView(l.w.data(), l.rows, l.cols),
                    lowbit::MatrixView(y.data(), l.rows, l.cols), l.name);
    for (std::size_t i = 0; i < y.size(); ++i) {
      err += double(y[i] - l.w[i]) * double(y[i] - l.w[i]);
      ref += double(l.w[i]) * l.w[i];
    }
  }
  return err / ref;
}

template <int B>
void row(const std::vector<Linear>& layers) {
  using namespace lowbit;
  std::printf("int%d   %10.3e %10.3e %10.3e %10.3e %12.3e\n", B,
              relative_error(layers, Quantizer<Int<B>, PerTensor, AbsMax>{}),
              relative_error(layers, Quantizer<Int<B>, PerTensor, HistogramMse<>>{}),
              relative_error(layers, Quantizer<Int<B>, PerTensor, HistogramMse<HistogramMode::TrueGrid>>{}),
              relative_error(layers, Quantizer<Int<B>, PerTensor, MseShrink>{}),
              relative_error(layers, Quantizer<Int<B>, PerChannel, HistogramMse<HistogramMode::TrueGrid>>{}));
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path data = std::getenv("LOWBIT_DATA") ? std::getenv("LOWBIT_DATA") : "../shared/data";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
      data = argv[++i];
    } else {
      std::fprintf(stderr, "usage: quantize_demo [--data DIR]\nunknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  const auto model = data / "stories260K" / "stories260K.bin";
  return lowbit::cli::guarded("quantize_demo", "quantizing stories260K", lowbit::cli::exit_failed, [&] {
    try {
      const auto layers = load_llama2c_linears(model);
      std::size_t params = 0;
      for (const auto& l : layers) params += l.w.size();
      std::printf("lowbit %s: %zu linear weights (%zu parameters) of %s\n", lowbit::version, layers.size(), params,
                  model.string().c_str());
      std::printf("relative weight error ||Q(W)-W||^2/||W||^2, symmetric narrow-range intB\n");
      std::printf("bits   %10s %10s %10s %10s %12s\n", "absmax", "hist", "hist-true", "mse", "chan+h-true");
      std::printf("       %10s %10s %10s %10s %12s\n", "(tensor)", "(tensor)", "(tensor)", "(tensor)", "");
      row<8>(layers);
      row<6>(layers);
      row<4>(layers);
      row<3>(layers);
      row<2>(layers);
    } catch (const lowbit::Error& e) {
      std::fprintf(stderr, "quantize_demo: %s\n(set --data or LOWBIT_DATA to the folder holding stories260K/)\n",
                   e.what());
      return lowbit::cli::exit_bad_input;
    }
    return lowbit::cli::exit_ok;
  });
}
