// GPTQ checkpoints in the Hugging Face layout (io/gptq_checkpoint.hpp,
// nn/gptq_export.hpp): lowbit's packing equals the bytes of a PyTorch packer written
// from AutoGPTQ's QuantLinear.pack semantics and its dequantization PyTorch's values
// (tests/fixtures/gptq_checkpoint, scripts/fixtures/gen_gptq_checkpoint_fixtures.py);
// tiny Llama / GPT-2 models quantized by GPTQ (act-order, sym and asym) and RTN
// written as a folder and read back hold exactly the fake-quantized weights; the
// config files say what the weights are; hostile folders are refused by name.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/gptq_checkpoint.hpp"
#include "lowbit/io/half.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/nn/evaluate.hpp"
#include "lowbit/nn/gptq_export.hpp"
#include "shared_data.hpp"
#include "../nn/tiny_config.hpp"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

const std::string fixture_file = std::string(LOWBIT_FIXTURE_DIR) + "/gptq_checkpoint/quant_linear.safetensors";

template <class T>
std::vector<T> tensor_as(const io::SafetensorsFile& f, const std::string& name) {
  const auto raw = f.bytes(name);
  std::vector<T> v(raw.size() / sizeof(T));
  std::memcpy(v.data(), raw.data(), raw.size());
  return v;
}

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("lowbit_gptq_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

/// The fixture case's inputs as lowbit holds them: signed codes, QuantParams with
/// scales [out, groups] and signed zeros, g_idx.
struct FixtureCase {
  QuantParams params;
  std::vector<std::int8_t> codes;
  std::vector<Index> g_idx;
};

FixtureCase fixture_case(const io::SafetensorsFile& f, const std::string& c, int bits, bool sym) {
  const auto u = tensor_as<std::uint8_t>(f, c + ".codes");
  const auto zp = tensor_as<std::uint8_t>(f, c + ".zero_points");
  const auto scales = f.to_float(c + ".scales");
  const auto g = tensor_as<std::int32_t>(f, c + ".g_idx");
  const Index out = f.info(c + ".codes").shape[0], in = f.info(c + ".codes").shape[1];
  const Index groups = f.info(c + ".scales").shape[0];
  FixtureCase fc;
  fc.params.format = integer_format(sym ? CodeSet::gptq : CodeSet::asym, bits);
  fc.params.layout = {ScaleLayout::Kind::group, out, in, in / groups};
  const int off = fc.params.format.code_offset;
  for (Index o = 0; o < out; ++o)
    for (Index k = 0; k < groups; ++k) {
      const auto at = static_cast<std::size_t>(k * out + o);
      fc.params.scales.push_back(scales[at]);
      if (!sym) fc.params.zeros.push_back(static_cast<float>(zp[at] - off));
      if (sym) REQUIRE(zp[at] == off);
    }
  for (const std::uint8_t x : u) fc.codes.push_back(static_cast<std::int8_t>(x - off));
  fc.g_idx.assign(g.begin(), g.end());
  return fc;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- tiny models -------------------------------------------------------------------

nn::TransformerConfig tiny(nn::Architecture arch) {
  nn::TransformerConfig c = test::tiny_config(arch);  // widened: every linear's dimensions are
  c.dim = 64;                                          // multiples of 32 (3-bit qzeros need them)
  c.hidden = 128;
  return c;
}

nn::Transformer tiny_model(nn::TransformerConfig c, std::uint64_t seed) {
  nn::Transformer m(std::move(c), seed);
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::normal_distribution<float> n(0.0f, 0.02f);
  for (autograd::Parameter* p : m.parameters())  // non-trivial biases and norms, so rounding them shows
    if (p->name().ends_with(".bias") || p->name().find("norm") != std::string::npos ||
        p->name().find("ln_") != std::string::npos)
      for (float& x : p->values()) x += n(rng);
  return m;
}

std::vector<std::vector<int>> random_windows(int count, int len, int vocab, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  std::vector<std::vector<int>> w(static_cast<std::size_t>(count), std::vector<int>(static_cast<std::size_t>(len)));
  for (auto& row : w)
    for (int& t : row) t = tok(rng);
  return w;
}

std::vector<std::span<const int>> spans(const std::vector<std::vector<int>>& w) {
  return {w.begin(), w.end()};
}

/// The parameter's values in the layout of a Hugging Face file read back by lowbit:
/// canonical [out, in], q/k rows of a llama2.c-style model in rotate_half order.
std::vector<float> as_read_back(const nn::TransformerConfig& c, autograd::Parameter& p) {
  std::vector<float> v(p.values().begin(), p.values().end());
  const bool qk = p.name().ends_with("q_proj.weight") || p.name().ends_with("k_proj.weight");
  if (c.arch == nn::Architecture::llama && c.rope_style == autograd::RopeStyle::interleaved && qk)
    v = nn::permute_rope_rows<float>(v, p.dim(0), p.dim(1), c.head_dim(), nn::RopeRows::to_half);
  return v;
}

/// Checks a read-back checkpoint against the model it was written from: quantized
/// linears bit for bit, everything else to float16 rounding.
void check_round_trip(nn::Transformer& m, const nn::GptqExport& ex, const nn::Checkpoint& ck) {
  CHECK(ck.config.dim == m.config().dim);
  CHECK(ck.config.layers == m.config().layers);
  CHECK(ck.config.kv_heads == m.config().kv_heads);
  std::size_t quantized = 0;
  for (autograd::Parameter* p : m.parameters()) {
    CAPTURE(p->name());
    REQUIRE(ck.weights.count(p->name()) == 1);
    const nn::Weight& w = ck.weights.at(p->name());
    CHECK(w.shape == std::vector<std::int64_t>(p->shape().dims.begin(), p->shape().dims.begin() + p->shape().ndim));
    std::vector<float> expect = as_read_back(m.config(), *p);
    if (ex.layers.count(p->name())) {
      ++quantized;
      CHECK(same_bits(w.values, expect));
    } else {
      for (float& x : expect) x = io::f16_to_f32(io::f32_to_f16(x));
      CHECK(same_bits(w.values, expect));
    }
  }
  CHECK(quantized == ex.layers.size());
  CHECK(ck.weights.size() == m.parameters().size());
}

io::Json read_json(const fs::path& p) { return io::Json::parse(io::read_file(p), p.string()); }

/// Rewrites dir/model.safetensors, letting `edit` change each tensor (name, dtype,
/// shape, bytes) or drop it (return false).
void rewrite_tensors(const fs::path& dir,
                     const std::function<bool(std::string&, io::DType&, std::vector<std::int64_t>&,
                                              std::vector<std::uint8_t>&)>& edit) {
  io::SafetensorsWriter w;
  {
    const auto f = io::SafetensorsFile::open(dir / "model.safetensors");
    for (const auto& t : f.tensors()) {
      std::string name = t.name;
      io::DType dtype = t.dtype;
      std::vector<std::int64_t> shape = t.shape;
      const auto raw = f.bytes(t.name);
      std::vector<std::uint8_t> bytes(raw.begin(), raw.end());
      if (edit(name, dtype, shape, bytes)) w.add(name, dtype, shape, bytes);
    }
  }
  w.write(dir / "model.safetensors");
}

void replace_in_file(const fs::path& p, const std::string& from, const std::string& to) {
  std::string s = io::read_file(p);
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  io::write_file_atomic(p, s);
}

std::string load_error(const fs::path& dir) {
  try {
    (void)nn::load_gptq_checkpoint(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("gptq checkpoint: packing equals AutoGPTQ's QuantLinear bytes, dequantization PyTorch's values") {
  const auto f = io::SafetensorsFile::open(fixture_file);
  int cases = 0;
  for (const int bits : {2, 3, 4, 8})
    for (const bool sym : {true, false})
      for (const bool act : {false, true}) {
        std::string c = "b";  // appends: GCC 12's -Wrestrict misfires on "b" + std::string&&
        c.append(std::to_string(bits)).append(sym ? "_sym_" : "_asym_").append(act ? "act" : "natural");
        CAPTURE(c);
        const FixtureCase fc = fixture_case(f, c, bits, sym);
        const io::GptqLinear p = io::pack_gptq_linear(c, fc.params, fc.codes, fc.g_idx);
        CHECK(p.qweight == tensor_as<std::uint32_t>(f, c + ".qweight"));
        CHECK(p.qzeros == tensor_as<std::uint32_t>(f, c + ".qzeros"));
        CHECK(p.g_idx == tensor_as<std::int32_t>(f, c + ".g_idx"));
        CHECK(p.scales == f.to_float(c + ".scales"));
        const std::vector<float> torch_w = f.to_float(c + ".weight");
        CHECK(same_bits(io::dequantize_gptq_linear(p), torch_w));
        // the reader takes PyTorch's tensors as they are (NAME = the case)
        const io::GptqLinear r = io::read_gptq_linear(f, c, bits, 16);
        CHECK(same_bits(io::dequantize_gptq_linear(r), torch_w));
        // and the value GPTQ's loaders compute is lowbit's own (code − z)·scale
        if (!act) {
          std::vector<float> lowbit_w(torch_w.size());
          QuantizedTensor{fc.params, fc.codes}.dequantize(MatrixView(lowbit_w.data(), p.out, p.in));
          CHECK(same_bits(lowbit_w, torch_w));
        }
        ++cases;
      }
  CHECK(cases == 16);
}

TEST_CASE("gptq checkpoint: what v1 cannot hold is refused, naming the tensor") {
  const auto f = io::SafetensorsFile::open(fixture_file);
  const FixtureCase base = fixture_case(f, "b4_asym_natural", 4, false);
  const auto error = [](const FixtureCase& fc) {
    try {
      (void)io::pack_gptq_linear("layer.q", fc.params, fc.codes, fc.g_idx);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  REQUIRE(error(base).empty());
  FixtureCase zero = base;
  zero.params.zeros[3] = -8.0f;  // zero point 0: v1 stores zero − 1
  CHECK(error(zero).find("tensor 'layer.q': zero point 0 of row 1, group 1 cannot be stored") != std::string::npos);
  CHECK(error(zero).find("gptq_v2") != std::string::npos);
  FixtureCase scale = base;
  scale.params.scales[0] = 0.1f;  // not a float16
  CHECK(error(scale).find("tensor 'layer.q': scale 0.1 of row 0, group 0 is not a positive float16") !=
        std::string::npos);
  CHECK(error(scale).find("':f16' scheme") != std::string::npos);
  FixtureCase g = base;
  g.g_idx[5] = 2;
  CHECK(error(g).find("g_idx[5] = 2 is outside 0 .. 1") != std::string::npos);
  FixtureCase five = base;
  five.params.format = integer_format(CodeSet::asym, 5);
  CHECK(error(five).find("5 bits; QuantLinear packs 2, 3, 4 or 8 bits") != std::string::npos);
  FixtureCase nf4 = base;
  nf4.params.format = integer_format(CodeSet::nf4, 4);
  nf4.params.zeros.clear();
  CHECK(error(nf4).find("format nf4 decodes through a level table") != std::string::npos);
  FixtureCase narrow = base;  // 32 rows × 24 columns: not QuantLinear's multiples of 32
  narrow.params.layout = {ScaleLayout::Kind::channel, 32, 24, 24};
  narrow.params.scales.assign(32, 0.5f);
  narrow.params.zeros.assign(32, 0.0f);
  narrow.codes.resize(32 * 24);
  narrow.g_idx.assign(24, 0);
  CHECK(error(narrow).find("shape [32, 24] (out, in): QuantLinear needs both dimensions to be multiples of 32") !=
        std::string::npos);

  CHECK_THROWS_WITH_AS((void)io::read_gptq_linear(f, "b4_asym_natural", 4, 8),
                       doctest::Contains(".scales' has shape [2, 32], expected [4, 32]"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_gptq_linear(f, "b4_asym_natural", 3, 16),
                       doctest::Contains(".qweight' has 4 rows, but 32 input features of 3 bits need 3"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_gptq_linear(f, "b4_asym_natural", 5, 16),
                       doctest::Contains("tensor 'b4_asym_natural': bits = 5"), Error);
  CHECK_THROWS_WITH_AS((void)io::read_gptq_linear(f, "b4_none", 4, 16),
                       doctest::Contains("tensor 'b4_none.qweight' is missing"), Error);
}

TEST_CASE("gptq checkpoint: a tiny Llama quantized by GPTQ with act-order reads back bit for bit") {
  struct Case {
    const char* scheme;
    autograd::RopeStyle rope;
    bool act_order, static_groups;
  };
  for (const Case& k : {Case{"int4:g32:gptq:f16", autograd::RopeStyle::interleaved, true, false},
                        Case{"int3:g32:asym:f16", autograd::RopeStyle::interleaved, true, false},
                        Case{"int2:g32:asym:f16", autograd::RopeStyle::half, true, true},
                        Case{"int8:channel:gptq:f16", autograd::RopeStyle::half, false, false},
                        Case{"int4:asym:f16", autograd::RopeStyle::interleaved, false, false}}) {  // per tensor
    CAPTURE(k.scheme);
    nn::TransformerConfig cfg = tiny(nn::Architecture::llama);
    cfg.rope_style = k.rope;
    nn::Transformer m = tiny_model(cfg, 7);
    const auto windows = random_windows(6, 12, cfg.vocab, 11);
    GptqOptions o;
    o.act_order = k.act_order;
    o.static_groups = k.static_groups;
    const QuantSpec spec = QuantSpec::parse(k.scheme);
    const nn::GptqExport ex = nn::quantize_for_gptq_checkpoint(m, spec, nn::GptqExportMethod::gptq, spans(windows), o);
    CHECK(ex.layers.size() == m.linear_layers().size());
    CHECK(ex.kept_float.empty());
    bool reordered = false;
    for (const auto& [name, l] : ex.layers)
      reordered = reordered || l.group_index != nn::gptq_export_detail::natural_groups(l.params.layout);
    CHECK(reordered == (k.act_order && !k.static_groups && spec.granularity == ScaleLayout::Kind::group));

    const fs::path dir = temp_dir("llama");
    nn::write_gptq_checkpoint(dir, m, ex);
    const nn::Checkpoint ck = nn::load_gptq_checkpoint(dir);
    CHECK(ck.config.rope_style == autograd::RopeStyle::half);
    check_round_trip(m, ex, ck);
    CHECK_NOTHROW((void)nn::Transformer(ck));

    // the config files
    const io::Json cfg_json = read_json(dir / "config.json");
    const io::Json& q = cfg_json.at("quantization_config");
    CHECK(q.at("bits").as_int64() == spec.bits);
    CHECK(q.at("group_size").as_int64() == (spec.granularity == ScaleLayout::Kind::group ? 32 : -1));
    CHECK(q.at("desc_act").as_bool() == k.act_order);
    CHECK(q.at("static_groups").as_bool() == k.static_groups);
    CHECK(q.at("sym").as_bool() == (spec.codes != CodeSet::asym));
    CHECK(q.at("true_sequential").as_bool());
    CHECK(q.at("damp_percent").number_text() == "0.01");
    CHECK(q.at("quant_method").as_string() == "gptq");
    CHECK(q.at("checkpoint_format").as_string() == "gptq");
    CHECK(q.find("modules_in_block_to_quantize") == nullptr);
    CHECK(cfg_json.at("model_type").as_string() == "llama");
    CHECK(cfg_json.at("torch_dtype").as_string() == "float16");
    CHECK(read_json(dir / "quantize_config.json").dump() == q.dump());

    // the tensors, as QuantLinear registers them
    const auto f = io::SafetensorsFile::open(dir / "model.safetensors");
    const std::string qp = "model.layers.1.self_attn.k_proj";
    const Index in = 64, out = 32, groups = spec.granularity == ScaleLayout::Kind::group ? 2 : 1;
    CHECK(f.info(qp + ".qweight").dtype == io::DType::I32);
    CHECK(f.info(qp + ".qweight").shape == std::vector<std::int64_t>{in / 32 * spec.bits, out});
    CHECK(f.info(qp + ".qzeros").shape == std::vector<std::int64_t>{groups, out / 32 * spec.bits});
    CHECK(f.info(qp + ".scales").dtype == io::DType::F16);
    CHECK(f.info(qp + ".scales").shape == std::vector<std::int64_t>{groups, out});
    CHECK(f.info(qp + ".g_idx").shape == std::vector<std::int64_t>{in});
    CHECK(!f.contains(qp + ".weight"));
    CHECK(f.info("model.norm.weight").dtype == io::DType::F16);
    fs::remove_all(dir);
  }
}

TEST_CASE("gptq checkpoint: GPT-2 (Conv1D) by GPTQ and RTN, biases and F32 tensors") {
  const nn::TransformerConfig cfg = tiny(nn::Architecture::gpt2);
  const auto windows = random_windows(6, 12, cfg.vocab, 5);
  for (const bool gptq : {true, false}) {
    CAPTURE(gptq);
    nn::Transformer m = tiny_model(cfg, 3);
    GptqOptions o;
    o.act_order = true;
    const QuantSpec spec = QuantSpec::parse(gptq ? "int4:g32:asym:f16" : "int8:g64:gptq:f16");
    const nn::GptqExport ex = nn::quantize_for_gptq_checkpoint(
        m, spec, gptq ? nn::GptqExportMethod::gptq : nn::GptqExportMethod::rtn, spans(windows), o);
    CHECK(ex.layers.size() == 8);
    const fs::path dir = temp_dir("gpt2");
    nn::GptqWriteOptions w;
    w.dtype = gptq ? nn::SaveDType::f16 : nn::SaveDType::f32;
    w.model_name_or_path = "tiny-gpt2";
    nn::write_gptq_checkpoint(dir, m, ex, w);
    const auto f = io::SafetensorsFile::open(dir / "model.safetensors");
    // c_attn: in 64, out 192, packed down the input like a Linear (AutoGPTQ packs the Conv1D transposed)
    CHECK(f.info("transformer.h.0.attn.c_attn.qweight").shape == std::vector<std::int64_t>{64 / 32 * spec.bits, 192});
    CHECK(f.info("transformer.h.0.attn.c_attn.bias").dtype == (gptq ? io::DType::F16 : io::DType::F32));
    CHECK(f.info("transformer.h.0.mlp.c_proj.g_idx").shape == std::vector<std::int64_t>{128});
    const nn::Checkpoint ck = nn::load_gptq_checkpoint(dir);
    if (gptq) {
      check_round_trip(m, ex, ck);
    } else {  // F32: every tensor exactly
      for (autograd::Parameter* p : m.parameters()) {
        CAPTURE(p->name());
        CHECK(same_bits(ck.weights.at(p->name()).values, as_read_back(cfg, *p)));
      }
    }
    const io::Json q = read_json(dir / "quantize_config.json");
    CHECK(q.at("desc_act").as_bool() == gptq);
    CHECK(q.at("true_sequential").as_bool() == gptq);
    CHECK(q.at("group_size").as_int64() == (gptq ? 32 : 64));
    CHECK(q.at("model_name_or_path").as_string() == "tiny-gpt2");
    CHECK(read_json(dir / "config.json").at("torch_dtype").as_string() == (gptq ? "float16" : "float32"));
    // lowbit evaluates the read-back model as it evaluated the quantized one (F32 only: F16 rounds the rest)
    if (!gptq) {
      const nn::Transformer back(ck);
      CHECK(nn::evaluate(back, spans(windows)).mean_nll() == nn::evaluate(m, spans(windows)).mean_nll());
    }
    fs::remove_all(dir);
  }
}

TEST_CASE("gptq checkpoint: schemes and models the layout cannot hold") {
  nn::Transformer m = tiny_model(tiny(nn::Architecture::llama), 1);
  const auto rtn = [&](const char* scheme) {
    (void)nn::quantize_for_gptq_checkpoint(m, QuantSpec::parse(scheme), nn::GptqExportMethod::rtn);
  };
  CHECK_THROWS_WITH_AS(rtn("int4:g32:gptq"), doctest::Contains("keeps float32 scales, but the checkpoint stores "
                                                               "float16 ones: use a ':f16' scheme"), Error);
  CHECK_THROWS_WITH_AS(rtn("q4_0"), doctest::Contains("q4_0 is a llama.cpp block format"), Error);
  CHECK_THROWS_WITH_AS(rtn("nf4:g64:f16"), doctest::Contains("is NormalFloat"), Error);
  CHECK_THROWS_WITH_AS(rtn("int5:g32:gptq:f16"), doctest::Contains("has 5 bits; QuantLinear packs 2, 3, 4 or 8"),
                       Error);
  CHECK_THROWS_WITH_AS((void)nn::quantize_for_gptq_checkpoint(m, QuantSpec::parse("int4:g32:gptq:f16"),
                                                              nn::GptqExportMethod::gptq),
                       doctest::Contains("GPTQ needs calibration windows"), Error);
  // a model changed after quantization is not written with stale codes
  nn::GptqExport ex = nn::quantize_for_gptq_checkpoint(m, QuantSpec::parse("int4:g32:gptq:f16"),
                                                       nn::GptqExportMethod::rtn);
  m.parameter("model.layers.0.mlp.down_proj.weight").values()[5] += 1.0f;
  const fs::path dir = temp_dir("stale");
  CHECK_THROWS_WITH_AS(nn::write_gptq_checkpoint(dir, m, ex),
                       doctest::Contains("weight 'model.layers.0.mlp.down_proj.weight' holds"), Error);
  CHECK(!fs::exists(dir / "config.json"));  // nothing written
  fs::remove_all(dir);
}

TEST_CASE("gptq checkpoint: hostile folders are refused, naming the tensor or field") {
  nn::Transformer m = tiny_model(tiny(nn::Architecture::llama), 2);
  const nn::GptqExport ex =
      nn::quantize_for_gptq_checkpoint(m, QuantSpec::parse("int4:g32:gptq:f16"), nn::GptqExportMethod::rtn);
  const fs::path dir = temp_dir("hostile");
  const std::string v = "model.layers.0.self_attn.v_proj";
  const auto fresh = [&] {
    fs::remove_all(dir);
    nn::write_gptq_checkpoint(dir, m, ex);
    REQUIRE(load_error(dir).empty());
  };

  fresh();  // truncated qweight: one row of words short
  rewrite_tensors(dir, [&](std::string& n, io::DType&, std::vector<std::int64_t>& s, std::vector<std::uint8_t>& b) {
    if (n == v + ".qweight") {
      s[0] -= 1;
      b.resize(b.size() - static_cast<std::size_t>(s[1]) * 4);
    }
    return true;
  });
  CHECK(load_error(dir).find("tensor '" + v + ".qweight' has 7 rows, but 64 input features of 4 bits need 8") !=
        std::string::npos);

  fresh();  // qzeros of the wrong shape
  rewrite_tensors(dir, [&](std::string& n, io::DType&, std::vector<std::int64_t>& s, std::vector<std::uint8_t>& b) {
    if (n == v + ".qzeros") {
      s = {1, static_cast<std::int64_t>(b.size() / 4)};
    }
    return true;
  });
  CHECK(load_error(dir).find(v + ".qzeros' has shape [1, 8], expected [2, 4]") != std::string::npos);

  fresh();  // g_idx out of range
  rewrite_tensors(dir, [&](std::string& n, io::DType&, std::vector<std::int64_t>&, std::vector<std::uint8_t>& b) {
    if (n == v + ".g_idx") {
      const std::int32_t bad = 2;
      std::memcpy(b.data() + 4 * 9, &bad, 4);
    }
    return true;
  });
  CHECK(load_error(dir).find(v + ".g_idx'[9] = 2 is outside 0 .. 1") != std::string::npos);

  fresh();  // scales as int32, a missing qzeros, a stray scales
  rewrite_tensors(dir, [&](std::string& n, io::DType& d, std::vector<std::int64_t>& s, std::vector<std::uint8_t>& b) {
    if (n == v + ".scales") {
      d = io::DType::I32;
      s[1] /= 2;
      (void)b;
    }
    return true;
  });
  CHECK(load_error(dir).find(v + ".scales' has dtype I32, expected F16") != std::string::npos);
  fresh();
  rewrite_tensors(dir, [&](std::string& n, io::DType&, std::vector<std::int64_t>&, std::vector<std::uint8_t>&) {
    return n != v + ".qzeros";
  });
  CHECK(load_error(dir).find(v + ".qzeros' is missing") != std::string::npos);
  fresh();
  rewrite_tensors(dir, [&](std::string& n, io::DType&, std::vector<std::int64_t>&, std::vector<std::uint8_t>&) {
    if (n == v + ".qweight") n = "model.layers.0.self_attn.v_proj_moved.qweight";
    return true;
  });
  CHECK(load_error(dir).find("tensor '" + v + ".g_idx' has no '" + v + ".qweight' beside it") != std::string::npos);

  // config fields
  fresh();
  replace_in_file(dir / "config.json", "\"bits\":4", "\"bits\":5");
  CHECK(load_error(dir).find("quantization_config: 'bits' = 5 is not supported") != std::string::npos);
  fresh();
  replace_in_file(dir / "config.json", "\"checkpoint_format\":\"gptq\"", "\"checkpoint_format\":\"gptq_v2\"");
  CHECK(load_error(dir).find("checkpoint_format 'gptq_v2' (GPTQModel's v2, zero points stored without the − 1) is "
                             "not supported yet") != std::string::npos);
  fresh();
  replace_in_file(dir / "config.json", "\"quant_method\":\"gptq\"", "\"quant_method\":\"awq\"");
  CHECK(load_error(dir).find("quant_method 'awq' is not \"gptq\"") != std::string::npos);
  fresh();
  replace_in_file(dir / "quantize_config.json", "\"group_size\":32", "\"group_size\":64");
  CHECK(load_error(dir).find("'group_size' differs between config.json's quantization_config and "
                             "quantize_config.json") != std::string::npos);
  fresh();
  replace_in_file(dir / "config.json", "\"group_size\":32", "\"group_size\":0");
  CHECK(load_error(dir).find("'group_size' = 0 must be -1 (one group) or positive") != std::string::npos);
  fresh();
  replace_in_file(dir / "config.json", ",\"quantization_config\"", ",\"not_quantization_config\"");
  CHECK(load_error(dir).find("'quantization_config' is missing") != std::string::npos);
  // a float loader says what the folder is instead of failing on an I32 tensor
  fresh();
  CHECK_THROWS_WITH_AS((void)nn::load_checkpoint(dir), doctest::Contains("nn::load_gptq_checkpoint"), Error);
  fs::remove_all(dir);
}

TEST_CASE("gptq checkpoint: stories260K by RTN int4:g32:gptq:f16 evaluates as the fake-quantized model") {
  LOWBIT_REQUIRE_SHARED_DATA(data);
  const fs::path model = data / "stories260K" / "stories260K.bin";
  if (!fs::exists(model)) {
    MESSAGE("skipped: ", model.string(), " not found");
    return;
  }
  nn::Transformer m(nn::load_checkpoint(model));
  const nn::GptqExport ex =
      nn::quantize_for_gptq_checkpoint(m, QuantSpec::parse("int4:g32:gptq:f16"), nn::GptqExportMethod::rtn);
  // hidden 172: gate/up (out 172) and down (in 172) cannot be packed and stay float
  CHECK(ex.kept_float.size() == 3 * static_cast<std::size_t>(m.config().layers));
  CHECK(ex.layers.size() == 4 * static_cast<std::size_t>(m.config().layers));
  const fs::path dir = temp_dir("stories260K");
  nn::GptqWriteOptions w;
  w.dtype = nn::SaveDType::f32;
  nn::write_gptq_checkpoint(dir, m, ex, w);
  const io::Json q = read_json(dir / "config.json").at("quantization_config");
  CHECK(q.at("modules_in_block_to_quantize").dump() ==
        R"([["self_attn.q_proj","self_attn.k_proj","self_attn.v_proj"],["self_attn.o_proj"]])");
  const nn::Transformer back(nn::load_gptq_checkpoint(dir));
  const auto windows = random_windows(8, 64, m.config().vocab, 3);
  const double fake = nn::evaluate(m, spans(windows)).mean_nll();
  const double read = nn::evaluate(back, spans(windows)).mean_nll();
  CHECK(std::abs(fake - read) <= 1e-6);
  fs::remove_all(dir);
}
