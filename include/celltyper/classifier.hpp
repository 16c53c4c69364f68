/// @file classifier.hpp
/// Cell-type classifiers trained on cell embeddings.
///
/// Conventions (owned here):
/// - Features are a dense row-major float32 matrix [n_cells x n_features] (cell embeddings).
/// - Labels are integer class codes 0..n_classes-1, one per cell; class names live in the model
///   file (model_file.hpp), never in a classifier.
/// - `predict_proba` returns a row-major float32 matrix [n_cells x n_classes] whose rows sum to 1.
/// - Every classifier standardises features first (per-feature training mean and standard
///   deviation, kept in its state): GenePT-w vectors share one dominant direction, on which raw
///   cosine neighbours collapse.
/// - Results never depend on the thread count: work is split into fixed row chunks whose partial
///   sums are added in chunk order.
///
/// Hyperparameters are declared once per classifier type (`ClassifierSpec::parameters`: name,
/// default, bounds, help); the CLI builds its options from that table and the model file records
/// the resolved values from it. New back ends (an MLP, gradient-boosted trees) add a spec to
/// `classifier_specs()` and implement `Classifier`.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace celltyper {

/// One hyperparameter of a classifier type.
struct HyperParameter {
  std::string name;           ///< e.g. "l2"; CLI flag `--l2`
  double default_value = 0;
  double min = 0;             ///< inclusive bounds
  double max = 0;
  bool integer = false;       ///< must be a whole number
  std::string help;
};

/// Resolved hyperparameters: name -> value (every parameter of the spec present).
using HyperParameters = std::map<std::string, double>;

/// Everything a classifier needs to persist: JSON attributes plus named float32 / float64 /
/// int32 arrays (with shapes) and byte blobs (e.g. a serialised booster). The model file stores
/// these in one HDF5 group.
struct ClassifierState {
  nlohmann::json attributes = nlohmann::json::object();
  struct FloatArray {
    std::vector<std::int64_t> shape;
    std::vector<float> values;
  };
  struct DoubleArray {
    std::vector<std::int64_t> shape;
    std::vector<double> values;
  };
  std::map<std::string, FloatArray> float_arrays;
  std::map<std::string, DoubleArray> double_arrays;
  std::map<std::string, std::vector<std::int32_t>> int_arrays;
  std::map<std::string, std::vector<std::uint8_t>> blobs;
};

/// Options of `Classifier::fit`.
struct FitOptions {
  HyperParameters hyperparameters;  ///< missing names take their defaults
  int num_threads = 0;              ///< 0 = all hardware threads; never changes the result
  std::uint64_t seed = 0;           ///< for randomised back ends (the current ones are deterministic)
};

/// Per-feature standardisation z = (x - mean) / scale, scale = standard deviation (1 when the
/// deviation is below 1e-12).
struct Standardizer {
  std::vector<double> mean;
  std::vector<double> scale;
  [[nodiscard]] int n_features() const { return static_cast<int>(mean.size()); }
  /// Fit to [n x d] features.
  static Standardizer fit(const float* features, std::int64_t n, int d);
  /// Standardise [n x d] features into `out` (float32, same shape).
  void apply(const float* features, std::int64_t n, float* out) const;
};

/// A trained (or trainable) classifier. Not thread-safe for concurrent fit; predict is const and
/// may be called concurrently.
class Classifier {
 public:
  virtual ~Classifier() = default;
  /// Type name, e.g. "logreg", "knn" (the key of its ClassifierSpec).
  [[nodiscard]] virtual std::string type() const = 0;

  /// Train on `features` [n x d] with `labels` (n codes in 0..n_classes-1). Throws InputError on
  /// bad shapes, a code out of range, a class without cells, fewer than 2 classes, NaN features or
  /// a hyperparameter out of bounds.
  void fit(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
           const FitOptions& options = {});
  /// Class probabilities [n x n_classes] for `features` [n x n_features()]. Rows sum to 1.
  [[nodiscard]] std::vector<float> predict_proba(const float* features, std::int64_t n, int num_threads = 0) const;

  [[nodiscard]] int n_features() const { return standardizer_.n_features(); }
  [[nodiscard]] int n_classes() const { return n_classes_; }
  [[nodiscard]] bool trained() const { return n_classes_ > 0; }
  /// The resolved hyperparameters used by the last fit (or loaded).
  [[nodiscard]] const HyperParameters& hyperparameters() const { return hyperparameters_; }
  /// Training summary of the last fit (iterations, final loss, ...), for provenance.
  [[nodiscard]] const nlohmann::json& fit_report() const { return fit_report_; }

  /// Parameters for saving (standardisation included).
  [[nodiscard]] ClassifierState export_state() const;
  /// Restore from `export_state()` output; throws InputError naming `what` when inconsistent.
  void import_state(const ClassifierState& state, const std::string& what);

 protected:
  /// Train on standardised features.
  virtual void fit_standardized(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                int n_classes, const FitOptions& options) = 0;
  /// Probabilities of standardised features into `out` [n x n_classes].
  virtual void predict_standardized(const float* features, std::int64_t n, int num_threads, float* out) const = 0;
  virtual void export_parameters(ClassifierState& state) const = 0;
  virtual void import_parameters(const ClassifierState& state, const std::string& what) = 0;

  nlohmann::json fit_report_ = nlohmann::json::object();

 private:
  Standardizer standardizer_;
  int n_classes_ = 0;
  HyperParameters hyperparameters_;
};

/// A classifier type: its name, what it is, its hyperparameters and a factory.
struct ClassifierSpec {
  std::string type;
  std::string description;
  std::vector<HyperParameter> parameters;
  std::function<std::unique_ptr<Classifier>()> make;
};

/// Every classifier type, in `--classifier` help order ("logreg", "knn").
const std::vector<ClassifierSpec>& classifier_specs();
/// The spec of `type`; throws InputError listing the known types.
const ClassifierSpec& find_classifier_spec(const std::string& type);
/// An untrained classifier of `type`.
std::unique_ptr<Classifier> make_classifier(const std::string& type);
/// Defaults of `spec` overridden by `given`; throws InputError on an unknown name, a value out of
/// bounds or a non-integer value for an integer parameter.
HyperParameters resolve_hyperparameters(const ClassifierSpec& spec, const HyperParameters& given);

/// Logistic regression, hyperparameters "l2", "max_iterations", "tolerance", "class_balanced".
/// Multinomial (softmax) model p(c|x) = softmax(W x + b)_c minimising the (optionally
/// class-balanced) weighted mean cross-entropy + l2/2 |W|^2 by L-BFGS (Nocedal & Wright,
/// "Numerical Optimization", 2006, alg. 7.5) with backtracking Armijo line search, in float64.
std::unique_ptr<Classifier> make_logistic_regression();
/// k nearest neighbours by cosine similarity of standardised features; hyperparameter "k".
/// Probability of class c = sum of weights of the neighbours in c / sum of all weights, with
/// weight 1 / (1e-2 + cosine distance); ties in similarity go to the lower training row.
std::unique_ptr<Classifier> make_knn();

}  // namespace celltyper
