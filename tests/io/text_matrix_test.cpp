// Count tables as text, as GEO supplements and R / pandas write them: each layout reads as the
// same cells x genes matrix, whichever way round the table is, and malformed tables are one
// clear error naming the line.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/text_matrix.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace celltyper {
namespace {

std::string write(const test::TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.file(name);
  if (name.size() > 3 && name.substr(name.size() - 3) == ".gz") {
    gzFile file = gzopen(path.c_str(), "wb");
    gzwrite(file, text.data(), static_cast<unsigned>(text.size()));
    gzclose(file);
  } else {
    std::ofstream(path) << text;
  }
  return path;
}

std::vector<std::string> values_of(const Column& column) {
  std::vector<std::string> values;
  for (std::size_t row = 0; row < column.size(); ++row) values.push_back(column.value_as_string(row));
  return values;
}

// Two cells (barcodes) x three genes, in the layouts tools write.
TEST(TextMatrix, EveryLayoutReadsAsTheSameCellsByGenes) {
  test::TempDir dir;
  const std::vector<std::vector<double>> expected{{1, 0, 4}, {0, 2.5, 7}};
  const std::vector<std::string> cells{"AAACCTGAGAAACCAT-1", "AAACCTGAGAAACGAG-1"};
  const std::vector<std::string> genes{"CD3E", "MS4A1", "LYZ"};
  const std::vector<std::pair<std::string, std::string>> layouts{
      // GEO: genes x cells, tab-separated, a corner field, gzip
      {"geo.tsv.gz", "gene\tAAACCTGAGAAACCAT-1\tAAACCTGAGAAACGAG-1\nCD3E\t1\t0\nMS4A1\t0\t2.5\nLYZ\t4\t7\n"},
      // R write.csv: quoted names, an empty corner, CRLF line ends
      {"r.csv", "\"\",\"AAACCTGAGAAACCAT-1\",\"AAACCTGAGAAACGAG-1\"\r\n\"CD3E\",1,0\r\n\"MS4A1\",0,2.5\r\n\"LYZ\",4,7\r\n"},
      // R write.table: blank-separated, no corner field
      {"r.txt", "\"AAACCTGAGAAACCAT-1\" \"AAACCTGAGAAACGAG-1\"\n\"CD3E\" 1 0\n\"MS4A1\" 0 2.5\n\"LYZ\" 4 7\n"},
      // Excel: a byte-order mark, semicolons
      {"excel.csv", "\xEF\xBB\xBFgene;AAACCTGAGAAACCAT-1;AAACCTGAGAAACGAG-1\nCD3E;1;0\nMS4A1;0;2.5\nLYZ;4;7\n"},
      // pandas to_csv of cells x genes, a comment line, scientific notation
      {"pandas.csv", "# exported\n,CD3E,MS4A1,LYZ\nAAACCTGAGAAACCAT-1,1.0,0.0,4e0\nAAACCTGAGAAACGAG-1,0,2.5,7\n"},
  };
  for (const auto& [name, text] : layouts) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(is_text_matrix_path(name));
    const auto dataset = open_dataset(write(dir, name, text));
    EXPECT_EQ(dataset->format(), "text");
    EXPECT_EQ(dataset->read_obs().index, cells);
    EXPECT_EQ(dataset->read_var().index, genes);
    EXPECT_EQ(test::dense_x(*dataset), expected);
    EXPECT_EQ(dataset->matrix_info("X").value_dtype, "float64");
  }
}

