// Atomic file writes live in io/file.hpp; this header keeps lowbit::write_file_atomic
// available to code (the study's outputs) that does not otherwise need io/.
#pragma once

#include "lowbit/io/file.hpp"

namespace lowbit {
using io::write_file_atomic;
}  // namespace lowbit
