// Classifier base: standardisation, validation of training input, state, the spec registry.
#include <celltyper/calibration.hpp>
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>
#include <celltyper/sparse.hpp>
#include "text_lists.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace celltyper {

Standardizer Standardizer::fit(const float* features, std::int64_t n, int d, const std::vector<std::int64_t>* rows) {
  Standardizer result;
  result.mean.assign(static_cast<std::size_t>(d), 0.0);
  result.scale.assign(static_cast<std::size_t>(d), 0.0);
  const auto row_of = [&](std::int64_t i) { return features + (rows == nullptr ? i : (*rows)[static_cast<std::size_t>(i)]) * d; };
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = row_of(i);
    for (int j = 0; j < d; ++j) result.mean[j] += row[j];
  }
  for (auto& value : result.mean) value /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = row_of(i);
    for (int j = 0; j < d; ++j) {
      const double delta = row[j] - result.mean[j];
      result.scale[j] += delta * delta;
    }
  }
  for (auto& value : result.scale) {
    value = std::sqrt(value / static_cast<double>(n));
    if (!(value > 1e-12)) value = 1.0;
  }
  return result;
}

Standardizer Standardizer::fit(const SparseFeatures& features, std::int64_t n, const std::vector<std::int64_t>* rows) {
  // The dense fit's sums in its order: a stored zero adds nothing to the mean's sums, and the
  // deviations walk every column of every row (zeros included), so every value is the same.
  const int d = features.d;
  Standardizer result;
  result.mean.assign(static_cast<std::size_t>(d), 0.0);
  result.scale.assign(static_cast<std::size_t>(d), 0.0);
  const auto row_of = [&](std::int64_t i) { return rows == nullptr ? i : (*rows)[static_cast<std::size_t>(i)]; };
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t row = row_of(i);
    for (std::int64_t k = features.indptr[row]; k < features.indptr[row + 1]; ++k) result.mean[features.indices[k]] += features.values[k];
  }
  for (auto& value : result.mean) value /= static_cast<double>(n);
  std::vector<float> dense(static_cast<std::size_t>(d), 0.0f);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t row = row_of(i);
    for (std::int64_t k = features.indptr[row]; k < features.indptr[row + 1]; ++k) dense[features.indices[k]] = features.values[k];
    for (int j = 0; j < d; ++j) {
      const double delta = dense[j] - result.mean[j];
      result.scale[j] += delta * delta;
    }
    for (std::int64_t k = features.indptr[row]; k < features.indptr[row + 1]; ++k) dense[features.indices[k]] = 0.0f;
  }
  for (auto& value : result.scale) {
    value = std::sqrt(value / static_cast<double>(n));
    if (!(value > 1e-12)) value = 1.0;
  }
  return result;
}

void Standardizer::apply(const float* features, std::int64_t n, float* out) const {
  const int d = n_features();
  for (std::int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) out[i * d + j] = static_cast<float>((features[i * d + j] - mean[j]) / scale[j]);
  }
}

