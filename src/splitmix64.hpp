// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA
// 2014): a tiny, fully specified generator whose stream depends on its state alone (identical
// output with every compiler and standard library). Used where one stream per row, cell or key
// must be reproducible whatever the threads or block sizes: LSA's random projection, UMAP's
// layout, depth augmentation's thinning.
#pragma once

#include <cstdint>

namespace celltyper::detail {

struct SplitMix64 {
  std::uint64_t state = 0;

  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

}  // namespace celltyper::detail
