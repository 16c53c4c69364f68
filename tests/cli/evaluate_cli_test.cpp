// End-to-end tests of `celltyper evaluate`: pbmc3k (Seurat labels) -> pbmc68k_reduced annotated with
// a model trained on a seeded random-vector gene store, evaluated against the bulk labels through
// the Cell Ontology. Flat metrics are checked against scikit-learn, ranking and hierarchical
// metrics against an independent NumPy / OBO-parsing computation; bad input is checked for exact
// one-line messages and unmapped labels for explicit accounting.
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/report.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

namespace celltyper {
namespace {

/// Independent oracle: scikit-learn for the flat metrics, NumPy for top-k / reciprocal rank, and its
/// own OBO parser for the ancestor sets of the hierarchical metrics. Arguments: annotated h5ad,
/// label map, OBO file, evaluate's JSON, prediction column. Prints "ok" or fails an assertion.
constexpr const char* kOracle = R"PY(
import sys, json
import numpy as np, anndata
from sklearn.metrics import precision_recall_fscore_support
annotated, label_map, obo, result_path, pred_col = sys.argv[1:6]
a = anndata.read_h5ad(annotated)
res = json.load(open(result_path))

# CL ids: truth through the pbmc68k_reduced rows of the label map, predictions through the ids the
# model file recorded for its classes (uns), or the CL id column itself.
m = {}
for line in open(label_map).read().splitlines()[1:]:
    f = line.split('\t')
    if f[0] == 'pbmc68k_reduced':
        m[f[1]] = f[2]
names = list(a.uns['celltyper_probability_classes'])
ids = dict(zip(names, list(a.uns['celltyper_probability_cl_ids'])))
truth = np.array([m[x] for x in a.obs['bulk_labels'].astype(str)])
col = a.obs[pred_col]
if pred_col == 'celltyper_label':
    pred = np.array([ids.get(x) or 'raw:' + x for x in col.astype(str)])
else:
    pred = np.array(['raw:(no prediction)' if missing else str(v) for v, missing in zip(col.astype(object), col.isna())])

def close(x, y, what, tol=1e-9):
    assert abs(x - y) <= tol, (what, x, y)

# Flat metrics on CL terms (evaluate names classes by term label; the ids are a bijection).
o = res['overall']
assert res['compared_on'] == 'ontology', res['compared_on']
assert o['n_cells'] == len(truth) == 700
close(o['accuracy'], float((truth == pred).mean()), 'accuracy')
for avg in ['macro', 'weighted']:
    p, r, f, _ = precision_recall_fscore_support(truth, pred, average=avg, zero_division=0)
    close(o[avg]['precision'], p, avg + ' precision'); close(o[avg]['recall'], r, avg + ' recall'); close(o[avg]['f1'], f, avg + ' f1')
id_of = {}
for side in ['truth', 'prediction']:
    for row in res['label_mapping'][side]:
        id_of[row['cl_label'] if row['cl_id'] else row['label']] = row['cl_id'] or 'raw:' + row['label']
classes = [id_of[c['label']] for c in o['per_class']]
p, r, f, s = precision_recall_fscore_support(truth, pred, labels=classes, average=None, zero_division=0)
for c, pc, rc, fc, sc in zip(o['per_class'], p, r, f, s):
    close(c['f1'], fc, c['label']); close(c['precision'], pc, c['label']); assert c['support'] == sc, c
assert sum(map(sum, o['confusion_matrix']['counts'])) == 700

# Ranking: columns are the model's classes as CL terms; rank = 1 + higher + equal earlier columns.
prob = a.obsm['celltyper_probabilities']
cols = [ids[n] for n in names]
assert len(set(cols)) == len(cols)
top = {1: 0, 3: 0, 5: 0}; rr = 0.0
for i, t in enumerate(truth):
    if t not in cols:
        continue
    j = cols.index(t); v = prob[i, j]
    rank = 1 + int((prob[i] > v).sum()) + int((prob[i, :j] == v).sum())
    rr += 1.0 / rank
    for k in top:
        top[k] += rank <= k
rk = o['ranking']
for k in top:
    close(rk['top_k_accuracy'][str(k)], top[k] / 700, 'top-%d' % k)
close(rk['mean_reciprocal_rank'], rr / 700, 'mrr')
assert rk['n_truth_not_in_classes'] == sum(t not in cols for t in truth)

# Hierarchical metrics from the OBO is_a edges (CL parents only), root excluded.
parents = {}
current = None
for line in open(obo, encoding='utf-8'):
    line = line.rstrip('\n')
    if line.startswith('['):
        current = None if line != '[Term]' else ''
    elif current is not None and line.startswith('id: '):
        current = line[4:].strip(); parents.setdefault(current, [])
    elif current and line.startswith('is_a: '):
        parent = line[6:].split()[0]
        if parent.startswith('CL:'):
            parents[current].append(parent)
memo = {}
def up(x):
    if x not in memo:
        s = {x}
        for q in parents.get(x, []):
            if q in parents:
                s |= up(q)
        memo[x] = s
    return memo[x]
A = lambda x: up(x) - {'CL:0000000'}
mapped = [(t, q) for t, q in zip(truth, pred) if not q.startswith('raw:')]
ont = o['ontology']
assert ont['n_mapped'] == len(mapped) and ont['n_unmapped'] == 700 - len(mapped), ont
assert ont['n_unmapped_prediction'] == 700 - len(mapped) and ont['n_unmapped_truth'] == 0
inter = sum(len(A(q) & A(t)) for t, q in mapped)
hp = inter / sum(len(A(q)) for t, q in mapped); hr = inter / sum(len(A(t)) for t, q in mapped)
close(ont['hierarchical_precision'], hp, 'hP'); close(ont['hierarchical_recall'], hr, 'hR')
close(ont['hierarchical_f1'], 2 * hp * hr / (hp + hr), 'hF')
corrected = [t if (q == t or t in up(q)) else q for t, q in mapped]
close(ont['corrected_accuracy'], float(np.mean([c == t for c, (t, _) in zip(corrected, mapped)])), 'corrected accuracy')
assert ont['relation_counts']['exact'] == sum(t == q for t, q in mapped)
assert ont['relation_counts']['parent'] == sum(q != t and q in up(t) for t, q in mapped)

# Unmapped accounting: every unmapped predicted label with its cells.
unmapped = {x[4:]: int((pred == x).sum()) for x in set(pred) if x.startswith('raw:')}
assert res['unmapped']['prediction']['labels'] == unmapped, (res['unmapped'], unmapped)
assert res['unmapped']['truth']['n_cells'] == 0

# Per group.
if res['groups']:
    phase = a.obs['phase'].astype(str).values
    assert sorted(g['group'] for g in res['groups']) == sorted(set(phase))
    for g in res['groups']:
        sel = phase == g['group']
        assert g['metrics']['n_cells'] == sel.sum()
        close(g['metrics']['accuracy'], float((truth[sel] == pred[sel]).mean()), 'accuracy of ' + g['group'])
print('ok')
)PY";

std::string write_oracle(const test::TempDir& dir) {
  const std::string path = dir.file("oracle.py");
  std::ofstream(path) << kOracle;
  return path;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

/// A small .h5ad of 3 genes whose obs columns are `columns` (Python: a dict of column name ->
/// list of values, each made categorical), cells c0, c1, ...; its path.
std::string write_obs_h5ad(const test::TempDir& dir, const std::string& name, const std::string& columns) {
  const std::string path = dir.file(name);
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
                   "columns = {}\n"
                   "n = len(next(iter(columns.values())))\n"
                   "obs = pd.DataFrame({{k: pd.Categorical(v) for k, v in columns.items()}}, index=[f'c{{i}}' for i in range(n)])\n"
                   "anndata.AnnData(sp.csr_matrix(np.ones((n, 3), dtype=np.float32)), obs=obs).write_h5ad('{}')\n",
                   columns, path)});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  return path;
}

