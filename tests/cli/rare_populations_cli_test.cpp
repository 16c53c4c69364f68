// End-to-end tests of rare populations with default settings: a query enriched in a rare, low-RNA
// type (platelets resampled from pbmc3k's few) keeps its labels whatever obs columns it carries
// (its cell-type column is no sample of a joined file); train names the classes its validation
// misses. The generator is inline below.
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <string>

namespace celltyper {
namespace {

TEST(RarePopulations, ACellTypeColumnIsNotTakenForTheSamplesOfAJoinedFile) {
  CELLTYPER_REQUIRE_SHARED(pbmc, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(R"(
import anndata, numpy as np, pandas as pd, scipy.sparse as sp
a = anndata.read_h5ad('{0}')
a = anndata.AnnData(sp.csr_matrix(a.X, dtype=np.float32), obs=a.obs[['celltype']].copy(), var=pd.DataFrame(index=a.var_names))
a.obs['celltype'] = a.obs['celltype'].astype(str)
reference, query = a[::2].copy(), a[1::2].copy()
reference.write_h5ad('{1}/reference.h5ad')
rng = np.random.default_rng(0)
kind = query.obs['celltype'].values
rows = np.concatenate([rng.choice(np.flatnonzero(~np.isin(kind, ['DC', 'Platelet'])), 1000, replace=False),
                       rng.choice(np.flatnonzero(kind == 'DC'), 120), rng.choice(np.flatnonzero(kind == 'Platelet'), 60)])
q = query[rows].copy()
q.obs_names = [f'c{{i}}' for i in range(q.n_obs)]
q.obs['celltype'] = pd.Categorical(q.obs['celltype'])
q.obs['leiden'] = pd.Categorical(q.obs['celltype'].cat.codes.astype(str))
q.write_h5ad('{1}/enriched.h5ad')
)",
                                       pbmc, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto trained = test::run_cli({"train", "-r", dir.file("reference.h5ad"), "-l", "obs:celltype", "-o", dir.file("model.h5")});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  // (the validation line names the rare classes its held-out cells were missed in, when any)
  EXPECT_NE(trained.err.find("validation ("), std::string::npos) << trained.err;
  const auto annotated = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", dir.file("enriched.h5ad"), "--csv", dir.file("auto.csv")});
  ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
  // The platelets (copies of the query's 7) lack genes every reference type expresses, as a
  // sample padded with zeros would: read as one before (its cell-type column taken for samples).
  EXPECT_EQ(annotated.err.find("[celltype=Platelet]"), std::string::npos) << annotated.err;
  EXPECT_EQ(annotated.err.find("[leiden="), std::string::npos) << annotated.err;
  const auto none = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", dir.file("enriched.h5ad"), "--group", "none", "--csv", dir.file("none.csv"), "-q"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(test::csv_labels(dir.file("auto.csv")), test::csv_labels(dir.file("none.csv")));
  // Named with --group, such a column is still read as samples (the user's word).
  const auto named = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", dir.file("enriched.h5ad"), "--group", "obs:celltype", "--csv", dir.file("named.csv")});
  EXPECT_EQ(named.exit_code, 0) << named.err;
}

}  // namespace
}  // namespace celltyper
