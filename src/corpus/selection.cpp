// Fragment selection: the label pass over obs, the coverage model, greedy and CBC.
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/selection.hpp>
#include <celltyper/train.hpp>

#include "io/dynamic_api.hpp"

#include <Cbc_C_Interface.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <queue>

namespace celltyper {

namespace {

// COIN-OR CBC's C interface, loaded on the first solve (dynamic_api.hpp says why).
#define CELLTYPER_CBC_FUNCTIONS(X)                                                                                        \
  X(Cbc_newModel) X(Cbc_deleteModel) X(Cbc_loadProblem) X(Cbc_setInteger) X(Cbc_setLogLevel) X(Cbc_setParameter)        \
  X(Cbc_setMaximumSeconds) X(Cbc_setAllowableFractionGap) X(Cbc_setMIPStartI) X(Cbc_solve) X(Cbc_isProvenOptimal)      \
  X(Cbc_isSecondsLimitReached) X(Cbc_getNodeCount) X(Cbc_bestSolution) X(Cbc_getObjValue) X(Cbc_getBestPossibleObjValue) \
  X(Cbc_isProvenInfeasible) X(Cbc_isAbandoned) X(Cbc_status) X(Cbc_secondaryStatus)

struct CbcApi {
  CELLTYPER_CBC_FUNCTIONS(CELLTYPER_DYNAMIC_POINTER)
};

/// The solver's functions (libCbcSolver, loaded once); UnsupportedError saying what to install
/// when it is missing.
const CbcApi& cbc_api() {
  static const CbcApi api = CELLTYPER_LOAD_DYNAMIC_API(CbcApi, CELLTYPER_CBC_FUNCTIONS, "select: the COIN-OR CBC solver (libCbcSolver.so.3)",
                                                       "install coinor-libcbc3 (scripts/setup.sh does)", "libCbcSolver.so.3", "libCbcSolver.so");
  return api;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Labels of one file: local categories and a code per row (-1 = missing).
struct FileLabels {
  std::vector<std::string> categories;
  std::vector<std::int32_t> codes;
};

FileLabels read_file_labels(const std::string& path, const std::string& column_name) {
  H5adOpenOptions open;
  open.direct_io = false;
  open.num_threads = 1;
  const H5adFile file(path, open);
  const DataFrame obs = file.read_obs_columns({column_name});
  const Column& column = obs.at(column_name, fmt::format("obs of {}", path));
  FileLabels labels;
  const std::size_t n = column.size();
  if (column.kind == ColumnKind::kCategorical) {
    labels.categories = column.categories;
    labels.codes = column.codes;
    std::vector<std::uint8_t> missing_category(column.categories.size());
    for (std::size_t c = 0; c < column.categories.size(); ++c) missing_category[c] = is_unlabelled(column.categories[c]) ? 1 : 0;
    for (std::size_t row = 0; row < n; ++row) {
      if (column.is_missing(row) || missing_category[static_cast<std::size_t>(labels.codes[row])] != 0) labels.codes[row] = -1;
    }
    return labels;
  }
  std::map<std::string, std::int32_t> seen;
  labels.codes.assign(n, -1);
  for (std::size_t row = 0; row < n; ++row) {
    if (column.is_missing(row)) continue;
    std::string value = column.value_as_string(row);
    if (is_unlabelled(value)) continue;
    auto [it, inserted] = seen.emplace(std::move(value), static_cast<std::int32_t>(labels.categories.size()));
    if (inserted) labels.categories.push_back(it->first);
    labels.codes[row] = it->second;
  }
  return labels;
}

}  // namespace

std::vector<std::int64_t> FragmentTable::available() const {
  std::vector<std::int64_t> total(classes.size(), 0);
  for (const auto& fragment : fragments) {
    for (std::size_t c = 0; c < classes.size(); ++c) total[c] += fragment.counts[c];
  }
  return total;
}

std::vector<Fragment> cut_fragments(std::int32_t file, const std::vector<std::int32_t>& codes, std::size_t n_classes,
                                    std::int64_t fragment_rows) {
  std::vector<Fragment> fragments;
  const auto n = static_cast<std::int64_t>(codes.size());
  for (std::int64_t start = 0; start < n; start += fragment_rows) {
    Fragment fragment;
    fragment.file = file;
    fragment.row_start = start;
    fragment.row_end = std::min(n, start + fragment_rows);
    fragment.counts.assign(n_classes, 0);
    for (std::int64_t row = fragment.row_start; row < fragment.row_end; ++row) {
      const std::int32_t code = codes[static_cast<std::size_t>(row)];
      if (code >= 0) ++fragment.counts[static_cast<std::size_t>(code)];
    }
    fragments.push_back(std::move(fragment));
  }
  return fragments;
}

FragmentTable build_fragment_table(const std::vector<std::string>& paths, const FragmentOptions& options) {
  if (options.fragment_rows < 1) throw InputError(fmt::format("--fragment-rows {} must be at least 1", options.fragment_rows));
  if (options.label_column.empty()) throw InputError("no label column given (--label COLUMN)");
  if (paths.empty()) throw InputError("no input files");
  FragmentTable table;
  table.label_column = options.label_column;
  table.fragment_rows = options.fragment_rows;
  // Per readable file: its local categories and fragments counted over them.
  struct Pending {
    std::vector<std::string> categories;
    std::vector<Fragment> fragments;
  };
  std::vector<Pending> pending;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    try {
      FileLabels labels = read_file_labels(paths[i], options.label_column);
      Pending file;
      file.fragments = cut_fragments(static_cast<std::int32_t>(table.files.size()), labels.codes, labels.categories.size(),
                                     options.fragment_rows);
      file.categories = std::move(labels.categories);
      table.files.push_back(paths[i]);
      table.file_cells.push_back(static_cast<std::int64_t>(labels.codes.size()));
      pending.push_back(std::move(file));
    } catch (const Error& error) {
      table.failures.push_back(message_about_once(paths[i], error.what()));
    }
    if (options.progress) options.progress(static_cast<std::int64_t>(i + 1), static_cast<std::int64_t>(paths.size()));
  }
  if (table.files.empty()) {
    throw InputError(fmt::format("no input file could be read ({} failed; first: {})", table.failures.size(),
                                 table.failures.empty() ? "" : table.failures.front()));
  }
  // Classes: every label with at least one cell (unused categories of a categorical are dropped);
  // labels differing only in letter case or surrounding spaces are one class, as train reads them.
  std::map<std::string, std::int64_t> label_cells;
  for (const auto& file : pending) {
    std::vector<std::int64_t> used(file.categories.size(), 0);
    for (const auto& fragment : file.fragments) {
      for (std::size_t k = 0; k < used.size(); ++k) used[k] += fragment.counts[k];
    }
    for (std::size_t k = 0; k < used.size(); ++k) {
      if (used[k] > 0) label_cells[file.categories[k]] += used[k];
    }
  }
  std::string note;
  const std::map<std::string, std::string> renames = label_spelling_renames(label_cells, &note);
  if (!note.empty()) table.warnings.push_back(fmt::format("obs:{}: {}", options.label_column, note));
  const auto class_name = [&renames](const std::string& label) {
    const auto renamed = renames.find(label);
    return renamed == renames.end() ? label : renamed->second;
  };
  std::map<std::string, std::int32_t> class_index;
  for (const auto& [label, cells] : label_cells) class_index.emplace(class_name(label), 0);
  for (const auto& [name, index] : class_index) table.classes.push_back(name);
  for (std::size_t c = 0; c < table.classes.size(); ++c) class_index[table.classes[c]] = static_cast<std::int32_t>(c);
  for (auto& file : pending) {
    std::vector<std::int32_t> remap(file.categories.size(), -1);
    for (std::size_t k = 0; k < file.categories.size(); ++k) {
      if (label_cells.count(file.categories[k]) == 0) continue;
      const auto found = class_index.find(class_name(file.categories[k]));
      if (found != class_index.end()) remap[k] = found->second;
    }
    for (auto& fragment : file.fragments) {
      std::vector<std::int64_t> counts(table.classes.size(), 0);
      for (std::size_t k = 0; k < fragment.counts.size(); ++k) {
        if (remap[k] >= 0) counts[static_cast<std::size_t>(remap[k])] += fragment.counts[k];
      }
      fragment.counts = std::move(counts);
      table.fragments.push_back(std::move(fragment));
    }
  }
  return table;
}

std::vector<std::string> read_path_list(const std::string& list_path) {
  std::ifstream in(list_path);
  if (!in) throw InputError(fmt::format("cannot read the list of files {}", list_path));
  const std::filesystem::path folder = std::filesystem::path(list_path).parent_path();
  std::vector<std::string> paths;
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    std::string path = line.substr(first, last - first + 1);
    const bool remote = path.find("://") != std::string::npos;
    if (!remote && std::filesystem::path(path).is_relative()) path = (folder / path).string();
    paths.push_back(std::move(path));
  }
  if (paths.empty()) throw InputError(fmt::format("{} lists no file", list_path));
  return paths;
}

