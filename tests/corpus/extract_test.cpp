// Row-range embedding (what extract reads) against whole-file embedding, the wire format of
// extracted cells, and embed / extract over a single-process communicator.
#include <celltyper/dataset.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/extract.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/scale_out.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <unordered_map>

namespace celltyper {
namespace {

/// Seeded random 16-dim vectors for every gene of the table.
struct RandomVectors {
  explicit RandomVectors(const GeneTable& table) {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    for (const auto& gene : table.genes()) {
      auto& vector = vectors[gene.entrez_id];
      for (int d = 0; d < 16; ++d) vector.push_back(normal(rng));
    }
  }
  GeneVectorSource source() const {
    return {16, [this](std::int64_t entrez) -> const float* {
              const auto found = vectors.find(entrez);
              return found == vectors.end() ? nullptr : found->second.data();
            },
            "random-16", "seeded random vectors"};
  }
  std::unordered_map<std::int64_t, std::vector<float>> vectors;
};

TEST(Extract, RowRangesEmbedExactlyLikeTheWholeFile) {
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const GeneTable table = load_gene_table(test::shared_data("gene-annotations/human_genes.tsv"));
  const RandomVectors vectors(table);
  const auto dataset = open_dataset(pbmc3k);
  EmbedOptions options;
  options.num_threads = 2;
  MemorySink whole;
  (void)embed_dataset(*dataset, table, vectors.source(), options, whole);
  options.rows = {{2000, 2638}, {10, 11}, {500, 1250}};
  options.memory_limit_bytes = std::size_t{1} << 20;  // many blocks, cut inside the ranges
  MemorySink part;
  const EmbedResult result = embed_dataset(*dataset, table, vectors.source(), options, part);
  EXPECT_EQ(result.n_cells, 638 + 1 + 750);
  ASSERT_EQ(part.rows, result.n_cells);
  std::int64_t out = 0;
  for (const auto& range : options.rows) {
    for (std::int64_t row = range.begin; row < range.end; ++row, ++out) {
      ASSERT_TRUE(std::equal(part.values.begin() + out * 16, part.values.begin() + (out + 1) * 16, whole.values.begin() + row * 16)) << row;
    }
  }
  options.rows = {{2600, 2700}};
  EXPECT_THROW((void)embed_dataset(*dataset, table, vectors.source(), options, part), InputError);
}

TEST(Extract, SingleProcessEmbedDistributedIsEmbed) {
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const GeneTable table = load_gene_table(test::shared_data("gene-annotations/human_genes.tsv"));
  const RandomVectors vectors(table);
  const auto dataset = open_dataset(pbmc3k);
  MemorySink a;
  MemorySink b;
  SingleProcessCommunicator single;
  const EmbedResult plain = embed_dataset(*dataset, table, vectors.source(), {}, a);
  const EmbedResult distributed = embed_dataset_distributed(*dataset, table, vectors.source(), {}, &b, single);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(plain.median_coverage, distributed.median_coverage);
}

TEST(Extract, ExtractedCellsRoundTripAndAppend) {
  ExtractedCells cells;
  cells.dims = 2;
  cells.values = {1, 2, 3, 4};
  cells.empty = {0, 1};
  cells.labels = {"B", ""};
  cells.files = {"a.h5ad", "a.h5ad"};
  cells.rows = {5, 6};
  cells.obs_names = {"AAAC-1", "AAAG-1"};
  cells.genes = {1, 7};
  cells.file_info = {{"a.h5ad", {{"matrix", "X"}}}};
  const ExtractedCells copy = ExtractedCells::deserialize(cells.serialize());
  EXPECT_EQ(copy.values, cells.values);
  EXPECT_EQ(copy.empty, cells.empty);
  EXPECT_EQ(copy.labels, cells.labels);
  EXPECT_EQ(copy.rows, cells.rows);
  EXPECT_EQ(copy.obs_names, cells.obs_names);
  EXPECT_EQ(copy.file_info, cells.file_info);
  ExtractedCells all;
  all.append(ExtractedCells(cells));
  ExtractedCells more = copy;
  more.genes = {3};
  all.append(std::move(more));
  EXPECT_EQ(all.n_cells(), 4);
  EXPECT_EQ(all.genes, (std::vector<std::int64_t>{1, 3, 7}));
  EXPECT_THROW((void)ExtractedCells::deserialize(std::string("abc")), std::exception);
  // Kept obs columns travel too; a part without one of them gives its cells none.
  ExtractedCells with_donors = cells;
  with_donors.kept_obs["donor_id"] = {"d1", ""};
  const ExtractedCells donors_copy = ExtractedCells::deserialize(with_donors.serialize());
  EXPECT_EQ(donors_copy.kept_obs, with_donors.kept_obs);
  ExtractedCells joined = cells;  // (no kept column)
  joined.append(ExtractedCells(with_donors));
  joined.append(ExtractedCells(cells));
  EXPECT_EQ(joined.kept_obs.at("donor_id"), (std::vector<std::string>{"", "", "d1", "", "", ""}));
}

TEST(Extract, SelectionFileIsValidated) {
  test::TempDir dir;
  std::ofstream(dir.file("bad.json")) << R"({"format": "something else"})";
  EXPECT_THROW((void)read_selection(dir.file("bad.json")), InputError);
  std::ofstream(dir.file("rows.json")) << R"({"format": "celltyper-selection", "label_column": "x",
      "fragments": [{"file": "a.h5ad", "row_start": 10, "row_end": 5}]})";
  try {
    (void)read_selection(dir.file("rows.json"));
    FAIL() << "accepted a reversed range";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("fragments[0]"), std::string::npos) << error.what();
  }
  std::ofstream(dir.file("ok.json")) << R"({"format": "celltyper-selection", "label_column": "celltype",
      "fragments": [{"file": "a.h5ad", "row_start": 0, "row_end": 5}, {"file": "b.h5ad", "row_start": 5, "row_end": 9}]})";
  const SelectionFile selection = read_selection(dir.file("ok.json"));
  EXPECT_EQ(selection.label_column, "celltype");
  ASSERT_EQ(selection.fragments.size(), 2u);
  EXPECT_EQ(selection.fragments[1].row_end, 9);
}

