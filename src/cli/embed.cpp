// `celltyper embed`: GenePT-w cell embeddings of a dataset, written to obsm of an h5ad copy
// (default), a .npy file or an HDF5 file.
#include <celltyper/dataset.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/gene_vector_source.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/scale_out.hpp>

#include "cli/commands.hpp"
#include "genes/gene_names.hpp"
#include "cli/parallel.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>

namespace celltyper::cli {

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Whether `path` is a character device (/dev/null) or a FIFO (after symlinks).
bool is_device_or_fifo(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && (S_ISCHR(info.st_mode) || S_ISFIFO(info.st_mode));
}

/// Default output: the input's name with ".celltyper.h5ad", beside it.
std::string default_output(const std::string& input) {
  std::filesystem::path path(input);
  std::string stem = path.filename().string();
  const bool mudata = ends_with(stem, ".h5mu");  // (a MuData file: a copy of it, obsm in its rna modality)
  if (ends_with(stem, ".h5ad") || mudata) stem.resize(stem.size() - 5);
  return refuse_symlinked_default((path.parent_path() / (stem + (mudata ? ".celltyper.h5mu" : ".celltyper.h5ad"))).string());
}

}  // namespace

void add_embed(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::string genes;
    std::string input;
    std::string out;
    std::string normalize = "auto";
    std::string memory_limit = "32M";
    std::string gene_table;
    std::string key = "X_celltyper";
    bool in_place = false;
    bool json = false;
    EmbedOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("embed", "Embed every cell: expression-weighted sum of gene vectors, L2-normalised (GenePT-w)");
  command->add_option("-i,--input", args->input, "Dataset: .h5ad, a MuData .h5mu (its rna modality), Cell Ranger .h5 or MTX directory")->required();
  command->add_option("-g,--genes", args->genes, "Gene embedding store (default: the store built by scripts/setup.sh)");
  command->add_option("-o,--out", args->out,
                      "Output: .h5ad (copy of the input with obsm[KEY]; default INPUT.celltyper.h5ad; a MuData input's copy: .h5mu, obsm of mod/rna), .npy or .h5");
  command->add_option("--layer", args->options.matrix, kLayerHelp)->capture_default_str();
  command->add_option("--normalize", args->normalize, kNormalizeHelp)
      ->capture_default_str();
  command->add_option("--dims", args->options.dims, "Use the first k dimensions of the gene vectors (default: all)");
  command->add_option("--threads", args->options.num_threads, "Threads (default: all cores)");
  command->add_option("--memory-limit", args->memory_limit, "Memory for matrix blocks in flight, e.g. 32M, 1G")->capture_default_str();
  command->add_option("--gene-table", args->gene_table, "Gene table for resolving var names (default: org.Hs.eg.db)");
  command->add_option("--gene-column", args->options.genes.column, "var column with gene ids (default: auto-detect; 'index' = var_names)");
  command->add_option("--min-coverage", args->options.min_median_coverage,
                      "Fail when the median cell has less than this share of its counts on genes with a vector")
      ->capture_default_str();
  command->add_option("--key", args->key, "obsm key for .h5ad output")->capture_default_str();
  command->add_flag("--in-place", args->in_place, "Write obsm into the input file itself (through a temporary copy)");
  command->add_flag("--json", args->json, "Print the run summary as JSON on stdout");
  command->callback([args, &global] {
    args->options.normalization = parse_normalization_choice(args->normalize);
    args->options.coverage_option = "--min-coverage";
    args->options.memory_limit_bytes = parse_bytes(args->memory_limit);
    const GeneStore store = GeneStore::load(resolve_gene_store_path(args->genes));
    const std::string table_path = choose_gene_table_path(args->gene_table);
    const GeneTable table = load_requested_gene_table(table_path, GeneTableFields::kIdentifiers);
    const auto dataset = open_dataset(args->input);

    std::string out = args->in_place ? args->input : args->out;
    if (out.empty()) {
      if (dataset->format() != "h5ad") throw InputError(fmt::format("{}: pass --out FILE.npy or FILE.h5 for a {} input", args->input, dataset->format()));
      out = default_output(args->input);
    }
    // --in-place rewrites the input through a copy; any other output that is an input is refused.
    check_outputs({out}, {args->in_place ? std::string() : args->input, resolve_gene_store_path(args->genes), table_path});
    // Under mpirun every process embeds a share of the rows and the root writes (scale_out.hpp).
    Communicator& processes = world();
    std::unique_ptr<EmbeddingSink> sink;
    if (!processes.is_root()) {
      // no output on the other processes
    } else if (ends_with(out, ".npy") || is_device_or_fifo(out)) {  // (/dev/null, a pipe: .npy, the format that streams)
      sink = make_npy_sink(out);
    } else if (ends_with(out, ".h5") || ends_with(out, ".hdf5")) {
      sink = make_hdf5_sink(out, dataset->read_obs_columns({}).index);
    } else if (ends_with(genes_detail::ascii_lower(out), ".h5ad") || ends_with(genes_detail::ascii_lower(out), ".h5mu")) {
      if (dataset->format() != "h5ad") throw InputError(fmt::format("{}: .h5ad output copies an .h5ad input; use .npy or .h5 for {}", out, dataset->format()));
      // (a MuData input: .h5mu copies it, obsm in its rna modality; .h5ad copies the modality alone)
      const bool mudata = dataset->h5ad_file() != nullptr && !dataset->h5ad_file()->modality().empty();
      if (!mudata && ends_with(genes_detail::ascii_lower(out), ".h5mu")) {
        throw InputError(fmt::format("{}: a MuData file is written for a MuData input only; {} is an AnnData .h5ad: name the output .h5ad", out, args->input));
      }
      sink = make_h5ad_obsm_sink(args->input, out, args->key, args->in_place);
    } else {
      throw InputError(fmt::format("{}: unknown output type (use .h5ad, .h5mu for a MuData input, .npy or .h5; a device or FIFO gets .npy)", out));
    }
    GeneVectorSource source = store_vector_source(store, fmt::format("{} ({}, {} dims)", resolve_gene_store_path(args->genes),
                                                                store.provenance().backend, store.dims()));
    ProgressBar bar("embed", "cells", dataset->n_obs(), progress_enabled(global.quiet) && !processes.distributed());
    args->options.progress = [&bar](std::int64_t done, std::int64_t) { bar.update(done); };
    const EmbedResult result = embed_dataset_distributed(*dataset, table, source, args->options, sink.get(), processes);
    bar.finish();
    if (!processes.is_root()) return;
    if (args->json) {
      nlohmann::json summary = result.to_json();
      summary["output"] = out;
      summary["processes"] = processes.size();
      fmt::print("{}\n", summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else if (!global.quiet) {
      fmt::print(stderr, "embedded {} cells x {} dims from {} in {:.2f} s ({:.0f} cells/s, {}) -> {}\n", result.n_cells, result.dims,
                 result.matrix, result.seconds, static_cast<double>(result.n_cells) / result.seconds, processes.description(), out);
      fmt::print(stderr, "  normalisation {}: {}\n", to_string(result.normalization), result.normalization_reason);
      fmt::print(stderr, "  genes: {} of {} vars have a vector (column '{}', {} ids){}\n", result.n_vars_with_vector, result.genes.n_vars(),
                 result.genes.column, to_string(result.genes.id_type),
                 result.n_cells == 0 ? std::string()
                                     : fmt::format("; counts covered per cell: median {:.1f}%, min {:.1f}%", 100 * result.median_coverage,
                                                   100 * result.min_coverage));
    }
    print_warnings(result.warnings, global.quiet);
  });
}

CELLTYPER_REGISTER_COMMAND("30-embed", add_embed);

}  // namespace celltyper::cli
