/// @file gene_store.hpp
/// Gene store: one HDF5 file holding an embedding vector per gene plus where it came from.
///
/// Layout conventions (owned here):
/// - A store holds `n_genes` genes in ascending Entrez id order and a float32 matrix
///   [n_genes x dims], row-major, one row per gene, every row L2-normalised (|row| = 1 within
///   1e-3; cosine similarity = dot product).
/// - Genes are identified by NCBI Entrez id (int64, unique), with the official symbol and the
///   first Ensembl gene id (version stripped; "" when none) for display and look-ups.
/// - For LSA stores the columns are ordered by singular value, so the first k columns are the
///   rank-k LSA embedding: `truncated(k)` matches building with `dims = k` up to the randomised
///   SVD's error and a rotation among components of (nearly) equal singular value, i.e. the
///   cosines between genes agree (Matryoshka-style prefixes, Kusupati et al., "Matryoshka
///   Representation Learning", NeurIPS 2022). Imported stores are prefix-friendly only when
///   their model is (OpenAI text-embedding-3 models are).
///
/// HDF5 layout (format "celltyper-gene-store", version 1):
///
///     /                    attrs: celltyper_format, format_version, and every provenance field
///                                 (backend, model, dims, text_recipe_hash, gene_table_hash,
///                                 species, created_utc, celltyper_version, identity_hash,
///                                 provenance_json = the free JSON)
///     /genes/entrez_id     int64 [n_genes]
///     /genes/symbol        str   [n_genes]   (variable-length UTF-8)
///     /genes/ensembl_id    str   [n_genes]
///     /embeddings          float32 [n_genes, dims] (contiguous, uncompressed)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace celltyper {

class GeneTable;

/// Where a store's vectors came from. Written as root attributes of the HDF5 file.
struct GeneStoreProvenance {
  std::string backend;            ///< "lsa", "import", "openai", ...
  std::string model;              ///< e.g. "tfidf-lsa", "text-embedding-3-large", an imported file name
  int dims = 0;                   ///< dimensions when the vectors were made (before any truncation)
  std::string text_recipe_hash;   ///< recipe hash of the gene texts embedded ("" for imports)
  std::string gene_table_hash;    ///< GeneTable::content_hash_hex() of the table used ("" if none)
  std::string species;            ///< e.g. "Homo sapiens"
  std::string created_utc;        ///< ISO 8601 UTC, e.g. "2024-06-01T12:00:00Z"
  std::string celltyper_version;  ///< version of the celltyper that made the store
  nlohmann::json extra = nlohmann::json::object();  ///< free JSON: options, sources, counts, history

  /// Every field as one JSON object (`extra` under "extra").
  [[nodiscard]] nlohmann::json to_json() const;
  /// Inverse of to_json (missing fields stay default).
  static GeneStoreProvenance from_json(const nlohmann::json& json);
};

/// The current time as ISO 8601 UTC ("YYYY-MM-DDTHH:MM:SSZ"), or the time SOURCE_DATE_EPOCH
/// names when it is set (the reproducible-builds convention: files made twice are the same bytes).
std::string utc_timestamp();

/// SOURCE_DATE_EPOCH's seconds since 1970 when it is set (an InputError when it is not a
/// non-negative whole number): the outputs then record that time and no measured durations.
std::optional<std::int64_t> source_date_epoch();

/// An immutable set of gene vectors (see the file comment for conventions).
class GeneStore {
 public:
  /// An empty store (0 genes, 0 dims).
  GeneStore() = default;

  /// Build a store from parts. `matrix` is [entrez_ids.size() x dims] row-major; rows are
  /// L2-normalised here. Rows are reordered by ascending Entrez id. Throws InputError when the
  /// sizes disagree, dims < 1, an Entrez id repeats, a value is not finite or a row is all zero.
  GeneStore(std::vector<std::int64_t> entrez_ids, std::vector<std::string> symbols, std::vector<std::string> ensembl_ids,
            std::vector<float> matrix, int dims, GeneStoreProvenance provenance);

  /// Read a store, checking its integrity: format attribute, dataset shapes agree, no NaN or
  /// infinity, unit-norm rows within 1e-3, unique Entrez ids. Throws IoError when the file cannot
  /// be opened, InputError naming the file and the problem otherwise (not HDF5, truncated, not a
  /// gene store, shape mismatch, ...).
  static GeneStore load(const std::string& path);

  /// Write the store to `path` through a temporary file renamed into place. Throws IoError.
  void save(const std::string& path) const;

