// Quantized safetensors export: round trip to QuantizedTensor, the documented bytes
// decoded by hand (as an engine without lowbit would), and corrupt metadata.
#include <doctest/doctest.h>

#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "lowbit/io/quantized_export.hpp"
#include "lowbit/quant.hpp"
#include "../support/random.hpp"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {
fs::path temp_file(const char* name) {
  return fs::temp_directory_path() / (std::string(name) + "_" + std::to_string(::getpid()) + ".safetensors");
}

template <class Q>
void round_trip(const Q& q, int bits, const char* method) {
  const Index rows = 6, cols = 20;
  auto w = test::gaussian(static_cast<std::size_t>(rows * cols), 0.5f, 11);
  const ConstMatrixView wv{w.data(), rows, cols};
  const QuantizedTensor t = q.quantize(wv, "layer.weight");
  const PackedTensor p = pack(t);
  io::SafetensorsWriter sw;
  io::add_quantized(sw, "model.layers.0.mlp.up_proj.weight", p, method);
  const std::vector<float> bias = {1, 2, 3};
  sw.add_f32("model.layers.0.mlp.up_proj.bias", {3}, bias);
  const auto path = temp_file("lowbit_qexport");
  sw.write(path);

  const auto f = io::SafetensorsFile::open(path);
  CHECK(io::quantized_names(f) == std::vector<std::string>{"model.layers.0.mlp.up_proj.weight"});
  const auto back = io::read_quantized(f, "model.layers.0.mlp.up_proj.weight");
  CHECK(back.method == method);
  CHECK(back.packed.data == p.data);
  CHECK(back.packed.params.scales == t.params.scales);
  CHECK(back.packed.params.zeros == t.params.zeros);
  CHECK(back.packed.params.format.bits == bits);
  CHECK(std::string(back.packed.params.format.name) == t.params.format.name);
  CHECK(back.packed.params.format.qmin == t.params.format.qmin);
  CHECK(back.packed.params.format.division == t.params.format.division);
  CHECK(back.packed.params.layout.kind == t.params.layout.kind);
  CHECK(back.packed.params.layout.group_size == t.params.layout.group_size);
  const QuantizedTensor u = unpack(back.packed);
  CHECK(u.codes == t.codes);

  // Decode from the file alone, following docs/files.md: bit stream per row,
  // value = (u - code_offset) * scale, scale index by granularity.
  std::vector<float> expect(w.size());
  t.dequantize({expect.data(), rows, cols});
  const auto& meta = f.metadata();
  const std::string k = "model.layers.0.mlp.up_proj.weight.lowbit.";
  const int b = std::stoi(meta.at(k + "bits"));
  const int offset = std::stoi(meta.at(k + "code_offset"));
  const auto gs = std::stol(meta.at(k + "group_size"));
  const std::string gran = meta.at(k + "granularity");
  const auto qbytes = f.bytes("model.layers.0.mlp.up_proj.weight.qweight");
  const auto scales = f.to_float("model.layers.0.mlp.up_proj.weight.scales");
  const std::vector<float> zeros = f.contains("model.layers.0.mlp.up_proj.weight.zeros")
                                       ? f.to_float("model.layers.0.mlp.up_proj.weight.zeros")
                                       : std::vector<float>{};
  CHECK(zeros.empty() == !t.params.format.asymmetric());
  const auto row_bytes = f.info("model.layers.0.mlp.up_proj.weight.qweight").shape[1];
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) {
      const Index bit = c * b;
      unsigned v = 0;
      for (int j = 0; j < b; ++j) {
        const Index s = bit + j;
        v |= ((qbytes[static_cast<std::size_t>(r * row_bytes + s / 8)] >> (s % 8)) & 1u) << j;
      }
      const std::size_t si = gran == "tensor" ? 0 : gran == "channel" ? static_cast<std::size_t>(r)
                                                                        : static_cast<std::size_t>(r * ((cols + gs - 1) / gs) + c / gs);
      // an asymmetric weight also stores one signed zero z per scale: (u - offset - z)·scale
      const float z = zeros.empty() ? 0.0f : zeros[si];
      const float value = (static_cast<float>(static_cast<int>(v) - offset) - z) * scales[si];
      CHECK(value == expect[static_cast<std::size_t>(r * cols + c)]);
    }
  fs::remove(path);
}
}  // namespace

TEST_CASE("quantized export: round trips and hand decoding for each format and granularity") {
  round_trip(Quantizer<Int<4>, PerGroup<>, AbsMax>(PerGroup<>{8}), 4, "rtn");  // 20 cols: a partial last group
  round_trip(Quantizer<Int<3>, PerChannel, AbsMax>(), 3, "qaft");
  round_trip(Quantizer<GptqGrid<2>, PerTensor, AbsMax>(), 2, "gptq");
  round_trip(Quantizer<IntFull<8>, PerChannel, AbsMax>(), 8, "rtn");
  round_trip(Quantizer<Int<6>, PerGroup<5>, AbsMax>(), 6, "rtn");
  round_trip(Quantizer<IntAsym<4>, PerGroup<>, AbsMax>(PerGroup<>{8}), 4, "gptq");
  round_trip(Quantizer<IntAsym<8>, PerChannel, MseShrink>(), 8, "rtn");
}

