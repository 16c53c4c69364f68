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

#include <algorithm>
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
  /// Range searched by `celltyper tune` (tune.hpp); tune_min == tune_max: held at the default.
  double tune_min = 0;
  double tune_max = 0;
  bool tune_log = false;      ///< sample log-uniformly (learning rates, penalties, widths)
  /// The training budget (epochs, boosting rounds, iterations): successive halving gives early
  /// rungs a fraction of it instead of sampling it. At most one per classifier.
  bool budget = false;
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

/// Held-out cells read (and scored) at a time when their features come from ValidationSet::read.
inline constexpr std::int64_t kValidationSlice = 8192;

/// Held-out cells for early stopping and per-epoch reporting (not owned; must outlive `fit`).
/// Features are raw, like the training features ([n x d] row-major float32): `fit` standardises
/// them with the training mean and scale. Labels use the training codes; -1 marks a cell whose
/// class is absent from the training set (always counted as an error).
struct ValidationSet {
  const float* features = nullptr;
  std::int64_t n = 0;
  const std::int32_t* labels = nullptr;
  /// Instead of `features` (left null): writes the features of held-out cells [first, first +
  /// count) into out [count x d], so that they need not be held dense all at once (train reads
  /// them from its compressed rows; the MLP scores them a slice at a time).
  std::function<void(std::int64_t first, std::int64_t count, float* out)> read;
  [[nodiscard]] bool empty() const { return n == 0; }
  /// The features of cells [first, first + count) ([count x d]): a pointer into `features`, or
  /// `buffer` filled by `read`.
  const float* rows(std::int64_t first, std::int64_t count, int d, std::vector<float>& buffer) const {
    if (features != nullptr) return features + first * d;
    buffer.resize(static_cast<std::size_t>(count * d));
    read(first, count, buffer.data());
    return buffer.data();
  }
};

/// Data-parallel training over a process group (communicator.hpp), used by the "mlp" back end:
/// every process holds the whole training set, computes the gradients of its contiguous share
/// of each global batch, and `allreduce_sum` sums the flattened gradients over processes (the
/// same values on every process) before an identical optimiser step everywhere. Batches, their
/// order and dropout draws are those of a single-process fit at the same `batch_size`, so the
/// result matches one process up to the order of floating-point sums. Other back ends ignore it.
struct DataParallel {
  int rank = 0;
  int size = 1;
  std::function<void(float* values, std::size_t count)> allreduce_sum;
  [[nodiscard]] bool active() const { return size > 1 && static_cast<bool>(allreduce_sum); }
};

/// Options of `Classifier::fit`.
struct FitOptions {
  HyperParameters hyperparameters;  ///< missing names take their defaults
  int num_threads = 0;              ///< 0 = all hardware threads; never changes the result
  std::uint64_t seed = 0;           ///< initialisation, shuffling, dropout, row/column sampling
  /// Optional held-out cells. Back ends that train iteratively ("mlp", "xgboost") score them after
  /// every epoch / round, stop early when the score stalls (`patience`, `early_stopping_rounds`)
  /// and keep the best epoch's parameters; the others ignore them.
  ValidationSet validation;
  /// Optional progress of iterative back ends, called once per epoch (round) with a JSON object:
  /// "epoch" (1-based), "loss" (mean training loss), "train_accuracy", "learning_rate", "seconds"
  /// (of that epoch) and, with a validation set, "validation_accuracy", "validation_macro_f1"
  /// (and "validation_loss" for xgboost). Called on the thread that runs `fit`.
  std::function<void(const nlohmann::json&)> on_epoch;
  DataParallel data_parallel;       ///< gradient all-reduce across processes (mlp only)
  /// Labels coarser than the classes (mixed-granularity training: "lymphocyte" beside "B cell"
  /// and "T cell"). A training label code `n_classes + s` means "one of the classes
  /// `label_sets[s]`" (distinct codes in 0..n_classes-1): the cell's loss is -log of the summed
  /// probability of those classes, so it pulls towards its set without choosing a member. Back
  /// ends with `supports_label_sets()` only ("logreg", "mlp"). Class balancing counts every code
  /// (class or set) as one group.
  std::vector<std::vector<std::int32_t>> label_sets;
  /// Optional per-cell weights (n values, finite, > 0), multiplied into the class-balancing
  /// weights (e.g. so that each reference counts equally). Empty = 1 for every cell.
  std::vector<double> sample_weights;
  /// Optional starting point ("logreg" only): parameters in the layout of its exported
  /// "weights" [n_classes x (d + 1)], e.g. of a fit on most of the same cells. The objective is
  /// strictly convex, so the optimum reached is the same; only the iterations to it change.
  /// Ignored when the size does not match.
  std::vector<double> initial_weights;
  /// Optional: train on these rows of `features` (in this order; n == rows->size()) instead of
  /// its first n rows, so that part of a matrix trains without a copy of it. Validation and
  /// prediction take their own features.
  const std::vector<std::int64_t>* rows = nullptr;
};

