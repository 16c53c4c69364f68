// Library-level tests (generated data, no files): training on in-memory datasets, the reference
// sample a model carries, coverage of a model by a query's genes, and refitting on the shared
// genes, which must equal training with --restrict-genes on the query's genes.
#include <celltyper/annotate.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/thinned_dataset.hpp>
#include <celltyper/train.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>

namespace celltyper {
namespace {

constexpr int kGenes = 60;

/// Poisson counts for `per_class[c]` cells of class c: every gene at rate 0.5, class c's
/// markers (genes 10c..10c+9 and 30+10c..30+10c+9) at rate 4, cells scaled by a random library
/// size factor in [0.5, 2]. Only the genes in `keep` (indices, ascending; empty = all) are vars.
MemoryDataset make_cells(const std::vector<int>& per_class, unsigned seed, const std::vector<int>& keep = {}) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> size(0.5, 2.0);
  std::vector<int> columns = keep;
  if (columns.empty()) {
    for (int g = 0; g < kGenes; ++g) columns.push_back(g);
  }
  DataFrame obs;
  DataFrame var;
  for (const int g : columns) var.index.push_back("G" + std::to_string(g + 1));
  std::vector<std::string> labels;
  CsrBlockF64 matrix;
  matrix.reset(0, 0, static_cast<std::int64_t>(columns.size()));
  for (std::size_t c = 0; c < per_class.size(); ++c) {
    for (int i = 0; i < per_class[c]; ++i) {
      const double scale = size(rng);
      for (std::size_t j = 0; j < columns.size(); ++j) {
        const int g = columns[j];
        const bool marker = (g % 30) / 10 == static_cast<int>(c);
        std::poisson_distribution<int> counts(scale * (marker ? 4.0 : 0.5));
        const int value = counts(rng);
        if (value == 0) continue;
        matrix.indices.push_back(static_cast<std::int32_t>(j));
        matrix.values.push_back(value);
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

TrainOptions expression_options(std::int64_t sample_cells = 20000) {
  TrainOptions options;
  options.label_column = "cell_type";
  options.classifier = "logreg";
  options.features = kFeaturesExpression;
  options.n_genes = 20;
  options.num_threads = 1;
  options.reference_sample_cells = sample_cells;
  return options;
}

TEST(ReferenceSample, TrainingOnMemoryKeepsABalancedSampleThatRoundTrips) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({200, 50, 50}, 1);
  const TrainResult all = train_model({&reference}, expression_options(), GeneStore(), table);
  ASSERT_EQ(all.model.reference.n_cells(), 300);
  EXPECT_EQ(all.model.reference.entrez_ids.size(), static_cast<std::size_t>(kGenes));
  EXPECT_EQ(all.model.reference.normalization, "log1p-cp10k");
  EXPECT_GT(all.validation.accuracy, 0.9);

  // A cap of 30 keeps 10 cells of each class (the largest quota that fits).
  const TrainResult capped = train_model({&reference}, expression_options(30), GeneStore(), table);
  std::map<std::int32_t, int> per_class;
  for (const std::int32_t label : capped.model.reference.labels) ++per_class[label];
  EXPECT_EQ(capped.model.reference.n_cells(), 30);
  EXPECT_EQ(per_class, (std::map<std::int32_t, int>{{0, 10}, {1, 10}, {2, 10}}));
  EXPECT_EQ(capped.model.reference.n_reference_cells, 300);

  // The sample's rows are the reference's cells as stored (cell 0 is the first cell of type0).
  const auto reader = reference.open_matrix("X");
  CsrBlockF64 first;
  reader->read_rows(0, 1, first);
  const ReferenceSample& sample = all.model.reference;
  ASSERT_EQ(sample.values.indptr[1], first.indptr[1]);
  for (std::int64_t k = 0; k < first.indptr[1]; ++k) {
    EXPECT_EQ(sample.entrez_ids[static_cast<std::size_t>(sample.values.indices[static_cast<std::size_t>(k)])],
              101 + first.indices[static_cast<std::size_t>(k)]);
    EXPECT_EQ(sample.values.values[static_cast<std::size_t>(k)], first.values[static_cast<std::size_t>(k)]);
  }

  test::TempDir dir;
  save_model(all.model, dir.file("model.h5"));
  const CellTypeModel loaded = load_model(dir.file("model.h5"));
  EXPECT_EQ(loaded.reference.entrez_ids, sample.entrez_ids);
  EXPECT_EQ(loaded.reference.labels, sample.labels);
  EXPECT_EQ(std::vector<std::int64_t>(loaded.reference.cell_values().indptr.begin(), loaded.reference.cell_values().indptr.end()),
            std::vector<std::int64_t>(sample.values.indptr.begin(), sample.values.indptr.end()));
  EXPECT_EQ(std::vector<double>(loaded.reference.cell_values().values.begin(), loaded.reference.cell_values().values.end()),
            std::vector<double>(sample.values.values.begin(), sample.values.values.end()));
  EXPECT_EQ(loaded.reference.normalization, "log1p-cp10k");

  // No sample when asked for none.
  EXPECT_TRUE(train_model({&reference}, expression_options(0), GeneStore(), table).model.reference.empty());
}

TEST(ReferenceSample, CoverageCountsTheMeasuredGenesAndTheirExpression) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({100, 100, 100}, 2);
  const CellTypeModel model = train_model({&reference}, expression_options(), GeneStore(), table).model;
  std::vector<std::int64_t> all_genes;
  for (int g = 0; g < kGenes; ++g) all_genes.push_back(101 + g);
  const ModelCoverage full = model_coverage(model, all_genes);
  EXPECT_EQ(full.n_measured, kGenes);
  EXPECT_DOUBLE_EQ(full.mass, 1.0);
  EXPECT_EQ(full.n_features_measured, full.n_features_genes);

  // Genes 1-30 only: each class keeps one block of its markers; type0's other half of the
  // expression (markers 31-40) is lost, so its class share is about half, as for every class.
  std::vector<std::int64_t> half(all_genes.begin(), all_genes.begin() + 30);
  const ModelCoverage partial = model_coverage(model, half);
  EXPECT_EQ(partial.n_measured, 30);
  EXPECT_NEAR(partial.mass, 0.5, 0.05);
  ASSERT_EQ(partial.class_mass.size(), 3u);
  for (const double share : partial.class_mass) EXPECT_NEAR(share, 0.5, 0.08);

  // Only type0's markers (genes 1-10 and 31-40): type0 keeps most of its expression, the others little.
  std::vector<std::int64_t> markers;
  for (int g = 0; g < 10; ++g) markers.push_back(101 + g);
  for (int g = 30; g < 40; ++g) markers.push_back(101 + g);
  const ModelCoverage skewed = model_coverage(model, markers);
  EXPECT_GT(skewed.class_mass[0], 0.6);
  EXPECT_LT(skewed.class_mass[1], 0.3);

  // A feature gene the sample lacks (no sampled cell expressed it) is still a model gene: a query
  // never measures more feature genes than model genes.
  CellTypeModel unsampled = train_model({&reference}, expression_options(), GeneStore(), table).model;
  const std::int64_t gone = unsampled.panel.entrez_ids.front();
  const auto at = std::find(unsampled.reference.entrez_ids.begin(), unsampled.reference.entrez_ids.end(), gone);
  ASSERT_NE(at, unsampled.reference.entrez_ids.end());
  *at = 999999;  // (its values now belong to a gene of no query)
  const ModelCoverage with_gap = model_coverage(unsampled, all_genes);
  EXPECT_EQ(with_gap.n_model_genes, kGenes + 1);
  EXPECT_EQ(with_gap.n_measured, kGenes);
  EXPECT_GE(with_gap.n_model_genes, with_gap.n_features_genes);
  EXPECT_EQ(with_gap.n_features_measured, with_gap.n_features_genes);
}

/// `model` refitted on `query`'s genes (90 cells, 30 per type) gives the probabilities of
/// `oracle` (trained restricted to those genes) to `tolerance` and labels most cells right;
/// with --no-refit it is used as trained and the warning says labels may be wrong and how to fix
/// it. Returns the refitted annotation.
Annotation expect_refit_like_the_oracle(const Dataset& query, const CellTypeModel& model, const CellTypeModel& oracle, const GeneTable& table,
                                        double tolerance) {
  AnnotateOptions options;
  options.embed.num_threads = 1;
  Annotation refitted = annotate_dataset(query, {&model}, table, options);
  EXPECT_EQ(refitted.models.size(), 1u);
  EXPECT_TRUE(!refitted.models.empty() && refitted.models[0].refitted);
  AnnotateOptions plain = options;
  plain.refit = false;
  const Annotation expected = annotate_dataset(query, {&oracle}, table, plain);
  EXPECT_EQ(expected.probabilities.size(), refitted.probabilities.size());
  for (std::size_t i = 0; i < std::min(expected.probabilities.size(), refitted.probabilities.size()); ++i) {
    EXPECT_NEAR(expected.probabilities[i], refitted.probabilities[i], tolerance) << i;
    if (std::abs(expected.probabilities[i] - refitted.probabilities[i]) > tolerance) break;  // one report, not hundreds
  }
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < refitted.labels.size(); ++i) correct += refitted.labels[i] == "type" + std::to_string(i / 30);
  EXPECT_GT(correct, 80);

  const Annotation as_trained = annotate_dataset(query, {&model}, table, plain);
  EXPECT_FALSE(as_trained.models[0].refitted);
  EXPECT_FALSE(as_trained.warnings.empty());
  const std::string warning = as_trained.warnings.empty() ? std::string() : as_trained.warnings.front();
  EXPECT_NE(warning.find("labels may be wrong"), std::string::npos) << warning;
  EXPECT_NE(warning.find("--reference"), std::string::npos) << warning;
  EXPECT_NE(warning.find("(or drop --no-refit)"), std::string::npos) << warning;
  return refitted;
}

TEST(ReferenceSample, RefitOnAQuerysGenesEqualsTrainingRestrictedToThem) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({120, 90, 60}, 3);
  const CellTypeModel model = train_model({&reference}, expression_options(), GeneStore(), table).model;
  // The query measures every other gene of the first 40.
  std::vector<int> keep;
  for (int g = 0; g < 40; g += 2) keep.push_back(g);
  const MemoryDataset query = make_cells({30, 30, 30}, 4, keep);
  std::vector<std::int64_t> query_genes;
  for (const int g : keep) query_genes.push_back(101 + g);