void Classifier::check_fit(std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options,
                           const std::function<int(std::int64_t)>& non_finite) const {
  if (n < 1 || d < 1) throw InputError(fmt::format("cannot train a classifier on {} cells x {} features", n, d));
  if (static_cast<std::int64_t>(labels.size()) != n) {
    throw InputError(fmt::format("{} labels for {} cells", labels.size(), n));
  }
  if (n_classes < 2) throw InputError(fmt::format("training needs at least 2 classes, got {}", n_classes));
  const auto& sets = options.label_sets;
  if (!sets.empty() && !supports_label_sets()) {
    throw InputError(fmt::format("classifier '{}' cannot train on coarse labels (label sets); use logreg or mlp", type()));
  }
  const int n_codes = n_classes + static_cast<int>(sets.size());
  std::vector<std::int64_t> counts(static_cast<std::size_t>(n_codes), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = labels[static_cast<std::size_t>(i)];
    if (label < 0 || label >= n_codes) throw InputError(fmt::format("label code {} of cell {} is not in 0..{}", label, i, n_codes - 1));
    ++counts[static_cast<std::size_t>(label)];
  }
  std::vector<std::uint8_t> reachable(static_cast<std::size_t>(n_classes), 0);  // a class some cell may belong to
  for (int c = 0; c < n_classes; ++c) reachable[static_cast<std::size_t>(c)] = counts[static_cast<std::size_t>(c)] > 0 ? 1 : 0;
  for (std::size_t s = 0; s < sets.size(); ++s) {
    if (sets[s].empty()) throw InputError(fmt::format("label set {} is empty", s));
    std::vector<std::int32_t> members = sets[s];
    std::sort(members.begin(), members.end());
    if (std::adjacent_find(members.begin(), members.end()) != members.end()) throw InputError(fmt::format("label set {} repeats a class", s));
    for (const auto member : members) {
      if (member < 0 || member >= n_classes) throw InputError(fmt::format("label set {} names class {} (not in 0..{})", s, member, n_classes - 1));
      if (counts[static_cast<std::size_t>(n_classes) + s] > 0) reachable[static_cast<std::size_t>(member)] = 1;
    }
  }
  for (int c = 0; c < n_classes; ++c) {
    if (reachable[static_cast<std::size_t>(c)] == 0) throw InputError(fmt::format("class {} has no training cells", c));
  }
  if (!options.sample_weights.empty()) {
    if (static_cast<std::int64_t>(options.sample_weights.size()) != n) {
      throw InputError(fmt::format("{} sample weights for {} cells", options.sample_weights.size(), n));
    }
    for (std::int64_t i = 0; i < n; ++i) {
      const double weight = options.sample_weights[static_cast<std::size_t>(i)];
      if (!(weight > 0) || !std::isfinite(weight)) throw InputError(fmt::format("sample weight {} of cell {} is not a positive number", weight, i));
    }
  }
  if (options.rows != nullptr && static_cast<std::int64_t>(options.rows->size()) != n) {
    throw InputError(fmt::format("{} training rows for {} cells", options.rows->size(), n));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const int j = non_finite(i);
    if (j >= 0) throw InputError(fmt::format("feature {} of cell {} is not finite", j, i));
  }
  const ValidationSet& validation = options.validation;
  if (!validation.empty()) {
    if (validation.n < 0 || (validation.features == nullptr && !validation.read) || validation.labels == nullptr) {
      throw InputError(fmt::format("validation set of {} cells without features or labels", validation.n));
    }
    for (std::int64_t i = 0; i < validation.n; ++i) {
      const auto label = validation.labels[i];
      if (label < -1 || label >= n_classes) {
        throw InputError(fmt::format("validation label code {} of cell {} is not in -1..{}", label, i, n_classes - 1));
      }
    }
    // In slices, so that features given by `read` are never all dense at once.
    std::vector<float> slice;
    for (std::int64_t first = 0; first < validation.n; first += kValidationSlice) {
      const std::int64_t rows = std::min(kValidationSlice, validation.n - first);
      const float* values = validation.rows(first, rows, d, slice);
      for (std::int64_t k = 0; k < rows * d; ++k) {
        if (!std::isfinite(values[k])) {
          throw InputError(fmt::format("validation feature {} of cell {} is not finite", k % d, first + k / d));
        }
      }
    }
  }
}

FitOptions Classifier::resolve_fit(const FitOptions& options, int d, std::vector<float>& standardized_validation) {
  const ClassifierSpec& spec = find_classifier_spec(type());
  FitOptions resolved = options;
  resolved.hyperparameters = resolve_hyperparameters(spec, options.hyperparameters);
  const ValidationSet& validation = options.validation;
  if (!validation.empty() && validation.features != nullptr) {
    standardized_validation.resize(static_cast<std::size_t>(validation.n * d));
    standardizer_.apply(validation.features, validation.n, standardized_validation.data());
    resolved.validation.features = standardized_validation.data();
  } else if (!validation.empty()) {  // standardised as they are read
    resolved.validation.read = [this, read = validation.read](std::int64_t first, std::int64_t count, float* out) {
      read(first, count, out);
      standardizer_.apply(out, count, out);
    };
  }
  fit_report_ = nlohmann::json::object();
  temperature_ = 1.0;  // (a new fit is not calibrated yet)
  return resolved;
}

