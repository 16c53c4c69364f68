// End-to-end tests of the default configuration on a query that measures other genes than the
// reference (pbmc3k -> pbmc68k_reduced, 765 genes): the coverage warning, refitting on the shared
// genes, reference mode (`annotate --reference`), and their bad input.
#include <celltyper/model_file.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

namespace celltyper {
namespace {

TEST(AccurateByDefault, Pbmc3kModelOnPbmc68kWarnsRefitsAndFindsTheBCells) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  test::TempDir dir;
  // Default flags only (plus the gene table and the CL ids of the classes).
  const auto train = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "--label-map", label_map,
                                    "--label-dataset", "pbmc3k-seurat-labels", "-o", dir.file("model.h5"), "--json", "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto summary = nlohmann::json::parse(train.out);
  EXPECT_EQ(summary["features"], "expression");
  EXPECT_EQ(summary["classifier"], "logreg");
  EXPECT_EQ(summary["provenance"]["reference_sample_cells"], 2638);  // below the 20,000 cap: every labelled cell

  const auto annotate = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", query, "--layer", "counts", "-o", dir.file("out.h5ad"),
                                       "--gene-table", table, "--json"});
  ASSERT_EQ(annotate.exit_code, 0) << annotate.err;
  // One warning line says how little of the model the query measures and what was done.
  EXPECT_NE(annotate.err.find("warning: " + query + " measures "), std::string::npos) << annotate.err;
  EXPECT_NE(annotate.err.find("refitted on the "), std::string::npos) << annotate.err;
  const auto result = nlohmann::json::parse(annotate.out);
  ASSERT_EQ(result["models"].size(), 1u);
  EXPECT_TRUE(result["models"][0]["refitted"].get<bool>());
  EXPECT_LT(result["models"][0]["mass_coverage"].get<double>(), 0.5);
  EXPECT_GT(result["models"][0]["refit_genes"].get<int>(), 700);

  // The same model used as trained: a warning that names the fixes.
  const auto as_trained = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", query, "--layer", "counts", "-o",
                                         dir.file("as_trained.h5ad"), "--gene-table", table, "--no-refit"});
  ASSERT_EQ(as_trained.exit_code, 0) << as_trained.err;
  EXPECT_NE(as_trained.err.find("labels may be wrong. Fix: `celltyper annotate --reference"), std::string::npos) << as_trained.err;

  // B cells (bulk label CD19+ B) are called B; every cell has a coverage in (0, 1).
  const std::string check = fmt::format(
      "import anndata, numpy as np\n"
      "a = anndata.read_h5ad('{0}')\n"
      "b = a.obs['bulk_labels'].astype(str) == 'CD19+ B'\n"
      "share = (a.obs['celltyper_label'].astype(str)[b] == 'B').mean()\n"
      "c = a.obs['celltyper_gene_coverage'].values\n"
      "assert ((c > 0) & (c < 1)).all(), c\n"
      "print('B cells called B: %.3f of %d; coverage median %.3f' % (share, b.sum(), np.median(c)))\n"
      "assert share >= 0.9, share\n",
      dir.file("out.h5ad"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  std::printf("%s", run.out.c_str());
}

TEST(AccurateByDefault, GenesPaddedWithZerosAreReadAsNotMeasured) {
  // pbmc68k_reduced's 765 genes written out to pbmc3k's (anndata.concat(join="outer") or a file
  // padded to a reference's genes: zeros in every cell for the genes it never measured) gives the
  // labels of the 765-gene file, and says why; before, the zeros read as absent expression.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string script = fmt::format(
      "import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
      "q = anndata.read_h5ad('{0}')\n"
      "ref_genes = list(anndata.read_h5ad('{1}', backed='r').var_names)\n"
      "own = list(q.var_names)\n"
      "extra = [g for g in ref_genes if g not in set(own)]\n"
      "counts = sp.csr_matrix(q.layers['counts'], dtype=np.float32)\n"
      "obs = q.obs[['bulk_labels']]\n"
      "anndata.AnnData(counts, obs=obs, var=pd.DataFrame(index=own)).write_h5ad('{2}')\n"
      "padded = sp.hstack([counts, sp.csr_matrix((q.n_obs, len(extra)), dtype=np.float32)]).tocsr()\n"
      "anndata.AnnData(padded, obs=obs, var=pd.DataFrame(index=own + extra)).write_h5ad('{3}')\n",
      query, reference, dir.file("plain.h5ad"), dir.file("padded.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto train = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto plain = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", dir.file("plain.h5ad"), "--csv", dir.file("plain.csv"),
                                    "--gene-table", table, "--json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.err.find("read as not measured"), std::string::npos) << plain.err;
  const auto padded = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", dir.file("padded.h5ad"), "--csv", dir.file("padded.csv"),
                                     "--gene-table", table, "--json"});
  ASSERT_EQ(padded.exit_code, 0) << padded.err;
  EXPECT_NE(padded.err.find("genes have no count in any of its 700 cells"), std::string::npos) << padded.err;
  EXPECT_NE(padded.err.find("read as not measured, as in a panel padded with zeros"), std::string::npos) << padded.err;
  const auto plain_json = nlohmann::json::parse(plain.out);
  const auto padded_json = nlohmann::json::parse(padded.out);
  EXPECT_TRUE(padded_json["models"][0]["refitted"].get<bool>());
  EXPECT_NEAR(padded_json["models"][0]["mass_coverage"].get<double>(), plain_json["models"][0]["mass_coverage"].get<double>(), 0.01);
  const auto labels = [](const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> rows;
    for (std::string line; std::getline(in, line);) rows.push_back(line.substr(0, line.find(',', line.find(',') + 1)));
    return rows;
  };
  const std::vector<std::string> plain_labels = labels(dir.file("plain.csv"));
  const std::vector<std::string> padded_labels = labels(dir.file("padded.csv"));
  ASSERT_EQ(plain_labels.size(), 701u);
  ASSERT_EQ(padded_labels.size(), plain_labels.size());
  std::size_t same = 0;
  for (std::size_t i = 0; i < plain_labels.size(); ++i) same += plain_labels[i] == padded_labels[i] ? 1 : 0;
  EXPECT_GE(same, plain_labels.size() - 7) << "labels of the padded file differ from the 765-gene file's";
}

