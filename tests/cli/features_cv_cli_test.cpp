// End-to-end tests of the expression feature route, ensembles of both routes, ontology-aware
// (hierarchical) annotation and `celltyper cv` on real data (savercat, pbmc3k, pbmc68k_reduced).
#include <celltyper/annotate.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <random>
#include <sstream>

namespace celltyper {
namespace {

TEST(FeaturesCli, ExpressionRouteEnsembleAndHierarchicalAnnotation) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  CELLTYPER_REQUIRE_SHARED(ontology, "cell-ontology/cl-basic.obo");
  if (test::run_program({test::system_python(), "-c", "import anndata, sklearn"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 32, 5);
  const auto train = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "-g", store, "--gene-table", table, "--features",
                                    "expression", "--n-genes", "800", "--label-map", label_map, "--label-dataset", "pbmc3k-seurat-labels",
                                    "-o", dir.file("expr.h5"), "--seed", "2", "--json"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto summary = nlohmann::json::parse(train.out);
  EXPECT_EQ(summary["features"], "expression");
  EXPECT_EQ(summary["n_genes"], 800);
  EXPECT_EQ(summary["provenance"]["features"], "expression");
  // The CellTypist method separates pbmc3k's types well within one dataset.
  EXPECT_GT(summary["validation"]["macro"]["f1"].get<double>(), 0.75) << summary["validation"].dump();
  std::printf("pbmc3k validation (expression, logreg): accuracy %.3f, macro-F1 %.3f\n", summary["validation"]["accuracy"].get<double>(),
              summary["validation"]["macro"]["f1"].get<double>());
  const auto genept = test::run_cli({"train", "-r", reference, "-l", "celltype", "-g", store, "--features", "genept", "--gene-table", table, "--label-map", label_map,
                                     "--label-dataset", "pbmc3k-seurat-labels", "-o", dir.file("genept.h5"), "-q"});
  ASSERT_EQ(genept.exit_code, 0) << genept.err;
  // --dims is refused for the expression route.
  const auto dims = test::run_cli({"train", "-r", reference, "-l", "celltype", "-g", store, "--gene-table", table, "--features", "expression",
                                   "--dims", "8", "-o", dir.file("x.h5")});
  EXPECT_EQ(dims.exit_code, 2);
  EXPECT_NE(dims.err.find("--dims applies to --features genept only"), std::string::npos) << dims.err;

  // Ensemble of both routes, no gene table (the models' own genes, united), hierarchical labels.
  const auto annotate = test::run_cli({"annotate", "-m", dir.file("expr.h5"), "-m", dir.file("genept.h5"), "-i", query, "--layer", "counts",
                                       "-o", dir.file("out.h5ad"), "--csv", dir.file("out.csv"), "--hierarchical", "--ontology", ontology,
                                       "--min-score", "0.6", "--json", "-q"});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  const auto flat = test::run_cli({"annotate", "-m", dir.file("expr.h5"), "-i", query, "--layer", "counts", "-o", dir.file("flat.h5ad"),
                                   "--gene-table", table, "-q"});
  ASSERT_EQ(flat.exit_code, 0) << flat.err;
  const std::string verify = fmt::format(
      "import anndata, numpy as np, json, re\n"
      "a = anndata.read_h5ad('{0}')\n"
      "for c in ['celltyper_label', 'celltyper_score', 'celltyper_ontology_id', 'celltyper_flat_label']:\n"
      "    assert c in a.obs, c\n"
      "names = list(a.uns['celltyper_probability_classes']); ids = list(a.uns['celltyper_probability_cl_ids'])\n"
      "p = a.obsm['celltyper_probabilities']; assert p.shape == (700, 9) and np.allclose(p.sum(1), 1, atol=1e-4)\n"
      "# parents of every CL term from the OBO file\n"
      "parents = {{}}; term_name = {{}}; cur = None\n"
      "for line in open('{1}'):\n"
      "    line = line.strip()\n"
      "    if line.startswith('id: CL:'): cur = line[4:]; parents[cur] = []\n"
      "    elif line.startswith('[') : cur = None\n"
      "    elif cur and line.startswith('is_a: CL:'): parents[cur].append(line[6:16])\n"
      "    elif cur and line.startswith('name: '): term_name[cur] = line[6:]\n"
      "def anc(t):\n"
      "    seen, stack = set(), [t]\n"
      "    while stack:\n"
      "        x = stack.pop()\n"
      "        if x in seen: continue\n"
      "        seen.add(x); stack += parents.get(x, [])\n"
      "    return seen\n"
      "labels = a.obs['celltyper_label'].astype(str).values; score = a.obs['celltyper_score'].values\n"
      "onto = a.obs['celltyper_ontology_id'].astype(str).values\n"
      "coarser = 0\n"
      "for i in range(700):\n"
      "    if labels[i] == 'Unassigned':\n"
      "        assert p[i].max() < 0.6, (i, p[i].max()); continue\n"
      "    term = onto[i]; assert term.startswith('CL:'), (labels[i], term)\n"
      "    mass = sum(p[i, k] for k in range(9) if ids[k] and term in anc(ids[k]))\n"
      "    assert abs(mass - score[i]) < 1e-4 and mass >= 0.6 - 1e-6, (i, labels[i], mass, score[i])\n"
      "    assert a.obs['celltyper_ontology_name'].iloc[i] == term_name[term], (term, a.obs['celltyper_ontology_name'].iloc[i])\n"
      "    if labels[i] not in names: coarser += 1\n"
      "flat = a.obs['celltyper_flat_label'].astype(str).values\n"
      "print('hierarchical: %d of 700 cells got a coarser CL term than a class; %d Unassigned' % (coarser, (labels == 'Unassigned').sum()))\n"
      "assert coarser > 0\n"
      "b = anndata.read_h5ad('{2}'); assert 'celltyper_flat_label' not in b.obs and b.obsm['celltyper_probabilities'].shape == (700, 9)\n"
      "# flat labels: each class's CL id named by the installed ontology (no --ontology given)\n"
      "for label, term, name in zip(b.obs['celltyper_label'].astype(str), b.obs['celltyper_ontology_id'].astype(str), b.obs['celltyper_ontology_name'].astype(str)):\n"
      "    assert name == term_name[term], (label, term, name)\n"
      "# the CSV holds the .h5ad's celltyper_* columns, in its order, with its values (flat label and gene coverage included)\n"
      "import pandas as pd\n"
      "t = pd.read_csv('{3}', index_col='obs_name')\n"
      "cols = [c for c in a.obs.columns if c.startswith('celltyper_')]\n"
      "assert list(t.columns) == cols, (list(t.columns), cols)\n"
      "assert list(t.index) == list(a.obs_names)\n"
      "for c in cols:\n"
      "    if a.obs[c].dtype == 'category' or a.obs[c].dtype == object:\n"
      "        assert (t[c].fillna('').astype(str).values == a.obs[c].astype(str).replace('nan', '').values).all(), c\n"
      "    else:\n"
      "        assert np.allclose(t[c].values.astype(float), a.obs[c].values.astype(float), atol=1e-5, equal_nan=True), c\n",
      dir.file("out.h5ad"), ontology, dir.file("flat.h5ad"), dir.file("out.csv"));
  const auto run = test::run_program({test::system_python(), "-c", verify});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  std::printf("%s", run.out.c_str());
}

TEST(CvCli, SavercatLeaveOneTechOut) {
  CELLTYPER_REQUIRE_SHARED(reference, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  CELLTYPER_REQUIRE_SHARED(ontology, "cell-ontology/cl-basic.obo");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  const std::string store = test::random_gene_store(dir, 32, 5);
  const auto cv = test::run_cli({"cv", "-r", reference, "-l", "obs:celltype", "--group", "obs:tech", "--classifier", "logreg", "--features",
                                 "genept,expression", "--n-genes", "1000", "-g", store, "--gene-table", table, "--label-map", label_map,
                                 "--label-dataset", "savercat-pbmc-3tech", "--ontology", ontology, "--hierarchical", "--json",
                                 dir.file("cv.json"), "--report", dir.file("cv.html"), "-q"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  std::printf("%s", cv.out.c_str());
  std::ifstream in(dir.file("cv.json"));
  const auto json = nlohmann::json::parse(in);
  const std::vector<std::string> methods = {"logreg:genept", "logreg:expression", "ensemble", "logreg:genept+hierarchical",
                                            "logreg:expression+hierarchical", "ensemble+hierarchical"};
  EXPECT_EQ(json["methods"], nlohmann::json(methods));
  ASSERT_EQ(json["folds"].size(), 3u);
  // Fold sizes are the technologies' cell counts (obs.tsv beside the file).
  std::map<std::string, int> per_tech;
  std::ifstream obs(reference.substr(0, reference.size() - 5) + ".obs.tsv");
  std::string line;
  std::getline(obs, line);
  while (std::getline(obs, line)) {
    const auto first = line.find('\t');
    ++per_tech[line.substr(first + 1, line.find('\t', first + 1) - first - 1)];
  }
  int total = 0;
  for (const auto& fold : json["folds"]) {
    EXPECT_EQ(fold["n_test"].get<int>(), per_tech[fold["group"].get<std::string>()]) << fold["group"];
    EXPECT_EQ(fold["n_train"].get<int>() + fold["n_test"].get<int>(), 2000);
    total += fold["n_test"].get<int>();
    for (const auto& method : methods) {
      const auto& m = fold["methods"][method];
      EXPECT_EQ(m["n_cells"].get<int>(), fold["n_test"].get<int>()) << method;
      EXPECT_GE(m["macro"]["f1"].get<double>(), 0.0);
      EXPECT_LE(m["macro"]["f1"].get<double>(), 1.0);
      EXPECT_EQ(m["ontology"]["n_mapped"].get<int>(), fold["n_test"].get<int>()) << method;  // every savercat label maps to CL
    }
  }
  EXPECT_EQ(total, 2000);
  // Pooled out-of-fold metrics: every labelled cell once; pooled accuracy is the cell-weighted
  // mean of the folds' accuracies.
  for (const auto& method : methods) {
    const auto& pooled = json["pooled"][method];
    EXPECT_EQ(pooled["n_cells"].get<int>(), 2000) << method;
    double correct = 0;
    for (const auto& fold : json["folds"]) correct += fold["methods"][method]["accuracy"].get<double>() * fold["n_test"].get<int>();
    EXPECT_NEAR(pooled["accuracy"].get<double>(), correct / 2000, 1e-9) << method;
  }
  // The HTML report: well-formed XML, one section per method (best first), a cell map of the
  // held-out genept embeddings.
  const std::string check = fmt::format(
      "import xml.etree.ElementTree as ET, json\n"
      "root = ET.parse('{0}').getroot()\n"
      "ns = '{{http://www.w3.org/1999/xhtml}}'\n"
      "text = ET.tostring(root, encoding='unicode')\n"
      "cv = json.load(open('{1}'))\n"
      "svgs = [e for e in root.iter() if e.tag.endswith('svg')]\n"
      "print('report: %d svg plots, %d bytes' % (len(svgs), len(text)))\n"
      "assert len(svgs) >= 2 * len(cv['methods']) + 4, len(svgs)\n"
      "assert root.find('.//' + ns + 'section[@id=\"umap\"]') is not None, 'no UMAP map'\n"
      "best = max(cv['methods'], key=lambda m: cv['mean'][m]['macro_f1'])\n"
      "assert best + ', 3 folds pooled' in text, best\n"
      "assert 'PCA of the held-out cells (32-d genept), prediction by ' + best in text\n"
      "for m in cv['methods']: assert m + ', 3 folds pooled' in text, m\n",
      dir.file("cv.html"), dir.file("cv.json"));
  const auto report = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(report.exit_code, 0) << report.err << report.out;
  std::printf("%s", report.out.c_str());
  // Three well-separated types: the expression route (independent of the random gene vectors)
  // must do well on every held-out technology.
  EXPECT_GT(json["mean"]["logreg:expression"]["macro_f1"].get<double>(), 0.85) << json["mean"].dump();
  // Unknown fold and missing group column: clear errors.
  const auto bad = test::run_cli({"cv", "-r", reference, "-l", "celltype", "--group", "obs:tech", "--folds", "V9", "-g", store, "--gene-table",
                                  table, "--no-ontology"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("fold 'V9' is not a group of 'tech'"), std::string::npos) << bad.err;
  const auto missing = test::run_cli({"cv", "-r", reference, "-l", "celltype", "--group", "obs:donor", "-g", store, "--gene-table", table,
                                      "--no-ontology"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("'donor'"), std::string::npos) << missing.err;
}

TEST(CvCli, PredictionsAndProbabilitiesAreEachCellsOutOfFoldOnes) {
  CELLTYPER_REQUIRE_SHARED(reference, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  CELLTYPER_REQUIRE_SHARED(ontology, "cell-ontology/cl-basic.obo");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  if (test::run_program({test::system_python(), "-c", "import anndata, pandas"}).exit_code != 0) {
    GTEST_SKIP() << "no python3 with anndata and pandas (scripts/test.sh installs them)";
  }
  test::TempDir dir;
  const auto cv = test::run_cli({"cv", "-r", reference, "-l", "obs:celltype", "--group", "obs:tech", "--classifier", "logreg,knn", "--n-genes",
                                 "1000", "--gene-table", table, "--label-map", label_map, "--label-dataset", "savercat-pbmc-3tech",
                                 "--ontology", ontology, "--hierarchical", "--json", dir.file("cv.json"), "--predictions",
                                 dir.file("pred.csv"), "--probabilities", dir.file("prob.csv"), "-q"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  // Read back with pandas: every labelled cell once under its obs name, its fold and label as in
  // the file; each method's accuracy per fold is the JSON's; the probabilities' best class is the
  // flat prediction and its probability the score; rows sum to 1.
  const std::string check = fmt::format(
      "import json, anndata, numpy as np, pandas as pd\n"
      "cv = json.load(open('{0}'))\n"
      "pred = pd.read_csv('{1}', index_col='obs_name', keep_default_na=False)\n"
      "prob = pd.read_csv('{2}', keep_default_na=False)\n"
      "obs = anndata.read_h5ad('{3}', backed='r').obs\n"
      "assert len(pred) == 2000 and pred.index.is_unique, len(pred)\n"
      "assert list(pred.columns[:3]) == ['reference', 'fold', 'truth'], list(pred.columns)\n"
      "assert (pred['reference'] == '{3}').all()\n"
      "assert list(pred['fold']) == list(obs.loc[pred.index, 'tech'].astype(str))\n"
      "assert list(pred['truth']) == list(obs.loc[pred.index, 'celltype'].astype(str))\n"
      "assert [c for c in pred.columns[3:] if not c.endswith('_score')] == cv['methods'], list(pred.columns)\n"
      "for fold in cv['folds']:\n"
      "    cells = pred[pred['fold'] == fold['group']]\n"
      "    for m in cv['methods']:\n"
      "        acc = (cells[m] == cells['truth']).mean() if not m.endswith('+hierarchical') else None\n"
      "        if acc is not None: assert abs(acc - fold['methods'][m]['accuracy']) < 1e-12, (fold['group'], m, acc)\n"
      "flat = [m for m in cv['methods'] if not m.endswith('+hierarchical')]\n"
      "assert sorted(set(prob['method'])) == sorted(flat), set(prob['method'])\n"
      "classes = list(prob.columns[4:])\n"
      "assert sorted(classes) == ['B cells', 'Monocytes', 'T/NK cells'], classes\n"
      "for m in flat:\n"
      "    p = prob[prob['method'] == m].set_index('obs_name')\n"
      "    assert list(p.index) == list(pred.index)\n"
      "    values = p[classes].to_numpy()\n"
      "    assert np.allclose(values.sum(axis=1), 1, atol=1e-4)\n"
      "    assert (p[classes].idxmax(axis=1) == pred[m]).all(), m\n"
      "    assert np.allclose(values.max(axis=1), pred[m + '_score'], atol=1e-5), m\n"
      "assert cv['ontology_coverage'] == {{'fewest': 2000, 'most': 2000, 'n_cells': 2000}}, cv['ontology_coverage']\n"
      "print('out-of-fold CSVs: %d cells, %d methods, %d probability rows' % (len(pred), len(cv['methods']), len(prob)))\n",
      dir.file("cv.json"), dir.file("pred.csv"), dir.file("prob.csv"), reference);
  const auto read = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(read.exit_code, 0) << read.err << read.out;
  std::printf("%s", read.out.c_str());
  // Without the label map every label still has a CL id ("B cells", "Monocytes": plurals of terms;
  // "T/NK cells": their common ancestor, lymphocyte).
  const auto mapped = test::run_cli({"cv", "-r", reference, "-l", "obs:celltype", "--group", "obs:tech", "--n-genes", "1000", "--gene-table",
                                     table, "--ontology", ontology, "--json", dir.file("cv1.json"), "-q"});
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  EXPECT_EQ(mapped.out.find("labels without a Cell Ontology id"), std::string::npos) << mapped.out;
  std::ifstream in1(dir.file("cv1.json"));
  EXPECT_EQ(nlohmann::json::parse(in1)["ontology_coverage"], nlohmann::json({{"fewest", 2000}, {"most", 2000}, {"n_cells", 2000}}));
  // A label that names no term ('TNK cells'): the table says how many cells the ontology columns
  // describe, as the JSON's ontology_coverage (the pooled n_mapped, fewest to most).
  const std::string renamed = dir.file("renamed.h5ad");
  const auto wrote = test::run_program({test::system_python(), "-c",
                                        fmt::format("import anndata\na = anndata.read_h5ad('{}')\n"
                                                    "a.obs['celltype'] = a.obs['celltype'].astype(str).replace('T/NK cells', 'TNK cells')\n"
                                                    "a.write_h5ad('{}')\n",
                                                    reference, renamed)});
  ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
  const auto unmapped = test::run_cli({"cv", "-r", renamed, "-l", "obs:celltype", "--group", "obs:tech", "--classifier", "logreg,knn",
                                       "--n-genes", "1000", "--gene-table", table, "--ontology", ontology, "--json", dir.file("cv2.json"),
                                       "-q"});
  ASSERT_EQ(unmapped.exit_code, 0) << unmapped.err;
  std::ifstream in(dir.file("cv2.json"));
  const auto json = nlohmann::json::parse(in);
  std::int64_t fewest = 2000;
  std::int64_t most = 0;
  for (const auto& method : json["methods"]) {
    const auto mapped = json["pooled"][method.get<std::string>()]["ontology"]["n_mapped"].get<std::int64_t>();
    fewest = std::min(fewest, mapped);
    most = std::max(most, mapped);
  }
  ASSERT_LT(fewest, 2000);
  EXPECT_EQ(json["ontology_coverage"], nlohmann::json({{"fewest", fewest}, {"most", most}, {"n_cells", 2000}}));
  const std::string said = fmt::format("labels without a Cell Ontology id (left out of the ontology metrics): TNK cells; corr-mF1, hF and LCA "
                                       "describe {} of the 2000 held-out cells",
                                       fewest == most ? std::to_string(most) : fmt::format("{}-{}", fewest, most));
  EXPECT_NE(unmapped.out.find(said), std::string::npos) << unmapped.out;
  // An output in a missing folder is refused before the work (exit 3, as every output).
  const auto bad = test::run_cli({"cv", "-r", reference, "-l", "obs:celltype", "--group", "obs:tech", "--gene-table", table, "--no-ontology",
                                  "--predictions", dir.file("no/such/folder/pred.csv")});
  EXPECT_EQ(bad.exit_code, 3) << bad.err;
  EXPECT_NE(bad.err.find("no/such/folder"), std::string::npos) << bad.err;
}

TEST(CvCli, SavedFoldModelsAnnotateTheirHeldOutCellsAsCvDid) {
  // scikit-learn's cross_validate(return_estimator=True): each fold's model, complete as train
  // writes one, gives its held-out cells the out-of-fold labels and scores cv reported.
  CELLTYPER_REQUIRE_SHARED(reference, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  if (test::run_program({test::system_python(), "-c", "import anndata, pandas"}).exit_code != 0) {
    GTEST_SKIP() << "no python3 with anndata and pandas (scripts/test.sh installs them)";
  }
  test::TempDir dir;
  const auto cv = test::run_cli({"cv", "-r", reference, "-l", "obs:celltype", "--group", "obs:tech", "--classifier", "logreg,knn", "--n-genes",
                                 "1000", "--gene-table", table, "--no-ontology", "--predictions", dir.file("pred.csv"), "--save-models",
                                 dir.file("models/fold models")});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  EXPECT_NE(cv.err.find("models: 6 fold models in " + dir.file("models/fold models") + " (models.tsv names them)"), std::string::npos) << cv.err;
  std::ifstream in(dir.file("models/fold models/models.tsv"));
  std::stringstream listed;
  listed << in.rdbuf();
  EXPECT_EQ(listed.str(),
            "fold\tmethod\tfile\theld_out\n"
            "V2\tlogreg:expression\tV2.logreg-expression.h5\tthe cells of obs:tech = 'V2'\n"
            "V2\tknn:expression\tV2.knn-expression.h5\tthe cells of obs:tech = 'V2'\n"
            "V3\tlogreg:expression\tV3.logreg-expression.h5\tthe cells of obs:tech = 'V3'\n"
            "V3\tknn:expression\tV3.knn-expression.h5\tthe cells of obs:tech = 'V3'\n"
            "VDJ\tlogreg:expression\tVDJ.logreg-expression.h5\tthe cells of obs:tech = 'VDJ'\n"
            "VDJ\tknn:expression\tVDJ.knn-expression.h5\tthe cells of obs:tech = 'VDJ'\n");
  const std::string model = dir.file("models/fold models/VDJ.logreg-expression.h5");
  const auto described = test::run_cli({"inspect", model});
  ASSERT_EQ(described.exit_code, 0) << described.err;
  EXPECT_NE(described.out.find("a cv fold's model: trained with the cells of obs:tech = 'VDJ' held out"), std::string::npos) << described.out;
  EXPECT_NE(described.out.find("Reference sample  1453 cells"), std::string::npos) << described.out;  // (it refits as a saved model does)
  const auto wrote = test::run_program({test::system_python(), "-c",
                                        fmt::format("import anndata\na = anndata.read_h5ad('{}')\na[a.obs['tech'] == 'VDJ'].copy().write_h5ad('{}')\n",
                                                    reference, dir.file("vdj.h5ad"))});
  ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
  const auto annotated = test::run_cli({"annotate", "-m", model, "-i", dir.file("vdj.h5ad"), "--csv", dir.file("vdj.csv"), "--gene-table", table, "-q"});
  ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
  const auto compared = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import numpy as np, pandas as pd\n"
                   "p = pd.read_csv('{}', index_col='obs_name', keep_default_na=False)\n"
                   "q = pd.read_csv('{}', index_col=0, keep_default_na=False)\n"
                   "p = p[p['fold'] == 'VDJ']\n"
                   "q = q.loc[p.index]\n"
                   "assert len(p) == 547\n"
                   "assert (p['logreg:expression'] == q['celltyper_label']).all()\n"
                   "assert np.abs(p['logreg:expression_score'] - q['celltyper_score']).max() < 1e-3\n",
                   dir.file("pred.csv"), dir.file("vdj.csv"))});
  EXPECT_EQ(compared.exit_code, 0) << compared.err << compared.out;
  // Groups pooled into folds (--n-splits): a model names the groups it held out; a group value is
  // never read as a path ("V2/x" -> "fold_1" files, the groups listed in models.tsv).
  const auto wrote_groups = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata\na = anndata.read_h5ad('{}')\na.obs['batch'] = a.obs['tech'].astype(str) + '/x'\na.write_h5ad('{}')\n",
                   reference, dir.file("slashed.h5ad"))});
  ASSERT_EQ(wrote_groups.exit_code, 0) << wrote_groups.err;
  const auto pooled = test::run_cli({"cv", "-r", dir.file("slashed.h5ad"), "-l", "obs:celltype", "--group", "obs:batch", "--n-splits", "2",
                                     "--n-genes", "500", "--gene-table", table, "--no-ontology", "--save-models", dir.file("pooled"), "-q"});
  ASSERT_EQ(pooled.exit_code, 0) << pooled.err;
  std::ifstream pooled_in(dir.file("pooled/models.tsv"));
  std::stringstream pooled_listed;
  pooled_listed << pooled_in.rdbuf();
  EXPECT_NE(pooled_listed.str().find("fold 1\tlogreg:expression\tfold_1.logreg-expression.h5\tfold 'fold 1' (obs:batch groups "), std::string::npos)
      << pooled_listed.str();
  EXPECT_NE(pooled_listed.str().find("V3/x"), std::string::npos) << pooled_listed.str();
  const auto groups = test::run_cli({"cv", "-r", dir.file("slashed.h5ad"), "-l", "obs:celltype", "--group", "obs:batch", "--n-genes", "500",
                                     "--gene-table", table, "--no-ontology", "--folds", "V2/x", "--save-models", dir.file("slashed"), "-q"});
  ASSERT_EQ(groups.exit_code, 0) << groups.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("slashed/V2_x.logreg-expression.h5")));
  // Saved again into the same directory with another fold: the earlier run's model stays (never
  // deleted), models.tsv lists this run's, and a warning (in the JSON too) names the earlier
  // model; a file of the user's own there is no concern of it.
  { std::ofstream(dir.file("slashed/my_own_model.h5")) << "x"; }
  const auto again = test::run_cli({"cv", "-r", dir.file("slashed.h5ad"), "-l", "obs:celltype", "--group", "obs:batch", "--n-genes", "500",
                                    "--gene-table", table, "--no-ontology", "--folds", "V3/x", "--save-models", dir.file("slashed"), "--json", "-"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("slashed/V2_x.logreg-expression.h5")));
  const std::string again_warnings = nlohmann::json::parse(again.out)["warnings"].dump();
  EXPECT_NE(again_warnings.find("an earlier run's models.tsv there listed 1 model file this run did not write (V2_x.logreg-expression.h5): they "
                                "stay"),
            std::string::npos)
      << again_warnings;
  EXPECT_EQ(again_warnings.find("my_own_model"), std::string::npos) << again_warnings;
  EXPECT_NE(again.err.find("V2_x.logreg-expression.h5"), std::string::npos) << again.err;
  std::ifstream again_in(dir.file("slashed/models.tsv"));
  std::stringstream again_listed;
  again_listed << again_in.rdbuf();
  EXPECT_EQ(again_listed.str().find("V2_x"), std::string::npos) << again_listed.str();
  EXPECT_NE(again_listed.str().find("V3_x.logreg-expression.h5"), std::string::npos) << again_listed.str();
  // Refused before any fold trains (exit 2, nothing created): a file where the directory should
  // be, a directory named models.tsv inside it, no name at all.
  { std::ofstream(dir.file("a file")) << "x"; }
  std::filesystem::create_directories(dir.file("taken/models.tsv"));
  for (const auto& [target, said] : std::vector<std::pair<std::string, std::string>>{
           {dir.file("a file"), ": a file, not a directory"}, {dir.file("taken"), ": its models.tsv is a directory"}, {"", "needs a directory name"}}) {
    const auto refused = test::run_cli({"cv", "-r", reference, "-l", "obs:celltype", "--group", "obs:tech", "--gene-table", table, "--no-ontology",
                                        "--save-models", target});
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_NE(refused.err.find(said), std::string::npos) << refused.err;
    EXPECT_EQ(refused.out.find("fold mean"), std::string::npos) << refused.out;  // (no fold trained)
  }
}

TEST(CvCli, NSplitsStratifiesCellsOrPoolsGroupsIntoKFolds) {
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(savercat, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  // Without a group column: 3 folds of cells stratified by label (StratifiedKFold).
  const auto cells = test::run_cli({"cv", "-r", pbmc3k, "-l", "obs:celltype", "--n-splits", "3", "--no-ontology", "--threads", "2",
                                    "--json", "-"});
  ASSERT_EQ(cells.exit_code, 0) << cells.err;
  const nlohmann::json split = nlohmann::json::parse(cells.out);
  ASSERT_EQ(split["folds"].size(), 3u);
  std::map<std::string, std::vector<std::int64_t>> support;  // label -> its held-out cells per fold
  std::int64_t held_out = 0;
  for (std::size_t f = 0; f < 3; ++f) {
    const nlohmann::json& fold = split["folds"][f];
    EXPECT_EQ(fold["group"], fmt::format("fold {}", f + 1));
    EXPECT_NEAR(fold["n_test"].get<double>(), 2638.0 / 3, 1.0);
    held_out += fold["n_test"].get<std::int64_t>();
    for (const auto& row : fold["methods"]["logreg:expression"]["per_class"]) {
      if (row["support"].get<std::int64_t>() > 0) support[row["label"]].push_back(row["support"]);
    }
  }
  EXPECT_EQ(held_out, 2638);
  EXPECT_EQ(support.size(), 9u);
  for (const auto& [label, counts] : support) {  // each label dealt evenly: Platelet's 14 cells as 5 / 5 / 4
    EXPECT_EQ(counts.size(), 3u) << label;
    EXPECT_LE(*std::max_element(counts.begin(), counts.end()) - *std::min_element(counts.begin(), counts.end()), 1) << label;
  }
  EXPECT_GT(split["mean"]["logreg:expression"]["accuracy"].get<double>(), 0.85) << split["mean"].dump();
  EXPECT_NE(cells.err.find("cells split into 3 folds stratified by label"), std::string::npos) << cells.err;
  // Platelet trains on 9 cells in two folds: the warning is said once, with the other fold counted.
  const auto first = cells.err.find("class 'Platelet'");
  ASSERT_NE(first, std::string::npos) << cells.err;
  EXPECT_EQ(cells.err.find("class 'Platelet'", first + 1), std::string::npos) << cells.err;
  EXPECT_NE(cells.err.find("(so too in 1 other fold)"), std::string::npos) << cells.err;
  // A group column of more groups than folds: pooled (GroupKFold); each tech stays whole.
  const auto pooled = test::run_cli({"cv", "-r", savercat, "-l", "obs:celltype", "--group", "obs:tech", "--n-splits", "2", "--no-ontology",
                                     "--threads", "2", "--json", "-"});
  ASSERT_EQ(pooled.exit_code, 0) << pooled.err;
  const nlohmann::json two = nlohmann::json::parse(pooled.out);
  ASSERT_EQ(two["folds"].size(), 2u);
  EXPECT_EQ(two["folds"][0]["n_test"].get<std::int64_t>() + two["folds"][1]["n_test"].get<std::int64_t>(), 2000);
  EXPECT_NE(pooled.err.find("the 3 groups of obs:tech pooled into 2 folds of about equal cells: fold 1: "), std::string::npos) << pooled.err;
  // As many folds as groups or more: one fold per group, as without.
  const auto same = test::run_cli({"cv", "-r", savercat, "-l", "obs:celltype", "--group", "obs:tech", "--n-splits", "3", "--no-ontology",
                                   "--threads", "2", "--json", "-"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(nlohmann::json::parse(same.out)["folds"][0]["group"].get<std::string>().rfind("fold ", 0), std::string::npos);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--n-splits", "1"}, std::vector<std::string>{}}) {
    std::vector<std::string> bad = {"cv", "-r", pbmc3k, "-l", "obs:celltype", "--no-ontology"};
    bad.insert(bad.end(), args.begin(), args.end());
    const auto refused = test::run_cli(bad);
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_NE(refused.err.find(args.empty() ? "nor --n-splits K" : "at least 2 folds"), std::string::npos) << refused.err;
  }
}

TEST(CvCli, RestrictGenesHeldOutUsesEachFoldsMeasuredGenes) {
  CELLTYPER_REQUIRE_SHARED(source, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table_path = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  // A pooled file whose two groups measured different panels: group "b" lost every other gene
  // (zeros, as an outer join of two files leaves them). Python lists the genes each group
  // detected, independently of celltyper.
  const std::string make = fmt::format(
      "import anndata, numpy as np, scipy.sparse as sp\n"
      "a = anndata.read_h5ad('{0}')\n"
      "X = sp.csr_matrix(a.X, dtype=np.float32)\n"
      "group = np.where(np.arange(a.n_obs) % 2 == 0, 'a', 'b')\n"
      "mask = np.ones(a.n_vars, dtype=np.float32); mask[1::2] = 0\n"
      "X = (sp.diags((group == 'a').astype(np.float32)) @ X + sp.diags((group == 'b').astype(np.float32)) @ X @ sp.diags(mask)).tocsr()\n"
      "X.eliminate_zeros()\n"
      "a = anndata.AnnData(X=X, obs=a.obs.assign(group=group), var=a.var[[]])\n"
      "a.write_h5ad('{1}')\n"
      "for g in 'ab':\n"
      "    detected = np.asarray((X[group == g] != 0).sum(axis=0)).ravel() > 0\n"
      "    open('{2}/' + g + '.txt', 'w').write('\\n'.join(a.var_names[detected]) + '\\n')\n",
      source, dir.file("pooled.h5ad"), dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const GeneTable table = load_gene_table(table_path);
  const auto dataset = open_dataset(dir.file("pooled.h5ad"));
  const DataFrame obs = dataset->read_obs();
  std::map<std::string, std::vector<std::size_t>> rows;
  for (std::size_t r = 0; r < obs.n_rows(); ++r) rows[obs.at("group", "obs").value_as_string(r)].push_back(r);
  std::map<std::string, std::vector<std::int64_t>> expected;
  // A gene is read from one var (its best-matched one, see resolve_genes): measured when that var is detected.
  const DataFrame var = dataset->read_var();
  const GeneResolveResult resolved = resolve_genes(table, var);
  for (const std::string group : {"a", "b"}) {
    std::set<std::string> names;
    std::ifstream listed(dir.file(group + ".txt"));
    for (std::string name; std::getline(listed, name);) names.insert(name);
    for (std::size_t column = 0; column < resolved.gene_index.size(); ++column) {
      if (resolved.gene_index[column] != kNoGene && names.count(var.index[column]) != 0) {
        expected[group].push_back(table.gene(resolved.gene_index[column]).entrez_id);
      }
    }
    std::sort(expected[group].begin(), expected[group].end());
    // (a name list of its own resolves every detected name: a few genes more, read there from a worse-matched var)
    EXPECT_LE(expected[group].size(), genes_of(dir.file(group + ".txt"), table).size()) << group;
    // Small blocks: the detection streams the matrix.
    EXPECT_EQ(detected_genes(*dataset, "X", rows[group], table, {}, 64 << 10), expected[group]) << group;
  }
  EXPECT_LT(expected["b"].size(), expected["a"].size() * 6 / 10);

  const std::string store = test::random_gene_store(dir, 16, 5);
  const auto cv = test::run_cli({"cv", "-r", dir.file("pooled.h5ad"), "-l", "obs:celltype", "--group", "obs:group", "--classifier", "logreg",
                                 "--features", "genept,expression", "-g", store, "--gene-table", table_path, "--no-ontology",
                                 "--restrict-genes", "held-out", "--json", dir.file("cv.json"), "-q"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  std::ifstream in(dir.file("cv.json"));
  const auto json = nlohmann::json::parse(in);
  ASSERT_EQ(json["folds"].size(), 2u);
  for (const auto& fold : json["folds"]) {
    const std::string group = fold["group"];
    EXPECT_EQ(fold["n_genes"].get<std::size_t>(), expected[group].size()) << group;
    EXPECT_GT(fold["methods"]["logreg:expression"]["accuracy"].get<double>(), 0.5) << group;
  }
  // A fixed list applies to every fold; without the option nothing is restricted.
  const auto listed = test::run_cli({"cv", "-r", dir.file("pooled.h5ad"), "-l", "obs:celltype", "--group", "obs:group", "--features",
                                     "expression", "--gene-table", table_path, "--no-ontology", "--restrict-genes", dir.file("b.txt"),
                                     "--json", dir.file("listed.json"), "-q"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  std::ifstream listed_in(dir.file("listed.json"));
  const auto listed_json = nlohmann::json::parse(listed_in);
  // (group b, padded, keeps the listed genes it detects: see below)
  for (const auto& fold : listed_json["folds"]) {
    EXPECT_EQ(fold["n_genes"].get<std::size_t>(), fold["group"] == "b" ? expected["b"].size() : genes_of(dir.file("b.txt"), table).size());
  }
  // By default, the padded group (b: zeros for half the genes, housekeeping ones among them) is
  // held out on the genes it detects, as annotate reads such a query; group a on every gene.
  const auto by_default = test::run_cli({"cv", "-r", dir.file("pooled.h5ad"), "-l", "obs:celltype", "--group", "obs:group", "--features",
                                         "expression", "--gene-table", table_path, "--no-ontology", "--json", dir.file("default.json")});
  ASSERT_EQ(by_default.exit_code, 0) << by_default.err;
  EXPECT_NE(by_default.err.find("warning: fold 'b': its cells have no count for genes that every training type expresses"), std::string::npos)
      << by_default.err;
  EXPECT_EQ(by_default.err.find("fold 'a': its cells have no count"), std::string::npos) << by_default.err;
  std::ifstream default_in(dir.file("default.json"));
  const auto default_json = nlohmann::json::parse(default_in);
  for (const auto& fold : default_json["folds"]) {
    const std::string group = fold["group"];
    EXPECT_EQ(fold["n_genes"].get<std::size_t>(), group == "b" ? expected["b"].size() : 0u) << group;
  }
}

TEST(CvCli, AHeldOutFileNamingFewerGenesTrainsOnItsGenesAsAnnotateRefits) {
  // pbmc3k's cells in two files by parity: a.h5ad with every gene, b.h5ad naming every other gene
  // only (another panel, not zeros). Holding out b, the model trained on a would lack half its
  // panel there: the fold trains on the genes b names, as annotate refits for such a query;
  // holding out a (which names all of b's genes) trains as before.
  CELLTYPER_REQUIRE_SHARED(source, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table_path = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, numpy as np, scipy.sparse as sp\n"
      "a = anndata.read_h5ad('{0}')\n"
      "a = anndata.AnnData(X=sp.csr_matrix(a.X, dtype=np.float32), obs=a.obs[['celltype']], var=a.var[[]])\n"
      "a[0::2].copy().write_h5ad('{1}/a.h5ad')\n"
      "a[1::2, 0::2].copy().write_h5ad('{1}/b.h5ad')\n",
      source, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const GeneTable table = load_gene_table(table_path);
  const auto b = open_dataset(dir.file("b.h5ad"));
  const std::size_t b_genes = dataset_genes(*b, "X", table, {}).size();
  const auto cv = test::run_cli({"cv", "-r", dir.file("a.h5ad") + "," + dir.file("b.h5ad"), "-l", "obs:celltype", "--group", "file",
                                 "--gene-table", table_path, "--no-ontology", "--json", dir.file("cv.json")});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  EXPECT_NE(cv.err.find(fmt::format("note: fold '{}': its held-out cells' files name ", dir.file("b.h5ad"))), std::string::npos) << cv.err;
  EXPECT_NE(cv.err.find(" of the 3000 panel genes of a model trained on the other folds"), std::string::npos) << cv.err;  // (the full model's panel)
  EXPECT_NE(cv.err.find(fmt::format("trained restricted to the {} genes they name, as annotate refits a model for such a query", b_genes)), std::string::npos)
      << cv.err;
  EXPECT_EQ(cv.err.find(fmt::format("fold '{}': its held-out", dir.file("a.h5ad"))), std::string::npos) << cv.err;
  std::ifstream in(dir.file("cv.json"));
  const auto json = nlohmann::json::parse(in);
  ASSERT_EQ(json["folds"].size(), 2u);
  for (const auto& fold : json["folds"]) {
    const bool held_out_b = fold["group"] == dir.file("b.h5ad");
    EXPECT_EQ(fold["n_genes"].get<std::size_t>(), held_out_b ? b_genes : 0u) << fold.dump();
    EXPECT_GT(fold["methods"]["logreg:expression"]["accuracy"].get<double>(), 0.8) << fold.dump();
  }
}

TEST(CvCli, AHarmonizedFoldWithOneTrainableClassIsSkippedNotFatal) {
  // Under --harmonize-labels a coarse label of one file trains as the classes below it that other
  // files teach: holding out the file with B cells leaves 'T cell' (one file) and 'lymphocyte'
  // (another, above it): one class. That fold is skipped with the reason; the others are scored.
  CELLTYPER_REQUIRE_SHARED(source, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np\n"
                   "a = anndata.read_h5ad('{0}')\n"
                   "t = a.obs['celltype'].astype(str)\n"
                   "names = {{'B': 'B cell', 'Naive CD4 T': 'T cell', 'NK': 'lymphocyte', 'CD8 T': 'T cell'}}\n"
                   "for name, kept in (('t', ['CD8 T']), ('lymph', ['NK']), ('bt', ['B', 'Naive CD4 T'])):\n"
                   "    b = a[t.isin(kept).to_numpy()].copy()\n"
                   "    b.obs['cell_type'] = [names[v] for v in b.obs['celltype'].astype(str)]\n"
                   "    b.write_h5ad('{1}/' + name + '.h5ad')\n",
                   source, dir.path().string())});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto run = test::run_cli({"cv", "--reference", dir.file("t.h5ad") + "," + dir.file("lymph.h5ad") + "," + dir.file("bt.h5ad"), "--label",
                                  "obs:cell_type", "--group", "file", "--harmonize-labels", "--json", dir.file("cv.json")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("fold '" + dir.file("bt.h5ad") + "' skipped (obs column 'cell_type' has 1 class"), std::string::npos) << run.err;
  std::ifstream in(dir.file("cv.json"));
  const auto json = nlohmann::json::parse(in);
  ASSERT_EQ(json["folds"].size(), 2u);
}

TEST(CvCli, EachHeldOutCellReadsItsOwnLabelsAlternatives) {
  // Under --harmonize-labels "T/NK cells" and "Lymphocytes" both become 'lymphocyte': the first
  // names T cell and NK cell, the second nothing finer. Each held-out cell is scored by its own
  // label: the T/NK cells' alternatives stay (a B cell called for one is an error), in the fold
  // and pooled, while the Lymphocytes' cells take any lymphocyte.
  CELLTYPER_REQUIRE_SHARED(source, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np\n"
                   "a = anndata.read_h5ad('{0}')\n"
                   "t = a.obs['celltype'].astype(str).to_numpy()\n"
                   "even = np.arange(a.n_obs) % 2 == 0\n"
                   "fine = {{'B': 'B cell', 'Naive CD4 T': 'T cell', 'NK': 'natural killer cell', 'CD14+ Mono': 'monocyte'}}\n"
                   "coarse = {{'CD8 T': 'T/NK cells', 'NK': 'T/NK cells', 'B': 'Lymphocytes', 'Memory CD4 T': 'Lymphocytes', 'CD14+ Mono': 'monocyte'}}\n"
                   "for name, names, rows in (('fine', fine, even), ('coarse', coarse, ~even)):\n"
                   "    b = a[rows & np.isin(t, list(names))].copy()\n"
                   "    b.obs['cell_type'] = [names[v] for v in b.obs['celltype'].astype(str)]\n"
                   "    b.write_h5ad('{1}/' + name + '.h5ad')\n"
                   "    if name == 'coarse': print(int((b.obs['cell_type'] == 'T/NK cells').sum()))\n",
                   source, dir.path().string())});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const int n_alternatives = std::stoi(made.out);
  ASSERT_GT(n_alternatives, 100);
  const auto run = test::run_cli({"cv", "--reference", dir.file("fine.h5ad") + "," + dir.file("coarse.h5ad"), "--label", "obs:cell_type",
                                  "--group", "file", "--harmonize-labels", "--json", dir.file("cv.json")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(dir.file("cv.json"));
  const auto json = nlohmann::json::parse(in);
  int in_folds = 0;
  for (const auto& fold : json["folds"]) {
    for (const auto& [method, scored] : fold["methods"].items()) in_folds += scored["ontology"]["n_truth_alternatives"].get<int>();
  }
  EXPECT_EQ(in_folds, n_alternatives) << json["folds"].dump();
  for (const auto& [method, scored] : json["pooled"].items()) {
    EXPECT_EQ(scored["ontology"]["n_truth_alternatives"].get<int>(), n_alternatives) << method;
  }
}

}  // namespace
}  // namespace celltyper