/// Row i of the training features (FitOptions::rows applied).
inline const float* training_row(const float* features, int d, const FitOptions& options, std::int64_t i) {
  const std::int64_t row = options.rows == nullptr ? i : (*options.rows)[static_cast<std::size_t>(i)];
  return features + row * d;
}

/// Training features in compressed rows: only the non-zero values of `n_rows` x `d` features are
/// stored (the expression route's log1p values are ~90% zeros, so a million reference cells fit in
/// memory). Row r holds values[indptr[r] .. indptr[r + 1]) at columns indices[...], each in 0..d-1.
struct SparseFeatures {
  const std::int64_t* indptr = nullptr;  ///< n_rows + 1 offsets, indptr[0] == 0
  const std::int32_t* indices = nullptr;
  const float* values = nullptr;
  std::int64_t n_rows = 0;
  int d = 0;
  /// Row `row` as dense features into out[0..d).
  void copy_row(std::int64_t row, float* out) const {
    std::fill(out, out + d, 0.0f);
    for (std::int64_t k = indptr[row]; k < indptr[row + 1]; ++k) out[indices[k]] = values[k];
  }
};

/// Per-feature standardisation z = (x - mean) / scale, scale = standard deviation (1 when the
/// deviation is below 1e-12).
struct Standardizer {
  std::vector<double> mean;
  std::vector<double> scale;
  [[nodiscard]] int n_features() const { return static_cast<int>(mean.size()); }
  /// Fit to [n x d] features (or to the rows `rows` of `features`, in that order).
  static Standardizer fit(const float* features, std::int64_t n, int d, const std::vector<std::int64_t>* rows = nullptr);
  /// The same from compressed rows (every value equal to fitting their dense copy).
  static Standardizer fit(const SparseFeatures& features, std::int64_t n, const std::vector<std::int64_t>* rows = nullptr);
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
  /// Whether `fit` accepts FitOptions::label_sets (cells labelled with a set of classes).
  [[nodiscard]] virtual bool supports_label_sets() const { return false; }
  /// Whether `fit` reads FitOptions::validation (iterative back ends that stop early: "mlp",
  /// "xgboost"); the others ignore it, and train does not copy held-out cells for them.
  [[nodiscard]] virtual bool uses_validation() const { return false; }

