// Logistic regression on the expression route as one sparse affine map (linear_scores.hpp).
#include <celltyper/linear_scores.hpp>
#include <celltyper/parallel.hpp>

#include <algorithm>
#include <cstdint>
#include <cmath>

namespace celltyper {

std::optional<LinearScores> linear_scores(const CellTypeModel& model) {
  if (model.features != kFeaturesExpression || model.classifier == nullptr || model.classifier->type() != "logreg") return std::nullopt;
  const ClassifierState state = model.classifier->export_state();
  const auto mean = state.double_arrays.find("standardize_mean");
  const auto scale = state.double_arrays.find("standardize_scale");
  const auto weights = state.double_arrays.find("weights");
  if (mean == state.double_arrays.end() || scale == state.double_arrays.end() || weights == state.double_arrays.end()) return std::nullopt;
  LinearScores linear;
  linear.classes = model.classifier->n_classes();
  linear.width = model.classifier->n_features();
  const auto d = static_cast<std::size_t>(linear.width);
  const auto c = static_cast<std::size_t>(linear.classes);
  if (weights->second.values.size() != c * (d + 1) || mean->second.values.size() != d || scale->second.values.size() != d ||
      model.panel.entrez_ids.size() != d) {
    return std::nullopt;
  }
  linear.weights.resize(d * c);
  linear.bias.resize(c);
  // (the calibration temperature divides the scores: softmax(z / T) is the tempered probability)
  const double temperature = model.classifier->temperature();
  for (std::size_t k = 0; k < c; ++k) {
    const double* w = weights->second.values.data() + k * (d + 1);
    double bias = w[d] / temperature;
    for (std::size_t j = 0; j < d; ++j) {
      const double folded = w[j] / scale->second.values[j] / temperature;
      linear.weights[j * c + k] = folded;
      bias -= folded * mean->second.values[j];
    }
    linear.bias[k] = bias;
  }
  return linear;
}

ExpressionFeatures add_linear_probabilities(const Dataset& dataset, const CellTypeModel& model, const LinearScores& linear,
                                            const GeneTable& table, const EmbedOptions& options, const std::vector<std::size_t>& columns,
                                            std::size_t c_all, std::vector<float>& probabilities, std::vector<std::int32_t>& models_used,
                                            const SparseFeatureBlockCallback& observe, const std::vector<std::int64_t>& extra) {
  ExpressionOptions settings = expression_options(options, model);
  settings.size_factor_genes = model.panel.size_factor_genes;
  const auto c = static_cast<std::size_t>(linear.classes);
  return stream_sparse_expression_features(dataset, table, model.panel.entrez_ids, settings, [&](const SparseFeatureBlock& block) {
    constexpr std::int64_t kRowsPerItem = 256;
    const std::int64_t items = (block.n_rows + kRowsPerItem - 1) / kRowsPerItem;
    parallel_for(items, options.num_threads, [&](std::int64_t item) {
      std::vector<double> z(c);
      const std::int64_t last = std::min(block.n_rows, (item + 1) * kRowsPerItem);
      for (std::int64_t r = item * kRowsPerItem; r < last; ++r) {
        const auto local = static_cast<std::size_t>(r);
        if (block.empty[local] != 0) continue;
        std::copy(linear.bias.begin(), linear.bias.end(), z.begin());
        const auto start = static_cast<std::size_t>(block.starts[local]);
        for (std::size_t i = start; i < start + static_cast<std::size_t>(block.counts[local]); ++i) {
          if (block.columns[i] >= linear.width) continue;  // an extra gene (observe's)
          const double value = block.values[i];
          const double* w = linear.weights.data() + static_cast<std::size_t>(block.columns[i]) * c;
          for (std::size_t k = 0; k < c; ++k) z[k] += value * w[k];
        }
        const double max = *std::max_element(z.begin(), z.end());
        double sum = 0;
        for (std::size_t k = 0; k < c; ++k) sum += std::exp(z[k] - max);
        const double log_sum = max + std::log(sum);
        const auto row = static_cast<std::size_t>(block.first_row + r);
        ++models_used[row];
        for (std::size_t k = 0; k < c; ++k) {
          if (columns[k] != SIZE_MAX) probabilities[row * c_all + columns[k]] += static_cast<float>(std::exp(z[k] - log_sum));
        }
      }
    });
    if (observe) observe(block);
  }, 0.05, extra);
}

}  // namespace celltyper
