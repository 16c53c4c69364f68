/// @file cross_validation.hpp
/// `celltyper cv`: leave-one-group-out evaluation of full train + annotate configurations.
///
/// For every held-out group (a donor, a technology, or a whole reference file) each model
/// configuration (classifier x feature route) is trained on the other groups' labelled cells with
/// `train_model` and predicts the held-out cells; the held-out predictions are scored with
/// `evaluate` (flat, ranking and, with an ontology, Cell-Ontology-aware metrics). With several
/// configurations an "ensemble" row averages their class probabilities (classes united by name),
/// and with `hierarchical` each method also gets a "+hierarchical" row (predict_hierarchical).
/// Flat predictions are the most probable class (no Unassigned threshold), so every held-out cell
/// counts.
///
/// Labels from several files can be harmonised to Cell Ontology ids (`harmonize_labels`): each
/// label is replaced by its CL term's label through the label map / ontology, so "CD14+ Mono" and
/// "CD14+ Monocyte" train and score as one class ("classical monocyte").
#pragma once

#include <celltyper/annotate.hpp>
#include <celltyper/classifier.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/metrics.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/report.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace celltyper {


/// One model configuration of a cross-validation.
struct CvModelConfig {
  std::string classifier = "logreg";
  std::string features = kFeaturesExpression;
  HyperParameters hyperparameters;
  /// "classifier:features", e.g. "logreg:genept".
  [[nodiscard]] std::string name() const { return classifier + ":" + features; }
};

/// One fold's model of one configuration (CrossValidationOptions::keep_models).
struct CvFoldModel {
  std::string fold;    ///< the group held out
  std::string method;  ///< the configuration, e.g. "logreg:expression"
  std::shared_ptr<CellTypeModel> model;
};


/// Options of `cross_validate`.
struct CrossValidationOptions {
  /// References, label column, group column (an obs column, or kGroupByFile), embedding options,
  /// seed, threads, label map, expression panel size, validation fraction (per fold, for early
  /// stopping; default 0). `classifier`, `features` and `cell_masks` are set per run.
  TrainOptions train;
  std::vector<CvModelConfig> configurations;
  bool ensemble = true;                     ///< add "ensemble" (mean probabilities) when there are several configurations
  bool hierarchical = false;                ///< add "+hierarchical" rows (needs `ontology` and classes with CL ids)
  double min_score = 0.5;                   ///< threshold of hierarchical prediction
  const Ontology* ontology = nullptr;       ///< for ontology metrics and label harmonisation (not owned)
  bool harmonize_labels = false;            ///< replace labels by their CL term's label (needs ontology or label map); with the ontology, a file's coarser term trains as the classes below it (as train --harmonize-labels)
  std::vector<std::string> folds;           ///< groups to hold out (empty = every group)
  /// K folds instead of one per group (0: one fold per group). A group column (or kGroupByFile)
  /// of more than K groups has its groups pooled into K folds of about equal cells (scikit-learn's
  /// GroupKFold: the largest group first, each into the fold with the fewest cells); without a
  /// group column (`train.group_column` empty) the labelled cells are split into K folds
  /// stratified by label (StratifiedKFold, shuffled with `train.seed`). The folds are named
  /// "fold 1" ... "fold K"; a note lists each fold's groups.
  int n_splits = 0;
  std::string filter_column;                ///< keep only cells whose obs `filter_column` equals `filter_value` ("" = all)
  std::string filter_value;
  /// Per fold, train only on the genes detected in the held-out cells (`cv --restrict-genes
  /// held-out`): what `train --restrict-genes QUERY.h5ad` does for a real query, so that a pooled
  /// file whose groups measured different panels is scored the way users would annotate.
  /// Combined with `train.restrict_genes` (intersection) when both are set.
  bool restrict_to_held_out_genes = false;
  /// Keep every held-out cell's truth, prediction, score and (flat methods) class probabilities
  /// (`result.held_out`: cv --predictions / --probabilities, a report, Python's tables).
  bool keep_held_out = false;
  /// With keep_held_out, also the genept cell embeddings of the held-out cells (from the first
  /// genept configuration): the report's cell map.
  bool keep_held_out_map = false;
  /// Keep each fold's model of each configuration (`result.models`: scikit-learn's
  /// cross_validate(return_estimator=True), Python's cv(return_models=True), cv --save-models).
  /// Such a model is complete as `train` writes one: it carries its reference sample (annotate
  /// refits it on a query's genes and checks that cells resemble its types; without it, cv's fold
  /// models leave the sample out) and records its fold (provenance "cv_fold", "cv_held_out": what
  /// it held out in words, "cv_fold_groups": the groups --n-splits pooled into it).
  bool keep_models = false;
  /// With keep_models: where each fold's models go as the fold ends (cv --save-models writes them,
  /// so that one fold's models are in memory at a time); unset, they gather in `result.models`.
  std::function<void(CvFoldModel&&)> model_sink;
  std::function<void(const std::string&)> log;
};

