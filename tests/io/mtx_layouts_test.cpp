// MTX directories as the common pipelines write them: Cell Ranger and STARsolo (genes x cells,
// features.tsv + barcodes.tsv), kallisto | bustools (cells_x_genes.mtx with .genes.txt,
// .genes.names.txt, .barcodes.txt) and alevin-fry (quants_mat.mtx with _cols / _rows .txt) read
// as the same cells x genes matrix; a matrix written the other way round is read by its sizes.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace celltyper {
namespace {

// 3 cells x 2 genes: cell 0 (CD3E 4), cell 1 (MS4A1 6), cell 2 (CD3E 1, MS4A1 1).
struct Entry {
  int cell, gene, value;
};
const std::vector<Entry> kEntries{{0, 0, 4}, {1, 1, 6}, {2, 0, 1}, {2, 1, 1}};

std::string mtx(bool cells_by_rows) {
  std::string text = "%%MatrixMarket matrix coordinate integer general\n%\n";
  text += cells_by_rows ? "3 2 4\n" : "2 3 4\n";
  for (const Entry& e : kEntries) {
    text += cells_by_rows ? fmt::format("{} {} {}\n", e.cell + 1, e.gene + 1, e.value) : fmt::format("{} {} {}\n", e.gene + 1, e.cell + 1, e.value);
  }
  return text;
}

void write(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }


TEST(MtxLayouts, EveryPipelinesDirectoryReadsAsTheSameCells) {
  test::TempDir dir;
  const std::filesystem::path root = dir.path();
  const std::string barcodes = "AAAC-1\nAAAG-1\nAAAT-1\n";
  const std::filesystem::path cellranger = root / "cellranger", kb = root / "kb", fry = root / "fry", flipped = root / "flipped";
  for (const auto& folder : {cellranger, kb, fry, flipped}) std::filesystem::create_directories(folder);
  write(cellranger / "matrix.mtx", mtx(false));
  write(cellranger / "features.tsv", "ENSG00000198851\tCD3E\tGene Expression\nENSG00000105369\tMS4A1\tGene Expression\n");
  write(cellranger / "barcodes.tsv", barcodes);
  write(kb / "cells_x_genes.mtx", mtx(true));
  write(kb / "cells_x_genes.genes.txt", "ENSG00000198851\nENSG00000105369\n");
  write(kb / "cells_x_genes.genes.names.txt", "CD3E\nMS4A1\n");
  write(kb / "cells_x_genes.barcodes.txt", barcodes);
  write(fry / "quants_mat.mtx", mtx(true));
  write(fry / "quants_mat_cols.txt", "CD3E\nMS4A1\n");
  write(fry / "quants_mat_rows.txt", barcodes);
  write(flipped / "matrix.mtx", mtx(true));  // Cell Ranger's names, cells x genes inside
  write(flipped / "genes.tsv", "ENSG00000198851\tCD3E\nENSG00000105369\tMS4A1\n");
  write(flipped / "barcodes.tsv", barcodes);
  const std::vector<std::vector<double>> expected{{4, 0}, {0, 6}, {1, 1}};
  for (const auto& folder : {cellranger, kb, fry, flipped}) {
    SCOPED_TRACE(folder.filename().string());
    const auto dataset = open_dataset(folder.string());
    EXPECT_EQ(dataset->read_obs().index, (std::vector<std::string>{"AAAC-1", "AAAG-1", "AAAT-1"}));
    EXPECT_EQ(dataset->read_var().index, (std::vector<std::string>{"CD3E", "MS4A1"}));
    EXPECT_EQ(test::dense_x(*dataset), expected);
  }
  // no known matrix file: the message names what it looked for
  try {
    (void)open_dataset(root.string());
    FAIL() << "no error";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("cells_x_genes.mtx (kallisto | bustools) or quants_mat.mtx (alevin-fry)"), std::string::npos)
        << error.what();
  }
  // an output folder around a matrix (Xenium's outs/): the message names the files to read
  const std::filesystem::path outs = root / "outs";
  std::filesystem::create_directories(outs / "cell_feature_matrix");
  write(outs / "cell_feature_matrix.h5", "");
  try {
    (void)open_dataset(outs.string());
    FAIL() << "no error";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find(fmt::format("; read one of these: {}, {}", (outs / "cell_feature_matrix.h5").string(),
                                                         (outs / "cell_feature_matrix").string())),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace celltyper
