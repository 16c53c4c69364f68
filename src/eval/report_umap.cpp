// UMAP for the report's cell map (McInnes, Healy & Melville 2018, arXiv:1802.03426), following
// the reference implementation (umap-learn): exact k-nearest-neighbour graph on a PCA reduction,
// fuzzy simplicial set (per-cell rho and sigma, fuzzy union), PCA initialisation, and the
// edge-sampled SGD of `optimize_layout_euclidean` with negative sampling. Single-threaded and
// seeded with a fixed generator, so a report's map is identical on every run and machine.

// Eigen's kernels are inlined with -march=native (AVX-512): GCC 12 reports false
// -Wmaybe-uninitialized inside the intrinsics headers (as in report_pca.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <celltyper/error.hpp>
#include <celltyper/report.hpp>

#include "splitmix64.hpp"

#include <Eigen/Dense>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace celltyper {

namespace {

using detail::SplitMix64;

struct Neighbours {
  std::size_t k = 0;
  std::vector<std::uint32_t> index;  ///< n x k, nearest first (self excluded)
  std::vector<float> distance;       ///< n x k, Euclidean
};

/// Exact k nearest neighbours (Euclidean) of every row of `points` (n x dims, row-major):
/// squared distances from blocked matrix products, then a partial selection per row.
Neighbours nearest_neighbours(const std::vector<float>& points, std::size_t n, std::size_t dims, std::size_t k) {
  Neighbours result;
  result.k = k;
  result.index.resize(n * k);
  result.distance.resize(n * k);
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix> all(points.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(dims));
  const Eigen::VectorXf norms = all.rowwise().squaredNorm();
  constexpr std::size_t kBlock = 256;
  std::vector<std::pair<float, std::uint32_t>> candidates(n);
  for (std::size_t first = 0; first < n; first += kBlock) {
    const std::size_t rows = std::min(kBlock, n - first);
    const Eigen::MatrixXf products = all.middleRows(static_cast<Eigen::Index>(first), static_cast<Eigen::Index>(rows)) * all.transpose();
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t i = first + r;
      for (std::size_t j = 0; j < n; ++j) {
        const float squared = j == i ? std::numeric_limits<float>::infinity()
                                     : std::max(0.0f, norms[static_cast<Eigen::Index>(i)] + norms[static_cast<Eigen::Index>(j)] -
                                                          2 * products(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(j)));
        candidates[j] = {squared, static_cast<std::uint32_t>(j)};
      }
      const auto kth = candidates.begin() + static_cast<std::ptrdiff_t>(k);
      std::nth_element(candidates.begin(), kth, candidates.end());
      std::sort(candidates.begin(), kth);
      for (std::size_t m = 0; m < k; ++m) {
        result.index[i * k + m] = candidates[m].second;
        result.distance[i * k + m] = std::sqrt(candidates[m].first);
      }
    }
  }
  return result;
}

/// x^y for x > 0 in single precision (expf/logf are several times cheaper than double pow;
/// the layout needs no more).
inline double fast_pow(double x, double y) {
  return static_cast<double>(std::exp(static_cast<float>(y) * std::log(static_cast<float>(x))));
}

struct Edge {
  std::uint32_t head;
  std::uint32_t tail;
  float weight;
};

