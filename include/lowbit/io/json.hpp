// A small strict JSON (RFC 8259) reader and writer for the files lowbit reads:
// safetensors headers, Hugging Face config.json, GPT-2's encoder.json / vocab.json.
//
// Strict on purpose (these files come from untrusted places): no comments, no
// trailing commas, no leading zeros, no control characters or invalid UTF-8 inside
// strings, no unpaired surrogate escapes, no duplicate keys in an object, nesting
// at most 256 deep. Every refusal is a lowbit::Error naming the source and the byte
// offset, line and column. Numbers keep their text, so integers up to 2^64 - 1 are
// read exactly (a double would lose safetensors offsets beyond 2^53).
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "lowbit/core/error.hpp"

namespace lowbit::io {

class Json {
 public:
  enum class Type { null, boolean, number, string, array, object };

  Json() = default;
  static Json null() { return Json(); }
  static Json boolean(bool b) { Json j; j.type_ = Type::boolean; j.bool_ = b; return j; }
  static Json string(std::string s) { Json j; j.type_ = Type::string; j.text_ = std::move(s); return j; }
  static Json number(std::int64_t v) { Json j; j.type_ = Type::number; j.text_ = std::to_string(v); return j; }
  static Json number_u64(std::uint64_t v) { Json j; j.type_ = Type::number; j.text_ = std::to_string(v); return j; }
  static Json number(double v) {
    detail::check(v == v && v - v == 0.0, "Json::number: NaN and infinity are not JSON");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    Json j; j.type_ = Type::number; j.text_ = buf; return j;
  }
  static Json array() { Json j; j.type_ = Type::array; return j; }
  static Json object() { Json j; j.type_ = Type::object; return j; }

  /// Parses a whole document; `source` names it in error messages (a file name).
  static Json parse(std::string_view text, std::string_view source = "JSON");

  [[nodiscard]] Type type() const { return type_; }
  [[nodiscard]] bool is_null() const { return type_ == Type::null; }
  [[nodiscard]] bool is_bool() const { return type_ == Type::boolean; }
  [[nodiscard]] bool is_number() const { return type_ == Type::number; }
  [[nodiscard]] bool is_string() const { return type_ == Type::string; }
  [[nodiscard]] bool is_array() const { return type_ == Type::array; }
  [[nodiscard]] bool is_object() const { return type_ == Type::object; }
  [[nodiscard]] static const char* type_name(Type t) {
    switch (t) {
      case Type::null: return "null";
      case Type::boolean: return "boolean";
      case Type::number: return "number";
      case Type::string: return "string";
      case Type::array: return "array";
      case Type::object: return "object";
    }
    return "?";
  }

  [[nodiscard]] bool as_bool() const { expect(Type::boolean); return bool_; }
  [[nodiscard]] const std::string& as_string() const { expect(Type::string); return text_; }
  /// The number's JSON text, exactly as written.
  [[nodiscard]] const std::string& number_text() const { expect(Type::number); return text_; }
  [[nodiscard]] double as_double() const {
    expect(Type::number);
    double v = 0;
    const auto [p, ec] = std::from_chars(text_.data(), text_.data() + text_.size(), v);
    // 1e999 is valid JSON but no double: refuse it rather than return 0 or inf.
    detail::check(ec == std::errc() && p == text_.data() + text_.size(), "JSON number ", text_,
                  " is out of the range of a double");
    return v;
  }
  /// The number as an exact integer; refuses fractions, exponents and overflow.
  [[nodiscard]] std::int64_t as_int64() const {
    expect(Type::number);
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(text_.data(), text_.data() + text_.size(), v);
    detail::check(ec == std::errc() && p == text_.data() + text_.size(), "JSON number ", text_,
                  " is not an integer that fits 64 bits");
    return v;
  }
  [[nodiscard]] std::uint64_t as_uint64() const {
    expect(Type::number);
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(text_.data(), text_.data() + text_.size(), v);
    detail::check(!text_.empty() && text_[0] != '-' && ec == std::errc() && p == text_.data() + text_.size(),
                  "JSON number ", text_, " is not a non-negative integer that fits 64 bits");
    return v;
  }