// ---- the model ------------------------------------------------------------------------------

SelectionResult selection_model(const FragmentTable& table, const SelectOptions& options) {
  if (options.budget_cells < 1) throw InputError(fmt::format("--budget-cells {} must be at least 1", options.budget_cells));
  if (options.min_per_class < 0 || options.max_per_class < 0) throw InputError("--min-per-class and --max-per-class must be >= 0");
  if (options.max_per_class > 0 && options.min_per_class > options.max_per_class) {
    throw InputError(fmt::format("--min-per-class {} exceeds --max-per-class {}", options.min_per_class, options.max_per_class));
  }
  SelectionResult model;
  const std::vector<std::int64_t> available = table.available();
  const std::size_t n_classes = table.classes.size();
  model.weights.assign(n_classes, 0);
  model.caps.assign(n_classes, 0);
  model.minimums.assign(n_classes, 0);
  double coverage_bound = 0;
  for (std::size_t c = 0; c < n_classes; ++c) {
    model.caps[c] = options.max_per_class > 0 ? std::min(options.max_per_class, available[c]) : available[c];
    model.minimums[c] = std::min(options.min_per_class, available[c]);
    if (model.caps[c] > 0) {
      model.weights[c] = options.weighting == CoverageWeighting::kBalanced ? 1.0 / static_cast<double>(model.caps[c]) : 1.0;
    }
    coverage_bound += model.weights[c] * static_cast<double>(model.caps[c]);
  }
  model.penalty = 1.0 + coverage_bound;
  model.stats.status = "not run";
  return model;
}

