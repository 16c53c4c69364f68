/// @file model_file.hpp
/// A trained cell-type model: classifier, class labels, and the gene vectors needed to embed a
/// query, in one self-contained HDF5 file.
///
/// HDF5 layout (format "celltyper-model", version 3; version 1 files are genept models without
/// the `features` attribute, version 2 files have no /reference and /panel/size_factor_entrez_id;
/// both are still read):
///
///     /                       attrs: format = "celltyper-model", version = 2 (int64),
///                                    features = "genept" | "expression",
///                                    celltyper_version, created_utc, provenance_json, validation_json
///     /classes/name           str   [C]   class labels (column order of the probabilities)
///     /classes/cl_id          str   [C]   Cell Ontology id per class, "" when unknown
///     /genes/entrez_id        int64 [G]   genes seen in the training data that have a vector
///     /genes/symbol           str   [G]
///     /genes/ensembl_id       str   [G]
///     /genes/vectors          float32 [G x dims]  the first `dims` components of each gene's
///                                         store vector, as stored (not re-normalised; the
///                                         embedder re-normalises prefixes, so query embeddings
///                                         are bit-identical to training ones)
///                             attrs: dims, store_identity, store_description
///     /genes/size_factor_entrez_id int64 [S]  (optional) the genes a cell's library is summed over
///                                         (references of fewer genes than a transcriptome);
///                                         absent = every gene of the cell
///   genept models (features are GenePT-w cell embeddings) have /genes; expression models
///   (features are log1p-CP10k of a gene panel, expression_features.hpp) have instead
///     /panel/entrez_id        int64 [P]   panel genes in feature order
///     /panel/symbol           str   [P]
///     /panel/ensembl_id       str   [P]
///     /panel/size_factor_entrez_id int64 [S]  (optional) the genes a cell's library size is summed
///                                         over (a model restricted to a query's genes, or of
///                                         references of fewer genes than a transcriptome);
///                                         absent = every gene of the cell
///   and both routes may carry the reference sample (ReferenceSample) the model can be refitted
///   from for a query that measures only part of its genes:
///     /reference              attrs: normalization, matrix, n_reference_cells
///     /reference/entrez_id    int64 [G]   columns (genes measured by the references), ascending
///     /reference/symbol, /reference/ensembl_id  str [G]
///     /reference/indptr int64 [N+1], /reference/indices int32 [nnz], /reference/data float32 [nnz]
///                                         the sampled cells' values as stored in the references
///                                         (counts, or log values), CSR, gzip
///     /reference/label        int32 [N]   class index (into /classes/name) of each sampled cell
///   and expression models with a sample their types' profiles (SimilarityProfile; optional):
///     /similarity             attrs: n_levels
///     /similarity/entrez_id int64 [F], /similarity/class int32 [K], /similarity/centred_rank
///     float32 [K x F], /similarity/level_log_detected, /similarity/level_threshold float64
///     [K x n_levels], /similarity/min_detected float64 [K]
///     /classifier             attrs: type, state_json (ClassifierState::attributes)
///     /classifier/<name>      float32 / float64 / int32 / uint8 datasets of the ClassifierState
#pragma once

#include <celltyper/classifier.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/sparse.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace celltyper {

/// Current model file format version; files with a larger version are refused.
inline constexpr int kModelFormatVersion = 3;

/// The gene vectors a model embeds queries with.
struct ModelGenes {
  std::vector<std::int64_t> entrez_ids;   ///< ascending, unique
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl_ids;   ///< "" when none
  int dims = 0;
  std::vector<float> vectors;             ///< [n x dims] row-major
  std::string store_identity;             ///< GeneStore::identity_hash() of the source store
  std::string store_description;
  /// When not empty (ascending Entrez ids): a cell's library is summed over these genes only, on
  /// the references and on every query (EmbedOptions::size_factor_genes): references measuring
  /// fewer genes than a transcriptome (kTranscriptomeGenes).
  std::vector<std::int64_t> size_factor_genes;

  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(entrez_ids.size()); }
  /// A lookup over these vectors (valid while this object lives).
  [[nodiscard]] GeneVectorSource source() const;
  /// A minimal gene table of these genes (symbols and Ensembl ids, no aliases), for resolving a
  /// query's var names when no full gene table is available.
  [[nodiscard]] GeneTable gene_table() const;
};

