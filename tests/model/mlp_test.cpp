// MLP back end (libtorch): learns separable blobs, predicts like a naive double-precision forward
// pass of its saved weights, round-trips its state, is reproducible for a seed and the same with 1
// and 2 threads, stops early on validation macro-F1 keeping the best epoch, rejects bad input.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>

#include "model/blobs.hpp"
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <cmath>

namespace celltyper {
namespace {

using test::Blobs;
using test::compress;
using test::CompressedRows;
using test::make_blobs;
using test::make_sparse_expression;

FitOptions small_mlp(std::uint64_t seed = 1) {
  FitOptions options;
  options.hyperparameters = {{"hidden", 32}, {"layers", 2}, {"epochs", 30}, {"batch_size", 64}, {"learning_rate", 3e-3}};
  options.seed = seed;
  options.num_threads = 1;
  return options;
}

/// Probabilities from the exported state by an obviously correct double-precision forward pass.
std::vector<double> naive_forward(const ClassifierState& state, const float* x, std::int64_t n) {
  const auto sizes = state.attributes.at("layer_sizes").get<std::vector<int>>();
  const auto& mean = state.double_arrays.at("standardize_mean").values;
  const auto& scale = state.double_arrays.at("standardize_scale").values;
  const int d = sizes.front();
  const int c = sizes.back();
  std::vector<double> out;
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> h(static_cast<std::size_t>(d));
    for (int j = 0; j < d; ++j) h[j] = static_cast<float>((x[i * d + j] - mean[j]) / scale[j]);
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      const auto& w = state.float_arrays.at(fmt::format("weight_{}", l)).values;
      const auto& b = state.float_arrays.at(fmt::format("bias_{}", l)).values;
      std::vector<double> next(static_cast<std::size_t>(sizes[l + 1]));
      for (int o = 0; o < sizes[l + 1]; ++o) {
        double sum = b[static_cast<std::size_t>(o)];
        for (int k = 0; k < sizes[l]; ++k) sum += static_cast<double>(w[static_cast<std::size_t>(o) * sizes[l] + k]) * h[k];
        next[o] = l + 2 < sizes.size() ? std::max(sum, 0.0) : sum;
      }
      h = next;
    }
    const double max = *std::max_element(h.begin(), h.end());
    double total = 0;
    for (double v : h) total += std::exp(v - max);
    for (int k = 0; k < c; ++k) out.push_back(std::exp(h[k] - max) / total);
  }
  return out;
}

TEST(Mlp, LearnsSeparableBlobs) {
  const Blobs all = make_blobs(1600, 10, 4, 3.0f, 1);
  Blobs train = all;  // first 1200 cells; the last 400 are held out
  train.n = 1200;
  train.x.resize(1200 * 10);
  train.y.resize(1200);
  const std::vector<std::int32_t> held_out_labels(all.y.begin() + 1200, all.y.end());
  auto classifier = make_mlp();
  classifier->fit(train.x.data(), train.n, train.d, train.y, 4, small_mlp());
  const auto p = classifier->predict_proba(train.x.data(), train.n);
  for (std::int64_t i = 0; i < train.n; ++i) {
    double sum = 0;
    for (int c = 0; c < 4; ++c) sum += p[static_cast<std::size_t>(i * 4 + c)];
    ASSERT_NEAR(sum, 1.0, 1e-5);
  }
  EXPECT_GE(test::accuracy(p, train.y, 4), 0.99);
  EXPECT_GE(test::accuracy(classifier->predict_proba(all.x.data() + 1200 * 10, 400), held_out_labels, 4), 0.98);
  const auto& report = classifier->fit_report();
  EXPECT_EQ(report["epochs_run"], 30);
  EXPECT_EQ(report["stop"], "epochs");
  EXPECT_EQ(report["layer_sizes"], nlohmann::json({10, 32, 32, 4}));
}

TEST(Mlp, TorchUsesOpenBlas) {
  const Blobs blobs = make_blobs(64, 4, 2, 3.0f, 2);
  auto classifier = make_mlp();
  auto options = small_mlp();
  options.hyperparameters["epochs"] = 1;
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
  // libtorch calls sgemm_ of libblas.so.3; scripts/setup.sh installs libopenblas0-pthread, whose
  // alternative has priority over reference BLAS.
  const std::string blas = classifier->fit_report()["blas"].get<std::string>();
  EXPECT_NE(blas.find("OpenBLAS"), std::string::npos) << blas;
}

