/// @file thinned_dataset.hpp
/// A dataset seen at a lower sequencing depth: every count of a cell kept with a probability
/// drawn for that cell (binomial thinning, the way a shallower run of the same library samples
/// its molecules). Training uses it for depth augmentation (TrainOptions::augment_depth).
#pragma once

#include <celltyper/dataset.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace celltyper {

/// The cells of `base` (not owned; must outlive this) with their counts thinned: cell `row` keeps
/// each of its molecules with probability `keep_fraction(row)`, drawn uniformly from
/// [low, high] (0 < low <= high <= 1). A count n becomes a Binomial(n, p) draw; a stored value
/// that is not a whole number is scaled by p. The draws depend only on `seed` and the row, never
/// on how rows are read (blocks, threads). obs, var and matrix geometry are those of `base`;
/// every matrix source is thinned.
class ThinnedDataset final : public Dataset {
 public:
  ThinnedDataset(const Dataset& base, double low, double high, std::uint64_t seed);

  [[nodiscard]] const std::string& path() const override { return name_; }
  [[nodiscard]] std::string format() const override { return base_.format(); }
  [[nodiscard]] std::int64_t n_obs() const override { return base_.n_obs(); }
  [[nodiscard]] std::int64_t n_vars() const override { return base_.n_vars(); }
  [[nodiscard]] DataFrame read_obs() const override { return base_.read_obs(); }
  [[nodiscard]] DataFrame read_var() const override { return base_.read_var(); }
  [[nodiscard]] std::vector<std::string> matrix_sources() const override { return base_.matrix_sources(); }
  [[nodiscard]] DataFrame read_var_of(const std::string& source) const override { return base_.read_var_of(source); }
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override { return base_.matrix_info(source); }
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override;

  /// The keep probability of cell `row`.
  [[nodiscard]] double keep_fraction(std::int64_t row) const;

 private:
  const Dataset& base_;
  double low_;
  double high_;
  std::uint64_t seed_;
  std::string name_;
};

}  // namespace celltyper