/// Train pbmc3k -> annotate pbmc68k_reduced once for all tests of this file.
class EvaluateCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reference_ = test::shared_data("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
    query_ = test::shared_data("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
    obo_ = test::shared_data("cell-ontology/cl-basic.obo");
    label_map_ = test::shared_data("label_map_to_cell_ontology.tsv");
    const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
    if (reference_.empty() || query_.empty() || obo_.empty() || label_map_.empty() || table.empty()) {
      skip_ = "../shared/data (pbmc3k, pbmc68k_reduced, cell ontology, label map, human genes) is absent";
      return;
    }
    if (test::run_program({test::system_python(), "-c", "import anndata, sklearn"}).exit_code != 0) {
      skip_ = std::string(test::system_python()) + " cannot import anndata and sklearn";
      return;
    }
    dir_ = new test::TempDir();
    const std::string store = test::random_gene_store(*dir_, 64);
    const auto train = test::run_cli({"train", "--reference", reference_, "--label", "obs:celltype", "--genes", store, "--features", "genept", "--gene-table", table,
                                      "--label-map", label_map_, "--label-dataset", "pbmc3k-seurat-labels", "--out", dir_->file("model.h5"),
                                      "--seed", "3", "-q"});
    ASSERT_EQ(train.exit_code, 0) << train.err;
    annotated_ = dir_->file("annotated.h5ad");
    const auto annotate = test::run_cli({"annotate", "--model", dir_->file("model.h5"), "--input", query_, "--layer", "counts", "--out",
                                         annotated_, "--gene-table", table, "-q"});
    ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(std::filesystem::exists(annotated_)) << "training or annotation failed";
  }

  static std::vector<std::string> evaluate_args(std::vector<std::string> extra) {
    std::vector<std::string> args = {"evaluate", "--input", annotated_, "--truth", "obs:bulk_labels", "--ontology", obo_,
                                     "--label-map", label_map_, "--label-dataset", "pbmc68k_reduced"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  /// `evaluate --json` of obs:truth against obs:pred of `path` (on the test ontology), parsed.
  static nlohmann::json evaluate_obs(const std::string& path) {
    const auto run = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--pred", "obs:pred", "--ontology", obo_, "--json", "-"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    return run.exit_code == 0 ? nlohmann::json::parse(run.out) : nlohmann::json::object();
  }

  static inline std::string reference_, query_, obo_, label_map_, annotated_, skip_;
  static inline test::TempDir* dir_ = nullptr;
};

TEST_F(EvaluateCli, WithoutTheOntologyALabelMapStillComparesOnCellOntologyIds) {
  // A machine without the Cell Ontology (none installed, none given): the label map gives the
  // truth CL ids and the model gave its classes', so the flat metrics compare the ids (the
  // accuracy the ontology's run gives) instead of two vocabularies (accuracy 0).
  const auto with = test::run_cli(evaluate_args({"--json", "-"}));
  ASSERT_EQ(with.exit_code, 0) << with.err;
  const auto without = test::run_cli({"evaluate", "--input", annotated_, "--truth", "obs:bulk_labels", "--no-ontology", "--label-map", label_map_,
                                      "--label-dataset", "pbmc68k_reduced", "--json", "-"});
  ASSERT_EQ(without.exit_code, 0) << without.err;
  const nlohmann::json on_ontology = nlohmann::json::parse(with.out);
  const nlohmann::json on_ids = nlohmann::json::parse(without.out);
  EXPECT_EQ(on_ids["compared_on"], "ontology") << on_ids["compare_reason"];
  EXPECT_NE(on_ids["compare_reason"].get<std::string>().find("no ontology, so no ontology-aware metrics"), std::string::npos);
  EXPECT_NEAR(on_ids["overall"]["accuracy"].get<double>(), on_ontology["overall"]["accuracy"].get<double>(), 1e-12);
  EXPECT_GT(on_ids["overall"]["accuracy"].get<double>(), 0.3);
  EXPECT_TRUE(on_ids["overall"]["ontology"].is_null()) << on_ids["overall"]["ontology"].dump();  // (no ontology-aware metrics)
}

TEST_F(EvaluateCli, Pbmc3kToPbmc68kMatchesIndependentComputation) {
  const test::TempDir out;
  const auto start = std::chrono::steady_clock::now();
  const auto run = test::run_cli(evaluate_args({"--pred", "obs:celltyper_label", "--group", "obs:phase", "--json", out.file("metrics.json"),
                                                "--report", out.file("report.html")}));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::printf("%s\n(evaluate + report, including the process start: %.2f s)\n", run.out.c_str(), seconds);
  // The table: inputs, mapping, all cells, then each group.
  for (const char* text : {"compared on    Cell Ontology terms", "truth      labels mapped to CL: 10 of 10", "== all cells ==",
                           "== obs:phase = G1 ==", "== obs:phase = S ==", "== obs:phase = G2M ==", "hierarchical P / R / F", "top-3 accuracy"}) {
    EXPECT_NE(run.out.find(text), std::string::npos) << text;
  }
  const nlohmann::json json = read_json(out.file("metrics.json"));
  EXPECT_EQ(json["probabilities"], "obsm:celltyper_probabilities");
  EXPECT_EQ(json["groups"].size(), 3u);
  // Groups named by numbers (louvain clusters 0..10) come in numeric order, "10" last.
  const auto clusters = test::run_cli(evaluate_args({"--pred", "obs:celltyper_label", "--group", "obs:louvain", "--json", "-"}));
  ASSERT_EQ(clusters.exit_code, 0) << clusters.err;
  std::vector<std::string> names;
  const nlohmann::json by_cluster = nlohmann::json::parse(clusters.out);
  for (const auto& group : by_cluster["groups"]) names.push_back(group["group"].get<std::string>());
  EXPECT_EQ(names, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"})) << clusters.out.substr(0, 300);
  EXPECT_EQ(json["embedding"]["source"], "obsm:celltyper_probabilities");
  EXPECT_EQ(json["embedding"]["n_points"], 700);
  for (const auto& row : json["label_mapping"]["prediction"]) {
    if (row["label"] != "Unassigned") EXPECT_EQ(row["match"], "model") << row.dump();
  }
  const auto oracle = test::run_program({test::system_python(), write_oracle(out), annotated_, label_map_, obo_, out.file("metrics.json"),
                                         "celltyper_label"});
  EXPECT_EQ(oracle.exit_code, 0) << oracle.err;
  EXPECT_EQ(oracle.out, "ok\n");

  // The HTML report: well-formed, with the summary numbers and every plot.
  std::ifstream in(out.file("report.html"));
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find(fmt::format("<tr><th>accuracy</th><td class=\"number\">{:.4f}</td>", json["overall"]["accuracy"].get<double>())),
            std::string::npos);
  EXPECT_NE(html.find(fmt::format("<tr><th>CL: hierarchical F1</th><td class=\"number\">{:.4f}</td>",
                                  json["overall"]["ontology"]["hierarchical_f1"].get<double>())),
            std::string::npos);
  EXPECT_NE(html.find("<th>obs:phase = G1</th>"), std::string::npos);
  const auto parse = test::run_program({test::system_python(), "-c",
                                        fmt::format("import xml.etree.ElementTree as ET\n"
                                                    "root = ET.fromstring(open('{}', encoding='utf-8').read().replace('<!DOCTYPE html>', '', 1))\n"
                                                    "print(sum(1 for e in root.iter('{{http://www.w3.org/2000/svg}}svg')))\n",
                                                    out.file("report.html"))});
  ASSERT_EQ(parse.exit_code, 0) << parse.err;
  EXPECT_EQ(parse.out, "16\n");  // 4 sets x (F1, confusion, relations) + 2 PCA maps + 2 UMAP maps
  EXPECT_NE(html.find("id=\"umap\""), std::string::npos);
}

TEST_F(EvaluateCli, OntologyIdColumnGivesTheSameHierarchicalMetrics) {
  const test::TempDir out;
  const auto by_label = test::run_cli(evaluate_args({"--json", "-"}));
  ASSERT_EQ(by_label.exit_code, 0) << by_label.err;
  const auto by_id = test::run_cli(evaluate_args({"--pred", "obs:celltyper_ontology_id", "--json", out.file("ids.json"), "--embedding", "obsm:X_pca"}));
  ASSERT_EQ(by_id.exit_code, 0) << by_id.err;
  const nlohmann::json a = nlohmann::json::parse(by_label.out)["overall"];
  const nlohmann::json json = read_json(out.file("ids.json"));
  const nlohmann::json b = json["overall"];
  EXPECT_EQ(json["compared_on"], "ontology");
  EXPECT_EQ(json["embedding"]["source"], "obsm:X_pca");
  EXPECT_DOUBLE_EQ(a["accuracy"].get<double>(), b["accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(a["macro"]["f1"].get<double>(), b["macro"]["f1"].get<double>());
  EXPECT_DOUBLE_EQ(a["ontology"]["hierarchical_f1"].get<double>(), b["ontology"]["hierarchical_f1"].get<double>());
  EXPECT_EQ(a["ontology"]["n_mapped"], b["ontology"]["n_mapped"]);
  for (const auto& row : json["label_mapping"]["prediction"]) {
    if (row["label"] != kNoPrediction) EXPECT_EQ(row["match"], "identifier") << row.dump();
  }
  const auto oracle = test::run_program({test::system_python(), write_oracle(out), annotated_, label_map_, obo_, out.file("ids.json"),
                                         "celltyper_ontology_id"});
  EXPECT_EQ(oracle.exit_code, 0) << oracle.err;
  // Label strings only: the two vocabularies share nothing, so nothing is right.
  const auto strings = test::run_cli(evaluate_args({"--compare", "labels", "--json", "-", "--embedding", "none"}));
  ASSERT_EQ(strings.exit_code, 0) << strings.err;
  const nlohmann::json c = nlohmann::json::parse(strings.out);
  EXPECT_EQ(c["compared_on"], "labels");
  EXPECT_EQ(c["overall"]["accuracy"], 0.0);
  EXPECT_EQ(c["embedding"], nullptr);
  // The CL metrics do not depend on what the flat metrics compare.
  EXPECT_DOUBLE_EQ(c["overall"]["ontology"]["hierarchical_f1"].get<double>(), a["ontology"]["hierarchical_f1"].get<double>());
}

TEST_F(EvaluateCli, AMisspeltLabelDatasetIsWarnedAndEveryDatasetsRowsServe) {
  // `--label-dataset pbmc68k` (the map says pbmc68k_reduced): the truth was left unmapped and
  // the metrics silently wrong; now rows of every dataset serve it, as in train, with a warning.
  const auto right = test::run_cli(evaluate_args({"--json", "-", "--embedding", "none"}));
  ASSERT_EQ(right.exit_code, 0) << right.err;
  std::vector<std::string> args = evaluate_args({"--json", "-", "--embedding", "none"});
  *std::find(args.begin(), args.end(), "pbmc68k_reduced") = "pbmc68k";
  const auto misspelt = test::run_cli(args);
  ASSERT_EQ(misspelt.exit_code, 0) << misspelt.err;
  const nlohmann::json a = nlohmann::json::parse(right.out);
  const nlohmann::json b = nlohmann::json::parse(misspelt.out);
  EXPECT_EQ(a["overall"]["ontology"]["n_mapped"], b["overall"]["ontology"]["n_mapped"]);
  EXPECT_DOUBLE_EQ(a["overall"]["ontology"]["hierarchical_f1"].get<double>(), b["overall"]["ontology"]["hierarchical_f1"].get<double>());
  EXPECT_NE(misspelt.err.find("warning: --label-dataset pbmc68k: no row of the label map names this dataset (its datasets: "),
            std::string::npos)
      << misspelt.err;
  EXPECT_NE(misspelt.err.find("pbmc68k_reduced"), std::string::npos) << misspelt.err;
  EXPECT_EQ(right.err.find("no row of the label map"), std::string::npos) << right.err;
}

TEST_F(EvaluateCli, PluralLabelsMapToTheirTermsWithoutATable) {
  // Authors' cluster names are plurals ("B cells", savercat's; "Monocytes"): they map to the CL
  // term, and the mapping table says how; "T/NK cells" maps to the common ancestor of T and NK
  // cells (lymphocyte); "Hepatocytes/T cells" to none below half of the ontology.
  const test::TempDir out;
  const std::string path = write_obs_h5ad(out, "plural.h5ad",
                                          "{'truth': ['B cells', 'B cells', 'Monocytes', 'T/NK cells', 'T-cells', 'Hepatocytes/T cells'], "
                                          "'pred': ['B cell', 'monocyte', 'monocyte', 'T cell', 'T cell', 'T cell']}");
  const auto run = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--pred", "obs:pred", "--ontology", obo_, "--json", "-"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out);
  std::map<std::string, std::pair<std::string, std::string>> truth;
  for (const auto& row : json["label_mapping"]["truth"]) truth[row["label"]] = {row["cl_id"].is_null() ? "" : row["cl_id"], row["match"]};
  EXPECT_EQ(truth, (std::map<std::string, std::pair<std::string, std::string>>{{"B cells", {"CL:0000236", "label_plural"}},
                                                                               {"Monocytes", {"CL:0000576", "label_plural"}},
                                                                               {"T-cells", {"CL:0000084", "label_plural"}},
                                                                               {"T/NK cells", {"CL:0000542", "common_ancestor"}},
                                                                               {"Hepatocytes/T cells", {"", "unmapped"}}}));
  const auto& ontology = json["overall"]["ontology"];
  EXPECT_EQ(ontology["n_mapped"], 5);
  EXPECT_DOUBLE_EQ(ontology["corrected_accuracy"].get<double>(), 0.8);  // (c1: a B cell called a monocyte; a T cell is a lymphocyte)
}

TEST_F(EvaluateCli, ATruthOfAlternativesIsMetOnlyAtOrBelowOneOfThem) {
  // "T/NK cells" maps to lymphocyte (by its names, or a table row giving that id): a B cell is a
  // lymphocyte but neither a T nor an NK cell. A table sending the label to T cell reads it so.
  const test::TempDir out;
  const std::string path = write_obs_h5ad(out, "alternatives.h5ad",
                                          "{'truth': ['T/NK cells'] * 4, 'pred': ['T cell', 'natural killer cell', 'B cell', 'lymphocyte']}");
  const std::string lymphocyte_map = out.file("lymphocyte.tsv");
  const std::string t_map = out.file("t.tsv");
  std::ofstream(lymphocyte_map) << "label\tcl_id\nT/NK cells\tCL:0000542\n";
  std::ofstream(t_map) << "label\tcl_id\nT/NK cells\tCL:0000084\n";
  for (const std::string& map : {std::string(), lymphocyte_map, t_map}) {
    std::vector<std::string> args = {"evaluate", "-i", path, "--truth", "obs:truth", "--pred", "obs:pred", "--ontology", obo_, "--json", "-"};
    if (!map.empty()) args.insert(args.end(), {"--label-map", map});
    const auto run = test::run_cli(args);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const nlohmann::json json = nlohmann::json::parse(run.out);
    const auto& row = json["label_mapping"]["truth"][0];
    const auto& ontology = json["overall"]["ontology"];
    if (map == t_map) {
      EXPECT_FALSE(row.contains("alternatives")) << row;
      EXPECT_DOUBLE_EQ(ontology["corrected_accuracy"].get<double>(), 0.25) << map;  // (the T cell)
    } else {
      EXPECT_EQ(row["alternatives"], nlohmann::json({"CL:0000084", "CL:0000623"})) << row;
      EXPECT_DOUBLE_EQ(ontology["corrected_accuracy"].get<double>(), 0.75) << map;  // (not the B cell)
      // (CL places B cells under 'lymphocyte of B lineage': no parent shared with T or NK cells)
      EXPECT_EQ(ontology["relation_counts"]["unrelated"].get<int>(), 1) << ontology;
      EXPECT_EQ(ontology["n_truth_alternatives"].get<int>(), 4) << ontology;
    }
  }
}

TEST_F(EvaluateCli, UnmappedLabelsAndUnknownIdsAreCountedNotDropped) {
  const test::TempDir out;
  const std::string path = write_obs_h5ad(out, "small.h5ad",
                                          "{'truth': ['B cell', 'B cell', 'T cell', 'T cell', 'weird truth', np.nan], "
                                          "'pred': ['CL:0000236', 'CL:9999999', 'T cell', 'Mystery cell', 'CL:0000084', 'CL:0000236']}");
  const auto run = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--pred", "obs:pred", "--ontology", obo_, "--json", "-"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["n_cells_in_file"], 6);
  EXPECT_EQ(json["n_missing_truth"], 1);
  EXPECT_EQ(json["compared_on"], "ontology");  // 1 of 5 predicted labels is a truth label
  EXPECT_EQ(json["unmapped"]["truth"]["labels"], nlohmann::json({{"weird truth", 1}}));
  EXPECT_EQ(json["unmapped"]["prediction"]["labels"], nlohmann::json({{"CL:9999999", 1}, {"Mystery cell", 1}}));
  std::map<std::string, std::string> match;
  for (const auto& row : json["label_mapping"]["prediction"]) match[row["label"]] = row["match"];
  EXPECT_EQ(match, (std::map<std::string, std::string>{
                       {"CL:0000084", "identifier"}, {"CL:0000236", "identifier"}, {"CL:9999999", "unknown_id"}, {"Mystery cell", "unmapped"}, {"T cell", "label"}}));
  const auto& overall = json["overall"];
  EXPECT_EQ(overall["n_cells"], 5);
  EXPECT_DOUBLE_EQ(overall["accuracy"].get<double>(), 0.4);  // c0 and c2; unmapped cells still count as wrong
  EXPECT_EQ(overall["ontology"]["n_mapped"], 2);
  EXPECT_EQ(overall["ontology"]["n_unmapped"], 3);
  EXPECT_EQ(overall["ontology"]["n_unmapped_truth"], 1);
  EXPECT_EQ(overall["ontology"]["n_unmapped_prediction"], 2);
  EXPECT_EQ(overall["ontology"]["unmapped_labels"], nlohmann::json({"CL:9999999", "Mystery cell", "weird truth"}));
  const std::string warnings = json["warnings"].dump();
  EXPECT_NE(warnings.find("'CL:9999999' (1 cells) looks like a Cell Ontology id but is not in"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("1 of 6 cells have no truth label in obs:truth"), std::string::npos) << warnings;
  // The table names them too.
  const auto table = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--pred", "obs:pred", "--ontology", obo_});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("prediction labels mapped to CL: 3 of 5; unmapped: 'CL:9999999' (1 cells, unknown_id), 'Mystery cell' (1 cells) "
                           "(2 cells in all)"),
            std::string::npos)
      << table.out;

  // Truth and predictions in different vocabularies, neither mapped: a warning, and the CL metrics
  // null (not 0) in JSON and "n/a" in the table.
  const std::string disjoint = out.file("disjoint.h5ad");
  const auto made_disjoint = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
                   "obs = pd.DataFrame({{'truth': pd.Categorical(['lineage 1', 'lineage 2'] * 3), 'pred': pd.Categorical(['group A', 'group B'] * 3)}},\n"
                   "                   index=[f'c{{i}}' for i in range(6)])\n"
                   "anndata.AnnData(sp.csr_matrix(np.ones((6, 3), dtype=np.float32)), obs=obs).write_h5ad('{}')\n",
                   disjoint)});
  ASSERT_EQ(made_disjoint.exit_code, 0) << made_disjoint.err;
  const auto unrelated = test::run_cli({"evaluate", "-i", disjoint, "--truth", "obs:truth", "--pred", "obs:pred", "--ontology", obo_, "--json", "-"});
  ASSERT_EQ(unrelated.exit_code, 0) << unrelated.err;
  const nlohmann::json none = nlohmann::json::parse(unrelated.out);
  EXPECT_NE(none["warnings"].dump().find("no prediction names a truth class (truth e.g. 'lineage 1', predictions e.g. 'group A')"), std::string::npos)
      << none["warnings"].dump();
  EXPECT_EQ(none["overall"]["ontology"]["n_mapped"], 0);
  EXPECT_TRUE(none["overall"]["ontology"]["hierarchical_f1"].is_null());
  EXPECT_TRUE(none["overall"]["ontology"]["corrected_macro_f1"].is_null());
  const auto unrelated_table = test::run_cli({"evaluate", "-i", disjoint, "--truth", "obs:truth", "--pred", "obs:pred", "--ontology", obo_});
  EXPECT_NE(unrelated_table.out.find("the ontology metrics are not available"), std::string::npos) << unrelated_table.out;
}

