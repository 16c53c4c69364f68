// Datasets over borrowed arrays (array_dataset.hpp): validated once, then read in place.
#include <celltyper/array_dataset.hpp>
#include <celltyper/error.hpp>

#include "io/matrix_readers.hpp"

#include <fmt/format.h>

#include <cmath>
#include <type_traits>

namespace celltyper {
namespace {

/// Call `f(static_cast<const T*>(nullptr))` with the C++ type of `type`.
template <typename F>
decltype(auto) with_type(ArrayType type, F&& f) {
  switch (type) {
    case ArrayType::kFloat32: return f(static_cast<const float*>(nullptr));
    case ArrayType::kFloat64: return f(static_cast<const double*>(nullptr));
    case ArrayType::kInt8: return f(static_cast<const std::int8_t*>(nullptr));
    case ArrayType::kInt16: return f(static_cast<const std::int16_t*>(nullptr));
    case ArrayType::kInt32: return f(static_cast<const std::int32_t*>(nullptr));
    case ArrayType::kInt64: return f(static_cast<const std::int64_t*>(nullptr));
    case ArrayType::kUInt8: return f(static_cast<const std::uint8_t*>(nullptr));
    case ArrayType::kUInt16: return f(static_cast<const std::uint16_t*>(nullptr));
    case ArrayType::kUInt32: return f(static_cast<const std::uint32_t*>(nullptr));
    case ArrayType::kUInt64: return f(static_cast<const std::uint64_t*>(nullptr));
  }
  throw InputError("unknown array element type");
}

/// Call `f` with the C++ type of an index array (int32 or int64 only).
template <typename F>
decltype(auto) with_index_type(ArrayType type, const std::string& what, F&& f) {
  if (type == ArrayType::kInt32) return f(static_cast<const std::int32_t*>(nullptr));
  if (type == ArrayType::kInt64) return f(static_cast<const std::int64_t*>(nullptr));
  throw InputError(fmt::format("{} are {}; int32 or int64 expected", what, to_string(type)));
}

/// Reads rows of a validated CSR view.
template <typename V, typename I, typename P>
class ArrayCsrReader final : public MatrixReader {
 public:
  ArrayCsrReader(const MatrixView& view, MatrixInfo info)
      : values_(static_cast<const V*>(view.values.data)),
        indices_(static_cast<const I*>(view.indices.data)),
        indptr_(static_cast<const P*>(view.indptr.data)),
        info_(std::move(info)) {}
  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { read(first, count, out); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { read(first, count, out); }
  std::vector<std::int64_t> row_nnz() override {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(info_.n_rows));
    for (std::size_t r = 0; r < counts.size(); ++r) counts[r] = static_cast<std::int64_t>(indptr_[r + 1]) - static_cast<std::int64_t>(indptr_[r]);
    return counts;
  }
  std::size_t bytes_per_value() const override { return 12; }  // decoded block only: nothing is buffered

 private:
  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    detail::check_row_range(first, count, info_.n_rows);
    out.reset(first, count, info_.n_cols);
    const auto begin = static_cast<std::int64_t>(indptr_[first]);
    const auto end = static_cast<std::int64_t>(indptr_[first + count]);
    out.indptr.resize(static_cast<std::size_t>(count) + 1);
    for (std::int64_t r = 0; r <= count; ++r) out.indptr[static_cast<std::size_t>(r)] = static_cast<std::int64_t>(indptr_[first + r]) - begin;
    const auto n = static_cast<std::size_t>(end - begin);
    out.indices.resize(n);
    out.values.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      out.indices[k] = static_cast<std::int32_t>(indices_[begin + static_cast<std::int64_t>(k)]);
      out.values[k] = static_cast<Value>(values_[begin + static_cast<std::int64_t>(k)]);
    }
  }

  const V* values_;
  const I* indices_;
  const P* indptr_;
  MatrixInfo info_;
};