/// Metrics of one method on one held-out group.
struct CvMethodResult {
  EvaluationResult metrics;
  double train_seconds = 0;    ///< training (features included); for the ensemble: sum over members
  double predict_seconds = 0;  ///< features + prediction of the held-out cells
};

/// One held-out group.
struct CvFold {
  std::string group;
  std::int64_t n_train = 0;    ///< labelled cells of the other groups
  std::int64_t n_test = 0;     ///< labelled cells of this group
  std::int64_t n_genes = 0;    ///< genes the fold's models could use (0 = not restricted)
  std::map<std::string, CvMethodResult> methods;
};

/// Outcome of `cross_validate`.
struct CrossValidationResult {
  std::vector<std::string> methods;          ///< row order: configurations, ensemble, +hierarchical rows
  std::vector<CvFold> folds;
  std::vector<std::string> unmapped_labels;  ///< labels without a CL id (harmonisation / ontology metrics)
  std::vector<std::string> warnings;
  /// Per method: the metrics of every fold's held-out cells pooled (each labelled cell is held out
  /// exactly once, so this scores one out-of-fold prediction per cell). Flat methods' ranking and
  /// calibration metrics pool each fold's probabilities over its own model's classes
  /// (`RankingTally`); the `+hierarchical` rows have none.
  std::map<std::string, EvaluationResult> pooled;
  /// With `keep_models`: each fold's model of each configuration (fold order, then configuration
  /// order; the ensemble and +hierarchical rows have none of their own).
  std::vector<CvFoldModel> models;
  /// With `keep_held_out`: held-out cells of all folds, in fold order.
  struct HeldOut {
    std::vector<std::string> fold;   ///< the cell's held-out group
    std::vector<std::int32_t> reference;  ///< the cell's reference (index into the references)
    std::vector<std::int64_t> row;        ///< the cell's row in its reference
    std::vector<std::string> cell;        ///< the cell's obs name in its reference
    std::vector<std::string> truth;  ///< label as scored
    std::map<std::string, std::vector<std::string>> predictions;  ///< per method
    /// per method, the probability of each prediction (flat: its class's; +hierarchical: its
    /// term's summed probability; 0 for a cell without any model gene)
    std::map<std::string, std::vector<float>> scores;
    /// Per flat method (each configuration and the ensemble; not the +hierarchical rows): every
    /// held-out cell's class probabilities, over the union of the folds' classes (first-seen
    /// order). A class a fold's model lacks has probability 0 there, and a cell without any model
    /// gene has 0 throughout (its prediction is Unassigned). scikit-learn's
    /// cross_val_predict(method="predict_proba").
    std::map<std::string, ProbabilityMatrix> probabilities;
    DenseMatrix embedding;           ///< genept cell embeddings (rows = cells; empty without a genept configuration)
    std::string embedding_source;    ///< e.g. "held-out cells (256-d genept)"
  } held_out;
  /// Per method: mean over folds of accuracy, macro-F1, weighted-F1 (and ontology metrics).
  [[nodiscard]] nlohmann::json summary() const;
  [[nodiscard]] nlohmann::json to_json() const;
  /// Readable table: one row per method and fold, then the means.
  [[nodiscard]] std::string format_table() const;
  /// Methods ordered by mean macro-F1 over the folds, best first (ties keep `methods` order).
  [[nodiscard]] std::vector<std::string> ranked_methods() const;
  /// How many held-out cells the Cell Ontology metrics describe (the pooled `n_mapped`, fewest and
  /// most over the methods) of how many; `available` false without ontology metrics. In to_json
  /// as "ontology_coverage" ({fewest, most, n_cells}) when available.
  struct OntologyCoverage {
    bool available = false;
    std::int64_t fewest = 0;
    std::int64_t most = 0;
    std::int64_t n_cells = 0;
  };
  [[nodiscard]] OntologyCoverage ontology_coverage() const;
};

