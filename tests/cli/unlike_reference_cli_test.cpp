// End-to-end tests of annotate's similarity check on real data with default settings: cells of
// types the reference lacks (lung cancer lines under a PBMC model; B cells under a model trained
// without them) are flagged and, when many, warned about; a query of the reference's own types
// is not.
#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

namespace celltyper {
namespace {

TEST(UnlikeReference, CellLinesUnderAPbmcModelAreFlaggedAndPbmcCellsAreNot) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(cell_lines, "cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad");
  CELLTYPER_REQUIRE_SHARED(pbmc, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const auto train = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;

  // Lung cancer lines: every cell gets a PBMC label, and nearly all of them are flagged.
  const auto lines = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", cell_lines, "-o", dir.file("lines.h5ad"), "--json"});
  ASSERT_EQ(lines.exit_code, 0) << lines.err;
  EXPECT_NE(lines.err.find("resemble none of the reference's cell types"), std::string::npos) << lines.err;
  EXPECT_NE(lines.err.find("resemblance: "), std::string::npos) << lines.err;
  const auto summary = nlohmann::json::parse(lines.out);
  const auto judged = summary["n_similarity_judged"].get<std::int64_t>();
  const auto unlike = summary["n_unlike_reference"].get<std::int64_t>();
  std::printf("cell lines: %lld of %lld judged cells unlike every type\n", static_cast<long long>(unlike), static_cast<long long>(judged));
  EXPECT_GE(judged, 450);  // of 499 deep cells
  EXPECT_GE(unlike, judged * 9 / 10);

  // PBMCs of another study (its 765 genes: the model is refitted, its profiles too): no overall
  // warning; the one label all of whose few cells are unlike is named: its 2 cells are CD34+
  // progenitors (a type pbmc3k lacks) called Platelet.
  const auto same = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", pbmc, "-o", dir.file("pbmc.h5ad"), "--json"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(same.err.find("cells deep enough to judge"), std::string::npos) << same.err;
  EXPECT_NE(same.err.find("warning: cells labelled 'Platelet' 2 of 2 (100%; its profile rests on 14 reference cells) resemble none of the "
                          "reference's cell types"),
            std::string::npos)
      << same.err;
  const auto progenitors = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata\na = anndata.read_h5ad('{}')\nassert set(a.obs['bulk_labels'][a.obs['celltyper_label'] == 'Platelet']) == "
                   "{{'CD34+'}}\n",
                   dir.file("pbmc.h5ad"))});
  EXPECT_EQ(progenitors.exit_code, 0) << progenitors.err;
  // (17% of the reference's expression: the refit's warning says the check misses more on fewer genes)
  EXPECT_NE(same.err.find("shared genes from the model's reference sample (2638 cells, "), std::string::npos) << same.err;
  EXPECT_NE(same.err.find("s); on fewer genes the check for cells unlike the reference's types (celltyper_unlike_reference, --unassign-unlike) "
                          "misses more of them"),
            std::string::npos)
      << same.err;
  const auto quiet = nlohmann::json::parse(same.out);
  std::printf("pbmc68k_reduced: %lld of %lld judged cells unlike every type\n", quiet["n_unlike_reference"].get<long long>(),
              quiet["n_similarity_judged"].get<long long>());
  EXPECT_GE(quiet["n_similarity_judged"].get<std::int64_t>(), 600);
  EXPECT_LE(quiet["n_unlike_reference"].get<std::int64_t>(), quiet["n_similarity_judged"].get<std::int64_t>() / 20);
  // evaluate's types the reference lacks, through the ontology: pbmc3k's model has no class at,
  // above or below regulatory T cell (a sibling of its CD4 classes) nor hematopoietic precursor
  // cell; CD19+ B is its B class, Dendritic its DC (the same terms).
  const auto scored = test::run_cli({"evaluate", "-i", dir.file("pbmc.h5ad"), "--truth", "obs:bulk_labels", "--label-map",
                                     test::shared_data("label_map_to_cell_ontology.tsv"), "--label-dataset", "pbmc68k_reduced", "--json", "-"});
  ASSERT_EQ(scored.exit_code, 0) << scored.err;
  const auto unseen = nlohmann::json::parse(scored.out)["unseen_types"];
  std::set<std::string> lacking;
  for (const auto& label : unseen["labels"]) lacking.insert(label["label"].get<std::string>());
  EXPECT_EQ(lacking, (std::set<std::string>{"CD34+", "CD4+/CD25 T Reg"})) << unseen.dump();
  EXPECT_EQ(unseen["n_cells"].get<std::int64_t>() + unseen["n_other_cells"].get<std::int64_t>(), 700);
  // The flag was not given and the check flagged few of them: the warning says what it flagged.
  EXPECT_NE(scored.err.find("none Unassigned: "), std::string::npos) << scored.err;

  // The obs columns: a similarity in [-1, 1] per cell and a boolean flag.
  const std::string check = fmt::format(
      "import anndata, numpy as np\n"
      "a = anndata.read_h5ad('{0}')\n"
      "s = a.obs['celltyper_similarity'].values\n"
      "u = a.obs['celltyper_unlike_reference']\n"
      "assert u.dtype == bool, u.dtype\n"
      "assert np.all(np.isfinite(s)) and np.all((s >= -1) & (s <= 1)), s\n"
      "assert u.mean() > 0.85, u.mean()\n"
      "j = a.obs['celltyper_similarity_judged']\n"
      "assert j.dtype == bool and j.sum() == {1} and not u[~j.values].any(), (j.sum(), {1})\n",
      dir.file("lines.h5ad"), judged);
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err << run.out;
}

