// Hyperparameter search: embed references once, split as `celltyper train` does, random
// configurations pruned by successive halving, scored by validation macro-F1.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/metrics.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/tune.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

namespace celltyper {
namespace {

/// Uniform in [0, 1) from 53 random bits (the same with every standard library).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

std::string flag_name(const std::string& parameter) {
  std::string flag = parameter;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return "--" + flag;
}

/// Shortest text that reads back as the same double.
std::string format_value(double value) {
  if (value == std::floor(value) && std::abs(value) < 1e15) return fmt::format("{}", static_cast<long long>(value));
  return fmt::format("{}", value);
}

/// A random configuration: defaults, fixed values, and a draw for every searched parameter.
HyperParameters sample(const ClassifierSpec& spec, const HyperParameters& fixed, std::mt19937_64& rng) {
  HyperParameters values;
  for (const auto& parameter : spec.parameters) {
    values[parameter.name] = parameter.default_value;
    const bool searched = parameter.tune_max > parameter.tune_min && !parameter.budget;
    if (!searched) continue;
    const double u = uniform01(rng);  // drawn even when fixed, so fixing one leaves the others' draws unchanged
    if (fixed.count(parameter.name)) continue;
    double value = parameter.tune_log ? std::exp(std::log(parameter.tune_min) + u * (std::log(parameter.tune_max) - std::log(parameter.tune_min)))
                                      : parameter.tune_min + u * (parameter.tune_max - parameter.tune_min);
    if (parameter.integer) {
      // Integers: every whole value in [min, max] equally likely (uniform) or by log width.
      value = parameter.tune_log ? std::round(value) : std::floor(parameter.tune_min + u * (parameter.tune_max - parameter.tune_min + 1));
      value = std::clamp(value, parameter.tune_min, parameter.tune_max);
    }
    values[parameter.name] = value;
  }
  for (const auto& [name, value] : fixed) values[name] = value;
  return values;
}

}  // namespace

LabelledFeatures embed_references(const ReferenceOptions& options, const GeneStore& store, const GeneTable& table) {
  if (options.references.empty()) throw InputError("no reference dataset given");
  TrainOptions train;
  train.references = options.references;
  train.label_column = options.label_column;
  train.group_column = options.group_column;
  train.features = options.features;
  train.n_genes = options.n_genes;
  train.embed = options.embed;
  train.num_threads = options.num_threads;
  train.seed = options.seed;  // (the thinned copies: train's for the same --seed)
  train.own_gene_names = options.own_gene_names;
  train.log = options.log;
  train.reference_sample_cells = 0;  // no model is saved
  train.dense_features = true;       // the search fits dense copies of its rows
  const OpenedDatasets opened = open_datasets(options.references, options.cell_table);
  std::string own_names;  // (references of another species' ids than the table's: their own names, as train)
  const std::optional<GeneTable> own = own_gene_names_table(opened.views, train, table, &own_names);
  LabelledFeatures cells = training_features(opened.views, train, store, own ? *own : table).cells;
  if (own) cells.warnings.insert(cells.warnings.begin(), own_names);
  return cells;
}

nlohmann::json TrialRecord::to_json() const {
  return {{"trial", trial},       {"rung", rung},         {"budget", budget},   {"hyperparameters", hyperparameters},
          {"macro_f1", macro_f1}, {"accuracy", accuracy}, {"seconds", seconds}, {"fit_report", fit_report}};
}

std::vector<std::string> train_arguments(const std::string& classifier, const std::string& features, const HyperParameters& hyperparameters) {
  // train must compute the features the search used.
  std::vector<std::string> arguments = {"--classifier", classifier, "--features", features};
  const ClassifierSpec& spec = find_classifier_spec(classifier);
  for (const auto& parameter : spec.parameters) {
    const auto found = hyperparameters.find(parameter.name);
    if (found == hyperparameters.end() || found->second == parameter.default_value) continue;
    arguments.push_back(flag_name(parameter.name));
    arguments.push_back(format_value(found->second));
  }
  return arguments;
}

nlohmann::json TuneResult::best_json() const {
  return {{"classifier", classifier},
          {"hyperparameters", best.hyperparameters},
          {"validation_macro_f1", best.macro_f1},
          {"validation_accuracy", best.accuracy},
          {"trial", best.trial},
          {"rung", best.rung},
          {"fit_report", best.fit_report},
          {"split", split},
          {"seed", seed},
          {"n_trials", trials.size()},
          {"features", features},
          {"train_arguments", train_arguments(classifier, features, best.hyperparameters)}};
}

TuneResult tune_classifier(const LabelledFeatures& data, const ValidationSplit& split, const TuneOptions& options) {
  const ClassifierSpec& spec = find_classifier_spec(options.classifier);
  if (options.trials < 1) throw InputError(fmt::format("--trials {} must be at least 1", options.trials));
  if (options.reduction < 2) throw InputError(fmt::format("--reduction {} must be at least 2", options.reduction));
  if (options.max_rungs < 1) throw InputError(fmt::format("max_rungs {} must be at least 1", options.max_rungs));
  resolve_hyperparameters(spec, options.fixed);  // bounds of the fixed values
  if (split.validation_rows.empty()) throw InputError("tune needs validation cells: the split held out none");
  if (data.sparse ? data.sparse_features.n_rows != data.n() : static_cast<std::int64_t>(data.features.size()) != data.n() * data.dims) {
    throw InputError(fmt::format("{} labels for {} feature values of {} dims", data.n(), data.features.size(), data.dims));
  }

  // Training classes (sorted names -> codes); validation cells of other classes get -1.
  std::set<std::string> distinct;
  for (auto row : split.train_rows) distinct.insert(data.labels[static_cast<std::size_t>(row)]);
  const std::vector<std::string> class_names(distinct.begin(), distinct.end());
  if (class_names.size() < 2) throw InputError(fmt::format("the training part of the split has {} class(es): tune needs 2", class_names.size()));
  std::map<std::string, std::int32_t> code;
  for (std::size_t c = 0; c < class_names.size(); ++c) code[class_names[c]] = static_cast<std::int32_t>(c);
  const auto dims = static_cast<std::size_t>(data.dims);
  auto gather = [&](const std::vector<std::int64_t>& rows, std::vector<float>& x, std::vector<std::int32_t>& y, std::vector<std::string>& names) {
    x.resize(rows.size() * dims);
    y.resize(rows.size());
    names.resize(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto row = static_cast<std::size_t>(rows[i]);
      data.copy_row(rows[i], x.data() + i * dims);
      names[i] = data.labels[row];
      const auto found = code.find(names[i]);
      y[i] = found == code.end() ? -1 : found->second;
    }
  };
  std::vector<float> train_x;
  std::vector<std::int32_t> train_y;
  std::vector<std::string> train_names;
  gather(split.train_rows, train_x, train_y, train_names);
  std::vector<float> validation_x;
  std::vector<std::int32_t> validation_y;
  std::vector<std::string> validation_names;
  gather(split.validation_rows, validation_x, validation_y, validation_names);
  const auto n_train = static_cast<std::int64_t>(split.train_rows.size());
  const auto n_validation = static_cast<std::int64_t>(split.validation_rows.size());
  const int n_classes = static_cast<int>(class_names.size());
  // Depth-augmented copies weigh what they weigh in `train` (fit_model): augment_depth_weight of a
  // reference cell, times their reference's copy_scale; else every trial fits another model than
  // the one `train` makes with its flags.
  std::vector<double> sample_weights;
  if (!data.augmented_from.empty()) {
    const double copy_weight = TrainOptions{}.augment_depth_weight;
    sample_weights.assign(split.train_rows.size(), 1.0);
    for (std::size_t i = 0; i < split.train_rows.size(); ++i) {
      const std::int64_t row = split.train_rows[i];
      if (data.is_original(row)) continue;
      const auto reference = data.references.empty() ? std::size_t{0} : static_cast<std::size_t>(data.references[static_cast<std::size_t>(row)]);
      sample_weights[i] = copy_weight * (reference < data.copy_scale.size() ? data.copy_scale[reference] : 1.0);
    }
  }

  // Budgets: max_budget / reduction^(rungs - 1 - r), rounded up.
  const HyperParameter* budget_parameter = nullptr;
  for (const auto& parameter : spec.parameters) {
    if (parameter.budget) budget_parameter = &parameter;
  }
  TuneResult result;
  result.classifier = spec.type;
  result.features = options.features;
  result.seed = options.seed;
  result.split = split.description;
  int rungs = 1;
  if (budget_parameter != nullptr && !options.fixed.count(budget_parameter->name)) {
    while (rungs < options.max_rungs && std::pow(options.reduction, rungs) <= options.trials) ++rungs;
  }
  const double max_budget = budget_parameter == nullptr                       ? 0
                            : options.fixed.count(budget_parameter->name) != 0 ? options.fixed.at(budget_parameter->name)
                            : options.max_budget > 0                           ? options.max_budget
                                                                               : budget_parameter->default_value;
  if (budget_parameter != nullptr && (max_budget < budget_parameter->min || max_budget > budget_parameter->max)) {
    throw InputError(fmt::format("budget {} = {} is outside [{}, {}]", budget_parameter->name, max_budget, budget_parameter->min, budget_parameter->max));
  }
  for (int r = 0; r < rungs; ++r) {
    result.budgets.push_back(budget_parameter == nullptr ? 0 : std::max(1.0, std::ceil(max_budget / std::pow(options.reduction, rungs - 1 - r))));
  }
  result.rungs = rungs;

  // Configurations: the defaults first, then random draws.
  std::mt19937_64 rng(options.seed);
  std::vector<HyperParameters> configurations;
  for (int t = 0; t < options.trials; ++t) {
    if (t == 0) {
      HyperParameters defaults;
      for (const auto& parameter : spec.parameters) defaults[parameter.name] = parameter.default_value;
      for (const auto& [name, value] : route_hyperparameters(spec.type, options.features)) defaults[name] = value;
      for (const auto& [name, value] : options.fixed) defaults[name] = value;
      configurations.push_back(defaults);
    } else {
      configurations.push_back(sample(spec, options.fixed, rng));
    }
  }

  std::vector<int> alive(static_cast<std::size_t>(options.trials));
  std::iota(alive.begin(), alive.end(), 0);
  for (int rung = 0; rung < rungs; ++rung) {
    std::vector<std::pair<double, int>> scores;  // (macro-F1, trial)
    for (const int trial : alive) {
      HyperParameters hyperparameters = configurations[static_cast<std::size_t>(trial)];
      if (budget_parameter != nullptr) hyperparameters[budget_parameter->name] = result.budgets[static_cast<std::size_t>(rung)];
      const auto started = std::chrono::steady_clock::now();
      auto classifier = make_classifier(spec.type);
      FitOptions fit;
      fit.hyperparameters = hyperparameters;
      fit.num_threads = options.num_threads;
      fit.seed = options.seed;
      fit.validation = {validation_x.data(), n_validation, validation_y.data()};
      fit.sample_weights = sample_weights;
      classifier->fit(train_x.data(), n_train, data.dims, train_y, n_classes, fit);
      const auto probabilities = classifier->predict_proba(validation_x.data(), n_validation, options.num_threads);
      std::vector<std::string> predicted(static_cast<std::size_t>(n_validation));
      for (std::int64_t i = 0; i < n_validation; ++i) {
        const float* row = probabilities.data() + i * n_classes;
        predicted[static_cast<std::size_t>(i)] = class_names[static_cast<std::size_t>(std::max_element(row, row + n_classes) - row)];
      }
      const EvaluationResult evaluation = evaluate(validation_names, predicted);
      TrialRecord record;
      record.trial = trial;
      record.rung = rung;
      record.budget = budget_parameter == nullptr ? 0 : hyperparameters.at(budget_parameter->name);
      record.hyperparameters = classifier->hyperparameters();
      record.macro_f1 = evaluation.macro.f1;
      record.accuracy = evaluation.accuracy;
      record.fit_report = classifier->fit_report();
      record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (options.on_trial) options.on_trial(record);
      scores.emplace_back(record.macro_f1, trial);
      result.trials.push_back(std::move(record));
    }
    // Best first; ties to the lower trial id.
    std::sort(scores.begin(), scores.end(), [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    if (rung + 1 == rungs) break;
    const auto keep = std::max<std::size_t>(1, scores.size() / static_cast<std::size_t>(options.reduction));
    alive.clear();
    for (std::size_t k = 0; k < keep; ++k) alive.push_back(scores[k].second);
    std::sort(alive.begin(), alive.end());
  }
  // The best fit of all, at whatever rung: its hyperparameters include its budget. Ties go to the
  // larger budget, then to the lower trial id.
  const TrialRecord* best = &result.trials.front();
  for (const auto& record : result.trials) {
    if (record.macro_f1 > best->macro_f1 || (record.macro_f1 == best->macro_f1 && record.rung > best->rung)) best = &record;
  }
  result.best = *best;
  return result;
}

}  // namespace celltyper
