// A compact vocabulary over GPT-2 ids: only the ids that occur in a training
// stream, so a small model does not pay for 50,257 embedding rows it never trains.
//
// Layout: compact ids 0 .. n-1 are the kept GPT-2 ids in ascending order (so
// <|endoftext|> = 50256, always kept, is the last of them), and compact id n is
// the unknown token, which every other GPT-2 id maps to. size() = n + 1.
// Saved as JSON: {"format": "lowbit-compact-vocab-v1", "gpt2_vocab_size": 50257,
// "unk": n, "gpt2_ids": [kept ids in compact order]}.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"

namespace lowbit::text {

class CompactVocab {
 public:
  static constexpr std::string_view format_tag = "lowbit-compact-vocab-v1";
  static constexpr int gpt2_vocab = 50257;
  static constexpr int gpt2_eos = 50256;

  CompactVocab() = default;

  /// The ids occurring in `train` (GPT-2 ids in [0, gpt2_vocab_size)), plus `keep`
  /// (<|endoftext|> by default) whether or not they occur.
  static CompactVocab from_tokens(std::span<const int> train, int gpt2_vocab_size = gpt2_vocab,
                                  std::span<const int> keep = std::span<const int>(&gpt2_eos, 1)) {
    detail::check(gpt2_vocab_size > 0, "CompactVocab: the GPT-2 vocabulary size must be positive, got ",
                  gpt2_vocab_size);
    std::vector<char> seen(static_cast<std::size_t>(gpt2_vocab_size), 0);
    const auto mark = [&](int id, const char* what, std::size_t i) {
      detail::check(id >= 0 && id < gpt2_vocab_size, "CompactVocab: ", what, " token ", i, " has id ", id,
                    ", outside the GPT-2 vocabulary [0, ", gpt2_vocab_size, ")");
      seen[static_cast<std::size_t>(id)] = 1;
    };
    for (std::size_t i = 0; i < train.size(); ++i) mark(train[i], "training", i);
    for (std::size_t i = 0; i < keep.size(); ++i) mark(keep[i], "kept", i);
    std::vector<int> ids;
    for (int id = 0; id < gpt2_vocab_size; ++id)
      if (seen[static_cast<std::size_t>(id)]) ids.push_back(id);
    return from_ids(std::move(ids), gpt2_vocab_size, "CompactVocab::from_tokens");
  }

  /// From kept GPT-2 ids in compact order; refuses unsorted, repeated or out-of-range ids.
  static CompactVocab from_ids(std::vector<int> ids, int gpt2_vocab_size = gpt2_vocab,
                               std::string_view source = "CompactVocab") {
    detail::check(gpt2_vocab_size > 0, source, ": the GPT-2 vocabulary size must be positive, got ",
                  gpt2_vocab_size);
    CompactVocab v;
    v.to_compact_.assign(static_cast<std::size_t>(gpt2_vocab_size), -1);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const int id = ids[i];
      detail::check(id >= 0 && id < gpt2_vocab_size, source, ": gpt2_ids[", i, "] = ", id,
                    " is outside the GPT-2 vocabulary [0, ", gpt2_vocab_size, ")");
      detail::check(i == 0 || ids[i - 1] < id, source, ": gpt2_ids[", i, "] = ", id,
                    " is not greater than gpt2_ids[", i - 1, "] = ", i ? ids[i - 1] : 0,
                    " (ids must be sorted ascending and unique)");
      v.to_compact_[static_cast<std::size_t>(id)] = static_cast<int>(i);
    }
    v.to_gpt2_ = std::move(ids);
    return v;
  }

  /// Kept ids + the unknown token.
  [[nodiscard]] int size() const { return static_cast<int>(to_gpt2_.size()) + 1; }
  [[nodiscard]] int unk_id() const { return static_cast<int>(to_gpt2_.size()); }
  [[nodiscard]] int gpt2_vocab_size() const { return static_cast<int>(to_compact_.size()); }
  /// GPT-2 ids in compact order (without the unknown token).
  [[nodiscard]] const std::vector<int>& gpt2_ids() const { return to_gpt2_; }
  [[nodiscard]] bool contains(int gpt2_id) const { return to_compact_.at(checked_gpt2(gpt2_id)) >= 0; }

  /// Compact id of a GPT-2 id; unk_id() for ids not kept.
  [[nodiscard]] int to_compact(int gpt2_id) const {
    const int c = to_compact_[checked_gpt2(gpt2_id)];
    return c >= 0 ? c : unk_id();
  }
  /// GPT-2 id of a compact id; the unknown token has none, so it is an error.
  [[nodiscard]] int to_gpt2(int compact_id) const {
    detail::check(compact_id >= 0 && compact_id < size(), "CompactVocab: compact id ", compact_id,
                  " is outside [0, ", size(), ")");
    detail::check(compact_id != unk_id(), "CompactVocab: compact id ", compact_id,
                  " is the unknown token, which has no GPT-2 id (use the overload with a replacement)");
    return to_gpt2_[static_cast<std::size_t>(compact_id)];
  }
  /// As to_gpt2(id), with the unknown token mapped to `unk_replacement`.
  [[nodiscard]] int to_gpt2(int compact_id, int unk_replacement) const {
    return compact_id == unk_id() ? unk_replacement : to_gpt2(compact_id);
  }

