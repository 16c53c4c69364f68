// The expression feature route: log1p-CP10k over a panel of variable genes (conventions in
// expression_features.hpp).
#include <celltyper/error.hpp>
#include <celltyper/expression_features.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/parallel.hpp>

#include "huge_pages.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

namespace celltyper {
namespace {

/// Per var: the index of its gene in `targets` (sorted Entrez ids), or -1. Only the first var of
/// a gene maps (a duplicate var is ignored, as it would otherwise count twice).
std::vector<std::int32_t> map_vars(const GeneTable& table, const GeneResolveResult& resolved, const std::vector<std::int64_t>& targets,
                                   const std::vector<std::int32_t>* target_order = nullptr) {
  std::vector<std::int32_t> column(resolved.gene_index.size(), -1);
  std::vector<std::uint8_t> taken(targets.size(), 0);
  for (std::size_t var = 0; var < resolved.gene_index.size(); ++var) {
    const std::int32_t gene = resolved.gene_index[var];
    if (gene == kNoGene) continue;
    const std::int64_t entrez = table.gene(gene).entrez_id;
    const auto found = std::lower_bound(targets.begin(), targets.end(), entrez);
    if (found == targets.end() || *found != entrez) continue;
    const auto index = static_cast<std::size_t>(found - targets.begin());
    if (taken[index] != 0) continue;
    taken[index] = 1;
    column[var] = target_order == nullptr ? static_cast<std::int32_t>(index) : (*target_order)[index];
  }
  return column;
}

/// Per var: 1 when its value counts towards the cell's library size (every var but features
/// other than gene expression, such as antibody tags, when `size_factor_genes` is empty; else the
/// first var of each listed gene, as for the features).
std::vector<std::uint8_t> size_factor_vars(const GeneTable& table, const GeneResolveResult& resolved,
                                           const std::vector<std::int64_t>& size_factor_genes) {
  std::vector<std::uint8_t> counts(resolved.gene_index.size(), size_factor_genes.empty() ? 1 : 0);
  if (size_factor_genes.empty()) {
    for (std::size_t var = 0; var < counts.size(); ++var) counts[var] = resolved.is_other_feature(var) ? 0 : 1;
    return counts;
  }
  std::vector<std::uint8_t> taken(size_factor_genes.size(), 0);
  for (std::size_t var = 0; var < resolved.gene_index.size(); ++var) {
    const std::int32_t gene = resolved.gene_index[var];
    if (gene == kNoGene) continue;
    const auto found = std::lower_bound(size_factor_genes.begin(), size_factor_genes.end(), table.gene(gene).entrez_id);
    if (found == size_factor_genes.end() || *found != table.gene(gene).entrez_id) continue;
    const auto index = static_cast<std::size_t>(found - size_factor_genes.begin());
    if (taken[index] != 0) continue;
    taken[index] = 1;
    counts[var] = 1;
  }
  return counts;
}

/// Library size of one stored row: the sum of its values on the vars flagged in `counts` (of
/// expm1, 2^x - 1 or 10^x - 1 of them for relog1p / relog2 / relog10-cp10k: the counts times a per-cell factor).
inline double library_size(const CsrBlock& block, std::int64_t begin, std::int64_t end, const std::vector<std::uint8_t>& counts,
                           Normalization normalization) {
  double total = 0;
  for (std::int64_t k = begin; k < end; ++k) {
    if (counts[static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])] == 0) continue;
    total += unlogged(block.values[static_cast<std::size_t>(k)], normalization);
  }
  return total;
}

/// Normalised value of a stored count `value` in a cell with `total` counts.
inline double normalized(double value, double scale, Normalization normalization) {
  switch (normalization) {
    case Normalization::kNone: return value;
    case Normalization::kCp10k: return value * scale;
    case Normalization::kLog1pCp10k: return std::log1p(value * scale);
    case Normalization::kRelog1pCp10k:
    case Normalization::kRelog2Cp10k:
    case Normalization::kRelog10Cp10k:
    case Normalization::kSquareCp10k:
    case Normalization::kSinhCp10k: return std::log1p(unlogged(value, normalization) * scale);
  }
  return value;
}

