// Multinomial logistic regression with an L2 penalty, fitted by L-BFGS on the full batch, on
// standardised features (computed from the stored values when most features are zero).
// Loss and gradient are summed over fixed row chunks (their size depends only on n) and the
// chunk partials are added in chunk order, so the fit is identical for any thread count.
#include <celltyper/classifier.hpp>
#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>

#include "huge_pages.hpp"

#include <Eigen/Dense>
#include <fmt/format.h>


#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <numeric>

namespace celltyper {
namespace {

class Objective;
struct SparseRows;

class LogisticRegression final : public Classifier {
 public:
  [[nodiscard]] std::string type() const override { return "logreg"; }
  [[nodiscard]] bool supports_label_sets() const override { return true; }

 protected:
  void fit_features(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                    const FitOptions& options) override;
  void fit_features(const SparseFeatures& x, std::int64_t n, const std::vector<std::int32_t>& labels, int n_classes,
                    const FitOptions& options) override;
  /// The sparse route's fit on `rows` (unstandardised, `stored` values).
  void fit_sparse_rows(const SparseRows& rows, std::int64_t stored, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                       int n_classes, const FitOptions& options);
  void fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                        const FitOptions& options) override;
  void predict_standardized(const float* x, std::int64_t n, int num_threads, float* out) const override;
  void export_parameters(ClassifierState& state) const override {
    state.double_arrays["weights"] = {{classes_, features_ + 1}, weights_};
  }
  void import_parameters(const ClassifierState& state, const std::string& what) override {
    const auto found = state.double_arrays.find("weights");
    classes_ = n_classes();
    features_ = n_features();
    if (found == state.double_arrays.end() || found->second.values.size() != static_cast<std::size_t>(classes_) * (features_ + 1)) {
      throw InputError(fmt::format("{}: logistic regression weights are missing or not {} x {}", what, classes_, features_ + 1));
    }
    weights_ = found->second.values;
  }

 private:
  /// L-BFGS from zero weights on `evaluate`; sets the weights and the fit report.
  void minimize(Objective& evaluate, int n_classes, int d, const FitOptions& options);

