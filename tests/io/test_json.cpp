// Strict JSON parser: accepted documents, refusals with positions, round trips.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "lowbit/io/json.hpp"

using lowbit::Error;
using lowbit::io::Json;

namespace {
std::string error_of(const std::string& text) {
  try {
    (void)Json::parse(text, "doc.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("json: parses nested values, escapes and exact 64-bit integers") {
  const Json j = Json::parse(
      R"( {"a": [1, -2, 3.5e2, true, false, null], "s": "q\"\\\/\b\f\n\r\tA\u00e9\ud83d\ude00",)"
      R"( "big": 18446744073709551615, "neg": -9223372036854775808, "o": {}} )");
  REQUIRE(j.is_object());
  CHECK(j.keys() == std::vector<std::string>{"a", "s", "big", "neg", "o"});
  const Json& a = j.at("a");
  CHECK(a.size() == 6);
  CHECK(a[0].as_int64() == 1);
  CHECK(a[1].as_int64() == -2);
  CHECK(a[2].as_double() == 350.0);
  CHECK_THROWS_AS((void)a[2].as_int64(), Error);
  CHECK(a[3].as_bool());
  CHECK(!a[4].as_bool());
  CHECK(a[5].is_null());
  CHECK(j.at("s").as_string() == "q\"\\/\b\f\n\r\tA\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(j.at("big").as_uint64() == 18446744073709551615ull);
  CHECK(j.at("neg").as_int64() == INT64_MIN);
  CHECK_THROWS_AS((void)j.at("neg").as_uint64(), Error);
  CHECK(j.at("o").size() == 0);
  CHECK(j.find("missing") == nullptr);
  CHECK_THROWS_WITH_AS((void)j.at("missing"), doctest::Contains("missing"), Error);
  CHECK_THROWS_WITH_AS((void)j.at("a").as_string(), doctest::Contains("array"), Error);
}

TEST_CASE("json: dump then parse gives the same document") {
  Json root = Json::object();
  root.set("name", Json::string("tab\there \"quoted\" \x01 é"));
  Json arr = Json::array();
  arr.push_back(Json::number(std::int64_t{-7}));
  arr.push_back(Json::number_u64(UINT64_MAX));
  arr.push_back(Json::number(0.1));
  arr.push_back(Json::boolean(true));
  arr.push_back(Json::null());
  root.set("list", std::move(arr));
  const std::string text = root.dump();
  const Json back = Json::parse(text);
  CHECK(back.dump() == text);
  CHECK(back.at("name").as_string() == "tab\there \"quoted\" \x01 é");
  CHECK(back.at("list")[1].as_uint64() == UINT64_MAX);
  CHECK(back.at("list")[2].as_double() == 0.1);
  CHECK_THROWS_AS((void)Json::number(std::nan("")), Error);
}

TEST_CASE("json: refuses malformed documents and says where") {
  CHECK(error_of("{\"a\": 1,}").find("byte 8") != std::string::npos);
  CHECK(error_of("{\"a\": 1,}").find("doc.json") != std::string::npos);
  CHECK(error_of("[1, 2,]") != "");
  CHECK(error_of("{\"a\" 1}").find("':'") != std::string::npos);
  CHECK(error_of("01").find("leading zero") != std::string::npos);
  CHECK(error_of("1.") != "");
  CHECK(error_of("-") != "");
  CHECK(error_of("1e") != "");
  CHECK(error_of("{\"a\": 1, \"a\": 2}").find("duplicate key \"a\"") != std::string::npos);
  CHECK(error_of("\"tab\there\"").find("control character") != std::string::npos);
  CHECK(error_of("\"\\x\"").find("escape") != std::string::npos);
  CHECK(error_of("\"\\ud800\"").find("surrogate") != std::string::npos);
  CHECK(error_of("\"\\udc00\"").find("surrogate") != std::string::npos);
  CHECK(error_of("\"\xC3\"").find("UTF-8") != std::string::npos);
  CHECK(error_of("\"\xED\xA0\x80\"").find("UTF-8") != std::string::npos);  // encoded surrogate
  CHECK(error_of("\"\xC0\xAF\"").find("UTF-8") != std::string::npos);      // overlong
  CHECK(error_of("\"abc").find("unterminated") != std::string::npos);
  CHECK(error_of("tru").find("literal") != std::string::npos);
  CHECK(error_of("{} x").find("after the JSON value") != std::string::npos);
  CHECK(error_of("").find("end of input") != std::string::npos);
  CHECK(error_of("{\"a\":\n  ?}").find("line 2, column 3") != std::string::npos);
  CHECK(error_of(std::string(300, '[') + std::string(300, ']')).find("nesting") != std::string::npos);
  CHECK(error_of(std::string(200, '[') + std::string(200, ']')) == "");
}