/// The gene panel of an expression model (feature j = log1p-CP10k of gene j).
struct ExpressionPanel {
  std::vector<std::int64_t> entrez_ids;   ///< feature order, unique
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl_ids;   ///< "" when none
  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(entrez_ids.size()); }
  /// When not empty: the genes (ascending Entrez ids) a cell's library size is summed over,
  /// on the references and on every query (ExpressionOptions::size_factor_genes).
  std::vector<std::int64_t> size_factor_genes;
  /// A minimal gene table of the panel genes (see ModelGenes::gene_table).
  [[nodiscard]] GeneTable gene_table() const;
};

namespace detail {
struct DeferredSampleValues;
}  // namespace detail

/// A class-balanced sample of a model's labelled reference cells over every gene the references
/// measured, kept in the model file so that `annotate` can refit the model on the genes a query
/// shares with it (the query's panel decides the features, not the reference's).
struct ReferenceSample {
  std::vector<std::int64_t> entrez_ids;   ///< columns, ascending, unique
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl_ids;   ///< "" when none
  /// Per gene, the other symbols the training's gene table knows it by, joined by '|' ("" none;
  /// empty in files written before session 44): the model's own genes then also match a query
  /// naming a gene by an older symbol, when the table the model was trained with is not at hand.
  std::vector<std::string> aliases;
  /// Sampled cells x genes, values as stored (counts or log values). A sample from load_model
  /// leaves this empty: read it through cell_values().
  CsrBlockF64 values;
  /// Class index of each sampled cell; a code n_classes + s marks a cell with a coarse label
  /// (mixed-granularity training) that may belong to any class of `label_sets[s]`.
  std::vector<std::int32_t> labels;
  std::vector<std::vector<std::int32_t>> label_sets;  ///< class indices of each coarse label's set
  /// Pooled references with different genes: the reference of each sampled cell, and per
  /// reference the sample's columns it measured (ascending). Empty: one reference, every column.
  std::vector<std::int32_t> references;
  std::vector<std::vector<std::int32_t>> measured;
  std::string normalization;              ///< how features were made from `values`: "log1p-cp10k" (counts), "none" (log values), ...
  std::string matrix;                     ///< the references' matrix the values came from ("X", "layers/counts", ...)
  std::int64_t n_reference_cells = 0;     ///< labelled cells the sample was drawn from
  [[nodiscard]] bool empty() const { return labels.empty(); }
  [[nodiscard]] std::int64_t n_cells() const { return static_cast<std::int64_t>(labels.size()); }
  /// The sampled cells' values: `values`, or for a sample from load_model, read from the model
  /// file on first use (the bulk of a model file, needed only to refit; loading a model to
  /// annotate a query that measures its genes never reads it). Throws InputError naming the file
  /// when they are missing or inconsistent.
  [[nodiscard]] const CsrBlockF64& cell_values() const;
  /// Set by load_model: where cell_values() reads the values from (shared by copies).
  std::shared_ptr<detail::DeferredSampleValues> deferred;
  /// A gene table of the sample's genes (resolves the sample dataset's `entrez_id` var column).
  [[nodiscard]] GeneTable gene_table() const;
};

/// How a model's reference cell types look, by which annotate tells query cells that resemble
/// none of them (reference_similarity.hpp): per class with cells enough, the average ranks of its
/// centroid (mean log1p-CP10k of its sampled cells) over the panel's most variable genes, and what
/// Spearman correlation its own cells reach with their class's centroid (without themselves) at
/// each depth they were thinned to. Empty for genept models and models without a reference sample.
struct SimilarityProfile {
  std::vector<std::int64_t> entrez_ids;     ///< the genes compared (Entrez ids, ascending)
  std::vector<std::int32_t> classes;        ///< model class of each profile
  /// [profiles x genes] row-major: each centroid's average ranks (1..genes) minus their mean
  std::vector<float> centred_ranks;
  /// [profiles x levels] row-major: at each thinning level (ascending depth), the log of the
  /// median number of the genes its cells detected, and the kSimilarityQuantile quantile of
  /// their similarities: a query cell detecting that many genes and scoring below is unlike it.
  std::vector<double> level_log_detected;
  std::vector<double> level_threshold;
  std::int64_t n_levels = 0;
  /// Per profile: the median genes detected by its cells thinned to kSimilarityMinCounts counts;
  /// a query cell detecting fewer is too shallow to judge.
  std::vector<double> min_detected;
  [[nodiscard]] bool empty() const { return classes.empty(); }
  [[nodiscard]] std::size_t n_profiles() const { return classes.size(); }
};

