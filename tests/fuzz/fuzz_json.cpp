// libFuzzer target: arbitrary text as a JSON document. Json::parse must refuse with
// lowbit::Error or accept a document whose dump() parses again to the same dump
// (a round trip through the writer is a fixed point), whose object keys are all
// found by find(), and whose numbers convert or refuse with lowbit::Error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "lowbit/io/json.hpp"

namespace {

using lowbit::io::Json;

[[noreturn]] void bug(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_json: %s\n%s\n", what, detail.c_str());
  std::abort();
}

std::optional<Json> parse(std::string_view text) {
  try {
    return Json::parse(text, "fuzz");
  } catch (const lowbit::Error&) {
    return std::nullopt;
  }
}

// Each conversion either answers or refuses with lowbit::Error (nothing else).
void convert(const Json& number) {
  try { (void)number.as_double(); } catch (const lowbit::Error&) {}
  try { (void)number.as_int64(); } catch (const lowbit::Error&) {}
  try { (void)number.as_uint64(); } catch (const lowbit::Error&) {}
}

// Depth is bounded by the parser (256), so recursion is too.
void walk(const Json& j) {
  switch (j.type()) {
    case Json::Type::number: convert(j); break;
    case Json::Type::array:
      for (const Json& item : j.items()) walk(item);
      break;
    case Json::Type::object:
      // Keys are unique (duplicates are refused), so find() gives each key's own value.
      for (std::size_t i = 0; i < j.size(); ++i) {
        if (j.find(j.keys()[i]) != &j.value_at(i)) bug("find() misses a key", j.keys()[i]);
        walk(j.value_at(i));
      }
      break;
    default: break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto doc = parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!doc) return 0;
  walk(*doc);
  const std::string first = doc->dump();
  const auto again = parse(first);
  if (!again) bug("dump() of an accepted document is refused", first);
  if (again->dump() != first) bug("dump() is not a fixed point", first);
  return 0;
}
