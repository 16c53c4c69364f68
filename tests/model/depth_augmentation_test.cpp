// Depth augmentation (TrainOptions::augment_depth): binomial thinning of a dataset's counts
// (ThinnedDataset) and the thinned copies training adds, which never validate.
#include <celltyper/annotate.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/thinned_dataset.hpp>
#include <celltyper/train.hpp>

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

namespace celltyper {
namespace {

constexpr int kGenes = 40;

/// What make_cells stores.
enum class Values {
  kCounts,
  kLogCounts,      ///< log1p(counts): the counts can be read back (recover_counts)
  kLogOfNonCounts  ///< log1p(counts x a per-gene factor, as TPM's gene lengths): they cannot
};

/// Poisson counts: `per_class[c]` cells of class c, every gene at rate `base`, class c's markers
/// (genes 10c..10c+9) at rate 8 x `base`; stored as `values` says.
MemoryDataset make_cells(const std::vector<int>& per_class, unsigned seed, double base = 1.0, Values values = Values::kCounts) {
  std::mt19937 rng(seed);
  DataFrame obs;
  DataFrame var;
  for (int g = 0; g < kGenes; ++g) var.index.push_back("G" + std::to_string(g + 1));
  std::vector<std::string> labels;
  CsrBlockF64 matrix;
  matrix.reset(0, 0, kGenes);
  for (std::size_t c = 0; c < per_class.size(); ++c) {
    for (int i = 0; i < per_class[c]; ++i) {
      for (int g = 0; g < kGenes; ++g) {
        std::poisson_distribution<int> counts(base * (g / 10 == static_cast<int>(c) ? 8.0 : 1.0));
        const int value = counts(rng);
        if (value == 0) continue;
        matrix.indices.push_back(g);
        const double gene_factor = 1000.0 / (500.0 + 97.3 * g);
        matrix.values.push_back(values == Values::kCounts      ? value
                                : values == Values::kLogCounts ? std::log1p(value)
                                                               : std::log1p(value * gene_factor));
      }
      matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
      ++matrix.n_rows;
      obs.index.push_back("cell" + std::to_string(obs.index.size()));
      labels.push_back("type" + std::to_string(c));
    }
  }
  obs.columns.push_back(Column::categorical("cell_type", labels));
  return MemoryDataset("generated cells", std::move(obs), std::move(var), std::move(matrix));
}

CsrBlockF64 read_all(const Dataset& dataset, std::int64_t rows_per_read) {
  auto reader = dataset.open_matrix("X");
  CsrBlockF64 all;
  all.reset(0, 0, reader->n_cols());
  CsrBlockF64 block;
  for (std::int64_t first = 0; first < reader->n_rows(); first += rows_per_read) {
    reader->read_rows(first, std::min(rows_per_read, reader->n_rows() - first), block);
    for (std::int64_t i = 0; i < block.n_rows; ++i) {
      for (std::int64_t k = block.indptr[static_cast<std::size_t>(i)]; k < block.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
        all.indices.push_back(block.indices[static_cast<std::size_t>(k)]);
        all.values.push_back(block.values[static_cast<std::size_t>(k)]);
      }
      all.indptr.push_back(static_cast<std::int64_t>(all.indices.size()));
      ++all.n_rows;
    }
  }
  return all;
}

TEST(ThinnedDataset, KeepsABinomialShareOfEachCountWhateverTheBlocks) {
  const MemoryDataset cells = make_cells({100, 100}, 3, 20.0);  // deep cells: many molecules per cell
  const ThinnedDataset thinned(cells, 0.1, 0.5, 42);
  const CsrBlockF64 original = read_all(cells, 1000);
  const CsrBlockF64 whole = read_all(thinned, 1000);
  const CsrBlockF64 one_by_one = read_all(thinned, 1);
  const CsrBlockF64 sevens = read_all(thinned, 7);
  ASSERT_EQ(whole.n_rows, cells.n_obs());
  EXPECT_EQ(std::vector<std::int64_t>(whole.indptr.begin(), whole.indptr.end()), std::vector<std::int64_t>(one_by_one.indptr.begin(), one_by_one.indptr.end()));
  EXPECT_EQ(std::vector<double>(whole.values.begin(), whole.values.end()), std::vector<double>(one_by_one.values.begin(), one_by_one.values.end()));
  EXPECT_EQ(std::vector<double>(whole.values.begin(), whole.values.end()), std::vector<double>(sevens.values.begin(), sevens.values.end()));
  EXPECT_EQ(std::vector<std::int32_t>(whole.indices.begin(), whole.indices.end()), std::vector<std::int32_t>(sevens.indices.begin(), sevens.indices.end()));
  double fractions = 0;
  const std::vector<double> keep = thinned.keep_fractions("X");
  ASSERT_EQ(keep.size(), static_cast<std::size_t>(whole.n_rows));
  for (std::int64_t row = 0; row < whole.n_rows; ++row) {
    const double p = keep[static_cast<std::size_t>(row)];
    EXPECT_GE(p, 0.1);
    EXPECT_LE(p, 0.5);
    fractions += p;
    // Every kept value is a whole number no larger than the original count of that gene.
    std::map<std::int32_t, double> before;
    double total_before = 0;
    for (std::int64_t k = original.indptr[static_cast<std::size_t>(row)]; k < original.indptr[static_cast<std::size_t>(row) + 1]; ++k) {
      before[original.indices[static_cast<std::size_t>(k)]] = original.values[static_cast<std::size_t>(k)];
      total_before += original.values[static_cast<std::size_t>(k)];
    }
    double total_after = 0;
    for (std::int64_t k = whole.indptr[static_cast<std::size_t>(row)]; k < whole.indptr[static_cast<std::size_t>(row) + 1]; ++k) {
      const double value = whole.values[static_cast<std::size_t>(k)];
      ASSERT_GT(value, 0);  // thinned-away counts are not stored
      ASSERT_EQ(value, std::floor(value));
      ASSERT_LE(value, before.at(whole.indices[static_cast<std::size_t>(k)]));
      total_after += value;
    }
    // Binomial(total, p): within 5 standard deviations.
    const double sd = std::sqrt(total_before * p * (1 - p));
    EXPECT_NEAR(total_after, p * total_before, 5 * sd + 1) << "row " << row;
  }
  EXPECT_NEAR(fractions / static_cast<double>(whole.n_rows), 0.3, 0.05);  // uniform on [0.1, 0.5]
  // row_nnz counts what is left.
  const std::vector<std::int64_t> nnz = thinned.open_matrix("X")->row_nnz();
  ASSERT_EQ(nnz.size(), static_cast<std::size_t>(whole.n_rows));
  for (std::size_t row = 0; row < nnz.size(); ++row) EXPECT_EQ(nnz[row], whole.indptr[row + 1] - whole.indptr[row]);
  // Another seed thins differently.
  const ThinnedDataset other(cells, 0.1, 0.5, 43);
  const CsrBlockF64 other_values = read_all(other, 1000);
  EXPECT_NE(std::vector<double>(whole.values.begin(), whole.values.end()), std::vector<double>(other_values.values.begin(), other_values.values.end()));
  EXPECT_THROW(ThinnedDataset(cells, 0.0, 0.5, 1), InputError);
  EXPECT_THROW(ThinnedDataset(cells, 0.6, 0.5, 1), InputError);
  EXPECT_THROW(ThinnedDataset(cells, 0.1, 1.5, 1), InputError);
  // A row mask (training copies a sample of a large reference's cells): the flagged rows are
  // thinned exactly as without it, the others read as cells without values, whatever the blocks.
  std::vector<std::uint8_t> rows(static_cast<std::size_t>(cells.n_obs()), 0);
  for (std::size_t row = 0; row < rows.size(); row += 3) rows[row] = 1;
  const ThinnedDataset masked(cells, 0.1, 0.5, 42, {}, rows);
  for (const std::int64_t block_rows : {1000, 7}) {
    SCOPED_TRACE(block_rows);
    const CsrBlockF64 some = read_all(masked, block_rows);
    ASSERT_EQ(some.n_rows, whole.n_rows);
    for (std::int64_t row = 0; row < whole.n_rows; ++row) {
      const auto at = static_cast<std::size_t>(row);
      if (rows[at] == 0) {
        EXPECT_EQ(some.indptr[at + 1], some.indptr[at]) << "row " << row;
        continue;
      }
      ASSERT_EQ(some.indptr[at + 1] - some.indptr[at], whole.indptr[at + 1] - whole.indptr[at]) << "row " << row;
      for (std::int64_t k = 0; k < whole.indptr[at + 1] - whole.indptr[at]; ++k) {
        EXPECT_EQ(some.indices[static_cast<std::size_t>(some.indptr[at] + k)], whole.indices[static_cast<std::size_t>(whole.indptr[at] + k)]);
        EXPECT_EQ(some.values[static_cast<std::size_t>(some.indptr[at] + k)], whole.values[static_cast<std::size_t>(whole.indptr[at] + k)]);
      }
    }
  }
  rows.pop_back();
  EXPECT_THROW((void)ThinnedDataset(cells, 0.1, 0.5, 42, {}, rows).open_matrix("X"), InputError);
}

/// `dataset` with its rows reversed and its columns in reverse order.
MemoryDataset reversed(const Dataset& dataset) {
  const CsrBlockF64 all = read_all(dataset, 1000);
  DataFrame obs;
  DataFrame var;
  const DataFrame given_var = dataset.read_var();
  for (std::int64_t j = all.n_cols - 1; j >= 0; --j) var.index.push_back(given_var.index[static_cast<std::size_t>(j)]);
  CsrBlockF64 matrix;
  matrix.reset(0, 0, all.n_cols);
  for (std::int64_t row = all.n_rows - 1; row >= 0; --row) {
    for (std::int64_t k = all.indptr[static_cast<std::size_t>(row) + 1] - 1; k >= all.indptr[static_cast<std::size_t>(row)]; --k) {
      matrix.indices.push_back(static_cast<std::int32_t>(all.n_cols - 1 - all.indices[static_cast<std::size_t>(k)]));
      matrix.values.push_back(all.values[static_cast<std::size_t>(k)]);
    }
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
    ++matrix.n_rows;
    obs.index.push_back("r" + std::to_string(row));
  }
  return MemoryDataset("reversed", std::move(obs), std::move(var), std::move(matrix));
}

TEST(ThinnedDataset, HugeValuesKeepTheirShareInsteadOfABinomialDraw) {
  // (no molecule count reaches 1e12; libstdc++'s binomial did not return for 1e20 or 2^63)
  CsrBlockF64 matrix;
  matrix.reset(0, 0, 3);
  matrix.indices = {0, 1, 2};
  matrix.values = {1e20, 9.2e18, 40};
  matrix.indptr.push_back(3);
  matrix.n_rows = 1;
  DataFrame obs;
  obs.index = {"cell"};
  DataFrame var;
  var.index = {"A", "B", "C"};
  const MemoryDataset cells("huge", std::move(obs), std::move(var), std::move(matrix));
  const ThinnedDataset thinned(cells, 0.1, 0.5, 7);
  const CsrBlockF64 out = read_all(thinned, 10);
  ASSERT_GE(out.values.size(), 2u);
  const double p = out.values[0] / 1e20;  // the cell's share, the same for both genes
  EXPECT_GE(p, 0.1);
  EXPECT_LE(p, 0.5);
  EXPECT_NEAR(out.values[1] / 9.2e18, p, 1e-6);
}

TEST(ThinnedDataset, ACellIsThinnedTheSameWayInAnotherRowAndColumnOrder) {
  const MemoryDataset cells = make_cells({30, 30}, 17, 3.0);
  const MemoryDataset flipped = reversed(cells);
  std::vector<std::int64_t> keys(kGenes);
  std::vector<std::int64_t> flipped_keys(kGenes);
  for (int g = 0; g < kGenes; ++g) {
    keys[static_cast<std::size_t>(g)] = 1000 + g;
    flipped_keys[static_cast<std::size_t>(kGenes - 1 - g)] = 1000 + g;
  }
  const CsrBlockF64 a = read_all(ThinnedDataset(cells, 0.1, 0.5, 5, keys), 1000);
  const CsrBlockF64 b = read_all(reversed(ThinnedDataset(flipped, 0.1, 0.5, 5, flipped_keys)), 1000);
  EXPECT_EQ(std::vector<std::int64_t>(a.indptr.begin(), a.indptr.end()), std::vector<std::int64_t>(b.indptr.begin(), b.indptr.end()));
  EXPECT_EQ(std::vector<std::int32_t>(a.indices.begin(), a.indices.end()), std::vector<std::int32_t>(b.indices.begin(), b.indices.end()));
  EXPECT_EQ(std::vector<double>(a.values.begin(), a.values.end()), std::vector<double>(b.values.begin(), b.values.end()));
  // Without gene keys the draws follow the column positions: another order thins differently.
  const CsrBlockF64 c = read_all(reversed(ThinnedDataset(flipped, 0.1, 0.5, 5)), 1000);
  const CsrBlockF64 d = read_all(ThinnedDataset(cells, 0.1, 0.5, 5), 1000);
  EXPECT_NE(std::vector<double>(c.values.begin(), c.values.end()), std::vector<double>(d.values.begin(), d.values.end()));
}

TrainOptions options_with(bool augment) {
  TrainOptions options;
  options.label_column = "cell_type";
  options.classifier = "logreg";
  options.features = kFeaturesExpression;
  options.n_genes = 30;
  options.num_threads = 1;
  options.augment_depth = augment;
  return options;
}

TEST(DepthAugmentation, ThinnedCopiesTrainButNeverValidate) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({120, 60, 60}, 5);
  const TrainingData plain = training_features({&reference}, options_with(false), GeneStore(), table);
  const TrainingData data = training_features({&reference}, options_with(true), GeneStore(), table);
  EXPECT_TRUE(plain.cells.augmented_from.empty());
  const std::int64_t n = plain.cells.n();
  ASSERT_EQ(data.cells.n_original(), n);
  ASSERT_EQ(data.cells.augmented_from.size(), static_cast<std::size_t>(data.cells.n()));
  EXPECT_GT(data.cells.n(), n + n * 9 / 10);  // nearly every cell keeps a count after thinning
  // The reference cells come first, with the features they have without augmentation.
  for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(data.cells.augmented_from[static_cast<std::size_t>(i)], -1);
  const std::vector<float> features = data.cells.dense();
  EXPECT_EQ(std::vector<float>(features.begin(), features.begin() + n * data.cells.dims), plain.cells.dense());
  // A copy carries its cell's label and reference, and differs from it (fewer counts).
  std::int64_t differing = 0;
  for (std::int64_t i = n; i < data.cells.n(); ++i) {
    const auto from = static_cast<std::size_t>(data.cells.augmented_from[static_cast<std::size_t>(i)]);
    ASSERT_LT(from, static_cast<std::size_t>(n));
    EXPECT_EQ(data.cells.labels[static_cast<std::size_t>(i)], data.cells.labels[from]);
    EXPECT_EQ(data.cells.references[static_cast<std::size_t>(i)], data.cells.references[from]);
    const auto width = static_cast<std::size_t>(data.cells.dims);
    differing += std::equal(features.begin() + static_cast<std::ptrdiff_t>(i * data.cells.dims),
                            features.begin() + static_cast<std::ptrdiff_t>((i + 1) * data.cells.dims),
                            features.begin() + static_cast<std::ptrdiff_t>(from * width))
                     ? 0
                     : 1;
  }
  EXPECT_EQ(differing, data.cells.n() - n);
  // The split: the same reference cells validate as without augmentation; a copy trains exactly
  // when its cell does.
  const ValidationSplit without = split_validation(plain.cells, 0.25, 7);
  const ValidationSplit with = split_validation(data.cells, 0.25, 7);
  EXPECT_EQ(with.validation_rows, without.validation_rows);
  const std::set<std::int64_t> validating(with.validation_rows.begin(), with.validation_rows.end());
  const std::set<std::int64_t> training(with.train_rows.begin(), with.train_rows.end());
  for (std::int64_t i = 0; i < data.cells.n(); ++i) {
    const std::int64_t from = data.cells.augmented_from[static_cast<std::size_t>(i)];
    if (from < 0) {
      EXPECT_NE(validating.count(i), training.count(i)) << "row " << i;
    } else {
      EXPECT_EQ(validating.count(i), 0U);
      EXPECT_EQ(training.count(i), 1 - validating.count(from)) << "copy " << i << " of " << from;
    }
  }
  // The model counts reference cells; the copies are recorded.
  const TrainResult trained = fit_model(data, with, options_with(true));
  EXPECT_EQ(trained.n_cells, n);
  EXPECT_EQ(trained.n_validation, static_cast<std::int64_t>(with.validation_rows.size()));
  EXPECT_EQ(trained.model.provenance["n_cells"].get<std::int64_t>(), n);
  EXPECT_EQ(trained.model.provenance["n_thinned_copies"].get<std::int64_t>(), data.cells.n() - n);
  EXPECT_TRUE(trained.model.provenance["augment_depth"].get<bool>());
  EXPECT_EQ(trained.model.provenance["class_counts"]["type0"].get<std::int64_t>(), 120);
}

TEST(DepthAugmentation, ALargeReferenceHasARandomSubsetCopiedEachCopyWeighingMore) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({120, 60, 60}, 31);
  const TrainingData every = training_features({&reference}, options_with(true), GeneStore(), table);  // the default cap is far above
  ASSERT_EQ(every.cells.copy_scale, std::vector<double>{1.0});
  EXPECT_GT(every.cells.n(), 240 + 216);

