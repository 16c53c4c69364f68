// Hyperparameter search: the validation split's rules, successive-halving bookkeeping (rungs,
// budgets, survivors), reproducibility, sampling inside the declared ranges, and the CLI end to
// end on pbmc3k (its best configuration, passed to `celltyper train`, reproduces its score).
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/tune.hpp>

#include "model/blobs.hpp"
#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>

namespace celltyper {
namespace {

/// LabelledFeatures from overlapping blobs with class names "type0", "type1", ...
LabelledFeatures blob_features(std::int64_t n, int d, int classes, float spread, unsigned seed) {
  const test::Blobs blobs = test::make_blobs(n, d, classes, spread, seed);
  LabelledFeatures data;
  data.features = blobs.x;
  data.dims = d;
  for (auto label : blobs.y) {
    data.labels.push_back(fmt::format("type{}", label));
    data.groups.emplace_back();
  }
  return data;
}

TEST(Tune, StratifiedSplitKeepsEveryClassInTraining) {
  LabelledFeatures data;
  data.dims = 1;
  for (int i = 0; i < 8; ++i) data.labels.push_back("A");
  for (int i = 0; i < 2; ++i) data.labels.push_back("B");
  data.labels.push_back("C");
  data.groups.assign(data.labels.size(), "");
  data.features.assign(data.labels.size(), 0.0f);
  const ValidationSplit split = split_validation(data, 0.25, 1);
  std::map<std::string, int> held;
  std::map<std::string, int> kept;
  for (auto row : split.validation_rows) ++held[data.labels[static_cast<std::size_t>(row)]];
  for (auto row : split.train_rows) ++kept[data.labels[static_cast<std::size_t>(row)]];
  EXPECT_EQ(held["A"], 2);  // round(0.25 * 8)
  EXPECT_EQ(held["B"], 1);  // round(0.5) = 1, one left for training
  EXPECT_EQ(held["C"], 0);  // a single cell stays in training
  EXPECT_EQ(kept["A"], 6);
  EXPECT_EQ(kept["B"], 1);
  EXPECT_EQ(kept["C"], 1);
  EXPECT_EQ(split.description, "stratified random 25% of each class");
  EXPECT_EQ(split_validation(data, 0.25, 1).validation_rows, split.validation_rows);
  const ValidationSplit none = split_validation(data, 0.0, 1);  // no validation: every cell trains
  EXPECT_TRUE(none.validation_rows.empty());
  EXPECT_EQ(none.train_rows.size(), data.labels.size());
  EXPECT_THROW(split_validation(data, 1.0, 1), InputError);
  EXPECT_THROW(split_validation(data, -0.1, 1), InputError);
}

TEST(Tune, GroupSplitHoldsOutWholeGroupsButNeverAll) {
  LabelledFeatures data;
  data.dims = 1;
  for (int i = 0; i < 60; ++i) {
    data.labels.push_back(i % 2 ? "x" : "y");
    data.groups.push_back(fmt::format("f\x1f" "donor{}", i % 3));
  }
  data.features.assign(60, 0.0f);
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    const ValidationSplit split = split_validation(data, 0.9, seed);
    std::set<std::string> held;
    std::set<std::string> kept;
    for (auto row : split.validation_rows) held.insert(data.groups[static_cast<std::size_t>(row)]);
    for (auto row : split.train_rows) kept.insert(data.groups[static_cast<std::size_t>(row)]);
    EXPECT_EQ(held.size(), 2u);
    EXPECT_EQ(kept.size(), 1u);
    for (const auto& group : held) EXPECT_EQ(kept.count(group), 0u);
    EXPECT_EQ(split.description, "whole groups (2 of 3 held out)");
    EXPECT_EQ(split.held_out_groups.size(), 2u);  // one reference: group names without its path
    for (const auto& group : split.held_out_groups) EXPECT_EQ(group.rfind("donor", 0), 0u) << group;
  }
  EXPECT_EQ(split_validation(data, 0.5, 0, "donor").description.rfind("whole groups of obs:donor (", 0), 0u);
}

TEST(Tune, SuccessiveHalvingRungsBudgetsAndSurvivors) {
  const LabelledFeatures data = blob_features(600, 6, 4, 1.0f, 1);
  const ValidationSplit split = split_validation(data, 0.3, 2);
  TuneOptions options;
  options.classifier = "logreg";
  options.trials = 9;
  options.reduction = 3;
  options.seed = 4;
  options.num_threads = 1;
  std::vector<TrialRecord> seen;
  options.on_trial = [&](const TrialRecord& record) { seen.push_back(record); };
  const TuneResult result = tune_classifier(data, split, options);
  // 9 configurations at ceil(500 / 9) iterations, the best 3 at ceil(500 / 3), the best at 500.
  EXPECT_EQ(result.rungs, 3);
  EXPECT_EQ(result.budgets, (std::vector<double>{56, 167, 500}));
  ASSERT_EQ(result.trials.size(), 13u);
  ASSERT_EQ(seen.size(), 13u);
  std::vector<std::pair<double, int>> rung0;
  std::set<int> rung1;
  for (const auto& record : result.trials) {
    EXPECT_EQ(record.budget, result.budgets[static_cast<std::size_t>(record.rung)]);
    EXPECT_EQ(record.hyperparameters.at("max_iterations"), record.budget);
    if (record.rung == 0) rung0.emplace_back(-record.macro_f1, record.trial);
    if (record.rung == 1) rung1.insert(record.trial);
    EXPECT_GT(record.macro_f1, 0.3);
  }
  std::sort(rung0.begin(), rung0.end());
  EXPECT_EQ(rung1, (std::set<int>{rung0[0].second, rung0[1].second, rung0[2].second}));
  double best_f1 = 0;
  for (const auto& record : result.trials) best_f1 = std::max(best_f1, record.macro_f1);
  EXPECT_EQ(result.best.macro_f1, best_f1);
  EXPECT_EQ(result.best.hyperparameters.at("max_iterations"), result.best.budget);
  // Trial 0 is the defaults; the others draw l2 log-uniformly in its declared range.
  for (const auto& record : result.trials) {
    if (record.trial == 0) EXPECT_EQ(record.hyperparameters.at("l2"), 0.01);
    EXPECT_GE(record.hyperparameters.at("l2"), 1e-5);
    EXPECT_LE(record.hyperparameters.at("l2"), 100.0);
  }
  const auto best = result.best_json();
  EXPECT_EQ(best["classifier"], "logreg");
  EXPECT_EQ(best["validation_macro_f1"].get<double>(), result.best.macro_f1);
  EXPECT_EQ(best["train_arguments"][0], "--classifier");
  EXPECT_EQ(best["train_arguments"][1], "logreg");

  // Same seed: the same search, score for score.
  const TuneResult again = tune_classifier(data, split, options);
  ASSERT_EQ(again.trials.size(), result.trials.size());
  for (std::size_t i = 0; i < again.trials.size(); ++i) {
    EXPECT_EQ(again.trials[i].trial, result.trials[i].trial);
    EXPECT_EQ(again.trials[i].hyperparameters, result.trials[i].hyperparameters);
    EXPECT_EQ(again.trials[i].macro_f1, result.trials[i].macro_f1);
  }
}

TEST(Tune, SamplesEveryDeclaredRangeAndHonoursFixedValues) {
  const LabelledFeatures data = blob_features(300, 4, 3, 2.0f, 3);
  const ValidationSplit split = split_validation(data, 0.3, 1);
  TuneOptions options;
  options.classifier = "mlp";
  options.trials = 6;
  options.reduction = 2;
  options.max_rungs = 2;
  options.max_budget = 4;
  options.fixed = {{"hidden", 16}, {"patience", 2}};
  options.num_threads = 1;
  const TuneResult result = tune_classifier(data, split, options);
  EXPECT_EQ(result.budgets, (std::vector<double>{2, 4}));
  ASSERT_EQ(result.trials.size(), 9u);  // 6 + 3
  const ClassifierSpec& spec = find_classifier_spec("mlp");
  std::map<std::string, std::set<double>> values;
  for (const auto& record : result.trials) {
    EXPECT_EQ(record.hyperparameters.at("hidden"), 16);
    EXPECT_EQ(record.hyperparameters.at("patience"), 2);
    EXPECT_LE(record.fit_report["epochs_run"].get<int>(), static_cast<int>(record.budget));
    for (const auto& parameter : spec.parameters) {
      const double value = record.hyperparameters.at(parameter.name);
      values[parameter.name].insert(value);
      if (parameter.tune_max > parameter.tune_min && !parameter.budget && parameter.name != "hidden") {
        EXPECT_GE(value, parameter.tune_min) << parameter.name;
        EXPECT_LE(value, parameter.tune_max) << parameter.name;
        if (parameter.integer) EXPECT_EQ(value, std::floor(value)) << parameter.name;
      }
    }
  }
  EXPECT_GT(values["dropout"].size(), 3u);
  EXPECT_GT(values["learning_rate"].size(), 3u);
  EXPECT_EQ(values["warmup_fraction"].size(), 1u);  // no tune range: held at the default
}

TEST(Tune, BadOptionsAreRejected) {
  const LabelledFeatures data = blob_features(60, 3, 2, 3.0f, 5);
  const ValidationSplit split = split_validation(data, 0.3, 1);
  auto message = [&](const TuneOptions& options) {
    try {
      (void)tune_classifier(data, split, options);
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  TuneOptions options;
  options.classifier = "forest";
  EXPECT_EQ(message(options), "unknown classifier 'forest' (known: logreg, knn, mlp, xgboost)");
  options.classifier = "mlp";
  options.fixed = {{"l2", 1}};
  EXPECT_EQ(std::string(message(options)).rfind("classifier 'mlp' has no hyperparameter 'l2'; 'l2' is a hyperparameter of logreg, not of mlp (its hyperparameters: ", 0), 0u);
  options.fixed = {};
  options.trials = 0;
  EXPECT_EQ(message(options), "--trials 0 must be at least 1");
}

TEST(TuneCli, Pbmc3kBestConfigurationReproducesInTrain) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 32);
  const auto tune = test::run_cli({"tune", "-r", reference, "-l", "obs:celltype", "-g", store, "--gene-table", table, "--classifier", "logreg",
                                   "--trials", "4", "--reduction", "2", "--seed", "3", "--log", dir.file("trials.jsonl"), "--out",
                                   dir.file("best.json")});
  ASSERT_EQ(tune.exit_code, 0) << tune.err;
  EXPECT_NE(tune.out.find("macro-F1"), std::string::npos) << tune.out;  // the summary table
  std::ifstream log(dir.file("trials.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) {
    const auto record = nlohmann::json::parse(line);
    EXPECT_EQ(record["classifier"], "logreg");
    for (const char* key : {"trial", "rung", "budget", "hyperparameters", "macro_f1", "accuracy", "seconds", "fit_report"}) {
      EXPECT_TRUE(record.contains(key)) << key;
    }
    ++lines;
  }
  EXPECT_EQ(lines, 4 + 2 + 1);  // rungs of 4, 2 and 1 configurations
  std::ifstream best_file(dir.file("best.json"));
  const auto best = nlohmann::json::parse(best_file);
  const double tuned_f1 = best["validation_macro_f1"].get<double>();
  std::printf("pbmc3k tune (random 32-dim store, logreg, 4 trials): best macro-F1 %.4f, %s\n", tuned_f1, best["train_arguments"].dump().c_str());
  EXPECT_GT(tuned_f1, 0.3);

  // The same split (seed 3, 20%) and the best hyperparameters in `celltyper train`: the same score.
  std::vector<std::string> train = {"train", "-r", reference, "-l", "obs:celltype", "-g", store, "--gene-table", table,
                                    "-o", dir.file("model.h5"), "--seed", "3", "--json", "-q"};
  for (const auto& argument : best["train_arguments"]) train.push_back(argument.get<std::string>());
  const auto trained = test::run_cli(train);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto summary = nlohmann::json::parse(trained.out);
  EXPECT_NEAR(summary["validation"]["macro"]["f1"].get<double>(), tuned_f1, 1e-12);

  // The expression route (the default), whose depth-augmented copies train at their weight in
  // tune as in train: the best configuration's score is train's.
  const auto expression = test::run_cli({"tune", "-r", reference, "-l", "obs:celltype", "--features", "expression", "--gene-table", table,
                                         "--classifier", "logreg", "--trials", "2", "--reduction", "2", "--seed", "3", "--out",
                                         dir.file("best_expression.json"), "-q"});
  ASSERT_EQ(expression.exit_code, 0) << expression.err;
  std::ifstream expression_file(dir.file("best_expression.json"));
  const auto expression_best = nlohmann::json::parse(expression_file);
  std::vector<std::string> expression_train = {"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table,
                                               "-o", dir.file("expression.h5"), "--seed", "3", "--json", "-q"};
  for (const auto& argument : expression_best["train_arguments"]) expression_train.push_back(argument.get<std::string>());
  const auto expression_trained = test::run_cli(expression_train);
  ASSERT_EQ(expression_trained.exit_code, 0) << expression_trained.err;
  EXPECT_NEAR(nlohmann::json::parse(expression_trained.out)["validation"]["macro"]["f1"].get<double>(),
              expression_best["validation_macro_f1"].get<double>(), 1e-9)
      << expression_best.dump();
}

TEST(TuneCli, BadFlagsGiveOneLine) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const auto bad_fix = test::run_cli({"tune", "-r", reference, "-l", "obs:celltype", "--fix", "dropout=abc"});
  EXPECT_EQ(bad_fix.exit_code, 2);
  EXPECT_EQ(bad_fix.err, "celltyper: error: --fix dropout=abc: 'abc' is not a number\n");
  const auto unknown = test::run_cli({"tune", "-r", reference, "-l", "obs:celltype", "--fix", "l2=1"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(std::string(unknown.err).rfind("celltyper: error: classifier 'mlp' has no hyperparameter 'l2'; 'l2' is a hyperparameter of logreg, not of mlp (its hyperparameters: ", 0), 0u);
  const auto range = test::run_cli({"tune", "-r", reference, "-l", "obs:celltype", "--fix", "dropout=2"});
  EXPECT_EQ(range.err, "celltyper: error: dropout = 2 is outside [0, 0.95] for classifier 'mlp'\n");
}

}  // namespace
}  // namespace celltyper
