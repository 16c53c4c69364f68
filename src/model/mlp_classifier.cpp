// Multilayer perceptron classifier: state, torch-free prediction, and the loader of its libtorch
// trainer (mlp.cpp, a module loaded on the first fit, see mlp_plugin.hpp).
//
// Prediction uses a fixed-order float32 kernel, so that a cell's probabilities depend only on the
// cell and the weights, never on the thread count or on which other cells share its block.
#include <celltyper/classifier.hpp>
#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>

#include "model/mlp_plugin.hpp"

#include <fmt/format.h>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#ifndef CELLTYPER_MLP_MODULE
#define CELLTYPER_MLP_MODULE ""
#endif

namespace celltyper {
namespace {

// ---- the trainer module --------------------------------------------------------------------------

/// The trainer's entry point, loaded once per process from (first found) $CELLTYPER_MLP_MODULE,
/// the module built with the library, or libcelltyper_mlp_torch.so beside the executable.
mlp_plugin::TrainFunction load_trainer() {
  static std::once_flag once;
  static mlp_plugin::TrainFunction train = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("CELLTYPER_MLP_MODULE"); env != nullptr && env[0] != '\0') candidates.emplace_back(env);
    if (std::string(CELLTYPER_MLP_MODULE).size() > 0) candidates.emplace_back(CELLTYPER_MLP_MODULE);
    std::error_code error;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
    if (!error) candidates.push_back((exe.parent_path() / mlp_plugin::kModuleName).string());
    std::string tried;
    for (const auto& path : candidates) {
      if (!std::filesystem::exists(path, error)) {
        tried += fmt::format("{}{} (absent)", tried.empty() ? "" : "; ", path);
        continue;
      }
      void* module = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (module == nullptr) {
        tried += fmt::format("{}{} ({})", tried.empty() ? "" : "; ", path, dlerror());
        continue;
      }
      train = reinterpret_cast<mlp_plugin::TrainFunction>(dlsym(module, mlp_plugin::kTrainSymbol));
      if (train != nullptr) return;
      tried += fmt::format("{}{} (no symbol {})", tried.empty() ? "" : "; ", path, mlp_plugin::kTrainSymbol);
    }
    failure = fmt::format("mlp training needs the libtorch module {} (built with celltyper when libtorch-dev is installed; "
                          "set CELLTYPER_MLP_MODULE to its path); tried: {}",
                          mlp_plugin::kModuleName, tried);
  });
  if (train == nullptr) throw UnsupportedError(failure);
  return train;
}

// ---- prediction kernel ----------------------------------------------------------------------

constexpr int kTileRows = 8;   // rows per register tile
constexpr int kTileCols = 32;  // outputs per register tile (two AVX-512 or four AVX2 registers)

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

/// One dense layer packed for the kernel: weights transposed to [inputs x outputs_padded]
/// (outputs padded with zero columns to a multiple of kTileCols), bias padded likewise.
struct PackedLayer {
  int inputs = 0;
  int outputs = 0;
  int outputs_padded = 0;
  bool relu = false;
  std::vector<float> weights;
  std::vector<float> bias;
};

/// y[r, :] = bias + x[r, :] W (then ReLU) for `rows` rows (a multiple of kTileRows); x has row
/// stride `x_stride` (>= layer.inputs), y has row stride layer.outputs_padded. Every output is
/// accumulated by fused multiply-adds over the inputs in order, by the same code for every row.
void layer_forward(const PackedLayer& layer, const float* x, std::int64_t rows, int x_stride, float* y) {
  const int n_in = layer.inputs;
  const int stride = layer.outputs_padded;
  for (std::int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    for (int j0 = 0; j0 < stride; j0 += kTileCols) {
      float acc[kTileRows][kTileCols];
      for (int rr = 0; rr < kTileRows; ++rr) {
        for (int jj = 0; jj < kTileCols; ++jj) acc[rr][jj] = layer.bias[static_cast<std::size_t>(j0 + jj)];
      }
      const float* x_tile = x + r0 * x_stride;
      for (int k = 0; k < n_in; ++k) {
        const float* w = layer.weights.data() + static_cast<std::size_t>(k) * stride + j0;
        for (int rr = 0; rr < kTileRows; ++rr) {
          const float value = x_tile[static_cast<std::int64_t>(rr) * x_stride + k];
          for (int jj = 0; jj < kTileCols; ++jj) acc[rr][jj] = std::fma(value, w[jj], acc[rr][jj]);
        }
      }
      for (int rr = 0; rr < kTileRows; ++rr) {
        float* out = y + (r0 + rr) * stride + j0;
        for (int jj = 0; jj < kTileCols; ++jj) out[jj] = layer.relu ? std::max(acc[rr][jj], 0.0f) : acc[rr][jj];
      }
    }
  }
}

// ---- the classifier -------------------------------------------------------------------------

