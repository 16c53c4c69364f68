/// @file catalog.hpp
/// The corpus metadata catalogue (`celltyper catalog`, `celltyper query`): one pass over many
/// h5ad files (local paths, globs, http(s):// or s3:// URLs) that records each file's layout,
/// the cell counts per category of chosen obs columns and, optionally, per-cell QC
/// distributions, as Parquet files written through embedded DuckDB, queryable with SQL.
///
/// Layout of a catalogue directory (schema: docs/catalog.md, `catalog_schema()`):
///   DIR/files/part-<id>.parquet           one row per file (layout, status / error)
///   DIR/obs_categories/part-<id>.parquet  (file, column, category, n_cells)
///   DIR/cell_qc/part-<id>.parquet         per-file distributions of total counts / genes detected
/// `<id>` is a hash of the file's path. Each file's parts are written as soon as that file is
/// done (its `files` row last, through a temporary name renamed into place), so an interrupted
/// run keeps everything already catalogued, and the next run skips those files (resume).
#pragma once

#include <celltyper/remote.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace celltyper {

/// One column of a catalogue table.
struct CatalogColumn {
  const char* name;
  const char* sql_type;     ///< DuckDB type: VARCHAR, BIGINT, DOUBLE, BOOLEAN, VARCHAR[], ...
  const char* description;
};

/// One catalogue table.
struct CatalogTable {
  const char* name;  ///< "files", "obs_categories", "cell_qc"
  std::vector<CatalogColumn> columns;
};

/// The catalogue's schema, declared once (used to create the tables, the empty views of
/// `query_catalog` and checked against docs/catalog.md by the tests).
const std::vector<CatalogTable>& catalog_schema();

/// What one finished file reports to the caller.
struct CatalogFileOutcome {
  std::string path;
  bool ok = false;
  bool resumed = false;     ///< already in the catalogue: skipped
  /// In the catalogue but read again: modified since (size or time) or asked with other obs
  /// columns or QC (CatalogOptions::resume).
  bool read_again = false;
  std::string error;        ///< when !ok
  int error_code = 0;       ///< when !ok: the error's exit code (2 bad input, 3 I/O, 4 unsupported, ...)
  std::int64_t n_obs = 0;
  std::uint64_t file_bytes = 0;
  RemoteStats remote;       ///< transfers for this file (zero when local or resumed)
  double seconds = 0;
};

/// Options of `build_catalog`.
struct CatalogOptions {
  /// obs columns whose categories are counted; empty = every categorical obs column of each
  /// file. Requested columns that a file lacks are listed in `files.obs_columns_missing`.
  std::vector<std::string> obs_columns;
  /// Per-cell QC distributions (reads the matrix: total counts and genes detected per cell).
  bool qc = false;
  /// Matrix for QC: "auto" = layers/counts, else raw/X, else X; or a source name ("X", "raw/X",
  /// "layers/counts").
  std::string qc_matrix = "auto";
  /// Columns with more distinct values than this are not counted (listed in
  /// `files.obs_columns_skipped`): a float or id column would flood the table.
  std::size_t max_categories = 100000;
  /// Files processed at once (0 = all hardware threads). HDF5 calls are serialised; the
  /// parallelism overlaps network transfers, QC sums and Parquet writing.
  int num_threads = 0;
  /// Matrix rows per QC block are chosen to stay under this many bytes.
  std::size_t memory_limit_bytes = std::size_t{256} << 20;
  /// Skip files already catalogued successfully with the same obs request (and QC when asked).
  bool resume = true;
  /// How remote files are read; unset = RemoteOptions::from_environment().
  std::optional<RemoteOptions> remote;
  /// Called after each file (from a worker thread; calls are serialised), e.g. for a progress bar.
  std::function<void(const CatalogFileOutcome& outcome, std::size_t done, std::size_t total)> on_file_done;
};

