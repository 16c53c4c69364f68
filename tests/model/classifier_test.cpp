// Classifiers: logistic regression against scikit-learn and its optimality conditions, kNN against
// hand cases and a naive oracle, thread-count invariance, hyperparameter validation.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>

#include "model/blobs.hpp"
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

namespace celltyper {
namespace {

using test::Blobs;
using test::compress;
using test::CompressedRows;
using test::make_blobs;
using test::make_sparse_expression;

TEST(LogisticRegression, SeparableDataIsLearnedAndGradientVanishes) {
  const Blobs blobs = make_blobs(300, 5, 3, 6.0f, 1);
  auto classifier = make_logistic_regression();
  FitOptions options;
  options.hyperparameters = {{"l2", 1e-3}, {"class_balanced", 0}, {"tolerance", 1e-8}};
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3, options);
  const auto p = classifier->predict_proba(blobs.x.data(), blobs.n);
  ASSERT_EQ(p.size(), static_cast<std::size_t>(blobs.n * 3));
  int correct = 0;
  std::vector<double> mean_p(3, 0.0);
  for (std::int64_t i = 0; i < blobs.n; ++i) {
    const float* row = p.data() + i * 3;
    EXPECT_NEAR(row[0] + row[1] + row[2], 1.0, 1e-5);
    correct += (std::max_element(row, row + 3) - row) == blobs.y[static_cast<std::size_t>(i)];
    for (int c = 0; c < 3; ++c) mean_p[c] += row[c] / static_cast<double>(blobs.n);
  }
  EXPECT_EQ(correct, blobs.n);
  // Stationarity in the (unpenalised) biases: mean predicted probability = class frequency.
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(mean_p[c], 1.0 / 3, 1e-5);
  EXPECT_LE(classifier->fit_report()["max_gradient"].get<double>(), 1e-8) << classifier->fit_report().dump();
}

TEST(LogisticRegression, MatchesScikitLearn) {
  if (test::run_program({test::system_python(), "-c", "import sklearn"}).exit_code != 0) GTEST_SKIP() << "no scikit-learn";
  const Blobs blobs = make_blobs(120, 4, 3, 1.0f, 7);  // overlapping classes: a unique, finite optimum
  const double l2 = 0.05;
  auto classifier = make_logistic_regression();
  FitOptions options;
  options.hyperparameters = {{"l2", l2}, {"class_balanced", 0}, {"tolerance", 1e-10}, {"max_iterations", 2000}};
  classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3, options);
  const auto p = classifier->predict_proba(blobs.x.data(), blobs.n);
  test::TempDir dir;
  {
    std::ofstream out(dir.file("data.csv"));
    for (std::int64_t i = 0; i < blobs.n; ++i) {
      out << blobs.y[static_cast<std::size_t>(i)];
      for (int j = 0; j < blobs.d; ++j) out << fmt::format(",{:.9g}", blobs.x[static_cast<std::size_t>(i * blobs.d + j)]);
      out << '\n';
    }
  }
  // sklearn minimises C * sum(CE) + |W|^2 / 2, i.e. ours (mean CE + l2/2 |W|^2) with C = 1 / (n l2).
  const std::string script = fmt::format(
      "import numpy as np\n"
      "from sklearn.linear_model import LogisticRegression\n"
      "from sklearn.preprocessing import StandardScaler\n"
      "d = np.loadtxt('{}', delimiter=','); y = d[:, 0].astype(int); x = StandardScaler().fit_transform(d[:, 1:])\n"
      "m = LogisticRegression(C=1 / ({} * {}), tol=1e-12, max_iter=10000, multi_class='multinomial').fit(x, y)\n"
      "np.savetxt('{}', m.predict_proba(x), fmt='%.9g')\n",
      dir.file("data.csv"), blobs.n, l2, dir.file("p.txt"));
  const auto run = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(dir.file("p.txt"));
  double max_difference = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    double expected = 0;
    ASSERT_TRUE(in >> expected);
    max_difference = std::max(max_difference, std::abs(expected - p[i]));
  }
  EXPECT_LT(max_difference, 1e-4);
}