  TrainOptions capped = options_with(true);
  capped.augment_depth_max_copies = 60;
  const TrainingData data = training_features({&reference}, capped, GeneStore(), table);
  ASSERT_EQ(data.cells.n_original(), 240);
  const std::int64_t n_copies = data.cells.n() - 240;
  EXPECT_LE(n_copies, 60);
  EXPECT_GE(n_copies, 55);  // a copy thinned to nothing is dropped
  ASSERT_EQ(data.cells.copy_scale, std::vector<double>{4.0});  // 240 cells, 60 copied
  // Copies of different cells, every class among them, each the same copy as without the cap.
  std::set<std::int64_t> sources;
  std::set<std::string> classes;
  std::map<std::int64_t, std::int64_t> uncapped_copy;  // cell -> its copy's row without the cap
  for (std::int64_t i = 240; i < every.cells.n(); ++i) uncapped_copy[every.cells.augmented_from[static_cast<std::size_t>(i)]] = i;
  const auto width = static_cast<std::ptrdiff_t>(data.cells.dims);
  const std::vector<float> features = data.cells.dense();
  const std::vector<float> every_features = every.cells.dense();
  for (std::int64_t i = 240; i < data.cells.n(); ++i) {
    const std::int64_t from = data.cells.augmented_from[static_cast<std::size_t>(i)];
    EXPECT_TRUE(sources.insert(from).second) << "cell " << from << " copied twice";
    classes.insert(data.cells.labels[static_cast<std::size_t>(from)]);
    ASSERT_EQ(uncapped_copy.count(from), 1U);
    EXPECT_TRUE(std::equal(features.begin() + i * width, features.begin() + (i + 1) * width,
                           every_features.begin() + uncapped_copy[from] * width));
  }
  EXPECT_EQ(classes.size(), 3U);
  // The same cells again for the same seed.
  EXPECT_EQ(training_features({&reference}, capped, GeneStore(), table).cells.augmented_from, data.cells.augmented_from);

