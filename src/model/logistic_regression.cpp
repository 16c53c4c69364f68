// Multinomial logistic regression with an L2 penalty, fitted by L-BFGS on the full batch.
// Loss and gradient are summed over fixed row chunks (their size depends only on n) and the
// chunk partials are added in chunk order, so the fit is identical for any thread count.
#include <celltyper/classifier.hpp>
#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>

namespace celltyper {
namespace {

class LogisticRegression final : public Classifier {
 public:
  [[nodiscard]] std::string type() const override { return "logreg"; }
  [[nodiscard]] bool supports_label_sets() const override { return true; }

 protected:
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

/// The objective of the fit: the weighted mean over cells of -log P(label) (-log of the summed
/// probability of the classes of a label set) + l2/2 |W|^2, biases not penalised, and its
/// gradient. Loss and gradient are summed over fixed row chunks (their size depends only on n)
/// and the chunk partials are added in chunk order.
class Objective {
 public:
  Objective(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options)
      : x_(x), n_(n), d_(d), labels_(labels), c_(n_classes), options_(options), l2_(options.hyperparameters.at("l2")),
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

  // Mean weighted cross-entropy + l2/2 |W|^2 (biases not penalised) and its gradient.
  double operator()(const std::vector<double>& w, std::vector<double>& gradient) {
    parallel_for(n_chunks_, options_.num_threads, [&](std::int64_t chunk) {
      auto& out = partial_[static_cast<std::size_t>(chunk)];
      std::fill(out.begin(), out.end(), 0.0);
      std::vector<double> z(static_cast<std::size_t>(c_));
      double log_set = 0;  // log P(S) of the current cell when its label is a set
      const std::int64_t end = std::min(n_, (chunk + 1) * chunk_rows_);
      for (std::int64_t i = chunk * chunk_rows_; i < end; ++i) {
        const float* row = x_ + i * d_;
        for (int k = 0; k < c_; ++k) {
          const double* wk = w.data() + k * width_;
          z[k] = wk[d_] + dot_features(wk, row, d_);
        }
        log_softmax(z.data(), c_);
        const int y = labels_[static_cast<std::size_t>(i)];
        const double weight = cell_weight_[static_cast<std::size_t>(i)];
        if (y < c_) {
          out[n_parameters_] -= weight * z[y];
        } else {
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
          log_set = max + std::log(sum);
          out[n_parameters_] -= weight * log_set;
        }
        for (int k = 0; k < c_; ++k) {
          const double target = y < c_ ? (k == y ? 1.0 : 0.0)
                                      : (set_mask_[static_cast<std::size_t>(y - c_)][static_cast<std::size_t>(k)] != 0 ? std::exp(z[k] - log_set) : 0.0);
          const double residual = weight * (std::exp(z[k]) - target);
          double* gk = out.data() + k * width_;
          for (int j = 0; j < d_; ++j) gk[j] += residual * row[j];
          gk[d_] += residual;
        }
      }
    });
    std::fill(gradient.begin(), gradient.end(), 0.0);
    double loss = 0;
    for (const auto& out : partial_) {
      for (std::size_t p = 0; p < n_parameters_; ++p) gradient[p] += out[p];
      loss += out[n_parameters_];
    }
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
  const float* x_;
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
};

void LogisticRegression::fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                          int n_classes, const FitOptions& options) {
  const int max_iterations = static_cast<int>(options.hyperparameters.at("max_iterations"));
  const double tolerance = options.hyperparameters.at("tolerance");
  const std::size_t n_parameters = static_cast<std::size_t>(n_classes) * (static_cast<std::size_t>(d) + 1);

  Objective evaluate(x, n, d, labels, n_classes, options);

  // L-BFGS with memory 10 and backtracking Armijo line search.
  constexpr std::size_t kMemory = 10;
  std::vector<double> w(n_parameters, 0.0);
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
  fit_report_ = {{"iterations", iteration}, {"loss", loss}, {"max_gradient", max_abs(gradient)}, {"stop", stop}};
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
                                     std::vector<double>& gradient) {
  FitOptions resolved = options;
  resolved.hyperparameters = resolve_hyperparameters(find_classifier_spec("logreg"), options.hyperparameters);
  Objective objective(x, n, d, labels, n_classes, resolved);
  if (weights.size() != objective.parameters()) {
    throw InputError(fmt::format("{} weights for {} classes x {} features + bias", weights.size(), n_classes, d));
  }
  gradient.assign(weights.size(), 0.0);
  return objective(weights, gradient);
}

}  // namespace celltyper
