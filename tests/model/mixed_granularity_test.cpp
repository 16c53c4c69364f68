// Mixed-granularity training (references labelled at different depths of the Cell Ontology), on a
// small generated ontology and generated cells: the summed-probability loss and its gradient, which
// labels of which references are coarse, and models that learn fine types from a fine reference and
// use a coarse reference's cells without making its coarse term a class.
#include <celltyper/annotate.hpp>
#include <celltyper/calibration.hpp>
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/expression_features.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/train.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace celltyper {
namespace {

/// cell > leukocyte > lymphocyte > {T cell > CD4 T cell, B cell}; leukocyte > monocyte > CD14
/// monocyte > CD16 monocyte (CL also places the CD16-positive monocyte below the CD14-positive one).
Ontology small_ontology() {
  std::istringstream obo(R"(format-version: 1.2

[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000738
name: leukocyte
is_a: CL:0000000

[Term]
id: CL:0000542
name: lymphocyte
is_a: CL:0000738

[Term]
id: CL:0000084
name: T cell
is_a: CL:0000542

[Term]
id: CL:0000624
name: CD4 T cell
is_a: CL:0000084

[Term]
id: CL:0000236
name: B cell
is_a: CL:0000542

[Term]
id: CL:0000576
name: monocyte
is_a: CL:0000738

[Term]
id: CL:0001054
name: CD14 monocyte
is_a: CL:0000576

[Term]
id: CL:0002396
name: CD16 monocyte
is_a: CL:0001054
)");
  return parse_obo(obo, "small ontology");
}

std::map<std::string, std::string> ids_of(const Ontology& ontology) {
  std::map<std::string, std::string> ids;
  for (TermIndex t = 0; t < static_cast<TermIndex>(ontology.size()); ++t) ids[ontology.term(t).label] = ontology.term(t).id;
  return ids;
}

TEST(SummedProbabilityLoss, GradientMatchesFiniteDifferences) {
  // 3 classes, 4 features; codes 3 and 4 are the label sets {0, 1} and {1, 2}.
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0, 1);
  const int d = 4;
  const int classes = 3;
  const std::int64_t n = 40;
  std::vector<float> x(static_cast<std::size_t>(n * d));
  for (auto& value : x) value = normal(rng);
  std::vector<std::int32_t> labels;
  for (std::int64_t i = 0; i < n; ++i) labels.push_back(static_cast<std::int32_t>(i % 5));
  FitOptions options;
  options.hyperparameters = {{"l2", 0.3}, {"class_balanced", 1}};
  options.label_sets = {{0, 1}, {1, 2}};
  for (std::int64_t i = 0; i < n; ++i) options.sample_weights.push_back(0.5 + static_cast<double>(i % 3));
  std::vector<double> w(static_cast<std::size_t>(classes * (d + 1)));
  std::normal_distribution<double> small(0, 0.5);
  for (auto& value : w) value = small(rng);

  std::vector<double> gradient;
  const double loss = logistic_regression_objective(w, x.data(), n, d, labels, classes, options, gradient);
  ASSERT_TRUE(std::isfinite(loss));
  std::vector<double> ignored;
  for (std::size_t p = 0; p < w.size(); ++p) {
    const double h = 1e-6;
    std::vector<double> up = w;
    std::vector<double> down = w;
    up[p] += h;
    down[p] -= h;
    const double numeric = (logistic_regression_objective(up, x.data(), n, d, labels, classes, options, ignored) -
                            logistic_regression_objective(down, x.data(), n, d, labels, classes, options, ignored)) / (2 * h);
    EXPECT_NEAR(gradient[p], numeric, 1e-7) << "parameter " << p;
  }

  // The loss of a set is -log of its summed probability: check one cell by hand (no penalty, no
  // weights): cell 3 has the set {0, 1}.
  FitOptions plain;
  plain.hyperparameters = {{"l2", 0.0}, {"class_balanced", 0}};
  plain.label_sets = options.label_sets;
  const std::vector<std::int32_t> one = {3};
  const double set_loss = logistic_regression_objective(w, x.data() + 3 * d, 1, d, one, classes, plain, ignored);
  std::vector<double> z(classes);
  for (int k = 0; k < classes; ++k) {
    z[k] = w[static_cast<std::size_t>(k * (d + 1) + d)];
    for (int j = 0; j < d; ++j) z[k] += w[static_cast<std::size_t>(k * (d + 1) + j)] * x[static_cast<std::size_t>(3 * d + j)];
  }
  const double total = std::exp(z[0]) + std::exp(z[1]) + std::exp(z[2]);
  EXPECT_NEAR(set_loss, -std::log((std::exp(z[0]) + std::exp(z[1])) / total), 1e-12);
  // A set of one class is that class's cross-entropy.
  plain.label_sets = {{2}};
  const double single = logistic_regression_objective(w, x.data() + 3 * d, 1, d, one, classes, plain, ignored);
  EXPECT_NEAR(single, -std::log(std::exp(z[2]) / total), 1e-12);
}

TEST(SummedProbabilityLoss, BackEndsWithoutLabelSetsRefuseThem) {
  const std::vector<float> x = {0, 1, 1, 0, 0.5f, 0.5f, 1, 1};
  const std::vector<std::int32_t> labels = {0, 1, 2, 2};
  FitOptions options;
  options.label_sets = {{0, 1}};
  for (const std::string type : {"knn", "xgboost"}) {
    auto classifier = make_classifier(type);
    EXPECT_FALSE(classifier->supports_label_sets());
    EXPECT_THROW(classifier->fit(x.data(), 4, 2, labels, 2, options), InputError) << type;
  }
  auto logreg = make_classifier("logreg");
  EXPECT_NO_THROW(logreg->fit(x.data(), 4, 2, labels, 2, options));
  options.label_sets = {{0, 0}};
  EXPECT_THROW(make_classifier("logreg")->fit(x.data(), 4, 2, labels, 2, options), InputError);
}

TEST(CoarseLabels, ACoarseTermTrainsAsTheClassesItsReferenceLeftBelowIt) {
  const Ontology ontology = small_ontology();
  const auto ids = ids_of(ontology);
  // Reference 0 labels fine types (including CD14 monocyte beside the CD16 monocyte CL places
  // below it); reference 1 labels "lymphocyte" beside its own "B cell", and "monocyte".
  const std::vector<std::set<std::string>> used = {{"T cell", "CD4 T cell", "B cell", "CD14 monocyte", "CD16 monocyte"},
                                                   {"lymphocyte", "B cell", "monocyte"}};
  const auto coarse = coarse_labels(used, ids, ontology);
  // "T cell" of reference 0 sits beside its own "CD4 T cell": a class (T cells that are not CD4).
  // "CD14 monocyte" likewise. Reference 1's "lymphocyte" means "not a B cell": T cell or CD4 T.
  ASSERT_EQ(coarse.size(), 2U);
  EXPECT_EQ(coarse.at("lymphocyte").classes, (std::map<std::int32_t, std::vector<std::string>>{{1, {"CD4 T cell", "T cell"}}}));
  EXPECT_EQ(coarse.at("monocyte").classes, (std::map<std::int32_t, std::vector<std::string>>{{1, {"CD14 monocyte", "CD16 monocyte"}}}));

  // A term one reference uses alone and another beside a finer one: coarse only in the first,
  // and still a class (the second reference's residual), so its own set contains it.
  const std::vector<std::set<std::string>> mixed = {{"T cell", "B cell"}, {"T cell", "CD4 T cell", "B cell"}};
  const auto partly = coarse_labels(mixed, ids, ontology);
  ASSERT_EQ(partly.size(), 1U);
  EXPECT_EQ(partly.at("T cell").classes, (std::map<std::int32_t, std::vector<std::string>>{{0, {"CD4 T cell", "T cell"}}}));

  // Labels without a CL id stand alone; one reference with nothing coarser: nothing is coarse.
  EXPECT_TRUE(coarse_labels({{"T cell", "B cell", "mystery"}}, ids, ontology).empty());

  // A label of alternatives at lymphocyte ("CD4 T/B cells"): the classes at or below one of them,
  // not the other T cells.
  const std::vector<std::set<std::string>> alternatives_used = {{"T cell", "CD4 T cell", "B cell"}, {"lymphocyte"}};
  EXPECT_EQ(coarse_labels(alternatives_used, ids, ontology).at("lymphocyte").classes,
            (std::map<std::int32_t, std::vector<std::string>>{{1, {"B cell", "CD4 T cell", "T cell"}}}));
  EXPECT_EQ(coarse_labels(alternatives_used, ids, ontology, {{"lymphocyte", {"CL:0000624", "CL:0000236"}}}).at("lymphocyte").classes,
            (std::map<std::int32_t, std::vector<std::string>>{{1, {"B cell", "CD4 T cell"}}}));
  // An alternative finer than every class of the pool on its branch (CD4 T under a pool's "T
  // cell"): the class above it holds its cells.
  const std::vector<std::set<std::string>> coarser_pool = {{"T cell", "B cell", "monocyte"}, {"lymphocyte"}};
  EXPECT_EQ(coarse_labels(coarser_pool, ids, ontology, {{"lymphocyte", {"CL:0000624", "CL:0000236"}}}).at("lymphocyte").classes,
            (std::map<std::int32_t, std::vector<std::string>>{{1, {"B cell", "T cell"}}}));
  EXPECT_EQ(coarse_labels(coarser_pool, ids, ontology, {{"lymphocyte", {"CL:0000624"}}}).at("lymphocyte").classes,
            (std::map<std::int32_t, std::vector<std::string>>{{1, {"T cell"}}}));
  // Within one reference: "lymphocyte" beside its "CD4 T cell" and "B cell" is a class (the other
  // lymphocytes), but a label of alternatives naming those two (CellTypist's "CD4 T cell|B cell")
  // is one of them: its cells train as either.
  const std::vector<std::set<std::string>> one = {{"CD4 T cell", "B cell", "lymphocyte"}};
  EXPECT_TRUE(coarse_labels(one, ids, ontology).empty());
  EXPECT_EQ(coarse_labels(one, ids, ontology, {{"lymphocyte", {"CL:0000624", "CL:0000236"}}}).at("lymphocyte").classes,
            (std::map<std::int32_t, std::vector<std::string>>{{0, {"B cell", "CD4 T cell"}}}));
}

constexpr int kGenes = 40;

/// Poisson counts: background rate 0.5, type t's markers (genes 10t..10t+9) at rate 5. `names[t]`
/// is the label written for type t's cells; `truth` collects the type of every cell.
MemoryDataset make_cells(const std::vector<int>& per_type, const std::vector<std::string>& names, unsigned seed, std::vector<int>* truth = nullptr,
                         const std::string& name = "generated") {
  std::mt19937 rng(seed);
  DataFrame obs;
  DataFrame var;
  for (int g = 0; g < kGenes; ++g) var.index.push_back("G" + std::to_string(g + 1));
  std::vector<std::string> labels;
  CsrBlockF64 matrix;
  matrix.reset(0, 0, kGenes);
  for (std::size_t t = 0; t < per_type.size(); ++t) {
    for (int i = 0; i < per_type[t]; ++i) {
      for (int g = 0; g < kGenes; ++g) {
        std::poisson_distribution<int> counts(g / 10 == static_cast<int>(t) ? 5.0 : 0.5);
        const int value = counts(rng);
        if (value == 0) continue;
        matrix.indices.push_back(g);
        matrix.values.push_back(value);
      }
      matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
      ++matrix.n_rows;
      obs.index.push_back("c" + std::to_string(obs.index.size()));
      labels.push_back(names[t]);
      if (truth != nullptr) truth->push_back(static_cast<int>(t));
    }
  }
  obs.columns.push_back(Column::categorical("cell_type", labels));
  return MemoryDataset(name, std::move(obs), std::move(var), std::move(matrix));
}

TEST(MixedGranularityTraining, FineClassesFromOneReferenceAndCoarseCellsFromAnother) {
  const Ontology ontology = small_ontology();
  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "G");
  // Types: 0 T cell, 1 B cell, 2 monocyte. The fine reference names all three; the coarse one
  // calls both lymphocyte types "lymphocyte" and has many more cells.
  const MemoryDataset fine = make_cells({40, 40, 40}, {"T cell", "B cell", "monocyte"}, 1);
  std::vector<int> coarse_truth;
  const MemoryDataset coarse = make_cells({150, 150, 100}, {"lymphocyte", "lymphocyte", "monocyte"}, 2, &coarse_truth, "coarse");
  for (const std::string classifier : {"logreg", "mlp"}) {
    TrainOptions options;
    options.label_column = "cell_type";
    options.classifier = classifier;
    options.n_genes = 30;
    options.num_threads = 1;
    options.validation_fraction = 0;
    options.harmonize_labels = true;
    options.ontology = &ontology;
    if (classifier == "mlp") options.hyperparameters = {{"epochs", 40}, {"hidden", 32}, {"layers", 1}};
    const TrainResult mixed = train_model({&fine, &coarse}, options, GeneStore(), table);
    // "lymphocyte" is no class: the coarse cells train as "T cell or B cell".
    EXPECT_EQ(mixed.model.class_names, (std::vector<std::string>{"B cell", "T cell", "monocyte"})) << classifier;
    EXPECT_EQ(mixed.model.class_cl_ids, (std::vector<std::string>{"CL:0000236", "CL:0000084", "CL:0000576"})) << classifier;
    EXPECT_EQ(mixed.model.provenance["coarse_labels"]["lymphocyte"]["coarse"], (nlohmann::json{"B cell", "T cell"})) << classifier;
    // The coarse reference's lymphocytes get the fine type they are.
    AnnotateOptions annotate;
    annotate.embed.num_threads = 1;
    const Annotation labels = annotate_dataset(coarse, {&mixed.model}, table, annotate);
    const std::vector<std::string> type_names = {"T cell", "B cell", "monocyte"};
    std::int64_t right = 0;
    for (std::size_t i = 0; i < coarse_truth.size(); ++i) right += labels.labels[i] == type_names[static_cast<std::size_t>(coarse_truth[i])];
    EXPECT_GT(static_cast<double>(right) / static_cast<double>(coarse_truth.size()), 0.95) << classifier;

    // Flat pooled training keeps "lymphocyte" as a class, which then takes most lymphocytes.
    options.flat_labels = true;
    const TrainResult flat = train_model({&fine, &coarse}, options, GeneStore(), table);
    EXPECT_EQ(flat.model.class_names, (std::vector<std::string>{"B cell", "T cell", "lymphocyte", "monocyte"})) << classifier;
  }
  // XGBoost cannot use label sets: the coarse cells are left out, with a warning.
  TrainOptions options;
  options.label_column = "cell_type";
  options.classifier = "xgboost";
  options.n_genes = 30;
  options.num_threads = 1;
  options.validation_fraction = 0;
  options.harmonize_labels = true;
  options.ontology = &ontology;
  options.hyperparameters = {{"n_estimators", 10}};
  const TrainResult trees = train_model({&fine, &coarse}, options, GeneStore(), table);
  EXPECT_EQ(trees.model.class_names, (std::vector<std::string>{"B cell", "T cell", "monocyte"}));
  EXPECT_TRUE(std::any_of(trees.warnings.begin(), trees.warnings.end(),
                          [](const std::string& warning) { return warning.find("300 cells were left out") != std::string::npos; }));
}

TEST(MixedGranularityTraining, ScoresCalibrateOnHeldOutCellsLabelledWithAClass) {
  // A coarse label is met by a wrong call below it, so its cells would calibrate the fine calls'
  // scores against a looser kind of right: they are left out while 20 or more held-out cells carry
  // a class, and used when fewer do.
  const Ontology ontology = small_ontology();
  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "G");
  TrainOptions options;
  options.label_column = "cell_type";
  options.n_genes = 30;
  options.num_threads = 1;
  options.validation_fraction = 0.2;
  options.harmonize_labels = true;
  options.ontology = &ontology;
  {
    const MemoryDataset fine = make_cells({40, 40, 40}, {"T cell", "B cell", "monocyte"}, 1);
    const MemoryDataset coarse = make_cells({150, 150, 100}, {"lymphocyte", "lymphocyte", "monocyte"}, 2, nullptr, "coarse");
    const TrainResult mixed = train_model({&fine, &coarse}, options, GeneStore(), table);
    const nlohmann::json& calibration = mixed.model.provenance["calibration"];
    ASSERT_TRUE(calibration.contains("n_cells")) << calibration.dump();
    const auto held_out = static_cast<std::int64_t>(mixed.validation.n_cells);
    const auto left_out = calibration["n_coarse_left_out"].get<std::int64_t>();
    // (about 20% of the 300 lymphocytes; the held-out cells with a class, 20% of 220, calibrate)
    EXPECT_GT(left_out, 40);
    EXPECT_LT(left_out, 80);
    EXPECT_EQ(calibration["n_cells"].get<std::int64_t>() + calibration["n_one_hot"].get<std::int64_t>() + left_out, held_out);
    EXPECT_EQ(calibration["n_coarse_used"].get<std::int64_t>(), 0);
    EXPECT_GE(calibration["n_cells"].get<std::int64_t>(), kMinCalibrationCells);
    EXPECT_NE(calibration_text(calibration).find(fmt::format("labelled with a class (not the {} with a coarser label)", left_out)),
              std::string::npos)
        << calibration_text(calibration);
  }
  {
    // 6 held-out cells with a class: the coarse ones calibrate, with the sum of their classes.
    const MemoryDataset fine = make_cells({10, 10, 10}, {"T cell", "B cell", "monocyte"}, 1);
    const MemoryDataset coarse = make_cells({150, 150}, {"lymphocyte", "lymphocyte"}, 2, nullptr, "coarse");
    const TrainResult mixed = train_model({&fine, &coarse}, options, GeneStore(), table);
    const nlohmann::json& calibration = mixed.model.provenance["calibration"];
    ASSERT_TRUE(calibration.contains("n_cells")) << calibration.dump();
    EXPECT_EQ(calibration["n_coarse_left_out"].get<std::int64_t>(), 0);
    EXPECT_EQ(calibration["n_cells"].get<std::int64_t>() + calibration["n_one_hot"].get<std::int64_t>(), static_cast<std::int64_t>(mixed.validation.n_cells));
    const auto used = calibration["n_coarse_used"].get<std::int64_t>();
    EXPECT_GT(used, 40);  // (about 20% of the 300 lymphocytes)
    EXPECT_NE(calibration_text(calibration).find(fmt::format(", {} of them with a coarser label, met by any class below it (too few carry a class)", used)),
              std::string::npos)
        << calibration_text(calibration);
  }
}

