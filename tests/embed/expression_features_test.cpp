// Expression features (log1p-CP10k over a gene panel) and variable-gene selection: against naive
// dense computations on real pbmc3k counts, invariance to threads / block size / encoding, and
// bad input.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/expression_features.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/memory_dataset.hpp>

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <cstring>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

namespace celltyper {
namespace {

const GeneTable& human_table() {
  static const GeneTable table = [] {
    const std::string tsv = test::shared_data("gene-annotations/human_genes.tsv");
    return tsv.empty() ? GeneTable() : load_gene_table(tsv);
  }();
  return table;
}

std::string pbmc3k() { return test::shared_data("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad"); }

/// The whole matrix, densely, as doubles: rows x cols.
std::vector<double> dense_matrix(const Dataset& dataset, std::int64_t& rows, std::int64_t& cols) {
  auto reader = dataset.open_matrix(resolve_matrix_source(dataset, "X"));
  rows = reader->n_rows();
  cols = reader->n_cols();
  CsrBlockF64 block;
  reader->read_rows(0, rows, block);
  std::vector<double> dense(static_cast<std::size_t>(rows * cols), 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      dense[static_cast<std::size_t>(r * cols + block.indices[static_cast<std::size_t>(k)])] += block.values[static_cast<std::size_t>(k)];
    }
  }
  return dense;
}

TEST(ExpressionFeatures, MatchesNaiveLog1pCp10kOnPbmc3k) {
  const GeneTable& table = human_table();
  if (table.empty() || pbmc3k().empty()) GTEST_SKIP() << "../shared/data is absent";
  const auto dataset = open_dataset(pbmc3k());
  ExpressionOptions options;
  GeneExpressionStats stats;
  const Normalization used = accumulate_expression_stats(*dataset, table, options, {}, stats);
  EXPECT_EQ(used, Normalization::kLog1pCp10k);  // pbmc3k X holds raw counts
  EXPECT_EQ(stats.n_cells, dataset->n_obs());
  const std::vector<std::int64_t> panel = select_variable_genes(stats, 500);
  ASSERT_EQ(panel.size(), 500u);
  const ExpressionFeatures features = expression_features(*dataset, table, panel, options);
  ASSERT_EQ(features.n_features, 500);
  EXPECT_EQ(features.n_panel_genes_found, 500);

  // Naive: dense counts, totals over all genes, log1p(count * 1e4 / total) of each panel gene
  // (through the first var resolving to it).
  std::int64_t rows = 0, cols = 0;
  const std::vector<double> dense = dense_matrix(*dataset, rows, cols);
  const GeneResolveResult resolved = resolve_genes(table, dataset->read_var_of("X"));
  std::map<std::int64_t, std::int64_t> var_of_gene;
  for (std::size_t v = 0; v < resolved.gene_index.size(); ++v) {
    if (resolved.gene_index[v] != kNoGene) var_of_gene.emplace(table.gene(resolved.gene_index[v]).entrez_id, static_cast<std::int64_t>(v));
  }
  double max_error = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double total = std::accumulate(dense.begin() + r * cols, dense.begin() + (r + 1) * cols, 0.0);
    for (std::size_t j = 0; j < panel.size(); ++j) {
      const double count = dense[static_cast<std::size_t>(r * cols + var_of_gene.at(panel[j]))];
      const double expected = std::log1p(count * 1e4 / total);
      max_error = std::max(max_error, std::abs(expected - features.values[static_cast<std::size_t>(r) * panel.size() + j]));
    }
  }
  EXPECT_LT(max_error, 1e-5);

