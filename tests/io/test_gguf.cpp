// GGUF container: lowbit's reader on a file written by llama.cpp's gguf-py
// (tests/fixtures/gguf, scripts/fixtures/gen_gguf_fixtures.py) — every metadata type
// and value, tensor shapes and types, decoded tensors bit for bit against gguf-py's
// own dequantization; lowbit's writer reproducing gguf-py's bytes; hostile files.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "lowbit/io/file.hpp"
#include "lowbit/io/gguf.hpp"
#include "lowbit/io/safetensors.hpp"

using namespace lowbit;
using namespace lowbit::io;
namespace fs = std::filesystem;

namespace {

const std::string fixture_dir = std::string(LOWBIT_FIXTURE_DIR) + "/gguf/";

std::vector<std::uint8_t> fixture_bytes() {
  const std::string s = read_file(fixture_dir + "gguf_py.gguf");
  return {s.begin(), s.end()};
}

fs::path temp_path(const char* name) {
  return fs::temp_directory_path() / (std::string(name) + "_" + std::to_string(::getpid()) + ".gguf");
}

template <class T>
void poke(std::vector<std::uint8_t>& b, std::size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

/// Offset of the first occurrence of `text` in b (the test's own landmarks).
std::size_t find(const std::vector<std::uint8_t>& b, std::string_view text) {
  const auto it = std::search(b.begin(), b.end(), text.begin(), text.end());
  REQUIRE(it != b.end());
  return static_cast<std::size_t>(it - b.begin());
}

std::string gguf_error(std::vector<std::uint8_t> b) {
  try {
    (void)GgufFile::from_bytes(std::move(b), "hostile.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("gguf: every metadata type and value as gguf-py wrote it") {
  const GgufFile f = GgufFile::open(fixture_dir + "gguf_py.gguf");
  CHECK(f.header().version == 3);
  CHECK(f.header().alignment == 64);
  CHECK(f.string("general.architecture") == "llama");
  CHECK(f.string("general.name") == "lowbit gguf fixture");
  CHECK(f.at("test.u8").type == GgufType::u8);
  CHECK(f.integer("test.u8") == 200);
  CHECK(f.integer("test.i8") == -100);
  CHECK(f.integer("test.u16") == 60000);
  CHECK(f.integer("test.i16") == -30000);
  CHECK(f.integer("test.u32") == 4000000000LL);
  CHECK(f.integer("test.i32") == -2000000000LL);
  CHECK(f.at("test.u64").u == (std::uint64_t{1} << 63) + 5);
  CHECK(f.integer("test.i64") == -(std::int64_t{1} << 62));
  CHECK(f.at("test.f32").f == static_cast<double>(0.1f));
  CHECK(f.at("test.f64").f == 1.0 / 3.0);
  CHECK(f.at("test.bool").u == 1);
  CHECK(f.string("test.string") == "h\xc3\xa9llo, \xe2\x96\x81world");
  const GgufValue& strings = f.at("test.strings");
  REQUIRE(strings.type == GgufType::array);
  CHECK(strings.elem == GgufType::string);
  REQUIRE(strings.items.size() == 5);
  CHECK(strings.items[3].s == "\xe2\x96\x81the");
  CHECK(strings.items[4].s.empty());
  const GgufValue& ints = f.at("test.i32s");
  REQUIRE(ints.items.size() == 3);
  CHECK(ints.items[1].i == -2);
  CHECK(f.at("test.f32s").items[2].f == static_cast<double>(1e-8f));
  CHECK_THROWS_WITH_AS((void)f.integer("test.u64"), doctest::Contains("is out of range"), Error);
  CHECK_THROWS_WITH_AS((void)f.integer("test.u8", 0, 100), doctest::Contains("'test.u8' = 200 is outside 0..100"),
                       Error);
  CHECK_THROWS_WITH_AS((void)f.string("test.u8"), doctest::Contains("must be a string, got u8"), Error);
  CHECK_THROWS_WITH_AS((void)f.at("llama.block_count"), doctest::Contains("'llama.block_count' is missing"), Error);
}

TEST_CASE("gguf: tensors decode bit for bit as gguf-py decodes them") {
  const GgufFile f = GgufFile::open(fixture_dir + "gguf_py.gguf");
  const auto expected = SafetensorsFile::open(fixture_dir + "gguf_py_expected.safetensors");
  const std::vector<std::string> names = {"tok.f32", "w.f16", "w.bf16", "w.q8_0", "w.q4_k", "w.iq4_nl"};
  const std::vector<std::uint32_t> types = {0, 1, 30, 8, 12, 20};
  REQUIRE(f.tensors().size() == names.size());
  for (std::size_t k = 0; k < names.size(); ++k) {
    CAPTURE(names[k]);
    const GgufTensorInfo& t = f.tensor(names[k]);
    CHECK(t.ggml_type == types[k]);
    CHECK(t.offset % 64 == 0);
    const auto& shape = expected.info(names[k]).shape;  // numpy order: rows first
    REQUIRE(t.ne.size() == shape.size());
    CHECK(t.cols() == static_cast<std::uint64_t>(shape.back()));
    CHECK(t.rows() == static_cast<std::uint64_t>(shape.front()));
    const std::vector<float> got = f.to_float(names[k]);
    const std::vector<float> want = expected.to_float(names[k]);
    REQUIRE(got.size() == want.size());
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("gguf: lowbit's writer reproduces gguf-py's file byte for byte") {
  const std::vector<std::uint8_t> original = fixture_bytes();
  const GgufFile f = GgufFile::from_bytes(original, "gguf_py.gguf");
  GgufWriter w;
  for (const auto& [key, value] : f.header().metadata) w.set(key, value);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.ne, t.ggml_type);
  const fs::path path = temp_path("lowbit_gguf_copy");
  w.write(path, [&](std::size_t k, std::vector<std::uint8_t>& out) {
    const auto b = f.bytes(f.tensors()[k].name);
    out.assign(b.begin(), b.end());
  });
  const std::string written = read_file(path);
  fs::remove(path);
  CHECK(written.size() == original.size());
  CHECK(std::memcmp(written.data(), original.data(), std::min(written.size(), original.size())) == 0);
}

TEST_CASE("gguf: a writer whose tensor source goes wrong leaves the old file in place") {
  const fs::path path = temp_path("lowbit_gguf_atomic");
  write_file_atomic(path, std::string_view("old contents"));
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.add_tensor("a", {32, 2}, 8);  // q8_0: 2 rows of one 34-byte block
  CHECK(w.tensors()[0].nbytes == 68);
  CHECK_THROWS_WITH_AS(w.write(path, [](std::size_t, std::vector<std::uint8_t>& out) { out.assign(10, 0); }),
                       doctest::Contains("tensor 'a' has 10 bytes, its type and shape need 68"), Error);
  CHECK(read_file(path) == "old contents");
  for (const auto& e : fs::directory_iterator(path.parent_path()))
    CHECK(e.path().filename().string().rfind(path.filename().string() + ".tmp", 0) != 0);
  fs::remove(path);
  CHECK_THROWS_WITH_AS(w.add_tensor("a", {32}, 0), doctest::Contains("'a' is declared twice"), Error);
  CHECK_THROWS_WITH_AS(w.add_tensor("b", {33, 2}, 8), doctest::Contains("not a whole number of q8_0 blocks of 32"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_tensor(std::string(64, 'x'), {32}, 0), doctest::Contains("names have 1 to 63 bytes"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_tensor("c", {32}, 23), doctest::Contains("ggml type 23 is not one lowbit reads"), Error);
}

TEST_CASE("gguf: every truncation of a valid file is a clear error") {
  const std::vector<std::uint8_t> b = fixture_bytes();
  const GgufFile whole_file = GgufFile::from_bytes(b, "x");
  const std::size_t data_start = whole_file.header().data_start;
  Index refused = 0;
  for (std::size_t n = 0; n < b.size(); ++n) {
    const std::string e = gguf_error({b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)});
    refused += e.rfind("GGUF file 'hostile.gguf'", 0) == 0 ? 1 : 0;
  }
  // Truncating inside the last tensor's padding keeps every tensor whole: accepted.
  const auto& last = whole_file.tensors().back();
  const std::size_t whole = data_start + last.offset + last.nbytes;
  CHECK(refused == static_cast<Index>(whole));
}

TEST_CASE("gguf: hostile headers name what is wrong") {
  const std::vector<std::uint8_t> good = fixture_bytes();
  auto with = [&](auto mutate) {
    std::vector<std::uint8_t> b = good;
    mutate(b);
    return gguf_error(std::move(b));
  };
  CHECK(with([](auto& b) { b[0] = 'X'; }).find("does not start with the magic 'GGUF'") != std::string::npos);
  CHECK(with([](auto& b) { poke<std::uint32_t>(b, 4, 4); }).find("version 4 is not supported") != std::string::npos);
  CHECK(with([](auto& b) { poke<std::uint64_t>(b, 8, std::uint64_t{1} << 60); }).find("the tensor count") !=
        std::string::npos);
  CHECK(with([](auto& b) { poke<std::uint64_t>(b, 16, std::uint64_t{1} << 60); }).find("the metadata count") !=
        std::string::npos);
  // The first key's length (right after the counts) claims more than the file.
  CHECK(with([](auto& b) { poke<std::uint64_t>(b, 24, std::uint64_t{1} << 40); }).find("needs 1099511627776 bytes") !=
        std::string::npos);
  // test.strings' array length.
  const std::size_t strings = find(good, "test.strings") + 12 + 4 + 4;
  CHECK(with([&](auto& b) { poke<std::uint64_t>(b, strings, std::uint64_t{1} << 62); })
            .find("entries cannot fit") != std::string::npos);
  // test.u8's value type becomes 13 (no such type); test.strings' element type 9.
  const std::size_t u8 = find(good, "test.u8") + 7;
  CHECK(with([&](auto& b) { poke<std::uint32_t>(b, u8, 13); }).find("value type 13 is not a GGUF type") !=
        std::string::npos);
  CHECK(with([&](auto& b) { poke<std::uint32_t>(b, strings - 4, 9); })
            .find("arrays of arrays are not supported") != std::string::npos);
  CHECK(with([&](auto& b) { b[find(good, "test.bool") + 9 + 4] = 2; }).find("a bool must be 0 or 1") !=
        std::string::npos);
  // Tensor infos: 'w.q8_0' (name, n_dims, ne0, ne1, type, offset).
  const std::size_t q8 = find(good, "w.q8_0") + 6;
  CHECK(with([&](auto& b) { poke<std::uint32_t>(b, q8, 5); }).find("5 dimensions (1 to 4 allowed)") !=
        std::string::npos);
  CHECK(with([&](auto& b) { poke<std::uint64_t>(b, q8 + 4, 48); })
            .find("a row of 48 weights is not a whole number of q8_0 blocks of 32") != std::string::npos);
  CHECK(with([&](auto& b) { poke<std::uint64_t>(b, q8 + 12, std::uint64_t{1} << 62); }).find("overflows") !=
        std::string::npos);
  CHECK(with([&](auto& b) { poke<std::uint32_t>(b, q8 + 20, 16); }).find("ggml type 16 is not one lowbit reads") !=
        std::string::npos);
  CHECK(with([&](auto& b) { poke<std::uint64_t>(b, q8 + 24, 1); }).find("is not a multiple of the alignment 64") !=
        std::string::npos);
  CHECK(with([&](auto& b) { poke<std::uint64_t>(b, q8 + 24, 0); }).find("overlap") != std::string::npos);
  CHECK(with([&](auto& b) { poke<std::uint64_t>(b, q8 + 24, 1 << 20); }).find("spans bytes") != std::string::npos);
  // general.alignment 48, and a duplicate key (test.u16 renamed test.u32).
  const std::size_t align = find(good, "general.alignment") + 17 + 4;
  CHECK(with([&](auto& b) { poke<std::uint32_t>(b, align, 48); }).find("general.alignment 48 is not a power of two") !=
        std::string::npos);
  CHECK(with([&](auto& b) { b[find(good, "test.u16") + 6] = '3'; b[find(good, "test.u16") + 7] = '2'; })
            .find("metadata key 'test.u32' appears twice") != std::string::npos);
}