Selection evaluate_selection(const FragmentTable& table, const SelectionResult& model, std::vector<std::int32_t> fragments) {
  std::sort(fragments.begin(), fragments.end());
  Selection selection;
  selection.covered.assign(table.classes.size(), 0);
  for (const auto f : fragments) {
    const Fragment& fragment = table.fragments[static_cast<std::size_t>(f)];
    selection.n_cells += fragment.rows();
    for (std::size_t c = 0; c < table.classes.size(); ++c) selection.covered[c] += fragment.counts[c];
  }
  for (std::size_t c = 0; c < table.classes.size(); ++c) {
    selection.coverage += model.weights[c] * static_cast<double>(std::min(model.caps[c], selection.covered[c]));
    selection.shortfall += std::max<std::int64_t>(0, model.minimums[c] - selection.covered[c]);
  }
  selection.objective = selection.coverage - model.penalty * static_cast<double>(selection.shortfall);
  selection.fragments = std::move(fragments);
  return selection;
}

Selection greedy_selection(const FragmentTable& table, const SelectionResult& model, std::int64_t budget_cells) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t n_classes = table.classes.size();
  std::vector<std::int64_t> covered(n_classes, 0);
  auto gain_of = [&](const Fragment& fragment) {
    double gain = 0;
    for (std::size_t c = 0; c < n_classes; ++c) {
      const std::int64_t n = fragment.counts[c];
      if (n == 0) continue;
      const std::int64_t before = covered[c];
      gain += model.weights[c] * static_cast<double>(std::min(model.caps[c], before + n) - std::min(model.caps[c], before));
      gain += model.penalty * static_cast<double>(std::max<std::int64_t>(0, model.minimums[c] - before) -
                                                  std::max<std::int64_t>(0, model.minimums[c] - before - n));
    }
    return gain;
  };
  struct Candidate {
    double ratio;
    std::int32_t fragment;
    std::int64_t round;  // selection size when `ratio` was computed
    bool operator<(const Candidate& other) const {  // max-heap: larger ratio first, then lower index
      if (ratio != other.ratio) return ratio < other.ratio;
      return fragment > other.fragment;
    }
  };
  std::priority_queue<Candidate> queue;
  for (std::size_t f = 0; f < table.fragments.size(); ++f) {
    const Fragment& fragment = table.fragments[f];
    if (fragment.rows() > budget_cells || fragment.rows() == 0) continue;
    queue.push({gain_of(fragment) / static_cast<double>(fragment.rows()), static_cast<std::int32_t>(f), 0});
  }
  std::vector<std::int32_t> chosen;
  std::int64_t used = 0;
  std::int64_t round = 0;
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    const Fragment& fragment = table.fragments[static_cast<std::size_t>(top.fragment)];
    if (used + fragment.rows() > budget_cells) continue;  // the remaining budget only shrinks
    if (top.round != round) {  // stale: recompute (gains only shrink, so the heap stays an upper bound)
      top.ratio = gain_of(fragment) / static_cast<double>(fragment.rows());
      top.round = round;
      queue.push(top);
      continue;
    }
    if (top.ratio <= 0) break;
    chosen.push_back(top.fragment);
    used += fragment.rows();
    for (std::size_t c = 0; c < n_classes; ++c) covered[c] += fragment.counts[c];
    ++round;
  }
  Selection selection = evaluate_selection(table, model, std::move(chosen));
  selection.seconds = seconds_since(start);
  return selection;
}