TEST(UnlikeReference, ATypeLeftOutOfTheReferenceIsFlaggedInTheQuery) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  // pbmc3k without its B cells
  const std::string subset = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}')\n"
      "a = a[a.obs['celltype'].astype(str) != 'B'].copy()\n"
      "anndata.AnnData(X=a.X, obs=a.obs[['celltype']], var=a.var[[]]).write_h5ad('{1}')\n",
      reference, dir.file("no_b.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", subset});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto train = test::run_cli({"train", "-r", dir.file("no_b.h5ad"), "-l", "obs:celltype", "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto annotate = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", query, "-o", dir.file("out.h5ad")});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  // The label most of them get holds as many real cells of its type (pbmc68k's dendritic cells):
  // under a quarter of it is unlike, yet many times the other labels' share, which is warned about.
  EXPECT_NE(annotate.err.find("warning: cells labelled '"), std::string::npos) << annotate.err;
  EXPECT_NE(annotate.err.find("of the other labels' cells)"), std::string::npos) << annotate.err;
  // pbmc68k_reduced's B cells (bulk label CD19+ B) get some other label, and most are flagged;
  // its other cells are not.
  const std::string check = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}')\n"
      "b = (a.obs['bulk_labels'].astype(str) == 'CD19+ B').values\n"
      "u = a.obs['celltyper_unlike_reference'].values\n"
      "print('B cells flagged %.3f of %d, others %.3f' % (u[b].mean(), b.sum(), u[~b].mean()))\n"
      "assert u[b].mean() >= 0.4, u[b].mean()\n"
      "assert u[~b].mean() <= 0.05, u[~b].mean()\n",
      dir.file("out.h5ad"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  std::printf("%s", run.out.c_str());
}

