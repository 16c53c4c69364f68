// Temperature scaling of class probabilities (calibration.hpp).
#include <celltyper/calibration.hpp>
#include <celltyper/error.hpp>
#include <celltyper/metrics.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace celltyper {

void temper_probabilities(float* values, std::int64_t n, int n_classes, double temperature) {
  if (!(temperature > 0) || !std::isfinite(temperature)) throw InputError(fmt::format("calibration temperature {} is not positive", temperature));
  if (temperature == 1.0) return;
  const auto c = static_cast<std::size_t>(n_classes);
  std::vector<double> tempered(c);
  for (std::int64_t i = 0; i < n; ++i) {
    float* row = values + static_cast<std::size_t>(i) * c;
    const float top = *std::max_element(row, row + c);
    if (!(top > 0)) continue;
    const double log_top = std::log(static_cast<double>(top));
    double sum = 0;
    for (std::size_t k = 0; k < c; ++k) {
      tempered[k] = row[k] > 0 ? std::exp((std::log(static_cast<double>(row[k])) - log_top) / temperature) : 0.0;
      sum += tempered[k];
    }
    for (std::size_t k = 0; k < c; ++k) row[k] = static_cast<float>(tempered[k] / sum);
  }
}

namespace {

constexpr double kMinTemperature = 0.01;
constexpr double kMaxTemperature = 100.0;
constexpr std::size_t kMaxCells = 20000;
const double kMaxLoss = -std::log(1e-15);  // (scikit-learn's log_loss clip)

/// Log-probabilities of the cells a fit reads: per cell its row (-inf for 0), its right columns.
struct HeldOut {
  std::vector<double> log_p;  // cells x c
  std::vector<std::vector<std::int32_t>> right;
  std::vector<std::uint8_t> top_right;  // whether the first highest column is right
  std::size_t c = 0;
  [[nodiscard]] std::size_t n() const { return right.size(); }
};

/// log sum exp of `values` / T over `columns` (every column when null).
double log_sum(const double* values, std::size_t c, double temperature, const std::vector<std::int32_t>* columns) {
  double top = -std::numeric_limits<double>::infinity();
  const std::size_t m = columns == nullptr ? c : columns->size();
  for (std::size_t k = 0; k < m; ++k) top = std::max(top, values[columns == nullptr ? k : static_cast<std::size_t>((*columns)[k])] / temperature);
  if (!std::isfinite(top)) return top;
  double sum = 0;
  for (std::size_t k = 0; k < m; ++k) sum += std::exp(values[columns == nullptr ? k : static_cast<std::size_t>((*columns)[k])] / temperature - top);
  return top + std::log(sum);
}

struct Figures {
  double log_loss = 0, mean_confidence = 0, ece = 0;
};

Figures figures_at(const HeldOut& cells, double temperature) {
  Figures out;
  std::array<double, kCalibrationBins> confidence{};
  std::array<double, kCalibrationBins> right{};
  std::array<std::size_t, kCalibrationBins> count{};
  const std::size_t c = cells.c;
  for (std::size_t i = 0; i < cells.n(); ++i) {
    const double* row = cells.log_p.data() + i * c;
    const double all = log_sum(row, c, temperature, nullptr);
    const double top = *std::max_element(row, row + c) / temperature;
    const double p_top = std::exp(top - all);
    out.log_loss += std::min(kMaxLoss, all - log_sum(row, c, temperature, &cells.right[i]));
    out.mean_confidence += p_top;
    const std::size_t bin = calibration_bin(p_top);
    confidence[bin] += p_top;
    right[bin] += cells.top_right[i];
    ++count[bin];
  }
  const auto n = static_cast<double>(cells.n());
  for (std::size_t b = 0; b < kCalibrationBins; ++b) {
    if (count[b] > 0) out.ece += std::abs(confidence[b] - right[b]) / n;
  }
  out.log_loss /= n;
  out.mean_confidence /= n;
  return out;
}

}  // namespace