/// Pooled references with imputed genes: the features (in compressed rows or, when imputed values
/// would fill them, dense) are the dense matrix's bit for bit (TrainOptions::dense_features), and
/// logistic regression and the MLP train the same model from either.
void expect_imputed_matrix_of_dense_features(const std::vector<const Dataset*>& references, const TrainOptions& options, const GeneTable& table,
                                             bool compressed) {
  const TrainingData data = training_features(references, options, GeneStore(), table);
  TrainOptions dense_options = options;
  dense_options.dense_features = true;
  const TrainingData dense = training_features(references, dense_options, GeneStore(), table);
  ASSERT_FALSE(dense.cells.sparse);
  EXPECT_EQ(data.cells.sparse, compressed);
  const std::vector<float> features = data.cells.dense();
  EXPECT_EQ(features, dense.cells.features);
  std::int64_t non_zero = 0;
  for (const float value : features) non_zero += value != 0.0f;
  if (compressed) EXPECT_EQ(data.cells.sparse_features.nnz(), non_zero);  // zeros stay implicit
  EXPECT_EQ(compressed, 2 * non_zero <= static_cast<std::int64_t>(features.size())) << "compressed while at most half of the values are stored";
  for (const std::string classifier : {"logreg", "mlp"}) {
    SCOPED_TRACE(classifier);
    TrainOptions fit_options = options;
    fit_options.classifier = classifier;
    fit_options.validation_fraction = 0.2;
    if (classifier == "mlp") fit_options.hyperparameters = {{"epochs", 3}, {"hidden", 16}};
    TrainOptions dense_fit = fit_options;
    dense_fit.dense_features = true;
    const ClassifierState x = train_model(references, fit_options, GeneStore(), table).model.classifier->export_state();
    const ClassifierState y = train_model(references, dense_fit, GeneStore(), table).model.classifier->export_state();
    for (const auto& [name, array] : y.double_arrays) EXPECT_EQ(x.double_arrays.at(name).values, array.values) << name;
    for (const auto& [name, array] : y.float_arrays) EXPECT_EQ(x.float_arrays.at(name).values, array.values) << name;
  }
}

