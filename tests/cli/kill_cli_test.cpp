// Kills at random points of real runs (issue #19): `annotate`, `embed` and `train` on pbmc3k are
// sent SIGINT, SIGTERM or SIGKILL at a seeded random moment between start and the end of an
// uninterrupted run. Whatever the moment: the input is unchanged; the output is either absent or
// complete (the run had renamed it into place before the signal); SIGINT and SIGTERM leave no temporary file; the
// temporary files SIGKILL cannot remove are swept by the next run, which succeeds.
#include "support/test_support.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace celltyper {
namespace {

namespace fs = std::filesystem;

const char* signal_name(int signal_number) {
  return signal_number == SIGINT ? "SIGINT" : signal_number == SIGTERM ? "SIGTERM" : "SIGKILL";
}

/// One command under random kills: `args(out)` runs it writing `out`.
void expect_random_kills_are_harmless(const std::string& what, const std::string& input, const std::string& out_name,
                                      const std::function<std::vector<std::string>(const std::string&)>& args, unsigned seed) {
  test::TempDir dir;
  const std::string tmpdir = dir.file("tmp");
  fs::create_directory(tmpdir);
  const std::string out = dir.file(out_name);
  const std::string input_bytes = test::read_file(input);

  // An uninterrupted run: how long the kills may wait, and the output a finished run writes.
  const auto started = std::chrono::steady_clock::now();
  const auto complete = test::run_cli(args(out));
  const double full_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(complete.exit_code, 0) << what << ": " << complete.err;
  const auto complete_size = fs::file_size(out);
  fs::remove(out);

  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> moment(0.0, 1.1 * full_seconds);
  int killed = 0;
  std::set<std::string> left_by_sigkill;
  for (int round = 0; round < 2; ++round) {
    for (const int signal_number : {SIGINT, SIGTERM, SIGKILL}) {
      const double delay = moment(rng);
      const std::string label = fmt::format("{}: {} after {:.2f} s of a {:.2f} s run", what, signal_name(signal_number), delay, full_seconds);
      const pid_t child = test::spawn_cli(args(out), tmpdir);
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
      kill(child, signal_number);
      int status = 0;
      ASSERT_EQ(waitpid(child, &status, 0), child) << label;
      const bool finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      EXPECT_EQ(test::read_file(input), input_bytes) << label << ": the input changed";
      if (finished) {  // the run was done before the signal: its output is whole
        ASSERT_TRUE(fs::exists(out)) << label;
        EXPECT_EQ(fs::file_size(out), complete_size) << label;
        fs::remove(out);
        continue;
      }
      ++killed;
      EXPECT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0)) << label << ": status " << status;
      // Absent, or whole: a signal after the final rename (the run was ending) leaves the complete file.
      if (fs::exists(out)) {
        EXPECT_EQ(fs::file_size(out), complete_size) << label << ": a partial output was left";
        fs::remove(out);
      }
      // SIGINT and SIGTERM remove their temporaries; SIGKILL's stay until a run completes.
      for (const fs::path& folder : {dir.path(), fs::path(tmpdir)}) {
        for (const auto& name : test::temporaries_in(folder)) {
          if (signal_number == SIGKILL) {
            left_by_sigkill.insert(name);
          } else {
            EXPECT_EQ(left_by_sigkill.count(name), 1u) << label << ": left " << name;
          }
        }
      }
    }
  }
  // The next run succeeds and removes whatever the SIGKILLed runs left.
  const auto again = test::run_cli(args(out));
  ASSERT_EQ(again.exit_code, 0) << what << ": " << again.err;
  EXPECT_EQ(fs::file_size(out), complete_size);
  EXPECT_TRUE(test::temporaries_in(dir.path()).empty()) << what << ": temporaries of killed runs survived the next run";
  std::printf("%s: %d of 6 runs killed before they finished\n", what.c_str(), killed);
}

TEST(KillCli, RandomKillsOfAnnotateEmbedAndTrainLeaveNoPartialOutput) {
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  test::TempDir models;
  const std::string model = models.file("model.h5");
  const auto trained = test::run_cli({"train", "-r", pbmc3k, "-l", "obs:celltype", "-o", model, "-q"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;

  expect_random_kills_are_harmless("train", pbmc3k, "model.h5",
                                   [&](const std::string& out) {
                                     return std::vector<std::string>{"train", "-r", pbmc3k, "-l", "obs:celltype", "-o", out, "-q"};
                                   },
                                   11);
  expect_random_kills_are_harmless("annotate", pbmc3k, "annotated.h5ad",
                                   [&](const std::string& out) {
                                     return std::vector<std::string>{"annotate", "-m", model, "-i", pbmc3k, "-o", out, "-q"};
                                   },
                                   12);
  expect_random_kills_are_harmless("embed", pbmc3k, "cells.h5ad",
                                   [&](const std::string& out) {
                                     return std::vector<std::string>{"embed", "-i", pbmc3k, "-o", out, "-q"};
                                   },
                                   13);
}

}  // namespace
}  // namespace celltyper
