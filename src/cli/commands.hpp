/// Subcommands of the `celltyper` executable. Each lives in its own file and registers itself
/// on the root app; its callback parses nothing itself (CLI11 does), calls the library and prints.
#pragma once

#include <CLI/CLI.hpp>

namespace celltyper::cli {

/// Shared state of one invocation (set by the root app's global flags).
struct GlobalOptions {
  bool quiet = false;
};

void add_inspect(CLI::App& app, const GlobalOptions& global);

}  // namespace celltyper::cli
