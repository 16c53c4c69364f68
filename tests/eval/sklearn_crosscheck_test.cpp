// Flat metrics against scikit-learn (Debian python3-sklearn) on generated PBMC-like predictions.
// The script tests/eval/sklearn_metrics.py computes the reference values.

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "celltyper/metrics.hpp"
#include "support/test_support.hpp"

namespace celltyper {
namespace {

bool have_sklearn() {
  const auto result = test::run_program({test::system_python(), "-c", "import sklearn.metrics"});
  return result.exit_code == 0;
}

/// `n_cells` PBMC3k-like labels and predictions: about 70% right, the rest confused with another
/// type or "Unknown" (a class only in the predictions); DC and Platelet are rare.
std::pair<std::vector<std::string>, std::vector<std::string>> generate(std::uint32_t seed, std::size_t n_cells) {
  const std::vector<std::string> types = {"Naive CD4 T", "Memory CD4 T", "CD14+ Mono", "B",       "CD8 T",
                                          "FCGR3A+ Mono", "NK",           "DC",         "Platelet"};
  const std::vector<unsigned> weights = {26, 18, 18, 13, 10, 6, 6, 2, 1};  // percent, roughly pbmc3k
  std::mt19937 generator(seed);  // raw engine output only: identical on every platform
  std::vector<std::string> truth;
  std::vector<std::string> prediction;
  for (std::size_t i = 0; i < n_cells; ++i) {
    unsigned draw = generator() % 100;
    std::size_t type = 0;
    while (draw >= weights[type]) draw -= weights[type++];
    truth.push_back(types[type]);
    const unsigned outcome = generator() % 100;
    if (outcome < 70) {
      prediction.push_back(types[type]);
    } else if (outcome < 75) {
      prediction.push_back("Unknown");
    } else {
      prediction.push_back(types[generator() % (types.size() - 1)]);  // never "Platelet"
    }
  }
  return {truth, prediction};
}

TEST(MetricsSklearn, FlatMetricsMatchScikitLearn) {
  if (!have_sklearn()) GTEST_SKIP() << test::system_python() << " cannot import sklearn (python3-sklearn)";
  const std::string script = std::string(CELLTYPER_SOURCE_DIR) + "/tests/eval/sklearn_metrics.py";
  const test::TempDir dir;
  for (const std::uint32_t seed : {1U, 2U, 3U}) {
    const auto [truth, prediction] = generate(seed, 300 + 100 * seed);
    const std::string path = dir.file("cells_" + std::to_string(seed) + ".tsv");
    {
      std::ofstream out(path);
      out << "truth\tprediction\n";
      for (std::size_t i = 0; i < truth.size(); ++i) out << truth[i] << '\t' << prediction[i] << '\n';
    }
    const auto run = test::run_program({test::system_python(), script, path});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const nlohmann::json expected = nlohmann::json::parse(run.out);
    const EvaluationResult result = evaluate(truth, prediction);
    constexpr double kTolerance = 1e-12;
    SCOPED_TRACE("seed " + std::to_string(seed));
    EXPECT_NEAR(result.accuracy, expected["accuracy"].get<double>(), kTolerance);
    EXPECT_NEAR(result.macro.precision, expected["macro"]["precision"].get<double>(), kTolerance);
    EXPECT_NEAR(result.macro.recall, expected["macro"]["recall"].get<double>(), kTolerance);
    EXPECT_NEAR(result.macro.f1, expected["macro"]["f1"].get<double>(), kTolerance);
    EXPECT_NEAR(result.weighted.precision, expected["weighted"]["precision"].get<double>(), kTolerance);
    EXPECT_NEAR(result.weighted.recall, expected["weighted"]["recall"].get<double>(), kTolerance);
    EXPECT_NEAR(result.weighted.f1, expected["weighted"]["f1"].get<double>(), kTolerance);
    ASSERT_EQ(result.per_class.size(), expected["per_class"].size());
    EXPECT_EQ(result.per_class.size(), 10u);  // nine types + "Unknown"
    for (std::size_t c = 0; c < result.per_class.size(); ++c) {
      const auto& want = expected["per_class"][c];
      EXPECT_EQ(result.per_class[c].label, want["label"].get<std::string>());
      EXPECT_EQ(result.per_class[c].support, want["support"].get<std::size_t>());
      EXPECT_NEAR(result.per_class[c].precision, want["precision"].get<double>(), kTolerance);
      EXPECT_NEAR(result.per_class[c].recall, want["recall"].get<double>(), kTolerance);
      EXPECT_NEAR(result.per_class[c].f1, want["f1"].get<double>(), kTolerance);
    }
  }
}

}  // namespace
}  // namespace celltyper
