// Arena: bump allocator for activations and gradients, reused step after step.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

namespace lowbit::autograd {

/// Hands out 64-byte aligned blocks from large chunks; reset() forgets them all at
/// once. When a step needed more than one chunk, reset() replaces the chunks by one
/// chunk of the peak size, so from the second identical step on nothing is allocated.
class Arena {
 public:
  static constexpr std::size_t alignment = 64;

  explicit Arena(std::size_t initial_bytes = std::size_t{1} << 20) : next_chunk_(initial_bytes) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  /// n uninitialised objects of trivially copyable T.
  template <class T>
  T* alloc(std::size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    return static_cast<T*>(bytes(n * sizeof(T)));
  }
  template <class T>
  T* zeros(std::size_t n) {
    T* p = alloc<T>(n);
    if (n) std::memset(static_cast<void*>(p), 0, n * sizeof(T));
    return p;
  }

  void* bytes(std::size_t n) {
    n = round_up(std::max<std::size_t>(n, 1));
    if (chunks_.empty() || used_ + n > chunks_.back().size) {
      const std::size_t size = std::max(next_chunk_, n);
      chunks_.push_back(Chunk{Block(static_cast<std::byte*>(std::aligned_alloc(alignment, size))), size});
      if (!chunks_.back().data) throw std::bad_alloc();
      retired_ += chunks_.size() > 1 ? chunks_[chunks_.size() - 2].size - used_ : 0;
      used_ = 0;
      next_chunk_ = size * 2;
      ++allocations_;
    }
    std::byte* p = chunks_.back().data.get() + used_;
    used_ += n;
    peak_ = std::max(peak_, in_use());
    return p;
  }

  /// Forgets every block. Keeps (or consolidates into) memory for the peak seen.
  void reset() {
    if (chunks_.size() > 1) {
      std::size_t total = 0;
      for (const auto& c : chunks_) total += c.size;
      chunks_.clear();
      chunks_.push_back(Chunk{Block(static_cast<std::byte*>(std::aligned_alloc(alignment, total))), total});
      if (!chunks_.back().data) throw std::bad_alloc();
      ++allocations_;
    }
    used_ = 0;
    retired_ = 0;
  }

  /// Bytes handed out since the last reset (including alignment padding).
  [[nodiscard]] std::size_t in_use() const {
    std::size_t sum = used_;
    for (std::size_t i = 0; i + 1 < chunks_.size(); ++i) sum += chunks_[i].size;
    return sum - retired_;
  }
  /// Most bytes in use at once since construction.
  [[nodiscard]] std::size_t peak_bytes() const { return peak_; }
  /// Bytes reserved from the system now.
  [[nodiscard]] std::size_t reserved_bytes() const {
    std::size_t sum = 0;
    for (const auto& c : chunks_) sum += c.size;
    return sum;
  }
  /// How many times the arena asked the system for memory (constant once warm).
  [[nodiscard]] std::size_t system_allocations() const { return allocations_; }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  using Block = std::unique_ptr<std::byte, Free>;
  struct Chunk {
    Block data;
    std::size_t size = 0;
  };
  static std::size_t round_up(std::size_t n) { return (n + alignment - 1) / alignment * alignment; }

  std::vector<Chunk> chunks_;
  std::size_t used_ = 0;      // bytes used in the last chunk
  std::size_t retired_ = 0;   // unused tails of earlier chunks (not counted as in use)
  std::size_t next_chunk_;
  std::size_t peak_ = 0;
  std::size_t allocations_ = 0;
};

}  // namespace lowbit::autograd
