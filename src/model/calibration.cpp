// Calibration of a model's probabilities by one power (temperature scaling), fitted on the
// validation cells at training (model_file.hpp).
#include <celltyper/model_file.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace celltyper {

namespace {

constexpr double kMinPower = 0.1;
constexpr double kMaxPower = 10.0;
constexpr double kTiny = 1e-300;  // (a probability of 0 to the power: still 0; log of a sum: floored)

/// Mean negative log-likelihood of `truth` under p^power / sum p^power.
double log_loss(const std::vector<float>& probabilities, std::size_t n_classes, const std::vector<std::vector<std::int32_t>>& truth,
                double power) {
  double total = 0;
  std::int64_t counted = 0;
  for (std::size_t row = 0; row < truth.size(); ++row) {
    if (truth[row].empty()) continue;
    const float* p = probabilities.data() + row * n_classes;
    // In logs, scaled by the largest: p^power underflows for small p and large powers.
    double largest = -std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < n_classes; ++k) {
      if (p[k] > 0) largest = std::max(largest, power * std::log(static_cast<double>(p[k])));
    }
    if (!std::isfinite(largest)) continue;  // (an all-zero row: an empty cell)
    double all = 0;
    for (std::size_t k = 0; k < n_classes; ++k) {
      if (p[k] > 0) all += std::exp(power * std::log(static_cast<double>(p[k])) - largest);
    }
    double allowed = 0;
    for (const std::int32_t k : truth[row]) {
      const float value = p[static_cast<std::size_t>(k)];
      if (value > 0) allowed += std::exp(power * std::log(static_cast<double>(value)) - largest);
    }
    total -= std::log(std::max(allowed / all, kTiny));
    ++counted;
  }
  return counted == 0 ? 0.0 : total / static_cast<double>(counted);
}

}  // namespace

nlohmann::json CalibrationFit::to_json() const {
  return {{"method", "temperature scaling of the probabilities on the validation cells (p^power, renormalised)"},
          {"power", power},
          {"n_cells", n_cells},
          {"log_loss_before", log_loss_before},
          {"log_loss_after", log_loss_after}};
}

CalibrationFit fit_calibration(const std::vector<float>& probabilities, std::size_t n_classes,
                               const std::vector<std::vector<std::int32_t>>& truth) {
  CalibrationFit fit;
  for (const auto& allowed : truth) fit.n_cells += allowed.empty() ? 0 : 1;
  fit.log_loss_before = fit.log_loss_after = log_loss(probabilities, n_classes, truth, 1.0);
  if (fit.n_cells == 0 || n_classes < 2) return fit;
  // Golden-section search on log(power): the loss is smooth and, in practice, unimodal there.
  const double ratio = (std::sqrt(5.0) - 1) / 2;
  double low = std::log(kMinPower);
  double high = std::log(kMaxPower);
  double a = high - ratio * (high - low);
  double b = low + ratio * (high - low);
  double loss_a = log_loss(probabilities, n_classes, truth, std::exp(a));
  double loss_b = log_loss(probabilities, n_classes, truth, std::exp(b));
  for (int iteration = 0; iteration < 40; ++iteration) {
    if (loss_a <= loss_b) {
      high = b;
      b = a;
      loss_b = loss_a;
      a = high - ratio * (high - low);
      loss_a = log_loss(probabilities, n_classes, truth, std::exp(a));
    } else {
      low = a;
      a = b;
      loss_a = loss_b;
      b = low + ratio * (high - low);
      loss_b = log_loss(probabilities, n_classes, truth, std::exp(b));
    }
  }
  const double power = std::exp((low + high) / 2);
  const double loss = log_loss(probabilities, n_classes, truth, power);
  if (loss < fit.log_loss_before) {  // (never worse than leaving the probabilities as they are)
    fit.power = power;
    fit.log_loss_after = loss;
  }
  return fit;
}

double calibration_power(const CellTypeModel& model) {
  if (!model.provenance.is_object()) return 1.0;
  const auto found = model.provenance.find("calibration");
  if (found == model.provenance.end() || !found->is_object()) return 1.0;
  const double power = found->value("power", 1.0);
  return std::isfinite(power) && power > 0 ? power : 1.0;
}

void calibrate_probabilities(const CellTypeModel& model, float* probabilities, std::int64_t rows) {
  const double power = calibration_power(model);
  if (power == 1.0) return;
  const std::size_t n_classes = model.class_names.size();
  std::vector<double> logs(n_classes);
  for (std::int64_t row = 0; row < rows; ++row) {
    float* p = probabilities + static_cast<std::size_t>(row) * n_classes;
    double largest = -std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < n_classes; ++k) {
      logs[k] = p[k] > 0 ? power * std::log(static_cast<double>(p[k])) : -std::numeric_limits<double>::infinity();
      largest = std::max(largest, logs[k]);
    }
    if (!std::isfinite(largest)) continue;  // (an all-zero row stays so)
    double sum = 0;
    for (std::size_t k = 0; k < n_classes; ++k) sum += std::isfinite(logs[k]) ? std::exp(logs[k] - largest) : 0.0;
    for (std::size_t k = 0; k < n_classes; ++k) p[k] = std::isfinite(logs[k]) ? static_cast<float>(std::exp(logs[k] - largest) / sum) : 0.0F;
  }
}

}  // namespace celltyper
