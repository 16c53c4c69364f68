// Classifier training / prediction benchmark driver (bench/model/run.py runs it and a PyTorch
// reference MLP on the same kind of data in the same script). Modes:
//   train_bench mlp     N DIMS CLASSES THREADS EPOCHS [name=value ...]
//   train_bench xgboost N DIMS CLASSES THREADS ROUNDS [name=value ...]
//   train_bench predict N DIMS CLASSES THREADS REPEATS [name=value ...]
// Data: seeded synthetic "embeddings": class centres in a random 32-dim subspace of DIMS, plus
// isotropic noise, so the classes overlap (macro-F1 well below 1) as real cell types do; a
// validation set of min(N / 10, 100000) cells drawn the same way. Prints one JSON line.
#include <celltyper/classifier.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

struct Data {
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::int64_t n = 0;
};

/// Centres: C x 32 Gaussian coordinates (scale `spread`) mapped into DIMS by a fixed random
/// matrix; cells: centre + N(0, 1) noise in every dimension. Labels uneven: class c has weight
/// proportional to 1 / (c + 1) (a long tail, like cell types).
class Generator {
 public:
  Generator(int dims, int classes, float spread) : dims_(dims), classes_(classes) {
    std::mt19937_64 rng(42);
    std::normal_distribution<float> normal;
    std::vector<float> low(static_cast<std::size_t>(classes) * 32);
    for (auto& v : low) v = spread * normal(rng);
    std::vector<float> projection(static_cast<std::size_t>(32) * dims);
    for (auto& v : projection) v = normal(rng) / std::sqrt(32.0f);
    centres_.assign(static_cast<std::size_t>(classes) * dims, 0.0f);
    for (int c = 0; c < classes; ++c) {
      for (int k = 0; k < 32; ++k) {
        for (int j = 0; j < dims; ++j) centres_[static_cast<std::size_t>(c) * dims + j] += low[c * 32 + k] * projection[k * dims + j];
      }
    }
    double total = 0;
    for (int c = 0; c < classes; ++c) total += 1.0 / (c + 1);
    double cumulative = 0;
    for (int c = 0; c < classes; ++c) {
      cumulative += 1.0 / (c + 1) / total;
      cumulative_.push_back(cumulative);
    }
  }
  Data draw(std::int64_t n, std::uint64_t seed) const {
    Data data;
    data.n = n;
    data.x.resize(static_cast<std::size_t>(n) * dims_);
    data.y.resize(static_cast<std::size_t>(n));
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<double> uniform;
    for (std::int64_t i = 0; i < n; ++i) {
      const double u = uniform(rng);
      const auto label = static_cast<int>(std::lower_bound(cumulative_.begin(), cumulative_.end() - 1, u) - cumulative_.begin());
      data.y[static_cast<std::size_t>(i)] = label;
      float* row = data.x.data() + i * dims_;
      for (int j = 0; j < dims_; ++j) row[j] = centres_[static_cast<std::size_t>(label) * dims_ + j] + normal(rng);
    }
    // Every class present at least once.
    for (int c = 0; c < classes_ && c < n; ++c) data.y[static_cast<std::size_t>(c)] = c;
    return data;
  }

 private:
  int dims_;
  int classes_;
  std::vector<float> centres_;
  std::vector<double> cumulative_;
};

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t m = values.size() / 2;
  return values.size() % 2 == 1 ? values[m] : 0.5 * (values[m - 1] + values[m]);
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

