// The one top-level handler of every lowbit tool: whatever escapes becomes a
// message naming the tool and what it was doing, and an exit status — never
// std::terminate (exit 134) with an unexplained "std::bad_alloc".
//
//   exit 0  done
//   exit 1  a failure during the work (out of memory, a write that failed, …)
//   exit 2  bad flags or unreadable/invalid inputs, found before any work
//   exit 75 busy: another process holds what the tool needs (lowbit-study's --out);
//           nothing was done, try again later (sysexits' EX_TEMPFAIL)
//   exit 130 interrupted (the tool says how to resume)
#pragma once

#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <system_error>

#include "lowbit/core/error.hpp"

namespace lowbit::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;
inline constexpr int exit_bad_input = 2;
inline constexpr int exit_busy = 75;
inline constexpr int exit_interrupted = 130;

/// Runs body() (which returns an exit status). An exception that escapes it is
/// printed as "<tool>: <doing>: <what>" and turned into `status` — exit_bad_input
/// for the phase that reads and checks inputs, exit_failed for the work itself.
/// Out of memory and failures to start threads get their own wording, since their
/// what() strings ("std::bad_alloc", "Resource temporarily unavailable") say
/// nothing a user can act on.
template <class Body>
int guarded(const char* tool, const char* doing, int status, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: out of memory while %s (the model or a setting needs more memory than is available)\n",
                 tool, doing);
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: system error while %s: %s\n", tool, doing, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: failed while %s: %s\n", tool, doing, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: failed while %s: unknown exception\n", tool, doing);
  }
  return status;
}

}  // namespace lowbit::cli
