// k nearest neighbours by cosine similarity of standardised embeddings, distance-weighted vote.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>

#include <fmt/format.h>

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

/// Dot product of two d-vectors in a fixed order: 16 partial sums (lane l takes elements j with
/// j mod 16 = l, which the compiler keeps in one vector register), added in lane order, then the
/// tail. Float accumulation: the inputs are unit vectors, so the error is about d * 2^-24.
inline float dot(const float* a, const float* b, int d) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += a[j + l] * b[j + l];
  }
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  for (; j < d; ++j) sum += a[j] * b[j];
  return sum;
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
    // Queries in tiles of kTile: each reference row is read once per tile (it stays in L1 while
    // the tile's queries are compared with it) instead of once per query. Every similarity is
    // the same fixed-order dot product whatever the tile, so results do not depend on n.
    constexpr std::int64_t kTile = 8;
    std::vector<float> queries(static_cast<std::size_t>(kTile * d));
    std::vector<float> similarities(static_cast<std::size_t>(kTile * n_reference));
    std::vector<std::pair<float, std::int64_t>> ranked(static_cast<std::size_t>(n_reference));
    std::vector<double> votes(static_cast<std::size_t>(c));
    for (std::int64_t first = 0; first < n; first += kTile) {
      const std::int64_t rows = std::min(kTile, n - first);
      std::copy(x + first * d, x + (first + rows) * d, queries.begin());
      normalize_rows(queries.data(), rows, d);
      for (std::int64_t r = 0; r < n_reference; ++r) {
        const float* reference = reference_.data() + r * d;
        for (std::int64_t t = 0; t < rows; ++t) similarities[static_cast<std::size_t>(t * n_reference + r)] = dot(queries.data() + t * d, reference, d);
      }
      for (std::int64_t t = 0; t < rows; ++t) {
        const float* similarity = similarities.data() + t * n_reference;
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