  // Variable genes, naively: per gene mean / variance of expm1(log1p-CP10k) with two passes,
  // log dispersion z-scored within 20 mean bins; the top 500 must agree.
  struct Gene {
    std::int64_t entrez;
    double log_mean, log_dispersion, z = 0;
  };
  std::vector<Gene> genes;
  std::vector<double> totals(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) totals[static_cast<std::size_t>(r)] = std::accumulate(dense.begin() + r * cols, dense.begin() + (r + 1) * cols, 0.0);
  for (const auto& [entrez, var] : var_of_gene) {
    std::vector<double> x(static_cast<std::size_t>(rows));
    std::int64_t expressing = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      const double count = dense[static_cast<std::size_t>(r * cols + var)];
      x[static_cast<std::size_t>(r)] = std::expm1(std::log1p(count * 1e4 / totals[static_cast<std::size_t>(r)]));
      expressing += count > 0;
    }
    if (expressing < 3) continue;
    const double mean = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(rows);
    double variance = 0;
    for (double v : x) variance += (v - mean) * (v - mean);
    variance /= static_cast<double>(rows - 1);
    genes.push_back({entrez, std::log1p(mean), std::log(variance / mean)});
  }
  double low = 1e300, high = -1e300;
  for (const auto& g : genes) low = std::min(low, g.log_mean), high = std::max(high, g.log_mean);
  std::map<int, std::vector<Gene*>> bins;
  for (auto& g : genes) bins[std::clamp(static_cast<int>((g.log_mean - low) / ((high - low) / 20)), 0, 19)].push_back(&g);
  for (auto& [bin, members] : bins) {
    double mean = 0, sd = 0;
    for (auto* g : members) mean += g->log_dispersion;
    mean /= static_cast<double>(members.size());
    for (auto* g : members) sd += (g->log_dispersion - mean) * (g->log_dispersion - mean);
    sd = members.size() > 1 ? std::sqrt(sd / static_cast<double>(members.size() - 1)) : 0;
    for (auto* g : members) g->z = sd > 1e-12 ? (g->log_dispersion - mean) / sd : 1.0;
  }
  std::stable_sort(genes.begin(), genes.end(), [](const Gene& a, const Gene& b) { return a.z > b.z; });
  std::vector<std::int64_t> expected_panel;
  for (std::size_t i = 0; i < 500; ++i) expected_panel.push_back(genes[i].entrez);
  std::vector<std::int64_t> a = panel, b = expected_panel;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<std::int64_t> common;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(common));
  // Rounding can swap genes at the cut-off only.
  EXPECT_GE(common.size(), 495u);
  // Well-known variable genes of PBMCs are in the panel.
  for (const char* symbol : {"LYZ", "PPBP", "GNLY", "S100A9", "CD79A"}) {
    const std::int32_t gene = table.find_symbol(symbol);
    ASSERT_NE(gene, kNoGene);
    EXPECT_NE(std::find(panel.begin(), panel.end(), table.gene(gene).entrez_id), panel.end()) << symbol;
  }
}

