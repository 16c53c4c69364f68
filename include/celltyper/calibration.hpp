/// @file calibration.hpp
/// Temperature scaling of class probabilities (Guo et al. 2017, "On Calibration of Modern Neural
/// Networks"): one number T per model, fitted on held-out cells, so that a score reads as the chance
/// that the call is right. A tempered row is p^(1/T) renormalised (for softmax back ends, the softmax
/// of the logits / T); T < 1 sharpens, T > 1 softens, and the order of the classes never changes, so
/// neither does any label.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace celltyper {

/// Fewest held-out cells a temperature is fitted on; below it the probabilities stay as they are.
inline constexpr std::int64_t kMinCalibrationCells = 20;
/// The reason a model records when the user turned calibration off (annotate says nothing of it).
inline constexpr const char* kCalibrationTurnedOff = "turned off: --no-calibrate (Python calibrate=False)";
/// ... and what session 47's builds recorded for it.
inline constexpr const char* kCalibrationTurnedOffBefore = "--no-calibrate";

/// Temper every row of `values` [n x n_classes] in place with `temperature` (> 0): each row's
/// p^(1/T), renormalised (in double precision; a 0 stays 0, a row of zeros stays zeros). T = 1 is
/// the identity.
void temper_probabilities(float* values, std::int64_t n, int n_classes, double temperature);

/// A fitted temperature and what it does on the cells it was fitted on.
struct TemperatureFit {
  double temperature = 1.0;
  std::int64_t n_cells = 0;         ///< held-out cells used (a right set and probabilities)
  double accuracy = 0.0;            ///< share whose top class (the first highest column) is right
  double mean_confidence_before = 0.0, mean_confidence_after = 0.0;  ///< mean top probability
  double log_loss_before = 0.0, log_loss_after = 0.0;  ///< mean -ln(summed probability of the right classes), clipped at 1e-15
  double ece_before = 0.0, ece_after = 0.0;  ///< expected calibration error, 15 equal-width bins (metrics.hpp)
  /// Whether the accuracy bound set T (above the log-loss optimum): on held-out cells that are
  /// (nearly) all right the optimum sharpens without end.
  bool bounded = false;
  /// Held-out rows with a single non-zero probability (a unanimous kNN vote): no temperature
  /// changes them, so the fit leaves them out.
  std::int64_t n_one_hot = 0;
  /// Held-out cells with a coarse label (mixed granularity) that the fit left out: their label
  /// says only that a call below it may be right (train sets it; fit_temperature reads `right`).
  std::int64_t n_coarse_left_out = 0;
  /// ... or used, when fewer than kMinCalibrationCells held-out cells a temperature can move carry a
  /// class (their right set is the classes below the label; some may be rows no T changes).
  std::int64_t n_coarse_used = 0;
  /// Why there is no temperature (n_cells 0), else "".
  std::string reason;
};

/// Fit the temperature of `probabilities` [n x n_classes] on held-out cells whose right columns are
/// `right[i]` (its class; for a coarse label, the classes at or below it: their probabilities are
/// summed); cells with an empty set, a row of zeros or a single non-zero probability (which no T
/// changes) are left out. T minimises the mean log loss over [0.01, 100], then rises, when needed,
/// until the mean top probability is no higher than the Laplace-smoothed share of right calls,
/// (right + 1) / (cells + 2): a validation set where every call is right sends the log-loss optimum
/// towards 0 (certainty that no other dataset earns). At most 20,000 cells are read (evenly
/// spaced). T = 1 with a `reason` when fewer than kMinCalibrationCells cells are left, or when even
/// T = 100 leaves their mean top probability above the bound.
[[nodiscard]] TemperatureFit fit_temperature(const std::vector<float>& probabilities, int n_classes,
                                             const std::vector<std::vector<std::int32_t>>& right);

}  // namespace celltyper