TEST(LogisticRegression, IdenticalForOneAndTwoThreads) {
  const Blobs blobs = make_blobs(1500, 8, 4, 2.0f, 3);  // > 256 rows: several chunks
  std::vector<ClassifierState> states;
  std::vector<std::vector<float>> predictions;
  for (int threads : {1, 2}) {
    auto classifier = make_logistic_regression();
    FitOptions options;
    options.num_threads = threads;
    classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 4, options);
    states.push_back(classifier->export_state());
    predictions.push_back(classifier->predict_proba(blobs.x.data(), blobs.n, threads));
  }
  EXPECT_EQ(states[0].double_arrays.at("weights").values, states[1].double_arrays.at("weights").values);
  EXPECT_EQ(predictions[0], predictions[1]);
}

TEST(LogisticRegression, SparseRouteComputesTheDenseObjective) {
  // The objective on stored values of unstandardised features (the fit's route for mostly-zero
  // features) against the same objective on the standardised copy, for class counts that fill
  // one to four vector registers, and more (the generic loop); label sets and sample weights too.
  for (const int classes : {2, 3, 9, 17, 40}) {
    SCOPED_TRACE(classes);
    const Blobs blobs = make_sparse_expression(600, 30, classes, 11);
    const Standardizer standardizer = Standardizer::fit(blobs.x.data(), blobs.n, blobs.d);
    std::vector<float> standardized(blobs.x.size());
    standardizer.apply(blobs.x.data(), blobs.n, standardized.data());
    std::vector<std::int32_t> labels = blobs.y;
    FitOptions options;
    options.hyperparameters = {{"l2", 0.2}, {"class_balanced", 1}};
    options.label_sets = {{0, 1}};
    for (std::int64_t i = 0; i < blobs.n; i += 7) labels[static_cast<std::size_t>(i)] = classes;  // the set {0, 1}
    for (std::int64_t i = 0; i < blobs.n; ++i) options.sample_weights.push_back(0.5 + static_cast<double>(i % 4));
    std::mt19937 rng(3);
    std::normal_distribution<double> normal(0, 0.3);
    std::vector<double> w(static_cast<std::size_t>(classes * (blobs.d + 1)));
    for (auto& value : w) value = normal(rng);
    std::vector<double> dense_gradient;
    std::vector<double> sparse_gradient;
    const double dense = logistic_regression_objective(w, standardized.data(), blobs.n, blobs.d, labels, classes, options, dense_gradient);
    const double sparse =
        logistic_regression_objective(w, blobs.x.data(), blobs.n, blobs.d, labels, classes, options, sparse_gradient, &standardizer);
    EXPECT_NEAR(sparse, dense, 1e-6 * std::abs(dense));  // the dense copy is float32
    ASSERT_EQ(sparse_gradient.size(), dense_gradient.size());
    double largest = 0;
    for (const double g : dense_gradient) largest = std::max(largest, std::abs(g));
    for (std::size_t p = 0; p < w.size(); ++p) EXPECT_NEAR(sparse_gradient[p], dense_gradient[p], 1e-6 * largest) << "parameter " << p;
  }
}

TEST(LogisticRegression, SparseFeaturesFitAsTheirStandardisedCopy) {
  const Blobs blobs = make_sparse_expression(1200, 40, 5, 13);
  auto sparse = make_logistic_regression();
  FitOptions options;
  options.hyperparameters = {{"l2", 0.5}, {"tolerance", 1e-8}};
  sparse->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 5, options);
  EXPECT_EQ(sparse->fit_report().value("route", ""), "sparse") << sparse->fit_report().dump();
  // The standardised copy is dense: the dense route fits the same problem.
  const Standardizer standardizer = Standardizer::fit(blobs.x.data(), blobs.n, blobs.d);
  std::vector<float> standardized(blobs.x.size());
  standardizer.apply(blobs.x.data(), blobs.n, standardized.data());
  auto dense = make_logistic_regression();
  dense->fit(standardized.data(), blobs.n, blobs.d, blobs.y, 5, options);
  EXPECT_EQ(dense->fit_report().value("route", ""), "dense");
  const auto p_sparse = sparse->predict_proba(blobs.x.data(), blobs.n);
  const auto p_dense = dense->predict_proba(standardized.data(), blobs.n);
  ASSERT_EQ(p_sparse.size(), p_dense.size());
  double max_difference = 0;
  for (std::size_t i = 0; i < p_sparse.size(); ++i) max_difference = std::max(max_difference, std::abs(static_cast<double>(p_sparse[i] - p_dense[i])));
  EXPECT_LT(max_difference, 1e-4);
  // Identical for any thread count on this route too.
  std::vector<double> weights[2];
  for (const int threads : {1, 2}) {
    auto classifier = make_logistic_regression();
    FitOptions threaded = options;
    threaded.num_threads = threads;
    classifier->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 5, threaded);
    weights[threads - 1] = classifier->export_state().double_arrays.at("weights").values;
  }
  EXPECT_EQ(weights[0], weights[1]);
}

