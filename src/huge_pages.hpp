/// Internal: transparent huge pages for large arrays written once after allocation.
///
/// The kernel's THP mode is often "madvise", so a fresh array takes one page fault per 4 KiB on
/// first write: a command that loads org.Hs.eg.db's 77k genes first-touches ~40 MB (~10k faults,
/// a third of `inspect`'s time on a VM where a fault costs ~10 us), and `train` on 100k cells
/// writes 2.4 GB of features (600k faults, more time than computing them). Asking for 2 MiB pages
/// before the first write turns them into a few per 2 MiB. Advice only: where THP is off,
/// nothing changes.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace celltyper::detail {

/// MADV_HUGEPAGE on the 2 MiB-aligned interior of [data, data + bytes); small buffers are left alone.
inline void advise_huge_pages(const void* data, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  if (bytes < 2 * kHuge) return;
  const auto address = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t begin = (address + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t end = (address + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

/// Reserve room for `n` elements (nothing written yet) and advise huge pages on it.
template <typename T, typename Allocator>
void reserve_huge(std::vector<T, Allocator>& vector, std::size_t n) {
  vector.reserve(n);
  advise_huge_pages(vector.data(), vector.capacity() * sizeof(T));
}

/// Room for `n` elements in a vector that grows by appends (kept values): when it must grow, it
/// doubles (at least to n) into an allocation advised huge pages, so that appending hundreds of
/// MB does not take a page fault per 4 KiB.
template <typename T, typename Allocator>
void reserve_growing_huge(std::vector<T, Allocator>& vector, std::size_t n) {
  if (vector.capacity() >= n) return;
  const std::size_t capacity = std::max(n, 2 * vector.capacity());
  std::vector<T, Allocator> grown;
  reserve_huge(grown, capacity);
  grown.insert(grown.end(), vector.begin(), vector.end());
  vector.swap(grown);
}

/// Resize a buffer that is about to be overwritten to `n` elements: when it must grow, its old
/// contents are dropped (not copied) and it grows to n + n / 8 (blocks planned to similar sizes
/// then fit without a new allocation whose pages would all fault again), advised huge pages.
template <typename T, typename Allocator>
void resize_for_overwrite(std::vector<T, Allocator>& vector, std::size_t n) {
  if (vector.capacity() < n) {
    std::vector<T, Allocator>().swap(vector);
    reserve_huge(vector, n + n / 8);
  }
  vector.resize(n);
}

}  // namespace celltyper::detail
