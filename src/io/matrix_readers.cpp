#include "io/matrix_readers.hpp"
#include "io/hdf5_open.hpp"

#include "io/direct_read.hpp"
#include "huge_pages.hpp"

#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <cmath>
#include <future>
#include <numeric>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace celltyper {

const char* to_string(MatrixEncoding encoding) {
  switch (encoding) {
    case MatrixEncoding::kCsr: return "csr_matrix";
    case MatrixEncoding::kCsc: return "csc_matrix";
    case MatrixEncoding::kDense: return "dense";
  }
  return "unknown";
}

namespace detail {

void check_row_range(std::int64_t first, std::int64_t count, std::int64_t n_rows, const std::string& name) {
  if (first < 0 || count < 0 || first + count > n_rows) {
    throw InputError(fmt::format("{}{}rows {}..{} requested from {} rows", name, name.empty() ? "" : ": ", first, first + count, n_rows));
  }
}

}  // namespace detail

std::vector<RowRange> MatrixReader::plan_blocks(std::size_t memory_limit_bytes) {
  const std::vector<std::int64_t> per_row = row_nnz();
  const std::size_t per_value = bytes_per_value();
  const std::size_t per_row_overhead = sizeof(std::int64_t);
  std::vector<RowRange> blocks;
  std::int64_t begin = 0;
  std::size_t bytes = 0;
  const auto n = static_cast<std::int64_t>(per_row.size());
  for (std::int64_t row = 0; row < n; ++row) {
    const std::size_t row_bytes = static_cast<std::size_t>(per_row[static_cast<std::size_t>(row)]) * per_value + per_row_overhead;
    if (row > begin && bytes + row_bytes > memory_limit_bytes) {
      blocks.push_back({begin, row});
      begin = row;
      bytes = 0;
    }
    bytes += row_bytes;
  }
  if (n > begin) blocks.push_back({begin, n});
  return blocks;
}

namespace {

/// InputError at the first NaN or infinite value of `block`, naming its cell and gene column.
void refuse_non_finite(const CsrBlock& block, const std::string& source) {
  const float* values = block.values.data();
  const std::size_t n = block.values.size();
  bool finite = true;
  for (std::size_t k = 0; k < n; ++k) finite &= std::isfinite(values[k]);  // branch-free: vectorised
  if (finite) return;
  for (std::int64_t r = 0; r < block.n_rows; ++r) {
    for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      const float value = values[static_cast<std::size_t>(k)];
      if (std::isfinite(value)) continue;
      throw InputError(fmt::format("{}: cell {} has a non-finite value ({}) at gene column {}: NaN and infinite values are no expression; "
                                   "fix or filter the matrix first (e.g. X.data[~np.isfinite(X.data)] = 0 in Python), or read another "
                                   "matrix with --layer",
                                   source, block.first_row + r, value, block.indices[static_cast<std::size_t>(k)]));
    }
  }
}

}  // namespace

BlockStreamOptions stream_options(const Dataset& dataset, const std::string& matrix, std::size_t memory_limit_bytes) {
  BlockStreamOptions options;
  options.memory_limit_bytes = memory_limit_bytes;
  options.what = fmt::format("{}: {}", dataset.path(), matrix);
  return options;
}

void for_each_block(MatrixReader& reader, const BlockStreamOptions& options,
                    const std::function<void(const CsrBlock&)>& callback) {
  // (no read-ahead thread when the process keeps to one thread: --threads 1)
  const bool prefetch = options.prefetch && resolve_threads(0) > 1;
  const std::size_t limit = prefetch ? options.memory_limit_bytes / 2 : options.memory_limit_bytes;
  std::vector<RowRange> blocks = reader.plan_blocks(std::max<std::size_t>(limit, 1));
  if (options.max_rows >= 0) {
    while (!blocks.empty() && blocks.back().begin >= options.max_rows) blocks.pop_back();
    if (!blocks.empty()) blocks.back().end = std::min(blocks.back().end, options.max_rows);
  }
  if (!options.rows.empty()) {
    std::vector<RowRange> clipped;
    for (const RowRange& range : options.rows) {
      for (const RowRange& block : blocks) {
        const RowRange part{std::max(block.begin, range.begin), std::min(block.end, range.end)};
        if (part.begin < part.end) clipped.push_back(part);
      }
    }
    blocks = std::move(clipped);
  }
  if (blocks.empty()) return;
  reader.expect_reads(blocks);
  CsrBlock current;
  CsrBlock next;
  reader.read_rows(blocks[0].begin, blocks[0].size(), current);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const bool has_next = i + 1 < blocks.size();
    std::future<void> pending;
    if (has_next && prefetch) {
      pending = std::async(std::launch::async, [&reader, &next, range = blocks[i + 1]] {
        reader.read_rows(range.begin, range.size(), next);
      });
    }
    try {
      check_cancelled();
      if (options.refuse_non_finite) refuse_non_finite(current, options.what.empty() ? reader.info().source : options.what);
      callback(current);
    } catch (...) {
      if (pending.valid()) pending.wait();
      throw;
    }
    if (pending.valid()) {
      pending.get();
    } else if (has_next) {
      reader.read_rows(blocks[i + 1].begin, blocks[i + 1].size(), next);
    }
    std::swap(current, next);
  }
}

namespace detail {

namespace {

struct ColumnScan {
  bool outside = false;    ///< a column outside [0, limit)
  bool unordered = false;  ///< a column not above the one before it
};

/// One branch-free pass over a row's columns (16 at a time with AVX-512, 8 with AVX2): a negative
/// column read as unsigned is above any limit.
ColumnScan scan_columns(const std::int32_t* columns, std::size_t n, std::uint32_t limit) {
  ColumnScan scan;
  if (n == 0) return scan;
  std::uint32_t outside = static_cast<std::uint32_t>(columns[0]) >= limit ? 1U : 0U;
  std::uint32_t unordered = 0;
  std::size_t k = 1;
#ifdef __AVX512F__
  const __m512i bound = _mm512_set1_epi32(static_cast<int>(limit));
  __mmask16 outside_mask = 0;
  __mmask16 unordered_mask = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512i here = _mm512_loadu_si512(columns + k);
    const __m512i before = _mm512_loadu_si512(columns + k - 1);
    outside_mask |= _mm512_cmpge_epu32_mask(here, bound);
    unordered_mask |= _mm512_cmple_epi32_mask(here, before);
  }
  outside |= outside_mask != 0 ? 1U : 0U;
  unordered |= unordered_mask != 0 ? 1U : 0U;
#elif defined(__AVX2__)
  // 8 at a time: AVX2 has no unsigned compare, but x >= limit exactly when max(x, limit) == x.
  const __m256i bound = _mm256_set1_epi32(static_cast<int>(limit));
  __m256i outside_lanes = _mm256_setzero_si256();
  __m256i ordered_lanes = _mm256_set1_epi32(-1);
  for (; k + 8 <= n; k += 8) {
    const __m256i here = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(columns + k));
    const __m256i before = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(columns + k - 1));
    outside_lanes = _mm256_or_si256(outside_lanes, _mm256_cmpeq_epi32(_mm256_max_epu32(here, bound), here));
    ordered_lanes = _mm256_and_si256(ordered_lanes, _mm256_cmpgt_epi32(here, before));
  }
  outside |= _mm256_movemask_epi8(outside_lanes) != 0 ? 1U : 0U;
  unordered |= _mm256_movemask_epi8(ordered_lanes) != -1 ? 1U : 0U;