  /// Row-major [classes x (features + 1)]: weights then the bias of each class.
  std::vector<double> weights_;
  int classes_ = 0;
  int features_ = 0;
};

/// log-softmax of logits `z` (length c) into `z` itself.
void log_softmax(double* z, int c) {
  const double max = *std::max_element(z, z + c);
  double sum = 0;
  for (int k = 0; k < c; ++k) sum += std::exp(z[k] - max);
  const double log_sum = max + std::log(sum);
  for (int k = 0; k < c; ++k) z[k] -= log_sum;
}

/// w . x over d features in a fixed order: 8 interleaved partial sums (so the compiler keeps
/// them in one vector register) added pairwise, then the tail. The same on every machine and for
/// every thread count.
inline double dot_features(const double* w, const float* x, int d) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int j = 0;
  for (; j + 8 <= d; j += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += w[j + l] * static_cast<double>(x[j + l]);
  }
  double sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
  for (; j < d; ++j) sum += w[j] * static_cast<double>(x[j]);
  return sum;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

/// The sparse route's class vectors: GCC vector extensions as wide as the machine's registers
/// (AVX-512: 8 doubles, else 4), so the inner loops over the classes are a few fused
/// multiply-adds kept in registers (GCC's -O2 leaves such short loops scalar and rolled, and a
/// rolled loop keeps the sums in memory: a store-to-load chain per stored value).
#ifdef __AVX512F__
constexpr std::size_t kLanes = 8;
#else
constexpr std::size_t kLanes = 4;
#endif
typedef double Lanes __attribute__((vector_size(kLanes * sizeof(double))));

inline Lanes load_lanes(const double* from) {
  Lanes value;
  std::memcpy(&value, from, sizeof value);
  return value;
}
inline void store_lanes(double* to, Lanes value) { std::memcpy(to, &value, sizeof value); }

/// Classes padded to whole vectors.
std::size_t padded_classes(int c) { return (static_cast<std::size_t>(c) + kLanes - 1) / kLanes * kLanes; }

/// One cell on the sparse route, `Vectors` vectors of classes (stride = Vectors x kLanes): its
/// logits z = offsets + sum over its stored values x_j of x_j v_j (rows of `scaled` [d x stride]).
template <std::size_t Vectors>
void sparse_logits(const std::int32_t* columns, const float* values, std::int64_t count, const double* scaled, const double* offsets,
                   double* z) {
  constexpr std::size_t stride = Vectors * kLanes;
  Lanes sum[Vectors];
#pragma GCC unroll 4
  for (std::size_t v = 0; v < Vectors; ++v) sum[v] = load_lanes(offsets + v * kLanes);
  for (std::int64_t p = 0; p < count; ++p) {
    const double value = values[p];
    const double* row = scaled + static_cast<std::size_t>(columns[p]) * stride;
#pragma GCC unroll 4
    for (std::size_t v = 0; v < Vectors; ++v) sum[v] += load_lanes(row + v * kLanes) * value;
  }
#pragma GCC unroll 4
  for (std::size_t v = 0; v < Vectors; ++v) store_lanes(z + v * kLanes, sum[v]);
}

/// Adds x_j r to the rows of `sums` [d x stride] at the cell's stored values.
template <std::size_t Vectors>
void sparse_gradient(const std::int32_t* columns, const float* values, std::int64_t count, const double* residual, double* sums) {
  constexpr std::size_t stride = Vectors * kLanes;
  Lanes r[Vectors];
#pragma GCC unroll 4
  for (std::size_t v = 0; v < Vectors; ++v) r[v] = load_lanes(residual + v * kLanes);
  for (std::int64_t p = 0; p < count; ++p) {
    const double value = values[p];
    double* row = sums + static_cast<std::size_t>(columns[p]) * stride;
#pragma GCC unroll 4
    for (std::size_t v = 0; v < Vectors; ++v) store_lanes(row + v * kLanes, load_lanes(row + v * kLanes) + r[v] * value);
  }
}

/// The same for any stride (many classes).
void sparse_logits_any(const std::int32_t* columns, const float* values, std::int64_t count, const double* scaled, const double* offsets,
                       double* z, std::size_t stride) {
  std::copy(offsets, offsets + stride, z);
  for (std::int64_t p = 0; p < count; ++p) {
    const double* row = scaled + static_cast<std::size_t>(columns[p]) * stride;
    for (std::size_t v = 0; v < stride; v += kLanes) store_lanes(z + v, load_lanes(z + v) + load_lanes(row + v) * static_cast<double>(values[p]));
  }
}
void sparse_gradient_any(const std::int32_t* columns, const float* values, std::int64_t count, const double* residual, double* sums,
                         std::size_t stride) {
  for (std::int64_t p = 0; p < count; ++p) {
    double* row = sums + static_cast<std::size_t>(columns[p]) * stride;
    for (std::size_t v = 0; v < stride; v += kLanes) store_lanes(row + v, load_lanes(row + v) + load_lanes(residual + v) * static_cast<double>(values[p]));
  }
}

/// Features in compressed rows: each cell's stored (non-zero) values and their columns, either
/// owned (made from dense features) or viewed in the caller's SparseFeatures; cell i is row
/// `rows[i]` when a row list is given.
struct SparseRows {
  std::vector<std::int64_t> own_indptr;
  std::vector<std::int32_t> own_columns;
  std::vector<float> own_values;
  const std::int64_t* indptr = nullptr;
  const std::int32_t* columns = nullptr;
  const float* values = nullptr;
  const std::vector<std::int64_t>* rows = nullptr;
  [[nodiscard]] std::int64_t row(std::int64_t i) const { return rows == nullptr ? i : (*rows)[static_cast<std::size_t>(i)]; }
};

/// The non-zero entries of [n x d] features `x` (FitOptions::rows applied) as compressed rows;
/// `stored`, when known, is their number (the arrays are allocated once).
SparseRows sparse_rows(const float* x, std::int64_t n, int d, const FitOptions& options, std::int64_t stored = 0) {
  SparseRows rows;
  rows.own_indptr.reserve(static_cast<std::size_t>(n) + 1);
  detail::reserve_huge(rows.own_columns, static_cast<std::size_t>(stored));
  detail::reserve_huge(rows.own_values, static_cast<std::size_t>(stored));
  rows.own_indptr.push_back(0);
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = training_row(x, d, options, i);
    for (int j = 0; j < d; ++j) {
      if (row[j] != 0) {
        rows.own_columns.push_back(j);
        rows.own_values.push_back(row[j]);
      }
    }
    rows.own_indptr.push_back(static_cast<std::int64_t>(rows.own_values.size()));
  }
  rows.indptr = rows.own_indptr.data();
  rows.columns = rows.own_columns.data();
  rows.values = rows.own_values.data();
  return rows;
}

