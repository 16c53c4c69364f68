// Datasets over borrowed arrays (what the Python module passes): every layout reads like the
// same cells held by a MemoryDataset, malformed arrays are refused up front, and the in-memory
// path goes train -> annotate -> evaluate without files.
#include <celltyper/annotate.hpp>
#include <celltyper/array_dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/linear_scores.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/report.hpp>

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace celltyper {
namespace {

constexpr int kGenes = 40;

/// Counts of 3 classes (markers: genes 10c..10c+9 at rate 5, the rest at 0.3) as CSR arrays.
struct Cells {
  std::vector<float> values;
  std::vector<std::int32_t> indices;
  std::vector<std::int64_t> indptr{0};
  std::vector<std::string> labels;
  DataFrame obs;
  DataFrame var;
  std::int64_t n = 0;
};

Cells make_cells(int per_class, unsigned seed) {
  Cells cells;
  std::mt19937 rng(seed);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < per_class; ++i) {
      for (int g = 0; g < kGenes; ++g) {
        std::poisson_distribution<int> counts(g / 10 == c ? 5.0 : 0.3);
        const int value = counts(rng);
        if (value == 0) continue;
        cells.indices.push_back(g);
        cells.values.push_back(static_cast<float>(value));
      }
      cells.indptr.push_back(static_cast<std::int64_t>(cells.indices.size()));
      cells.labels.push_back("type" + std::to_string(c));
      cells.obs.index.push_back("cell" + std::to_string(cells.n++));
    }
  }
  for (int g = 0; g < kGenes; ++g) cells.var.index.push_back("A" + std::to_string(g + 1));
  cells.obs.columns.push_back(Column::from_strings("cell_type", cells.labels));
  return cells;
}

MatrixView csr_view(const Cells& cells) {
  MatrixView view;
  view.n_rows = cells.n;
  view.n_cols = kGenes;
  view.values = {cells.values.data(), ArrayType::kFloat32, static_cast<std::int64_t>(cells.values.size())};
  view.indices = {cells.indices.data(), ArrayType::kInt32, static_cast<std::int64_t>(cells.indices.size())};
  view.indptr = {cells.indptr.data(), ArrayType::kInt64, static_cast<std::int64_t>(cells.indptr.size())};
  return view;
}

MemoryDataset memory_copy(const Cells& cells) {
  CsrBlockF64 matrix;
  matrix.reset(0, cells.n, kGenes);
  matrix.indptr.assign(cells.indptr.begin(), cells.indptr.end());
  matrix.indices.assign(cells.indices.begin(), cells.indices.end());
  matrix.values.assign(cells.values.begin(), cells.values.end());
  return MemoryDataset("copy", cells.obs, cells.var, std::move(matrix));
}

void expect_same_rows(const Dataset& a, const Dataset& b) {
  auto ra = a.open_matrix("X");
  auto rb = b.open_matrix("X");
  ASSERT_EQ(ra->n_rows(), rb->n_rows());
  EXPECT_EQ(ra->row_nnz(), rb->row_nnz());
  for (std::int64_t first = 0; first < ra->n_rows(); first += 7) {
    const std::int64_t count = std::min<std::int64_t>(7, ra->n_rows() - first);
    CsrBlock x;
    CsrBlock y;
    ra->read_rows(first, count, x);
    rb->read_rows(first, count, y);
    ASSERT_EQ(std::vector<std::int64_t>(x.indptr.begin(), x.indptr.end()), std::vector<std::int64_t>(y.indptr.begin(), y.indptr.end()));
    ASSERT_EQ(std::vector<std::int32_t>(x.indices.begin(), x.indices.end()), std::vector<std::int32_t>(y.indices.begin(), y.indices.end()));
    ASSERT_EQ(std::vector<float>(x.values.begin(), x.values.end()), std::vector<float>(y.values.begin(), y.values.end()));
  }
}