  // The oracle: training on the reference restricted to the query's genes.
  // A calibrated model's refit fits its own temperature as reference mode does (a fifth of the
  // sample held out for it, then every cell from scratch): so does the oracle.
  TrainOptions restricted = expression_options(0);
  restricted.final_fit_from_scratch = true;
  restricted.restrict_genes = query_genes;
  CellTypeModel oracle = train_model({&reference}, restricted, GeneStore(), table).model;
  EXPECT_EQ(oracle.panel.size_factor_genes, query_genes);
  EXPECT_NE(model.classifier->temperature(), 1.0);
  EXPECT_NE(oracle.classifier->temperature(), 1.0);
  EXPECT_NE(oracle.classifier->temperature(), model.classifier->temperature());
  const Annotation refitted = expect_refit_like_the_oracle(query, model, oracle, table, 1e-6);
  // The labels are those of a refit on every cell without calibration (a temperature orders no
  // class differently), the scores the oracle's calibrated ones; a model trained with
  // --no-calibrate keeps its own probabilities in the refit.
  {
    TrainOptions uncalibrated = expression_options();
    uncalibrated.calibrate = false;
    const CellTypeModel raw = train_model({&reference}, uncalibrated, GeneStore(), table).model;
    AnnotateOptions options;
    options.embed.num_threads = 1;
    const Annotation raw_refit = annotate_dataset(query, {&raw}, table, options);
    EXPECT_EQ(raw_refit.labels, refitted.labels);
    EXPECT_EQ(refit_model(raw, query_genes, 1, {}, 0).classifier->temperature(), 1.0);
    EXPECT_FALSE(refit_model(raw, query_genes, 1, {}, 0).provenance["calibration"].contains("n_cells"));
    EXPECT_TRUE(refit_model(model, query_genes, 1, {}, 0).provenance["calibration"].contains("n_cells"));
    // A sample too small to hold out 20 cells for the refit's own fit (60 cells: 12) keeps the
    // model's temperature and calibration record, not the classifier's raw probabilities.
    const CellTypeModel sampled = train_model({&reference}, expression_options(60), GeneStore(), table).model;
    ASSERT_EQ(sampled.reference.n_cells(), 60);
    ASSERT_NE(sampled.classifier->temperature(), 1.0);
    const CellTypeModel small_refit = refit_model(sampled, query_genes, 1, {}, 0);
    EXPECT_EQ(small_refit.classifier->temperature(), sampled.classifier->temperature());
    EXPECT_EQ(small_refit.provenance["calibration"], sampled.provenance["calibration"]);
  }
  ASSERT_EQ(refitted.models.size(), 1u);
  EXPECT_EQ(refitted.models[0].refit_genes, 20);
  EXPECT_EQ(refitted.models[0].coverage.n_measured, 20);
  ASSERT_FALSE(refitted.warnings.empty());  // coverage is below half: said, with what was done
  EXPECT_NE(refitted.warnings.front().find("refitted on the 20 shared genes"), std::string::npos) << refitted.warnings.front();
  ASSERT_EQ(refitted.gene_coverage.size(), 90u);
  for (const float share : refitted.gene_coverage) EXPECT_LT(share, 0.6f);