TEST(ExpressionFeatures, IdenticalAcrossThreadsBlocksAndEncodings) {
  const GeneTable& table = human_table();
  if (table.empty()) GTEST_SKIP() << "../shared/data is absent";
  // The fixtures share one matrix in every encoding; their var index holds gene symbols.
  std::vector<std::vector<float>> outputs;
  std::vector<std::int64_t> panel;
  int most_blocks = 0;
  for (const std::string name : {"csr_float32", "csc_float32", "dense_float32", "csr_int64", "csc_float64_idx64", "dense_float64_gzip"}) {
    const auto dataset = open_dataset(test::fixture("h5ad/" + name + ".h5ad"));
    for (const int threads : {1, 2}) {
      for (const std::size_t limit : {std::size_t{1} << 10, std::size_t{32} << 20}) {
        ExpressionOptions options;
        options.genes.column = "index";
        options.normalization = NormalizationChoice::kLog1pCp10k;
        options.num_threads = threads;
        options.memory_limit_bytes = limit;
        if (panel.empty()) {
          GeneExpressionStats stats;
          accumulate_expression_stats(*dataset, table, options, {}, stats);
          panel = select_variable_genes(stats, 20, 1);
        }
        const ExpressionFeatures features = expression_features(*dataset, table, panel, options);
        EXPECT_EQ(features.empty[5], 1) << name << ": the all-zero cell 5 must be flagged";
        // The streaming form hands over consecutive blocks in row order (many under 1 KiB).
        std::int64_t next_row = 0;
        int n_blocks = 0;
        (void)stream_expression_features(*dataset, table, panel, options,
                                         [&](std::int64_t first_row, std::int64_t n_rows, const float* values, const std::uint8_t* empty) {
                                           EXPECT_EQ(first_row, next_row);
                                           const std::size_t offset = static_cast<std::size_t>(first_row) * panel.size();
                                           EXPECT_EQ(std::memcmp(values, features.values.data() + offset, static_cast<std::size_t>(n_rows) * panel.size() * sizeof(float)), 0);
                                           EXPECT_EQ(std::memcmp(empty, features.empty.data() + first_row, static_cast<std::size_t>(n_rows)), 0);
                                           next_row = first_row + n_rows;
                                           ++n_blocks;
                                         });
        EXPECT_EQ(next_row, dataset->n_obs());
        most_blocks = std::max(most_blocks, n_blocks);
        outputs.push_back(features.values);
      }
    }
  }
  EXPECT_GT(most_blocks, 1) << "the 1 KiB cap should split some encoding into several blocks";
  for (std::size_t i = 1; i < outputs.size(); ++i) {
    ASSERT_EQ(outputs[i].size(), outputs[0].size());
    EXPECT_EQ(std::memcmp(outputs[i].data(), outputs[0].data(), outputs[0].size() * sizeof(float)), 0) << "run " << i;
  }
}

