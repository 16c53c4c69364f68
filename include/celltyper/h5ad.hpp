/// @file h5ad.hpp
/// AnnData `.h5ad` files through the HDF5 C API.
///
/// Reads the anndata >= 0.8 on-disk encoding (groups and datasets tagged with `encoding-type`
/// / `encoding-version` attributes: csr_matrix, csc_matrix, array, dataframe, categorical,
/// string-array, nullable-integer, nullable-boolean) and the anndata 0.7 layout (sparse groups
/// tagged `h5sparse_format`, categoricals as code datasets whose `categories` attribute
/// references `__categories/<column>`). Spec: https://anndata.readthedocs.io/en/latest/fileformat-prose.html
///
/// Writing always goes through an `OutputFile` (celltyper/output_file.hpp): a temporary file beside
/// the target that is renamed into place when complete, so a crash never leaves a half-written
/// output, and an output that is the input is refused unless in-place output is asked for.
#pragma once

#include <celltyper/dataframe.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/remote.hpp>
#include <celltyper/sparse.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace celltyper {

class OutputFile;

/// A row-major dense float32 matrix [rows x cols] (obsm entries, embeddings, probabilities).
struct DenseMatrix {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<float> values;  ///< rows * cols, row-major
  [[nodiscard]] float at(std::int64_t r, std::int64_t c) const { return values[static_cast<std::size_t>(r * cols + c)]; }
  [[nodiscard]] float* row(std::int64_t r) { return values.data() + r * cols; }
  [[nodiscard]] const float* row(std::int64_t r) const { return values.data() + r * cols; }
};

/// Options for opening an h5ad file.
struct H5adOpenOptions {
  /// Bytes of HDF5 chunk cache per matrix dataset (compressed, chunked files).
  std::size_t chunk_cache_bytes = std::size_t{32} << 20;
  /// Bytes of cells a matrix stored by column (CSC) gathers per pass over its values: the rows
  /// of the blocks read next, or every row when the matrix fits (read once, then sliced).
  std::size_t csc_gather_bytes = std::size_t{256} << 20;
  /// Threads that read and decompress matrix chunks (0 = all hardware threads).
  int num_threads = 0;
  /// Read sparse matrix chunks directly (parallel pread + libdeflate) instead of through
  /// HDF5's single-threaded filter pipeline, where the layout allows it. Results are identical.
  bool direct_io = true;
  /// How http(s):// and s3:// files are read (block size, cache, timeouts, retries);
  /// unset = `RemoteOptions::from_environment()`.
  std::optional<RemoteOptions> remote;
};

/// An open `.h5ad` file (read-only): a local path, or an http(s):// or s3:// URL read with
/// Range requests (see celltyper/remote.hpp).
class H5adFile final : public Dataset {
 public:
  [[nodiscard]] const H5adFile* h5ad_file() const override { return this; }
  /// Opens and validates the top level: the file is HDF5, X (or raw/X) exists with a known
  /// encoding, shapes of X / obs / var agree, and sparse `indptr` is monotone from 0 to nnz.
  explicit H5adFile(const std::string& path, const H5adOpenOptions& options = {});
  ~H5adFile() override;
  H5adFile(const H5adFile&) = delete;
  H5adFile& operator=(const H5adFile&) = delete;

  [[nodiscard]] const std::string& path() const override;
  [[nodiscard]] std::string format() const override { return "h5ad"; }
  [[nodiscard]] std::int64_t n_obs() const override;
  [[nodiscard]] std::int64_t n_vars() const override;
  [[nodiscard]] DataFrame read_obs() const override;
  [[nodiscard]] DataFrame read_var() const override;
  [[nodiscard]] DataFrame read_var_of(const std::string& source) const override;
  [[nodiscard]] std::vector<std::string> matrix_sources() const override;
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override;
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override;