  // A full query: no refit, no warning.
  AnnotateOptions options;
  options.embed.num_threads = 1;
  const MemoryDataset full = make_cells({10, 10, 10}, 5);
  const Annotation whole = annotate_dataset(full, {&model}, table, options);
  EXPECT_FALSE(whole.models[0].refitted);
  EXPECT_TRUE(whole.warnings.empty());
}

TEST(ReferenceSample, AQueryFarShallowerThanTheReferenceRefitsOnReferenceCellsThinnedToItsDepth) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({120, 90, 60}, 3);
  const CellTypeModel model = train_model({&reference}, expression_options(), GeneStore(), table).model;
  std::vector<int> keep;
  for (int g = 0; g < 40; g += 2) keep.push_back(g);
  const MemoryDataset query = make_cells({30, 30, 30}, 4, keep);
  std::vector<std::int64_t> query_genes;
  for (const int g : keep) query_genes.push_back(101 + g);
  // The refit alone: a depth 10% of the sample's is matched (the ratio recorded), an unknown one not.
  const CellTypeModel plain = refit_model(model, query_genes, 1, {}, 0);
  EXPECT_FALSE(plain.provenance["refit"].contains("depth_ratio"));
  const CellTypeModel deep_enough = refit_model(model, query_genes, 1, {}, 1e9);
  EXPECT_FALSE(deep_enough.provenance["refit"].contains("depth_ratio"));
  const CellTypeModel matched_refit = refit_model(model, query_genes, 1, {}, 1);  // (one count per cell)
  ASSERT_TRUE(matched_refit.provenance["refit"].contains("depth_ratio"));
  const double ratio = matched_refit.provenance["refit"]["depth_ratio"].get<double>();
  EXPECT_GT(ratio, 0);
  EXPECT_LT(ratio, kDepthMatchRatio);
  // (the keep range: around the ratio, never emptying a median reference cell below 10 counts)
  EXPECT_EQ(depth_match_range(0.2, 1000), std::make_pair(0.1, 0.4));
  EXPECT_EQ(depth_match_range(0.001, 1000), std::make_pair(0.01, 0.01));
  EXPECT_EQ(depth_match_range(0.4, 1000), std::make_pair(0.2, 0.8));
  // The same cells at a tenth of their molecules: annotate says so and matches the depth.
  const ThinnedDataset shallow(query, 0.1, 0.1, 7);
  AnnotateOptions options;
  options.embed.num_threads = 1;
  const Annotation thinned = annotate_dataset(shallow, {&model}, table, options);
  ASSERT_TRUE(thinned.models[0].refitted);
  const auto note = std::find_if(thinned.warnings.begin(), thinned.warnings.end(),
                                 [](const std::string& w) { return w.find("the refit trains on the reference cells thinned to that depth") != std::string::npos; });
  ASSERT_NE(note, thinned.warnings.end()) << ::testing::PrintToString(thinned.warnings);
  EXPECT_EQ(note->rfind("note: ", 0), 0u) << *note;
  // (deterministic: the same cells give the same probabilities)
  const Annotation again = annotate_dataset(shallow, {&model}, table, options);
  EXPECT_EQ(again.probabilities, thinned.probabilities);
  // The unthinned query: no matching, the refit as before.
  const Annotation deep = annotate_dataset(query, {&model}, table, options);
  EXPECT_TRUE(std::none_of(deep.warnings.begin(), deep.warnings.end(),
                           [](const std::string& w) { return w.find("thinned to that depth") != std::string::npos; }));
  // Reference mode matches the depth the same way, and not for the unthinned query.
  const auto matched = [&](const Dataset& cells) {
    const TrainResult trained = train_for_query({&reference}, cells, expression_options(), GeneStore(), table, EmbedOptions{}, 0);
    const bool noted = std::any_of(trained.warnings.begin(), trained.warnings.end(),
                                   [](const std::string& w) { return w.find("trained on the reference cells thinned to that depth") != std::string::npos; });
    EXPECT_EQ(noted, trained.model.provenance.contains("depth_matched"));  // (a saved model says its sample was thinned)
    return noted;
  };
  EXPECT_TRUE(matched(shallow));
  EXPECT_FALSE(matched(query));
}

