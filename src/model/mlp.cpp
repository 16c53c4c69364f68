// MLP training with libtorch, built as the module libcelltyper_mlp_torch.so (mlp_plugin.hpp) and
// loaded by the MLP classifier (mlp_classifier.cpp) on its first fit; the only file that includes
// torch. AdamW with decoupled weight decay on the weights, linear warm-up then cosine decay of the
// learning rate per step, the whole training set shuffled in memory every epoch (seeded
// Fisher-Yates), seeded dropout, optional class-balanced and label-smoothed cross-entropy, early
// stopping on validation macro-F1 keeping the best epoch's weights.
//
// Thread-count invariance: OpenBLAS 0.3.21's sgemm rounds differently with 2 threads than with 1,
// and even single-threaded its result for an element depends on the matrix shape (measured: up to
// 1.5e-5 on a 512 x 256 x 256 product). So the dense layers are a custom autograd function whose
// three products (forward, input gradient, weight gradient) are cut into blocks of kBlock rows
// that depend only on the shapes, each computed by single-threaded OpenBLAS, the blocks spread
// over the requested threads. Every other op runs on one thread (element-wise, row-wise, or a
// serial draw from the seeded generator): 1 and N threads give the same weights, bit for bit.
//
// Torch's intra-op thread count and OpenBLAS's thread pool are process-wide settings: training
// sets both to 1 and restores them afterwards, holding a mutex so that two MLP fits in one
// process do not fight over them.
#include <celltyper/classifier.hpp>

#include "model/mlp_plugin.hpp"

#include <fmt/format.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <numbers>
#include <random>

namespace celltyper {
namespace {

// ---- BLAS threads ---------------------------------------------------------------------------

/// OpenBLAS's thread-pool controls, looked up at run time (libtorch links the system BLAS, which
/// on Debian is OpenBLAS through the libblas.so.3 alternative, or reference BLAS without them).
struct OpenBlas {
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  using GetConfig = char* (*)();
  SetThreads set_threads = nullptr;
  GetThreads get_threads = nullptr;
  GetConfig get_config = nullptr;
  static const OpenBlas& get() {
    static const OpenBlas blas = [] {
      OpenBlas found;
      // This module is loaded RTLD_LOCAL, so libtorch's libraries are not in the global scope:
      // ask for the already loaded OpenBLAS by name first.
      void* library = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
      if (library == nullptr) library = RTLD_DEFAULT;
      found.set_threads = reinterpret_cast<SetThreads>(dlsym(library, "openblas_set_num_threads"));
      found.get_threads = reinterpret_cast<GetThreads>(dlsym(library, "openblas_get_num_threads"));
      found.get_config = reinterpret_cast<GetConfig>(dlsym(library, "openblas_get_config"));
      return found;
    }();
    return blas;
  }
  [[nodiscard]] std::string description() const {
    return get_config != nullptr ? std::string(get_config()) : std::string("not OpenBLAS (reference or other BLAS)");
  }
};

/// Helper threads for the blocked products. The caller claims blocks too (an atomic counter) and
/// returns as soon as every block is done, so a helper that the OS schedules late (a busy
/// machine) costs nothing: it finds no block left. OpenMP teams (torch's at::parallel_for) instead
/// wait for every thread at each of the ~10 products of a step, which on 2 shared cores made 2
/// threads 10x slower than 1 (measured). Which thread computes a block never changes its result.
class BlockPool {
 public:
  explicit BlockPool(int helpers) {
    for (int t = 0; t < helpers; ++t) threads_.emplace_back([this] { serve(); });
  }
  ~BlockPool() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  /// Run `work(block)` for block in [0, blocks); rethrows the first exception of a block.
  void run(std::int64_t blocks, const std::function<void(std::int64_t)>& work) {
    auto job = std::make_shared<Job>();
    job->blocks = blocks;
    job->work = &work;
    if (!threads_.empty() && blocks > 1) {
      {
        const std::lock_guard lock(mutex_);
        job_ = job;
      }
      wake_.notify_all();
    }
    execute(*job);
    while (job->done.load(std::memory_order_acquire) < blocks) std::this_thread::yield();
    {
      const std::lock_guard lock(mutex_);
      if (job_ == job) job_.reset();
    }
    if (job->failure) std::rethrow_exception(job->failure);
  }