void Classifier::fit(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                     const FitOptions& options) {
  check_fit(n, d, labels, n_classes, options, [&](std::int64_t i) {
    const float* row = training_row(features, d, options, i);
    for (int j = 0; j < d; ++j) {
      if (!std::isfinite(row[j])) return j;
    }
    return -1;
  });
  standardizer_ = Standardizer::fit(features, n, d, options.rows);
  std::vector<float> standardized_validation;
  const FitOptions resolved = resolve_fit(options, d, standardized_validation);
  fit_features(features, n, d, labels, n_classes, resolved);
  hyperparameters_ = resolved.hyperparameters;
  n_classes_ = n_classes;
}

void Classifier::fit(const SparseFeatures& features, std::int64_t n, const std::vector<std::int32_t>& labels, int n_classes,
                     const FitOptions& options) {
  const int d = features.d;
  if (features.indptr == nullptr && features.n_rows > 0) throw InputError("compressed training features without row offsets");
  const std::int64_t rows_needed = options.rows == nullptr ? n : 0;
  if (features.n_rows < rows_needed) throw InputError(fmt::format("{} compressed feature rows for {} cells", features.n_rows, n));
  if (options.rows != nullptr) {
    for (const auto row : *options.rows) {
      if (row < 0 || row >= features.n_rows) throw InputError(fmt::format("training row {} is not in 0..{}", row, features.n_rows - 1));
    }
  }
  check_fit(n, d, labels, n_classes, options, [&](std::int64_t i) {
    const std::int64_t row = options.rows == nullptr ? i : (*options.rows)[static_cast<std::size_t>(i)];
    for (std::int64_t k = features.indptr[row]; k < features.indptr[row + 1]; ++k) {
      const std::int32_t column = features.indices[k];
      if (column < 0 || column >= d) throw InputError(fmt::format("feature column {} of cell {} is not in 0..{}", column, i, d - 1));
      if (!std::isfinite(features.values[k])) return static_cast<int>(column);
    }
    return -1;
  });
  standardizer_ = Standardizer::fit(features, n, options.rows);
  std::vector<float> standardized_validation;
  const FitOptions resolved = resolve_fit(options, d, standardized_validation);
  fit_features(features, n, labels, n_classes, resolved);
  hyperparameters_ = resolved.hyperparameters;
  n_classes_ = n_classes;
}

void Classifier::fit_features(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                              const FitOptions& options) {
  std::vector<float> standardized(static_cast<std::size_t>(n * d));
  if (options.rows == nullptr) {
    standardizer_.apply(features, n, standardized.data());
  } else {
    for (std::int64_t i = 0; i < n; ++i) standardizer_.apply(training_row(features, d, options, i), 1, standardized.data() + i * d);
  }
  fit_standardized(standardized.data(), n, d, labels, n_classes, options);
}

void Classifier::fit_features(const SparseFeatures& features, std::int64_t n, const std::vector<std::int32_t>& labels, int n_classes,
                              const FitOptions& options) {
  const int d = features.d;
  std::vector<float> dense(static_cast<std::size_t>(n * d));
  for (std::int64_t i = 0; i < n; ++i) {
    features.copy_row(options.rows == nullptr ? i : (*options.rows)[static_cast<std::size_t>(i)], dense.data() + i * d);
  }
  // The copy is this fit's own: standardised in place (what fit_features' default would do in a
  // second n x d copy), so a back end that trains on dense features needs one copy, not two.
  FitOptions own = options;
  own.rows = nullptr;
  standardizer_.apply(dense.data(), n, dense.data());
  fit_standardized(dense.data(), n, d, labels, n_classes, own);
}

