/// Internal: what the catalogue records about one file, before it is written as Parquet rows
/// (tables `files`, `obs_categories`, `cell_qc`; columns in catalog_schema.cpp).
#pragma once

#include <celltyper/catalog.hpp>
#include <celltyper/remote.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace celltyper::corpus::detail {

/// One `obs_categories` row.
struct CategoryCount {
  std::string file;
  std::string column;
  std::optional<std::string> category;  ///< nullopt = missing value
  std::int64_t n_cells = 0;
};

/// One `cell_qc` row (without file and matrix).
struct QcDistribution {
  std::string metric;
  std::int64_t n_cells = 0;
  double min = 0, q05 = 0, q25 = 0, median = 0, q75 = 0, q95 = 0, max = 0, mean = 0;
  std::vector<double> histogram_lower;
  std::vector<std::int64_t> histogram_counts;
};

/// Everything catalogued about one file (one `files` row and its child rows).
struct FileRecord {
  std::string path;
  std::string status = "ok";  ///< "ok" or "error"
  std::string error;
  int error_code = 0;  ///< the exit code of the error (error.hpp: 2 bad input, 3 I/O, ...), 0 when none
  std::uint64_t size_bytes = 0;
  std::optional<std::int64_t> modified_unix;
  std::int64_t n_obs = 0;
  std::int64_t n_vars = 0;
  std::string x_source, x_encoding, x_dtype, x_index_dtype;
  std::int64_t x_nnz = 0;
  std::vector<std::int64_t> x_chunks;
  std::string x_compression;
  std::int64_t x_stored_bytes = 0;
  std::string encoding_version;
  std::vector<std::string> obs_columns, var_columns, obsm_keys, layers_keys, uns_keys;
  bool has_raw = false;
  std::string obs_request;
  std::vector<std::string> obs_columns_catalogued, obs_columns_missing, obs_columns_skipped;
  bool qc = false;
  std::string qc_matrix;
  RemoteStats remote;
  double seconds = 0;
  std::string catalogued_at;
  std::vector<CategoryCount> categories;
  std::vector<QcDistribution> qc_rows;
};

/// Read one file (never throws for a bad file: status "error" and the message instead).
FileRecord catalogue_file(const std::string& path, const CatalogOptions& options);

/// Fixed histogram bins of cell_qc: lower edges 0, 1, 2, 4, ..., 2^30.
std::vector<double> qc_histogram_lower_edges();
/// Bin of `value`: 0 for [0, 1), k for [2^(k-1), 2^k), the last bin open.
std::size_t qc_histogram_bin(double value);

/// "*" for every categorical column, else the names joined with ','.
std::string obs_request_text(const std::vector<std::string>& columns);
std::string utc_now_iso();

}  // namespace celltyper::corpus::detail