/// Reads rows of a dense row-major view, keeping the non-zero values.
template <typename V>
class ArrayDenseReader final : public MatrixReader {
 public:
  ArrayDenseReader(const MatrixView& view, MatrixInfo info) : values_(static_cast<const V*>(view.values.data)), info_(std::move(info)) {}
  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { read(first, count, out); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { read(first, count, out); }
  std::vector<std::int64_t> row_nnz() override {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(info_.n_rows));
    for (std::int64_t r = 0; r < info_.n_rows; ++r) {
      const V* row = values_ + r * info_.n_cols;
      std::int64_t nonzero = 0;
      for (std::int64_t j = 0; j < info_.n_cols; ++j) nonzero += row[j] != V{0} ? 1 : 0;
      counts[static_cast<std::size_t>(r)] = nonzero;
    }
    return counts;
  }
  std::size_t bytes_per_value() const override { return 12; }

 private:
  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    detail::check_row_range(first, count, info_.n_rows);
    out.reset(first, count, info_.n_cols);
    for (std::int64_t r = 0; r < count; ++r) {
      const V* row = values_ + (first + r) * info_.n_cols;
      for (std::int64_t j = 0; j < info_.n_cols; ++j) {
        if (row[j] != V{0}) {
          out.indices.push_back(static_cast<std::int32_t>(j));
          out.values.push_back(static_cast<Value>(row[j]));
        }
      }
      out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
    }
  }

  const V* values_;
  MatrixInfo info_;
};

template <typename V>
void check_finite(const V* values, std::int64_t n, const std::string& name, const MatrixView& view) {
  if constexpr (std::is_floating_point_v<V>) {
    for (std::int64_t k = 0; k < n; ++k) {
      if (!std::isfinite(values[k])) {
        if (view.encoding == MatrixEncoding::kDense) {
          throw InputError(fmt::format("{}: cell {} has a non-finite value ({}) at gene column {}: fix or filter the matrix first", name,
                                       k / view.n_cols, values[k], k % view.n_cols));
        }
        throw InputError(fmt::format("{}: stored value {} is not finite ({}): fix or filter the matrix first", name, k, values[k]));
      }
    }
  }
}

}  // namespace

const char* to_string(ArrayType type) {
  switch (type) {
    case ArrayType::kFloat32: return "float32";
    case ArrayType::kFloat64: return "float64";
    case ArrayType::kInt8: return "int8";
    case ArrayType::kInt16: return "int16";
    case ArrayType::kInt32: return "int32";
    case ArrayType::kInt64: return "int64";
    case ArrayType::kUInt8: return "uint8";
    case ArrayType::kUInt16: return "uint16";
    case ArrayType::kUInt32: return "uint32";
    case ArrayType::kUInt64: return "uint64";
  }
  return "unknown";
}