std::vector<float> Classifier::predict_proba(const float* features, std::int64_t n, int num_threads) const {
  if (!trained()) throw InputError("predict_proba: the classifier is not trained");
  const int d = n_features();
  std::vector<float> out(static_cast<std::size_t>(n * n_classes_));
  // Tiles of rows small enough that their standardised copy stays in cache for the classifier, in
  // a per-thread buffer that is neither zeroed nor page-faulted again for every tile (each row is
  // predicted on its own, so the tiling never changes a result).
  constexpr std::int64_t kChunk = 256;
  const std::int64_t n_chunks = (n + kChunk - 1) / kChunk;
  parallel_for(n_chunks, num_threads, [&](std::int64_t chunk) {
    const std::int64_t first = chunk * kChunk;
    const std::int64_t rows = std::min(kChunk, n - first);
    thread_local Buffer<float> standardized;
    standardized.resize(static_cast<std::size_t>(rows * d));
    standardizer_.apply(features + first * d, rows, standardized.data());
    predict_standardized(standardized.data(), rows, 1, out.data() + first * n_classes_);
    temper_probabilities(out.data() + first * n_classes_, rows, n_classes_, temperature_);
  });
  return out;
}

void Classifier::set_temperature(double temperature) {
  if (!(temperature > 0) || !std::isfinite(temperature)) throw InputError(fmt::format("calibration temperature {} is not positive", temperature));
  temperature_ = temperature;
}

ClassifierState Classifier::export_state() const {
  ClassifierState state;
  state.attributes["type"] = type();
  state.attributes["n_classes"] = n_classes_;
  state.attributes["n_features"] = n_features();
  state.attributes["hyperparameters"] = hyperparameters_;
  state.attributes["fit_report"] = fit_report_;
  state.attributes["temperature"] = temperature_;
  state.double_arrays["standardize_mean"] = {{n_features()}, standardizer_.mean};
  state.double_arrays["standardize_scale"] = {{n_features()}, standardizer_.scale};
  export_parameters(state);
  return state;
}

void Classifier::import_state(const ClassifierState& state, const std::string& what) {
  try {
    const auto& attributes = state.attributes;
    if (attributes.value("type", std::string()) != type()) {
      throw InputError(fmt::format("{}: classifier type '{}' is not '{}'", what, attributes.value("type", std::string()), type()));
    }
    const int n_classes = attributes.at("n_classes").get<int>();
    const int n_features = attributes.at("n_features").get<int>();
    const auto mean = state.double_arrays.find("standardize_mean");
    const auto scale = state.double_arrays.find("standardize_scale");
    if (n_classes < 2 || n_features < 1 || mean == state.double_arrays.end() || scale == state.double_arrays.end() ||
        mean->second.values.size() != static_cast<std::size_t>(n_features) ||
        scale->second.values.size() != static_cast<std::size_t>(n_features)) {
      throw InputError(fmt::format("{}: classifier standardisation is missing or has the wrong length", what));
    }
    standardizer_.mean = mean->second.values;
    standardizer_.scale = scale->second.values;
    for (double value : standardizer_.scale) {
      if (!(value > 0) || !std::isfinite(value)) throw InputError(fmt::format("{}: standardisation scale {} is not positive", what, value));
    }
    hyperparameters_ = attributes.at("hyperparameters").get<HyperParameters>();
    fit_report_ = attributes.value("fit_report", nlohmann::json::object());
    // (models from before calibration: the back end's probabilities)
    const double temperature = attributes.value("temperature", 1.0);
    if (!(temperature > 0) || !std::isfinite(temperature)) throw InputError(fmt::format("{}: calibration temperature {} is not positive", what, temperature));
    temperature_ = temperature;
    n_classes_ = n_classes;
    import_parameters(state, what);
  } catch (const nlohmann::json::exception& error) {
    n_classes_ = 0;
    throw InputError(fmt::format("{}: bad classifier attributes ({})", what, error.what()));
  } catch (...) {
    n_classes_ = 0;
    throw;
  }
}

