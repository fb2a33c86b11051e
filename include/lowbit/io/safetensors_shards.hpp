// The tensors of a Hugging Face checkpoint folder: one model.safetensors, or the
// shards that model.safetensors.index.json names ({"metadata": {...}, "weight_map":
// {tensor: "model-00001-of-00002.safetensors", ...}}), as save_pretrained writes a
// model over its shard size. Every shard stays memory-mapped in its stored type;
// a tensor is widened to fp32 only when it is asked for, so reading a model costs
// the page cache, not twice its fp32 size in RAM.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/io/safetensors.hpp"

namespace lowbit::io {

class SafetensorsShards {
 public:
  /// model.safetensors if the folder has one (as transformers prefers it), else the
  /// index and its shards. The index is checked against the shards: every tensor it
  /// names is in the file it names, every tensor of a shard is listed, none twice.
  static SafetensorsShards open_folder(const std::filesystem::path& dir) {
    SafetensorsShards s;
    const auto single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
    std::error_code ec;
    if (std::filesystem::exists(single, ec)) {
      s.source_ = single.string();
      s.add_shard(single);
      return s;
    }
    detail::check(std::filesystem::exists(index, ec), "model folder '", dir.string(),
                  "' has neither model.safetensors nor model.safetensors.index.json");
    return from_index(dir, read_file(index), index.string());
  }

  /// The shards in `dir` that an index's text names (`label`: the index's path, for
  /// messages), checked as open_folder checks them. The fuzz target's entry point.
  static SafetensorsShards from_index(const std::filesystem::path& dir, std::string_view json, std::string label) {
    SafetensorsShards s;
    s.source_ = std::move(label);
    s.open_index(dir, Json::parse(json, s.source_));
    return s;
  }

  /// Where the tensors come from (the single file or the index), for messages.
  [[nodiscard]] const std::string& source() const { return source_; }
  [[nodiscard]] std::size_t shard_count() const { return shards_.size(); }
  /// Every tensor name, sorted.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(where_.size());
    for (const auto& [name, shard] : where_) out.push_back(name);
    return out;
  }
  [[nodiscard]] bool contains(std::string_view name) const { return where_.count(std::string(name)) != 0; }
  [[nodiscard]] const SafetensorsFile& file_of(std::string_view name) const {
    const auto it = where_.find(std::string(name));
    if (it == where_.end()) detail::fail("checkpoint '", source_, "' has no tensor '", name, "'");
    return shards_[it->second];
  }
  [[nodiscard]] const TensorInfo& info(std::string_view name) const { return file_of(name).info(name); }
  /// The tensor widened to fp32 (a copy; F32, F16, BF16 or F64 stored).
  [[nodiscard]] std::vector<float> to_float(std::string_view name) const { return file_of(name).to_float(name); }

 private:
  SafetensorsShards() = default;

  /// Opens one file and records where its tensors are (no tensor in two files).
  void add_shard(const std::filesystem::path& path) {
    shards_.push_back(SafetensorsFile::open(path));
    const std::size_t k = shards_.size() - 1;
    const SafetensorsFile& f = shards_.back();
    for (const TensorInfo& t : f.tensors()) {
      const auto [it, fresh] = where_.emplace(t.name, k);
      detail::check(fresh, "checkpoint '", source_, "': tensor '", t.name, "' is in both '",
                    shards_[it->second].path(), "' and '", f.path(), "'");
    }
  }

  /// The index's tensors of shard `f` must be exactly the shard's.
  void check_listed(const SafetensorsFile& f, const std::vector<std::string>& listed) const {
    for (const std::string& name : listed)
      detail::check(f.contains(name), "checkpoint '", source_, "': the index puts tensor '", name, "' in '",
                    f.path(), "', which does not hold it");
    detail::check(f.tensors().size() == listed.size(), "checkpoint '", source_, "': shard '", f.path(), "' holds ",
                  f.tensors().size(), " tensors but the index lists ", listed.size(), " in it");
  }

  void open_index(const std::filesystem::path& dir, const Json& j) {
    const std::string& index = source_;
    detail::check(j.is_object(), "'", index, "' is not a JSON object");
    const Json* map = j.find("weight_map");
    detail::check(map && map->is_object(), "'", index, "': 'weight_map' is missing or not an object");
    detail::check(map->size() > 0, "'", index, "': 'weight_map' is empty");
    std::map<std::string, std::vector<std::string>> by_file;  // shard file → its tensors
    for (std::size_t i = 0; i < map->size(); ++i) {
      const std::string& name = map->keys()[i];
      const Json& file = map->value_at(i);
      detail::check(file.is_string(), "'", index, "': weight_map['", name, "'] is not a file name");
      const std::string& f = file.as_string();
      // A shard is a file beside the index: no folders, nothing outside the checkpoint.
      // (A NUL would end the name the system sees early, naming another file.)
      detail::check(!f.empty() && f.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos &&
                        f != "." && f != "..",
                    "'", index, "': weight_map['", name, "'] = '", f,
                    "' is not a plain file name in the model folder");
      by_file[f].push_back(name);
    }
    for (const auto& [file, names] : by_file) {
      std::error_code ec;
      detail::check(std::filesystem::is_regular_file(dir / file, ec), "'", index, "' names shard '", file,
                    "', which is not in '", dir.string(), "'");
    }
    for (const auto& [file, names] : by_file) add_shard(dir / file);
    std::size_t k = 0;
    for (const auto& [file, names] : by_file) check_listed(shards_[k++], names);
  }

  std::string source_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, std::size_t> where_;  ///< tensor → shard
};

}  // namespace lowbit::io
