/// @file dataset.hpp
/// A single-cell dataset of any supported format (AnnData .h5ad, Cell Ranger .h5, MTX
/// directories, loom, text count tables) behind one interface: obs / var tables and streamed access to its matrices.
#pragma once

#include <celltyper/dataframe.hpp>
#include <celltyper/sparse.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace celltyper {

/// How a matrix is stored.
enum class MatrixEncoding { kCsr, kCsc, kDense };
const char* to_string(MatrixEncoding encoding);

/// What is known about a stored matrix without reading its values.
struct MatrixInfo {
  std::string source;                  ///< "X", "raw/X", "layers/counts", "matrix" (10x) ...
  MatrixEncoding encoding = MatrixEncoding::kCsr;
  std::int64_t n_rows = 0;             ///< cells
  std::int64_t n_cols = 0;             ///< genes
  std::int64_t nnz = 0;                ///< stored values (n_rows * n_cols for dense)
  std::string value_dtype;             ///< "float32", "int64", ...
  std::string index_dtype;             ///< "int32" / "int64" ("" for dense)
  std::string compression = "none";    ///< "none", "gzip(4)", "lzf", "mtx-text" ...
  std::vector<std::int64_t> chunks;    ///< chunk shape of the value dataset (empty: contiguous)
  std::string encoding_version;        ///< anndata encoding-version, if any
  std::int64_t stored_bytes = 0;       ///< bytes on disk of the matrix datasets
};

/// A half-open range of rows.
struct RowRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  [[nodiscard]] std::int64_t size() const { return end - begin; }
};

/// Streams rows of one stored matrix. Not thread-safe: use one reader per thread, or read in
/// one thread and compute in others (what `for_each_block` does).
class MatrixReader {
 public:
  virtual ~MatrixReader() = default;
  [[nodiscard]] virtual const MatrixInfo& info() const = 0;
  [[nodiscard]] std::int64_t n_rows() const { return info().n_rows; }
  [[nodiscard]] std::int64_t n_cols() const { return info().n_cols; }

  /// Read rows [first, first + count) into `out` (resized; column indices sorted per row for
  /// CSR sources that are sorted, always sorted for CSC and dense sources). Throws InputError
  /// when stored indices are out of range or values are malformed, naming file, dataset, row.
  virtual void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) = 0;
  virtual void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) = 0;

  /// The blocks the caller reads next, in order (for_each_block says them before reading): a
  /// reader that gathers rows in whole passes over the file (CSC) gathers as many of them per
  /// pass as its cache holds. Other readers ignore it; wrappers pass it on.
  virtual void expect_reads(const std::vector<RowRange>& blocks) { (void)blocks; }

  /// Stored values per row (computed with one streaming pass for CSC sources).
  [[nodiscard]] virtual std::vector<std::int64_t> row_nnz() = 0;

  /// Consecutive row ranges covering all rows, each small enough that one float32 block plus
  /// the read buffers stays within `memory_limit_bytes` (a row that alone exceeds it is a
  /// block of its own).
  [[nodiscard]] virtual std::vector<RowRange> plan_blocks(std::size_t memory_limit_bytes);

  /// Bytes needed in memory per stored value when reading (decoded block + read buffer).
  [[nodiscard]] virtual std::size_t bytes_per_value() const { return 16; }
};

/// Options of `for_each_block`.
struct BlockStreamOptions {
  std::size_t memory_limit_bytes = std::size_t{32} << 20;  ///< cap for blocks in flight (2 double-buffered)
  bool prefetch = true;  ///< read the next block on a second thread while the callback runs (not when resolve_threads(0) is 1)
  std::int64_t max_rows = -1;  ///< stream only the first rows (-1: every row)
  /// Stream only these rows, range after range: sorted, disjoint ranges (empty: every row, or
  /// the first max_rows).
  std::vector<RowRange> rows;
  /// Refuse a block holding NaN or an infinite value (InputError naming the cell and the gene
  /// column): no expression means anything then. `summarize_matrix` (inspect) counts them instead.
  bool refuse_non_finite = true;
  std::string what;  ///< names the matrix in that error ("" = the reader's source, e.g. "X")
};

/// Stream every row of `reader` in blocks: `callback(block)` runs on the calling thread in
/// row order. With `prefetch`, the next block is read concurrently, each block getting half
/// of the memory limit. Non-finite values are refused (`BlockStreamOptions::refuse_non_finite`).
void for_each_block(MatrixReader& reader, const BlockStreamOptions& options,
                    const std::function<void(const CsrBlock&)>& callback);

class Dataset;
/// Stream options for `matrix` of `dataset`: blocks within `memory_limit_bytes`, errors naming
/// "PATH: MATRIX".
BlockStreamOptions stream_options(const Dataset& dataset, const std::string& matrix, std::size_t memory_limit_bytes);

class H5adFile;