TEST_F(EvaluateCli, ClusterIdsAsTruthAreComparedAsLabelsInNumericOrderAndEachClustersMajorityIsNamed) {
  // A user's truth column that is clusters (-1 for noise, as DBSCAN / HDBSCAN write it, then
  // 0..10; integers), not cell types: compared as label strings (not mapped to the ontology),
  // clusters in numeric order in the tables and the warning, which names what each cluster was
  // mostly called. The same as text ("1.0": a float column written out) and categorical.
  const test::TempDir out;
  const std::string path = out.file("clusters.h5ad");
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
                   "index = np.repeat(np.arange(12), 3)\n"
                   "names = np.array(['B cell', 'T cell', 'natural killer cell'])[index % 3]\n"
                   "names[2] = 'T cell'\n"
                   "obs = pd.DataFrame({{'leiden': (index - 1).astype(np.int64), 'floats': pd.Categorical((index - 1).astype(float).astype(str)),\n"
                   "                    'pred': pd.Categorical(names)}}, index=[f'c{{i}}' for i in range(36)])\n"
                   "anndata.AnnData(sp.csr_matrix(np.ones((36, 3), dtype=np.float32)), obs=obs).write_h5ad('{}')\n",
                   path)});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  for (const std::string column : {"leiden", "floats"}) {
    const auto json_run = test::run_cli({"evaluate", "-i", path, "--truth", "obs:" + column, "--pred", "obs:pred", "--ontology", obo_, "--json", "-"});
    ASSERT_EQ(json_run.exit_code, 0) << json_run.err;
    const nlohmann::json json = nlohmann::json::parse(json_run.out);
    EXPECT_EQ(json["compared_on"], "labels") << column;
    const auto& labels = json["overall"]["confusion_matrix"]["labels"];
    ASSERT_GE(labels.size(), 12u);
    const std::string suffix = column == "floats" ? ".0" : "";
    for (int k = 0; k < 12; ++k) EXPECT_EQ(labels[static_cast<std::size_t>(k)], std::to_string(k - 1) + suffix) << column;
    EXPECT_EQ(labels[12], "B cell");
    const std::string warnings = json["warnings"].dump();
    EXPECT_NE(warnings.find("the truth labels are numbers, cluster ids rather than cell types"), std::string::npos) << warnings;
    EXPECT_NE(warnings.find(fmt::format("-1{0} -> B cell (67% of 3), 0{0} -> T cell (100% of 3), 1{0} -> natural killer cell (100% of 3), 2{0} -> B cell", suffix)),
              std::string::npos)
        << warnings;
    EXPECT_NE(warnings.find(fmt::format("10{} -> natural killer cell (100% of 3) (`celltyper annotate --over-clustering obs:COLUMN`", suffix)), std::string::npos)
        << warnings;
    EXPECT_EQ(warnings.find("no prediction names a truth class"), std::string::npos) << warnings;
  }
  // The groups of --group in the same order.
  const auto grouped = test::run_cli({"evaluate", "-i", path, "--truth", "obs:pred", "--pred", "obs:pred", "--group", "obs:leiden", "--json", "-"});
  ASSERT_EQ(grouped.exit_code, 0) << grouped.err;
  const nlohmann::json groups = nlohmann::json::parse(grouped.out)["groups"];
  ASSERT_EQ(groups.size(), 12u) << groups.dump().substr(0, 300);
  for (std::size_t k = 0; k < 12; ++k) EXPECT_EQ(groups[k]["group"], std::to_string(static_cast<int>(k) - 1)) << groups.dump().substr(0, 300);
}