  // The model records the cap; a refit (annotate on fewer genes) keeps it.
  capped.reference_sample_cells = 1000;
  const TrainResult trained = train_model({&reference}, capped, GeneStore(), table);
  EXPECT_EQ(trained.model.provenance["augment_depth_max_copies"].get<std::int64_t>(), 60);
  EXPECT_LE(trained.model.provenance["n_thinned_copies"].get<std::int64_t>(), 60);
  std::vector<std::int64_t> genes;
  for (int g = 0; g < kGenes; g += 2) genes.push_back(101 + g);
  const CellTypeModel refitted = refit_model(trained.model, genes, 1);
  EXPECT_EQ(refitted.provenance["augment_depth_max_copies"].get<std::int64_t>(), 60);
  EXPECT_LE(refitted.provenance["n_thinned_copies"].get<std::int64_t>(), 60);
}

TEST(CompressedFeatures, TrainTheModelOfTheDenseMatrix) {
  // Expression features are kept in compressed rows by default (TrainOptions::dense_features
  // false): the same rows as the dense matrix, far fewer values held, and for every back end the
  // same validation scores and the same model, bit for bit.
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({120, 60, 60}, 41);
  TrainOptions dense_options = options_with(true);
  dense_options.dense_features = true;
  const TrainingData compressed = training_features({&reference}, options_with(true), GeneStore(), table);
  const TrainingData dense = training_features({&reference}, dense_options, GeneStore(), table);
  ASSERT_TRUE(compressed.cells.sparse);
  ASSERT_FALSE(dense.cells.sparse);
  EXPECT_TRUE(compressed.cells.features.empty());
  EXPECT_EQ(compressed.cells.sparse_features.n_rows, compressed.cells.n());
  EXPECT_EQ(compressed.cells.dense(), dense.cells.features);
  EXPECT_EQ(static_cast<std::ptrdiff_t>(compressed.cells.sparse_features.values.size()),
            std::count_if(dense.cells.features.begin(), dense.cells.features.end(), [](float value) { return value != 0; }));
  for (const float value : compressed.cells.sparse_features.values) EXPECT_NE(value, 0.0f);
  const std::vector<std::int64_t> some = {5, 0, compressed.cells.n() - 1};
  const std::vector<float> rows = compressed.cells.dense_rows(some);
  for (std::size_t i = 0; i < some.size(); ++i) {
    const auto width = static_cast<std::ptrdiff_t>(dense.cells.dims);
    EXPECT_TRUE(std::equal(rows.begin() + static_cast<std::ptrdiff_t>(i) * width, rows.begin() + static_cast<std::ptrdiff_t>(i + 1) * width,
                           dense.cells.features.begin() + some[i] * width));
  }
  for (const std::string classifier : {"logreg", "knn", "mlp"}) {
    SCOPED_TRACE(classifier);
    TrainOptions a = options_with(true);
    TrainOptions b = dense_options;
    a.classifier = b.classifier = classifier;
    if (classifier == "mlp") a.hyperparameters = b.hyperparameters = {{"epochs", 3}, {"hidden", 16}};
    const TrainResult from_compressed = train_model({&reference}, a, GeneStore(), table);
    const TrainResult from_dense = train_model({&reference}, b, GeneStore(), table);
    ASSERT_TRUE(from_compressed.has_validation);
    EXPECT_EQ(from_compressed.validation.macro.f1, from_dense.validation.macro.f1);
    EXPECT_EQ(from_compressed.validation.accuracy, from_dense.validation.accuracy);
    const ClassifierState x = from_compressed.model.classifier->export_state();
    const ClassifierState y = from_dense.model.classifier->export_state();
    ASSERT_EQ(x.double_arrays.size(), y.double_arrays.size());
    for (const auto& [name, array] : x.double_arrays) EXPECT_EQ(array.values, y.double_arrays.at(name).values) << name;
    ASSERT_EQ(x.float_arrays.size(), y.float_arrays.size());
    for (const auto& [name, array] : x.float_arrays) EXPECT_EQ(array.values, y.float_arrays.at(name).values) << name;
  }
}

