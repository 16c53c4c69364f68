// XGBoost back end (C API): learns blobs, its saved booster predicts the same in Python's
// xgboost, round-trips its state, is reproducible for a seed and the same with 1 and 2 threads,
// stops early on validation log-loss keeping the best round, rejects bad input.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>

#include "model/blobs.hpp"
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>

namespace celltyper {
namespace {

using test::Blobs;
using test::make_blobs;

FitOptions small_xgboost(std::uint64_t seed = 1) {
  FitOptions options;
  options.hyperparameters = {{"n_estimators", 40}, {"max_depth", 4}, {"eta", 0.3}};
  options.seed = seed;
  options.num_threads = 1;
  return options;
}

TEST(XGBoost, LearnsSeparableBlobs) {
  const Blobs all = make_blobs(1600, 10, 4, 3.0f, 1);
  auto classifier = make_xgboost();
  const std::vector<std::int32_t> train_labels(all.y.begin(), all.y.begin() + 1200);
  const std::vector<std::int32_t> held_out_labels(all.y.begin() + 1200, all.y.end());
  classifier->fit(all.x.data(), 1200, all.d, train_labels, 4, small_xgboost());
  const auto p = classifier->predict_proba(all.x.data(), 1200);
  for (std::int64_t i = 0; i < 1200; ++i) {
    double sum = 0;
    for (int c = 0; c < 4; ++c) sum += p[static_cast<std::size_t>(i * 4 + c)];
    ASSERT_NEAR(sum, 1.0, 1e-6);
  }
  EXPECT_GE(test::accuracy(p, train_labels, 4), 0.99);
  EXPECT_GE(test::accuracy(classifier->predict_proba(all.x.data() + 1200 * 10, 400), held_out_labels, 4), 0.97);
  const auto& report = classifier->fit_report();
  EXPECT_EQ(report["rounds_run"], 40);
  EXPECT_EQ(report["trees"], 160);
}

TEST(XGBoost, SavedBoosterPredictsTheSameInPythonXGBoost) {
  if (test::run_program({test::system_python(), "-c", "import xgboost, numpy"}).exit_code != 0) GTEST_SKIP() << "no python3-xgboost";
  const Blobs blobs = make_blobs(500, 6, 3, 1.0f, 2);  // overlapping: probabilities away from 0 and 1
  auto classifier = make_xgboost();
  auto options = small_xgboost();
  options.hyperparameters["subsample"] = 0.7;
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3, options);
  const auto p = classifier->predict_proba(blobs.x.data(), blobs.n);
  const ClassifierState state = classifier->export_state();
  test::TempDir dir;
  {
    const auto& booster = state.blobs.at("booster");
    std::ofstream out(dir.file("booster.ubj"), std::ios::binary);
    out.write(reinterpret_cast<const char*>(booster.data()), static_cast<std::streamsize>(booster.size()));
    // The features as the booster sees them: standardised exactly as Standardizer::apply does.
    std::ofstream features(dir.file("x.txt"));
    const auto& mean = state.double_arrays.at("standardize_mean").values;
    const auto& scale = state.double_arrays.at("standardize_scale").values;
    for (std::int64_t i = 0; i < blobs.n; ++i) {
      for (int j = 0; j < blobs.d; ++j) {
        const auto z = static_cast<float>((blobs.x[static_cast<std::size_t>(i * blobs.d + j)] - mean[j]) / scale[j]);
        features << fmt::format("{}{:.9g}", j ? " " : "", z);
      }
      features << '\n';
    }
  }
  const std::string script = fmt::format(
      "import numpy as np, xgboost as xgb\n"
      "b = xgb.Booster(model_file='{}')\n"
      "x = np.loadtxt('{}', dtype=np.float32)\n"
      "np.savetxt('{}', b.predict(xgb.DMatrix(x)), fmt='%.9g')\n",
      dir.file("booster.ubj"), dir.file("x.txt"), dir.file("p.txt"));
  const auto run = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(dir.file("p.txt"));
  double max_difference = 0;
  for (float value : p) {
    double expected = 0;
    ASSERT_TRUE(in >> expected);
    max_difference = std::max(max_difference, std::abs(expected - value));
  }
  EXPECT_LT(max_difference, 1e-6);
}

TEST(XGBoost, StateRoundTripGivesIdenticalProbabilities) {
  const Blobs blobs = make_blobs(400, 5, 3, 1.5f, 3);
  auto classifier = make_xgboost();
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3, small_xgboost());
  ClassifierState state = classifier->export_state();
  EXPECT_EQ(state.attributes["booster_format"], "ubj");
  auto loaded = make_xgboost();
  loaded->import_state(state, "test state");
  EXPECT_EQ(loaded->predict_proba(blobs.x.data(), blobs.n, 2), classifier->predict_proba(blobs.x.data(), blobs.n, 1));

  state.blobs.at("booster").resize(state.blobs.at("booster").size() / 2);
  auto bad = make_xgboost();
  try {
    bad->import_state(state, "model.h5");
    FAIL() << "a truncated booster was accepted";
  } catch (const InputError& error) {
    EXPECT_EQ(std::string(error.what()).rfind("model.h5: the xgboost booster does not load: ", 0), 0u) << error.what();
  }
}

