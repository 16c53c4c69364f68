/// @file thinned_dataset.hpp
/// A dataset seen at a lower sequencing depth: every count of a cell kept with a probability
/// drawn for that cell (binomial thinning, the way a shallower run of the same library samples
/// its molecules). Training uses it for depth augmentation (TrainOptions::augment_depth).
#pragma once

#include <celltyper/dataset.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace celltyper {

/// The cells of `base` (not owned; must outlive this) with their counts thinned: a cell keeps
/// each of its molecules with probability p, drawn for the cell uniformly from [low, high]
/// (0 < low <= high <= 1). A count n becomes a Binomial(n, p) draw; a stored value that is not a
/// whole number is scaled by p. The draws are a function of `seed`, the cell's stored values and
/// the genes they belong to (`column_keys[j]` names the gene of column j, e.g. its Entrez id, or
/// is -1: such a column is keyed by its position and does not identify the cell; when
/// `column_keys` is empty or of another width every column is keyed by its position): never of
/// the cell's row, how rows are read (blocks, threads) or which other cells the dataset holds,
/// and with gene keys not of the order of the columns either. So the same
/// cell thinned in a reference file and in a model's reference sample (other rows, other column
/// order) gives the same copy. obs, var and matrix geometry are those of `base`; every matrix
/// source is thinned. `rows` (one flag per obs, or empty for every row): only the flagged rows
/// are thinned, the others read as cells without values (training copies a sample of a large
/// reference's cells and skips drawing the rest).
class ThinnedDataset final : public Dataset {
 public:
  /// `name` (default: the base's path and the keep range) is what messages call it.
  ThinnedDataset(const Dataset& base, double low, double high, std::uint64_t seed, std::vector<std::int64_t> column_keys = {},
                 std::vector<std::uint8_t> rows = {}, std::string name = {});

  [[nodiscard]] const std::string& path() const override { return name_; }
  [[nodiscard]] std::string format() const override { return base_.format(); }
  [[nodiscard]] std::int64_t n_obs() const override { return base_.n_obs(); }
  [[nodiscard]] std::int64_t n_vars() const override { return base_.n_vars(); }
  [[nodiscard]] DataFrame read_obs() const override { return base_.read_obs(); }
  [[nodiscard]] DataFrame read_obs_columns(const std::vector<std::string>& names) const override { return base_.read_obs_columns(names); }
  [[nodiscard]] DataFrame read_var() const override { return base_.read_var(); }
  [[nodiscard]] std::vector<std::string> matrix_sources() const override { return base_.matrix_sources(); }
  [[nodiscard]] DataFrame read_var_of(const std::string& source) const override { return base_.read_var_of(source); }
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override { return base_.matrix_info(source); }
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override;
  [[nodiscard]] std::string reading_note() const override { return base_.reading_note(); }
  [[nodiscard]] const Dataset& scan_base() const override { return base_.scan_base(); }

  /// The keep probability p of every cell of `source` (reads the unthinned matrix once).
  [[nodiscard]] std::vector<double> keep_fractions(const std::string& source) const;

 private:
  const Dataset& base_;
  double low_;
  double high_;
  std::uint64_t seed_;
  std::vector<std::int64_t> column_keys_;
  std::vector<std::uint8_t> rows_;
  std::string name_;
};

}  // namespace celltyper
