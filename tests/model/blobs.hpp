/// Seeded synthetic classification data shared by the classifier back-end tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace celltyper::test {

/// `n` points in `d` dims from `classes` Gaussian blobs (unit variance around centres drawn with
/// standard deviation `spread`, all shifted by +3 so standardisation matters); labels cycle
/// 0, 1, ..., classes-1.
struct Blobs {
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::int64_t n = 0;
  int d = 0;
  int classes = 0;
};

inline Blobs make_blobs(std::int64_t n, int d, int classes, float spread, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> centres(static_cast<std::size_t>(classes) * static_cast<std::size_t>(d));
  for (auto& value : centres) value = spread * normal(rng);
  Blobs blobs;
  blobs.n = n;
  blobs.d = d;
  blobs.classes = classes;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = static_cast<std::int32_t>(i % classes);
    blobs.y.push_back(label);
    for (int j = 0; j < d; ++j) blobs.x.push_back(centres[static_cast<std::size_t>(label) * d + static_cast<std::size_t>(j)] + normal(rng) + 3.0f);
  }
  return blobs;
}

/// Share of rows whose most probable class is the label.
inline double accuracy(const std::vector<float>& probabilities, const std::vector<std::int32_t>& labels, int classes) {
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const float* row = probabilities.data() + i * static_cast<std::size_t>(classes);
    std::int32_t best = 0;
    for (int c = 1; c < classes; ++c) {
      if (row[c] > row[best]) best = c;
    }
    correct += best == labels[i];
  }
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

}  // namespace celltyper::test