/// The objective of the fit: the weighted mean over cells of -log P(label) (-log of the summed
/// probability of the classes of a label set) + l2/2 |W|^2, biases not penalised, and its
/// gradient, in the parameters of standardised features. Loss and gradient are summed over fixed
/// row chunks (their size depends only on n) and the chunk partials are added in chunk order.
///
/// Two ways to the same function: on dense standardised features, or on the stored values of
/// sparse unstandardised ones (the expression route's log1p values are mostly zeros) through
///   z_k = b_k + sum_j w_kj (x_j - m_j) / s_j = (b_k - sum_j v_kj m_j) + sum_{j: x_j != 0} v_kj x_j,  v_kj = w_kj / s_j,
///   dL/dw_kj = (sum_i r_ik x_ij - m_j sum_i r_ik) / s_j,
/// so a pass costs the stored values, not cells x features.
class Objective {
 public:
  /// Dense: `x` [n x d], standardised.
  Objective(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options)
      : Objective(n, d, labels, n_classes, options) {
    x_ = x;
  }
  /// Sparse: `rows` holds the unstandardised features, `standardizer` their standardisation.
  Objective(const SparseRows& rows, const Standardizer& standardizer, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
            int n_classes, const FitOptions& options)
      : Objective(n, d, labels, n_classes, options) {
    rows_ = &rows;
    standardizer_ = &standardizer;
    stride_ = padded_classes(n_classes);
    scaled_weights_.assign(static_cast<std::size_t>(d) * stride_, 0.0);
    offsets_.assign(stride_, 0.0);
    sums_.resize(static_cast<std::size_t>(d) * stride_ + stride_);
    partial_.assign(static_cast<std::size_t>(n_chunks_), std::vector<double>(sums_.size() + 1));
  }

  // Mean weighted cross-entropy + l2/2 |W|^2 (biases not penalised) and its gradient.
  double operator()(const std::vector<double>& w, std::vector<double>& gradient) {
    const bool sparse = rows_ != nullptr;
    if (sparse) scale_weights(w);
    parallel_for(n_chunks_, options_.num_threads, [&](std::int64_t chunk) {
      auto& out = partial_[static_cast<std::size_t>(chunk)];
      std::fill(out.begin(), out.end(), 0.0);
      if (!sparse) {
        dense_chunk(w, chunk, out);
        return;
      }
      std::vector<double> z(stride_, 0.0);         // padded on the sparse route,
      std::vector<double> residual(stride_, 0.0);  // where the padding lanes stay 0
      const std::int64_t end = std::min(n_, (chunk + 1) * chunk_rows_);
      for (std::int64_t i = chunk * chunk_rows_; i < end; ++i) {
        sparse_pass(i, z.data(), nullptr);
        out.back() += cell_residuals(i, z.data(), residual.data());
        // Layout [d x stride] of sum_i r_ik x_ij, then sum_i r_ik per class.
        sparse_pass(i, residual.data(), out.data());
        double* totals = out.data() + static_cast<std::size_t>(d_) * stride_;
        for (int k = 0; k < c_; ++k) totals[k] += residual[k];
      }
    });
    std::vector<double>& sums = sparse ? sums_ : gradient;
    std::fill(sums.begin(), sums.end(), 0.0);
    double loss = 0;
    for (const auto& out : partial_) {
      for (std::size_t p = 0; p < sums.size(); ++p) sums[p] += out[p];
      loss += out.back();
    }
    if (sparse) unscale_gradient(gradient);
    loss /= total_weight_;
    for (std::size_t p = 0; p < n_parameters_; ++p) {
      gradient[p] /= total_weight_;
      if (p % width_ != static_cast<std::size_t>(d_)) {
        gradient[p] += l2_ * w[p];
        loss += 0.5 * l2_ * w[p] * w[p];
      }
    }
    return loss;
  }

  [[nodiscard]] std::size_t parameters() const { return n_parameters_; }

