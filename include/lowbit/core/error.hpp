// lowbit::Error — the one exception type lowbit throws for bad input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lowbit {

/// Thrown for every input lowbit refuses: the message names the tensor, file or
/// flag and says what was wrong, so callers can show it to a user unchanged.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

/// Builds an Error message from streamable parts: fail("tensor '", name, "': ...").
template <class... Parts>
[[noreturn]] inline void fail(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw Error(message.str());
}

template <class... Parts>
inline void check(bool condition, const Parts&... parts) {
  if (!condition) fail(parts...);
}

}  // namespace detail
}  // namespace lowbit