TemperatureFit fit_temperature(const std::vector<float>& probabilities, int n_classes, const std::vector<std::vector<std::int32_t>>& right) {
  const auto c = static_cast<std::size_t>(n_classes);
  if (n_classes < 1 || probabilities.size() != right.size() * c) {
    throw InputError(fmt::format("fit_temperature: {} probabilities for {} cells x {} classes", probabilities.size(), right.size(), n_classes));
  }
  std::vector<std::size_t> usable;
  TemperatureFit fit;
  std::int64_t with_class = 0;
  for (std::size_t i = 0; i < right.size(); ++i) {
    const float* row = probabilities.data() + i * c;
    if (right[i].empty() || !(*std::max_element(row, row + c) > 0)) continue;
    ++with_class;
    if (std::count_if(row, row + c, [](float value) { return value > 0; }) < 2) {
      ++fit.n_one_hot;  // (p^(1/T) renormalised is the same row for every T)
      continue;
    }
    usable.push_back(i);
  }
  if (static_cast<std::int64_t>(usable.size()) < kMinCalibrationCells) {
    fit.reason = fit.n_one_hot > 0 ? fmt::format("fewer than {} held-out cells with a class of the model and more than one class "
                                                 "probability above 0 ({} of {} have a single one, which no temperature changes)",
                                                 kMinCalibrationCells, fit.n_one_hot, with_class)
                                   : fmt::format("fewer than {} held-out cells with a class of the model ({})", kMinCalibrationCells, with_class);
    return fit;
  }
  HeldOut cells;
  cells.c = c;
  const std::size_t take = std::min(usable.size(), kMaxCells);
  for (std::size_t t = 0; t < take; ++t) {
    const std::size_t i = usable[t * usable.size() / take];  // (evenly spaced)
    const float* row = probabilities.data() + i * c;
    for (std::size_t k = 0; k < c; ++k) cells.log_p.push_back(row[k] > 0 ? std::log(static_cast<double>(row[k])) : -std::numeric_limits<double>::infinity());
    for (const auto column : right[i]) {
      if (column < 0 || static_cast<std::size_t>(column) >= c) throw InputError(fmt::format("fit_temperature: column {} of {} classes", column, n_classes));
    }
    cells.right.push_back(right[i]);
    const auto top = static_cast<std::int32_t>(std::max_element(row, row + c) - row);
    cells.top_right.push_back(std::find(right[i].begin(), right[i].end(), top) != right[i].end() ? 1 : 0);
  }
  const double n = static_cast<double>(cells.n());
  double n_right = 0;
  for (const auto value : cells.top_right) n_right += value;

  // The log loss's minimum over log T: a grid, then golden-section search between the grid points
  // around the best one.
  constexpr int kGrid = 41;
  const double low = std::log(kMinTemperature);
  const double high = std::log(kMaxTemperature);
  const auto loss = [&](double log_t) { return figures_at(cells, std::exp(log_t)).log_loss; };
  int best = 0;
  double best_loss = std::numeric_limits<double>::infinity();
  for (int g = 0; g < kGrid; ++g) {
    const double value = loss(low + (high - low) * g / (kGrid - 1));
    if (value < best_loss) {
      best_loss = value;
      best = g;
    }
  }
  double a = low + (high - low) * std::max(0, best - 1) / (kGrid - 1);
  double b = low + (high - low) * std::min(kGrid - 1, best + 1) / (kGrid - 1);
  const double ratio = (std::sqrt(5.0) - 1) / 2;
  double x1 = b - ratio * (b - a);
  double x2 = a + ratio * (b - a);
  double f1 = loss(x1);
  double f2 = loss(x2);
  for (int iteration = 0; iteration < 40; ++iteration) {
    if (f1 <= f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - ratio * (b - a);
      f1 = loss(x1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + ratio * (b - a);
      f2 = loss(x2);
    }
  }
  double log_t = (a + b) / 2;
  // The bound: the mean top probability falls as T rises; no higher than (right + 1) / (cells + 2).
  const double bound = (n_right + 1) / (n + 2);
  if (figures_at(cells, std::exp(log_t)).mean_confidence > bound) {
    if (figures_at(cells, kMaxTemperature).mean_confidence > bound) {
      fit.reason = fmt::format("the held-out cells' mean score stays above their share of right calls ({:.2f}) at every temperature",
                               n_right / n);
      return fit;
    }
    double lo = log_t;
    double hi = high;
    for (int iteration = 0; iteration < 60; ++iteration) {
      const double mid = (lo + hi) / 2;
      (figures_at(cells, std::exp(mid)).mean_confidence > bound ? lo : hi) = mid;
    }
    log_t = hi;
    fit.bounded = true;
  }
  fit.temperature = std::exp(log_t);
  const Figures before = figures_at(cells, 1.0);
  const Figures after = figures_at(cells, fit.temperature);
  fit.n_cells = static_cast<std::int64_t>(cells.n());
  fit.accuracy = n_right / n;
  fit.mean_confidence_before = before.mean_confidence;
  fit.mean_confidence_after = after.mean_confidence;
  fit.log_loss_before = before.log_loss;
  fit.log_loss_after = after.log_loss;
  fit.ece_before = before.ece;
  fit.ece_after = after.ece;
  return fit;
}

}  // namespace celltyper