TEST(LogisticRegression, WarmStartReachesTheSameOptimumInFewerIterations) {
  const Blobs blobs = make_sparse_expression(1500, 40, 4, 17);
  FitOptions options;
  options.hyperparameters = {{"l2", 0.5}, {"tolerance", 1e-7}};
  auto cold = make_logistic_regression();
  cold->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 4, options);
  // Start from a fit on the first 80% of the cells, as train's final fit starts from its
  // validation fit.
  const std::int64_t part = blobs.n * 4 / 5;
  auto partial = make_logistic_regression();
  partial->fit(blobs.x.data(), part, blobs.d, std::vector<std::int32_t>(blobs.y.begin(), blobs.y.begin() + part), 4, options);
  FitOptions warm_options = options;
  warm_options.initial_weights = partial->export_state().double_arrays.at("weights").values;
  auto warm = make_logistic_regression();
  warm->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 4, warm_options);
  EXPECT_TRUE(warm->fit_report()["warm_start"].get<bool>());
  EXPECT_FALSE(cold->fit_report()["warm_start"].get<bool>());
  EXPECT_LT(warm->fit_report()["iterations"].get<int>(), cold->fit_report()["iterations"].get<int>())
      << warm->fit_report().dump() << " vs " << cold->fit_report().dump();
  const auto p_cold = cold->predict_proba(blobs.x.data(), blobs.n);
  const auto p_warm = warm->predict_proba(blobs.x.data(), blobs.n);
  double max_difference = 0;
  for (std::size_t i = 0; i < p_cold.size(); ++i) max_difference = std::max(max_difference, std::abs(static_cast<double>(p_cold[i] - p_warm[i])));
  EXPECT_LT(max_difference, 1e-4);
  // A starting point of the wrong size is ignored.
  warm_options.initial_weights.pop_back();
  auto ignored = make_logistic_regression();
  ignored->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 4, warm_options);
  EXPECT_FALSE(ignored->fit_report()["warm_start"].get<bool>());
}

TEST(Classifier, TrainingOnARowListEqualsTrainingOnACopyOfThoseRows) {
  // FitOptions::rows (train's validation fit: part of the matrix, no copy) against the copied
  // rows: the same model, bit for bit, on both logistic-regression routes and the default path.
  const Blobs sparse = make_sparse_expression(900, 30, 3, 21);
  const Blobs dense = make_blobs(900, 6, 3, 2.0f, 22);
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < 900; ++i) {
    if (i % 5 != 2) rows.push_back(i);
  }
  for (const auto& [name, blobs] : {std::pair<std::string, const Blobs*>{"sparse logreg", &sparse}, {"dense logreg", &dense}, {"knn", &dense}}) {
    SCOPED_TRACE(name);
    std::vector<float> copied;
    std::vector<std::int32_t> labels;
    for (const auto row : rows) {
      copied.insert(copied.end(), blobs->x.begin() + row * blobs->d, blobs->x.begin() + (row + 1) * blobs->d);
      labels.push_back(blobs->y[static_cast<std::size_t>(row)]);
    }
    const auto n = static_cast<std::int64_t>(rows.size());
    auto from_copy = name == "knn" ? make_knn() : make_logistic_regression();
    from_copy->fit(copied.data(), n, blobs->d, labels, 3);
    auto from_rows = name == "knn" ? make_knn() : make_logistic_regression();
    FitOptions options;
    options.rows = &rows;
    from_rows->fit(blobs->x.data(), n, blobs->d, labels, 3, options);
    EXPECT_EQ(from_rows->predict_proba(blobs->x.data(), blobs->n), from_copy->predict_proba(blobs->x.data(), blobs->n));
    EXPECT_EQ(from_rows->fit_report().dump(), from_copy->fit_report().dump());
  }
}