/// An annotation CSV's labels by cell name (its first two columns).
std::map<std::string, std::string> labels_by_cell(const std::string& path) {
  std::ifstream in(path);
  std::map<std::string, std::string> rows;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    const auto comma = line.find(',');
    rows[line.substr(0, comma)] = line.substr(comma + 1, line.find(',', comma + 1) - comma - 1);
  }
  return rows;
}

/// Writes `joined` (anndata.concat(join="outer"), obs 'sample'): every 9th pbmc3k cell with all
/// its genes ("pbmc3k", names r0..), pbmc68k_reduced's 765-gene counts ("pbmc68k", q0.., also
/// written alone to `own`), and with `tiny`, every 20th pbmc3k cell from the 5th cut to 15
/// housekeeping genes ("tiny", t0..). Returns the script's result.
test::CommandResult write_joined_pbmc(const std::string& reference, const std::string& query, const std::string& joined,
                                      const std::string& own, bool tiny) {
  const std::string script = fmt::format(
      "import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
      "q = anndata.read_h5ad('{0}')\n"
      "r = anndata.read_h5ad('{1}')\n"
      "def plain(X, names, genes):\n"
      "    return anndata.AnnData(sp.csr_matrix(X, dtype=np.float32), obs=pd.DataFrame(index=names), var=pd.DataFrame(index=list(genes)))\n"
      "own = plain(q.layers['counts'], [f'q{{i}}' for i in range(q.n_obs)], q.var_names)\n"
      "own.write_h5ad('{3}')\n"
      "whole = r[np.arange(0, r.n_obs, 9)]\n"
      "samples = {{'pbmc3k': plain(whole.X, [f'r{{i}}' for i in range(whole.n_obs)], whole.var_names)}}\n"
      "if {4}:\n"
      "    few = ['ACTB', 'B2M', 'TMSB4X', 'MALAT1', 'FTL', 'FTH1', 'TPT1', 'EEF1A1', 'RPL13', 'RPS27A', 'GAPDH', 'CFL1', 'PFN1', 'MYL6', 'TMSB10']\n"
      "    t = r[np.arange(4, r.n_obs, 20)][:, few]\n"
      "    samples['tiny'] = plain(t.X, [f't{{i}}' for i in range(t.n_obs)], few)\n"
      "samples['pbmc68k'] = own\n"
      "joined = anndata.concat(samples, join='outer', label='sample')\n"
      "joined.X = sp.csr_matrix(joined.X, dtype=np.float32)\n"
      "joined.write_h5ad('{2}')\n",
      query, reference, joined, own, tiny ? "True" : "False");
  return test::run_program({test::system_python(), "-c", script});
}

