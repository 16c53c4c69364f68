// `celltyper select`: choose fragments (row ranges) of a corpus to cover every cell type within
// a cell budget, by ILP (COIN-OR CBC) with a greedy comparison; writes selection.json.
#include <celltyper/catalog.hpp>
#include <celltyper/error.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/selection.hpp>

#include "cli/commands.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace celltyper::cli {

namespace {

/// Files of a catalogue (`celltyper catalog`) that were read successfully, have the label column
/// and satisfy `where`, in path order; says how many.
std::vector<std::string> catalog_paths(const std::string& dir, const std::string& label, const std::string& where, bool quiet) {
  const CatalogedFiles files = catalog_files_with_column(dir, label, where);
  if (!quiet) {
    fmt::print(stderr, "catalogue {}: {} file{}{}, {} with obs column '{}'\n", dir, files.n_ok, files.n_ok == 1 ? "" : "s",
               where.empty() ? "" : fmt::format(" where {}", where), files.paths.size(), label);
  }
  // The catalogue keeps the paths `catalog` was given: relative ones name files from the
  // directory it ran in. None found from here: say so (instead of one skip per file).
  const bool all_missing_relative = std::all_of(files.paths.begin(), files.paths.end(), [](const std::string& path) {
    std::error_code error;
    return path.find("://") == std::string::npos && std::filesystem::path(path).is_relative() && !std::filesystem::exists(path, error);
  });
  if (all_missing_relative) {
    std::error_code error;
    throw InputError(fmt::format("select: the catalogue {} lists its files by the relative paths `celltyper catalog` was given (e.g. {}), "
                                 "none of which exists from {}: run select from the directory catalog ran in, or catalogue absolute paths",
                                 dir, files.paths.front(), std::filesystem::current_path(error).string()));
  }
  return files.paths;
}

}  // namespace

