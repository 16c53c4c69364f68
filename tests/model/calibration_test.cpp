// Calibration of a model's probabilities by one power (temperature scaling), fitted on held-out
// cells: the fit recovers the power that generated the labels, keeps every argmax, and leaves a
// model without a fit unchanged.
#include <celltyper/model_file.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

namespace celltyper {
namespace {

/// `rows` cells of `classes` classes whose probabilities are the true ones (labels drawn from
/// them) taken to the power 1 / `true_power`: too soft when true_power > 1, too sharp below 1.
void make_cells(double true_power, std::size_t rows, std::size_t classes, std::vector<float>& probabilities,
                std::vector<std::vector<std::int32_t>>& truth) {
  std::mt19937 rng(7);
  std::normal_distribution<double> score(0.0, 2.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  probabilities.assign(rows * classes, 0.0F);
  truth.assign(rows, {});
  std::vector<double> p(classes);
  for (std::size_t row = 0; row < rows; ++row) {
    for (auto& value : p) value = std::exp(score(rng));
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    double draw = uniform(rng) * total;
    std::size_t label = 0;
    while (label + 1 < classes && draw > p[label]) draw -= p[label++];
    truth[row] = {static_cast<std::int32_t>(label)};
    double shown_total = 0;
    for (std::size_t k = 0; k < classes; ++k) shown_total += std::pow(p[k] / total, 1.0 / true_power);
    for (std::size_t k = 0; k < classes; ++k) probabilities[row * classes + k] = static_cast<float>(std::pow(p[k] / total, 1.0 / true_power) / shown_total);
  }
}

TEST(Calibration, RecoversThePowerThatSoftenedOrSharpenedTheProbabilities) {
  for (const double true_power : {0.5, 1.0, 3.0}) {
    std::vector<float> probabilities;
    std::vector<std::vector<std::int32_t>> truth;
    make_cells(true_power, 4000, 5, probabilities, truth);
    const CalibrationFit fit = fit_calibration(probabilities, 5, truth);
    SCOPED_TRACE(true_power);
    EXPECT_NEAR(std::log(fit.power), std::log(true_power), 0.15);
    EXPECT_LE(fit.log_loss_after, fit.log_loss_before);
    EXPECT_EQ(fit.n_cells, 4000);
  }
}

TEST(Calibration, ACoarseLabelIsTheSumOfItsClassesAndRowsWithoutOneAreSkipped) {
  // Two fine classes always split a coarse label's cells evenly: as classes they are a coin
  // flip, as their coarse label certain. Told as the coarse set, the fit sharpens; the row with
  // no allowed class changes nothing.
  std::vector<float> probabilities;
  std::vector<std::vector<std::int32_t>> truth;
  for (int i = 0; i < 200; ++i) {
    probabilities.insert(probabilities.end(), {0.4F, 0.4F, 0.2F});
    truth.push_back({0, 1});
    probabilities.insert(probabilities.end(), {0.1F, 0.1F, 0.8F});
    truth.push_back({2});
  }
  probabilities.insert(probabilities.end(), {0.2F, 0.2F, 0.6F});
  truth.emplace_back();
  const CalibrationFit fit = fit_calibration(probabilities, 3, truth);
  EXPECT_EQ(fit.n_cells, 400);
  EXPECT_GT(fit.power, 3.0);
  EXPECT_LT(fit.log_loss_after, fit.log_loss_before);
}

TEST(Calibration, AModelsPowerKeepsEveryArgmaxAndRowsSumToOne) {
  CellTypeModel model;
  model.class_names = {"a", "b", "c"};
  std::vector<float> probabilities = {0.5F, 0.3F, 0.2F, 0.0F, 0.4F, 0.6F, 0.0F, 0.0F, 0.0F};
  const std::vector<float> before = probabilities;
  calibrate_probabilities(model, probabilities.data(), 3);  // (no calibration: unchanged)
  EXPECT_EQ(probabilities, before);
  EXPECT_EQ(calibration_power(model), 1.0);
  CalibrationFit fit;
  fit.power = 3.0;
  model.provenance["calibration"] = fit.to_json();
  calibrate_probabilities(model, probabilities.data(), 3);
  EXPECT_NEAR(probabilities[0], 0.125 / (0.125 + 0.027 + 0.008), 1e-6);
  EXPECT_EQ(probabilities[3], 0.0F);
  EXPECT_NEAR(probabilities[5], 0.216 / (0.064 + 0.216), 1e-6);
  for (int row = 0; row < 2; ++row) {
    EXPECT_NEAR(probabilities[row * 3] + probabilities[row * 3 + 1] + probabilities[row * 3 + 2], 1.0, 1e-6);
    const auto best = std::max_element(before.begin() + row * 3, before.begin() + row * 3 + 3) - (before.begin() + row * 3);
    EXPECT_EQ(std::max_element(probabilities.begin() + row * 3, probabilities.begin() + row * 3 + 3) - (probabilities.begin() + row * 3), best);
  }
  EXPECT_EQ(probabilities[6] + probabilities[7] + probabilities[8], 0.0F);  // an empty cell stays empty
}

}  // namespace
}  // namespace celltyper