nlohmann::json machine() {
  utsname name{};
  uname(&name);
  return {{"kernel", name.release}, {"hardware_threads", std::thread::hardware_concurrency()}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    fmt::print(stderr, "usage: train_bench mlp|xgboost|predict N DIMS CLASSES THREADS EPOCHS|ROUNDS|REPEATS [name=value ...]\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::int64_t n = std::atoll(argv[2]);
  const int dims = std::atoi(argv[3]);
  const int classes = std::atoi(argv[4]);
  const int threads = std::atoi(argv[5]);
  const int count = std::atoi(argv[6]);
  celltyper::HyperParameters hyperparameters;
  for (int i = 7; i < argc; ++i) {
    const std::string argument = argv[i];
    const auto equals = argument.find('=');
    if (equals == std::string::npos) {
      fmt::print(stderr, "bad hyperparameter '{}' (name=value)\n", argument);
      return 2;
    }
    hyperparameters[argument.substr(0, equals)] = std::stod(argument.substr(equals + 1));
  }
  const Generator generator(dims, classes, 0.2f);
  const auto generated = Clock::now();
  const Data train = generator.draw(n, 1);
  const Data validation = generator.draw(std::min<std::int64_t>(std::max<std::int64_t>(n / 10, 1000), 100000), 2);
  nlohmann::json result = {{"mode", mode},     {"n", n},           {"dims", dims},
                           {"classes", classes}, {"threads", threads}, {"n_validation", validation.n},
                           {"machine", machine()},
                           {"generate_seconds", std::chrono::duration<double>(Clock::now() - generated).count()}};

  if (mode == "mlp" || mode == "xgboost") {
    auto classifier = celltyper::make_classifier(mode);
    celltyper::FitOptions options;
    options.hyperparameters = hyperparameters;
    options.hyperparameters[mode == "mlp" ? "epochs" : "n_estimators"] = count;
    options.num_threads = threads;
    options.seed = 1;
    options.validation = {validation.x.data(), validation.n, validation.y.data()};
    std::vector<nlohmann::json> epochs;
    const auto started = Clock::now();
    options.on_epoch = [&](const nlohmann::json& record) {
      nlohmann::json copy = record;
      copy["elapsed"] = std::chrono::duration<double>(Clock::now() - started).count();
      epochs.push_back(copy);
      fmt::print(stderr, "{}\n", copy.dump());
    };
    classifier->fit(train.x.data(), train.n, dims, train.y, classes, options);
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::vector<double> epoch_seconds;
    for (std::size_t e = 1; e < epochs.size(); ++e) epoch_seconds.push_back(epochs[e]["seconds"].get<double>());  // first = warm-up
    result["fit_seconds"] = seconds;
    result["median_epoch_seconds"] = median(epoch_seconds.empty() ? std::vector<double>{epochs[0]["seconds"].get<double>()} : epoch_seconds);
    result["epochs"] = epochs;
    result["hyperparameters"] = classifier->hyperparameters();
    result["fit_report"] = classifier->fit_report();
  } else if (mode == "predict") {
    // A model trained on a small draw; prediction speed does not depend on the training set size.
    const Data small = generator.draw(5000, 3);
    auto classifier = celltyper::make_classifier(hyperparameters.count("n_estimators") ? "xgboost" : "mlp");
    celltyper::FitOptions options;
    options.hyperparameters = hyperparameters;
    if (!hyperparameters.count("n_estimators")) options.hyperparameters["epochs"] = 2;
    options.num_threads = threads;
    classifier->fit(small.x.data(), small.n, dims, small.y, classes, options);
    std::vector<double> times;
    double checksum = 0;
    (void)classifier->predict_proba(train.x.data(), std::min<std::int64_t>(train.n, 10000), threads);  // warm-up
    for (int r = 0; r < count; ++r) {
      const auto started = Clock::now();
      const auto p = classifier->predict_proba(train.x.data(), train.n, threads);
      times.push_back(std::chrono::duration<double>(Clock::now() - started).count());
      checksum += p[0];
    }
    result["classifier"] = classifier->type();
    result["predict_seconds"] = times;
    result["median_predict_seconds"] = median(times);
    result["cells_per_second"] = static_cast<double>(train.n) / median(times);
    result["hyperparameters"] = classifier->hyperparameters();
    result["checksum"] = checksum;
  } else {
    fmt::print(stderr, "unknown mode '{}'\n", mode);
    return 2;
  }
  result["peak_rss_mb"] = peak_rss_mb();
  fmt::print("{}\n", result.dump());
  return 0;
}
