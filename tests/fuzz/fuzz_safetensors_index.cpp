// libFuzzer target: arbitrary bytes as model.safetensors.index.json, in a folder
// that holds two real shards, a stray file and a subfolder. The index must either
// be accepted — then every tensor it lists is readable and widens to fp32 — or be
// refused with lowbit::Error; a crash, a sanitizer report or any other exception is
// a bug. The folder is made once per process (the shards never change) and removed
// at exit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <vector>

#include "lowbit/io/file.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/io/safetensors_shards.hpp"

namespace {

std::filesystem::path& folder_path() {
  static std::filesystem::path p;
  return p;
}

std::filesystem::path make_folder() {
  char name[] = "/tmp/lowbit-fuzz-index-XXXXXX";
  const char* dir = mkdtemp(name);
  if (dir == nullptr) std::abort();
  const std::filesystem::path d(dir);
  folder_path() = d;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(folder_path(), ec);
  });
  const std::vector<float> values{1.0f, -2.0f, 0.5f};
  lowbit::io::SafetensorsWriter first;
  first.add_f32("a", {2}, std::span<const float>(values).first(2));
  first.add_bf16("b", {3}, values);
  first.write(d / "model-00001-of-00002.safetensors");
  lowbit::io::SafetensorsWriter second;
  second.add_f16("c", {1, 2}, std::span<const float>(values).first(2));
  second.write(d / "model-00002-of-00002.safetensors");
  lowbit::io::write_file_atomic(d / "notes.txt", "not a shard");
  std::filesystem::create_directory(d / "sub");
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path folder = make_folder();
  try {
    const auto s = lowbit::io::SafetensorsShards::from_index(
        folder, std::string_view(reinterpret_cast<const char*>(data), size), "fuzz index");
    for (const auto& name : s.names()) {
      const auto v = s.to_float(name);
      volatile float sink = 0.0f;
      for (const float x : v) sink = sink + x;
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
