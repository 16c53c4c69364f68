// The floor of `celltyper annotate` with a logistic-regression expression model: read every block
// of X and compute every cell's probabilities (the same sparse kernel annotate runs), nothing
// else: no output copy, no obs, no model or gene-table load in the timed part. bench/annotate/run.py
// reports annotate's wall time against this.
//   annotate_floor MODEL.h5 QUERY.h5ad [--threads N]
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/linear_scores.hpp>
#include <celltyper/model_file.hpp>

#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <numeric>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: annotate_floor MODEL.h5 QUERY.h5ad [--threads N]\n");
    return 2;
  }
  celltyper::EmbedOptions options;
  if (argc >= 5 && std::string(argv[3]) == "--threads") options.num_threads = std::atoi(argv[4]);
  const celltyper::CellTypeModel model = celltyper::load_model(argv[1]);
  const auto linear = celltyper::linear_scores(model);
  if (!linear) {
    fmt::print(stderr, "annotate_floor: {} is not a logistic-regression expression model\n", argv[1]);
    return 2;
  }
  const celltyper::GeneTable table = celltyper::load_requested_gene_table("");
  const auto started = std::chrono::steady_clock::now();
  const auto dataset = celltyper::open_dataset(argv[2]);
  const auto n = static_cast<std::size_t>(dataset->n_obs());
  const auto c = static_cast<std::size_t>(linear->classes);
  std::vector<std::size_t> columns(c);
  std::iota(columns.begin(), columns.end(), std::size_t{0});
  std::vector<float> probabilities(n * c, 0.0f);
  std::vector<std::int32_t> used(n, 0);
  celltyper::add_linear_probabilities(*dataset, model, *linear, table, options, columns, c, probabilities, used);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double checksum = std::accumulate(probabilities.begin(), probabilities.end(), 0.0);
  fmt::print("{{\"tool\": \"annotate_floor\", \"seconds\": {:.4f}, \"cells\": {}, \"peak_rss_mb\": {:.1f}, \"checksum\": {:.6e}}}\n", seconds, n,
             usage.ru_maxrss / 1024.0, checksum);
  return 0;
}
