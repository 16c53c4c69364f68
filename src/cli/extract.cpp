// `celltyper extract`: embed only the fragments of a selection.json and write one training h5ad
// (obsm X_celltyper + labels + provenance) that `celltyper train --reference` takes directly.
// Under mpirun the fragments are shared between processes and the root writes (scale_out.hpp).
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/gene_vector_source.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/scale_out.hpp>

#include "cli/commands.hpp"
#include "cli/parallel.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>

#include <memory>

namespace celltyper::cli {

void add_extract(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::string selection;
    std::string genes;
    std::string gene_table;
    std::string out;
    std::string normalize = "auto";
    std::string memory_limit = "32M";
    bool json = false;
    ExtractOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("extract", "Embed only the fragments of a selection (celltyper select) into one training .h5ad");
  command->add_option("-s,--selection", args->selection, "selection.json written by `celltyper select`")->required();
  command->add_option("-g,--genes", args->genes, "Gene embedding store (default: the store built by scripts/setup.sh)");
  command->add_option("-o,--out", args->out, "Training matrix to write (.h5ad: obsm[KEY], obs labels and source file/row)")->required();
  command->add_option("-l,--label", args->options.label_column, "obs column with the labels (default: the selection's)");
  command->add_option("--layer", args->options.embed.matrix, kLayerHelp)->capture_default_str();
  command->add_option("--normalize", args->normalize, kNormalizeHelp)->capture_default_str();
  command->add_option("--dims", args->options.embed.dims, "Use the first k dimensions of the gene vectors (default: all)");
  command->add_option("--threads", args->options.embed.num_threads, "Threads per process (default: all cores)");
  command->add_option("--memory-limit", args->memory_limit, "Memory for matrix blocks in flight, e.g. 32M, 1G")->capture_default_str();
  command->add_option("--gene-table", args->gene_table, "Gene table for resolving var names (default: org.Hs.eg.db)");
  command->add_option("--gene-column", args->options.embed.genes.column, "var column with gene ids (default: auto-detect)");
  command->add_option("--min-coverage", args->options.embed.min_median_coverage,
                      "Fail when the median cell has less than this share of its counts on genes with a vector")
      ->capture_default_str();
  command->add_option("--key", args->options.key, "obsm key of the embeddings")->capture_default_str();
  command->add_option("--keep-obs", args->options.keep_obs,
                      "obs columns copied beside the labels (comma-separated; auto = the label's Cell Ontology id column, donor_id and assay "
                      "where the files have them; none)")
      ->delimiter(',')
      ->capture_default_str();
  command->add_flag("--skip-unreadable", args->options.skip_unreadable,
                    "Leave out a selected file that cannot be read (missing, corrupt, changed since select) with a warning, instead of stopping");
  command->add_flag("--json", args->json, "Print the run summary as JSON on stdout");
  command->callback([args, &global] {
    if (args->out.size() < 5 || args->out.compare(args->out.size() - 5, 5, ".h5ad") != 0) {
      throw InputError(fmt::format("{}: the training matrix is an .h5ad file (give --out a .h5ad name)", args->out));
    }
    args->options.embed.normalization = parse_normalization_choice(args->normalize);
    args->options.embed.coverage_option = "--min-coverage";
    args->options.embed.memory_limit_bytes = parse_bytes(args->memory_limit);
    const SelectionFile selection = read_selection(args->selection);
    const std::string store_path = resolve_gene_store_path(args->genes);
    const GeneStore store = GeneStore::load(store_path);
    const std::string table_path = choose_gene_table_path(args->gene_table);
    const GeneTable table = load_requested_gene_table(table_path, GeneTableFields::kIdentifiers);
    std::vector<std::string> inputs{args->selection, store_path, table_path};
    for (const auto& fragment : selection.fragments) {
      if (inputs.back() != fragment.path) inputs.push_back(fragment.path);  // fragments are in file order
    }
    check_outputs({args->out}, inputs);
    const GeneVectorSource source = store_vector_source(store, fmt::format("{} ({}, {} dims)", store_path, store.provenance().backend, store.dims()));
    Communicator& processes = world();
    std::int64_t selected = 0;
    for (const auto& fragment : selection.fragments) selected += fragment.row_end - fragment.row_start;
    ProgressBar bar("extract", "cells", selected, progress_enabled(global.quiet) && !processes.distributed());
    args->options.progress = [&bar](std::int64_t done, std::int64_t) { bar.update(done); };
    const ExtractResult result = extract_selection(selection, table, source, args->options, args->out, processes);
    bar.finish();
    if (!processes.is_root()) return;
    if (args->json) {
      fmt::print("{}\n", nlohmann::json{{"output", args->out},
                                        {"n_cells", result.n_cells},
                                        {"dims", result.dims},
                                        {"n_fragments", result.n_fragments},
                                        {"n_files", result.n_files},
                                        {"n_genes", result.n_genes},
                                        {"n_empty_cells", result.n_empty_cells},
                                        {"processes", result.processes},
                                        {"seconds", result.seconds},
                                        {"embed_seconds", result.embed_seconds},
                                        {"cells_per_second", static_cast<double>(result.n_cells) / result.seconds},
                                        {"skipped_files", result.skipped_files},
                                        {"n_skipped_cells", result.n_skipped_cells},
                                        {"warnings", result.warnings}}
                             .dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    if (!global.quiet) {
      fmt::print(stderr, "extracted {} cells x {} dims from {} fragments of {} files in {:.2f} s ({:.0f} cells/s, {}) -> {}\n", result.n_cells,
                 result.dims, result.n_fragments, result.n_files, result.seconds, static_cast<double>(result.n_cells) / result.seconds,
                 processes.description(), args->out);
      if (!result.skipped_files.empty()) {
        fmt::print(stderr, "left out {} unreadable file{} ({} selected cells; listed in uns/celltyper_extract skipped_files)\n",
                   result.skipped_files.size(), result.skipped_files.size() == 1 ? "" : "s", result.n_skipped_cells);
      }
    }
    print_warnings(result.warnings, global.quiet);
  });
}

CELLTYPER_REGISTER_COMMAND("36-extract", add_extract);

}  // namespace celltyper::cli
