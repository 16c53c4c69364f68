/// @file text_matrix.hpp
/// Count tables as plain text, as GEO series supplements and R / pandas write them: `.csv`,
/// `.tsv`, `.txt` (each optionally `.gz`), one name per row and per column.
///  - Delimiter: tab when the first line holds one, else comma, else semicolon, else runs of
///    blanks. Fields may be double-quoted (R's write.csv); a UTF-8 byte-order mark is skipped.
///  - Header: the first line names the columns, with or without a corner field (pandas' to_csv
///    and R's write.csv write one, R's write.table does not). Lines starting with '#' are skipped.
///  - Leading text fields of each row name it (a gene id and symbol, or a cell name and its
///    annotations); the rest are numbers.
///  - Orientation: the side whose names look like cell barcodes (ACGT runs) is the cells, the
///    side of Ensembl ids the genes, rows named by numbers are cells; else the header's corner
///    decides ("gene_id", "symbol": rows are genes; "cell", "barcode": rows are cells); else the
///    longer side is the genes (GEO's genes x cells when the table has fewer cells than genes).
///  - A first column of numbers names the rows when the corner is empty or an id ("Cell_Index")
///    or the numbers rise one by one (pandas' and R's row numbers, BD Rhapsody's cell indexes).
/// The whole table is read into memory (as for Cell Ranger MTX).
#pragma once

#include <celltyper/dataset.hpp>

#include <memory>
#include <string>

namespace celltyper {

/// Whether `path` names a text table by its extension (.csv, .tsv, .txt, optionally .gz).
bool is_text_matrix_path(const std::string& path);

/// Open a text count table (see above). Throws InputError naming the line of a malformed row.
std::unique_ptr<Dataset> open_text_matrix(const std::string& path);

/// A table of per-cell metadata (GEO's "metadata.csv", Seurat's `write.csv(obj@meta.data)`):
/// one row per cell, its name in the first column, the header naming the columns (with or without
/// a corner field). Columns of numbers (empty / NA cells allowed) are float columns, the others
/// categorical. Same delimiter and quoting rules as the count tables.
DataFrame read_cell_table(const std::string& path);

/// `dataset` with the columns of `table` (from read_cell_table(table_path)) joined to its obs by
/// cell name, replacing same-named obs columns; a cell the table lacks gets a missing value. Throws
/// InputError when no cell name of the dataset is in the table.
std::unique_ptr<Dataset> with_cell_table(std::unique_ptr<Dataset> dataset, const DataFrame& table, const std::string& table_path);

}  // namespace celltyper