void add_select(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> files;
    std::string files_from;
    std::string catalog;
    std::string where;
    std::string out;
    std::string weighting = "balanced";
    bool greedy_only = false;
    bool json = false;
    FragmentOptions fragments;
    SelectOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand(
      "select", "Choose file fragments (row ranges) covering every cell type within a cell budget (ILP with COIN-OR CBC; greedy compared)");
  command->add_option("files", args->files, "Input .h5ad files");
  command->add_option("--files-from", args->files_from, "Text file listing input files, one per line ('#' comments; relative to the list)");
  command->add_option("--catalog", args->catalog,
                      "Catalogue directory (`celltyper catalog`): its files that were read successfully and have the label column");
  command->add_option("--where", args->where, "With --catalog: SQL condition on the files table, e.g. \"n_obs >= 1000\"");
  command->add_option("-l,--label", args->fragments.label_column, "obs column with the cell types (read alone: no matrix is read)")->required();
  command->add_option("--fragment-rows", args->fragments.fragment_rows, "Rows per fragment (N): fragments are rows [k N, (k+1) N) of a file")
      ->required()
      ->check(CLI::PositiveNumber);
  command->add_option("--budget-cells", args->options.budget_cells, "Cell budget (B): total rows of the selected fragments at most")
      ->required()
      ->check(CLI::PositiveNumber);
  command->add_option("--min-per-class", args->options.min_per_class,
                      "Cells wanted per class at least (soft: the total shortfall is minimised first)")
      ->capture_default_str();
  command->add_option("--max-per-class", args->options.max_per_class, "Cells counted per class at most (0 = all available)")->capture_default_str();
  command->add_option("--weighting", args->weighting,
                      "balanced: each class counts its covered share of its cap (rare types weigh as much as abundant ones); "
                      "cells: covered cells")
      ->check(CLI::IsMember({"balanced", "cells"}))
      ->capture_default_str();
  command->add_option("--time-limit", args->options.time_limit_seconds, "CBC time limit in seconds")->check(CLI::PositiveNumber)->capture_default_str();
  command->add_option("--gap", args->options.relative_gap, "CBC stops at this relative gap between solution and bound")->capture_default_str();
  command->add_flag("--greedy-only", args->greedy_only, "Skip the ILP: greedy selection only");
  command->add_flag("--solver-log", args->options.solver_log, "Show CBC's log on stdout");
  command->add_option("-o,--out", args->out, "selection.json to write")->required();
  command->add_flag("--json", args->json, "Print the summary (selection.json without the fragment list) on stdout");
  command->callback([args, &global] {
    std::vector<std::string> paths = args->files;
    if (!args->files_from.empty()) {
      const std::vector<std::string> listed = read_path_list(args->files_from);
      paths.insert(paths.end(), listed.begin(), listed.end());
    }
    if (!args->where.empty() && args->catalog.empty()) throw InputError("select: --where needs --catalog");
    if (!args->catalog.empty()) {
      const std::vector<std::string> catalogued = catalog_paths(args->catalog, args->fragments.label_column, args->where, global.quiet);
      paths.insert(paths.end(), catalogued.begin(), catalogued.end());
    }
    if (paths.empty()) throw InputError("select: no input files (pass FILES..., --files-from LIST or --catalog DIR)");
    std::vector<std::string> inputs = paths;
    inputs.push_back(args->files_from);
    check_outputs({args->out}, inputs);
    args->options.weighting = args->weighting == "cells" ? CoverageWeighting::kCells : CoverageWeighting::kBalanced;
    args->options.use_ilp = !args->greedy_only;
    (void)selection_model(FragmentTable{}, args->options);  // validate the options before the label pass
    ProgressBar bar("labels", "files", static_cast<std::int64_t>(paths.size()), progress_enabled(global.quiet));
    args->fragments.progress = [&bar](std::int64_t done, std::int64_t) { bar.update(done); };
    const FragmentTable table = build_fragment_table(paths, args->fragments);
    bar.finish();
    const SelectionResult result = select_fragments(table, args->options);
    nlohmann::json document = selection_to_json(table, args->options, result);
    write_output_file(args->out, document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    if (args->json) {
      document.erase("fragments");
      document.erase("files");
      fmt::print("{}\n", document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    for (const auto& failure : table.failures) fmt::print(stderr, "warning: skipped {}\n", failure);  // (under --quiet too)
    for (const auto& warning : table.warnings) fmt::print(stderr, "warning: {}\n", warning);
    {  // classes the selection leaves without cells, or short of --min-per-class
      const Selection& best = result.best();
      const std::vector<std::int64_t> available = table.available();
      std::vector<std::string> empty;
      std::vector<std::string> short_of;
      std::size_t n_empty = 0;
      std::size_t n_short = 0;
      for (std::size_t c = 0; c < table.classes.size(); ++c) {
        const std::int64_t covered = c < best.covered.size() ? best.covered[c] : 0;
        if (covered == 0) {
          if (++n_empty <= 5) empty.push_back(fmt::format("'{}' ({} available)", table.classes[c], available[c]));
        } else if (c < result.minimums.size() && covered < result.minimums[c]) {
          if (++n_short <= 5) short_of.push_back(fmt::format("'{}' {} of {}", table.classes[c], covered, result.minimums[c]));
        }
      }
      if (n_empty > 0) {
        fmt::print(stderr, "warning: {} of {} classes get no cell in the selection: {}{} (a larger --budget-cells or a smaller --fragment-rows "
                           "reaches them)\n",
                   n_empty, table.classes.size(), fmt::join(empty, ", "), n_empty > empty.size() ? ", ..." : "");
      }
      if (n_short > 0) {
        fmt::print(stderr, "warning: {} classes get fewer cells than --min-per-class {} (or all they have): {}{}\n", n_short,
                   args->options.min_per_class, fmt::join(short_of, ", "), n_short > short_of.size() ? ", ..." : "");
      }
    }
    if (!global.quiet) {
      const Selection& best = result.best();
      fmt::print(stderr, "selected {} of {} fragments ({} cells of budget {}) from {} files, {} classes -> {}\n", best.fragments.size(),
                 table.fragments.size(), best.n_cells, args->options.budget_cells, table.files.size(), table.classes.size(), args->out);
      fmt::print(stderr, "  greedy: objective {:.6g} (shortfall {}) in {:.3f} s\n", result.greedy.objective, result.greedy.shortfall,
                 result.greedy.seconds);
      if (args->options.use_ilp) {
        fmt::print(stderr, "  CBC: {}, objective {:.6g}, bound {:.6g}, gap {:.3g}%, {} nodes in {:.2f} s; chosen: {}\n", result.stats.status,
                   result.ilp.objective, result.stats.best_bound, 100 * result.stats.gap, result.stats.nodes, result.stats.seconds, result.chosen);
      }
    }
  });
}

CELLTYPER_REGISTER_COMMAND("35-select", add_select);

}  // namespace celltyper::cli