// An imaging panel's cells holding a handful of transcripts (segmentation fragments): annotate
// warns when they are over 5% of the cells, by sample too, and counts them per sample; empty
// cells are Unassigned (warned of apart), not counted; log values are not transcripts.
TEST(ShallowCells, APanelQueryOfCellsWithFewTranscriptsIsWarnedOf) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({120, 90, 60}, 3);
  const CellTypeModel model = train_model({&reference}, expression_options(), GeneStore(), table).model;
  std::vector<int> keep;
  for (int g = 0; g < 40; g += 2) keep.push_back(g);
  const MemoryDataset query = make_cells({30, 30, 30}, 4, keep);
  AnnotateOptions options;
  options.embed.num_threads = 1;
  const auto warned = [](const Annotation& annotation) {
    return std::any_of(annotation.warnings.begin(), annotation.warnings.end(),
                       [](const std::string& w) { return w.find("transcripts of the panel's genes") != std::string::npos; });
  };
  EXPECT_FALSE(warned(annotate_dataset(query, {&model}, table, options)));
  const ThinnedDataset shallow(query, 0.1, 0.1, 7);
  // (the cells of 1-9 transcripts, counted here)
  auto reader = shallow.open_matrix("X");
  CsrBlockF64 cells;
  reader->read_rows(0, reader->n_rows(), cells);
  std::int64_t low = 0;
  std::int64_t low_first_type = 0;
  for (std::int64_t i = 0; i < cells.n_rows; ++i) {
    double total = 0;
    for (auto k = cells.indptr[static_cast<std::size_t>(i)]; k < cells.indptr[static_cast<std::size_t>(i) + 1]; ++k) total += cells.values[static_cast<std::size_t>(k)];
    if (total > 0 && total < 10) {
      ++low;
      low_first_type += i < 30 ? 1 : 0;
    }
  }
  ASSERT_GT(low * 20, cells.n_rows);
  options.group = "obs:cell_type";
  const Annotation thinned = annotate_dataset(shallow, {&model}, table, options);
  const std::string expected = fmt::format("{} of 90 cells ({:.0f}%) hold fewer than 10 transcripts of the panel's genes", low, 100.0 * static_cast<double>(low) / 90);
  EXPECT_TRUE(std::any_of(thinned.warnings.begin(), thinned.warnings.end(), [&](const std::string& w) { return w.rfind(expected, 0) == 0; }))
      << expected << "\n" << ::testing::PrintToString(thinned.warnings);
  ASSERT_EQ(thinned.samples.size(), 3u);
  EXPECT_EQ(thinned.samples[0].n_low_transcripts, low_first_type);
  EXPECT_EQ(thinned.samples[0].n_low_genes, -1);
  EXPECT_EQ(to_json(thinned.samples[0])["n_low_transcripts"], low_first_type);
  // (the whole query warned: no sample's warning repeats it)
  EXPECT_TRUE(std::none_of(thinned.warnings.begin(), thinned.warnings.end(),
                           [](const std::string& w) { return w.starts_with("samples with many cells"); }));
  // A few of one sample's cells shallow (4 of type2's 30: over 5% of it, not of the file): warned of by sample.
  CsrBlockF64 deep;
  query.open_matrix("X")->read_rows(0, 90, deep);
  CsrBlockF64 mixed;
  mixed.reset(0, 0, deep.n_cols);
  for (std::int64_t i = 0; i < 90; ++i) {
    const CsrBlockF64& from = i < 86 ? deep : cells;
    for (auto k = from.indptr[static_cast<std::size_t>(i)]; k < from.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      mixed.indices.push_back(from.indices[static_cast<std::size_t>(k)]);
      mixed.values.push_back(from.values[static_cast<std::size_t>(k)]);
    }
    mixed.indptr.push_back(static_cast<std::int64_t>(mixed.indices.size()));
    ++mixed.n_rows;
  }
  std::int64_t low_last = 0;
  for (std::int64_t i = 86; i < 90; ++i) {
    double total = 0;
    for (auto k = cells.indptr[static_cast<std::size_t>(i)]; k < cells.indptr[static_cast<std::size_t>(i) + 1]; ++k) total += cells.values[static_cast<std::size_t>(k)];
    low_last += total > 0 && total < 10 ? 1 : 0;
  }
  ASSERT_GE(low_last, 2);
  const MemoryDataset one_sample("one shallow sample", query.read_obs(), query.read_var(), std::move(mixed));
  const Annotation by_sample = annotate_dataset(one_sample, {&model}, table, options);
  const std::string by_type2 = fmt::format("samples with many cells of fewer than 10 transcripts of the panel's genes (segmentation fragments?), "
                                           "by obs cell_type: 'type2' {} of 30 ({:.0f}%): ", low_last, 100.0 * static_cast<double>(low_last) / 30);
  EXPECT_TRUE(std::any_of(by_sample.warnings.begin(), by_sample.warnings.end(), [&](const std::string& w) { return w.starts_with(by_type2); }))
      << by_type2 << "\n" << ::testing::PrintToString(by_sample.warnings);
  EXPECT_TRUE(std::none_of(by_sample.warnings.begin(), by_sample.warnings.end(),
                           [](const std::string& w) { return w.find("cells (") != std::string::npos && w.find("hold fewer than 10") != std::string::npos; }));
  // Log values are no transcripts: not counted.
  CsrBlockF64 logged;
  query.open_matrix("X")->read_rows(0, 90, logged);
  for (double& value : logged.values) value = std::log1p(value * 0.1);
  const MemoryDataset normalised("log values", query.read_obs(), query.read_var(), std::move(logged));
  const Annotation of_logs = annotate_dataset(normalised, {&model}, table, options);
  EXPECT_FALSE(warned(of_logs));
  EXPECT_EQ(of_logs.samples[0].n_low_transcripts, -1);
}