TEST(UnlikeReference, ALabelGivenMostlyToNewTypesIsNamed) {
  // Xin's pancreas types (alpha, beta, delta, gamma) -> Wang's 219 genes, whose ductal, stellate
  // and acinar cells Xin never had: 10% of the cells (no overall warning), but the label they
  // are given ("delta", 29% of it unlike) gets a warning of its own.
  CELLTYPER_REQUIRE_SHARED(pancreas, "pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string split = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}')\n"
      "xin = a.obs['study'].astype(str).str.startswith('Xin').values\n"
      "x = a[xin]\n"
      "anndata.AnnData(X=x.X, obs=x.obs[['celltype']], var=x.var[[]]).write_h5ad('{1}')\n"
      "w = a[~xin][:, a.var['in_wang_subset'].astype(bool).values]\n"
      "anndata.AnnData(X=w.X, obs=w.obs[['celltype']], var=w.var[[]]).write_h5ad('{2}')\n",
      pancreas, dir.file("xin.h5ad"), dir.file("wang.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", split});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto train = test::run_cli({"train", "-r", dir.file("xin.h5ad"), "-l", "obs:celltype", "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto annotate = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", dir.file("wang.h5ad"), "-o", dir.file("out.h5ad")});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  EXPECT_EQ(annotate.err.find("cells deep enough to judge"), std::string::npos) << annotate.err;  // not the overall warning
  EXPECT_NE(annotate.err.find("warning: cells labelled '"), std::string::npos) << annotate.err;
  const std::string check = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}')\n"
      "new = a.obs['celltype'].astype(str).isin(['ductal', 'stellate', 'acinar']).values\n"
      "u = a.obs['celltyper_unlike_reference'].values\n"
      "print('new types flagged %.3f of %d, Xin types %.3f' % (u[new].mean(), new.sum(), u[~new].mean()))\n"
      "assert u[new].mean() >= 0.3 and u[~new].mean() <= 0.03\n",
      dir.file("out.h5ad"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  std::printf("%s", run.out.c_str());
  // The other way, Wang's cells train (its 10 delta cells) and Xin's are annotated: the delta label's
  // warning says its profile rests on few cells (Xin's delta cells are known ones).
  const std::string whole_wang = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}')\n"
      "w = a[~a.obs['study'].astype(str).str.startswith('Xin').values]\n"
      "anndata.AnnData(X=w.X, obs=w.obs[['celltype']], var=w.var[[]]).write_h5ad('{1}')\n",
      pancreas, dir.file("wang_all.h5ad"));
  ASSERT_EQ(test::run_program({test::system_python(), "-c", whole_wang}).exit_code, 0);
  ASSERT_EQ(test::run_cli({"train", "-r", dir.file("wang_all.h5ad"), "-l", "obs:celltype", "-o", dir.file("wang.h5"), "-q"}).exit_code, 0);
  const auto xin = test::run_cli({"annotate", "-m", dir.file("wang.h5"), "-i", dir.file("xin.h5ad"), "--csv", dir.file("xin.csv")});
  ASSERT_EQ(xin.exit_code, 0) << xin.err;
  EXPECT_NE(xin.err.find("'delta' 12 of 47 (26%; its profile rests on 10 reference cells)"), std::string::npos) << xin.err;

  // PBMCs under the pancreas model detect few of its compared genes: most are not judged, which
  // a warning says and a column tells (their unlike flag is False for want of a verdict).
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const auto blood = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", pbmc3k, "-o", dir.file("pbmc.h5ad")});
  ASSERT_EQ(blood.exit_code, 0) << blood.err;
  EXPECT_NE(blood.err.find("warning: the check whether cells resemble the reference's types judged only "), std::string::npos) << blood.err;
  const std::string unjudged = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}')\n"
      "j = a.obs['celltyper_similarity_judged']\n"
      "u = a.obs['celltyper_unlike_reference'].values\n"
      "assert j.dtype == bool, j.dtype\n"
      "print('pbmc3k under a pancreas model: %.3f judged, %.3f of the judged unlike' % (j.mean(), u[j.values].mean()))\n"
      "assert j.mean() < 0.5 and not u[~j.values].any()\n",
      dir.file("pbmc.h5ad"));
  const auto blood_run = test::run_program({test::system_python(), "-c", unjudged});
  ASSERT_EQ(blood_run.exit_code, 0) << blood_run.err << blood_run.out;
  std::printf("%s", blood_run.out.c_str());
}