TEST(DepthAugmentation, EveryReferenceOfAPoolGetsCopiesOfItsOwnCells) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset first = make_cells({50, 50}, 21);
  const MemoryDataset logged = make_cells({40, 40}, 22, 1.0, Values::kLogOfNonCounts);
  const MemoryDataset second = make_cells({30, 30}, 23);
  TrainOptions options = options_with(true);
  options.embed.normalization = NormalizationChoice::kAuto;
  const TrainingData data = training_features({&first, &second, &first}, options, GeneStore(), table);
  ASSERT_EQ(data.cells.augmented_from.size(), static_cast<std::size_t>(data.cells.n()));
  EXPECT_EQ(data.cells.n_original(), 100 + 60 + 100);
  std::vector<std::int64_t> copies(3, 0);
  for (std::int64_t i = 0; i < data.cells.n(); ++i) {
    const std::int64_t from = data.cells.augmented_from[static_cast<std::size_t>(i)];
    if (from < 0) continue;
    ASSERT_TRUE(data.cells.is_original(from));
    ASSERT_EQ(data.cells.references[static_cast<std::size_t>(i)], data.cells.references[static_cast<std::size_t>(from)]);
    ++copies[static_cast<std::size_t>(data.cells.references[static_cast<std::size_t>(i)])];
  }
  for (const std::int64_t n : copies) EXPECT_GT(n, 0);
  // A reference of logs of other values than counts keeps its cells without copies.
  const TrainingData mixed = training_features({&first, &logged}, options, GeneStore(), table);
  for (std::int64_t i = 0; i < mixed.cells.n(); ++i) {
    if (!mixed.cells.is_original(i)) EXPECT_EQ(mixed.cells.references[static_cast<std::size_t>(i)], 0);
  }
}

