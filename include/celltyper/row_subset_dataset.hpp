/// @file row_subset_dataset.hpp
/// Some of a dataset's cells seen as a dataset of their own: the cells of one sample of a file
/// joined from several (annotate reads a group whose gene panel was padded with zeros on the
/// genes it measured).
#pragma once

#include <celltyper/dataset.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace celltyper {

/// The rows `rows` (ascending, distinct, within base's cells) of `base` (not owned; must outlive
/// this), in that order: obs holds their rows, every matrix source their rows, var is base's.
/// Row i of this dataset is row rows[i] of base. Reading a block gathers its rows from base in
/// runs of close rows (one read of each run's span). A reader holds its own copy of the rows.
class RowSubsetDataset final : public Dataset {
 public:
  /// `name` is the dataset's path() in messages (e.g. "FILE [study=Wang]").
  RowSubsetDataset(const Dataset& base, std::vector<std::int64_t> rows, std::string name);

  [[nodiscard]] const std::string& path() const override { return name_; }
  [[nodiscard]] std::string format() const override { return base_.format(); }
  [[nodiscard]] std::int64_t n_obs() const override { return static_cast<std::int64_t>(rows_.size()); }
  [[nodiscard]] std::int64_t n_vars() const override { return base_.n_vars(); }
  [[nodiscard]] DataFrame read_obs() const override;
  [[nodiscard]] DataFrame read_obs_columns(const std::vector<std::string>& names) const override;
  [[nodiscard]] std::vector<std::string> obs_column_names() const override { return base_.obs_column_names(); }
  [[nodiscard]] DataFrame read_var() const override { return base_.read_var(); }
  [[nodiscard]] std::vector<std::string> matrix_sources() const override { return base_.matrix_sources(); }
  [[nodiscard]] DataFrame read_var_of(const std::string& source) const override { return base_.read_var_of(source); }
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override;
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override;
  [[nodiscard]] std::string reading_note() const override { return base_.reading_note(); }

  [[nodiscard]] const std::vector<std::int64_t>& rows() const { return rows_; }

 private:
  const Dataset& base_;
  std::vector<std::int64_t> rows_;
  std::string name_;
};

/// The rows `rows` of `frame`, in that order (index and every column).
DataFrame take_rows(const DataFrame& frame, const std::vector<std::int64_t>& rows);

}  // namespace celltyper