  // Arrays.
  [[nodiscard]] std::size_t size() const {
    if (type_ == Type::object) return keys_.size();
    expect(Type::array);
    return items_.size();
  }
  [[nodiscard]] const Json& operator[](std::size_t i) const { expect(Type::array); return items_.at(i); }
  [[nodiscard]] const std::vector<Json>& items() const { expect(Type::array); return items_; }
  Json& push_back(Json v) { expect(Type::array); items_.push_back(std::move(v)); return items_.back(); }

  // Objects keep their keys in document order.
  [[nodiscard]] const std::vector<std::string>& keys() const { expect(Type::object); return keys_; }
  /// Value of the i-th key (same order as keys()).
  [[nodiscard]] const Json& value_at(std::size_t i) const { expect(Type::object); return items_.at(i); }
  [[nodiscard]] const Json* find(std::string_view key) const {
    expect(Type::object);
    for (std::size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] == key) return &items_[i];
    return nullptr;
  }
  [[nodiscard]] const Json& at(std::string_view key) const {
    const Json* v = find(key);
    if (!v) detail::fail("JSON object has no key \"", key, "\"");
    return *v;
  }
  /// Appends a key (the caller keeps keys unique; dump() does not check).
  Json& set(std::string key, Json v) {
    expect(Type::object);
    keys_.push_back(std::move(key));
    items_.push_back(std::move(v));
    return items_.back();
  }

  /// Compact JSON text (no spaces), keys in insertion order.
  [[nodiscard]] std::string dump() const { std::string out; dump_to(out); return out; }
  void dump_to(std::string& out) const;

  static void write_string(std::string& out, std::string_view s);

 private:
  friend class JsonParser;
  void expect(Type t) const {
    if (type_ != t) detail::fail("JSON value is a ", type_name(type_), ", expected a ", type_name(t));
  }
  Type type_ = Type::null;
  bool bool_ = false;
  std::string text_;               // string value, or a number's text
  std::vector<Json> items_;        // array items, or object values
  std::vector<std::string> keys_;  // object keys
};

class JsonParser {
 public:
  JsonParser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Json document() {
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (p_ != s_.size()) error("unexpected text after the JSON value");
    return v;
  }

 private:
  static constexpr int max_depth = 256;