TEST(DepthAugmentation, LogsOfCountsAreThinnedAsTheCountsAndLogsOfOtherValuesAreNot) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  TrainOptions options = options_with(true);
  options.embed.normalization = NormalizationChoice::kAuto;
  const MemoryDataset other = make_cells({60, 60}, 9, 1.0, Values::kLogOfNonCounts);
  EXPECT_TRUE(training_features({&other}, options, GeneStore(), table).cells.augmented_from.empty())
      << "log1p of values other than counts: nothing to thin";
  // log1p(counts): the counts are read back, so the reference trains as its counts do, copies
  // included (the same cells, the same features).
  const MemoryDataset counts = make_cells({60, 60}, 9);
  const MemoryDataset logged = make_cells({60, 60}, 9, 1.0, Values::kLogCounts);
  const TrainingData from_counts = training_features({&counts}, options, GeneStore(), table);
  const TrainingData from_logs = training_features({&logged}, options, GeneStore(), table);
  ASSERT_FALSE(from_logs.cells.augmented_from.empty());
  EXPECT_EQ(from_logs.cells.augmented_from, from_counts.cells.augmented_from);
  ASSERT_EQ(from_logs.cells.n(), from_counts.cells.n());
  std::vector<float> a(static_cast<std::size_t>(from_counts.cells.dims));
  std::vector<float> b(a.size());
  for (std::int64_t i = 0; i < from_counts.cells.n(); ++i) {
    from_counts.cells.copy_row(i, a.data());
    from_logs.cells.copy_row(i, b.data());
    ASSERT_EQ(a, b) << "cell " << i;
  }
}