/// `dataset` with its first `n_genes` vars only.
MemoryDataset first_genes(const Dataset& dataset, int n_genes) {
  auto reader = dataset.open_matrix("X");
  CsrBlockF64 all;
  reader->read_rows(0, reader->n_rows(), all);
  CsrBlockF64 cut;
  cut.reset(0, 0, n_genes);
  for (std::int64_t i = 0; i < all.n_rows; ++i) {
    for (auto k = all.indptr[static_cast<std::size_t>(i)]; k < all.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      if (all.indices[static_cast<std::size_t>(k)] >= n_genes) continue;
      cut.indices.push_back(all.indices[static_cast<std::size_t>(k)]);
      cut.values.push_back(all.values[static_cast<std::size_t>(k)]);
    }
    cut.indptr.push_back(static_cast<std::int64_t>(cut.indices.size()));
    ++cut.n_rows;
  }
  DataFrame var = dataset.read_var();
  var.index.resize(static_cast<std::size_t>(n_genes));
  return MemoryDataset("cut cells", dataset.read_obs(), std::move(var), std::move(cut));
}

/// `query` and `cut` (the same cells with fewer vars) annotated by `model`, neither refitted: the
/// same probabilities to 1e-6. Returns `query`'s annotation.
Annotation annotate_alike(const Dataset& query, const Dataset& cut, const CellTypeModel& model, const GeneTable& table) {
  AnnotateOptions options;
  options.embed.num_threads = 1;
  Annotation whole = annotate_dataset(query, {&model}, table, options);
  const Annotation same_genes = annotate_dataset(cut, {&model}, table, options);
  EXPECT_FALSE(whole.models[0].refitted);
  EXPECT_FALSE(same_genes.models[0].refitted);
  EXPECT_EQ(whole.probabilities.size(), same_genes.probabilities.size());
  for (std::size_t i = 0; i < std::min(whole.probabilities.size(), same_genes.probabilities.size()); ++i) {
    EXPECT_NEAR(whole.probabilities[i], same_genes.probabilities[i], 1e-6) << i;
    if (std::abs(whole.probabilities[i] - same_genes.probabilities[i]) > 1e-6) break;  // one report, not thousands
  }
  return whole;
}

