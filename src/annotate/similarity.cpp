// Similarity of query cells to a model's reference types (reference_similarity.hpp).
#include <celltyper/cell_embedder.hpp>
#include <celltyper/parallel.hpp>
#include <celltyper/reference_similarity.hpp>

#include "splitmix64.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

namespace celltyper {

namespace {

using detail::SplitMix64;

/// Thinning targets (total counts) of the calibration, shallow to deep; the last is the cell as it is.
constexpr double kLevels[] = {250, 500, 1000, 2000, 4000, 8000, 16000, 32000, std::numeric_limits<double>::infinity()};
constexpr std::size_t kMinCountsLevel = 2;  // kLevels[kMinCountsLevel] == kSimilarityMinCounts
static_assert(kLevels[kMinCountsLevel] == kSimilarityMinCounts);

/// A cell's ranks over F genes for Spearman correlation with centred centroid ranks: genes without
/// a value share the lowest average rank z0; `excess` holds, per detected gene, its rank minus z0
/// (so that the correlation's numerator is the sum of excess x centroid rank over detected genes
/// alone), `norm` the square root of the sum of squared centred ranks over all F genes.
struct RankedCell {
  std::vector<std::int32_t> genes;
  std::vector<double> excess;
  double norm = 0;
};

/// The sort key of a detected gene: the value's float bits (positive floats order as their bits
/// do) above the gene's index, so that one integer sort ranks a cell.
std::uint64_t rank_key(double value, std::int32_t gene) {
  const auto single = static_cast<float>(value);
  std::uint32_t bits = 0;
  std::memcpy(&bits, &single, sizeof bits);
  return (static_cast<std::uint64_t>(bits) << 32) | static_cast<std::uint32_t>(gene);
}

/// A cell's ranks from the keys (rank_key) of its detected genes (values > 0), reordered. Counts
/// take few distinct values (most genes of a cell are seen once or twice): those are ranked
/// through a small hash table of distinct values, and only values with more distinct levels than
/// it holds (log values of another kind) sort every key.
RankedCell rank_cell(std::vector<std::uint64_t>& keys, std::size_t n_genes) {
  RankedCell cell;
  const auto f = static_cast<double>(n_genes);
  const std::size_t n = keys.size();
  const auto d = static_cast<double>(n);
  const double z0 = (f - d + 1) / 2;  // average rank of the F - d genes without a value
  const double mean = (f + 1) / 2;
  double ss = (f - d) * (z0 - mean) * (z0 - mean);
  cell.genes.resize(n);
  cell.excess.resize(n);
  constexpr std::size_t kSlots = 1024;        // open addressing, a power of two
  constexpr std::size_t kMaxDistinct = 256;   // well under kSlots: short probes
  thread_local std::vector<std::int32_t> slot_of;
  thread_local std::vector<std::uint32_t> slot_bits;
  thread_local std::vector<std::uint32_t> distinct_bits;
  thread_local std::vector<std::uint32_t> distinct_count;
  thread_local std::vector<std::int32_t> which;
  slot_of.assign(kSlots, -1);
  slot_bits.resize(kSlots);
  distinct_bits.clear();
  distinct_count.clear();
  which.resize(n);
  bool few = true;
  for (std::size_t i = 0; i < n && few; ++i) {
    const auto bits = static_cast<std::uint32_t>(keys[i] >> 32);
    std::size_t slot = (bits * 2654435761U) >> 22;  // the top 10 bits of a multiplicative hash
    while (slot_of[slot] >= 0 && slot_bits[slot] != bits) slot = (slot + 1) & (kSlots - 1);
    if (slot_of[slot] < 0) {
      if (distinct_bits.size() == kMaxDistinct) {
        few = false;
        break;
      }
      slot_of[slot] = static_cast<std::int32_t>(distinct_bits.size());
      slot_bits[slot] = bits;
      distinct_bits.push_back(bits);
      distinct_count.push_back(0);
    }
    which[i] = slot_of[slot];
    ++distinct_count[static_cast<std::size_t>(slot_of[slot])];
  }
  if (few) {
    // Distinct values in ascending order, each with the average rank of its ties.
    std::vector<std::int32_t> order(distinct_bits.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [](std::int32_t a, std::int32_t b) {
      return distinct_bits[static_cast<std::size_t>(a)] < distinct_bits[static_cast<std::size_t>(b)];
    });
    std::vector<double> rank(distinct_bits.size());
    double below = f - d;  // genes ranked under this value
    for (const std::int32_t v : order) {
      const double count = distinct_count[static_cast<std::size_t>(v)];
      rank[static_cast<std::size_t>(v)] = below + (count + 1) / 2;
      ss += count * (rank[static_cast<std::size_t>(v)] - mean) * (rank[static_cast<std::size_t>(v)] - mean);
      below += count;
    }
    for (std::size_t i = 0; i < n; ++i) {
      cell.genes[i] = static_cast<std::int32_t>(keys[i] & 0xFFFFFFFFULL);
      cell.excess[i] = rank[static_cast<std::size_t>(which[i])] - z0;
    }
  } else {
    std::sort(keys.begin(), keys.end());
    for (std::size_t i = 0; i < n;) {
      std::size_t j = i;
      while (j < n && (keys[j] >> 32) == (keys[i] >> 32)) ++j;
      const double rank = (f - d) + (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;  // ties: their average rank
      for (std::size_t k = i; k < j; ++k) {
        cell.genes[k] = static_cast<std::int32_t>(keys[k] & 0xFFFFFFFFULL);
        cell.excess[k] = rank - z0;
        ss += (rank - mean) * (rank - mean);
      }
      i = j;
    }
  }
  cell.norm = std::sqrt(ss);
  return cell;
}

/// Average ranks (1..n, ties averaged) minus their mean.
std::vector<float> centred_ranks(const std::vector<double>& values) {
  const std::size_t n = values.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  std::vector<float> ranks(n);
  const double mean = (static_cast<double>(n) + 1) / 2;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && values[order[j]] == values[order[i]]) ++j;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (std::size_t k = i; k < j; ++k) ranks[order[k]] = static_cast<float>(rank - mean);
    i = j;
  }
  return ranks;
}

double norm_of(const float* values, std::size_t n) {
  double ss = 0;
  for (std::size_t i = 0; i < n; ++i) ss += static_cast<double>(values[i]) * values[i];
  return std::sqrt(ss);
}

/// Spearman correlation of a ranked cell with centred centroid ranks of norm `centroid_norm`.
double correlation(const RankedCell& cell, const float* centroid, double centroid_norm) {
  if (cell.norm <= 0 || centroid_norm <= 0) return 0;
  double numerator = 0;
  for (std::size_t i = 0; i < cell.genes.size(); ++i) numerator += cell.excess[i] * centroid[static_cast<std::size_t>(cell.genes[i])];
  return numerator / (cell.norm * centroid_norm);
}

/// The q quantile (linear between order statistics) of `values` (reordered).
double quantile(std::vector<double>& values, double q) {
  std::sort(values.begin(), values.end());
  const double position = q * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(values.size() - 1, below + 1);
  return values[below] + (position - static_cast<double>(below)) * (values[above] - values[below]);
}

double median(std::vector<double>& values) { return quantile(values, 0.5); }

/// A count thinned to a share p of its molecules (binomially; non-integer values keep their share).
double thin(double value, double p, SplitMix64& rng) {
  if (value != std::floor(value) || value > 1e12) return value * p;
  if (value <= 32) {
    double kept = 0;
    for (int molecule = 0; molecule < static_cast<int>(value); ++molecule) kept += rng.uniform() < p ? 1 : 0;
    return kept;
  }
  std::mt19937_64 engine(rng.next());
  return static_cast<double>(std::binomial_distribution<std::int64_t>(static_cast<std::int64_t>(value), p)(engine));
}

}  // namespace