TEST(DepthAugmentation, ARefitKeepsTheSetting) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");

  // A model trained with augmentation refits (annotate, query with fewer genes) with it too.
  const MemoryDataset counts = make_cells({80, 80, 80}, 11);
  TrainOptions options = options_with(true);
  options.reference_sample_cells = 1000;
  const TrainResult trained = train_model({&counts}, options, GeneStore(), table);
  std::vector<std::int64_t> genes;
  for (int g = 0; g < kGenes; g += 2) genes.push_back(101 + g);
  const CellTypeModel refitted = refit_model(trained.model, genes, 1);
  EXPECT_TRUE(refitted.provenance["augment_depth"].get<bool>());
  EXPECT_GT(refitted.provenance["n_thinned_copies"].get<std::int64_t>(), 0);
  // The refit follows what training found (each reference's provenance "counts"), not the
  // sample's own first cells: a model that says its reference held no counts refits without copies.
  EXPECT_EQ(trained.model.provenance["references"][0]["counts"], true);
  TrainResult no_counts = train_model({&counts}, options, GeneStore(), table);
  no_counts.model.provenance["references"][0]["counts"] = false;
  EXPECT_EQ(refit_model(no_counts.model, genes, 1).provenance["n_thinned_copies"].get<std::int64_t>(), 0);
  options.augment_depth = false;
  const TrainResult plain = train_model({&counts}, options, GeneStore(), table);
  EXPECT_EQ(refit_model(plain.model, genes, 1).provenance["n_thinned_copies"].get<std::int64_t>(), 0);
}

}  // namespace
}  // namespace celltyper