  [[nodiscard]] std::vector<int> to_compact(std::span<const int> gpt2) const {
    std::vector<int> out(gpt2.size());
    for (std::size_t i = 0; i < gpt2.size(); ++i) out[i] = to_compact(gpt2[i]);
    return out;
  }
  [[nodiscard]] std::vector<int> to_gpt2(std::span<const int> compact) const {
    std::vector<int> out(compact.size());
    for (std::size_t i = 0; i < compact.size(); ++i) out[i] = to_gpt2(compact[i]);
    return out;
  }
  [[nodiscard]] std::vector<int> to_gpt2(std::span<const int> compact, int unk_replacement) const {
    std::vector<int> out(compact.size());
    for (std::size_t i = 0; i < compact.size(); ++i) out[i] = to_gpt2(compact[i], unk_replacement);
    return out;
  }

  [[nodiscard]] io::Json to_json() const {
    io::Json j = io::Json::object();
    j.set("format", io::Json::string(std::string(format_tag)));
    j.set("gpt2_vocab_size", io::Json::number(std::int64_t{gpt2_vocab_size()}));
    j.set("unk", io::Json::number(std::int64_t{unk_id()}));
    io::Json ids = io::Json::array();
    for (const int id : to_gpt2_) ids.push_back(io::Json::number(std::int64_t{id}));
    j.set("gpt2_ids", std::move(ids));
    return j;
  }

  /// Validates everything: format tag, vocabulary size, ids sorted / unique / in
  /// range, and unk equal to the number of ids. `source` names the file in errors.
  static CompactVocab from_json(const io::Json& j, std::string_view source = "compact vocabulary") {
    const auto field = [&](std::string_view key, io::Json::Type type) -> const io::Json& {
      detail::check(j.is_object(), source, ": expected a JSON object at the top level");
      const io::Json* v = j.find(key);
      detail::check(v != nullptr, source, ": missing key \"", key, "\"");
      detail::check(v->type() == type, source, ": \"", key, "\" is a ", io::Json::type_name(v->type()),
                    ", expected a ", io::Json::type_name(type));
      return *v;
    };
    const auto integer = [&](const io::Json& v, std::string_view what) -> int {
      const std::string& t = v.number_text();
      std::int64_t x = 0;
      try {
        x = v.as_int64();
      } catch (const Error&) {
        detail::fail(source, ": ", what, " = ", t, " is not an integer");
      }
      detail::check(x >= -(std::int64_t{1} << 31) && x < (std::int64_t{1} << 31), source, ": ", what, " = ", t,
                    " does not fit an int");
      return static_cast<int>(x);
    };
    const std::string& tag = field("format", io::Json::Type::string).as_string();
    detail::check(tag == format_tag, source, ": format is \"", tag, "\", expected \"", format_tag, "\"");
    const int vocab = integer(field("gpt2_vocab_size", io::Json::Type::number), "gpt2_vocab_size");
    const int unk = integer(field("unk", io::Json::Type::number), "unk");
    const io::Json& arr = field("gpt2_ids", io::Json::Type::array);
    std::vector<int> ids;
    ids.reserve(arr.size());
    for (std::size_t i = 0; i < arr.size(); ++i) {
      detail::check(arr[i].is_number(), source, ": gpt2_ids[", i, "] is a ", io::Json::type_name(arr[i].type()),
                    ", expected a number");
      ids.push_back(integer(arr[i], "gpt2_ids[" + std::to_string(i) + "]"));
    }
    detail::check(unk == static_cast<int>(ids.size()), source, ": unk = ", unk,
                  ", expected the number of gpt2_ids (", ids.size(), "): the unknown token comes last");
    return from_ids(std::move(ids), vocab, source);
  }

  void save(const std::filesystem::path& path) const { io::write_file_atomic(path, to_json().dump() + "\n"); }
  static CompactVocab load(const std::filesystem::path& path) {
    const std::string name = path.string();
    return from_json(io::Json::parse(io::read_file(path), name), name);
  }

  friend bool operator==(const CompactVocab& a, const CompactVocab& b) {
    return a.to_gpt2_ == b.to_gpt2_ && a.to_compact_.size() == b.to_compact_.size();
  }

 private:
  [[nodiscard]] std::size_t checked_gpt2(int gpt2_id) const {
    detail::check(gpt2_id >= 0 && gpt2_id < gpt2_vocab_size(), "CompactVocab: GPT-2 id ", gpt2_id,
                  " is outside the GPT-2 vocabulary [0, ", gpt2_vocab_size(), ")");
    return static_cast<std::size_t>(gpt2_id);
  }

  std::vector<int> to_gpt2_;     // compact id -> GPT-2 id (kept ids only)
  std::vector<int> to_compact_;  // GPT-2 id -> compact id, -1 when not kept
};

}  // namespace lowbit::text
