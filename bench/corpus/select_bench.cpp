// Selection benchmark: ILP (COIN-OR CBC) vs greedy on a synthetic 1,000-file catalogue, objective
// and time, at several CBC time limits; greedy repeated (median). Writes JSON on stdout.
//
//   select_bench [--files 1000] [--classes 60] [--fragment-rows 2000] [--budget-fraction 0.05]
//                [--min-per-class 500] [--max-per-class 20000] [--time-limits 2,10,30] [--seed 7]
#include <celltyper/selection.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <thread>

using namespace celltyper;

namespace {

/// Files of 1-5 fragments; each file dominated by 1-3 classes of Zipf-like abundance (as
/// CELLxGENE datasets are: a tissue, a few abundant types, rare types everywhere).
FragmentTable synthetic_table(int n_files, int n_classes, std::int64_t fragment_rows, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  FragmentTable table;
  table.label_column = "cell_type";
  table.fragment_rows = fragment_rows;
  for (int c = 0; c < n_classes; ++c) table.classes.push_back(fmt::format("type_{:03d}", c));
  std::vector<double> abundance;
  for (int c = 0; c < n_classes; ++c) abundance.push_back(1.0 / std::pow(c + 1.0, 1.3));
  std::discrete_distribution<int> pick_class(abundance.begin(), abundance.end());
  for (int f = 0; f < n_files; ++f) {
    table.files.push_back(fmt::format("s3://corpus/file_{:04d}.h5ad", f));
    const int fragments = 1 + static_cast<int>(rng() % 5);
    std::vector<int> dominant;
    for (int k = 0, m = 1 + static_cast<int>(rng() % 3); k < m; ++k) dominant.push_back(pick_class(rng));
    std::int64_t start = 0;
    for (int k = 0; k < fragments; ++k) {
      Fragment fragment;
      fragment.file = f;
      fragment.row_start = start;
      const std::int64_t rows = k + 1 < fragments ? fragment_rows : 1 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(fragment_rows));
      fragment.row_end = start + rows;
      fragment.counts.assign(static_cast<std::size_t>(n_classes), 0);
      for (std::int64_t r = 0; r < rows; ++r) {
        if (rng() % 20 == 0) continue;
        const int c = rng() % 4 == 0 ? pick_class(rng) : dominant[rng() % dominant.size()];
        ++fragment.counts[static_cast<std::size_t>(c)];
      }
      table.fragments.push_back(std::move(fragment));
      start += rows;
    }
    table.file_cells.push_back(start);
  }
  return table;
}

nlohmann::json summary(const Selection& selection) {
  return {{"objective", selection.objective}, {"coverage", selection.coverage}, {"shortfall", selection.shortfall},
          {"n_cells", selection.n_cells},     {"n_fragments", selection.fragments.size()}, {"seconds", selection.seconds}};
}

}  // namespace

int main(int argc, char** argv) {
  int n_files = 1000;
  int n_classes = 60;
  std::int64_t fragment_rows = 2000;
  double budget_fraction = 0.05;
  SelectOptions options;
  options.min_per_class = 500;
  options.max_per_class = 20000;
  std::vector<double> limits = {2, 10, 30};
  std::uint64_t seed = 7;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--files") n_files = std::stoi(value);
    else if (flag == "--classes") n_classes = std::stoi(value);
    else if (flag == "--fragment-rows") fragment_rows = std::stoll(value);
    else if (flag == "--budget-fraction") budget_fraction = std::stod(value);
    else if (flag == "--min-per-class") options.min_per_class = std::stoll(value);
    else if (flag == "--max-per-class") options.max_per_class = std::stoll(value);
    else if (flag == "--seed") seed = std::stoull(value);
    else if (flag == "--time-limits") {
      limits.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) limits.push_back(std::stod(item));
    } else {
      fmt::print(stderr, "unknown flag {}\n", flag);
      return 2;
    }
  }
  const FragmentTable table = synthetic_table(n_files, n_classes, fragment_rows, seed);
  std::int64_t total = 0;
  for (const auto& fragment : table.fragments) total += fragment.rows();
  options.budget_cells = static_cast<std::int64_t>(budget_fraction * static_cast<double>(total));
  nlohmann::json result = {{"benchmark", "select"},
                           {"machine", {{"hardware_threads", std::thread::hardware_concurrency()}}},
                           {"catalogue",
                            {{"files", n_files},
                             {"fragments", table.fragments.size()},
                             {"classes", n_classes},
                             {"cells", total},
                             {"fragment_rows", fragment_rows},
                             {"seed", seed}}},
                           {"options",
                            {{"budget_cells", options.budget_cells},
                             {"min_per_class", options.min_per_class},
                             {"max_per_class", options.max_per_class}}}};
  // Greedy: warm-up, then 5 repetitions, median time.
  SelectOptions greedy_options = options;
  greedy_options.use_ilp = false;
  (void)select_fragments(table, greedy_options);
  std::vector<double> times;
  SelectionResult greedy;
  for (int r = 0; r < 5; ++r) {
    greedy = select_fragments(table, greedy_options);
    times.push_back(greedy.greedy.seconds);
  }
  std::sort(times.begin(), times.end());
  result["greedy"] = summary(greedy.greedy);
  result["greedy"]["median_seconds"] = times[times.size() / 2];
  result["ilp"] = nlohmann::json::array();
  for (const double limit : limits) {
    options.time_limit_seconds = limit;
    const auto start = std::chrono::steady_clock::now();
    const SelectionResult solved = select_fragments(table, options);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json entry = summary(solved.ilp);
    entry.update({{"time_limit", limit},
                  {"status", solved.stats.status},
                  {"best_bound", solved.stats.best_bound},
                  {"gap", solved.stats.gap},
                  {"nodes", solved.stats.nodes},
                  {"wall_seconds", wall},
                  {"improvement_over_greedy", solved.ilp.objective - greedy.greedy.objective},
                  {"greedy_gap_to_bound", (solved.stats.best_bound - greedy.greedy.objective) / std::max(1e-9, std::abs(solved.stats.best_bound))}});
    result["ilp"].push_back(entry);
    fmt::print(stderr, "time limit {:>5.1f} s: {} objective {:.6f} (greedy {:.6f}), bound {:.6f}, gap {:.4f}%, {:.2f} s\n", limit,
               solved.stats.status, solved.ilp.objective, greedy.greedy.objective, solved.stats.best_bound, 100 * solved.stats.gap, wall);
  }
  fmt::print("{}\n", result.dump(2));
  return 0;
}
