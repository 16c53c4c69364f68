/// @file reference_similarity.hpp
/// Whether query cells resemble any of a model's reference cell types at all (annotate's
/// `celltyper_unlike_reference`): a classifier gives every cell its most probable class, even a
/// cell of a type the references never had (lung cancer lines under a PBMC model are all called
/// dendritic cells, with scores like the real ones'). Like SingleR's and scmap's correlation to
/// reference profiles, each cell is compared with each class's centroid by Spearman correlation
/// over the references' most variable genes; the class's own cells, thinned to a range of
/// depths, say how low a cell of that type and depth may score (the kSimilarityQuantile quantile),
/// so shallow cells of known types are not taken for new ones. The profile is computed when the
/// model is trained (and when annotate refits it on a query's genes) from its reference sample.
#pragma once

#include <celltyper/model_file.hpp>

#include <cstdint>
#include <vector>

namespace celltyper {

/// Genes compared: the reference sample's most variable (log1p-CP10k variance over its labelled
/// cells; bench/novelty: the classifier panel's, chosen by dispersion, let cell lines pass for
/// dendritic cells half the time).
inline constexpr std::size_t kSimilarityGenes = 2000;
/// Classes with fewer sampled cells get no profile (too few to say how their cells vary).
inline constexpr std::int64_t kSimilarityMinClassCells = 10;
/// annotate's warning of a label unlike the reference names a class of fewer reference cells than
/// this: its threshold rests on them.
inline constexpr std::int64_t kSimilarityFewClassCells = 20;
/// Cells per class that calibrate its thresholds (evenly spread over its sampled cells).
inline constexpr std::int64_t kSimilarityCalibrationCells = 200;
/// The share of a class's own cells (at a depth) that score below its threshold.
inline constexpr double kSimilarityQuantile = 0.01;
/// A cell detecting fewer of the compared genes than its best type's cells do, in the median, when
/// thinned to this many counts is not judged (known types score low there).
inline constexpr double kSimilarityMinCounts = 1000;
/// annotate warns when at least this share of the cells it could judge resemble no reference type,
/// else when a label with kSimilarityWarnLabelCells judged cells or more has this share of them
/// unlike (bench/novelty: queries of the reference's types reach 0.11 overall, 0.17 for a label;
/// the label given to types the reference lacks, Xin -> Wang's "delta", 0.29).
inline constexpr double kSimilarityWarnShare = 0.2;
inline constexpr std::int64_t kSimilarityWarnMinCells = 10;  ///< fewer unlike cells: no overall warning
inline constexpr double kSimilarityWarnLabelShare = 0.25;
inline constexpr std::int64_t kSimilarityWarnLabelCells = 20;
/// ... or when kSimilarityWarnLabelMinUnlike of a label's judged cells or more, and at least
/// kSimilarityWarnLabelExcessShare of them, are unlike, kSimilarityWarnLabelExcess times the share
/// of the other labels' cells or more: a type the references lack, absorbed by a class with many
/// real cells of its own (bench/novelty: pbmc3k without B -> pbmc68k, 'DC' 58 of 283 unlike (20%),
/// 2.4% of the rest; the known-type queries' labels reach 6% at 4x (pbmc3k -> savercat, 'Naive
/// CD4 T' 20 of 320), or 11% at the rest's own share (cellbench 5cl -> 3cl)).
inline constexpr std::int64_t kSimilarityWarnLabelMinUnlike = 20;
/// A label of few judged cells (under kSimilarityWarnLabelCells) is named when at least this many
/// of them, and kSimilarityWarnFewLabelShare of them, are unlike while the other labels' cells
/// mostly are not (a rare type the references lack, called by its nearest rare class: pbmc68k's
/// CD34+ cells called Platelet).
inline constexpr std::int64_t kSimilarityWarnFewLabelMinUnlike = 2;
inline constexpr double kSimilarityWarnFewLabelShare = 0.75;
inline constexpr double kSimilarityWarnFewLabelRestShare = 0.05;
inline constexpr double kSimilarityWarnLabelExcessShare = 0.10;
inline constexpr double kSimilarityWarnLabelExcess = 4.0;
/// The other labels' judged cells needed for their share to count (a query mostly of one label).
inline constexpr std::int64_t kSimilarityWarnRestCells = 100;

/// The profile of the sampled cells' classes over their kSimilarityGenes most variable genes
/// among `size_factor_genes` (ascending; empty = every gene of the sample), which are also the
/// genes a cell's library is summed over (a model refitted on a query's genes compares only
/// those). Classes are indices into the model's classes (`n_classes`); coarse-labelled cells are
/// not used. Empty when no class has kSimilarityMinClassCells cells. Deterministic for a seed,
/// whatever `num_threads` (classes in parallel; 0 = the process default).
SimilarityProfile similarity_profile(const ReferenceSample& sample, const std::vector<std::int64_t>& size_factor_genes, std::size_t n_classes,
                                     std::uint64_t seed = 0, int num_threads = 1);

/// What the similarity check says of one cell.
enum class SimilarityVerdict : std::uint8_t {
  kLike = 0,     ///< at or above its best-matching type's threshold
  kUnlike = 1,   ///< below it: resembles none of the reference's types
  kShallow = 2,  ///< detects too few of the compared genes to judge
};

/// One cell's similarity to a model's types.
struct CellSimilarity {
  float similarity = 0;        ///< Spearman correlation with the best-matching class centroid
  std::int32_t best_class = -1;  ///< that class (model index), -1 when none was compared
  SimilarityVerdict verdict = SimilarityVerdict::kShallow;
};

/// Scores query cells against a profile, the cells given as their non-zero values over `panel`
/// (Entrez ids: a model's panel when it holds the profile's genes, else the profile's genes;
/// values in any per-cell monotone scale: counts, log1p-CP10k...).
class SimilarityScorer {
 public:
  SimilarityScorer(const SimilarityProfile& profile, const std::vector<std::int64_t>& panel);
  /// The cell with `n` non-zero features: `columns` (panel indices) and `values`.
  [[nodiscard]] CellSimilarity score(const std::int32_t* columns, const float* values, std::size_t n) const;
  /// The cell as a dense row of panel features.
  [[nodiscard]] CellSimilarity score_dense(const float* row) const;

 private:
  const SimilarityProfile& profile_;
  std::vector<std::int32_t> gene_of_column_;  ///< panel column -> profile gene, -1 when not compared
  std::vector<double> centroid_norms_;
  std::vector<float> by_gene_;  ///< [genes x profiles]: the centred ranks gene-major
};

}  // namespace celltyper