#endif
  for (; k < n; ++k) {
    outside |= static_cast<std::uint32_t>(columns[k]) >= limit ? 1U : 0U;
    unordered |= columns[k] <= columns[k - 1] ? 1U : 0U;
  }
  scan.outside = outside != 0;
  scan.unordered = unordered != 0;
  return scan;
}

/// InputError: a sparse matrix stores an entry twice.
[[noreturn]] void throw_duplicate_entry(const std::string& file, const std::string& dataset, std::int64_t row, std::int64_t column) {
  throw InputError(fmt::format("{}: {} stores the entry at row {}, column {} twice (a sparse matrix with duplicate entries; "
                               "they would be summed silently: merge them first, e.g. with scipy's X.sum_duplicates())",
                               file, dataset, row, column));
}

}  // namespace

template <typename Value>
void check_block_indices(CsrRows<Value>& block, const std::string& file, const std::string& dataset) {
  // Valid columns are below n_cols and below 2^31 (int32): a negative one read as unsigned is not.
  const auto n_cols = static_cast<std::uint32_t>(std::min<std::int64_t>(block.n_cols, std::int64_t{1} << 31));
  std::vector<std::pair<std::int32_t, Value>> entries;
  for (std::int64_t row = 0; row < block.n_rows; ++row) {
    const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(row)]);
    const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(row) + 1]);
    const std::int32_t* columns = block.indices.data();
    const ColumnScan scan = scan_columns(columns + begin, end - begin, n_cols);
    if (scan.outside) {
      for (std::size_t k = begin; k < end; ++k) {
        if (static_cast<std::uint32_t>(columns[k]) >= n_cols) {
          throw InputError(fmt::format("{}: {}/indices has value {} at row {}, outside [0, {})", file, dataset, columns[k],
                                       block.first_row + row, block.n_cols));
        }
      }
    }
    if (!scan.unordered) continue;
    // Rare: sort the row by column (results then do not depend on the stored order) and refuse
    // a column stored twice, which every sum over the row would silently add up.
    entries.clear();
    for (std::size_t k = begin; k < end; ++k) entries.emplace_back(block.indices[k], block.values[k]);
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i > 0 && entries[i].first == entries[i - 1].first) throw_duplicate_entry(file, dataset, block.first_row + row, entries[i].first);
      block.indices[begin + i] = entries[i].first;
      block.values[begin + i] = entries[i].second;
    }
  }
}
template void check_block_indices<float>(CsrRows<float>&, const std::string&, const std::string&);
template void check_block_indices<double>(CsrRows<double>&, const std::string&, const std::string&);