/// Sparse counts (~3 of 40 genes per cell): cell i of type i % 2 has 4 counts of marker gene
/// 10 (i % 2) + i % 10, 2 of gene 30 + i % 10 and 1 of gene 20 + i % 7; `genes` first genes only.
MemoryDataset sparse_cells(int n, int genes, const std::string& name) {
  DataFrame obs;
  DataFrame var;
  for (int g = 0; g < genes; ++g) var.index.push_back("G" + std::to_string(g + 1));
  std::vector<std::string> labels;
  CsrBlockF64 matrix;
  matrix.reset(0, 0, genes);
  for (int i = 0; i < n; ++i) {
    std::map<int, double> counts = {{10 * (i % 2) + i % 10, 4.0}, {30 + i % 10, 2.0}, {20 + i % 7, 1.0}};
    for (const auto& [gene, count] : counts) {
      if (gene >= genes) continue;
      matrix.indices.push_back(gene);
      matrix.values.push_back(count);
    }
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
    ++matrix.n_rows;
    obs.index.push_back("c" + std::to_string(i));
    labels.push_back(i % 2 == 0 ? "x" : "y");
  }
  obs.columns.push_back(Column::categorical("cell_type", labels));
  return MemoryDataset(name, std::move(obs), std::move(var), std::move(matrix));
}