TEST(UnlikeReference, UnassignUnlikeLeavesTheFlaggedCellsUnassigned) {
  // --unassign-unlike (SingleR's pruned labels): lung cancer lines under a PBMC model, flagged
  // nearly all, are Unassigned; the other cells keep their labels; scores and probabilities stay;
  // a majority vote counts the flagged cells as Unassigned; --hierarchical leaves them so too.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(cell_lines, "cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const auto train = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto plain = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", cell_lines, "-o", dir.file("plain.h5ad"), "--json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_FALSE(nlohmann::json::parse(plain.out).contains("n_unassigned_unlike"));
  const auto pruned = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", cell_lines, "-o", dir.file("pruned.h5ad"), "--json",
                                     "--unassign-unlike", "--over-clustering", "obs:cell_line"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  const auto summary = nlohmann::json::parse(pruned.out);
  const auto unassigned = summary["n_unassigned_unlike"].get<std::int64_t>();
  EXPECT_EQ(unassigned, summary["n_unlike_reference"].get<std::int64_t>());  // (no flagged cell was Unassigned before)
  EXPECT_GE(unassigned, 450);
  EXPECT_EQ(summary["label_counts"]["Unassigned"].get<std::int64_t>(), unassigned);
  EXPECT_NE(pruned.err.find("--unassign-unlike left them Unassigned (their labels would have been 'DC' "), std::string::npos) << pruned.err;
  const auto hierarchical = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", cell_lines, "-o", dir.file("hier.h5ad"),
                                           "--unassign-unlike", "--hierarchical"});
  ASSERT_EQ(hierarchical.exit_code, 0) << hierarchical.err;
  EXPECT_NE(hierarchical.err.find(fmt::format("; {} left Unassigned by --unassign-unlike", unassigned)), std::string::npos) << hierarchical.err;
  const std::string check = fmt::format(
      "import anndata, numpy as np\n"
      "a = anndata.read_h5ad('{0}')\n"
      "b = anndata.read_h5ad('{1}')\n"
      "h = anndata.read_h5ad('{2}')\n"
      "u = a.obs['celltyper_unlike_reference'].values.astype(bool)\n"
      "assert (b.obs['celltyper_unlike_reference'].values == u).all()\n"
      "la, lb = a.obs['celltyper_label'].astype(str).values, b.obs['celltyper_label'].astype(str).values\n"
      "assert (lb[u] == 'Unassigned').all() and (lb[~u] == la[~u]).all() and u.sum() == {3}, (u.sum(), {3})\n"
      "assert (la[u] != 'Unassigned').all()\n"
      "assert np.array_equal(a.obs['celltyper_score'].values, b.obs['celltyper_score'].values)\n"
      "assert np.array_equal(a.obsm['celltyper_probabilities'], b.obsm['celltyper_probabilities'])\n"
      "assert b.obs['celltyper_ontology_id'][u].isna().all() and not b.obs['celltyper_ontology_id'][~u].isna().any()\n"
      "vote = b.obs['celltyper_majority_vote'].astype(str)\n"
      "for line, cells in b.obs.groupby('cell_line', observed=True).groups.items():\n"
      "    assert (vote[cells] == 'Unassigned').all(), (line, vote[cells].value_counts())\n"
      "hl, hf = h.obs['celltyper_label'].astype(str).values, h.obs['celltyper_flat_label'].astype(str).values\n"
      "assert (h.obs['celltyper_unlike_reference'].values == u).all()\n"
      "assert (hl[u] == 'Unassigned').all() and (hf[u] == 'Unassigned').all() and h.obs['celltyper_ontology_id'][u].isna().all()\n"
      "assert (hl[~u] != 'Unassigned').all() and (hf[~u] == la[~u]).all()\n",
      dir.file("plain.h5ad"), dir.file("pruned.h5ad"), dir.file("hier.h5ad"), unassigned);
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err << run.out;

  // evaluate: the cell lines are types the PBMC model has no class for; Unassigned is right for them.
  const auto scored = test::run_cli({"evaluate", "-i", dir.file("pruned.h5ad"), "--truth", "obs:cell_line", "--json", dir.file("pruned.json"),
                                     "--report", dir.file("pruned.html")});
  ASSERT_EQ(scored.exit_code, 0) << scored.err;
  const auto unseen = nlohmann::json::parse(test::read_file(dir.file("pruned.json")))["unseen_types"];
  ASSERT_TRUE(unseen.is_object()) << unseen.dump();
  EXPECT_EQ(unseen["n_model_classes"], 9);
  EXPECT_EQ(unseen["labels"].size(), 3u) << unseen.dump();
  EXPECT_EQ(unseen["n_cells"].get<std::int64_t>(), summary["n_cells"].get<std::int64_t>());
  EXPECT_EQ(unseen["n_unassigned"].get<std::int64_t>(), unassigned);
  EXPECT_EQ(unseen["n_other_cells"], 0);
  EXPECT_TRUE(unseen["other_unassigned_share"].is_null());
  EXPECT_DOUBLE_EQ(unseen["precision"].get<double>(), 1.0);
  std::int64_t by_label = 0;
  for (const auto& label : unseen["labels"]) {
    EXPECT_TRUE(label["cl_id"].is_null()) << label.dump();
    by_label += label["n_unassigned"].get<std::int64_t>();
  }
  EXPECT_EQ(by_label, unassigned);
  EXPECT_NE(scored.out.find("== types the reference lacks ==\n3 truth labels of "), std::string::npos) << scored.out;
  const std::string html = test::read_file(dir.file("pruned.html"));
  EXPECT_NE(html.find("<section id=\"unseen-types\">"), std::string::npos);
  EXPECT_NE(html.find("<td>H2228</td>"), std::string::npos);
  // Without the flag none is Unassigned: a warning points to it.
  const auto named = test::run_cli({"evaluate", "-i", dir.file("plain.h5ad"), "--truth", "obs:cell_line", "--json", "-"});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  const auto named_json = nlohmann::json::parse(named.out);
  EXPECT_EQ(named_json["unseen_types"]["n_unassigned"], 0);
  EXPECT_TRUE(named_json["unseen_types"]["precision"].is_null());
  EXPECT_NE(named.err.find("are all named one of its classes, none Unassigned: `celltyper annotate --unassign-unlike`"), std::string::npos)
      << named.err;
  // Truth labels that are the model's classes: no type it lacks.
  const auto own = test::run_cli({"evaluate", "-i", dir.file("plain.h5ad"), "--truth", "obs:celltyper_label", "--json", "-"});
  ASSERT_EQ(own.exit_code, 0) << own.err;
  const auto own_json = nlohmann::json::parse(own.out)["unseen_types"];
  EXPECT_TRUE(own_json["labels"].empty()) << own_json.dump();
  EXPECT_EQ(own_json["n_cells"], 0);
  EXPECT_TRUE(own_json["unassigned_share"].is_null());

  // A model without reference profiles cannot tell: a warning, no cell left Unassigned for it.
  const auto bare = test::run_cli({"train", "-r", cell_lines, "-l", "obs:cell_line", "-o", dir.file("bare.h5"), "--reference-sample", "0", "-q"});
  ASSERT_EQ(bare.exit_code, 0) << bare.err;
  const auto unchecked = test::run_cli({"annotate", "-m", dir.file("bare.h5"), "-i", cell_lines, "--csv", dir.file("bare.csv"), "--unassign-unlike"});
  ASSERT_EQ(unchecked.exit_code, 0) << unchecked.err;
  EXPECT_NE(unchecked.err.find("warning: --unassign-unlike: no model carries reference profiles"), std::string::npos) << unchecked.err;
  // Beside a model with profiles, the bare one judges nothing: the cell lines only it knows are
  // judged against the PBMC types alone, and the warning says so.
  const auto mixed = test::run_cli({"annotate", "-m", dir.file("bare.h5"), "-m", dir.file("model.h5"), "-i", cell_lines, "--csv",
                                    dir.file("mixed.csv"), "--unassign-unlike"});
  ASSERT_EQ(mixed.exit_code, 0) << mixed.err;
  EXPECT_NE(mixed.err.find("warning: model 1 keeps no reference profiles (trained with --reference-sample 0, or by a celltyper before they "
                           "were kept): the unlike-reference check judges cells against the other models' types only, so a cell of a "
                           "type only it knows may be flagged celltyper_unlike_reference and left Unassigned"),
            std::string::npos)
      << mixed.err;
  EXPECT_EQ(plain.err.find("keeps no reference profiles"), std::string::npos) << plain.err;
}

}  // namespace
}  // namespace celltyper
