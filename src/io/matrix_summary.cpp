#include <celltyper/matrix_summary.hpp>

#include <fmt/format.h>

#include <celltyper/error.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>

namespace celltyper {

const char* to_string(ValueScale scale) {
  switch (scale) {
    case ValueScale::kEmpty: return "empty";
    case ValueScale::kRawCounts: return "raw-counts";
    case ValueScale::kNormalized: return "normalized";
    case ValueScale::kLogNormalized: return "log-normalized";
    case ValueScale::kLog2Normalized: return "log2-normalized";
    case ValueScale::kLog10Normalized: return "log10-normalized";
    case ValueScale::kLogTransformed: return "log-transformed";
    case ValueScale::kSqrtCounts: return "sqrt-counts";
    case ValueScale::kAsinhCounts: return "asinh-counts";
    case ValueScale::kScaled: return "scaled";
    case ValueScale::kUnknown: return "unknown";
  }
  return "unknown";
}

double ordmag_floor(std::vector<double> values) {
  if (values.empty()) return 1;
  const std::size_t top = std::min<std::size_t>(values.size(), 3000);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(top / 100), values.end(), std::greater<>());
  return std::max(1.0, values[top / 100] / 10);
}

Quantiles quantiles(std::vector<double> values) {
  Quantiles q;
  if (values.empty()) return q;
  std::sort(values.begin(), values.end());
  // Linear interpolation between closest ranks (numpy's default).
  const auto at = [&](double p) {
    const double position = p * static_cast<double>(values.size() - 1);
    const auto lower = static_cast<std::size_t>(std::floor(position));
    const std::size_t upper = std::min(lower + 1, values.size() - 1);
    const double fraction = position - static_cast<double>(lower);
    return values[lower] + (values[upper] - values[lower]) * fraction;
  };
  q.min = values.front();
  q.q25 = at(0.25);
  q.median = at(0.5);
  q.q75 = at(0.75);
  q.max = values.back();
  return q;
}