TEST_F(EvaluateCli, LabelsDifferingOnlyInCaseAreOneAndUnassignedCellsAreNamed) {
  // The truth spells 'b cell' where the predictions (a model's classes) say 'B cell', and 'T cell'
  // two ways: one label each, as train and cv read them. One NK cell is Unassigned: an error for
  // the flat metrics, left out of the CL metrics, and said.
  const test::TempDir out;
  const std::string path = write_obs_h5ad(out, "spelled.h5ad",
                                          "{'truth': ['b cell', 'b cell', 't cell', 'T cell', 'NK cell', 'NK cell'], "
                                          "'pred': ['B cell', 'B cell', 'T cell', 'T cell', 'Unassigned', 'NK cell']}");
  const nlohmann::json json = evaluate_obs(path);
  EXPECT_EQ(json["compared_on"], "labels");
  EXPECT_DOUBLE_EQ(json["overall"]["accuracy"].get<double>(), 5.0 / 6.0);
  std::map<std::string, int> truth_cells;
  for (const auto& row : json["label_mapping"]["truth"]) truth_cells[row["label"]] = row["n_cells"];
  EXPECT_EQ(truth_cells, (std::map<std::string, int>{{"B cell", 2}, {"NK cell", 2}, {"T cell", 2}}));
  EXPECT_EQ(json["overall"]["ontology"]["n_mapped"], 5);
  EXPECT_DOUBLE_EQ(json["overall"]["ontology"]["corrected_accuracy"].get<double>(), 1.0);
  const std::string warnings = json["warnings"].dump();
  EXPECT_NE(warnings.find("truth obs:truth: 2 labels differ from another or from a predicted label only in letter case or surrounding "
                          "spaces and are read as one label with it (as train and cv do): 'b cell' (2 cells) as 'B cell', 't cell' (1 cells) "
                          "as 'T cell'"),
            std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("1 of 6 cells are Unassigned: the flat metrics count them as errors (and 'Unassigned' as a class of F1 0 in macro "
                          "averages"),
            std::string::npos)
      << warnings;
  // ... and which truth labels they are (a type the references lack, left Unassigned, is the
  // answer hoped for), with or without the ontology.
  EXPECT_NE(warnings.find("leave them out: they name no Cell Ontology term; by truth label: 'NK cell' 1 of 2 (50%)\""), std::string::npos)
      << warnings;
  const auto plain = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--pred", "obs:pred", "--no-ontology", "--json", "-"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const std::string plain_warnings = nlohmann::json::parse(plain.out)["warnings"].dump();
  EXPECT_NE(plain_warnings.find("1 of 6 cells are Unassigned: the flat metrics count them as errors (and 'Unassigned' as a class of F1 0 in "
                                "macro averages, scikit-learn's convention for a label predicted and never true); by truth label: 'NK cell' 1 of 2"),
            std::string::npos)
      << plain_warnings;

  // Predictions spelled two ways are one label too (the predictions' most frequent spelling), and
  // a truth of 'Unassigned' (another annotation taken as truth) is no label: left out and counted.
  const std::string both = write_obs_h5ad(out, "both_sides.h5ad",
                                          "{'truth': ['Naive CD4 T'] * 4 + ['B cell'] * 2 + ['Unassigned', 'unassigned '], "
                                          "'pred': ['Naive CD4 T'] * 3 + ['naive cd4 t', 'B cell', 'B cell', 'B cell', 'Naive CD4 T']}");
  const nlohmann::json both_json = evaluate_obs(both);
  EXPECT_EQ(both_json["n_missing_truth"], 2) << both_json.dump();
  EXPECT_EQ(both_json["overall"]["n_cells"], 6);
  EXPECT_DOUBLE_EQ(both_json["overall"]["accuracy"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(both_json["overall"]["macro"]["f1"].get<double>(), 1.0);
  const std::string both_warnings = both_json["warnings"].dump();
  EXPECT_NE(both_warnings.find("predictions obs:pred: 1 label differs from another predicted label or class of the probabilities only in "
                               "letter case or surrounding spaces and is read as one label with it (as train and cv do): 'naive cd4 t' (1 "
                               "cells) as 'Naive CD4 T'"),
            std::string::npos)
      << both_warnings;
  EXPECT_NE(both_warnings.find("2 of 8 cells have no truth label in obs:truth and are left out (2 cells labelled 'Unassigned', no label as "
                               "train and cv read it, included)"),
            std::string::npos)
      << both_warnings;

  // With the CL ids of a CELLxGENE column beside the truth, the spellings made one take their
  // cells' most frequent id together (3 'b cell' cells say B cell, 1 'B cell' cell T cell).
  const std::string with_ids = write_obs_h5ad(out, "with_ids.h5ad",
                                              "{'truth': ['b cell'] * 3 + ['B cell'], 'truth_ontology_term_id': ['CL:0000236'] * 3 + "
                                              "['CL:0000084'], 'pred': ['B cell'] * 4}");
  const nlohmann::json ids_json = evaluate_obs(with_ids);
  ASSERT_EQ(ids_json["label_mapping"]["truth"].size(), 1u);
  EXPECT_EQ(ids_json["label_mapping"]["truth"][0]["cl_id"], "CL:0000236");
  EXPECT_DOUBLE_EQ(ids_json["overall"]["ontology"]["corrected_accuracy"].get<double>(), 1.0);
}

TEST_F(EvaluateCli, PredictionsAboveTheTruthsTermsAreNamedAsCostingMacroF1) {
  // annotate --hierarchical names an uncertain cell by a coarser term ('lymphocyte' for a T cell):
  // a label no truth cell has, so a class with F1 0 in macro-F1; said.
  const test::TempDir out;
  const std::string path = write_obs_h5ad(out, "coarse.h5ad",
                                          "{'truth': ['B cell', 'B cell', 'T cell', 'T cell'], 'pred': ['B cell', 'B cell', 'T cell', 'lymphocyte']}");
  const nlohmann::json json = evaluate_obs(path);
  EXPECT_NEAR(json["overall"]["macro"]["f1"].get<double>(), (1.0 + 2.0 / 3.0 + 0.0) / 3.0, 1e-9);
  EXPECT_NE(json["warnings"].dump().find("1 cell is predicted at a term above truth classes and no truth cell has ('lymphocyte' (1 cells))"),
            std::string::npos)
      << json["warnings"].dump();
  // A predicted label naming a truth class's term under another name is not above it.
  const std::string same = write_obs_h5ad(out, "same_term.h5ad",
                                          "{'truth': ['B cell', 'B cell', 'T lymph', 'T lymph'], 'truth_ontology_term_id': ['CL:0000236'] * 2 + "
                                          "['CL:0000084'] * 2, 'pred': ['B cell', 'B cell', 'T cell', 'T cell']}");
  const nlohmann::json same_json = evaluate_obs(same);
  EXPECT_EQ(same_json["warnings"].dump().find("predicted at a term above truth classes"), std::string::npos) << same_json["warnings"].dump();
  // The mirror case: predictions finer than coarse truth labels (a fine model on savercat's
  // "T/NK cells"): errors for accuracy, right for corrected accuracy; said.
  const std::string finer = write_obs_h5ad(out, "finer.h5ad",
                                           "{'truth': ['lymphocyte', 'lymphocyte', 'B cell', 'B cell'], 'pred': ['T cell', 'B cell', 'B cell', 'B cell']}");
  const nlohmann::json finer_json = evaluate_obs(finer);
  EXPECT_DOUBLE_EQ(finer_json["overall"]["accuracy"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(finer_json["overall"]["ontology"]["corrected_accuracy"].get<double>(), 1.0);
  EXPECT_NE(finer_json["warnings"].dump().find("2 of 4 cells (50%) are predicted a term below their truth's (finer than their truth label): "
                                               "the flat metrics (accuracy, F1) count them as errors"),
            std::string::npos)
      << finer_json["warnings"].dump();
}

TEST_F(EvaluateCli, TopKOfACoarserOrAbstainingColumnAndOntologyMetricsOfFewCellsAreSaid) {
  // annotate --hierarchical wrote a coarser term than its probabilities' best class for 1 of 4
  // cells: top-1 accuracy ranks the probabilities, not that column, and a note says so. Labels
  // of which only one maps to a CL term: the CL metrics describe 1 of 4 cells, and a warning says so.
  const test::TempDir out;
  const std::string path = out.file("coarse_probabilities.h5ad");
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, json, numpy as np, pandas as pd, scipy.sparse as sp\n"
                   "obs = pd.DataFrame({{'truth': pd.Categorical(['B cell', 'B cell', 'T cell', 'T cell']),\n"
                   "                    'celltyper_label': pd.Categorical(['B cell', 'B cell', 'T cell', 'lymphocyte'])}}, index=list('abcd'))\n"
                   "a = anndata.AnnData(sp.csr_matrix(np.ones((4, 3), dtype=np.float32)), obs=obs)\n"
                   "a.obsm['celltyper_probabilities'] = np.array([[.9, .1], [.8, .2], [.1, .9], [.4, .6]], dtype=np.float32)\n"
                   "a.uns['celltyper_probability_classes'] = np.array(['B cell', 'T cell'], dtype=object)\n"
                   "a.write_h5ad('{}')\n",
                   path)});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto run = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--ontology", obo_, "--json", "-"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out);
  EXPECT_DOUBLE_EQ(json["overall"]["accuracy"].get<double>(), 0.75);
  EXPECT_NE(json["warnings"].dump().find("top-k accuracy and mean reciprocal rank rank the classifier's probabilities "
                                         "(obsm:celltyper_probabilities): their most probable class is obs:celltyper_label on 3 of 4 cells"),
            std::string::npos)
      << json["warnings"].dump();
  // Another column of the same predictions spelled in lower case: one label with the classes, and
  // the probabilities rank them under that spelling (top-1 = accuracy, not 0).
  const std::string lower = out.file("lower_probabilities.h5ad");
  const auto made_lower = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, pandas as pd\n"
                   "obs = pd.DataFrame({{'truth': pd.Categorical(['B cell', 'B cell', 'T cell', 'T cell']),\n"
                   "                    'other': pd.Categorical(['b cell', 'b cell', 't cell', 't cell'])}}, index=list('abcd'))\n"
                   "a = anndata.AnnData(np.ones((4, 3), dtype=np.float32), obs=obs)\n"
                   "a.obsm['celltyper_probabilities'] = np.array([[.9, .1], [.8, .2], [.1, .9], [.4, .6]], dtype=np.float32)\n"
                   "a.uns['celltyper_probability_classes'] = np.array(['B cell', 'T cell'], dtype=object)\n"
                   "a.write_h5ad('{}')\n",
                   lower)});
  ASSERT_EQ(made_lower.exit_code, 0) << made_lower.err;
  const auto lower_run = test::run_cli({"evaluate", "-i", lower, "--truth", "obs:truth", "--pred", "obs:other", "--ontology", obo_, "--json", "-"});
  ASSERT_EQ(lower_run.exit_code, 0) << lower_run.err;
  const nlohmann::json lower_json = nlohmann::json::parse(lower_run.out);
  EXPECT_DOUBLE_EQ(lower_json["overall"]["accuracy"].get<double>(), 1.0);
  ASSERT_TRUE(lower_json["overall"]["ranking"].is_object()) << lower_json.dump().substr(0, 600);
  EXPECT_DOUBLE_EQ(lower_json["overall"]["ranking"]["top_k_accuracy"]["1"].get<double>(), 1.0);
  EXPECT_EQ(lower_json["overall"]["ranking"]["n_truth_not_in_classes"], 0);

  const std::string few = write_obs_h5ad(out, "few_mapped.h5ad",
                                         "{'truth': ['B cell', 'Cluster 1', 'Cluster 2', 'Cluster 3'], 'pred': ['B cell', 'Cluster 1', 'Cluster 2', 'Cluster 1']}");
  const nlohmann::json few_json = evaluate_obs(few);
  EXPECT_EQ(few_json["overall"]["ontology"]["n_mapped"], 1);
  EXPECT_NE(few_json["warnings"].dump().find("the Cell Ontology metrics describe 1 of the 4 cells with a prediction (25%): the others' truth "
                                             "or prediction maps to no term (e.g. 'Cluster 1', 2 cells)"),
            std::string::npos)
      << few_json["warnings"].dump();
}

