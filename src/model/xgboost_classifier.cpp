// Gradient-boosted trees through XGBoost's C API (Debian libxgboost-dev 1.7): multi:softprob,
// tree_method=hist, early stopping on validation log-loss with the booster sliced back to the best
// round, the booster saved as UBJSON bytes in the classifier state.
#include <celltyper/classifier.hpp>
#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_text.hpp>
#include <celltyper/parallel.hpp>

#include <fmt/format.h>

#include <xgboost/c_api.h>

#include "io/dynamic_api.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>

namespace celltyper {
namespace {

// XGBoost's C API, loaded with dlopen on the first XGBoost fit or model load: linked, libxgboost
// (with libdmlc and libgomp) and its static registries cost every celltyper process ~15 ms.
#define CELLTYPER_XGBOOST_FUNCTIONS(X)                                                                       \
  X(XGBGetLastError) X(XGBSetGlobalConfig) X(XGBoostVersion) X(XGBoosterCreate) X(XGBoosterEvalOneIter)      \
  X(XGBoosterFree) X(XGBoosterGetNumFeature) X(XGBoosterLoadModelFromBuffer) X(XGBoosterPredictFromDMatrix)  \
  X(XGBoosterPredictFromDense) X(XGBoosterSaveModelToBuffer) X(XGBoosterSetParam) X(XGBoosterSlice)          \
  X(XGBoosterUpdateOneIter) X(XGDMatrixCreateFromMat_omp) X(XGDMatrixFree) X(XGDMatrixSetFloatInfo)

struct XgboostApi {
  CELLTYPER_XGBOOST_FUNCTIONS(CELLTYPER_DYNAMIC_POINTER)
};

const XgboostApi& xgb() {
  static const XgboostApi api =
      CELLTYPER_LOAD_DYNAMIC_API(XgboostApi, CELLTYPER_XGBOOST_FUNCTIONS, "the XGBoost library (libxgboost.so.0)",
                                 "install libxgboost0 (scripts/setup.sh does)", "libxgboost.so.0", "libxgboost.so");
  return api;
}

/// Throw with XGBoost's own message when a C API call fails.
void check(int status, const char* call) {
  if (status != 0) throw InputError(fmt::format("xgboost: {} failed: {}", call, xgb().XGBGetLastError()));
}

/// FNV-1a 64 of the booster bytes as 16 hex digits.
std::string booster_checksum(const std::vector<std::uint8_t>& bytes) {
  return fmt::format("{:016x}", ContentHasher().bytes(bytes.data(), bytes.size()).value());
}

/// Silence XGBoost's console output (parameter warnings) once per process.
void quiet_xgboost() {
  static std::once_flag once;
  std::call_once(once, [] { check(xgb().XGBSetGlobalConfig(R"({"verbosity": 0})"), "XGBSetGlobalConfig"); });
}

/// Owning handles.
struct DMatrix {
  DMatrixHandle handle = nullptr;
  DMatrix() = default;
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
  ~DMatrix() {
    if (handle != nullptr) xgb().XGDMatrixFree(handle);
  }
};

struct Booster {
  BoosterHandle handle = nullptr;
  Booster() = default;
  Booster(const Booster&) = delete;
  Booster& operator=(const Booster&) = delete;
  ~Booster() { reset(nullptr); }
  void reset(BoosterHandle other) {
    if (handle != nullptr) xgb().XGBoosterFree(handle);
    handle = other;
  }
};

/// A dense float32 DMatrix of [n x d] with labels and optional weights.
void make_dmatrix(DMatrix& out, const float* x, std::int64_t n, int d, const std::int32_t* labels, const std::vector<float>* weights,
                  int threads) {
  check(xgb().XGDMatrixCreateFromMat_omp(x, static_cast<bst_ulong>(n), static_cast<bst_ulong>(d), std::numeric_limits<float>::quiet_NaN(),
                                   &out.handle, threads),
        "XGDMatrixCreateFromMat_omp");
  std::vector<float> label_values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) label_values[static_cast<std::size_t>(i)] = static_cast<float>(std::max(labels[i], 0));
  check(xgb().XGDMatrixSetFloatInfo(out.handle, "label", label_values.data(), static_cast<bst_ulong>(n)), "XGDMatrixSetFloatInfo(label)");
  if (weights != nullptr) {
    check(xgb().XGDMatrixSetFloatInfo(out.handle, "weight", weights->data(), static_cast<bst_ulong>(n)), "XGDMatrixSetFloatInfo(weight)");
  }
}

/// Softmax probabilities [n x c] of `matrix` from the booster's cached predictions.
const float* predict_cached(BoosterHandle booster, DMatrixHandle matrix, std::int64_t n, int c) {
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  check(xgb().XGBoosterPredictFromDMatrix(booster, matrix,
                                    R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": true})",
                                    &shape, &dims, &result),
        "XGBoosterPredictFromDMatrix");
  if (dims != 2 || shape[0] != static_cast<bst_ulong>(n) || shape[1] != static_cast<bst_ulong>(c)) {
    throw InputError(fmt::format("xgboost: prediction has an unexpected shape (dims {})", dims));
  }
  return result;
}

/// Value of "<name>-<metric>:<value>" in an EvalOneIter line.
double parse_metric(const std::string& line, const std::string& key) {
  const auto at = line.find(key + ":");
  if (at == std::string::npos) throw InputError(fmt::format("xgboost: no {} in evaluation '{}'", key, line));
  return std::stod(line.substr(at + key.size() + 1));
}

class GradientBoostedTrees final : public Classifier {
 public:
  [[nodiscard]] std::string type() const override { return "xgboost"; }
  [[nodiscard]] bool uses_validation() const override { return true; }