TEST_CASE("quantized export: inconsistent files are refused with the weight named") {
  const std::vector<float> w = test::gaussian(4 * 8, 1.0f, 3);
  const auto t = Quantizer<Int<4>, PerChannel, AbsMax>().quantize({w.data(), 4, 8});
  const auto p = pack(t);
  const auto path = temp_file("lowbit_qexport_bad");
  const auto write_with = [&](const std::string& key, const std::string& value) {
    io::SafetensorsWriter sw;
    io::add_quantized(sw, "w", p, "rtn");
    if (!key.empty()) sw.set_metadata(key, value);
    sw.write(path);
    return io::SafetensorsFile::open(path);
  };
  CHECK_NOTHROW((void)io::read_quantized(write_with("", ""), "w"));
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("w.lowbit.format", "float"), "w"),
                       doctest::Contains("unknown quantization format 'float'"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("w.lowbit.bits", "5"), "w"),
                       doctest::Contains("quantized weight 'w'"), Error);
  // (the row length no longer matches group_size, which is checked first)
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("w.lowbit.shape", "4,9"), "w"),
                       doctest::Contains("must equal its 9 columns"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("w.lowbit.shape", "5,8"), "w"),
                       doctest::Contains("qweight must be U8"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("w.lowbit.shape", "4x8"), "w"),
                       doctest::Contains("rows,cols"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("w.lowbit.granularity", "row"), "w"),
                       doctest::Contains("unknown granularity"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("w.lowbit.qmax", "8"), "w"),
                       doctest::Contains("qmin/qmax"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("lowbit.format_version", "2"), "w"),
                       doctest::Contains("format_version"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with("", ""), "v"), doctest::Contains("'v.lowbit."), Error);
  // A scale of zero.
  auto bad = p;
  bad.params.scales[1] = 0.0f;
  io::SafetensorsWriter sw;
  io::add_quantized(sw, "w", bad, "rtn");
  sw.write(path);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(io::SafetensorsFile::open(path), "w"),
                       doctest::Contains("not finite and positive"), Error);
  fs::remove(path);
}

TEST_CASE("fake-quantized export: plain F32 / F16 tensors under the original names") {
  std::vector<float> w = test::gaussian(3 * 16, 1.0f, 5);
  Quantizer<Int<4>, PerChannel, AbsMax>().fake_quantize_in_place({w.data(), 3, 16});
  const auto path = temp_file("lowbit_fakeq");
  io::write_float_safetensors(path, {{"model.embed.weight", {{3, 16}, w}}}, io::DType::F16);
  const auto f = io::SafetensorsFile::open(path);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.info("model.embed.weight").dtype == io::DType::F16);
  const auto back = f.to_float("model.embed.weight");
  for (std::size_t i = 0; i < w.size(); ++i) CHECK(back[i] == io::f16_to_f32(io::f32_to_f16(w[i])));
  io::write_float_safetensors(path, {{"model.embed.weight", {{3, 16}, w}}});
  CHECK(io::SafetensorsFile::open(path).to_float("model.embed.weight") == w);
  CHECK_THROWS_AS(io::write_float_safetensors(path, {{"x", {{1}, {1.0f}}}}, io::DType::I32), Error);
  fs::remove(path);
}

// Regressions (issue #17): sizes from metadata go through checked arithmetic, codes
// outside the format are refused, and granularity fields must agree.
TEST_CASE("quantized export: hostile sizes, out-of-range codes and mismatched group sizes are refused") {
  const std::vector<float> w = test::gaussian(4 * 8, 1.0f, 5);
  const auto p = pack(Quantizer<Int<4>, PerChannel, AbsMax>().quantize({w.data(), 4, 8}));
  const auto path = temp_file("lowbit_qexport_hostile");
  const auto write_with = [&](const PackedTensor& packed, const std::map<std::string, std::string>& meta) {
    io::SafetensorsWriter sw;
    io::add_quantized(sw, "w", packed, "rtn");
    for (const auto& [k, v] : meta) sw.set_metadata(k, v);
    sw.write(path);
    return io::SafetensorsFile::open(path);
  };
  const std::string file = path.string();
  // 4 × 2^62 codes: rows·cols overflows 64 bits (UBSan reported signed overflow here).
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with(p, {{"w.lowbit.shape", "4,4611686018427387904"},
                                                               {"w.lowbit.group_size", "4611686018427387904"}}),
                                                "w"),
                       doctest::Contains("overflows"), Error);
  // 1 × 2^62: countable, but the stored bytes cannot match; refused with the file named.
  const auto huge_row = write_with(p, {{"w.lowbit.shape", "1,4611686018427387904"},
                                       {"w.lowbit.group_size", "4611686018427387904"}});
  CHECK_THROWS_WITH_AS((void)io::read_quantized(huge_row, "w"), doctest::Contains("qweight must be U8 [1, 2305843009213693952]"),
                       Error);
  CHECK_THROWS_WITH_AS((void)io::read_quantized(huge_row, "w"), doctest::Contains(file.c_str()), Error);
  // A group size on a per-channel weight.
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with(p, {{"w.lowbit.group_size", "4"}}), "w"),
                       doctest::Contains("must equal its 8 columns"), Error);
  // Stored nibble 0 is signed -8, below narrow int4's qmin of -7.
  auto low = p;
  low.data[0] = 0x00;
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with(low, {}), "w"), doctest::Contains("outside -7..7"), Error);
  // The format's own complaint carries the weight and the file.
  CHECK_THROWS_WITH_AS((void)io::read_quantized(write_with(p, {{"w.lowbit.format", "float"}}), "w"),
                       doctest::Contains(file.c_str()), Error);
  fs::remove(path);
}

TEST_CASE("packing: byte counts cannot overflow") {
  CHECK(packed_bytes(4611686018427387904LL, 4) == 2305843009213693952LL);
  CHECK(packed_bytes(std::numeric_limits<Index>::max(), 8) == std::numeric_limits<Index>::max());
  for (Index n = 0; n < 40; ++n)
    for (int b = 2; b <= 8; ++b) CHECK(packed_bytes(n, b) == (n * b + 7) / 8);
}
