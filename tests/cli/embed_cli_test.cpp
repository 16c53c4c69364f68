// End-to-end tests of `celltyper embed` with a gene store written through the GeneStore API
// (seeded random vectors for every human gene), on real data and bad input.
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <random>

namespace celltyper {
namespace {

TEST(EmbedCli, Pbmc3kToObsmNpyAndHdf5) {
  CELLTYPER_REQUIRE_SHARED(input, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 64);
  const auto h5ad = test::run_cli({"embed", "--input", input, "--genes", store, "--gene-table", table, "--out", dir.file("out.h5ad"), "--json"});
  ASSERT_EQ(h5ad.exit_code, 0) << h5ad.err;
  const auto summary = nlohmann::json::parse(h5ad.out);
  EXPECT_EQ(summary["n_cells"], 2638);
  EXPECT_EQ(summary["dims"], 64);
  EXPECT_EQ(summary["normalization"], "log1p-cp10k");
  EXPECT_GT(summary["median_coverage"].get<double>(), 0.9);
  const auto npy = test::run_cli({"embed", "-i", input, "-g", store, "--gene-table", table, "-o", dir.file("e.npy"), "--dims", "32", "--threads", "1", "-q"});
  ASSERT_EQ(npy.exit_code, 0) << npy.err;
  EXPECT_TRUE(npy.err.empty()) << npy.err;
  const auto hdf5 = test::run_cli({"embed", "-i", input, "-g", store, "--gene-table", table, "-o", dir.file("e.h5"), "--memory-limit", "1M"});
  ASSERT_EQ(hdf5.exit_code, 0) << hdf5.err;
  const std::string check = fmt::format(
      "import anndata, numpy as np, h5py\n"
      "a = anndata.read_h5ad('{0}'); e = a.obsm['X_celltyper']\n"
      "assert e.shape == (2638, 64) and e.dtype == np.float32\n"
      "assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)\n"
      "n = np.load('{1}'); assert n.shape == (2638, 32)\n"
      "p = e[:, :32] / np.linalg.norm(e[:, :32], axis=1, keepdims=True)\n"
      "h = h5py.File('{2}', 'r')['embeddings'][:]; assert np.array_equal(h, e)\n"
      "assert list(a.obs['celltype'].cat.categories)[:1] == ['B']\n"
      "print(float(np.abs(n - p).max()))\n",
      dir.file("out.h5ad"), dir.file("e.npy"), dir.file("e.h5"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // A 32-dim prefix store is not the renormalised prefix of the 64-dim cell embedding, but it is
  // a valid embedding on its own: only shapes and norms are asserted above.
}

TEST(EmbedCli, CellbenchEnsemblIdsAndTenxInput) {
  CELLTYPER_REQUIRE_SHARED(input, "cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 16);
  const auto result = test::run_cli({"embed", "-i", input, "-g", store, "--gene-table", table, "-o", dir.file("e.npy"), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto summary = nlohmann::json::parse(result.out);
  EXPECT_EQ(summary["genes"]["id_type"], "ensembl");
  // 10x input needs an explicit .npy/.h5 output.
  const auto tenx = test::run_cli({"embed", "-i", test::fixture("tenx/v3_mtx"), "-g", store, "--gene-table", table});
  EXPECT_EQ(tenx.exit_code, 2);
  EXPECT_NE(tenx.err.find("--out"), std::string::npos) << tenx.err;
  const auto tenx_npy = test::run_cli({"embed", "-i", test::fixture("tenx/v3.h5"), "-g", store, "--gene-table", table, "-o", dir.file("t.npy")});
  EXPECT_EQ(tenx_npy.exit_code, 0) << tenx_npy.err;
}

TEST(EmbedCli, BadInputIsOneClearLine) {
  CELLTYPER_REQUIRE_SHARED(input, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 16);
  const std::string tiny_store = test::random_gene_store(dir, 16, 11, 50);  // 50 genes: almost no overlap
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"-i", input, "-g", tiny_store, "-o", dir.file("a.npy")}, "counts on genes with a vector"},
      {{"-i", input, "-g", store, "-o", dir.file("b.npy"), "--dims", "32"}, "--dims 32"},
      {{"-i", input, "-g", dir.file("missing.h5"), "-o", dir.file("c.npy")}, "missing.h5"},
      {{"-i", input, "-g", store, "-o", dir.file("d.txt")}, "unknown output type"},
      {{"-i", input, "-g", store, "-o", dir.file("e.npy"), "--normalize", "zscore"}, "unknown normalisation"},
      {{"-i", input, "-g", store, "-o", dir.file("f.npy"), "--memory-limit", "lots"}, "byte count"},
      {{"-i", test::fixture("h5ad/nan_inf_negative.h5ad"), "-g", store, "-o", dir.file("g.npy"), "--normalize", "none", "--min-coverage", "0"},
       "non-finite"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"embed", "--gene-table", table};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto result = test::run_cli(args);
    SCOPED_TRACE(c.message);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_NE(result.err.find(c.message), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()) ||
              std::none_of(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator(),
                           [](const auto& e) { return e.path().extension() == ".npy"; }))
      << "a failed run left an output behind";
}

}  // namespace
}  // namespace celltyper