/// The fuzzy simplicial set: per-cell membership strengths exp(-(d - rho) / sigma) with sigma
/// chosen so that they sum to log2(k), then the fuzzy union w_ij + w_ji - w_ij * w_ji. Both
/// directions of every edge are returned (as umap-learn's symmetric COO matrix).
std::vector<Edge> fuzzy_simplicial_set(const Neighbours& graph, std::size_t n) {
  const std::size_t k = graph.k;
  const double target = std::log2(static_cast<double>(k));
  std::vector<float> strength(n * k);
  for (std::size_t i = 0; i < n; ++i) {
    const float* d = graph.distance.data() + i * k;
    float rho = 0;
    for (std::size_t m = 0; m < k; ++m) {
      if (d[m] > 0) {
        rho = d[m];
        break;
      }
    }
    double low = 0, high = std::numeric_limits<double>::infinity(), sigma = 1;
    for (int iteration = 0; iteration < 64; ++iteration) {
      double sum = 0;
      for (std::size_t m = 0; m < k; ++m) {
        const double excess = d[m] - rho;
        sum += excess > 0 ? std::exp(-excess / sigma) : 1.0;
      }
      if (std::fabs(sum - target) < 1e-5) break;
      if (sum > target) {
        high = sigma;
        sigma = (low + high) / 2;
      } else {
        low = sigma;
        sigma = std::isinf(high) ? sigma * 2 : (low + high) / 2;
      }
    }
    // umap-learn's floor: at least 1e-3 of the mean neighbour distance.
    double mean = 0;
    for (std::size_t m = 0; m < k; ++m) mean += d[m];
    mean /= static_cast<double>(k);
    sigma = std::max(sigma, 1e-3 * mean);
    for (std::size_t m = 0; m < k; ++m) {
      const double excess = d[m] - rho;
      strength[i * k + m] = excess <= 0 || sigma <= 0 ? 1.0f : static_cast<float>(std::exp(-excess / sigma));
    }
  }
  // Directed strengths keyed (from, to); union with the reverse direction.
  std::vector<std::pair<std::uint64_t, float>> directed;
  directed.reserve(n * k * 2);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t m = 0; m < k; ++m) {
      const std::uint64_t j = graph.index[i * k + m];
      directed.emplace_back((static_cast<std::uint64_t>(i) << 32) | j, strength[i * k + m]);
    }
  }
  std::sort(directed.begin(), directed.end());
  const auto find = [&](std::uint64_t key) -> float {
    const auto it = std::lower_bound(directed.begin(), directed.end(), std::make_pair(key, -1.0f));
    return it != directed.end() && it->first == key ? it->second : 0.0f;
  };
  std::vector<Edge> edges;
  edges.reserve(directed.size() * 2);
  for (const auto& [key, forward] : directed) {
    const auto i = static_cast<std::uint32_t>(key >> 32);
    const auto j = static_cast<std::uint32_t>(key & 0xFFFFFFFFu);
    const float backward = find((static_cast<std::uint64_t>(j) << 32) | i);
    const float weight = forward + backward - forward * backward;
    edges.push_back({i, j, weight});
    if (backward == 0) edges.push_back({j, i, weight});  // j does not list i: add the mirror
  }
  std::sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) { return a.head != b.head ? a.head < b.head : a.tail < b.tail; });
  return edges;
}

}  // namespace