 private:
  Objective(std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options)
      : n_(n), d_(d), labels_(labels), c_(n_classes), options_(options), l2_(options.hyperparameters.at("l2")),
        width_(static_cast<std::size_t>(d) + 1), n_parameters_(static_cast<std::size_t>(n_classes) * width_) {
    const bool balanced = options_.hyperparameters.at("class_balanced") != 0;
    // Per-cell weights (class balancing, sample weights); a code >= c is a coarse label: the
    // classes of options.label_sets[code - c] as a 0/1 mask.
    cell_weight_ =
        training_cell_weights(labels_, c_ + static_cast<int>(options_.label_sets.size()), balanced, options_.sample_weights);
    for (const auto& members : options_.label_sets) {
      set_mask_.emplace_back(static_cast<std::size_t>(c_), 0);
      for (const auto member : members) set_mask_.back()[static_cast<std::size_t>(member)] = 1;
    }
    for (const double weight : cell_weight_) total_weight_ += weight;

    // Fixed chunking: a function of n only.
    n_chunks_ = std::clamp<std::int64_t>((n_ + 255) / 256, 1, 64);
    chunk_rows_ = (n_ + n_chunks_ - 1) / n_chunks_;
    partial_.assign(static_cast<std::size_t>(n_chunks_), std::vector<double>(n_parameters_ + 1));
  }