TEST(ExpressionFeatures, LogNormalisedValuesAreNormalisedAgainOverTheLibraryGenes) {
  // pbmc3k's counts and the same cells as log1p(CP10k), log2(1 + CP10k) or CP10k over all genes
  // (what a file's X may hold): with the library summed over a subset of genes (a partial panel,
  // as annotate's refit does), auto normalises them again (expm1 / 2^x - 1, CP10k over the
  // subset, log1p) and gives the counts' features; the logged values as they are would not.
  const GeneTable& table = human_table();
  if (table.empty() || pbmc3k().empty()) GTEST_SKIP() << "../shared/data is absent";
  const auto file = open_dataset(pbmc3k());
  auto reader = file->open_matrix("X");
  CsrBlockF64 counts;
  reader->read_rows(0, reader->n_rows(), counts);
  const auto transformed = [&](const std::function<double(double)>& of_cp10k) {
    CsrBlockF64 values = counts;
    for (std::int64_t r = 0; r < counts.n_rows; ++r) {
      const auto begin = static_cast<std::size_t>(counts.indptr[static_cast<std::size_t>(r)]);
      const auto end = static_cast<std::size_t>(counts.indptr[static_cast<std::size_t>(r) + 1]);
      const double total =
          std::accumulate(counts.values.begin() + static_cast<std::ptrdiff_t>(begin), counts.values.begin() + static_cast<std::ptrdiff_t>(end), 0.0);
      for (std::size_t k = begin; k < end; ++k) values.values[k] = static_cast<float>(of_cp10k(counts.values[k] * 1e4 / total));
    }
    return values;
  };
  const MemoryDataset from_counts("counts", file->read_obs(), file->read_var(), counts);
  ExpressionOptions options;
  GeneExpressionStats stats;
  EXPECT_EQ(accumulate_expression_stats(from_counts, table, options, {}, stats), Normalization::kLog1pCp10k);
  const std::vector<std::int64_t> panel = select_variable_genes(stats, 300);
  // The library: every other gene of the table that pbmc3k measures, as if the query lacked half.
  const GeneResolveResult resolved = resolve_genes(table, file->read_var());
  std::set<std::int64_t> measured;
  for (const std::int32_t gene : resolved.gene_index) {
    if (gene != kNoGene) measured.insert(table.gene(gene).entrez_id);
  }
  std::vector<std::int64_t> half;  // sorted, as size_factor_genes must be
  bool take = true;
  for (const std::int64_t id : measured) {
    if (take) half.push_back(id);
    take = !take;
  }
  options.size_factor_genes = half;
  const ExpressionFeatures expected = expression_features(from_counts, table, panel, options);
  const auto max_error = [&](const ExpressionFeatures& got) {
    double error = 0;
    for (std::size_t i = 0; i < expected.values.size(); ++i) error = std::max(error, static_cast<double>(std::abs(expected.values[i] - got.values[i])));
    return error;
  };
  struct Case {
    const char* what;
    std::function<double(double)> of_cp10k;
    Normalization chosen;
    bool logged;
  };
  const std::vector<Case> cases{{"log1p(CP10k)", [](double x) { return std::log1p(x); }, Normalization::kRelog1pCp10k, true},
                                {"log2(1 + CP10k)", [](double x) { return std::log2(1 + x); }, Normalization::kRelog2Cp10k, true},
                                {"log10(1 + CP10k)", [](double x) { return std::log10(1 + x); }, Normalization::kRelog10Cp10k, true},
                                {"CP10k", [](double x) { return x; }, Normalization::kLog1pCp10k, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const MemoryDataset dataset(c.what, file->read_obs(), file->read_var(), transformed(c.of_cp10k));
    options.normalization = NormalizationChoice::kAuto;
    const ExpressionFeatures normalised = expression_features(dataset, table, panel, options);
    EXPECT_EQ(normalised.normalization, c.chosen);
    EXPECT_FALSE(normalised.counts);
    EXPECT_LT(max_error(normalised), 1e-4);  // float32 storage of the values
    if (c.logged) {
      options.normalization = NormalizationChoice::kNone;
      EXPECT_GT(max_error(expression_features(dataset, table, panel, options)), 0.1);  // the library over half the genes differs from all
    }
  }
  EXPECT_TRUE(expected.counts);
  // Square roots and asinh of the counts themselves: read back (squared, sinh) and normalised as
  // the counts are; used as they are, they are not the counts' features.
  const std::vector<std::tuple<const char*, double (*)(double), Normalization>> of_counts{
      {"sqrt(counts)", [](double x) { return std::sqrt(x); }, Normalization::kSquareCp10k},
      {"asinh(counts)", [](double x) { return std::asinh(x); }, Normalization::kSinhCp10k}};
  for (const auto& [what, transform, chosen] : of_counts) {
    SCOPED_TRACE(what);
    CsrBlockF64 values = counts;
    for (double& value : values.values) value = static_cast<float>(transform(value));
    const MemoryDataset dataset(what, file->read_obs(), file->read_var(), std::move(values));
    options.normalization = NormalizationChoice::kAuto;
    const ExpressionFeatures normalised = expression_features(dataset, table, panel, options);
    EXPECT_EQ(normalised.normalization, chosen);
    EXPECT_LT(max_error(normalised), 1e-4);
    options.normalization = NormalizationChoice::kNone;
    EXPECT_GT(max_error(expression_features(dataset, table, panel, options)), 0.1);
  }
}

// A file joined from samples annotated with different gene symbols: the current symbol
// (ATP5F1B) padded with zeros beside the old one (ATP5B, an alias) that holds the counts. The
// gene is read from the var with counts, and a warning says so; a file with one var per gene
// is resolved as before.
// Two vars of one name (var names not made unique), the first empty: the gene is read from the
// one with counts, and the warning names the vars (not "files ... joined?").
TEST(ExpressionFeatures, TwoVarsOfOneNameAreReadFromTheOneWithCounts) {
  const GeneTable& table = human_table();
  if (table.empty()) GTEST_SKIP() << "../shared/data is absent";
  DataFrame var;
  var.index = {"CD3E", "ATP5F1B", "CD3E"};
  DataFrame obs;
  CsrBlockF64 matrix;
  matrix.reset(0, 0, 3);
  for (int cell = 0; cell < 40; ++cell) {
    obs.index.push_back("c" + std::to_string(cell));
    matrix.indices.insert(matrix.indices.end(), {1, 2});
    matrix.values.insert(matrix.values.end(), {1.0, 2.0 + cell % 3});
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
    ++matrix.n_rows;
  }
  const MemoryDataset doubled("doubled", obs, var, matrix);
  const GeneResolveResult resolved = resolve_dataset_genes(table, doubled, "X");
  EXPECT_EQ(resolved.gene_index[0], kNoGene);
  ASSERT_NE(resolved.gene_index[2], kNoGene);
  EXPECT_EQ(table.gene(resolved.gene_index[2]).symbol, "CD3E");
  ASSERT_FALSE(resolved.warnings.empty());
  EXPECT_NE(resolved.warnings.back().find("doubled: 1 gene named by two vars is read from the one with counts: the first var of the name has "
                                          "counts in fewer than 10 of the 40 cells scanned, the other in more (two vars of one name: var "
                                          "names not made unique): 'CD3E' (var 3, not var 1)"),
            std::string::npos)
      << resolved.warnings.back();
}

TEST(ExpressionFeatures, AGeneNamedByAnEmptyVarAndAVarWithCountsIsReadFromTheCounts) {
  const GeneTable& table = human_table();
  if (table.empty()) GTEST_SKIP() << "../shared/data is absent";
  DataFrame var;
  var.index = {"ATP5B", "CD3E", "ATP5F1B"};
  DataFrame obs;
  CsrBlockF64 matrix;
  matrix.reset(0, 0, 3);
  for (int cell = 0; cell < 40; ++cell) {
    obs.index.push_back("c" + std::to_string(cell));
    matrix.indices.insert(matrix.indices.end(), {0, 1});
    matrix.values.insert(matrix.values.end(), {3.0 + cell % 4, 1.0});
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
    ++matrix.n_rows;
  }
  const MemoryDataset joined("joined", obs, var, matrix);
  const GeneResolveResult by_name = resolve_genes(table, var);
  EXPECT_EQ(by_name.gene_index[0], kNoGene);  // the exact symbol wins on names alone
  const GeneResolveResult resolved = resolve_dataset_genes(table, joined, "X");
  ASSERT_NE(resolved.gene_index[0], kNoGene);
  EXPECT_EQ(table.gene(resolved.gene_index[0]).symbol, "ATP5F1B");
  EXPECT_EQ(resolved.gene_index[2], kNoGene);
  ASSERT_FALSE(resolved.warnings.empty());
  EXPECT_NE(resolved.warnings.back().find("joined: 1 gene named by two vars is read from the one with counts: the better-named var has "
                                          "counts in fewer than 10 of the 40 cells scanned, the other in more"),
            std::string::npos)
      << resolved.warnings.back();
  EXPECT_NE(resolved.warnings.back().find("ATP5F1B from 'ATP5B'"), std::string::npos) << resolved.warnings.back();
  // The dataset keeps the scan: the other passes of a command over it (embedding, refit,
  // similarity) read it again without scanning.
  const Dataset::VarScan& kept = joined.var_scan("X", [] {
    ADD_FAILURE() << "scanned twice";
    return Dataset::VarScan{};
  });
  EXPECT_EQ(kept.rows_scanned, 40);
  EXPECT_EQ(kept.cells, (std::vector<std::int64_t>{40, 40, 0}));
  const GeneResolveResult again = resolve_dataset_genes(table, joined, "X");
  EXPECT_EQ(again.gene_index, resolved.gene_index);
  EXPECT_EQ(again.warnings, resolved.warnings);
  // Both with counts: the names decide, silently.
  CsrBlockF64 both = matrix;
  both.indices.clear();
  both.values.clear();
  both.indptr = {0};
  for (int cell = 0; cell < 40; ++cell) {
    both.indices.insert(both.indices.end(), {0, 1, 2});
    both.values.insert(both.values.end(), {1.0, 1.0, 2.0});
    both.indptr.push_back(static_cast<std::int64_t>(both.indices.size()));
  }
  const MemoryDataset measured("measured", obs, var, both);
  const GeneResolveResult as_before = resolve_dataset_genes(table, measured, "X");
  EXPECT_EQ(as_before.gene_index, by_name.gene_index);
  EXPECT_EQ(as_before.warnings.size(), by_name.warnings.size());
  // A rare gene: both vars with counts in a few cells (the better-named in 5, under the floor of
  // 10; the other in 12, not 4 times as many: as pbmc3k's AGO2 and CASC7 in a quarter of its cells):
  // the names decide, silently.
  CsrBlockF64 rare = matrix;
  rare.indices.clear();
  rare.values.clear();
  rare.indptr = {0};
  for (int cell = 0; cell < 40; ++cell) {
    if (cell < 12) rare.indices.push_back(0), rare.values.push_back(1.0);
    rare.indices.push_back(1), rare.values.push_back(1.0);
    if (cell >= 35) rare.indices.push_back(2), rare.values.push_back(1.0);
    rare.indptr.push_back(static_cast<std::int64_t>(rare.indices.size()));
  }
  const MemoryDataset few("few", obs, var, rare);
  const GeneResolveResult by_names = resolve_dataset_genes(table, few, "X");
  EXPECT_EQ(by_names.gene_index, by_name.gene_index);
  EXPECT_EQ(by_names.warnings.size(), by_name.warnings.size());
}

TEST(ExpressionFeatures, BadInput) {
  const GeneTable& table = human_table();
  if (table.empty()) GTEST_SKIP() << "../shared/data is absent";
  const auto dataset = open_dataset(test::fixture("h5ad/csr_float32.h5ad"));
  ExpressionOptions options;
  options.genes.column = "index";
  EXPECT_THROW(expression_features(*dataset, table, {}, options), InputError);
  // A panel of genes the dataset does not have.
  try {
    (void)expression_features(*dataset, table, {1, 2, 9, 10, 12}, options);
    FAIL() << "expected InputError";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("panel genes of the model are among the vars"), std::string::npos) << error.what();
  }
  GeneExpressionStats stats;
  EXPECT_THROW(select_variable_genes(stats, 10), InputError);
  EXPECT_THROW(select_variable_genes(stats, 0), InputError);
}

