/// @file tenx.hpp
/// 10x Genomics Cell Ranger outputs as celltyper datasets.
///  - MTX directories: `matrix.mtx[.gz]` (MatrixMarket coordinate, genes x cells, 1-based),
///    `features.tsv[.gz]` (v3: id, name, feature type) or `genes.tsv` (v2: id, name), and
///    `barcodes.tsv[.gz]`.
///  - Cell Ranger `.h5` (v3: /matrix with data/indices/indptr/shape and /matrix/features;
///    v2: /<genome> with genes and gene_names). The stored matrix is genes x cells in CSC
///    form, i.e. cells x genes in CSR form, which is what celltyper streams.
/// As in scanpy's `read_10x_mtx` / `read_10x_h5`, var names are gene symbols made unique with
/// "-1", "-2" ... suffixes, and var has `gene_ids` and `feature_types` columns.
#pragma once

#include <celltyper/dataset.hpp>

#include <memory>
#include <string>

namespace celltyper {

/// Open an MTX directory (reads the whole matrix into memory: MTX is text): Cell Ranger's and
/// STARsolo's matrix.mtx + features.tsv (genes.tsv) + barcodes.tsv (genes x cells), kallisto |
/// bustools' cells_x_genes.mtx + .genes.txt (+ .genes.names.txt) + .barcodes.txt and alevin-fry's
/// quants_mat.mtx + quants_mat_cols.txt + quants_mat_rows.txt (cells x genes). A matrix whose
/// sizes say it is the other way round is read that way.
std::unique_ptr<Dataset> open_tenx_mtx(const std::string& directory);

/// Open a Cell Ranger .h5 file (streams the matrix from disk).
std::unique_ptr<Dataset> open_tenx_h5(const std::string& path);

/// Is `path` an HDF5 file in the Cell Ranger layout (a top-level `matrix` group, or a
/// genome group holding `gene_names`)?
bool is_tenx_h5(const std::string& path);

/// scanpy's `var_names_make_unique`: the second and later copies of a name get "-1", "-2", ...
std::vector<std::string> make_unique_names(const std::vector<std::string>& names);

}  // namespace celltyper
