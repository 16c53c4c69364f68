// Classifier base: standardisation, validation of training input, state, the spec registry.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>

#include <fmt/format.h>

#include <cmath>

namespace celltyper {

Standardizer Standardizer::fit(const float* features, std::int64_t n, int d) {
  Standardizer result;
  result.mean.assign(static_cast<std::size_t>(d), 0.0);
  result.scale.assign(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) result.mean[j] += features[i * d + j];
  }
  for (auto& value : result.mean) value /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) {
      const double delta = features[i * d + j] - result.mean[j];
      result.scale[j] += delta * delta;
    }
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

void Classifier::fit(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                     const FitOptions& options) {
  if (n < 1 || d < 1) throw InputError(fmt::format("cannot train a classifier on {} cells x {} features", n, d));
  if (static_cast<std::int64_t>(labels.size()) != n) {
    throw InputError(fmt::format("{} labels for {} cells", labels.size(), n));
  }
  if (n_classes < 2) throw InputError(fmt::format("training needs at least 2 classes, got {}", n_classes));
  std::vector<std::int64_t> counts(static_cast<std::size_t>(n_classes), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = labels[static_cast<std::size_t>(i)];
    if (label < 0 || label >= n_classes) throw InputError(fmt::format("label code {} of cell {} is not in 0..{}", label, i, n_classes - 1));
    ++counts[static_cast<std::size_t>(label)];
  }
  for (int c = 0; c < n_classes; ++c) {
    if (counts[static_cast<std::size_t>(c)] == 0) throw InputError(fmt::format("class {} has no training cells", c));
  }
  for (std::int64_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(features[i])) throw InputError(fmt::format("feature {} of cell {} is not finite", i % d, i / d));
  }
  const ClassifierSpec& spec = find_classifier_spec(type());
  FitOptions resolved = options;
  resolved.hyperparameters = resolve_hyperparameters(spec, options.hyperparameters);
  standardizer_ = Standardizer::fit(features, n, d);
  std::vector<float> standardized(static_cast<std::size_t>(n * d));
  standardizer_.apply(features, n, standardized.data());
  fit_report_ = nlohmann::json::object();
  fit_standardized(standardized.data(), n, d, labels, n_classes, resolved);
  hyperparameters_ = resolved.hyperparameters;
  n_classes_ = n_classes;
}

std::vector<float> Classifier::predict_proba(const float* features, std::int64_t n, int num_threads) const {
  if (!trained()) throw InputError("predict_proba: the classifier is not trained");
  const int d = n_features();
  std::vector<float> out(static_cast<std::size_t>(n * n_classes_));
  constexpr std::int64_t kChunk = 1024;
  const std::int64_t n_chunks = (n + kChunk - 1) / kChunk;
  parallel_for(n_chunks, num_threads, [&](std::int64_t chunk) {
    const std::int64_t first = chunk * kChunk;
    const std::int64_t rows = std::min(kChunk, n - first);
    std::vector<float> standardized(static_cast<std::size_t>(rows * d));
    standardizer_.apply(features + first * d, rows, standardized.data());
    predict_standardized(standardized.data(), rows, 1, out.data() + first * n_classes_);
  });
  return out;
}

ClassifierState Classifier::export_state() const {
  ClassifierState state;
  state.attributes["type"] = type();
  state.attributes["n_classes"] = n_classes_;
  state.attributes["n_features"] = n_features();
  state.attributes["hyperparameters"] = hyperparameters_;
  state.attributes["fit_report"] = fit_report_;
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
  static const std::vector<ClassifierSpec> specs = {
      {"logreg",
       "multinomial logistic regression with an L2 penalty (L-BFGS, full batch)",
       {
           {"l2", 1e-2, 0.0, 1e6, false, "L2 penalty on the weights (per unit of mean loss)"},
           {"max_iterations", 500, 1, 100000, true, "L-BFGS iterations at most"},
           {"tolerance", 1e-6, 0.0, 1.0, false, "stop when the largest gradient component is below this"},
           {"class_balanced", 1, 0, 1, true, "1: weight cells by 1 / (classes x class size), so each class counts equally"},
       },
       make_logistic_regression},
      {"knn",
       "k nearest neighbours, cosine similarity of standardised embeddings, distance-weighted vote",
       {
           {"k", 15, 1, 1000, true, "neighbours that vote"},
       },
       make_knn},
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

HyperParameters resolve_hyperparameters(const ClassifierSpec& spec, const HyperParameters& given) {
  HyperParameters result;
  for (const auto& parameter : spec.parameters) result[parameter.name] = parameter.default_value;
  for (const auto& [name, value] : given) {
    const auto found = std::find_if(spec.parameters.begin(), spec.parameters.end(), [&](const auto& p) { return p.name == name; });
    if (found == spec.parameters.end()) {
      throw InputError(fmt::format("classifier '{}' has no hyperparameter '{}'", spec.type, name));
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