/// Result of `build_catalog`.
struct CatalogResult {
  std::vector<CatalogFileOutcome> files;  ///< in input order
  std::size_t n_ok = 0;                   ///< catalogued now
  std::size_t n_read_again = 0;           ///< of those, files catalogued before (CatalogFileOutcome::read_again)
  std::size_t n_resumed = 0;              ///< skipped: already catalogued
  std::size_t n_failed = 0;               ///< reported in `files` with status 'error'
  RemoteStats remote;                     ///< transfers of this run
  std::uint64_t file_bytes = 0;           ///< total size of the files catalogued now
  double seconds = 0;

  /// Set the counts, `file_bytes` and `remote` from `files`.
  void tally();
};

/// Expand catalogue inputs: URLs are kept; a directory means every *.h5ad below it; a pattern
/// with * ? [ is a glob (recursive with **); anything else is a file path. Sorted, without
/// duplicates. A glob or directory that matches nothing is added to `unmatched` (a sentence
/// each) when given, else throws InputError; throws InputError too when nothing matches at all.
std::vector<std::string> expand_catalog_inputs(const std::vector<std::string>& inputs, std::vector<std::string>* unmatched = nullptr);

/// Catalogue `paths` into `out_dir` (created when absent). A file that cannot be read is
/// recorded with status 'error' and its message, and the run goes on; only a failure to write
/// the catalogue itself throws (IoError).
CatalogResult build_catalog(const std::vector<std::string>& paths, const std::string& out_dir, const CatalogOptions& options = {});

/// A catalogue re-scanned: the entries (every table's parts) of local files that `inputs` cover
/// and that no longer exist are removed from `out_dir`, so that the catalogue of a directory or
/// glob lists what it holds now. An input covers a path when it is a directory the path lies
/// below (an .h5ad file) or a glob the path matches (as expand_catalog_inputs reads them); file
/// paths and URLs cover nothing (a missing file given by name is recorded with status 'error').
/// Returns the removed paths, sorted. Throws IoError when the catalogue cannot be read.
std::vector<std::string> drop_gone_files(const std::string& out_dir, const std::vector<std::string>& inputs);

/// A query result, every value as text (nullopt = SQL NULL).
struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::string> types;  ///< DuckDB type names ("BIGINT", "VARCHAR", "DOUBLE[]", ...)
  std::vector<std::vector<std::optional<std::string>>> rows;
  /// Per column: its values are JSON text (lists, structs, maps), which --json writes as JSON.
  std::vector<bool> json_text;
  /// Whether column `c` holds numbers (right-aligned, unquoted in JSON).
  [[nodiscard]] bool is_numeric(std::size_t c) const;
};

/// Run `sql` over the catalogue in `dir` with DuckDB; `files`, `obs_categories` and `cell_qc`
/// are views over the Parquet parts (empty tables of the documented schema when a table has no
/// part). Throws InputError with DuckDB's message for bad SQL.
QueryResult query_catalog(const std::string& dir, const std::string& sql);

/// Files of a catalogue that `select --catalog` takes.
struct CatalogedFiles {
  std::int64_t n_ok = 0;            ///< files read successfully (and matching `where`)
  std::vector<std::string> paths;   ///< those with the obs column, in path order
};

/// Files of the catalogue in `dir` that were read successfully, satisfy `where` (an SQL condition
/// on the `files` table; "" = all) and have the obs column `column`. Throws InputError when none
/// does, or for bad SQL.
CatalogedFiles catalog_files_with_column(const std::string& dir, const std::string& column, const std::string& where = "");

/// `text` as an SQL string literal ('...' with quotes doubled).
std::string sql_quote(const std::string& text);

/// Aligned text table (header, dashes, one line per row; NULL shown as NULL).
std::string format_query_table(const QueryResult& result);
/// RFC 4180 CSV with a header line (NULL = empty field).
std::string format_query_csv(const QueryResult& result);
/// JSON array of objects (numbers and booleans unquoted, NULL = null).
std::string format_query_json(const QueryResult& result);

}  // namespace celltyper