SimilarityProfile similarity_profile(const ReferenceSample& sample, const std::vector<std::int64_t>& size_factor_genes, std::size_t n_classes,
                                     std::uint64_t seed, int num_threads) {
  SimilarityProfile profile;
  if (sample.empty()) return profile;
  const CsrBlockF64& values = sample.cell_values();
  const std::size_t n_columns = sample.entrez_ids.size();
  const Normalization stored = sample.normalization.empty() ? Normalization::kNone : parse_normalization(sample.normalization);
  const bool counts = stored == Normalization::kLog1pCp10k;

  // The candidate genes: the sample's (those a cell's library is summed over, when restricted).
  std::vector<std::int64_t> candidates;
  std::vector<std::int32_t> candidate_of(n_columns, -1);
  for (std::size_t g = 0; g < n_columns; ++g) {
    if (!size_factor_genes.empty() && !std::binary_search(size_factor_genes.begin(), size_factor_genes.end(), sample.entrez_ids[g])) continue;
    candidate_of[g] = static_cast<std::int32_t>(candidates.size());
    candidates.push_back(sample.entrez_ids[g]);
  }
  // Labelled cells by class, and each cell's library (counts).
  std::vector<std::vector<std::size_t>> cells_of(n_classes);
  std::vector<double> library(static_cast<std::size_t>(values.n_rows), 0.0);
  std::vector<double> total(static_cast<std::size_t>(values.n_rows), 0.0);  // every count of the cell (thinning's depth)
  for (std::int64_t cell = 0; cell < values.n_rows; ++cell) {
    const auto label = static_cast<std::size_t>(sample.labels[static_cast<std::size_t>(cell)]);
    if (label >= n_classes) continue;
    cells_of[label].push_back(static_cast<std::size_t>(cell));
    for (std::int64_t k = values.indptr[static_cast<std::size_t>(cell)]; k < values.indptr[static_cast<std::size_t>(cell) + 1]; ++k) {
      const double value = values.values[static_cast<std::size_t>(k)];
      if (!(value > 0)) continue;
      total[static_cast<std::size_t>(cell)] += value;
      // (the candidates are the library's genes)
      if (candidate_of[static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)])] >= 0) library[static_cast<std::size_t>(cell)] += value;
    }
  }
  const auto log_value = [&](double value, std::size_t cell) {
    if (!(value > 0)) return 0.0;
    if (counts) return library[cell] > 0 ? std::log1p(value * 1e4 / library[cell]) : 0.0;
    if (stored == Normalization::kCp10k) return std::log1p(value);
    // (square roots / asinh of counts whose counts did not read back: on a log scale of counts)
    if (stored == Normalization::kSquareCp10k || stored == Normalization::kSinhCp10k) return std::log1p(unlogged(value, stored));
    return value;  // log values as stored
  };
  // Variance of each candidate gene over the labelled cells: the most variable are compared.
  std::vector<double> sum(candidates.size(), 0.0);
  std::vector<double> sum_squares(candidates.size(), 0.0);
  std::int64_t n_labelled = 0;
  for (std::size_t c = 0; c < n_classes; ++c) {
    for (const std::size_t cell : cells_of[c]) {
      ++n_labelled;
      for (std::int64_t k = values.indptr[cell]; k < values.indptr[cell + 1]; ++k) {
        const std::int32_t j = candidate_of[static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)])];
        if (j < 0) continue;
        const double x = log_value(values.values[static_cast<std::size_t>(k)], cell);
        sum[static_cast<std::size_t>(j)] += x;
        sum_squares[static_cast<std::size_t>(j)] += x * x;
      }
    }
  }
  if (n_labelled < 2) return profile;
  std::vector<std::size_t> by_variance;
  std::vector<double> variance(candidates.size(), 0.0);
  for (std::size_t j = 0; j < candidates.size(); ++j) {
    const double mean = sum[j] / static_cast<double>(n_labelled);
    variance[j] = sum_squares[j] / static_cast<double>(n_labelled) - mean * mean;
    if (variance[j] > 1e-12) by_variance.push_back(j);
  }
  std::sort(by_variance.begin(), by_variance.end(),
            [&](std::size_t a, std::size_t b) { return variance[a] != variance[b] ? variance[a] > variance[b] : candidates[a] < candidates[b]; });
  if (by_variance.size() > kSimilarityGenes) by_variance.resize(kSimilarityGenes);
  if (by_variance.size() < 10) return profile;  // too few genes to rank
  std::sort(by_variance.begin(), by_variance.end(), [&](std::size_t a, std::size_t b) { return candidates[a] < candidates[b]; });
  const std::size_t f = by_variance.size();
  std::vector<std::int32_t> compared_of(candidates.size(), -1);
  for (std::size_t g = 0; g < f; ++g) {
    compared_of[by_variance[g]] = static_cast<std::int32_t>(g);
    profile.entrez_ids.push_back(candidates[by_variance[g]]);
  }
  // A cell's (raw value, compared gene) pairs.
  const auto detected_of = [&](std::size_t cell) {
    std::vector<std::pair<double, std::int32_t>> detected;
    for (std::int64_t k = values.indptr[cell]; k < values.indptr[cell + 1]; ++k) {
      const std::int32_t j = candidate_of[static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)])];
      if (j < 0 || compared_of[static_cast<std::size_t>(j)] < 0) continue;
      const double value = values.values[static_cast<std::size_t>(k)];
      if (value > 0) detected.emplace_back(value, compared_of[static_cast<std::size_t>(j)]);
    }
    return detected;
  };

  const bool thinning = counts && std::all_of(values.values.begin(), values.values.end(), [](double v) { return v == std::floor(v); });
  const std::size_t n_levels = thinning ? std::size(kLevels) : 1;
  profile.n_levels = static_cast<std::int64_t>(n_levels);
  // Each class on its own (in parallel), gathered in class order.
  struct ClassProfile {
    bool used = false;
    std::vector<float> ranks;
    std::vector<double> at;
    std::vector<double> threshold;
    double min_detected = 0;
  };
  std::vector<ClassProfile> parts(n_classes);
  parallel_for(static_cast<std::int64_t>(n_classes), num_threads, [&](std::int64_t item) {
    const auto c = static_cast<std::size_t>(item);
    ClassProfile& part = parts[c];
    const std::vector<std::size_t>& cells = cells_of[c];
    const auto n = static_cast<std::int64_t>(cells.size());
    if (n < kSimilarityMinClassCells) return;
    // The centroid: mean log values of the class's cells over the compared genes.
    std::vector<double> centroid(f, 0.0);
    const std::int64_t n_calibration = std::min(n, kSimilarityCalibrationCells);
    std::vector<std::size_t> calibration;
    for (std::int64_t i = 0; i < n_calibration; ++i) calibration.push_back(cells[static_cast<std::size_t>(i * n / n_calibration)]);
    for (const std::size_t cell : cells) {
      for (std::int64_t k = values.indptr[cell]; k < values.indptr[cell + 1]; ++k) {
        const std::int32_t j = candidate_of[static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)])];
        if (j < 0 || compared_of[static_cast<std::size_t>(j)] < 0) continue;
        centroid[static_cast<std::size_t>(compared_of[static_cast<std::size_t>(j)])] += log_value(values.values[static_cast<std::size_t>(k)], cell);
      }
    }
    // (ranks: the sums rank as the means do, and a cell's leave-one-out sums as its class's
    // centroid without it; values within 1e-9 of zero are zero, so that genes no other cell
    // detects tie exactly)
    part.used = true;
    part.ranks = centred_ranks(centroid);

    // Calibration: each cell against its class's centroid without it, at every thinning level.
    std::vector<std::vector<double>> similarities(n_levels);
    std::vector<std::vector<double>> log_detected(n_levels);
    for (const std::size_t cell : calibration) {
      std::vector<double> without = centroid;
      for (std::int64_t k = values.indptr[cell]; k < values.indptr[cell + 1]; ++k) {
        const std::int32_t j = candidate_of[static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)])];
        if (j < 0 || compared_of[static_cast<std::size_t>(j)] < 0) continue;
        without[static_cast<std::size_t>(compared_of[static_cast<std::size_t>(j)])] -= log_value(values.values[static_cast<std::size_t>(k)], cell);
      }
      for (double& value : without) value = std::abs(value) < 1e-9 ? 0.0 : value;
      const std::vector<float> own = centred_ranks(without);
      const double own_norm = norm_of(own.data(), f);
      const std::vector<std::pair<double, std::int32_t>> detected = detected_of(cell);
      std::vector<std::uint64_t> kept;
      for (std::size_t level = 0; level < n_levels; ++level) {
        kept.clear();
        const double p = thinning && total[cell] > kLevels[level] ? kLevels[level] / total[cell] : 1.0;
        SplitMix64 rng{seed ^ (static_cast<std::uint64_t>(cell) * 0x9E3779B97F4A7C15ULL) ^ (level + 1)};
        for (const auto& [value, gene] : detected) {
          const double thinned = p < 1 ? thin(value, p, rng) : value;
          if (thinned > 0) kept.push_back(rank_key(thinned, gene));
        }
        if (kept.empty()) continue;
        const double d = static_cast<double>(kept.size());
        const RankedCell ranked = rank_cell(kept, f);
        similarities[level].push_back(correlation(ranked, own.data(), own_norm));
        log_detected[level].push_back(std::log(d));
      }
    }
    double previous = -std::numeric_limits<double>::infinity();
    double previous_threshold = -1;
    for (std::size_t level = 0; level < n_levels; ++level) {
      // (a level no cell reached repeats the one below it)
      double at = similarities[level].empty() ? previous : median(log_detected[level]);
      double threshold = similarities[level].empty() ? previous_threshold : quantile(similarities[level], kSimilarityQuantile);
      at = std::max(at, previous);  // ascending depth: never fewer genes than the level below
      if (!std::isfinite(at)) at = 0;
      part.at.push_back(at);
      part.threshold.push_back(threshold);
      previous = at;
      previous_threshold = threshold;
    }
    // Too shallow to judge: fewer genes than the median cell of the type at 1,000 counts. Without
    // counts (a reference of log values) every cell is judged: a floor on the genes detected
    // would also excuse every cell of a type that expresses few of these genes (pbmc3k under a
    // pancreas model: 46 of them in the median, where pancreas cells detect 350).
    if (thinning) part.min_detected = std::exp(part.at[kMinCountsLevel]);
  });
  for (std::size_t c = 0; c < n_classes; ++c) {
    if (!parts[c].used) continue;
    profile.classes.push_back(static_cast<std::int32_t>(c));
    profile.centred_ranks.insert(profile.centred_ranks.end(), parts[c].ranks.begin(), parts[c].ranks.end());
    profile.level_log_detected.insert(profile.level_log_detected.end(), parts[c].at.begin(), parts[c].at.end());
    profile.level_threshold.insert(profile.level_threshold.end(), parts[c].threshold.begin(), parts[c].threshold.end());
    profile.min_detected.push_back(parts[c].min_detected);
  }
  if (profile.classes.empty()) return SimilarityProfile{};
  return profile;
}