TEST(AccurateByDefault, ASamplePaddedInAJoinedFileIsAnnotatedOnItsOwnGenes) {
  // A file joined from a whole transcriptome (300 pbmc3k cells) and a 765-gene panel padded
  // with zeros (pbmc68k_reduced), as anndata.concat(join="outer") writes it: every gene has
  // counts in some cell, so the whole-file rule sees no padding; the obs column telling the
  // samples does. The padded sample's cells get the labels of the 765-gene file, the others those
  // of the whole-file reading (--group none --no-refit), which also reproduces the old labels.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const auto made = write_joined_pbmc(reference, query, dir.file("joined.h5ad"), dir.file("own.h5ad"), false);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto train = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto annotate = [&](const std::string& input, const std::string& csv, std::vector<std::string> extra) {
    std::vector<std::string> args = {"annotate", "-m", dir.file("model.h5"), "-i", input, "--csv", dir.file(csv), "-o",
                                     dir.file(csv + ".h5ad"), "--gene-table", table, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  const auto own = annotate(dir.file("own.h5ad"), "own.csv", {});
  ASSERT_EQ(own.exit_code, 0) << own.err;
  const auto joined = annotate(dir.file("joined.h5ad"), "joined.csv", {});
  ASSERT_EQ(joined.exit_code, 0) << joined.err;
  EXPECT_NE(joined.err.find("joined.h5ad [sample=pbmc68k]: "), std::string::npos) << joined.err;
  EXPECT_NE(joined.err.find("a sample padded with zeros when the file was joined"), std::string::npos) << joined.err;
  EXPECT_NE(joined.err.find("samples told by obs 'sample'"), std::string::npos) << joined.err;
  const auto result = nlohmann::json::parse(joined.out);
  ASSERT_EQ(result["panel_groups"].size(), 1u) << result.dump();
  EXPECT_EQ(result["panel_groups"][0]["column"], "sample");
  EXPECT_EQ(result["panel_groups"][0]["level"], "pbmc68k");
  EXPECT_EQ(result["panel_groups"][0]["n_cells"], 700);
  EXPECT_TRUE(result["panel_groups"][0]["models"][0]["refitted"].get<bool>());
  EXPECT_FALSE(result["models"][0]["refitted"].get<bool>());  // the file as a whole measures every gene
  // (read as one panel, the file's median cell is the padded sample's, shallow over the model's
  // genes: a refit would match that depth; --no-refit reads it as before)
  const auto one_panel = annotate(dir.file("joined.h5ad"), "one_panel.csv", {"--group", "none", "--no-refit"});
  ASSERT_EQ(one_panel.exit_code, 0) << one_panel.err;
  EXPECT_EQ(one_panel.err.find("padded"), std::string::npos) << one_panel.err;
  EXPECT_TRUE(nlohmann::json::parse(one_panel.out)["panel_groups"].empty());
  const auto named = annotate(dir.file("joined.h5ad"), "named.csv", {"--group", "obs:sample", "-q"});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_EQ(named.err.find("samples told by obs"), std::string::npos) << named.err;  // (the user named it)
  // --quiet silences progress and summaries, not the warnings
  EXPECT_NE(named.err.find("warning: " + dir.file("joined.h5ad") + " [sample=pbmc68k]: "), std::string::npos) << named.err;
  EXPECT_EQ(named.err.find("annotated 994 cells"), std::string::npos) << named.err;

  const auto labels = labels_by_cell;
  const auto own_labels = labels(dir.file("own.csv"));
  const auto joined_labels = labels(dir.file("joined.csv"));
  const auto one_panel_labels = labels(dir.file("one_panel.csv"));
  EXPECT_EQ(labels(dir.file("named.csv")), joined_labels);
  ASSERT_EQ(own_labels.size(), 700u);
  ASSERT_EQ(joined_labels.size(), 700u + 294u);
  std::size_t same_as_own = 0;
  std::size_t one_panel_same_as_own = 0;
  for (const auto& [cell, label] : own_labels) {
    // (anndata.concat keeps the names: q0.., r0..)
    same_as_own += joined_labels.at(cell) == label ? 1 : 0;
    one_panel_same_as_own += one_panel_labels.at(cell) == label ? 1 : 0;
  }
  EXPECT_GE(same_as_own, 693u) << "the padded sample's labels differ from the 765-gene file's";
  EXPECT_LT(one_panel_same_as_own, same_as_own) << "read as one panel, the padded cells should be called from their zeros";
  for (const auto& [cell, label] : joined_labels) {
    if (cell[0] == 'r') EXPECT_EQ(label, one_panel_labels.at(cell)) << cell;  // the whole transcriptome's cells: as before
  }
  std::printf("padded sample: %zu of 700 labels of the 765-gene file (read as one panel: %zu)\n", same_as_own, one_panel_same_as_own);

  // A model from before type profiles (no /similarity): the padded sample's refit has one, the
  // query's model not; the sample is annotated as with the new model, nothing judged.
  const auto stripped = test::run_program({test::system_python(), "-c",
                                           fmt::format("import h5py, shutil\nshutil.copy('{0}', '{1}')\nf = h5py.File('{1}', 'a')\n"
                                                       "del f['similarity']\nf.close()\n"
                                                       "with open('{1}', 'r+b') as f: f.write(bytes(64))\n",  // (and no checksum)
                                                       dir.file("model.h5"), dir.file("old.h5"))});
  ASSERT_EQ(stripped.exit_code, 0) << stripped.err;
  const auto old = test::run_cli({"annotate", "-m", dir.file("old.h5"), "-i", dir.file("joined.h5ad"), "--csv", dir.file("old.csv"), "-o",
                                  dir.file("old.csv.h5ad"), "--gene-table", table, "-q"});
  ASSERT_EQ(old.exit_code, 0) << old.err;
  EXPECT_EQ(labels(dir.file("old.csv")), joined_labels);

  // A column that is not there: its name and the columns that are.
  const auto missing = annotate(dir.file("joined.h5ad"), "missing.csv", {"--group", "obs:batch"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("batch"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("sample"), std::string::npos) << missing.err;
}

TEST(AccurateByDefault, ASampleOfAJoinedFileNamedWithOtherSymbolsReadsItsGenesFromItsOwnVars) {
  // Files annotated with different gene symbols, joined: pbmc68k_reduced names 50-odd genes by
  // aliases (older symbols), and the pbmc3k sample here by their official symbols, so that each
  // of those genes is named by two vars, each with counts in one sample only. The padded sample
  // reads them from its own vars (as its file alone does), not from the other sample's zeros.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string script = fmt::format(
      "import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
      "genes = pd.read_csv('{2}', sep='\\t', usecols=['symbol', 'aliases'], dtype=str).fillna('')\n"
      "symbols = set(genes['symbol'])\n"
      "alias_of = {{}}\n"
      "for symbol, aliases in zip(genes['symbol'], genes['aliases']):\n"
      "    for alias in filter(None, aliases.split(',')):\n"
      "        alias_of.setdefault(alias, set()).add(symbol)\n"
      "q = anndata.read_h5ad('{0}')\n"
      "r = anndata.read_h5ad('{1}')\n"
      "renamed = {{name: next(iter(alias_of[name])) for name in q.var_names if name not in symbols and len(alias_of.get(name, ())) == 1\n"
      "           and next(iter(alias_of[name])) not in q.var_names and next(iter(alias_of[name])) not in r.var_names and name in r.var_names}}\n"
      "def plain(X, names, genes):\n"
      "    return anndata.AnnData(sp.csr_matrix(X, dtype=np.float32), obs=pd.DataFrame(index=names), var=pd.DataFrame(index=list(genes)))\n"
      "own = plain(q.layers['counts'], [f'q{{i}}' for i in range(q.n_obs)], q.var_names)\n"
      "own.write_h5ad('{3}')\n"
      "whole = r[np.arange(0, r.n_obs, 9)]\n"
      "newer = plain(whole.X, [f'r{{i}}' for i in range(whole.n_obs)], [renamed.get(name, name) for name in whole.var_names])\n"
      "joined = anndata.concat({{'pbmc3k': newer, 'pbmc68k': own}}, join='outer', label='sample')\n"
      "joined.X = sp.csr_matrix(joined.X, dtype=np.float32)\n"
      "joined.write_h5ad('{4}')\n"
      "print(len(renamed))\n",
      query, reference, table, dir.file("own.h5ad"), dir.file("joined.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_GE(std::stoi(made.out), 20) << "too few genes renamed for the test to mean something";
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "-o", dir.file("model.h5"), "-q"}).exit_code, 0);
  const auto annotate = [&](const std::string& input, const std::string& csv) {
    return test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", input, "--csv", dir.file(csv), "-o", dir.file(csv + ".h5ad"),
                          "--gene-table", table, "--json"});
  };
  const auto own = annotate(dir.file("own.h5ad"), "own.csv");
  ASSERT_EQ(own.exit_code, 0) << own.err;
  const auto joined = annotate(dir.file("joined.h5ad"), "joined.csv");
  ASSERT_EQ(joined.exit_code, 0) << joined.err;
  const auto groups = nlohmann::json::parse(joined.out)["panel_groups"];
  ASSERT_EQ(groups.size(), 1u) << joined.out;
  // (all but a gene its cells count in fewer than 10 cells under its old name: a var that rare
  // says nothing, and the names choose the padded one)
  const auto own_measured = nlohmann::json::parse(own.out)["models"][0]["n_measured"].get<std::int64_t>();
  EXPECT_GE(groups[0]["models"][0]["n_measured"].get<std::int64_t>(), own_measured - 1) << joined.err;
  EXPECT_LE(groups[0]["models"][0]["n_measured"].get<std::int64_t>(), own_measured) << joined.err;
  EXPECT_NE(joined.err.find("joined.h5ad [sample=pbmc68k]: "), std::string::npos) << joined.err;
  EXPECT_NE(joined.err.find("genes named by two vars are read from the one with counts"), std::string::npos) << joined.err;
  const auto labels = labels_by_cell;
  const auto own_labels = labels(dir.file("own.csv"));
  const auto joined_labels = labels(dir.file("joined.csv"));
  std::size_t same = 0;
  for (const auto& [cell, label] : own_labels) same += joined_labels.at(cell) == label ? 1 : 0;
  EXPECT_GE(same + 2, own_labels.size()) << "the sample's labels differ from its own file's";
  std::printf("the sample's labels: %zu of %zu as its own file's\n", same, own_labels.size());
}

