// File helpers: whole-file reads, read-only memory maps, atomic writes, and the
// data-directory lookup that every reader of ../shared/data goes through.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lowbit/core/error.hpp"

namespace lowbit::io {

/// The whole file as bytes; Error naming the file if it cannot be read.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) detail::fail("cannot open '", path.string(), "': ", std::strerror(errno));
  std::string bytes;
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  detail::check(size >= 0, "cannot determine the size of '", path.string(), "'");
  bytes.resize(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  detail::check(in.good() || in.eof(), "cannot read '", path.string(), "'");
  detail::check(static_cast<std::size_t>(in.gcount()) == bytes.size(), "short read of '", path.string(), "'");
  return bytes;
}

/// A read-only private memory map of a whole file (POSIX mmap). An empty file maps
/// to an empty span.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& path) : path_(path.string()) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) detail::fail("cannot open '", path_, "': ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      detail::fail("cannot stat '", path_, "': ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      detail::fail("'", path_, "' is not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        detail::fail("cannot memory-map '", path_, "': ", std::strerror(e));
      }
      data_ = static_cast<const std::uint8_t*>(p);
    }
    ::close(fd);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    MappedFile tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  }

  [[nodiscard]] std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  void swap(MappedFile& o) noexcept {
    std::swap(path_, o.path_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A file written as a stream and published atomically: the bytes go to a temporary
/// file in the same directory; commit() flushes it to disk and renames it over
/// `path`, so readers see either the old file or the complete new one. Destroyed
/// without commit() (an error, an exception, Ctrl-C's unwinding), it removes the
/// temporary file and leaves any existing file untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
    namespace fs = std::filesystem;
    const fs::path dir = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
    std::random_device rd;
    tmp_ = dir / (path_.filename().string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd()));
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0)
      detail::fail("cannot write '", path_.string(), "': cannot create a temporary file in '", dir.string(),
                   "': ", std::strerror(errno));
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write failed");
      }
      done += static_cast<std::size_t>(n);
    }
  }
  void write(std::span<const std::uint8_t> bytes) {
    write(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

  /// Flushes, closes and renames the temporary file over the path.
  void commit() {
    if (::fsync(fd_) != 0) fail("fsync failed");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close failed");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("rename from the temporary file failed");
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    detail::fail("cannot write '", path_.string(), "': ", what, ": ", std::strerror(errno));
  }
  std::filesystem::path path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// Writes bytes to `path` atomically (AtomicFile): a failure leaves any existing
/// file untouched.
inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::string_view> pieces) {
  AtomicFile out(path);
  for (std::string_view piece : pieces) out.write(piece);
  out.commit();
}

inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  const std::string_view one[] = {bytes};
  write_file_atomic(path, one);
}

/// Thrown by FileLock when another process holds the lock.
class LockHeld : public Error {
 public:
  using Error::Error;
};

/// An exclusive advisory lock (flock) on `path`, held while the object lives: a
/// second process that asks for the same lock gets LockHeld at once, naming the
/// holder's pid. The kernel drops the lock when the holder exits, even by kill -9,
/// so a crashed run never leaves a stale lock behind. On a filesystem without
/// flock (some NFS and FUSE mounts) the object holds no lock and locked() says so.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path) : path_(path.string()) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) detail::fail("cannot open the lock file '", path_, "': ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
      locked_ = true;
      const std::string pid = std::to_string(::getpid());
      if (::ftruncate(fd_, 0) == 0) (void)::pwrite(fd_, pid.data(), pid.size(), 0);
      return;
    }
    const int e = errno;
    if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS) return;  // no locking here: locked() is false
    char holder[32] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK)
      throw LockHeld("'" + path_ + "' is held by another process (pid " +
                     (n > 0 ? std::string(holder, static_cast<std::size_t>(n)) : std::string("unknown")) + ")");
    detail::fail("cannot lock '", path_, "': ", std::strerror(e));
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
  }
  [[nodiscard]] bool locked() const { return locked_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool locked_ = false;
};

/// Where the shared data lives: `flag` if given, else $LOWBIT_DATA, else
/// ../shared/data (relative to the working directory) if it exists.
inline std::filesystem::path data_dir(std::optional<std::filesystem::path> flag = std::nullopt) {
  namespace fs = std::filesystem;
  if (flag && !flag->empty()) {
    detail::check(fs::is_directory(*flag), "data directory given by flag '", flag->string(),
                  "' is not a directory");
    return *flag;
  }
  if (const char* env = std::getenv("LOWBIT_DATA"); env && *env) {
    detail::check(fs::is_directory(env), "LOWBIT_DATA='", env, "' is not a directory");
    return env;
  }
  const fs::path fallback = fs::path("..") / "shared" / "data";
  if (fs::is_directory(fallback)) return fallback;
  detail::fail("no data directory: pass one with a flag (e.g. --data DIR), or set LOWBIT_DATA, or run ",
               "from a checkout that has ../shared/data (looked for '", fs::absolute(fallback).string(), "')");
}

}  // namespace lowbit::io
