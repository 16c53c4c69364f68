/// @file scale_out.hpp
/// `catalog`, `embed` and `extract` over a process group (communicator.hpp): the work is cut into
/// contiguous shares (files of a catalogue, rows of a dataset, fragments of a selection) by
/// `contiguous_shares`, each process does its share, and the root receives the shares in rank
/// order and writes them (the catalogue: every process writes its files' Parquet parts, which are
/// named by path, and the root gathers the outcomes).
/// A cell's embedding depends only on the cell (STYLE.md principle 7) and statistics are
/// recomputed over all cells at the root, so the output is the same for any number of processes.
/// Memory at the root: for `embed`, its own share plus one received share at a time; for
/// `extract`, the whole training matrix (it is written as one obsm array).
#pragma once

#include <celltyper/catalog.hpp>
#include <celltyper/communicator.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/extract.hpp>

#include <string>
#include <vector>

namespace celltyper {

/// `build_catalog` with the files split over `communicator`'s processes: contiguous shares of
/// `paths` weighted by local file size (URLs weigh as much as the median local file). Every
/// process writes its files' parts into `out_dir` (a directory all ranks can reach, e.g. on a
/// shared file system); a part depends only on its file, so the catalogue is the same for any
/// number of processes. The root returns the outcome of every file in input order, totals over
/// all processes and its own wall time; other ranks return their share's result.
/// `options.on_file_done` is called for the local share only.
CatalogResult build_catalog_distributed(const std::vector<std::string>& paths, const std::string& out_dir, const CatalogOptions& options,
                                        Communicator& communicator);

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
  std::vector<std::string> skipped_files;  ///< left out as unreadable (ExtractOptions::skip_unreadable)
  std::int64_t n_skipped_cells = 0;        ///< their selected cells
};

/// Embed the fragments of `selection` with the fragments split over the processes (by cells) and
/// write the training h5ad at `output` from the root. Local files of the selection that do not
/// exist stop the run before any cell is embedded (InputError naming them; every process
/// alike), unless `options.skip_unreadable`.
ExtractResult extract_selection(const SelectionFile& selection, const GeneTable& table, const GeneVectorSource& source,
                                const ExtractOptions& options, const std::string& output, Communicator& communicator);

}  // namespace celltyper
