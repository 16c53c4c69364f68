// End-to-end tests of `celltyper train` and `celltyper annotate`: pbmc3k (Seurat labels) ->
// pbmc68k_reduced with a seeded random-vector gene store, and bad input with exact messages.
#include <celltyper/annotate.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/model_file.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <random>
#include <set>

namespace celltyper {
namespace {

/// Cells of the .h5ad `path` written to other files with anndata: per output, a Python slice of
/// the cells (":0", "0::2") and the file.
void write_slices(const std::string& path, const std::vector<std::pair<std::string, std::string>>& slices) {
  std::string script = fmt::format("import anndata\na = anndata.read_h5ad('{}')\n", path);
  for (const auto& [cells, out] : slices) script += fmt::format("a[{}].copy().write_h5ad('{}')\n", cells, out);
  const auto made = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(made.exit_code, 0) << made.err;
}

TEST(TrainAnnotateCli, Pbmc3kToPbmc68k) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata, sklearn"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 64);
  const auto train = test::run_cli({"train", "--reference", reference, "--label", "obs:celltype", "--genes", store, "--features", "genept", "--gene-table", table,
                                    "--label-map", label_map, "--label-dataset", "pbmc3k-seurat-labels", "--out", dir.file("logreg.h5"),
                                    "--seed", "3", "--json"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto summary = nlohmann::json::parse(train.out);
  EXPECT_EQ(summary["n_cells"], 2638);
  EXPECT_EQ(summary["n_classes"], 9);
  EXPECT_EQ(summary["cl_ids"][0], "CL:0000236");  // "B"
  EXPECT_EQ(summary["provenance"]["hyperparameters"]["l2"], 0.01);
  EXPECT_EQ(summary["provenance"]["label_column"], "obs:celltype");
  const double validation_accuracy = summary["validation"]["accuracy"].get<double>();
  std::printf("pbmc3k validation (random 64-dim store, logreg): accuracy %.3f, macro-F1 %.3f, %d cells\n", validation_accuracy,
              summary["validation"]["macro"]["f1"].get<double>(), summary["validation"]["n_cells"].get<int>());
  EXPECT_GT(validation_accuracy, 0.5);  // 9 classes: chance is ~0.2
  const auto knn = test::run_cli({"train", "-r", reference, "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table, "--label-map", label_map,
                                  "--label-dataset", "pbmc3k-seurat-labels", "-o", dir.file("knn.h5"), "--classifier", "knn", "--k", "10",
                                  "--threads", "1", "-q"});
  ASSERT_EQ(knn.exit_code, 0) << knn.err;
  EXPECT_TRUE(knn.err.empty()) << knn.err;

  // Same seed, other thread count: identical predictions (model bytes differ only by the timestamp).
  const auto again = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-g", store, "--features", "genept", "--gene-table", table, "-o",
                                    dir.file("logreg2.h5"), "--seed", "3", "--threads", "1", "-q"});
  ASSERT_EQ(again.exit_code, 0) << again.err;

  const auto annotate = test::run_cli({"annotate", "--model", dir.file("logreg.h5"), "--input", query, "--layer", "counts", "--out",
                                       dir.file("out.h5ad"), "--top-k", "3", "--over-clustering", "obs:louvain", "--csv", dir.file("labels.csv"),
                                       "--gene-table", table});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  EXPECT_NE(annotate.out.find("label"), std::string::npos) << annotate.out;
  EXPECT_NE(annotate.err.find("confidence: median score 0."), std::string::npos) << annotate.err;  // how sure the calls are, on stderr
  // pbmc68k_reduced measures 765 genes: the GenePT-w model refits on the shared ones (session 32).
  EXPECT_NE(annotate.err.find("refitted on the 7"), std::string::npos) << annotate.err;
  // ... and annotating block by block (1M blocks, the smallest --memory-limit; one thread) gives the same probabilities.
  const auto annotate2 = test::run_cli({"annotate", "-m", dir.file("logreg2.h5"), "-i", query, "--layer", "counts", "-o", dir.file("out2.h5ad"),
                                        "--gene-table", table, "--memory-limit", "1M", "--threads", "1", "-q"});
  ASSERT_EQ(annotate2.exit_code, 0) << annotate2.err;
  // Two models averaged, and no gene table: the models' own gene lists resolve the query.
  const auto both = test::run_cli({"annotate", "-m", dir.file("logreg.h5"), "-m", dir.file("knn.h5"), "-i", query, "--layer", "counts", "-o",
                                   dir.file("both.h5ad"), "--json", "-q"});
  ASSERT_EQ(both.exit_code, 0) << both.err;
  const nlohmann::json both_summary = nlohmann::json::parse(both.out);
  EXPECT_EQ(both_summary["classes"].size(), 9u);
  // Annotating the annotated file again without --top-k or votes: the earlier top-k and vote
  // columns go (they would sit beside labels they no longer belong to); the input's own stay.
  const auto again_annotated = test::run_cli({"annotate", "-m", dir.file("logreg2.h5"), "-i", dir.file("out.h5ad"), "--layer", "counts", "-o",
                                              dir.file("again.h5ad"), "--gene-table", table, "-q"});
  ASSERT_EQ(again_annotated.exit_code, 0) << again_annotated.err;

  const std::string check = fmt::format(
      "import anndata, numpy as np, json, csv\n"
      "from sklearn.metrics import f1_score\n"
      "a = anndata.read_h5ad('{0}')\n"
      "for c in ['celltyper_label', 'celltyper_score', 'celltyper_ontology_id', 'celltyper_top1_label', 'celltyper_top3_score', 'celltyper_majority_vote']:\n"
      "    assert c in a.obs, c\n"
      "assert a.obs['celltyper_label'].dtype == 'category'\n"
      "p = a.obsm['celltyper_probabilities']; assert p.shape == (700, 9), p.shape\n"
      "assert np.allclose(p.sum(1), 1, atol=1e-4)\n"
      "names = list(a.uns['celltyper_probability_classes']); assert len(names) == 9\n"
      "best = np.array(names)[p.argmax(1)]\n"
      "assigned = a.obs['celltyper_label'].astype(str) != 'Unassigned'\n"
      "assert (best[assigned] == a.obs['celltyper_label'].astype(str)[assigned]).all()\n"
      "assert (a.obs['celltyper_score'][~assigned] < 0.5).all()\n"
      "assert np.allclose(a.obs['celltyper_score'], p.max(1), atol=1e-6)\n"
      "b = anndata.read_h5ad('{1}'); assert np.array_equal(b.obsm['celltyper_probabilities'], p)\n"
      "g = anndata.read_h5ad('{7}')\n"
      "assert [c for c in g.obs if c.startswith('celltyper_')] == [c for c in b.obs if c.startswith('celltyper_')], list(g.obs)\n"
      "assert [c for c in g.obs if not c.startswith('celltyper_')] == [c for c in a.obs if not c.startswith('celltyper_')], list(g.obs)\n"
      "assert (g.obs['celltyper_label'].astype(str).values == b.obs['celltyper_label'].astype(str).values).all()\n"
      "rows = list(csv.DictReader(open('{2}'))); assert len(rows) == 700 and rows[0]['obs_name'] == a.obs_names[0]\n"
      "c = anndata.read_h5ad('{3}'); assert c.obsm['celltyper_probabilities'].shape == (700, 9)\n"
      "score = c.obs['celltyper_score'].values\n"
      "assert int((score < 0.5).sum()) == {5}, ((score < 0.5).sum(), {5})\n"
      "assert abs(float(np.median(score)) - {6}) < 1e-6, (np.median(score), {6})\n"
      "m = {{}}\n"
      "for line in open('{4}').read().splitlines()[1:]:\n"
      "    f = line.split('\\t')\n"
      "    if f[0] == 'pbmc68k_reduced': m[f[1]] = f[2]\n"
      "truth = a.obs['bulk_labels'].astype(str).map(m).fillna('unmapped').values\n"
      "pred = a.obs['celltyper_top1_label'].astype(str)\n"
      "ids = dict(zip(names, list(a.uns['celltyper_probability_cl_ids'])))\n"
      "pred = np.array([ids.get(x, '') or x for x in pred])\n"
      "print('pbmc3k -> pbmc68k (CL ids, top-1): accuracy %.3f, macro-F1 %.3f' % ((truth == pred).mean(), f1_score(truth, pred, average='macro')))\n",
      dir.file("out.h5ad"), dir.file("out2.h5ad"), dir.file("labels.csv"), dir.file("both.h5ad"), label_map,
      both_summary["n_low_score"].get<std::int64_t>(), both_summary["median_score"].get<double>(), dir.file("again.h5ad"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::printf("%s", run.out.c_str());
}

// The obs columns an annotation writes, which annotating the file again replaces or drops: not
// every name starting "celltyper_" (a user's, or embed's celltyper_embedding_empty).
TEST(TrainAnnotateCli, AnAnnotationsOwnColumnsAreKnownByName) {
  for (const char* own : {"celltyper_label", "celltyper_score", "celltyper_ontology_id", "celltyper_ontology_name", "celltyper_gene_coverage", "celltyper_similarity",
                          "celltyper_unlike_reference", "celltyper_similarity_judged", "celltyper_majority_vote", "celltyper_flat_label",
                          "celltyper_top1_label", "celltyper_top0_score", "celltyper_top12_score"}) {
    EXPECT_TRUE(is_annotation_column(own)) << own;
  }
  for (const char* other : {"celltyper_note", "celltyper_top_label", "celltyper_top3_labels", "celltyper_topx_label", "celltyper_embedding_empty",
                            "celltyper_", "celltyper_label_2", "label", "my_celltyper_label", "celltyper_top3_label_old"}) {
    EXPECT_FALSE(is_annotation_column(other)) << other;
  }
}

TEST(TrainAnnotateCli, RestrictGenesTrainsOnTheQuerysGenesOnly) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  const std::string table_path = test::shared_data("gene-annotations/human_genes.tsv");
  const GeneTable table = load_gene_table(table_path);
  const std::vector<std::int64_t> query_genes = genes_of(query, table);
  ASSERT_GT(query_genes.size(), 700u);  // pbmc68k_reduced keeps 765 genes
  ASSERT_LE(query_genes.size(), 765u);
  const auto in_query = [&](std::int64_t id) { return std::binary_search(query_genes.begin(), query_genes.end(), id); };
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 16);

  // GenePT-w: the model carries only the query's genes; the reference's low coverage on them
  // (about 15% of its counts) is what was asked for, not an error.
  const auto genept = test::run_cli({"train", "-r", reference, "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table_path, "-o",
                                     dir.file("genept.h5"), "--restrict-genes", query, "--json", "-q"});
  ASSERT_EQ(genept.exit_code, 0) << genept.err;
  EXPECT_EQ(nlohmann::json::parse(genept.out)["provenance"]["restrict_genes"], query_genes.size());
  const CellTypeModel restricted = load_model(dir.file("genept.h5"));
  EXPECT_GT(restricted.genes.size(), 600);
  EXPECT_TRUE(std::all_of(restricted.genes.entrez_ids.begin(), restricted.genes.entrez_ids.end(), in_query));
  const auto annotate = test::run_cli({"annotate", "-m", dir.file("genept.h5"), "-i", query, "--layer", "counts", "-o", dir.file("a.h5ad"),
                                       "--gene-table", table_path, "-q"});
  EXPECT_EQ(annotate.exit_code, 0) << annotate.err;

  // Expression route from a gene list (symbols, a comment, a name that resolves to nothing).
  const DataFrame var = open_dataset(query)->read_var();
  std::ofstream list(dir.file("genes.txt"));
  list << "# the first 40 genes of pbmc68k_reduced\nNOT_A_GENE_NAME\n";
  std::vector<std::int64_t> listed;
  for (std::size_t i = 0; i < 40; ++i) list << var.index[i] << "\n";
  list.close();
  listed = genes_of(dir.file("genes.txt"), table);
  EXPECT_GE(listed.size(), 35u);
  // The expression route needs no gene store: the default one points at nothing here.
  const char* saved_store = std::getenv("CELLTYPER_GENE_STORE");
  const std::string saved = saved_store == nullptr ? "" : saved_store;
  ::setenv("CELLTYPER_GENE_STORE", dir.file("no_such_store.h5").c_str(), 1);
  const auto expression = test::run_cli({"train", "-r", reference, "-l", "celltype", "--features", "expression", "--gene-table", table_path,
                                         "-o", dir.file("expression.h5"), "--restrict-genes", dir.file("genes.txt"), "-q"});
  if (saved_store == nullptr) {
    ::unsetenv("CELLTYPER_GENE_STORE");
  } else {
    ::setenv("CELLTYPER_GENE_STORE", saved.c_str(), 1);
  }
  ASSERT_EQ(expression.exit_code, 0) << expression.err;
  const CellTypeModel panel_model = load_model(dir.file("expression.h5"));
  EXPECT_GT(panel_model.panel.size(), 10);
  for (const std::int64_t id : panel_model.panel.entrez_ids) {
    EXPECT_TRUE(std::binary_search(listed.begin(), listed.end(), id)) << "panel gene " << id << " is not in the list";
  }

  // Nothing resolves: one clear line.
  std::ofstream(dir.file("bogus.txt")) << "NOT_A_GENE_NAME\nALSO_NOT_ONE\n";
  const auto bogus = test::run_cli({"train", "-r", reference, "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table_path, "-o",
                                    dir.file("never.h5"), "--restrict-genes", dir.file("bogus.txt"), "-q"});
  EXPECT_EQ(bogus.exit_code, 2);
  EXPECT_NE(bogus.err.find("none of its 2 gene names resolves"), std::string::npos) << bogus.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("never.h5")));
}