namespace {

nlohmann::json quantiles_json(const Quantiles& q) {
  return {{"min", q.min}, {"q25", q.q25}, {"median", q.median}, {"q75", q.q75}, {"max", q.max}};
}

/// Relative spread of per-cell totals: (q75 - q25) / median.
double relative_spread(const Quantiles& q) { return q.median > 0 ? (q.q75 - q.q25) / q.median : 1.0; }

/// Share of values whose ratio to their cell's smallest is whole (0 when fewer than 50 were
/// checked: a few ratios are whole by chance).
double whole_share(std::int64_t whole, std::int64_t checked) {
  return checked >= 50 ? static_cast<double>(whole) / static_cast<double>(checked) : 0.0;
}
/// Above this share of whole ratios, logged values are read as log of counts scaled per cell
/// (in the other base, or for values not proportional to counts, about 2% are whole by chance).
constexpr double kWholeRatioShare = 0.9;

/// Square roots or asinh of counts (non-integer values whose squares / sinh are whole), which
/// look logged or unknown: the scale and its reason, or false.
bool transform_of_counts(MatrixSummary& summary) {
  if (const double share = whole_share(summary.whole_squares, summary.squares_checked); share >= kWholeRatioShare) {
    summary.scale = ValueScale::kSqrtCounts;
    summary.scale_reason = fmt::format("non-integer, max {:.3g}; {:.0f}% of the {} values checked square to whole numbers: square roots "
                                       "of counts", summary.max_value, 100.0 * share, summary.squares_checked);
    return true;
  }
  if (const double share = whole_share(summary.whole_sinh, summary.sinh_checked); share >= kWholeRatioShare) {
    summary.scale = ValueScale::kAsinhCounts;
    summary.scale_reason = fmt::format("non-integer, max {:.3g}; {:.0f}% of the {} values checked have a whole sinh: asinh of counts",
                                       summary.max_value, 100.0 * share, summary.sinh_checked);
    return true;
  }
  return false;
}

void classify(MatrixSummary& summary) {
  if (summary.stored_values == 0 || (summary.max_value == 0 && summary.n_negative == 0)) {
    summary.scale = ValueScale::kEmpty;
    summary.scale_reason = summary.stored_values == 0                               ? "no stored values"
                           : summary.n_nan + summary.n_inf == summary.stored_values ? "every stored value is NaN or infinite"
                                                                                     : "every stored value is 0";
    return;
  }
  if (summary.n_negative > 0) {
    summary.scale = ValueScale::kScaled;
    // A few values a hair below 0 in otherwise non-negative data: round-off, not centring.
    const bool rare = summary.n_negative * 1000 < summary.stored_values;
    const bool round_off = summary.min_value > -1e-3 && rare;
    summary.scale_reason =
        round_off ? fmt::format("{} tiny negative values (min {:.3g}): round-off in otherwise non-negative values? set them to 0 "
                                "(X.data[X.data < 0] = 0)",
                                summary.n_negative, summary.min_value)
        // Centring makes about half the values negative; a few among thousands are damage, not scaling.
        : rare ? fmt::format("{} negative values (min {:.3g}) among {} otherwise non-negative ones: neither counts nor scaled data "
                             "(corrupt values?); fix or remove them",
                             summary.n_negative, summary.min_value, summary.stored_values - summary.n_negative)
               : fmt::format("{} negative values (min {:.3g}): centred/scaled data, not counts", summary.n_negative, summary.min_value);
    return;
  }
  const std::int64_t filled_rows = summary.rows_scanned - summary.empty_rows;
  summary.mixed_scales = summary.n_non_integer > 0 && 20 * summary.integer_rows >= filled_rows && 20 * summary.log_like_rows >= filled_rows;
  if (summary.mixed_scales) {
    summary.scale = ValueScale::kUnknown;
    summary.scale_reason =
        fmt::format("counts and log-normalised cells mixed: {} of {} cells scanned hold whole numbers only and {} non-integer values "
                    "below {:.0f} (differently processed data joined?)",
                    summary.integer_rows, filled_rows, summary.log_like_rows, MatrixSummary::kLogLikeMax);
    return;
  }
  if (summary.n_non_integer == 0) {
    summary.scale = ValueScale::kRawCounts;
    summary.scale_reason = fmt::format("non-negative integers (max {:.0f}, median total {:.0f} per cell)", summary.max_value,
                                       summary.row_totals.median);
    return;
  }
  if (transform_of_counts(summary)) return;
  const bool equal_totals = relative_spread(summary.row_totals) < 0.01;
  if (summary.max_value < 30) {
    // Logged in base e, 2 or 10: the base that unlogs to equal totals per cell. Several give equal
    // totals only for a cell or two (or identical cells): the first whose total is within 0.01
    // decade of a power of ten (a scale factor such as 1e4 or 1e6) wins, else base e.
    struct Base {
      ValueScale scale;
      const Quantiles* totals;
      double whole;  // share of whole ratios (log of counts scaled per cell)
      const char* unlog;
      const char* log;
    };
    const std::array<Base, 3> bases{{
        {ValueScale::kLogNormalized, &summary.expm1_row_totals, whole_share(summary.expm1_whole_ratios, summary.expm1_ratios_checked), "expm1",
         "log1p"},
        {ValueScale::kLog2Normalized, &summary.exp2m1_row_totals, whole_share(summary.exp2m1_whole_ratios, summary.exp2m1_ratios_checked),
         "2^x - 1", "log2(1 + x)"},
        {ValueScale::kLog10Normalized, &summary.exp10m1_row_totals,
         whole_share(summary.exp10m1_whole_ratios, summary.exp10m1_ratios_checked), "10^x - 1", "log10(1 + x)"},
    }};
    const auto off_round = [](double total) {
      const double decades = std::log10(std::max(total, 1e-300));
      return std::abs(decades - std::round(decades));
    };
    const Base* equal = nullptr;
    for (const Base& base : bases) {
      if (relative_spread(*base.totals) >= 0.01) continue;
      if (equal == nullptr) equal = &base;
      if (off_round(base.totals->median) < 0.01) {
        equal = &base;
        break;
      }
    }
    const Base* scaled = &bases[0];
    for (const Base& base : bases) {
      if (base.whole > scaled->whole) scaled = &base;
    }
    if (equal != nullptr) {
      summary.scale = equal->scale;
      summary.scale_reason = fmt::format("non-integer, max {:.3g}; {} totals are equal per cell ({:.4g}): {} of normalised counts",
                                         summary.max_value, equal->unlog, equal->totals->median, equal->log);
    } else if (scaled->whole >= kWholeRatioShare) {
      // log of counts times a per-cell factor: normalised again as log1p(CP10k) data is.
      summary.scale = scaled->scale;
      summary.scale_reason = fmt::format("non-integer, max {:.3g}; {} totals vary per cell but {:.0f}% of the values are whole multiples of "
                                         "their cell's smallest: {} of counts scaled per cell (not to equal totals)",
                                         summary.max_value, scaled->unlog, 100.0 * scaled->whole, scaled->log);
    } else {
      summary.scale = ValueScale::kLogTransformed;
      summary.scale_reason = fmt::format("non-integer, max {:.3g}; read back in base e, 2 or 10, totals vary per cell and are no "
                                         "whole multiples of a count: log-transformed, normalisation unknown",
                                         summary.max_value);
    }
    return;
  }
  if (equal_totals) {
    summary.scale = ValueScale::kNormalized;
    summary.scale_reason = fmt::format("non-integer with equal totals per cell ({:.4g}): normalised counts, not logged",
                                       summary.row_totals.median);
    return;
  }
  summary.scale = ValueScale::kUnknown;
  summary.scale_reason = fmt::format("non-integer values up to {:.3g} with unequal totals (TPM/FPKM or corrected data?)", summary.max_value);
}

}  // namespace

