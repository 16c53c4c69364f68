// Corrupt HDF5 metadata must never kill celltyper with a signal (issue #19, item 1): 40 one-byte
// mutants of pbmc3k's metadata (tests/data/make_metadata_mutants.py, fixed seed) and the byte of
// the report, read by `inspect` and `train`: exit 0, 2 or 3, one error line naming the
// file, no temporary file left, the input unchanged, peak memory under 500 MB. The same suite runs
// under AddressSanitizer + UBSan (scripts/test.sh --sanitize -R CrashGuard, with
// ASAN_OPTIONS=allow_user_segv_handler=1 so that the crash guard, not ASan, answers a fault inside
// libhdf5).
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace celltyper {
namespace {

namespace fs = std::filesystem;

int error_lines(const std::string& err) {
  int n = 0;
  std::size_t at = 0;
  while ((at = err.find("celltyper: error: ", at)) != std::string::npos) {
    ++n;
    ++at;
  }
  return n;
}

// The memory bound is the normal build's; under AddressSanitizer (scripts/test.sh --sanitize) the
// allocator's quarantine (256 MB) and shadow memory add to every run's peak (measured 520-740 MB
// for these runs), so it is scaled: that build checks the signals and memory errors.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kPeakRssLimitKb = 3 * 500 * 1024;
#else
constexpr long kPeakRssLimitKb = 500 * 1024;
#endif

void expect_clean_outcome(const test::CommandResult& result, const std::string& file, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_TRUE(result.exit_code == 0 || result.exit_code == 2 || result.exit_code == 3) << "exit " << result.exit_code << "\n" << result.err;
  EXPECT_EQ(result.err.find("internal error"), std::string::npos) << result.err;
  if (result.exit_code != 0) {
    EXPECT_EQ(error_lines(result.err), 1) << result.err;
    EXPECT_NE(result.err.find(fs::path(file).filename().string()), std::string::npos) << result.err;
  }
  EXPECT_LT(result.peak_rss_kb, kPeakRssLimitKb) << "peak RSS " << result.peak_rss_kb / 1024 << " MB";
}

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(CrashGuard, CorruptMetadataNeverEndsInASignal) {
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const test::TempDir dir;
  const std::string mutants = dir.file("mutants");
  const auto made = test::run_program({test::system_python(), test::fixture("make_metadata_mutants.py"), pbmc3k, mutants, "40", "19"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  // The report: one byte of a global heap makes libhdf5 1.10 memcpy a file-controlled length.
  {
    std::ifstream in(pbmc3k, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 5795529U);
    bytes[5795529] = static_cast<char>(0xf9);
    std::ofstream(mutants + "/issue_heap.h5ad", std::ios::binary) << bytes;
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(mutants)) {
    if (entry.path().extension() == ".h5ad") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 41U);
  int refused = 0;
  for (const auto& file : files) {
    const std::string before = contents(file);
    const auto inspected = test::run_cli({"inspect", file});
    expect_clean_outcome(inspected, file, "inspect " + file);
    const std::string out = dir.file("out");
    fs::create_directories(out);
    const auto trained = test::run_cli({"train", "--reference", file, "--label", "obs:celltype", "--classifier", "knn", "--reference-sample",
                                        "0", "--validation-fraction", "0", "--threads", "1", "--out", out + "/model.h5"});
    expect_clean_outcome(trained, file, "train " + file);
    refused += inspected.exit_code != 0 ? 1 : 0;
    for (const auto& entry : fs::directory_iterator(out)) {
      EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << "left behind: " << entry.path();
    }
    fs::remove_all(out);
    EXPECT_TRUE(contents(file) == before) << "input changed: " << file;
  }
  EXPECT_GT(refused, 0);  // some mutants are bad input, said so
}

}  // namespace
}  // namespace celltyper

namespace celltyper {
namespace {

// A chunk index recording 0xFFFFFFF0 bytes per chunk of X/data (tests/data/make_chunk_size_mutant.py)
// made every command allocate gigabytes before failing: sizes from the file are now checked against
// the file's size first.
TEST(CrashGuard, ChunkSizesBeyondTheFileAreRefusedBeforeAnyAllocation) {
  const test::TempDir dir;
  const std::string mutant = dir.file("chunk_sizes.h5ad");
  const auto made = test::run_program({test::system_python(), test::fixture("make_chunk_size_mutant.py"),
                                       test::fixture("h5ad/csr_float32_gzip.h5ad"), mutant});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  for (const std::vector<std::string>& command : {std::vector<std::string>{"inspect", mutant},
                                                  std::vector<std::string>{"inspect", mutant, "--json"}}) {
    std::vector<std::string> argv{"/usr/bin/time", "-f", "peak_kb %M", test::cli_path()};
    argv.insert(argv.end(), command.begin(), command.end());
    const auto result = test::run_program(argv);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_NE(result.err.find("celltyper: error: " + mutant + ":/X/data: chunk 0 claims 4294967280 bytes"), std::string::npos) << result.err;
    const auto at = result.err.find("peak_kb ");
    ASSERT_NE(at, std::string::npos) << result.err;
    EXPECT_LT(std::stol(result.err.substr(at + 8)), 500 * 1024) << result.err;
  }
}

}  // namespace
}  // namespace celltyper
