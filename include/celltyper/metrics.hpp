/// @file metrics.hpp
/// Evaluation of cell-type predictions: flat classification metrics (scikit-learn semantics),
/// ranking metrics from class probabilities, and Cell-Ontology-aware metrics.
///
/// Conventions:
/// - Labels are strings, one truth and one prediction per cell (same order).
/// - Flat metrics follow scikit-learn's `precision_recall_fscore_support` with
///   `zero_division=0`: the classes are the sorted union of the labels in truth and prediction
///   (numbers, cluster ids, first and by value: -1, 0, 1, 2, ..., 10);
///   macro = unweighted mean over those classes, weighted = mean weighted by truth support.
/// - Probabilities are a dense cells x classes matrix, row-major, float32.
/// - Ontology metrics use the CL ids of the labels (`EvaluationOptions::cl_ids`, deprecated
///   ids replaced by `Ontology::canonical`). A cell whose truth or prediction has no CL id (or an
///   id not connected to the root `CL:0000000`) is counted as unmapped and left out of the
///   ontology metrics only; it still counts in the flat metrics.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "celltyper/ontology.hpp"

namespace celltyper {

/// Class probabilities (or any scores where higher = more likely) for every cell.
struct ProbabilityMatrix {
  std::vector<std::string> class_names;  ///< one per column, distinct
  std::vector<float> values;             ///< n_cells x class_names.size(), row-major
};

/// Options of `evaluate`.
struct EvaluationOptions {
  /// Optional class probabilities for top-k accuracy and mean reciprocal rank (not owned; must
  /// outlive the call). Rows must match the cells.
  const ProbabilityMatrix* probabilities = nullptr;
  /// The k of the top-k accuracies.
  std::vector<int> top_k = {1, 3, 5};
  /// Optional ontology for ontology-aware metrics (not owned).
  const Ontology* ontology = nullptr;
  /// Label -> CL id for truth and predicted labels (e.g. from `LabelMapper::to_cl_ids`). A label
  /// missing here that is itself a CL id of the ontology is used as that id.
  std::map<std::string, std::string> cl_ids;
  /// Truth label -> the CL ids of the alternatives it names below its own id
  /// (`LabelMapper::alternatives_within`: "T/NK cells" at lymphocyte, T cell and natural killer
  /// cell). A prediction of the label's own term is right; one below that term counts as at or
  /// below the truth only when at or below one of them (a B cell is a lymphocyte, not a "T/NK
  /// cell: its relation is then the closest it has to one of them, parent, sibling or
  /// unrelated). Hierarchical P / R and the LCA distance read the label's own term.
  std::map<std::string, std::vector<std::string>> alternatives;
  /// Optional, one per cell: the key of `alternatives` for that cell's truth (its label as read,
  /// where several labels are one class: "T/NK cells" and "Lymphocytes" both "lymphocyte");
  /// empty: the truth label itself.
  std::vector<std::string> truth_readings;
};

/// Precision, recall and F1 of one class.
struct ClassMetrics {
  std::string label;
  double precision = 0.0;   ///< true positives / predicted as this class (0 when none)
  double recall = 0.0;      ///< true positives / support (0 when support is 0)
  double f1 = 0.0;          ///< 2 tp / (support + predicted) (0 when both are 0)
  std::size_t support = 0;  ///< cells whose truth is this class
  std::size_t predicted = 0;  ///< cells predicted as this class
};

/// An average of per-class precision, recall and F1.
struct AveragedMetrics {
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
};

/// Confusion matrix; rows = truth, columns = prediction, both over `labels` (sorted).
struct ConfusionMatrix {
  std::vector<std::string> labels;
  std::vector<std::size_t> counts;  ///< labels.size() x labels.size(), row-major
  /// Count of cells with truth `labels[truth]` predicted as `labels[prediction]`.
  [[nodiscard]] std::size_t at(std::size_t truth, std::size_t prediction) const {
    return counts[truth * labels.size() + prediction];
  }
};

/// Top-k accuracy for one k.
struct TopKAccuracy {
  int k = 1;
  double accuracy = 0.0;
};

/// Equal-width bins of the top probability for the expected calibration error.
inline constexpr std::size_t kCalibrationBins = 15;

/// The bin of a top probability: (k/15, (k+1)/15] is bin k; a float32 probability within 1e-6
/// above an edge (0.6F is 0.6000000238) counts as on it.
inline std::size_t calibration_bin(double confidence) {
  return std::min(kCalibrationBins - 1, static_cast<std::size_t>(std::max(0.0, std::ceil(confidence * kCalibrationBins - 1e-6) - 1.0)));
}

/// How well class probabilities state how often they are right (Guo et al. 2017; scikit-learn's
/// `log_loss`; Brier's multiclass score), over the cells whose truth is a column and that
/// have probabilities. The top class is the first column with the highest probability.
struct CalibrationMetrics {
  bool available = false;  ///< false when no such cell, or a row of probabilities does not sum to 1 (+- 0.01)
  std::size_t n_cells = 0;
  double accuracy = 0.0;         ///< share whose top class is the truth (these cells' top-1 accuracy)
  double mean_confidence = 0.0;  ///< mean top probability (below `accuracy`: under-confident)
  /// sum over kCalibrationBins equal-width bins (k/15, (k+1)/15] of the top probability (within 1e-6
  /// of an edge: on it) of (cells in the bin / n) x |mean top probability - share right| in the bin
  double expected_calibration_error = 0.0;
  double log_loss = 0.0;     ///< mean -ln p(truth), p clipped to [1e-15, 1]
  double brier_score = 0.0;  ///< mean over cells of the sum over classes of (p - [class is the truth])^2
};

/// Metrics from class probabilities. The rank of the true class is 1 + the number of classes
/// with a higher probability + the number of earlier columns with an equal one (a stable
/// descending sort). A cell whose truth is not among the class names never counts as a hit and
/// has reciprocal rank 0.
struct RankingMetrics {
  bool available = false;               ///< whether probabilities were given
  std::vector<TopKAccuracy> top_k;      ///< in the order of EvaluationOptions::top_k
  double mean_reciprocal_rank = 0.0;    ///< mean over cells of 1 / rank of the true class
  std::size_t n_truth_not_in_classes = 0;  ///< cells whose truth label is not a column
  /// cells whose probabilities are all 0 (no model gene: predicted Unassigned): misses at every
  /// k, reciprocal rank 0 (their order of tied zeros ranks nothing)
  std::size_t n_without_probabilities = 0;
  CalibrationMetrics calibration;
};

/// Ranking and calibration sums, added a batch of cells at a time (cross-validation's folds, each
/// with its own classes). The pooled metrics equal one computation over a matrix of the union of
/// the batches' classes (0 where a batch lacks one) when every cell's truth is among its own
/// batch's classes; a truth its batch lacks is a miss at every k and outside the calibration
/// (over the union it would rank among the zeros).
class RankingTally {
 public:
  explicit RankingTally(std::vector<int> top_k);
  /// Add the cells of `truth`, one per row of `probabilities`. Throws InputError for a matrix of
  /// the wrong shape, repeated class names or NaN values, and (at construction) a k below 1.
  void add(const std::vector<std::string>& truth, const ProbabilityMatrix& probabilities);
  /// The metrics of every cell added (`available` once a batch was added).
  [[nodiscard]] RankingMetrics result() const;