SimilarityScorer::SimilarityScorer(const SimilarityProfile& profile, const std::vector<std::int64_t>& panel)
    : profile_(profile), gene_of_column_(panel.size(), -1) {
  for (std::size_t j = 0; j < panel.size(); ++j) {
    const auto found = std::lower_bound(profile.entrez_ids.begin(), profile.entrez_ids.end(), panel[j]);
    if (found != profile.entrez_ids.end() && *found == panel[j]) gene_of_column_[j] = static_cast<std::int32_t>(found - profile.entrez_ids.begin());
  }
  const std::size_t f = profile.entrez_ids.size();
  const std::size_t k_all = profile.n_profiles();
  for (std::size_t k = 0; k < k_all; ++k) centroid_norms_.push_back(norm_of(profile.centred_ranks.data() + k * f, f));
  by_gene_.resize(f * k_all);
  for (std::size_t k = 0; k < k_all; ++k) {
    for (std::size_t g = 0; g < f; ++g) by_gene_[g * k_all + k] = profile.centred_ranks[k * f + g];
  }
}

CellSimilarity SimilarityScorer::score(const std::int32_t* columns, const float* values, std::size_t n) const {
  CellSimilarity result;
  std::vector<std::uint64_t> detected;
  detected.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto column = static_cast<std::size_t>(columns[i]);
    if (column >= gene_of_column_.size() || gene_of_column_[column] < 0 || !(values[i] > 0)) continue;
    detected.push_back(rank_key(values[i], gene_of_column_[column]));
  }
  if (profile_.empty() || detected.empty()) return result;
  const std::size_t f = profile_.entrez_ids.size();
  const double d = static_cast<double>(detected.size());
  const RankedCell ranked = rank_cell(detected, f);
  // Every class's numerator in one pass over the detected genes (centroid ranks gene-major).
  const std::size_t k_all = profile_.n_profiles();
  std::vector<double> numerator(k_all, 0.0);
  for (std::size_t i = 0; i < ranked.genes.size(); ++i) {
    const float* row = by_gene_.data() + static_cast<std::size_t>(ranked.genes[i]) * k_all;
    const double excess = ranked.excess[i];
    for (std::size_t k = 0; k < k_all; ++k) numerator[k] += excess * row[k];
  }
  std::size_t best = 0;
  double best_similarity = -2;
  for (std::size_t k = 0; k < k_all; ++k) {
    const double similarity = ranked.norm > 0 && centroid_norms_[k] > 0 ? numerator[k] / (ranked.norm * centroid_norms_[k]) : 0.0;
    if (similarity > best_similarity) {
      best_similarity = similarity;
      best = k;
    }
  }
  result.similarity = static_cast<float>(best_similarity);
  result.best_class = profile_.classes[best];
  if (d < profile_.min_detected[best]) return result;  // kShallow
  // The threshold at this cell's depth: linear in log(detected genes) between the levels.
  const auto levels = static_cast<std::size_t>(profile_.n_levels);
  const double* at = profile_.level_log_detected.data() + best * levels;
  const double* threshold = profile_.level_threshold.data() + best * levels;
  const double x = std::log(d);
  double limit = threshold[levels - 1];
  if (x <= at[0]) {
    limit = threshold[0];
  } else {
    for (std::size_t level = 1; level < levels; ++level) {
      if (x > at[level]) continue;
      const double span = at[level] - at[level - 1];
      const double t = span > 0 ? (x - at[level - 1]) / span : 1.0;
      limit = threshold[level - 1] + t * (threshold[level] - threshold[level - 1]);
      break;
    }
  }
  result.verdict = best_similarity < limit ? SimilarityVerdict::kUnlike : SimilarityVerdict::kLike;
  return result;
}

CellSimilarity SimilarityScorer::score_dense(const float* row) const {
  std::vector<std::int32_t> columns;
  std::vector<float> values;
  for (std::size_t j = 0; j < gene_of_column_.size(); ++j) {
    if (gene_of_column_[j] >= 0 && row[j] > 0) {
      columns.push_back(static_cast<std::int32_t>(j));
      values.push_back(row[j]);
    }
  }
  return score(columns.data(), values.data(), columns.size());
}

}  // namespace celltyper
