/// @file report.hpp
/// Evaluating an annotated dataset (`celltyper evaluate`) and rendering evaluation results as one
/// self-contained HTML report, with PNG export of its plots.
///
/// Two layers:
/// - `evaluate_annotated` reads truth and predicted labels (obs columns), optional class
///   probabilities (obsm + the class names in uns), optional groups and an embedding from an
///   `.h5ad`, maps the labels of both sides to the Cell Ontology, and evaluates all cells and
///   every group with `evaluate` (metrics.hpp).
/// - `render_html_report` turns one or more evaluated sets (all cells, held-out groups,
///   cross-validation folds) into one HTML file that needs nothing at view time: inline CSS, inline
///   SVG plots and a few lines of inline JavaScript (no network, no CDN). `export_report_png`
///   rasterises the same plots through headless Chromium.
///
/// Conventions:
/// - Embeddings and coordinates are row-major float32, cells x dimensions (as `DenseMatrix`).
/// - "Compare on CL terms" replaces every truth and predicted label by the label of its Cell
///   Ontology term (unmapped labels are kept as they are, so they count as errors in the flat
///   metrics and as unmapped in the ontology metrics: nothing is dropped silently).
/// - Subsampling for the cell map is deterministic: it depends only on the number of cells, the
///   cap and the seed.
#pragma once

