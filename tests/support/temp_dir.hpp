// A fresh, empty scratch folder per test and process.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace lowbit::test {

inline std::filesystem::path temp_dir(const std::string& tag) {
  const auto d = std::filesystem::temp_directory_path() / ("lowbit_test_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace lowbit::test
