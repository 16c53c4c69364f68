/// @file expression_features.hpp
/// The expression feature route (`--features expression`): each cell is described by the
/// log1p-CP10k expression of a fixed panel of genes, the method of CellTypist (Domínguez Conde et
/// al., "Cross-tissue immune cell analysis reveals tissue-specific features in humans", Science
/// 2022): library-size normalisation to 10,000 counts per cell over all of the cell's genes, then
/// log1p; per-gene scaling with training statistics is done by the classifier (Standardizer).
///
/// Conventions (owned here):
/// - The panel is a list of genes identified by Entrez id (gene identity layer, gene_table.hpp),
///   so a model trained on symbols annotates a query with Ensembl ids; a panel gene absent from
///   the query contributes 0 (before scaling), and the share of panel genes found is reported.
/// - Features are a dense row-major float32 matrix [n_cells x panel size], panel order.
/// - The panel is chosen on the reference(s) as the most variable genes (Seurat flavour of
///   `scanpy.pp.highly_variable_genes`: dispersion = variance / mean of expm1 of the log values,
///   z-scored within 20 bins of mean expression; Satija et al., Nat. Biotechnol. 2015). Ties go
///   to the lower Entrez id, so the panel is deterministic.
/// - A cell's features depend only on that cell (never on block size or thread count).
#pragma once

#include <celltyper/dataset.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/gene_table.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace celltyper {

/// Target library size of the normalisation (counts per 10,000).
inline constexpr double kExpressionTargetSum = 1e4;

/// Per-gene statistics of log1p-CP10k expression, accumulated over one or more datasets.
struct GeneExpressionStats {
  std::vector<std::int64_t> entrez_ids;  ///< ascending
  std::vector<double> sum;               ///< sum over cells of log1p-CP10k (cells where 0 add 0)
  std::vector<double> sum_squares;
  std::vector<double> sum_expm1;         ///< sum of expm1(value), i.e. of CP10k
  std::vector<double> sum_expm1_squares;
  std::vector<std::int64_t> n_expressing;  ///< cells with a non-zero value
  std::int64_t n_cells = 0;
};

/// Options of `accumulate_expression_stats` and `expression_features`.
/// Library size: the sum of a cell's values on every var (CellTypist), or on
/// `size_factor_genes` only when that list is given.
struct ExpressionOptions {
  std::string matrix = "auto";            ///< "auto" (choose_counts_matrix), "X", "raw", or a layer name
  NormalizationChoice normalization = NormalizationChoice::kAuto;  ///< auto: see choose_normalization
  int num_threads = 0;                    ///< 0 = all hardware threads
  std::size_t memory_limit_bytes = std::size_t{32} << 20;  ///< cap for matrix blocks in flight
  GeneResolveOptions genes;               ///< which var column holds gene ids
  /// When not empty (ascending Entrez ids): a cell's library size is the sum of its values on
  /// these genes only, not on all its genes. A model restricted to a query's genes sums over
  /// the same genes on the references and on the query, so that genes one side never measured
  /// do not change the other side's normalisation.
  std::vector<std::int64_t> size_factor_genes;
  /// The library size (sum over `size_factor_genes`, or every var) is multiplied by this: pooled
  /// references that measured part of the genes scale their partial sums to the full library of
  /// the reference that measured the most (see `library_sizes`).
  double size_factor_multiplier = 1.0;
  /// The panel genes a dataset lacks are filled in afterwards (pooled references, gene pooling
  /// "impute"): the warning for a dataset lacking most of them says so, not that they count as
  /// not expressed.
  bool missing_genes_imputed = false;
  /// With "auto": logs of unknown normalisation ("log-transformed") are used as they are, not read
  /// back and normalised as counts: a model that learnt its reference's values so (normalisation
  /// "none": trained before session 54, or with --normalize none) reads its query the same way.
  bool log_transformed_as_is = false;
};

/// Add the statistics of every cell of `dataset` (rows `keep[i] != 0` only, when `keep` is not
/// empty) to `stats`. Returns the normalisation used and appends warnings.
Normalization accumulate_expression_stats(const Dataset& dataset, const GeneTable& table, const ExpressionOptions& options,
                                          const std::vector<std::uint8_t>& keep, GeneExpressionStats& stats,
                                          std::vector<std::string>* warnings = nullptr);

/// For every cell of `dataset` (rows `keep[i] != 0` only, when `keep` is not empty, in row order)
/// the sum of its values over each of `gene_sets` (ascending Entrez ids; the first var of each
/// gene counts, as for the library size): result[set][cell]. Reads the matrix once.
std::vector<std::vector<double>> library_sizes(const Dataset& dataset, const GeneTable& table, const ExpressionOptions& options,
                                               const std::vector<std::vector<std::int64_t>>& gene_sets,
                                               const std::vector<std::uint8_t>& keep = {});

/// The `n_genes` most variable genes (Entrez ids, in ranking order), among genes expressed in at
/// least `min_cells` cells. Throws InputError when no gene qualifies.
std::vector<std::int64_t> select_variable_genes(const GeneExpressionStats& stats, int n_genes, std::int64_t min_cells = 3);

