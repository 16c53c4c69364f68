// `celltyper inspect FILE`: describe a dataset (h5ad, Cell Ranger .h5 or MTX directory).
#include <celltyper/dataset.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/inspect.hpp>
#include <celltyper/remote.hpp>

#include "cli/commands.hpp"

#include <fmt/format.h>

#include <future>
#include <memory>

namespace celltyper::cli {

void add_inspect(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::string path;
    std::string gene_table;
    bool no_genes = false;
    bool json = false;
    InspectOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("inspect", "Describe a dataset: shape, encodings, value scale, obs columns, gene ids");
  command->add_option("file", args->path, "An .h5ad file, a Cell Ranger .h5 file or a Cell Ranger MTX directory")->required();
  command->add_flag("--json", args->json, "Print machine-readable JSON");
  command->add_option("--layer", args->options.matrix, "Matrix to scan: X (default), raw, or a layer name");
  command->add_option("--max-cells", args->options.max_cells, "Scan only the first N cells of the matrix (default: all)");
  command->add_option("--top", args->options.top_categories, "Categories listed per obs column")->capture_default_str();
  command->add_option("--gene-table", args->gene_table,
                      "Gene table for the gene-id overlap: org.*.eg.db SQLite or TSV (default: $CELLTYPER_GENE_TABLE, else Debian's org.Hs.eg.db)");
  command->add_option("--gene-column", args->options.gene_column, "var column holding gene ids (default: auto-detect; 'index' for var_names)");
  command->add_flag("--no-genes", args->no_genes, "Skip the gene-id overlap");
  command->callback([args, &global] {
    GeneTable table;
    std::future<GeneTable> loading;  // the table loads while the file is opened and its matrix scanned
    if (!args->no_genes) {
      const std::string table_path = choose_gene_table_path(args->gene_table);
      if (!table_path.empty()) {
        loading = std::async(std::launch::async, [table_path] { return load_gene_table_cached(table_path, GeneTableFields::kIdentifiers); });
        args->options.gene_table_later = [&table, &loading]() -> const GeneTable* {
          table = loading.get();
          return &table;
        };
      }
    }
    const auto dataset = open_dataset(args->path);
    if (!args->no_genes && !loading.valid() && !global.quiet) {
      fmt::print(stderr, "celltyper: no gene table found (set --gene-table or CELLTYPER_GENE_TABLE); skipping the gene-id overlap\n");
    }
    nlohmann::json report = inspect_dataset(*dataset, args->options);
    const RemoteStats remote = remote_stats_total();
    if (is_remote_path(args->path)) {
      report["remote"] = {{"requests", remote.requests}, {"retries", remote.retries}, {"bytes_fetched", remote.bytes_fetched},
                          {"cache_hits", remote.cache_hits}};
    }
    if (args->json) {
      fmt::print("{}\n", report.dump(2));
    } else {
      fmt::print("{}", format_inspect_report(report));
      if (is_remote_path(args->path)) {
        fmt::print("remote: {} requests ({} retries), {} bytes fetched\n", remote.requests, remote.retries, remote.bytes_fetched);
      }
    }
  });
}

CELLTYPER_REGISTER_COMMAND("10-inspect", add_inspect);

}  // namespace celltyper::cli
