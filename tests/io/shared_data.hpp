// Locates ../shared/data for tests: $LOWBIT_DATA, else <source>/../shared/data.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <optional>

namespace lowbit::test {

inline std::optional<std::filesystem::path> shared_data() {
  if (const char* env = std::getenv("LOWBIT_DATA"); env && *env && std::filesystem::is_directory(env))
    return std::filesystem::path(env);
  const auto p = std::filesystem::path(LOWBIT_SOURCE_DIR) / ".." / "shared" / "data";
  if (std::filesystem::is_directory(p)) return p;
  return std::nullopt;
}

}  // namespace lowbit::test

// Skips the rest of a test case, saying why, when the shared data is absent.
#define LOWBIT_REQUIRE_SHARED_DATA(var)                                                        \
  const auto var##_opt = ::lowbit::test::shared_data();                                        \
  if (!var##_opt) {                                                                            \
    MESSAGE("skipped: ../shared/data not found (set LOWBIT_DATA); see ../shared/README.md");   \
    return;                                                                                    \
  }                                                                                            \
  const std::filesystem::path var = *var##_opt
