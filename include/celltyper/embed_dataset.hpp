/// @file embed_dataset.hpp
/// `celltyper embed`: stream a dataset's matrix from disk, embed every cell (cell_embedder.hpp)
/// and hand each block of embeddings to a sink (.npy, HDF5, or obsm of an h5ad copy), with
/// memory bounded by the block cap plus one block of output.
#pragma once

#include <celltyper/cell_embedder.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/gene_table.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

namespace celltyper {

/// Gene vectors looked up by Entrez id (a gene store implements this).
struct GeneVectorSource {
  int dims = 0;                                     ///< dimensions of the stored vectors
  std::function<const float*(std::int64_t)> find;   ///< vector of an Entrez id, nullptr when absent
  std::string identity;                             ///< identity hash of the source (provenance)
  std::string description;                          ///< e.g. "lsa 1024 dims, genes.h5"
};

/// Align gene vectors to a dataset's vars: var j gets the vector of the gene it resolved to
/// (first `dims` components, re-normalised to unit length, as Matryoshka prefixes are used).
/// `library_genes` (ascending Entrez ids) not empty: vars of no gene among them are kOtherFeature.
AlignedGeneVectors align_gene_vectors(const GeneTable& table, const GeneResolveResult& resolved, const GeneVectorSource& source,
                                      int dims, const std::vector<std::int64_t>& library_genes = {});

/// "auto" resolves to a normalisation by looking at the values (raw counts, and non-logged
/// values such as CP10k, CPM, TPM or corrected counts -> log1p-cp10k; log1p(CP10k)-normalised ->
/// relog1p-cp10k (log2(1 + CP10k) -> relog2-cp10k, log10(1 + CP10k) -> relog10-cp10k) on the expression route, none for GenePT-w, where the library is every gene of
/// the cell and the two are the same; square roots of counts -> square-cp10k and asinh of counts
/// -> sinh-cp10k on both routes (the counts' own normalisation); other logged data -> none).
/// `kAuto` is only an option value; the embedder gets a concrete one.
enum class NormalizationChoice { kAuto, kNone, kCp10k, kLog1pCp10k, kRelog1pCp10k, kRelog2Cp10k, kRelog10Cp10k, kSquareCp10k, kSinhCp10k };
NormalizationChoice parse_normalization_choice(const std::string& text);

/// What --normalize takes (for the commands' --help).
inline constexpr const char* kNormalizeHelp =
    "auto | none | cp10k | log1p-cp10k | relog1p-cp10k | relog2-cp10k | relog10-cp10k | square-cp10k | sinh-cp10k (auto: counts and other "
    "non-logged values (CP10k, CPM, TPM) -> log1p-cp10k; log1p(CP10k), log2(1 + CP10k) or log10(1 + CP10k) data normalised again over the "
    "library genes on the expression route (a training reference's counts read back from such values when they are logs of counts, for depth "
    "augmentation), used as is by GenePT-w; square roots of counts squared back (square-cp10k) and asinh of counts read back with sinh "
    "(sinh-cp10k), then normalised as counts; other logged data as is)";

/// Options of `embed_dataset`.
struct EmbedOptions {
  std::string matrix = "auto";            ///< "auto" (choose_counts_matrix), "X", "raw", or a layer name ("counts")
  NormalizationChoice normalization = NormalizationChoice::kAuto;
  bool log_transformed_as_is = false;     ///< see ExpressionOptions::log_transformed_as_is
  int dims = 0;                           ///< 0 = all dimensions of the gene vectors
  int num_threads = 0;                    ///< 0 = all hardware threads
  std::size_t memory_limit_bytes = std::size_t{32} << 20;  ///< cap for matrix blocks in flight
  GeneResolveOptions genes;               ///< which var column holds gene ids
  std::int64_t min_matched_genes = 1;     ///< fail when fewer vars have a vector
  double min_median_coverage = 0.2;       ///< fail when the median cell has less of its counts on matched genes
  std::string coverage_option;            ///< the front end's name of that floor ("--min-coverage"), named in the error; "" when it has none
  /// When not empty (ascending Entrez ids): a cell's library is summed over these genes only and
  /// every other var is ignored altogether (kOtherFeature: no vector, not in the total). A GenePT-w
  /// model of references measuring fewer genes than a transcriptome sums its references' cells
  /// and every query's over the genes the references measured (ModelGenes::size_factor_genes).
  std::vector<std::int64_t> size_factor_genes;
  std::function<void(std::int64_t done, std::int64_t total)> progress;  ///< called after each block
  /// Rows to embed, in this order (empty = every row). Only these rows are read; the sink gets
  /// them numbered consecutively from 0. The normalisation choice and the gene order still look
  /// at the first rows of the dataset, so a cell's embedding never depends on the ranges.
  std::vector<RowRange> rows;
};

/// Receives embeddings block by block, in row order.
class EmbeddingSink {
 public:
  virtual ~EmbeddingSink() = default;
  virtual void begin(std::int64_t n_cells, int dims) = 0;
  virtual void write(std::int64_t first_row, std::int64_t n_rows, const float* values, const CellEmbedStats& stats) = 0;
  /// All rows written; `provenance` describes how they were made.
  virtual void finish(const nlohmann::json& provenance) = 0;
};

/// Outcome of `embed_dataset`.
struct EmbedResult {
  std::int64_t n_cells = 0;
  int dims = 0;
  std::string matrix;                  ///< source actually read ("layers/counts", ...)
  Normalization normalization = Normalization::kLog1pCp10k;
  std::string normalization_reason;    ///< why (auto choice, or the user's)
  GeneResolveResult genes;             ///< var resolution against the gene table
  std::int64_t n_vars_with_vector = 0; ///< vars whose gene has a vector
  double median_coverage = 0;          ///< per-cell share of counts on vars with a vector
  double min_coverage = 0;
  std::int64_t n_empty_cells = 0;      ///< zero vectors (no matched gene expressed)
  std::vector<std::string> warnings;
  double seconds = 0;
  nlohmann::json provenance;
  [[nodiscard]] nlohmann::json to_json() const;
};

/// Embed every cell of `dataset`. Throws InputError when the overlap is below the thresholds
/// (naming the var column and id type tried), or on bad values.
EmbedResult embed_dataset(const Dataset& dataset, const GeneTable& table, const GeneVectorSource& source,
                          const EmbedOptions& options, EmbeddingSink& sink);

/// Sinks.
std::unique_ptr<EmbeddingSink> make_npy_sink(const std::string& path);
/// Standalone HDF5: `embeddings` [n x k] float32, `obs_names`, `empty` flags, provenance attribute.
std::unique_ptr<EmbeddingSink> make_hdf5_sink(const std::string& path, std::vector<std::string> obs_names);
/// A copy of the input h5ad with obsm[`key`], obs `celltyper_embedding_empty` and uns provenance.
std::unique_ptr<EmbeddingSink> make_h5ad_obsm_sink(const std::string& input, const std::string& output, const std::string& key,
                                                   bool in_place = false);
/// Keep everything in memory (library use): rows x dims.
class MemorySink final : public EmbeddingSink {
 public:
  void begin(std::int64_t n_cells, int dims) override;
  void write(std::int64_t first_row, std::int64_t n_rows, const float* values, const CellEmbedStats& stats) override;
  void finish(const nlohmann::json& provenance) override { this->provenance = provenance; }
  std::int64_t rows = 0;
  int dims = 0;
  std::vector<float> values;
  std::vector<std::uint8_t> empty;
  nlohmann::json provenance;
};

}  // namespace celltyper