const std::vector<ClassifierSpec>& classifier_specs() {
  // name, default, min, max, integer, help, tune_min, tune_max, tune_log, budget
  static const std::vector<ClassifierSpec> specs = {
      {"logreg",
       "multinomial logistic regression with an L2 penalty (L-BFGS, full batch)",
       {
           {"l2", 1e-2, 0.0, 1e6, false, "L2 penalty on the weights (per unit of mean loss); 1 on the expression route (--features expression)", 1e-5, 100.0, true},
           {"max_iterations", 500, 1, 100000, true, "L-BFGS iterations at most", 0, 0, false, true},
           {"tolerance", 1e-4, 0.0, 1.0, false, "stop when the largest gradient component is below this (scikit-learn's default tol)"},
           {"class_balanced", 1, 0, 1, true, "1: weight cells by 1 / (classes x class size), so each class counts equally"},
       },
       make_logistic_regression},
      {"knn",
       "k nearest neighbours, cosine similarity of standardised embeddings, distance-weighted vote",
       {
           {"k", 15, 1, 1000, true, "neighbours that vote", 3, 50, true},
       },
       make_knn},
      {"mlp",
       "multilayer perceptron (libtorch: ReLU, dropout, AdamW, warm-up + cosine schedule, early stopping)",
       {
           {"hidden", 256, 1, 16384, true, "width of each hidden layer", 64, 1024, true},
           {"layers", 2, 0, 8, true, "hidden layers (0 = softmax regression)", 1, 3},
           {"dropout", 0.2, 0.0, 0.95, false, "dropout probability after each hidden layer", 0.0, 0.5},
           {"weight_decay", 1e-2, 0.0, 10.0, false, "AdamW decoupled weight decay", 1e-5, 1e-1, true},
           {"learning_rate", 1e-3, 1e-7, 10.0, false, "peak AdamW learning rate", 1e-4, 1e-2, true},
           {"epochs", 100, 1, 100000, true, "passes over the training set at most", 0, 0, false, true},
           {"batch_size", 256, 1, 1 << 20, true, "cells per AdamW step", 32, 1024, true},
           {"warmup_fraction", 0.05, 0.0, 1.0, false, "share of the steps of `epochs` with a linear learning-rate warm-up"},
           {"label_smoothing", 0.0, 0.0, 0.9, false, "cross-entropy label smoothing", 0.0, 0.2},
           {"class_balanced", 1, 0, 1, true, "1: weight cells by 1 / (classes x class size), so each class counts equally"},
           {"patience", 10, 0, 100000, true, "with validation cells: stop after this many epochs without a better macro-F1 (0 = never)"},
       },
       make_mlp},
      {"xgboost",
       "gradient-boosted trees (XGBoost, hist, multi:softprob, early stopping on validation log-loss)",
       {
           {"n_estimators", 300, 1, 100000, true, "boosting rounds at most (one tree per class each)", 0, 0, false, true},
           {"max_depth", 6, 1, 32, true, "depth of each tree", 3, 10},
           {"eta", 0.1, 1e-6, 1.0, false, "learning rate (shrinkage of each tree)", 0.02, 0.3, true},
           {"subsample", 0.8, 1e-3, 1.0, false, "share of cells sampled for each tree", 0.5, 1.0},
           {"colsample_bytree", 0.5, 1e-3, 1.0, false, "share of features sampled for each tree", 0.2, 1.0},
           {"min_child_weight", 1.0, 0.0, 1e6, false, "minimum hessian weight in a leaf", 0.1, 20.0, true},
           {"lambda", 1.0, 0.0, 1e6, false, "L2 penalty on leaf weights", 0.01, 100.0, true},
           {"max_bin", 256, 2, 65536, true, "histogram bins per feature"},
           {"class_balanced", 1, 0, 1, true, "1: weight cells by 1 / (classes x class size), so each class counts equally"},
           {"early_stopping_rounds", 20, 0, 100000, true, "with validation cells: stop after this many rounds without a lower log-loss (0 = never)"},
       },
       make_xgboost},
  };
  return specs;
}

const ClassifierSpec& find_classifier_spec(const std::string& type) {
  std::string known;
  for (const auto& spec : classifier_specs()) {
    if (spec.type == type) return spec;
    known += (known.empty() ? "" : ", ") + spec.type;
  }
  throw InputError(fmt::format("unknown classifier '{}' (known: {})", type, known));
}

std::unique_ptr<Classifier> make_classifier(const std::string& type) { return find_classifier_spec(type).make(); }

