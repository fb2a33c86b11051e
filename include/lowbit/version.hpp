// lowbit's version.
#pragma once

#define LOWBIT_VERSION_MAJOR 0
#define LOWBIT_VERSION_MINOR 1
#define LOWBIT_VERSION_PATCH 0

namespace lowbit {
inline constexpr const char* version = "0.1.0";
}  // namespace lowbit