/// log1p(n * scale) for the stored counts n of one cell, computed once per small integer count
/// met (the same expression, so the same bits), not once per stored value: counts are mostly
/// small integers.
class RowLog1p {
 public:
  explicit RowLog1p(double scale) : scale_(scale) { small_.fill(-1.0); }  // -1: not yet computed
  double operator()(double raw) {
    if (raw >= 1 && raw <= kSmall && raw == static_cast<double>(static_cast<std::uint32_t>(raw))) {
      double& value = small_[static_cast<std::uint32_t>(raw)];
      if (value < 0) value = std::log1p(raw * scale_);
      return value;
    }
    return std::log1p(raw * scale_);
  }

 private:
  static constexpr std::uint32_t kSmall = 32;
  double scale_;
  std::array<double, kSmall + 1> small_;
};

struct OpenedMatrix {
  std::string matrix;
  GeneResolveResult genes;
  std::unique_ptr<MatrixReader> reader;
  Normalization normalization = Normalization::kLog1pCp10k;
  std::string reason;
  bool counts = true;  ///< raw counts (choose_normalization)
};

OpenedMatrix open_for_expression(const Dataset& dataset, const GeneTable& table, const ExpressionOptions& options,
                                 std::vector<std::string>& warnings) {
  if (dataset.n_obs() == 0) throw InputError(fmt::format("{}: the dataset has zero cells", dataset.path()));
  OpenedMatrix opened;
  std::string matrix_note;
  opened.matrix = resolve_matrix_source(dataset, options.matrix, &matrix_note);
  if (!matrix_note.empty()) warnings.push_back(fmt::format("{}{}", kNotePrefix, matrix_note));
  opened.genes = resolve_dataset_genes(table, dataset, opened.matrix, options.genes);
  opened.reader = dataset.open_matrix(opened.matrix);
  opened.normalization =
      choose_normalization(*opened.reader, options.normalization, options.memory_limit_bytes, fmt::format("{}: {}", dataset.path(), opened.matrix),
                           opened.reason, warnings, true, &opened.counts, MatrixOrigin{&dataset, opened.matrix}, options.log_transformed_as_is);
  warnings.insert(warnings.end(), opened.genes.warnings.begin(), opened.genes.warnings.end());
  return opened;
}

}  // namespace

Normalization accumulate_expression_stats(const Dataset& dataset, const GeneTable& table, const ExpressionOptions& options,
                                          const std::vector<std::uint8_t>& keep, GeneExpressionStats& stats,
                                          std::vector<std::string>* warnings) {
  std::vector<std::string> local_warnings;
  OpenedMatrix opened = open_for_expression(dataset, table, options, warnings != nullptr ? *warnings : local_warnings);
  if (!keep.empty() && static_cast<std::int64_t>(keep.size()) != dataset.n_obs()) {
    throw InputError(fmt::format("{}: {} row flags for {} cells", dataset.path(), keep.size(), dataset.n_obs()));
  }
  // Grow the gene index by the genes of this dataset (sorted union), remapping accumulated sums.
  std::vector<std::int64_t> genes;
  for (const std::int32_t gene : opened.genes.gene_index) {
    if (gene != kNoGene) genes.push_back(table.gene(gene).entrez_id);
  }
  genes.insert(genes.end(), stats.entrez_ids.begin(), stats.entrez_ids.end());
  std::sort(genes.begin(), genes.end());
  genes.erase(std::unique(genes.begin(), genes.end()), genes.end());
  if (genes.size() != stats.entrez_ids.size()) {
    GeneExpressionStats grown;
    grown.entrez_ids = genes;
    grown.n_cells = stats.n_cells;
    const std::size_t n = genes.size();
    grown.sum.assign(n, 0);
    grown.sum_squares.assign(n, 0);
    grown.sum_expm1.assign(n, 0);
    grown.sum_expm1_squares.assign(n, 0);
    grown.n_expressing.assign(n, 0);
    for (std::size_t i = 0; i < stats.entrez_ids.size(); ++i) {
      const auto j = static_cast<std::size_t>(std::lower_bound(genes.begin(), genes.end(), stats.entrez_ids[i]) - genes.begin());
      grown.sum[j] = stats.sum[i];
      grown.sum_squares[j] = stats.sum_squares[i];
      grown.sum_expm1[j] = stats.sum_expm1[i];
      grown.sum_expm1_squares[j] = stats.sum_expm1_squares[i];
      grown.n_expressing[j] = stats.n_expressing[i];
    }
    stats = std::move(grown);
  }
  const std::vector<std::int32_t> column = map_vars(table, opened.genes, stats.entrez_ids);
  const std::vector<std::uint8_t> in_size_factor = size_factor_vars(table, opened.genes, options.size_factor_genes);
  const Normalization normalization = opened.normalization;
  const BlockStreamOptions stream = stream_options(dataset, opened.matrix, options.memory_limit_bytes);
  for_each_block(*opened.reader, stream, [&](const CsrBlock& block) {
    for (std::int64_t r = 0; r < block.n_rows; ++r) {
      const std::int64_t cell = block.first_row + r;
      if (!keep.empty() && keep[static_cast<std::size_t>(cell)] == 0) continue;
      ++stats.n_cells;
      const std::int64_t begin = block.indptr[static_cast<std::size_t>(r)];
      const std::int64_t end = block.indptr[static_cast<std::size_t>(r) + 1];
      const double total = library_size(block, begin, end, in_size_factor, normalization) * options.size_factor_multiplier;
      const double scale = total > 0 ? kExpressionTargetSum / total : 0.0;
      RowLog1p log1p_of(scale);
      for (std::int64_t k = begin; k < end; ++k) {
        const std::int32_t j = column[static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])];
        const double raw = block.values[static_cast<std::size_t>(k)];
        if (j < 0 || raw == 0) continue;
        const double value = normalization == Normalization::kLog1pCp10k ? log1p_of(raw) : normalized(raw, scale, normalization);
        // The linear value behind a log1p value: expm1(log1p(x * scale)) is x * scale.
        const double linear = normalization == Normalization::kLog1pCp10k     ? raw * scale
                              : is_relog(normalization)                       ? unlogged(raw, normalization) * scale
                              : normalization == Normalization::kCp10k        ? value
                                                                              : std::expm1(value);
        const auto g = static_cast<std::size_t>(j);
        stats.sum[g] += value;
        stats.sum_squares[g] += value * value;
        stats.sum_expm1[g] += linear;
        stats.sum_expm1_squares[g] += linear * linear;
        ++stats.n_expressing[g];
      }
    }
  });
  return normalization;
}