TEST(Mlp, PredictionMatchesNaiveForwardPassAndIgnoresBatchComposition) {
  const Blobs blobs = make_blobs(300, 7, 5, 1.0f, 3);  // overlapping: probabilities away from 0 and 1
  auto classifier = make_mlp();
  auto options = small_mlp();
  options.hyperparameters["hidden"] = 40;  // not a multiple of the kernel's tile width
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 5, options);
  const auto p = classifier->predict_proba(blobs.x.data(), blobs.n);
  const auto expected = naive_forward(classifier->export_state(), blobs.x.data(), blobs.n);
  double max_difference = 0;
  for (std::size_t i = 0; i < p.size(); ++i) max_difference = std::max(max_difference, std::abs(p[i] - expected[i]));
  EXPECT_LT(max_difference, 1e-5);
  // A cell predicted alone gets exactly the probabilities it gets among the others.
  for (std::int64_t i : {0, 13, 299}) {
    const auto alone = classifier->predict_proba(blobs.x.data() + i * blobs.d, 1);
    for (int c = 0; c < 5; ++c) EXPECT_EQ(alone[static_cast<std::size_t>(c)], p[static_cast<std::size_t>(i * 5 + c)]);
  }
}

TEST(Mlp, StateRoundTripGivesIdenticalProbabilities) {
  const Blobs blobs = make_blobs(500, 6, 3, 1.5f, 4);
  auto classifier = make_mlp();
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3, small_mlp());
  const ClassifierState state = classifier->export_state();
  auto loaded = make_mlp();
  loaded->import_state(state, "test state");
  EXPECT_EQ(loaded->predict_proba(blobs.x.data(), blobs.n), classifier->predict_proba(blobs.x.data(), blobs.n));
  EXPECT_EQ(loaded->hyperparameters().at("hidden"), 32);

  ClassifierState broken = state;
  broken.float_arrays.at("weight_1").values.pop_back();
  auto bad = make_mlp();
  try {
    bad->import_state(broken, "model.h5");
    FAIL() << "a truncated weight matrix was accepted";
  } catch (const InputError& error) {
    EXPECT_EQ(std::string(error.what()), "model.h5: mlp layer 1 weights are missing or not 32 x 32");
  }
}

TEST(Mlp, SameSeedSameModelOtherSeedOtherModel) {
  const Blobs blobs = make_blobs(400, 6, 3, 1.0f, 5);
  std::vector<std::vector<float>> weights;
  for (std::uint64_t seed : {7, 7, 8}) {
    auto classifier = make_mlp();
    auto options = small_mlp(seed);
    options.hyperparameters["dropout"] = 0.3;
    classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3, options);
    weights.push_back(classifier->export_state().float_arrays.at("weight_0").values);
  }
  EXPECT_EQ(weights[0], weights[1]);
  EXPECT_NE(weights[0], weights[2]);
}

TEST(Mlp, OneAndTwoThreadsGiveTheSameModel) {
  // Big enough that torch's reductions and OpenBLAS split work across threads.
  const Blobs blobs = make_blobs(4000, 64, 6, 0.7f, 6);
  std::vector<ClassifierState> states;
  std::vector<std::vector<float>> predictions;
  for (int threads : {1, 2}) {
    auto classifier = make_mlp();
    FitOptions options;
    options.hyperparameters = {{"hidden", 256}, {"layers", 2}, {"epochs", 3}, {"batch_size", 512}};
    options.seed = 3;
    options.num_threads = threads;
    classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 6, options);
    states.push_back(classifier->export_state());
    predictions.push_back(classifier->predict_proba(blobs.x.data(), blobs.n, threads));
  }
  // The products run in fixed blocks on single-threaded OpenBLAS (mlp.cpp), every other op is
  // element-wise or row-wise: the same weights and probabilities, bit for bit.
  double max_weight_difference = 0;
  for (const auto& [name, array] : states[0].float_arrays) {
    const auto& other = states[1].float_arrays.at(name).values;
    for (std::size_t i = 0; i < array.values.size(); ++i) {
      max_weight_difference = std::max(max_weight_difference, static_cast<double>(std::abs(array.values[i] - other[i])));
    }
  }
  double max_probability_difference = 0;
  for (std::size_t i = 0; i < predictions[0].size(); ++i) {
    max_probability_difference = std::max(max_probability_difference, static_cast<double>(std::abs(predictions[0][i] - predictions[1][i])));
  }
  std::printf("mlp 1 vs 2 threads: max |weight difference| %.3g, max |probability difference| %.3g\n", max_weight_difference,
              max_probability_difference);
  EXPECT_EQ(max_weight_difference, 0.0);
  EXPECT_EQ(predictions[0], predictions[1]);
}