TEST(AccurateByDefault, PaddedSamplesWithEnsemblesHierarchyAndTooFewGenes) {
  // Three samples joined: whole-transcriptome pbmc3k cells, the same kind of cells cut to 15
  // housekeeping genes (too few to annotate: Unassigned, probabilities zero, a warning) and the
  // 765-gene pbmc68k_reduced. Two models averaged (the same model twice: the labels of one),
  // --hierarchical and --top-k run over the padded samples' rows.
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  const std::string label_map = test::shared_data("label_map_to_cell_ontology.tsv");
  const std::string ontology = test::shared_data("cell-ontology/cl-basic.obo");
  test::TempDir dir;
  const auto made = write_joined_pbmc(reference, query, dir.file("joined.h5ad"), dir.file("own.h5ad"), true);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto train = test::run_cli({"train", "-r", reference, "-l", "obs:celltype", "--gene-table", table, "--label-map", label_map,
                                    "--label-dataset", "pbmc3k-seurat-labels", "-o", dir.file("model.h5"), "-q"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto one = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", dir.file("joined.h5ad"), "-o", dir.file("one.h5ad"),
                                  "--gene-table", table, "--json"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-m", dir.file("model.h5"), "-i", dir.file("joined.h5ad"), "-o",
                                  dir.file("two.h5ad"), "--gene-table", table, "--hierarchical", "--ontology", ontology, "--top-k", "2",
                                  "--json"});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(one.err.find("joined.h5ad [sample=tiny] measures "), std::string::npos) << one.err;
  EXPECT_NE(one.err.find("too few to annotate"), std::string::npos) << one.err;
  EXPECT_NE(one.err.find("its cells are left Unassigned"), std::string::npos) << one.err;
  const auto groups = nlohmann::json::parse(one.out)["panel_groups"];
  ASSERT_EQ(groups.size(), 2u) << groups.dump();
  EXPECT_EQ(nlohmann::json::parse(two.out)["panel_groups"].size(), 2u);
  const std::string check = fmt::format(
      "import anndata, numpy as np\n"
      "one = anndata.read_h5ad('{0}'); two = anndata.read_h5ad('{1}')\n"
      "tiny = (one.obs['sample'] == 'tiny').to_numpy(); q = (one.obs['sample'] == 'pbmc68k').to_numpy()\n"
      "assert (one.obs['celltyper_label'].astype(str)[tiny] == 'Unassigned').all()\n"
      "assert (one.obsm['celltyper_probabilities'][tiny] == 0).all()\n"
      "assert (one.obs['celltyper_gene_coverage'][tiny] == 0).all()\n"
      "assert np.isnan(one.obs['celltyper_similarity'][tiny]).all()\n"
      "assert not one.obs['celltyper_unlike_reference'][tiny].any()\n"
      "p = one.obsm['celltyper_probabilities'][~tiny]\n"
      "assert np.allclose(p.sum(1), 1, atol=1e-4), p.sum(1).min()\n"
      "assert np.allclose(two.obsm['celltyper_probabilities'], one.obsm['celltyper_probabilities'], atol=1e-6)\n"
      "assert (two.obs['celltyper_flat_label'].astype(str) == one.obs['celltyper_label'].astype(str)).all()\n"
      "assert (two.obs['celltyper_top1_label'].astype(str)[q] == one.obs['celltyper_label'].astype(str)[q]).all()\n"
      "assert (two.obs['celltyper_label'].astype(str)[tiny] == 'Unassigned').all()\n",
      dir.file("one.h5ad"), dir.file("two.h5ad"));
  const auto checked = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(checked.exit_code, 0) << checked.err << checked.out;
}