  /// Cell i's weighted loss at logits `z` (log-softmaxed in place), and its residuals
  /// weight * (p_k - target_k), the gradient of that loss in z.
  double cell_residuals(std::int64_t i, double* z, double* residual) const {
    log_softmax(z, c_);
    const int y = labels_[static_cast<std::size_t>(i)];
    const double weight = cell_weight_[static_cast<std::size_t>(i)];
    if (y < c_) {
      for (int k = 0; k < c_; ++k) residual[k] = weight * (std::exp(z[k]) - (k == y ? 1.0 : 0.0));
      return -weight * z[y];
    }
    // -log sum_{k in S} p_k; its gradient in z_k is p_k - [k in S] p_k / P(S).
    const auto& mask = set_mask_[static_cast<std::size_t>(y - c_)];
    double max = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < c_; ++k) {
      if (mask[static_cast<std::size_t>(k)] != 0) max = std::max(max, z[k]);
    }
    double sum = 0;
    for (int k = 0; k < c_; ++k) {
      if (mask[static_cast<std::size_t>(k)] != 0) sum += std::exp(z[k] - max);
    }
    const double log_set = max + std::log(sum);
    for (int k = 0; k < c_; ++k) {
      const double target = mask[static_cast<std::size_t>(k)] != 0 ? std::exp(z[k] - log_set) : 0.0;
      residual[k] = weight * (std::exp(z[k]) - target);
    }
    return -weight * log_set;
  }

  /// Dense route, one chunk of cells into `out` (layout [c x (d + 1)], then the loss): tiles of
  /// kDenseTile cells as matrix products, logits Z = X W^T + b and gradient sums R^T X, so that
  /// W and the sums are read once per tile rather than once per cell (Eigen's GEMM kernels, one
  /// thread: the chunks are fixed, so the sums do not depend on the thread count).
  void dense_chunk(const std::vector<double>& w, std::int64_t chunk, std::vector<double>& out) const {
    constexpr std::int64_t kDenseTile = 128;
    using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using Strided = Eigen::OuterStride<>;
    const Eigen::Map<const RowMatrix, 0, Strided> weights(w.data(), c_, d_, Strided(static_cast<Eigen::Index>(width_)));
    Eigen::Map<RowMatrix, 0, Strided> sums(out.data(), c_, d_, Strided(static_cast<Eigen::Index>(width_)));
    RowMatrix x;
    RowMatrix z;
    RowMatrix residual;
    const std::int64_t end = std::min(n_, (chunk + 1) * chunk_rows_);
    for (std::int64_t first = chunk * chunk_rows_; first < end; first += kDenseTile) {
      const std::int64_t rows = std::min(kDenseTile, end - first);
      x = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(x_ + first * d_, rows, d_).cast<double>();
      z.noalias() = x * weights.transpose();
      residual.resize(rows, c_);
      for (std::int64_t r = 0; r < rows; ++r) {
        double* zr = z.data() + r * c_;
        for (int k = 0; k < c_; ++k) zr[k] += w[static_cast<std::size_t>(k) * width_ + static_cast<std::size_t>(d_)];
        out.back() += cell_residuals(first + r, zr, residual.data() + r * c_);
      }
      sums.noalias() += residual.transpose() * x;
      for (int k = 0; k < c_; ++k) out[static_cast<std::size_t>(k) * width_ + static_cast<std::size_t>(d_)] += residual.col(k).sum();
    }
  }

  /// v = w / s in layout [d x c] and the offsets b_k - sum_j v_kj m_j (sparse route).
  void scale_weights(const std::vector<double>& w) {
    const auto& mean = standardizer_->mean;
    const auto& scale = standardizer_->scale;
    for (int k = 0; k < c_; ++k) {
      const double* wk = w.data() + k * width_;
      double offset = wk[d_];
      for (int j = 0; j < d_; ++j) {
        const double v = wk[j] / scale[static_cast<std::size_t>(j)];
        scaled_weights_[static_cast<std::size_t>(j) * stride_ + k] = v;
        offset -= v * mean[static_cast<std::size_t>(j)];
      }
      offsets_[static_cast<std::size_t>(k)] = offset;
    }
  }

  /// Sparse route, cell i: its logits into `z` (residual == nullptr), or its residuals' share of
  /// the gradient sums into `sums`.
  void sparse_pass(std::int64_t i, double* z_or_residual, double* sums) const {
    const auto& rows = *rows_;
    const std::int64_t row = rows.row(i);
    const std::int64_t begin = rows.indptr[row];
    const std::int64_t count = rows.indptr[row + 1] - begin;
    const std::int32_t* columns = rows.columns + begin;
    const float* values = rows.values + begin;
    const double* scaled = scaled_weights_.data();
    const double* offsets = offsets_.data();
    double* z = z_or_residual;
    const double* residual = z_or_residual;
    switch (stride_ / kLanes) {
      case 1: return sums == nullptr ? sparse_logits<1>(columns, values, count, scaled, offsets, z) : sparse_gradient<1>(columns, values, count, residual, sums);
      case 2: return sums == nullptr ? sparse_logits<2>(columns, values, count, scaled, offsets, z) : sparse_gradient<2>(columns, values, count, residual, sums);
      case 3: return sums == nullptr ? sparse_logits<3>(columns, values, count, scaled, offsets, z) : sparse_gradient<3>(columns, values, count, residual, sums);
      case 4: return sums == nullptr ? sparse_logits<4>(columns, values, count, scaled, offsets, z) : sparse_gradient<4>(columns, values, count, residual, sums);
      default:
        return sums == nullptr ? sparse_logits_any(columns, values, count, scaled, offsets, z, stride_)
                               : sparse_gradient_any(columns, values, count, residual, sums, stride_);
    }
  }

  /// The summed [d x stride] sums of r_ik x_ij and per-class sums of r_ik (sparse route, in
  /// sums_) into the gradient in standardised weights, layout [c x (d + 1)].
  void unscale_gradient(std::vector<double>& gradient) const {
    const auto& mean = standardizer_->mean;
    const auto& scale = standardizer_->scale;
    const std::vector<double>& sums = sums_;
    const double* totals = sums.data() + static_cast<std::size_t>(d_) * stride_;
    for (int k = 0; k < c_; ++k) {
      double* gk = gradient.data() + k * width_;
      for (int j = 0; j < d_; ++j) {
        gk[j] = (sums[static_cast<std::size_t>(j) * stride_ + k] - mean[static_cast<std::size_t>(j)] * totals[k]) / scale[static_cast<std::size_t>(j)];
      }
      gk[d_] = totals[k];
    }
  }

  const float* x_ = nullptr;                     // dense standardised features
  const SparseRows* rows_ = nullptr;             // or sparse raw ones ...
  const Standardizer* standardizer_ = nullptr;  // ... and their standardisation
  std::int64_t n_;
  int d_;
  const std::vector<std::int32_t>& labels_;
  int c_;
  const FitOptions& options_;
  double l2_;
  std::size_t width_;
  std::size_t n_parameters_;
  std::vector<double> cell_weight_;
  std::vector<std::vector<std::uint8_t>> set_mask_;  // a code >= c_: the classes of its label set
  double total_weight_ = 0;
  std::int64_t n_chunks_ = 1;
  std::int64_t chunk_rows_ = 1;
  std::vector<std::vector<double>> partial_;
  std::size_t stride_ = static_cast<std::size_t>(c_);  // row length of the [d x c] arrays
  std::vector<double> scaled_weights_;  // sparse route: v = w / s, [d x stride]
  std::vector<double> offsets_;         // sparse route: b_k - sum_j v_kj m_j, [stride]
  std::vector<double> sums_;            // sparse route: the chunks' summed partials
};