TEST(Mlp, CompressedRowsTrainWithoutADenseCopy) {
  // train hands the MLP its expression features in compressed rows: each batch is densified and
  // standardised when the trainer asks for it, and held-out cells are read a slice at a time. The
  // model must be the dense matrix's, bit for bit, with a row list (train's validation fit),
  // early stopping on held-out cells, and the general loss (a label set and per-cell weights).
  const Blobs blobs = make_sparse_expression(1200, 40, 4, 41);
  const Blobs held_out = make_sparse_expression(300, 40, 4, 42);
  const CompressedRows compressed = compress(blobs);
  std::vector<std::int64_t> rows;
  std::vector<std::int32_t> labels;
  std::vector<double> weights;
  for (std::int64_t i = 0; i < blobs.n; ++i) {
    if (i % 5 == 2) continue;
    rows.push_back(i);
    // Every 7th cell is labelled "class 0 or 1" (label set 0, code 4).
    labels.push_back(i % 7 == 0 && blobs.y[static_cast<std::size_t>(i)] < 2 ? 4 : blobs.y[static_cast<std::size_t>(i)]);
    weights.push_back(1.0 + static_cast<double>(i % 3));
  }
  const std::vector<std::vector<std::int32_t>> label_sets = {{0, 1}};
  for (const bool general : {false, true}) {
    SCOPED_TRACE(general ? "label sets and weights" : "plain labels");
    auto options = small_mlp(5);
    options.hyperparameters["epochs"] = 12;
    options.hyperparameters["patience"] = 3;
    options.rows = &rows;
    options.validation = {held_out.x.data(), held_out.n, held_out.y.data()};
    std::vector<std::int32_t> fit_labels = labels;
    if (general) {
      options.label_sets = label_sets;
      options.sample_weights = weights;
    } else {
      for (std::size_t i = 0; i < fit_labels.size(); ++i) fit_labels[i] = blobs.y[static_cast<std::size_t>(rows[i])];
    }
    const auto n = static_cast<std::int64_t>(rows.size());
    auto from_dense = make_mlp();
    from_dense->fit(blobs.x.data(), n, blobs.d, fit_labels, 4, options);
    // The compressed fit reads its held-out cells through ValidationSet::read (as train does).
    auto from_compressed = make_mlp();
    std::int64_t cells_read = 0;
    options.validation.features = nullptr;
    options.validation.read = [&](std::int64_t first, std::int64_t count, float* out) {
      std::copy(held_out.x.begin() + first * held_out.d, held_out.x.begin() + (first + count) * held_out.d, out);
      cells_read += count;
    };
    from_compressed->fit(compressed.view(blobs.n, blobs.d), n, fit_labels, 4, options);
    EXPECT_GE(cells_read, held_out.n * (1 + from_compressed->fit_report().at("epochs_run").get<std::int64_t>()));
    const ClassifierState a = from_compressed->export_state();
    const ClassifierState b = from_dense->export_state();
    ASSERT_EQ(a.float_arrays.size(), b.float_arrays.size());
    for (const auto& [name, array] : b.float_arrays) EXPECT_EQ(a.float_arrays.at(name).values, array.values) << name;
    EXPECT_EQ(a.double_arrays.at("standardize_mean").values, b.double_arrays.at("standardize_mean").values);
    EXPECT_EQ(a.double_arrays.at("standardize_scale").values, b.double_arrays.at("standardize_scale").values);
    for (const char* key : {"epochs_run", "best_epoch", "best_validation_macro_f1", "final_loss", "stop"}) {
      EXPECT_EQ(from_compressed->fit_report().at(key), from_dense->fit_report().at(key)) << key;
    }
    EXPECT_EQ(from_compressed->predict_proba(held_out.x.data(), held_out.n), from_dense->predict_proba(held_out.x.data(), held_out.n));
    EXPECT_GT(test::accuracy(from_compressed->predict_proba(held_out.x.data(), held_out.n), held_out.y, 4), 0.8);
  }
}