 private:
  struct Job {
    std::int64_t blocks = 0;
    const std::function<void(std::int64_t)>* work = nullptr;
    std::atomic<std::int64_t> next{0};
    std::atomic<std::int64_t> done{0};
    std::mutex failure_mutex;
    std::exception_ptr failure;
  };
  /// Claim and run blocks until none is left.
  static void execute(Job& job) {
    const torch::NoGradGuard no_grad;  // grad mode is per thread; these are plain products
    while (true) {
      const std::int64_t block = job.next.fetch_add(1);
      if (block >= job.blocks) return;
      try {
        (*job.work)(block);
      } catch (...) {
        const std::lock_guard lock(job.failure_mutex);
        if (!job.failure) job.failure = std::current_exception();
      }
      job.done.fetch_add(1, std::memory_order_release);
    }
  }
  void serve() {
    std::shared_ptr<Job> seen;
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || (job_ != nullptr && job_ != seen); });
        if (stopping_) return;
        job = job_;
      }
      seen = job;
      execute(*job);
    }
  }
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  bool stopping_ = false;
};

/// The pool of the running fit (set by ThreadScope, under its mutex); nullptr = one thread.
BlockPool* block_pool = nullptr;

/// For its lifetime: torch's intra-op threads and OpenBLAS's threads 1 (the products' blocks are
/// the only parallel work, on a BlockPool of `threads` threads, the caller included); serialises
/// MLP fits.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : lock_(mutex()), pool_(threads - 1) {
    saved_torch_ = at::get_num_threads();
    at::set_num_threads(1);
    block_pool = &pool_;
    const OpenBlas& blas = OpenBlas::get();
    if (blas.set_threads != nullptr && blas.get_threads != nullptr) {
      saved_blas_ = blas.get_threads();
      blas.set_threads(1);
    }
  }
  ~ThreadScope() {
    block_pool = nullptr;
    at::set_num_threads(saved_torch_);
    const OpenBlas& blas = OpenBlas::get();
    if (saved_blas_ > 0 && blas.set_threads != nullptr) blas.set_threads(saved_blas_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  std::lock_guard<std::mutex> lock_;
  BlockPool pool_;
  int saved_torch_ = 1;
  int saved_blas_ = 0;
};

// ---- deterministic dense layer for training --------------------------------------------------

constexpr std::int64_t kBlock = 64;  // rows per product block; never depends on the thread count

/// Run `work(first, end)` over [0, n) in blocks of kBlock on the fit's BlockPool.
template <typename Work>
void for_each_block(std::int64_t n, Work&& work) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const std::function<void(std::int64_t)> run_block = [&](std::int64_t block) { work(block * kBlock, std::min(n, (block + 1) * kBlock)); };
  if (block_pool != nullptr) {
    block_pool->run(blocks, run_block);
  } else {
    const torch::NoGradGuard no_grad;
    for (std::int64_t block = 0; block < blocks; ++block) run_block(block);
  }
}

