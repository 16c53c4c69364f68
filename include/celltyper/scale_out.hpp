/// @file scale_out.hpp
/// `embed` and `extract` over a process group (communicator.hpp): the work is cut into
/// contiguous shares (rows of a dataset, fragments of a selection) by `contiguous_shares`, each
/// process embeds its share, and the root receives the shares in rank order and writes them.
/// A cell's embedding depends only on the cell (STYLE.md principle 7) and statistics are
/// recomputed over all cells at the root, so the output is the same for any number of processes.
/// Memory at the root: for `embed`, its own share plus one received share at a time; for
/// `extract`, the whole training matrix (it is written as one obsm array).
#pragma once

#include <celltyper/communicator.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/extract.hpp>

#include <string>
#include <vector>

namespace celltyper {

/// `embed_dataset` with the rows split over `communicator`'s processes. `sink` is used at the
/// root only (may be nullptr elsewhere). Every process returns the result of the whole dataset
/// (coverage statistics over all cells; `seconds` of this process).
EmbedResult embed_dataset_distributed(const Dataset& dataset, const GeneTable& table, const GeneVectorSource& source,
                                      const EmbedOptions& options, EmbeddingSink* sink, Communicator& communicator);

/// Outcome of `extract_selection` (meaningful at the root).
struct ExtractResult {
  std::int64_t n_cells = 0;
  int dims = 0;
  std::size_t n_fragments = 0;
  std::size_t n_files = 0;
  std::size_t n_genes = 0;
  std::int64_t n_empty_cells = 0;
  int processes = 1;
  double seconds = 0;             ///< wall time at the root, writing included
  double embed_seconds = 0;       ///< embedding time summed over processes
  std::vector<std::string> warnings;
};

/// Embed the fragments of `selection` with the fragments split over the processes (by cells) and
/// write the training h5ad at `output` from the root.
ExtractResult extract_selection(const SelectionFile& selection, const GeneTable& table, const GeneVectorSource& source,
                                const ExtractOptions& options, const std::string& output, Communicator& communicator);

}  // namespace celltyper