TEST(ArrayDataset, EveryLayoutReadsLikeTheSameCellsInMemory) {
  const Cells cells = make_cells(20, 1);
  const MemoryDataset reference = memory_copy(cells);
  const ArrayDataset csr("csr", cells.obs, cells.var, csr_view(cells));
  expect_same_rows(csr, reference);

  // int64 column indices, int32 row pointers, float64 and uint16 values
  std::vector<std::int64_t> indices64(cells.indices.begin(), cells.indices.end());
  std::vector<std::int32_t> indptr32(cells.indptr.begin(), cells.indptr.end());
  std::vector<double> values64(cells.values.begin(), cells.values.end());
  std::vector<std::uint16_t> values16(cells.values.begin(), cells.values.end());
  MatrixView wide = csr_view(cells);
  wide.indices = {indices64.data(), ArrayType::kInt64, static_cast<std::int64_t>(indices64.size())};
  wide.indptr = {indptr32.data(), ArrayType::kInt32, static_cast<std::int64_t>(indptr32.size())};
  wide.values = {values64.data(), ArrayType::kFloat64, static_cast<std::int64_t>(values64.size())};
  expect_same_rows(ArrayDataset("wide", cells.obs, cells.var, wide), reference);
  wide.values = {values16.data(), ArrayType::kUInt16, static_cast<std::int64_t>(values16.size())};
  expect_same_rows(ArrayDataset("uint16", cells.obs, cells.var, wide), reference);

  // dense row-major
  std::vector<float> dense(static_cast<std::size_t>(cells.n * kGenes), 0.0F);
  for (std::int64_t r = 0; r < cells.n; ++r) {
    for (auto k = cells.indptr[static_cast<std::size_t>(r)]; k < cells.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      dense[static_cast<std::size_t>(r * kGenes + cells.indices[static_cast<std::size_t>(k)])] = cells.values[static_cast<std::size_t>(k)];
    }
  }
  MatrixView dense_view;
  dense_view.encoding = MatrixEncoding::kDense;
  dense_view.n_rows = cells.n;
  dense_view.n_cols = kGenes;
  dense_view.values = {dense.data(), ArrayType::kFloat32, static_cast<std::int64_t>(dense.size())};
  const ArrayDataset from_dense("dense", cells.obs, cells.var, dense_view);
  expect_same_rows(from_dense, reference);
  EXPECT_EQ(from_dense.matrix_info("X").encoding, MatrixEncoding::kDense);
  EXPECT_THROW((void)from_dense.matrix_info("raw/X"), InputError);
}

// A matrix named after the AnnData matrix it came from (the Python module's layer= / use_raw=):
// resolved by the names a file's is, opened under that name only, and recorded as what a model read.
TEST(ArrayDataset, ItsMatrixIsNamedAfterTheAnnDataMatrixItCameFrom) {
  const Cells cells = make_cells(20, 5);
  const ArrayDataset layer("AnnData.layers['umis']", cells.obs, cells.var, csr_view(cells), "layers/umis");
  EXPECT_EQ(layer.matrix_sources(), std::vector<std::string>{"layers/umis"});
  EXPECT_EQ(resolve_matrix_source(layer, "umis"), "layers/umis");
  EXPECT_EQ(resolve_matrix_source(layer, "layers/umis"), "layers/umis");
  EXPECT_EQ(layer.matrix_info("layers/umis").source, "layers/umis");
  try {
    (void)layer.open_matrix("X");
    ADD_FAILURE() << "X opened";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("one matrix (layers/umis), not 'X'"), std::string::npos) << error.what();
  }
  EXPECT_THROW(ArrayDataset("unnamed", cells.obs, cells.var, csr_view(cells), ""), InputError);

  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "A");
  TrainOptions options;
  options.label_column = "cell_type";
  options.n_genes = 30;
  options.num_threads = 1;
  options.matrices = {"layers/umis"};
  const TrainResult trained = train_model({&layer}, options, GeneStore(), table);
  EXPECT_EQ(trained.model.provenance["references"][0]["matrix"], "layers/umis");
  const ArrayDataset raw("AnnData.raw.X", cells.obs, cells.var, csr_view(cells), "raw/X");
  AnnotateOptions annotate_options;
  annotate_options.embed.num_threads = 1;
  annotate_options.embed.matrix = "raw";
  const Annotation annotation = annotate_dataset(raw, {&trained.model}, table, annotate_options);
  EXPECT_EQ(annotation.labels, cells.labels);
}

void expect_refused(const Cells& cells, const MatrixView& view, const std::string& message) {
  try {
    ArrayDataset dataset("bad", cells.obs, cells.var, view);
    ADD_FAILURE() << "accepted; expected: " << message;
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find(message), std::string::npos) << error.what();
  }
}

