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
    std::vector<float> query(static_cast<std::size_t>(d));
    std::vector<std::pair<float, std::int64_t>> similarity(static_cast<std::size_t>(n_reference));
    for (std::int64_t i = 0; i < n; ++i) {
      std::copy(x + i * d, x + (i + 1) * d, query.begin());
      normalize_rows(query.data(), 1, d);
      for (std::int64_t r = 0; r < n_reference; ++r) {
        const float* row = reference_.data() + r * d;
        double sum = 0;
        for (int j = 0; j < d; ++j) sum += static_cast<double>(row[j]) * query[j];
        similarity[r] = {static_cast<float>(sum), r};
      }
      std::partial_sort(similarity.begin(), similarity.begin() + k, similarity.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      float* probabilities = out + i * c;
      std::fill(probabilities, probabilities + c, 0.0f);
      double total = 0;
      std::vector<double> votes(static_cast<std::size_t>(c), 0.0);
      for (std::int64_t m = 0; m < k; ++m) {
        const double distance = std::max(0.0, 1.0 - static_cast<double>(similarity[m].first));
        const double weight = 1.0 / (1e-2 + distance);
        votes[static_cast<std::size_t>(labels_[static_cast<std::size_t>(similarity[m].second)])] += weight;
        total += weight;
      }
      for (int cls = 0; cls < c; ++cls) probabilities[cls] = static_cast<float>(votes[cls] / total);
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
