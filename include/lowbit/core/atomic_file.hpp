// Writing a file so that readers see either the old content or the new, never a mix.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "lowbit/core/error.hpp"

namespace lowbit {

/// Writes `content` to `path` through a temporary file in the same folder and a
/// rename, so an interrupted or failed write leaves what was there before intact.
/// Throws lowbit::Error naming the path and the system's reason.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    detail::fail("cannot write '", path.string(), "': folder '", dir.string(), "' does not exist");
  const auto tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) detail::fail("cannot write '", path.string(), "': ", std::strerror(errno));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp, ec);
      detail::fail("cannot write '", path.string(), "': write failed (disk full?)");
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    detail::fail("cannot write '", path.string(), "': ", ec.message());
  }
}

}  // namespace lowbit