// Which side is the cells: barcodes are cells, Ensembl ids genes, else the longer side is genes.
// Name columns beside the first become var columns (a symbol beside an Ensembl id) or obs
// columns (a cell type beside a cell name, for `train -l obs:celltype`).
TEST(TextMatrix, OrientationAndNameColumns) {
  test::TempDir dir;
  // Ensembl ids as rows and a symbol column; cells named without barcodes: genes x cells.
  const auto ensembl = open_dataset(write(dir, "ids.tsv",
                                          "gene_id\tsymbol\tplate1_A01\tplate1_A02\tplate1_A03\tplate1_A04\n"
                                          "ENSG00000198851\tCD3E\t5\t0\t1\t2\nENSG00000156738\tMS4A1\t0\t3\t0\t1\n"));
  EXPECT_EQ(ensembl->n_obs(), 4);
  EXPECT_EQ(ensembl->n_vars(), 2);
  EXPECT_EQ(values_of(ensembl->read_var().at("symbol", "var")), (std::vector<std::string>{"CD3E", "MS4A1"}));
  EXPECT_EQ(ensembl->matrix_info("X").value_dtype, "int64");
  EXPECT_NE(ensembl->matrix_info("X").compression.find("genes x cells (rows named by Ensembl ids)"), std::string::npos);
  // Cells x genes with a label column; nothing marks either side, the longer one is the genes.
  const auto labelled = open_dataset(write(dir, "labelled.csv", "cell,celltype,CD3E,MS4A1,LYZ\nc1,T,4,0,0\nc2,B,0,6,1\n"));
  EXPECT_EQ(labelled->read_obs().index, (std::vector<std::string>{"c1", "c2"}));
  EXPECT_EQ(values_of(labelled->read_obs().at("celltype", "obs")), (std::vector<std::string>{"T", "B"}));
  EXPECT_EQ(labelled->n_vars(), 3);
  // No row names at all (pandas to_csv(index=False)): rows are cells, numbered from 1.
  const auto unnamed = open_dataset(write(dir, "unnamed.csv", "CD3E,MS4A1,LYZ\n4,0,0\n0,6,1\n"));
  EXPECT_EQ(unnamed->read_obs().index, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(unnamed->read_var().index, (std::vector<std::string>{"CD3E", "MS4A1", "LYZ"}));
  // GEO's id, symbol and description columns whose description is mostly "NA" or a number (a
  // chromosome): name columns all the same (a column of counts with one damaged value is no
  // name column: its value is an error, the HostileCli tests).
  std::string described = "gene_id\tsymbol\tchromosome\tdescription\tAAACCTGAGAAACCAT-1\tAAACCTGAGAAACGAG-1\n";
  for (int g = 0; g < 30; ++g) {
    described += fmt::format("ENSG{:011d}\tG{}\t{}\t{}\t{}\t{}\n", 100 + g, g, g % 7 == 0 ? "X" : std::to_string(1 + g % 22),
                             g % 3 == 0 ? "kinase " + std::to_string(g) : "NA", g % 5, g % 3);
  }
  const auto geo = open_dataset(write(dir, "described.tsv", described));
  EXPECT_EQ(geo->n_obs(), 2);
  EXPECT_EQ(geo->n_vars(), 30);
  EXPECT_EQ(values_of(geo->read_var().at("description", "var"))[1], "NA");
}

// NanoString CosMx's exprMat_file.csv (fov, cell_ID, genes, negative probes), fewer genes than
// cells or more: cells x genes, named FOV_CELLID (ids restart per fov), fov and cell_ID kept;
// its cell_ID 0 rows (transcripts outside every cell) are named in a reading note.
TEST(TextMatrix, CosmxExpressionMatrixIsCellsByGenes) {
  test::TempDir dir;
  const auto cosmx = open_dataset(write(dir, "Run1_S1_exprMat_file.csv",
                                        "fov,cell_ID,CD3E,MS4A1,LYZ,NegPrb1\n"
                                        "1,0,3,2,1,1\n1,1,4,0,0,0\n1,2,0,6,1,0\n2,0,1,1,1,0\n2,1,0,0,9,1\n"));
  EXPECT_EQ(cosmx->read_obs().index, (std::vector<std::string>{"1_0", "1_1", "1_2", "2_0", "2_1"}));
  EXPECT_EQ(cosmx->read_var().index, (std::vector<std::string>{"CD3E", "MS4A1", "LYZ", "NegPrb1"}));
  EXPECT_EQ(values_of(cosmx->read_obs().at("fov", "obs")), (std::vector<std::string>{"1", "1", "1", "2", "2"}));
  EXPECT_EQ(values_of(cosmx->read_obs().at("cell_ID", "obs")), (std::vector<std::string>{"0", "1", "2", "0", "1"}));
  EXPECT_NE(cosmx->matrix_info("X").compression.find("cells x genes (CosMx's fov and cell_ID columns)"), std::string::npos)
      << cosmx->matrix_info("X").compression;
  EXPECT_NE(cosmx->reading_note().find("2 of its 5 rows have cell_ID 0 (CosMx's transcripts outside every cell"), std::string::npos)
      << cosmx->reading_note();
  // (more genes than cells: still cells x genes)
  const auto wide = open_dataset(write(dir, "wide.csv", "fov,cell_ID,A1,A2,A3,A4,A5\n1,1,1,0,0,2,0\n1,2,0,3,0,0,1\n"));
  EXPECT_EQ(wide->n_obs(), 2);
  EXPECT_EQ(wide->n_vars(), 5);
  EXPECT_TRUE(wide->reading_note().empty());
}

// A first column of numbers is the rows' names, not a gene or a cell of counts, when the
// corner says so (pandas' and R's row numbers, BD Rhapsody's Cell_Index) or the numbers rise one
// by one; a '#' header, Excel's empty rows and a header-only trailing delimiter read as meant.
TEST(TextMatrix, RowNumbersHeadersAndExcelQuirks) {
  test::TempDir dir;
  const std::vector<std::string> genes{"CD3E", "MS4A1"};
  const std::vector<std::vector<double>> counts{{4, 0}, {0, 6}, {1, 1}};
  const std::vector<std::pair<std::string, std::string>> layouts{
      {"pandas.csv", ",CD3E,MS4A1\n0,4,0\n1,0,6\n2,1,1\n"},
      {"r.csv", "\"\",\"CD3E\",\"MS4A1\"\n\"1\",4,0\n\"2\",0,6\n\"3\",1,1\n"},
      {"bd.csv", "##########\n## BD Rhapsody\n##########\nCell_Index,CD3E,MS4A1\n12,4,0\n57,0,6\n90,1,1\n"},
      {"rising.CSV", "x,CD3E,MS4A1\n1,4,0\n2,0,6\n3,1,1\n"},
      {"excel.csv", "cell,CD3E,MS4A1,\nc1,4,0\nc2,0,6\nc3,1,1\n,,\n,,\n"},
  };
  for (const auto& [name, text] : layouts) {
    SCOPED_TRACE(name);
    const auto dataset = open_dataset(write(dir, name, text));
    EXPECT_EQ(dataset->read_var().index, genes);
    EXPECT_EQ(dataset->n_obs(), 3);
    EXPECT_EQ(test::dense_x(*dataset), counts);
  }
  EXPECT_EQ(open_dataset(write(dir, "bd2.csv", "## BD\nCell_Index,CD3E,MS4A1\n12,4,0\n57,0,6\n90,1,1\n"))->read_obs().index,
            (std::vector<std::string>{"12", "57", "90"}));
  // A Seurat obs written beside the counts: its numbers are obs columns, not genes.
  const auto seurat = open_dataset(write(dir, "seurat.csv",
                                         "cell,orig.ident,nCount_RNA,nFeature_RNA,percent.mt,seurat_clusters,celltype,CD3E,MS4A1\n"
                                         "c1,pbmc,4,1,0.5,0,T,4,0\nc2,pbmc,6,1,1.5,1,B,0,6\nc3,pbmc,2,2,0,1,B,1,1\n"));
  EXPECT_EQ(seurat->read_var().index, genes);
  EXPECT_EQ(test::dense_x(*seurat), counts);
  const DataFrame obs = seurat->read_obs();
  EXPECT_EQ(obs.at("nCount_RNA", "obs").kind, ColumnKind::kFloat);
  EXPECT_EQ(obs.at("nCount_RNA", "obs").numbers, (std::vector<double>{4, 6, 2}));
  EXPECT_EQ(values_of(obs.at("celltype", "obs")), (std::vector<std::string>{"T", "B", "B"}));
  // In a genes x cells table a cell named like metadata is still a cell.
  const auto cluster_cell = open_dataset(write(dir, "cluster_cell.tsv",
                                               "gene\tCluster_0_AAACCTGAGAAACCAT\tAAACCTGAGAAACGAG-1\tAAACCTGAGAAACTTA-1\n"
                                               "CD3E\t1\t0\t2\nMS4A1\t0\t2\t1\nLYZ\t3\t0\t0\nCD14\t1\t1\t1\n"));
  EXPECT_EQ(cluster_cell->n_obs(), 3);
  EXPECT_EQ(cluster_cell->n_vars(), 4);
  const auto hashed = open_dataset(write(dir, "hashed.tsv", "#gene\tAAACCTGAGAAACCAT-1\tAAACCTGAGAAACGAG-1\nCD3E\t1\t0\nMS4A1\t0\t2\n"));
  EXPECT_EQ(hashed->read_var().index, genes);
  EXPECT_EQ(hashed->read_obs().index, (std::vector<std::string>{"AAACCTGAGAAACCAT-1", "AAACCTGAGAAACGAG-1"}));
}

// GEO's metadata beside its counts: a cell table joined to obs by cell name (numbers as numbers,
// cells the table lacks missing); a table naming none of the cells is an error.
TEST(TextMatrix, CellTablesJoinByCellName) {
  test::TempDir dir;
  const std::string counts = write(dir, "counts.csv", "gene,c1,c2,c3\nCD3E,4,0,1\nMS4A1,0,6,1\nLYZ,0,0,9\n");
  const std::string meta = write(dir, "meta.tsv", "cell\tcelltype\tnCount\nc3\tMono\t11\nc1\tT\t4\nother\tB\tNA\n");
  const DataFrame table = read_cell_table(meta);
  EXPECT_EQ(table.index, (std::vector<std::string>{"c3", "c1", "other"}));
  const auto joined = with_cell_table(open_dataset(counts), table, meta);
  const DataFrame obs = joined->read_obs();
  EXPECT_EQ(obs.index, (std::vector<std::string>{"c1", "c2", "c3"}));
  const Column& celltype = obs.at("celltype", "obs");
  EXPECT_EQ(celltype.value_as_string(0), "T");
  EXPECT_TRUE(celltype.is_missing(1));
  EXPECT_EQ(celltype.value_as_string(2), "Mono");
  const Column& total = obs.at("nCount", "obs");
  EXPECT_EQ(total.kind, ColumnKind::kFloat);
  EXPECT_EQ(total.numbers[0], 4);
  EXPECT_TRUE(std::isnan(total.numbers[1]));
  EXPECT_EQ(test::dense_x(*joined), test::dense_x(*open_dataset(counts)));  // the matrix is the base's
  // ids with a leading zero stay text; NA-like values are missing in text columns too; a
  // one-column table without a corner field (R's write.table)
  const DataFrame ids = read_cell_table(write(dir, "ids.csv", "cell,donor,celltype\nc1,01,T\nc2,1,NA\nc3,02,\n"));
  EXPECT_EQ(ids.at("donor", "t").kind, ColumnKind::kCategorical);
  EXPECT_EQ(values_of(ids.at("donor", "t")), (std::vector<std::string>{"01", "1", "02"}));
  EXPECT_TRUE(ids.at("celltype", "t").is_missing(1));
  EXPECT_TRUE(ids.at("celltype", "t").is_missing(2));
  EXPECT_EQ(ids.at("celltype", "t").categories, std::vector<std::string>{"T"});
  const DataFrame one = read_cell_table(write(dir, "one.tsv", "\"celltype\"\n\"c1\"\t\"T\"\n\"c3\"\t\"Mono\"\n"));
  EXPECT_EQ(values_of(one.at("celltype", "t")), (std::vector<std::string>{"T", "Mono"}));
  // a cell named twice is an error (barcodes of several samples need their sample in the name)
  try {
    (void)read_cell_table(write(dir, "twice.csv", "cell,celltype\nc1,T\nc1,B\n"));
    FAIL() << "no error";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("the cell 'c1' appears twice (rows 1 and 2)"), std::string::npos) << error.what();
  }
  // only the columns asked for are read; a replaced column's CL ids no longer show
  EXPECT_EQ(joined->read_obs_columns({"celltype"}).columns.size(), 1U);
  EXPECT_EQ(joined->obs_column_names(), (std::vector<std::string>{"celltype", "nCount"}));
  const std::string strangers = write(dir, "strangers.csv", "cell,celltype\nx1,T\nx2,B\n");
  try {
    (void)with_cell_table(open_dataset(counts), read_cell_table(strangers), strangers);
    FAIL() << "no error";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("none of the 3 cell names of"), std::string::npos) << error.what();
  }
}

