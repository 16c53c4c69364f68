/// @file tune.hpp
/// Hyperparameter search for a classifier (`celltyper tune`): embed the labelled references once,
/// hold out a validation split, then train many configurations on the in-memory features and
/// score each by validation macro-F1.
///
/// Search: random sampling of every hyperparameter that declares a tune range
/// (HyperParameter::tune_min / tune_max / tune_log in classifier.hpp; the first configuration is
/// the spec's defaults), pruned by successive halving (Jamieson & Talwalkar, "Non-stochastic Best
/// Arm Identification and Hyperparameter Optimization", AISTATS 2016; the synchronous form of
/// Hyperband, Li et al., JMLR 2018): every configuration is trained with a small share of the
/// training budget (epochs, boosting rounds or iterations, the parameter marked `budget`), the
/// best 1/`reduction` go on to `reduction` times the budget, and so on up to the full budget.
/// Classifiers with a validation-aware fit (mlp, xgboost) also get the validation cells for early
/// stopping, so their score is slightly optimistic; the split is the one `celltyper train` makes
/// for the same seed and fraction.
#pragma once

#include <celltyper/classifier.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/train.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace celltyper {

/// Options of `embed_references`.
struct ReferenceOptions {
  std::vector<std::string> references;  ///< .h5ad files
  std::string cell_table;               ///< per-cell metadata joined to every reference's obs (TrainOptions::cell_table)
  std::string label_column;             ///< obs column with the cell types (or several: TrainOptions::label_column)
  std::string group_column;             ///< obs column of groups (donor, batch); "" = none
  std::string features = kFeaturesGenept;  ///< kFeaturesGenept or kFeaturesExpression
  int n_genes = 3000;                   ///< expression route: panel size
  EmbedOptions embed;                   ///< matrix (layer), dims, gene column
  int num_threads = 0;                  ///< 0 = all hardware threads
  std::uint64_t seed = 0;               ///< draws the depth-augmented copies, as `train --seed` does
  bool own_gene_names = false;          ///< TrainOptions::own_gene_names
  std::function<void(const std::string&)> log;  ///< progress messages (may be empty)
};

/// Features of every reference's labelled cells, computed as `celltyper train` computes them
/// (training_features in train.hpp). Throws InputError when a column is missing or the
/// embeddings' dims disagree.
LabelledFeatures embed_references(const ReferenceOptions& options, const GeneStore& store, const GeneTable& table);

/// One training run of one configuration.
struct TrialRecord {
  int trial = 0;                    ///< configuration id (0 = the spec's defaults)
  int rung = 0;                     ///< successive-halving rung (0 = smallest budget)
  double budget = 0;                ///< value of the budget hyperparameter (0 when there is none)
  HyperParameters hyperparameters;  ///< every hyperparameter of the classifier
  double macro_f1 = 0;              ///< validation macro-F1 (metrics.hpp `evaluate`)
  double accuracy = 0;              ///< validation accuracy
  double seconds = 0;               ///< fit + scoring
  nlohmann::json fit_report;        ///< Classifier::fit_report (epochs run, best epoch, ...)
  [[nodiscard]] nlohmann::json to_json() const;
};

/// Options of `tune_classifier`.
struct TuneOptions {
  std::string classifier = "mlp";  ///< a ClassifierSpec type
  std::string features = kFeaturesGenept;  ///< the route the data's features came from (recorded in the result)
  int trials = 27;                 ///< configurations sampled (the first is the defaults)
  int reduction = 3;               ///< keep the best 1/reduction of each rung (>= 2)
  int max_rungs = 4;               ///< rungs at most; fewer when trials run out (1 = plain random search)
  double max_budget = 0;           ///< budget of the last rung; 0 = the budget parameter's default
  HyperParameters fixed;           ///< held at these values, never sampled
  std::uint64_t seed = 0;          ///< sampling and every fit
  int num_threads = 0;             ///< per fit; 0 = all hardware threads
  std::function<void(const TrialRecord&)> on_trial;  ///< after every fit (may be empty)
};

/// Outcome of `tune_classifier`.
struct TuneResult {
  std::string classifier;
  std::string features = kFeaturesGenept;  ///< TuneOptions::features
  std::uint64_t seed = 0;
  std::vector<TrialRecord> trials;  ///< every fit, in run order
  /// Best macro-F1 over every fit, whatever its rung (its hyperparameters include its budget);
  /// ties go to the larger budget, then to the lower trial id. Validation macro-F1 of a few hundred
  /// cells is noisy: the last rung's single survivor is not always the best fit seen.
  TrialRecord best;
  int rungs = 0;
  std::vector<double> budgets;      ///< per rung
  std::string split;                ///< description of the validation split
  /// What `--out` writes: classifier, hyperparameters, validation scores, the equivalent
  /// `celltyper train` arguments.
  [[nodiscard]] nlohmann::json best_json() const;
};

/// Search hyperparameters of `options.classifier` on `data` split by `split`. Throws InputError
/// on an unknown classifier, a fixed value out of bounds, fewer than 2 training classes, an empty
/// validation split, or trials < 1.
TuneResult tune_classifier(const LabelledFeatures& data, const ValidationSplit& split, const TuneOptions& options);

/// The CLI flags of `celltyper train` that reproduce `hyperparameters` for `classifier`
/// on `features` ("--classifier", "mlp", "--features", "genept", "--hidden", "512", ...): the route
/// is always named.
std::vector<std::string> train_arguments(const std::string& classifier, const std::string& features, const HyperParameters& hyperparameters);

}  // namespace celltyper
