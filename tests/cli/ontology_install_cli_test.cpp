// The Cell Ontology comes with the tool: scripts/setup.sh installs it beside the executable and
// `evaluate` and `cv` find it from any working directory, with no flag and no environment.
#include "support/test_support.hpp"

#include <fmt/format.h>

#include "celltyper/ontology.hpp"

#include <filesystem>

namespace celltyper {
namespace {

TEST(OntologyInstall, EvaluateAndCvFindItFromAnotherDirectory) {
  const std::filesystem::path share = std::filesystem::path(CELLTYPER_CLI_PATH).parent_path() / "share" / "celltyper";
  ASSERT_NE(ontology_in_folder(share), "") << "no Cell Ontology in " << share << ": scripts/setup.sh installs it";
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  // Tiny labelled cells with CL term names as labels, two batches, counts over real gene symbols.
  const std::string script = fmt::format(
      "import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
      "rng = np.random.default_rng(0)\n"
      "genes = ['CD3E', 'CD3D', 'CD2', 'IL7R', 'MS4A1', 'CD79A', 'CD79B', 'CD19', 'LYZ', 'CD14', 'S100A8', 'FCN1']\n"
      "types = ['T cell', 'B cell', 'monocyte']\n"
      "rows, labels = [], []\n"
      "for t in range(3):\n"
      "    for i in range(40):\n"
      "        rate = np.full(12, 0.3); rate[4 * t:4 * t + 4] = 6\n"
      "        rows.append(rng.poisson(rate)); labels.append(types[t])\n"
      "obs = pd.DataFrame({{'cell_type': pd.Categorical(labels), 'batch': pd.Categorical(['a', 'b'] * 60),\n"
      "                    'pred': pd.Categorical(['lymphocyte' if l != 'monocyte' else l for l in labels])}},\n"
      "                   index=[f'c{{i}}' for i in range(120)])\n"
      "anndata.AnnData(sp.csr_matrix(np.array(rows, dtype=np.float32)), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad('{}')\n",
      dir.file("cells.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string in_tmp = fmt::format("cd {} && env -u CELLTYPER_ONTOLOGY {}", dir.path().string(), CELLTYPER_CLI_PATH);
  const auto evaluate = test::run_program({"/bin/sh", "-c", in_tmp + " evaluate -i cells.h5ad --truth obs:cell_type --pred obs:pred"});
  ASSERT_EQ(evaluate.exit_code, 0) << evaluate.err;
  EXPECT_NE(evaluate.out.find("hierarchical P / R / F"), std::string::npos) << evaluate.out;
  EXPECT_EQ(evaluate.err.find("no Cell Ontology found"), std::string::npos) << evaluate.err;
  const auto cv = test::run_program({"/bin/sh", "-c", in_tmp + " cv -r cells.h5ad -l obs:cell_type --group obs:batch --hierarchical "
                                                                "--gene-table " + table + " --n-genes 12 -q"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  EXPECT_NE(cv.out.find("+hierarchical"), std::string::npos) << cv.out;
  // annotate names the labels' CL ids from the installed ontology; one that cannot be read costs
  // the names (a warning), not the labels.
  const auto train = test::run_program({"/bin/sh", "-c", in_tmp + " train -r cells.h5ad -l obs:cell_type --gene-table " + table +
                                                                   " --n-genes 12 -o m.h5 -q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto named = test::run_program({"/bin/sh", "-c", in_tmp + " annotate -m m.h5 -i cells.h5ad --gene-table " + table + " --csv named.csv -q"});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_NE(test::read_file(dir.file("named.csv")).find(",celltyper_ontology_id,celltyper_ontology_name,"), std::string::npos);
  const auto unreadable = test::run_program({"/bin/sh", "-c", fmt::format("cd {} && CELLTYPER_ONTOLOGY=/nonexistent.json {} annotate -m m.h5 "
                                                                          "-i cells.h5ad --gene-table {} --csv unnamed.csv",
                                                                          dir.path().string(), CELLTYPER_CLI_PATH, table)});
  ASSERT_EQ(unreadable.exit_code, 0) << unreadable.err;
  EXPECT_NE(unreadable.err.find("warning: the Cell Ontology could not be read, so obs celltyper_ontology_name is left out"), std::string::npos)
      << unreadable.err;
  EXPECT_EQ(test::read_file(dir.file("unnamed.csv")).find("celltyper_ontology_name"), std::string::npos);
}

}  // namespace
}  // namespace celltyper