TEST(Classifier, CompressedRowsTrainTheModelOfTheirDenseCopy) {
  // train keeps expression features in compressed rows; every back end must train the model of
  // the dense matrix, bit for bit: logistic regression on the stored values in place (mostly
  // zeros), or on a dense copy (a denser matrix), kNN and the others on a dense copy; with and
  // without a row list (train's validation fit).
  const Blobs sparse = make_sparse_expression(900, 30, 3, 31);
  const Blobs dense = make_blobs(900, 6, 3, 2.0f, 32);
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < 900; ++i) {
    if (i % 4 != 1) rows.push_back(i);
  }
  for (const auto& [name, blobs] : {std::pair<std::string, const Blobs*>{"sparse logreg", &sparse}, {"dense logreg", &dense}, {"knn", &sparse}}) {
    const CompressedRows compressed = compress(*blobs);
    for (const bool row_list : {false, true}) {
      SCOPED_TRACE(name + (row_list ? ", row list" : ""));
      std::vector<std::int32_t> labels = blobs->y;
      FitOptions options;
      if (row_list) {
        labels.clear();
        for (const auto row : rows) labels.push_back(blobs->y[static_cast<std::size_t>(row)]);
        options.rows = &rows;
      }
      const auto n = static_cast<std::int64_t>(labels.size());
      auto from_dense = name == "knn" ? make_knn() : make_logistic_regression();
      from_dense->fit(blobs->x.data(), n, blobs->d, labels, 3, options);
      auto from_compressed = name == "knn" ? make_knn() : make_logistic_regression();
      from_compressed->fit(compressed.view(blobs->n, blobs->d), n, labels, 3, options);
      EXPECT_EQ(from_compressed->predict_proba(blobs->x.data(), blobs->n), from_dense->predict_proba(blobs->x.data(), blobs->n));
      EXPECT_EQ(from_compressed->fit_report().dump(), from_dense->fit_report().dump());
      const ClassifierState a = from_compressed->export_state();
      const ClassifierState b = from_dense->export_state();
      EXPECT_EQ(a.double_arrays.at("standardize_mean").values, b.double_arrays.at("standardize_mean").values);
      EXPECT_EQ(a.double_arrays.at("standardize_scale").values, b.double_arrays.at("standardize_scale").values);
      if (name != "knn") EXPECT_EQ(from_compressed->fit_report().value("route", ""), name == "sparse logreg" ? "sparse" : "dense");
    }
  }
  // Bad compressed input is refused like bad dense input.
  auto message = [](const auto& f) {
    try {
      f();
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  const CompressedRows compressed = compress(sparse);
  auto classifier = make_logistic_regression();
  CompressedRows broken = compressed;
  broken.indices[3] = 30;  // a column outside the 30 features
  EXPECT_EQ(message([&] { classifier->fit(broken.view(sparse.n, sparse.d), sparse.n, sparse.y, 3); }), "feature column 30 of cell 0 is not in 0..29");
  broken = compressed;
  broken.values[0] = std::nanf("");
  EXPECT_EQ(message([&] { classifier->fit(broken.view(sparse.n, sparse.d), sparse.n, sparse.y, 3); }),
            fmt::format("feature {} of cell 0 is not finite", compressed.indices[0]));
  EXPECT_EQ(message([&] { classifier->fit(compressed.view(10, sparse.d), sparse.n, sparse.y, 3); }), "10 compressed feature rows for 900 cells");
  const std::vector<std::int64_t> outside = {0, 900};
  FitOptions with_rows;
  with_rows.rows = &outside;
  EXPECT_EQ(message([&] { classifier->fit(compressed.view(sparse.n, sparse.d), 2, {0, 1}, 2, with_rows); }), "training row 900 is not in 0..899");
}

TEST(LogisticRegression, ClassBalancedWeightsFavourTheSmallClass) {
  // 90 cells of class 0 and 10 of class 1 on overlapping blobs: balancing raises class 1's share.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  for (int i = 0; i < 100; ++i) {
    y.push_back(i < 90 ? 0 : 1);
    x.push_back(normal(rng) + (i < 90 ? 0.0f : 1.0f));
    x.push_back(normal(rng));
  }
  double share[2] = {0, 0};
  for (int balanced : {0, 1}) {
    auto classifier = make_logistic_regression();
    FitOptions options;
    options.hyperparameters = {{"class_balanced", balanced}};
    classifier->fit(x.data(), 100, 2, y, 2, options);
    const auto p = classifier->predict_proba(x.data(), 100);
    for (int i = 0; i < 100; ++i) share[balanced] += p[static_cast<std::size_t>(i * 2 + 1)] / 100;
  }
  EXPECT_NEAR(share[0], 0.1, 1e-3);  // unbalanced: mean probability = frequency
  EXPECT_GT(share[1], 0.3);
}