std::vector<double> training_cell_weights(const std::vector<std::int32_t>& labels, int n_codes, bool class_balanced,
                                          const std::vector<double>& sample_weights) {
  const auto n = static_cast<std::int64_t>(labels.size());
  std::vector<double> code_weight(static_cast<std::size_t>(n_codes), 1.0);
  if (class_balanced) {
    std::vector<double> size(static_cast<std::size_t>(n_codes), 0);
    for (auto label : labels) ++size[static_cast<std::size_t>(label)];
    const auto groups = static_cast<int>(std::count_if(size.begin(), size.end(), [](double count) { return count > 0; }));
    for (int k = 0; k < n_codes; ++k) {
      if (size[static_cast<std::size_t>(k)] > 0) code_weight[static_cast<std::size_t>(k)] = static_cast<double>(n) / (groups * size[static_cast<std::size_t>(k)]);
    }
  }
  std::vector<double> weights(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    weights[i] = code_weight[static_cast<std::size_t>(labels[i])];
    if (!sample_weights.empty()) weights[i] *= sample_weights[i];
  }
  return weights;
}

double macro_f1_score(const std::int32_t* truth, const std::int32_t* prediction, std::int64_t n, int n_classes) {
  // Index n_classes collects the truth codes -1 (a class the model does not know).
  const auto classes = static_cast<std::size_t>(n_classes) + 1;
  std::vector<std::int64_t> true_positive(classes, 0);
  std::vector<std::int64_t> in_truth(classes, 0);
  std::vector<std::int64_t> in_prediction(classes, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto t = truth[i] < 0 ? static_cast<std::size_t>(n_classes) : static_cast<std::size_t>(truth[i]);
    const auto p = static_cast<std::size_t>(prediction[i]);
    ++in_truth[t];
    ++in_prediction[p];
    if (t == p) ++true_positive[t];
  }
  double sum = 0;
  int present = 0;
  for (std::size_t c = 0; c < classes; ++c) {
    if (in_truth[c] == 0 && in_prediction[c] == 0) continue;
    ++present;
    // F1 = 2 TP / (|truth| + |prediction|), 0 when TP = 0.
    sum += 2.0 * static_cast<double>(true_positive[c]) / static_cast<double>(in_truth[c] + in_prediction[c]);
  }
  return present == 0 ? 0.0 : sum / present;
}