std::vector<float> umap_2d(const DenseMatrix& data, const std::vector<std::size_t>& rows, const UmapOptions& options) {
  const std::size_t n = rows.size();
  if (n < 3) throw InputError(fmt::format("UMAP needs at least 3 cells; got {}", n));
  if (options.n_neighbors < 2) throw InputError(fmt::format("UMAP --n-neighbors {} is below 2", options.n_neighbors));
  const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(options.n_neighbors), n - 1);
  // Neighbours on a PCA reduction (as scanpy's default pipeline: PCA, then the neighbour graph).
  const int reduced = static_cast<int>(std::min<std::int64_t>(options.pca_dims, data.cols));
  const PrincipalComponents pca = principal_components(data, reduced, &rows);
  const auto dims = static_cast<std::size_t>(pca.n_components);
  const Neighbours graph = nearest_neighbours(pca.coordinates, n, dims, k);
  std::vector<Edge> edges = fuzzy_simplicial_set(graph, n);

  const int n_epochs = options.n_epochs > 0 ? options.n_epochs : (n <= 10000 ? 500 : 200);
  float max_weight = 0;
  for (const Edge& edge : edges) max_weight = std::max(max_weight, edge.weight);
  edges.erase(std::remove_if(edges.begin(), edges.end(),
                             [&](const Edge& edge) { return edge.weight < max_weight / static_cast<float>(n_epochs); }),
              edges.end());
  std::vector<double> epochs_per_sample(edges.size());
  for (std::size_t e = 0; e < edges.size(); ++e) epochs_per_sample[e] = static_cast<double>(max_weight) / edges[e].weight;

  // Initialisation: the first two principal components scaled to [-10, 10] (umap-learn's
  // init="pca"), plus a tiny seeded jitter so that no two cells coincide.
  std::vector<float> y(n * 2);
  float largest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t c = 0; c < 2; ++c) {
      const float value = c < dims ? pca.coordinates[i * dims + c] : 0.0f;
      y[i * 2 + c] = value;
      largest = std::max(largest, std::fabs(value));
    }
  }
  SplitMix64 random{options.seed};
  const auto uniform = [&random] { return random.uniform(); };
  for (float& value : y) value = (largest > 0 ? value * 10.0f / largest : 0.0f) + static_cast<float>((uniform() - 0.5) * 1e-4);

  // Curve 1 / (1 + a d^(2b)) fitted to min_dist = 0.1, spread = 1 (umap-learn's defaults).
  const double a = 1.576943460405378;
  const double b = 0.8950608781227859;
  const double negative_rate = options.negative_sample_rate;
  std::vector<double> next_sample = epochs_per_sample;
  std::vector<double> epochs_per_negative(edges.size());
  for (std::size_t e = 0; e < edges.size(); ++e) epochs_per_negative[e] = epochs_per_sample[e] / negative_rate;
  std::vector<double> next_negative = epochs_per_negative;
  const auto clip = [](double value) { return std::clamp(value, -4.0, 4.0); };
  for (int epoch = 0; epoch < n_epochs; ++epoch) {
    const double alpha = 1.0 - static_cast<double>(epoch) / n_epochs;
    const double now = epoch;
    for (std::size_t e = 0; e < edges.size(); ++e) {
      if (next_sample[e] > now) continue;
      float* current = y.data() + static_cast<std::size_t>(edges[e].head) * 2;
      float* other = y.data() + static_cast<std::size_t>(edges[e].tail) * 2;
      const double dx = current[0] - other[0];
      const double dy = current[1] - other[1];
      const double squared = dx * dx + dy * dy;
      if (squared > 0) {
        const double power = fast_pow(squared, b);  // d^(2b); d^(2(b-1)) = d^(2b) / d^2
        const double coefficient = -2.0 * a * b * (power / squared) / (a * power + 1.0);
        const double gx = clip(coefficient * dx) * alpha;
        const double gy = clip(coefficient * dy) * alpha;
        current[0] = static_cast<float>(current[0] + gx);
        current[1] = static_cast<float>(current[1] + gy);
        other[0] = static_cast<float>(other[0] - gx);
        other[1] = static_cast<float>(other[1] - gy);
      }
      next_sample[e] += epochs_per_sample[e];
      const auto n_negative = static_cast<int>((now - next_negative[e]) / epochs_per_negative[e]);
      for (int p = 0; p < n_negative; ++p) {
        const auto j = static_cast<std::size_t>(random.next() % n);
        if (j == edges[e].head) continue;
        const float* sample = y.data() + j * 2;
        const double nx = current[0] - sample[0];
        const double ny = current[1] - sample[1];
        const double d2 = nx * nx + ny * ny;
        double gx = 4.0;
        double gy = 4.0;
        if (d2 > 0) {
          const double coefficient = 2.0 * b / ((0.001 + d2) * (a * fast_pow(d2, b) + 1.0));
          gx = clip(coefficient * nx);
          gy = clip(coefficient * ny);
        }
        current[0] = static_cast<float>(current[0] + gx * alpha);
        current[1] = static_cast<float>(current[1] + gy * alpha);
      }
      next_negative[e] += n_negative * epochs_per_negative[e];
    }
  }
  return y;
}

EmbeddingMap umap_map(const DenseMatrix& data, const std::vector<std::size_t>& rows, const EmbeddingMap& pca, std::size_t max_cells,
                      std::uint64_t seed) {
  if (rows.size() != pca.x.size() || pca.truth.size() != rows.size() || pca.prediction.size() != rows.size()) {
    throw InputError(fmt::format("UMAP map: {} rows for a map of {} cells", rows.size(), pca.x.size()));
  }
  const std::vector<std::size_t> positions = subsample_rows(rows.size(), max_cells, seed);
  std::vector<std::size_t> chosen;
  chosen.reserve(positions.size());
  for (const std::size_t position : positions) chosen.push_back(rows[position]);
  UmapOptions options;
  options.seed = seed;
  const std::vector<float> layout = umap_2d(data, chosen, options);
  EmbeddingMap map;
  map.source = pca.source;
  map.method = "UMAP";
  map.n_cells = pca.n_cells;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    map.x.push_back(layout[2 * i]);
    map.y.push_back(layout[2 * i + 1]);
    map.truth.push_back(pca.truth[positions[i]]);
    map.prediction.push_back(pca.prediction[positions[i]]);
  }
  return map;
}

}  // namespace celltyper