ArrayDataset::ArrayDataset(std::string name, DataFrame obs, DataFrame var, MatrixView matrix, std::string source)
    : name_(std::move(name)), obs_(std::move(obs)), var_(std::move(var)), matrix_(matrix) {
  if (source.empty()) throw InputError(fmt::format("{}: the matrix needs a name (\"X\", \"raw/X\", \"layers/NAME\")", name_));
  const auto rows = static_cast<std::int64_t>(obs_.n_rows());
  const auto cols = static_cast<std::int64_t>(var_.n_rows());
  if (matrix_.n_rows != rows || matrix_.n_cols != cols) {
    throw InputError(fmt::format("{}: the matrix is {} x {} but there are {} cells (obs) and {} genes (var)", name_, matrix_.n_rows,
                                 matrix_.n_cols, rows, cols));
  }
  if (matrix_.values.data == nullptr && matrix_.values.size > 0) throw InputError(fmt::format("{}: the matrix has no values", name_));
  info_.source = std::move(source);
  info_.n_rows = rows;
  info_.n_cols = cols;
  info_.value_dtype = to_string(matrix_.values.type);
  info_.compression = "memory";
  if (matrix_.encoding == MatrixEncoding::kDense) {
    if (matrix_.values.size != rows * cols) {
      throw InputError(fmt::format("{}: a dense {} x {} matrix needs {} values, not {}", name_, rows, cols, rows * cols, matrix_.values.size));
    }
    with_type(matrix_.values.type, [&](auto tag) {
      using V = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
      check_finite(static_cast<const V*>(matrix_.values.data), matrix_.values.size, name_, matrix_);
    });
    info_.encoding = MatrixEncoding::kDense;
    info_.nnz = rows * cols;
    return;
  }
  if (matrix_.encoding != MatrixEncoding::kCsr) throw InputError(fmt::format("{}: only CSR and dense matrices are read in place", name_));
  if (matrix_.indptr.size != rows + 1) {
    throw InputError(fmt::format("{}: CSR row pointers have {} entries for {} cells (need {})", name_, matrix_.indptr.size, rows, rows + 1));
  }
  if (matrix_.indices.size != matrix_.values.size) {
    throw InputError(fmt::format("{}: {} column indices for {} values", name_, matrix_.indices.size, matrix_.values.size));
  }
  if (cols > std::int64_t{1} << 31) throw InputError(fmt::format("{}: {} genes are more than a column index holds", name_, cols));
  with_index_type(matrix_.indptr.type, name_ + ": CSR row pointers", [&](auto pointer_tag) {
    using P = std::remove_const_t<std::remove_pointer_t<decltype(pointer_tag)>>;
    with_index_type(matrix_.indices.type, name_ + ": CSR column indices", [&](auto index_tag) {
      using I = std::remove_const_t<std::remove_pointer_t<decltype(index_tag)>>;
      const P* indptr = static_cast<const P*>(matrix_.indptr.data);
      const I* indices = static_cast<const I*>(matrix_.indices.data);
      if (indptr[0] != 0) throw InputError(fmt::format("{}: CSR row pointers start at {}, not 0", name_, static_cast<std::int64_t>(indptr[0])));
      if (static_cast<std::int64_t>(indptr[rows]) != matrix_.values.size) {
        throw InputError(fmt::format("{}: CSR row pointers end at {} but there are {} values", name_, static_cast<std::int64_t>(indptr[rows]),
                                     matrix_.values.size));
      }
      for (std::int64_t r = 0; r < rows; ++r) {
        const auto begin = static_cast<std::int64_t>(indptr[r]);
        const auto end = static_cast<std::int64_t>(indptr[r + 1]);
        if (end < begin) throw InputError(fmt::format("{}: CSR row pointers decrease at cell {}", name_, r));
        std::int64_t previous = -1;
        for (std::int64_t k = begin; k < end; ++k) {
          const auto column = static_cast<std::int64_t>(indices[k]);
          if (column < 0 || column >= cols) {
            throw InputError(fmt::format("{}: cell {} has column index {} outside [0, {})", name_, r, column, cols));
          }
          if (column <= previous) {
            throw InputError(fmt::format("{}: cell {} has {} column indices (gene column {}): call sum_duplicates() / sort_indices() on "
                                         "the matrix first",
                                         name_, r, column == previous ? "duplicate" : "unsorted", column));
          }
          previous = column;
        }
      }
    });
  });
  with_type(matrix_.values.type, [&](auto tag) {
    using V = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    check_finite(static_cast<const V*>(matrix_.values.data), matrix_.values.size, name_, matrix_);
  });
  info_.encoding = MatrixEncoding::kCsr;
  info_.nnz = matrix_.values.size;
  info_.index_dtype = to_string(matrix_.indices.type);
}

MatrixInfo ArrayDataset::matrix_info(const std::string& source) const {
  if (source != info_.source) {
    throw InputError(fmt::format("{}: an in-memory dataset has one matrix ({}), not '{}'", name_, info_.source, source));
  }
  return info_;
}

std::unique_ptr<MatrixReader> ArrayDataset::open_matrix(const std::string& source) const {
  MatrixInfo info = matrix_info(source);
  return with_type(matrix_.values.type, [&](auto value_tag) -> std::unique_ptr<MatrixReader> {
    using V = std::remove_const_t<std::remove_pointer_t<decltype(value_tag)>>;
    if (matrix_.encoding == MatrixEncoding::kDense) return std::make_unique<ArrayDenseReader<V>>(matrix_, info);
    return with_index_type(matrix_.indptr.type, "row pointers", [&](auto pointer_tag) -> std::unique_ptr<MatrixReader> {
      using P = std::remove_const_t<std::remove_pointer_t<decltype(pointer_tag)>>;
      return with_index_type(matrix_.indices.type, "column indices", [&](auto index_tag) -> std::unique_ptr<MatrixReader> {
        using I = std::remove_const_t<std::remove_pointer_t<decltype(index_tag)>>;
        return std::make_unique<ArrayCsrReader<V, I, P>>(matrix_, info);
      });
    });
  });
}

}  // namespace celltyper