 private:
  std::vector<int> top_k_;
  std::vector<std::size_t> hits_;
  double reciprocal_rank_sum_ = 0.0;
  std::size_t n_cells_ = 0;
  std::size_t n_truth_not_in_classes_ = 0;
  std::size_t n_without_probabilities_ = 0;
  bool added_ = false;
  bool sums_to_one_ = true;  ///< every scored row sums to 1 (+- 0.01)
  std::size_t n_scored_ = 0;  ///< cells whose truth is a column, with probabilities
  std::size_t n_top_right_ = 0;
  double confidence_sum_ = 0.0;
  double log_loss_sum_ = 0.0;
  double brier_sum_ = 0.0;
  std::array<std::size_t, kCalibrationBins> bin_cells_{};
  std::array<std::size_t, kCalibrationBins> bin_right_{};
  std::array<double, kCalibrationBins> bin_confidence_{};
};

/// Ontology-aware metrics over the cells whose truth and prediction both map to CL.
struct OntologyMetrics {
  bool available = false;             ///< whether an ontology was given
  std::size_t n_mapped = 0;           ///< cells used below
  std::size_t n_unmapped = 0;         ///< cells left out: truth or prediction unmapped
  std::size_t n_unmapped_truth = 0;   ///< cells whose truth is unmapped
  std::size_t n_unmapped_prediction = 0;  ///< cells whose prediction is unmapped
  std::vector<std::string> unmapped_labels;  ///< distinct unmapped labels, sorted

