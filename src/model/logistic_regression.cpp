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

void LogisticRegression::fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                          int n_classes, const FitOptions& options) {
  const double l2 = options.hyperparameters.at("l2");
  const int max_iterations = static_cast<int>(options.hyperparameters.at("max_iterations"));
  const double tolerance = options.hyperparameters.at("tolerance");
  const bool balanced = options.hyperparameters.at("class_balanced") != 0;
  const int c = n_classes;
  const std::size_t width = static_cast<std::size_t>(d) + 1;
  const std::size_t n_parameters = static_cast<std::size_t>(c) * width;

  // Per-cell weights (class balancing, sample weights); a code >= c is a coarse label: the
  // classes of options.label_sets[code - c] as a 0/1 mask.
  const std::vector<double> cell_weight =
      training_cell_weights(labels, c + static_cast<int>(options.label_sets.size()), balanced, options.sample_weights);
  std::vector<std::vector<std::uint8_t>> set_mask;
  for (const auto& members : options.label_sets) {
    set_mask.emplace_back(static_cast<std::size_t>(c), 0);
    for (const auto member : members) set_mask.back()[static_cast<std::size_t>(member)] = 1;
  }
  double total_weight = 0;
  for (const double weight : cell_weight) total_weight += weight;

  // Fixed chunking: a function of n only.
  const std::int64_t n_chunks = std::clamp<std::int64_t>((n + 255) / 256, 1, 64);
  const std::int64_t chunk_rows = (n + n_chunks - 1) / n_chunks;
  std::vector<std::vector<double>> partial(static_cast<std::size_t>(n_chunks), std::vector<double>(n_parameters + 1));

  // Mean weighted cross-entropy + l2/2 |W|^2 (biases not penalised) and its gradient.
  auto evaluate = [&](const std::vector<double>& w, std::vector<double>& gradient) {
    parallel_for(n_chunks, options.num_threads, [&](std::int64_t chunk) {
      auto& out = partial[static_cast<std::size_t>(chunk)];
      std::fill(out.begin(), out.end(), 0.0);
      std::vector<double> z(static_cast<std::size_t>(c));
      double log_set = 0;  // log P(S) of the current cell when its label is a set
      const std::int64_t end = std::min(n, (chunk + 1) * chunk_rows);
      for (std::int64_t i = chunk * chunk_rows; i < end; ++i) {
        const float* row = x + i * d;
        for (int k = 0; k < c; ++k) {
          const double* wk = w.data() + k * width;
          z[k] = wk[d] + dot_features(wk, row, d);
        }
        log_softmax(z.data(), c);
        const int y = labels[static_cast<std::size_t>(i)];
        const double weight = cell_weight[static_cast<std::size_t>(i)];
        if (y < c) {
          out[n_parameters] -= weight * z[y];
        } else {
          // -log sum_{k in S} p_k; its gradient in z_k is p_k - [k in S] p_k / P(S).
          const auto& mask = set_mask[static_cast<std::size_t>(y - c)];
          double max = -std::numeric_limits<double>::infinity();
          for (int k = 0; k < c; ++k) {
            if (mask[static_cast<std::size_t>(k)] != 0) max = std::max(max, z[k]);
          }
          double sum = 0;
          for (int k = 0; k < c; ++k) {
            if (mask[static_cast<std::size_t>(k)] != 0) sum += std::exp(z[k] - max);
          }
          log_set = max + std::log(sum);
          out[n_parameters] -= weight * log_set;
        }
        for (int k = 0; k < c; ++k) {
          const double target = y < c ? (k == y ? 1.0 : 0.0)
                                      : (set_mask[static_cast<std::size_t>(y - c)][static_cast<std::size_t>(k)] != 0 ? std::exp(z[k] - log_set) : 0.0);
          const double residual = weight * (std::exp(z[k]) - target);
          double* gk = out.data() + k * width;
          for (int j = 0; j < d; ++j) gk[j] += residual * row[j];
          gk[d] += residual;
        }
      }
    });
    std::fill(gradient.begin(), gradient.end(), 0.0);
    double loss = 0;
    for (const auto& out : partial) {
      for (std::size_t p = 0; p < n_parameters; ++p) gradient[p] += out[p];
      loss += out[n_parameters];
    }
    loss /= total_weight;
    for (std::size_t p = 0; p < n_parameters; ++p) {
      gradient[p] /= total_weight;
      if (p % width != static_cast<std::size_t>(d)) {
        gradient[p] += l2 * w[p];
        loss += 0.5 * l2 * w[p] * w[p];
      }
    }
    return loss;
  };

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
  classes_ = c;
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

}  // namespace celltyper