std::vector<std::vector<double>> library_sizes(const Dataset& dataset, const GeneTable& table, const ExpressionOptions& options,
                                               const std::vector<std::vector<std::int64_t>>& gene_sets,
                                               const std::vector<std::uint8_t>& keep) {
  std::vector<std::string> warnings;
  OpenedMatrix opened = open_for_expression(dataset, table, options, warnings);
  if (!keep.empty() && static_cast<std::int64_t>(keep.size()) != dataset.n_obs()) {
    throw InputError(fmt::format("{}: {} row flags for {} cells", dataset.path(), keep.size(), dataset.n_obs()));
  }
  std::vector<std::vector<std::uint8_t>> in_set;
  for (const auto& genes : gene_sets) {
    if (genes.empty()) throw InputError("library_sizes: an empty gene set (it would count every var)");
    in_set.push_back(size_factor_vars(table, opened.genes, genes));
  }
  std::vector<std::vector<double>> sums(gene_sets.size());
  const BlockStreamOptions stream = stream_options(dataset, opened.matrix, options.memory_limit_bytes);
  for_each_block(*opened.reader, stream, [&](const CsrBlock& block) {
    for (std::int64_t r = 0; r < block.n_rows; ++r) {
      if (!keep.empty() && keep[static_cast<std::size_t>(block.first_row + r)] == 0) continue;
      const std::int64_t begin = block.indptr[static_cast<std::size_t>(r)];
      const std::int64_t end = block.indptr[static_cast<std::size_t>(r) + 1];
      for (std::size_t set = 0; set < in_set.size(); ++set) sums[set].push_back(library_size(block, begin, end, in_set[set], opened.normalization));
    }
  });
  return sums;
}