TEST_F(EvaluateCli, ALabelMapRowWinsOverTheIdTheModelRecorded) {
  // A model recorded 'Alpha cells' as the retina's "alpha cell" (an exact synonym of retinal
  // ganglion cell A in CL); the user's --label-map says pancreatic A cell: the table wins, and a
  // warning names the difference.
  const test::TempDir out;
  const std::string path = out.file("alpha.h5ad");
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, pandas as pd\n"
                   "obs = pd.DataFrame({{'truth': pd.Categorical(['alpha', 'alpha', 'acinar']),\n"
                   "                    'celltyper_label': pd.Categorical(['Alpha cells', 'Alpha cells', 'Acinar cells'])}}, index=list('abc'))\n"
                   "a = anndata.AnnData(np.ones((3, 2), dtype=np.float32), obs=obs)\n"
                   "a.obsm['celltyper_probabilities'] = np.array([[.9, .1], [.8, .2], [.1, .9]], dtype=np.float32)\n"
                   "a.uns['celltyper_probability_classes'] = np.array(['Alpha cells', 'Acinar cells'], dtype=object)\n"
                   "a.uns['celltyper_probability_cl_ids'] = np.array(['CL:0004117', 'CL:0002064'], dtype=object)\n"
                   "a.write_h5ad('{}')\n",
                   path)});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::ofstream(out.file("map.tsv")) << "label\tcl_id\nalpha\tCL:0000171\nacinar\tCL:0002064\nAlpha cells\tCL:0000171\n";
  const auto run = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--ontology", obo_, "--label-map", out.file("map.tsv"),
                                  "--json", "-"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out);
  std::map<std::string, std::pair<std::string, std::string>> predicted;
  for (const auto& row : json["label_mapping"]["prediction"]) predicted[row["label"]] = {row["cl_id"], row["match"]};
  EXPECT_EQ(predicted["Alpha cells"], std::make_pair(std::string("CL:0000171"), std::string("user_map")));
  EXPECT_EQ(predicted["Acinar cells"], std::make_pair(std::string("CL:0002064"), std::string("model")));
  EXPECT_DOUBLE_EQ(json["overall"]["ontology"]["corrected_accuracy"].get<double>(), 1.0);
  EXPECT_NE(json["warnings"].dump().find("the --label-map TSV gives 1 label another Cell Ontology id than the model recorded for it; the "
                                         "label map's id is used: 'Alpha cells' (CL:0004117 -> CL:0000171)"),
            std::string::npos)
      << json["warnings"].dump();
  // Without the row the model's id stands: the alpha cells are unrelated to their truth.
  std::ofstream(out.file("map2.tsv")) << "label\tcl_id\nalpha\tCL:0000171\nacinar\tCL:0002064\n";
  const auto model_ids = test::run_cli({"evaluate", "-i", path, "--truth", "obs:truth", "--ontology", obo_, "--label-map", out.file("map2.tsv"),
                                        "--json", "-"});
  ASSERT_EQ(model_ids.exit_code, 0) << model_ids.err;
  EXPECT_NEAR(nlohmann::json::parse(model_ids.out)["overall"]["ontology"]["corrected_accuracy"].get<double>(), 1.0 / 3.0, 1e-12);
}