TEST(ReferenceSample, AQueryMeasuringMoreGenesThanTheReferenceIsNormalisedOverTheReferencesGenes) {
  // A reference of 40 of the 60 genes (fewer than a transcriptome: one cut to its variable
  // genes, or a targeted panel): a query's cells sum their library over those 40 genes, as the
  // reference's did, whatever else they measured. Summed over all 60, their values were smaller
  // than the reference's.
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  std::vector<int> forty(40);
  for (int g = 0; g < 40; ++g) forty[static_cast<std::size_t>(g)] = g;
  const MemoryDataset reference = make_cells({120, 90, 60}, 11, forty);
  const CellTypeModel model = train_model({&reference}, expression_options(), GeneStore(), table).model;
  std::vector<std::int64_t> reference_genes;
  for (const int g : forty) reference_genes.push_back(101 + g);
  EXPECT_EQ(model.panel.size_factor_genes, reference_genes);

  const MemoryDataset query = make_cells({30, 30, 30}, 12);
  annotate_alike(query, first_genes(query, 40), model, table);

  // A model restricted to some genes keeps summing over those (and refits within them).
  TrainOptions restricted = expression_options();
  restricted.restrict_genes = std::vector<std::int64_t>(reference_genes.begin(), reference_genes.begin() + 30);
  EXPECT_EQ(train_model({&reference}, restricted, GeneStore(), table).model.panel.size_factor_genes, restricted.restrict_genes);

  // A reference of a whole transcriptome's genes (kTranscriptomeGenes) sums over every var.
  const auto n_vars = static_cast<int>(kTranscriptomeGenes);
  const GeneTable large_table = test::numbered_gene_table(n_vars, 101, "G");
  const MemoryDataset small = make_cells({60, 60, 60}, 13);
  auto reader = small.open_matrix("X");
  CsrBlockF64 values;
  reader->read_rows(0, reader->n_rows(), values);
  values.n_cols = n_vars;
  DataFrame var;
  for (int g = 0; g < n_vars; ++g) var.index.push_back("G" + std::to_string(g + 1));
  const MemoryDataset whole_transcriptome("every gene", small.read_obs(), std::move(var), std::move(values));
  EXPECT_TRUE(train_model({&whole_transcriptome}, expression_options(0), GeneStore(), large_table).model.panel.size_factor_genes.empty());
}

