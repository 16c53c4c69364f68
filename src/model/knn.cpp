// k nearest neighbours by cosine similarity of standardised embeddings, distance-weighted vote.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>

#include <fmt/format.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <numeric>

namespace celltyper {
namespace {

/// Scale each row of [n x d] to unit length (zero rows stay zero).
void normalize_rows(float* x, std::int64_t n, int d) {
  for (std::int64_t i = 0; i < n; ++i) {
    float* row = x + i * d;
    double sum = 0;
    for (int j = 0; j < d; ++j) sum += static_cast<double>(row[j]) * row[j];
    if (sum > 0) {
      const double inverse = 1.0 / std::sqrt(sum);
      for (int j = 0; j < d; ++j) row[j] = static_cast<float>(row[j] * inverse);
    }
  }
}

/// Cosine similarities of a tile of unit queries with every unit reference row, each one the
/// same fixed-order dot product: 16 lane sums (lane l takes the elements j with j mod 16 = l,
/// each step one fused multiply-add), then the lanes added in order. FMA rounds exactly, so the
/// AVX-512 path (4 x 4 blocks held in registers: every loaded vector feeds 4 FMAs) and the
/// portable path (std::fma per lane) give the same bits, and a similarity never depends on the
/// tile or the thread that computed it. Float accumulation on unit vectors: error ~ d * 2^-24.
constexpr int kLanes = 16;

float finish_lanes(const float* lanes) {
  float sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

/// out[t * n_reference + r] = similarity of query t (of `rows`) with reference r.
void similarities(const float* queries, std::int64_t rows, const float* reference, std::int64_t n_reference, int d, float* out) {
#if defined(__AVX512F__)
  const __mmask16 tail = static_cast<__mmask16>((1u << (d % kLanes)) - 1u);
  const int full = d - d % kLanes;
  alignas(64) float lanes[kLanes];
  const auto load = [&](const float* row, int j) { return j < full ? _mm512_loadu_ps(row + j) : _mm512_maskz_loadu_ps(tail, row + j); };
  const int steps = (d + kLanes - 1) / kLanes;
  const auto dot = [&](const float* x, const float* y) {
    __m512 acc = _mm512_setzero_ps();
    for (int s = 0; s < steps; ++s) acc = _mm512_fmadd_ps(load(x, s * kLanes), load(y, s * kLanes), acc);
    _mm512_store_ps(lanes, acc);
    return finish_lanes(lanes);
  };
  // Reference blocks outside, query groups inside: a block of 4 reference rows is read from
  // memory once per tile of queries (which stays in L2) instead of once per 4 queries.
  std::int64_t r = 0;
  for (; r + 4 <= n_reference; r += 4) {
    const float* e = reference + r * d;
    std::int64_t t = 0;
    for (; t + 4 <= rows; t += 4) {
      const float* q = queries + t * d;
      __m512 acc[4][4];
      for (auto& row : acc) {
        for (auto& x : row) x = _mm512_setzero_ps();
      }
      for (int s = 0; s < steps; ++s) {
        const int j = s * kLanes;
        const __m512 e0 = load(e, j), e1 = load(e + d, j), e2 = load(e + 2 * d, j), e3 = load(e + 3 * d, j);
        for (int i = 0; i < 4; ++i) {
          const __m512 x = load(q + i * d, j);
          acc[i][0] = _mm512_fmadd_ps(x, e0, acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(x, e1, acc[i][1]);
          acc[i][2] = _mm512_fmadd_ps(x, e2, acc[i][2]);
          acc[i][3] = _mm512_fmadd_ps(x, e3, acc[i][3]);
        }
      }
      for (int i = 0; i < 4; ++i) {
        for (int k = 0; k < 4; ++k) {
          _mm512_store_ps(lanes, acc[i][k]);
          out[(t + i) * n_reference + r + k] = finish_lanes(lanes);
        }
      }
    }
    for (; t < rows; ++t) {  // the last queries, one at a time
      for (int k = 0; k < 4; ++k) out[t * n_reference + r + k] = dot(queries + t * d, e + k * d);
    }
  }
  for (; r < n_reference; ++r) {  // the last reference rows, one at a time
    for (std::int64_t t = 0; t < rows; ++t) out[t * n_reference + r] = dot(queries + t * d, reference + r * d);
  }
#else
  for (std::int64_t t = 0; t < rows; ++t) {
    const float* q = queries + t * d;
    for (std::int64_t r = 0; r < n_reference; ++r) {
      const float* e = reference + r * d;
      float lanes[kLanes] = {};
      for (int j = 0; j < d; ++j) lanes[j % kLanes] = std::fma(q[j], e[j], lanes[j % kLanes]);
      out[t * n_reference + r] = finish_lanes(lanes);
    }
  }
#endif
}

class NearestNeighbours final : public Classifier {
 public:
  [[nodiscard]] std::string type() const override { return "knn"; }

 protected:
  void fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int,
                        const FitOptions& options) override {
    reference_.assign(x, x + n * d);
    normalize_rows(reference_.data(), n, d);
    labels_ = labels;
    k_ = static_cast<int>(options.hyperparameters.at("k"));
    features_ = d;
    fit_report_ = {{"n_reference", n}, {"k_effective", std::min<std::int64_t>(k_, n)}};
  }

  void predict_standardized(const float* x, std::int64_t n, int, float* out) const override {
    const int d = features_;
    const int c = n_classes();
    const auto n_reference = static_cast<std::int64_t>(labels_.size());
    const auto k = static_cast<std::int64_t>(std::min<std::int64_t>(k_, n_reference));
    // Queries in tiles of kTile (`similarities`: each reference row is read from memory once per
    // tile; the tile, kTile x d floats, stays in L2 for d up to a few thousand); every similarity
    // is the same fixed-order dot product whatever the tile.
    constexpr std::int64_t kTile = 64;
    std::vector<float> queries(static_cast<std::size_t>(kTile * d));
    std::vector<float> scores(static_cast<std::size_t>(kTile * n_reference));
    std::vector<std::pair<float, std::int64_t>> ranked(static_cast<std::size_t>(n_reference));
    std::vector<double> votes(static_cast<std::size_t>(c));
    for (std::int64_t first = 0; first < n; first += kTile) {
      const std::int64_t rows = std::min(kTile, n - first);
      std::copy(x + first * d, x + (first + rows) * d, queries.begin());
      normalize_rows(queries.data(), rows, d);
      similarities(queries.data(), rows, reference_.data(), n_reference, d, scores.data());
      for (std::int64_t t = 0; t < rows; ++t) {
        const float* similarity = scores.data() + t * n_reference;
        for (std::int64_t r = 0; r < n_reference; ++r) ranked[static_cast<std::size_t>(r)] = {similarity[r], r};
        std::partial_sort(ranked.begin(), ranked.begin() + k, ranked.end(), [](const auto& a, const auto& b) {
          return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        std::fill(votes.begin(), votes.end(), 0.0);
        double total = 0;
        for (std::int64_t m = 0; m < k; ++m) {
          const double distance = std::max(0.0, 1.0 - static_cast<double>(ranked[static_cast<std::size_t>(m)].first));
          const double weight = 1.0 / (1e-2 + distance);
          votes[static_cast<std::size_t>(labels_[static_cast<std::size_t>(ranked[static_cast<std::size_t>(m)].second)])] += weight;
          total += weight;
        }
        float* probabilities = out + (first + t) * c;
        for (int cls = 0; cls < c; ++cls) probabilities[cls] = static_cast<float>(votes[static_cast<std::size_t>(cls)] / total);
      }
    }
  }

  void export_parameters(ClassifierState& state) const override {
    state.float_arrays["reference"] = {{static_cast<std::int64_t>(labels_.size()), features_}, reference_};
    state.int_arrays["reference_labels"] = labels_;
  }

  void import_parameters(const ClassifierState& state, const std::string& what) override {
    const auto reference = state.float_arrays.find("reference");
    const auto labels = state.int_arrays.find("reference_labels");
    features_ = n_features();
    if (reference == state.float_arrays.end() || labels == state.int_arrays.end() || labels->second.empty() ||
        reference->second.values.size() != labels->second.size() * static_cast<std::size_t>(features_)) {
      throw InputError(fmt::format("{}: kNN reference cells are missing or do not match their labels", what));
    }
    for (auto label : labels->second) {
      if (label < 0 || label >= n_classes()) throw InputError(fmt::format("{}: kNN reference label {} out of range", what, label));
    }
    reference_ = reference->second.values;
    labels_ = labels->second;
    const auto k = hyperparameters().find("k");
    if (k == hyperparameters().end() || !(k->second >= 1)) throw InputError(fmt::format("{}: kNN hyperparameter k is missing or below 1", what));
    k_ = static_cast<int>(k->second);
  }

 private:
  std::vector<float> reference_;  ///< standardised, unit-length training rows [n x d]
  std::vector<std::int32_t> labels_;
  int k_ = 15;
  int features_ = 0;
};

}  // namespace

std::unique_ptr<Classifier> make_knn() { return std::make_unique<NearestNeighbours>(); }

}  // namespace celltyper