  [[noreturn]] void error(std::string_view what) const {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < p_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') { ++line; col = 1; } else { ++col; }
    }
    detail::fail(source_, ": invalid JSON at byte ", p_, " (line ", line, ", column ", col, "): ", what);
  }
  void skip_ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  bool at_end() const { return p_ >= s_.size(); }
  char peek() const { return s_[p_]; }
  void expect_char(char c, const char* what) {
    if (at_end() || s_[p_] != c) error(what);
    ++p_;
  }
  void literal(std::string_view word) {
    if (s_.substr(p_, word.size()) != word) error("unknown literal (expected true, false or null)");
    p_ += word.size();
  }

  Json value(int depth) {
    if (depth > max_depth) error("nesting deeper than 256 levels");
    if (at_end()) error("unexpected end of input, expected a value");
    switch (peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': { Json j; j.type_ = Json::Type::string; j.text_ = string(); return j; }
      case 't': literal("true"); return Json::boolean(true);
      case 'f': literal("false"); return Json::boolean(false);
      case 'n': literal("null"); return Json::null();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number();
        error("unexpected character, expected a value");
    }
  }

  Json object(int depth) {
    ++p_;  // '{'
    Json j = Json::object();
    skip_ws();
    if (!at_end() && peek() == '}') { ++p_; return j; }
    std::unordered_set<std::string_view> seen;
    std::vector<std::size_t> key_starts;
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"') error("expected a string key");
      const std::size_t key_pos = p_;
      std::string key = string();
      j.keys_.push_back(std::move(key));
      key_starts.push_back(key_pos);
      skip_ws();
      expect_char(':', "expected ':' after an object key");
      skip_ws();
      j.items_.push_back(value(depth + 1));
      skip_ws();
      if (at_end()) error("unexpected end of input inside an object");
      if (peek() == ',') { ++p_; continue; }
      if (peek() == '}') { ++p_; break; }
      error("expected ',' or '}' in an object");
    }
    // Duplicate keys are ambiguous (parsers disagree on which wins): refuse them.
    for (std::size_t i = 0; i < j.keys_.size(); ++i)
      if (!seen.insert(j.keys_[i]).second) {
        p_ = key_starts[i];
        error("duplicate key \"" + j.keys_[i] + "\"");
      }
    return j;
  }

  Json array(int depth) {
    ++p_;  // '['
    Json j = Json::array();
    skip_ws();
    if (!at_end() && peek() == ']') { ++p_; return j; }
    for (;;) {
      skip_ws();
      j.items_.push_back(value(depth + 1));
      skip_ws();
      if (at_end()) error("unexpected end of input inside an array");
      if (peek() == ',') { ++p_; continue; }
      if (peek() == ']') { ++p_; break; }
      error("expected ',' or ']' in an array");
    }
    return j;
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  Json number() {
    const std::size_t start = p_;
    if (peek() == '-') ++p_;
    if (at_end() || !digit(peek())) error("expected a digit");
    if (peek() == '0') {
      ++p_;
      if (!at_end() && digit(peek())) error("leading zeros are not allowed in JSON numbers");
    } else {
      while (!at_end() && digit(peek())) ++p_;
    }
    if (!at_end() && peek() == '.') {
      ++p_;
      if (at_end() || !digit(peek())) error("expected a digit after the decimal point");
      while (!at_end() && digit(peek())) ++p_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++p_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++p_;
      if (at_end() || !digit(peek())) error("expected a digit in the exponent");
      while (!at_end() && digit(peek())) ++p_;
    }
    Json j;
    j.type_ = Json::Type::number;
    j.text_ = std::string(s_.substr(start, p_ - start));
    return j;
  }

  unsigned hex4() {
    if (s_.size() - p_ < 4) error("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[p_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else { --p_; error("invalid hex digit in \\u escape"); }
    }
    return v;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  // Length of a valid UTF-8 sequence starting at p_, or 0 (overlongs, surrogates
  // and code points beyond U+10FFFF are invalid).
  std::size_t utf8_length() const {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s_[p_ + k]); };
    const std::size_t left = s_.size() - p_;
    const unsigned c = b(0);
    const auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
      if (!cont(1) || !cont(2)) return 0;
      if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
      if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogate
      return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
      if (!cont(1) || !cont(2) || !cont(3)) return 0;
      if (c == 0xF0 && b(1) < 0x90) return 0;
      if (c == 0xF4 && b(1) >= 0x90) return 0;
      return 4;
    }
    return 0;
  }

  std::string string() {
    ++p_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) error("unterminated string");
      const auto c = static_cast<unsigned char>(peek());
      if (c == '"') { ++p_; return out; }
      if (c < 0x20) error("control character inside a string (must be escaped)");
      if (c == '\\') {
        ++p_;
        if (at_end()) error("unterminated escape");
        const char e = s_[p_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::uint32_t cp = hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) error("unpaired low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (s_.size() - p_ < 2 || s_[p_] != '\\' || s_[p_ + 1] != 'u')
                error("high surrogate \\u escape not followed by a low surrogate");
              p_ += 2;
              const std::uint32_t lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) error("high surrogate followed by a non-low-surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default: --p_; error("invalid escape character");
        }
        continue;
      }
      if (c < 0x80) { out += char(c); ++p_; continue; }
      const std::size_t n = utf8_length();
      if (n == 0) error("invalid UTF-8 inside a string");
      out.append(s_.data() + p_, n);
      p_ += n;
    }
  }

  std::string_view s_;
  std::string_view source_;
  std::size_t p_ = 0;
};

inline Json Json::parse(std::string_view text, std::string_view source) {
  return JsonParser(text, source).document();
}

inline void Json::write_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;  // UTF-8 passes through (callers give valid UTF-8)
        }
    }
  }
  out += '"';
}

inline void Json::dump_to(std::string& out) const {
  switch (type_) {
    case Type::null: out += "null"; break;
    case Type::boolean: out += bool_ ? "true" : "false"; break;
    case Type::number: out += text_; break;
    case Type::string: write_string(out, text_); break;
    case Type::array:
      out += '[';
      for (std::size_t i = 0; i < items_.size(); ++i) {
        if (i) out += ',';
        items_[i].dump_to(out);
      }
      out += ']';
      break;
    case Type::object:
      out += '{';
      for (std::size_t i = 0; i < keys_.size(); ++i) {
        if (i) out += ',';
        write_string(out, keys_[i]);
        out += ':';
        items_[i].dump_to(out);
      }
      out += '}';
      break;
  }
}

}  // namespace lowbit::io