namespace {

using h5::Handle;

/// Bytes of one (decoded) chunk of `dataset`, 0 when it is not chunked.
std::size_t chunk_bytes(hid_t dataset) {
  const Handle create(H5Dget_create_plist(dataset));
  if (!create || H5Pget_layout(create.get()) != H5D_CHUNKED) return 0;
  const int rank = H5Pget_chunk(create.get(), 0, nullptr);
  if (rank <= 0 || rank > 8) return 0;
  std::array<hsize_t, 8> dims{};
  if (H5Pget_chunk(create.get(), rank, dims.data()) != rank) return 0;
  const Handle type(H5Dget_type(dataset));
  std::size_t bytes = type ? H5Tget_size(type.get()) : 0;
  for (int d = 0; d < rank; ++d) bytes *= static_cast<std::size_t>(dims[static_cast<std::size_t>(d)]);
  return bytes;
}

/// `path` opened with a chunk cache of about `cache_bytes`. HDF5 1.10 keeps a decoded chunk in
/// each of the cache's hash slots whatever its byte limit (a gzip-chunked dense X of 50,000 cells
/// read in scattered runs held 12,421 chunks of 165 KB: 2 GB): the slots are as many as chunks
/// fit in `cache_bytes` (a few more slots than chunks a block of rows touches, so chunks shared by
/// consecutive blocks are decoded once), 12,421 at most.
Handle open_with_cache(hid_t file, const std::string& path, const std::string& file_name, std::size_t cache_bytes) {
  std::size_t slots = 12421;
  {
    const Handle probe = h5::open_dataset(file, path, file_name, H5P_DEFAULT);
    if (const std::size_t chunk = chunk_bytes(probe.get()); chunk > 0) slots = std::clamp<std::size_t>(cache_bytes / chunk, 1, slots);
  }
  Handle access(H5Pcreate(H5P_DATASET_ACCESS));
  H5Pset_chunk_cache(access.get(), slots, cache_bytes, 1.0);
  return h5::open_dataset(file, path, file_name, access.get());
}

std::vector<std::int64_t> read_and_check_indptr(hid_t dataset, const SparseLocation& where, std::int64_t expected_length,
                                                std::int64_t nnz) {
  const std::string name = where.group + "/indptr";
  const std::int64_t length = h5::dataset_length(dataset);
  const char* major = where.encoding == MatrixEncoding::kCsr ? "rows" : "columns";
  if (length != expected_length) {
    throw InputError(fmt::format("{}: {} has {} entries but the shape ({} x {}) needs {} ({} + 1): shape mismatch",
                                 where.file, name, length, where.n_rows, where.n_cols, expected_length, major));
  }
  std::vector<std::int64_t> indptr = h5::read_all_1d<std::int64_t>(dataset);
  if (indptr.front() != 0) throw InputError(fmt::format("{}: {}[0] is {}, expected 0", where.file, name, indptr.front()));
  for (std::size_t i = 1; i < indptr.size(); ++i) {
    if (indptr[i] < indptr[i - 1]) {
      throw InputError(fmt::format("{}: {} is not monotone at {} {} ({} after {})", where.file, name,
                                   where.encoding == MatrixEncoding::kCsr ? "row" : "column", i - 1, indptr[i], indptr[i - 1]));
    }
  }
  if (indptr.back() != nnz) {
    throw InputError(fmt::format("{}: {} ends at {} but {}/data has {} values", where.file, name, indptr.back(), where.group, nnz));
  }
  return indptr;
}

/// Read a slice of a 1-D dataset: directly (parallel pread + inflate) when possible, else HDF5.
template <typename T>
void read_slice(hid_t dataset, const DirectDataset* direct, std::int64_t offset, std::int64_t count, T* out) {
  if (direct != nullptr) {
    direct->read(offset, count, out);
    return;
  }
  auto lock = h5::hdf5_lock();
  h5::with_remote_errors([&] { h5::read_1d(dataset, offset, count, out); });
}

/// Rows stored compressed by row: a block is one contiguous slice of data/indices.
class CsrDatasetReader final : public MatrixReader {
 public:
  CsrDatasetReader(hid_t file, SparseLocation where, MatrixInfo info, std::size_t cache_bytes)
      : where_(std::move(where)), info_(std::move(info)) {
    data_ = open_with_cache(file, where_.group + "/data", where_.file, cache_bytes);
    indices_ = open_with_cache(file, where_.group + "/indices", where_.file, cache_bytes);
    Handle indptr = h5::open_dataset(file, where_.group + "/indptr", where_.file);
    const std::int64_t nnz = h5::dataset_length(data_.get());
    if (h5::dataset_length(indices_.get()) != nnz) {
      throw InputError(fmt::format("{}: {}/indices has {} values but {}/data has {}", where_.file, where_.group,
                                   h5::dataset_length(indices_.get()), where_.group, nnz));
    }
    indptr_ = read_and_check_indptr(indptr.get(), where_, where_.n_rows + 1, nnz);
    if (where_.direct_io) {
      direct_data_ = DirectDataset::try_open(data_.get(), where_.file, where_.num_threads, where_.remote);
      direct_indices_ = DirectDataset::try_open(indices_.get(), where_.file, where_.num_threads, where_.remote);
    }
    value_bytes_ = H5Tget_size(Handle(H5Dget_type(data_.get())).get());
    index_bytes_ = H5Tget_size(Handle(H5Dget_type(indices_.get())).get());
  }

  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { read(first, count, out); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { read(first, count, out); }
  std::vector<std::int64_t> row_nnz() override {
    std::vector<std::int64_t> counts(indptr_.size() - 1);
    for (std::size_t i = 0; i + 1 < indptr_.size(); ++i) counts[i] = indptr_[i + 1] - indptr_[i];
    return counts;
  }
  std::size_t bytes_per_value() const override {
    // decoded block (int32 index + float value) + HDF5 conversion staging when types differ
    return 8 + (value_bytes_ != 4 ? value_bytes_ : 0) + (index_bytes_ != 4 ? index_bytes_ : 0);
  }

 private:
  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    check_row_range(first, count, where_.n_rows, where_.file);
    out.reset(first, count, where_.n_cols);
    const std::int64_t begin = indptr_[static_cast<std::size_t>(first)];
    const std::int64_t end = indptr_[static_cast<std::size_t>(first + count)];
    out.indptr.resize(static_cast<std::size_t>(count) + 1);
    for (std::int64_t r = 0; r <= count; ++r) out.indptr[static_cast<std::size_t>(r)] = indptr_[static_cast<std::size_t>(first + r)] - begin;
    const auto nnz = static_cast<std::size_t>(end - begin);
    detail::resize_for_overwrite(out.indices, nnz);
    detail::resize_for_overwrite(out.values, nnz);
    read_slice(indices_.get(), direct_indices_.get(), begin, end - begin, out.indices.data());
    read_slice(data_.get(), direct_data_.get(), begin, end - begin, out.values.data());
    check_block_indices(out, where_.file, where_.group);
  }

  SparseLocation where_;
  MatrixInfo info_;
  Handle data_;
  Handle indices_;
  std::unique_ptr<DirectDataset> direct_data_;
  std::unique_ptr<DirectDataset> direct_indices_;
  std::vector<std::int64_t> indptr_;
  std::size_t value_bytes_ = 4;
  std::size_t index_bytes_ = 4;
};

/// Columns stored compressed (CSC): rows are gathered by streaming through all columns in
/// slabs, keeping the values of the rows wanted. One pass gathers a window of rows whose values
/// fit the cache (SparseLocation::csc_gather_bytes): the whole matrix when it fits (transposed once, later reads
/// slice it), else the blocks the caller said it reads next (`expect_reads`: for_each_block's
/// blocks, a scan's scattered ranges) or the rows following the one asked, so that a stream
/// takes (values x 12 bytes / that cache) passes over the file rather than one per block.
class CscDatasetReader final : public MatrixReader {
 public:
  static constexpr std::int64_t kSlabValues = std::int64_t{1} << 22;
  static constexpr std::size_t kCachedValueBytes = sizeof(std::int32_t) + sizeof(double);  // (CsrBlockF64's column and value)