TEST_F(EvaluateCli, BadInputIsOneClearLine) {
  const test::TempDir out;
  std::ofstream(out.file("bad_map.tsv")) << "dataset\tlabel\tcl_id\npbmc68k_reduced\tCD19+ B\tCL:9999999\n";
  struct Case {
    std::vector<std::string> args;
    std::string message;
    int exit_code = 2;
  };
  const std::string a = annotated_;
  const std::vector<Case> cases = {
      {{"evaluate", "-i", a, "--truth", "obs:nope", "--ontology", obo_},
       fmt::format("celltyper: error: {}: no obs column 'nope' for the truth labels (available: bulk_labels, ", a)},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--pred", "obs:nope2", "--ontology", obo_},
       "no obs column 'nope2' for the predictions (available: bulk_labels"},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--group", "obs:nope3", "--ontology", obo_}, "no obs column 'nope3' for the groups"},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--probabilities", "obsm:nope4", "--ontology", obo_},
       "no obsm matrix 'nope4' for the probabilities (available: "},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--embedding", "obsm:nope5", "--ontology", obo_}, "no obsm matrix 'nope5' for the cell map"},
      {{"evaluate", "-i", a, "--truth", "var:gene_ids", "--ontology", obo_}, "truth column 'var:gene_ids': expected obs:NAME"},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--compare", "ontology", "--no-ontology"},
       "comparing on Cell Ontology terms needs an ontology file"},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--ontology", obo_, "--label-map", out.file("bad_map.tsv")},
       "cl_id CL:9999999 for label 'CD19+ B' is not a term of"},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--ontology", out.file("missing.obo")}, "missing.obo"},
      {{"evaluate", "-i", a, "--truth", "bulk_labels", "--ontology", obo_, "--top-k", "0"}, "--top-k 0: k must be at least 1"},
  };
  for (const auto& c : cases) {
    const auto result = test::run_cli(c.args);
    SCOPED_TRACE(c.message);
    EXPECT_EQ(result.exit_code, c.exit_code) << result.err;
    EXPECT_NE(result.err.find(c.message), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  }
  // PNG export without a usable Chromium fails before any work, naming the package.
  const auto no_browser = test::run_program({"env", "CELLTYPER_CHROMIUM=" + out.file("no-chromium"), CELLTYPER_CLI_PATH, "evaluate", "-i", a,
                                             "--truth", "bulk_labels", "--ontology", obo_, "--png", out.file("png")});
  EXPECT_EQ(no_browser.exit_code, 4) << no_browser.err;
  EXPECT_NE(no_browser.err.find("apt-get install chromium"), std::string::npos) << no_browser.err;
  EXPECT_TRUE(no_browser.out.empty()) << no_browser.out;
  EXPECT_FALSE(std::filesystem::exists(out.file("png")));
}

