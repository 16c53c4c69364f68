/// @file loom.hpp
/// Loom files (loompy, velocyto, the Human Cell Atlas DCP, scanpy's / anndata's `write_loom`) as
/// celltyper datasets. A loom file is HDF5: `/matrix` is dense genes x cells (chunked, usually
/// 64 x 64 gzip), `/layers/NAME` further matrices of that shape (velocyto's spliced /
/// unspliced), `/row_attrs/*` one array per gene attribute, `/col_attrs/*` one per cell attribute.
///  - var: the row attributes; its index is the gene names (`Gene`, loompy's and velocyto's
///    convention; `var_names` from anndata; else symbols / ids by their usual names), made unique
///    as scanpy does.
///  - obs: the column attributes (text as categories); its index is `CellID` (`obs_names`,
///    `cell_names`, ...), else row numbers.
///  - Matrices: `X` is `/matrix`, `layers/NAME` each layer; cells are read as the stored columns.
/// Text attributes written by loompy 2 with XML character references (`&#947;`) are decoded.
#pragma once

#include <celltyper/dataset.hpp>

#include <memory>
#include <string>

namespace celltyper {

/// Whether `path` is a local HDF5 file in the loom layout (a 2-D `/matrix` dataset and a
/// `row_attrs` or `col_attrs` group).
bool is_loom(const std::string& path);

/// Open a loom file (streams the matrix from disk). Throws InputError naming what is malformed
/// (an attribute whose length differs from the matrix's side, a layer of another shape, no gene
/// names).
std::unique_ptr<Dataset> open_loom(const std::string& path);

}  // namespace celltyper