std::vector<std::int64_t> select_variable_genes(const GeneExpressionStats& stats, int n_genes, std::int64_t min_cells) {
  if (n_genes < 1) throw InputError(fmt::format("--n-genes {} must be at least 1", n_genes));
  if (stats.n_cells < 2) throw InputError("selecting variable genes needs at least 2 cells");
  const auto cells = static_cast<double>(stats.n_cells);
  struct Candidate {
    std::size_t gene;
    double log_mean;
    double log_dispersion;
    double score = 0;
  };
  std::vector<Candidate> candidates;
  for (std::size_t g = 0; g < stats.entrez_ids.size(); ++g) {
    if (stats.n_expressing[g] < min_cells) continue;
    const double mean = stats.sum_expm1[g] / cells;
    const double variance = std::max(0.0, (stats.sum_expm1_squares[g] - cells * mean * mean) / (cells - 1));
    // Values beyond what log1p-normalised data can hold (expm1 overflows) give no usable mean or
    // dispersion: such a gene is no candidate (and never reaches the bin arithmetic below).
    if (!(mean > 0) || !std::isfinite(mean) || !std::isfinite(variance)) continue;
    const double dispersion = variance / mean;
    candidates.push_back({g, std::log1p(mean), dispersion > 0 ? std::log(dispersion) : -1e300});
  }
  if (candidates.empty()) {
    throw InputError(fmt::format("no gene is expressed in at least {} cells: cannot choose the expression panel", min_cells));
  }
  // 20 equal-width bins of log mean; z-score of log dispersion within each bin (a bin with one
  // gene gets z = 1, as scanpy does for single-gene bins).
  constexpr int kBins = 20;
  double low = candidates.front().log_mean;
  double high = low;
  for (const auto& c : candidates) {
    low = std::min(low, c.log_mean);
    high = std::max(high, c.log_mean);
  }
  const double width = (high - low) / kBins;
  std::vector<int> bin_of(candidates.size());
  std::vector<double> bin_sum(kBins, 0), bin_squares(kBins, 0);
  std::vector<std::int64_t> bin_count(kBins, 0);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    int bin = width > 0 ? static_cast<int>((candidates[i].log_mean - low) / width) : 0;
    bin = std::clamp(bin, 0, kBins - 1);
    bin_of[i] = bin;
    if (candidates[i].log_dispersion > -1e299) {
      bin_sum[static_cast<std::size_t>(bin)] += candidates[i].log_dispersion;
      bin_squares[static_cast<std::size_t>(bin)] += candidates[i].log_dispersion * candidates[i].log_dispersion;
      ++bin_count[static_cast<std::size_t>(bin)];
    }
  }
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const auto b = static_cast<std::size_t>(bin_of[i]);
    if (candidates[i].log_dispersion < -1e299) {
      candidates[i].score = -1e300;
      continue;
    }
    const double count = static_cast<double>(bin_count[b]);
    const double mean = bin_sum[b] / count;
    const double sd = count > 1 ? std::sqrt(std::max(0.0, (bin_squares[b] - count * mean * mean) / (count - 1))) : 0.0;
    candidates[i].score = sd > 1e-12 ? (candidates[i].log_dispersion - mean) / sd : 1.0;
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  const auto keep = std::min<std::size_t>(candidates.size(), static_cast<std::size_t>(n_genes));
  std::vector<std::int64_t> panel;
  panel.reserve(keep);
  for (std::size_t i = 0; i < keep; ++i) panel.push_back(stats.entrez_ids[candidates[i].gene]);
  return panel;
}

