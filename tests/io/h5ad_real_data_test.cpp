// Reading the real h5ad files of ../shared/data: shapes, encodings and obs columns, checked
// against the *.obs.tsv exported beside each file and against the counts its README states.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/matrix_summary.hpp>

#include "support/test_support.hpp"

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace celltyper {
namespace {

/// The obs table exported as TSV beside each shared h5ad (first column: cell name).
struct Tsv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

Tsv read_tsv(const std::string& path) {
  std::ifstream in(path);
  Tsv tsv;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream stream(line);
    std::string field;
    while (std::getline(stream, field, '\t')) fields.push_back(field);
    if (!line.empty() && line.back() == '\t') fields.emplace_back();
    if (first) {
      tsv.header = fields;
      first = false;
    } else {
      tsv.rows.push_back(fields);
    }
  }
  return tsv;
}

/// Every obs column read from the h5ad equals the TSV export (numbers to 1e-6 relative).
void expect_obs_matches_tsv(const std::string& h5ad_path, const std::string& tsv_path) {
  H5adFile file(h5ad_path);
  const DataFrame obs = file.read_obs();
  const Tsv tsv = read_tsv(tsv_path);
  ASSERT_EQ(tsv.rows.size(), obs.n_rows());
  for (std::size_t row = 0; row < obs.n_rows(); ++row) ASSERT_EQ(tsv.rows[row][0], obs.index[row]) << "row " << row;
  std::size_t compared = 0;
  for (std::size_t c = 1; c < tsv.header.size(); ++c) {
    const Column* column = obs.find(tsv.header[c]);
    ASSERT_NE(column, nullptr) << "column " << tsv.header[c] << " missing in " << h5ad_path;
    for (std::size_t row = 0; row < obs.n_rows(); ++row) {
      const std::string& expected = c < tsv.rows[row].size() ? tsv.rows[row][c] : std::string();
      if (column->kind == ColumnKind::kFloat || column->kind == ColumnKind::kInt) {
        if (expected.empty() || expected == "nan" || expected == "NaN") {
          EXPECT_TRUE(column->is_missing(row));
          continue;
        }
        const double want = std::stod(expected);
        const double got = column->kind == ColumnKind::kFloat ? column->numbers[row] : static_cast<double>(column->integers[row]);
        ASSERT_NEAR(got, want, 1e-6 * std::max(1.0, std::fabs(want))) << column->name << " row " << row;
      } else {
        ASSERT_EQ(column->value_as_string(row), expected) << column->name << " row " << row;
      }
    }
    ++compared;
  }
  EXPECT_EQ(compared, tsv.header.size() - 1);
}

TEST(H5adRealData, Pbmc3kShapeEncodingAndLabels) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  H5adFile file(path);
  EXPECT_EQ(file.n_obs(), 2638);
  EXPECT_EQ(file.n_vars(), 13714);
  const MatrixInfo x = file.matrix_info("X");
  EXPECT_EQ(x.encoding, MatrixEncoding::kCsr);
  EXPECT_EQ(x.value_dtype, "float32");
  EXPECT_EQ(x.index_dtype, "int32");
  EXPECT_EQ(x.compression, "gzip(4)");
  const DataFrame obs = file.read_obs();
  const Column& celltype = obs.at("celltype", "obs");
  ASSERT_EQ(celltype.kind, ColumnKind::kCategorical);
  EXPECT_EQ(celltype.categories.size(), 9u);
  std::map<std::string, int> counts;
  for (const auto code : celltype.codes) ++counts[celltype.categories[static_cast<std::size_t>(code)]];
  EXPECT_EQ(counts["Naive CD4 T"], 697);
  EXPECT_EQ(counts["Memory CD4 T"], 483);
  EXPECT_EQ(counts["CD14+ Mono"], 480);
  EXPECT_EQ(counts["B"], 344);
  EXPECT_EQ(counts["CD8 T"], 271);
  EXPECT_EQ(counts["FCGR3A+ Mono"], 162);
  EXPECT_EQ(counts["NK"], 155);
  EXPECT_EQ(counts["DC"], 32);
  EXPECT_EQ(counts["Platelet"], 14);
}

TEST(H5adRealData, ObsMatchesTsvExports) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad", "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.obs.tsv"},
      {"pbmc68k_reduced/10x_pbmc68k_reduced.h5ad", "pbmc68k_reduced/pbmc68k_reduced.obs.tsv"},
      {"savercat-pbmc-3tech/pbmc_prep_3tech.h5ad", "savercat-pbmc-3tech/pbmc_prep_3tech.obs.tsv"},
      {"pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad", "pancreas-xin-wang-scclassify/pancreas_xin_wang_log.obs.tsv"},
      {"cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad", "cellbench-mixology/cellbench_3cl_celseq2_dropseq.obs.tsv"},
      {"cellbench-mixology/cellbench_5cl_celseq2_3plates.h5ad", "cellbench-mixology/cellbench_5cl_celseq2_3plates.obs.tsv"},
      {"actinn-tabula-muris-mouse/actinn_train_mouse.h5ad", "actinn-tabula-muris-mouse/actinn_train_mouse.obs.tsv"},
  };
  for (const auto& [h5ad, tsv] : pairs) {
    SCOPED_TRACE(h5ad);
    const std::string h5ad_path = test::shared_data(h5ad);
    const std::string tsv_path = test::shared_data(tsv);
    if (h5ad_path.empty() || tsv_path.empty()) GTEST_SKIP() << "../shared/data/" << h5ad << " is absent";
    expect_obs_matches_tsv(h5ad_path, tsv_path);
  }
}