TEST(PooledReferences, OnlyTheGenesEveryReferenceMeasuredAndOptionalReferenceWeights) {
  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "G");
  const MemoryDataset a = make_cells({30, 30}, {"x", "y"}, 3);
  // A second reference measuring genes G1..G25 only.
  const MemoryDataset full = make_cells({30, 30}, {"x", "y"}, 4);
  DataFrame var;
  for (int g = 0; g < 25; ++g) var.index.push_back("G" + std::to_string(g + 1));
  CsrBlockF64 matrix;
  matrix.reset(0, 0, 25);
  const auto reader = full.open_matrix("X");
  CsrBlockF64 rows;
  reader->read_rows(0, full.n_obs(), rows);
  for (std::int64_t i = 0; i < rows.n_rows; ++i) {
    for (std::int64_t k = rows.indptr[static_cast<std::size_t>(i)]; k < rows.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      if (rows.indices[static_cast<std::size_t>(k)] >= 25) continue;
      matrix.indices.push_back(rows.indices[static_cast<std::size_t>(k)]);
      matrix.values.push_back(rows.values[static_cast<std::size_t>(k)]);
    }
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
    ++matrix.n_rows;
  }
  const MemoryDataset b("partial", full.read_obs(), std::move(var), std::move(matrix));
  TrainOptions options;
  options.label_column = "cell_type";
  options.n_genes = 100;
  options.num_threads = 1;
  options.validation_fraction = 0;
  options.gene_pooling = "shared";
  const TrainResult shared = train_model({&a, &b}, options, GeneStore(), table);
  EXPECT_EQ(shared.model.panel.size(), 25U);
  EXPECT_EQ(shared.model.provenance["shared_genes"], 25);
  EXPECT_EQ(shared.model.reference.entrez_ids.size(), 25U);
  for (const auto entrez : shared.model.panel.entrez_ids) EXPECT_LE(entrez, 1025);
  options.gene_pooling = "all";
  EXPECT_EQ(train_model({&a, &b}, options, GeneStore(), table).model.panel.size(), static_cast<std::size_t>(kGenes));

  // The default, "impute": every gene; b's cells get a's mean on the genes b did not measure;
  // library sizes: a (the reference that measured the most genes) over its genes, b over its 25
  // scaled by the median over a's cells of (sum over all genes) / (sum over those 25); the
  // reference sample remembers who measured what, so a model file round trip and a refit on a
  // query's genes keep it.
  options.gene_pooling = "impute";
  const TrainingData data = training_features({&a, &b}, options, GeneStore(), table);
  ASSERT_EQ(data.cells.dims, kGenes);
  expect_imputed_matrix_of_dense_features({&a, &b}, options, table, false);  // b fills 15 of 40 columns: dense
  {
    // Sparse references, the second measuring 36 of the 40 genes: its 4 imputed values per cell
    // are stored beside its own.
    const MemoryDataset sparse_a = sparse_cells(60, kGenes, "sparse-a");
    const MemoryDataset sparse_b = sparse_cells(50, 36, "sparse-b");
    expect_imputed_matrix_of_dense_features({&sparse_a, &sparse_b}, options, table, true);
  }
  const std::vector<float> features = data.cells.dense();
  const std::int64_t column = std::find(data.panel.entrez_ids.begin(), data.panel.entrez_ids.end(), 1035) - data.panel.entrez_ids.begin();
  ASSERT_LT(column, kGenes);
  double a_sum = 0;
  std::int64_t a_cells = 0;
  std::set<float> b_values;
  for (std::int64_t i = 0; i < data.cells.n(); ++i) {
    const float value = features[static_cast<std::size_t>(i * kGenes + column)];
    if (data.cells.references[static_cast<std::size_t>(i)] == 0) {
      a_sum += value;
      ++a_cells;
    } else {
      b_values.insert(value);
    }
  }
  ASSERT_EQ(b_values.size(), 1U);
  EXPECT_NEAR(*b_values.begin(), a_sum / static_cast<double>(a_cells), 1e-5);
  EXPECT_EQ(data.panel.size_factor_genes.size(), static_cast<std::size_t>(kGenes)) << "a query's library: over the anchor's genes";
  {
    std::vector<std::int64_t> all_genes;
    std::vector<std::int64_t> first_25;
    for (int g = 0; g < kGenes; ++g) all_genes.push_back(1001 + g);
    for (int g = 0; g < 25; ++g) first_25.push_back(1001 + g);
    ExpressionOptions settings;
    const auto sums = library_sizes(a, table, settings, {all_genes, first_25});
    ASSERT_EQ(sums.size(), 2U);
    ASSERT_EQ(sums[0].size(), static_cast<std::size_t>(a.n_obs()));
    std::vector<double> ratios;
    CsrBlockF64 a_rows;
    a.open_matrix("X")->read_rows(0, a.n_obs(), a_rows);
    for (std::size_t i = 0; i < sums[0].size(); ++i) {
      double total = 0;
      double part = 0;
      for (std::int64_t k = a_rows.indptr[i]; k < a_rows.indptr[i + 1]; ++k) {
        total += a_rows.values[static_cast<std::size_t>(k)];
        if (a_rows.indices[static_cast<std::size_t>(k)] < 25) part += a_rows.values[static_cast<std::size_t>(k)];
      }
      EXPECT_DOUBLE_EQ(sums[0][i], total);
      EXPECT_DOUBLE_EQ(sums[1][i], part);
      if (part > 0) ratios.push_back(total / part);
    }
    std::nth_element(ratios.begin(), ratios.begin() + static_cast<std::ptrdiff_t>(ratios.size() / 2), ratios.end());
    const double multiplier = ratios[ratios.size() / 2];
    EXPECT_GT(multiplier, 1.0);
    // b's first cell (no cell was dropped), on a gene it measured: log1p(count x 1e4 / (its sum x multiplier)).
    ASSERT_EQ(data.cells.n_dropped_empty, 0);
    const auto b_first = static_cast<std::size_t>(std::find(data.cells.references.begin(), data.cells.references.end(), 1) - data.cells.references.begin());
    CsrBlockF64 b_rows;
    b.open_matrix("X")->read_rows(0, 1, b_rows);
    double b_sum = 0;
    for (const double value : b_rows.values) b_sum += value;
    ASSERT_GT(b_rows.values.size(), 0U);
    const std::int64_t gene = 1001 + b_rows.indices[0];
    const std::int64_t gene_column = std::find(data.panel.entrez_ids.begin(), data.panel.entrez_ids.end(), gene) - data.panel.entrez_ids.begin();
    ASSERT_LT(gene_column, kGenes);
    EXPECT_NEAR(features[b_first * kGenes + static_cast<std::size_t>(gene_column)],
                std::log1p(b_rows.values[0] * 1e4 / (b_sum * multiplier)), 1e-5);
  }
  const TrainResult imputed = train_model({&a, &b}, options, GeneStore(), table);
  EXPECT_EQ(imputed.model.panel.size(), static_cast<std::size_t>(kGenes));
  ASSERT_EQ(imputed.model.reference.measured.size(), 2U);
  EXPECT_EQ(imputed.model.reference.measured[0].size(), static_cast<std::size_t>(kGenes));
  EXPECT_EQ(imputed.model.reference.measured[1].size(), 25U);
  test::TempDir dir;
  save_model(imputed.model, dir.file("pooled.h5"));
  const CellTypeModel loaded = load_model(dir.file("pooled.h5"));
  EXPECT_EQ(loaded.reference.measured, imputed.model.reference.measured);
  EXPECT_EQ(loaded.reference.references, imputed.model.reference.references);
  std::vector<std::int64_t> query_genes;
  for (int g = 0; g < 30; ++g) query_genes.push_back(1001 + g);
  const ModelCoverage coverage = model_coverage(loaded, query_genes);
  EXPECT_EQ(coverage.n_model_genes, kGenes);  // every gene of the pool, not only the shared ones
  const CellTypeModel refitted = refit_model(loaded, query_genes, 1, nullptr);
  EXPECT_EQ(refitted.panel.size(), 30U);
  EXPECT_EQ(refitted.class_names, (std::vector<std::string>{"x", "y"}));

  // Whole-reference validation (`train --group file`): one reference held out, named by its path.
  options.group_column = kGroupByFile;
  const TrainingData by_file = training_features({&a, &b}, options, GeneStore(), table);
  const ValidationSplit split = split_validation(by_file.cells, 0.3, 0, options.group_column);
  ASSERT_EQ(split.held_out_groups.size(), 1U);
  EXPECT_TRUE(split.held_out_groups[0] == "generated" || split.held_out_groups[0] == "partial") << split.held_out_groups[0];
  EXPECT_EQ(split.validation_rows.size(), 60U);
  EXPECT_NE(split.description.find("reference files"), std::string::npos) << split.description;
  options.group_column.clear();

  // Reference weights: each reference's cells sum to n / references.
  const std::vector<std::int32_t> labels = {0, 0, 1, 1, 1, 1};
  const std::vector<double> weights = training_cell_weights(labels, 2, true, {});
  EXPECT_DOUBLE_EQ(weights[0], 6.0 / (2 * 2));
  EXPECT_DOUBLE_EQ(weights[2], 6.0 / (2 * 4));
  const std::vector<double> scaled = training_cell_weights(labels, 2, false, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(scaled, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  options.gene_pooling = "shared";
  options.balance_references = true;
  const TrainResult balanced = train_model({&a, &b}, options, GeneStore(), table);
  EXPECT_EQ(balanced.model.provenance["balance_references"], true);
}

/// `make_cells` with the CELLxGENE schema's id column beside the labels: `ids[t]` for type t's
/// cells, except every fifth cell of type `odd_type`, which carries `odd_id`.
MemoryDataset with_term_ids(const MemoryDataset& cells, const std::vector<std::string>& ids, std::size_t odd_type, const std::string& odd_id,
                            bool categorical) {
  DataFrame obs = cells.read_obs();
  const Column& labels = *obs.find("cell_type");
  std::vector<std::string> column;
  std::map<std::string, std::size_t> type_of;  // label -> type, in order of first appearance
  for (std::size_t row = 0; row < labels.size(); ++row) {
    const std::string label = labels.value_as_string(row);
    if (type_of.count(label) == 0) type_of.emplace(label, type_of.size());
    const std::size_t type = type_of.at(label);
    column.push_back(type == odd_type && row % 5 == 0 ? odd_id : ids[type]);
  }
  obs.columns.push_back(categorical ? Column::categorical("cell_type_ontology_term_id", column)
                                    : Column::from_strings("cell_type_ontology_term_id", column));
  CsrBlockF64 matrix;
  matrix.reset(0, 0, kGenes);
  const auto reader = cells.open_matrix("X");
  for_each_block(*reader, {}, [&](const CsrBlock& block) {
    for (std::int64_t r = 0; r < block.n_rows; ++r) {
      for (std::int64_t k = block.indptr[r]; k < block.indptr[r + 1]; ++k) {
        matrix.indices.push_back(block.indices[static_cast<std::size_t>(k)]);
        matrix.values.push_back(block.values[static_cast<std::size_t>(k)]);
      }
      matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
      ++matrix.n_rows;
    }
  });
  return MemoryDataset(cells.path() + " with ids", std::move(obs), cells.read_var(), std::move(matrix));
}

TEST(LabelOntologyIds, FromTheLabelMapThenTheDatasOwnIdsThenTheOntologysNames) {
  const Ontology ontology = small_ontology();
  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "G");
  const MemoryDataset plain = make_cells({30, 30, 30}, {"T cell", "B cell", "Mono"}, 5);
  TrainOptions options;
  options.label_column = "cell_type";
  options.n_genes = 30;
  options.num_threads = 1;
  options.validation_fraction = 0;
  options.reference_sample_cells = 0;
  struct Trained {
    std::vector<std::string> ids;
    struct {
      nlohmann::json provenance;
    } model;
    std::vector<std::string> warnings;
  };
  const auto ids_of_model = [&](const std::vector<const Dataset*>& references, const TrainOptions& o) {
    const TrainResult trained = train_model(references, o, GeneStore(), table);
    EXPECT_EQ(trained.model.class_names, (std::vector<std::string>{"B cell", "Mono", "T cell"}));
    return std::pair(trained.model.class_cl_ids, Trained{trained.model.class_cl_ids, {trained.model.provenance}, trained.warnings});
  };
  // No ontology, no table, no id column: no ids (as before).
  EXPECT_EQ(ids_of_model({&plain}, options).first, (std::vector<std::string>{"", "", ""}));
  // The ontology: labels that are a term's name get its id; "Mono", a shorthand, monocyte's.
  options.ontology = &ontology;
  {
    const auto [ids, trained] = ids_of_model({&plain}, options);
    EXPECT_EQ(ids, (std::vector<std::string>{"CL:0000236", "CL:0000576", "CL:0000084"}));
    EXPECT_EQ(trained.model.provenance["label_cl_id_sources"],
              (nlohmann::json{{"B cell", "CL name"}, {"Mono", "shorthand"}, {"T cell", "CL name"}}));
  }
  // The data's own ids (CELLxGENE's cell_type_ontology_term_id) come before the ontology's names:
  // its "T cell" cells are CD4 T cells; one in five "Mono" cells says CD14 monocyte, the rest
  // monocyte (the most frequent id is taken, with a warning); "unknown" is no id.
  for (const bool categorical : {true, false}) {
    SCOPED_TRACE(categorical ? "categorical" : "strings");
    const MemoryDataset cxg = with_term_ids(plain, {"CL:0000624", "unknown", "CL:0000576"}, 2, "CL:0001054", categorical);
    const auto [ids, trained] = ids_of_model({&cxg}, options);
    EXPECT_EQ(ids, (std::vector<std::string>{"CL:0000236", "CL:0000576", "CL:0000624"}));
    EXPECT_EQ(trained.model.provenance["label_cl_id_sources"],
              (nlohmann::json{{"B cell", "CL name"}, {"Mono", "obs:cell_type_ontology_term_id"}, {"T cell", "obs:cell_type_ontology_term_id"}}));
    EXPECT_TRUE(std::any_of(trained.warnings.begin(), trained.warnings.end(), [](const std::string& warning) {
      return warning == "label 'Mono' carries 2 Cell Ontology ids in obs:cell_type_ontology_term_id: CL:0000576 (24 of 30 cells) taken";
    })) << nlohmann::json(trained.warnings).dump();
    // Without an ontology the data's ids alone.
    TrainOptions no_ontology = options;
    no_ontology.ontology = nullptr;
    EXPECT_EQ(ids_of_model({&cxg}, no_ontology).first, (std::vector<std::string>{"", "CL:0000576", "CL:0000624"}));
    // A label map comes first.
    test::TempDir dir;
    {
      std::ofstream map(dir.file("map.tsv"));
      map << "dataset\tlabel\tcl_id\n\tT cell\tCL:0000084\n";
    }
    TrainOptions mapped = options;
    mapped.label_map = dir.file("map.tsv");
    const auto [map_ids, map_trained] = ids_of_model({&cxg}, mapped);
    EXPECT_EQ(map_ids, (std::vector<std::string>{"CL:0000236", "CL:0000576", "CL:0000084"}));
    EXPECT_EQ(map_trained.model.provenance["label_cl_id_sources"]["T cell"], "label map");
    // A flat model records a table's id as given, even one the installed ontology lacks (a newer CL).
    {
      std::ofstream map(dir.file("newer.tsv"));
      map << "dataset\tlabel\tcl_id\n\tT cell\tCL:4030000\n";
    }
    mapped.label_map = dir.file("newer.tsv");
    EXPECT_EQ(ids_of_model({&cxg}, mapped).first, (std::vector<std::string>{"CL:0000236", "CL:0000576", "CL:4030000"}));
    // Pooled with the plain reference: ids counted over every reference that has the column.
    EXPECT_EQ(ids_of_model({&plain, &cxg}, options).first, (std::vector<std::string>{"CL:0000236", "CL:0000576", "CL:0000624"}));
    // --harmonize-labels renames each label to its term, here the data's.
    TrainOptions harmonized = options;
    harmonized.harmonize_labels = true;
    const TrainResult renamed = train_model({&cxg}, harmonized, GeneStore(), table);
    EXPECT_EQ(renamed.model.class_names, (std::vector<std::string>{"B cell", "CD4 T cell", "monocyte"}));
    EXPECT_EQ(renamed.model.class_cl_ids, (std::vector<std::string>{"CL:0000236", "CL:0000624", "CL:0000576"}));
  }
}