TEST(TrainAnnotateCli, GroupValidationHoldsOutWholeGroups) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 8);
  const auto train = test::run_cli({"train", "-r", reference, "-l", "celltype", "--group", "obs:seurat_clusters", "-g", store, "--features", "genept", "--gene-table",
                                    table, "-o", dir.file("m.h5"), "--classifier", "knn", "--seed", "1", "--json", "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto validation = nlohmann::json::parse(train.out)["validation"];
  ASSERT_TRUE(validation.contains("held_out_groups")) << validation.dump();
  const std::string check = fmt::format(
      "import anndata, json\n"
      "obs = anndata.read_h5ad('{}', backed='r').obs\n"
      "held = json.loads('{}')\n"
      "n = int(obs['seurat_clusters'].astype(str).isin(held).sum())\n"
      "assert n == {}, (n, held)\n"
      "assert n >= 0.2 * obs.shape[0] and len(held) < obs['seurat_clusters'].nunique()\n",
      reference, validation["held_out_groups"].dump(), validation["n_cells"].get<int>());
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err;
}

TEST(TrainAnnotateCli, ReferencesLabelledInDifferentlyNamedColumnsPoolWithoutRewritingThem) {
  // pbmc3k labels obs 'celltype', pbmc68k_reduced 'bulk_labels': one --label names both, each
  // reference reading the first it has; the model is the one a copy renamed to one column trains.
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(pbmc68k, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const std::string renamed = dir.file("pbmc68k_celltype.h5ad");
  const auto made = test::run_program({test::system_python(), "-c",
                                       fmt::format("import anndata\na = anndata.read_h5ad('{}')\na.obs['celltype'] = a.obs.pop('bulk_labels')\n"
                                                   "a.obs['Cell type, level: 2'] = a.obs['celltype']\na.write_h5ad('{}')\n",
                                                   pbmc68k, renamed)});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::vector<std::string> common = {"--label-map", label_map, "--harmonize-labels", "--seed", "2", "--json", "-q"};
  auto train = [&](const std::string& second, const std::string& label, const std::string& out) {
    std::vector<std::string> args = {"train", "-r", pbmc3k + "," + second, "-l", label, "-o", dir.file(out)};
    args.insert(args.end(), common.begin(), common.end());
    return test::run_cli(args);
  };
  const auto one_column = train(pbmc68k, "obs:celltype", "one.h5");
  EXPECT_EQ(one_column.exit_code, 2);
  EXPECT_NE(one_column.err.find("obs of " + pbmc68k + ": no column 'celltype' (available: bulk_labels, "), std::string::npos) << one_column.err;
  EXPECT_NE(one_column.err.find("; references labelled in differently named columns: --label obs:celltype,obs:COLUMN, each reference reading "
                                "the first it has"),
            std::string::npos)
      << one_column.err;
  const auto both = train(pbmc68k, "obs:celltype,obs:bulk_labels", "both.h5");
  ASSERT_EQ(both.exit_code, 0) << both.err;
  const auto rewritten = train(renamed, "obs:celltype", "rewritten.h5");
  ASSERT_EQ(rewritten.exit_code, 0) << rewritten.err;
  const auto summary = nlohmann::json::parse(both.out);
  const auto expected = nlohmann::json::parse(rewritten.out);
  EXPECT_EQ(summary["provenance"]["label_column"], "obs:celltype,obs:bulk_labels");
  EXPECT_EQ(summary["provenance"]["references"][0]["label_column"], "obs:celltype");
  EXPECT_EQ(summary["provenance"]["references"][1]["label_column"], "obs:bulk_labels");
  EXPECT_EQ(expected["provenance"]["label_column"], "obs:celltype");
  EXPECT_EQ(summary["classes"], expected["classes"]);
  EXPECT_EQ(summary["n_cells"], 3338);
  EXPECT_EQ(summary["validation"]["accuracy"], expected["validation"]["accuracy"]);
  EXPECT_EQ(summary["validation"]["macro"], expected["validation"]["macro"]);
  const auto inspect = test::run_cli({"inspect", dir.file("both.h5")});
  EXPECT_NE(inspect.out.find("label obs:celltype,obs:bulk_labels"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find(pbmc68k + ": 700 of 700 cells used, labels obs:bulk_labels"), std::string::npos) << inspect.out;
  // A reference with none of them names each.
  const auto neither = train(pbmc68k, "obs:celltype,obs:cell_type", "neither.h5");
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_NE(neither.err.find(": no column 'celltype' nor 'cell_type' (available: bulk_labels, "), std::string::npos) << neither.err;
  // One column whose name holds a comma and a colon is one column.
  const auto odd_name = test::run_cli({"train", "-r", renamed, "-l", "obs:Cell type, level: 2", "-o", dir.file("odd_name.h5"), "-q"});
  EXPECT_EQ(odd_name.exit_code, 0) << odd_name.err;
  // A per-cell column of one reference is refused as it is alone (pooled, its values were diluted).
  const auto per_cell = train(pbmc68k, "obs:celltype,obs:n_genes", "per_cell.h5");
  EXPECT_EQ(per_cell.exit_code, 2);
  EXPECT_NE(per_cell.err.find(pbmc68k + ": obs:n_genes holds "), std::string::npos) << per_cell.err;
  EXPECT_NE(per_cell.err.find("per-cell values (a count, a score, a cell id), not cell types"), std::string::npos) << per_cell.err;
  // cv refuses a group column that a reference reads as its labels.
  const auto by_label = test::run_cli({"cv", "-r", pbmc68k, "-l", "obs:celltype,obs:louvain", "--group", "obs:louvain", "-q"});
  EXPECT_EQ(by_label.exit_code, 2);
  EXPECT_NE(by_label.err.find("the group column 'louvain' is the label column it reads"), std::string::npos) << by_label.err;
  // cv holds out whole references labelled so (#17's leave-one-dataset-out in one command).
  const auto cv = test::run_cli({"cv", "-r", pbmc3k + "," + pbmc68k, "-l", "obs:celltype,obs:bulk_labels", "--group", "file", "--label-map",
                                 label_map, "--harmonize-labels", "--json", dir.file("cv.json"), "-q"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  std::ifstream in(dir.file("cv.json"));
  const auto folds = nlohmann::json::parse(in)["folds"];
  ASSERT_EQ(folds.size(), 2U);
  EXPECT_EQ(folds[1]["group"], pbmc68k);
  EXPECT_EQ(folds[1]["n_test"], 700);
  EXPECT_GT(folds[1]["methods"]["logreg:expression"]["ontology"]["hierarchical_f1"].get<double>(), 0.85);
}

TEST(TrainAnnotateCli, TheAnnotatedFileRecordsTheRunAsJsonPrintsIt) {
  // A core facility annotating every run audits it later from the output alone: uns
  // ['celltyper_annotation'] holds the version, the models, the options, the counts and warnings.
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  write_slices(pbmc3k, {{"0::2", dir.file("even.h5ad")}, {"1::2", dir.file("odd.h5ad")}});
  ASSERT_EQ(test::run_cli({"train", "-r", dir.file("even.h5ad"), "-l", "celltype", "-o", dir.file("m.h5"), "-q"}).exit_code, 0);
  const auto run = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("odd.h5ad"), "-o", dir.file("out.h5ad"), "--min-score", "0.3",
                                  "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto printed = nlohmann::json::parse(run.out);
  const auto read = test::run_program({test::system_python(), "-c",
                                       fmt::format("import anndata\nprint(anndata.read_h5ad('{}').uns['celltyper_annotation'])", dir.file("out.h5ad"))});
  ASSERT_EQ(read.exit_code, 0) << read.err;
  auto record = nlohmann::json::parse(read.out);
  EXPECT_EQ(record["n_cells"], 1319);
  EXPECT_EQ(record["models"][0]["model"], dir.file("m.h5"));
  EXPECT_EQ(record["models"][0]["classifier"], "logreg");
  EXPECT_EQ(record["models"][0]["label_column"], "obs:celltype");
  EXPECT_EQ(record["models"][0]["references"][0], dir.file("even.h5ad"));
  EXPECT_FALSE(record["models"][0]["model_created_utc"].get<std::string>().empty());
  EXPECT_EQ(record["options"]["min_score"], 0.3);
  EXPECT_EQ(record["options"]["matrix"], "auto");
  std::int64_t counted = 0;
  for (const auto& [label, count] : record["label_counts"].items()) counted += count.get<std::int64_t>();
  EXPECT_EQ(counted, 1319);
  EXPECT_FALSE(record["celltyper_version"].get<std::string>().empty());
  // --json prints the same record, with the output's path
  EXPECT_EQ(printed["output"], dir.file("out.h5ad"));
  record["output"] = printed["output"];
  record["models"][0]["refit_seconds"] = printed["models"][0]["refit_seconds"];  // (the file keeps no timings)
  EXPECT_EQ(record, printed);
}

TEST(TrainAnnotateCli, CellxgeneLabelsBringTheirOntologyIds) {
  // A CELLxGENE-schema reference (obs cell_type holds CL names, cell_type_ontology_term_id their
  // ids) needs no --label-map: the classes get the data's CL ids, so --hierarchical and the
  // ontology metrics work on its model as they are.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, csv\n"
      "a = anndata.read_h5ad('{0}')[::3].copy()\n"
      "rows = [r for r in csv.DictReader(open('{1}'), delimiter='\\t') if r['dataset'] == 'pbmc3k-seurat-labels']\n"
      "ids = {{r['label']: r['cl_id'] for r in rows}}; names = {{r['label']: r['cl_label'] for r in rows}}\n"
      "label = a.obs['celltype'].astype(str)\n"
      "a.obs = a.obs.assign(cell_type=label.map(names).astype('category'), cell_type_ontology_term_id=label.map(ids).astype('category'))\n"
      "assert a.obs['cell_type_ontology_term_id'].notna().all()\n"
      "a.write_h5ad('{2}')\n"
      "b = anndata.read_h5ad('{0}')[::2].copy()\n"
      "label = b.obs['celltype'].astype(str)\n"
      "half = label.groupby(label).cumcount() % 2\n"
      "b.obs = b.obs.assign(cell_type=label.astype('category'), cell_type_ontology_term_id=label.map(ids).astype('category'),\n"
      "                     batch=('b' + half.astype(str)).astype('category'))\n"
      "b.write_h5ad('{3}')\n",
      reference, label_map, dir.file("cxg.h5ad"), dir.file("own.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto train = test::run_cli({"train", "-r", dir.file("cxg.h5ad"), "-l", "obs:cell_type", "-o", dir.file("m.h5"), "--json", "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto summary = nlohmann::json::parse(train.out);
  ASSERT_EQ(summary["cl_ids"].size(), 9u);
  for (const auto& id : summary["cl_ids"]) EXPECT_EQ(id.get<std::string>().rfind("CL:", 0), 0u) << summary["cl_ids"].dump();
  for (const auto& [label, source] : summary["provenance"]["label_cl_id_sources"].items()) EXPECT_EQ(source, "obs:cell_type_ontology_term_id") << label;
  EXPECT_EQ(summary["provenance"]["label_cl_id_sources"].size(), 9u);
  const auto annotate = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("cxg.h5ad"), "-o", dir.file("out.h5ad"), "--hierarchical", "-q"});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  const std::string check = fmt::format(
      "import anndata\n"
      "obs = anndata.read_h5ad('{0}', backed='r').obs\n"
      "assert obs['celltyper_ontology_id'].astype(str).str.startswith('CL:').all()\n"
      "same = (obs['celltyper_flat_label'].astype(str) == obs['cell_type'].astype(str)).mean()\n"
      "assert same > 0.8, same\n",
      dir.file("out.h5ad"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  // evaluate maps the truth labels through the same column.
  const auto evaluate = test::run_cli({"evaluate", "-i", dir.file("out.h5ad"), "--truth", "obs:cell_type", "--pred", "obs:celltyper_flat_label", "--json", "-"});
  ASSERT_EQ(evaluate.exit_code, 0) << evaluate.err;
  const auto metrics = nlohmann::json::parse(evaluate.out);
  ASSERT_EQ(metrics["label_mapping"]["truth"].size(), 9u);
  for (const auto& row : metrics["label_mapping"]["truth"]) EXPECT_EQ(row["match"], "data") << row.dump();
  EXPECT_GT(metrics["overall"]["ontology"]["hierarchical_f1"].get<double>(), 0.9);
  // The study's own label names ("Naive CD4 T", not CL names) with the id column: the ids come
  // from the column, in train and in cv.
  const auto own = test::run_cli({"train", "-r", dir.file("own.h5ad"), "-l", "obs:cell_type", "-o", dir.file("own.h5"), "--json", "-q"});
  ASSERT_EQ(own.exit_code, 0) << own.err;
  const auto own_summary = nlohmann::json::parse(own.out);
  auto own_ids = own_summary["cl_ids"].get<std::vector<std::string>>();
  auto cxg_ids = summary["cl_ids"].get<std::vector<std::string>>();
  std::sort(own_ids.begin(), own_ids.end());
  std::sort(cxg_ids.begin(), cxg_ids.end());
  EXPECT_EQ(own_ids, cxg_ids);
  for (const auto& [label, source] : own_summary["provenance"]["label_cl_id_sources"].items()) EXPECT_EQ(source, "obs:cell_type_ontology_term_id") << label;
  const auto cv = test::run_cli({"cv", "-r", dir.file("own.h5ad"), "-l", "obs:cell_type", "--group", "obs:batch", "--json", dir.file("cv.json"), "-q"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  const auto folds = nlohmann::json::parse(test::read_file(dir.file("cv.json")));
  EXPECT_EQ(folds["unmapped_labels"], nlohmann::json::array()) << folds["unmapped_labels"].dump();
  // --json -: the same JSON on standard output, instead of the table.
  const auto streamed = test::run_cli({"cv", "-r", dir.file("own.h5ad"), "-l", "obs:cell_type", "--group", "obs:batch", "--json", "-", "-q"});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  const auto streamed_folds = nlohmann::json::parse(streamed.out);
  EXPECT_EQ(streamed_folds["folds"].size(), folds["folds"].size());
  EXPECT_EQ(streamed_folds["pooled"], folds["pooled"]);
}

TEST(TrainAnnotateCli, CellxgeneLayoutReadsTheCountsInRaw) {
  // CELLxGENE files keep log-normalised values in X and the counts in raw/X: with no --layer,
  // train and annotate read raw/X (and say so), so the model is the one the counts give.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, numpy as np, scipy.sparse as sp\n"
      "a = anndata.read_h5ad('{0}')[::3].copy()\n"
      "a.X = sp.csr_matrix(a.X, dtype=np.float32)\n"
      "a.write_h5ad('{1}')\n"
      "a.raw = a.copy()\n"
      "x = sp.diags(1e4 / np.asarray(a.X.sum(axis=1)).ravel()) @ a.X\n"
      "x.data = np.log1p(x.data)\n"
      "a.X = sp.csr_matrix(x, dtype=np.float32)\n"
      "a.write_h5ad('{2}')\n",
      reference, dir.file("counts.h5ad"), dir.file("cxg.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string note = "X looks log-normalized and raw/X holds raw counts: raw/X read";
  const auto cxg = test::run_cli({"train", "-r", dir.file("cxg.h5ad"), "-l", "obs:celltype", "-o", dir.file("cxg.h5"), "--json"});
  ASSERT_EQ(cxg.exit_code, 0) << cxg.err;
  EXPECT_NE(cxg.err.find(note), std::string::npos) << cxg.err;
  const auto counts = test::run_cli({"train", "-r", dir.file("counts.h5ad"), "-l", "obs:celltype", "-o", dir.file("counts.h5"), "--json"});
  ASSERT_EQ(counts.exit_code, 0) << counts.err;
  EXPECT_EQ(counts.err.find("raw/X read"), std::string::npos) << counts.err;
  const auto cxg_summary = nlohmann::json::parse(cxg.out);
  const auto counts_summary = nlohmann::json::parse(counts.out);
  EXPECT_EQ(cxg_summary["validation"], counts_summary["validation"]);
  EXPECT_EQ(cxg_summary["provenance"]["references"][0]["matrix"], "raw/X") << cxg_summary["provenance"].dump();
  // annotate reads the query's counts too: the same labels as the counts file with the counts model.
  const auto annotated = test::run_cli({"annotate", "-m", dir.file("cxg.h5"), "-i", dir.file("cxg.h5ad"), "-o", dir.file("cxg_out.h5ad")});
  ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
  EXPECT_NE(annotated.err.find(note), std::string::npos) << annotated.err;
  ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file("counts.h5"), "-i", dir.file("counts.h5ad"), "-o", dir.file("counts_out.h5ad"), "-q"}).exit_code, 0);
  const std::string same = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}', backed='r').obs['celltyper_label'].astype(str)\n"
      "b = anndata.read_h5ad('{1}', backed='r').obs['celltyper_label'].astype(str)\n"
      "assert (a.values == b.values).all(), (a.values != b.values).sum()\n",
      dir.file("cxg_out.h5ad"), dir.file("counts_out.h5ad"));
  const auto compared = test::run_program({test::system_python(), "-c", same});
  EXPECT_EQ(compared.exit_code, 0) << compared.err;
  // --layer X still reads X, with no note: the counts read back from its log1p(CP10k) values
  // (the validation figures of the counts), or the values as they are with --normalize none.
  const auto as_x = test::run_cli({"train", "-r", dir.file("cxg.h5ad"), "-l", "obs:celltype", "--layer", "X", "-o", dir.file("x.h5"), "--json"});
  ASSERT_EQ(as_x.exit_code, 0) << as_x.err;
  EXPECT_EQ(as_x.err.find("raw/X read"), std::string::npos) << as_x.err;
  const auto as_x_reference = nlohmann::json::parse(as_x.out)["provenance"]["references"][0];
  EXPECT_EQ(as_x_reference["matrix"], "X");
  EXPECT_EQ(as_x_reference["normalization"], "log1p-cp10k") << as_x_reference.dump();
  EXPECT_EQ(as_x_reference["counts_recovered"], true) << as_x_reference.dump();
  EXPECT_GT(as_x_reference["n_thinned_copies"].get<std::int64_t>(), 0) << as_x_reference.dump();
  EXPECT_EQ(nlohmann::json::parse(as_x.out)["validation"], counts_summary["validation"]);
  const auto as_is = test::run_cli({"train", "-r", dir.file("cxg.h5ad"), "-l", "obs:celltype", "--layer", "X", "--normalize", "none", "-o",
                                    dir.file("none.h5"), "--json"});
  ASSERT_EQ(as_is.exit_code, 0) << as_is.err;
  EXPECT_EQ(nlohmann::json::parse(as_is.out)["provenance"]["references"][0]["normalization"], "none");
}

TEST(TrainAnnotateCli, OtherLayoutsOfTheSameCountsGiveTheSameLabels) {
  // The same cells as biologists' tools also write them: LZF-compressed (anndata's
  // compression="lzf"), CP10k not logged, log2(1 + CP10k), X an empty placeholder beside
  // layers/counts, R's make.names symbols (HLA.DRA), and scanpy's usual object (log1p(CP10k)
  // kept in raw, then X and its counts layer cut to 500 highly variable genes and X scaled), and
  // CITE-seq (20 antibody tags beside the genes, var['feature_types']; their counts are no
  // transcripts and stay out of library sizes), and log1p of the counts without normalize_total.
  // Each annotates as the counts do; NaN in X, or counts joined to log-normalised cells, is one
  // clear error.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, numpy as np, scipy.sparse as sp\n"
      "a = anndata.read_h5ad('{0}')[1::3].copy()\n"
      "a.X = sp.csr_matrix(a.X, dtype=np.float32)\n"
      "a.write_h5ad('{1}/counts.h5ad')\n"
      "a.write_h5ad('{1}/lzf.h5ad', compression='lzf')\n"
      "b = a.copy(); b.X = sp.csr_matrix(sp.diags(1e4 / np.asarray(a.X.sum(axis=1)).ravel()) @ a.X, dtype=np.float32)\n"
      "b.write_h5ad('{1}/cp10k.h5ad')\n"
      "b.X.data = np.log2(1 + b.X.data)\n"
      "b.write_h5ad('{1}/log2.h5ad')\n"
      "c = a.copy(); c.layers['counts'] = a.X.copy(); c.X = sp.csr_matrix(a.shape, dtype=np.float32)\n"
      "c.write_h5ad('{1}/empty_x.h5ad')\n"
      "d = a.copy(); d.var_names = [n.replace('-', '.') if '.' not in n else n for n in a.var_names]\n"
      "assert 'HLA.DRA' in d.var_names\n"
      "d.write_h5ad('{1}/make_names.h5ad')\n"
      "e = a.copy(); e.X.data[7] = np.nan\n"
      "e.write_h5ad('{1}/nan.h5ad')\n"
      "f = a.copy(); f.X = sp.csr_matrix(sp.diags(1e4 / np.asarray(a.X.sum(axis=1)).ravel()) @ a.X, dtype=np.float32)\n"
      "f.X.data = np.log1p(f.X.data); f.raw = f\n"
      "hvg = np.sort(np.argsort(-np.asarray(f.X.power(2).mean(axis=0)).ravel())[:500])\n"
      "g = f[:, hvg].copy(); g.layers['counts'] = a.X[:, hvg]\n"
      "x = g.X.toarray(); g.X = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)\n"
      "g.write_h5ad('{1}/hvg.h5ad')\n"
      "import pandas as pd\n"
      "tags = sp.csr_matrix(np.random.default_rng(0).poisson(300, size=(a.n_obs, 20)).astype(np.float32))\n"
      "names = list(a.var_names) + ['CD4_TotalSeqB'] + [f'ADT{{i}}' for i in range(19)]\n"
      "h = anndata.AnnData(X=sp.hstack([a.X, tags]).tocsr(), obs=a.obs, var=pd.DataFrame(index=names))\n"
      "h.var['feature_types'] = ['Gene Expression'] * a.n_vars + ['Antibody Capture'] * 20\n"
      "h.write_h5ad('{1}/cite_seq.h5ad')\n"
      "k = a.copy(); k.X.data = np.log1p(k.X.data)\n"
      "k.write_h5ad('{1}/log1p_counts.h5ad')\n"
      "rng = np.random.default_rng(1); profile = np.asarray(a.X.sum(axis=0)).ravel(); profile /= profile.sum()\n"
      "drops = sp.csr_matrix(rng.multinomial(10, profile, size=300).astype(np.float32))\n"
      "u = anndata.AnnData(X=sp.vstack([a.X, drops]).tocsr(), var=a.var)\n"
      "u.obs_names = list(a.obs_names) + [f'empty{{i}}' for i in range(300)]\n"
      "u.write_h5ad('{1}/unfiltered.h5ad')\n"
      "a.T.write_h5ad('{1}/transposed.h5ad')\n"
      "import os, scipy.io\n"
      "os.makedirs('{1}/mtx')\n"
      "scipy.io.mmwrite('{1}/mtx/matrix.mtx', sp.csr_matrix(a.X.astype(np.int64)).T.tocoo(), field='integer')\n"
      "open('{1}/mtx/genes.tsv', 'w').write(''.join(f'{{g}}\\t{{g}}\\n' for g in a.var_names))\n"
      "open('{1}/mtx/barcodes.tsv', 'w').write(''.join(f'{{b}}\\n' for b in a.obs_names))\n"
      "import h5py\n"
      "m = f.copy(); del m.raw; m.write_h5ad('{1}/raw_other_cells.h5ad')\n"
      "a[:439].copy().write_h5ad('{1}/half.h5ad')\n"
      "with h5py.File('{1}/raw_other_cells.h5ad', 'a') as out, h5py.File('{1}/half.h5ad', 'r') as half:\n"
      "    raw = out.create_group('raw'); half.copy('X', raw); half.copy('var', raw)\n"
      "    raw.attrs['encoding-type'] = 'raw'; raw.attrs['encoding-version'] = '0.1.0'\n"
      "import pandas as pd\n"
      "pd.DataFrame(a.X.T.toarray().astype(np.int64), index=a.var_names, columns=a.obs_names).to_csv('{1}/geo.tsv.gz', sep='\\t')\n"
      "a.obs[['celltype']].iloc[::-1].to_csv('{1}/meta.csv')\n"
      "j = a.copy(); j.X = sp.vstack([a.X[:600], f.X[600:]]).tocsr()\n"
      "j.write_h5ad('{1}/joined.h5ad')\n"
      "try:\n"
      "    import loompy\n"
      "except ImportError:\n"
      "    loompy = None\n"
      "try:\n"
      "    import zarr\n"
      "    a.write_zarr('{1}/anndata.zarr')\n"
      "    z = a.copy(); z.layers['counts'] = a.X.tocsc(); z.X = sp.csr_matrix(a.shape, dtype=np.float32); z.write_zarr('{1}/csc_layer.zarr')\n"
      "except ImportError:\n"
      "    pass\n"
      "if loompy is not None:\n"
      "    a.write_loom('{1}/anndata.loom')\n"
      "    counts = a.X.T.tocsr().astype(np.uint32); none = sp.csr_matrix(counts.shape, dtype=np.uint32)\n"
      "    loompy.create('{1}/velocyto.loom', {{'': counts, 'spliced': counts, 'unspliced': none}},\n"
      "                  row_attrs={{'Gene': np.array(a.var_names), 'Chromosome': np.array(['1'] * a.n_vars)}},\n"
      "                  col_attrs={{'CellID': np.array(['s1:' + n for n in a.obs_names]), 'celltype': np.array(a.obs['celltype'].astype(str))}})\n",
      reference, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-o", dir.file("m.h5"), "-q"}).exit_code, 0);
  const auto annotate = [&](const std::string& name) {
    return test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file(name + ".h5ad"), "-o", dir.file(name + "_out.h5ad"),
                          "--csv", dir.file(name + ".csv")});
  };
  ASSERT_EQ(annotate("counts").exit_code, 0);
  const auto labels_of = [&](const std::string& name) {
    std::ifstream in(dir.file(name + ".csv"));
    std::vector<std::string> labels;
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) labels.push_back(line.substr(0, line.find(',', line.find(',') + 1)));
    return labels;
  };
  const std::vector<std::string> counts = labels_of("counts");
  ASSERT_EQ(counts.size(), 879U);
  for (const std::string name : {"lzf", "cp10k", "log2", "empty_x", "make_names", "hvg", "cite_seq", "log1p_counts"}) {
    const auto result = annotate(name);
    ASSERT_EQ(result.exit_code, 0) << name << ": " << result.err;
    const std::vector<std::string> labels = labels_of(name);
    ASSERT_EQ(labels.size(), counts.size()) << name;
    std::size_t same = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) same += labels[i] == counts[i] ? 1 : 0;
    // float32 CP10k values are the counts up to rounding: a borderline cell may flip.
    const bool rounded = name == std::string("cp10k") || name == std::string("log2") || name == std::string("hvg") ||
                         name == std::string("log1p_counts");
    EXPECT_GE(same, rounded ? counts.size() - 3 : counts.size()) << name << ": " << result.err;
    if (name == std::string("hvg")) {
      EXPECT_NE(result.err.find("X measures 500 genes and raw/X 13714 (X cut to a gene subset, e.g. highly variable genes): raw/X read"),
                std::string::npos)
          << result.err;
    }
    if (name == std::string("empty_x")) {
      EXPECT_NE(result.err.find("X looks empty and layers/counts holds raw counts: layers/counts read"), std::string::npos) << result.err;
    }
  }
  // An unfiltered matrix (300 empty droplets of 10 ambient molecules beside the cells): a warning.
  const auto unfiltered = annotate("unfiltered");
  EXPECT_EQ(unfiltered.exit_code, 0) << unfiltered.err;
  EXPECT_NE(unfiltered.err.find("300 of 1179 cells (25%) have fewer than 200 detected genes (empty droplets or debris"), std::string::npos)
      << unfiltered.err;
  EXPECT_EQ(annotate("counts").err.find("detected genes"), std::string::npos);
  // A Cell Ranger MTX folder: no .h5ad to copy, the labels go to FOLDER.celltyper.csv.
  const auto mtx = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("mtx") + "/"});
  ASSERT_EQ(mtx.exit_code, 0) << mtx.err;
  EXPECT_EQ(labels_of("mtx.celltyper"), counts);
  // A GEO-style text table (genes x cells, tab-separated, gzip): the same labels, to a CSV.
  const auto geo = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("geo.tsv.gz")});
  ASSERT_EQ(geo.exit_code, 0) << geo.err;
  EXPECT_EQ(labels_of("geo.tsv.gz.celltyper"), counts);
  // Loom files (anndata's write_loom; loompy as velocyto writes them: uint32 counts genes x cells,
  // spliced / unspliced layers, a Chromosome row attribute beside Gene): the same labels, to a
  // CSV; a loom reference trains the .h5ad's model.
  if (std::filesystem::exists(dir.file("anndata.loom"))) {
    for (const std::string name : {"anndata", "velocyto"}) {
      const auto loom = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file(name + ".loom")});
      ASSERT_EQ(loom.exit_code, 0) << loom.err;
      const std::vector<std::string> labels = labels_of(name + ".loom.celltyper");
      ASSERT_EQ(labels.size(), counts.size()) << name;
      for (std::size_t i = 0; i < labels.size(); ++i) {  // the velocyto file names its cells "s1:BARCODE"
        EXPECT_EQ(labels[i].substr(labels[i].find(',')), counts[i].substr(counts[i].find(','))) << name << " cell " << i;
      }
    }
    ASSERT_EQ(test::run_cli({"train", "-r", dir.file("velocyto.loom"), "-l", "obs:celltype", "-o", dir.file("loom.model"), "-q"}).exit_code, 0);
    ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file("loom.model"), "-i", dir.file("counts.h5ad"), "-o", dir.file("loom_model_out.h5ad"),
                             "--csv", dir.file("loom_model.csv"), "-q"})
                  .exit_code,
              0);
  } else {
    ADD_FAILURE() << "no loompy: the loom layouts were not checked (scripts/test.sh installs python3-loompy)";
  }
  // AnnData as Zarr (anndata's write_zarr: Blosc-compressed chunks), with X and with the counts in
  // a CSC layer beside an empty X: the same labels, to a CSV.
  if (std::filesystem::exists(dir.file("anndata.zarr"))) {
    for (const std::string name : {"anndata", "csc_layer"}) {
      const auto zarr = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file(name + ".zarr")});
      ASSERT_EQ(zarr.exit_code, 0) << zarr.err;
      EXPECT_EQ(labels_of(name + ".zarr.celltyper"), counts) << name;
    }
  } else {
    ADD_FAILURE() << "no zarr: the Zarr layouts were not checked (scripts/test.sh installs python3-zarr)";
  }
  // GEO's other file: the labels in a table of their own (here in reverse order), joined by cell
  // name with --obs: the model equals the one trained on the .h5ad (same labels and scores).
  for (const auto& [reference, extra] : {std::pair{dir.file("counts.h5ad"), std::string()}, std::pair{dir.file("geo.tsv.gz"), dir.file("meta.csv")}}) {
    std::vector<std::string> train{"train", "-r", reference, "-l", "obs:celltype", "-o", dir.file(extra.empty() ? "h5ad.model" : "geo.model"), "-q"};
    if (!extra.empty()) train.insert(train.end(), {"--obs", extra});
    const auto trained = test::run_cli(train);
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
  }
  for (const std::string name : {"h5ad", "geo"}) {
    ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file(name + ".model"), "-i", dir.file("counts.h5ad"), "-o", dir.file(name + "_model_out.h5ad"),
                             "--csv", dir.file(name + "_model.csv"), "-q"})
                  .exit_code,
              0);
  }
  EXPECT_EQ(test::read_file(dir.file("h5ad_model.csv")), test::read_file(dir.file("geo_model.csv")));
  EXPECT_EQ(test::read_file(dir.file("h5ad_model.csv")), test::read_file(dir.file("loom_model.csv")));
  // With --out, a 10x or text input becomes a new .h5ad: its counts, genes and cells with the
  // celltyper_* columns, which anndata reads (the labels equal the counts file's).
  for (const auto& [input, out] : {std::pair{dir.file("mtx"), dir.file("mtx.h5ad")}, std::pair{dir.file("geo.tsv.gz"), dir.file("geo.h5ad")}}) {
    const auto written = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", input, "-o", out});
    ASSERT_EQ(written.exit_code, 0) << written.err;
    const auto check = test::run_program(
        {test::system_python(), "-c",
         fmt::format("import anndata, numpy as np\n"
                     "a = anndata.read_h5ad('{0}'); c = anndata.read_h5ad('{1}/counts_out.h5ad')\n"
                     "assert a.shape == c.shape and list(a.obs_names) == list(c.obs_names), a\n"
                     "assert (a.X != c.X).nnz == 0\n"
                     "assert list(a.obs['celltyper_label']) == list(c.obs['celltyper_label'])\n"
                     "assert a.obsm['celltyper_probabilities'].shape[0] == a.n_obs\n",
                     out, dir.path().string())});
    EXPECT_EQ(check.exit_code, 0) << input << ": " << check.err;
  }
  // Genes x cells: the error says so.
  const auto transposed = annotate("transposed");
  EXPECT_EQ(transposed.exit_code, 2) << transposed.err;
  EXPECT_NE(transposed.err.find("too few to annotate. The matrix looks transposed: "), std::string::npos) << transposed.err;
  // raw/X saved for other cells (439 of 879; anndata refuses to write it, h5py does not): auto
  // reads X (log1p(CP10k)) and gives the counts' labels; --layer raw is a clear error, not labels
  // for half the cells and 'Unassigned' for the rest.
  const auto other_cells = annotate("raw_other_cells");
  ASSERT_EQ(other_cells.exit_code, 0) << other_cells.err;
  const std::vector<std::string> x_labels = labels_of("raw_other_cells");
  std::size_t same_x = 0;
  for (std::size_t i = 0; i < x_labels.size() && i < counts.size(); ++i) same_x += x_labels[i] == counts[i] ? 1 : 0;
  EXPECT_GE(same_x, counts.size() - 3);
  const auto raw_asked = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("raw_other_cells.h5ad"), "--layer", "raw", "-o",
                                        dir.file("raw_asked.h5ad")});
  EXPECT_EQ(raw_asked.exit_code, 2) << raw_asked.err;
  EXPECT_NE(raw_asked.err.find("raw/X has 439 cells but obs has 879: shape mismatch"), std::string::npos) << raw_asked.err;
  // The GenePT route leaves the antibody tags out of library sizes too: the same cell vectors.
  const std::string store = test::random_gene_store(dir, 16);
  for (const std::string name : {"counts", "cite_seq"}) {
    const auto embedded = test::run_cli({"embed", "-i", dir.file(name + ".h5ad"), "-g", store, "--gene-table",
                                         test::shared_data("gene-annotations/human_genes.tsv"), "-o", dir.file(name + ".npy"), "-q"});
    ASSERT_EQ(embedded.exit_code, 0) << name << ": " << embedded.err;
  }
  EXPECT_EQ(test::read_file(dir.file("counts.npy")), test::read_file(dir.file("cite_seq.npy")));
  // Counts joined to log1p(CP10k) cells (sc.concat of differently processed samples): no one
  // normalisation suits both, and the error says so instead of mislabelling one part.
  const auto joined = annotate("joined");
  EXPECT_EQ(joined.exit_code, 2) << joined.err;
  EXPECT_NE(joined.err.find("X: counts and log-normalised cells mixed: 600 of 879 cells scanned hold whole numbers only and 279 non-integer"),
            std::string::npos)
      << joined.err;
  const auto nan = annotate("nan");
  EXPECT_EQ(nan.exit_code, 2) << nan.err;
  EXPECT_NE(nan.err.find(dir.file("nan.h5ad") + ": X: cell 0 has a non-finite value (nan) at gene column"), std::string::npos) << nan.err;
  EXPECT_EQ(std::count(nan.err.begin(), nan.err.end(), '\n'), 1) << nan.err;
}