/// A dataset opened for reading.
class Dataset {
 public:
  virtual ~Dataset() = default;
  [[nodiscard]] virtual const std::string& path() const = 0;
  /// "h5ad", "10x-h5", "10x-mtx", "loom", "zarr", "rds" or "text".
  [[nodiscard]] virtual std::string format() const = 0;
  [[nodiscard]] virtual std::int64_t n_obs() const = 0;
  [[nodiscard]] virtual std::int64_t n_vars() const = 0;
  [[nodiscard]] virtual DataFrame read_obs() const = 0;
  /// obs's index and only the named columns, in obs's order: what a verb needs of a wide obs
  /// (CELLxGENE files carry dozens of columns). Throws InputError naming every obs column when
  /// one of `names` is missing. The default reads the whole frame and drops the rest.
  [[nodiscard]] virtual DataFrame read_obs_columns(const std::vector<std::string>& names) const;
  /// Names of obs's columns (not the index), without reading them. The default reads obs.
  [[nodiscard]] virtual std::vector<std::string> obs_column_names() const;
  [[nodiscard]] virtual DataFrame read_var() const = 0;
  /// Matrix sources available: "X" first, then "raw/X", then "layers/<name>".
  [[nodiscard]] virtual std::vector<std::string> matrix_sources() const = 0;
  /// var of a source (raw/X has its own var with possibly more genes).
  [[nodiscard]] virtual DataFrame read_var_of(const std::string& source) const {
    (void)source;
    return read_var();
  }
  [[nodiscard]] virtual MatrixInfo matrix_info(const std::string& source) const = 0;
  [[nodiscard]] virtual std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const = 0;
  /// The .h5ad file behind this dataset (its uns and obsm: an `extract` output's embeddings), or
  /// nullptr; a dataset wrapping an .h5ad (obs joined from a cell table) gives the wrapped file.
  [[nodiscard]] virtual const H5adFile* h5ad_file() const { return nullptr; }
  /// What a user should know about how the data were read, when the reader chose something
  /// (a Seurat object without an RNA assay: SCT's corrected counts), else "". Said as a note.
  [[nodiscard]] virtual std::string reading_note() const { return {}; }

  /// What a scan of `source`'s first cells found per var (resolve_dataset_genes' counts, when
  /// vars name a gene twice): computed by `scan` on the first call, kept for the next ones, since
  /// a command opens a dataset once and resolves its genes in several passes. Thread-safe.
  struct VarScan {
    std::vector<std::int64_t> cells;  ///< per var, how many scanned cells have a count (empty: no scan possible)
    std::int64_t rows_scanned = 0;
  };
  const VarScan& var_scan(const std::string& source, const std::function<VarScan()>& scan) const;
  /// The dataset whose var scan stands for this one's: itself, or for a view of other counts of
  /// the same cells (a thinned copy) its base, so that a gene is read from the same var whatever
  /// the thinning drew.
  [[nodiscard]] virtual const Dataset& scan_base() const { return *this; }

 private:
  /// var_scan's memo, by source: a copied or moved dataset starts with none (it is derived data).
  struct VarScans {
    std::mutex mutex;
    std::map<std::string, VarScan> by_source;
    VarScans() = default;
    VarScans(const VarScans& /*other*/) {}
    VarScans& operator=(const VarScans& /*other*/) { return *this; }
    ~VarScans() = default;
  };
  mutable VarScans var_scans_;
};

/// Open `path`, detecting the format: a directory holding a Zarr group is AnnData as Zarr, another
/// directory an MTX directory (Cell Ranger, STARsolo, kallisto | bustools, alevin-fry), an HDF5
/// file with a 2-D `matrix` dataset and row / column attributes a loom file, one with a top-level
/// `matrix` group a Cell Ranger .h5, a `.rds` file an R object (read through Rscript), a .csv /
/// .tsv / .txt (optionally .gz) a text count table, any other file an h5ad.
/// Throws InputError for missing, non-HDF5 or malformed files.
std::unique_ptr<Dataset> open_dataset(const std::string& path);

/// Normalise a user-facing matrix name: "X" -> "X", "raw" -> "raw/X", "counts" -> "layers/counts"
/// when such a layer exists, "auto" -> choose_counts_matrix (matrix_summary.hpp; `note`, when
/// given, gets its sentence when the choice is not X). Throws InputError listing the available
/// sources otherwise. `named_note`: a matrix named explicitly gets the dataset's reading_note()
/// in `note` too (a command's entry: annotate's query, train's references; not the passes after
/// it, which would say it again).
std::string resolve_matrix_source(const Dataset& dataset, const std::string& name, std::string* note = nullptr, bool named_note = false);

/// A message in a result's `warnings` that starts with this is a note, not a warning: what the
/// tool chose for the user, as the user would have (counts read from raw/X beside a log-normalised
/// X, CELLxGENE's layout). The command line prints it as "note: ..." unless --quiet; Python logs it
/// (logging.getLogger("celltyper")) instead of warning.
inline constexpr std::string_view kNotePrefix = "note: ";

/// `message` about `where` once: "FILE: message", unless it names FILE first already (an error
/// raised while reading FILE usually does).
inline std::string message_about_once(const std::string& where, const std::string& message) {
  return message.starts_with(where + ": ") ? message : where + ": " + message;
}

/// `message` about `where` ("FILE: message", once), a note kept a note ("note: FILE: ...").
inline std::string message_about(const std::string& where, const std::string& message) {
  if (message.starts_with(kNotePrefix)) return std::string(kNotePrefix) + message_about_once(where, message.substr(kNotePrefix.size()));
  return message_about_once(where, message);
}
/// `message` without a leading "FILE: " naming `where` (a table row already says which file).
inline std::string message_without(const std::string& where, const std::string& message) {
  return message.starts_with(where + ": ") ? message.substr(where.size() + 2) : message;
}

/// What --layer takes (for the commands' --help).
inline constexpr const char* kLayerHelp =
    "Matrix to read: auto (raw/X when X is cut to a gene subset of it, e.g. highly variable genes; else X when it holds counts, else layers/counts or raw/X when they do, as in CELLxGENE files; else X), X, raw, or a layer name";

}  // namespace celltyper