TEST(NearestNeighbours, HandCases) {
  // Standardisation of these points keeps their angles distinct: cluster A around +x, B around +y.
  const std::vector<float> x = {1, 0, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f, -1, -1};
  const std::vector<std::int32_t> y = {0, 0, 1, 1, 1};
  auto knn = make_knn();
  FitOptions options;
  options.hyperparameters = {{"k", 1}};
  knn->fit(x.data(), 5, 2, y, 2, options);
  const std::vector<float> query = {1, 0.05f, 0.05f, 1};
  const auto p = knn->predict_proba(query.data(), 2);
  EXPECT_EQ(p, (std::vector<float>{1, 0, 0, 1}));
  // k larger than the reference: every cell votes, and probabilities sum to 1.
  options.hyperparameters = {{"k", 50}};
  knn->fit(x.data(), 5, 2, y, 2, options);
  const auto all = knn->predict_proba(query.data(), 2);
  EXPECT_NEAR(all[0] + all[1], 1.0, 1e-6);
  EXPECT_GT(all[0], 0.5);
  EXPECT_GT(all[3], 0.5);
}

TEST(NearestNeighbours, EachCellsProbabilitiesDependOnlyOnThatCell) {
  // d = 37: two full 16-lane steps and a tail; 203 reference rows and 45 queries leave
  // remainders in every blocked loop. One call, one cell at a time and 1 vs 3 threads agree
  // bit for bit.
  const Blobs blobs = make_blobs(203, 37, 4, 1.0f, 21);
  const Blobs queries = make_blobs(45, 37, 4, 1.0f, 22);
  auto knn = make_knn();
  knn->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 4, {});
  const auto together = knn->predict_proba(queries.x.data(), queries.n, 1);
  EXPECT_EQ(knn->predict_proba(queries.x.data(), queries.n, 3), together);
  for (std::int64_t i = 0; i < queries.n; ++i) {
    const auto alone = knn->predict_proba(queries.x.data() + i * queries.d, 1, 1);
    ASSERT_EQ(alone, std::vector<float>(together.begin() + i * 4, together.begin() + (i + 1) * 4)) << "cell " << i;
  }
}

