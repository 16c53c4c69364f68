// Interface between the MLP classifier (mlp_classifier.cpp, in the library, torch-free) and its
// libtorch trainer (mlp.cpp, built as the module libcelltyper_mlp_torch.so and loaded with dlopen
// on the first MLP fit). Loading libtorch costs about 2 s of static initialisation, which every
// `celltyper` invocation and test process would otherwise pay; prediction never needs torch.
#pragma once

#include <celltyper/classifier.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace celltyper::mlp_plugin {

/// Training input: standardised features and validation cells, resolved hyperparameters.
/// (Built together with the library: a field added here bumps kTrainSymbol's version.)
struct TrainRequest {
  const float* x = nullptr;                 ///< [n x d] row-major, standardised; or null, with `gather_rows`
  /// When `x` is null: writes the standardised features of training cells cells[0..count) into
  /// out [count x d] (the library densifies them from compressed rows, one batch at a time, so
  /// the training set is never held dense).
  std::function<void(const std::int64_t* cells, std::int64_t count, float* out)> gather_rows;
  std::int64_t n = 0;
  int d = 0;
  const std::int32_t* labels = nullptr;     ///< n codes in 0..n_classes-1
  int n_classes = 0;
  ValidationSet validation;                 ///< standardised features; may be empty
  HyperParameters hyperparameters;          ///< every "mlp" hyperparameter present
  int threads = 1;                          ///< resolved (>= 1)
  std::uint64_t seed = 0;
  /// Macro-F1 of predicted codes for the validation cells (macro_f1_score of the library).
  std::function<double(const std::int32_t* predicted)> score_validation;
  std::function<void(const nlohmann::json&)> on_epoch;  ///< may be empty
  DataParallel data_parallel;               ///< inactive for a single process
  /// Mixed-granularity training (FitOptions::label_sets): label codes >= n_classes index these
  /// sets. When set, or with `cell_weights`, the loss is the weighted mean over cells of
  /// -log P(the cell's set) (an ordinary label is a set of one class) with label smoothing.
  const std::vector<std::vector<std::int32_t>>* label_sets = nullptr;
  /// Per-cell loss weights, class balancing included (training_cell_weights); null = torch's
  /// class-weighted cross-entropy from `class_balanced`.
  const std::vector<double>* cell_weights = nullptr;
};

/// Training output: layer sizes (inputs, hidden..., classes), per layer weights [out x in]
/// row-major and biases [out], the fit report; `error` non-empty when training failed.
struct TrainResult {
  std::vector<int> sizes;
  std::vector<std::vector<float>> weights;
  std::vector<std::vector<float>> biases;
  nlohmann::json report = nlohmann::json::object();
  std::string error;
};

/// Signature of the module's entry point `kTrainSymbol` (never throws; errors go to `error`).
using TrainFunction = void (*)(const TrainRequest& request, TrainResult& result);
inline constexpr const char* kTrainSymbol = "celltyper_mlp_train_v3";
/// File name of the module (looked up beside the executable as a last resort).
inline constexpr const char* kModuleName = "libcelltyper_mlp_torch.so";

}  // namespace celltyper::mlp_plugin
