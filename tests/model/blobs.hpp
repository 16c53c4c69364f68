/// Seeded synthetic classification data shared by the classifier back-end tests.
#pragma once

#include <celltyper/classifier.hpp>

#include <cmath>
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

/// Expression-like features: ~90% zeros, the rest log1p of small counts, with class-specific
/// genes so the classes are learnable.
inline Blobs make_sparse_expression(std::int64_t n, int d, int classes, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(0, 1);
  std::poisson_distribution<int> counts(2.0);
  Blobs blobs;
  blobs.n = n;
  blobs.d = d;
  blobs.classes = classes;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = static_cast<std::int32_t>(i % classes);
    blobs.y.push_back(label);
    for (int j = 0; j < d; ++j) {
      const bool marker = j % classes == label;
      const float p = marker ? 0.4f : 0.06f;
      blobs.x.push_back(uniform(rng) < p ? std::log1p(static_cast<float>(1 + counts(rng))) : 0.0f);
    }
  }
  return blobs;
}

/// `blobs`' non-zero values in compressed rows (what train keeps for expression features).
struct CompressedRows {
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<float> values;
  [[nodiscard]] SparseFeatures view(std::int64_t n, int d) const { return {indptr.data(), indices.data(), values.data(), n, d}; }
};
inline CompressedRows compress(const Blobs& blobs) {
  CompressedRows rows;
  for (std::int64_t i = 0; i < blobs.n; ++i) {
    for (int j = 0; j < blobs.d; ++j) {
      const float value = blobs.x[static_cast<std::size_t>(i * blobs.d + j)];
      if (value != 0) {
        rows.indices.push_back(j);
        rows.values.push_back(value);
      }
    }
    rows.indptr.push_back(static_cast<std::int64_t>(rows.values.size()));
  }
  return rows;
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