TEST(TextMatrix, MalformedTablesNameTheLine) {
  test::TempDir dir;
  const auto error_of = [&](const std::string& name, const std::string& text) {
    try {
      (void)open_dataset(write(dir, name, text));
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("ragged.csv", "g,c1,c2\nCD3E,1,2\nCD4,1\n").find("ragged.csv: line 3 has 2 fields, line 2 has 3"), std::string::npos);
  EXPECT_NE(error_of("word.csv", "g,c1,c2\nCD3E,1,x2\n").find("word.csv: line 2, column 3 ('x2') is not a number"), std::string::npos);
  EXPECT_NE(error_of("header.csv", "g,c1,c2,c3,c4\nCD3E,1,2\n").find("the header (line 1) has 5 fields but line 2 has 3"), std::string::npos);
  // line numbers are the file's, comments and blank lines included
  EXPECT_NE(error_of("lines.csv", "# from GEO\n\ng,c1,c2\nCD3E,1,2\nCD4,1\n").find("lines.csv: line 5 has 2 fields, line 4 has 3"), std::string::npos);
  EXPECT_NE(error_of("names.tsv", "a\tb\nx\ty\n").find("line 2 holds no number after its 2 name fields"), std::string::npos);
  EXPECT_NE(error_of("short.txt", "just a header\n").find("a header line and at least one data line"), std::string::npos);
  EXPECT_NE(error_of("empty.csv.gz", "").find("a header line and at least one data line"), std::string::npos);
}

}  // namespace
}  // namespace celltyper
