/// @file floored_logs.hpp
/// Logs with a floor per cell. edgeR's `cpm(y, log = TRUE)` stores log2((count + prior) / library
/// x 10^6), the prior scaled to each cell's library: every gene without a count holds the cell's
/// smallest value, about 9.7 for 10x cells (below 0 for libraries of millions of reads), in a
/// dense matrix; log2(TPM + 0.01) and other logs of a pseudocount other than 1 do the same. Read
/// as they are, the floor is expression of every gene (pbmc3k's odd cells as edgeR's log CPM
/// under a model of the even cells' counts: 0.146 of the labels right, with no warning; the
/// negative floors of deep cells stopped as scaled data). Each such cell's floor is subtracted
/// as it is read, its floor genes becoming zeros: log2(count / prior + 1), logs of counts
/// scaled per cell, which the scan then reads as log-normalised values (matrix_summary.hpp) and
/// the verbs read back and normalise again as counts.
#pragma once

#include <celltyper/dataset.hpp>

#include <cstdint>
#include <memory>
#include <set>
#include <string>

namespace celltyper {

/// A cell is floored when its smallest value, other than 0, is held by at least this share of
/// the matrix's genes (10x cells lack a count in 90% of them; logs of counts hold a value that
/// often for 0 only, centred or corrected values hardly any value twice).
inline constexpr double kFloorGeneShare = 0.3;
/// A matrix is floored when this share of its scanned cells (with a value) are.
inline constexpr double kFlooredCellShare = 0.9;
/// Cells scanned per matrix (the first ones); only matrices storing at least half of their
/// values are scanned (a sparse matrix's unstored zeros are its floor).
inline constexpr std::int64_t kFloorScanRows = 200;

/// What the scan of one matrix found.
struct FloorScan {
  std::int64_t cells = 0;          ///< cells scanned with a value
  std::int64_t floored_cells = 0;  ///< of them floored
  double median_floor = 0;         ///< the floored cells' floor, in the median
  double median_share = 0;         ///< the share of the genes at it, in the median
  [[nodiscard]] bool floored() const {
    return cells > 0 && static_cast<double>(floored_cells) >= kFlooredCellShare * static_cast<double>(cells);
  }
};

/// Scan the first kFloorScanRows cells of `reader`.
FloorScan scan_floor(MatrixReader& reader);

/// `base` with the floor of each cell subtracted from every matrix the scan finds floored (a
/// note names them: reading_note()), or `base` itself when none is. open_dataset applies it.
std::unique_ptr<Dataset> with_floors_removed(std::unique_ptr<Dataset> base);

/// The reader of a floored matrix: each cell's smallest value (0 when some value is not
/// stored) subtracted from its values, those left at 0 no longer stored.
std::unique_ptr<MatrixReader> floor_removed(std::unique_ptr<MatrixReader> base);

}  // namespace celltyper