/// Stored values at most this share of cells x features: fit on the sparse route.
constexpr double kSparseFitDensity = 0.25;

void LogisticRegression::fit_features(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                                      const FitOptions& options) {
  std::int64_t stored = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = training_row(x, d, options, i);
    for (int j = 0; j < d; ++j) stored += row[j] != 0 ? 1 : 0;
  }
  if (static_cast<double>(stored) > kSparseFitDensity * static_cast<double>(n) * d) {
    Classifier::fit_features(x, n, d, labels, n_classes, options);
    return;
  }
  fit_sparse_rows(sparse_rows(x, n, d, options, stored), stored, n, d, labels, n_classes, options);
}

void LogisticRegression::fit_features(const SparseFeatures& x, std::int64_t n, const std::vector<std::int32_t>& labels, int n_classes,
                                      const FitOptions& options) {
  // The stored values train in place (no copy of them); the same choice of route as for dense
  // features, whose zeros are exactly the values not stored here.
  SparseRows rows;
  rows.indptr = x.indptr;
  rows.columns = x.indices;
  rows.values = x.values;
  rows.rows = options.rows;
  std::int64_t stored = 0;
  for (std::int64_t i = 0; i < n; ++i) stored += x.indptr[rows.row(i) + 1] - x.indptr[rows.row(i)];
  if (static_cast<double>(stored) > kSparseFitDensity * static_cast<double>(n) * x.d) {
    Classifier::fit_features(x, n, labels, n_classes, options);
    return;
  }
  fit_sparse_rows(rows, stored, n, x.d, labels, n_classes, options);
}

void LogisticRegression::fit_sparse_rows(const SparseRows& rows, std::int64_t stored, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                         int n_classes, const FitOptions& options) {
  Objective objective(rows, standardizer(), n, d, labels, n_classes, options);
  minimize(objective, n_classes, d, options);
  fit_report_["route"] = "sparse";
  fit_report_["density"] = static_cast<double>(stored) / (static_cast<double>(n) * d);
}

void LogisticRegression::fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                          int n_classes, const FitOptions& options) {
  Objective objective(x, n, d, labels, n_classes, options);
  minimize(objective, n_classes, d, options);
  fit_report_["route"] = "dense";
}