#include <celltyper/h5ad.hpp>
#include <celltyper/metrics.hpp>
#include <celltyper/ontology.hpp>

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace celltyper {

// ---- principal component analysis for the cell map -------------------------------------------

/// Result of `principal_components`.
struct PrincipalComponents {
  int n_components = 0;
  std::vector<float> coordinates;          ///< rows x n_components, row-major (the scores)
  std::vector<double> components;          ///< n_components x dims, row-major, unit rows
  std::vector<double> explained_variance;  ///< variance of each score column (denominator n - 1)
  std::vector<double> explained_variance_ratio;  ///< explained_variance / total variance
};

/// Principal component analysis of the rows of `data` (centred, not scaled) by randomised
/// subspace iteration (Halko, Martinsson & Tropp 2011, algorithm 4.4) with a fixed seed and
/// enough power iterations to match an exact SVD to float precision on embedding-like data.
/// Each component's sign is fixed so that its largest-magnitude loading is positive (as
/// scikit-learn's `svd_flip` with `u_based_decision=False`). `rows`, when given, restricts the
/// analysis to those rows (in that order). Throws InputError with fewer than 2 rows or a
/// non-finite value.
PrincipalComponents principal_components(const DenseMatrix& data, int n_components = 2,
                                         const std::vector<std::size_t>* rows = nullptr);

/// Up to `max_rows` distinct row indices of [0, n), sorted: all rows when n <= max_rows, else a
/// uniform sample drawn with a seeded Mersenne Twister (raw engine output only, so identical on
/// every platform).
std::vector<std::size_t> subsample_rows(std::size_t n, std::size_t max_rows, std::uint64_t seed = 0);

/// Options of `umap_2d` (defaults as umap-learn / scanpy).
struct UmapOptions {
  int n_neighbors = 15;              ///< neighbours of the fuzzy graph
  int n_epochs = 0;                  ///< 0 = 500 up to 10,000 cells, else 200
  int pca_dims = 50;                 ///< neighbours are found on this many principal components
  double negative_sample_rate = 5;   ///< negative samples per positive edge sample
  std::uint64_t seed = 0;
};

/// A 2-D UMAP layout (McInnes et al. 2018) of the rows `rows` of `data`, as umap-learn computes
/// it with min_dist = 0.1, spread = 1, init = "pca": exact kNN graph on the first `pca_dims`
/// principal components, fuzzy simplicial set, edge-sampled SGD with negative sampling.
/// Returns rows.size() x 2 coordinates, row-major; deterministic for a seed (single-threaded).
/// Cost: O(n^2 * pca_dims) for the exact neighbours, so callers cap n (about 10,000 cells).
/// Throws InputError with fewer than 3 rows or a non-finite value.
std::vector<float> umap_2d(const DenseMatrix& data, const std::vector<std::size_t>& rows, const UmapOptions& options = {});

/// Most cells a report's UMAP map draws (a seeded subsample of the PCA map's cells beyond it).
inline constexpr std::size_t kMaxUmapCells = 10000;

struct EmbeddingMap;
/// The UMAP companion of the PCA cell map `pca`, whose cells are rows `rows` of `data` (in map
/// order): up to `max_cells` of them (seeded subsample), same truth and prediction.
EmbeddingMap umap_map(const DenseMatrix& data, const std::vector<std::size_t>& rows, const EmbeddingMap& pca,
                      std::size_t max_cells = kMaxUmapCells, std::uint64_t seed = 0);

// ---- report content -------------------------------------------------------------------------

/// How one distinct label of the truth or the prediction was mapped to the Cell Ontology.
struct LabelMappingRow {
  std::string label;          ///< the label as it appears in the data
  std::size_t n_cells = 0;    ///< evaluated cells with this label
  std::string cl_id;          ///< mapped CL id ("" when unmapped)
  std::string cl_label;       ///< label of `cl_id` in the ontology
  /// How it was mapped: "model" (the CL ids the model file recorded for its classes), or a
  /// `LabelMatchKind` name ("user_map", "identifier", "label", "synonym", "ambiguous",
  /// "unmapped"), or "unknown_id" (looks like a CL id but is not in the ontology), or
  /// "not_in_hierarchy" (a term not connected to the root, e.g. deprecated without replacement).
  std::string match;
  std::vector<std::string> candidates;  ///< competing ids when `match` is "ambiguous"
  /// Truth labels: the alternatives the label names below `cl_id` ("T/NK cells": T cell, natural
  /// killer cell; `LabelMapper::alternatives_within`), which a prediction below `cl_id` must be at
  /// or below to count as right.
  std::vector<std::string> alternatives;
  std::vector<std::string> alternative_names;  ///< the ontology's names of `alternatives`
  /// Whether the label has a usable CL id.
  [[nodiscard]] bool mapped() const { return !cl_id.empty(); }
};

/// One truth label of a type the model has no class for (see `UnseenTypes`).
struct UnseenTypeLabel {
  std::string label;              ///< the truth label as evaluated
  std::string cl_id;              ///< its CL id ("" when it maps to none)
  std::size_t n_cells = 0;
  std::size_t n_unassigned = 0;   ///< of them Unassigned (or without a prediction)
  /// The labels the others were given, most frequent first (at most three).
  std::vector<std::pair<std::string, std::size_t>> named_as;
};

/// How the predictions treat cells of types the model has no class for (a tumour's cells under a
/// PBMC model, a population the reference missed), for which "Unassigned" is the right answer
/// (SingleR's pruned labels; scArches / scANVI report the same rejection rates). The model's
/// classes are the ones annotate recorded beside its probabilities (uns
/// celltyper_probability_classes, with their CL ids). A truth label is of such a type when it is
/// none of the classes (ignoring letter case) and its Cell Ontology term, when it has one, is
/// neither a class's term nor above or below one: "T cell" or "effector memory CD4-positive,
/// alpha-beta T cell" beside a "CD4-positive, alpha-beta memory T cell" class is known;
/// "regulatory T cell" (a sibling) and "hematopoietic precursor cell" are not. A truth label that
/// maps to no term and names no class counts as unseen (it is listed by name, so a label meaning a
/// class under another name can be given its id with --label-map). Cells without a prediction
/// count as Unassigned only in celltyper_ontology_id (an Unassigned cell has no id); in another
/// column they are left out of these counts.
struct UnseenTypes {
  std::size_t n_model_classes = 0;
  std::vector<UnseenTypeLabel> labels;  ///< most cells first
  std::size_t n_cells = 0;              ///< cells of those labels
  std::size_t n_unassigned = 0;         ///< of them Unassigned
  std::size_t n_other_cells = 0;        ///< cells of the other (known) truth labels
  std::size_t n_other_unassigned = 0;   ///< of them Unassigned (or without a prediction)
  /// Every Unassigned cell (of these types and the others).
  [[nodiscard]] std::size_t n_all_unassigned() const { return n_unassigned + n_other_unassigned; }
  /// Share of the unseen types' cells left Unassigned (the rejection's recall; 0 without such cells).
  [[nodiscard]] double unassigned_share() const;
  /// Share of the other cells left Unassigned (wrongly rejected; 0 without such cells).
  [[nodiscard]] double other_unassigned_share() const;
  /// Share of the Unassigned cells that are of an unseen type (the rejection's precision; 0 when
  /// no cell is Unassigned).
  [[nodiscard]] double precision() const;
  /// Harmonic mean of `precision` and `unassigned_share` (0 when both are 0).
  [[nodiscard]] double f1() const;
};

/// The 2-D map of the cells: coordinates of the shown cells with their truth and prediction.
struct EmbeddingMap {
  std::string source;             ///< e.g. "obsm:X_celltyper"
  std::string method = "PCA";     ///< projection, for titles
  std::array<double, 2> explained_variance_ratio{};  ///< of the two axes (0 when not PCA)
  std::size_t n_cells = 0;        ///< cells the map was drawn from (before subsampling)
  std::vector<float> x;           ///< one per shown cell
  std::vector<float> y;
  std::vector<std::string> truth;       ///< class of each shown cell (as in the metrics)
  std::vector<std::string> prediction;  ///< predicted class of each shown cell
};

/// One evaluated set of cells: all cells, one group, one fold.
struct ReportSection {
  std::string name;         ///< "all cells", "tech = 10x V2", "fold 3"
  EvaluationResult result;
};

/// Everything a report shows. Only `sections` is required; the first section is the main one
/// (its plots are shown open, the others in collapsible blocks).
struct ReportContent {
  std::string title = "celltyper evaluation";
  /// Provenance lines shown under the title, in order: ("input", "pbmc.h5ad"), ...
  std::vector<std::pair<std::string, std::string>> details;
  std::vector<ReportSection> sections;
  std::vector<LabelMappingRow> truth_labels;       ///< mapping of truth labels (may be empty)
  std::vector<LabelMappingRow> prediction_labels;  ///< mapping of predicted labels (may be empty)
  std::optional<UnseenTypes> unseen_types;         ///< truth types the model lacks (optional)
  std::optional<EmbeddingMap> embedding;           ///< cell map (optional)
  std::optional<EmbeddingMap> umap;                ///< UMAP of the same cells (optional)
  std::vector<std::string> warnings;               ///< shown in a highlighted box
};

/// One plot of a report as a standalone SVG document (the same markup the HTML report inlines).
struct ReportPlot {
  std::string name;   ///< file stem: "per_class_f1", "confusion_matrix", "ontology_relations",
                      ///< "embedding_truth", "embedding_prediction", "umap_truth", "umap_prediction"
                      ///< (+ "-<section>" after the first)
  std::string title;  ///< human-readable title
  std::string svg;    ///< `<svg xmlns=... width=.. height=..>...</svg>`
  int width = 0;      ///< pixels
  int height = 0;
};

/// The plots of a report in the order they appear: per section per-class F1, confusion matrix,
/// ontology relations (when ontology metrics are available); then the two cell maps.
std::vector<ReportPlot> report_plots(const ReportContent& content);

/// The whole report as one HTML5 document that is also well-formed XML (every SVG can be parsed
/// on its own). It contains a summary table with one column per section (flat, ranking and
/// hierarchical metrics), the label-mapping and unmapped-label accounting, the cell maps, and per
/// section the per-class F1 bars, the confusion matrix heatmap (rows truth, columns prediction,
/// colour = share of the row, counts in each cell's tooltip), the ontology relation shares and a
/// per-class table. JavaScript errors at view time are written into the element
/// `#celltyper-errors`; when the page has finished loading, `<html>` gets `data-rendered="N"`
/// with N the number of plots present.
std::string render_html_report(const ReportContent& content);

/// Write `render_html_report(content)` to `path` (through a temporary file renamed into place).
void write_html_report(const ReportContent& content, const std::filesystem::path& path);

/// The Chromium executable to use: `CELLTYPER_CHROMIUM` when set, else the first of chromium,
/// chromium-browser, google-chrome, google-chrome-stable on PATH; "" when none is found.
std::string find_chromium();

/// Options of `export_report_png`.
struct PngExportOptions {
  std::string chromium;        ///< executable ("" = `find_chromium()`)
  double scale = 1.0;          ///< device pixels per CSS pixel
  int timeout_seconds = 120;   ///< per screenshot
  int jobs = 2;                ///< Chromium processes at a time (1-16; each is mostly start-up latency)
};

/// Render every plot of `report_plots(content)` to `<directory>/<name>.png` by loading a
/// one-plot page in headless Chromium (`--headless --screenshot`, a throw-away profile per plot,
/// `jobs` processes at a time). Creates `directory` if needed; a file appears only when complete.
/// Returns the written paths in plot order. Throws UnsupportedError when no Chromium is found
/// (with the package to install), IoError when Chromium fails or writes no image.
std::vector<std::filesystem::path> export_report_png(const ReportContent& content,
                                                     const std::filesystem::path& directory,
                                                     const PngExportOptions& options = {});

// ---- evaluating an annotated .h5ad ----------------------------------------------------------

/// What flat metrics compare.
enum class CompareOn {
  kAuto,      ///< labels when at least half of the cells' predicted labels occur among the truth
              ///< labels (same vocabulary), else CL terms when an ontology is given
  kLabels,    ///< the label strings as they are
  kOntology,  ///< the Cell Ontology terms the labels map to (needs an ontology)
};

/// Options of `evaluate_annotated`. Column and matrix references are "obs:NAME", "obsm:NAME",
/// "uns:NAME" (the prefix may be left out where only one kind makes sense).
struct DatasetEvaluationOptions {
  std::string truth;                                ///< obs column of true labels (required)
  std::string prediction = "obs:celltyper_label";   ///< obs column of predictions (labels or CL ids)
  /// obsm matrix of class probabilities; "auto" = obsm:celltyper_probabilities when the file has
  /// it, "none" = no ranking metrics.
  std::string probabilities = "auto";
  /// uns string holding the JSON list of probability class names; "" = derived from the matrix
  /// key (`celltyper_probabilities` -> `celltyper_probability_classes`).
  std::string probability_classes;
  std::string group;  ///< obs column of groups (held-out sets, donors, batches): also per group
  bool umap = false;  ///< also lay the map's cells out by UMAP (for a report: seconds, not milliseconds)
  const Ontology* ontology = nullptr;  ///< Cell Ontology (not owned); null = no ontology metrics
  std::string label_map;      ///< user label -> CL id table (label_map_to_cell_ontology.tsv)
  std::string label_dataset;  ///< `dataset` rows of the table to prefer for the truth labels
  CompareOn compare = CompareOn::kAuto;
  /// obsm matrix for the cell map; "auto" = X_celltyper, else celltyper_probabilities, else
  /// X_pca (first present); "none" = no map.
  std::string embedding = "auto";
  std::size_t max_map_points = 20000;  ///< cells drawn in the map (subsampled above this)
  std::uint64_t seed = 0;              ///< of the map subsample
  std::vector<int> top_k = {1, 3, 5};  ///< top-k accuracies when probabilities are used
};

/// One evaluated set.
struct EvaluatedSet {
  std::string name;    ///< "all cells" or the group value
  EvaluationResult result;
};

/// Everything `evaluate_annotated` found and computed.
struct DatasetEvaluation {
  std::string input;
  std::string truth;        ///< "obs:COLUMN"
  std::string prediction;   ///< "obs:COLUMN"
  std::string probabilities;        ///< "obsm:KEY" or "" when not used
  std::string group;                ///< "obs:COLUMN" or ""
  std::string ontology_source;      ///< ontology file ("" when none)
  std::string ontology_version;
  bool compared_on_ontology = false;  ///< flat metrics compare CL terms rather than label strings
  std::string compare_reason;         ///< why (for auto)
  std::size_t n_cells_in_file = 0;
  std::size_t n_missing_truth = 0;    ///< cells without a truth label: left out of everything
  std::size_t n_missing_prediction = 0;  ///< cells without a prediction: kept, as "(no prediction)"
  std::vector<LabelMappingRow> truth_labels;       ///< sorted by label
  std::vector<LabelMappingRow> prediction_labels;  ///< sorted by label
  std::vector<EvaluatedSet> sets;  ///< "all cells" first, then each group in sorted order
  /// Truth types the model has no class for and whether they were left Unassigned, over all
  /// cells; present when the predictions are celltyper's (an obs column celltyper_*) and the model's
  /// classes are recorded (uns celltyper_probability_classes).
  std::optional<UnseenTypes> unseen_types;
  std::optional<EmbeddingMap> embedding;
  std::optional<EmbeddingMap> umap;
  std::vector<std::string> warnings;
};

/// Label used for cells whose prediction is missing (e.g. `celltyper_ontology_id` of an
/// Unassigned cell).
inline constexpr const char* kNoPrediction = "(no prediction)";

/// What `evaluate_annotated` reads from annotated cells: obs columns, obsm matrices and uns
/// lists of strings (the class names of a probability matrix, the model's class -> CL ids).
class AnnotatedSource {
 public:
  virtual ~AnnotatedSource() = default;
  [[nodiscard]] virtual const std::string& name() const = 0;  ///< for messages and `DatasetEvaluation::input`
  [[nodiscard]] virtual std::vector<std::string> obs_column_names() const = 0;
  [[nodiscard]] virtual DataFrame read_obs_columns(const std::vector<std::string>& names) const = 0;
  [[nodiscard]] virtual std::vector<std::string> obsm_keys() const = 0;
  [[nodiscard]] virtual DenseMatrix read_obsm(const std::string& key) const = 0;
  /// uns/<key> as a list of strings; nullopt when absent; InputError when present but not a list.
  [[nodiscard]] virtual std::optional<std::vector<std::string>> uns_string_list(const std::string& key) const = 0;
};

/// Annotated cells held in memory (what the Python module builds from an AnnData).
struct MemoryAnnotatedSource final : AnnotatedSource {
  std::string label = "AnnData";
  DataFrame obs;
  std::map<std::string, DenseMatrix> obsm;
  std::map<std::string, std::vector<std::string>> uns;
  [[nodiscard]] const std::string& name() const override { return label; }
  [[nodiscard]] std::vector<std::string> obs_column_names() const override;
  [[nodiscard]] DataFrame read_obs_columns(const std::vector<std::string>& names) const override;
  [[nodiscard]] std::vector<std::string> obsm_keys() const override;
  [[nodiscard]] DenseMatrix read_obsm(const std::string& key) const override;
  [[nodiscard]] std::optional<std::vector<std::string>> uns_string_list(const std::string& key) const override;
};

/// Evaluate the predictions stored in annotated cells (see the file comment). Throws
/// InputError naming the option, the column and the available ones when a column or matrix is
/// missing, when CompareOn::kOntology is asked without an ontology, or when no cell has a truth.
DatasetEvaluation evaluate_annotated(const AnnotatedSource& source, const DatasetEvaluationOptions& options);

/// `evaluate_annotated` of an annotated `.h5ad`, read on demand.
DatasetEvaluation evaluate_annotated(const std::string& path, const DatasetEvaluationOptions& options);

/// The evaluation as JSON: inputs, label mapping with unmapped counts, "overall" (to_json of all
/// cells), "groups" (name, metrics) and the map's provenance.
nlohmann::json to_json(const DatasetEvaluation& evaluation);

/// `UnseenTypes` as JSON: the counts, the shares (null where nothing is counted) and each label.
nlohmann::json to_json(const UnseenTypes& unseen);

/// `UnseenTypes` as the lines of `format_report`'s "types the reference lacks" section.
std::string format_unseen_types(const UnseenTypes& unseen);

/// Plain text: inputs, label mapping summary with every unmapped label and its cell count, then
/// `format_report` of all cells and of each group.
std::string format_report(const DatasetEvaluation& evaluation);

/// Report content of an evaluation (title, provenance, sets, mapping, map, warnings).
ReportContent report_content(const DatasetEvaluation& evaluation);

}  // namespace celltyper