TEST(H5adRealData, Pbmc68kDenseRawAndLayers) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  H5adFile file(path);
  EXPECT_EQ(file.n_obs(), 700);
  EXPECT_EQ(file.n_vars(), 765);
  EXPECT_EQ(file.matrix_sources(), (std::vector<std::string>{"X", "raw/X", "layers/counts"}));
  EXPECT_EQ(file.matrix_info("X").encoding, MatrixEncoding::kDense);
  EXPECT_EQ(file.matrix_info("layers/counts").value_dtype, "int32");
  EXPECT_EQ(resolve_matrix_source(file, "counts"), "layers/counts");
  EXPECT_EQ(resolve_matrix_source(file, "raw"), "raw/X");
  EXPECT_THROW((void)resolve_matrix_source(file, "spliced"), InputError);
  // Counts layer and raw (log1p CP10k) have the same sparsity pattern.
  auto counts = file.open_matrix("layers/counts");
  auto raw = file.open_matrix("raw/X");
  CsrBlock a;
  CsrBlock b;
  counts->read_rows(0, 700, a);
  raw->read_rows(0, 700, b);
  EXPECT_EQ(a.indptr, b.indptr);
  EXPECT_EQ(a.indices, b.indices);
  const DataFrame raw_var = file.read_var_of("raw/X");
  EXPECT_EQ(raw_var.n_rows(), 765u);
}

TEST(H5adRealData, AutoReadsTheCounts) {
  // pbmc68k_reduced keeps scaled values in X, log1p CP10k in raw/X and the counts in a layer.
  CELLTYPER_REQUIRE_SHARED(pbmc68k, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  std::string why;
  const H5adFile file(pbmc68k);
  EXPECT_EQ(choose_counts_matrix(file, &why), "layers/counts");
  EXPECT_NE(why.find("X looks scaled and layers/counts holds raw counts: layers/counts read"), std::string::npos) << why;
  EXPECT_EQ(resolve_matrix_source(file, "auto"), "layers/counts");
  // savercat's X holds counts: X, with nothing to say.
  CELLTYPER_REQUIRE_SHARED(savercat, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  why.clear();
  EXPECT_EQ(choose_counts_matrix(H5adFile(savercat), &why), "X");
  EXPECT_EQ(why, "");
}

/// Streaming in small blocks, with and without prefetch, reproduces one whole read exactly.
TEST(H5adRealData, BlockStreamingEqualsWholeRead) {
  CELLTYPER_REQUIRE_SHARED(path, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  H5adFile file(path);
  auto reader = file.open_matrix("X");
  CsrBlock whole;
  reader->read_rows(0, reader->n_rows(), whole);
  for (const std::size_t limit : {std::size_t{4096}, std::size_t{1} << 20, std::size_t{64} << 20}) {
    for (const bool prefetch : {false, true}) {
      Buffer<std::int64_t> indptr{0};
      Buffer<std::int32_t> indices;
      Buffer<float> values;
      std::int64_t next_row = 0;
      std::size_t blocks = 0;
      for_each_block(*reader, {limit, prefetch}, [&](const CsrBlock& block) {
        ASSERT_EQ(block.first_row, next_row);
        next_row += block.n_rows;
        ++blocks;
        for (std::int64_t r = 1; r <= block.n_rows; ++r) indptr.push_back(indptr.back() + block.indptr[static_cast<std::size_t>(r)] - block.indptr[static_cast<std::size_t>(r) - 1]);
        indices.insert(indices.end(), block.indices.begin(), block.indices.end());
        values.insert(values.end(), block.values.begin(), block.values.end());
      });
      EXPECT_EQ(next_row, reader->n_rows());
      EXPECT_EQ(indptr, whole.indptr);
      EXPECT_EQ(indices, whole.indices);
      EXPECT_EQ(values, whole.values);
      if (limit == 4096) {
        EXPECT_GT(blocks, 100u);
      }
    }
  }
}

TEST(H5adRealData, PlanBlocksRespectsMemoryLimit) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  H5adFile file(path);
  auto reader = file.open_matrix("X");
  const std::size_t limit = std::size_t{1} << 20;
  const auto blocks = reader->plan_blocks(limit);
  const auto per_row = reader->row_nnz();
  std::int64_t covered = 0;
  for (const auto& block : blocks) {
    EXPECT_EQ(block.begin, covered);
    covered = block.end;
    std::size_t bytes = 0;
    for (std::int64_t r = block.begin; r < block.end; ++r) bytes += static_cast<std::size_t>(per_row[static_cast<std::size_t>(r)]) * reader->bytes_per_value() + 8;
    if (block.size() > 1) {
      EXPECT_LE(bytes, limit);
    }
  }
  EXPECT_EQ(covered, 2638);
}

}  // namespace
}  // namespace celltyper