void LogisticRegression::minimize(Objective& evaluate, int n_classes, int d, const FitOptions& options) {
  const int max_iterations = static_cast<int>(options.hyperparameters.at("max_iterations"));
  const double tolerance = options.hyperparameters.at("tolerance");
  const std::size_t n_parameters = static_cast<std::size_t>(n_classes) * (static_cast<std::size_t>(d) + 1);


  // L-BFGS with memory 10 and backtracking Armijo line search.
  constexpr std::size_t kMemory = 10;
  const bool warm = options.initial_weights.size() == n_parameters;
  std::vector<double> w = warm ? options.initial_weights : std::vector<double>(n_parameters, 0.0);
  std::vector<double> gradient(n_parameters);
  double loss = evaluate(w, gradient);
  std::deque<std::vector<double>> s_history;
  std::deque<std::vector<double>> y_history;
  std::vector<double> direction(n_parameters);
  std::vector<double> candidate(n_parameters);
  std::vector<double> candidate_gradient(n_parameters);
  int iteration = 0;
  std::string stop = "max_iterations";
  auto max_abs = [](const std::vector<double>& v) {
    double m = 0;
    for (double value : v) m = std::max(m, std::abs(value));
    return m;
  };
  for (; iteration < max_iterations; ++iteration) {
    check_cancelled();
    if (max_abs(gradient) <= tolerance) {
      stop = "gradient_tolerance";
      break;
    }
    // Two-loop recursion: direction = -H gradient.
    direction = gradient;
    std::vector<double> alpha(s_history.size());
    for (std::size_t m = s_history.size(); m-- > 0;) {
      alpha[m] = dot(s_history[m], direction) / dot(y_history[m], s_history[m]);
      for (std::size_t p = 0; p < n_parameters; ++p) direction[p] -= alpha[m] * y_history[m][p];
    }
    if (!s_history.empty()) {
      const double gamma = dot(s_history.back(), y_history.back()) / dot(y_history.back(), y_history.back());
      for (auto& value : direction) value *= gamma;
    }
    for (std::size_t m = 0; m < s_history.size(); ++m) {
      const double beta = dot(y_history[m], direction) / dot(y_history[m], s_history[m]);
      for (std::size_t p = 0; p < n_parameters; ++p) direction[p] += (alpha[m] - beta) * s_history[m][p];
    }
    for (auto& value : direction) value = -value;
    double slope = dot(gradient, direction);
    if (!(slope < 0)) {
      for (std::size_t p = 0; p < n_parameters; ++p) direction[p] = -gradient[p];
      slope = dot(gradient, direction);
      s_history.clear();
      y_history.clear();
    }
    double step = s_history.empty() ? std::min(1.0, 1.0 / std::sqrt(dot(gradient, gradient))) : 1.0;
    double candidate_loss = 0;
    bool accepted = false;
    for (int attempt = 0; attempt < 50; ++attempt) {
      for (std::size_t p = 0; p < n_parameters; ++p) candidate[p] = w[p] + step * direction[p];
      candidate_loss = evaluate(candidate, candidate_gradient);
      if (std::isfinite(candidate_loss) && candidate_loss <= loss + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) {
      stop = "line_search";
      break;
    }
    std::vector<double> s(n_parameters);
    std::vector<double> y(n_parameters);
    for (std::size_t p = 0; p < n_parameters; ++p) {
      s[p] = candidate[p] - w[p];
      y[p] = candidate_gradient[p] - gradient[p];
    }
    const double previous_loss = loss;
    w.swap(candidate);
    gradient.swap(candidate_gradient);
    loss = candidate_loss;
    if (dot(s, y) > 1e-12 * dot(y, y)) {
      s_history.push_back(std::move(s));
      y_history.push_back(std::move(y));
      if (s_history.size() > kMemory) {
        s_history.pop_front();
        y_history.pop_front();
      }
    }
    if (previous_loss - loss <= 1e-12 * std::max(1.0, std::abs(loss))) {
      ++iteration;
      stop = "loss_change";
      break;
    }
  }
  weights_ = std::move(w);
  classes_ = n_classes;
  features_ = d;
  fit_report_ = {{"iterations", iteration}, {"loss", loss}, {"max_gradient", max_abs(gradient)}, {"stop", stop}, {"warm_start", warm}};
}

void LogisticRegression::predict_standardized(const float* x, std::int64_t n, int, float* out) const {
  const int d = features_;
  const std::size_t width = static_cast<std::size_t>(d) + 1;
  std::vector<double> z(static_cast<std::size_t>(classes_));
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    for (int k = 0; k < classes_; ++k) {
      const double* wk = weights_.data() + k * width;
      z[k] = wk[d] + dot_features(wk, row, d);
    }
    log_softmax(z.data(), classes_);
    for (int k = 0; k < classes_; ++k) out[i * classes_ + k] = static_cast<float>(std::exp(z[k]));
  }
}

}  // namespace

std::unique_ptr<Classifier> make_logistic_regression() { return std::make_unique<LogisticRegression>(); }

double logistic_regression_objective(const std::vector<double>& weights, const float* x, std::int64_t n, int d,
                                     const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options,
                                     std::vector<double>& gradient, const Standardizer* raw_standardizer) {
  FitOptions resolved = options;
  resolved.hyperparameters = resolve_hyperparameters(find_classifier_spec("logreg"), options.hyperparameters);
  const SparseRows rows = raw_standardizer != nullptr ? sparse_rows(x, n, d, FitOptions{}) : SparseRows{};
  if (raw_standardizer != nullptr && raw_standardizer->n_features() != d) {
    throw InputError(fmt::format("a standardizer of {} features for {} features", raw_standardizer->n_features(), d));
  }
  Objective objective = raw_standardizer != nullptr ? Objective(rows, *raw_standardizer, n, d, labels, n_classes, resolved)
                                                    : Objective(x, n, d, labels, n_classes, resolved);
  if (weights.size() != objective.parameters()) {
    throw InputError(fmt::format("{} weights for {} classes x {} features + bias", weights.size(), n_classes, d));
  }
  gradient.assign(weights.size(), 0.0);
  return objective(weights, gradient);
}

}  // namespace celltyper