  /// Reads only the listed obs columns (and the index) from the file.
  [[nodiscard]] DataFrame read_obs_columns(const std::vector<std::string>& names) const override;
  /// Column names of obs in order, without reading them (a MuData file: its modality's, then global_obs_columns()).
  [[nodiscard]] std::vector<std::string> obs_column_names() const override;
  /// A MuData file's columns of its own /obs that its modality's obs lacks: (name offered, name
  /// stored), a column prefixed with the modality ('rna:celltype') offered without it, other
  /// modalities' left.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> global_obs_columns() const;
  /// Column names of var in order, without reading them.
  [[nodiscard]] std::vector<std::string> var_column_names() const;
  /// Keys of a mapping group ("obsm", "varm", "layers", "uns", "obsp").
  [[nodiscard]] std::vector<std::string> keys(const std::string& group) const;
  /// Read `obsm/<name>` (dense) as float32.
  [[nodiscard]] DenseMatrix read_obsm(const std::string& name) const;
  /// The string stored at `uns/<name>` (a scalar string dataset), or nullopt when absent.
  [[nodiscard]] std::optional<std::string> read_uns_string(const std::string& name) const;
  /// anndata encoding version of the root group ("" for files before anndata 0.8).
  [[nodiscard]] std::string encoding_version() const;
  /// Transfer counters of a remote file so far (all zero for a local file).
  [[nodiscard]] RemoteStats remote_stats() const;
  /// Size of the file in bytes (local or remote).
  [[nodiscard]] std::uint64_t file_bytes() const;
  /// A MuData file's (.h5mu) modality read as this dataset ("rna": its X, obs and var are
  /// /mod/rna's), or "" for an .h5ad.
  [[nodiscard]] const std::string& modality() const;
  /// The group holding the AnnData read: "" for an .h5ad, "mod/rna" for a MuData file's modality.
  [[nodiscard]] std::string group() const;
  /// For a MuData file, which modality was read (said as a note).
  [[nodiscard]] std::string reading_note() const override;

 private:
  void open_top_level();
  void open_modality();
  /// Columns of the data frame group `frame` of the AnnData (of a MuData file's own root with `file_root`).
  [[nodiscard]] std::vector<std::string> frame_column_names(const std::string& frame, bool file_root = false) const;
  /// global_obs_columns() beside the modality's obs columns `own` (already listed).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> global_obs_columns(const std::vector<std::string>& own) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What to write for X in a new file.
struct H5adWriteOptions {
  int gzip_level = 0;                    ///< 0 = no compression, 1-9 = gzip level
  std::int64_t chunk_values = 1 << 16;   ///< chunk size (values) of compressed/extendible datasets
  bool x_as_float64 = false;             ///< store X values as float64 rather than float32
};

/// Writes a new h5ad file: X (CSR, streamed in row blocks), obs, var, obsm.
/// The file appears at `path` only when `commit()` succeeds.
class H5adWriter {
 public:
  H5adWriter(std::string path, std::int64_t n_obs, std::int64_t n_vars, H5adWriteOptions options = {});
  ~H5adWriter();  ///< removes the temporary file when `commit()` was not reached
  H5adWriter(const H5adWriter&) = delete;
  H5adWriter& operator=(const H5adWriter&) = delete;