/// The held-out cells of a result kept with `keep_held_out` as CSV (`cv --predictions`): obs_name,
/// reference (`reference_names[i]`, e.g. the file), fold, truth, then per method (in `methods`
/// order) its out-of-fold label and `METHOD_score`, the probability of it. RFC 4180 quoting; NA
/// for a missing value, scores with 6 significant digits.
void write_held_out_csv(const CrossValidationResult& result, const std::vector<std::string>& reference_names, std::ostream& out);

/// The out-of-fold class probabilities (`cv --probabilities`), long by method: one row per held-out
/// cell and flat method (obs_name, reference, fold, method), then one column per class (the union
/// of the methods' classes, first-seen order; 0 where a method's folds have no such class; a class
/// named obs_name, reference, fold or method is headed "class:NAME").
void write_held_out_probabilities_csv(const CrossValidationResult& result, const std::vector<std::string>& reference_names,
                                      std::ostream& out);

/// The content of a cross-validation HTML report (`cv --report`): one section per method with
/// the pooled out-of-fold metrics (best mean macro-F1 first), per-fold macro-F1 in the details,
/// and, when `keep_held_out` kept genept embeddings, a PCA map of the held-out cells coloured by
/// truth and by the best method's prediction (at most `max_map_points` cells, seeded subsample).
ReportContent report_content(const CrossValidationResult& result, std::vector<std::pair<std::string, std::string>> details,
                             std::size_t max_map_points = 20000, std::uint64_t seed = 0);

/// `own_gene_names_table` for a cross-validation: the references' own var names as the genes of
/// every fold (training and held-out cells), when every configuration is on the expression route
/// and the references hardly name genes of `table` (or options.train.own_gene_names asks);
/// nullopt otherwise. Throws InputError when GenePT-w configurations sit beside expression ones
/// that would train so (one run reads the genes one way).
std::optional<GeneTable> cv_own_gene_names_table(const std::vector<const Dataset*>& datasets, const CrossValidationOptions& options,
                                                 const GeneTable& table, std::string* warning = nullptr);

/// Run the cross-validation on the files `options.train.references`. Throws InputError when the
/// group column is missing (and no `n_splits`), fewer than 2 groups exist, a requested fold is not
/// a group, or no configuration is given.
CrossValidationResult cross_validate(const CrossValidationOptions& options, const GeneStore& store, const GeneTable& table);

/// The same on datasets already open or held in memory (Python's AnnData objects). Their names,
/// which name the folds of kGroupByFile and the messages, are `options.train.references` when it
/// lists one per dataset, else each dataset's path().
CrossValidationResult cross_validate(const std::vector<const Dataset*>& references, const CrossValidationOptions& options,
                                     const GeneStore& store, const GeneTable& table);

}  // namespace celltyper