// A fuzzed model's reference sample (fuzz/regressions/fuzz_model) held values whose expm1
// overflows: the gene's mean became inf, the bin width NaN, and a NaN was cast to int. Such a gene
// is no candidate; the others are ranked as before.
TEST(ExpressionFeatures, GenesWithOverflowingValuesAreNoCandidates) {
  GeneExpressionStats stats;
  stats.n_cells = 10;
  const double inf = std::numeric_limits<double>::infinity();
  for (std::int64_t g = 0; g < 6; ++g) {
    stats.entrez_ids.push_back(100 + g);
    const double mean = 1.0 + static_cast<double>(g);
    stats.sum.push_back(std::log1p(mean) * 10);
    stats.sum_squares.push_back(std::log1p(mean) * std::log1p(mean) * 10);
    stats.sum_expm1.push_back(mean * 10);
    stats.sum_expm1_squares.push_back(mean * mean * 10 * (1.0 + 0.1 * static_cast<double>(g)));
    stats.n_expressing.push_back(10);
  }
  stats.sum_expm1[2] = inf;
  stats.sum_expm1_squares[2] = inf;
  stats.sum_expm1_squares[4] = inf;
  const auto panel = select_variable_genes(stats, 6, 1);
  EXPECT_EQ(panel.size(), 4U);
  for (const auto id : panel) EXPECT_TRUE(id != 102 && id != 104) << id;
}

}  // namespace
}  // namespace celltyper