TEST(ArrayDataset, MalformedArraysAreRefusedNamingTheCell) {
  const Cells good = make_cells(4, 2);
  {
    Cells cells = good;
    cells.indptr[0] = 1;
    expect_refused(cells, csr_view(cells), "start at 1");
  }
  {
    Cells cells = good;
    cells.indptr.back() += 1;
    expect_refused(cells, csr_view(cells), "end at");
  }
  {
    Cells cells = good;
    cells.indptr[4] = cells.indptr[3] - 1;
    expect_refused(cells, csr_view(cells), "decrease at cell 3");
  }
  {
    Cells cells = good;
    cells.indices[1] = kGenes;
    expect_refused(cells, csr_view(cells), "cell 0 has column index 40 outside [0, 40)");
  }
  {
    Cells cells = good;
    cells.indices[1] = cells.indices[0];
    expect_refused(cells, csr_view(cells), "cell 0 has duplicate column indices");
  }
  {
    Cells cells = good;
    std::swap(cells.indices[0], cells.indices[1]);
    expect_refused(cells, csr_view(cells), "unsorted");
  }
  {
    Cells cells = good;
    cells.values[2] = std::numeric_limits<float>::quiet_NaN();
    expect_refused(cells, csr_view(cells), "not finite");
  }
  {
    Cells cells = good;
    cells.var.index.pop_back();
    expect_refused(cells, csr_view(cells), "but there are 12 cells (obs) and 39 genes (var)");
  }
  {
    MatrixView view = csr_view(good);
    view.indptr.type = ArrayType::kFloat32;
    expect_refused(good, view, "int32 or int64 expected");
  }
  {
    MatrixView view = csr_view(good);
    view.indptr.size -= 1;
    expect_refused(good, view, "row pointers have 12 entries for 12 cells");
  }
}

TEST(ArrayDataset, TrainAnnotateEvaluateInMemoryEqualsTheMemoryDatasetPath) {
  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "A");
  const Cells reference_cells = make_cells(60, 3);
  const Cells query_cells = make_cells(30, 4);
  TrainOptions options;
  options.label_column = "cell_type";
  options.features = kFeaturesExpression;
  options.n_genes = 30;
  options.num_threads = 1;
  const ArrayDataset borrowed("reference", reference_cells.obs, reference_cells.var, csr_view(reference_cells));
  const MemoryDataset copied = memory_copy(reference_cells);
  const TrainResult from_arrays = train_model({&borrowed}, options, GeneStore(), table);
  const TrainResult from_copy = train_model({&copied}, options, GeneStore(), table);
  ASSERT_EQ(from_arrays.model.class_names, from_copy.model.class_names);

  const ArrayDataset query("query", query_cells.obs, query_cells.var, csr_view(query_cells));
  AnnotateOptions annotate_options;
  annotate_options.embed.num_threads = 1;
  const Annotation a = annotate_dataset(query, {&from_arrays.model}, table, annotate_options);
  const Annotation b = annotate_dataset(memory_copy(query_cells), {&from_copy.model}, table, annotate_options);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.probabilities, b.probabilities);

  MemoryAnnotatedSource annotated;
  annotated.obs = query_cells.obs;
  annotated.obs.columns.push_back(Column::from_strings("celltyper_label", a.labels));
  annotated.obsm["celltyper_probabilities"] = DenseMatrix{static_cast<std::int64_t>(a.labels.size()),
                                                          static_cast<std::int64_t>(a.class_names.size()), a.probabilities};
  annotated.uns["celltyper_probability_classes"] = a.class_names;
  DatasetEvaluationOptions evaluation;
  evaluation.truth = "obs:cell_type";
  const DatasetEvaluation result = evaluate_annotated(annotated, evaluation);
  const EvaluationResult direct = evaluate(query_cells.labels, a.labels);
  EXPECT_DOUBLE_EQ(result.sets.front().result.accuracy, direct.accuracy);
  EXPECT_GT(result.sets.front().result.accuracy, 0.9);
  EXPECT_EQ(result.probabilities, "obsm:celltyper_probabilities");
  EXPECT_EQ(result.input, "AnnData");

  // train_for_query: the reference restricted to the query's genes
  const std::vector<int> keep = {0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24};
  Cells narrow = query_cells;
  DataFrame var;
  for (const int g : keep) var.index.push_back("A" + std::to_string(g + 1));
  narrow.var = var;
  std::vector<float> values;
  std::vector<std::int32_t> indices;
  std::vector<std::int64_t> indptr{0};
  for (std::int64_t r = 0; r < query_cells.n; ++r) {
    for (auto k = query_cells.indptr[static_cast<std::size_t>(r)]; k < query_cells.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      const auto found = std::find(keep.begin(), keep.end(), query_cells.indices[static_cast<std::size_t>(k)]);
      if (found == keep.end()) continue;
      indices.push_back(static_cast<std::int32_t>(found - keep.begin()));
      values.push_back(query_cells.values[static_cast<std::size_t>(k)]);
    }
    indptr.push_back(static_cast<std::int64_t>(indices.size()));
  }
  MatrixView view;
  view.n_rows = narrow.n;
  view.n_cols = static_cast<std::int64_t>(keep.size());
  view.values = {values.data(), ArrayType::kFloat32, static_cast<std::int64_t>(values.size())};
  view.indices = {indices.data(), ArrayType::kInt32, static_cast<std::int64_t>(indices.size())};
  view.indptr = {indptr.data(), ArrayType::kInt64, static_cast<std::int64_t>(indptr.size())};
  const ArrayDataset narrow_query("narrow", narrow.obs, narrow.var, view);
  const TrainResult for_query = train_for_query({&borrowed}, narrow_query, options, GeneStore(), table, annotate_options.embed,
                                                  /* min_shared_genes = */ 10);
  ASSERT_GT(for_query.model.panel.size(), 0);
  for (const std::int64_t entrez : for_query.model.panel.entrez_ids) {
    EXPECT_NE(std::find(keep.begin(), keep.end(), static_cast<int>(entrez - 1001)), keep.end()) << entrez;
  }
  // (held-out cells only calibrate the scores; every cell trains the model)
  EXPECT_TRUE(for_query.has_validation);
  EXPECT_EQ(for_query.n_cells, borrowed.n_obs());
  EXPECT_TRUE(for_query.model.provenance.contains("calibration"));
}