nlohmann::json MatrixSummary::to_json() const {
  return {{"source", info.source},
          {"encoding", to_string(info.encoding)},
          {"shape", {info.n_rows, info.n_cols}},
          {"value_dtype", info.value_dtype},
          {"index_dtype", info.index_dtype},
          {"compression", info.compression},
          {"chunks", info.chunks},
          {"stored_bytes", info.stored_bytes},
          {"nnz", info.nnz},
          {"rows_scanned", rows_scanned},
          {"stored_values_scanned", stored_values},
          {"density", density},
          {"min", min_value},
          {"max", max_value},
          {"n_nan", n_nan},
          {"n_inf", n_inf},
          {"n_negative", n_negative},
          {"n_non_integer", n_non_integer},
          {"n_explicit_zeros", n_explicit_zeros},
          {"empty_cells", empty_rows},
          {"total_per_cell", quantiles_json(row_totals)},
          {"cells_by_ordmag", ordmag_cells},
          {"genes_per_cell", quantiles_json(genes_per_row)},
          {"value_scale", to_string(scale)},
          {"value_scale_reason", scale_reason},
          {"warnings", warnings}};
}

namespace {

double expm1_capped(double value) { return std::expm1(std::min(value, 700.0)); }
double exp2m1_capped(double value) { return std::exp2(std::min(value, 1000.0)) - 1.0; }
double exp10m1_capped(double value) { return std::pow(10.0, std::min(value, 300.0)) - 1.0; }

/// `function(value)` as the function gives it, from a table for the small non-negative integers
/// that count matrices hold (most of the scan's time went to expm1 on them).
template <double (*function)(double)>
double from_integer_table(double value, bool is_integer) {
  static const std::array<double, 256> kSmallIntegers = [] {
    std::array<double, 256> table{};
    for (std::size_t i = 0; i < table.size(); ++i) table[i] = function(static_cast<double>(i));
    return table;
  }();
  if (is_integer && value >= 0 && value < static_cast<double>(kSmallIntegers.size())) {
    return kSmallIntegers[static_cast<std::size_t>(value)];
  }
  return function(value);
}

/// Add one row's whole-ratio counts (see MatrixSummary::ratios_checked) to `summary`.
void count_whole_ratios(const CsrBlock& block, std::size_t begin, std::size_t end, MatrixSummary& summary) {
  double smallest = std::numeric_limits<double>::infinity();
  for (std::size_t k = begin; k < end; ++k) {
    const double value = block.values[k];
    if (value > 0 && std::isfinite(value)) smallest = std::min(smallest, value);
  }
  if (!std::isfinite(smallest)) return;
  const double smallest_natural = std::expm1(smallest);
  const double smallest_base2 = std::exp2(smallest) - 1.0;
  const double smallest_base10 = std::pow(10.0, smallest) - 1.0;
  const auto whole = [](double ratio) { return std::abs(ratio - std::round(ratio)) < 0.01; };
  for (std::size_t k = begin; k < end; ++k) {
    const double value = block.values[k];
    if (value > 0 && value != std::floor(value)) {  // (whole values square to whole ones)
      if (value <= MatrixSummary::kMaxSquared) {
        ++summary.squares_checked;
        if (whole(value * value)) ++summary.whole_squares;
      }
      if (value <= MatrixSummary::kMaxSinh) {
        ++summary.sinh_checked;
        if (whole(std::sinh(value))) ++summary.whole_sinh;
      }
    }
    if (!(value > smallest) || !std::isfinite(value)) continue;
    const double natural = expm1_capped(value) / smallest_natural;
    const double base2 = exp2m1_capped(value) / smallest_base2;
    const double base10 = exp10m1_capped(value) / smallest_base10;
    if (natural <= MatrixSummary::kMaxWholeRatio) {
      ++summary.expm1_ratios_checked;
      if (whole(natural)) ++summary.expm1_whole_ratios;
    }
    if (base2 <= MatrixSummary::kMaxWholeRatio) {
      ++summary.exp2m1_ratios_checked;
      if (whole(base2)) ++summary.exp2m1_whole_ratios;
    }
    if (base10 <= MatrixSummary::kMaxWholeRatio) {
      ++summary.exp10m1_ratios_checked;
      if (whole(base10)) ++summary.exp10m1_whole_ratios;
    }
  }
}

}  // namespace