  CscDatasetReader(hid_t file, SparseLocation where, MatrixInfo info, std::size_t cache_bytes)
      : where_(std::move(where)), info_(std::move(info)) {
    data_ = open_with_cache(file, where_.group + "/data", where_.file, cache_bytes);
    indices_ = open_with_cache(file, where_.group + "/indices", where_.file, cache_bytes);
    Handle indptr = h5::open_dataset(file, where_.group + "/indptr", where_.file);
    nnz_ = h5::dataset_length(data_.get());
    if (h5::dataset_length(indices_.get()) != nnz_) {
      throw InputError(fmt::format("{}: {}/indices has {} values but {}/data has {}", where_.file, where_.group,
                                   h5::dataset_length(indices_.get()), where_.group, nnz_));
    }
    col_ptr_ = read_and_check_indptr(indptr.get(), where_, where_.n_cols + 1, nnz_);
    if (where_.direct_io) {
      direct_data_ = DirectDataset::try_open(data_.get(), where_.file, where_.num_threads, where_.remote);
      direct_indices_ = DirectDataset::try_open(indices_.get(), where_.file, where_.num_threads, where_.remote);
    }
    index_bytes_ = H5Tget_size(Handle(H5Dget_type(indices_.get())).get());
  }

  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { read(first, count, out); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { read(first, count, out); }
  std::size_t bytes_per_value() const override { return 16; }
  void expect_reads(const std::vector<RowRange>& blocks) override {
    expected_.clear();
    next_expected_ = 0;
    for (const RowRange& block : blocks) {  // (a range outside the matrix is read_rows' to refuse)
      if (block.begin >= 0 && block.begin < block.end && block.end <= where_.n_rows) expected_.push_back(block);
    }
  }

  std::vector<std::int64_t> row_nnz() override {
    if (!row_counts_.empty() || where_.n_rows == 0) return row_counts_;
    row_counts_ = index_bytes_ == sizeof(std::int32_t) ? count_rows<std::int32_t>() : count_rows<std::int64_t>();
    return row_counts_;
  }

 private:
  [[noreturn]] void throw_bad_row(std::int64_t position, std::int64_t row) const {
    const auto column = std::upper_bound(col_ptr_.begin(), col_ptr_.end(), position) - col_ptr_.begin() - 1;
    throw InputError(fmt::format("{}: {}/indices has row index {} in column {}, outside [0, {})", where_.file, where_.group,
                                 row, column, where_.n_rows));
  }

  [[nodiscard]] std::size_t bytes_of(const RowRange& range) const {
    std::int64_t values = 0;
    for (std::int64_t row = range.begin; row < range.end; ++row) values += row_counts_[static_cast<std::size_t>(row)];
    return static_cast<std::size_t>(values) * kCachedValueBytes + static_cast<std::size_t>(range.size()) * sizeof(std::int64_t);
  }

  /// The disjoint row ranges one pass gathers for a read of `wanted`: every row when the matrix
  /// fits the cache; else `wanted`, then the expected blocks after it (or, when it is none of
  /// them, the rows after it) while they fit.
  std::vector<RowRange> window_for(const RowRange& wanted) {
    (void)row_nnz();
    if (bytes_of({0, where_.n_rows}) <= where_.csc_gather_bytes) return {{0, where_.n_rows}};
    std::vector<RowRange> window{wanted};
    std::vector<std::uint8_t> taken(static_cast<std::size_t>(where_.n_rows), 0);
    std::fill(taken.begin() + wanted.begin, taken.begin() + wanted.end, 1);
    std::size_t bytes = bytes_of(wanted);
    const auto add = [&](const RowRange& range) {  // false when the cache is full
      if (std::any_of(taken.begin() + range.begin, taken.begin() + range.end, [](std::uint8_t row) { return row != 0; })) return true;
      const std::size_t more = bytes_of(range);
      if (bytes + more > where_.csc_gather_bytes) return false;
      bytes += more;
      std::fill(taken.begin() + range.begin, taken.begin() + range.end, 1);
      if (range.begin == window.back().end) {
        window.back().end = range.end;
      } else {
        window.push_back(range);
      }
      return true;
    };
    const auto holds_wanted = [&wanted](const RowRange& block) { return block.begin <= wanted.begin && wanted.end <= block.end; };
    auto block = std::find_if(expected_.begin() + static_cast<std::ptrdiff_t>(std::min(next_expected_, expected_.size())), expected_.end(), holds_wanted);
    if (block == expected_.end()) block = std::find_if(expected_.begin(), expected_.end(), holds_wanted);
    if (block != expected_.end()) {
      next_expected_ = static_cast<std::size_t>(block - expected_.begin()) + 1;
      for (++block; block != expected_.end() && add(*block); ++block) {
      }
    } else {  // rows after the one asked, a thousand at a time
      constexpr std::int64_t kStep = 1024;
      for (std::int64_t row = wanted.end; row < where_.n_rows && add({row, std::min(where_.n_rows, row + kStep)}); row += kStep) {
      }
    }
    return window;
  }

  /// One pass over the file: the rows of `window` into cache_ (rows in window order), columns
  /// ascending within a row (the file's column order).
  void gather(const std::vector<RowRange>& window) {
    cached_.clear();  // (cache_'s buffers are kept: a stream's windows are alike)
    std::int64_t n_rows = 0;
    for (const RowRange& range : window) n_rows += range.size();
    cache_.reset(0, n_rows, where_.n_cols);
    cache_.indptr.assign(static_cast<std::size_t>(n_rows) + 1, 0);
    slot_.assign(static_cast<std::size_t>(where_.n_rows), -1);
    std::int64_t local = 0;
    for (const RowRange& range : window) {
      for (std::int64_t row = range.begin; row < range.end; ++row, ++local) {
        cache_.indptr[static_cast<std::size_t>(local) + 1] = cache_.indptr[static_cast<std::size_t>(local)] + row_counts_[static_cast<std::size_t>(row)];
        slot_[static_cast<std::size_t>(row)] = cache_.indptr[static_cast<std::size_t>(local)];
      }
    }
    cache_.indices.resize(static_cast<std::size_t>(cache_.indptr.back()));
    cache_.values.resize(cache_.indices.size());
    if (index_bytes_ == sizeof(std::int32_t)) {
      scatter<std::int32_t>();  // (int32 or uint32 on disk: read as stored, a uint32 above 2^31 turning negative, refused)
    } else {
      scatter<std::int64_t>();
    }
    // A (row, column) stored twice: side by side in its row, the columns arriving in order.
    local = 0;
    for (const RowRange& range : window) {
      for (std::int64_t row = range.begin; row < range.end; ++row, ++local) {
        for (std::int64_t k = cache_.indptr[static_cast<std::size_t>(local)] + 1; k < cache_.indptr[static_cast<std::size_t>(local) + 1]; ++k) {
          if (cache_.indices[static_cast<std::size_t>(k)] == cache_.indices[static_cast<std::size_t>(k) - 1]) {
            throw_duplicate_entry(where_.file, where_.group, row, cache_.indices[static_cast<std::size_t>(k)]);
          }
        }
      }
    }
    cached_ = window;
  }

  /// Stored values per row: a pass over the row indices (read as stored when 4 bytes).
  template <typename Index>
  std::vector<std::int64_t> count_rows() const {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(where_.n_rows), 0);
    std::vector<Index> rows;
    for (std::int64_t start = 0; start < nnz_; start += kSlabValues) {
      const std::int64_t n = std::min(kSlabValues, nnz_ - start);
      rows.resize(static_cast<std::size_t>(n));
      read_slice(indices_.get(), direct_indices_.get(), start, n, rows.data());
      for (std::int64_t k = 0; k < n; ++k) {
        const auto row = static_cast<std::int64_t>(rows[static_cast<std::size_t>(k)]);
        if (row < 0 || row >= where_.n_rows) throw_bad_row(start + k, row);
        ++counts[static_cast<std::size_t>(row)];
      }
    }
    return counts;
  }