  /// Append the next rows of X (blocks must arrive in row order and cover all rows).
  void append_rows(const CsrBlock& block);
  void append_rows(const CsrBlockF64& block);
  /// Write X as a dense array instead (row-major n_obs x n_vars).
  void write_dense_x(const std::vector<float>& values);
  void write_obs(const DataFrame& obs);
  void write_var(const DataFrame& var);
  void write_obsm(const std::string& name, const DenseMatrix& matrix);
  /// Write a string to uns/<name>.
  void write_uns_string(const std::string& name, const std::string& value);
  /// Write a list of strings to uns/<name> (anndata's string-array).
  void write_uns_string_array(const std::string& name, const std::vector<std::string>& values);
  /// Finish X, close and rename the temporary file to the target path.
  void commit();
  /// `commit` without the rename: finish X and close the file; commit `output()` afterwards, alone
  /// or with other files (`commit_together`).
  void finish();
  /// The output being written.
  [[nodiscard]] OutputFile& output();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Additions to an existing h5ad file.
struct H5adAdditions {
  std::vector<Column> obs_columns;                ///< added to obs, replacing same-named columns
  /// obs columns of the input removed first (null: none), e.g. an earlier annotation's columns
  /// this one does not write: its top-k or votes would sit beside the new labels.
  std::function<bool(const std::string&)> drop_obs_column;
  std::map<std::string, DenseMatrix> obsm;        ///< added to obsm, replacing same-named entries
  std::map<std::string, std::string> uns_strings; ///< added to uns
  std::map<std::string, std::vector<std::string>> uns_string_arrays;  ///< added to uns (anndata string-array: a list in Python)
};

/// Copy `input` to `output` with `additions` applied, through a temporary file renamed into
/// place. `output == input` is allowed only with `in_place` (the input is then rewritten via
/// a temporary copy, so a failure leaves it untouched).
void write_h5ad_with_additions(const std::string& input, const std::string& output,
                               const H5adAdditions& additions, bool in_place = false);

/// Write `dataset` (its X, obs and var: a Cell Ranger or text input, read into AnnData's layout)
/// into `writer` (made for dataset.n_obs() x dataset.n_vars(); gzip_level 4 suits) with
/// `additions` applied (obs columns replacing same-named ones, obsm, uns), then `finish` it:
/// commit `writer.output()` alone or with other files.
void write_dataset_h5ad(const Dataset& dataset, H5adWriter& writer, const H5adAdditions& additions);

/// `write_h5ad_with_additions` in two steps, so the copy overlaps other work: the constructor
/// checks the target and starts copying `input` (kernel-side, on a background thread) to a
/// temporary file beside `output`; `commit` waits for the copy, applies the additions and renames
/// it into place. Destroyed without a commit (e.g. after an error), it stops the copy and removes
/// the temporary file.
class H5adCopy {
 public:
  H5adCopy(const std::string& input, const std::string& output, bool in_place = false);
  ~H5adCopy();
  H5adCopy(const H5adCopy&) = delete;
  H5adCopy& operator=(const H5adCopy&) = delete;

  [[nodiscard]] std::int64_t n_obs() const;
  /// Throws InputError when the additions do not fit the input's cells, IoError when the copy
  /// or the write failed (the temporary file is then removed, `output` untouched).
  void commit(const H5adAdditions& additions);
  /// `commit` without the final rename: waits for the copy, applies the additions and closes the
  /// temporary file; commit `output()` afterwards, alone or with other files (`commit_together`).
  void prepare(const H5adAdditions& additions);
  /// The output being written (its temporary file holds the copy).
  [[nodiscard]] OutputFile& output();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Streams a new dense obsm matrix (float32, n_obs x cols) into a copy of an existing h5ad,
/// block by block, so that the matrix never has to fit in memory. The copy is renamed onto
/// `output` by `commit`; destroying the stream before that removes it.
class H5adObsmStream {
 public:
  H5adObsmStream(const std::string& input, const std::string& output, const std::string& key, std::int64_t cols,
                 bool in_place = false);
  ~H5adObsmStream();
  H5adObsmStream(const H5adObsmStream&) = delete;
  H5adObsmStream& operator=(const H5adObsmStream&) = delete;
  [[nodiscard]] std::int64_t n_obs() const;
  /// Write rows [first_row, first_row + n_rows) of the matrix (row-major values).
  void write_rows(std::int64_t first_row, std::int64_t n_rows, const float* values);
  /// Apply `additions` (obs columns, more obsm, uns strings), close and rename into place.
  void commit(const H5adAdditions& additions = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace celltyper