namespace {

/// Solve the ILP with CBC, starting from `start`; fills `model.ilp` and `model.stats`.
void solve_ilp(const FragmentTable& table, const SelectOptions& options, const Selection& start, SelectionResult& model) {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t n_fragments = table.fragments.size();
  const std::size_t n_classes = table.classes.size();
  constexpr double kInfinity = 1e30;
  // Rows: coverage rows (one per class with a cap), minimum rows (one per class with a minimum), budget.
  std::vector<int> coverage_row(n_classes, -1);
  std::vector<int> minimum_row(n_classes, -1);
  std::vector<double> row_lower;
  std::vector<double> row_upper;
  for (std::size_t c = 0; c < n_classes; ++c) {
    if (model.caps[c] <= 0) continue;
    coverage_row[c] = static_cast<int>(row_lower.size());
    row_lower.push_back(-kInfinity);
    row_upper.push_back(0);
  }
  for (std::size_t c = 0; c < n_classes; ++c) {
    if (model.minimums[c] <= 0) continue;
    minimum_row[c] = static_cast<int>(row_lower.size());
    row_lower.push_back(static_cast<double>(model.minimums[c]));
    row_upper.push_back(kInfinity);
  }
  const int budget_row = static_cast<int>(row_lower.size());
  row_lower.push_back(-kInfinity);
  row_upper.push_back(static_cast<double>(options.budget_cells));

  std::vector<CoinBigIndex> starts{0};
  std::vector<int> index;
  std::vector<double> value;
  std::vector<double> column_lower;
  std::vector<double> column_upper;
  std::vector<double> objective;
  for (std::size_t f = 0; f < n_fragments; ++f) {  // x_f
    const Fragment& fragment = table.fragments[f];
    for (std::size_t c = 0; c < n_classes; ++c) {
      const auto n = static_cast<double>(fragment.counts[c]);
      if (n == 0) continue;
      if (coverage_row[c] >= 0) index.push_back(coverage_row[c]), value.push_back(-n);
      if (minimum_row[c] >= 0) index.push_back(minimum_row[c]), value.push_back(n);
    }
    index.push_back(budget_row);
    value.push_back(static_cast<double>(fragment.rows()));
    starts.push_back(static_cast<CoinBigIndex>(index.size()));
    column_lower.push_back(0);
    column_upper.push_back(fragment.rows() > options.budget_cells ? 0.0 : 1.0);
    objective.push_back(0);
  }
  for (std::size_t c = 0; c < n_classes; ++c) {  // y_c
    if (coverage_row[c] < 0) continue;
    index.push_back(coverage_row[c]);
    value.push_back(1);
    starts.push_back(static_cast<CoinBigIndex>(index.size()));
    column_lower.push_back(0);
    column_upper.push_back(static_cast<double>(model.caps[c]));
    objective.push_back(model.weights[c]);
  }
  for (std::size_t c = 0; c < n_classes; ++c) {  // s_c
    if (minimum_row[c] < 0) continue;
    index.push_back(minimum_row[c]);
    value.push_back(1);
    starts.push_back(static_cast<CoinBigIndex>(index.size()));
    column_lower.push_back(0);
    column_upper.push_back(static_cast<double>(model.minimums[c]));
    objective.push_back(-model.penalty);
  }
  const int n_columns = static_cast<int>(column_lower.size());
  const int n_rows = static_cast<int>(row_lower.size());

  // CBC minimises -objective (its maximisation sense mishandles the cutoff of a MIP start with a
  // negative objective: measured to stop at the start as "optimal").
  for (auto& coefficient : objective) coefficient = -coefficient;
  const CbcApi& api = cbc_api();
  const std::unique_ptr<Cbc_Model, void (*)(Cbc_Model*)> cbc(api.Cbc_newModel(), api.Cbc_deleteModel);
  api.Cbc_loadProblem(cbc.get(), n_columns, n_rows, starts.data(), index.data(), value.data(), column_lower.data(), column_upper.data(),
                  objective.data(), row_lower.data(), row_upper.data());
  for (std::size_t f = 0; f < n_fragments; ++f) api.Cbc_setInteger(cbc.get(), static_cast<int>(f));

  api.Cbc_setLogLevel(cbc.get(), options.solver_log ? 1 : 0);
  api.Cbc_setParameter(cbc.get(), "timeMode", "elapsed");  // wall clock, not CPU time (a busy machine)
  api.Cbc_setMaximumSeconds(cbc.get(), options.time_limit_seconds);
  api.Cbc_setAllowableFractionGap(cbc.get(), options.relative_gap);
  if (!start.fragments.empty()) {
    const std::vector<double> ones(start.fragments.size(), 1.0);
    api.Cbc_setMIPStartI(cbc.get(), static_cast<int>(start.fragments.size()), start.fragments.data(), ones.data());
  }
  api.Cbc_solve(cbc.get());

  IlpStats& stats = model.stats;
  stats.n_columns = n_columns;
  stats.n_rows = n_rows;
  stats.proven_optimal = api.Cbc_isProvenOptimal(cbc.get()) != 0;
  stats.time_limit_reached = api.Cbc_isSecondsLimitReached(cbc.get()) != 0;
  stats.nodes = api.Cbc_getNodeCount(cbc.get());
  const double* solution = api.Cbc_bestSolution(cbc.get());
  if (solution != nullptr) {
    std::vector<std::int32_t> chosen;
    for (std::size_t f = 0; f < n_fragments; ++f) {
      if (solution[f] > 0.5) chosen.push_back(static_cast<std::int32_t>(f));
    }
    model.ilp = evaluate_selection(table, model, std::move(chosen));
    stats.objective = -api.Cbc_getObjValue(cbc.get());
  }
  // The lower bound of the minimisation is an upper bound of the maximisation.
  double bound = -api.Cbc_getBestPossibleObjValue(cbc.get());
  if (solution != nullptr) bound = std::max(bound, stats.objective);
  stats.best_bound = bound;
  if (solution != nullptr) stats.gap = std::max(0.0, (bound - stats.objective) / std::max(1e-9, std::abs(stats.objective)));
  if (stats.proven_optimal) {
    stats.status = "optimal";
  } else if (api.Cbc_isProvenInfeasible(cbc.get()) != 0) {
    stats.status = "infeasible";
  } else if (stats.time_limit_reached) {
    stats.status = solution != nullptr ? "time limit (feasible)" : "time limit (no solution)";
  } else if (api.Cbc_isAbandoned(cbc.get()) != 0) {
    stats.status = "abandoned";
  } else {
    stats.status = fmt::format("stopped (status {}, secondary {})", api.Cbc_status(cbc.get()), api.Cbc_secondaryStatus(cbc.get()));
  }
  model.ilp.seconds = stats.seconds = seconds_since(started);
}

nlohmann::json selection_summary(const Selection& selection) {
  return {{"objective", selection.objective},
          {"coverage", selection.coverage},
          {"shortfall", selection.shortfall},
          {"n_cells", selection.n_cells},
          {"n_fragments", selection.fragments.size()},
          {"seconds", selection.seconds}};
}

}  // namespace