TEST(NearestNeighbours, MatchesNaiveOracle) {
  const Blobs blobs = make_blobs(200, 6, 3, 1.5f, 9);
  const Blobs queries = make_blobs(30, 6, 3, 1.5f, 10);
  auto knn = make_knn();
  knn->fit(blobs.x.data(), blobs.n, blobs.d, blobs.y, 3, {});
  const auto p = knn->predict_proba(queries.x.data(), queries.n, 2);
  // Oracle: standardise with the training mean / population sd, cosine, top 15, weight 1/(0.01 + 1 - cos).
  const int d = blobs.d;
  std::vector<double> mean(d, 0), sd(d, 0);
  for (std::int64_t i = 0; i < blobs.n; ++i)
    for (int j = 0; j < d; ++j) mean[j] += blobs.x[i * d + j] / static_cast<double>(blobs.n);
  for (std::int64_t i = 0; i < blobs.n; ++i)
    for (int j = 0; j < d; ++j) sd[j] += std::pow(blobs.x[i * d + j] - mean[j], 2) / static_cast<double>(blobs.n);
  for (auto& value : sd) value = std::sqrt(value);
  auto unit = [&](const float* row) {
    std::vector<double> z(d);
    double norm = 0;
    for (int j = 0; j < d; ++j) {
      z[j] = (row[j] - mean[j]) / sd[j];
      norm += z[j] * z[j];
    }
    for (auto& value : z) value /= std::sqrt(norm);
    return z;
  };
  for (std::int64_t q = 0; q < queries.n; ++q) {
    const auto a = unit(queries.x.data() + q * d);
    std::vector<std::pair<double, std::int64_t>> sims;
    for (std::int64_t r = 0; r < blobs.n; ++r) {
      const auto b = unit(blobs.x.data() + r * d);
      double s = 0;
      for (int j = 0; j < d; ++j) s += a[j] * b[j];
      sims.emplace_back(-s, r);
    }
    std::sort(sims.begin(), sims.end());
    std::vector<double> votes(3, 0);
    double total = 0;
    for (int m = 0; m < 15; ++m) {
      const double w = 1 / (0.01 + 1 + sims[m].first);
      votes[blobs.y[sims[m].second]] += w;
      total += w;
    }
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(p[q * 3 + c], votes[c] / total, 1e-4) << "query " << q;
  }
}

TEST(Classifier, HyperparametersAndBadInput) {
  const auto& spec = find_classifier_spec("logreg");
  EXPECT_EQ(resolve_hyperparameters(spec, {}).at("l2"), 1e-2);
  auto message = [&](const auto& f) {
    try {
      f();
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(std::string(message([&] { resolve_hyperparameters(spec, {{"k", 3}}); }))
                .rfind("classifier 'logreg' has no hyperparameter 'k'; 'k' is a hyperparameter of knn, not of logreg (its hyperparameters: ", 0),
            0u);
  // Other libraries' names point at ours (CellTypist users pass scikit-learn's C and max_iter).
  EXPECT_EQ(std::string(message([&] { resolve_hyperparameters(spec, {{"C", 1}}); }))
                .rfind("classifier 'logreg' has no hyperparameter 'C'; scikit-learn's C is an inverse penalty on the summed loss; 'l2' "
                       "penalises the mean loss: 'l2' = 1 / (C x training cells) is about the same fit (cells counted by weight, a "
                       "depth-augmented copy less than a cell) (its hyperparameters: ",
                       0),
            0u);
  EXPECT_NE(message([&] { resolve_hyperparameters(spec, {{"max_iter", 100}}); }).find("; scikit-learn's max_iter is 'max_iterations' ("),
            std::string::npos);
  EXPECT_NE(message([&] { resolve_hyperparameters(find_classifier_spec("knn"), {{"n_neighbors", 5}}); })
                .find("; scikit-learn's n_neighbors is 'k' ("),
            std::string::npos);
  // a typo of ours still gets "did you mean"
  EXPECT_NE(message([&] { resolve_hyperparameters(spec, {{"tolerence", 1e-3}}); }).find("; did you mean 'tolerance'? ("), std::string::npos);
  EXPECT_EQ(message([&] { resolve_hyperparameters(spec, {{"l2", -1}}); }), "l2 = -1 is outside [0, 1000000] for classifier 'logreg'");
  EXPECT_EQ(message([&] { resolve_hyperparameters(find_classifier_spec("knn"), {{"k", 2.5}}); }), "k = 2.5 must be a whole number");
  EXPECT_EQ(message([] { find_classifier_spec("forest"); }), "unknown classifier 'forest' (known: logreg, knn, mlp, xgboost)");
  const std::vector<float> x = {1, 2, 3, 4};
  EXPECT_EQ(message([&] { make_knn()->fit(x.data(), 2, 2, {0, 0}, 1); }), "training needs at least 2 classes, got 1");
  EXPECT_EQ(message([&] { make_knn()->fit(x.data(), 2, 2, {0, 0}, 2); }), "class 1 has no training cells");
  const std::vector<float> nan = {1, NAN, 3, 4};
  EXPECT_EQ(message([&] { make_logistic_regression()->fit(nan.data(), 2, 2, {0, 1}, 2); }), "feature 1 of cell 0 is not finite");
}

}  // namespace
}  // namespace celltyper
