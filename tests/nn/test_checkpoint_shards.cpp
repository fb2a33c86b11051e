// Sharded Hugging Face checkpoints (model.safetensors.index.json + shards): a model
// split across shards loads as the single file does, and an index that disagrees
// with its shards — or points outside the folder — is an error naming both.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/io/safetensors_shards.hpp"
#include "lowbit/nn/save.hpp"
#include "lowbit/nn/transformer.hpp"
#include "../support/logits.hpp"
#include "../support/temp_dir.hpp"
#include "tiny_config.hpp"

namespace {

namespace fs = std::filesystem;
namespace io = lowbit::io;
namespace nn = lowbit::nn;

/// `single` (a model.safetensors) rewritten as shards: tensor → shard number; the
/// index lists `listed` (default: where each tensor went).
void write_shards(const fs::path& single, const fs::path& dir, const std::map<std::string, int>& shard_of,
                  int shards, const std::map<std::string, std::string>& listed = {}) {
  const auto file = io::SafetensorsFile::open(single);
  std::vector<io::SafetensorsWriter> w(static_cast<std::size_t>(shards));
  io::Json map = io::Json::object();
  const auto name_of = [&](int k) {
    return "model-0000" + std::to_string(k + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
  };
  for (const auto& t : file.tensors()) {
    const int k = shard_of.count(t.name) ? shard_of.at(t.name) : 0;
    w[static_cast<std::size_t>(k)].add_f32(t.name, t.shape, file.to_float(t.name));
  }
  for (int k = 0; k < shards; ++k) w[static_cast<std::size_t>(k)].write(dir / name_of(k));
  if (listed.empty()) {
    for (const auto& t : file.tensors())
      map.set(t.name, io::Json::string(name_of(shard_of.count(t.name) ? shard_of.at(t.name) : 0)));
  } else {
    for (const auto& [name, f] : listed) map.set(name, io::Json::string(f));
  }
  io::Json index = io::Json::object();
  index.set("metadata", io::Json::object());
  index.set("weight_map", std::move(map));
  io::write_file_atomic(dir / "model.safetensors.index.json", index.dump());
}

struct Saved {
  fs::path dir;
  std::vector<std::string> names;
};

Saved saved_model(const std::string& tag) {
  nn::Transformer m(lowbit::test::tiny_config(nn::Architecture::llama), 5);
  Saved s{lowbit::test::temp_dir(tag), {}};
  nn::save_hf(m, s.dir);
  const auto file = io::SafetensorsFile::open(s.dir / "model.safetensors");
  for (const auto& t : file.tensors()) s.names.push_back(t.name);
  return s;
}

/// A folder beside `s` with its config.json and no tensors yet.
fs::path sibling(const Saved& s, const std::string& tag) {
  const fs::path d = lowbit::test::temp_dir(tag);
  fs::copy_file(s.dir / "config.json", d / "config.json");
  return d;
}

std::vector<float> logits(const nn::Transformer& m) { return lowbit::test::logits_of(m, {1, 5, 9, 2, 7}); }

}  // namespace

TEST_CASE("safetensors shards: a model split over three shards loads as the single file does") {
  const Saved s = saved_model("shards_ok");
  const fs::path d = sibling(s, "shards_ok3");
  std::map<std::string, int> shard_of;
  for (std::size_t i = 0; i < s.names.size(); ++i) shard_of[s.names[i]] = static_cast<int>(i % 3);
  write_shards(s.dir / "model.safetensors", d, shard_of, 3);
  const auto shards = io::SafetensorsShards::open_folder(d);
  CHECK(shards.shard_count() == 3);
  CHECK(shards.names().size() == s.names.size());
  CHECK(shards.source() == (d / "model.safetensors.index.json").string());
  const nn::Transformer a = nn::Transformer::load(s.dir), b = nn::Transformer::load(d);
  CHECK(logits(a) == logits(b));
  // A folder with both: model.safetensors wins, as in transformers.
  fs::copy_file(s.dir / "model.safetensors", d / "model.safetensors");
  CHECK(io::SafetensorsShards::open_folder(d).shard_count() == 1);
  fs::remove_all(s.dir);
  fs::remove_all(d);
}

TEST_CASE("safetensors shards: an index that disagrees with its shards is an error naming the tensor and file") {
  const Saved s = saved_model("shards_bad");
  const std::string a = "model-00001-of-00002.safetensors", b = "model-00002-of-00002.safetensors";
  std::map<std::string, int> half;
  for (std::size_t i = 0; i < s.names.size(); ++i) half[s.names[i]] = static_cast<int>(i % 2);
  std::map<std::string, std::string> listed;
  for (const auto& [name, k] : half) listed[name] = k ? b : a;
  const std::string moved = s.names[1];  // in shard b
  const auto expect_error = [&](std::map<std::string, std::string> index, const char* needle) {
    INFO(needle);
    const fs::path d = sibling(s, "shards_case");
    write_shards(s.dir / "model.safetensors", d, half, 2, index);
    CHECK_THROWS_WITH_AS((void)io::SafetensorsShards::open_folder(d), doctest::Contains(needle), lowbit::Error);
    CHECK_THROWS_WITH_AS((void)nn::Transformer::load(d), doctest::Contains("model.safetensors.index.json"),
                         lowbit::Error);
    fs::remove_all(d);
  };
  auto wrong = listed;
  wrong[moved] = a;
  expect_error(wrong, ("the index puts tensor '" + moved + "' in").c_str());
  auto unlisted = listed;
  unlisted.erase(moved);
  expect_error(unlisted, "tensors but the index lists");
  auto missing = listed;
  missing[moved] = "model-00003-of-00003.safetensors";
  expect_error(missing, "names shard 'model-00003-of-00003.safetensors', which is not in");
  auto outside = listed;
  outside[moved] = "../model-00002-of-00002.safetensors";
  expect_error(outside, "is not a plain file name in the model folder");
  auto folder = listed;
  folder[moved] = "sub/x.safetensors";
  expect_error(folder, "is not a plain file name");

  // The same tensor in two shards.
  {
    const fs::path d = sibling(s, "shards_twice");
    write_shards(s.dir / "model.safetensors", d, half, 2);
    const auto f = io::SafetensorsFile::open(d / a);
    io::SafetensorsWriter w;
    for (const auto& t : f.tensors()) w.add_f32(t.name, t.shape, f.to_float(t.name));
    w.add_f32(moved, {1}, std::vector<float>{1.0f});
    w.write(d / a);
    const std::string twice = "tensor '" + moved + "' is in both";
    CHECK_THROWS_WITH_AS((void)io::SafetensorsShards::open_folder(d), doctest::Contains(twice.c_str()),
                         lowbit::Error);
    fs::remove_all(d);
  }
  // Not an index at all.
  for (const char* text : {"[1, 2]", "{\"weight_map\": 3}", "{\"weight_map\": {}}", "{\"weight_map\": {\"x\": 1}}",
                           "{\"weight_map\""}) {
    INFO(text);
    const fs::path d = sibling(s, "shards_json");
    io::write_file_atomic(d / "model.safetensors.index.json", text);
    CHECK_THROWS_AS((void)io::SafetensorsShards::open_folder(d), lowbit::Error);
    fs::remove_all(d);
  }
  const fs::path empty = sibling(s, "shards_none");
  CHECK_THROWS_WITH_AS((void)nn::Transformer::load(empty),
                       doctest::Contains("has neither model.safetensors nor model.safetensors.index.json"),
                       lowbit::Error);
  fs::remove_all(empty);
  fs::remove_all(s.dir);
}
