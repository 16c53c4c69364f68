// A gzip-chunked dense X read in scattered runs of rows (annotate's scan for the samples of a
// joined file reads such runs): HDF5 1.10 kept a decoded chunk in each slot of a dataset's chunk
// cache whatever the cache's byte limit (with 12,421 slots a 50,000-cell file held 2 GB); the
// readers size the slots to the 32 MB cache.
#include <celltyper/dataset.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>

#include <fstream>
#include <unistd.h>

namespace celltyper {
namespace {

std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0;
  std::int64_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::int64_t>(::sysconf(_SC_PAGESIZE));
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;  // (its quarantine keeps freed memory resident: RSS says nothing)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

TEST(DenseChunkCache, ScatteredRowsOfAGzipChunkedDenseMatrixKeepTheCacheBounded) {
  if (kAddressSanitizer) GTEST_SKIP() << "resident memory is not the program's under AddressSanitizer (freed blocks are quarantined)";
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  test::TempDir dir;
  const std::string path = dir.file("dense_gzip.h5ad");
  // 40,000 cells x 1,000 genes (160 MB decoded), a sparse pattern of small counts, written as
  // anndata writes a dense X with compression="gzip" (h5py's chunk guess: ~150 KB chunks).
  const auto made = test::run_program(
      {test::system_python(), "-c",
       fmt::format("import anndata, numpy as np, h5py\n"
                   "i = np.arange(40000)[:, None]; j = np.arange(1000)[None, :]\n"
                   "x = (((i * 31 + j * 17) % 23 == 0) * (1 + (i + j) % 4)).astype(np.float32)\n"
                   "anndata.AnnData(x).write_h5ad('{0}', compression='gzip')\n"
                   "c = h5py.File('{0}')['X'].chunks\n"
                   "assert c is not None and c[0] < 40000, c\n",
                   path)});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto dataset = open_dataset(path);
  const auto reader = dataset->open_matrix("X");
  CsrBlock block;
  reader->read_rows(0, 1, block);
  const std::int64_t before = resident_bytes();
  double sum = 0;
  for (std::int64_t row = 0; row < 40000; row += 37) {  // every chunk decoded, several times
    reader->read_rows(row, 1, block);
    for (const float value : block.values) sum += value;
  }
  const std::int64_t grown = resident_bytes() - before;
  std::printf("resident memory grew by %.1f MB reading 1,082 scattered rows (sum %.0f)\n", static_cast<double>(grown) / (1 << 20), sum);
  EXPECT_GT(sum, 0);
  EXPECT_LT(grown, std::int64_t{96} << 20);  // the 32 MB cache and its slots' chunks, not all 160 MB
}

}  // namespace
}  // namespace celltyper
