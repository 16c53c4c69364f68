// `celltyper catalog FILES|GLOBS|URLS --out DIR`: the corpus metadata catalogue (Parquet via
// DuckDB); `celltyper query DIR "SQL"`: SQL over it. See docs/catalog.md.
#include <celltyper/catalog.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/scale_out.hpp>

#include "cli/commands.hpp"
#include "cli/parallel.hpp"
#include "cli/progress.hpp"
#include "text_lists.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>
#include <set>
#include <sstream>

namespace celltyper::cli {

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const auto first = item.find_first_not_of(' ');
    const auto last = item.find_last_not_of(' ');
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
  }
  return out;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} {}", bytes, units[unit]) : fmt::format("{:.1f} {}", bytes, units[unit]);
}

}  // namespace

void add_catalog(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> inputs;
    std::string out;
    std::string obs;
    std::string memory_limit = "256M";
    std::string block_size;
    std::string cache_size;
    bool no_resume = false;
    bool fail_on_error = false;
    CatalogOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("catalog", "Catalogue many h5ad files (local, http(s)://, s3://) into Parquet tables for SQL");
  command->add_option("inputs", args->inputs, "h5ad files, directories (every *.h5ad below), globs ('data/**/*.h5ad') or URLs")->required();
  command->add_option("--out", args->out, "Catalogue directory (created; parts of earlier runs are kept and resumed; files a directory or glob input no longer holds are removed)")->required();
  command->add_option("--obs", args->obs, "obs columns whose categories are counted, comma-separated (default: every categorical column)");
  command->add_flag("--qc", args->options.qc, "Also record per-cell total counts and genes detected (reads the matrix)");
  command->add_option("--qc-matrix", args->options.qc_matrix, "Matrix for --qc: auto (layers/counts, else raw/X, else X), X, raw/X or layers/NAME")
      ->capture_default_str();
  command->add_option("--max-categories", args->options.max_categories, "Columns with more distinct values are not counted")->capture_default_str();
  command->add_option("--threads", args->options.num_threads, "Files processed at once (default: all cores)");
  command->add_option("--memory-limit", args->memory_limit, "Memory for matrix blocks per file with --qc, e.g. 256M")->capture_default_str();
  command->add_option("--block-size", args->block_size, "Remote reads: bytes per cached block (default 64K, or $CELLTYPER_REMOTE_BLOCK_BYTES)");
  command->add_option("--cache-size", args->cache_size, "Remote reads: block cache per file (default 64M, or $CELLTYPER_REMOTE_CACHE_BYTES)");
  command->add_flag("--no-resume", args->no_resume, "Catalogue every file again, even those already in the catalogue");
  command->add_flag("--fail-on-error", args->fail_on_error, "Exit non-zero when a file could not be catalogued (after the whole run)");
  command->callback([args, &global] {
    args->options.obs_columns = split_commas(args->obs);
    args->options.memory_limit_bytes = parse_bytes(args->memory_limit);
    args->options.resume = !args->no_resume;
    if (!args->block_size.empty() || !args->cache_size.empty()) {
      RemoteOptions remote = RemoteOptions::from_environment();
      if (!args->block_size.empty()) remote.block_bytes = parse_bytes(args->block_size);
      if (!args->cache_size.empty()) remote.cache_bytes = parse_bytes(args->cache_size);
      if (remote.block_bytes < 512) throw InputError("--block-size must be at least 512 bytes");
      args->options.remote = remote;
    }
    std::vector<std::string> unmatched;  // globs and directories without a file: said, the rest catalogued
    const std::vector<std::string> paths = expand_catalog_inputs(args->inputs, &unmatched);
    if (world().is_root()) {
      for (const auto& message : unmatched) fmt::print(stderr, "warning: {} (left out; the other inputs are catalogued)\n", message);
    }
    // Under mpirun every process catalogues a share of the files into the same directory and the
    // root reports (scale_out.hpp); the progress bar shows the root's share.
    Communicator& processes = world();
    const bool show = progress_enabled(global.quiet) && processes.is_root();
    ProgressBar bar(processes.distributed() ? fmt::format("catalog (rank 0 of {})", processes.size()) : std::string("catalog"), "files",
                    0, show);
    std::set<std::string> told;  // failures said as they happened (the root's own files)
    args->options.on_file_done = [&bar, &global, &processes, &told, show](const CatalogFileOutcome& outcome, std::size_t done, std::size_t total) {
      if (!outcome.ok && !global.quiet && processes.is_root()) {
        fmt::print(stderr, "{}celltyper: skipped {}\n", show ? "\n" : "", message_about_once(outcome.path, outcome.error));
        told.insert(outcome.path);
      }
      bar.set_total(static_cast<std::int64_t>(total));
      bar.update(static_cast<std::int64_t>(done));
    };
    const CatalogResult result = build_catalog_distributed(paths, args->out, args->options, processes);
    bar.finish();
    if (!processes.is_root()) return;
    const std::size_t read = result.n_ok + result.n_failed;  // (a rate of files already there says nothing)
    fmt::print("catalogued {} file{} into {} in {:.2f} s ({}{}): {} new, {}{} already there, {} failed\n", paths.size(), paths.size() == 1 ? "" : "s",
               args->out, result.seconds,
               read > 0 && result.seconds > 0 ? fmt::format("{:.1f} files/s, ", static_cast<double>(read) / result.seconds) : std::string(),
               processes.description(), result.n_ok - result.n_read_again,
               result.n_read_again > 0 ? fmt::format("{} read again (modified since, or asked with other --obs / --qc), ", result.n_read_again)
                                       : std::string(),
               result.n_resumed, result.n_failed);
    // A directory or glob catalogued again: files it held before and no longer does leave the catalogue.
    const std::vector<std::string> dropped = drop_gone_files(args->out, args->inputs);
    if (!dropped.empty()) {
      fmt::print("removed {} file{} no longer there from the catalogue ({})\n", dropped.size(), dropped.size() == 1 ? "" : "s",
                 detail::some_of(dropped, 3));
    }
    if (result.remote.requests > 0) {
      fmt::print("remote: {} requests ({} retries), {} fetched for {} of files ({:.1f}%)\n", result.remote.requests, result.remote.retries,
                 human_bytes(static_cast<double>(result.remote.bytes_fetched)), human_bytes(static_cast<double>(result.file_bytes)),
                 result.file_bytes > 0 ? 100.0 * static_cast<double>(result.remote.bytes_fetched) / static_cast<double>(result.file_bytes) : 0.0);
    }
    if (result.n_failed > 0) {
      bool all_bad_input = true;  // (then --fail-on-error exits 2, as for one bad file)
      for (const auto& file : result.files) {
        if (file.ok || file.resumed) continue;
        all_bad_input = all_bad_input && file.error_code == 2;
        if (told.count(file.path) == 0) fmt::print(stderr, "celltyper: skipped {}\n", message_about_once(file.path, file.error));  // (other processes' files)
      }
      const std::string summary = fmt::format("{} of {} files could not be catalogued (recorded with status 'error'; run again to retry them)",
                                              result.n_failed, paths.size());
      if (args->fail_on_error && all_bad_input) throw InputError(summary);
      if (args->fail_on_error) throw IoError(summary);
      fmt::print(stderr, "warning: {}\n", summary);
    }
  });
}

void add_query(CLI::App& app, const GlobalOptions&) {
  struct Args {
    std::string dir;
    std::string sql;
    bool csv = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("query", "Run SQL (DuckDB) over a catalogue: tables files, obs_categories, cell_qc");
  command->add_option("dir", args->dir, "Catalogue directory written by `celltyper catalog`")->required();
  command->add_option("sql", args->sql, "SQL, e.g. \"SELECT file, category, n_cells FROM obs_categories WHERE \\\"column\\\" = 'cell_type'\"")->required();
  auto* csv = command->add_flag("--csv", args->csv, "Print CSV");
  command->add_flag("--json", args->json, "Print a JSON array of objects")->excludes(csv);
  command->callback([args] {
    const QueryResult result = query_catalog(args->dir, args->sql);
    if (args->csv) {
      fmt::print("{}", format_query_csv(result));
    } else if (args->json) {
      fmt::print("{}", format_query_json(result));
    } else {
      fmt::print("{}", format_query_table(result));
    }
  });
}

CELLTYPER_REGISTER_COMMAND("70-catalog", add_catalog);
CELLTYPER_REGISTER_COMMAND("71-query", add_query);

}  // namespace celltyper::cli
