// write_file_atomic: content lands whole, and a failed write keeps the old file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "lowbit/core/atomic_file.hpp"

namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("write_file_atomic replaces content and leaves no temporary behind") {
  const fs::path dir = fs::temp_directory_path() / "lowbit_atomic_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path f = dir / "out.txt";
  lowbit::write_file_atomic(f, "first");
  lowbit::write_file_atomic(f, "second version");
  CHECK(slurp(f) == "second version");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);
  fs::remove_all(dir);
}

TEST_CASE("write_file_atomic: an unwritable target is an Error naming it, and old content survives") {
  CHECK_THROWS_WITH_AS(lowbit::write_file_atomic("/nonexistent-lowbit-dir/x.json", "{}"),
                       doctest::Contains("/nonexistent-lowbit-dir/x.json"), lowbit::Error);
  const fs::path dir = fs::temp_directory_path() / "lowbit_atomic_test2";
  fs::remove_all(dir);
  fs::create_directories(dir / "target_is_a_folder");
  // renaming a file over a non-empty folder fails: the folder and its content stay
  std::ofstream(dir / "target_is_a_folder" / "keep.txt") << "kept";
  CHECK_THROWS_AS(lowbit::write_file_atomic(dir / "target_is_a_folder", "new"), lowbit::Error);
  CHECK(slurp(dir / "target_is_a_folder" / "keep.txt") == "kept");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  CHECK(entries == 1);  // no temporary left behind
  fs::remove_all(dir);
}
