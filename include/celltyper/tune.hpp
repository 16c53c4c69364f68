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

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace celltyper {

/// Embedded labelled cells of one or more references (cells with a missing or empty label, or an
/// empty embedding, dropped), in file then row order.
struct LabelledFeatures {
  std::vector<float> features;        ///< [n x dims] row-major float32
  int dims = 0;
  std::vector<std::string> labels;    ///< n labels
  std::vector<std::string> groups;    ///< n "path\x1fgroup" keys; empty strings without a group column
  std::int64_t n_dropped_unlabelled = 0;
  std::int64_t n_dropped_empty = 0;
  std::vector<std::string> warnings;
  [[nodiscard]] std::int64_t n() const { return static_cast<std::int64_t>(labels.size()); }
};

/// Options of `embed_references`.
struct ReferenceOptions {
  std::vector<std::string> references;  ///< .h5ad files
  std::string label_column;             ///< obs column with the cell types
  std::string group_column;             ///< obs column of groups (donor, batch); "" = none
  EmbedOptions embed;                   ///< matrix (layer), dims, gene column
  int num_threads = 0;                  ///< 0 = all hardware threads
  std::function<void(const std::string&)> log;  ///< progress messages (may be empty)
};

/// Embed every reference with `store` (var names resolved with `table`) as `celltyper train`
/// does. Throws InputError when a column is missing or the embeddings' dims disagree.
LabelledFeatures embed_references(const ReferenceOptions& options, const GeneStore& store, const GeneTable& table);

/// Rows of a LabelledFeatures split into training and validation cells.
struct ValidationSplit {
  std::vector<std::int64_t> train_rows;       ///< sorted
  std::vector<std::int64_t> validation_rows;  ///< sorted; empty = no validation possible
  std::string description;                    ///< e.g. "stratified random 20% of each class"
  std::vector<std::string> warnings;
};

/// The split of `celltyper train` for `fraction` and `seed`: whole groups held out when the data
/// has groups (in seeded random group order until `fraction` of the cells, never every group),
/// otherwise a seeded random `fraction` of each class (at least one cell of each class stays in
/// training). Throws InputError when `fraction` is not in (0, 1).
ValidationSplit split_validation(const LabelledFeatures& data, double fraction, std::uint64_t seed);

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
/// ("--classifier", "mlp", "--features", "genept", "--hidden", "512", ...): tune searches on GenePT-w
/// embeddings, so the route is always named.
std::vector<std::string> train_arguments(const std::string& classifier, const HyperParameters& hyperparameters);

}  // namespace celltyper
