/// @file selection.hpp
/// `celltyper select`: choose a training subset of a corpus as file fragments (row ranges) so
/// that every cell type is covered within a cell budget, by integer linear programming (COIN-OR
/// CBC), with a greedy solution computed alongside for comparison and as the solver's start.
///
/// Model (documented in docs/corpus.md). Fragments f are rows [start, start + N) of a file, with
/// rows_f cells of which n_fc carry label c. With binary x_f (fragment chosen):
///
///   cover_c   = sum_f n_fc x_f                      cells of class c selected
///   cap_c     = min(max_per_class, available_c)     (available_c when no cap)
///   min_c     = min(min_per_class, available_c)
///   maximise  sum_c w_c y_c  -  P sum_c s_c
///   subject to y_c <= cover_c, 0 <= y_c <= cap_c    (covered cells up to the cap)
///             cover_c + s_c >= min_c, s_c >= 0     (shortfall below the minimum)
///             sum_f rows_f x_f <= budget
///
/// Weights: `balanced` (default) w_c = 1 / cap_c, so the objective is the sum over classes of the
/// covered share of each class's cap — a rare type counts as much as an abundant one; `cells`
/// w_c = 1 counts covered cells. The minimum is soft with penalty P = 1 + sum_c w_c cap_c (more
/// than the largest possible coverage term), so total shortfall is minimised first and coverage
/// second: the problem is always feasible, and the shortfall is reported per class.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace celltyper {

/// Rows [row_start, row_end) of one file and how many of its cells carry each label.
struct Fragment {
  std::int32_t file = 0;                ///< index into FragmentTable::files
  std::int64_t row_start = 0;
  std::int64_t row_end = 0;
  std::vector<std::int64_t> counts;     ///< per class of FragmentTable::classes
  [[nodiscard]] std::int64_t rows() const { return row_end - row_start; }
};

/// The fragments of a corpus with per-class counts (output of the label pass).
struct FragmentTable {
  std::string label_column;
  std::int64_t fragment_rows = 0;
  std::vector<std::string> files;            ///< paths, in input order
  std::vector<std::int64_t> file_cells;      ///< cells per file
  std::vector<std::string> classes;          ///< labels, sorted (spellings differing only in case or surrounding spaces: the most frequent)
  std::vector<Fragment> fragments;           ///< by file, then row
  std::vector<std::string> failures;         ///< "path: message" of files skipped by the label pass
  std::vector<std::string> warnings;         ///< e.g. labels differing only in letter case, read as one class
  [[nodiscard]] std::vector<std::int64_t> available() const;  ///< cells per class over all fragments
};

/// Options of the label pass.
struct FragmentOptions {
  std::string label_column;              ///< obs column with the labels
  std::int64_t fragment_rows = 0;        ///< N: rows per fragment (the last of a file may be shorter)
  /// Called after each file with (files done, files total).
  std::function<void(std::int64_t, std::int64_t)> progress;
};

/// Label pass: read only `obs/<label_column>` of every file and cut it into fragments. A file that
/// cannot be read (missing, not h5ad, no such column) is recorded in `failures` and skipped.
/// Throws InputError when `fragment_rows` < 1 or no file could be read.
FragmentTable build_fragment_table(const std::vector<std::string>& paths, const FragmentOptions& options);

/// Fragments of one file from its per-row label codes (-1 = unlabelled), classes given by index.
std::vector<Fragment> cut_fragments(std::int32_t file, const std::vector<std::int32_t>& codes, std::size_t n_classes,
                                    std::int64_t fragment_rows);

/// Paths listed in a text file, one per line; blank lines and lines starting with '#' are
/// skipped, relative paths are taken relative to the list's folder.
std::vector<std::string> read_path_list(const std::string& list_path);

/// How class weights are set (see the file comment).
enum class CoverageWeighting { kBalanced, kCells };

/// Options of `select_fragments`.
struct SelectOptions {
  std::int64_t budget_cells = 0;         ///< B: total rows of the selected fragments at most
  std::int64_t min_per_class = 0;        ///< m: soft minimum cells per class (0 = none)
  std::int64_t max_per_class = 0;        ///< M: cap of counted cells per class (0 = all available)
  CoverageWeighting weighting = CoverageWeighting::kBalanced;
  double time_limit_seconds = 60;        ///< CBC wall-clock limit
  double relative_gap = 1e-6;            ///< CBC stops when (bound - objective) / |objective| is below
  bool use_ilp = true;                   ///< false: greedy only
  bool solver_log = false;               ///< CBC's log on stdout
};

/// One selection and its value under the model.
struct Selection {
  std::vector<std::int32_t> fragments;   ///< indices into FragmentTable::fragments, sorted
  std::vector<std::int64_t> covered;     ///< selected cells per class
  std::int64_t n_cells = 0;              ///< rows of the selected fragments
  std::int64_t shortfall = 0;            ///< sum_c max(0, min_c - covered_c)
  double coverage = 0;                   ///< sum_c w_c min(cap_c, covered_c)
  double objective = 0;                  ///< coverage - P * shortfall
  double seconds = 0;
};

/// What CBC reported.
struct IlpStats {
  std::string status;                    ///< "optimal", "time limit", "infeasible", "not run", ...
  double objective = 0;                  ///< of the best integer solution (model units)
  double best_bound = 0;                 ///< upper bound on the optimum
  double gap = 0;                        ///< (best_bound - objective) / max(1e-9, |objective|)
  double seconds = 0;
  std::int64_t nodes = 0;
  bool proven_optimal = false;
  bool time_limit_reached = false;
  int n_columns = 0;
  int n_rows = 0;
};

/// Outcome of `select_fragments`.
struct SelectionResult {
  std::vector<double> weights;           ///< w_c
  std::vector<std::int64_t> caps;        ///< cap_c
  std::vector<std::int64_t> minimums;    ///< min_c
  double penalty = 0;                    ///< P
  Selection greedy;
  Selection ilp;                         ///< empty unless the ILP ran and found a solution
  IlpStats stats;
  std::string chosen = "greedy";         ///< "ilp" or "greedy": the better objective (ILP on ties)
  [[nodiscard]] const Selection& best() const { return chosen == "ilp" ? ilp : greedy; }
};

/// The model's quantities for a table (weights, caps, minimums, penalty) with empty selections.
SelectionResult selection_model(const FragmentTable& table, const SelectOptions& options);

/// Evaluate a set of fragments under the model of `model` (fills covered, n_cells, objective...).
Selection evaluate_selection(const FragmentTable& table, const SelectionResult& model, std::vector<std::int32_t> fragments);

/// Greedy: repeatedly add the fragment with the largest objective gain per row that still fits
/// the budget (lazy evaluation: gains only shrink as the selection grows), until none gains.
Selection greedy_selection(const FragmentTable& table, const SelectionResult& model, std::int64_t budget_cells);

/// Solve the model: greedy, then CBC started from the greedy solution, within the time limit.
/// Throws InputError for a budget < 1 or min > max per class.
SelectionResult select_fragments(const FragmentTable& table, const SelectOptions& options);

/// selection.json: the chosen fragments (file, rows, per-class counts), totals per class, the
/// options, the objective, CBC's statistics and the greedy comparison.
nlohmann::json selection_to_json(const FragmentTable& table, const SelectOptions& options, const SelectionResult& result);

}  // namespace celltyper