/// Feature routes of a model.
inline constexpr const char* kFeaturesGenept = "genept";
inline constexpr const char* kFeaturesExpression = "expression";

/// A trained model.
struct CellTypeModel {
  std::string features = kFeaturesGenept;  ///< kFeaturesGenept (uses `genes`) or kFeaturesExpression (uses `panel`)
  std::unique_ptr<Classifier> classifier;
  std::vector<std::string> class_names;   ///< column order of `classifier` probabilities
  std::vector<std::string> class_cl_ids;  ///< per class, "" when unknown
  ModelGenes genes;                        ///< genept models
  ExpressionPanel panel;                   ///< expression models
  ReferenceSample reference;               ///< empty when the model carries no reference sample
  SimilarityProfile similarity;            ///< empty when none (no sample, older files)
  /// The model's genes (its reference sample's, else its features') as a minimal gene table
  /// (for queries when no full table is available).
  [[nodiscard]] GeneTable gene_table() const {
    if (!reference.empty()) return reference.gene_table();  // every gene of the references
    return features == kFeaturesExpression ? panel.gene_table() : genes.gene_table();
  }
  /// Number of classifier features: dims (genept) or panel size (expression).
  [[nodiscard]] std::int64_t n_features() const { return features == kFeaturesExpression ? panel.size() : genes.dims; }
  /// The genes a cell's library is summed over, on the references and on every query (its
  /// route's size_factor_genes; empty = every var).
  [[nodiscard]] const std::vector<std::int64_t>& library_genes() const {
    return features == kFeaturesExpression ? panel.size_factor_genes : genes.size_factor_genes;
  }
  nlohmann::json provenance = nlohmann::json::object();  ///< reference files, label column, seed, hyperparameters, ...
  nlohmann::json validation = nlohmann::json::object();  ///< held-out metrics
};

/// Whether `path` is a local celltyper model file (HDF5 whose root names the model format).
[[nodiscard]] bool is_model_file(const std::string& path);

/// What a model is, as JSON (`celltyper inspect MODEL`): versions, feature route and size,
/// classifier, classes (CL ids, training cells), label column, references, depth augmentation,
/// validation figures, reference sample.
[[nodiscard]] nlohmann::json describe_model(const CellTypeModel& model);

/// A model's score calibration (describe_model's "calibration"): what training recorded (the
/// provenance's "calibration": the held-out cells it was fitted on, n_cells, accuracy,
/// mean_confidence, log_loss and expected_calibration_error before / after, or why there is none,
/// reason) with the temperature its classifier applies.
[[nodiscard]] nlohmann::json calibration_summary(const CellTypeModel& model);
/// `calibration_summary` in words: "calibrated (temperature 0.25 from 527 held-out cells: mean
/// score 0.57 -> 0.90 at accuracy 0.90, expected calibration error 0.33 -> 0.01)", or "the
/// classifier's probabilities, not calibrated (REASON)".
[[nodiscard]] std::string calibration_text(const nlohmann::json& summary);

/// Write `model` to `path` through a temporary file renamed into place. Throws IoError.
void save_model(const CellTypeModel& model, const std::string& path);

/// Read a model. Throws IoError when the file cannot be opened and InputError naming the file for
/// anything else: not HDF5 or truncated, not a celltyper model, a newer format version, missing or
/// inconsistent datasets.
CellTypeModel load_model(const std::string& path);

}  // namespace celltyper