  /// gather's pass: every stored value whose row has a slot goes there, column by column.
  template <typename Index>
  void scatter() {
    std::vector<Index> rows;
    std::vector<double> values;
    std::int64_t column = 0;
    for (std::int64_t start = 0; start < nnz_; start += kSlabValues) {
      check_cancelled();
      const std::int64_t n = std::min(kSlabValues, nnz_ - start);
      rows.resize(static_cast<std::size_t>(n));
      values.resize(static_cast<std::size_t>(n));
      read_slice(indices_.get(), direct_indices_.get(), start, n, rows.data());
      read_slice(data_.get(), direct_data_.get(), start, n, values.data());
      for (std::int64_t k = 0; k < n;) {
        while (col_ptr_[static_cast<std::size_t>(column) + 1] <= start + k) ++column;
        const std::int64_t stop = std::min(col_ptr_[static_cast<std::size_t>(column) + 1], start + n) - start;  // the column's values in the slab
        const auto stored_column = static_cast<std::int32_t>(column);
        for (; k < stop; ++k) {
          const auto row = static_cast<std::int64_t>(rows[static_cast<std::size_t>(k)]);
          if (row < 0 || row >= where_.n_rows) throw_bad_row(start + k, row);
          std::int64_t& slot = slot_[static_cast<std::size_t>(row)];
          if (slot < 0) continue;
          cache_.indices[static_cast<std::size_t>(slot)] = stored_column;
          cache_.values[static_cast<std::size_t>(slot)] = values[static_cast<std::size_t>(k)];
          ++slot;
        }
      }
    }
  }

  /// Where the rows `wanted` start in cache_ (the rows of the cached ranges before theirs), or -1
  /// when no cached range holds them all.
  [[nodiscard]] std::int64_t cached_row(const RowRange& wanted) const {
    std::int64_t local = 0;
    for (const RowRange& range : cached_) {
      if (range.begin <= wanted.begin && wanted.end <= range.end) return local + wanted.begin - range.begin;
      local += range.size();
    }
    return -1;
  }

  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    check_row_range(first, count, where_.n_rows, where_.file);
    out.reset(first, count, where_.n_cols);
    if (count == 0) return;
    const RowRange wanted{first, first + count};
    std::int64_t local = cached_row(wanted);
    if (local < 0) {
      gather(window_for(wanted));
      local = cached_row(wanted);
    }
    const std::int64_t begin = cache_.indptr[static_cast<std::size_t>(local)];
    const std::int64_t end = cache_.indptr[static_cast<std::size_t>(local + count)];
    out.indptr.resize(static_cast<std::size_t>(count) + 1);
    for (std::int64_t r = 0; r <= count; ++r) out.indptr[static_cast<std::size_t>(r)] = cache_.indptr[static_cast<std::size_t>(local + r)] - begin;
    out.indices.assign(cache_.indices.begin() + begin, cache_.indices.begin() + end);
    out.values.resize(static_cast<std::size_t>(end - begin));
    for (std::int64_t k = begin; k < end; ++k) out.values[static_cast<std::size_t>(k - begin)] = static_cast<Value>(cache_.values[static_cast<std::size_t>(k)]);
  }

  SparseLocation where_;
  MatrixInfo info_;
  Handle data_;
  Handle indices_;
  std::unique_ptr<DirectDataset> direct_data_;
  std::unique_ptr<DirectDataset> direct_indices_;
  std::int64_t nnz_ = 0;
  std::vector<std::int64_t> col_ptr_;
  std::vector<std::int64_t> row_counts_;
  std::vector<RowRange> expected_;  // expect_reads' blocks
  std::size_t next_expected_ = 0;   // where the search for the next read's block starts
  std::vector<RowRange> cached_;    // the rows cache_ holds, in order
  CsrBlockF64 cache_;
  std::vector<std::int64_t> slot_;  // in a gather: per row, where its next value goes (-1: not gathered)
  std::size_t index_bytes_ = 8;     // bytes of a stored row index
};

/// A dense 2-D dataset: rows are read as hyperslabs and compressed to CSR (zeros dropped).
class DenseDatasetReader final : public MatrixReader {
 public:
  DenseDatasetReader(hid_t file, const std::string& file_name, const std::string& path, MatrixInfo info, std::size_t cache_bytes)
      : file_name_(file_name), path_(path), info_(std::move(info)) {
    data_ = open_with_cache(file, path, file_name, cache_bytes);
  }
  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { read(first, count, out); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { read(first, count, out); }
  std::vector<std::int64_t> row_nnz() override {
    // Upper bound: a dense row may store n_cols values.
    return std::vector<std::int64_t>(static_cast<std::size_t>(info_.n_rows), info_.n_cols);
  }
  std::size_t bytes_per_value() const override { return 16; }

 private:
  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    check_row_range(first, count, info_.n_rows, file_name_);
    const std::int64_t cols = info_.n_cols;
    std::vector<Value> dense(static_cast<std::size_t>(count * cols));
    {
      auto lock = h5::hdf5_lock();
      h5::read_rows_2d(data_.get(), first, count, cols, dense.data());
    }
    out.reset(first, count, cols);
    for (std::int64_t r = 0; r < count; ++r) {
      const Value* row = dense.data() + r * cols;
      for (std::int64_t c = 0; c < cols; ++c) {
        if (row[c] != Value{0}) {
          out.indices.push_back(static_cast<std::int32_t>(c));
          out.values.push_back(row[c]);
        }
      }
      out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
    }
  }

  std::string file_name_;
  std::string path_;
  MatrixInfo info_;
  Handle data_;
};