TEST_F(EvaluateCli, PngExportThroughHeadlessChromium) {
  if (find_chromium().empty()) GTEST_SKIP() << "chromium is not installed (Debian: apt-get install chromium)";
  if (test::run_program({test::system_python(), "-c", "import PIL"}).exit_code != 0) GTEST_SKIP() << "no python3-pil";
  const test::TempDir out;
  const auto run = test::run_cli(evaluate_args({"--png", out.file("png"), "--report", out.file("report.html")}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::printf("%s", run.err.c_str());
  for (const char* name : {"per_class_f1", "confusion_matrix", "ontology_relations", "embedding_truth", "embedding_prediction"}) {
    const std::string png = out.file(std::string("png/") + name + ".png");
    SCOPED_TRACE(png);
    ASSERT_TRUE(std::filesystem::exists(png));
    const auto check = test::run_program({test::system_python(), "-c",
                                          fmt::format("from PIL import Image\nim = Image.open('{}').convert('RGB')\n"
                                                      "print(len(im.getcolors(1 << 24)), im.size[0] > 300 and im.size[1] > 150)\n",
                                                      png)});
    ASSERT_EQ(check.exit_code, 0) << check.err;
    int colours = 0;
    std::string big;
    std::istringstream(check.out) >> colours >> big;
    EXPECT_GT(colours, 20);
    EXPECT_EQ(big, "True");
  }
}

}  // namespace
}  // namespace celltyper
