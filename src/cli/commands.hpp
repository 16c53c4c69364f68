/// Subcommands of the `celltyper` executable. Each lives in its own file (src/cli/<verb>.cpp)
/// and registers itself with CELLTYPER_REGISTER_COMMAND; main.cpp only dispatches. A command's
/// callback lets CLI11 parse, validates, calls the library and prints.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace celltyper::cli {

/// Shared state of one invocation (set by the root app's global flags).
struct GlobalOptions {
  bool quiet = false;
};

/// Adds one subcommand to the root app.
using CommandFactory = std::function<void(CLI::App& app, const GlobalOptions& global)>;

/// Every registered subcommand, as (order key, factory); main.cpp adds them sorted by key.
std::vector<std::pair<std::string, CommandFactory>>& command_registry();

/// `--own-gene-names`'s help (train, tune, cv; annotate's reference mode points to train's).
/// The help of --label (train, tune, cv, annotate --reference).
inline constexpr const char* kLabelHelp =
    "Cell-type column, obs:COLUMN; references labelled in differently named columns: several, comma-separated "
    "(obs:celltype,obs:bulk_labels), each reference reading the first it has";

inline constexpr const char* kOwnGeneNamesHelp =
    "Genes are the references' var names as written (letter case aside), not the gene table's: for another species whose names the "
    "table half-knows (default: only references it hardly names train so); a query must name its genes the same way; expression "
    "route only";

/// Upper bounds of the shared numeric flags (`--threads`, `--dims`); see `apply_flag_bounds`.
constexpr int kMaxThreads = 1024;
constexpr int kMaxDims = 1 << 16;

/// Attach the bounds of the flags every subcommand shares (one table in cli/usage.cpp:
/// `--threads` 0..1024, `--dims` >= 1, `--memory-limit` 1M..1024T, `inspect --max-cells` >= 0)
/// to every registered subcommand, so that CLI11 checks them and `--help` shows them.
void apply_flag_bounds(CLI::App& app);

/// One line for a command-line usage error (unknown command, unknown flag, bad value), naming
/// the subcommand and where to get help. main() prints it as "celltyper: error: ..." (exit 2).
std::string usage_error_message(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv);

/// The deepest subcommand that was parsed (the root app when none was).
const CLI::App* deepest_parsed(const CLI::App& app);

/// The values of a list flag given repeated or comma-separated (`-r a.h5ad,b.h5ad`): each value
/// split at its commas, except a value that names an existing file or folder whole (a path
/// with a comma in it).
std::vector<std::string> split_path_list(const std::vector<std::string>& values);

/// Registers a subcommand at static-initialisation time.
struct CommandRegistration {
  CommandRegistration(std::string order_key, CommandFactory factory) {
    command_registry().emplace_back(std::move(order_key), std::move(factory));
  }
};

}  // namespace celltyper::cli

/// Register `factory` (a function `void(CLI::App&, const GlobalOptions&)`) under `order_key`
/// ("10-inspect", "20-genes", ...: the order in `celltyper --help`).
#define CELLTYPER_REGISTER_COMMAND(order_key, factory) \
  static const ::celltyper::cli::CommandRegistration celltyper_command_registration_##factory{order_key, factory}
