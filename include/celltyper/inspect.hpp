/// @file inspect.hpp
/// `celltyper inspect`: what is in a dataset file, as JSON and as a readable report.
#pragma once

#include <celltyper/dataset.hpp>
#include <celltyper/matrix_summary.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace celltyper {

class GeneTable;

/// Options of `inspect_dataset`.
struct InspectOptions {
  std::string matrix = "";             ///< matrix to summarise ("" = X, else raw/X if X absent)
  std::int64_t max_cells = -1;         ///< scan about this many cells, spread over the matrix (-1 = all)
  std::size_t top_categories = 5;      ///< categories listed per obs column
  const GeneTable* gene_table = nullptr;  ///< when set, report the gene-identity overlap
  /// Instead of `gene_table`: called once the matrix is scanned, its table (or nullptr) used the
  /// same way, so that a caller can load the table while the matrix is read.
  std::function<const GeneTable*()> gene_table_later;
  std::string gene_column = "";        ///< var column holding gene ids ("" = auto-detect)
  std::size_t memory_limit_bytes = std::size_t{32} << 20;
};

/// Describe a dataset: format, shape, every matrix (encoding, dtype, compression), a scan of
/// the main matrix (sparsity, value scale), obs and var columns (type, categories with counts,
/// missing values), obsm / layers keys and, with a gene table, the gene-identity overlap.
nlohmann::json inspect_dataset(const Dataset& dataset, const InspectOptions& options = {});

/// Readable multi-line report of `inspect_dataset`'s JSON.
std::string format_inspect_report(const nlohmann::json& report);

}  // namespace celltyper