// What the ontology's names make of a reference's labels, said: two labels naming one term (two
// classes that compete), a label mapped through a synonym to a term unrelated to all the others
// (a pancreas reference's "Alpha cells" as the retina's "alpha cell"), and labels that name no
// cell type ("Doublets").
TEST(LabelOntologyIds, ACellOntologyIdWrittenWithAnUnderscoreIsOneLabelWithIt) {
  // CELLxGENE-style id columns written as OBO PURLs' CL_0000233 beside CL:0000233: one class,
  // counted as one (a class of 12 cells, not two of 7 and 5).
  const std::map<std::string, std::int64_t> cells = {{"CL:0000233", 7}, {"CL_0000233", 5}, {" cl_0000451 ", 9}, {"CL_000045", 2}};
  std::string note;
  const auto renames = label_spelling_renames(cells, &note);
  EXPECT_EQ(renames, (std::map<std::string, std::string>{{"CL_0000233", "CL:0000233"}, {" cl_0000451 ", "CL:0000451"}}));
  EXPECT_EQ(label_spelling_key("CL_0000233"), label_spelling_key(" cl:0000233"));
  EXPECT_NE(label_spelling_key("CL_000045"), label_spelling_key("CL:000045"));  // (not an id: 6 digits)
  EXPECT_NE(note.find("only in surrounding spaces or letter case (CL ids also in their CL_ form), read as one class"), std::string::npos) << note;
  std::string lone;
  label_spelling_renames({{"cl_0000236", 3}, {"B ", 2}}, &lone);
  EXPECT_NE(lone.find("2 labels read as the CL ids they spell (CL:0000000): "), std::string::npos) << lone;
  label_spelling_renames({{"B ", 2}}, &lone);
  EXPECT_NE(lone.find("1 label read without surrounding spaces: 'B ' (2 cells) as 'B'"), std::string::npos) << lone;
}