TEST(TrainAnnotateCli, MissingLabelsWrittenAsTextAndNanCountsAreCaught) {
  // Labels 'nan' / 'NA' (pandas' astype(str) of NaN, R's NA) are missing labels, not a class;
  // NaN in a reference's counts stops train instead of saving a model that cannot refit.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, numpy as np, scipy.sparse as sp\n"
      "a = anndata.read_h5ad('{0}')[::3].copy()\n"
      "a.X = sp.csr_matrix(a.X, dtype=np.float32)\n"
      "labels = a.obs['celltype'].astype(str).values.copy()\n"
      "labels[:10] = 'nan'; labels[10:15] = 'NA'\n"
      "a.obs['celltype'] = labels\n"
      "a.write_h5ad('{1}/text_na.h5ad')\n"
      "b = a.copy(); b.X = sp.csr_matrix(sp.diags(1e4 / np.asarray(a.X.sum(axis=1)).ravel()) @ a.X, dtype=np.float32)\n"
      "b.write_h5ad('{1}/cp10k.h5ad')\n"
      "a.X.data[3] = np.inf\n"
      "a.write_h5ad('{1}/inf.h5ad')\n",
      reference, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto trained = test::run_cli({"train", "-r", dir.file("text_na.h5ad"), "-l", "obs:celltype", "-o", dir.file("m.h5"), "--json"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("15 cells without a label in obs:celltype left out (labels that name no type, such as"),
            std::string::npos)
      << trained.err;
  const auto summary = nlohmann::json::parse(trained.out);
  EXPECT_EQ(summary["provenance"]["n_dropped_unlabelled"], 15) << summary["provenance"].dump();
  for (const auto& name : summary["classes"]) EXPECT_TRUE(name != "nan" && name != "NA") << summary["classes"].dump();
  EXPECT_EQ(summary["classes"].size(), 9U) << summary["classes"].dump();
  // Counts get depth augmentation; CP10k values are normalised as counts but never thinned (thinning
  // scales them by p, which CP10k undoes: the copies would be their cells again).
  EXPECT_GT(summary["provenance"]["n_thinned_copies"].get<std::int64_t>(), 0);
  const auto cp10k = test::run_cli({"train", "-r", dir.file("cp10k.h5ad"), "-l", "obs:celltype", "-o", dir.file("cp10k.h5"), "--json"});
  ASSERT_EQ(cp10k.exit_code, 0) << cp10k.err;
  const auto cp10k_provenance = nlohmann::json::parse(cp10k.out)["provenance"];
  EXPECT_EQ(cp10k_provenance["n_thinned_copies"], 0) << cp10k_provenance.dump();
  EXPECT_EQ(cp10k_provenance["references"][0]["normalization"], "log1p-cp10k");
  EXPECT_EQ(cp10k_provenance["references"][0]["counts"], false);
  const auto inf = test::run_cli({"train", "-r", dir.file("inf.h5ad"), "-l", "obs:celltype", "-o", dir.file("inf.h5")});
  EXPECT_EQ(inf.exit_code, 2) << inf.err;
  EXPECT_NE(inf.err.find(dir.file("inf.h5ad") + ": X: cell 0 has a non-finite value (inf)"), std::string::npos) << inf.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("inf.h5")));
}

