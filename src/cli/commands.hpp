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