constexpr std::size_t kSummaryBlockBytes = std::size_t{8} << 20;

std::vector<RowRange> scan_ranges(const MatrixReader& reader, std::int64_t max_rows) {
  constexpr std::int64_t kRuns = 8;
  const std::int64_t n = reader.n_rows();
  if (max_rows < 0 || max_rows >= n - max_rows) return {{0, n}};
  if (max_rows < kRuns) return {{0, max_rows}};
  std::vector<RowRange> ranges;
  const std::int64_t size = max_rows / kRuns;  // the first and last runs touch the matrix's ends
  for (std::int64_t run = 0; run < kRuns; ++run) {
    const std::int64_t begin = run * (n - size) / (kRuns - 1);
    ranges.push_back({begin, begin + size});
  }
  return ranges;
}

MatrixSummary summarize_matrix(MatrixReader& reader, const SummarizeOptions& options) {
  MatrixSummary summary;
  summary.info = reader.info();
  summary.min_value = std::numeric_limits<double>::infinity();
  summary.max_value = -std::numeric_limits<double>::infinity();
  const std::vector<RowRange> ranges = scan_ranges(reader, options.max_rows);
  std::int64_t rows = 0;
  for (const RowRange& range : ranges) rows += range.size();
  std::vector<double> totals;
  std::vector<double> detected;
  std::vector<double> expm1_totals;
  std::vector<double> exp2m1_totals;
  std::vector<double> exp10m1_totals;
  totals.reserve(static_cast<std::size_t>(rows));
  const bool sparse = summary.info.encoding != MatrixEncoding::kDense;
  if (options.count_columns) summary.column_cells.assign(static_cast<std::size_t>(std::max<std::int64_t>(summary.info.n_cols, 0)), 0);
  // Blocks of at most 4 MB, two in flight: the next is read (inflated on every core) while this
  // one is summarised, and both buffers are reused, so pages are faulted in once, not per block.
  BlockStreamOptions stream;
  stream.memory_limit_bytes = std::min(options.memory_limit_bytes, kSummaryBlockBytes);
  stream.rows = ranges;
  stream.refuse_non_finite = false;  // counted below
  for_each_block(reader, stream, [&](const CsrBlock& block) {
    for (std::int64_t r = 0; r < block.n_rows; ++r) {
      double total = 0;
      double expm1_total = 0;
      double exp2m1_total = 0;
      double exp10m1_total = 0;
      double row_max = 0;
      bool row_non_integer = false;
      bool row_counts = false;
      std::size_t row_non_integers = 0;
      const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(r)]);
      const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(r) + 1]);
      for (std::size_t k = begin; k < end; ++k) {
        const double value = block.values[k];
        if (std::isnan(value)) {
          ++summary.n_nan;
          continue;
        }
        if (std::isinf(value)) {
          ++summary.n_inf;
          continue;
        }
        summary.min_value = std::min(summary.min_value, value);
        summary.max_value = std::max(summary.max_value, value);
        if (value < 0) ++summary.n_negative;
        row_max = std::max(row_max, value);
        const bool is_integer = value == std::floor(value);
        if (!is_integer) {
          ++summary.n_non_integer;
          ++row_non_integers;
          row_non_integer = true;
        }
        if (value == 0 && sparse) ++summary.n_explicit_zeros;
        if (value != 0) {
          row_counts = true;
          if (options.count_columns) ++summary.column_cells[static_cast<std::size_t>(block.indices[k])];
        }
        total += value;
        expm1_total += from_integer_table<expm1_capped>(value, is_integer);
        exp2m1_total += from_integer_table<exp2m1_capped>(value, is_integer);
        exp10m1_total += from_integer_table<exp10m1_capped>(value, is_integer);
      }
      if (row_non_integer) count_whole_ratios(block, begin, end, summary);
      // (log1p values are all non-integer; EM-quantified counts have a few fractions per cell)
      if (2 * row_non_integers >= end - begin && row_max < MatrixSummary::kLogLikeMax) ++summary.log_like_rows;
      if (!row_non_integer && row_max > 0) ++summary.integer_rows;
      if (end == begin) ++summary.empty_rows;
      if (!row_counts) ++summary.rows_without_counts;
      summary.stored_values += static_cast<std::int64_t>(end - begin);
      totals.push_back(total);
      expm1_totals.push_back(expm1_total);
      exp2m1_totals.push_back(exp2m1_total);
      exp10m1_totals.push_back(exp10m1_total);
      detected.push_back(static_cast<double>(end - begin));
    }
    summary.rows_scanned += block.n_rows;
  });
  if (summary.stored_values == summary.n_nan + summary.n_inf) summary.min_value = summary.max_value = 0;
  const double cells = static_cast<double>(summary.rows_scanned);
  summary.density = cells > 0 && summary.info.n_cols > 0 ? static_cast<double>(summary.stored_values) / (cells * static_cast<double>(summary.info.n_cols)) : 0;
  if (summary.info.n_cols >= 10000 && !totals.empty()) {
    const double floor = ordmag_floor(totals);
    summary.ordmag_cells = std::count_if(totals.begin(), totals.end(), [floor](double total) { return total >= floor; });
  }
  summary.row_totals = quantiles(std::move(totals));
  summary.genes_per_row = quantiles(std::move(detected));
  summary.expm1_row_totals = quantiles(std::move(expm1_totals));
  summary.exp2m1_row_totals = quantiles(std::move(exp2m1_totals));
  summary.exp10m1_row_totals = quantiles(std::move(exp10m1_totals));
  classify(summary);
  if (summary.n_nan > 0) summary.warnings.push_back(fmt::format("{} NaN values", summary.n_nan));
  if (summary.n_inf > 0) summary.warnings.push_back(fmt::format("{} infinite values", summary.n_inf));
  if (summary.mixed_scales) summary.warnings.push_back(summary.scale_reason + ": give every cell the same processing");
  if (summary.n_negative > 0 && summary.scale != ValueScale::kScaled) summary.warnings.push_back(fmt::format("{} negative values", summary.n_negative));
  if (summary.empty_rows > 0) summary.warnings.push_back(fmt::format("{} cells have no stored value", summary.empty_rows));
  if (summary.rows_scanned == 0) summary.warnings.push_back("the matrix has no cells");
  return summary;
}