SelectionResult select_fragments(const FragmentTable& table, const SelectOptions& options) {
  SelectionResult result = selection_model(table, options);
  result.greedy = greedy_selection(table, result, options.budget_cells);
  result.chosen = "greedy";
  if (options.use_ilp && !table.fragments.empty()) {
    solve_ilp(table, options, result.greedy, result);
    // The model value of the ILP's selection, recomputed exactly; ties go to the ILP.
    if (!result.ilp.covered.empty() && result.ilp.n_cells <= options.budget_cells &&
        result.ilp.objective >= result.greedy.objective - 1e-9 * std::max(1.0, std::abs(result.greedy.objective))) {
      result.chosen = "ilp";
    }
  }
  return result;
}

nlohmann::json selection_to_json(const FragmentTable& table, const SelectOptions& options, const SelectionResult& result) {
  const Selection& best = result.best();
  nlohmann::json fragments = nlohmann::json::array();
  for (const auto f : best.fragments) {
    const Fragment& fragment = table.fragments[static_cast<std::size_t>(f)];
    nlohmann::json counts = nlohmann::json::object();
    for (std::size_t c = 0; c < table.classes.size(); ++c) {
      if (fragment.counts[c] > 0) counts[table.classes[c]] = fragment.counts[c];
    }
    fragments.push_back({{"file", table.files[static_cast<std::size_t>(fragment.file)]},
                         {"row_start", fragment.row_start},
                         {"row_end", fragment.row_end},
                         {"counts", counts}});
  }
  const std::vector<std::int64_t> available = table.available();
  nlohmann::json totals = nlohmann::json::object();
  for (std::size_t c = 0; c < table.classes.size(); ++c) {
    totals[table.classes[c]] = {{"selected", best.covered[c]},
                                {"available", available[c]},
                                {"cap", result.caps[c]},
                                {"min", result.minimums[c]},
                                {"weight", result.weights[c]},
                                {"shortfall", std::max<std::int64_t>(0, result.minimums[c] - best.covered[c])}};
  }
  nlohmann::json files = nlohmann::json::array();
  for (std::size_t i = 0; i < table.files.size(); ++i) files.push_back({{"path", table.files[i]}, {"n_cells", table.file_cells[i]}});
  const IlpStats& stats = result.stats;
  return {{"format", "celltyper-selection"},
          {"version", 1},
          {"label_column", table.label_column},
          {"fragment_rows", table.fragment_rows},
          {"options",
           {{"budget_cells", options.budget_cells},
            {"min_per_class", options.min_per_class},
            {"max_per_class", options.max_per_class},
            {"weighting", options.weighting == CoverageWeighting::kBalanced ? "balanced" : "cells"},
            {"time_limit_seconds", options.time_limit_seconds},
            {"relative_gap", options.relative_gap}}},
          {"objective",
           {{"description", "maximise sum_c w_c min(cap_c, selected_c) - penalty * sum_c max(0, min_c - selected_c) "
                            "subject to sum of fragment rows <= budget_cells"},
            {"penalty", result.penalty},
            {"value", best.objective},
            {"coverage", best.coverage},
            {"shortfall", best.shortfall}}},
          {"chosen", result.chosen},
          {"n_cells", best.n_cells},
          {"n_fragments", best.fragments.size()},
          {"n_files_read", table.files.size()},
          {"n_fragments_available", table.fragments.size()},
          {"failures", table.failures},
          {"solver",
           {{"name", "COIN-OR CBC"},
            {"status", stats.status},
            {"objective", stats.objective},
            {"best_bound", stats.best_bound},
            {"gap", stats.gap},
            {"seconds", stats.seconds},
            {"nodes", stats.nodes},
            {"proven_optimal", stats.proven_optimal},
            {"time_limit_reached", stats.time_limit_reached},
            {"columns", stats.n_columns},
            {"rows", stats.n_rows}}},
          {"ilp", selection_summary(result.ilp)},
          {"greedy", selection_summary(result.greedy)},
          {"totals", totals},
          {"files", files},
          {"fragments", fragments}};
}

}  // namespace celltyper
