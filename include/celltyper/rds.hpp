/// @file rds.hpp
/// R objects saved with `saveRDS` (`.rds`) as celltyper datasets, read through R itself: the
/// installed `Rscript` loads the object and writes its counts (a dgCMatrix's slots, binary) with the
/// gene and cell names and the per-cell metadata into a scratch directory, which celltyper reads.
///  - A Seurat object (SeuratObject 4 or 5): the RNA assay (else the default assay), its counts
///    layer (else its data), and `meta.data` as obs (numbers stay numbers).
///  - A SingleCellExperiment / SummarizedExperiment: the `counts` assay (else the first), and
///    `colData` as obs.
///  - A count matrix (dgCMatrix, base matrix or data frame), genes x cells as GEO's `.rds`
///    supplements hold them.
/// R is only needed for this input: without `Rscript` the error says how to export the counts.
#pragma once

#include <celltyper/dataset.hpp>

#include <memory>
#include <string>

namespace celltyper {

/// Whether `path` names an R data file by its extension (`.rds`, any case).
bool is_rds_path(const std::string& path);

/// Open an `.rds` file through R (see above). Throws UnsupportedError when Rscript is missing
/// (CELLTYPER_RSCRIPT names it when it is not on PATH) and InputError naming R's own error when
/// the object cannot be read.
std::unique_ptr<Dataset> open_rds(const std::string& path);

}  // namespace celltyper
