// Datasets held in memory (memory_dataset.hpp).
#include <celltyper/error.hpp>
#include <celltyper/memory_dataset.hpp>

#include "io/matrix_readers.hpp"

#include <fmt/format.h>

namespace celltyper {

MemoryDataset::MemoryDataset(std::string name, DataFrame obs, DataFrame var, CsrBlockF64 matrix, MemoryDatasetLabels labels)
    : name_(std::move(name)), format_(std::move(labels.format)), obs_(std::move(obs)), var_(std::move(var)) {
  const auto rows = static_cast<std::int64_t>(obs_.n_rows());
  const auto cols = static_cast<std::int64_t>(var_.n_rows());
  if (matrix.n_rows != rows || matrix.n_cols != cols || static_cast<std::int64_t>(matrix.indptr.size()) != rows + 1 ||
      matrix.indptr.front() != 0 || static_cast<std::size_t>(matrix.indptr.back()) != matrix.indices.size() ||
      matrix.indices.size() != matrix.values.size()) {
    throw InputError(fmt::format("{}: a {} x {} matrix ({} row pointers, {} indices, {} values) for {} cells and {} genes", name_,
                                 matrix.n_rows, matrix.n_cols, matrix.indptr.size(), matrix.indices.size(), matrix.values.size(), rows,
                                 cols));
  }
  for (std::size_t r = 0; r + 1 < matrix.indptr.size(); ++r) {
    if (matrix.indptr[r + 1] < matrix.indptr[r]) throw InputError(fmt::format("{}: row pointers decrease at row {}", name_, r));
  }
  for (const std::int32_t column : matrix.indices) {
    if (column < 0 || column >= cols) throw InputError(fmt::format("{}: column index {} outside [0, {})", name_, column, cols));
  }
  info_.source = std::string("X");
  info_.encoding = MatrixEncoding::kCsr;
  info_.n_rows = rows;
  info_.n_cols = cols;
  info_.nnz = static_cast<std::int64_t>(matrix.values.size());
  info_.value_dtype = std::move(labels.value_dtype);
  info_.index_dtype = "int32";
  info_.compression = std::move(labels.compression);
  info_.stored_bytes = labels.stored_bytes;
  note_ = std::move(labels.note);
  matrix_ = std::make_shared<const CsrBlockF64>(std::move(matrix));
}

MatrixInfo MemoryDataset::matrix_info(const std::string& source) const {
  if (source != "X") throw InputError(fmt::format("{}: an in-memory dataset has one matrix (X), not '{}'", name_, source));
  return info_;
}

std::unique_ptr<MatrixReader> MemoryDataset::open_matrix(const std::string& source) const {
  return detail::make_memory_reader(matrix_, matrix_info(source));
}

}  // namespace celltyper