TEST(TrainAnnotateCli, CellxgeneConventionsUnknownLabelsMissingDonorsAndPoolsAtTwoDepths) {
  // What CELLxGENE files hold: 'unknown' cell types (no label, not a class: train, cv and
  // evaluate), donors missing for some cells (a group of their own, said), and two references
  // labelled at different depths pooled without --harmonize-labels (warned). The expected layout
  // (log X, counts in raw/X) is a note, hidden by -q; --csv alone writes no copy of the input,
  // and the CSV's missing ids and logicals read as such in R and pandas (NA, TRUE / FALSE).
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, csv, numpy as np, pandas as pd, scipy.sparse as sp\n"
      "rows = [r for r in csv.DictReader(open('{1}'), delimiter='\\t') if r['dataset'] == 'pbmc3k-seurat-labels']\n"
      "ids = {{r['label']: r['cl_id'] for r in rows}}; names = {{r['label']: r['cl_label'] for r in rows}}\n"
      "full = anndata.read_h5ad('{0}')\n"
      "def cxg(a, coarse_t=False):\n"
      "    a = a.copy(); label = a.obs['celltype'].astype(str)\n"
      "    name, cl = label.map(names), label.map(ids)\n"
      "    if coarse_t:\n"
      "        t = label.str.contains(' T')\n"
      "        name[t], cl[t] = 'T cell', 'CL:0000084'\n"
      "    name.iloc[:20], cl.iloc[:20] = 'unknown', 'unknown'\n"
      "    donor = np.where(np.arange(a.n_obs) % 2 == 0, 'd0', 'd1').astype(object); donor[20:50] = None\n"
      "    a.obs = a.obs.assign(cell_type=name.astype('category'), cell_type_ontology_term_id=cl.astype('category'),\n"
      "                         donor_id=pd.Categorical(donor, categories=['d0', 'd1']),\n"
      "                         no_donor=pd.Categorical([None] * a.n_obs, categories=['d0']),\n"
      "                         b_group=np.where(label == 'B', 'gB', 'gRest'))\n"
      "    a.X = sp.csr_matrix(a.X, dtype=np.float32); a.raw = a.copy()\n"
      "    x = sp.diags(1e4 / np.asarray(a.X.sum(axis=1)).ravel()) @ a.X; x.data = np.log1p(x.data)\n"
      "    a.X = sp.csr_matrix(x, dtype=np.float32)\n"
      "    return a\n"
      "cxg(full[::3]).write_h5ad('{2}/fine.h5ad')\n"
      "cxg(full[1::3], coarse_t=True).write_h5ad('{2}/coarse.h5ad')\n",
      reference, label_map, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto trained = test::run_cli({"train", "-r", dir.file("fine.h5ad"), "-l", "obs:cell_type", "--group", "obs:donor_id", "-o", dir.file("m.h5"), "--json"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("20 cells without a label in obs:cell_type left out (labels that name no type, such as 'unknown', included)"),
            std::string::npos)
      << trained.err;
  EXPECT_NE(trained.err.find("30 labelled cells without a value in obs:donor_id form a group of their own, '(missing)'"), std::string::npos)
      << trained.err;
  EXPECT_NE(trained.err.find("note: " + dir.file("fine.h5ad") + ": X looks log-normalized and raw/X holds raw counts"), std::string::npos)
      << trained.err;
  EXPECT_EQ(trained.err.find("warning: " + dir.file("fine.h5ad") + ": X looks"), std::string::npos) << trained.err;
  const auto summary = nlohmann::json::parse(trained.out);
  EXPECT_EQ(summary["classes"].size(), 9U) << summary["classes"].dump();
  for (const auto& name : summary["classes"]) EXPECT_NE(name, "unknown");
  // cv: the cells without a donor are a fold of their own; a column missing everywhere is refused.
  const auto cv = test::run_cli({"cv", "-r", dir.file("fine.h5ad"), "-l", "obs:cell_type", "--group", "obs:donor_id", "--json", dir.file("cv.json")});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  EXPECT_NE(cv.err.find("obs:donor_id: 30 labelled cells without a value form a fold of their own, '(missing)'"), std::string::npos) << cv.err;
  EXPECT_EQ(cv.err.find("fold '(missing)', logreg: note:"), std::string::npos) << cv.err;
  EXPECT_NE(test::read_file(dir.file("cv.json")).find("\"(missing)\""), std::string::npos);
  const auto no_donor = test::run_cli({"cv", "-r", dir.file("fine.h5ad"), "-l", "obs:cell_type", "--group", "obs:no_donor"});
  EXPECT_EQ(no_donor.exit_code, 2) << no_donor.err;
  EXPECT_NE(no_donor.err.find("cv: every labelled cell's value in the group column 'no_donor' is missing"), std::string::npos) << no_donor.err;
  // A fold that leaves one class to train on is skipped, said; held-out classes no other fold has are named.
  const auto b_group = test::run_cli({"cv", "-r", dir.file("fine.h5ad"), "-l", "obs:cell_type", "--group", "obs:b_group", "-q"});
  ASSERT_EQ(b_group.exit_code, 0) << b_group.err;
  EXPECT_NE(b_group.err.find("fold 'gRest' skipped: the other folds hold "), std::string::npos) << b_group.err;
  EXPECT_NE(b_group.err.find("fold 'gB': "), std::string::npos) << b_group.err;
  EXPECT_NE(b_group.err.find(" held-out cells of classes no other fold has ('B cell' ("), std::string::npos) << b_group.err;
  EXPECT_NE(b_group.out.find("pooled"), std::string::npos) << b_group.out;
  const auto none_left = test::run_cli({"cv", "-r", dir.file("fine.h5ad"), "-l", "obs:cell_type", "--group", "obs:b_group", "--folds", "gRest", "-q"});
  EXPECT_EQ(none_left.exit_code, 2) << none_left.err;
  EXPECT_NE(none_left.err.find("cv: every fold was skipped (fold 'gRest' skipped: the other folds hold "), std::string::npos) << none_left.err;
  // annotate: -q hides the note; --csv alone writes the table only.
  const auto quiet = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("coarse.h5ad"), "--csv", dir.file("labels.csv"), "-q"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("X looks log-normalized"), std::string::npos) << quiet.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("coarse.celltyper.h5ad")));
  const std::string csv = test::read_file(dir.file("labels.csv"));
  ASSERT_NE(csv.find(",celltyper_similarity,celltyper_unlike_reference,celltyper_similarity_judged\n"), std::string::npos) << csv.substr(0, 200);
  EXPECT_EQ(csv.find(",true\n"), std::string::npos);
  EXPECT_EQ(csv.find(",false\n"), std::string::npos);
  EXPECT_NE(csv.find(",FALSE\n"), std::string::npos);
  // evaluate: 'unknown' truth is no truth.
  ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("coarse.h5ad"), "-o", dir.file("out.h5ad"), "-q"}).exit_code, 0);
  const auto evaluated = test::run_cli({"evaluate", "-i", dir.file("out.h5ad"), "--truth", "obs:cell_type", "--json", "-"});
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.err;
  EXPECT_EQ(nlohmann::json::parse(evaluated.out)["n_missing_truth"], 20);
  EXPECT_NE(evaluated.err.find("20 of 879 cells have no truth label in obs:cell_type and are left out (missing values written as text, such as "
                               "'unknown', included)"),
            std::string::npos)
      << evaluated.err;
  // Pooled at two depths: flat training says what --harmonize-labels would do; with it, no such warning.
  const auto flat = test::run_cli({"train", "-r", dir.file("fine.h5ad") + "," + dir.file("coarse.h5ad"), "-l", "obs:cell_type", "-o", dir.file("flat.h5"), "-q"});
  ASSERT_EQ(flat.exit_code, 0) << flat.err;
  EXPECT_NE(flat.err.find("the references label cells at different Cell Ontology depths or with different names: 'T cell' of " + dir.file("coarse.h5ad") +
                          " lies above classes of another ("),
            std::string::npos)
      << flat.err;
  EXPECT_NE(flat.err.find("--harmonize-labels (train, cv, annotate --reference) makes the labels Cell Ontology terms"), std::string::npos) << flat.err;
  // cv over the two files by donor (each fold trains on both): said once, not per fold.
  const auto pooled_cv = test::run_cli({"cv", "-r", dir.file("fine.h5ad") + "," + dir.file("coarse.h5ad"), "-l", "obs:cell_type", "--group",
                                        "obs:donor_id", "-q"});
  ASSERT_EQ(pooled_cv.exit_code, 0) << pooled_cv.err;
  std::size_t said = 0;
  for (std::size_t at = pooled_cv.err.find("different Cell Ontology depths"); at != std::string::npos;
       at = pooled_cv.err.find("different Cell Ontology depths", at + 1)) {
    ++said;
  }
  EXPECT_EQ(said, 1U) << pooled_cv.err;
  const auto mixed = test::run_cli({"train", "-r", dir.file("fine.h5ad") + "," + dir.file("coarse.h5ad"), "-l", "obs:cell_type", "--harmonize-labels",
                                    "-o", dir.file("mixed.h5"), "-q"});
  ASSERT_EQ(mixed.exit_code, 0) << mixed.err;
  EXPECT_EQ(mixed.err.find("different Cell Ontology depths"), std::string::npos) << mixed.err;
}

TEST(TrainAnnotateCli, TruncatedGzipInputsAndAnotherSpeciesAreRefusedByName) {
  // An interrupted download: a .tsv.gz count table or an MTX folder's matrix.mtx.gz cut short
  // (zlib hands back what it could decode, which may end on a whole line) is refused, not read
  // as fewer genes. Mouse Ensembl ids against a human model: the species, not a coverage flag.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, gzip, os, numpy as np, scipy.io, scipy.sparse as sp\n"
      "a = anndata.read_h5ad('{0}')[::20].copy()\n"
      "x = sp.csr_matrix(a.X, dtype=np.float32)\n"
      "keep = np.asarray((x > 0).sum(axis=0)).ravel() > 0\n"
      "x, genes = x[:, keep], list(a.var_names[keep])\n"
      "d = x.toarray().T.astype(int)\n"
      "text = 'gene\\t' + '\\t'.join(a.obs_names) + '\\n' + ''.join(g + '\\t' + '\\t'.join(map(str, row)) + '\\n' for g, row in zip(genes, d))\n"
      "whole = gzip.compress(text.encode())\n"
      "open('{1}/table.tsv.gz', 'wb').write(whole)\n"
      "open('{1}/cut.tsv.gz', 'wb').write(whole[:len(whole) * 2 // 3])\n"
      "os.makedirs('{1}/mtx')\n"
      "scipy.io.mmwrite('{1}/mtx/matrix.mtx', sp.csc_matrix(x.T))\n"
      "raw = open('{1}/mtx/matrix.mtx', 'rb').read(); os.remove('{1}/mtx/matrix.mtx')\n"
      "open('{1}/mtx/matrix.mtx.gz', 'wb').write(gzip.compress(raw)[:-14])\n"
      "open('{1}/mtx/features.tsv', 'w').write(''.join(f'{{g}}\\t{{g}}\\tGene Expression\\n' for g in genes))\n"
      "open('{1}/mtx/barcodes.tsv', 'w').write(''.join(f'{{c}}\\n' for c in a.obs_names))\n"
      "m = anndata.AnnData(x, obs=a.obs[['celltype']])\n"
      "m.var_names = [f'ENSMUSG{{i:011d}}' for i in range(m.n_vars)]\n"
      "m.write_h5ad('{1}/mouse.h5ad')\n",
      reference, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-o", dir.file("m.h5"), "-q"}).exit_code, 0);
  const auto whole = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("table.tsv.gz"), "--csv", dir.file("whole.csv"), "-q"});
  EXPECT_EQ(whole.exit_code, 0) << whole.err;
  for (const std::string& input : {dir.file("cut.tsv.gz"), dir.file("mtx")}) {
    const auto cut = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", input, "--csv", dir.file("cut.csv"), "-q"});
    SCOPED_TRACE(input);
    EXPECT_EQ(cut.exit_code, 2) << cut.err;
    EXPECT_NE(cut.err.find("the gzip stream ends early (truncated file, e.g. an interrupted download"), std::string::npos) << cut.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("cut.csv")));
  }
  const auto mouse = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("mouse.h5ad"), "-o", dir.file("mouse_out.h5ad")});
  EXPECT_EQ(mouse.exit_code, 2) << mouse.err;
  EXPECT_NE(mouse.err.find("too few to annotate: likely species mismatch with the gene table: "), std::string::npos) << mouse.err;
  EXPECT_NE(mouse.err.find("Annotate it with a model of its species, resolving its genes with a gene table of that species"), std::string::npos) << mouse.err;
  EXPECT_EQ(mouse.err.find("--allow-low-coverage"), std::string::npos) << mouse.err;
}

