// End-to-end tests of another species than the gene table's: references whose var names the
// default (human) table hardly knows (fly, zebrafish or plant ids) train on their own var names,
// and annotate matches a query's names to the model's genes; pbmc3k's cells under renamed genes
// stand in for such a species (the counts are real, only the names change).
#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace celltyper {
namespace {

using test::csv_labels;

TEST(OtherSpecies, ReferencesOfIdsNoGeneTableKnowsTrainOnTheirOwnNames) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  // Fly-like (FBgn) and zebrafish-like (zgc:) names numbered by the rank of the original name; even
  // cells the reference, odd cells the query, the query on 60% of the genes, the query's names
  // lower-cased (as a second reference), every fourth cell on the other 40% of the genes (a
  // second model); a gene table of the user's own numbered 1..N.
  const std::string make = fmt::format(
      "import anndata, numpy as np\n"
      "a = anndata.read_h5ad('{0}')\n"
      "rank = np.empty(a.n_vars, int); rank[np.argsort(np.asarray(a.var_names))] = np.arange(a.n_vars)\n"
      "for prefix, names in (('fly', [f'FBgn{{r:07d}}' for r in rank]), ('zf', [f'zgc:{{r:06d}}' for r in rank])):\n"
      "    b = anndata.AnnData(a.X.copy(), obs=a.obs[['celltype']].copy()); b.var_names = names\n"
      "    b[::2].copy().write_h5ad(f'{1}/{{prefix}}_ref.h5ad')\n"
      "    b[1::2].copy().write_h5ad(f'{1}/{{prefix}}_query.h5ad')\n"
      "    if prefix == 'fly':\n"
      "        b[1::2, rank % 5 < 3].copy().write_h5ad(f'{1}/fly_part.h5ad')\n"
      "        b[::4, rank % 5 >= 2].copy().write_h5ad(f'{1}/fly_other.h5ad')\n"
      "        lower = b[1::2].copy(); lower.var_names = [n.lower() for n in names]; lower.write_h5ad(f'{1}/fly_lower.h5ad')\n"
      "        with open('{1}/table.tsv', 'w') as out:\n"
      "            out.write('entrez_id\\tsymbol\\n' + ''.join(f'{{i + 1}}\\t{{n}}\\n' for i, n in enumerate(sorted(names))))\n"
      "a[1::2].obs[['celltype']].to_csv('{1}/truth.csv')\n",
      reference, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;

  const auto fly = test::run_cli({"train", "-r", dir.file("fly_ref.h5ad"), "-l", "obs:celltype", "-o", dir.file("fly.h5")});
  ASSERT_EQ(fly.exit_code, 0) << fly.err;
  EXPECT_NE(fly.err.find("names few of the references' genes (" + dir.file("fly_ref.h5ad") + ": 0 of 13714 vars (0.0%); e.g. 'FBgn"),
            std::string::npos)
      << fly.err;
  EXPECT_NE(fly.err.find("Training on the references' own var names as written (13714 genes)"), std::string::npos) << fly.err;
  const auto inspected = test::run_cli({"inspect", dir.file("fly.h5"), "--json"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_NE(inspected.out.find("the references' own var names"), std::string::npos) << inspected.out;

  const auto annotated = test::run_cli({"annotate", "-m", dir.file("fly.h5"), "-i", dir.file("fly_query.h5ad"), "--csv", dir.file("fly.csv")});
  ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
  EXPECT_NE(annotated.err.find("note: the model's genes are its references' var names as written"), std::string::npos) << annotated.err;
  const std::vector<std::string> labels = csv_labels(dir.file("fly.csv"));
  const std::vector<std::string> truth = csv_labels(dir.file("truth.csv"));
  ASSERT_EQ(labels.size(), truth.size());
  const auto accuracy = [&truth](const std::vector<std::string>& predicted) {
    std::size_t right = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) right += predicted[i] == truth[i] ? 1 : 0;
    return static_cast<double>(right) / static_cast<double>(truth.size());
  };
  std::printf("fly-named pbmc3k, even -> odd cells: accuracy %.4f\n", accuracy(labels));
  EXPECT_GE(accuracy(labels), 0.85);

  // Other names of the same genes: the same model but for the order of the genes' ids (which
  // draws the depth-augmentation copies), so nearly the same labels.
  const auto zebrafish = test::run_cli({"train", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "-o", dir.file("zf.h5"), "-q"});
  ASSERT_EQ(zebrafish.exit_code, 0) << zebrafish.err;
  const auto zf_annotated = test::run_cli({"annotate", "-m", dir.file("zf.h5"), "-i", dir.file("zf_query.h5ad"), "--csv", dir.file("zf.csv"), "-q"});
  ASSERT_EQ(zf_annotated.exit_code, 0) << zf_annotated.err;
  const std::vector<std::string> zf_labels = csv_labels(dir.file("zf.csv"));
  std::size_t same = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) same += zf_labels[i] == labels[i] ? 1 : 0;
  EXPECT_GE(static_cast<double>(same), 0.95 * static_cast<double>(labels.size()));
  EXPECT_GE(accuracy(zf_labels), 0.85);

  // Two such models together: a name has one id in both (their tables merge); and with
  // CELLTYPER_GENE_TABLE set, the model's own names still serve.
  const auto other = test::run_cli({"train", "-r", dir.file("fly_other.h5ad"), "-l", "obs:celltype", "-o", dir.file("other.h5"), "-q"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  const auto both = test::run_cli({"annotate", "-m", dir.file("fly.h5"), "-m", dir.file("other.h5"), "-i", dir.file("fly_query.h5ad"), "--csv",
                                   dir.file("both.csv")});
  ASSERT_EQ(both.exit_code, 0) << both.err;
  EXPECT_NE(both.err.find("note: the models' genes are their references' var names as written"), std::string::npos) << both.err;
  EXPECT_GE(accuracy(csv_labels(dir.file("both.csv"))), 0.85);
  ::setenv("CELLTYPER_GENE_TABLE", test::shared_data("gene-annotations/human_genes.tsv").c_str(), 1);
  const auto with_env = test::run_cli({"annotate", "-m", dir.file("fly.h5"), "-i", dir.file("fly_query.h5ad"), "--csv", dir.file("env.csv"), "-q"});
  ::unsetenv("CELLTYPER_GENE_TABLE");
  ASSERT_EQ(with_env.exit_code, 0) << with_env.err;
  EXPECT_EQ(csv_labels(dir.file("env.csv")), labels);

  // Names differing in letter case are one gene: a reference named in lower case pools with the
  // first (they share every gene).
  const auto pooled = test::run_cli({"train", "-r", dir.file("fly_ref.h5ad") + "," + dir.file("fly_lower.h5ad"), "-l", "obs:celltype", "-o",
                                     dir.file("pooled.h5"), "-q", "--json"});
  ASSERT_EQ(pooled.exit_code, 0) << pooled.err;

  // Genes restricted to a list in the same names; reference mode (annotate --reference).
  const auto restricted = test::run_cli({"train", "-r", dir.file("fly_ref.h5ad"), "-l", "obs:celltype", "--restrict-genes", dir.file("fly_part.h5ad"),
                                         "-o", dir.file("restricted.h5"), "-q"});
  ASSERT_EQ(restricted.exit_code, 0) << restricted.err;
  const auto reference_mode = test::run_cli({"annotate", "-r", dir.file("fly_ref.h5ad"), "-l", "obs:celltype", "-i", dir.file("fly_query.h5ad"),
                                             "--csv", dir.file("reference_mode.csv")});
  ASSERT_EQ(reference_mode.exit_code, 0) << reference_mode.err;
  EXPECT_NE(reference_mode.err.find("Training on the references' own var names as written"), std::string::npos) << reference_mode.err;
  EXPECT_GE(accuracy(csv_labels(dir.file("reference_mode.csv"))), 0.85);

  // A query measuring 60% of the genes: the model is refitted on them.
  const auto part = test::run_cli({"annotate", "-m", dir.file("fly.h5"), "-i", dir.file("fly_part.h5ad"), "--csv", dir.file("part.csv")});
  ASSERT_EQ(part.exit_code, 0) << part.err;
  std::printf("fly-named query on 60%% of the genes: accuracy %.4f\n", accuracy(csv_labels(dir.file("part.csv"))));
  EXPECT_GE(accuracy(csv_labels(dir.file("part.csv"))), 0.8);

  // cv trains and predicts its folds on the same own names.
  const auto cv = test::run_cli({"cv", "-r", dir.file("fly_ref.h5ad"), "-l", "obs:celltype", "--n-splits", "2", "--json", "-"});
  ASSERT_EQ(cv.exit_code, 0) << cv.err;
  const auto folds = nlohmann::json::parse(cv.out);
  EXPECT_GE(folds["mean"]["logreg:expression"]["accuracy"].get<double>(), 0.85) << cv.out;
  EXPECT_NE(cv.err.find("Training on the references' own var names as written"), std::string::npos) << cv.err;

  // A gene table of the user's own, numbered 1..N: the refit's sample keeps those ids (they are
  // not row numbers), and the query on part of the genes is annotated.
  const auto tabled = test::run_cli({"train", "-r", dir.file("fly_ref.h5ad"), "-l", "obs:celltype", "--gene-table", dir.file("table.tsv"), "-o",
                                     dir.file("tabled.h5"), "-q"});
  ASSERT_EQ(tabled.exit_code, 0) << tabled.err;
  const auto tabled_part = test::run_cli({"annotate", "-m", dir.file("tabled.h5"), "-i", dir.file("fly_part.h5ad"), "--csv", dir.file("tabled.csv"), "-q"});
  ASSERT_EQ(tabled_part.exit_code, 0) << tabled_part.err;
  EXPECT_GE(accuracy(csv_labels(dir.file("tabled.csv"))), 0.8);
  // The GenePT-w route reads gene vectors by id: the human store's genes under that table's ids
  // are other genes, refused.
  const auto genept = test::run_cli({"train", "-r", dir.file("fly_ref.h5ad"), "-l", "obs:celltype", "--gene-table", dir.file("table.tsv"),
                                     "--features", "genept", "-o", dir.file("genept.h5"), "-q"});
  EXPECT_EQ(genept.exit_code, 2) << genept.err;
  EXPECT_NE(genept.err.find("name other genes under the same ids ("), std::string::npos) << genept.err;
  EXPECT_NE(genept.err.find("id 1: 'FBgn0000000' in the table, 'A1BG' in the store"), std::string::npos) << genept.err;
}

TEST(OtherSpecies, NamesTheTableHalfKnowsTrainOnThemWhenAsked) {
  CELLTYPER_REQUIRE_SHARED(reference, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  // Zebrafish-like symbols of pbmc3k's genes, which the human table half-knows: 45% the human
  // symbol lower-cased (one-to-one orthologs), 25% with an 'a' paralog suffix, 30% clone names
  // (zgc:); and fly-like ids (FBgn), which it does not know. Even cells the reference, odd cells
  // the query.
  const std::string make = fmt::format(
      "import anndata, numpy as np\n"
      "a = anndata.read_h5ad('{0}')\n"
      "rank = np.empty(a.n_vars, int); rank[np.argsort(np.asarray(a.var_names))] = np.arange(a.n_vars)\n"
      "names, seen = [], set()\n"
      "for symbol, r in zip(a.var_names, rank):\n"
      "    name = symbol.lower() if r % 20 < 9 else symbol.lower() + 'a' if r % 20 < 14 else f'zgc:{{r:06d}}'\n"
      "    name = name if name not in seen else f'zgc:{{r:06d}}'\n"
      "    seen.add(name); names.append(name)\n"
      "for prefix, genes in (('zf', names), ('fly', [f'FBgn{{r:07d}}' for r in rank])):\n"
      "    b = anndata.AnnData(a.X.copy(), obs=a.obs[['celltype']].copy()); b.var_names = genes\n"
      "    b[::2].copy().write_h5ad(f'{1}/{{prefix}}_ref.h5ad')\n"
      "    b[1::2].copy().write_h5ad(f'{1}/{{prefix}}_query.h5ad')\n"
      "a[1::2].obs[['celltype']].to_csv('{1}/truth.csv')\n",
      reference, dir.path().string());
  const auto made = test::run_program({test::system_python(), "-c", make});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::vector<std::string> truth = csv_labels(dir.file("truth.csv"));
  const auto accuracy = [&truth](const std::vector<std::string>& predicted) {
    std::size_t right = 0;
    for (std::size_t i = 0; i < truth.size() && i < predicted.size(); ++i) right += predicted[i] == truth[i] ? 1 : 0;
    return static_cast<double>(right) / static_cast<double>(truth.size());
  };

  // By default the table serves (a tenth or more matched), the rest left out, and the warning
  // names the flag that keeps them.
  const auto kept = test::run_cli({"train", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "-o", dir.file("table.h5")});
  ASSERT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_NE(kept.err.find("few genes matched: only "), std::string::npos) << kept.err;
  EXPECT_NE(kept.err.find("or, training, the data's own var names as the genes (--own-gene-names)"), std::string::npos) << kept.err;
  EXPECT_EQ(kept.err.find("own var names as written"), std::string::npos) << kept.err;
  const auto kept_annotated =
      test::run_cli({"annotate", "-m", dir.file("table.h5"), "-i", dir.file("zf_query.h5ad"), "--csv", dir.file("table.csv"), "-q"});
  ASSERT_EQ(kept_annotated.exit_code, 0) << kept_annotated.err;

  // --own-gene-names: every var is a gene (a note, not a warning: it was asked for).
  const auto own = test::run_cli({"train", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "-o", dir.file("own.h5"), "--own-gene-names"});
  ASSERT_EQ(own.exit_code, 0) << own.err;
  EXPECT_NE(own.err.find("note: training on the references' own var names as written (13714 genes; --own-gene-names)"), std::string::npos)
      << own.err;
  EXPECT_EQ(own.err.find("few genes matched"), std::string::npos) << own.err;
  const auto inspected = test::run_cli({"inspect", dir.file("own.h5"), "--json"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_NE(inspected.out.find("the references' own var names"), std::string::npos) << inspected.out;
  const auto own_annotated = test::run_cli({"annotate", "-m", dir.file("own.h5"), "-i", dir.file("zf_query.h5ad"), "--csv", dir.file("own.csv")});
  ASSERT_EQ(own_annotated.exit_code, 0) << own_annotated.err;
  const double with_table = accuracy(csv_labels(dir.file("table.csv")));
  const double with_own = accuracy(csv_labels(dir.file("own.csv")));
  std::printf("zebrafish-like symbols, even -> odd cells: accuracy %.4f through the human table, %.4f on their own names\n", with_table, with_own);
  EXPECT_GE(with_own, 0.85);
  EXPECT_GE(with_own, with_table);

  // A gene table given to annotate does not serve such a model: said, and the labels are the same.
  const auto tabled = test::run_cli({"annotate", "-m", dir.file("own.h5"), "-i", dir.file("zf_query.h5ad"), "--gene-table",
                                     test::shared_data("gene-annotations/human_genes.tsv"), "--csv", dir.file("tabled.csv")});
  ASSERT_EQ(tabled.exit_code, 0) << tabled.err;
  EXPECT_NE(tabled.err.find("; --gene-table " + test::shared_data("gene-annotations/human_genes.tsv") +
                            " is not used: the model reads the query in its own genes' names"),
            std::string::npos)
      << tabled.err;
  EXPECT_EQ(csv_labels(dir.file("tabled.csv")), csv_labels(dir.file("own.csv")));

  // Reference mode and tune take it too (tune's best configuration tells train to).
  const auto reference_mode = test::run_cli({"annotate", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "-i", dir.file("zf_query.h5ad"),
                                             "--own-gene-names", "--csv", dir.file("reference_mode.csv")});
  ASSERT_EQ(reference_mode.exit_code, 0) << reference_mode.err;
  EXPECT_NE(reference_mode.err.find("own var names as written (13714 genes; --own-gene-names)"), std::string::npos) << reference_mode.err;
  EXPECT_GE(accuracy(csv_labels(dir.file("reference_mode.csv"))), 0.85);
  // (tune's default route is genept: --own-gene-names alone picks the expression route)
  const auto tuned = test::run_cli({"tune", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "--own-gene-names",
                                    "--trials", "2", "--max-rungs", "1", "-o", dir.file("best.json"), "-q"});
  ASSERT_EQ(tuned.exit_code, 0) << tuned.err;
  std::ifstream best_file(dir.file("best.json"));
  const auto best = nlohmann::json::parse(best_file);
  const auto& arguments = best.at("train_arguments");
  EXPECT_NE(std::find(arguments.begin(), arguments.end(), "--own-gene-names"), arguments.end()) << best.dump();

  // What it cannot do, one clear line each: the GenePT-w route (gene vectors by the table's ids),
  // a model's annotate (the model decided), cv of both routes where the expression one trains on
  // own names (asked, or another species' ids).
  const auto genept = test::run_cli({"train", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "--features", "genept", "--own-gene-names",
                                     "-o", dir.file("genept.h5")});
  EXPECT_EQ(genept.exit_code, 2) << genept.err;
  EXPECT_NE(genept.err.find("--own-gene-names trains on the expression route"), std::string::npos) << genept.err;
  const auto with_model = test::run_cli({"annotate", "-m", dir.file("own.h5"), "-i", dir.file("zf_query.h5ad"), "--own-gene-names", "--csv",
                                         dir.file("x.csv")});
  EXPECT_EQ(with_model.exit_code, 2) << with_model.err;
  EXPECT_NE(with_model.err.find("--own-gene-names applies to reference mode (--reference) only"), std::string::npos) << with_model.err;
  for (const std::string& data : {std::string("zf"), std::string("fly")}) {
    std::vector<std::string> cv = {"cv", "-r", dir.file(data + "_ref.h5ad"), "-l", "obs:celltype", "--n-splits", "2", "--features", "expression,genept"};
    if (data == "zf") cv.push_back("--own-gene-names");
    const auto both = test::run_cli(cv);
    EXPECT_EQ(both.exit_code, 2) << data << ": " << both.err;
    EXPECT_NE(both.err.find("genept configurations read gene vectors by the gene table's ids"), std::string::npos) << data << ": " << both.err;
    EXPECT_NE(both.err.find(data == "zf" ? "cv: --own-gene-names: " : "cv: the gene table names under a tenth"), std::string::npos) << both.err;
  }
  const auto genept_cv = test::run_cli({"cv", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "--n-splits", "2", "--features", "genept",
                                        "--own-gene-names"});
  EXPECT_EQ(genept_cv.exit_code, 2) << genept_cv.err;
  EXPECT_NE(genept_cv.err.find("run the expression route (--features expression)"), std::string::npos) << genept_cv.err;
  const auto cv_own = test::run_cli({"cv", "-r", dir.file("zf_ref.h5ad"), "-l", "obs:celltype", "--n-splits", "2", "--own-gene-names", "--json", "-"});
  ASSERT_EQ(cv_own.exit_code, 0) << cv_own.err;
  EXPECT_GE(nlohmann::json::parse(cv_own.out)["mean"]["logreg:expression"]["accuracy"].get<double>(), 0.85) << cv_own.out;
}

}  // namespace
}  // namespace celltyper
