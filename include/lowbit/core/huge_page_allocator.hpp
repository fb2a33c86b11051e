// An allocator for big tables probed at random — the tokenizers' merge rules and
// vocabulary index (4-8 MB for Llama 3 and Qwen3). On 4 KiB pages every probe into
// such a table is likely a TLB miss as well as a cache miss: Zen 4's second-level TLB
// reaches 12 MiB, less than a Llama 3 encoder's tables and text together. Linux backs
// a 2 MiB-aligned range advised MADV_HUGEPAGE with transparent huge pages when they
// are enabled "always" or "madvise" (Debian's default), and then one TLB entry covers
// 2 MiB. Allocations under 2 MiB (GPT-2's vocabulary index, small test tables) are
// plain new/delete: a huge page for them would only waste memory.
//
// The advice is only advice: where huge pages are off, or on another OS, the memory
// is ordinary and the tables behave exactly the same.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lowbit {

template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t huge_page = std::size_t{2} << 20;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < huge_page) return std::allocator<T>{}.allocate(n);
    const std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
    void* p = std::aligned_alloc(huge_page, rounded);
    if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    ::madvise(p, rounded, MADV_HUGEPAGE);  // refused (huge pages off): ordinary pages, same behaviour
#endif
    return static_cast<T*>(p);
  }

  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < huge_page) std::allocator<T>{}.deallocate(p, n);
    else std::free(p);
  }

  using is_always_equal = std::true_type;
};

template <class T, class U>
bool operator==(const HugePageAllocator<T>&, const HugePageAllocator<U>&) noexcept {
  return true;  // stateless: memory from one is freed by any other
}

}  // namespace lowbit
