// celltyper command-line front end: parses arguments, dispatches to one subcommand, and maps
// errors to one line on stderr and an exit code (see celltyper/error.hpp).
#include <celltyper/crash_guard.hpp>
#include <celltyper/error.hpp>

#include "cli/commands.hpp"
#include "cli/parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>

namespace celltyper::cli {
/// CLI11's help names a negatable flag "--calibrate,--no-calibrate{false}", which reads as "off
/// by default"; the "{false}" only says what the negation sets, and the description says the default.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* option, bool positional) const override {
    std::string name = CLI::Formatter::make_option_name(option, positional);
    for (auto at = name.find("{false}"); at != std::string::npos; at = name.find("{false}")) name.erase(at, 7);
    return name;
  }
};

std::vector<std::pair<std::string, CommandFactory>>& command_registry() {
  static std::vector<std::pair<std::string, CommandFactory>> registry;
  return registry;
}
}  // namespace celltyper::cli

int main(int argc, char** argv) {
  celltyper::skip_hdf5_exit_cleanup();  // (first: before any HDF5 call)
  // Under AddressSanitizer, ASan keeps its own SEGV report (more detail) unless ASAN_OPTIONS has
  // allow_user_segv_handler=1, as the sanitizer run of the corrupt-metadata suite sets.
  celltyper::install_crash_guard();
  // Under mpirun, a command without a multi-process mode runs once (the first process), not once
  // per process writing the same outputs.
  if (celltyper::cli::redundant_process_under_mpi(argc, argv)) return 0;
  CLI::App app{"celltyper: cell type annotation for single-cell RNA-seq (GenePT-style gene embeddings)", "celltyper"};
  app.set_version_flag("--version", std::string("celltyper ") + CELLTYPER_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global flags (--quiet) may follow the subcommand
  app.formatter(std::make_shared<celltyper::cli::HelpFormatter>());  // (before the subcommands: they copy it)
  celltyper::cli::GlobalOptions global;
  app.add_flag("-q,--quiet", global.quiet, "No progress or summary output on stderr (warnings still print)");
  auto& registry = celltyper::cli::command_registry();
  std::sort(registry.begin(), registry.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [key, factory] : registry) factory(app, global);
  celltyper::cli::apply_flag_bounds(app);
  int code = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& done) {
    code = app.exit(done);  // --help, --version
  } catch (const CLI::ParseError& error) {
    // Usage errors are bad input: one line, exit code 2 (README, "Exit codes").
    std::fflush(stdout);
    fmt::print(stderr, "celltyper: error: {}\n", celltyper::cli::usage_error_message(app, error, argc, argv));
    code = 2;
  } catch (const celltyper::Error& error) {
    std::fflush(stdout);
    fmt::print(stderr, "celltyper: error: {}\n", error.what());
    code = error.exit_code();
  } catch (const std::bad_alloc&) {
    // (--memory-limit named only where the command has it)
    const bool has_limit = celltyper::cli::deepest_parsed(app)->get_option_no_throw("--memory-limit") != nullptr;
    fmt::print(stderr, "celltyper: error: out of memory ({}use a machine with more RAM{})\n", has_limit ? "lower --memory-limit or " : "",
               has_limit ? "" : ", or fewer cells");
    code = 5;
  } catch (const std::exception& error) {
    fmt::print(stderr, "celltyper: internal error: {}\n", error.what());
    code = 70;
  }
  // Under mpirun: finalise MPI, or abort every rank when this one failed.
  return celltyper::cli::finish_processes(code);
}