std::string choose_counts_matrix(const Dataset& dataset, std::string* why) {
  const std::vector<std::string> sources = dataset.matrix_sources();
  if (sources.empty()) throw InputError(fmt::format("{}: no matrix to read (no X, raw/X or layer)", dataset.path()));
  const auto has = [&](const std::string& source) { return std::find(sources.begin(), sources.end(), source) != sources.end(); };
  const auto summary_of = [&](const std::string& source) {
    SummarizeOptions scan;
    scan.max_rows = 2000;
    const std::unique_ptr<MatrixReader> reader = dataset.open_matrix(source);
    return summarize_matrix(*reader, scan);
  };
  const std::string first = has("X") ? std::string("X") : sources.front();
  if (sources.size() == 1) {
    if (why != nullptr) *why = dataset.reading_note();
    return first;
  }
  // A raw/X saved for other cells (before cells were filtered) is no candidate; asked for by
  // name (--layer raw), it is refused with the reason.
  const auto usable_source = [&](const std::string& source) {
    return has(source) && (source != "raw/X" || dataset.matrix_info(source).n_rows == dataset.n_obs());
  };
  const auto usable_scale = [](ValueScale scale) {
    return scale != ValueScale::kScaled && scale != ValueScale::kUnknown && scale != ValueScale::kEmpty;
  };
  if (first != "raw/X" && usable_source("raw/X")) {
    // X (and its layers) cut to a gene subset of raw/X: scanpy's `adata.raw = adata`, then X
    // restricted to the highly variable genes. The genes a panel measures count for more than
    // having counts: read raw/X when it is not scaled.
    const std::int64_t n_first = dataset.matrix_info(first).n_cols;
    const std::int64_t n_raw = dataset.matrix_info("raw/X").n_cols;
    if (n_raw >= kRawGeneSupersetRatio * n_first) {
      const MatrixSummary raw = summary_of("raw/X");
      if (usable_scale(raw.scale)) {
        if (why != nullptr) {
          *why = fmt::format("{} measures {} genes and raw/X {} ({} cut to a gene subset, e.g. highly variable genes): raw/X read "
                             "(it looks {}; --layer {} reads {})", first, n_first, n_raw, first, to_string(raw.scale), first, first);
        }
        return "raw/X";
      }
    }
  }
  const MatrixSummary main = summary_of(first);
  if (main.scale == ValueScale::kRawCounts) return first;  // (an empty X defers to counts elsewhere)
  std::string usable;  // with scaled (sc.pp.scale) or no values in X: the first of the others that is not scaled
  MatrixSummary usable_summary;
  for (const std::string candidate : {"layers/counts", "raw/X"}) {
    if (candidate == first || !usable_source(candidate)) continue;
    MatrixSummary other = summary_of(candidate);
    if (other.scale == ValueScale::kRawCounts) {
      if (why != nullptr) {
        *why = fmt::format("{} looks {} and {} holds raw counts: {} read (celltyper normalises counts itself; --layer {} reads {})", first,
                           to_string(main.scale), candidate, candidate, first, first);
      }
      return candidate;
    }
    if (usable.empty() && usable_scale(other.scale)) {
      usable = candidate;
      usable_summary = std::move(other);
    }
  }
  if ((main.scale == ValueScale::kScaled || main.scale == ValueScale::kEmpty) && !usable.empty()) {
    // scanpy's usual file: log1p(CP10k) kept in raw before X was scaled, no counts anywhere.
    if (why != nullptr) {
      *why = fmt::format("{} looks {} and no matrix holds counts; {} looks {}: {} read (--layer NAME reads another)", first,
                         to_string(main.scale), usable, to_string(usable_summary.scale), usable);
    }
    return usable;
  }
  return first;
}

