// Renders an SVG figure to PNG with librsvg (Debian's librsvg2-bin, which
// scripts/test.sh installs), so that a malformed figure fails a test rather than a
// reader's browser.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace lowbit::test {

/// Whether rsvg-convert can be run; says the test skipped its rendering if not.
inline bool have_rsvg_convert() {
  if (std::system("rsvg-convert --version >/dev/null 2>&1") == 0) return true;
  MESSAGE("skipped: rsvg-convert not found (Debian package librsvg2-bin), so the figures were not rendered");
  return false;
}

/// Checks that `svg` renders to a non-trivial PNG beside it.
inline void check_renders(const std::filesystem::path& svg) {
  const auto png = std::filesystem::path(svg).replace_extension(".png");
  const std::string cmd = "rsvg-convert -o '" + png.string() + "' '" + svg.string() + "' 2>&1";
  INFO(cmd);
  CHECK(std::system(cmd.c_str()) == 0);
  std::ifstream in(png, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  CHECK(std::string(magic + 1, 3) == "PNG");
  CHECK(std::filesystem::file_size(png) > 1000);
}

}  // namespace lowbit::test