TEST(Extract, UnreadableFilesStopTheRunOrAreLeftOut) {
  // A selection older than its files: one deleted, one now corrupt. By default the missing one
  // stops the run before any embedding (named), then the corrupt one (named, with the flag);
  // --skip-unreadable leaves both out, counting their selected cells per label.
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const GeneTable table = load_gene_table(test::shared_data("gene-annotations/human_genes.tsv"));
  const RandomVectors vectors(table);
  test::TempDir dir;
  const std::string corrupt = dir.file("corrupt.h5ad");
  std::filesystem::copy_file(test::fixture("h5ad/bad_not_hdf5.h5ad"), corrupt);
  const std::string gone = dir.file("gone.h5ad");
  // (the readable file's fragment counts what its rows hold: extract checks them)
  nlohmann::json held = nlohmann::json::object();
  const Column labels = open_dataset(pbmc3k)->read_obs_columns({"celltype"}).at("celltype", "obs");
  for (std::size_t row = 0; row < 40; ++row) held[labels.value_as_string(row)] = held.value(labels.value_as_string(row), 0) + 1;
  const auto write_selection = [&](const std::string& name, bool with_gone) {
    nlohmann::json fragments = nlohmann::json::array();
    fragments.push_back({{"file", pbmc3k}, {"row_start", 0}, {"row_end", 40}, {"counts", held}});
    fragments.push_back({{"file", corrupt}, {"row_start", 0}, {"row_end", 7}, {"counts", {{"B", 3}, {"NK", 4}}}});
    fragments.push_back({{"file", corrupt}, {"row_start", 7}, {"row_end", 9}, {"counts", {{"B", 2}}}});
    if (with_gone) fragments.push_back({{"file", gone}, {"row_start", 0}, {"row_end", 5}, {"counts", {{"NK", 5}}}});
    std::ofstream(dir.file(name)) << nlohmann::json{{"format", "celltyper-selection"}, {"label_column", "celltype"}, {"fragments", fragments}}.dump();
    return read_selection(dir.file(name));
  };
  SingleProcessCommunicator single;
  ExtractOptions options;
  try {
    (void)extract_selection(write_selection("with_gone.json", true), table, vectors.source(), options, dir.file("out.h5ad"), single);
    FAIL() << "a missing file did not stop the run";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("1 of the selected files do not exist (" + gone + ")"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("--skip-unreadable"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.h5ad")));
  try {
    (void)extract_selection(write_selection("corrupt.json", false), table, vectors.source(), options, dir.file("out.h5ad"), single);
    FAIL() << "a corrupt file did not stop the run";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find(corrupt), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("--skip-unreadable leaves such files out"), std::string::npos) << error.what();
  }
  options.skip_unreadable = true;
  const ExtractResult result = extract_selection(write_selection("with_gone.json", true), table, vectors.source(), options, dir.file("out.h5ad"), single);
  EXPECT_EQ(result.n_cells, 40);
  EXPECT_EQ(result.skipped_files, (std::vector<std::string>{corrupt, gone}));
  EXPECT_EQ(result.n_skipped_cells, 9 + 5);
  const auto said = [&](const std::string& text) {
    return std::any_of(result.warnings.begin(), result.warnings.end(), [&](const std::string& warning) { return warning.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(said(corrupt + ": left out (--skip-unreadable): ")) << testing::PrintToString(result.warnings);
  EXPECT_TRUE(said("its 9 selected cells (B 5, NK 4) are not in the training matrix")) << testing::PrintToString(result.warnings);
  EXPECT_TRUE(said(gone + ": left out (--skip-unreadable): ")) << testing::PrintToString(result.warnings);
  const H5adFile written(dir.file("out.h5ad"));
  EXPECT_EQ(written.n_obs(), 40);
  const nlohmann::json extract = nlohmann::json::parse(written.read_uns_string(kExtractUnsKey).value_or("{}"));
  ASSERT_EQ(extract.at("skipped_files").size(), 2u);
  EXPECT_EQ(extract["skipped_files"][0].at("path"), corrupt);
  EXPECT_EQ(extract["skipped_files"][1].at("counts").at("NK"), 5);
}

TEST(Extract, ObsColumnsForGroupsAndOntologyIdsAreKept) {
  // Two files of pbmc3k cells: one with CELLxGENE's donor_id, assay and the label's CL ids, one
  // with a batch column only. By default (auto) the training matrix keeps the columns train and
  // cv read (CL ids, donor_id, assay) where a file has them; named columns are kept too, and
  // one that some or no file has is said.
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const GeneTable table = load_gene_table(test::shared_data("gene-annotations/human_genes.tsv"));
  const RandomVectors vectors(table);
  test::TempDir dir;
  const std::string with_donors = dir.file("with_donors.h5ad");
  const std::string with_batch = dir.file("with_batch.h5ad");
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, pandas as pd\n"
                   "a = anndata.read_h5ad('{}')\n"
                   "one = a[:30].copy()\n"
                   "one.obs = one.obs[['celltype']].copy()\n"
                   "one.obs['donor_id'] = pd.Categorical(['donor1'] * 15 + ['donor2'] * 15)\n"
                   "one.obs['assay'] = pd.Categorical([\"10x 3' v1\"] * 30)\n"
                   "one.obs['celltype_ontology_term_id'] = pd.Categorical(['CL:0000236' if t == 'B' else 'CL:0000084' for t in one.obs['celltype']])\n"
                   "one.write_h5ad('{}')\n"
                   "two = a[30:50].copy()\n"
                   "two.obs = two.obs[['celltype']].copy()\n"
                   "two.obs['batch'] = pd.Categorical(['b7'] * 20)\n"
                   "two.write_h5ad('{}')\n",
                   pbmc3k, with_donors, with_batch)});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto counts_of = [](const std::string& path, std::int64_t n) {
    nlohmann::json counts = nlohmann::json::object();
    const Column labels = open_dataset(path)->read_obs_columns({"celltype"}).at("celltype", "obs");
    for (std::int64_t row = 0; row < n; ++row) {
      const std::string label = labels.value_as_string(static_cast<std::size_t>(row));
      counts[label] = counts.value(label, 0) + 1;
    }
    return counts;
  };
  nlohmann::json fragments = nlohmann::json::array();
  fragments.push_back({{"file", with_donors}, {"row_start", 0}, {"row_end", 30}, {"counts", counts_of(with_donors, 30)}});
  fragments.push_back({{"file", with_batch}, {"row_start", 0}, {"row_end", 20}, {"counts", counts_of(with_batch, 20)}});
  std::ofstream(dir.file("selection.json")) << nlohmann::json{{"format", "celltyper-selection"}, {"label_column", "celltype"}, {"fragments", fragments}}.dump();
  const SelectionFile selection = read_selection(dir.file("selection.json"));
  SingleProcessCommunicator single;
  ExtractOptions options;
  const ExtractResult automatic = extract_selection(selection, table, vectors.source(), options, dir.file("auto.h5ad"), single);
  EXPECT_TRUE(automatic.warnings.empty()) << testing::PrintToString(automatic.warnings);
  const auto written = open_dataset(dir.file("auto.h5ad"));
  const std::vector<std::string> columns = written->obs_column_names();
  for (const char* name : {"celltype", "source_file", "celltype_ontology_term_id", "donor_id", "assay"}) {
    EXPECT_NE(std::find(columns.begin(), columns.end(), name), columns.end()) << name;
  }
  EXPECT_EQ(std::find(columns.begin(), columns.end(), "batch"), columns.end());
  const DataFrame obs = written->read_obs_columns({"donor_id", "assay", "celltype", "celltype_ontology_term_id"});
  const Column& donors = obs.at("donor_id", "obs");
  EXPECT_EQ(donors.value_as_string(0), "donor1");
  EXPECT_EQ(donors.value_as_string(29), "donor2");
  EXPECT_TRUE(donors.is_missing(30));  // the second file has no donors
  EXPECT_EQ(obs.at("assay", "obs").value_as_string(3), "10x 3' v1");
  for (std::size_t row = 0; row < 30; ++row) {
    EXPECT_EQ(obs.at("celltype_ontology_term_id", "obs").value_as_string(row),
              obs.at("celltype", "obs").value_as_string(row) == "B" ? "CL:0000236" : "CL:0000084");
  }
  const nlohmann::json extract = nlohmann::json::parse(H5adFile(dir.file("auto.h5ad")).read_uns_string(kExtractUnsKey).value_or("{}"));
  EXPECT_EQ(extract.at("kept_obs"), (nlohmann::json{"celltype_ontology_term_id", "donor_id", "assay"}));

  options.keep_obs = {"batch", "tissue"};
  const ExtractResult named = extract_selection(selection, table, vectors.source(), options, dir.file("named.h5ad"), single);
  const std::vector<std::string> named_columns = open_dataset(dir.file("named.h5ad"))->obs_column_names();
  EXPECT_NE(std::find(named_columns.begin(), named_columns.end(), "batch"), named_columns.end());
  EXPECT_EQ(std::find(named_columns.begin(), named_columns.end(), "donor_id"), named_columns.end());  // (not asked for)
  EXPECT_EQ(std::find(named_columns.begin(), named_columns.end(), "tissue"), named_columns.end());
  EXPECT_EQ(named.warnings, (std::vector<std::string>{
                                "--keep-obs 'batch': 1 of 2 extracted files have no such obs column (" + with_donors + "): their cells have none",
                                "--keep-obs 'tissue': no extracted file has that obs column; left out"}));
  options.keep_obs = {"source_row"};
  EXPECT_THROW((void)extract_selection(selection, table, vectors.source(), options, dir.file("bad.h5ad"), single), InputError);
}

}  // namespace
}  // namespace celltyper