namespace {

/// What both streams need before the first block: the opened matrix, the feature column of each
/// var (-1 = not in the panel), the vars that count towards a cell's library size.
struct PanelStream {
  OpenedMatrix opened;
  std::vector<std::int32_t> column;  ///< var -> feature column (panel, then extra genes), -1 when neither
  std::int32_t width = 0;            ///< panel columns: an extra gene alone does not make a cell non-empty
  std::vector<std::uint8_t> in_size_factor;
  double size_factor_multiplier = 1.0;
};

PanelStream open_panel_stream(const Dataset& dataset, const GeneTable& table, const std::vector<std::int64_t>& panel_genes,
                              const ExpressionOptions& options, double min_panel_fraction, ExpressionFeatures& result,
                              const std::vector<std::int64_t>& extra = {}) {
  if (panel_genes.empty()) throw InputError("the expression panel is empty");
  PanelStream stream;
  stream.width = static_cast<std::int32_t>(panel_genes.size());
  std::vector<std::int64_t> combined;
  if (!extra.empty()) {
    combined = panel_genes;
    combined.insert(combined.end(), extra.begin(), extra.end());
  }
  const std::vector<std::int64_t>& panel = extra.empty() ? panel_genes : combined;
  stream.opened = open_for_expression(dataset, table, options, result.warnings);
  const OpenedMatrix& opened = stream.opened;
  result.matrix = opened.matrix;
  result.normalization = opened.normalization;
  result.normalization_reason = opened.reason;
  result.counts = opened.counts;
  result.n_cells = dataset.n_obs();
  result.n_features = stream.width;
  // Sorted panel ids with their feature column.
  std::vector<std::int32_t> by_id(panel.size());
  std::iota(by_id.begin(), by_id.end(), 0);
  std::sort(by_id.begin(), by_id.end(), [&](std::int32_t a, std::int32_t b) { return panel[static_cast<std::size_t>(a)] < panel[static_cast<std::size_t>(b)]; });
  std::vector<std::int64_t> sorted_ids(panel.size());
  for (std::size_t i = 0; i < panel.size(); ++i) sorted_ids[i] = panel[static_cast<std::size_t>(by_id[i])];
  if (std::adjacent_find(sorted_ids.begin(), sorted_ids.end()) != sorted_ids.end()) throw InputError("the expression panel lists a gene twice");
  stream.column = map_vars(table, opened.genes, sorted_ids, &by_id);
  stream.in_size_factor = size_factor_vars(table, opened.genes, options.size_factor_genes);
  stream.size_factor_multiplier = options.size_factor_multiplier;
  const std::int32_t width = stream.width;
  result.n_panel_genes_found = std::count_if(stream.column.begin(), stream.column.end(), [width](std::int32_t c) { return c >= 0 && c < width; });
  const double found = static_cast<double>(result.n_panel_genes_found) / static_cast<double>(panel_genes.size());
  if (found < min_panel_fraction) {
    throw InputError(fmt::format("{}: only {} of the {} panel genes of the model are among the vars ({:.1f}%, need {:.0f}%): var column "
                                 "'{}' read as {} ids. Pass --gene-column to choose another var column, or check the species",
                                 dataset.path(), result.n_panel_genes_found, panel_genes.size(), 100 * found, 100 * min_panel_fraction,
                                 opened.genes.column, to_string(opened.genes.id_type)));
  }
  if (found < 0.5) {
    result.warnings.push_back(fmt::format("only {} of the {} panel genes are in {}: {}", result.n_panel_genes_found, panel_genes.size(),
                                          dataset.path(),
                                          options.missing_genes_imputed
                                              ? "the others take the mean of the references that measured them (--gene-pooling impute; "
                                                "--gene-pooling shared trains on the genes every reference measured)"
                                              : "missing genes count as not expressed"));
  }
  return stream;
}

/// Rows of one block in parallel items of 256 rows: `row_work(r)` for every row.
template <typename RowWork>
void for_each_row(const CsrBlock& block, int num_threads, const RowWork& row_work) {
  constexpr std::int64_t kRowsPerItem = 256;
  const std::int64_t items = (block.n_rows + kRowsPerItem - 1) / kRowsPerItem;
  parallel_for(items, num_threads, [&](std::int64_t item) {
    const std::int64_t last = std::min(block.n_rows, (item + 1) * kRowsPerItem);
    for (std::int64_t r = item * kRowsPerItem; r < last; ++r) row_work(static_cast<std::size_t>(r));
  });
}

/// The features of row `row` of `block`: calls `emit(feature, value)` for every expressed panel
/// gene; returns false for an empty cell (no counts, or no panel gene expressed).
template <typename Emit>
bool row_features(const CsrBlock& block, std::size_t row, const PanelStream& stream, const Emit& emit) {
  const Normalization normalization = stream.opened.normalization;
  const std::int64_t begin = block.indptr[row];
  const std::int64_t end = block.indptr[row + 1];
  const double total = library_size(block, begin, end, stream.in_size_factor, normalization) * stream.size_factor_multiplier;
  if (total <= 0 && normalization != Normalization::kNone) return false;
  const double scale = total > 0 ? kExpressionTargetSum / total : 0.0;
  RowLog1p log1p_of(scale);
  const bool log1p = normalization == Normalization::kLog1pCp10k;
  bool any = false;
  for (std::int64_t k = begin; k < end; ++k) {
    const std::int32_t j = stream.column[static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])];
    const double raw = block.values[static_cast<std::size_t>(k)];
    if (j < 0 || raw == 0) continue;
    emit(j, static_cast<float>(log1p ? log1p_of(raw) : normalized(raw, scale, normalization)));
    any = any || j < stream.width;
  }
  return any;
}

}  // namespace

