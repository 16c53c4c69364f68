// Cell-embedding benchmark driver (see bench/embed/run.py, which runs SciPy and PyTorch on the
// same data in the same script). Three modes:
//   embed_bench kernel FILE.h5ad DIMS THREADS   matrix already in memory: normalise + embed + L2
//   embed_bench stream FILE.h5ad DIMS THREADS   end to end from disk (streamed, default memory cap)
//   embed_bench peak THREADS                    the machine's measured FP32 FMA peak (GFLOP/s):
//                                               independent register-resident FMA chains per thread
// Gene vectors: seeded random unit vectors for every gene of the table (speed does not depend
// on their values). Prints one JSON line: cells/s, effective GFLOP/s (2 * nnz * dims / s), peak RSS.
#include <celltyper/cell_embedder.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/gene_table.hpp>

#include <fmt/format.h>
#include <immintrin.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

/// FP32 GFLOP/s of `threads` threads each running 16 independent FMA chains (enough to cover the
/// FMA latency x throughput of current cores) on the widest vectors the build targets.
double fma_peak_gflops(int threads) {
#if defined(__AVX512F__)
  using Vector = __m512;
  constexpr int kLanes = 16;
  const auto fma = [](Vector a, Vector b, Vector c) { return _mm512_fmadd_ps(a, b, c); };
  const auto splat = [](float x) { return _mm512_set1_ps(x); };
  const auto sum = [](Vector v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    float total = 0;
    for (const float x : lanes) total += x;
    return total;
  };
#elif defined(__FMA__)
  using Vector = __m256;
  constexpr int kLanes = 8;
  const auto fma = [](Vector a, Vector b, Vector c) { return _mm256_fmadd_ps(a, b, c); };
  const auto splat = [](float x) { return _mm256_set1_ps(x); };
  const auto sum = [](Vector v) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    float total = 0;
    for (const float x : lanes) total += x;
    return total;
  };
#else
  return 0;  // no FMA instructions targeted: no peak to report
#endif
#if defined(__AVX512F__) || defined(__FMA__)
  constexpr int kChains = 16;
  constexpr std::int64_t kIterations = 200'000'000 / kChains;
  std::vector<double> sink(static_cast<std::size_t>(threads));
  const auto work = [&](int t) {
    Vector acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = splat(1.0f + 0.001f * static_cast<float>(c + t));
    const Vector a = splat(0.999999f);
    const Vector b = splat(1e-7f);
    for (std::int64_t i = 0; i < kIterations; ++i) {
      for (auto& x : acc) x = fma(x, a, b);
    }
    float total = 0;
    for (const auto& x : acc) total += sum(x);
    sink[static_cast<std::size_t>(t)] = total;
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work, t);
  for (auto& thread : pool) thread.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (sink[0] == 12345.0) fmt::print(stderr, "unlikely\n");  // keeps the chains alive
  return 2.0 * kLanes * kChains * static_cast<double>(kIterations) * threads / seconds / 1e9;
#endif
}

/// Counts but keeps nothing: measures the pipeline, not the output format.
class DiscardSink final : public celltyper::EmbeddingSink {
 public:
  void begin(std::int64_t, int) override {}
  void write(std::int64_t, std::int64_t n, const float* values, const celltyper::CellEmbedStats&) override {
    rows += n;
    checksum += values[0];
  }
  void finish(const nlohmann::json&) override {}
  std::int64_t rows = 0;
  double checksum = 0;
};

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "peak") {
    const int threads = std::max(1, std::atoi(argv[2]));
    std::vector<double> runs;
    for (int r = 0; r < 3; ++r) runs.push_back(fma_peak_gflops(threads));
    std::sort(runs.begin(), runs.end());
    fmt::print("{{\"tool\": \"fma-peak\", \"threads\": {}, \"gflops\": {:.1f}, \"vector_bits\": {}}}\n", threads, runs[1],
#if defined(__AVX512F__)
               512
#elif defined(__FMA__)
               256
#else
               0
#endif
    );
    return 0;
  }
  if (argc < 6) {
    fmt::print(stderr, "usage: embed_bench kernel|stream FILE.h5ad DIMS THREADS GENE_TABLE [REPEATS] | embed_bench peak THREADS\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::string path = argv[2];
  const int dims = std::atoi(argv[3]);
  const int threads = std::atoi(argv[4]);
  const celltyper::GeneTable table = celltyper::load_gene_table(argv[5]);
  const int repeats = argc > 6 ? std::atoi(argv[6]) : 3;

  // Gene vectors in one contiguous array (77k genes x dims).
  std::vector<float> store(table.size() * static_cast<std::size_t>(dims));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (auto& x : store) x = normal(rng);
  std::map<std::int64_t, std::size_t> row_of;
  for (std::size_t i = 0; i < table.size(); ++i) row_of[table.genes()[i].entrez_id] = i;
  celltyper::GeneVectorSource source{dims, [&](std::int64_t entrez) -> const float* {
                                       const auto it = row_of.find(entrez);
                                       return it == row_of.end() ? nullptr : store.data() + it->second * static_cast<std::size_t>(dims);
                                     },
                                     "random", "seeded random"};
  const auto dataset = celltyper::open_dataset(path);
  celltyper::EmbedOptions options;
  options.num_threads = threads;
  options.dims = dims;

  std::vector<double> seconds;
  std::int64_t cells = dataset->n_obs();
  std::int64_t nnz_used = 0;
  if (mode == "kernel") {
    // Load the matrix once; time only normalise + weighted sum + L2 over all cells.
    const celltyper::GeneResolveResult resolved = celltyper::resolve_genes(table, dataset->read_var());
    auto reader = dataset->open_matrix("X");
    celltyper::CsrBlock all;
    reader->read_rows(0, reader->n_rows(), all);
    celltyper::AlignedGeneVectors aligned = celltyper::align_gene_vectors(table, resolved, source, dims);
    if (std::getenv("CELLTYPER_BENCH_NO_REORDER") == nullptr) {
      celltyper::CsrBlock sample;
      reader->read_rows(0, std::min<std::int64_t>(reader->n_rows(), 2000), sample);
      aligned.order_rows_by_use(sample);
    }
    celltyper::CellEmbedder embedder(std::move(aligned), {celltyper::Normalization::kLog1pCp10k, threads});
    for (std::int64_t k = 0; k < all.nnz(); ++k) nnz_used += embedder.genes().var_to_row[static_cast<std::size_t>(all.indices[static_cast<std::size_t>(k)])] >= 0;
    std::vector<float> out(static_cast<std::size_t>(cells) * static_cast<std::size_t>(dims));
    embedder.embed(all, out.data());  // warm-up
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      embedder.embed(all, out.data());
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  } else {
    for (int r = 0; r < repeats; ++r) {
      DiscardSink sink;
      const auto start = std::chrono::steady_clock::now();
      const auto result = celltyper::embed_dataset(*dataset, table, source, options, sink);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      (void)result;
    }
    nnz_used = dataset->matrix_info("X").nnz;  // upper bound (all stored values)
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  fmt::print("{{\"tool\": \"celltyper\", \"mode\": \"{}\", \"cells\": {}, \"dims\": {}, \"threads\": {}, \"seconds\": {:.4f}, "
             "\"cells_per_s\": {:.0f}, \"gflops\": {:.2f}, \"nnz\": {}, \"peak_rss_mb\": {:.1f}}}\n",
             mode, cells, dims, threads, median, static_cast<double>(cells) / median, 2.0 * static_cast<double>(nnz_used) * dims / median / 1e9,
             nnz_used, peak_rss_mb());
  return 0;
}
