// End-to-end tests of `celltyper select` (file lists and catalogues), `extract`, training on the
// extract output, and the MPI scale-out: `mpirun -n 2` of catalog / embed / extract gives the
// same output as one process, and
// `train --distributed` the same validation metrics within tolerance.
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>

namespace celltyper {
namespace {

constexpr const char* kPbmc3k = "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad";
constexpr const char* kSavercat = "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad";

/// `head` followed by `tail`.
std::vector<std::string> concat(std::vector<std::string> head, const std::vector<std::string>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

bool have_python() { return test::run_program({test::system_python(), "-c", "import anndata, h5py"}).exit_code == 0; }

/// mpirun with the flags a root container needs, or "" when Open MPI is absent.
std::vector<std::string> mpirun(int processes) {
  if (test::run_program({"mpirun", "--version"}).exit_code != 0) return {};
  return {"mpirun", "--allow-run-as-root", "--oversubscribe", "-n", std::to_string(processes), CELLTYPER_CLI_PATH};
}

/// Python that exits 0 when every dataset and attribute of two HDF5 files is equal, byte for byte.
constexpr const char* kSameContent = R"(
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
def attrs(o): return {k: (v.tolist() if hasattr(v, 'tolist') else v) for k, v in o.attrs.items()}
def walk(x, y, path):
    assert sorted(x.keys()) == sorted(y.keys()), (path, sorted(x.keys()), sorted(y.keys()))
    assert attrs(x) == attrs(y), (path, attrs(x), attrs(y))
    for k in x.keys():
        if isinstance(x[k], h5py.Group): walk(x[k], y[k], path + '/' + k)
        else:
            assert attrs(x[k]) == attrs(y[k]), (path + '/' + k)
            u, v = x[k][()], y[k][()]
            assert np.array_equal(u, v) if not isinstance(u, bytes) else u == v, path + '/' + k
walk(a, b, '')
print('same')
)";

class CorpusCli : public ::testing::Test {
 protected:
  void SetUp() override {
    pbmc3k_ = test::shared_data(kPbmc3k);
    savercat_ = test::shared_data(kSavercat);
    table_ = test::shared_data("gene-annotations/human_genes.tsv");
    if (pbmc3k_.empty() || savercat_.empty() || table_.empty()) GTEST_SKIP() << "../shared/data is absent";
    if (!have_python()) GTEST_SKIP() << "no python3 with anndata/h5py";
    store_ = test::random_gene_store(dir_, 32, 5);
  }
  /// select over pbmc3k and savercat (fragments of 250 rows, 1,500-cell budget).
  std::string select(const std::vector<std::string>& extra = {}) {
    const std::string list = dir_.file("files.txt");
    std::ofstream(list) << "# two real datasets\n" << pbmc3k_ << "\n" << savercat_ << "\n";
    std::vector<std::string> args = {"select", "--files-from", list, "--label", "celltype", "--fragment-rows", "250", "--budget-cells", "1500",
                                     "--min-per-class", "20", "--time-limit", "20", "-o", dir_.file("selection.json"), "--json", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto run = test::run_cli(args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    return run.out;
  }
  test::TempDir dir_;
  std::string pbmc3k_, savercat_, table_, store_;
};

TEST_F(CorpusCli, SelectWritesFragmentsWithinBudgetAndComparesGreedy) {
  const auto summary = nlohmann::json::parse(select());
  EXPECT_EQ(summary["format"], "celltyper-selection");
  EXPECT_LE(summary["n_cells"].get<std::int64_t>(), 1500);
  EXPECT_EQ(summary["solver"]["status"], "optimal");
  EXPECT_GE(summary["ilp"]["objective"].get<double>(), summary["greedy"]["objective"].get<double>() - 1e-9);
  // 9 pbmc3k types + 3 savercat types. Platelet has 14 cells spread over 8 fragments: its minimum
  // (all 14) cannot fit in 6 fragments; a savercat fragment meets the minimum of its 3 types.
  EXPECT_EQ(summary["totals"].size(), 12u);
  EXPECT_EQ(summary["totals"]["Platelet"]["min"], 14);
  EXPECT_GT(summary["totals"]["Platelet"]["shortfall"].get<std::int64_t>(), 0);
  std::int64_t shortfall = 0;
  for (const auto& [name, total] : summary["totals"].items()) shortfall += total["shortfall"].get<std::int64_t>();
  EXPECT_EQ(shortfall, summary["objective"]["shortfall"].get<std::int64_t>());
  for (const char* name : {"B cells", "Monocytes", "T/NK cells"}) EXPECT_EQ(summary["totals"][name]["shortfall"], 0) << name;
  std::ifstream in(dir_.file("selection.json"));
  const auto document = nlohmann::json::parse(in);
  std::int64_t rows = 0;
  for (const auto& fragment : document["fragments"]) {
    rows += fragment["row_end"].get<std::int64_t>() - fragment["row_start"].get<std::int64_t>();
    EXPECT_EQ(fragment["row_start"].get<std::int64_t>() % 250, 0);
  }
  EXPECT_EQ(rows, document["n_cells"].get<std::int64_t>());
}

/// Every row of a catalogue table as CSV, without the columns that record time.
std::string catalogue_rows(const std::string& dir, const std::string& table, const std::string& order) {
  const std::string exclude = table == "files" ? " EXCLUDE (seconds, catalogued_at)" : "";
  const auto run = test::run_cli({"query", dir, fmt::format("SELECT *{} FROM {} ORDER BY {}", exclude, table, order), "--csv"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return run.out;
}

TEST_F(CorpusCli, SelectFromACatalogueTakesItsFilesWithTheLabelColumn) {
  // A catalogue of pbmc3k, savercat and a file without a `celltype` column (pbmc68k_reduced).
  const std::string other = test::shared_data("pbmc68k_reduced/10x_pbmc68k_reduced.h5ad");
  if (other.empty()) GTEST_SKIP() << "pbmc68k_reduced is absent";
  const auto catalog = test::run_cli({"catalog", pbmc3k_, savercat_, other, "--obs", "celltype", "--out", dir_.file("cat"), "-q"});
  ASSERT_EQ(catalog.exit_code, 0) << catalog.err;
  select();  // from the file list
  std::ifstream listed_in(dir_.file("selection.json"));
  const auto listed = nlohmann::json::parse(listed_in);
  const auto run = test::run_cli({"select", "--catalog", dir_.file("cat"), "--label", "celltype", "--fragment-rows", "250", "--budget-cells",
                                  "1500", "--min-per-class", "20", "--time-limit", "20", "-o", dir_.file("from_catalog.json")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("3 files, 2 with obs column 'celltype'"), std::string::npos) << run.err;
  std::ifstream catalogued_in(dir_.file("from_catalog.json"));
  const auto catalogued = nlohmann::json::parse(catalogued_in);
  // The same two files (the catalogue lists them in path order) and the same choice of cells.
  EXPECT_EQ(catalogued["n_files_read"], 2);
  EXPECT_EQ(catalogued["n_fragments_available"], listed["n_fragments_available"]);
  EXPECT_EQ(catalogued["n_cells"], listed["n_cells"]);
  EXPECT_EQ(catalogued["totals"], listed["totals"]);
  // --where filters the files table; no file left is one clear error.
  const auto where = test::run_cli({"select", "--catalog", dir_.file("cat"), "--where", "n_obs > 1000000", "--label", "celltype",
                                    "--fragment-rows", "250", "--budget-cells", "1500", "-o", dir_.file("none.json")});
  EXPECT_EQ(where.exit_code, 2);
  EXPECT_NE(where.err.find("no successfully read file"), std::string::npos) << where.err;
  const auto bad_sql = test::run_cli({"select", "--catalog", dir_.file("cat"), "--where", "no_such_column = 1", "--label", "celltype",
                                      "--fragment-rows", "250", "--budget-cells", "1500", "-o", dir_.file("none.json")});
  EXPECT_EQ(bad_sql.exit_code, 2);
  EXPECT_NE(bad_sql.err.find("no_such_column"), std::string::npos) << bad_sql.err;
  // A catalogue of relative paths, used from another directory: one error saying so.
  std::filesystem::create_directories(dir_.file("rel"));
  std::filesystem::copy_file(pbmc3k_, dir_.file("rel/p.h5ad"));
  const auto relative = test::run_program(
      {"/bin/sh", "-c",
       fmt::format("cd '{0}' && '{1}' catalog p.h5ad --obs celltype --out cat -q && cd / && '{1}' select --catalog '{0}/cat' --label celltype "
                   "--fragment-rows 250 --budget-cells 500 -o '{0}/s.json'",
                   dir_.file("rel"), CELLTYPER_CLI_PATH)});
  EXPECT_EQ(relative.exit_code, 2);
  EXPECT_NE(relative.err.find("lists its files by the relative paths `celltyper catalog` was given (e.g. p.h5ad), none of which exists from /"),
            std::string::npos)
      << relative.err;
}

TEST_F(CorpusCli, SelectReportsBadInputOnOneLine) {
  const auto none = test::run_cli({"select", "--label", "celltype", "--fragment-rows", "10", "--budget-cells", "5", "-o", dir_.file("s.json")});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("no input files"), std::string::npos) << none.err;
  const auto column = test::run_cli({"select", pbmc3k_, "--label", "nope", "--fragment-rows", "10", "--budget-cells", "5", "-o", dir_.file("s.json")});
  EXPECT_EQ(column.exit_code, 2);
  EXPECT_NE(column.err.find("nope"), std::string::npos) << column.err;
  const auto extract = test::run_cli({"extract", "--selection", dir_.file("absent.json"), "--genes", store_, "-o", dir_.file("t.h5ad")});
  EXPECT_EQ(extract.exit_code, 2);
  EXPECT_NE(extract.err.find("absent.json"), std::string::npos) << extract.err;
}

TEST_F(CorpusCli, SelectMergesSpellingsWarnsOfClassesLeftOutAndExtractRefusesOverlaps) {
  // Two parts of pbmc3k, the second spelling 'B' as 'b ': one class for select as for train. A
  // 20-cell budget (two 10-cell fragments) leaves classes without a cell: said. A selection listing a fragment twice
  // would extract its cells twice: refused.
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata\n"
                   "a = anndata.read_h5ad('{0}')\n"
                   "a[:1500].copy().write_h5ad('{1}/first.h5ad')\n"
                   "b = a[1500:1900].copy(); b.obs['celltype'] = b.obs['celltype'].astype(str).replace('B', 'b ')\n"
                   "b.write_h5ad('{1}/second.h5ad')\n",
                   pbmc3k_, dir_.path().string())});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto run = test::run_cli({"select", dir_.file("first.h5ad"), dir_.file("second.h5ad"), "--label", "celltype", "--fragment-rows", "10",
                                  "--budget-cells", "20", "--min-per-class", "3", "-o", dir_.file("small.json"), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto summary = nlohmann::json::parse(run.out);
  EXPECT_EQ(summary["totals"].size(), 9u);
  EXPECT_TRUE(summary["totals"].contains("B"));
  EXPECT_FALSE(summary["totals"].contains("b "));
  EXPECT_NE(run.err.find("warning: obs:celltype: 1 label differs from another only in surrounding spaces or letter case, read as one class: "
                         "'b ' ("),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find(" classes get no cell in the selection: "), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("classes get fewer cells than --min-per-class 3"), std::string::npos) << run.err;

  std::ifstream in(dir_.file("small.json"));
  auto document = nlohmann::json::parse(in);
  document["fragments"].push_back(document["fragments"][0]);
  std::ofstream(dir_.file("twice.json")) << document.dump();
  const auto twice = test::run_cli({"extract", "--selection", dir_.file("twice.json"), "--genes", store_, "-o", dir_.file("twice.h5ad")});
  EXPECT_EQ(twice.exit_code, 2);
  EXPECT_NE(twice.err.find("] overlap (rows ["), std::string::npos) << twice.err;
  EXPECT_NE(twice.err.find("): their common cells would be extracted twice"), std::string::npos) << twice.err;
  // (an empty range between them, or another spelling of the file's path, hides nothing)
  auto inside = nlohmann::json::parse(std::ifstream(dir_.file("small.json")));
  auto first = inside["fragments"][0];
  const std::int64_t start = first["row_start"].get<std::int64_t>();
  auto empty = first;
  empty["row_start"] = start + 1;
  empty["row_end"] = start + 1;
  auto within = first;
  within["file"] = (std::filesystem::path(dir_.path()) / "." / std::filesystem::path(first["file"].get<std::string>()).filename()).string();
  within["row_start"] = start + 2;
  within["row_end"] = start + 3;
  inside["fragments"] = nlohmann::json::array({first, empty, within});
  std::ofstream(dir_.file("inside.json")) << inside.dump();
  const auto hidden = test::run_cli({"extract", "--selection", dir_.file("inside.json"), "--genes", store_, "-o", dir_.file("inside.h5ad")});
  EXPECT_EQ(hidden.exit_code, 2);
  EXPECT_NE(hidden.err.find("fragments[0] and fragments[2] overlap"), std::string::npos) << hidden.err;

  // Both files rewritten with their cells in reverse order: as many rows, other labels in the
  // selected ones. extract refuses rather than embed cells the selection did not choose.
  const auto reversed = test::run_program({test::system_python(), "-c",
                                           fmt::format("import anndata\n"
                                                       "for name in ('first', 'second'):\n"
                                                       "    a = anndata.read_h5ad('{0}/' + name + '.h5ad')\n"
                                                       "    a[::-1].copy().write_h5ad('{0}/' + name + '.h5ad')\n",
                                                       dir_.path().string())});
  ASSERT_EQ(reversed.exit_code, 0) << reversed.err;
  const auto stale = test::run_cli({"extract", "--selection", dir_.file("small.json"), "--genes", store_, "-o", dir_.file("stale.h5ad")});
  EXPECT_EQ(stale.exit_code, 2) << stale.err;
  EXPECT_NE(stale.err.find("no longer hold the labels `select` counted there ("), std::string::npos) << stale.err;
  EXPECT_NE(stale.err.find("the file changed since `select`; run select again"), std::string::npos) << stale.err;
}

TEST_F(CorpusCli, ExtractEmbedsExactlyTheSelectedRowsAndTrainTakesIt) {
  select();
  const std::string train_h5ad = dir_.file("train.h5ad");
  const auto extract = test::run_cli({"extract", "--selection", dir_.file("selection.json"), "--genes", store_, "--gene-table", table_, "-o",
                                      train_h5ad, "--json", "-q"});
  ASSERT_EQ(extract.exit_code, 0) << extract.err;
  const auto summary = nlohmann::json::parse(extract.out);
  EXPECT_EQ(summary["dims"], 32);
  // Whole-file embeddings of both sources: the extracted rows must be the same vectors, bit for bit.
  for (const auto& [name, input] : {std::pair{"pbmc", pbmc3k_}, std::pair{"saver", savercat_}}) {
    const auto embed = test::run_cli({"embed", "-i", input, "-g", store_, "--gene-table", table_, "-o", dir_.file(std::string(name) + ".h5"), "-q"});
    ASSERT_EQ(embed.exit_code, 0) << embed.err;
  }
  const std::string check = fmt::format(
      "import anndata, h5py, numpy as np, json\n"
      "t = anndata.read_h5ad('{0}')\n"
      "assert t.obsm['X_celltyper'].shape == ({1}, 32), t.obsm['X_celltyper'].shape\n"
      "assert t.X.nnz == 0 and t.n_vars > 1000\n"
      "full = {{'{2}': h5py.File('{4}')['embeddings'][()], '{3}': h5py.File('{5}')['embeddings'][()]}}\n"
      "src = {{p: anndata.read_h5ad(p, backed='r').obs['celltype'] for p in full}}\n"
      "for i in range(t.n_obs):\n"
      "    p, r = t.obs['source_file'].iloc[i], int(t.obs['source_row'].iloc[i])\n"
      "    assert np.array_equal(t.obsm['X_celltyper'][i], full[p][r]), (p, r)\n"
      "    assert t.obs['celltype'].iloc[i] == src[p].iloc[r], (p, r)\n"
      "u = json.loads(t.uns['celltyper_extract'])\n"
      "assert u['label_column'] == 'celltype' and len(u['files']) == 2, u\n"
      "print('ok')\n",
      train_h5ad, summary["n_cells"].get<std::int64_t>(), pbmc3k_, savercat_, dir_.file("pbmc.h5"), dir_.file("saver.h5"));
  const auto python = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(python.exit_code, 0) << python.err << python.out;

  const auto train = test::run_cli({"train", "--reference", train_h5ad, "--label", "celltype", "--genes", store_, "--gene-table", table_,
                                    "--classifier", "logreg", "-o", dir_.file("model.h5"), "--json", "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto trained = nlohmann::json::parse(train.out);
  EXPECT_EQ(trained["n_cells"], summary["n_cells"].get<std::int64_t>() - summary["n_empty_cells"].get<std::int64_t>());
  EXPECT_EQ(trained["features"], "genept");  // a training matrix holds embeddings: genept without --features
  EXPECT_EQ(trained["n_classes"], 12);
  EXPECT_GT(trained["validation"]["accuracy"].get<double>(), 0.35);  // random 32-dim gene vectors; chance is ~0.2
  const auto described = test::run_cli({"inspect", dir_.file("model.h5")});
  EXPECT_NE(described.out.find(fmt::format("{}: {} of {} cells used (precomputed embeddings, obsm/X_celltyper)", train_h5ad,
                                           trained["n_cells"].get<std::int64_t>(), summary["n_cells"].get<std::int64_t>())),
            std::string::npos)
      << described.out;
  // The model annotates a query directly (its gene rows came from the extract's var).
  const auto annotate = test::run_cli({"annotate", "-i", pbmc3k_, "-m", dir_.file("model.h5"), "--gene-table", table_, "-o", dir_.file("a.h5ad"), "-q"});
  EXPECT_EQ(annotate.exit_code, 0) << annotate.err;
  // Another gene store is refused with the reason.
  const auto wrong = test::run_cli({"train", "--reference", train_h5ad, "--label", "celltype", "--gene-table", table_, "--genes",
                                    test::random_gene_store(dir_, 32, 6), "-o", dir_.file("m2.h5")});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("gene vectors"), std::string::npos) << wrong.err;
  // pbmc3k's fine labels and savercat's coarse ones joined as one reference: their coarse labels
  // compete with their finer relatives as classes, with or without --harmonize-labels, and train
  // says so (a model trained on the files themselves trains them as one of the classes below).
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  for (const bool harmonize : {false, true}) {
    std::vector<std::string> args = {"train", "--reference", train_h5ad, "--label", "celltype", "--genes", store_, "--gene-table", table_,
                                     "--label-map", label_map, "-o", dir_.file(harmonize ? "mh.h5" : "mf.h5")};
    if (harmonize) args.push_back("--harmonize-labels");
    const auto mixed = test::run_cli(args);
    ASSERT_EQ(mixed.exit_code, 0) << mixed.err;
    EXPECT_NE(mixed.err.find(fmt::format("warning: the references label cells at different Cell Ontology depths or with different names: "
                                         "{} joins the cells of 2 files (obs source_file): ",
                                         train_h5ad)),
              std::string::npos)
        << mixed.err;
    EXPECT_NE(mixed.err.find("lies above classes of another"), std::string::npos) << mixed.err;
    EXPECT_EQ(mixed.err.find("(--harmonize-labels tells coarse labels apart per reference file)") != std::string::npos, harmonize) << mixed.err;
  }
  // cv takes the training matrix too: its precomputed embeddings, genept unless told (as train),
  // held out by source file.
  const auto cv = test::run_cli({"cv", "--reference", train_h5ad, "--label", "obs:celltype", "--group", "obs:source_file", "--genes", store_,
                                 "--gene-table", table_, "--json", "-", "-q"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  const auto folds = nlohmann::json::parse(cv.out);
  EXPECT_NE(folds.dump().find("logreg:genept"), std::string::npos) << cv.out.substr(0, 400);
  // Reference mode trains on the query's genes, which precomputed embeddings cannot give: said.
  const auto as_reference = test::run_cli({"annotate", "-r", train_h5ad, "-l", "obs:celltype", "-i", pbmc3k_, "--csv", dir_.file("r.csv")});
  EXPECT_EQ(as_reference.exit_code, 2) << as_reference.err;
  EXPECT_NE(as_reference.err.find(fmt::format("{}: a `celltyper extract` training matrix holds cell embeddings of every gene, and reference "
                                              "mode trains on the genes the query shares: train a model on it",
                                              train_h5ad)),
            std::string::npos)
      << as_reference.err;
}

TEST_F(CorpusCli, MpiTwoProcessesEmbedAndExtractLikeOne) {
  const auto launcher = mpirun(2);
  if (launcher.empty()) GTEST_SKIP() << "mpirun (openmpi-bin) is absent";
  select();
  // extract: 1 process vs 2.
  const auto one = test::run_cli({"extract", "-s", dir_.file("selection.json"), "-g", store_, "--gene-table", table_, "-o", dir_.file("one.h5ad"), "-q"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = test::run_program(concat(launcher, {"extract", "-s", dir_.file("selection.json"), "-g", store_, "--gene-table", table_, "-o",
                                                       dir_.file("two.h5ad"), "--json", "-q"}));
  ASSERT_EQ(two.exit_code, 0) << two.err << two.out;
  EXPECT_EQ(nlohmann::json::parse(two.out)["processes"], 2);
  const auto same = test::run_program({test::system_python(), "-c", kSameContent, dir_.file("one.h5ad"), dir_.file("two.h5ad")});
  EXPECT_EQ(same.exit_code, 0) << same.err;
  // embed to h5ad (a copy of the input with obsm) and to .npy: 1 process vs 2.
  for (const std::string ext : {".h5ad", ".npy"}) {
    const auto single = test::run_cli({"embed", "-i", pbmc3k_, "-g", store_, "--gene-table", table_, "-o", dir_.file("e1" + ext), "-q"});
    ASSERT_EQ(single.exit_code, 0) << single.err;
    const auto pair = test::run_program(
        concat(launcher, {"embed", "-i", pbmc3k_, "-g", store_, "--gene-table", table_, "-o", dir_.file("e2" + ext), "--memory-limit", "1M", "-q"}));
    ASSERT_EQ(pair.exit_code, 0) << pair.err;
    if (ext == ".npy") {
      std::ifstream a(dir_.file("e1.npy"), std::ios::binary), b(dir_.file("e2.npy"), std::ios::binary);
      const std::string x((std::istreambuf_iterator<char>(a)), {}), y((std::istreambuf_iterator<char>(b)), {});
      EXPECT_TRUE(x == y) << "npy outputs differ";
    } else {
      const auto equal = test::run_program({test::system_python(), "-c", kSameContent, dir_.file("e1.h5ad"), dir_.file("e2.h5ad")});
      EXPECT_EQ(equal.exit_code, 0) << equal.err;
    }
  }
  // A failure on the ranks is one clear error and a non-zero exit, not a hang.
  const auto failing = test::run_program(concat(launcher, {"extract", "-s", dir_.file("selection.json"), "-g", store_, "--gene-table", table_, "-o",
                                                           dir_.file("x.h5ad"), "--label", "no_such_column", "-q"}));
  EXPECT_NE(failing.exit_code, 0);
  EXPECT_NE(failing.err.find("no_such_column"), std::string::npos) << failing.err;
}

TEST_F(CorpusCli, MpiTwoProcessesCatalogLikeOne) {
  const auto launcher = mpirun(2);
  if (launcher.empty()) GTEST_SKIP() << "mpirun (openmpi-bin) is absent";
  const std::string other = test::shared_data("pbmc68k_reduced/10x_pbmc68k_reduced.h5ad");
  if (other.empty()) GTEST_SKIP() << "pbmc68k_reduced is absent";
  const std::vector<std::string> inputs = {pbmc3k_, savercat_, other, dir_.file("missing.h5ad")};
  std::ofstream(dir_.file("missing.h5ad")) << "not hdf5";  // fails on whichever rank gets it
  const auto one = test::run_cli(concat(concat({"catalog"}, inputs), {"--qc", "--out", dir_.file("one"), "-q"}));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = test::run_program(concat(concat(concat(launcher, {"catalog"}), inputs), {"--qc", "--out", dir_.file("two"), "-q"}));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(two.out.find("catalogued 4 files"), std::string::npos) << two.out;  // the root reports every file
  EXPECT_NE(two.out.find("3 new, 0 already there, 1 failed"), std::string::npos) << two.out;
  for (const auto& [table, order] : std::vector<std::pair<std::string, std::string>>{
           {"files", "path"}, {"obs_categories", "file, \"column\", category"}, {"cell_qc", "file, metric"}}) {
    const std::string a = catalogue_rows(dir_.file("one"), table, order);
    const std::string b = catalogue_rows(dir_.file("two"), table, order);
    EXPECT_GT(std::count(a.begin(), a.end(), '\n'), 2) << table;
    EXPECT_EQ(a, b) << table;
  }
}

TEST_F(CorpusCli, ACommandWithoutAMultiProcessModeRunsOnceUnderMpirun) {
  // Under PMIx (srun --mpi=pmix) a process knows its rank, and the size from Slurm's step: any
  // rank but the first leaves at once, saying so. A rank without a known size (a child of an MPI
  // program) runs as asked.
  ::setenv("PMIX_RANK", "1", 1);
  ::setenv("SLURM_STEP_NUM_TASKS", "2", 1);
  const auto second = test::run_cli({"inspect", savercat_});
  ::unsetenv("SLURM_STEP_NUM_TASKS");
  const auto unknown_size = test::run_cli({"inspect", savercat_});
  ::unsetenv("PMIX_RANK");
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, "");
  EXPECT_NE(second.err.find("celltyper: process 1 of 2: inspect runs in the first process only"), std::string::npos) << second.err;
  ASSERT_EQ(unknown_size.exit_code, 0) << unknown_size.err;
  EXPECT_NE(unknown_size.out.find(savercat_), std::string::npos);
  EXPECT_EQ(unknown_size.err.find("multi-process"), std::string::npos) << unknown_size.err;

  const auto launcher = mpirun(2);
  if (launcher.empty()) GTEST_SKIP() << "mpirun (openmpi-bin) is absent";
  const auto run = test::run_program(concat(launcher, {"inspect", savercat_}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto once = [](const std::string& text, const std::string& needle) {
    const auto first = text.find(needle);
    return first != std::string::npos && text.find(needle, first + 1) == std::string::npos;
  };
  EXPECT_TRUE(once(run.out, savercat_)) << run.out;
  EXPECT_TRUE(once(run.err, "warning: celltyper inspect has no multi-process mode: it runs once, in the first of the 2 processes the launcher started")) << run.err;
}

TEST_F(CorpusCli, DistributedMlpTrainingMatchesOneProcess) {
  const auto launcher = mpirun(2);
  if (launcher.empty()) GTEST_SKIP() << "mpirun (openmpi-bin) is absent";
  select();
  const auto extract = test::run_cli({"extract", "-s", dir_.file("selection.json"), "-g", store_, "--gene-table", table_, "-o", dir_.file("t.h5ad"), "-q"});
  ASSERT_EQ(extract.exit_code, 0) << extract.err;
  const std::vector<std::string> train = {"train", "--reference", dir_.file("t.h5ad"), "--label", "celltype", "--genes", store_, "--features", "genept", "--gene-table", table_,
                                          "--classifier", "mlp", "--epochs", "15", "--hidden", "64", "--batch-size", "64", "--threads", "1",
                                          "--json", "-q"};
  auto single_args = train;
  single_args.insert(single_args.end(), {"-o", dir_.file("m1.h5")});
  const auto single = test::run_cli(single_args);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const auto pair = test::run_program(concat(concat(launcher, train), {"--distributed", "-o", dir_.file("m2.h5")}));
  ASSERT_EQ(pair.exit_code, 0) << pair.err;
  const auto a = nlohmann::json::parse(single.out);
  const auto b = nlohmann::json::parse(pair.out);  // printed by rank 0 only
  EXPECT_EQ(b["provenance"]["fit_report"]["processes"], 2);
  EXPECT_NEAR(a["validation"]["accuracy"].get<double>(), b["validation"]["accuracy"].get<double>(), 0.03);
  EXPECT_NEAR(a["validation"]["macro"]["f1"].get<double>(), b["validation"]["macro"]["f1"].get<double>(), 0.05);
  EXPECT_NEAR(a["provenance"]["fit_report"]["final_loss"].get<double>(), b["provenance"]["fit_report"]["final_loss"].get<double>(), 0.05);
  const auto not_mlp = test::run_cli({"train", "--reference", dir_.file("t.h5ad"), "--label", "celltype", "--genes", store_, "--features", "genept", "--classifier", "logreg",
                                      "--distributed", "-o", dir_.file("m3.h5")});
  EXPECT_EQ(not_mlp.exit_code, 2);
  EXPECT_NE(not_mlp.err.find("--distributed"), std::string::npos) << not_mlp.err;
  // Processes that read other files (a path naming another file on another node): one clear
  // error, not a failure inside MPI.
  std::vector<std::string> mismatched = {launcher.begin(), launcher.end() - 3};  // mpirun and its flags
  for (const std::string& file : {dir_.file("t.h5ad"), savercat_}) {
    if (file != dir_.file("t.h5ad")) mismatched.emplace_back(":");
    mismatched.insert(mismatched.end(), {"-n", "1", CELLTYPER_CLI_PATH});
    auto args = train;
    args[2] = file;
    mismatched.insert(mismatched.end(), args.begin(), args.end());
    mismatched.insert(mismatched.end(), {"--distributed", "-o", dir_.file("m4.h5")});
  }
  const auto disagree = test::run_program(mismatched);
  EXPECT_NE(disagree.exit_code, 0);
  EXPECT_NE(disagree.err.find("--distributed: process 1 reads other training data than process 0"), std::string::npos) << disagree.err;
}

}  // namespace
}  // namespace celltyper