 protected:
  void fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                        const FitOptions& options) override;
  void predict_standardized(const float* x, std::int64_t n, int num_threads, float* out) const override;
  void export_parameters(ClassifierState& state) const override {
    state.blobs["booster"] = model_;
    state.attributes["booster_format"] = "ubj";
    state.attributes["xgboost_version"] = version();
    // XGBoost's UBJSON reader trusts its input (a truncated buffer can crash it), so the bytes carry
    // their own length and checksum, verified before XGBoost sees them.
    state.attributes["booster_bytes"] = model_.size();
    state.attributes["booster_fnv1a64"] = booster_checksum(model_);
  }
  void import_parameters(const ClassifierState& state, const std::string& what) override;

 private:
  static std::string version() {
    int major = 0;
    int minor = 0;
    int patch = 0;
    xgb().XGBoostVersion(&major, &minor, &patch);
    return fmt::format("{}.{}.{}", major, minor, patch);
  }
  /// Load `model_` into `booster_` for single-threaded prediction (concurrent calls on chunks).
  void load_booster(const std::string& what);

  std::vector<std::uint8_t> model_;  ///< UBJSON booster
  Booster booster_;
  int features_ = 0;
};

void GradientBoostedTrees::fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                            int n_classes, const FitOptions& options) {
  quiet_xgboost();
  const HyperParameters& hp = options.hyperparameters;
  const int rounds = static_cast<int>(hp.at("n_estimators"));
  const int early_stopping = static_cast<int>(hp.at("early_stopping_rounds"));
  const bool balanced = hp.at("class_balanced") != 0;
  const int threads = resolve_threads(options.num_threads);
  const ValidationSet& validation = options.validation;
  const bool has_validation = !validation.empty();

  std::vector<float> weights;
  if (balanced || !options.sample_weights.empty()) {
    const std::vector<double> cell_weights = training_cell_weights(labels, n_classes, balanced, options.sample_weights);
    weights.assign(cell_weights.begin(), cell_weights.end());
  }
  DMatrix train;
  make_dmatrix(train, x, n, d, labels.data(), weights.empty() ? nullptr : &weights, threads);
  // Validation cells of a class the training set lacks (code -1) weigh 0 in the log-loss.
  DMatrix held_out;
  std::int64_t known = 0;
  if (has_validation) {
    std::vector<float> validation_weights(static_cast<std::size_t>(validation.n));
    for (std::int64_t i = 0; i < validation.n; ++i) {
      validation_weights[static_cast<std::size_t>(i)] = validation.labels[i] >= 0 ? 1.0f : 0.0f;
      known += validation.labels[i] >= 0;
    }
    // XGBoost's matrix is dense: features given by `read` are read once, here.
    std::vector<float> read_features;
    make_dmatrix(held_out, validation.rows(0, validation.n, d, read_features), validation.n, d, validation.labels, &validation_weights, threads);
  }

  Booster booster;
  std::vector<DMatrixHandle> cached = {train.handle};
  if (has_validation) cached.push_back(held_out.handle);
  check(xgb().XGBoosterCreate(cached.data(), static_cast<bst_ulong>(cached.size()), &booster.handle), "XGBoosterCreate");
  auto set = [&](const char* name, const std::string& value) {
    check(xgb().XGBoosterSetParam(booster.handle, name, value.c_str()), fmt::format("XGBoosterSetParam({} = {})", name, value).c_str());
  };
  set("verbosity", "0");
  set("objective", "multi:softprob");
  set("num_class", std::to_string(n_classes));
  set("tree_method", "hist");
  set("nthread", std::to_string(threads));
  set("seed", std::to_string(options.seed % 2147483647ULL));
  set("max_depth", fmt::format("{}", static_cast<int>(hp.at("max_depth"))));
  set("eta", fmt::format("{}", hp.at("eta")));
  set("subsample", fmt::format("{}", hp.at("subsample")));
  set("colsample_bytree", fmt::format("{}", hp.at("colsample_bytree")));
  set("min_child_weight", fmt::format("{}", hp.at("min_child_weight")));
  set("lambda", fmt::format("{}", hp.at("lambda")));
  set("max_bin", fmt::format("{}", static_cast<int>(hp.at("max_bin"))));
  set("eval_metric", "mlogloss");

  std::vector<std::int32_t> predicted(static_cast<std::size_t>(std::max(n, validation.n)));
  auto argmax_rows = [&](const float* p, std::int64_t rows) {
    for (std::int64_t i = 0; i < rows; ++i) {
      const float* row = p + i * n_classes;
      predicted[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(std::max_element(row, row + n_classes) - row);
    }
  };

  double best_loss = std::numeric_limits<double>::infinity();
  int best_round = 0;
  double best_f1 = 0;
  double last_loss = 0;
  std::string stop = "n_estimators";
  int round = 0;
  const auto started = std::chrono::steady_clock::now();
  for (round = 0; round < rounds; ++round) {
    check_cancelled();
    const auto round_started = std::chrono::steady_clock::now();
    check(xgb().XGBoosterUpdateOneIter(booster.handle, round, train.handle), "XGBoosterUpdateOneIter");
    std::vector<DMatrixHandle> evaluated = {train.handle};
    std::vector<const char*> names = {"train"};
    if (has_validation) {
      evaluated.push_back(held_out.handle);
      names.push_back("validation");
    }
    const char* evaluation = nullptr;
    check(xgb().XGBoosterEvalOneIter(booster.handle, round, evaluated.data(), names.data(), static_cast<bst_ulong>(evaluated.size()), &evaluation),
          "XGBoosterEvalOneIter");
    const std::string line = evaluation;
    last_loss = parse_metric(line, "train-mlogloss");
    argmax_rows(predict_cached(booster.handle, train.handle, n, n_classes), n);
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < n; ++i) correct += predicted[static_cast<std::size_t>(i)] == labels[static_cast<std::size_t>(i)];
    nlohmann::json record = {{"epoch", round + 1},
                             {"loss", last_loss},
                             {"train_accuracy", static_cast<double>(correct) / static_cast<double>(n)},
                             {"learning_rate", hp.at("eta")}};
    bool improved = false;
    double validation_f1 = 0;
    if (has_validation) {
      const double loss = parse_metric(line, "validation-mlogloss");
      argmax_rows(predict_cached(booster.handle, held_out.handle, validation.n, n_classes), validation.n);
      std::int64_t right = 0;
      for (std::int64_t i = 0; i < validation.n; ++i) right += predicted[static_cast<std::size_t>(i)] == validation.labels[i];
      validation_f1 = macro_f1_score(validation.labels, predicted.data(), validation.n, n_classes);
      record["validation_loss"] = loss;
      record["validation_accuracy"] = static_cast<double>(right) / static_cast<double>(validation.n);
      record["validation_macro_f1"] = validation_f1;
      if (loss < best_loss) {
        improved = true;
        best_loss = loss;
        best_round = round;
        best_f1 = validation_f1;
      }
    }
    record["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - round_started).count();
    if (options.on_epoch) options.on_epoch(record);
    if (has_validation && known > 0 && !improved && early_stopping > 0 && round - best_round >= early_stopping) {
      stop = "early_stopping_rounds";
      ++round;
      break;
    }
  }
  const int rounds_run = std::min(round, rounds);
  const bool keep_best = has_validation && known > 0;
  if (keep_best && best_round + 1 < rounds_run) {
    BoosterHandle sliced = nullptr;
    check(xgb().XGBoosterSlice(booster.handle, 0, best_round + 1, 1, &sliced), "XGBoosterSlice");
    booster.reset(sliced);
  }
  bst_ulong length = 0;
  const char* bytes = nullptr;
  check(xgb().XGBoosterSaveModelToBuffer(booster.handle, R"({"format": "ubj"})", &length, &bytes), "XGBoosterSaveModelToBuffer");
  model_.assign(reinterpret_cast<const std::uint8_t*>(bytes), reinterpret_cast<const std::uint8_t*>(bytes) + length);
  features_ = d;
  load_booster("xgboost fit");
  fit_report_ = {{"rounds_run", rounds_run},
                 {"trees", (keep_best ? best_round + 1 : rounds_run) * n_classes},
                 {"stop", stop},
                 {"final_train_loss", last_loss},
                 {"threads", threads},
                 {"xgboost_version", version()},
                 {"model_bytes", model_.size()},
                 {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()}};
  if (has_validation) {
    fit_report_["best_round"] = best_round + 1;
    fit_report_["best_validation_loss"] = best_loss;
    fit_report_["best_validation_macro_f1"] = best_f1;
    fit_report_["n_validation"] = validation.n;
  }
}

void GradientBoostedTrees::load_booster(const std::string& what) {
  quiet_xgboost();
  Booster booster;
  check(xgb().XGBoosterCreate(nullptr, 0, &booster.handle), "XGBoosterCreate");
  if (xgb().XGBoosterLoadModelFromBuffer(booster.handle, model_.data(), static_cast<bst_ulong>(model_.size())) != 0) {
    throw InputError(fmt::format("{}: the xgboost booster does not load: {}", what, xgb().XGBGetLastError()));
  }
  check(xgb().XGBoosterSetParam(booster.handle, "nthread", "1"), "XGBoosterSetParam(nthread)");
  bst_ulong n_features = 0;
  check(xgb().XGBoosterGetNumFeature(booster.handle, &n_features), "XGBoosterGetNumFeature");
  if (n_features != static_cast<bst_ulong>(features_)) {
    throw InputError(fmt::format("{}: the xgboost booster has {} features, the classifier {}", what, n_features, features_));
  }
  booster_.reset(booster.handle);
  booster.handle = nullptr;
  // One prediction now, so that the booster configures itself before concurrent predictions.
  std::vector<float> row(static_cast<std::size_t>(features_), 0.0f);
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  const std::string values = fmt::format(R"({{"data": [{}, true], "shape": [1, {}], "typestr": "<f4", "version": 3}})",
                                         reinterpret_cast<std::uintptr_t>(row.data()), features_);
  check(xgb().XGBoosterPredictFromDense(booster_.handle, values.c_str(),
                                  R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": true, "missing": NaN, "cache_id": 0})",
                                  nullptr, &shape, &dims, &result),
        "XGBoosterPredictFromDense");
}

void GradientBoostedTrees::predict_standardized(const float* x, std::int64_t n, int, float* out) const {
  const int c = n_classes();
  const std::string values = fmt::format(R"({{"data": [{}, true], "shape": [{}, {}], "typestr": "<f4", "version": 3}})",
                                         reinterpret_cast<std::uintptr_t>(x), n, features_);
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  check(xgb().XGBoosterPredictFromDense(booster_.handle, values.c_str(),
                                  R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": true, "missing": NaN, "cache_id": 0})",
                                  nullptr, &shape, &dims, &result),
        "XGBoosterPredictFromDense");
  if (dims != 2 || shape[0] != static_cast<bst_ulong>(n) || shape[1] != static_cast<bst_ulong>(c)) {
    throw InputError(fmt::format("xgboost: prediction of {} cells has an unexpected shape", n));
  }
  // Renormalise in double: the rows of XGBoost's float softmax may sum to 1 +- a few ulp.
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = result + i * c;
    double sum = 0;
    for (int k = 0; k < c; ++k) sum += row[k];
    for (int k = 0; k < c; ++k) out[i * c + k] = static_cast<float>(row[k] / sum);
  }
}