  /// Train on `features` [n x d] with `labels` (n codes in 0..n_classes-1, or n_classes + s for
  /// `options.label_sets[s]`). Throws InputError on bad shapes, a code out of range, a class
  /// without cells (of its own code or in a label set), fewer than 2 classes, NaN features, a
  /// hyperparameter out of bounds, label sets on a back end without `supports_label_sets()`, bad
  /// sample weights, or a validation set with NaN features or codes outside -1..n_classes-1.
  void fit(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
           const FitOptions& options = {});
  /// The same on features in compressed rows (FitOptions::rows selects rows of `features`): the
  /// same model as `fit` on their dense copy. Logistic regression trains on the stored values,
  /// the MLP on batches densified as it asks for them; the other back ends on a dense copy of the
  /// rows, made for the fit.
  void fit(const SparseFeatures& features, std::int64_t n, const std::vector<std::int32_t>& labels, int n_classes,
           const FitOptions& options = {});
  /// Class probabilities [n x n_classes] for `features` [n x n_features()]. Rows sum to 1. They
  /// are the back end's tempered by `temperature()` (calibration.hpp).
  [[nodiscard]] std::vector<float> predict_proba(const float* features, std::int64_t n, int num_threads = 0) const;
  /// The calibration temperature `predict_proba` applies (1 = the back end's probabilities): fitted
  /// by training on held-out cells (calibration.hpp), kept in the model file; a new fit resets it to 1.
  [[nodiscard]] double temperature() const { return temperature_; }
  /// Set the temperature; throws InputError unless it is finite and positive.
  void set_temperature(double temperature);

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
  /// Train on the features as given, `standardizer()` already fitted to them; `options` as for
  /// fit_standardized. The default standardises a copy and calls fit_standardized; a back end
  /// that can use the features' zeros (logistic regression on sparse expression) overrides it.
  virtual void fit_features(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                            const FitOptions& options);
  /// The same for compressed rows; the default standardises a dense copy of the rows in place and
  /// calls fit_standardized.
  virtual void fit_features(const SparseFeatures& features, std::int64_t n, const std::vector<std::int32_t>& labels, int n_classes,
                            const FitOptions& options);
  [[nodiscard]] const Standardizer& standardizer() const { return standardizer_; }
  /// Train on standardised features. `options.hyperparameters` is resolved (every name present)
  /// and `options.validation.features`, when set, are standardised too.
  virtual void fit_standardized(const float* features, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                int n_classes, const FitOptions& options) = 0;
  /// Probabilities of standardised features into `out` [n x n_classes].
  virtual void predict_standardized(const float* features, std::int64_t n, int num_threads, float* out) const = 0;
  virtual void export_parameters(ClassifierState& state) const = 0;
  virtual void import_parameters(const ClassifierState& state, const std::string& what) = 0;

  nlohmann::json fit_report_ = nlohmann::json::object();

 private:
  /// Checks shared by both `fit`s; `non_finite(i)` is the first feature of training cell i that
  /// is not finite, or -1.
  void check_fit(std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options,
                 const std::function<int(std::int64_t)>& non_finite) const;
  /// After the standardizer is fitted: options with resolved hyperparameters and the validation
  /// features standardised into `standardized_validation`.
  FitOptions resolve_fit(const FitOptions& options, int d, std::vector<float>& standardized_validation);
  Standardizer standardizer_;
  int n_classes_ = 0;
  HyperParameters hyperparameters_;
  double temperature_ = 1.0;
};

/// A classifier type: its name, what it is, its hyperparameters and a factory.
struct ClassifierSpec {
  std::string type;
  std::string description;
  std::vector<HyperParameter> parameters;
  std::function<std::unique_ptr<Classifier>()> make;
};

/// Every classifier type, in `--classifier` help order ("logreg", "knn", "mlp", "xgboost").
const std::vector<ClassifierSpec>& classifier_specs();
/// The spec of `type`; throws InputError listing the known types.
const ClassifierSpec& find_classifier_spec(const std::string& type);
/// An untrained classifier of `type`.
std::unique_ptr<Classifier> make_classifier(const std::string& type);
/// Defaults of `spec` overridden by `given`; throws InputError on an unknown name, a value out of
/// bounds or a non-integer value for an integer parameter.
HyperParameters resolve_hyperparameters(const ClassifierSpec& spec, const HyperParameters& given);
/// What another library's name for a hyperparameter of classifier `type` is here (scikit-learn's
/// `max_iter` or `C` for logreg, `n_neighbors` for knn, XGBoost's `learning_rate`), or which
/// classifier has `name` when `type` does not: a sentence naming ours through `spell` ("l2" ->
/// "'l2'" for the engine, "--l2" for the command line); "" when neither. `name` is matched
/// ignoring case and '-' for '_'.
std::string foreign_hyperparameter(const std::string& type, const std::string& name,
                                   const std::function<std::string(const std::string&)>& spell);