class MultilayerPerceptron final : public Classifier {
 public:
  [[nodiscard]] std::string type() const override { return "mlp"; }
  [[nodiscard]] bool uses_validation() const override { return true; }
  [[nodiscard]] bool supports_label_sets() const override { return true; }

 protected:
  void fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels, int n_classes,
                        const FitOptions& options) override;
  /// Compressed rows train without a dense copy: each batch is densified and standardised as the
  /// trainer asks for it (the same values as the dense route's, so the same model).
  void fit_features(const SparseFeatures& features, std::int64_t n, const std::vector<std::int32_t>& labels, int n_classes,
                    const FitOptions& options) override;
  void predict_standardized(const float* x, std::int64_t n, int num_threads, float* out) const override;
  void export_parameters(ClassifierState& state) const override;
  void import_parameters(const ClassifierState& state, const std::string& what) override;

 private:
  /// Train in the libtorch module: `request` holds the features (`x` or `gather_rows`), the rest
  /// is filled here.
  void train_module(mlp_plugin::TrainRequest& request, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                    int n_classes, const FitOptions& options);
  /// Build `packed_` from `weights_` / `biases_`.
  void pack();

  /// Layer sizes: inputs, hidden widths..., classes.
  std::vector<int> sizes_;
  /// Per layer l: weights [sizes_[l+1] x sizes_[l]] row-major (torch's Linear layout), biases.
  std::vector<std::vector<float>> weights_;
  std::vector<std::vector<float>> biases_;
  std::vector<PackedLayer> packed_;
};

void MultilayerPerceptron::fit_standardized(const float* x, std::int64_t n, int d, const std::vector<std::int32_t>& labels,
                                            int n_classes, const FitOptions& options) {
  mlp_plugin::TrainRequest request;
  request.x = x;
  train_module(request, n, d, labels, n_classes, options);
}

void MultilayerPerceptron::fit_features(const SparseFeatures& features, std::int64_t n, const std::vector<std::int32_t>& labels,
                                        int n_classes, const FitOptions& options) {
  const int d = features.d;
  mlp_plugin::TrainRequest request;
  request.gather_rows = [&](const std::int64_t* cells, std::int64_t count, float* out) {
    for (std::int64_t i = 0; i < count; ++i) {
      float* row = out + i * d;
      features.copy_row(options.rows == nullptr ? cells[i] : (*options.rows)[static_cast<std::size_t>(cells[i])], row);
      standardizer().apply(row, 1, row);
    }
  };
  FitOptions own = options;
  own.rows = nullptr;
  train_module(request, n, d, labels, n_classes, own);
}

void MultilayerPerceptron::train_module(mlp_plugin::TrainRequest& request, std::int64_t n, int d,
                                        const std::vector<std::int32_t>& labels, int n_classes, const FitOptions& options) {
  const mlp_plugin::TrainFunction train = load_trainer();
  request.n = n;
  request.d = d;
  request.labels = labels.data();
  request.n_classes = n_classes;
  request.validation = options.validation;
  request.hyperparameters = options.hyperparameters;
  request.threads = resolve_threads(options.num_threads);
  request.seed = options.seed;
  // Coarse labels or per-cell weights: the trainer's general loss, with every cell's weight.
  std::vector<double> cell_weights;
  if (!options.label_sets.empty() || !options.sample_weights.empty()) {
    cell_weights = training_cell_weights(labels, n_classes + static_cast<int>(options.label_sets.size()),
                                         options.hyperparameters.at("class_balanced") != 0, options.sample_weights);
    request.label_sets = &options.label_sets;
    request.cell_weights = &cell_weights;
  }
  // Epochs run inside the module; a cancellation found after an epoch stops it there (the
  // module turns the exception into result.error, which is replaced by Cancelled below).
  bool cancelled = false;
  request.on_epoch = [&options, &cancelled](const nlohmann::json& record) {
    if (options.on_epoch) options.on_epoch(record);
    try {
      check_cancelled();
    } catch (const Cancelled&) {
      cancelled = true;
      throw;
    }
  };
  request.data_parallel = options.data_parallel;
  const ValidationSet& validation = options.validation;
  request.score_validation = [&validation, n_classes](const std::int32_t* predicted) {
    return macro_f1_score(validation.labels, predicted, validation.n, n_classes);
  };
  mlp_plugin::TrainResult result;
  train(request, result);
  if (cancelled) throw Cancelled();
  if (!result.error.empty()) throw InputError(result.error);
  sizes_ = std::move(result.sizes);
  weights_ = std::move(result.weights);
  biases_ = std::move(result.biases);
  pack();
  fit_report_ = std::move(result.report);
}