TEST(TrainAnnotateCli, ScaledXWithoutCountsReadsTheLogNormalisedRaw) {
  // scanpy's usual file: X scaled (sc.pp.scale), log1p(CP10k) kept in raw (here of the 765 genes
  // kept: totals unequal, but each cell's expm1 values are whole multiples of its smallest, so
  // "log-normalized"), no counts. --layer X
  // is refused (scaled values); the default reads raw/X and says so.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata\n"
      "a = anndata.read_h5ad('{0}')\n"
      "del a.layers['counts']\n"
      "a.write_h5ad('{1}')\n"
      "anndata.AnnData(X=a.X, obs=a.obs, var=a.var).write_h5ad('{2}')\n",
      query, dir.file("scanpy.h5ad"), dir.file("scaled_only.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-o", dir.file("m.h5"), "-q"}).exit_code, 0);
  const auto as_x = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("scanpy.h5ad"), "--layer", "X", "-o", dir.file("x.h5ad")});
  EXPECT_EQ(as_x.exit_code, 2) << as_x.err;
  EXPECT_NE(as_x.err.find("negative values cannot be used; read another of the file's matrices: --layer raw (log-normalized); or pass "
                          "--normalize none"),
            std::string::npos)
      << as_x.err;
  // In reference mode the references' matrix flag is --reference-layer.
  const auto as_reference = test::run_cli({"annotate", "-r", dir.file("scanpy.h5ad"), "-l", "obs:bulk_labels", "--reference-layer", "X", "-i",
                                           reference, "--csv", dir.file("r.csv")});
  EXPECT_EQ(as_reference.exit_code, 2) << as_reference.err;
  EXPECT_NE(as_reference.err.find("read another of the file's matrices: --reference-layer raw (log-normalized)"), std::string::npos)
      << as_reference.err;
  // Scaled values alone: nothing else to read, so the message says where such values come from.
  const auto alone = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("scaled_only.h5ad"), "-o", dir.file("alone.h5ad")});
  EXPECT_EQ(alone.exit_code, 2) << alone.err;
  EXPECT_NE(alone.err.find("the file holds no other matrix (no layers, no raw): use the counts or log-normalised values the scaled ones "
                           "were made from (before sc.pp.scale or ScaleData)"),
            std::string::npos)
      << alone.err;
  const auto annotated = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("scanpy.h5ad"), "-o", dir.file("out.h5ad")});
  ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
  EXPECT_NE(annotated.err.find("X looks scaled and no matrix holds counts; raw/X looks log-normalized: raw/X read"), std::string::npos)
      << annotated.err;
}

TEST(TrainAnnotateCli, AZeroCellShardIsAnnotatedAndEmbeddedAsEmptyOutputsWithTheSameColumns) {
  // A scattered query's empty shard (a sample filtered to no cell): annotate and embed write
  // empty outputs whose columns are those of a non-empty shard (so that anndata.concat joins
  // them), inspect describes the file; train and evaluate say there is nothing to do.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  write_slices(reference, {{":0", dir.file("empty.h5ad")}, {":5", dir.file("five.h5ad")}});
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("m.h5"), "-q"}).exit_code, 0);
  for (const std::string shard : {"empty", "five"}) {
    const auto annotated = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file(shard + ".h5ad"), "--gene-table", table,
                                          "--top-k", "2", "--over-clustering", "obs:seurat_clusters", "-o", dir.file(shard + ".out.h5ad"),
                                          "--csv", dir.file(shard + ".csv")});
    ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
    if (shard == "empty") {
      EXPECT_NE(annotated.err.find("the dataset has zero cells: nothing to annotate"), std::string::npos) << annotated.err;
      EXPECT_NE(annotated.err.find("annotated 0 cells with 1 model"), std::string::npos) << annotated.err;
      EXPECT_EQ(annotated.out, "");  // (no label table of no cells)
    }
  }
  const auto columns = [&](const std::string& shard) {
    const auto read = test::run_program({test::system_python(), "-c",
                                         fmt::format("import anndata\n"
                                                     "a = anndata.read_h5ad('{}')\n"
                                                     "print(a.n_obs, ' '.join(a.obs.columns), a.obsm['celltyper_probabilities'].shape[1])\n",
                                                     dir.file(shard + ".out.h5ad"))});
    EXPECT_EQ(read.exit_code, 0) << read.err;
    return read.out.substr(read.out.find(' ') + 1);
  };
  const std::string empty_columns = columns("empty");
  EXPECT_NE(empty_columns.find("celltyper_majority_vote"), std::string::npos) << empty_columns;
  EXPECT_NE(empty_columns.find("celltyper_unlike_reference"), std::string::npos) << empty_columns;
  EXPECT_EQ(empty_columns, columns("five"));
  const std::string csv = test::read_file(dir.file("empty.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1) << csv;
  const std::string five_csv = test::read_file(dir.file("five.csv"));
  EXPECT_EQ(csv.substr(0, csv.find('\n')), five_csv.substr(0, five_csv.find('\n')));
  const auto json = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("empty.h5ad"), "--gene-table", table, "--csv",
                                   dir.file("j.csv"), "--json", "-q"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto summary = nlohmann::json::parse(json.out);
  EXPECT_EQ(summary["n_cells"], 0);
  EXPECT_TRUE(summary["median_score"].is_null()) << summary.dump();
  EXPECT_EQ(summary["classes"].size(), 9u);

  const std::string store = test::random_gene_store(dir, 16);
  const auto embedded = test::run_cli({"embed", "-i", dir.file("empty.h5ad"), "-g", store, "--gene-table", table, "-o", dir.file("e.npy")});
  ASSERT_EQ(embedded.exit_code, 0) << embedded.err;
  EXPECT_NE(embedded.err.find("embedded 0 cells x 16 dims"), std::string::npos) << embedded.err;
  const auto shape = test::run_program({test::system_python(), "-c", fmt::format("import numpy\nprint(numpy.load('{}').shape)", dir.file("e.npy"))});
  EXPECT_EQ(shape.out, "(0, 16)\n") << shape.err;

  const auto inspected = test::run_cli({"inspect", dir.file("empty.h5ad"), "--gene-table", table});
  EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_NE(inspected.out.find("0 cells x 13714 genes"), std::string::npos) << inspected.out;
  EXPECT_NE(inspected.out.find("Values of X: none (zero cells)"), std::string::npos) << inspected.out;

  const auto trained = test::run_cli({"train", "-r", dir.file("empty.h5ad"), "-l", "obs:celltype", "-o", dir.file("none.h5")});
  EXPECT_EQ(trained.exit_code, 2);
  EXPECT_NE(trained.err.find("has zero cells: nothing to train on"), std::string::npos) << trained.err;
  const auto evaluated = test::run_cli({"evaluate", "-i", dir.file("empty.out.h5ad"), "--truth", "obs:celltype", "--no-ontology"});
  EXPECT_EQ(evaluated.exit_code, 2);
  EXPECT_NE(evaluated.err.find("zero cells: nothing to evaluate"), std::string::npos) << evaluated.err;
}

TEST(TrainAnnotateCli, ScoresAreCalibratedOnTheValidationCellsAndTheModelSaysSo) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const auto trained = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("m.h5")});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("scores: calibrated (temperature 0."), std::string::npos) << trained.err;
  EXPECT_NE(trained.err.find("from 527 held-out cells: mean score 0.58 -> 0.9"), std::string::npos) << trained.err;
  const auto described = test::run_cli({"inspect", dir.file("m.h5")});
  EXPECT_NE(described.out.find("Scores      calibrated (temperature 0."), std::string::npos) << described.out;
  EXPECT_LT(load_model(dir.file("m.h5")).classifier->temperature(), 0.5);
  // No validation cells, or --no-calibrate: the classifier's own probabilities, said as such.
  const auto unvalidated = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "--validation-fraction", "0",
                                          "-o", dir.file("n.h5")});
  ASSERT_EQ(unvalidated.exit_code, 0) << unvalidated.err;
  EXPECT_NE(unvalidated.err.find("scores: the classifier's probabilities, not calibrated (no validation cells (--validation-fraction 0, or a single group))"),
            std::string::npos)
      << unvalidated.err;
  const auto off = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "--no-calibrate", "-o", dir.file("o.h5")});
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_NE(off.err.find("scores: the classifier's probabilities, not calibrated (turned off: --no-calibrate (Python calibrate=False))"), std::string::npos) << off.err;
  EXPECT_EQ(load_model(dir.file("o.h5")).classifier->temperature(), 1.0);
  // An ensemble of a calibrated and an uncalibrated model is warned of (the first outweighs the second).
  const auto mixed = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-m", dir.file("o.h5"), "-i", reference, "--gene-table", table,
                                    "--csv", dir.file("mixed.csv"), "--json"});
  ASSERT_EQ(mixed.exit_code, 0) << mixed.err;
  EXPECT_NE(mixed.err.find("the models' scores are calibrated differently (model 1 calibrated (temperature 0."), std::string::npos) << mixed.err;
  EXPECT_NE(mixed.err.find("model 2 not)"), std::string::npos) << mixed.err;
  const nlohmann::json summary = nlohmann::json::parse(mixed.out);
  ASSERT_EQ(summary["models"].size(), 2u);
  EXPECT_TRUE(summary["models"][0]["calibrated"].get<bool>());
  EXPECT_FALSE(summary["models"][1]["calibrated"].get<bool>());
  EXPECT_EQ(summary["models"][1]["temperature"].get<double>(), 1.0);
  // annotate says when a model's scores are uncalibrated for a reason other than the user's choice.
  const auto plain = test::run_cli({"annotate", "-m", dir.file("n.h5"), "-i", reference, "--gene-table", table, "--csv", dir.file("n.csv")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.err.find("note: the scores are the classifier's own probabilities, not calibrated (no validation cells"), std::string::npos)
      << plain.err;
  const auto chosen = test::run_cli({"annotate", "-m", dir.file("o.h5"), "-i", reference, "--gene-table", table, "--csv", dir.file("o.csv")});
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_EQ(chosen.err.find("not calibrated"), std::string::npos) << chosen.err;
  // The confidence line counts the cells a --min-score other than 0.5 leaves Unassigned.
  const auto strict = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--gene-table", table, "--min-score", "0.99",
                                     "--csv", dir.file("strict.csv")});
  ASSERT_EQ(strict.exit_code, 0) << strict.err;
  const std::string csv = test::read_file(dir.file("strict.csv"));
  std::size_t unassigned = 0;
  for (auto at = csv.find(",Unassigned,"); at != std::string::npos; at = csv.find(",Unassigned,", at + 1)) ++unassigned;
  EXPECT_GT(unassigned, 0u);
  EXPECT_NE(strict.err.find(fmt::format("; {} (", unassigned)), std::string::npos) << strict.err;
  EXPECT_NE(strict.err.find("below --min-score 0.99 (Unassigned)"), std::string::npos) << strict.err;
  // Help: a negatable flag is not shown as "{false}" (it reads as "off by default").
  const auto help = test::run_cli({"train", "--help"});
  EXPECT_NE(help.out.find("--calibrate,--no-calibrate"), std::string::npos) << help.out;
  EXPECT_EQ(help.out.find("{false}"), std::string::npos) << help.out;
}

TEST(TrainAnnotateCli, LabelsThatAreNumbersAreSaidToBeClusterIds) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const auto trained = test::run_cli({"train", "-r", reference, "-l", "obs:seurat_clusters", "--gene-table", table, "-o", dir.file("m.h5")});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("labels have no Cell Ontology id ('0', '1', "), std::string::npos) << trained.err;
  EXPECT_NE(trained.err.find("are numbers (cluster ids?), not cell types"), std::string::npos) << trained.err;
  // Seurat's tutorial labels are shorthands the mapper reads: every class has its CL id, no note.
  const auto named = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("n.h5")});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_EQ(named.err.find("no Cell Ontology id"), std::string::npos) << named.err;
  const nlohmann::json described = nlohmann::json::parse(test::run_cli({"inspect", dir.file("n.h5"), "--json"}).out);
  EXPECT_EQ(described.dump().find("\"cl_id\":\"\""), std::string::npos) << described.dump();
}

