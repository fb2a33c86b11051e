// safetensors: a file written by an independent Python writer with PyTorch's F16 /
// BF16 rounding, writer round trips, and every kind of corrupt header.
#include <doctest/doctest.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.hpp"
#include "../support/fixture.hpp"

using lowbit::Error;
namespace io = lowbit::io;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> make_file(const std::string& header, std::size_t buffer_bytes) {
  std::vector<std::uint8_t> f(8 + header.size() + buffer_bytes, 0);
  const std::uint64_t n = header.size();
  std::memcpy(f.data(), &n, 8);
  std::memcpy(f.data() + 8, header.data(), header.size());
  return f;
}

std::string safetensors_error(const std::vector<std::uint8_t>& bytes) {
  try {
    (void)io::SafetensorsFile::from_bytes(bytes, "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

fs::path temp_dir(const char* name) {
  const auto d = fs::temp_directory_path() / ("lowbit_test_" + std::string(name) + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

bool same_float(float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }

}  // namespace

TEST_CASE("safetensors: reads a file written by an independent writer, F16/BF16 as PyTorch rounds them") {
  const lowbit::test::Fixture fx("io/reference.txt");
  const auto f = io::SafetensorsFile::open(fs::path(LOWBIT_FIXTURE_DIR) / "io" / "reference.safetensors");
  CHECK(f.tensors().size() == 4);
  CHECK(f.metadata().at("format") == "pt");
  const auto& u8 = f.info("tiny_u8");
  CHECK(u8.dtype == io::DType::U8);
  CHECK(std::vector<std::uint8_t>(f.bytes("tiny_u8").begin(), f.bytes("tiny_u8").end()) ==
        std::vector<std::uint8_t>{1, 2, 3});
  CHECK_THROWS_WITH_AS((void)f.to_float("tiny_u8"), doctest::Contains("tiny_u8"), Error);

  // F32 at buffer offset 3: not 4-byte aligned in memory, so it is copied.
  const auto w = f.load_float("weights_f32");
  CHECK(!w.zero_copy());
  CHECK(w.shape() == std::vector<std::int64_t>{2, 5});
  REQUIRE(w.values().size() == fx["weights_f32"].values.size());
  for (std::size_t i = 0; i < w.values().size(); ++i) CHECK(same_float(w.values()[i], fx["weights_f32"].values[i]));

  const auto h = f.to_float("values_f16");
  const auto b = f.to_float("values_bf16");
  const auto& src = fx["source"].values;
  REQUIRE(h.size() == src.size());
  REQUIRE(b.size() == src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    INFO("element ", i, " source ", src[i]);
    CHECK(same_float(h[i], fx["f16_as_f32"].values[i]));
    CHECK(same_float(b[i], fx["bf16_as_f32"].values[i]));
    // Narrowing matches PyTorch's .half() / .bfloat16() bit for bit.
    CHECK(io::f32_to_f16(src[i]) == static_cast<std::uint16_t>(fx["f16_bits"].values[i]));
    CHECK(io::f32_to_bf16(src[i]) == static_cast<std::uint16_t>(fx["bf16_bits"].values[i]));
  }
}

TEST_CASE("safetensors: half conversions at the edges") {
  CHECK(io::f16_to_f32(0x3C00) == 1.0f);
  CHECK(io::f16_to_f32(0x7BFF) == 65504.0f);
  CHECK(io::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(io::f16_to_f32(0x0400) == std::ldexp(1.0f, -14));
  CHECK(std::isinf(io::f16_to_f32(0xFC00)));
  CHECK(io::f16_to_f32(0xFC00) < 0);
  CHECK(std::isnan(io::f16_to_f32(0x7E00)));
  CHECK(std::isnan(io::bf16_to_f32(io::f32_to_bf16(std::nanf("")))));
  CHECK(io::f32_to_f16(std::nanf("")) == 0x7E00);
  // Exhaustive: every finite F16 survives F16 -> F32 -> F16.
  for (std::uint32_t u = 0; u < 0x10000; ++u) {
    const auto h16 = static_cast<std::uint16_t>(u);
    if ((h16 & 0x7C00) == 0x7C00 && (h16 & 0x3FF)) continue;  // NaN payloads are not kept
    if (io::f32_to_f16(io::f16_to_f32(h16)) != h16) {
      FAIL("F16 ", u, " does not round-trip");
    }
  }
}

TEST_CASE("safetensors: writer round trip, aligned zero-copy F32, padded header") {
  const auto dir = temp_dir("st_roundtrip");
  const auto path = dir / "model.safetensors";
  io::SafetensorsWriter w;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
  const std::vector<std::uint8_t> odd = {9, 8, 7};  // 3 bytes: must not misalign the floats
  w.add("z.codes", io::DType::U8, {3}, odd);
  w.add_f32("a.weight", {2, 3}, a);
  w.add_f16("b.half", {6}, a);
  w.add_bf16("c.bf", {3, 2}, a);
  w.add_f32("empty", {0, 4}, {});
  w.set_metadata("format", "pt");
  w.set_metadata("note", "unicode é \"quoted\"");
  w.write(path);
  CHECK(fs::directory_iterator(dir) != fs::directory_iterator());
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    CHECK(e.path().filename() == "model.safetensors");  // no temporary left behind
  }
  CHECK(files == 1);

  const auto f = io::SafetensorsFile::open(path);
  CHECK(f.metadata().at("note") == "unicode é \"quoted\"");
  std::uint64_t header_len = 0;
  const std::string raw = io::read_file(path);
  std::memcpy(&header_len, raw.data(), 8);
  CHECK(header_len % 8 == 0);
  const auto av = f.load_float("a.weight");
  CHECK(av.zero_copy());
  CHECK(std::vector<float>(av.values().begin(), av.values().end()) == a);
  const auto hv = f.to_float("b.half");
  const auto bv = f.to_float("c.bf");
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(hv[i] == io::f16_to_f32(io::f32_to_f16(a[i])));
    CHECK(bv[i] == io::bf16_to_f32(io::f32_to_bf16(a[i])));
  }
  CHECK(f.info("c.bf").shape == std::vector<std::int64_t>{3, 2});
  CHECK(f.info("empty").numel() == 0);
  CHECK(f.to_float("empty").empty());
  CHECK(std::vector<std::uint8_t>(f.bytes("z.codes").begin(), f.bytes("z.codes").end()) == odd);
  CHECK_THROWS_WITH_AS((void)f.info("nope"), doctest::Contains("has no tensor 'nope'"), Error);
  fs::remove_all(dir);
}

TEST_CASE("safetensors: writer refuses bad tensors and unwritable paths, losing nothing") {
  io::SafetensorsWriter w;
  const std::vector<float> v = {1, 2, 3};
  CHECK_THROWS_WITH_AS(w.add_f32("x", {2, 2}, v), doctest::Contains("'x'"), Error);
  w.add_f32("x", {3}, v);
  CHECK_THROWS_WITH_AS(w.add_f32("x", {3}, v), doctest::Contains("added twice"), Error);
  CHECK_THROWS_AS(w.add_f32("__metadata__", {3}, v), Error);
  CHECK_THROWS_AS(w.add_f32("", {3}, v), Error);

  CHECK_THROWS_WITH_AS(w.write("/nonexistent_lowbit_dir/sub/out.safetensors"),
                       doctest::Contains("/nonexistent_lowbit_dir/sub/out.safetensors"), Error);
  // The target is a directory: the rename fails, the directory and its content stay,
  // and no temporary file is left next to it.
  const auto dir = temp_dir("st_unwritable");
  fs::create_directories(dir / "taken");
  io::write_file_atomic(dir / "taken" / "keep.txt", "precious");
  CHECK_THROWS_WITH_AS(w.write(dir / "taken"), doctest::Contains("rename"), Error);
  CHECK(io::read_file(dir / "taken" / "keep.txt") == "precious");
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);
  // Overwriting an existing file replaces it whole.
  io::write_file_atomic(dir / "f.safetensors", "old");
  w.write(dir / "f.safetensors");
  CHECK(io::SafetensorsFile::open(dir / "f.safetensors").to_float("x") == v);
  fs::remove_all(dir);
}

TEST_CASE("safetensors: corrupt files are refused before any data is read, naming file and tensor") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}})";
  CHECK(safetensors_error(make_file(ok, 11)) == "");

  // Truncated and impossible lengths.
  CHECK(safetensors_error({1, 2, 3}).find("too short") != std::string::npos);
  CHECK(safetensors_error({}).find("bad.safetensors") != std::string::npos);
  auto too_long = make_file(ok, 11);
  const std::uint64_t huge = 1ull << 40;
  std::memcpy(too_long.data(), &huge, 8);
  CHECK(safetensors_error(too_long).find("exceeds the limit") != std::string::npos);
  const std::uint64_t past = too_long.size();
  std::memcpy(too_long.data(), &past, 8);
  CHECK(safetensors_error(too_long).find("past the end of the file") != std::string::npos);
  auto truncated = make_file(ok, 11);
  truncated.resize(truncated.size() - 1);
  CHECK(safetensors_error(truncated).find("tensor 'b'") != std::string::npos);
  CHECK(safetensors_error(truncated).find("past the end of the data buffer") != std::string::npos);

  // Header syntax.
  CHECK(safetensors_error(make_file(R"( {"a":1})", 0)).find("must start with '{'") != std::string::npos);
  CHECK(safetensors_error(make_file(R"({"a":{"dtype":"F32",}})", 0)).find("invalid JSON at byte") != std::string::npos);
  CHECK(safetensors_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   )", 8)) == "");  // space padding
  CHECK(safetensors_error(make_file("[1,2]", 0)).find("must start with '{'") != std::string::npos);

  const auto tensor_error = [](const std::string& header, std::size_t buf, const char* tensor, const char* what) {
    const std::string e = safetensors_error(make_file(header, buf));
    INFO(e);
    CHECK(e.find("bad.safetensors") != std::string::npos);
    CHECK(e.find(std::string("tensor '") + tensor + "'") != std::string::npos);
    CHECK(e.find(what) != std::string::npos);
  };
  tensor_error(R"({"w":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", 8, "w", "unknown dtype 'F31'");
  tensor_error(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "w", "need 12 bytes");
  tensor_error(R"({"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,4]}})", 4, "w", "need 8 bytes");
  tensor_error(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "w", "not a non-negative integer");
  tensor_error(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8, "w", "not a non-negative integer");
  tensor_error(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8, "w", "2^64");
  tensor_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "w", "end before they begin");
  tensor_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, "w", "[begin, end]");
  tensor_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8, "w", "past the end of the data buffer");
  tensor_error(R"({"w":{"dtype":"F32","shape":[2]}})", 8, "w", "needs dtype, shape and data_offsets");
  tensor_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", 8, "w", "unknown field 'extra'");
  tensor_error(R"({"w":[1]})", 8, "w", "not an object");
  tensor_error(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8, "w", "dtype is not a string");
  // Overlap, gap, unindexed tail.
  tensor_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
               8, "b", "overlap tensor 'a'");
  tensor_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})",
               12, "b", "belong to no tensor");
  CHECK(safetensors_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6)).find("last 2 bytes") !=
        std::string::npos);
  // Duplicate names: the JSON layer refuses the repeated key.
  CHECK(safetensors_error(make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2))
            .find("duplicate key \"a\"") != std::string::npos);
  // Metadata must be string → string.
  CHECK(safetensors_error(make_file(R"({"__metadata__":{"k":1}})", 0)).find("'k' is not a string") != std::string::npos);
  CHECK(safetensors_error(make_file(R"({"__metadata__":[]})", 0)).find("__metadata__") != std::string::npos);
  // Zero-sized tensors may share an offset.
  CHECK(safetensors_error(make_file(R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"f":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})", 0)) == "");
}

TEST_CASE("safetensors: open() names a missing file") {
  CHECK_THROWS_WITH_AS((void)io::SafetensorsFile::open("/nonexistent/x.safetensors"),
                       doctest::Contains("/nonexistent/x.safetensors"), Error);
}
