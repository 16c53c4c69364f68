/// @file sparse.hpp
/// Row blocks of a cells x genes matrix, the unit every streaming algorithm works on.
///
/// Layout conventions (fixed for the whole project):
///  - matrices are cells x genes (rows = cells, columns = genes/features);
///  - a block holds the consecutive rows [first_row, first_row + n_rows) in CSR form with
///    64-bit row pointers (indptr[0] == 0, relative to the block) and 32-bit column indices,
///    column indices sorted within each row (the h5ad readers sort a row stored out of order
///    and refuse a column stored twice in a row);
///  - values are float32 (`CsrBlock`) or float64 (`CsrBlockF64`); integer files convert exactly
///    up to 2^24 (float32) / 2^53 (float64).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace celltyper {

/// An allocator whose `resize` leaves new elements uninitialised (no memset): block buffers
/// are always overwritten by the reader, and zero-filling hundreds of MB per block costs more
/// than reading them.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* pointer) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(pointer)) U;
  }
  template <typename U, typename... Args>
  void construct(U* pointer, Args&&... args) {
    ::new (static_cast<void*>(pointer)) U(std::forward<Args>(args)...);
  }
};

/// A growable array of numbers that `resize` does not zero (see DefaultInitAllocator).
template <typename T>
using Buffer = std::vector<T, DefaultInitAllocator<T>>;

/// A block of consecutive rows in compressed sparse row form.
template <typename Value>
struct CsrRows {
  std::int64_t first_row = 0;              ///< global index of the block's first row
  std::int64_t n_rows = 0;                 ///< rows in the block
  std::int64_t n_cols = 0;                 ///< columns of the whole matrix
  Buffer<std::int64_t> indptr{0};          ///< n_rows + 1 offsets into indices/values, indptr[0] == 0
  Buffer<std::int32_t> indices;            ///< column index of each stored value
  Buffer<Value> values;                    ///< stored values

  [[nodiscard]] std::int64_t nnz() const { return indptr.empty() ? 0 : indptr.back(); }

  /// Empty the block, keeping capacity, and set its geometry.
  void reset(std::int64_t first, std::int64_t rows, std::int64_t cols) {
    first_row = first;
    n_rows = rows;
    n_cols = cols;
    indptr.assign(1, 0);
    indptr.reserve(static_cast<std::size_t>(rows) + 1);
    indices.clear();
    values.clear();
  }

  /// Bytes held by the block's arrays (what a memory cap counts).
  [[nodiscard]] std::size_t bytes() const {
    return indptr.capacity() * sizeof(std::int64_t) + indices.capacity() * sizeof(std::int32_t) +
           values.capacity() * sizeof(Value);
  }
};

using CsrBlock = CsrRows<float>;
using CsrBlockF64 = CsrRows<double>;

/// Depth of cells over a set of genes: appends to `totals` each row's sum over the columns that
/// `kept` marks (non-zero; a column past its end is not kept), for the rows whose sum is positive.
template <typename Value>
void append_row_totals_over(const CsrRows<Value>& rows, const std::vector<std::uint8_t>& kept, std::vector<double>& totals) {
  for (std::int64_t row = 0; row < rows.n_rows; ++row) {
    double total = 0;
    for (std::int64_t k = rows.indptr[static_cast<std::size_t>(row)]; k < rows.indptr[static_cast<std::size_t>(row) + 1]; ++k) {
      const auto column = static_cast<std::size_t>(rows.indices[static_cast<std::size_t>(k)]);
      if (column < kept.size() && kept[column] != 0) total += static_cast<double>(rows.values[static_cast<std::size_t>(k)]);
    }
    if (total > 0) totals.push_back(total);
  }
}

/// The median of `values` (the upper one of an even count; 0 when there are none), reordering them.
inline double upper_median(std::vector<double>& values) {
  if (values.empty()) return 0;
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

}  // namespace celltyper