std::string foreign_hyperparameter(const std::string& type, const std::string& name,
                                   const std::function<std::string(const std::string&)>& spell) {
  struct Foreign {
    const char* type;
    const char* name;  ///< lower case, '_'
    const char* ours;
    const char* sentence;  ///< {0}: the given name, {1}: ours spelt
  };
  // Names users bring from scikit-learn, XGBoost and PyTorch habits (CellTypist passes C,
  // max_iter to scikit-learn's LogisticRegression or SGDClassifier).
  static const std::vector<Foreign> table = {
      {"", "n_jobs", "threads", "scikit-learn's n_jobs is {1}, which every command takes"},
      {"", "random_state", "seed", "scikit-learn's random_state is {1}"},
      {"logreg", "c", "l2",
       "scikit-learn's C is an inverse penalty on the summed loss; {1} penalises the mean loss: {1} = 1 / (C x training cells) is about "
       "the same fit (cells counted by weight, a depth-augmented copy less than a cell)"},
      {"logreg", "alpha", "l2", "scikit-learn's SGDClassifier alpha (penalty on the mean loss) is {1}"},
      {"logreg", "max_iter", "max_iterations", "scikit-learn's max_iter is {1}"},
      {"logreg", "tol", "tolerance", "scikit-learn's tol is {1}"},
      {"logreg", "class_weight", "class_balanced", "scikit-learn's class_weight='balanced' is {1} 1 (the default; 0 weighs every cell alike)"},
      {"logreg", "penalty", "l2", "the penalty is always L2, of strength {1}"},
      {"knn", "n_neighbors", "k", "scikit-learn's n_neighbors is {1}"},
      {"knn", "n_neighbours", "k", "scikit-learn's n_neighbors is {1}"},
      {"mlp", "lr", "learning_rate", "the learning rate is {1}"},
      {"mlp", "max_iter", "epochs", "scikit-learn's MLPClassifier max_iter (passes over the cells) is {1}"},
      {"mlp", "max_epochs", "epochs", "the passes over the cells are {1}"},
      {"mlp", "n_epochs", "epochs", "the passes over the cells are {1}"},
      {"mlp", "num_epochs", "epochs", "the passes over the cells are {1}"},
      {"mlp", "hidden_layer_sizes", "hidden", "scikit-learn's hidden_layer_sizes is {1} (the width of each) with layers (how many)"},
      {"mlp", "hidden_size", "hidden", "the width of each hidden layer is {1}"},
      {"mlp", "hidden_dim", "hidden", "the width of each hidden layer is {1}"},
      {"mlp", "n_layers", "layers", "the number of hidden layers is {1}"},
      {"mlp", "num_layers", "layers", "the number of hidden layers is {1}"},
      {"mlp", "alpha", "weight_decay", "scikit-learn's MLPClassifier alpha (an L2 penalty) is closest to AdamW's {1}"},
      {"mlp", "n_iter_no_change", "patience", "scikit-learn's n_iter_no_change is {1}"},
      {"xgboost", "learning_rate", "eta", "XGBoost's learning_rate is its eta, {1}"},
      {"xgboost", "reg_lambda", "lambda", "XGBoost's reg_lambda is its lambda, {1}"},
      {"xgboost", "num_boost_round", "n_estimators", "XGBoost's num_boost_round is {1}"},
      {"xgboost", "num_round", "n_estimators", "XGBoost's num_round is {1}"},
      {"xgboost", "colsample", "colsample_bytree", "the share of features per tree is {1}"},
      {"xgboost", "early_stopping", "early_stopping_rounds", "the rounds without a lower validation log-loss before stopping are {1}"},
      {"xgboost", "reg_alpha", "lambda", "there is no L1 penalty on leaf weights, only the L2 one, {1}"},
  };
  std::string key = name;
  for (char& c : key) c = c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const Foreign& foreign : table) {
    if ((foreign.type == type || std::string(foreign.type).empty()) && foreign.name == key) {
      return fmt::format(fmt::runtime(foreign.sentence), name, spell(foreign.ours));
    }
  }
  for (const Foreign& foreign : table) {  // another classifier's name (C given to knn)
    if (foreign.name == key) return fmt::format("{} is for --classifier {}: {}", name, foreign.type, fmt::format(fmt::runtime(foreign.sentence), name, spell(foreign.ours)));
  }
  std::vector<std::string> owners;
  for (const ClassifierSpec& spec : classifier_specs()) {
    if (spec.type == type) continue;
    const std::string& wanted = key;
    if (std::any_of(spec.parameters.begin(), spec.parameters.end(), [&](const HyperParameter& p) { return p.name == wanted; })) {
      owners.push_back(spec.type);
    }
  }
  if (owners.empty()) return {};
  return fmt::format("{} is a hyperparameter of {}, not of {}", spell(key), fmt::join(owners, " and "), type);
}

HyperParameters resolve_hyperparameters(const ClassifierSpec& spec, const HyperParameters& given) {
  HyperParameters result;
  for (const auto& parameter : spec.parameters) result[parameter.name] = parameter.default_value;
  for (const auto& [name, value] : given) {
    const std::string& wanted = name;  // (clang 14 cannot capture a structured binding)
    const auto found = std::find_if(spec.parameters.begin(), spec.parameters.end(), [&](const auto& p) { return p.name == wanted; });
    if (found == spec.parameters.end()) {
      std::vector<std::string> names;
      for (const auto& parameter : spec.parameters) names.push_back(parameter.name);
      const std::string closest = detail::closest_to(name, names);
      const std::string pointer = foreign_hyperparameter(spec.type, name, [](const std::string& ours) { return "'" + ours + "'"; });
      throw InputError(fmt::format("classifier '{}' has no hyperparameter '{}'{} (its hyperparameters: {})", spec.type, name,
                                   !pointer.empty()    ? "; " + pointer
                                   : closest.empty() ? std::string()
                                                     : fmt::format("; did you mean '{}'?", closest),
                                   fmt::join(names, ", ")));
    }
    if (!std::isfinite(value) || value < found->min || value > found->max) {
      throw InputError(fmt::format("{} = {} is outside [{}, {}] for classifier '{}'", name, value, found->min, found->max, spec.type));
    }
    if (found->integer && value != std::floor(value)) {
      throw InputError(fmt::format("{} = {} must be a whole number", name, value));
    }
    result[name] = value;
  }
  return result;
}

}  // namespace celltyper