void GradientBoostedTrees::import_parameters(const ClassifierState& state, const std::string& what) {
  const auto found = state.blobs.find("booster");
  if (found == state.blobs.end() || found->second.empty()) throw InputError(fmt::format("{}: the xgboost booster is missing", what));
  const auto& booster = found->second;
  const auto bytes = state.attributes.find("booster_bytes");
  const auto checksum = state.attributes.find("booster_fnv1a64");
  if (bytes == state.attributes.end() || checksum == state.attributes.end() || !bytes->is_number_unsigned() ||
      !checksum->is_string()) {
    throw InputError(fmt::format("{}: the xgboost booster has no length and checksum (booster_bytes, booster_fnv1a64)", what));
  }
  if (bytes->get<std::uint64_t>() != booster.size()) {
    throw InputError(fmt::format("{}: the xgboost booster does not load: {} bytes stored, {} expected (truncated file?)", what,
                                 booster.size(), bytes->get<std::uint64_t>()));
  }
  if (checksum->get<std::string>() != booster_checksum(booster)) {
    throw InputError(fmt::format("{}: the xgboost booster does not load: its checksum does not match (corrupted file?)", what));
  }
  model_ = booster;
  features_ = n_features();
  load_booster(what);
}

}  // namespace

std::unique_ptr<Classifier> make_xgboost() { return std::make_unique<GradientBoostedTrees>(); }

}  // namespace celltyper