TEST(TrainAnnotateCli, AMajorityVoteCountsUnassignedCellsAndAnAnnotatedFileIsAReference) {
  // pbmc3k's even cells train, its odd cells are the query.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  write_slices(reference, {{"0::2", dir.file("even.h5ad")}, {"1::2", dir.file("odd.h5ad")}});
  ASSERT_EQ(test::run_cli({"train", "-r", dir.file("even.h5ad"), "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("m.h5"), "-q"}).exit_code, 0);

  // The majority vote counts Unassigned cells (below --min-score) as votes, as CellTypist's does:
  // each cluster gets the label most of its cells have.
  // (calibrated scores: at 0.9, 45% of the cells are Unassigned, 77% of the naive / memory CD4 T cluster's)
  ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("odd.h5ad"), "--gene-table", table, "--min-score", "0.9",
                           "--over-clustering", "obs:seurat_clusters", "--csv", dir.file("vote.csv"), "-q"})
                .exit_code,
            0);
  const auto votes = test::run_program({test::system_python(), "-c",
                                        fmt::format("import anndata, pandas\n"
                                                    "a = anndata.read_h5ad('{}')\n"
                                                    "c = pandas.read_csv('{}', index_col=0, keep_default_na=False)\n"
                                                    "c['cluster'] = a.obs['seurat_clusters'].astype(str).values\n"
                                                    "bad = [k for k, g in c.groupby('cluster') if g['celltyper_label'].value_counts().iloc[0] != "
                                                    "(g['celltyper_label'] == g['celltyper_majority_vote'].iloc[0]).sum()]\n"
                                                    "print(len(bad), (c['celltyper_label'] == 'Unassigned').mean(), "
                                                    "(c['celltyper_majority_vote'] == 'Unassigned').mean())\n",
                                                    dir.file("odd.h5ad"), dir.file("vote.csv"))});
  ASSERT_EQ(votes.exit_code, 0) << votes.err;
  int bad_clusters = -1;
  double unassigned = 0;
  double voted_unassigned = 0;
  ASSERT_EQ(std::sscanf(votes.out.c_str(), "%d %lf %lf", &bad_clusters, &unassigned, &voted_unassigned), 3) << votes.out;
  EXPECT_EQ(bad_clusters, 0) << votes.out;  // (no cluster whose vote is not its most frequent label)
  EXPECT_GT(unassigned, 0.2) << votes.out;
  EXPECT_GT(voted_unassigned, 0.0) << votes.out;  // (some cluster is mostly Unassigned: the old vote named a class for it)

  // Cells without a cluster (NaN in a float column) keep their own label, and a warning says how many.
  const auto holes = test::run_program({test::system_python(), "-c",
                                        fmt::format("import anndata, numpy\n"
                                                    "a = anndata.read_h5ad('{0}')\n"
                                                    "c = a.obs['seurat_clusters'].astype(float).values\n"
                                                    "c[::7] = numpy.nan\n"
                                                    "a.obs['holes'] = c\n"
                                                    "a.write_h5ad('{1}')\n",
                                                    dir.file("odd.h5ad"), dir.file("holes.h5ad"))});
  ASSERT_EQ(holes.exit_code, 0) << holes.err;
  const auto holed = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("holes.h5ad"), "--gene-table", table,
                                    "--over-clustering", "obs:holes", "--csv", dir.file("holes.csv")});
  ASSERT_EQ(holed.exit_code, 0) << holed.err;
  EXPECT_NE(holed.err.find("warning: --over-clustering holes: 189 of 1319 cells have no cluster (a missing value): their "
                           "celltyper_majority_vote is their own label"),
            std::string::npos)
      << holed.err;

  // Clusters from a table beside an .h5ad (--obs): the vote uses them, and the copy keeps them.
  const auto written = test::run_program({test::system_python(), "-c",
                                          fmt::format("import anndata\n"
                                                    "a = anndata.read_h5ad('{0}')\n"
                                                    "t = a.obs[['seurat_clusters']].rename(columns={{'seurat_clusters': 'leiden'}})\n"
                                                    "t['celltype'] = 'from the table'\n"
                                                    "t.to_csv('{1}')\n",
                                                    dir.file("odd.h5ad"), dir.file("clusters.csv"))});
  ASSERT_EQ(written.exit_code, 0) << written.err;
  ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("odd.h5ad"), "--gene-table", table, "--obs",
                           dir.file("clusters.csv"), "--over-clustering", "obs:leiden", "-o", dir.file("joined.h5ad"), "-q"})
                .exit_code,
            0);
  const auto kept = test::run_program({test::system_python(), "-c",
                                       fmt::format("import anndata\n"
                                                   "obs = anndata.read_h5ad('{}').obs\n"
                                                   "print((obs['leiden'].astype(float) == obs['seurat_clusters'].astype(str).astype(float)).all(), "
                                                   "'celltyper_majority_vote' in obs, list(obs.columns).count('leiden'), "
                                                   "(obs['celltype'] == 'from the table').any())\n",
                                                   dir.file("joined.h5ad"))});
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_EQ(kept.out, "True True 1 False\n");  // (the input's own celltype column is not overwritten)

  // A reference annotated before (celltyper's or CellTypist's "Unassigned", CellTypist's "A|B"
  // multi-labels): Unassigned cells have no label; a multi-label is warned about.
  const auto relabelled = test::run_program({test::system_python(), "-c",
                                             fmt::format("import anndata\n"
                                                         "a = anndata.read_h5ad('{0}')\n"
                                                         "labels = a.obs['celltype'].astype(str).values.copy()\n"
                                                         "labels[:40] = 'Unassigned'\n"
                                                         "labels[40:60] = 'Naive CD4 T|Memory CD4 T'\n"
                                                         "a.obs['annotated'] = labels\n"
                                                         "a.write_h5ad('{1}')\n",
                                                         dir.file("even.h5ad"), dir.file("annotated.h5ad"))});
  ASSERT_EQ(relabelled.exit_code, 0) << relabelled.err;
  const auto again = test::run_cli({"train", "-r", dir.file("annotated.h5ad"), "-l", "obs:annotated", "--gene-table", table, "-o",
                                    dir.file("again.h5"), "--json", "--validation-fraction", "0"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto classes = nlohmann::json::parse(again.out)["classes"];
  EXPECT_EQ(std::count(classes.begin(), classes.end(), "Unassigned"), 0) << classes.dump();
  EXPECT_NE(again.err.find("40 cells without a label in obs:annotated left out (labels that name no type, such as 'Unassigned'"),
            std::string::npos)
      << again.err;
  EXPECT_NE(again.err.find("20 cells of obs:annotated have labels joining several types with '|' (CellTypist's multi-labels, e.g. 'Naive CD4 "
                           "T|Memory CD4 T')"),
            std::string::npos)
      << again.err;
  // With --harmonize-labels the multi-label reads as alternatives ("T/NK cells"): its cells train as
  // either type (the classes below their common term, CD4-positive, alpha-beta T cell), no class of
  // their own and no warning.
  const auto harmonized = test::run_cli({"train", "-r", dir.file("annotated.h5ad"), "-l", "obs:annotated", "--gene-table", table, "-o",
                                         dir.file("harmonized.h5"), "--json", "--validation-fraction", "0", "--harmonize-labels", "--ontology",
                                         test::shared_data("cell-ontology/CL-ontology-v2026-03-26.json")});
  ASSERT_EQ(harmonized.exit_code, 0) << harmonized.err;
  const auto harmonized_classes = nlohmann::json::parse(harmonized.out)["classes"];
  EXPECT_TRUE(std::none_of(harmonized_classes.begin(), harmonized_classes.end(),
                           [](const nlohmann::json& name) { return name.get<std::string>().find('|') != std::string::npos; }))
      << harmonized_classes.dump();
  EXPECT_EQ(harmonized.err.find("CellTypist's multi-labels"), std::string::npos) << harmonized.err;
  EXPECT_EQ(nlohmann::json::parse(harmonized.out)["provenance"]["coarse_labels"]["CD4-positive, alpha-beta T cell"][dir.file("annotated.h5ad")],
            (nlohmann::json{"CD4-positive, alpha-beta memory T cell", "naive thymus-derived CD4-positive, alpha-beta T cell"}))
      << harmonized.out.substr(0, 3000);
}

TEST(TrainAnnotateCli, ModelsNamingOneTermDifferentlyAreAveragedAsOneClass) {
  // One model names pbmc3k's classes as the file does ("B", with CL ids from the label map),
  // another by their Cell Ontology names ("B cell"): `-m a -m b` has one column per term, and
  // says which classes one model lacks.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const auto names = test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "--label-map", label_map,
                                    "--label-dataset", "pbmc3k-seurat-labels", "-o", dir.file("names.h5"), "-q"});
  ASSERT_EQ(names.exit_code, 0) << names.err;
  const auto terms = test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "--label-map", label_map,
                                    "--label-dataset", "pbmc3k-seurat-labels", "--harmonize-labels", "-o", dir.file("terms.h5"), "-q"});
  ASSERT_EQ(terms.exit_code, 0) << terms.err;
  const CellTypeModel by_name = load_model(dir.file("names.h5"));
  const CellTypeModel by_term = load_model(dir.file("terms.h5"));
  ASSERT_NE(by_name.class_names, by_term.class_names);
  const auto both = test::run_cli({"annotate", "-m", dir.file("names.h5"), "-m", dir.file("terms.h5"), "-i", query, "--layer", "counts",
                                   "--csv", dir.file("both.csv"), "-o", dir.file("both.h5ad"), "--gene-table", table, "--json"});
  ASSERT_EQ(both.exit_code, 0) << both.err;
  EXPECT_NE(both.err.find("classes of different models naming one Cell Ontology term are one class: 'B cell' as 'B' (CL:0000236)"),
            std::string::npos)
      << both.err;
  const nlohmann::json result = nlohmann::json::parse(both.out);
  std::set<std::string> ids;
  std::size_t columns = 0;
  for (const auto& id : result["class_cl_ids"]) {
    ++columns;
    if (!id.get<std::string>().empty()) EXPECT_TRUE(ids.insert(id.get<std::string>()).second) << "two columns for " << id;
  }
  // Every class of the first model is a column; the second adds only the terms the first lacks.
  EXPECT_GE(columns, by_name.class_names.size());
  EXPECT_LT(columns, by_name.class_names.size() + by_term.class_names.size());
}

TEST(TrainAnnotateCli, ALabelMapIdTheOntologyLacksIsWarnedInTrainAndAnnotate) {
  // A label map giving DC an id the installed ontology does not have: kept (a newer CL release
  // may have it), said at training, and annotate --hierarchical counts its uncertain cells among
  // those no coarser term can take.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string ontology = test::shared_data("cell-ontology/cl-basic.obo");
  test::TempDir dir;
  {
    std::ofstream map(dir.file("map.tsv"));
    map << "label\tcl_id\nB\tCL:0000236\nNaive CD4 T\tCL:0000895\nMemory CD4 T\tCL:0000897\nCD14+ Mono\tCL:0001054\n"
           "CD8 T\tCL:0000625\nFCGR3A+ Mono\tCL:0002396\nNK\tCL:0000623\nDC\tCL:9999999\nPlatelet\tCL:0000233\n";
  }
  const auto train = test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "--label-map", dir.file("map.tsv"),
                                    "--ontology", ontology, "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_NE(train.err.find("warning: the label map gives 'DC' (CL:9999999) an id that the Cell Ontology does not have"), std::string::npos)
      << train.err;
  const CellTypeModel model = load_model(dir.file("model.h5"));
  const auto dc = std::find(model.class_names.begin(), model.class_names.end(), "DC") - model.class_names.begin();
  ASSERT_LT(static_cast<std::size_t>(dc), model.class_names.size());
  EXPECT_EQ(model.class_cl_ids[static_cast<std::size_t>(dc)], "CL:9999999");
  const auto annotate = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", query, "--layer", "counts", "--hierarchical",
                                       "--min-score", "0.99", "--ontology", ontology, "--csv", dir.file("out.csv"), "-o",
                                       dir.file("out.h5ad"), "--gene-table", table, "-q"});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  EXPECT_NE(annotate.err.find("their most probable class has no Cell Ontology id (DC) or one the ontology lacks"), std::string::npos)
      << annotate.err;
  // An obsolete term (CL:0000491, 'obsolete cytotoxic T cell': no parent) is said too.
  {
    std::ofstream map(dir.file("obsolete.tsv"));
    map << "label\tcl_id\nB\tCL:0000236\nNaive CD4 T\tCL:0000895\nMemory CD4 T\tCL:0000897\nCD14+ Mono\tCL:0001054\n"
           "CD8 T\tCL:0000491\nFCGR3A+ Mono\tCL:0002396\nNK\tCL:0000623\nDC\tCL:0000451\nPlatelet\tCL:0000233\n";
  }
  const auto obsolete = test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "--label-map", dir.file("obsolete.tsv"),
                                       "--ontology", ontology, "-o", dir.file("obsolete.h5"), "-q"});
  ASSERT_EQ(obsolete.exit_code, 0) << obsolete.err;
  EXPECT_NE(obsolete.err.find("warning: 'CD8 T' (CL:0000491) mapped to an obsolete Cell Ontology term"), std::string::npos) << obsolete.err;
  EXPECT_NE(obsolete.err.find("it has no parent there"), std::string::npos) << obsolete.err;
  EXPECT_EQ(train.err.find("obsolete"), std::string::npos) << train.err;
  // One the release replaces (CELLxGENE's export: CL:0000804 by CL:0000084 'T cell'): the class
  // records the replacement, whose id and name annotate writes beside the class's own name.
  const std::string cellxgene = test::shared_data("cell-ontology/CL-ontology-v2026-03-26.json");
  {
    std::ofstream map(dir.file("replaced.tsv"));
    map << "label\tcl_id\nB\tCL:0000236\nNaive CD4 T\tCL:0000895\nMemory CD4 T\tCL:0000897\nCD14+ Mono\tCL:0001054\n"
           "CD8 T\tCL:0000804\nFCGR3A+ Mono\tCL:0002396\nNK\tCL:0000623\nDC\tCL:0000451\nPlatelet\tCL:0000233\n";
  }
  const auto replaced = test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "--label-map", dir.file("replaced.tsv"),
                                       "--ontology", cellxgene, "-o", dir.file("replaced.h5"), "-q"});
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_NE(replaced.err.find("warning: 'CD8 T' (CL:0000804, replaced by CL:0000084 'T cell') mapped to an obsolete Cell Ontology term"),
            std::string::npos)
      << replaced.err;
  EXPECT_EQ(replaced.err.find("no parent"), std::string::npos) << replaced.err;
  const auto named = test::run_cli({"annotate", "-m", dir.file("replaced.h5"), "-i", query, "--layer", "counts", "--ontology", cellxgene,
                                    "--csv", dir.file("replaced.csv"), "--gene-table", table, "-q"});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_NE(test::read_file(dir.file("replaced.csv")).find(",CD8 T,"), std::string::npos);
  EXPECT_NE(test::read_file(dir.file("replaced.csv")).find(",CL:0000084,T cell,"), std::string::npos);
  EXPECT_EQ(test::read_file(dir.file("replaced.csv")).find("CL:0000804"), std::string::npos);
}