ExpressionFeatures stream_expression_features(const Dataset& dataset, const GeneTable& table, const std::vector<std::int64_t>& panel,
                                              const ExpressionOptions& options, const FeatureBlockCallback& callback,
                                              double min_panel_fraction) {
  ExpressionFeatures result;
  PanelStream stream = open_panel_stream(dataset, table, panel, options, min_panel_fraction, result);
  const auto width = static_cast<std::size_t>(panel.size());
  const BlockStreamOptions block_options = stream_options(dataset, stream.opened.matrix, options.memory_limit_bytes);
  // One block of features at a time (reused): the full matrix exists only if the callback keeps it.
  std::vector<float> values;
  std::vector<std::uint8_t> empty;
  for_each_block(*stream.opened.reader, block_options, [&](const CsrBlock& block) {
    values.resize(static_cast<std::size_t>(block.n_rows) * width);  // each row is zeroed by its worker below
    empty.assign(static_cast<std::size_t>(block.n_rows), 0);
    for_each_row(block, options.num_threads, [&](std::size_t row) {
      float* out = values.data() + row * width;
      std::fill_n(out, width, 0.0f);
      if (!row_features(block, row, stream, [out](std::int32_t j, float value) { out[j] = value; })) empty[row] = 1;
    });
    callback(block.first_row, block.n_rows, values.data(), empty.data());
  });
  result.genes = std::move(stream.opened.genes);
  return result;
}

ExpressionFeatures stream_sparse_expression_features(const Dataset& dataset, const GeneTable& table, const std::vector<std::int64_t>& panel,
                                                     const ExpressionOptions& options, const SparseFeatureBlockCallback& callback,
                                                     double min_panel_fraction, const std::vector<std::int64_t>& extra) {
  ExpressionFeatures result;
  PanelStream stream = open_panel_stream(dataset, table, panel, options, min_panel_fraction, result, extra);
  // A block's features take as much memory as the block (a column and a value per stored value):
  // the two blocks in flight get two thirds of the limit, the features the rest; one block (no
  // read-ahead: --threads 1) half of it.
  const std::size_t blocks_share = resolve_threads(0) > 1 ? options.memory_limit_bytes / 3 * 2 : options.memory_limit_bytes / 2;
  const BlockStreamOptions block_options = stream_options(dataset, stream.opened.matrix, blocks_share);
  SparseFeatureBlock features;
  for_each_block(*stream.opened.reader, block_options, [&](const CsrBlock& block) {
    const auto n_rows = static_cast<std::size_t>(block.n_rows);
    // Row r's entries go to slots [indptr[r], indptr[r] + counts[r]) relative to the block's first.
    const std::int64_t base = block.indptr[0];
    const auto slots = static_cast<std::size_t>(block.indptr[n_rows] - base);
    features.first_row = block.first_row;
    features.n_rows = block.n_rows;
    features.starts.resize(n_rows);
    features.counts.assign(n_rows, 0);
    detail::resize_for_overwrite(features.columns, slots);
    detail::resize_for_overwrite(features.values, slots);
    features.empty.assign(n_rows, 0);
    for_each_row(block, options.num_threads, [&](std::size_t row) {
      const auto start = static_cast<std::size_t>(block.indptr[row] - base);
      features.starts[row] = static_cast<std::int64_t>(start);
      std::int32_t count = 0;
      const bool any = row_features(block, row, stream, [&](std::int32_t j, float value) {
        features.columns[start + static_cast<std::size_t>(count)] = j;
        features.values[start + static_cast<std::size_t>(count)] = value;
        ++count;
      });
      features.counts[row] = count;
      if (!any) features.empty[row] = 1;
    });
    callback(features);
  });
  result.genes = std::move(stream.opened.genes);
  return result;
}

ExpressionFeatures expression_features(const Dataset& dataset, const GeneTable& table, const std::vector<std::int64_t>& panel,
                                       const ExpressionOptions& options, double min_panel_fraction) {
  std::vector<float> values;
  std::vector<std::uint8_t> empty;
  std::size_t width = panel.size();
  ExpressionFeatures result = stream_expression_features(
      dataset, table, panel, options,
      [&](std::int64_t first_row, std::int64_t n_rows, const float* block, const std::uint8_t* block_empty) {
        if (values.empty()) {
          values.assign(static_cast<std::size_t>(dataset.n_obs()) * width, 0.0f);
          empty.assign(static_cast<std::size_t>(dataset.n_obs()), 0);
        }
        std::copy_n(block, static_cast<std::size_t>(n_rows) * width, values.data() + static_cast<std::size_t>(first_row) * width);
        std::copy_n(block_empty, static_cast<std::size_t>(n_rows), empty.data() + static_cast<std::size_t>(first_row));
      },
      min_panel_fraction);
  result.values = std::move(values);
  result.empty = std::move(empty);
  return result;
}

}  // namespace celltyper