/// Random 'dims'-dimensional vectors for the kGenes genes (Entrez ids 101...).
GeneStore random_store(int dims) {
  std::vector<std::int64_t> ids;
  std::vector<std::string> symbols;
  for (int g = 0; g < kGenes; ++g) {
    ids.push_back(101 + g);
    symbols.push_back("G" + std::to_string(g + 1));
  }
  std::mt19937 rng(21);
  std::normal_distribution<float> normal;
  std::vector<float> vectors(ids.size() * static_cast<std::size_t>(dims));
  for (float& value : vectors) value = normal(rng);
  GeneStoreProvenance provenance;
  provenance.backend = "test";
  provenance.dims = dims;
  return {ids, symbols, std::vector<std::string>(ids.size()), std::move(vectors), dims, provenance};
}

TEST(ReferenceSample, AGeneptModelOfFewerGenesThanATranscriptomeSumsAQuerysLibraryOverTheReferencesGenes) {
  // The GenePT-w route as the expression route above: a query measuring all 60 genes embeds as
  // its cells cut to the reference's 40 (the other 20 count in no library and have no vector).
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  std::vector<std::int64_t> ids;
  for (int g = 0; g < kGenes; ++g) ids.push_back(101 + g);
  const GeneStore store = random_store(16);

  std::vector<int> forty(40);
  for (int g = 0; g < 40; ++g) forty[static_cast<std::size_t>(g)] = g;
  const MemoryDataset reference = make_cells({120, 90, 60}, 14, forty);
  TrainOptions options = expression_options(0);
  options.features = kFeaturesGenept;
  const CellTypeModel model = train_model({&reference}, options, store, table).model;
  EXPECT_EQ(model.genes.size_factor_genes, std::vector<std::int64_t>(ids.begin(), ids.begin() + 40));

  const MemoryDataset query = make_cells({30, 30, 30}, 15);
  const Annotation whole = annotate_alike(query, first_genes(query, 40), model, table);
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < whole.labels.size(); ++i) correct += whole.labels[i] == "type" + std::to_string(i / 30);
  EXPECT_GT(correct, 80);

  // The genes round-trip through the model file.
  test::TempDir dir;
  const std::string path = dir.file("genept.h5");
  save_model(model, path);
  EXPECT_EQ(load_model(path).genes.size_factor_genes, model.genes.size_factor_genes);
}

TEST(ReferenceSample, AGeneptModelRefitsOnAQuerysGenesAsTrainingRestrictedToThem) {
  // The GenePT-w route refits as the expression route does: cells embedded from the shared
  // genes' vectors, libraries summed over those genes on both sides; the oracle is training with
  // --restrict-genes (the same store, 12 of its 16 dims). Used as trained instead, the model reads
  // query embeddings made of a third of its genes and says so.
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const GeneStore store = random_store(16);
  const MemoryDataset reference = make_cells({120, 90, 60}, 23);
  TrainOptions options = expression_options();
  options.features = kFeaturesGenept;
  options.embed.dims = 12;
  const CellTypeModel model = train_model({&reference}, options, store, table).model;
  ASSERT_FALSE(model.reference.empty());
  EXPECT_FALSE(model.similarity.empty());  // profiles on this route too
  std::vector<int> keep;
  for (int g = 0; g < kGenes; g += 3) keep.push_back(g);
  const MemoryDataset query = make_cells({30, 30, 30}, 24, keep);
  std::vector<std::int64_t> query_genes;
  for (const int g : keep) query_genes.push_back(101 + g);

  TrainOptions restricted = options;
  restricted.final_fit_from_scratch = true;  // (the refit's calibration split, as reference mode's)
  restricted.reference_sample_cells = 0;
  restricted.restrict_genes = query_genes;
  CellTypeModel oracle = train_model({&reference}, restricted, store, table).model;
  EXPECT_EQ(oracle.genes.size_factor_genes, query_genes);
  EXPECT_EQ(oracle.genes.entrez_ids, query_genes);
  const Annotation refitted = expect_refit_like_the_oracle(query, model, oracle, table, 1e-5);
  ASSERT_EQ(refitted.models.size(), 1u);
  EXPECT_EQ(refitted.models[0].refit_genes, 20);
  EXPECT_EQ(refitted.models[0].refit_panel, 12);  // its features: the dims
  EXPECT_EQ(refitted.similarity.size(), 90u);
}