// annotate's sparse path for logistic regression (linear_scores.hpp) gives the classifier's own
// probabilities of the dense features, and the same values for every thread count and block size.
TEST(ArrayDataset, LinearScoresEqualTheClassifiersProbabilitiesOfTheDenseFeatures) {
  const GeneTable table = test::numbered_gene_table(kGenes, 1001, "A");
  TrainOptions options;
  options.label_column = "cell_type";
  options.features = kFeaturesExpression;
  options.n_genes = 30;
  options.num_threads = 1;
  const MemoryDataset reference = memory_copy(make_cells(60, 3));
  const TrainResult trained = train_model({&reference}, options, GeneStore(), table);
  const CellTypeModel& model = trained.model;
  const auto linear = linear_scores(model);
  ASSERT_TRUE(linear.has_value());
  EXPECT_EQ(linear->width, model.classifier->n_features());

  const MemoryDataset query = memory_copy(make_cells(40, 9));
  EmbedOptions embed;
  embed.num_threads = 1;
  ExpressionOptions settings = expression_options(embed);
  settings.size_factor_genes = model.panel.size_factor_genes;
  const ExpressionFeatures dense = expression_features(query, table, model.panel.entrez_ids, settings);
  const std::vector<float> expected = model.classifier->predict_proba(dense.values.data(), query.n_obs(), 1);
  const auto n = static_cast<std::size_t>(query.n_obs());
  const auto c = static_cast<std::size_t>(linear->classes);
  std::vector<std::size_t> columns(c);
  std::iota(columns.begin(), columns.end(), std::size_t{0});
  std::vector<float> reference_run;
  for (const int threads : {1, 2, 3}) {
    for (const std::size_t limit : {std::size_t{1} << 10, std::size_t{32} << 20}) {
      embed.num_threads = threads;
      embed.memory_limit_bytes = limit;
      std::vector<float> probabilities(n * c, 0.0f);
      std::vector<std::int32_t> used(n, 0);
      add_linear_probabilities(query, model, *linear, table, embed, columns, c, probabilities, used);
      for (std::size_t i = 0; i < n; ++i) {
        EXPECT_EQ(used[i], dense.empty[i] != 0 ? 0 : 1) << "cell " << i;
        if (dense.empty[i] != 0) continue;
        for (std::size_t k = 0; k < c; ++k) EXPECT_NEAR(probabilities[i * c + k], expected[i * c + k], 1e-6) << "cell " << i << " class " << k;
      }
      if (reference_run.empty()) reference_run = probabilities;
      EXPECT_EQ(probabilities, reference_run) << threads << " threads, block cap " << limit;
    }
  }
  // Any other model has no affine form.
  TrainOptions knn = options;
  knn.classifier = "knn";
  EXPECT_FALSE(linear_scores(train_model({&reference}, knn, GeneStore(), table).model).has_value());
}

}  // namespace
}  // namespace celltyper
