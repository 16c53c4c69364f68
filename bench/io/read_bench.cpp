// Time a full streaming read of a matrix (every block decoded and its values summed, so the
// data is really touched) or of obs only, and report wall time, MB/s and peak RSS as JSON.
//   read_bench FILE.h5ad [x|obs] [--memory-limit BYTES]
#include <celltyper/dataset.hpp>
#include <celltyper/h5ad.hpp>

#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: read_bench FILE.h5ad x|obs [--memory-limit BYTES]\n");
    return 2;
  }
  const std::string path = argv[1];
  const std::string what = argv[2];
  std::size_t limit = celltyper::BlockStreamOptions{}.memory_limit_bytes;
  if (argc >= 5 && std::string(argv[3]) == "--memory-limit") limit = std::strtoull(argv[4], nullptr, 10);
  const auto start = std::chrono::steady_clock::now();
  celltyper::H5adFile file(path);
  double checksum = 0;
  std::int64_t bytes = 0;
  std::size_t blocks = 0;
  if (what == "obs") {
    const auto obs = file.read_obs();
    checksum = static_cast<double>(obs.n_rows());
  } else {
    auto reader = file.open_matrix("X");
    bytes = file.matrix_info("X").nnz * 8;  // decoded float32 values + int32 indices
    celltyper::for_each_block(*reader, {limit, true}, [&](const celltyper::CsrBlock& block) {
      ++blocks;
      double sum = 0;
      for (const float v : block.values) sum += v;
      checksum += sum;
    });
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  fmt::print("{{\"tool\": \"celltyper\", \"what\": \"{}\", \"seconds\": {:.4f}, \"decoded_mb_per_s\": {:.1f}, \"peak_rss_mb\": {:.1f}, "
             "\"blocks\": {}, \"memory_limit_mb\": {:.0f}, \"checksum\": {:.6e}}}\n",
             what, seconds, bytes / 1e6 / seconds, usage.ru_maxrss / 1024.0, blocks, limit / 1048576.0, checksum);
  return 0;
}
