/// Helpers shared by celltyper's tests: where test data lives, running the CLI, temp dirs.
#pragma once

#include <celltyper/dataset.hpp>
#include <celltyper/gene_table.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace celltyper::test {

/// tests/data/<relative> (tiny fixtures committed with their generator scripts).
std::string fixture(const std::string& relative);

/// A gene table of `n` made-up genes: Entrez ids first_entrez, first_entrez + 1, ..., symbols
/// PREFIX1..PREFIXn (generated datasets of the library-level tests).
GeneTable numbered_gene_table(int n, std::int64_t first_entrez, const std::string& prefix);

/// ../shared/data/<relative>; empty string when the shared data folder is absent.
std::string shared_data(const std::string& relative);

/// Skip the current test with a message when ../shared/data/<relative> is absent.
#define CELLTYPER_REQUIRE_SHARED(var, relative)                                       \
  const std::string var = ::celltyper::test::shared_data(relative);                   \
  if (var.empty()) GTEST_SKIP() << "../shared/data/" << (relative) << " is absent"

/// Outcome of a subprocess.
struct CommandResult {
  int exit_code = -1;
  std::string out;  ///< standard output
  std::string err;  ///< standard error
  long peak_rss_kb = 0;  ///< the process's peak resident set size (getrusage ru_maxrss)
};

/// Run the built `celltyper` binary with `args` (each passed as one argument, no shell).
CommandResult run_cli(const std::vector<std::string>& args);

/// Run any program with `args` (argv[0] = program, searched on PATH).
CommandResult run_program(const std::vector<std::string>& argv);

/// A fresh directory under the system temp folder, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// The celltyper binary the CLI tests run: $CELLTYPER_TEST_CLI when set (e.g. a sanitizer build's
/// CLI driven by this test binary), else the one built beside the tests.
std::string cli_path();

/// X of `dataset`, cells x genes, as dense rows (for small test matrices).
std::vector<std::vector<double>> dense_x(const Dataset& dataset);

/// The bytes of a file ("" when it cannot be read).
std::string read_file(const std::string& path);

/// The labels of a celltyper --csv file (its second column), in row order.
std::vector<std::string> csv_labels(const std::string& path);

/// Names in `dir` that look like a temporary file of celltyper ("*.tmp-*").
std::vector<std::string> temporaries_in(const std::filesystem::path& dir);

/// Start the built `celltyper` with `args` without waiting (stdin, stdout and stderr on
/// /dev/null; TMPDIR set to `tmpdir` when given); returns its pid, -1 when it cannot start.
int spawn_cli(const std::vector<std::string>& args, const std::string& tmpdir = "");

/// A gene store of seeded standard-normal vectors (`dims` wide) for the first `n_genes` genes of
/// ../shared/data's human_genes.tsv (every gene when 0): a fast stand-in for a real store. Written
/// in `dir` under a name made of its arguments; returns its path.
std::string random_gene_store(const TempDir& dir, int dims, unsigned seed = 11, std::size_t n_genes = 0);

/// Path of the interpreter that has Debian's python3-anndata / numpy / scipy.
inline const char* system_python() { return "/usr/bin/python3"; }

}  // namespace celltyper::test
