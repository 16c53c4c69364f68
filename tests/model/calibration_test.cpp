// Temperature scaling (calibration.hpp): tempering, the fit against a known temperature, the bound
// on all-right held-out cells, coarse labels' summed probabilities, and the classifier and model
// carrying the temperature (train fits it, a saved model keeps it, a refit inherits it).
#include <celltyper/annotate.hpp>
#include <celltyper/calibration.hpp>
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/model_file.hpp>

#include "blobs.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

namespace celltyper {
namespace {

std::vector<double> softmax(const std::vector<double>& z, double temperature) {
  const double top = *std::max_element(z.begin(), z.end());
  std::vector<double> p(z.size());
  double sum = 0;
  for (std::size_t k = 0; k < z.size(); ++k) sum += p[k] = std::exp((z[k] - top) / temperature);
  for (double& value : p) value /= sum;
  return p;
}

TEST(Calibration, TemperingIsTheSoftmaxOfTheLogitsOverTheTemperature) {
  const std::vector<double> z = {2.0, -1.0, 0.5, -30.0};
  const std::vector<double> p = softmax(z, 1.0);
  for (const double temperature : {0.25, 1.0, 3.0}) {
    std::vector<float> row(p.begin(), p.end());
    temper_probabilities(row.data(), 1, 4, temperature);
    const std::vector<double> expected = softmax(z, temperature);
    for (std::size_t k = 0; k < z.size(); ++k) EXPECT_NEAR(row[k], expected[k], 1e-6) << temperature;
    EXPECT_NEAR(std::accumulate(row.begin(), row.end(), 0.0), 1.0, 1e-6);
  }
  // A zero stays zero (a kNN vote no neighbour cast), a row of zeros stays zeros (no model gene).
  std::vector<float> rows = {0.7f, 0.3f, 0.0f, 0.0f, 0.0f, 0.0f};
  temper_probabilities(rows.data(), 2, 3, 0.5);
  EXPECT_NEAR(rows[0], 0.49 / 0.58, 1e-6);
  EXPECT_NEAR(rows[1], 0.09 / 0.58, 1e-6);
  EXPECT_EQ(rows[2], 0.0f);
  EXPECT_EQ(rows[3] + rows[4] + rows[5], 0.0f);
  EXPECT_THROW(temper_probabilities(rows.data(), 2, 3, 0.0), InputError);
  EXPECT_THROW(temper_probabilities(rows.data(), 2, 3, std::nan("")), InputError);
}

/// Held-out cells whose model probabilities are softmax(z) while their labels are drawn from
/// softmax(z / true_temperature): a model under-confident by that temperature when it is below 1.
struct Miscalibrated {
  std::vector<float> probabilities;
  std::vector<std::vector<std::int32_t>> right;
};

Miscalibrated miscalibrated(std::size_t n, int classes, double true_temperature, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  Miscalibrated out;
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> z(static_cast<std::size_t>(classes));
    for (double& value : z) value = 0.6 * normal(rng);
    z[i % static_cast<std::size_t>(classes)] += 1.0;
    for (const double p : softmax(z, 1.0)) out.probabilities.push_back(static_cast<float>(p));
    const std::vector<double> truth = softmax(z, true_temperature);
    double u = uniform(rng);
    std::int32_t label = 0;
    for (; label + 1 < classes && u > truth[static_cast<std::size_t>(label)]; ++label) u -= truth[static_cast<std::size_t>(label)];
    out.right.push_back({label});
  }
  return out;
}

TEST(Calibration, FitsTheTemperatureThatMadeTheLabels) {
  for (const double true_temperature : {0.3, 0.6, 2.0}) {
    const Miscalibrated cells = miscalibrated(6000, 5, true_temperature, 7);
    const TemperatureFit fit = fit_temperature(cells.probabilities, 5, cells.right);
    EXPECT_EQ(fit.n_cells, 6000);
    EXPECT_NEAR(std::log(fit.temperature), std::log(true_temperature), 0.12) << true_temperature;
    EXPECT_LT(fit.log_loss_after, fit.log_loss_before);
    EXPECT_LT(fit.ece_after, fit.ece_before);
    EXPECT_LT(fit.ece_after, 0.03);
    EXPECT_NEAR(fit.mean_confidence_after, fit.accuracy, 0.03);
  }
  // The fitted temperature is the log loss's minimum, or (when that minimum's mean top probability
  // exceeds the smoothed accuracy) the bound, above the minimum.
  int bounded = 0;
  for (const unsigned seed : {11u, 12u, 13u, 14u}) {
    const Miscalibrated cells = miscalibrated(3000, 4, 0.5, seed);
    const TemperatureFit fit = fit_temperature(cells.probabilities, 4, cells.right);
    const auto loss_at = [&](double temperature) {
      std::vector<float> p = cells.probabilities;
      temper_probabilities(p.data(), 3000, 4, temperature);
      double loss = 0;
      for (std::size_t i = 0; i < 3000; ++i) loss -= std::log(p[i * 4 + static_cast<std::size_t>(cells.right[i][0])]);
      return loss / 3000;
    };
    EXPECT_NEAR(loss_at(fit.temperature), fit.log_loss_after, 1e-5);
    EXPECT_LT(loss_at(fit.temperature), loss_at(fit.temperature * 1.05));
    if (fit.bounded) {
      EXPECT_NEAR(fit.mean_confidence_after, (fit.accuracy * 3000 + 1) / 3002, 1e-6) << seed;
    } else {
      EXPECT_LT(loss_at(fit.temperature), loss_at(fit.temperature / 1.05)) << seed;
      EXPECT_LE(fit.mean_confidence_after, (fit.accuracy * 3000 + 1) / 3002) << seed;
    }
    bounded += fit.bounded ? 1 : 0;
  }
  EXPECT_GT(bounded, 0);  // (both cases met)
  EXPECT_LT(bounded, 4);
}

TEST(Calibration, HeldOutCellsThatAreAllRightDoNotMakeScoresCertain) {
  // Every held-out call right: the log loss falls without end as T falls; the bound stops it where
  // the mean top probability is (right + 1) / (cells + 2).
  std::vector<float> probabilities;
  std::vector<std::vector<std::int32_t>> right;
  for (int i = 0; i < 48; ++i) {
    probabilities.insert(probabilities.end(), {0.6f, 0.3f, 0.1f});
    right.push_back({0});
  }
  const TemperatureFit fit = fit_temperature(probabilities, 3, right);
  EXPECT_TRUE(fit.bounded);
  EXPECT_EQ(fit.accuracy, 1.0);
  EXPECT_NEAR(fit.mean_confidence_after, 49.0 / 50.0, 1e-6);
  EXPECT_GT(fit.temperature, 0.01);
  EXPECT_LT(fit.temperature, 1.0);
}

TEST(Calibration, ACoarseLabelIsRightWithTheSumOfItsClassesAndTooFewCellsFitNothing) {
  // Cells labelled with a coarse term {0, 1}: the model splits them between its two classes below it
  // (0.45 / 0.45): their summed probability, not either class's, is what the fit reads, and it
  // is already 0.9 right (accuracy 1): the fit sharpens towards the bound, never softens.
  std::vector<float> probabilities;
  std::vector<std::vector<std::int32_t>> right;
  for (int i = 0; i < 40; ++i) {
    probabilities.insert(probabilities.end(), {0.45f, 0.45f, 0.1f});
    right.push_back({0, 1});
  }
  const TemperatureFit fit = fit_temperature(probabilities, 3, right);
  EXPECT_EQ(fit.accuracy, 1.0);
  EXPECT_LT(fit.temperature, 1.0);
  EXPECT_NEAR(fit.log_loss_before, -std::log(0.9), 1e-6);
  // Cells without a right class (a class the validation fit lacks) are left out; 19 cells: none.
  right.assign(40, {});
  for (int i = 0; i < 19; ++i) right[static_cast<std::size_t>(i)] = {2};
  const TemperatureFit none = fit_temperature(probabilities, 3, right);
  EXPECT_EQ(none.n_cells, 0);
  EXPECT_EQ(none.temperature, 1.0);
  EXPECT_THROW((void)fit_temperature(probabilities, 4, right), InputError);
}

TEST(Calibration, RowsNoTemperatureChangesAreLeftOutAndAnUnreachableBoundFitsNothing) {
  // A kNN vote every neighbour agreed on is one-hot whatever T: such rows are left out of the fit
  // (all of them: nothing to fit), and counted.
  std::vector<float> probabilities;
  std::vector<std::vector<std::int32_t>> right;
  for (int i = 0; i < 30; ++i) {
    probabilities.insert(probabilities.end(), {1.0f, 0.0f, 0.0f});
    right.push_back({i % 2});
  }
  const TemperatureFit unanimous = fit_temperature(probabilities, 3, right);
  EXPECT_EQ(unanimous.n_cells, 0);
  EXPECT_EQ(unanimous.temperature, 1.0);
  EXPECT_EQ(unanimous.n_one_hot, 30);
  EXPECT_NE(unanimous.reason.find("30 of 30 have a single one"), std::string::npos) << unanimous.reason;
  // Beside 30 mixed rows the fit reads those alone.
  for (int i = 0; i < 30; ++i) {
    probabilities.insert(probabilities.end(), {0.5f, 0.3f, 0.2f});
    right.push_back({0});
  }
  const TemperatureFit mixed = fit_temperature(probabilities, 3, right);
  EXPECT_EQ(mixed.n_cells, 30);
  EXPECT_EQ(mixed.n_one_hot, 30);
  EXPECT_EQ(mixed.accuracy, 1.0);
  // Mostly wrong two-way splits: even T = 100 leaves the mean top probability near 0.5, above
  // the share right (0.2): no temperature meets the bound, so none is fitted.
  std::vector<float> split;
  std::vector<std::vector<std::int32_t>> wrong;
  for (int i = 0; i < 50; ++i) {
    split.insert(split.end(), {0.7f, 0.3f});
    wrong.push_back({i % 5 == 0 ? 0 : 1});
  }
  const TemperatureFit unreachable = fit_temperature(split, 2, wrong);
  EXPECT_EQ(unreachable.n_cells, 0);
  EXPECT_EQ(unreachable.temperature, 1.0);
  EXPECT_NE(unreachable.reason.find("at every temperature"), std::string::npos) << unreachable.reason;
}

TEST(Calibration, TheClassifierAppliesAndKeepsItsTemperatureAndANewFitResetsIt) {
  const test::Blobs blobs = test::make_blobs(120, 6, 3, 1.0f, 5);
  auto classifier = make_classifier("logreg");
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3);
  const std::vector<float> raw = classifier->predict_proba(blobs.x.data(), blobs.n);
  classifier->set_temperature(0.5);
  std::vector<float> expected = raw;
  temper_probabilities(expected.data(), blobs.n, 3, 0.5);
  const std::vector<float> tempered = classifier->predict_proba(blobs.x.data(), blobs.n);
  for (std::size_t i = 0; i < raw.size(); ++i) EXPECT_NEAR(tempered[i], expected[i], 1e-6);

  auto loaded = make_classifier("logreg");
  loaded->import_state(classifier->export_state(), "test");
  EXPECT_EQ(loaded->temperature(), 0.5);
  EXPECT_EQ(loaded->predict_proba(blobs.x.data(), blobs.n), tempered);
  ClassifierState older = classifier->export_state();  // a model from before calibration
  older.attributes.erase("temperature");
  loaded->import_state(older, "test");
  EXPECT_EQ(loaded->temperature(), 1.0);
  ClassifierState bad = classifier->export_state();
  bad.attributes["temperature"] = -1.0;
  EXPECT_THROW(loaded->import_state(bad, "test"), InputError);
  EXPECT_THROW(classifier->set_temperature(0.0), InputError);

  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3);
  EXPECT_EQ(classifier->temperature(), 1.0);
}

}  // namespace
}  // namespace celltyper