/// A dense 2-D dataset stored genes x cells (loom's /matrix and /layers): each cell is a column.
/// A block of cells spans whole chunk columns across every gene, so blocks are whole multiples of
/// the chunk width (each chunk decoded once). Chunks stored with deflate alone (loompy's gzip) or
/// no filter, of a native number type, are read as stored bytes under the HDF5 lock and inflated
/// (libdeflate) and transposed on every core outside it: no whole dense band is ever held. Other
/// layouts go through HDF5's own reading of the band.
class DenseColumnsReader final : public MatrixReader {
 public:
  DenseColumnsReader(hid_t file, const std::string& file_name, const std::string& path, MatrixInfo info)
      : file_name_(file_name), path_(path), info_(std::move(info)) {
    Handle access(H5Pcreate(H5P_DATASET_ACCESS));
    H5Pset_chunk_cache(access.get(), 521, 0, 1.0);  // blocks are chunk-aligned: a cache only copies
    data_ = h5::open_dataset(file, path, file_name, access.get());
    if (info_.chunks.size() == 2 && info_.chunks[0] > 0 && info_.chunks[1] > 0) {
      chunk_genes_ = info_.chunks[0];
      band_width_ = info_.chunks[1];
      direct_ = direct_chunks_supported();
    }
  }
  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { read(first, count, out); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { read(first, count, out); }
  std::vector<std::int64_t> row_nnz() override {
    return std::vector<std::int64_t>(static_cast<std::size_t>(info_.n_rows), info_.n_cols);  // upper bound
  }
  std::vector<RowRange> plan_blocks(std::size_t memory_limit_bytes) override {
    const std::size_t cell_bytes = static_cast<std::size_t>(std::max<std::int64_t>(info_.n_cols, 1)) * bytes_per_value();
    const std::int64_t fit = static_cast<std::int64_t>(memory_limit_bytes / cell_bytes);
    // Whole chunk columns; one chunk column at least (loom.cpp caps a chunk at 64 MiB).
    const std::int64_t width = std::max<std::int64_t>(band_width_, fit / band_width_ * band_width_);
    std::vector<RowRange> blocks;
    for (std::int64_t begin = 0; begin < info_.n_rows; begin += width) blocks.push_back({begin, std::min(info_.n_rows, begin + width)});
    return blocks;
  }
  std::size_t bytes_per_value() const override { return 20; }  // a dense band value (8) + a CSR value (12)

 private:
  enum class Stored { kF32, kF64, kI8, kI16, kI32, kI64, kU8, kU16, kU32, kU64 };

  /// Deflate-only (or unfiltered) chunks of a native number type with a zero fill value.
  bool direct_chunks_supported() {
    {
      hsize_t size = 0;
      const Handle file(H5Iget_file_id(data_.get()));
      if (!file || H5Fget_filesize(file.get(), &size) < 0) return false;
      file_bytes_ = size;
    }
    Handle plist(H5Dget_create_plist(data_.get()));
    const int n_filters = H5Pget_nfilters(plist.get());
    if (n_filters < 0 || n_filters > 1) return false;
    if (n_filters == 1) {
      unsigned flags = 0;
      std::size_t n_values = 0;
      unsigned config = 0;
      if (H5Pget_filter2(plist.get(), 0, &flags, &n_values, nullptr, 0, nullptr, &config) != H5Z_FILTER_DEFLATE) return false;
      deflate_ = true;
    }
    H5D_fill_value_t fill_status{};
    if (H5Pfill_value_defined(plist.get(), &fill_status) < 0) return false;
    Handle type(H5Dget_type(data_.get()));
    const std::pair<hid_t, Stored> natives[] = {
        {H5T_NATIVE_FLOAT, Stored::kF32}, {H5T_NATIVE_DOUBLE, Stored::kF64}, {H5T_NATIVE_INT8, Stored::kI8},   {H5T_NATIVE_INT16, Stored::kI16},
        {H5T_NATIVE_INT32, Stored::kI32}, {H5T_NATIVE_INT64, Stored::kI64},  {H5T_NATIVE_UINT8, Stored::kU8},  {H5T_NATIVE_UINT16, Stored::kU16},
        {H5T_NATIVE_UINT32, Stored::kU32}, {H5T_NATIVE_UINT64, Stored::kU64}};
    bool known = false;
    for (const auto& [native, stored] : natives) {
      if (H5Tequal(type.get(), native) > 0) {
        stored_ = stored;
        element_bytes_ = H5Tget_size(native);
        known = true;
        break;
      }
    }
    if (!known) return false;
    if (fill_status == H5D_FILL_VALUE_USER_DEFINED) {  // unwritten chunks read as the fill value: only 0 is taken
      std::vector<unsigned char> fill(element_bytes_, 0);
      if (H5Pget_fill_value(plist.get(), type.get(), fill.data()) < 0) return false;
      if (std::any_of(fill.begin(), fill.end(), [](unsigned char byte) { return byte != 0; })) return false;
    }
    return true;
  }

  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    check_row_range(first, count, info_.n_rows, file_name_);
    out.reset(first, count, info_.n_cols);
    if (count == 0) return;
    if (direct_) {
      read_direct(first, count, out);
    } else {
      read_band(first, count, out);
    }
  }

  /// HDF5 reads the genes x count band (converting the stored type), which is then transposed.
  template <typename Value>
  void read_band(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    const std::int64_t genes = info_.n_cols;
    Buffer<Value> band(static_cast<std::size_t>(count * genes));  // genes x count
    {
      auto lock = h5::hdf5_lock();
      h5::read_cols_2d(data_.get(), first, count, genes, band.data());
    }
    std::vector<std::int64_t> offsets(static_cast<std::size_t>(count) + 1, 0);
    for (std::int64_t g = 0; g < genes; ++g) {
      const Value* row = band.data() + g * count;
      for (std::int64_t c = 0; c < count; ++c) offsets[static_cast<std::size_t>(c) + 1] += row[c] != Value{0} ? 1 : 0;
    }
    std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
    out.indices.resize(static_cast<std::size_t>(offsets.back()));
    out.values.resize(static_cast<std::size_t>(offsets.back()));
    std::vector<std::int64_t> next(offsets.begin(), offsets.end() - 1);
    for (std::int64_t g = 0; g < genes; ++g) {
      const Value* row = band.data() + g * count;
      for (std::int64_t c = 0; c < count; ++c) {
        if (row[c] == Value{0}) continue;
        const auto k = static_cast<std::size_t>(next[static_cast<std::size_t>(c)]++);
        out.indices[k] = static_cast<std::int32_t>(g);
        out.values[k] = row[c];
      }
    }
    for (std::size_t c = 1; c < offsets.size(); ++c) out.indptr.push_back(offsets[c]);  // reset left indptr = {0}
  }

  /// One stored chunk: its bytes as in the file, and whether deflate was applied.
  struct StoredChunk {
    std::vector<unsigned char> bytes;  ///< empty: never written (all zero; not decoded)
    bool deflated = false;
  };

