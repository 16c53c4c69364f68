// End-to-end tests of plate-based (Smart-seq2-like) matrices as GEO holds them: logs of TPM,
// FPKM or RSEM's expected read counts whose per-cell totals are unequal (TPM of the whole
// transcriptome kept for some genes), ERCC spike-ins beside the genes, a symbol joined before its
// Ensembl id, edgeR's log CPM (a floor per cell). pbmc3k's real counts are the molecules; gene
// lengths are drawn deterministically per gene (the generators are inline below).
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace celltyper {
namespace {

using test::csv_labels;

double agreement(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.size() != b.size() || a.empty()) return 0;
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == b[i] ? 1 : 0;
  return static_cast<double>(same) / static_cast<double>(a.size());
}

/// `celltyper annotate` of DIR/NAME.h5ad with the model DIR/MODEL: its labels and what it said.
std::pair<std::vector<std::string>, std::string> annotate_in(const test::TempDir& dir, const std::string& model, const std::string& name) {
  const auto run = test::run_cli({"annotate", "-m", dir.file(model), "-i", dir.file(name + ".h5ad"), "--csv", dir.file(model + name + ".csv")});
  EXPECT_EQ(run.exit_code, 0) << name << ": " << run.err;
  return std::make_pair(csv_labels(dir.file(model + name + ".csv")), run.err);
}

TEST(PlateBased, LogsOfTpmFpkmAndReadCountsAreReadBackAndNormalisedAsCounts) {
  CELLTYPER_REQUIRE_SHARED(pbmc, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(human_genes, "gene-annotations/human_genes.tsv");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(R"(
import anndata, numpy as np, pandas as pd, scipy.sparse as sp
a = anndata.read_h5ad('{0}')
a = anndata.AnnData(sp.csr_matrix(a.X, dtype=np.float32), obs=a.obs[['celltype']].copy(), var=pd.DataFrame(index=a.var_names))
ref, q = a[::2].copy(), a[1::2].copy()
ref.write_h5ad('{1}/ref.h5ad'); q.write_h5ad('{1}/counts.h5ad')
rng = np.random.default_rng(0)
length = np.exp(rng.normal(np.log(2500), 0.8, a.n_vars)).clip(300, 15000)  # (bp per gene)
def plate(counts):  # RSEM-like expected reads (50 per kb per molecule), TPM, TPM kept for these genes
    C = counts.X.toarray().astype(np.float64)
    reads = np.round(C * length / 1000 * 50 * rng.uniform(0.9, 1.1, C.shape), 2)
    rate = reads / length
    tpm = rate / rate.sum(1, keepdims=True) * 1e6
    return reads, tpm * (1 - rng.uniform(0.05, 0.4, (C.shape[0], 1)))
def write(X, like, name, var=None):
    anndata.AnnData(sp.csr_matrix(X.astype(np.float32)), obs=like.obs.copy(), var=like.var.copy() if var is None else var).write_h5ad('{1}/' + name + '.h5ad')
reads, tpm = plate(q)
write(np.log2(tpm + 1), q, 'log2tpm'); write(np.log1p(tpm), q, 'log1ptpm'); write(np.log2(reads + 1), q, 'log2reads')
ref_reads, ref_tpm = plate(ref)
write(np.log2(ref_tpm + 1), ref, 'ref_log2tpm')
half = ref.n_obs // 2  # (two files of one study; the second without the genes whose values exceed ln(2e6) anywhere)
logs = np.log2(ref_tpm + 1)
low = logs.max(0) <= 14.4
write(logs[:half], ref[:half], 'ref_log2tpm_a'); write(logs[half:][:, low], ref[half:, low], 'ref_log2tpm_b')
# ERCC spike-ins holding 20-50% of each cell's reads (ERCC1 .. ERCC8 are genes: kept as they are)
ercc = rng.poisson(np.outer(reads.sum(1), rng.dirichlet(np.ones(40))) * rng.uniform(0.25, 1, (q.n_obs, 1)))
names = list(q.var_names) + [f'ERCC-{{i:05d}}' for i in range(1, 41)]
write(np.hstack([reads, ercc]), q, 'reads_ercc', pd.DataFrame(index=names)); write(reads, q, 'reads')
# a symbol joined before its Ensembl id with a version
genes = pd.read_csv('{2}', sep='\t', usecols=['symbol', 'ensembl_ids']).dropna()
ensembl = dict(zip(genes.symbol, genes.ensembl_ids.str.split(',').str[0]))
joined = [f'{{s}}_{{ensembl[s]}}.7' if s in ensembl else s for s in q.var_names]
write(tpm, q, 'tpm'); write(tpm, q, 'tpm_joined_ids', pd.DataFrame(index=pd.Index(joined)))
)",
                                       pbmc, dir.path().string(), human_genes);
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;

  const auto trained = test::run_cli({"train", "-r", dir.file("ref.h5ad"), "-l", "obs:celltype", "-o", dir.file("counts.h5"), "-q"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto annotate = [&](const std::string& model, const std::string& name) { return annotate_in(dir, model, name); };
  const std::vector<std::string> counts = annotate("counts.h5", "counts").first;
  ASSERT_FALSE(counts.empty());
  // Each log, read back in its base (2 above ln(2e6), else e) and normalised as counts: the
  // counts' labels within a few cells (used unchanged, log2(TPM + 1): 0.72 accuracy, 0.79 of
  // the counts' labels).
  for (const auto& [name, base] : std::vector<std::pair<std::string, std::string>>{
           {"log2tpm", "read back as log2(1 + x)"}, {"log1ptpm", "read back as log1p(x), natural logs"}, {"log2reads", "read back as log2(1 + x)"}}) {
    const auto [labels, said] = annotate("counts.h5", name);
    EXPECT_GT(agreement(labels, counts), 0.95) << name;
    EXPECT_NE(said.find(base), std::string::npos) << name << ": " << said;
    EXPECT_NE(said.find("of TPM, FPKM or read counts and normalised as counts (log1p of CP10k)"), std::string::npos) << said;
  }
  // A model trained on such logs annotates counts (it learnt normalised values: was 0.27 accuracy).
  const auto from_logs = test::run_cli({"train", "-r", dir.file("ref_log2tpm.h5ad"), "-l", "obs:celltype", "-o", dir.file("logs.h5"), "-q"});
  ASSERT_EQ(from_logs.exit_code, 0) << from_logs.err;
  EXPECT_GT(agreement(annotate("logs.h5", "counts").first, counts), 0.9);
  EXPECT_GT(agreement(annotate("logs.h5", "log2tpm").first, counts), 0.9);
  // Files of one study whose largest values differ (one without the genes above ln(2e6)): one
  // base for both, and the model keeps its reference sample (refittable).
  const auto pooled = test::run_cli({"train", "-r", dir.file("ref_log2tpm_a.h5ad") + "," + dir.file("ref_log2tpm_b.h5ad"), "-l", "obs:celltype",
                                     "-o", dir.file("pooled.h5")});
  ASSERT_EQ(pooled.exit_code, 0) << pooled.err;
  EXPECT_NE(pooled.err.find("in 2 of the references: read back as log2(1 + x) in each"), std::string::npos) << pooled.err;
  EXPECT_EQ(pooled.err.find("normalised differently"), std::string::npos) << pooled.err;
  EXPECT_GT(agreement(annotate("pooled.h5", "counts").first, counts), 0.9);
  // A model that learnt the logs as they were (--normalize none, as every model before session
  // 54 did by default) reads a query's logs as they are too: its own scale.
  const auto as_is = test::run_cli({"train", "-r", dir.file("ref_log2tpm.h5ad"), "-l", "obs:celltype", "--normalize", "none", "-o", dir.file("as_is.h5"), "-q"});
  ASSERT_EQ(as_is.exit_code, 0) << as_is.err;
  const auto [as_is_labels, as_is_said] = annotate("as_is.h5", "log2tpm");
  EXPECT_GT(agreement(as_is_labels, counts), 0.85);
  EXPECT_NE(as_is_said.find("used unchanged, as the model learnt its reference's values (normalisation none)"), std::string::npos) << as_is_said;

  // ERCC spike-ins are no genes: left out of the library sizes, the labels of the reads alone.
  const auto [with_ercc, ercc_said] = annotate("counts.h5", "reads_ercc");
  EXPECT_EQ(with_ercc, annotate("counts.h5", "reads").first);
  EXPECT_NE(ercc_said.find("40 vars are no genes (spike-in RNAs (ERCC, SIRV) 40; e.g. ERCC-00001"), std::string::npos) << ercc_said;
  // Symbols joined before their Ensembl ids resolve by the ids (the few genes whose id the table
  // gives another gene, or none, aside: 0.617 accuracy when they stayed unresolved).
  const auto [joined, joined_said] = annotate("counts.h5", "tpm_joined_ids");
  EXPECT_GT(agreement(joined, annotate("counts.h5", "tpm").first), 0.98);
  EXPECT_EQ(joined_said.find("refitted"), std::string::npos) << joined_said;
}

TEST(PlateBased, LogsWithAFloorPerCellAreReadWithTheFloorAsZero) {
  CELLTYPER_REQUIRE_SHARED(pbmc, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  // edgeR's cpm(y, log = TRUE, prior.count = 2): log2((count + prior) / library x 10^6), the prior
  // scaled to each cell's library, dense; of 10x cells (floor about 9.7) and of the same cells
  // as libraries of millions of reads (a negative floor); log2(TPM + 0.01); Seurat's scaled data.
  const std::string make = fmt::format(R"(
import anndata, numpy as np, pandas as pd, scipy.sparse as sp
a = anndata.read_h5ad('{0}')
a = anndata.AnnData(sp.csr_matrix(a.X, dtype=np.float32), obs=a.obs[['celltype']].copy(), var=pd.DataFrame(index=a.var_names))
ref, q = a[::2].copy(), a[1:1200:2].copy()
ref.write_h5ad('{1}/ref.h5ad'); q.write_h5ad('{1}/counts.h5ad')
def log_cpm(X, prior=2.0):
    lib = X.sum(1)
    p = lib / lib.mean() * prior
    return np.log2((X + p[:, None]) / (lib + 2 * p)[:, None]) + np.log2(1e6)
def write(X, like, name):
    anndata.AnnData(X.astype(np.float32), obs=like.obs.copy(), var=like.var.copy()).write_h5ad('{1}/' + name + '.h5ad')
C = q.X.toarray().astype(np.float64)
write(log_cpm(C), q, 'logcpm'); write(log_cpm(C * 1000), q, 'logcpm_deep')
write(np.log2(C / C.sum(1, keepdims=True) * 1e6 + 0.01), q, 'log2tpm_pseudo')
z = np.log1p(C / C.sum(1, keepdims=True) * 1e4); z = (z - z.mean(0)) / (z.std(0) + 1e-9)
write(z, q, 'scaled')
write(log_cpm(ref.X.toarray().astype(np.float64)), ref, 'ref_logcpm')
b = anndata.read_h5ad('{1}/logcpm.h5ad'); b.layers['is_expressed'] = C > 0; b.write_h5ad('{1}/logcpm_bool_layer.h5ad')
)",
                                       pbmc, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto trained = test::run_cli({"train", "-r", dir.file("ref.h5ad"), "-l", "obs:celltype", "-o", dir.file("counts.h5"), "-q"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto annotate = [&](const std::string& model, const std::string& name) { return annotate_in(dir, model, name); };
  const std::vector<std::string> counts = annotate("counts.h5", "counts").first;
  ASSERT_FALSE(counts.empty());
  // The floor read as expression of every gene gave 0.15 accuracy at 10x depth with no warning,
  // and the deep cells' negative floor stopped as scaled data: the counts' labels now.
  for (const std::string name : {"logcpm", "logcpm_deep", "log2tpm_pseudo"}) {
    const auto [labels, said] = annotate("counts.h5", name);
    EXPECT_GT(agreement(labels, counts), 0.97) << name;
    EXPECT_NE(said.find("X (200 of the 200 cells scanned: smallest value "), std::string::npos) << name << ": " << said;
    EXPECT_NE(said.find("holds logs with a floor per cell, every gene without a count at the cell's smallest value, not at 0 (edgeR's "
                        "cpm(log = TRUE), or log(x + a pseudocount other than 1)): each cell's floor is read as 0"),
              std::string::npos)
        << said;
  }
  // A matrix named explicitly says so too; an unreadable layer beside it (booleans) stops nothing.
  const auto named = test::run_cli({"annotate", "-m", dir.file("counts.h5"), "-i", dir.file("logcpm_bool_layer.h5ad"), "--layer", "X", "--csv",
                                    dir.file("named.csv")});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_NE(named.err.find("holds logs with a floor per cell"), std::string::npos) << named.err;
  EXPECT_GT(agreement(csv_labels(dir.file("named.csv")), counts), 0.97);
  // A reference of log CPM trains the model its counts train (0.58 accuracy on counts before).
  const auto from_logs = test::run_cli({"train", "-r", dir.file("ref_logcpm.h5ad"), "-l", "obs:celltype", "-o", dir.file("logcpm.h5"), "-q"});
  ASSERT_EQ(from_logs.exit_code, 0) << from_logs.err;
  EXPECT_GT(agreement(annotate("logcpm.h5", "counts").first, counts), 0.97);
  // Centred data hold no floor: still refused.
  const auto scaled = test::run_cli({"annotate", "-m", dir.file("counts.h5"), "-i", dir.file("scaled.h5ad"), "--csv", dir.file("s.csv")});
  EXPECT_EQ(scaled.exit_code, 2) << scaled.err;
  EXPECT_NE(scaled.err.find("centred/scaled data, not counts"), std::string::npos) << scaled.err;
  EXPECT_EQ(scaled.err.find("floor"), std::string::npos) << scaled.err;
  const auto plain = test::run_cli({"inspect", dir.file("counts.h5ad")});
  EXPECT_EQ(plain.out.find("floor"), std::string::npos) << plain.out;
}

}  // namespace
}  // namespace celltyper