/// Outcome of `expression_features`.
struct ExpressionFeatures {
  std::int64_t n_cells = 0;
  int n_features = 0;                     ///< panel size
  std::vector<float> values;              ///< [n_cells x n_features] row-major
  std::vector<std::uint8_t> empty;        ///< 1 for cells without any count
  std::string matrix;                     ///< source read ("layers/counts", ...)
  Normalization normalization = Normalization::kLog1pCp10k;
  std::string normalization_reason;
  bool counts = true;                     ///< the values read are raw counts (not CP10k, TPM, logged ...)
  std::int64_t n_panel_genes_found = 0;   ///< panel genes present among the dataset's vars
  GeneResolveResult genes;                ///< var resolution
  std::vector<std::string> warnings;
};

/// Receives consecutive blocks of features, in row order: rows [first_row, first_row + n_rows)
/// as a row-major [n_rows x width] matrix and their `empty` flags. The pointers are valid only
/// during the call.
using FeatureBlockCallback =
    std::function<void(std::int64_t first_row, std::int64_t n_rows, const float* values, const std::uint8_t* empty)>;

/// `expression_features` one block at a time (memory bounded by the block cap, not by the number
/// of cells): the returned result describes the run and has no `values` / `empty`.
ExpressionFeatures stream_expression_features(const Dataset& dataset, const GeneTable& table, const std::vector<std::int64_t>& panel,
                                              const ExpressionOptions& options, const FeatureBlockCallback& callback,
                                              double min_panel_fraction = 0.05);

/// One block of cells' features in sparse form: row r (of n_rows, dataset row first_row + r)
/// has `counts[r]` expressed panel genes, feature columns `columns[starts[r] + i]` (panel order)
/// with values `values[starts[r] + i]`; every other feature is 0. `empty[r]` as in
/// ExpressionFeatures. Valid only during the callback.
struct SparseFeatureBlock {
  std::int64_t first_row = 0;
  std::int64_t n_rows = 0;
  std::vector<std::int64_t> starts;
  std::vector<std::int32_t> counts;
  std::vector<std::int32_t> columns;
  std::vector<float> values;
  std::vector<std::uint8_t> empty;
};
using SparseFeatureBlockCallback = std::function<void(const SparseFeatureBlock& block)>;

/// `stream_expression_features` without the dense matrix: each cell's non-zero features only
/// (the same values), for consumers that need no zeros (a linear model's scores). `extra` genes
/// (Entrez ids, none of the panel's) come as columns panel.size() + i in the same pass (the
/// similarity check's genes beside a classifier's), normalised alike; they neither make a cell
/// non-empty nor count as panel genes found.
ExpressionFeatures stream_sparse_expression_features(const Dataset& dataset, const GeneTable& table, const std::vector<std::int64_t>& panel,
                                                     const ExpressionOptions& options, const SparseFeatureBlockCallback& callback,
                                                     double min_panel_fraction = 0.05, const std::vector<std::int64_t>& extra = {});

/// Features of every cell of `dataset` over `panel` (Entrez ids). Throws InputError when fewer
/// than `min_panel_fraction` of the panel genes are found in the dataset.
ExpressionFeatures expression_features(const Dataset& dataset, const GeneTable& table, const std::vector<std::int64_t>& panel,
                                       const ExpressionOptions& options, double min_panel_fraction = 0.05);

/// Pick (or check) the normalisation of `reader` from a scan of 2,000 of its cells, as `embed` does:
/// `reason` says why, warnings are appended (e.g. log1p asked for already-logged data). With
/// `relog_log_normalized` (the expression route), "auto" gives log1p(CP10k)-normalised values
/// kRelog1pCp10k and log2(1 + CP10k) ones kRelog2Cp10k, else kNone; counts and other non-logged
/// values get kLog1pCp10k. `counts` (when given) is set to whether the scanned values are raw
/// counts (molecules: what depth augmentation may thin), whatever the normalisation.
/// The dataset a matrix was read from and its source ("X", "raw/X", "layers/NAME"): the error for
/// scaled values and the warning for values of unknown normalisation name the dataset's other
/// matrices that are not scaled (scanned then) as the ones to read instead.
/// Largest value natural logs of values per million (TPM, CPM, FPKM) reach, ln(1 + 2 x 10^6):
/// logs of unknown normalisation above it are read back in base 2 (choose_normalization).
inline constexpr double kNaturalLogOfMillionsMax = 14.51;

struct MatrixOrigin {
  const Dataset* dataset = nullptr;  ///< nullptr: not known
  std::string source;
};
Normalization choose_normalization(MatrixReader& reader, NormalizationChoice choice, std::size_t memory_limit_bytes,
                                   const std::string& matrix, std::string& reason, std::vector<std::string>& warnings,
                                   bool relog_log_normalized = false, bool* counts = nullptr, const MatrixOrigin& origin = {},
                                   bool log_transformed_as_is = false);
// (`matrix` names the matrix in messages: "FILE: X"; `log_transformed_as_is`: see ExpressionOptions)

}  // namespace celltyper
