/// @file memory_dataset.hpp
/// A dataset held in memory (obs, var and one cells x genes CSR matrix) behind the same
/// `Dataset` interface as files: what the library verbs take when the cells do not come from a
/// file (a model's reference sample, data handed over by a front end).
#pragma once

#include <celltyper/dataset.hpp>

#include <memory>
#include <string>

namespace celltyper {

/// How a memory dataset describes itself (a reader that holds a whole file in memory, e.g. an R
/// object's export, names its format and source this way).
struct MemoryDatasetLabels {
  std::string format = "memory";       ///< what format() says
  std::string compression = "memory";  ///< MatrixInfo::compression
  std::string value_dtype = "float64"; ///< MatrixInfo::value_dtype
  std::int64_t stored_bytes = 0;       ///< MatrixInfo::stored_bytes
  std::string note;                    ///< what reading_note() says ("" for nothing)
};

/// An in-memory dataset with one matrix "X". The matrix is shared, never copied, by the readers
/// `open_matrix` returns.
class MemoryDataset final : public Dataset {
 public:
  /// `name` is what messages call the dataset (there is no file); `matrix` is cells x genes CSR
  /// with `obs.n_rows()` rows and `var.n_rows()` columns (checked: InputError otherwise).
  MemoryDataset(std::string name, DataFrame obs, DataFrame var, CsrBlockF64 matrix, MemoryDatasetLabels labels = {});

  [[nodiscard]] const std::string& path() const override { return name_; }
  [[nodiscard]] std::string format() const override { return format_; }
  [[nodiscard]] std::int64_t n_obs() const override { return static_cast<std::int64_t>(obs_.n_rows()); }
  [[nodiscard]] std::int64_t n_vars() const override { return static_cast<std::int64_t>(var_.n_rows()); }
  [[nodiscard]] DataFrame read_obs() const override { return obs_; }
  [[nodiscard]] DataFrame read_var() const override { return var_; }
  [[nodiscard]] std::vector<std::string> matrix_sources() const override { return {"X"}; }
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override;
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override;
  [[nodiscard]] std::string reading_note() const override { return note_; }

 private:
  std::string name_;
  std::string format_;
  std::string note_;
  DataFrame obs_;
  DataFrame var_;
  std::shared_ptr<const CsrBlockF64> matrix_;
  MatrixInfo info_;
};

}  // namespace celltyper