  /// Stored values of a written `chunk` decoded into `out` (chunk_genes x band_width, row-major) as
  /// Value.
  template <typename Value>
  void decode(const StoredChunk& chunk, std::vector<unsigned char>& raw, std::vector<Value>& out, std::int64_t chunk_row,
              std::int64_t chunk_col) const {
    const std::size_t n = static_cast<std::size_t>(chunk_genes_ * band_width_);
    out.resize(n);
    const unsigned char* bytes = chunk.bytes.data();
    if (chunk.deflated) {
      raw.resize(n * element_bytes_);
      if (!inflate_exact(chunk.bytes.data(), chunk.bytes.size(), raw.data(), raw.size())) {
        throw InputError(fmt::format("{}: {}: the chunk of genes {}.. and cells {}.. does not inflate to {} bytes (corrupt file?)", file_name_,
                                     path_, chunk_row * chunk_genes_, chunk_col * band_width_, raw.size()));
      }
      bytes = raw.data();
    } else if (chunk.bytes.size() != n * element_bytes_) {
      throw InputError(fmt::format("{}: {}: the chunk of genes {}.. and cells {}.. holds {} bytes, not {} (corrupt file?)", file_name_, path_,
                                   chunk_row * chunk_genes_, chunk_col * band_width_, chunk.bytes.size(), n * element_bytes_));
    }
    const auto convert = [&](auto tag) {
      using Stored = decltype(tag);
      for (std::size_t i = 0; i < n; ++i) {
        Stored value;
        std::memcpy(&value, bytes + i * sizeof(Stored), sizeof(Stored));
        out[i] = static_cast<Value>(value);
      }
    };
    switch (stored_) {
      case Stored::kF32: convert(float{}); break;
      case Stored::kF64: convert(double{}); break;
      case Stored::kI8: convert(std::int8_t{}); break;
      case Stored::kI16: convert(std::int16_t{}); break;
      case Stored::kI32: convert(std::int32_t{}); break;
      case Stored::kI64: convert(std::int64_t{}); break;
      case Stored::kU8: convert(std::uint8_t{}); break;
      case Stored::kU16: convert(std::uint16_t{}); break;
      case Stored::kU32: convert(std::uint32_t{}); break;
      case Stored::kU64: convert(std::uint64_t{}); break;
    }
  }

  template <typename Value>
  void read_direct(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    const std::int64_t genes = info_.n_cols;
    const std::int64_t chunk_rows = (genes + chunk_genes_ - 1) / chunk_genes_;
    const std::int64_t first_col = first / band_width_;
    const std::int64_t last_col = (first + count - 1) / band_width_;
    const std::int64_t n_cols = last_col - first_col + 1;
    // The stored bytes of every chunk the cells touch (compressed: a few KB each).
    std::vector<StoredChunk> chunks(static_cast<std::size_t>(chunk_rows * n_cols));
    {
      auto lock = h5::hdf5_lock();
      for (std::int64_t i = 0; i < chunk_rows; ++i) {
        for (std::int64_t j = 0; j < n_cols; ++j) {
          const std::array<hsize_t, 2> offset{static_cast<hsize_t>(i * chunk_genes_), static_cast<hsize_t>((first_col + j) * band_width_)};
          StoredChunk& chunk = chunks[static_cast<std::size_t>(i * n_cols + j)];
          hsize_t stored_bytes = 0;
          if (H5Dget_chunk_storage_size(data_.get(), offset.data(), &stored_bytes) < 0) {
            // HDF5 1.10 fails here for a chunk never written too; the chunk index tells that apart
            // from a damaged index (H5Dget_chunk_info_by_coord walks the whole index in 1.10: only
            // asked when the fast look-up failed).
            h5::clear_hdf5_errors();
            haddr_t address = HADDR_UNDEF;
            unsigned index_mask = 0;
            if (H5Dget_chunk_info_by_coord(data_.get(), offset.data(), &index_mask, &address, &stored_bytes) < 0) {
              h5::clear_hdf5_errors();
              throw IoError(fmt::format("{}: {}: HDF5 cannot look up the chunk of genes {}.. and cells {}.. (damaged chunk index?)", file_name_,
                                        path_, offset[0], offset[1]));
            }
            if (address == HADDR_UNDEF) continue;  // never written: the fill value, zero
          }
          if (stored_bytes == 0) continue;
          // A stored chunk is at most its decoded size plus deflate's overhead, and inside the file.
          const std::uint64_t decoded = static_cast<std::uint64_t>(chunk_genes_ * band_width_) * element_bytes_;
          if (stored_bytes > file_bytes_ || stored_bytes > 2 * decoded + 1024) {
            throw InputError(fmt::format("{}: {}: the chunk of genes {}.. and cells {}.. claims {} stored bytes (file {} bytes, chunk {} decoded; "
                                         "corrupt file?)",
                                         file_name_, path_, offset[0], offset[1], stored_bytes, file_bytes_, decoded));
          }
          chunk.bytes.resize(stored_bytes);
          std::uint32_t filter_mask = 0;
          if (H5Dread_chunk(data_.get(), H5P_DEFAULT, offset.data(), &filter_mask, chunk.bytes.data()) < 0) {
            throw IoError(fmt::format("{}: {}: HDF5 failed to read the chunk of genes {}.. and cells {}..", file_name_, path_, offset[0], offset[1]));
          }
          chunk.deflated = deflate_ && (filter_mask & 1U) == 0;
        }
      }
    }
    // Groups of chunk rows (genes) decoded in parallel, each keeping its values per cell in gene
    // order; the cells' rows are then the groups' lists one after the other. The lists are kept
    // between calls (their capacity: no allocation per value after the first blocks).
    const int threads = resolve_threads(0);
    const std::int64_t n_groups = std::min<std::int64_t>(chunk_rows, std::int64_t{threads} * 4);
    Scratch<Value>& kept = scratch<Value>();  // (not a structured binding: clang 14 cannot capture one in a lambda)
    auto& groups = kept.groups;
    auto& buffers = kept.buffers;
    groups.resize(static_cast<std::size_t>(n_groups));
    buffers.resize(static_cast<std::size_t>(threads));
    parallel_for_workers(n_groups, threads, [&](std::int64_t group_index, int worker) {
      Group<Value>& group = groups[static_cast<std::size_t>(group_index)];
      Buffers<Value>& buffer = buffers[static_cast<std::size_t>(worker)];
      group.indices.resize(static_cast<std::size_t>(count));
      group.values.resize(static_cast<std::size_t>(count));
      for (auto& cell : group.indices) cell.clear();
      for (auto& cell : group.values) cell.clear();
      const std::int64_t row_begin = chunk_rows * group_index / n_groups;
      const std::int64_t row_end = chunk_rows * (group_index + 1) / n_groups;
      for (std::int64_t i = row_begin; i < row_end; ++i) {
        for (std::int64_t j = 0; j < n_cols; ++j) {
          const StoredChunk& stored = chunks[static_cast<std::size_t>(i * n_cols + j)];
          if (stored.bytes.empty()) continue;  // never written: zeros, nothing to keep
          decode(stored, buffer.raw, buffer.decoded, i, first_col + j);
          const std::int64_t cell0 = (first_col + j) * band_width_;  // first cell of the chunk
          const std::int64_t k_begin = std::max<std::int64_t>(first - cell0, 0);
          const std::int64_t k_end = std::min<std::int64_t>(first + count - cell0, band_width_);
          const std::int64_t r_end = std::min<std::int64_t>(chunk_genes_, genes - i * chunk_genes_);
          const auto keep = [&](std::int64_t k, std::int32_t gene, Value value) {
            const auto cell = static_cast<std::size_t>(cell0 + k - first);
            group.indices[cell].push_back(gene);
            group.values[cell].push_back(value);
          };
          for (std::int64_t r = 0; r < r_end; ++r) {
            const Value* row = buffer.decoded.data() + r * band_width_;
            const auto gene = static_cast<std::int32_t>(i * chunk_genes_ + r);
            if (k_end - k_begin <= 64) {  // a mask of the row's values (vectorised), then its set bits
              std::uint64_t mask = 0;
              for (std::int64_t k = k_begin; k < k_end; ++k) mask |= static_cast<std::uint64_t>(row[k] != Value{0}) << (k - k_begin);
              while (mask != 0) {
                const std::int64_t k = k_begin + std::countr_zero(mask);
                keep(k, gene, row[k]);
                mask &= mask - 1;
              }
            } else {
              for (std::int64_t k = k_begin; k < k_end; ++k) {
                if (row[k] != Value{0}) keep(k, gene, row[k]);
              }
            }
          }
        }
      }
    });
    std::size_t nnz = 0;
    for (const Group<Value>& group : groups) {
      for (const auto& cell : group.indices) nnz += cell.size();
    }
    out.indices.reserve(nnz);
    out.values.reserve(nnz);
    for (std::int64_t c = 0; c < count; ++c) {
      for (const Group<Value>& group : groups) {
        const auto& indices = group.indices[static_cast<std::size_t>(c)];
        const auto& values = group.values[static_cast<std::size_t>(c)];
        out.indices.insert(out.indices.end(), indices.begin(), indices.end());
        out.values.insert(out.values.end(), values.begin(), values.end());
      }
      out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
    }
  }