TEST(LabelColumns, EachReferenceReadsTheFirstOfSeveralItHas) {
  const std::vector<std::string> pbmc68k = {"bulk_labels", "n_genes", "louvain"};
  EXPECT_EQ(label_column_of({"celltype", "seurat_clusters"}, "celltype", "obs of a"), "celltype");
  EXPECT_EQ(label_column_of({"celltype"}, "celltype,bulk_labels", "obs of a"), "celltype");
  EXPECT_EQ(label_column_of(pbmc68k, "celltype,bulk_labels", "obs of b"), "bulk_labels");
  EXPECT_EQ(label_column_of(pbmc68k, "louvain,bulk_labels", "obs of b"), "louvain");  // (the first listed wins)
  EXPECT_EQ(label_column_of({"type, fine", "type"}, "type, fine", "obs of c"), "type, fine");  // a column named with a comma
  try {
    (void)label_column_of(pbmc68k, "celltype,cell_type", "obs of b");
    ADD_FAILURE() << "no column found";
  } catch (const InputError& error) {
    EXPECT_STREQ(error.what(), "obs of b: no column 'celltype' nor 'cell_type' (available: bulk_labels, n_genes, louvain)");
  }
  try {
    (void)label_column_of({}, "celltype", "obs of d");
    ADD_FAILURE() << "no column found";
  } catch (const InputError& error) {
    EXPECT_STREQ(error.what(), "obs of d: no column 'celltype' (available: none)");
  }
}

