// tokenizer_config.json (Hugging Face transformers) beside a tokenizer.json: which
// tokens are BOS / EOS / UNK / PAD, and whether text encoded for the model starts
// with BOS or ends with EOS. transformers' rules, which lowbit follows:
//
//   * bos_token / eos_token / unk_token / pad_token: a token's content, or an
//     AddedToken object {"content": ...}, or null (none);
//   * add_bos_token / add_eos_token: when given, they decide (LlamaTokenizerFast
//     rebuilds its post-processor from them); when absent, the tokenizer.json's own
//     post-processor does (a TemplateProcessing that puts a special token before
//     or after a single sequence; TokenizerJson::template_bos / template_eos).
//
// Only the fields that change which ids a text gets are read, and a value lowbit
// cannot honour is refused naming the field (add_prefix_space true: the fast
// tokenizer would rebuild its pre-tokenizer). chat_template is kept for GGUF.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "lowbit/core/error.hpp"
#include "lowbit/io/file.hpp"
#include "lowbit/io/json.hpp"
#include "lowbit/text/tokenizer_json.hpp"

namespace lowbit::text {

/// What tokenizer_config.json says, before it is matched to a tokenizer.
struct TokenizerConfig {
  std::optional<std::string> bos, eos, unk, pad;  ///< token contents
  std::optional<bool> add_bos, add_eos;           ///< absent: the post-processor decides
  std::string chat_template;                      ///< empty when the file has none (or a list of them)
  std::string file;                               ///< for messages
  /// config.json's token ids, used where the tokens above are not named.
  std::optional<int> bos_id, eos_id, pad_id;

  static TokenizerConfig load(const std::filesystem::path& path) {
    return from_string(io::read_file(path), path.string());
  }

  /// A Hugging Face folder's tokenizer_config.json (empty when it has none), and the
  /// model's config.json bos/eos/pad_token_id for the tokens it leaves out — what
  /// convert_hf_to_gguf.py reads, in that order (Qwen names no bos_token but its
  /// config.json has bos_token_id).
  static TokenizerConfig from_folder(const std::filesystem::path& dir) {
    std::error_code ec;
    const auto tc = dir / "tokenizer_config.json", mc = dir / "config.json";
    TokenizerConfig c = std::filesystem::exists(tc, ec) ? load(tc) : TokenizerConfig{};
    if (c.file.empty()) c.file = tc.string();
    if (!std::filesystem::exists(mc, ec)) return c;
    const io::Json root = io::Json::parse(io::read_file(mc), mc.string());
    if (!root.is_object()) return c;  // the model loader reports a malformed config.json
    const auto id = [&](const char* key) -> std::optional<int> {
      const io::Json* v = root.find(key);
      // A list (Llama 3.1's eos_token_id: every id that ends generation) names no one
      // token: left to tokenizer_config.json, as convert_hf_to_gguf.py does.
      if (!v || v->is_null() || v->is_array()) return std::nullopt;
      lowbit::detail::check(v->is_number() && v->as_int64() >= 0 && v->as_int64() < (std::int64_t{1} << 31), "'",
                            mc.string(), "': ", key, " is not a token id");
      return static_cast<int>(v->as_int64());
    };
    c.bos_id = id("bos_token_id");
    c.eos_id = id("eos_token_id");
    c.pad_id = id("pad_token_id");
    return c;
  }

  static TokenizerConfig from_string(std::string_view json, const std::string& label = "tokenizer_config.json") {
    const io::Json root = io::Json::parse(json, label);
    const auto fail_if = [&](bool bad, std::string_view field, std::string_view what) {
      if (bad) lowbit::detail::fail("tokenizer_config.json '", label, "': ", field, ": ", what);
    };
    fail_if(!root.is_object(), "(top level)", "is not a JSON object");
    TokenizerConfig c;
    c.file = label;
    const auto token = [&](const char* key) -> std::optional<std::string> {
      const io::Json* v = root.find(key);
      if (!v || v->is_null()) return std::nullopt;
      if (v->is_string()) return v->as_string();
      const io::Json* content = v->is_object() ? v->find("content") : nullptr;
      fail_if(!content || !content->is_string(), key, "is neither a token's text nor an object with a \"content\" text");
      return content->as_string();
    };
    const auto flag = [&](const char* key) -> std::optional<bool> {
      const io::Json* v = root.find(key);
      if (!v || v->is_null()) return std::nullopt;
      fail_if(!v->is_bool(), key, "is not true/false");
      return v->as_bool();
    };
    c.bos = token("bos_token");
    c.eos = token("eos_token");
    c.unk = token("unk_token");
    c.pad = token("pad_token");
    c.add_bos = flag("add_bos_token");
    c.add_eos = flag("add_eos_token");
    fail_if(flag("add_prefix_space").value_or(false), "add_prefix_space",
            "true is not supported (the fast tokenizer would rebuild its pre-tokenizer to add a space)");
    if (const io::Json* t = root.find("chat_template"); t && t->is_string()) c.chat_template = t->as_string();
    return c;
  }
};

/// The special tokens of a tokenizer as ids, and what encoding for the model adds.
struct SpecialTokens {
  std::optional<int> bos, eos, unk, pad;
  bool add_bos = false, add_eos = false;
};

/// tokenizer_config.json's choices (when given) resolved against the tokenizer;
/// Error naming the field when a token it names is not in the tokenizer.
inline SpecialTokens special_tokens(const TokenizerJson& tok, const TokenizerConfig* config = nullptr) {
  SpecialTokens s;
  s.bos = tok.template_bos();
  s.eos = tok.template_eos();
  s.unk = tok.unk_id();
  s.add_bos = s.bos.has_value();
  s.add_eos = s.eos.has_value();
  if (config == nullptr) return s;
  const auto id = [&](const std::optional<std::string>& content, const char* field) -> std::optional<int> {
    if (!content) return std::nullopt;
    const auto found = tok.token_id(*content);
    if (!found)
      lowbit::detail::fail("tokenizer_config.json '", config->file, "': ", field, ": \"", *content,
                           "\" is not a token of the tokenizer");
    return found;
  };
  const auto known = [&](std::optional<int> v, const char* field) -> std::optional<int> {
    if (v && !tok.has_token(*v))
      lowbit::detail::fail("config.json beside '", config->file, "': ", field, " ", *v, " is not a token id of the tokenizer");
    return v;
  };
  // A token tokenizer_config.json leaves out comes from config.json, else from what
  // the tokenizer.json implies.
  const auto either = [](std::optional<int> a, std::optional<int> b) { return a ? a : b; };
  if (const auto v = either(id(config->bos, "bos_token"), known(config->bos_id, "bos_token_id"))) s.bos = v;
  if (const auto v = either(id(config->eos, "eos_token"), known(config->eos_id, "eos_token_id"))) s.eos = v;
  if (const auto v = id(config->unk, "unk_token")) s.unk = v;
  s.pad = either(id(config->pad, "pad_token"), known(config->pad_id, "pad_token_id"));
  if (config->add_bos) s.add_bos = *config->add_bos;
  if (config->add_eos) s.add_eos = *config->add_eos;
  lowbit::detail::check(!s.add_bos || s.bos, "tokenizer_config.json '", config->file,
                        "': add_bos_token is true but there is no bos_token");
  lowbit::detail::check(!s.add_eos || s.eos, "tokenizer_config.json '", config->file,
                        "': add_eos_token is true but there is no eos_token");
  return s;
}

}  // namespace lowbit::text