TEST(Mlp, EarlyStoppingKeepsTheBestEpoch) {
  // Labels without any relation to the features: validation macro-F1 stalls at chance.
  Blobs train = make_blobs(600, 8, 3, 0.0f, 7);
  Blobs held_out = make_blobs(300, 8, 3, 0.0f, 8);
  std::mt19937 rng(9);
  for (auto& label : train.y) label = static_cast<std::int32_t>(rng() % 3);
  for (auto& label : held_out.y) label = static_cast<std::int32_t>(rng() % 3);
  auto options = small_mlp();
  options.hyperparameters["epochs"] = 300;
  options.hyperparameters["patience"] = 4;
  options.validation = {held_out.x.data(), held_out.n, held_out.y.data()};
  std::vector<nlohmann::json> epochs;
  options.on_epoch = [&](const nlohmann::json& record) { epochs.push_back(record); };
  auto classifier = make_mlp();
  classifier->fit(train.x.data(), train.n, train.d, train.y, 3, options);
  const auto& report = classifier->fit_report();
  const int run = report["epochs_run"].get<int>();
  const int best = report["best_epoch"].get<int>();
  EXPECT_EQ(report["stop"], "patience");
  EXPECT_LT(run, 300);
  EXPECT_EQ(run, best + 4);
  ASSERT_EQ(static_cast<int>(epochs.size()), run);
  double best_seen = -1;
  for (const auto& record : epochs) {
    for (const char* key : {"epoch", "loss", "train_accuracy", "validation_accuracy", "validation_macro_f1", "learning_rate", "seconds"}) {
      EXPECT_TRUE(record.contains(key)) << key << " missing in " << record.dump();
    }
    best_seen = std::max(best_seen, record["validation_macro_f1"].get<double>());
  }
  EXPECT_EQ(epochs[static_cast<std::size_t>(best - 1)]["validation_macro_f1"].get<double>(), best_seen);
  EXPECT_EQ(report["best_validation_macro_f1"].get<double>(), best_seen);
  // The kept weights are the best epoch's: scoring the validation cells again gives its macro-F1.
  const auto p = classifier->predict_proba(held_out.x.data(), held_out.n);
  std::vector<std::int32_t> predicted(static_cast<std::size_t>(held_out.n));
  for (std::int64_t i = 0; i < held_out.n; ++i) {
    const float* row = p.data() + i * 3;
    predicted[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(std::max_element(row, row + 3) - row);
  }
  EXPECT_NEAR(macro_f1_score(held_out.y.data(), predicted.data(), held_out.n, 3), best_seen, 1e-9);
}

TEST(Mlp, LearningRateWarmsUpThenDecays) {
  const Blobs blobs = make_blobs(256, 4, 2, 3.0f, 10);
  auto options = small_mlp();
  options.hyperparameters["epochs"] = 20;
  options.hyperparameters["batch_size"] = 256;  // one step per epoch
  options.hyperparameters["warmup_fraction"] = 0.2;
  options.hyperparameters["learning_rate"] = 0.01;
  std::vector<double> rates;
  options.on_epoch = [&](const nlohmann::json& record) { rates.push_back(record["learning_rate"].get<double>()); };
  make_mlp()->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
  ASSERT_EQ(rates.size(), 20u);
  // 4 warm-up steps: 0.0025, 0.005, 0.0075, 0.01; then cosine from 0.01 towards 0 over 16 steps.
  EXPECT_NEAR(rates[0], 0.0025, 1e-12);
  EXPECT_NEAR(rates[3], 0.01, 1e-12);
  EXPECT_NEAR(rates[4], 0.01, 1e-12);
  EXPECT_NEAR(rates[12], 0.005, 1e-12);  // halfway through the decay
  for (std::size_t i = 5; i < rates.size(); ++i) EXPECT_LT(rates[i], rates[i - 1]);
}

TEST(Mlp, BadInputIsRejected) {
  const Blobs blobs = make_blobs(60, 3, 2, 3.0f, 11);
  auto message = [&](HyperParameters hyperparameters) {
    FitOptions options;
    options.hyperparameters = std::move(hyperparameters);
    try {
      make_mlp()->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({{"dropout", 1.0}}), "dropout = 1 is outside [0, 0.95] for classifier 'mlp'");
  EXPECT_EQ(message({{"batch_size", 0}}), "batch_size = 0 is outside [1, 1048576] for classifier 'mlp'");
  EXPECT_EQ(message({{"hidden", 2.5}}), "hidden = 2.5 must be a whole number");
  EXPECT_EQ(std::string(message({{"l2", 1}})).rfind("classifier 'mlp' has no hyperparameter 'l2'; 'l2' is a hyperparameter of logreg, not of mlp (its hyperparameters: ", 0), 0u);

  std::vector<std::int32_t> bad_labels(5, 2);
  std::vector<float> features(5 * 3, 0.0f);
  FitOptions options;
  options.validation = {features.data(), 5, bad_labels.data()};
  try {
    make_mlp()->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
    FAIL() << "validation label 2 of a 2-class problem was accepted";
  } catch (const InputError& error) {
    EXPECT_EQ(std::string(error.what()), "validation label code 2 of cell 0 is not in -1..1");
  }
  bad_labels.assign(5, 0);
  features[4] = std::nanf("");
  try {
    make_mlp()->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
    FAIL() << "a NaN validation feature was accepted";
  } catch (const InputError& error) {
    EXPECT_EQ(std::string(error.what()), "validation feature 1 of cell 1 is not finite");
  }
  // The same check on held-out cells given by a reader, past the first slice it reads.
  const std::vector<std::int32_t> many_labels(static_cast<std::size_t>(kValidationSlice + 10), 0);
  options.validation = {};
  options.validation.n = static_cast<std::int64_t>(many_labels.size());
  options.validation.labels = many_labels.data();
  options.validation.read = [](std::int64_t first, std::int64_t count, float* out) {
    std::fill(out, out + count * 3, 0.0f);
    if (first <= kValidationSlice + 3 && kValidationSlice + 3 < first + count) out[(kValidationSlice + 3 - first) * 3 + 2] = INFINITY;
  };
  try {
    make_mlp()->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
    FAIL() << "an infinite validation feature was accepted";
  } catch (const InputError& error) {
    EXPECT_EQ(std::string(error.what()), fmt::format("validation feature 2 of cell {} is not finite", kValidationSlice + 3));
  }
  options.validation.read = nullptr;
  try {
    make_mlp()->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 2, options);
    FAIL() << "a validation set without features was accepted";
  } catch (const InputError& error) {
    EXPECT_EQ(std::string(error.what()), fmt::format("validation set of {} cells without features or labels", kValidationSlice + 10));
  }
}

TEST(MacroF1, MatchesHandComputedValues) {
  // truth:      0 0 1 1 2 -1
  // prediction: 0 1 1 1 0  2
  // class 0: TP 1, |truth| 2, |pred| 2 -> 0.5; class 1: TP 2, 2, 3 -> 0.8; class 2: TP 0 -> 0;
  // unknown (-1): never predicted -> 0.
  const std::vector<std::int32_t> truth = {0, 0, 1, 1, 2, -1};
  const std::vector<std::int32_t> prediction = {0, 1, 1, 1, 0, 2};
  EXPECT_NEAR(macro_f1_score(truth.data(), prediction.data(), 6, 3), (0.5 + 0.8 + 0 + 0) / 4, 1e-12);
  // Classes absent from both are left out (scikit-learn's label set).
  const std::vector<std::int32_t> same = {1, 1, 3};
  EXPECT_NEAR(macro_f1_score(same.data(), same.data(), 3, 5), 1.0, 1e-12);
}

}  // namespace
}  // namespace celltyper