/// y = x w^T + b (torch's Linear) with blocked products, see the file comment.
class BlockedLinear : public torch::autograd::Function<BlockedLinear> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias) {
    context->save_for_backward({x, weight});
    const auto input = x.detach().contiguous();
    auto y = torch::empty({input.size(0), weight.size(0)}, input.options());
    const auto weight_t = weight.detach().t();
    for_each_block(input.size(0), [&](std::int64_t first, std::int64_t end) {
      auto out = y.slice(0, first, end);
      at::mm_out(out, input.slice(0, first, end), weight_t);
      // The bias by hand: an ATen op here could start an OpenMP team from this worker thread.
      const std::int64_t width = weight.size(0);
      const float* b = bias.data_ptr<float>();
      float* rows = out.data_ptr<float>();
      for (std::int64_t r = 0; r < end - first; ++r) {
        for (std::int64_t o = 0; o < width; ++o) rows[r * width + o] += b[o];
      }
    });
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context, torch::autograd::variable_list gradients) {
    const auto saved = context->get_saved_variables();
    const auto x = saved[0].detach().contiguous();
    const auto weight = saved[1].detach();
    const auto grad = gradients[0].detach().contiguous();
    torch::Tensor grad_x;
    if (context->needs_input_grad(0)) {
      grad_x = torch::empty_like(x);
      for_each_block(grad.size(0), [&](std::int64_t first, std::int64_t end) {
        auto out = grad_x.slice(0, first, end);
        at::mm_out(out, grad.slice(0, first, end), weight);
      });
    }
    // Weight and bias gradients in blocks of output units; each sums over the whole batch.
    auto grad_weight = torch::empty_like(weight);
    auto grad_bias = torch::empty({weight.size(0)}, weight.options());
    const std::int64_t batch = grad.size(0);
    const std::int64_t width = weight.size(0);
    const float* g = grad.data_ptr<float>();
    float* bias_sums = grad_bias.data_ptr<float>();
    for_each_block(width, [&](std::int64_t first, std::int64_t end) {
      const auto columns = grad.slice(1, first, end);
      auto out = grad_weight.slice(0, first, end);
      at::mm_out(out, columns.t(), x);
      std::vector<double> sums(static_cast<std::size_t>(end - first), 0.0);
      for (std::int64_t r = 0; r < batch; ++r) {
        for (std::int64_t o = first; o < end; ++o) sums[static_cast<std::size_t>(o - first)] += g[r * width + o];
      }
      for (std::int64_t o = first; o < end; ++o) bias_sums[o] = static_cast<float>(sums[static_cast<std::size_t>(o - first)]);
    });
    return {grad_x, grad_weight, grad_bias};
  }
};

/// Fisher-Yates with our own index draw (the order is the same with every standard library).
void shuffle_in_place(std::vector<std::int64_t>& values, std::mt19937_64& rng) {
  for (std::size_t i = values.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(rng() % i);
    std::swap(values[i - 1], values[j]);
  }
}