GeneResolveResult resolve_dataset_genes(const GeneTable& table, const Dataset& dataset, const std::string& source,
                                        const GeneResolveOptions& options) {
  const DataFrame var = dataset.read_var_of(source);
  GeneResolveResult first = resolve_genes(table, var, options);
  if (first.n_duplicate_vars == 0 || options.var_cells != nullptr) return first;
  const std::string matrix = resolve_matrix_source(dataset, source);
  const Dataset& base = dataset.scan_base();  // (a thinned copy reads its genes as its cells' own counts do)
  const Dataset::VarScan& scanned = base.var_scan(matrix, [&base, &matrix] {
    SummarizeOptions scan;
    scan.max_rows = 2000;
    scan.count_columns = true;
    MatrixSummary summary = summarize_matrix(*base.open_matrix(matrix), scan);
    return Dataset::VarScan{std::move(summary.column_cells), summary.rows_scanned};
  });
  if (scanned.cells.size() != first.n_vars()) return first;
  // Measured: counts in 1% of the scanned cells (10 at least); a rare gene's var without a count
  // in a small scan says nothing, and the names decide between two such vars, as before (even a
  // scan of every cell of a small file: 30 pbmc3k cells leave AGO2's var empty by chance).
  const std::int64_t floor = std::max<std::int64_t>(10, scanned.rows_scanned / 100);
  std::vector<std::int64_t> measured(scanned.cells.size(), 0);
  for (std::size_t var = 0; var < measured.size(); ++var) measured[var] = scanned.cells[var] >= floor ? 1 : 0;
  GeneResolveOptions with_counts = options;
  with_counts.var_cells = &measured;
  GeneResolveResult resolved = resolve_genes(table, var, with_counts);
  // A move needs the new var to hold counts in 4 times the cells the old one does: two vars of a
  // rare gene with counts in a few cells each (pbmc3k's AGO2 and its old alias CASC7: 8 and 11 of
  // 660 cells) are both measured, and the names decide; padding leaves the old var (next to) empty.
  std::vector<std::int64_t> first_var(table.size(), -1);
  for (std::size_t row = 0; row < first.n_vars(); ++row) {
    if (first.gene_index[row] != kNoGene) first_var[static_cast<std::size_t>(first.gene_index[row])] = static_cast<std::int64_t>(row);
  }
  bool kept = false;
  for (std::size_t row = 0; row < resolved.n_vars(); ++row) {
    const std::int32_t gene = resolved.gene_index[row];
    if (gene == kNoGene || gene == first.gene_index[row]) continue;
    const std::int64_t before = first_var[static_cast<std::size_t>(gene)];
    if (before < 0 || scanned.cells[row] >= 4 * scanned.cells[static_cast<std::size_t>(before)]) continue;
    measured[static_cast<std::size_t>(before)] = 1;
    kept = true;
  }
  if (kept) resolved = resolve_genes(table, var, with_counts);
  const Column* names = resolved.column == "_index" ? nullptr : var.find(resolved.column);
  const auto name_of = [&](std::size_t row) { return names != nullptr ? names->value_as_string(row) : var.index.at(row); };
  std::size_t moved = 0;
  bool same_names = true;  // (every such pair two vars of one name: var names not made unique)
  std::vector<std::string> examples;
  for (std::size_t row = 0; row < resolved.n_vars(); ++row) {
    if (resolved.gene_index[row] == kNoGene || resolved.gene_index[row] == first.gene_index[row]) continue;
    ++moved;  // (a gene now read from this var, before from another)
    const std::int64_t before = first_var[static_cast<std::size_t>(resolved.gene_index[row])];
    const bool same = before >= 0 && name_of(static_cast<std::size_t>(before)) == name_of(row);
    same_names = same_names && same;
    if (examples.size() < 3) {
      examples.push_back(same ? fmt::format("'{}' (var {}, not var {})", name_of(row), row + 1, before + 1)
                              : fmt::format("{} from '{}'", table.gene(resolved.gene_index[row]).symbol, name_of(row)));
    }
  }
  if (moved > 0) {
    resolved.warnings.push_back(fmt::format(
        "{}: {} gene{} named by two vars {} read from the one with counts: the {} has counts in fewer than {} of the {} "
        "cells scanned, the other in more ({}): {}",
        dataset.path(), moved, moved == 1 ? "" : "s", moved == 1 ? "is" : "are", same_names ? "first var of the name" : "better-named var", floor,
        scanned.rows_scanned,
        same_names ? "two vars of one name: var names not made unique" : "files annotated with different gene symbols, joined?",
        fmt::join(examples, ", ")));
  }
  return resolved;
}

}  // namespace celltyper