  /// Accuracy and macro-F1 over CL ids after replacing each prediction that equals the truth or is
  /// one of its descendants by the truth (a more specific correct answer is not an error).
  double corrected_accuracy = 0.0;
  double corrected_macro_f1 = 0.0;

  /// Hierarchical precision / recall / F (Kiritchenko et al. 2006, micro-averaged over cells):
  /// with A(x) = x and its ancestors, root CL:0000000 excluded,
  /// hP = sum |A(pred) & A(true)| / sum |A(pred)|, hR = sum |A(pred) & A(true)| / sum |A(true)|,
  /// hF = 2 hP hR / (hP + hR).
  double hierarchical_precision = 0.0;
  double hierarchical_recall = 0.0;
  double hierarchical_f1 = 0.0;

  std::size_t n_errors = 0;                ///< mapped cells with prediction != truth (as CL ids)
  double mean_lca_distance_errors = 0.0;   ///< mean upward LCA distance over those errors
  double mean_lca_distance_all = 0.0;      ///< mean upward LCA distance over all mapped cells

  /// Mapped cells whose truth names alternatives (EvaluationOptions::alternatives).
  std::size_t n_truth_alternatives = 0;
  /// Mapped cells by relation of prediction to truth, indexed by TermRelation.
  std::array<std::size_t, kTermRelationCount> relation_counts{};
  /// Share of mapped cells with relation `relation` (0 when none are mapped).
  [[nodiscard]] double share(TermRelation relation) const;
};

/// Everything `evaluate` computes.
struct EvaluationResult {
  std::size_t n_cells = 0;
  double accuracy = 0.0;
  AveragedMetrics macro;
  AveragedMetrics weighted;
  std::vector<ClassMetrics> per_class;  ///< sorted by label, union of truth and prediction
  ConfusionMatrix confusion;
  RankingMetrics ranking;
  OntologyMetrics ontology;
};

/// Evaluate `prediction` against `truth` (one label per cell, same order). Throws InputError
/// when the lengths differ, there are no cells, the probability matrix has the wrong shape,
/// duplicate class names or NaN values, or a k is below 1.
EvaluationResult evaluate(const std::vector<std::string>& truth, const std::vector<std::string>& prediction,
                          const EvaluationOptions& options = {});

/// The classes of `per_class` with cells (support) whose recall is below `below`, lowest first,
/// at most `at_most`: "DC 0.25 (1 of 4), Platelet 0.50 (1 of 2)", "" when none. What train's
/// validation line and cv's table name beside the averages (a rare class's misses hide there).
std::string weakest_classes(const std::vector<ClassMetrics>& per_class, double below = 0.8, std::size_t at_most = 3);

/// The result as JSON (per-class table, confusion matrix and optional sections included).
nlohmann::json to_json(const EvaluationResult& result);

/// A readable plain-text report: summary, per-class table, ranking and ontology sections.
std::string format_report(const EvaluationResult& result);

}  // namespace celltyper