  /// One parallel group's values per cell, kept between calls (their capacity).
  template <typename Value>
  struct Group {
    std::vector<std::vector<std::int32_t>> indices;
    std::vector<std::vector<Value>> values;
  };
  /// One worker's decoding buffers (a stored and a decoded chunk), kept between calls.
  template <typename Value>
  struct Buffers {
    std::vector<unsigned char> raw;
    std::vector<Value> decoded;
  };
  /// The groups' lists and the workers' buffers for blocks of Value.
  template <typename Value>
  struct Scratch {
    std::vector<Group<Value>> groups;
    std::vector<Buffers<Value>> buffers;
  };
  template <typename Value>
  Scratch<Value>& scratch() {
    if constexpr (std::is_same_v<Value, float>) {
      return scratch_f32_;
    } else {
      return scratch_f64_;
    }
  }

  std::string file_name_;
  std::string path_;
  MatrixInfo info_;
  Handle data_;
  Scratch<float> scratch_f32_;
  Scratch<double> scratch_f64_;
  hsize_t file_bytes_ = 0;
  std::int64_t chunk_genes_ = 0;
  std::int64_t band_width_ = 64;  ///< cells per chunk column (contiguous data: blocks of 64 cells)
  bool direct_ = false;
  bool deflate_ = false;
  Stored stored_ = Stored::kF32;
  std::size_t element_bytes_ = 4;
};

/// A CSR matrix in memory (stored as float64 so integer counts and float32 data are exact).
class MemoryCsrReader final : public MatrixReader {
 public:
  MemoryCsrReader(std::shared_ptr<const CsrBlockF64> matrix, MatrixInfo info) : shared_(std::move(matrix)), matrix_(*shared_), info_(std::move(info)) {}
  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { read(first, count, out); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { read(first, count, out); }
  std::vector<std::int64_t> row_nnz() override {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(matrix_.n_rows));
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = matrix_.indptr[i + 1] - matrix_.indptr[i];
    return counts;
  }

 private:
  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    check_row_range(first, count, matrix_.n_rows);
    out.reset(first, count, matrix_.n_cols);
    const std::int64_t begin = matrix_.indptr[static_cast<std::size_t>(first)];
    const std::int64_t end = matrix_.indptr[static_cast<std::size_t>(first + count)];
    out.indptr.resize(static_cast<std::size_t>(count) + 1);
    for (std::int64_t r = 0; r <= count; ++r) out.indptr[static_cast<std::size_t>(r)] = matrix_.indptr[static_cast<std::size_t>(first + r)] - begin;
    out.indices.assign(matrix_.indices.begin() + begin, matrix_.indices.begin() + end);
    out.values.resize(static_cast<std::size_t>(end - begin));
    for (std::int64_t k = begin; k < end; ++k) out.values[static_cast<std::size_t>(k - begin)] = static_cast<Value>(matrix_.values[static_cast<std::size_t>(k)]);
  }

  std::shared_ptr<const CsrBlockF64> shared_;
  const CsrBlockF64& matrix_;
  MatrixInfo info_;
};

}  // namespace

std::unique_ptr<MatrixReader> open_sparse_reader(hid_t file, const SparseLocation& location, MatrixInfo info,
                                                 std::size_t chunk_cache_bytes) {
  auto lock = h5::hdf5_lock();
  if (location.encoding == MatrixEncoding::kCsr) {
    return std::make_unique<CsrDatasetReader>(file, location, std::move(info), chunk_cache_bytes);
  }
  return std::make_unique<CscDatasetReader>(file, location, std::move(info), chunk_cache_bytes);
}

std::unique_ptr<MatrixReader> open_dense_reader(hid_t file, const std::string& file_name, const std::string& path,
                                                MatrixInfo info, std::size_t chunk_cache_bytes) {
  auto lock = h5::hdf5_lock();
  return std::make_unique<DenseDatasetReader>(file, file_name, path, std::move(info), chunk_cache_bytes);
}

std::unique_ptr<MatrixReader> open_dense_columns_reader(hid_t file, const std::string& file_name, const std::string& path, MatrixInfo info) {
  auto lock = h5::hdf5_lock();
  return std::make_unique<DenseColumnsReader>(file, file_name, path, std::move(info));
}

std::unique_ptr<MatrixReader> make_memory_reader(CsrBlockF64 matrix, MatrixInfo info) {
  return make_memory_reader(std::make_shared<const CsrBlockF64>(std::move(matrix)), std::move(info));
}

std::unique_ptr<MatrixReader> make_memory_reader(std::shared_ptr<const CsrBlockF64> matrix, MatrixInfo info) {
  return std::make_unique<MemoryCsrReader>(std::move(matrix), std::move(info));
}

}  // namespace detail
}  // namespace celltyper
