// End-to-end tests of `celltyper inspect`: real data, JSON output, and bad input giving one
// clear line on stderr with a non-zero exit code.
#include "support/test_support.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace celltyper {
namespace {

using nlohmann::json;

std::size_t count_lines(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

TEST(InspectCli, Pbmc3kReportNamesLabelsAndScale) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const auto result = test::run_cli({"inspect", path, "--top", "9"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("2638 cells x 13714 genes"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("csr_matrix"), std::string::npos);
  EXPECT_NE(result.out.find("raw-counts"), std::string::npos);
  EXPECT_NE(result.out.find("9 categories"), std::string::npos);
  EXPECT_NE(result.out.find("Naive CD4 T 697"), std::string::npos);
  EXPECT_NE(result.out.find("Platelet 14"), std::string::npos);
  // --threads, as every command takes it (the same report)
  const auto one_thread = test::run_cli({"inspect", path, "--top", "9", "--threads", "1"});
  ASSERT_EQ(one_thread.exit_code, 0) << one_thread.err;
  EXPECT_EQ(one_thread.out, result.out);
}

TEST(InspectCli, JsonForEverySharedDataset) {
  struct Known {
    std::string path;
    std::int64_t cells, genes;
    std::string encoding, scale, label_column;
    std::size_t n_labels;
  };
  const std::vector<Known> known = {
      {"pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad", 2638, 13714, "csr_matrix", "raw-counts", "celltype", 9},
      {"pbmc68k_reduced/10x_pbmc68k_reduced.h5ad", 700, 765, "dense", "scaled", "bulk_labels", 10},
      {"pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad", 700, 765, "dense", "scaled", "bulk_labels", 10},
      {"savercat-pbmc-3tech/pbmc_prep_3tech.h5ad", 2000, 10000, "csr_matrix", "raw-counts", "tech", 3},
      {"pancreas-xin-wang-scclassify/pancreas_xin_wang_log.h5ad", 1175, 980, "csr_matrix", "log2-normalized", "study", 2},
      {"cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad", 499, 28258, "csr_matrix", "raw-counts", "cell_line", 3},
      {"cellbench-mixology/cellbench_5cl_celseq2_3plates.h5ad", 909, 16074, "csr_matrix", "raw-counts", "cell_line", 5},
      {"actinn-tabula-muris-mouse/actinn_train_mouse.h5ad", 1000, 19371, "csr_matrix", "raw-counts", "celltype", 5},
  };
  for (const auto& k : known) {
    SCOPED_TRACE(k.path);
    const std::string path = test::shared_data(k.path);
    if (path.empty()) GTEST_SKIP() << "../shared/data is absent";
    const auto result = test::run_cli({"inspect", path, "--json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const json report = json::parse(result.out);
    EXPECT_EQ(report["n_cells"], k.cells);
    EXPECT_EQ(report["n_genes"], k.genes);
    EXPECT_EQ(report["matrices"][0]["encoding"], k.encoding);
    EXPECT_EQ(report["matrix"]["value_scale"], k.scale);
    bool found = false;
    for (const auto& column : report["obs"]["columns"]) {
      if (column["name"] == k.label_column) {
        found = true;
        EXPECT_EQ(column["n_categories"].get<std::size_t>(), k.n_labels);
      }
    }
    EXPECT_TRUE(found) << k.label_column;
    // The text names a sparse matrix's stored values, not a dense one's (every value, zeros too).
    const auto text = test::run_cli({"inspect", path});
    ASSERT_EQ(text.exit_code, 0) << text.err;
    if (k.encoding == "dense") {
      EXPECT_NE(text.out.find("every value stored"), std::string::npos) << text.out;
      EXPECT_EQ(text.out.find(fmt::format("nnz {}", k.cells * k.genes)), std::string::npos) << text.out;
    } else {
      EXPECT_NE(text.out.find("nnz "), std::string::npos) << text.out;
    }
  }
}

TEST(InspectCli, CountsLayerOfPbmc68kIsRawCounts) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  const auto result = test::run_cli({"inspect", path, "--layer", "counts", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json report = json::parse(result.out);
  EXPECT_EQ(report["matrix"]["source"], "layers/counts");
  EXPECT_EQ(report["matrix"]["value_scale"], "raw-counts");
  EXPECT_EQ(report["layers"], json::array({"counts"}));
  // What the other commands read with no --layer: the counts layer, X being scaled.
  EXPECT_EQ(report["default_matrix"]["source"], "layers/counts");
  EXPECT_NE(report["default_matrix"]["why"].get<std::string>().find("X looks scaled"), std::string::npos) << report["default_matrix"].dump();
  const auto text = test::run_cli({"inspect", path});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("read by default (--layer auto): layers/counts (X looks scaled"), std::string::npos) << text.out;
}

TEST(InspectCli, LogNormalisedValuesSayWhetherTrainReadsTheirCountsBack) {
  // pbmc68k_reduced's raw/X: log1p(CP10k) written with 3 decimals, counts read back by train.
  CELLTYPER_REQUIRE_SHARED(path, "pbmc68k_reduced/10x_pbmc68k_reduced.h5ad");
  const auto result = test::run_cli({"inspect", path, "--layer", "raw", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json matrix = json::parse(result.out)["matrix"];
  EXPECT_EQ(matrix["value_scale"], "log-normalized");
  EXPECT_EQ(matrix["counts_read_back"], true) << matrix.dump();
  const auto text = test::run_cli({"inspect", path, "--layer", "raw"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("as a training reference: raw/X holds log-normalised counts, read back per cell"), std::string::npos) << text.out;
  // Counts say nothing of it.
  CELLTYPER_REQUIRE_SHARED(counts, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const auto plain = test::run_cli({"inspect", counts, "--json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_FALSE(json::parse(plain.out)["matrix"].contains("counts_read_back"));
}

TEST(InspectCli, FlagsNanInfAndNegativeValues) {
  const auto result = test::run_cli({"inspect", test::fixture("h5ad/nan_inf_negative.h5ad"), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json report = json::parse(result.out);
  EXPECT_EQ(report["matrix"]["n_nan"], 1);
  EXPECT_EQ(report["matrix"]["n_inf"], 2);
  EXPECT_GE(report["matrix"]["n_negative"].get<int>(), 1);
  EXPECT_EQ(report["matrix"]["n_explicit_zeros"], 1);
}

TEST(InspectCli, AFileOfZeroCellsIsDescribed) {
  const auto result = test::run_cli({"inspect", test::fixture("h5ad/zero_cells.h5ad"), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json report = json::parse(result.out);
  EXPECT_EQ(report["n_cells"], 0);
  EXPECT_EQ(report["n_genes"], 10);
  EXPECT_EQ(report["matrix"]["rows_scanned"], 0);
  const auto text = test::run_cli({"inspect", test::fixture("h5ad/zero_cells.h5ad")});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("0 cells x 10 genes"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Values of X: none (zero cells)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("obs (0 rows, 0 columns)\n"), std::string::npos) << text.out;
}

TEST(InspectCli, TenxInputs) {
  for (const std::string& path : {test::fixture("tenx/v3.h5"), test::fixture("tenx/v3_mtx"), test::fixture("tenx/v2_mtx")}) {
    const auto result = test::run_cli({"inspect", path, "--json"});
    ASSERT_EQ(result.exit_code, 0) << path << result.err;
    const json report = json::parse(result.out);
    EXPECT_EQ(report["n_cells"], 12);
    EXPECT_EQ(report["matrix"]["value_scale"], "raw-counts");
  }
}

TEST(InspectCli, AModelFileIsDescribedNotScanned) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  test::TempDir dir;
  const std::string model = dir.file("model.h5");
  const auto trained = test::run_cli({"train", "--reference", path, "--label", "obs:celltype", "--out", model, "-q"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto text = test::run_cli({"inspect", model});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("(celltyper model, written by celltyper"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("logreg on expression of 3000 panel genes"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("2638 labelled cells (+ "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("label obs:celltype"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Classes (9)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("Naive CD4 T"), std::string::npos) << text.out;

  const auto machine = test::run_cli({"inspect", model, "--json"});
  ASSERT_EQ(machine.exit_code, 0) << machine.err;
  const json description = json::parse(machine.out);
  EXPECT_EQ(description["format"], "celltyper-model");
  EXPECT_EQ(description["features"], "expression");
  EXPECT_EQ(description["n_features"], 3000);
  EXPECT_EQ(description["classifier"], "logreg");
  EXPECT_EQ(description["n_cells"], 2638);
  EXPECT_GT(description["n_thinned_copies"].get<std::int64_t>(), 2000);
  ASSERT_EQ(description["classes"].size(), 9U);
  std::int64_t cells = 0;
  for (const auto& c : description["classes"]) cells += c["n_cells"].get<std::int64_t>();
  EXPECT_EQ(cells, 2638);
  EXPECT_GT(description["validation"]["accuracy"].get<double>(), 0.8);
  EXPECT_EQ(description["reference_sample"]["n_cells"], 2638);
  ASSERT_EQ(description["references"].size(), 1U);
  EXPECT_EQ(description["references"][0]["n_used"], 2638);
  // A whole transcriptome's genes: libraries are summed over every var.
  EXPECT_EQ(description["library_genes"], 0);
  EXPECT_EQ(text.out.find("Library sizes"), std::string::npos) << text.out;
  EXPECT_FALSE(description.contains("markers"));

  // --markers N: each type's marker genes from the reference cells the model keeps (the textbook
  // ones of pbmc3k's types among the first five).
  const auto markers = test::run_cli({"inspect", model, "--markers", "5", "--json"});
  ASSERT_EQ(markers.exit_code, 0) << markers.err;
  const json listed = json::parse(markers.out)["markers"];
  ASSERT_EQ(listed.size(), 9U);
  const auto top = [&](const std::string& type) {
    std::vector<std::string> genes;
    for (const auto& c : listed) {
      if (c["class"] != type) continue;
      for (const auto& gene : c["genes"]) {
        genes.push_back(gene["symbol"].get<std::string>());
        EXPECT_GT(gene["mean"].get<double>(), gene["mean_elsewhere"].get<double>()) << type;
        EXPECT_GE(gene["fraction"].get<double>(), 0.2) << type;
      }
    }
    return genes;
  };
  const auto has = [](const std::vector<std::string>& genes, const std::string& gene) {
    return std::find(genes.begin(), genes.end(), gene) != genes.end();
  };
  EXPECT_TRUE(has(top("B"), "CD79A") && has(top("B"), "MS4A1")) << fmt::format("{}", fmt::join(top("B"), " "));
  EXPECT_TRUE(has(top("NK"), "GNLY") && has(top("NK"), "NKG7")) << fmt::format("{}", fmt::join(top("NK"), " "));
  EXPECT_TRUE(has(top("CD14+ Mono"), "LYZ") && has(top("CD14+ Mono"), "S100A9")) << fmt::format("{}", fmt::join(top("CD14+ Mono"), " "));
  EXPECT_TRUE(has(top("Platelet"), "PPBP") && has(top("Platelet"), "PF4")) << fmt::format("{}", fmt::join(top("Platelet"), " "));
  EXPECT_TRUE(has(top("FCGR3A+ Mono"), "FCGR3A")) << fmt::format("{}", fmt::join(top("FCGR3A+ Mono"), " "));
  const auto printed = test::run_cli({"inspect", model, "--markers", "3"});
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_NE(printed.out.find("Markers (reference cells: mean log1p(CP10k) in the type / in the others' mean, share expressing)"),
            std::string::npos)
      << printed.out;
  const auto on_data = test::run_cli({"inspect", path, "--markers", "3"});
  EXPECT_EQ(on_data.exit_code, 2) << on_data.err;
  EXPECT_NE(on_data.err.find("--markers lists a model's marker genes; " + path + " is not a celltyper model"), std::string::npos) << on_data.err;
  // a model without reference cells cannot tell them
  const std::string bare = dir.file("bare.h5");
  ASSERT_EQ(test::run_cli({"train", "--reference", path, "--label", "obs:celltype", "--out", bare, "--reference-sample", "0", "-q"}).exit_code, 0);
  const auto no_sample = test::run_cli({"inspect", bare, "--markers", "3"});
  EXPECT_EQ(no_sample.exit_code, 2) << no_sample.err;
  EXPECT_NE(no_sample.err.find("the model keeps no reference cells (trained with --reference-sample 0, or from"), std::string::npos) << no_sample.err;
  EXPECT_EQ(test::run_cli({"inspect", model, "--markers", "0"}).exit_code, 2);  // (1 to 10000)
}

TEST(InspectCli, AModelOfFewerGenesThanATranscriptomeNamesTheGenesItsLibrariesAreSummedOver) {
  // pbmc68k_reduced keeps 765 variable genes: a query's libraries are summed over them too.
  CELLTYPER_REQUIRE_SHARED(path, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  test::TempDir dir;
  const std::string model = dir.file("model.h5");
  const auto trained = test::run_cli({"train", "--reference", path, "--label", "obs:bulk_labels", "--out", model, "-q"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const auto machine = test::run_cli({"inspect", model, "--json"});
  ASSERT_EQ(machine.exit_code, 0) << machine.err;
  const json description = json::parse(machine.out);
  const auto genes = description["library_genes"].get<std::int64_t>();
  EXPECT_GT(genes, 700);
  EXPECT_LE(genes, 765);
  EXPECT_EQ(description["restrict_genes"], 0);
  const auto text = test::run_cli({"inspect", model});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find(fmt::format("Library sizes  summed over {} genes on the references and on every query (the genes its references measured)", genes)),
            std::string::npos)
      << text.out;
}

TEST(InspectCli, BadInputGivesOneLineAndNonZeroExit) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"h5ad/bad_truncated.h5ad", "truncated"},
      {"h5ad/bad_not_hdf5.h5ad", "not an HDF5 file"},
      {"h5ad/bad_missing_x.h5ad", "X"},
      {"h5ad/bad_indptr_nonmonotone.h5ad", "not monotone"},
      {"h5ad/bad_indices_out_of_range.h5ad", "outside"},
      {"h5ad/bad_shape_mismatch.h5ad", "shape"},
      {"h5ad/bad_unknown_encoding.h5ad", "foo_matrix"},
      {"h5ad/bad_indptr_last_ne_nnz.h5ad", "indptr"},
      {"h5ad/does_not_exist.h5ad", "no such file"},
  };
  for (const auto& [name, message] : cases) {
    SCOPED_TRACE(name);
    const std::string path = test::fixture(name);
    const auto result = test::run_cli({"inspect", path});
    EXPECT_NE(result.exit_code, 0);
    EXPECT_LT(result.exit_code, 64) << "crash or internal error: " << result.err;
    EXPECT_EQ(count_lines(result.err), 1u) << result.err;
    EXPECT_NE(result.err.find(path), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(message), std::string::npos) << result.err;
  }
}

TEST(InspectCli, UsageErrors) {
  EXPECT_NE(test::run_cli({}).exit_code, 0);
  EXPECT_NE(test::run_cli({"inspect"}).exit_code, 0);
  const auto version = test::run_cli({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("celltyper"), std::string::npos);
}

}  // namespace
}  // namespace celltyper

namespace celltyper {
namespace {

/// Gene identity on real data: >= 95% of the var names the gene table knows resolve.
TEST(InspectCli, GeneOverlapOnRealData) {
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  for (const auto& [relative, id_type] : std::vector<std::pair<std::string, std::string>>{
           {"pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad", "symbol"},
           {"cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad", "ensembl"}}) {
    SCOPED_TRACE(relative);
    const std::string path = test::shared_data(relative);
    if (path.empty() || table.empty()) GTEST_SKIP() << "../shared/data is absent";
    const auto result = test::run_cli({"inspect", path, "--json", "--gene-table", table});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto report = nlohmann::json::parse(result.out);
    const auto& genes = report["genes"];
    EXPECT_EQ(genes["id_type"], id_type);
    const double matched = genes["n_matched"].get<double>();
    const double known = genes["n_known_to_table"].get<double>();
    EXPECT_GE(matched / known, 0.95) << genes.dump();
    const auto text = test::run_cli({"inspect", path, "--gene-table", table});
    EXPECT_NE(text.out.find("vars matched"), std::string::npos) << text.out;
  }
}

TEST(InspectCli, MouseDataWarnsAboutSpecies) {
  const std::string table = test::shared_data("gene-annotations/human_genes.tsv");
  CELLTYPER_REQUIRE_SHARED(path, "actinn-tabula-muris-mouse/actinn_train_mouse.h5ad");
  const auto result = test::run_cli({"inspect", path, "--gene-table", table});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("species mismatch"), std::string::npos) << result.out;
}

}  // namespace
}  // namespace celltyper