TEST(XGBoost, SameSeedSameModelOneOrTwoThreads) {
  // Row and column sampling make the seed matter; XGBoost draws the row sample independently of
  // the thread count and sums histograms in double precision.
  const Blobs blobs = make_blobs(3000, 20, 4, 0.5f, 4);
  std::vector<std::vector<float>> predictions;
  for (auto [seed, threads] : std::vector<std::pair<std::uint64_t, int>>{{5, 1}, {5, 2}, {6, 1}}) {
    auto classifier = make_xgboost();
    auto options = small_xgboost(seed);
    options.num_threads = threads;
    classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 4, options);
    predictions.push_back(classifier->predict_proba(blobs.x.data(), blobs.n, threads));
  }
  double max_difference = 0;
  for (std::size_t i = 0; i < predictions[0].size(); ++i) {
    max_difference = std::max(max_difference, static_cast<double>(std::abs(predictions[0][i] - predictions[1][i])));
  }
  std::printf("xgboost 1 vs 2 threads: max |probability difference| %.3g\n", max_difference);
  EXPECT_LE(max_difference, 1e-6);
  EXPECT_NE(predictions[0], predictions[2]);
}

TEST(XGBoost, EarlyStoppingKeepsTheBestRound) {
  Blobs train = make_blobs(600, 8, 3, 0.4f, 7);
  Blobs held_out = make_blobs(300, 8, 3, 0.4f, 7);  // same centres; labels made noisy below
  std::mt19937 rng(9);
  for (auto& label : train.y) {
    if (rng() % 2 == 0) label = static_cast<std::int32_t>(rng() % 3);
  }
  auto options = small_xgboost();
  options.hyperparameters["n_estimators"] = 500;
  options.hyperparameters["early_stopping_rounds"] = 5;
  options.validation = {held_out.x.data(), held_out.n, held_out.y.data()};
  std::vector<nlohmann::json> rounds;
  options.on_epoch = [&](const nlohmann::json& record) { rounds.push_back(record); };
  auto classifier = make_xgboost();
  classifier->fit(train.x.data(), train.n, train.d, train.y, 3, options);
  const auto& report = classifier->fit_report();
  const int run = report["rounds_run"].get<int>();
  const int best = report["best_round"].get<int>();
  EXPECT_EQ(report["stop"], "early_stopping_rounds");
  EXPECT_LT(run, 500);
  EXPECT_EQ(run, best + 5);
  EXPECT_EQ(report["trees"], best * 3);
  ASSERT_EQ(static_cast<int>(rounds.size()), run);
  double lowest = 1e300;
  for (const auto& record : rounds) {
    for (const char* key : {"epoch", "loss", "train_accuracy", "validation_loss", "validation_accuracy", "validation_macro_f1", "seconds"}) {
      EXPECT_TRUE(record.contains(key)) << key << " missing in " << record.dump();
    }
    lowest = std::min(lowest, record["validation_loss"].get<double>());
  }
  EXPECT_EQ(rounds[static_cast<std::size_t>(best - 1)]["validation_loss"].get<double>(), lowest);
  // The kept booster is the best round's: its validation macro-F1 is the one reported then.
  const auto p = classifier->predict_proba(held_out.x.data(), held_out.n);
  std::vector<std::int32_t> predicted(static_cast<std::size_t>(held_out.n));
  for (std::int64_t i = 0; i < held_out.n; ++i) {
    const float* row = p.data() + i * 3;
    predicted[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(std::max_element(row, row + 3) - row);
  }
  EXPECT_NEAR(macro_f1_score(held_out.y.data(), predicted.data(), held_out.n, 3),
              rounds[static_cast<std::size_t>(best - 1)]["validation_macro_f1"].get<double>(), 1e-9);
  // Held-out cells given by a reader (train's route: read from its compressed rows) stop at the
  // same round with the same booster.
  options.validation.features = nullptr;
  options.validation.read = [&](std::int64_t first, std::int64_t count, float* out) {
    std::copy(held_out.x.begin() + first * held_out.d, held_out.x.begin() + (first + count) * held_out.d, out);
  };
  options.on_epoch = nullptr;
  auto read = make_xgboost();
  read->fit(train.x.data(), train.n, train.d, train.y, 3, options);
  EXPECT_EQ(read->fit_report()["best_round"], best);
  EXPECT_EQ(read->predict_proba(held_out.x.data(), held_out.n), p);
}

TEST(XGBoost, BadHyperparametersAreRejected) {
  const Blobs blobs = make_blobs(60, 3, 2, 3.0f, 11);
  auto message = [&](HyperParameters hyperparameters) {
    FitOptions options;
    options.hyperparameters = std::move(hyperparameters);
    try {
      make_xgboost()->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({{"subsample", 0}}), "subsample = 0 is outside [0.001, 1] for classifier 'xgboost'");
  EXPECT_EQ(message({{"max_depth", 3.5}}), "max_depth = 3.5 must be a whole number");
  EXPECT_EQ(std::string(message({{"learning_rate", 0.1}})).rfind("classifier 'xgboost' has no hyperparameter 'learning_rate'; XGBoost's learning_rate is its eta, 'eta' (its hyperparameters: ", 0), 0u);
}

}  // namespace
}  // namespace celltyper
