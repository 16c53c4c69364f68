/// @file linear_scores.hpp
/// `annotate`'s fast path for logistic regression on the expression route: the model is one
/// affine map of the raw features, scores = bias + W x, with the standardisation folded in
/// (W = w / scale, bias = b - w . mean / scale). A cell's scores then need only its expressed
/// panel genes (a few hundred of the 3,000), read as sparse features straight from the matrix
/// blocks: no dense feature block, no standardised copy. Probabilities equal the classifier's
/// predict_proba on the dense features up to the order of floating-point sums (< 1e-6).
#pragma once

#include <celltyper/annotate.hpp>
#include <celltyper/expression_features.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace celltyper {

/// A model as scores = bias + W x over its panel features.
struct LinearScores {
  int classes = 0;
  int width = 0;
  std::vector<double> weights;  ///< [width x classes]: feature j's weight for class k at j * classes + k
  std::vector<double> bias;     ///< [classes]
};

/// The affine form of `model` when it is logistic regression on the expression route; nullopt
/// for any other model.
std::optional<LinearScores> linear_scores(const CellTypeModel& model);

/// Class probabilities of every non-empty cell of `dataset` under `linear` (softmax of the
/// scores), added into `probabilities` [n_obs x c_all] at `columns` (the model's classes' columns;
/// SIZE_MAX: a class left out);
/// `models_used` counts, per cell, the models that scored it. Streams sparse features within
/// `options.memory_limit_bytes` on `options.num_threads`; identical for every thread count and
/// block size. `observe` (when set) also sees every block of sparse features, after its cells are
/// scored, with the `extra` genes' values beside the panel's (columns from the panel's width on:
/// the similarity check reads them in the same pass). Returns the features run's description
/// (warnings, normalisation).
ExpressionFeatures add_linear_probabilities(const Dataset& dataset, const CellTypeModel& model, const LinearScores& linear,
                                            const GeneTable& table, const EmbedOptions& options, const std::vector<std::size_t>& columns,
                                            std::size_t c_all, std::vector<float>& probabilities, std::vector<std::int32_t>& models_used,
                                            const SparseFeatureBlockCallback& observe = {}, const std::vector<std::int64_t>& extra = {});

}  // namespace celltyper