void train(const mlp_plugin::TrainRequest& request, mlp_plugin::TrainResult& result) {
  const float* x = request.x;
  const std::int64_t n = request.n;
  const int d = request.d;
  const int n_classes = request.n_classes;
  const HyperParameters& hp = request.hyperparameters;
  const int hidden = static_cast<int>(hp.at("hidden"));
  const int layers = static_cast<int>(hp.at("layers"));
  const double dropout = hp.at("dropout");
  const double weight_decay = hp.at("weight_decay");
  const double peak_learning_rate = hp.at("learning_rate");
  const int max_epochs = static_cast<int>(hp.at("epochs"));
  const auto batch_size = static_cast<std::int64_t>(hp.at("batch_size"));
  const double warmup_fraction = hp.at("warmup_fraction");
  const double label_smoothing = hp.at("label_smoothing");
  const bool balanced = hp.at("class_balanced") != 0;
  const int patience = static_cast<int>(hp.at("patience"));
  const ValidationSet& validation = request.validation;
  const bool has_validation = !validation.empty();

  const int threads = request.threads;
  const ThreadScope thread_scope(threads);

  std::vector<int>& sizes = result.sizes;
  sizes.assign(1, d);
  for (int l = 0; l < layers; ++l) sizes.push_back(hidden);
  sizes.push_back(n_classes);
  const int n_layers = static_cast<int>(sizes.size()) - 1;

  // Parameters: He-uniform weights for ReLU layers (He et al., ICCV 2015), PyTorch's default
  // bound 1/sqrt(fan_in) for the output layer, zero biases; drawn from a seeded generator.
  at::Generator generator = at::detail::createCPUGenerator(request.seed);
  std::vector<torch::Tensor> weights;
  std::vector<torch::Tensor> biases;
  for (int l = 0; l < n_layers; ++l) {
    const int fan_in = sizes[static_cast<std::size_t>(l)];
    const double bound = l + 1 < n_layers ? std::sqrt(6.0 / fan_in) : 1.0 / std::sqrt(static_cast<double>(fan_in));
    auto w = torch::empty({sizes[static_cast<std::size_t>(l) + 1], fan_in}, torch::kFloat32);
    w.uniform_(-bound, bound, generator);
    weights.push_back(w.set_requires_grad(true));
    biases.push_back(torch::zeros({sizes[static_cast<std::size_t>(l) + 1]}, torch::kFloat32).set_requires_grad(true));
  }

  // Decoupled weight decay on the weights only (not on the biases).
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(weights, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(peak_learning_rate).weight_decay(weight_decay)));
  groups.emplace_back(biases, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(peak_learning_rate).weight_decay(0.0)));
  torch::optim::AdamW optimizer(std::move(groups), torch::optim::AdamWOptions(peak_learning_rate));

  // A batch's features: rows of the dense matrix, or densified by the caller (`gather_rows`) into
  // a buffer that the next batch reuses (each batch's tensors are done with before it is filled).
  const torch::Tensor x_all = x != nullptr ? torch::from_blob(const_cast<float*>(x), {n, d}, torch::kFloat32) : torch::Tensor();
  std::vector<float> gathered;
  auto gather_batch = [&](const std::int64_t* cells, std::int64_t rows, const torch::Tensor& index) {
    if (x != nullptr) return x_all.index_select(0, index);
    gathered.resize(static_cast<std::size_t>(rows * d));
    request.gather_rows(cells, rows, gathered.data());
    return torch::from_blob(gathered.data(), {rows, d}, torch::kFloat32);
  };
  std::vector<std::int64_t> label_values(request.labels, request.labels + n);
  const torch::Tensor y_all = torch::from_blob(label_values.data(), {n}, torch::kInt64);

  auto loss_options = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing);
  if (balanced && request.cell_weights == nullptr) {  // (the general loss below has its own weights)
    std::vector<double> counts(static_cast<std::size_t>(n_classes), 0.0);
    for (std::int64_t i = 0; i < n; ++i) counts[static_cast<std::size_t>(request.labels[i])] += 1;
    auto class_weight = torch::empty({n_classes}, torch::kFloat32);
    for (int c = 0; c < n_classes; ++c) {
      class_weight[c] = static_cast<float>(static_cast<double>(n) / (n_classes * counts[static_cast<std::size_t>(c)]));
    }
    loss_options = loss_options.weight(class_weight);
  }

  // `mask_rows` / `mask_offset`: a data-parallel process computes rows [offset, offset + rows) of a
  // global batch of `mask_rows`; it draws the dropout masks of the whole batch (the generator then
  // advances exactly as in a single process) and keeps its rows.
  auto forward = [&](torch::Tensor h, bool train, std::int64_t mask_rows = -1, std::int64_t mask_offset = 0) {
    for (int l = 0; l < n_layers; ++l) {
      h = BlockedLinear::apply(h, weights[static_cast<std::size_t>(l)], biases[static_cast<std::size_t>(l)]);
      if (l + 1 == n_layers) break;
      h = at::relu(h);
      if (train && dropout > 0) {
        torch::Tensor keep;
        if (mask_rows < 0) {
          keep = torch::empty_like(h).bernoulli_(1.0 - dropout, generator);
        } else {
          keep = torch::empty({mask_rows, h.size(1)}, h.options()).bernoulli_(1.0 - dropout, generator).slice(0, mask_offset, mask_offset + h.size(0));
        }
        h = h * keep * static_cast<float>(1.0 / (1.0 - dropout));
      }
    }
    return h;
  };
  // Data parallelism (DataParallel in classifier.hpp): the mean loss of a global batch is the sum of
  // the per-process sums divided by the batch's weight (cells, or the class weights of its labels
  // with class balancing, as torch's weighted mean), so summed gradients are the global ones.
  const DataParallel& parallel = request.data_parallel;
  const bool data_parallel = parallel.active();
  auto sum_options = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing).reduction(torch::kSum);
  std::vector<double> class_weight_values(static_cast<std::size_t>(n_classes), 1.0);
  if (balanced && request.cell_weights == nullptr) {
    sum_options = sum_options.weight(loss_options.weight());
    const auto w = loss_options.weight().contiguous();
    for (int c = 0; c < n_classes; ++c) class_weight_values[static_cast<std::size_t>(c)] = w.data_ptr<float>()[c];
  }
  // The general loss (label sets or per-cell weights): every code's class mask (a class is a set
  // of one), loss_i = (1 - e) (-log P(S_i)) + e mean_k(-log p_k), weighted mean over the batch.
  const bool general = request.cell_weights != nullptr;
  torch::Tensor code_masks;
  torch::Tensor cell_weight_all;
  if (general) {
    const std::size_t n_sets = request.label_sets == nullptr ? 0 : request.label_sets->size();
    code_masks = torch::zeros({n_classes + static_cast<std::int64_t>(n_sets), n_classes}, torch::kBool);
    for (int c = 0; c < n_classes; ++c) code_masks[c][c] = true;
    for (std::size_t s = 0; s < n_sets; ++s) {
      for (const auto member : (*request.label_sets)[s]) code_masks[n_classes + static_cast<std::int64_t>(s)][member] = true;
    }
    std::vector<float> w(request.cell_weights->begin(), request.cell_weights->end());
    cell_weight_all = torch::from_blob(w.data(), {n}, torch::kFloat32).clone();
  }
  // Summed weighted loss of `logits` for the cells `codes` (weights `w`), and the cells whose
  // argmax lies in their set.
  auto general_loss_sum = [&](const torch::Tensor& logits, const torch::Tensor& codes, const torch::Tensor& w, std::int64_t& hits) {
    const auto log_p = torch::log_softmax(logits, 1);
    const auto mask = code_masks.index_select(0, codes);
    const auto in_set = -torch::logsumexp(log_p.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity()), 1);
    auto per_cell = in_set;
    if (label_smoothing > 0) per_cell = (1.0 - label_smoothing) * in_set - label_smoothing * log_p.mean(1);
    hits += mask.gather(1, logits.argmax(1, true)).sum().item<std::int64_t>();
    return (per_cell * w).sum();
  };
  std::vector<torch::Tensor> parameters;
  for (int l = 0; l < n_layers; ++l) {
    parameters.push_back(weights[static_cast<std::size_t>(l)]);
    parameters.push_back(biases[static_cast<std::size_t>(l)]);
  }
  std::vector<float> flat_gradients;
  auto allreduce_gradients = [&]() {
    flat_gradients.clear();
    for (auto& p : parameters) {
      if (!p.mutable_grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      const auto g = p.grad().contiguous();
      flat_gradients.insert(flat_gradients.end(), g.data_ptr<float>(), g.data_ptr<float>() + g.numel());
    }
    parallel.allreduce_sum(flat_gradients.data(), flat_gradients.size());
    std::size_t offset = 0;
    for (auto& p : parameters) {
      auto g = p.mutable_grad();
      std::copy_n(flat_gradients.data() + offset, g.numel(), g.data_ptr<float>());
      offset += static_cast<std::size_t>(g.numel());
    }
  };

  // Validation: predicted codes in chunks, without gradients.
  std::vector<std::int32_t> validation_prediction(static_cast<std::size_t>(validation.n));
  std::vector<float> validation_slice;
  auto score_validation = [&](double& accuracy, double& macro_f1) {
    torch::NoGradGuard guard;
    std::int64_t correct = 0;
    for (std::int64_t first = 0; first < validation.n; first += kValidationSlice) {
      const std::int64_t rows = std::min(kValidationSlice, validation.n - first);
      const float* features = validation.rows(first, rows, d, validation_slice);  // (read a slice at a time)
      const auto input = torch::from_blob(const_cast<float*>(features), {rows, d}, torch::kFloat32);
      const auto predicted = forward(input, false).argmax(1).contiguous();
      const auto* codes = predicted.data_ptr<std::int64_t>();
      for (std::int64_t i = 0; i < rows; ++i) {
        validation_prediction[static_cast<std::size_t>(first + i)] = static_cast<std::int32_t>(codes[i]);
        correct += codes[i] == validation.labels[first + i];
      }
    }
    accuracy = static_cast<double>(correct) / static_cast<double>(validation.n);
    macro_f1 = request.score_validation(validation_prediction.data());
  };

  const std::int64_t steps_per_epoch = (n + batch_size - 1) / batch_size;
  const std::int64_t total_steps = steps_per_epoch * max_epochs;
  const auto warmup_steps = static_cast<std::int64_t>(std::llround(warmup_fraction * static_cast<double>(total_steps)));
  auto learning_rate_at = [&](std::int64_t step) {
    if (step < warmup_steps) return peak_learning_rate * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    const double progress = static_cast<double>(step - warmup_steps) / static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps));
    return peak_learning_rate * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  };

  std::mt19937_64 shuffle_rng(request.seed ^ 0x9e3779b97f4a7c15ULL);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;

  double best_f1 = -1;
  int best_epoch = 0;
  std::vector<torch::Tensor> best_weights;
  std::vector<torch::Tensor> best_biases;
  std::string stop = "epochs";
  int epoch = 0;
  double last_loss = 0;
  double last_learning_rate = 0;
  const auto started = std::chrono::steady_clock::now();
  std::int64_t step = 0;
  for (epoch = 1; epoch <= max_epochs; ++epoch) {
    const auto epoch_started = std::chrono::steady_clock::now();
    shuffle_in_place(order, shuffle_rng);
    double loss_sum = 0;
    std::int64_t correct = 0;
    for (std::int64_t first = 0; first < n; first += batch_size, ++step) {
      const std::int64_t rows = std::min(batch_size, n - first);
      const auto index = torch::from_blob(order.data() + first, {rows}, torch::kInt64);
      const auto batch_x = gather_batch(order.data() + first, rows, index);
      const auto batch_y = y_all.index_select(0, index);
      last_learning_rate = learning_rate_at(step);
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(last_learning_rate);
      }
      optimizer.zero_grad();
      if (data_parallel) {
        const std::int64_t local_first = rows * parallel.rank / parallel.size;
        const std::int64_t local_end = rows * (parallel.rank + 1) / parallel.size;
        double denominator = 0;
        for (std::int64_t i = 0; i < rows; ++i) {
          const auto cell = static_cast<std::size_t>(order[static_cast<std::size_t>(first + i)]);
          denominator += general ? (*request.cell_weights)[cell] : class_weight_values[static_cast<std::size_t>(label_values[cell])];
        }
        if (local_end > local_first) {
          const auto local_x = batch_x.slice(0, local_first, local_end);
          const auto local_y = batch_y.slice(0, local_first, local_end);
          const auto logits = forward(local_x, true, rows, local_first);
          torch::Tensor loss;
          if (general) {
            const auto local_w = cell_weight_all.index_select(0, index).slice(0, local_first, local_end);
            loss = general_loss_sum(logits, local_y, local_w, correct) / static_cast<float>(denominator);
          } else {
            loss = torch::nn::functional::cross_entropy(logits, local_y, sum_options) / static_cast<float>(denominator);
            correct += logits.argmax(1).eq(local_y).sum().item<std::int64_t>();
          }
          loss.backward();
          loss_sum += loss.item<double>() * static_cast<double>(rows);
        } else if (dropout > 0) {  // keep the generator in step with the other processes
          for (int l = 0; l + 1 < n_layers; ++l) (void)torch::empty({rows, hidden}).bernoulli_(1.0 - dropout, generator);
        }
        allreduce_gradients();
        optimizer.step();
        continue;
      }
      const auto logits = forward(batch_x, true);
      torch::Tensor loss;
      if (general) {
        const auto batch_w = cell_weight_all.index_select(0, index);
        loss = general_loss_sum(logits, batch_y, batch_w, correct) / batch_w.sum();
      } else {
        loss = torch::nn::functional::cross_entropy(logits, batch_y, loss_options);
        correct += logits.argmax(1).eq(batch_y).sum().item<std::int64_t>();
      }
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * static_cast<double>(rows);
    }
    if (data_parallel) {  // epoch totals over processes
      float totals[2] = {static_cast<float>(loss_sum), static_cast<float>(correct)};
      parallel.allreduce_sum(totals, 2);
      loss_sum = totals[0];
      correct = static_cast<std::int64_t>(std::llround(totals[1]));
    }
    last_loss = loss_sum / static_cast<double>(n);
    if (!std::isfinite(last_loss)) {
      result.error = fmt::format("mlp: the training loss diverged (not finite) at epoch {}; lower learning_rate (now {})", epoch,
                                 peak_learning_rate);
      return;
    }
    nlohmann::json record = {{"epoch", epoch},
                             {"loss", last_loss},
                             {"train_accuracy", static_cast<double>(correct) / static_cast<double>(n)},
                             {"learning_rate", last_learning_rate}};
    bool improved = false;
    if (has_validation) {
      double accuracy = 0;
      double f1 = 0;
      score_validation(accuracy, f1);
      record["validation_accuracy"] = accuracy;
      record["validation_macro_f1"] = f1;
      if (f1 > best_f1) {
        improved = true;
        best_f1 = f1;
        best_epoch = epoch;
        best_weights.clear();
        best_biases.clear();
        for (const auto& w : weights) best_weights.push_back(w.detach().clone());
        for (const auto& b : biases) best_biases.push_back(b.detach().clone());
      }
    }
    record["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_started).count();
    if (request.on_epoch) request.on_epoch(record);
    if (has_validation && !improved && patience > 0 && epoch - best_epoch >= patience) {
      stop = "patience";
      break;
    }
  }
  const int epochs_run = std::min(epoch, max_epochs);
  if (has_validation) {
    for (int l = 0; l < n_layers; ++l) {
      weights[static_cast<std::size_t>(l)] = best_weights[static_cast<std::size_t>(l)];
      biases[static_cast<std::size_t>(l)] = best_biases[static_cast<std::size_t>(l)];
    }
  }
  for (int l = 0; l < n_layers; ++l) {
    const auto w = weights[static_cast<std::size_t>(l)].detach().contiguous();
    const auto b = biases[static_cast<std::size_t>(l)].detach().contiguous();
    result.weights.emplace_back(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    result.biases.emplace_back(b.data_ptr<float>(), b.data_ptr<float>() + b.numel());
  }
  result.report = {{"epochs_run", epochs_run},
                 {"steps", step},
                 {"stop", stop},
                 {"final_loss", last_loss},
                 {"layer_sizes", sizes},
                 {"threads", threads},
                 {"processes", data_parallel ? parallel.size : 1},
                 {"blas", OpenBlas::get().description()},
                 {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()}};
  if (has_validation) {
    result.report["best_epoch"] = best_epoch;
    result.report["best_validation_macro_f1"] = best_f1;
    result.report["n_validation"] = validation.n;
  }
}

}  // namespace
}  // namespace celltyper

/// The module's entry point (mlp_plugin.hpp): never lets an exception cross the module boundary.
extern "C" __attribute__((visibility("default"))) void celltyper_mlp_train_v3(const celltyper::mlp_plugin::TrainRequest& request,
                                                                              celltyper::mlp_plugin::TrainResult& result) {
  try {
    celltyper::train(request, result);
  } catch (const std::exception& error) {
    result.error = fmt::format("mlp training failed: {}", error.what());
  } catch (...) {
    result.error = "mlp training failed with an unknown exception";
  }
}
