// The catalogue's tables, declared once: docs/catalog.md documents the same columns (a test
// checks that every column here is documented there).
#include <celltyper/catalog.hpp>

namespace celltyper {

const std::vector<CatalogTable>& catalog_schema() {
  static const std::vector<CatalogTable> schema{
      {"files",
       {
           {"path", "VARCHAR", "file path or URL as given (after glob expansion)"},
           {"status", "VARCHAR", "'ok', or 'error' when the file could not be read"},
           {"error", "VARCHAR", "the error message (NULL when ok)"},
           {"size_bytes", "BIGINT", "file size in bytes"},
           {"modified_unix", "BIGINT", "local files: modification time (seconds since 1970); NULL for URLs"},
           {"n_obs", "BIGINT", "cells"},
           {"n_vars", "BIGINT", "genes"},
           {"x_source", "VARCHAR", "the main matrix: 'X', else 'raw/X' or the first layer when X is absent"},
           {"x_encoding", "VARCHAR", "'csr', 'csc' or 'dense'"},
           {"x_dtype", "VARCHAR", "value type: 'float32', 'float64', 'int32', ..."},
           {"x_index_dtype", "VARCHAR", "type of sparse indices ('int32', 'int64'); NULL for dense"},
           {"x_nnz", "BIGINT", "stored values (n_obs * n_vars for dense)"},
           {"x_chunks", "BIGINT[]", "HDF5 chunk shape of the values dataset (empty = contiguous)"},
           {"x_compression", "VARCHAR", "'none', 'gzip(4)', 'lzf', ..."},
           {"x_stored_bytes", "BIGINT", "bytes of the matrix datasets on disk"},
           {"encoding_version", "VARCHAR", "anndata encoding version of the root ('' before anndata 0.8)"},
           {"obs_columns", "VARCHAR[]", "obs column names in order"},
           {"var_columns", "VARCHAR[]", "var column names in order"},
           {"obsm_keys", "VARCHAR[]", "keys of obsm"},
           {"layers_keys", "VARCHAR[]", "keys of layers"},
           {"uns_keys", "VARCHAR[]", "keys of uns"},
           {"has_raw", "BOOLEAN", "whether raw/X exists"},
           {"obs_request", "VARCHAR", "the --obs request: comma-joined column names, or '*' for every categorical column"},
           {"obs_columns_catalogued", "VARCHAR[]", "obs columns whose categories are in obs_categories"},
           {"obs_columns_missing", "VARCHAR[]", "requested obs columns this file lacks"},
           {"obs_columns_skipped", "VARCHAR[]", "requested obs columns not counted (more distinct values than --max-categories)"},
           {"qc", "BOOLEAN", "whether cell_qc holds this file's distributions"},
           {"qc_matrix", "VARCHAR", "matrix the QC read ('layers/counts', 'raw/X' or 'X'); NULL without --qc"},
           {"bytes_fetched", "BIGINT", "bytes transferred to catalogue a remote file (0 for local files)"},
           {"requests", "BIGINT", "HTTP requests made for a remote file (0 for local files)"},
           {"seconds", "DOUBLE", "wall time spent on this file"},
           {"catalogued_at", "VARCHAR", "UTC time the row was written (ISO 8601)"},
           {"celltyper_version", "VARCHAR", "version of celltyper that wrote the row"},
       }},
      {"obs_categories",
       {
           {"file", "VARCHAR", "files.path"},
           {"column", "VARCHAR", "obs column"},
           {"category", "VARCHAR", "category (value as text; NULL = missing value)"},
           {"n_cells", "BIGINT", "cells with this category in this file"},
       }},
      {"cell_qc",
       {
           {"file", "VARCHAR", "files.path"},
           {"matrix", "VARCHAR", "matrix read: 'layers/counts', 'raw/X' or 'X'"},
           {"metric", "VARCHAR", "'total_counts' (sum of a cell's values) or 'genes_detected' (values > 0)"},
           {"n_cells", "BIGINT", "cells"},
           {"min", "DOUBLE", "smallest value"},
           {"q05", "DOUBLE", "5th percentile (linear interpolation, as numpy's default)"},
           {"q25", "DOUBLE", "25th percentile"},
           {"median", "DOUBLE", "50th percentile"},
           {"q75", "DOUBLE", "75th percentile"},
           {"q95", "DOUBLE", "95th percentile"},
           {"max", "DOUBLE", "largest value"},
           {"mean", "DOUBLE", "mean"},
           {"histogram_lower", "DOUBLE[]", "lower edges of the histogram bins: 0, 1, 2, 4, ..., 2^30 (fixed for every file)"},
           {"histogram_counts", "BIGINT[]", "cells per bin: bin 0 holds [0, 1), bin k holds [2^(k-1), 2^k), the last bin is open"},
       }},
  };
  return schema;
}

}  // namespace celltyper