TEST(LabelOntologyIds, AnObsoleteIdIsItsReplacementAndALabelNamingAnotherTermThanItsIdIsSaid) {
  std::istringstream obo(R"(format-version: 1.2

[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000542
name: lymphocyte
is_a: CL:0000000

[Term]
id: CL:0000084
name: T cell
is_a: CL:0000542

[Term]
id: CL:0000236
name: B cell
is_a: CL:0000542

[Term]
id: CL:0000624
name: CD4-positive, alpha-beta T cell
is_a: CL:0000084

[Term]
id: CL:0000804
name: obsolete old T cell
is_obsolete: true
replaced_by: CL:0000084
)");
  const Ontology ontology = parse_obo(obo, "obsolete.obo");
  const auto said = [](const LabelHarmonization& h, const std::string& text) {
    return std::any_of(h.warnings.begin(), h.warnings.end(), [&](const std::string& w) { return w.find(text) != std::string::npos; });
  };
  // A label that is an obsolete id (an id column as the label) or carries one (the data's ids):
  // with --harmonize-labels the class is the replacement, said; without, the id as given.
  for (const bool rename : {true, false}) {
    SCOPED_TRACE(rename ? "harmonized" : "as given");
    const LabelHarmonization by_id = harmonize_labels({"CL:0000804", "B cell"}, &ontology, "", "", rename);
    const LabelHarmonization by_data = harmonize_labels({"old T", "B cell"}, &ontology, "", "", rename, {{"old T", "CL:0000804"}});
    for (const auto* h : {&by_id, &by_data}) {
      EXPECT_TRUE(said(*h, "(CL:0000804, replaced by CL:0000084 'T cell') mapped to an obsolete Cell Ontology term")) << nlohmann::json(h->warnings);
      EXPECT_EQ(h->cl_ids.count(rename ? "T cell" : h == &by_id ? "CL:0000804" : "old T"), 1U) << nlohmann::json(h->cl_ids);
      EXPECT_EQ(h->cl_ids.at(rename ? "T cell" : h == &by_id ? "CL:0000804" : "old T"), "CL:0000084");  // (the current id, either way)
    }
  }
  // So a coarse label above it leaves it among its classes.
  const std::vector<std::set<std::string>> used = {{"CL:0000804", "B cell"}, {"lymphocyte"}};
  const std::map<std::string, std::string> ids = {{"CL:0000804", "CL:0000804"}, {"B cell", "CL:0000236"}, {"lymphocyte", "CL:0000542"}};
  EXPECT_EQ(coarse_labels(used, ids, ontology).at("lymphocyte").classes,
            (std::map<std::int32_t, std::vector<std::string>>{{1, {"B cell", "CL:0000804"}}}));
  // A label naming one term whose cells carry another's id (a stale id column): the id is used, said.
  const LabelHarmonization stale = harmonize_labels({"B cell", "T cell"}, &ontology, "", "", true, {{"B cell", "CL:0000084"}});
  EXPECT_TRUE(said(stale, "1 label names another Cell Ontology term than the id its cells carry: 'B cell' (CL:0000236 by its name, "
                          "CL:0000084 'T cell' in the data); the data's id is used, and labels with one id train as one class"))
      << nlohmann::json(stale.warnings);
  EXPECT_EQ(stale.renames.at("B cell"), "T cell");
  EXPECT_FALSE(said(harmonize_labels({"B cell", "T cell"}, &ontology, "", "", true, {{"B cell", "CL:0000236"}}), "another Cell Ontology term"));
  // An author's coarser name with a finer curated id is the id refining it: nothing said. A finer
  // name with a coarser id loses the name's depth: a note.
  const LabelHarmonization refined = harmonize_labels({"T cell", "B cell"}, &ontology, "", "", true, {{"T cell", "CL:0000624"}});
  EXPECT_FALSE(said(refined, "Cell Ontology term than the id")) << nlohmann::json(refined.warnings);
  const LabelHarmonization coarsened = harmonize_labels({"CD4-positive, alpha-beta T cell", "B cell"}, &ontology, "", "", true,
                                                        {{"CD4-positive, alpha-beta T cell", "CL:0000084"}});
  EXPECT_FALSE(said(coarsened, "another Cell Ontology term")) << nlohmann::json(coarsened.warnings);
  EXPECT_TRUE(said(coarsened, "1 label names a finer Cell Ontology term than the id its cells carry: 'CD4-positive, alpha-beta T cell' "
                              "(CL:0000624 by its name, CL:0000084 'T cell' in the data); the data's id is used"))
      << nlohmann::json(coarsened.warnings);
}

TEST(LabelOntologyIds, TwoNamesOfOneTermAnOddSynonymAndNoTypeLabelsAreSaid) {
  std::istringstream obo(R"(format-version: 1.2

[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000738
name: leukocyte
is_a: CL:0000000

[Term]
id: CL:0000542
name: lymphocyte
is_a: CL:0000738

[Term]
id: CL:0000084
name: T cell
is_a: CL:0000542

[Term]
id: CL:0000236
name: B cell
is_a: CL:0000542

[Term]
id: CL:0000623
name: natural killer cell
synonym: "NK cell" EXACT []
is_a: CL:0000542

[Term]
id: CL:0000540
name: neuron
is_a: CL:0000000

[Term]
id: CL:0004117
name: retinal ganglion cell A
synonym: "alpha cell" EXACT []
is_a: CL:0000540

[Term]
id: CL:0000010
name: first group
is_a: CL:0000000

[Term]
id: CL:0000011
name: second group
is_a: CL:0000000

[Term]
id: CL:0000012
name: left cell
is_a: CL:0000010
is_a: CL:0000011

[Term]
id: CL:0000013
name: right cell
is_a: CL:0000010
is_a: CL:0000011

[Term]
id: CL:0000014
name: gamma T cell (Mmus)
synonym: "gamma cell" EXACT []
is_a: CL:0000084
)");
  const Ontology ontology = parse_obo(obo, "odd.obo");
  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "G");
  const MemoryDataset cells =
      make_cells({20, 20, 20, 20, 20, 20}, {"T cell", "NK cells", "Natural killer cell", "Alpha cells", "Doublets", "Left/Right cells"}, 3);
  TrainOptions options;
  options.label_column = "cell_type";
  options.n_genes = 30;
  options.num_threads = 1;
  options.validation_fraction = 0;
  options.reference_sample_cells = 0;
  options.ontology = &ontology;
  const auto warnings_of = [&](const TrainOptions& o) { return nlohmann::json(train_model({&cells}, o, GeneStore(), table).warnings).dump(); };
  const std::string said = warnings_of(options);
  EXPECT_NE(said.find("generated: 'NK cells', 'Natural killer cell' name one Cell Ontology term (natural killer cell, CL:0000623) and train "
                      "as 2 classes that compete"),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("label 'Alpha cells' maps through a Cell Ontology synonym to retinal ganglion cell A (CL:0004117), a term unrelated "
                      "to every other label's"),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("generated: labels of obs:cell_type that name no cell type ('Doublets') train as classes"),
            std::string::npos)
      << said;
  // A label two terms fit (two lowest common ancestors) is named with them.
  EXPECT_NE(said.find("several terms fit 'Left/Right cells': CL:0000010 (first group) or CL:0000011 (second group)"), std::string::npos)
      << said;
  // A synonym of a term tagged with another species (CL's "alpha retinal ganglion cell (Mmus)") is
  // said even among related terms.
  const MemoryDataset gamma = make_cells({20, 20}, {"T cell", "Gamma cells"}, 4);
  const std::string gamma_said = nlohmann::json(train_model({&gamma}, options, GeneStore(), table).warnings).dump();
  EXPECT_NE(gamma_said.find("label 'Gamma cells' maps through a Cell Ontology synonym to gamma T cell (Mmus) (CL:0000014), a term of "
                            "another species"),
            std::string::npos)
      << gamma_said;
  // The labels' own synonym ("NK cells") among related terms is no odd one.
  EXPECT_EQ(said.find("label 'NK cells' maps through"), std::string::npos) << said;
  // --harmonize-labels makes each label its term: the two names are one class, unsaid.
  TrainOptions harmonized = options;
  harmonized.harmonize_labels = true;
  EXPECT_EQ(warnings_of(harmonized).find("name one Cell Ontology term"), std::string::npos);
  // Ids from a label map are the user's choice: two labels it sends to one term, or to a far term, are unsaid.
  test::TempDir dir;
  std::ofstream(dir.file("map.tsv")) << "label\tcl_id\nNK cells\tCL:0000623\nNatural killer cell\tCL:0000623\nAlpha cells\tCL:0004117\n";
  TrainOptions mapped = options;
  mapped.label_map = dir.file("map.tsv");
  const std::string mapped_said = warnings_of(mapped);
  EXPECT_EQ(mapped_said.find("name one Cell Ontology term"), std::string::npos) << mapped_said;
  EXPECT_EQ(mapped_said.find("maps through a Cell Ontology synonym"), std::string::npos) << mapped_said;
}

// Two incomparable terms above every class at an equal probability (CELLxGENE's CL export puts
// "hematopoietic cell" and "eukaryotic cell" side by side under "cell"): the narrower one, of
// fewer descendants, whichever the file lists first.
TEST(HierarchicalPrediction, AtEqualProbabilityTheNarrowerTermIsChosen) {
  for (const bool broad_first : {true, false}) {
    const std::string broad = "[Term]\nid: CL:0000255\nname: eukaryotic cell\nis_a: CL:0000000\n\n";
    const std::string narrow = "[Term]\nid: CL:0000988\nname: hematopoietic cell\nis_a: CL:0000000\n\n";
    std::istringstream obo("format-version: 1.2\n\n[Term]\nid: CL:0000000\nname: cell\n\n" + (broad_first ? broad + narrow : narrow + broad) +
                           "[Term]\nid: CL:0000066\nname: epithelial cell\nis_a: CL:0000255\n\n"
                           "[Term]\nid: CL:0000236\nname: B cell\nis_a: CL:0000255\nis_a: CL:0000988\n\n"
                           "[Term]\nid: CL:0000233\nname: platelet\nis_a: CL:0000255\nis_a: CL:0000988\n");
    const Ontology ontology = parse_obo(obo, "two roots");
    const HierarchicalPrediction prediction =
        predict_hierarchical({0.5f, 0.5f, 0.9f, 0.1f}, {"B", "Platelet"}, {"CL:0000236", "CL:0000233"}, ontology, 0.8);
    SCOPED_TRACE(broad_first);
    EXPECT_EQ(prediction.cl_ids, (std::vector<std::string>{"CL:0000988", "CL:0000236"}));
    EXPECT_EQ(prediction.labels[0], "hematopoietic cell");
  }
}

// A cell no term takes (a class without a CL id holds most of its probability): Unassigned, with
// the largest probability of any term as its score, as a flat Unassigned label keeps its best.
TEST(HierarchicalPrediction, AnUnassignedCellKeepsItsLargestProbability) {
  const Ontology ontology = small_ontology();
  const HierarchicalPrediction prediction =
      predict_hierarchical({0.3f, 0.7f}, {"B", "Doublet"}, {ids_of(ontology).at("B cell"), ""}, ontology, 0.9);
  EXPECT_EQ(prediction.labels[0], kUnassigned);
  EXPECT_FLOAT_EQ(prediction.scores[0], 0.7f);
}

// A class whose own term is reached only by summing does not name the call: savercat's "T/NK
// cells" (mapped to lymphocyte, the common ancestor of T and NK cells) must not name B cells that
// reach lymphocyte through "B cells" and "T/NK cells" together. Two classes of one term: the
// likelier names it when it alone reaches the threshold.
TEST(HierarchicalPrediction, ATermReachedBySummingIsNamedByTheOntology) {
  const Ontology ontology = small_ontology();
  const auto ids = ids_of(ontology);
  const std::vector<std::string> names = {"B cells", "T/NK cells", "CD4 T"};
  const std::vector<std::string> cl_ids = {ids.at("B cell"), ids.at("lymphocyte"), ids.at("CD4 T cell")};
  const HierarchicalPrediction prediction = predict_hierarchical({0.45f, 0.10f, 0.45f,    // lymphocyte by summing
                                                                  0.20f, 0.60f, 0.20f,    // lymphocyte, "T/NK cells" alone
                                                                  0.70f, 0.10f, 0.20f},   // B cell
                                                                 names, cl_ids, ontology, 0.5);
  EXPECT_EQ(prediction.labels, (std::vector<std::string>{"lymphocyte", "T/NK cells", "B cells"}));
  EXPECT_EQ(prediction.cl_ids, (std::vector<std::string>{ids.at("lymphocyte"), ids.at("lymphocyte"), ids.at("B cell")}));
  // Two names of one term (a reference's "B lymphocytes" and "CL:0000236"): the likelier one when
  // it reaches the threshold alone, else the term's name.
  const std::vector<std::string> two = {"B lymphocytes", "CL:0000236", "CD4 T"};
  const std::vector<std::string> two_ids = {ids.at("B cell"), ids.at("B cell"), ids.at("CD4 T cell")};
  const HierarchicalPrediction shared =
      predict_hierarchical({0.2f, 0.6f, 0.2f, 0.6f, 0.2f, 0.2f, 0.3f, 0.3f, 0.4f}, two, two_ids, ontology, 0.5);
  EXPECT_EQ(shared.labels, (std::vector<std::string>{"CL:0000236", "B lymphocytes", "B cell"}));
}

}  // namespace
}  // namespace celltyper