TEST(TrainAnnotateCli, HarmonizedValidationAveragesOverTheModelsClasses) {
  // pbmc3k (fine labels) and savercat (coarse: T/NK cells, Monocytes, B cells) under
  // --harmonize-labels: a held-out coarse cell none of whose classes is predicted is an error
  // (accuracy), not a class of F1 0 in macro-F1.
  CELLTYPER_REQUIRE_SHARED(fine, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(coarse, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const auto train = test::run_cli({"train", "-r", fine + "," + coarse, "-l", "obs:celltype", "--gene-table", table, "--label-map", label_map,
                                    "--harmonize-labels", "-o", dir.file("m.h5"), "--json", "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto summary = nlohmann::json::parse(train.out);
  const auto& validation = summary["validation"];
  std::set<std::string> classes;
  for (const auto& name : summary["classes"]) classes.insert(name.get<std::string>());
  // The per-class table lists the model's classes only, and macro-F1 is their mean.
  double sum = 0;
  int n = 0;
  for (const auto& row : validation["per_class"]) {
    EXPECT_EQ(classes.count(row["label"].get<std::string>()), 1U) << row;
    sum += row["f1"].get<double>();
    ++n;
  }
  ASSERT_GT(n, 0);
  EXPECT_NEAR(validation["macro"]["f1"].get<double>(), sum / n, 1e-9) << validation.dump();
  std::printf("harmonized validation: accuracy %.3f, macro-F1 %.3f over %d classes\n", validation["accuracy"].get<double>(),
              validation["macro"]["f1"].get<double>(), n);
  // Reference mode pools the same way: savercat's coarse labels are no classes of their own.
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  const auto on_the_fly = test::run_cli({"annotate", "--reference", fine + "," + coarse, "-l", "obs:celltype", "--gene-table", table,
                                         "--label-map", label_map, "--harmonize-labels", "-i", query, "--csv", dir.file("q.csv"), "--json", "-q"});
  ASSERT_EQ(on_the_fly.exit_code, 0) << on_the_fly.err;
  std::set<std::string> used;
  const auto on_the_fly_json = nlohmann::json::parse(on_the_fly.out);
  for (const auto& name : on_the_fly_json["classes"]) used.insert(name.get<std::string>());
  EXPECT_EQ(used, classes);
  const auto without = test::run_cli({"annotate", "-m", dir.file("m.h5"), "--harmonize-labels", "-i", query, "--csv", dir.file("x.csv")});
  EXPECT_EQ(without.exit_code, 2);
  EXPECT_NE(without.err.find("--harmonize-labels applies to reference mode (--reference) only"), std::string::npos) << without.err;
}

TEST(TrainAnnotateCli, BadInputIsOneClearLine) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 8);
  // Tiny references: real gene symbols, labels with one class / a singleton class; unknown genes.
  const std::string script = fmt::format(
      "import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
      "rng = np.random.default_rng(0)\n"
      "x = sp.csr_matrix(rng.poisson(2, size=(12, 5)).astype(np.float32))\n"
      "var = pd.DataFrame(index=['CD3E', 'MS4A1', 'LYZ', 'NKG7', 'GNLY'])\n"
      "def save(labels, path, var=var):\n"
      "    obs = pd.DataFrame({{'cell_type': pd.Categorical(labels)}}, index=[f'c{{i}}' for i in range(12)])\n"
      "    anndata.AnnData(x, obs=obs, var=var).write_h5ad(path)\n"
      "save(['T'] * 12, '{0}')\n"
      "save(['T'] * 6 + ['B'] * 5 + ['NK'], '{1}')\n"
      "save(['T'] * 6 + ['B'] * 6, '{2}', pd.DataFrame(index=['FOO1', 'FOO2', 'FOO3', 'FOO4', 'FOO5']))\n"
      "save(['T'] * 4 + ['t '] * 2 + [' B'] * 6, '{3}')\n",
      dir.file("one_class.h5ad"), dir.file("singleton.h5ad"), dir.file("no_genes.h5ad"), dir.file("spellings.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::ofstream(dir.file("not_a_model.h5")) << "text";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"train", "-r", reference, "-l", "obs:nope", "-g", store, "--features", "genept", "--gene-table", table, "-o", dir.file("a.h5")}, "'nope'"},
      {{"train", "-r", dir.file("one_class.h5ad"), "-l", "obs:cell_type", "-g", store, "--features", "genept", "--gene-table", table, "-o", dir.file("b.h5")},
       fmt::format("obs column 'cell_type' has 1 class among the usable cells of '{}': training needs at least 2", dir.file("one_class.h5ad"))},
      {{"train", "-r", fmt::format("{},{}", reference, reference), "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table,
        "-o", dir.file("c.h5")},
       fmt::format("{}: given twice as a reference", reference)},
      {{"train", "-r", dir.file("no_genes.h5ad"), "-l", "cell_type", "-g", store, "--features", "genept", "--gene-table", table, "-o", dir.file("d.h5")},
       fmt::format("{}: too few genes overlap the gene vectors", dir.file("no_genes.h5ad"))},
      {{"train", "-r", reference, "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table, "-o", dir.file("e.h5"), "--classifier", "knn", "--l2", "1"},
       "--l2 does not apply to --classifier knn: --l2 is a hyperparameter of logreg, not of knn"},
      // other libraries' names and misspelt flags point at ours
      {{"train", "-r", reference, "-l", "celltype", "-o", dir.file("e2.h5"), "--max-iter", "100"},
       "train: The following arguments were not expected: 100 --max-iter; --max-iter: scikit-learn's max_iter is --max-iterations"},
      {{"train", "-r", reference, "-l", "celltype", "-o", dir.file("e3.h5"), "--classifier", "xgboost", "--learning-rate", "0.1"},
       "--learning-rate does not apply to --classifier xgboost: XGBoost's learning_rate is its eta, --eta"},
      {{"train", "-r", reference, "-l", "celltype", "-o", dir.file("e4.h5"), "--lable", "celltype"}, "--lable: did you mean --label?"},
      // CellTypist's options say what does their work here
      {{"annotate", "-m", dir.file("not_a_model.h5"), "-i", reference, "-o", dir.file("k.h5ad"), "--p-thres", "0.5"},
       "--p-thres: CellTypist's p_thres is --min-score"},
      {{"annotate", "-m", dir.file("not_a_model.h5"), "-i", reference, "-o", dir.file("k.h5ad"), "--majority-voting"},
       "--majority-voting: CellTypist's majority voting is --over-clustering obs:COLUMN"},
      // and SingleR's
      {{"annotate", "-i", reference, "-o", dir.file("k.h5ad"), "--ref", reference, "--labels", "celltype", "--prune"},
       "--ref: SingleR's ref is --reference REF.h5ad (several: comma-separated) with --label obs:COLUMN (reference mode), or --model "
       "MODEL.h5 (a model trained once); --labels: SingleR's labels is --label obs:COLUMN, the references' column of cell types; --prune: "
       "SingleR's pruned labels: --unassign-unlike"},
      {{"annotate", "-m", dir.file("not_a_model.h5"), "-i", reference, "-o", dir.file("k.h5ad"), "--fine-tune", "--clusters", "leiden"},
       "--fine-tune: SingleR's fine-tuning has no counterpart"},
      {{"annotate", "-m", dir.file("not_a_model.h5"), "-i", reference, "-o", dir.file("k.h5ad"), "--gene-pooling", "shared"},
       "--gene-pooling applies to reference mode (--reference) only"},
      // a column of per-cell values is no label column
      {{"train", "-r", reference, "-l", "obs:nCount_RNA", "-o", dir.file("e7.h5")},
       "per-cell values (a count, a score, a cell id), not cell types; name the column of cell types with --label obs:COLUMN"},
      {{"train", "-r", reference, "-l", "celltype", "-o", dir.file("e5.h5"), "--classifier=knn", "--C", "1"},
       "--C: C is for --classifier logreg: scikit-learn's C is an inverse penalty"},
      {{"train", "-r", reference, "-l", "celltype", "-o", dir.file("e6.h5"), "--classifier=mlp", "--max_iter", "3"},
       "--max_iter: scikit-learn's MLPClassifier max_iter (passes over the cells) is --epochs"},
      {{"train", "-r", reference, "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table, "-o", dir.file("f.h5"), "--k", "0", "--classifier", "knn"},
       "k = 0 is outside [1, 1000] for classifier 'knn'"},
      {{"train", "-r", reference, "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table, "-o", dir.file("g.h5"), "--classifier", "forest"},
       "unknown classifier 'forest' (known: logreg, "},
      {{"annotate", "-m", dir.file("not_a_model.h5"), "-i", reference, "-o", dir.file("h.h5ad")}, "not a celltyper model"},
      {{"annotate", "-m", dir.file("not_a_model.h5"), "-i", reference, "-o", dir.file("i.csv")},
       fmt::format("--out {0} names a table, but --out writes an .h5ad (the input with celltyper_* columns): pass --csv {0}", dir.file("i.csv"))},
      {{"annotate", "-m", dir.file("not_a_model.h5"), "-i", reference, "-o", dir.file("j.zarr")}, "--out writes AnnData .h5ad only"},
  };
  for (const auto& c : cases) {
    const auto result = test::run_cli(c.args);
    SCOPED_TRACE(c.message);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_NE(result.err.find(c.message), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  }
  for (const char* name : {"a.h5", "b.h5", "c.h5", "d.h5", "e.h5", "e2.h5", "e3.h5", "e4.h5", "e5.h5", "e6.h5", "h.h5ad", "i.csv", "j.zarr", "k.h5ad"}) EXPECT_FALSE(std::filesystem::exists(dir.file(name))) << name;

  // A class of one cell is left out, with a warning; labels that differ only in surrounding
  // spaces or case are one class (the most frequent spelling).
  const auto singleton = test::run_cli({"train", "-r", dir.file("singleton.h5ad"), "-l", "cell_type", "-g", store, "--features", "genept",
                                        "--gene-table", table, "-o", dir.file("singleton.h5"), "--validation-fraction", "0"});
  ASSERT_EQ(singleton.exit_code, 0) << singleton.err;
  EXPECT_NE(singleton.err.find("warning: obs:cell_type: class 'NK' has a single cell: left out"), std::string::npos) << singleton.err;
  EXPECT_EQ(load_model(dir.file("singleton.h5")).class_names, (std::vector<std::string>{"B", "T"}));
  const auto spellings = test::run_cli({"train", "-r", dir.file("spellings.h5ad"), "-l", "cell_type", "-g", store, "--features", "genept",
                                        "--gene-table", table, "-o", dir.file("spellings.h5"), "--validation-fraction", "0"});
  ASSERT_EQ(spellings.exit_code, 0) << spellings.err;
  EXPECT_NE(spellings.err.find("2 labels differ from another only in surrounding spaces or letter case, read as one class: "
                               "' B' (6 cells) as 'B', 't ' (2 cells) as 'T'"),
            std::string::npos)
      << spellings.err;
  EXPECT_EQ(load_model(dir.file("spellings.h5")).class_names, (std::vector<std::string>{"B", "T"}));
}

TEST(TrainAnnotateCli, AGeneStoreTheExpressionRouteDoesNotReadIsSaid) {
  // --genes with the default expression route changes nothing (no gene vectors are read): said,
  // in train and in annotate's reference mode, instead of being silently ignored.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 16);
  const auto train = test::run_cli({"train", "-r", reference, "--layer", "counts", "-l", "obs:bulk_labels", "-g", store, "-o", dir.file("m.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const std::string said = "warning: --genes " + store + " is not used: the expression route (--features expression, the default) reads no gene store";
  EXPECT_NE(train.err.find(said), std::string::npos) << train.err;
  const auto annotate = test::run_cli({"annotate", "--reference", reference, "--layer", "counts", "-l", "obs:bulk_labels", "-g", store, "-i",
                                       reference, "--csv", dir.file("a.csv"), "-q"});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  EXPECT_NE(annotate.err.find(said), std::string::npos) << annotate.err;
  const auto genept = test::run_cli({"train", "-r", reference, "--layer", "counts", "-l", "obs:bulk_labels", "-g", store, "--features", "genept",
                                     "-o", dir.file("g.h5"), "-q"});
  ASSERT_EQ(genept.exit_code, 0) << genept.err;
  EXPECT_EQ(genept.err.find("is not used"), std::string::npos) << genept.err;
}

TEST(TrainAnnotateCli, AModelTrainedWithAnotherGeneTableResolvesQueriesWithIt) {
  // A model trained with --gene-table (another species' table, here a copy of a human TSV)
  // resolves a query's genes with that table when annotate is given none: not with the default
  // org.Hs.eg.db. A missing --gene-table is a missing file (exit 2).
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  CELLTYPER_REQUIRE_SHARED(human, "gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string table = dir.file("species_genes.tsv");
  std::filesystem::copy_file(human, table);
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "--layer", "counts", "-l", "obs:bulk_labels", "--gene-table", table, "-o", dir.file("m.h5"),
                           "-q"})
                .exit_code,
            0);
  const auto described = test::run_cli({"inspect", dir.file("m.h5")});
  EXPECT_NE(described.out.find("Gene table  " + table), std::string::npos) << described.out;
  const auto given = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--layer", "counts", "--gene-table", table, "--csv",
                                    dir.file("given.csv"), "-q"});
  ASSERT_EQ(given.exit_code, 0) << given.err;
  const auto recorded = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--layer", "counts", "--csv", dir.file("recorded.csv")});
  ASSERT_EQ(recorded.exit_code, 0) << recorded.err;
  EXPECT_NE(recorded.err.find("note: gene table " + table + ", which the model was trained with"), std::string::npos) << recorded.err;
  EXPECT_EQ(test::read_file(dir.file("recorded.csv")), test::read_file(dir.file("given.csv")));
  // Another file under that name (other content) is not taken for it, nor is a table gone (the
  // model sent to another machine): said; the default table serves, since it gives the model's
  // genes the ids they were trained with (here the same species' table).
  std::ofstream(table, std::ios::app) << "999999999\tNOT_A_GENE" << std::string(8, '\t') << "\n";  // (the header's 10 fields)
  const auto changed = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--layer", "counts", "--csv", dir.file("changed.csv")});
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_NE(changed.err.find("warning: the model was trained with gene table " + table + ", which holds other content now than when the model "
                             "was trained: the default gene table "),
            std::string::npos)
      << changed.err;
  EXPECT_NE(changed.err.find("serves (it gives 100% of the model's"), std::string::npos) << changed.err;
  EXPECT_EQ(test::read_file(dir.file("changed.csv")), test::read_file(dir.file("given.csv")));
  std::filesystem::remove(table);
  const auto gone = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--layer", "counts", "--csv", dir.file("gone.csv")});
  ASSERT_EQ(gone.exit_code, 0) << gone.err;
  EXPECT_NE(gone.err.find("warning: the model was trained with gene table " + table + ", which is not on this machine: the default gene table"),
            std::string::npos)
      << gone.err;
  const auto gone_json = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--layer", "counts", "--csv", dir.file("gone2.csv"),
                                        "--json", "-q"});
  ASSERT_EQ(gone_json.exit_code, 0) << gone_json.err;
  EXPECT_NE(nlohmann::json::parse(gone_json.out)["warnings"].dump().find("which is not on this machine"), std::string::npos) << gone_json.out;
  // Another machine's default table (org.Hs.eg.db installed elsewhere): this one's serves, unsaid.
  if (const std::string standard = default_gene_table_path(); !standard.empty() && standard.ends_with("org.Hs.eg.sqlite")) {
    std::filesystem::create_directories(dir.file("elsewhere"));
    std::filesystem::copy_file(standard, dir.file("elsewhere/org.Hs.eg.sqlite"));
    ASSERT_EQ(test::run_cli({"train", "-r", reference, "--layer", "counts", "-l", "obs:bulk_labels", "--gene-table", dir.file("elsewhere/org.Hs.eg.sqlite"),
                             "-o", dir.file("elsewhere.h5"), "-q"})
                  .exit_code,
              0);
    std::filesystem::remove_all(dir.file("elsewhere"));
    const auto moved = test::run_cli({"annotate", "-m", dir.file("elsewhere.h5"), "-i", reference, "--layer", "counts", "--csv",
                                      dir.file("elsewhere.csv")});
    ASSERT_EQ(moved.exit_code, 0) << moved.err;
    EXPECT_EQ(moved.err.find("gene table"), std::string::npos) << moved.err;
  }
  // A table whose ids are not the default's (another species', or the lab's own numbering): once
  // gone, the default would give the query's genes other genes' ids, so the model's own genes
  // (their symbols) resolve the query: the labels of the table itself.
  {
    std::ifstream in(human);
    std::ofstream out(dir.file("own_ids.tsv"));
    std::string line;
    std::getline(in, line);
    out << line << '\n';
    while (std::getline(in, line)) {
      const auto tab = line.find('\t');
      out << std::stoll(line.substr(0, tab)) + 900000000LL << line.substr(tab) << '\n';
    }
  }
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "--layer", "counts", "-l", "obs:bulk_labels", "--gene-table", dir.file("own_ids.tsv"), "-o",
                           dir.file("own.h5"), "-q"})
                .exit_code,
            0);
  const auto own_given = test::run_cli({"annotate", "-m", dir.file("own.h5"), "-i", reference, "--layer", "counts", "--gene-table",
                                        dir.file("own_ids.tsv"), "--csv", dir.file("own_given.csv"), "-q"});
  ASSERT_EQ(own_given.exit_code, 0) << own_given.err;
  std::filesystem::remove(dir.file("own_ids.tsv"));
  const auto own_gone = test::run_cli({"annotate", "-m", dir.file("own.h5"), "-i", reference, "--layer", "counts", "--csv", dir.file("own_gone.csv")});
  ASSERT_EQ(own_gone.exit_code, 0) << own_gone.err;
  EXPECT_NE(own_gone.err.find("which is not on this machine: the query's var names are matched to the model's own "), std::string::npos)
      << own_gone.err;
  EXPECT_NE(own_gone.err.find("which gives only 0% of them the ids they were trained with"), std::string::npos) << own_gone.err;
  // (the model keeps its genes' aliases from the table: 751 of the 752 model genes matched, every
  // label of the run given the table; without them 701 genes and 99.4%; the default table's ids:
  // 11% right in an audit's mouse model)
  const auto labels = [](const std::string& csv) {
    std::vector<std::string> column;
    std::istringstream in(csv);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      const auto first = line.find(',');
      column.push_back(line.substr(first + 1, line.find(',', first + 1) - first - 1));
    }
    return column;
  };
  const auto given_labels = labels(test::read_file(dir.file("own_given.csv")));
  const auto gone_labels = labels(test::read_file(dir.file("own_gone.csv")));
  ASSERT_EQ(given_labels.size(), gone_labels.size());
  std::size_t same = 0;
  for (std::size_t i = 0; i < given_labels.size(); ++i) same += given_labels[i] == gone_labels[i] ? 1 : 0;
  EXPECT_GE(static_cast<double>(same), 0.995 * static_cast<double>(given_labels.size())) << same << " of " << given_labels.size();
  EXPECT_NE(own_gone.err.find("the query measures 751 of 752 model genes"), std::string::npos) << own_gone.err;
  // A relative --gene-table is recorded as an absolute path (the model is used from anywhere).
  std::filesystem::copy_file(human, table);
  const auto relative = test::run_program({"/bin/sh", "-c",
                                           fmt::format("cd '{}' && '{}' train -r '{}' --layer counts -l obs:bulk_labels --gene-table species_genes.tsv "
                                                       "-o rel.h5 -q",
                                                       dir.path().string(), CELLTYPER_CLI_PATH, reference)});
  ASSERT_EQ(relative.exit_code, 0) << relative.err;
  const auto described_relative = test::run_cli({"inspect", dir.file("rel.h5")});
  EXPECT_NE(described_relative.out.find("Gene table  " + std::filesystem::path(table).lexically_normal().string()), std::string::npos)
      << described_relative.out;
  const auto missing = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--gene-table", dir.file("absent.tsv"), "--csv",
                                      dir.file("x.csv")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("gene table " + dir.file("absent.tsv") + " does not exist"), std::string::npos) << missing.err;
}