TEST(ReferenceMode, TrainsOnTheSharedGenesLikeTheRefittedModel) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(query, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const auto reference_mode = test::run_cli({"annotate", "--reference", reference, "--label", "obs:celltype", "-i", query, "--layer",
                                             "counts", "-o", dir.file("reference_mode.h5ad"), "--gene-table", table, "--save-model",
                                             dir.file("saved.h5"), "--threads", "1"});
  ASSERT_EQ(reference_mode.exit_code, 0) << reference_mode.err;
  EXPECT_NE(reference_mode.err.find("reference mode: trained logreg on 2638 cells, 9 classes"), std::string::npos) << reference_mode.err;
  // The query's 765 genes hold a small share of pbmc3k's counts: said, as model mode's refit says
  // it (the model trained on those genes alone reads 100% coverage).
  EXPECT_NE(reference_mode.err.find(fmt::format("warning: {} measures 751 of the ", query)), std::string::npos) << reference_mode.err;
  EXPECT_NE(reference_mode.err.find("% of its counts in the median cell): trained on the genes it measures; on fewer genes the check for cells "
                                    "unlike the reference's types"),
            std::string::npos)
      << reference_mode.err;
  const CellTypeModel saved = load_model(dir.file("saved.h5"));
  EXPECT_FALSE(saved.panel.size_factor_genes.empty());
  EXPECT_EQ(saved.reference.n_cells(), 2638);

  // The default model refitted for this query is the same model, the same probabilities, with
  // depth augmentation (a cell's thinned copy depends on its counts and genes, not on its row in
  // the file or in the reference sample) and without it, uncalibrated; calibrated, the refit of a
  // calibrated model fits its temperature on the same held-out cells as reference mode: the same
  // scores too.
  const auto uncalibrated = test::run_cli({"annotate", "--reference", reference, "--label", "obs:celltype", "-i", query, "--layer", "counts",
                                           "-o", dir.file("uncalibrated_reference_mode.h5ad"), "--gene-table", table, "--no-calibrate",
                                           "--threads", "1", "-q"});
  ASSERT_EQ(uncalibrated.exit_code, 0) << uncalibrated.err;
  EXPECT_NE(saved.classifier->temperature(), 1.0);
  const auto train = test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "-o", dir.file("model.h5"), "-q",
                                    "--no-calibrate"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  const auto refitted = test::run_cli({"annotate", "-m", dir.file("model.h5"), "-i", query, "--layer", "counts", "-o",
                                       dir.file("refitted.h5ad"), "--gene-table", table, "-q"});
  ASSERT_EQ(refitted.exit_code, 0) << refitted.err;
  const auto plain_reference_mode =
      test::run_cli({"annotate", "--reference", reference, "--label", "obs:celltype", "-i", query, "--layer", "counts", "-o",
                     dir.file("plain_reference_mode.h5ad"), "--gene-table", table, "--no-augment-depth", "--threads", "1", "-q",
                     "--no-calibrate"});
  ASSERT_EQ(plain_reference_mode.exit_code, 0) << plain_reference_mode.err;
  const auto plain_train = test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "--no-augment-depth", "-o",
                                          dir.file("plain.h5"), "-q", "--no-calibrate"});
  ASSERT_EQ(plain_train.exit_code, 0) << plain_train.err;
  const auto plain_refitted = test::run_cli({"annotate", "-m", dir.file("plain.h5"), "-i", query, "--layer", "counts", "-o",
                                             dir.file("plain_refitted.h5ad"), "--gene-table", table, "-q"});
  ASSERT_EQ(plain_refitted.exit_code, 0) << plain_refitted.err;
  ASSERT_EQ(test::run_cli({"train", "-r", reference, "-l", "celltype", "--gene-table", table, "-o", dir.file("calibrated.h5"), "-q"}).exit_code, 0);
  const auto calibrated_refitted = test::run_cli({"annotate", "-m", dir.file("calibrated.h5"), "-i", query, "--layer", "counts", "-o",
                                                  dir.file("calibrated_refitted.h5ad"), "--gene-table", table, "-q"});
  ASSERT_EQ(calibrated_refitted.exit_code, 0) << calibrated_refitted.err;
  const std::string check = fmt::format(
      "import anndata, numpy as np\n"
      "def pair(x, y):\n"
      "    a = anndata.read_h5ad(x); b = anndata.read_h5ad(y)\n"
      "    assert list(a.uns['celltyper_probability_classes']) == list(b.uns['celltyper_probability_classes'])\n"
      "    d = np.abs(a.obsm['celltyper_probabilities'] - b.obsm['celltyper_probabilities']).max()\n"
      "    same = (a.obs['celltyper_label'].astype(str) == b.obs['celltyper_label'].astype(str)).mean()\n"
      "    return d, same\n"
      "d, same = pair('{2}', '{3}')\n"
      "assert d < 1e-5 and same == 1, (d, same)\n"
      "d, same = pair('{0}', '{1}')\n"
      "assert d < 1e-5 and same == 1, (d, same)\n"
      "print('augmented: %.4f of labels agree, max probability difference %.3f' % (same, d))\n"
      "d, same = pair('{0}', '{4}')\n"
      "assert same == 1 and d > 0.01, (d, same)\n"
      "print('calibrated: %.4f of labels agree, max probability difference %.3f' % (same, d))\n"
      "d, same = pair('{4}', '{5}')\n"
      "assert d < 1e-5 and same == 1, (d, same)\n",
      dir.file("uncalibrated_reference_mode.h5ad"), dir.file("refitted.h5ad"), dir.file("plain_reference_mode.h5ad"),
      dir.file("plain_refitted.h5ad"), dir.file("reference_mode.h5ad"), dir.file("calibrated_refitted.h5ad"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::printf("%s", run.out.c_str());
}

TEST(ReferenceMode, EmptyDropletsOfAnUnfilteredMatrixDoNotSetItsCellsDepth) {
  // pbmc3k's odd cells spread among 60,000 barcodes of ambient RNA (mostly 1-8 counts, 5% of them
  // 10-300), as an unfiltered matrix holds them: the cells' labels are those of the cells alone.
  // The query's depth was the median over every barcode: the reference was thinned to it and the
  // cells' accuracy fell from 0.886 to 0.306 (model mode's refit alike: 0.329; an audit's file).
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, numpy as np, scipy.sparse as sp, pandas as pd\n"
      "a = anndata.read_h5ad('{0}')\n"
      "X = sp.csr_matrix(a.X, dtype=np.float32)\n"
      "rng = np.random.default_rng(5)\n"
      "def write(X, obs, path, genes=slice(None)):\n"
      "    out = anndata.AnnData(X=sp.csr_matrix(X)[:, genes], obs=obs, var=pd.DataFrame(index=a.var_names[genes]))\n"
      "    out.write_h5ad(path)\n"
      "write(X[0::2], a.obs[['celltype']][0::2], '{1}')\n"
      "odd = X[1::2]; obs = pd.DataFrame({{'celltype': a.obs['celltype'].astype(str).values[1::2]}}, index=a.obs_names[1::2])\n"
      "n = 60000; sizes = np.minimum(rng.geometric(0.25, n), 400)\n"  // (mostly 1-8 counts, as a raw matrix's barcodes)
      "big = rng.random(n) < 0.05; sizes[big] = rng.integers(10, 301, big.sum())\n"
      "ambient = np.asarray(X.sum(0)).ravel(); ambient /= ambient.sum()\n"
      "genes = rng.choice(X.shape[1], sizes.sum(), p=ambient)\n"
      "rows = np.repeat(np.arange(n), sizes)\n"
      "empty = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, genes)), shape=(n, X.shape[1]))\n"
      "empty.sum_duplicates()\n"
      "order = rng.permutation(odd.shape[0] + n)\n"  // (the cells spread among the barcodes: 2% of them)
      "everything = sp.vstack([odd, empty]).tocsr()[order]\n"
      "obs_all = pd.concat([obs, pd.DataFrame({{'celltype': ['empty'] * n}}, index=[f'empty{{i}}' for i in range(n)])]).iloc[order]\n"
      "write(odd, obs, '{2}')\n"
      "write(everything, obs_all, '{3}')\n"
      "keep = np.sort(rng.choice(X.shape[1], int(0.9 * X.shape[1]), replace=False))\n"
      "write(odd, obs, '{4}', keep)\n"
      "write(everything, obs_all, '{5}', keep)\n",
      pbmc3k, dir.file("even.h5ad"), dir.file("odd.h5ad"), dir.file("unfiltered.h5ad"), dir.file("odd_90.h5ad"), dir.file("unfiltered_90.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(test::run_cli({"train", "-r", dir.file("even.h5ad"), "-l", "celltype", "-o", dir.file("even.h5"), "-q"}).exit_code, 0);
  std::vector<std::string> outputs;
  for (const std::string name : {"odd", "unfiltered", "odd_90", "unfiltered_90"}) {
    const std::string out = dir.file(name + "_annotated.h5ad");
    const bool reference_mode = name.find("90") == std::string::npos;  // (model mode refits on the query's 90% of the genes)
    const auto run = test::run_cli(reference_mode ? std::vector<std::string>{"annotate", "-r", dir.file("even.h5ad"), "-l", "celltype", "-i",
                                                                             dir.file(name + ".h5ad"), "-o", out}
                                                  : std::vector<std::string>{"annotate", "-m", dir.file("even.h5"), "-i", dir.file(name + ".h5ad"), "-o", out});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.err.find("thinned to that depth"), std::string::npos) << name << ": " << run.err;  // (no depth matching)
    if (name.starts_with("unfiltered")) {
      EXPECT_NE(run.err.find("cells (98%) have fewer than 200 detected genes (empty droplets or debris, as in an unfiltered matrix?)"),
                std::string::npos)
          << run.err;
    }
    outputs.push_back(out);
  }
  // inspect says what the matrix is (the cells alone: nothing)
  const auto inspected = test::run_cli({"inspect", dir.file("unfiltered.h5ad")});
  EXPECT_NE(inspected.out.find(" of the 61319 barcodes scanned hold a cell by Cell Ranger 2's rule (OrdMag"), std::string::npos) << inspected.out;
  EXPECT_NE(inspected.out.find("an unfiltered matrix? annotate labels every barcode"), std::string::npos) << inspected.out;
  EXPECT_EQ(test::run_cli({"inspect", dir.file("odd.h5ad")}).out.find("OrdMag"), std::string::npos);
  const std::string check = fmt::format(
      "import anndata\n"
      "def cells(path):\n"
      "    o = anndata.read_h5ad(path).obs\n"
      "    return o[o['celltype'] != 'empty']\n"
      "for alone, among in (('{0}', '{1}'), ('{2}', '{3}')):\n"
      "    a = cells(alone); b = cells(among).loc[a.index]\n"
      "    accuracy = (b['celltyper_label'].astype(str) == b['celltype']).mean()\n"
      "    same = (a['celltyper_label'].astype(str) == b['celltyper_label'].astype(str)).mean()\n"
      "    print('cells among empty droplets: accuracy %.3f, labels as alone %.3f' % (accuracy, same))\n"
      "    assert accuracy > 0.85 and same > 0.97, (accuracy, same)\n",
      outputs[0], outputs[1], outputs[2], outputs[3]);
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::printf("%s", run.out.c_str());
}

TEST(AccurateByDefault, AShallowQueryOfEveryGeneIsRefittedOnReferenceCellsThinnedToItsDepth) {
  // pbmc3k's odd cells with every gene, thinned to 15% / 60% of their counts, under the even cells'
  // model: the shallow query measures every model gene, so nothing refitted it, and the model
  // called memory CD4 T cells naive (accuracy 0.70). Now a refit on the reference cells thinned to
  // its depth, as for a query of part of the genes; the deeper query is annotated as before.
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string make = fmt::format(
      "import anndata, numpy as np, scipy.sparse as sp, pandas as pd\n"
      "a = anndata.read_h5ad('{0}')\n"
      "X = sp.csr_matrix(a.X).astype(np.int64)\n"
      "var = pd.DataFrame(index=a.var_names)\n"
      "anndata.AnnData(X=sp.csr_matrix(X[0::2], dtype=np.float32), obs=a.obs[['celltype']][0::2], var=var).write_h5ad('{1}')\n"
      "rng = np.random.default_rng(0)\n"
      "for share, path in ((0.15, '{2}'), (0.6, '{3}')):\n"
      "    Y = X[1::2].copy(); Y.data = rng.binomial(Y.data, share); Y.eliminate_zeros()\n"
      "    anndata.AnnData(X=sp.csr_matrix(Y, dtype=np.float32), obs=a.obs[['celltype']][1::2], var=var).write_h5ad(path)\n",
      pbmc3k, dir.file("even.h5ad"), dir.file("shallow.h5ad"), dir.file("deeper.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(test::run_cli({"train", "-r", dir.file("even.h5ad"), "-l", "celltype", "-o", dir.file("even.h5"), "-q"}).exit_code, 0);
  auto annotate = [&](const std::string& name, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"annotate", "-m", dir.file("even.h5"), "-i", dir.file(name + ".h5ad"), "-o", dir.file(name + "_" + std::to_string(extra.size()) + ".h5ad")};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  const auto shallow = annotate("shallow", {});
  ASSERT_EQ(shallow.exit_code, 0) << shallow.err;
  EXPECT_NE(shallow.err.find("note: " + dir.file("shallow.h5ad") + ": its cells hold 15% of the counts of the model's reference cells over the "
                             "genes they share (median "),
            std::string::npos)
      << shallow.err;
  ASSERT_EQ(annotate("shallow", {"--no-refit"}).exit_code, 0);
  const auto deeper = annotate("deeper", {});
  ASSERT_EQ(deeper.exit_code, 0) << deeper.err;
  EXPECT_EQ(deeper.err.find("thinned to that depth"), std::string::npos) << deeper.err;
  ASSERT_EQ(annotate("deeper", {"--no-refit"}).exit_code, 0);
  // (the model records its reference cells' depth, so that a deep query never reads the sample)
  EXPECT_GT(load_model(dir.file("even.h5")).provenance.value("reference_sample_median_counts", 0.0), 1000.0);
  const std::string check = fmt::format(
      "import anndata\n"
      "def read(path):\n"
      "    o = anndata.read_h5ad(path).obs\n"
      "    return o['celltyper_label'].astype(str), (o['celltyper_label'].astype(str) == o['celltype'].astype(str)).mean()\n"
      "(matched, a), (plain, b) = read('{0}'), read('{1}')\n"
      "print('15%% of the counts: accuracy %.3f (without the refit %.3f)' % (a, b))\n"
      "assert a > b + 0.02 and a > 0.72, (a, b)\n"
      "(deep, c), (deep_plain, d) = read('{2}'), read('{3}')\n"
      "assert (deep == deep_plain).all() and c > 0.85, c\n",
      dir.file("shallow_0.h5ad"), dir.file("shallow_1.h5ad"), dir.file("deeper_0.h5ad"), dir.file("deeper_1.h5ad"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::printf("%s", run.out.c_str());
}

TEST(ReferenceMode, BadInputIsOneClearLine) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  test::TempDir dir;
  const std::string script = fmt::format(
      "import anndata, numpy as np, pandas as pd, scipy.sparse as sp\n"
      "rng = np.random.default_rng(0)\n"
      "x = sp.csr_matrix(rng.poisson(2, size=(12, 5)).astype(np.float32))\n"
      "obs = pd.DataFrame({{'cell_type': pd.Categorical(['T'] * 12)}}, index=[f'c{{i}}' for i in range(12)])\n"
      "anndata.AnnData(x, obs=obs, var=pd.DataFrame(index=['CD3E', 'MS4A1', 'LYZ', 'NKG7', 'GNLY'])).write_h5ad('{0}')\n"
      "anndata.AnnData(x, obs=obs, var=pd.DataFrame(index=['FOO1', 'FOO2', 'FOO3', 'FOO4', 'FOO5'])).write_h5ad('{1}')\n",
      dir.file("one_class.h5ad"), dir.file("no_genes.h5ad"));
  const auto made = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string out = dir.file("out.h5ad");
  const std::vector<Case> cases = {
      {{"annotate", "-r", reference, "-i", dir.file("one_class.h5ad"), "-o", out, "--gene-table", table},
       "--reference needs --label obs:COLUMN"},
      {{"annotate", "-i", dir.file("one_class.h5ad"), "-o", out, "--gene-table", table}, "annotate needs either --model FILE"},
      {{"annotate", "-r", reference, "-l", "obs:nope", "-i", reference, "-o", out, "--gene-table", table}, "'nope'"},
      // model mode's gene floor: 5 genes of the reference's 12,369 (before: trained on them, every cell labelled)
      {{"annotate", "-r", reference, "-l", "celltype", "-i", dir.file("one_class.h5ad"), "-o", out, "--gene-table", table},
       "one_class.h5ad measures 5 of the references' 12369 genes: too few to annotate (need 20)"},
      {{"annotate", "-r", dir.file("one_class.h5ad"), "-l", "cell_type", "-i", reference, "-o", out, "--gene-table", table},
       "has 1 class among the usable cells"},
      {{"annotate", "-r", reference, "-l", "celltype", "-i", dir.file("no_genes.h5ad"), "-o", out, "--gene-table", table},
       "none of its"},
      {{"annotate", "-r", reference, "-l", "celltype", "-i", dir.file("one_class.h5ad"), "-o", reference, "--gene-table", table},
       "the output is an input of this command"},
  };
  for (const auto& c : cases) {
    const auto result = test::run_cli(c.args);
    SCOPED_TRACE(c.message);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_NE(result.err.find(c.message), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
}

}  // namespace
}  // namespace celltyper