TEST(ReferenceSample, ALoadedModelReadsItsSampleValuesOnlyToRefitFromTheFileItLoaded) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({60, 60, 60}, 8);
  const CellTypeModel trained = train_model({&reference}, expression_options(), GeneStore(), table).model;
  test::TempDir dir;
  const std::string path = dir.file("model.h5");
  save_model(trained, path);
  const CellTypeModel loaded = load_model(path);
  EXPECT_EQ(loaded.reference.values.nnz(), 0);  // not read at load
  // Its path replaced by another model and then removed: the loaded model keeps its own file.
  const CellTypeModel other = train_model({&reference}, expression_options(30), GeneStore(), table).model;
  save_model(other, path);
  std::filesystem::remove(path);

  // A query measuring every model gene: coverage and annotation need no sample values.
  AnnotateOptions options;
  options.embed.num_threads = 1;
  const MemoryDataset full = make_cells({10, 10, 10}, 9);
  const Annotation whole = annotate_dataset(full, {&loaded}, table, options);
  EXPECT_FALSE(whole.models[0].refitted);
  EXPECT_DOUBLE_EQ(whole.models[0].coverage.mass, 1.0);
  EXPECT_EQ(whole.labels.size(), 30u);

  // A query missing genes: the refit reads them, the trained sample's (copies share them), and
  // refits exactly as the model in memory does.
  const ReferenceSample copy = loaded.reference;
  const CsrBlockF64& values = copy.cell_values();
  EXPECT_EQ(&values, &loaded.reference.cell_values());
  EXPECT_EQ(std::vector<double>(values.values.begin(), values.values.end()),
            std::vector<double>(trained.reference.values.values.begin(), trained.reference.values.values.end()));
  const MemoryDataset part = make_cells({10, 10, 10}, 10, {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38});
  const Annotation from_file = annotate_dataset(part, {&loaded}, table, options);
  const Annotation in_memory = annotate_dataset(part, {&trained}, table, options);
  EXPECT_TRUE(from_file.models[0].refitted);
  EXPECT_EQ(from_file.probabilities, in_memory.probabilities);
}

TEST(ReferenceSample, TooFewSharedGenesAreRefusedUnlessAllowed) {
  const GeneTable table = test::numbered_gene_table(kGenes, 101, "G");
  const MemoryDataset reference = make_cells({50, 50, 50}, 6);
  const CellTypeModel model = train_model({&reference}, expression_options(), GeneStore(), table).model;
  const MemoryDataset query = make_cells({5, 5, 5}, 7, {0, 10, 20, 30, 40});
  AnnotateOptions options;
  options.embed.num_threads = 1;
  try {
    (void)annotate_dataset(query, {&model}, table, options);
    FAIL() << "5 genes of 60 should be refused";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("measures 5 of the model's 60 genes"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("--allow-low-coverage"), std::string::npos) << error.what();
  }
  options.allow_low_coverage = true;
  const Annotation allowed = annotate_dataset(query, {&model}, table, options);
  EXPECT_TRUE(allowed.models[0].refitted);
  EXPECT_EQ(allowed.labels.size(), 15u);
}

TEST(MemoryDataset, RefusesAMatrixThatDoesNotFitItsTables) {
  DataFrame obs;
  obs.index = {"a", "b"};
  DataFrame var;
  var.index = {"G1"};
  CsrBlockF64 matrix;
  matrix.reset(0, 2, 1);
  matrix.indptr = {0, 1, 2};
  matrix.indices = {0, 1};  // column 1 of a one-gene matrix
  matrix.values = {1, 2};
  EXPECT_THROW(MemoryDataset("bad", obs, var, matrix), InputError);
  matrix.indices = {0, 0};
  const MemoryDataset good("good", obs, var, matrix);
  EXPECT_EQ(good.n_obs(), 2);
  EXPECT_EQ(good.matrix_info("X").nnz, 2);
  EXPECT_THROW((void)good.open_matrix("raw/X"), InputError);
}

}  // namespace
}  // namespace celltyper
