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

}  // namespace
}  // namespace celltyper