void MultilayerPerceptron::pack() {
  packed_.clear();
  const int n_layers = static_cast<int>(sizes_.size()) - 1;
  for (int l = 0; l < n_layers; ++l) {
    PackedLayer layer;
    const int outputs = sizes_[static_cast<std::size_t>(l) + 1];
    // Inputs of a hidden layer are the previous layer's padded outputs (the padding is zero).
    layer.inputs = l == 0 ? sizes_[0] : packed_.back().outputs_padded;
    layer.outputs = outputs;
    layer.outputs_padded = round_up(outputs, kTileCols);
    layer.relu = l + 1 < n_layers;
    layer.weights.assign(static_cast<std::size_t>(layer.inputs) * layer.outputs_padded, 0.0f);
    layer.bias.assign(static_cast<std::size_t>(layer.outputs_padded), 0.0f);
    const int fan_in = sizes_[static_cast<std::size_t>(l)];
    const auto& w = weights_[static_cast<std::size_t>(l)];
    for (int o = 0; o < outputs; ++o) {
      for (int i = 0; i < fan_in; ++i) {
        layer.weights[static_cast<std::size_t>(i) * layer.outputs_padded + o] = w[static_cast<std::size_t>(o) * fan_in + i];
      }
      layer.bias[static_cast<std::size_t>(o)] = biases_[static_cast<std::size_t>(l)][static_cast<std::size_t>(o)];
    }
    packed_.push_back(std::move(layer));
  }
}

void MultilayerPerceptron::predict_standardized(const float* x, std::int64_t n, int, float* out) const {
  const int d = sizes_.front();
  const int c = sizes_.back();
  const std::int64_t rows = (n + kTileRows - 1) / kTileRows * kTileRows;
  int widest = 0;
  for (const auto& layer : packed_) widest = std::max(widest, layer.outputs_padded);
  std::vector<float> input(static_cast<std::size_t>(rows * d), 0.0f);
  std::copy(x, x + n * d, input.begin());
  std::vector<float> a(static_cast<std::size_t>(rows * widest));
  std::vector<float> b(static_cast<std::size_t>(rows * widest));
  const float* current = input.data();
  int stride = d;
  for (const auto& layer : packed_) {
    layer_forward(layer, current, rows, stride, a.data());
    std::swap(a, b);
    current = b.data();
    stride = layer.outputs_padded;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const float* logits = current + i * stride;
    float* probabilities = out + i * c;
    const double max = *std::max_element(logits, logits + c);
    double sum = 0;
    for (int k = 0; k < c; ++k) sum += std::exp(static_cast<double>(logits[k]) - max);
    for (int k = 0; k < c; ++k) probabilities[k] = static_cast<float>(std::exp(static_cast<double>(logits[k]) - max) / sum);
  }
}

void MultilayerPerceptron::export_parameters(ClassifierState& state) const {
  state.attributes["layer_sizes"] = sizes_;
  for (std::size_t l = 0; l + 1 < sizes_.size(); ++l) {
    state.float_arrays[fmt::format("weight_{}", l)] = {{sizes_[l + 1], sizes_[l]}, weights_[l]};
    state.float_arrays[fmt::format("bias_{}", l)] = {{sizes_[l + 1]}, biases_[l]};
  }
}

void MultilayerPerceptron::import_parameters(const ClassifierState& state, const std::string& what) {
  const auto sizes = state.attributes.at("layer_sizes").get<std::vector<int>>();
  if (sizes.size() < 2 || sizes.front() != n_features() || sizes.back() != n_classes() ||
      std::any_of(sizes.begin(), sizes.end(), [](int size) { return size < 1; })) {
    throw InputError(fmt::format("{}: mlp layer sizes do not match {} features and {} classes", what, n_features(), n_classes()));
  }
  std::vector<std::vector<float>> weights;
  std::vector<std::vector<float>> biases;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const auto w = state.float_arrays.find(fmt::format("weight_{}", l));
    const auto b = state.float_arrays.find(fmt::format("bias_{}", l));
    if (w == state.float_arrays.end() || b == state.float_arrays.end() ||
        w->second.values.size() != static_cast<std::size_t>(sizes[l + 1]) * static_cast<std::size_t>(sizes[l]) ||
        b->second.values.size() != static_cast<std::size_t>(sizes[l + 1])) {
      throw InputError(fmt::format("{}: mlp layer {} weights are missing or not {} x {}", what, l, sizes[l + 1], sizes[l]));
    }
    for (float value : w->second.values) {
      if (!std::isfinite(value)) throw InputError(fmt::format("{}: mlp layer {} has a non-finite weight", what, l));
    }
    weights.push_back(w->second.values);
    biases.push_back(b->second.values);
  }
  sizes_ = sizes;
  weights_ = std::move(weights);
  biases_ = std::move(biases);
  pack();
}

}  // namespace

std::unique_ptr<Classifier> make_mlp() { return std::make_unique<MultilayerPerceptron>(); }

}  // namespace celltyper