/// Logistic regression, hyperparameters "l2", "max_iterations", "tolerance", "class_balanced".
/// Multinomial (softmax) model p(c|x) = softmax(W x + b)_c minimising the (optionally
/// class-balanced) weighted mean cross-entropy + l2/2 |W|^2 by L-BFGS (Nocedal & Wright,
/// "Numerical Optimization", 2006, alg. 7.5) with backtracking Armijo line search, in float64.
std::unique_ptr<Classifier> make_logistic_regression();
/// The objective logistic regression minimises, at weights `weights` [n_classes x (d + 1)]
/// row-major (each class's feature weights, then its bias) on features `x` [n x d] as given (fit
/// standardises them first): the weighted mean over cells of -log P(label), or -log of the summed
/// probability of its classes for a label-set code (FitOptions::label_sets), plus l2/2 |W|^2
/// (biases not penalised); cell weights from "class_balanced" and sample_weights
/// (training_cell_weights). Writes the gradient. For tests and tools; labels are not validated.
/// With `raw_standardizer`, `x` holds unstandardised features and the objective is that of
/// `raw_standardizer` applied to them, computed from their stored (non-zero) values as fit does
/// when most features are zero.
double logistic_regression_objective(const std::vector<double>& weights, const float* x, std::int64_t n, int d,
                                     const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options,
                                     std::vector<double>& gradient, const Standardizer* raw_standardizer = nullptr);
/// k nearest neighbours by cosine similarity of standardised features; hyperparameter "k".
/// Probability of class c = sum of weights of the neighbours in c / sum of all weights, with
/// weight 1 / (1e-2 + cosine distance); ties in similarity go to the lower training row.
std::unique_ptr<Classifier> make_knn();
/// Multilayer perceptron trained with libtorch: `layers` hidden layers of width `hidden`
/// (Linear -> ReLU -> dropout), a linear output layer and softmax. Minimises (optionally
/// class-balanced, label-smoothed) cross-entropy with AdamW (Loshchilov & Hutter, "Decoupled
/// Weight Decay Regularization", ICLR 2019) on mini-batches of the whole training set shuffled in
/// memory every epoch, learning rate warmed up linearly then decayed by a cosine (Loshchilov &
/// Hutter, "SGDR", ICLR 2017). With a validation set, stops after `patience` epochs without a
/// better validation macro-F1 and keeps the best epoch's weights. Deterministic for a seed and
/// identical for any thread count (the products run in fixed blocks). The weights are float32
/// arrays in the state; prediction runs without torch. Training loads the libtorch module
/// libcelltyper_mlp_torch.so (built with the library; $CELLTYPER_MLP_MODULE overrides its path)
/// on the first fit and throws UnsupportedError when it cannot.
std::unique_ptr<Classifier> make_mlp();
/// Gradient-boosted trees (XGBoost, Chen & Guestrin, KDD 2016) through its C API: softmax
/// objective, histogram tree method. With a validation set, stops after `early_stopping_rounds`
/// rounds without a lower validation log-loss and keeps the best round's trees. The booster is
/// kept as a UBJSON blob in the state.
std::unique_ptr<Classifier> make_xgboost();

/// Training weight of each cell: with `class_balanced`, n / (G x size of the cell's code) where G
/// counts the codes (classes and label sets, `n_codes` of them) that have cells, so every class
/// and every coarse label weighs the same in total; otherwise 1. Multiplied by `sample_weights`
/// when not empty. (Without label sets and sample weights: the usual n / (classes x class size).)
std::vector<double> training_cell_weights(const std::vector<std::int32_t>& labels, int n_codes, bool class_balanced,
                                          const std::vector<double>& sample_weights);

/// Mean of the per-class F1 over the classes present in `truth` or `prediction` (scikit-learn's
/// `f1_score(average="macro")` with zero_division=0); codes are 0..n_classes-1, and -1 in
/// `truth` (a class unknown to the model) counts as one extra class that is never predicted.
double macro_f1_score(const std::int32_t* truth, const std::int32_t* prediction, std::int64_t n, int n_classes);

}  // namespace celltyper