  [[nodiscard]] std::int64_t n_genes() const { return static_cast<std::int64_t>(entrez_ids_.size()); }
  [[nodiscard]] int dims() const { return dims_; }
  [[nodiscard]] bool empty() const { return entrez_ids_.empty(); }
  /// Per row: Entrez id (ascending).
  [[nodiscard]] const std::vector<std::int64_t>& entrez_ids() const { return entrez_ids_; }
  /// Per row: official symbol.
  [[nodiscard]] const std::vector<std::string>& symbols() const { return symbols_; }
  /// Per row: Ensembl gene id, "" when none.
  [[nodiscard]] const std::vector<std::string>& ensembl_ids() const { return ensembl_ids_; }
  /// The whole matrix, [n_genes x dims] row-major.
  [[nodiscard]] const std::vector<float>& matrix() const { return matrix_; }
  /// Row `i` (dims floats, unit norm), 0 <= i < n_genes().
  [[nodiscard]] const float* row(std::int64_t i) const { return matrix_.data() + i * dims_; }
  /// Row of Entrez id `entrez_id`, or -1.
  [[nodiscard]] std::int32_t find_entrez(std::int64_t entrez_id) const;
  /// Row of a gene named by Entrez id, Ensembl id or symbol (exact, then ignoring case); -1 if
  /// none. With `table`, aliases and genes of the table are resolved too (through Entrez id).
  [[nodiscard]] std::int32_t find_gene(const std::string& name, const GeneTable* table = nullptr) const;

  /// Content identity: FNV-1a 64 over dims, n_genes, the Entrez ids and the matrix bytes
  /// (little-endian float32), as 16 hex digits. Two stores with the same ids and vectors have
  /// the same hash, whatever their provenance.
  [[nodiscard]] std::string identity_hash() const;

  [[nodiscard]] const GeneStoreProvenance& provenance() const { return provenance_; }
  /// Provenance plus n_genes, dims and identity_hash, as JSON.
  [[nodiscard]] nlohmann::json info_json() const;
  /// `load(path).info_json()` without reading the matrix: the shape, the root attributes and the
  /// identity hash recorded when the store was saved (a store without one is loaded and hashed).
  /// Same checks and errors as `load` for the file itself; the vectors are checked when loaded.
  [[nodiscard]] static nlohmann::json read_info(const std::string& path);

  /// The first `k` dimensions (1 <= k <= dims), rows re-normalised. Rows whose prefix is all
  /// zero are dropped (counted in `provenance().extra["truncation"]`). Throws InputError on a bad k.
  [[nodiscard]] GeneStore truncated(int k) const;

  /// The `k` rows most similar to row `row` by cosine (dot product of unit rows), the row itself
  /// excluded, best first (ties by ascending row). Pairs are (row, cosine).
  [[nodiscard]] std::vector<std::pair<std::int32_t, float>> nearest(std::int32_t row, int k) const;

 private:
  std::vector<std::int64_t> entrez_ids_;
  std::vector<std::string> symbols_;
  std::vector<std::string> ensembl_ids_;
  std::vector<float> matrix_;
  int dims_ = 0;
  GeneStoreProvenance provenance_;
};

/// Where commands look for the gene store when `--genes` is not given: the environment variable
/// `CELLTYPER_GENE_STORE` when set and non-empty; else `installed_file("gene_embeddings.h5")`
/// (for build/celltyper and the Python module: build/share/celltyper/gene_embeddings.h5, where
/// scripts/build_default_gene_store.sh writes it); else that path beside the running executable,
/// where no store is yet (resolve_gene_store_path's message says how to make one).
std::string default_gene_store_path();

/// `path` when non-empty, else `default_gene_store_path()`; throws InputError when that file
/// does not exist, naming it and how to make one ("run scripts/setup.sh or celltyper genes embed").
std::string resolve_gene_store_path(const std::string& path);

/// Write the matrix as a tab-separated text file `<prefix>.tsv` (header `entrez_id symbol
/// ensembl_id d0 d1 ...`, one line per gene, shortest round-trip float formatting). Atomic.
void export_gene_store_tsv(const GeneStore& store, const std::string& prefix);

/// Write the matrix as `<prefix>.npy` (NumPy format 1.0, '<f4', C order, shape (n_genes, dims))
/// and the genes as `<prefix>.genes.tsv` (header `entrez_id symbol ensembl_id`). Atomic.
void export_gene_store_npy(const GeneStore& store, const std::string& prefix);

}  // namespace celltyper