TEST(TrainAnnotateCli, AMouseModelOnAHumanQuerySaysTheSpeciesDiffer) {
  // Mouse references read through the human gene table (same-named genes): the species warning
  // names the genes left out; the model remembers its references' naming, and a human query then
  // hears that it is likely another species (not only that its cells are unlike the reference).
  CELLTYPER_REQUIRE_SHARED(mouse, "actinn-tabula-muris-mouse/actinn_train_mouse.h5ad");
  CELLTYPER_REQUIRE_SHARED(human, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  test::TempDir dir;
  const auto train = test::run_cli({"train", "-r", mouse, "-l", "obs:celltype", "-o", dir.file("mouse.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_NE(train.err.find("symbols are cased like mouse genes"), std::string::npos) << train.err;
  EXPECT_NE(train.err.find("vars match no gene and are left out (e.g. "), std::string::npos) << train.err;
  EXPECT_NE(train.err.find("a gene table of the data's species (--gene-table) keeps them"), std::string::npos) << train.err;
  const auto human_query = test::run_cli({"annotate", "-m", dir.file("mouse.h5"), "-i", human, "--layer", "counts", "--csv", dir.file("h.csv"), "-q"});
  ASSERT_EQ(human_query.exit_code, 0) << human_query.err;
  EXPECT_NE(human_query.err.find("likely species mismatch: the model's references name their genes like mouse genes"), std::string::npos)
      << human_query.err;
  const auto mouse_query = test::run_cli({"annotate", "-m", dir.file("mouse.h5"), "-i", mouse, "--csv", dir.file("m.csv"), "-q"});
  ASSERT_EQ(mouse_query.exit_code, 0) << mouse_query.err;
  EXPECT_EQ(mouse_query.err.find("the model's references name their genes like mouse genes"), std::string::npos) << mouse_query.err;
}

TEST(TrainAnnotateCli, SeuratObjectsAndRMatricesReadThroughR) {
  // Seurat users' files as they are: a Seurat object saved with saveRDS (its default assay an
  // integration-like assay of 500 scaled genes: the RNA counts are read) and a dgCMatrix (GEO's
  // .rds supplements) annotate as the .h5ad of the same counts does; the Seurat object trains the
  // .h5ad's model from its meta.data; an object R cannot export, and no R at all, are one line.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({"/usr/bin/Rscript", "-e", "suppressPackageStartupMessages(library(Seurat))"}).exit_code != 0) {
    GTEST_SKIP() << "no R with Seurat (scripts/test.sh installs r-cran-seurat)";
  }
  test::TempDir dir;
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, scipy.io, scipy.sparse as sp\n"
                   "a = anndata.read_h5ad('{0}')[1::3].copy()\n"
                   "a.X = sp.csr_matrix(a.X, dtype=np.float32)\n"
                   "a.write_h5ad('{1}/counts.h5ad')\n"
                   "scipy.io.mmwrite('{1}/m.mtx', sp.csr_matrix(a.X).T.tocoo())\n"
                   "open('{1}/genes.txt', 'w').write('\\n'.join(a.var_names) + '\\n')\n"
                   "open('{1}/cells.txt', 'w').write('\\n'.join(a.obs_names) + '\\n')\n"
                   "a.obs[['celltype']].to_csv('{1}/meta.csv')\n",
                   reference, dir.path().string())});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto saved = test::run_program(
      {"/usr/bin/Rscript", "-e",
       fmt::format("suppressPackageStartupMessages({{library(Matrix); library(Seurat)}})\n"
                   "setwd('{0}')\n"
                   "m <- as(readMM('m.mtx'), 'CsparseMatrix'); rownames(m) <- readLines('genes.txt'); colnames(m) <- readLines('cells.txt')\n"
                   "o <- suppressWarnings(CreateSeuratObject(m, meta.data = read.csv('meta.csv', row.names = 1)))\n"
                   "o <- NormalizeData(o, verbose = FALSE)\n"
                   "scaled <- as.matrix(GetAssayData(o, slot = 'data')[1:500, ])\n"
                   "o[['integrated']] <- CreateAssayObject(data = scaled); DefaultAssay(o) <- 'integrated'\n"
                   "saveRDS(o, 'seurat.rds'); saveRDS(m, 'matrix.rds'); saveRDS(list(a = 1), 'list.rds')\n"
                   "if (requireNamespace('SingleCellExperiment', quietly = TRUE)) {{\n"
                   "  sce <- SingleCellExperiment::SingleCellExperiment(assays = list(logcounts = log1p(m), counts = m),\n"
                   "                                                    colData = S4Vectors::DataFrame(read.csv('meta.csv', row.names = 1)))\n"
                   "  saveRDS(sce, 'sce.rds')\n"
                   "  colnames(sce) <- NULL; sce$Barcode <- colnames(m); saveRDS(sce, 'sce_barcodes.rds')\n"
                   "}}\n"
                   "s <- o[, 1:40]; s$note <- rep(c('\\u03b3\\u03b4 T', 'B'), 20)\n"
                   "s$cluster <- factor(rep(c('10', '2', NA), length.out = 40), levels = c('2', '10'))\n"
                   "s$grade <- factor(rep(c('low', 'high'), 20), levels = c('low', 'high'), ordered = TRUE); saveRDS(s, 'utf8.rds')\n"
                   "d <- data.frame(gene = rownames(m), as.matrix(m), check.names = FALSE); saveRDS(d, 'frame.rds')\n"
                   "saveRDS(read.csv('meta.csv', row.names = 1), 'meta.rds')\n"
                   "saveRDS(suppressWarnings(CreateSeuratObject(m, assay = 'SCT')), 'sct.rds')\n"
                   "writeBin(head(readBin('seurat.rds', 'raw', file.size('seurat.rds')), 5000), 'cut.rds')\n",
                   dir.path().string())});
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-o", dir.file("m.h5"), "-q"}).exit_code, 0);
  ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("counts.h5ad"), "-o", dir.file("counts_out.h5ad"), "--csv",
                           dir.file("counts.csv"), "-q"})
                .exit_code,
            0);
  const std::string expected = test::read_file(dir.file("counts.csv"));
  ASSERT_FALSE(expected.empty());
  // (a SingleCellExperiment whose first assay is logcounts: its counts assay is read)
  ASSERT_TRUE(std::filesystem::exists(dir.file("sce.rds"))) << "no SingleCellExperiment (scripts/test.sh installs r-bioc-singlecellexperiment)";
  // (and one without cell names, as DropletUtils::read10xCounts makes it: named by its Barcode column)
  // (a data frame of counts as read.csv gives it, the gene names in a text column: frame.rds)
  for (const std::string name : {"seurat", "matrix", "sce", "sce_barcodes", "frame"}) {
    const auto annotated = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file(name + ".rds")});
    ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
    EXPECT_EQ(test::read_file(dir.file(name + ".rds.celltyper.csv")), expected) << name;
  }
  const auto described = test::run_cli({"inspect", dir.file("seurat.rds")});
  EXPECT_NE(described.out.find("rds, read by R: Seurat, assay RNA, counts"), std::string::npos) << described.out;
  // An object whose only assay is SCT: its counts are read, and a note says they are SCTransform's.
  const auto sct = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("sct.rds"), "--csv", dir.file("sct.csv")});
  ASSERT_EQ(sct.exit_code, 0) << sct.err;
  EXPECT_EQ(test::read_file(dir.file("sct.csv")), expected);
  EXPECT_NE(sct.err.find("note: " + dir.file("sct.rds") + ": the Seurat object has no RNA assay: assay SCT's counts read, SCTransform's "
                         "corrected values (depth-equalised, not the sequenced counts)"),
            std::string::npos)
      << sct.err;
  // Under the C locale (containers, cron) non-ASCII metadata still reads as UTF-8.
  ::setenv("LC_ALL", "C", 1);
  const auto utf8 = test::run_cli({"inspect", dir.file("utf8.rds")});
  ::unsetenv("LC_ALL");
  ASSERT_EQ(utf8.exit_code, 0) << utf8.err;
  EXPECT_NE(utf8.out.find("\xce\xb3\xce\xb4 T 20"), std::string::npos) << utf8.out;
  // Factors stay categories (seurat_clusters' "0".."15" are no numbers), with R's levels in order,
  // NA as a missing value and ordered factors ordered.
  EXPECT_NE(utf8.out.find("categorical   2 categories: 10 14, 2 13"), std::string::npos) << utf8.out;
  ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", dir.file("utf8.rds"), "-o", dir.file("utf8.h5ad"), "-q"}).exit_code, 0);
  const auto factors = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata\n"
                   "obs = anndata.read_h5ad('{}').obs\n"
                   "print(list(obs['cluster'].cat.categories), int(obs['cluster'].isna().sum()), obs['cluster'].iloc[0],\n"
                   "      list(obs['grade'].cat.categories), obs['grade'].cat.ordered, obs['orig.ident'].dtype)\n",
                   dir.file("utf8.h5ad"))});
  ASSERT_EQ(factors.exit_code, 0) << factors.err;
  EXPECT_EQ(factors.out, "['2', '10'] 13 10 ['low', 'high'] True category\n");
  // Trained on the Seurat object's meta.data labels: the model of the .h5ad (same labels, scores).
  for (const std::string name : {"counts.h5ad", "seurat.rds"}) {
    ASSERT_EQ(test::run_cli({"train", "-r", dir.file(name), "-l", "obs:celltype", "-o", dir.file(name + ".model"), "-q"}).exit_code, 0) << name;
    ASSERT_EQ(test::run_cli({"annotate", "-m", dir.file(name + ".model"), "-i", dir.file("counts.h5ad"), "-o", dir.file(name + ".out.h5ad"),
                             "--csv", dir.file(name + ".csv"), "-q"})
                  .exit_code,
              0);
  }
  EXPECT_EQ(test::read_file(dir.file("seurat.rds.csv")), test::read_file(dir.file("counts.h5ad.csv")));
  const auto list = test::run_cli({"inspect", dir.file("list.rds")});
  EXPECT_EQ(list.exit_code, 2);
  EXPECT_NE(list.err.find("list.rds: R could not export it (exit status 1): a list object: celltyper reads Seurat objects"),
            std::string::npos)
      << list.err;
  const auto meta = test::run_cli({"inspect", dir.file("meta.rds")});
  EXPECT_EQ(meta.exit_code, 2);
  EXPECT_NE(meta.err.find("a data.frame with 1 text column (celltype): not a count table (cell metadata?)"), std::string::npos) << meta.err;
  const auto cut = test::run_cli({"inspect", dir.file("cut.rds")});
  EXPECT_EQ(cut.exit_code, 2);
  EXPECT_NE(cut.err.find("(the file looks truncated or damaged: copy it again, or save it again with saveRDS)"), std::string::npos) << cut.err;
  ::setenv("CELLTYPER_RSCRIPT", "/nonexistent/Rscript", 1);
  const auto no_r = test::run_cli({"inspect", dir.file("seurat.rds")});
  ::unsetenv("CELLTYPER_RSCRIPT");
  EXPECT_EQ(no_r.exit_code, 4);
  EXPECT_NE(no_r.err.find("reading an .rds file needs R (Rscript '/nonexistent/Rscript'), which was not found"), std::string::npos) << no_r.err;
}

TEST(TrainAnnotateCli, NamedSamplesGetASummaryAndWarningsOfTheirOwn) {
  // savercat's three chemistries in one file (obs tech): --group obs:tech gives each its cells,
  // labels and doubts; VDJ's 31 cells under 200 detected genes (6% of its 547, 1.6% of the file)
  // are warned about by sample, where the whole file stays under the 5% rule.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("m.h5"), "-q"}).exit_code, 0);
  const auto plain = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", query, "--gene-table", table, "--csv", dir.file("plain.csv")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.err.find("per sample"), std::string::npos) << plain.err;
  EXPECT_EQ(plain.err.find("detected genes"), std::string::npos) << plain.err;
  const auto named = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", query, "--gene-table", table, "--csv", dir.file("named.csv"),
                                    "--group", "obs:tech"});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_EQ(test::read_file(dir.file("named.csv")), test::read_file(dir.file("plain.csv")));  // (the labels are the same)
  EXPECT_NE(named.err.find("per sample (obs tech): cells, median score, below 0.5, unlike the reference, most frequent labels\n  V2: 588 cells, "),
            std::string::npos)
      << named.err;
  EXPECT_NE(named.err.find("\n  VDJ: 547 cells, "), std::string::npos) << named.err;
  EXPECT_NE(named.err.find("warning: samples with many cells of fewer than 200 detected genes (empty droplets or debris?), by obs tech: "
                           "'VDJ' 31 of 547 (6%)"),
            std::string::npos)
      << named.err;
  const auto json = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", query, "--gene-table", table, "--csv", dir.file("json.csv"),
                                   "--group", "obs:tech", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto samples = nlohmann::json::parse(json.out)["samples"];
  ASSERT_EQ(samples.size(), 3u) << json.out;
  std::int64_t cells = 0;
  for (const auto& sample : samples) {
    std::int64_t labelled = 0;
    for (const auto& [label, count] : sample["label_counts"].items()) labelled += count.get<std::int64_t>();
    EXPECT_EQ(labelled, sample["n_cells"].get<std::int64_t>()) << sample.dump();
    EXPECT_LE(sample["n_low_score"].get<std::int64_t>(), sample["n_cells"].get<std::int64_t>());
    EXPECT_LE(sample["n_unlike_reference"].get<std::int64_t>(), sample["n_similarity_judged"].get<std::int64_t>());
    cells += sample["n_cells"].get<std::int64_t>();
  }
  EXPECT_EQ(cells, 2000);
  EXPECT_EQ(samples[2]["level"], "VDJ");
  EXPECT_EQ(samples[2]["n_low_genes"], 31);
  // A column that is not there: the columns that are.
  const auto missing = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", query, "--gene-table", table, "--csv", dir.file("x.csv"),
                                      "--group", "obs:batch"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("batch"), std::string::npos) << missing.err;
  // The reference by its own labels: a label of one cell in 480 reads "<1%" (not "0%"), and the
  // label beside it ">99%" (not "100%").
  const auto own = test::run_cli({"annotate", "-m", dir.file("m.h5"), "-i", reference, "--gene-table", table, "--csv", dir.file("own.csv"),
                                  "--group", "obs:celltype"});
  ASSERT_EQ(own.exit_code, 0) << own.err;
  EXPECT_NE(own.err.find("\n  CD14+ Mono: 480 cells, 1.00, 0.0%, 0.0%; CD14+ Mono >99%, FCGR3A+ Mono <1%\n"), std::string::npos) << own.err;
  EXPECT_NE(own.err.find("\n  B: 344 cells, 1.00, 0.0%, 0.0%; B 100%\n"), std::string::npos) << own.err;
}

}  // namespace
}  // namespace celltyper
