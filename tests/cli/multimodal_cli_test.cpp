// End-to-end tests of CITE-seq and multiome files: antibody tags and ATAC peaks beside the genes,
// with Cell Ranger's feature types, other spellings of them, none, or none for a joined matrix.
// pbmc3k's real counts are the genes; the tags' counts are made from the counts of their genes
// (the generator is inline below), the peaks' from their nearest gene's.
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace celltyper {
namespace {

using test::csv_labels;

TEST(Multimodal, AntibodyTagsAndPeaksBesideTheGenesLeaveTheLabelsAsTheGenesAlone) {
  CELLTYPER_REQUIRE_SHARED(pbmc, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata, h5py"}).exit_code != 0) GTEST_SKIP() << "no anndata / h5py";
  test::TempDir dir;
  const std::string make = fmt::format(R"(
import anndata, h5py, numpy as np, pandas as pd, scipy.sparse as sp
a = anndata.read_h5ad('{0}')
a = anndata.AnnData(sp.csr_matrix(a.X), obs=a.obs[['celltype']].copy(), var=pd.DataFrame(index=a.var_names))
a.var['gene_ids'] = [f'ENSG{{i:011d}}' for i in range(a.n_vars)]
ref, q = a[::2].copy(), a[1::2].copy()
ref.write_h5ad('{1}/ref.h5ad'); q.write_h5ad('{1}/rna.h5ad')
rng = np.random.default_rng(0)
X = q.X.toarray()
tags = {{'CD3_TotalSeqB': ['CD3E', 'CD3D'], 'CD4': ['CD4'], 'CD8A': ['CD8A'], 'CD14': ['CD14'], 'CD16': ['FCGR3A'], 'CD56': ['NCAM1'],
        'CD19-TotalSeqC': ['CD19', 'MS4A1'], 'HLA-DR': ['HLA-DRA'], 'IgG1_isotype': []}}
adt = np.column_stack([rng.poisson(30 + 200 * sum(X[:, list(q.var_names).index(g)] for g in genes if g in q.var_names) if genes else
                                   np.full(q.n_obs, 30.0)) for genes in tags.values()]).astype(np.float32)
picked = rng.choice(q.n_vars, 2000)
peaks = rng.poisson(0.5 * X[:, picked]).astype(np.float32)
peak_names = [f'chr{{1 + i % 22}}:{{1000 * i + 10}}-{{1000 * i + 510}}' for i in range(len(picked))]
def joined(blocks, names, var):
    out = anndata.AnnData(sp.csr_matrix(np.hstack(blocks)), obs=q.obs.copy(), var=var)
    out.var_names = names
    return out
genes = list(q.var_names)
ids = list(q.var['gene_ids'])
n = len(tags)
cite = joined([X, adt], genes + list(tags), pd.DataFrame({{'gene_ids': ids + list(tags), 'feature_types': ['Gene Expression'] * q.n_vars + ['Antibody Capture'] * n}}))
cite.write_h5ad('{1}/cite.h5ad')
cite.var = cite.var[['gene_ids']]; cite.write_h5ad('{1}/cite_untyped.h5ad')
cite.var['feature_types'] = ['Gene Expression'] * q.n_vars + [np.nan] * n; cite.write_h5ad('{1}/cite_joined.h5ad')
cite.var['feature_types'] = ['Gene Expression'] * q.n_vars + ['Protein'] * n; cite.write_h5ad('{1}/cite_protein.h5ad')
multiome = joined([X, peaks], genes + peak_names, pd.DataFrame({{'gene_ids': ids + peak_names}}))
multiome.write_h5ad('{1}/multiome_untyped.h5ad')
protein = anndata.AnnData(sp.csr_matrix(adt), obs=q.obs.copy(), var=pd.DataFrame({{'feature_types': ['Antibody Capture'] * n}}, index=list(tags)))
protein.write_h5ad('{1}/protein.h5ad')
from anndata.experimental import write_elem
def mudata(path, modalities):  # (muon's layout: each modality an AnnData group under /mod; python3-mudata is not packaged)
    with h5py.File(path, 'w') as f:
        f.attrs['encoding-type'] = 'MuData'; f.attrs['encoding-version'] = '0.1.0'
        for name, modality in modalities.items(): write_elem(f, 'mod/' + name, modality)
        write_elem(f, 'obs', pd.DataFrame(index=q.obs_names))
mudata('{1}/cite.h5mu', {{'prot': protein, 'rna': q}})
rich = q.copy(); rich.layers['counts'] = rich.X.copy(); rich.obsm['X_umap'] = np.zeros((q.n_obs, 2), np.float32); rich.uns['note'] = 'kept'
mudata('{1}/rich.h5mu', {{'rna': rich, 'prot': protein}})
mudata('{1}/prot.h5mu', {{'prot': protein}})
# Labels kept only in the MuData object's own obs (muon's mdata.obs: every modality's cells, in
# its own order; 'rna:cluster' as muon pulls a modality's column up), the RNA's obs bare.
bare = anndata.AnnData(q.X, obs=pd.DataFrame(index=q.obs_names), var=q.var)
extra = anndata.AnnData(sp.csr_matrix(np.ones((3, n), np.float32)), obs=pd.DataFrame(index=['p1', 'p2', 'p3']), var=protein.var)
names = list(q.obs_names[::-1]) + ['p1', 'p2', 'p3']
label_of = dict(zip(q.obs_names, q.obs['celltype'].astype(str)))
own = pd.DataFrame({{'celltype': pd.Categorical([label_of.get(c, 'protein only') for c in names]),
                    'rna:cluster': pd.Categorical([label_of.get(c, 'x')[:2] for c in names]),
                    'prot:n_tags': np.arange(len(names))}}, index=names)
def mudata_with_obs(path, obs):
    with h5py.File(path, 'w') as f:
        f.attrs['encoding-type'] = 'MuData'; f.attrs['encoding-version'] = '0.1.0'
        write_elem(f, 'mod/rna', bare); write_elem(f, 'mod/prot', anndata.concat([protein, extra]))
        write_elem(f, 'obs', obs)
mudata_with_obs('{1}/global.h5mu', own)
twice = own.copy(); twice.index = names[:-1] + [names[0]]
mudata_with_obs('{1}/twice.h5mu', twice)
q[:, ['CD4', 'CD8A', 'CD14', 'FCGR3A', 'NCAM1', 'CD19', 'CD27', 'CD69', 'TIGIT', 'SELL', 'KLRB1', 'CD1C', 'CD38', 'CD86']].copy().write_h5ad('{1}/rna14.h5ad')
)",
                                       pbmc, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;

  const auto trained = test::run_cli({"train", "-r", dir.file("ref.h5ad"), "-l", "obs:celltype", "-o", dir.file("rna.h5"), "-q"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto plain = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("rna.h5ad"), "--csv", dir.file("rna.csv"), "-q"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const std::vector<std::string> expected = csv_labels(dir.file("rna.csv"));
  // (file, what annotate says of the other features)
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cite", "note: " + dir.file("cite.h5ad") + ": 9 vars are no genes (var 'feature_types': Antibody Capture 9; e.g. CD3_TotalSeqB, CD4"},
      {"cite_protein", "9 vars are no genes (var 'feature_types': Protein 9;"},
      {"cite_untyped", "warning: " + dir.file("cite_untyped.h5ad") + ": 9 vars are no genes (antibody-tag names 3, no Ensembl id in var 'gene_ids' 6;"},
      {"cite_joined", "9 vars are no genes (antibody-tag names 3, no 'feature_types' beside typed genes 6;"},
      {"multiome_untyped", "note: " + dir.file("multiome_untyped.h5ad") + ": 2000 vars are no genes (genome intervals (peaks) 2000;"},
  };
  for (const auto& [name, said] : cases) {
    const auto annotated =
        test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file(name + ".h5ad"), "--csv", dir.file(name + ".csv")});
    ASSERT_EQ(annotated.exit_code, 0) << name << ": " << annotated.err;
    EXPECT_NE(annotated.err.find(said), std::string::npos) << name << ": " << annotated.err;
    EXPECT_EQ(csv_labels(dir.file(name + ".csv")), expected) << name;  // (the tags' counts no longer swell the library sizes)
  }
  // A reference with untyped tags trains the model the genes alone train.
  const auto untyped_reference =
      test::run_cli({"train", "-r", dir.file("cite_untyped.h5ad"), "-l", "obs:celltype", "-o", dir.file("cite.h5"), "--validation-fraction", "0"});
  ASSERT_EQ(untyped_reference.exit_code, 0) << untyped_reference.err;
  EXPECT_NE(untyped_reference.err.find("9 vars are no genes (antibody-tag names 3"), std::string::npos) << untyped_reference.err;
  const auto inspected = test::run_cli({"inspect", dir.file("cite.h5ad")});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_NE(inspected.out.find("cells x 13723 vars (13714 genes, 9 other features)"), std::string::npos) << inspected.out;

  // No gene at all (the protein modality alone), a MuData file: one line saying so.
  const auto protein = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("protein.h5ad"), "--csv", dir.file("p.csv")});
  EXPECT_EQ(protein.exit_code, 2) << protein.err;
  EXPECT_NE(protein.err.find("no gene expression: every var (9) is a feature other than gene expression (var 'feature_types': Antibody Capture 9"),
            std::string::npos)
      << protein.err;
  const auto no_rna = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("prot.h5mu"), "--csv", dir.file("m.csv")});
  EXPECT_EQ(no_rna.exit_code, 2) << no_rna.err;
  EXPECT_NE(no_rna.err.find("a MuData file (.h5mu; modalities prot) without a gene-expression modality (celltyper reads the one named rna, gex "
                            "or mrna); write the one with gene counts out (Python: mudata.read_h5mu('" + dir.file("prot.h5mu") + "')['NAME']"),
            std::string::npos)
      << no_rna.err;

  // A MuData file is read as its gene-expression modality: the labels of the plain RNA, kept in a
  // copy of the .h5mu (mod/rna/obs, by default INPUT.celltyper.h5mu), or a new .h5ad of the
  // modality (--out NAME.h5ad); evaluate and train read it too.
  const auto mudata = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("cite.h5mu")});
  ASSERT_EQ(mudata.exit_code, 0) << mudata.err;
  const std::string note = "note: " + dir.file("cite.h5mu") + ": a MuData file: read its gene-expression modality 'rna' (modalities prot, rna)";
  const std::size_t said = mudata.err.find(note);
  EXPECT_NE(said, std::string::npos) << mudata.err;
  EXPECT_EQ(mudata.err.find("a MuData file", said + note.size()), std::string::npos) << mudata.err;  // (once)
  const auto as_h5ad = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("cite.h5mu"), "-o", dir.file("cite_rna.h5ad"), "-q"});
  ASSERT_EQ(as_h5ad.exit_code, 0) << as_h5ad.err;
  // --out NAME.h5ad copies the modality alone, its layers, obsm and uns with it; embed likewise.
  const auto rich = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("rich.h5mu"), "-o", dir.file("rich_rna.h5ad"), "-q"});
  ASSERT_EQ(rich.exit_code, 0) << rich.err;
  const auto embedded = test::run_cli({"embed", "-i", dir.file("rich.h5mu"), "-o", dir.file("rich_embedded.h5ad"), "-q"});
  ASSERT_EQ(embedded.exit_code, 0) << embedded.err;
  const std::string check = fmt::format(R"(
import anndata, h5py
expected = open('{0}/rna.csv').read().splitlines()[1:]
expected = [line.split(',')[1] for line in expected]
with h5py.File('{0}/cite.celltyper.h5mu') as f:
    obs = f['mod/rna/obs']
    labels = [obs['celltyper_label/categories'][c].decode() for c in obs['celltyper_label/codes'][:]]
    assert labels == expected, 'h5mu copy'
    assert 'celltyper_annotation' in f['mod/rna/uns'] and 'celltyper_label' not in f['obs'] and 'prot' in f['mod']
a = anndata.read_h5ad('{0}/cite_rna.h5ad')
assert list(a.obs['celltyper_label'].astype(str)) == expected and a.n_vars == 13714, 'h5ad of the modality'
r = anndata.read_h5ad('{0}/rich_rna.h5ad')
assert list(r.obs['celltyper_label'].astype(str)) == expected and 'counts' in r.layers and 'X_umap' in r.obsm and r.uns['note'] == 'kept', 'rich'
e = anndata.read_h5ad('{0}/rich_embedded.h5ad')
assert 'X_celltyper' in e.obsm and 'counts' in e.layers, 'embed'
print('ok')
)",
                                        dir.path().string());
  const auto checked = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
  const auto evaluated = test::run_cli({"evaluate", "-i", dir.file("cite.celltyper.h5mu"), "--truth", "obs:celltype", "--json", "-"});
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  EXPECT_NE(evaluated.out.find("\"accuracy\""), std::string::npos) << evaluated.out;
  const auto h5mu_out = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("rna.h5ad"), "-o", dir.file("x.h5mu")});
  EXPECT_EQ(h5mu_out.exit_code, 2) << h5mu_out.err;
  EXPECT_NE(h5mu_out.err.find("a MuData file is written for a MuData input only"), std::string::npos) << h5mu_out.err;
  const auto mudata_reference =
      test::run_cli({"train", "-r", dir.file("cite.h5mu"), "-l", "obs:celltype", "-o", dir.file("mu.h5"), "--validation-fraction", "0", "-q"});
  EXPECT_EQ(mudata_reference.exit_code, 0) << mudata_reference.err;
  EXPECT_EQ(mudata_reference.err.find("MuData"), std::string::npos) << mudata_reference.err;
  const auto inspected_mudata = test::run_cli({"inspect", dir.file("cite.h5mu")});
  ASSERT_EQ(inspected_mudata.exit_code, 0) << inspected_mudata.err;
  EXPECT_NE(inspected_mudata.out.find("cite.h5mu  (MuData, modality 'rna' read"), std::string::npos) << inspected_mudata.out;  // (-q: a note, not said)

  // Labels kept only in the file's own /obs (as NAME, or as muon's rna:NAME) are read for the
  // modality's cells, matched by name: a reference's labels, --over-clustering, evaluate's truth,
  // inspect, and the obs of an extracted modality.
  const auto global_reference =
      test::run_cli({"train", "-r", dir.file("global.h5mu"), "-l", "obs:celltype", "-o", dir.file("global.h5"), "--validation-fraction", "0", "-q"});
  ASSERT_EQ(global_reference.exit_code, 0) << global_reference.err;
  const auto global_query = test::run_cli({"annotate", "-m", dir.file("global.h5"), "-i", dir.file("global.h5mu"), "--over-clustering", "obs:cluster",
                                           "-o", dir.file("global_rna.h5ad"), "-q"});
  ASSERT_EQ(global_query.exit_code, 0) << global_query.err;
  const auto global_copy = test::run_cli({"annotate", "-m", dir.file("global.h5"), "-i", dir.file("global.h5mu"), "-q"});
  ASSERT_EQ(global_copy.exit_code, 0) << global_copy.err;
  const std::string global_check = fmt::format(R"(
import anndata
q = anndata.read_h5ad('{0}/rna.h5ad')
a = anndata.read_h5ad('{0}/global_rna.h5ad')
assert list(a.obs_names) == list(q.obs_names), 'cells'
assert list(a.obs['celltype'].astype(str)) == list(q.obs['celltype'].astype(str)), 'labels matched by name'
assert list(a.obs['cluster'].astype(str)) == [c[:2] for c in q.obs['celltype'].astype(str)], 'rna:cluster'
assert 'n_tags' not in a.obs and 'prot:n_tags' not in a.obs, 'another modality'
agree = (a.obs['celltyper_label'].astype(str) == a.obs['celltype'].astype(str)).mean()
assert agree > 0.8, agree
print('ok')
)",
                                               dir.path().string());
  const auto global_checked = test::run_program({test::system_python(), "-c", global_check});
  EXPECT_EQ(global_checked.exit_code, 0) << global_checked.err;
  for (const std::string& annotated : {dir.file("global.celltyper.h5mu"), dir.file("global_rna.h5ad")}) {
    const auto scored = test::run_cli({"evaluate", "-i", annotated, "--truth", "obs:celltype", "--json", "-"});
    ASSERT_EQ(scored.exit_code, 0) << annotated << ": " << scored.err;
    EXPECT_NE(scored.out.find("\"accuracy\""), std::string::npos) << scored.out;
  }
  const auto global_inspected = test::run_cli({"inspect", dir.file("global.h5mu")});
  ASSERT_EQ(global_inspected.exit_code, 0) << global_inspected.err;
  EXPECT_NE(global_inspected.out.find("(the file's own /obs, 'rna:cluster')"), std::string::npos) << global_inspected.out;
  const auto twice = test::run_cli({"train", "-r", dir.file("twice.h5mu"), "-l", "obs:celltype", "-o", dir.file("twice.h5"), "-q"});
  EXPECT_EQ(twice.exit_code, 2) << twice.err;
  EXPECT_NE(twice.err.find("twice.h5mu: the file's own /obs names the cell '" ), std::string::npos) << twice.err;
  EXPECT_NE(twice.err.find("' twice, so its celltype cannot be matched to the cells of modality 'rna'"), std::string::npos) << twice.err;
  // (columns not asked for: the modality's obs alone)
  const auto twice_extracted = test::run_cli({"annotate", "-m", dir.file("global.h5"), "-i", dir.file("twice.h5mu"), "-o", dir.file("twice_rna.h5ad"), "-q"});
  EXPECT_EQ(twice_extracted.exit_code, 0) << twice_extracted.err;
  const auto twice_inspected = test::run_cli({"inspect", dir.file("twice.h5mu")});
  EXPECT_EQ(twice_inspected.exit_code, 0) << twice_inspected.err;
  EXPECT_NE(twice_inspected.out.find("(the MuData file's own /obs is not read: "), std::string::npos) << twice_inspected.out;
  const auto missing = test::run_cli({"train", "-r", dir.file("global.h5mu"), "-l", "obs:cell_type_x", "-o", dir.file("x.h5"), "-q"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("no column 'cell_type_x' (available: celltype, cluster)"), std::string::npos) << missing.err;

  // A query of 14 marker genes, annotated anyway (--allow-low-coverage): the refit trains a class
  // whose other sample cells have no count in them on its one cell (it stopped with "class
  // 'Platelet' has a single cell").
  const auto few = test::run_cli({"annotate", "-m", dir.file("rna.h5"), "-i", dir.file("rna14.h5ad"), "--csv", dir.file("few.csv"), "--allow-low-coverage", "-q"});
  EXPECT_EQ(few.exit_code, 0) << few.err;
}

}  // namespace
}  // namespace celltyper
