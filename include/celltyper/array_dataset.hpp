/// @file array_dataset.hpp
/// A dataset whose matrix lives in arrays owned by the caller (NumPy arrays, the buffers of a
/// SciPy CSR matrix): read in place, block by block, never copied whole. What the Python module
/// hands the library verbs for an in-memory AnnData.
#pragma once

#include <celltyper/dataset.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace celltyper {

/// Element type of a borrowed array.
enum class ArrayType { kFloat32, kFloat64, kInt8, kInt16, kInt32, kInt64, kUInt8, kUInt16, kUInt32, kUInt64 };

/// NumPy's name of a type ("float32", ...).
const char* to_string(ArrayType type);

/// A contiguous array owned elsewhere.
struct ArrayView {
  const void* data = nullptr;
  ArrayType type = ArrayType::kFloat32;
  std::int64_t size = 0;  ///< elements
};

/// A cells x genes matrix in borrowed arrays: CSR (`values`, `indices`, `indptr`) or dense
/// row-major (`values` only, n_rows * n_cols elements).
struct MatrixView {
  MatrixEncoding encoding = MatrixEncoding::kCsr;  ///< kCsr or kDense
  std::int64_t n_rows = 0;
  std::int64_t n_cols = 0;
  ArrayView values;
  ArrayView indices;  ///< CSR: column of each value (int32 or int64)
  ArrayView indptr;   ///< CSR: n_rows + 1 offsets (int32 or int64)
};

/// A dataset over a MatrixView with obs and var tables. Its one matrix is named `source` (the
/// AnnData matrix the arrays came from: "X", "raw/X" or "layers/NAME", as a file's would be), so
/// model provenance and messages name what was read. The arrays must outlive the dataset and every
/// reader it opens, and must not change meanwhile.
class ArrayDataset final : public Dataset {
 public:
  /// Checks everything a file reader checks, once, so that reads cannot fail later: the shape
  /// against obs and var, CSR offsets (start at 0, never decrease, end at the number of values),
  /// column indices in range and strictly increasing within each row (SciPy's canonical format:
  /// sorted, no duplicates), and finite values. Throws InputError naming `name`, the cell and the
  /// gene column of the first problem.
  ArrayDataset(std::string name, DataFrame obs, DataFrame var, MatrixView matrix, std::string source = "X");

  [[nodiscard]] const std::string& path() const override { return name_; }
  [[nodiscard]] std::string format() const override { return "memory"; }
  [[nodiscard]] std::int64_t n_obs() const override { return static_cast<std::int64_t>(obs_.n_rows()); }
  [[nodiscard]] std::int64_t n_vars() const override { return static_cast<std::int64_t>(var_.n_rows()); }
  [[nodiscard]] DataFrame read_obs() const override { return obs_; }
  [[nodiscard]] DataFrame read_var() const override { return var_; }
  [[nodiscard]] std::vector<std::string> matrix_sources() const override { return {info_.source}; }
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override;
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override;

 private:
  std::string name_;
  DataFrame obs_;
  DataFrame var_;
  MatrixView matrix_;
  MatrixInfo info_;
};

}  // namespace celltyper
