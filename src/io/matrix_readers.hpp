/// Internal: MatrixReader implementations over HDF5 datasets (CSR / CSC / dense) and over
/// memory (for text formats such as Cell Ranger MTX).
#pragma once

#include <celltyper/dataset.hpp>
#include <celltyper/remote.hpp>

#include "io/hdf5_util.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace celltyper::detail {

/// Where the parts of a stored sparse matrix live inside an HDF5 file.
struct SparseLocation {
  std::string file;           ///< file path, for messages
  std::string group;          ///< e.g. "X", "raw/X", "matrix"
  MatrixEncoding encoding;    ///< kCsr (indptr per row) or kCsc (indptr per column)
  std::int64_t n_rows = 0;    ///< cells
  std::int64_t n_cols = 0;    ///< genes
  int num_threads = 0;        ///< threads for direct reads (0 = all hardware threads)
  bool direct_io = true;      ///< bypass HDF5's filter pipeline where supported (see direct_read.hpp)
  std::shared_ptr<RemoteFile> remote;  ///< set for http(s):// / s3:// files: direct reads go through it
  std::size_t csc_gather_bytes = std::size_t{256} << 20;  ///< kCsc: H5adOpenOptions::csc_gather_bytes
};

/// Open a sparse matrix stored as data/indices/indptr datasets under `location.group`,
/// validating indptr (length, start 0, monotone, end == nnz). `file` must stay open while the
/// reader lives (the reader keeps its own references to the datasets).
std::unique_ptr<MatrixReader> open_sparse_reader(hid_t file, const SparseLocation& location, MatrixInfo info,
                                                 std::size_t chunk_cache_bytes);

/// Open a dense 2-D dataset (cells x genes) at `path`.
std::unique_ptr<MatrixReader> open_dense_reader(hid_t file, const std::string& file_name, const std::string& path,
                                                MatrixInfo info, std::size_t chunk_cache_bytes);

/// Open a dense 2-D dataset stored genes x cells at `path` (loom): rows of the reader are the
/// dataset's columns. `info` describes the cells x genes view (n_rows = cells), its `chunks` the
/// stored chunk shape (genes x cells).
std::unique_ptr<MatrixReader> open_dense_columns_reader(hid_t file, const std::string& file_name, const std::string& path, MatrixInfo info);

/// A CSR matrix held in memory (copied once into a shared block).
std::unique_ptr<MatrixReader> make_memory_reader(CsrBlockF64 matrix, MatrixInfo info);
/// A reader over a CSR matrix shared with its owner (never copied).
std::unique_ptr<MatrixReader> make_memory_reader(std::shared_ptr<const CsrBlockF64> matrix, MatrixInfo info);

/// A line of a text input longer than this is refused (a one-line gzip bomb decompressed whole;
/// the widest real table, a million cells' names or values, is a few tens of MB a line).
inline constexpr std::size_t kMaxTextLineBytes = std::size_t{256} << 20;

/// Whole contents of a plain or gzip-compressed text file (InputError when it cannot be read, a
/// line exceeds kMaxTextLineBytes, or the text exceeds `max_bytes`, which the caller derives from
/// what the file's header says it holds). `head_only`: stop after `max_bytes` quietly (a header
/// to check before the rest is decompressed).
std::string read_text_file(const std::filesystem::path& path, std::size_t max_bytes = std::string::npos, bool head_only = false);

/// Check column indices of a block: each in [0, n_cols), none twice in a row. A row stored out
/// of column order is sorted in place (values follow). Throws InputError naming the file,
/// dataset and the (global) row of the first offending value.
template <typename Value>
void check_block_indices(CsrRows<Value>& block, const std::string& file, const std::string& dataset);

/// Throws InputError ("NAME: rows A..B requested from N rows"; no prefix when `name` is empty)
/// unless 0 <= first, 0 <= count and first + count <= n_rows: the check of every read_rows.
void check_row_range(std::int64_t first, std::int64_t count, std::int64_t n_rows, const std::string& name = {});

}  // namespace celltyper::detail
