// `celltyper tune`: embed labelled references once, search a classifier's hyperparameters by
// validation macro-F1 (random configurations + successive halving), log every trial, write the
// best configuration.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/tune.hpp>

#include "cli/columns.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace celltyper::cli {

namespace {

/// "name=value" -> (name, value); names may use '-' for '_'.
std::pair<std::string, double> parse_fixed(const std::string& text) {
  const auto equals = text.find('=');
  if (equals == std::string::npos || equals == 0) throw InputError(fmt::format("--fix {}: expected NAME=VALUE", text));
  std::string name = text.substr(0, equals);
  std::replace(name.begin(), name.end(), '-', '_');
  const std::string value = text.substr(equals + 1);
  try {
    std::size_t used = 0;
    const double number = std::stod(value, &used);
    if (used != value.size()) throw std::invalid_argument(value);
    return {name, number};
  } catch (const std::exception&) {
    throw InputError(fmt::format("--fix {}: '{}' is not a number", text, value));
  }
}

/// The searched hyperparameters of `spec` (those with a tune range), for the summary table.
std::vector<std::string> searched_names(const ClassifierSpec& spec, const HyperParameters& fixed) {
  std::vector<std::string> names;
  for (const auto& parameter : spec.parameters) {
    if (parameter.tune_max > parameter.tune_min && !parameter.budget && !fixed.count(parameter.name)) names.push_back(parameter.name);
  }
  return names;
}

std::string short_value(double value) {
  if (std::abs(value) < 1e9 && value == std::floor(value)) return fmt::format("{}", static_cast<long long>(value));
  return fmt::format("{:.3g}", value);
}

}  // namespace

void add_tune(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> references;
    std::string label;
    std::string group;
    std::string genes;
    std::string gene_table;
    std::string out;
    std::string log;
    std::vector<std::string> fixed;
    double validation_fraction = 0.2;
    bool json = false;
    ReferenceOptions reference;
    TuneOptions options;
  };
  auto args = std::make_shared<Args>();
  std::string classifiers;
  for (const auto& spec : classifier_specs()) classifiers += (classifiers.empty() ? "" : " | ") + spec.type;
  CLI::App* command = app.add_subcommand(
      "tune", "Search a classifier's hyperparameters by validation macro-F1 (random search + successive halving) on labelled references");
  command->add_option("-r,--reference", args->references, "Labelled references (comma-separated or repeated): .h5ad, or any input annotate reads (with --obs for the labels of a table)")
      ->required();
  command->add_option("-l,--label", args->label, kLabelHelp)->required();
  command->add_option("--obs", args->reference.cell_table,
                      "Table of per-cell metadata (CSV / TSV: cell names in the first column) joined to the references' obs by cell name: "
                      "labels kept beside a text count table");
  command->add_option("--group", args->group, "Group column (donor, batch), obs:COLUMN: validation holds out whole groups");
  command->add_option("-g,--genes", args->genes, "Gene embedding store (default: the store built by scripts/setup.sh)");
  command->add_option("--gene-table", args->gene_table, "Gene table for resolving var names (default: org.Hs.eg.db)");
  command->add_option("--gene-column", args->reference.embed.genes.column, "var column with gene ids (default: auto-detect)");
  command->add_option("--layer", args->reference.embed.matrix, kLayerHelp)->capture_default_str();
  command->add_option("--dims", args->reference.embed.dims, "Use the first k dimensions of the gene vectors (default: all)");
  command->add_option("--classifier", args->options.classifier, classifiers)->capture_default_str();
  command->add_option("--features", args->reference.features, "Features to search on: genept (GenePT-w embeddings) or expression")
      ->check(CLI::IsMember({std::string(kFeaturesGenept), std::string(kFeaturesExpression)}))
      ->capture_default_str();
  command->add_option("--n-genes", args->reference.n_genes, "Expression route: panel of the N most variable genes")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  command->add_option("--trials", args->options.trials, "Configurations to sample (the first is the defaults)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  command->add_option("--reduction", args->options.reduction, "Successive halving: keep the best 1/N of each rung, N times the budget")
      ->check(CLI::Range(2, 100))
      ->capture_default_str();
  command->add_option("--max-rungs", args->options.max_rungs, "Successive-halving rungs at most (1 = plain random search)")
      ->check(CLI::Range(1, 10))
      ->capture_default_str();
  command->add_option("--budget", args->options.max_budget,
                      "Budget of the last rung: epochs (mlp), rounds (xgboost), iterations (logreg); default: the classifier's default");
  command->add_option("--fix", args->fixed, "Hold a hyperparameter at a value, NAME=VALUE (repeatable)");
  command->add_option("--validation-fraction", args->validation_fraction, "Share of cells (or groups' cells) held out for scoring")
      ->capture_default_str();
  command->add_option("--seed", args->options.seed, "Seed of the split, the sampling and every fit")->capture_default_str();
  command->add_option("--threads", args->options.num_threads, "Threads (default: all cores; never changes the result)");
  command->add_option("-o,--out", args->out, "Write the best configuration as JSON (classifier, hyperparameters, train arguments)");
  command->add_option("--log", args->log, "Write every trial as a JSON line (params, macro-F1, epochs, seconds)");
  command->add_flag("--own-gene-names", args->reference.own_gene_names,
                    kOwnGeneNamesHelp);
  command->add_flag("--json", args->json, "Print the result as JSON on stdout");
  command->callback([args, command, &global] {
    args->references = split_path_list(args->references);
    TuneOptions& options = args->options;
    ReferenceOptions& reference = args->reference;
    reference.references = args->references;
    reference.label_column = obs_columns(args->label, "--label");
    if (!args->group.empty()) reference.group_column = obs_column(args->group, "--group");
    reference.num_threads = options.num_threads;
    // (own names are genes of the expression route: asked for without a route, that route)
    if (reference.own_gene_names && command->count("--features") == 0) reference.features = std::string(kFeaturesExpression);
    options.features = reference.features;
    const ClassifierSpec& spec = find_classifier_spec(options.classifier);
    for (const auto& text : args->fixed) {
      const auto [name, value] = parse_fixed(text);
      options.fixed[name] = value;
    }
    resolve_hyperparameters(spec, options.fixed);  // validate before the expensive part
    if (!(args->validation_fraction > 0 && args->validation_fraction < 1)) {
      throw InputError(fmt::format("--validation-fraction {} is not in (0, 1)", args->validation_fraction));
    }
    std::vector<std::string> inputs = args->references;
    inputs.insert(inputs.end(), {args->genes, args->gene_table, args->reference.cell_table});
    check_outputs({args->out, args->log}, inputs);
    std::unique_ptr<std::ofstream> log;
    if (!args->log.empty()) {
      log = std::make_unique<std::ofstream>(args->log, std::ios::trunc);
      if (!*log) throw IoError(fmt::format("cannot write {}", args->log));
    }
    // The expression route needs no gene vectors: load a store only when it is used or named.
    GeneStore store;
    if (reference.features != kFeaturesExpression || !args->genes.empty()) store = GeneStore::load(resolve_gene_store_path(args->genes));
    const GeneTable table = load_requested_gene_table(args->gene_table, GeneTableFields::kIdentifiers);
    const bool verbose = progress_enabled(global.quiet);
    if (verbose) reference.log = [](const std::string& message) { fmt::print(stderr, "{}\n", message); };

    reference.seed = options.seed;
    const LabelledFeatures data = embed_references(reference, store, table);
    const ValidationSplit split = split_validation(data, args->validation_fraction, options.seed, reference.group_column);
    if (verbose) {
      fmt::print(stderr, "tuning {}: {} trials on {} cells x {} dims, scoring {} held-out cells ({})\n", spec.type, options.trials,
                 split.train_rows.size(), data.dims, split.validation_rows.size(), split.description);
    }
    options.on_trial = [&](const TrialRecord& record) {
      if (log) {
        nlohmann::json line = record.to_json();
        line["classifier"] = spec.type;
        *log << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
        log->flush();
      }
      if (verbose) {
        fmt::print(stderr, "trial {:>3} rung {} budget {:>5}: macro-F1 {:.4f}, accuracy {:.4f}, {:.1f} s\n", record.trial, record.rung,
                   short_value(record.budget), record.macro_f1, record.accuracy, record.seconds);
      }
    };
    const TuneResult result = tune_classifier(data, split, options);
    nlohmann::json best = result.best_json();
    if (reference.own_gene_names) best["train_arguments"].push_back("--own-gene-names");  // (train must read the genes so too)
    if (!args->out.empty()) write_output_file(args->out, best.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");

    if (args->json) {
      nlohmann::json trials = nlohmann::json::array();
      for (const auto& record : result.trials) trials.push_back(record.to_json());
      fmt::print("{}\n", nlohmann::json{{"best", best}, {"budgets", result.budgets}, {"trials", trials}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    if (global.quiet) return;
    // Summary: the best fits (any rung), best first.
    std::vector<const TrialRecord*> ranked;
    for (const auto& record : result.trials) ranked.push_back(&record);
    std::stable_sort(ranked.begin(), ranked.end(), [](const TrialRecord* a, const TrialRecord* b) {
      if (a->macro_f1 != b->macro_f1) return a->macro_f1 > b->macro_f1;
      return a->rung > b->rung;
    });
    const auto names = searched_names(spec, options.fixed);
    std::string header = fmt::format("{:>5} {:>4} {:>6} {:>8} {:>8} {:>7}", "trial", "rung", "budget", "macro-F1", "accuracy", "seconds");
    for (const auto& name : names) header += fmt::format(" {:>10}", name.substr(0, 10));
    FILE* out = args->json ? stderr : stdout;
    fmt::print(out, "{} configurations, {} fits, budgets", options.trials, result.trials.size());
    for (double budget : result.budgets) fmt::print(out, " {}", short_value(budget));
    fmt::print(out, "; validation: {}\n{}\n", result.split, header);
    const std::size_t shown = std::min<std::size_t>(ranked.size(), 15);
    for (std::size_t i = 0; i < shown; ++i) {
      const TrialRecord& record = *ranked[i];
      std::string line = fmt::format("{:>5} {:>4} {:>6} {:>8.4f} {:>8.4f} {:>7.1f}", record.trial, record.rung, short_value(record.budget),
                                     record.macro_f1, record.accuracy, record.seconds);
      for (const auto& name : names) line += fmt::format(" {:>10}", short_value(record.hyperparameters.at(name)));
      fmt::print(out, "{}\n", line);
    }
    if (ranked.size() > shown) fmt::print(out, "({} more fits, see --log)\n", ranked.size() - shown);
    std::fflush(out);
    std::string arguments;
    for (const auto& argument : best["train_arguments"]) arguments += " " + argument.get<std::string>();
    fmt::print(stderr, "best: trial {} macro-F1 {:.4f} (accuracy {:.4f}); celltyper train ...{}\n", result.best.trial, result.best.macro_f1,
               result.best.accuracy, arguments);
    if (!args->out.empty()) fmt::print(stderr, "wrote {}\n", args->out);
    print_warnings(data.warnings, global.quiet);
    print_warnings(split.warnings, global.quiet);
  });
}

CELLTYPER_REGISTER_COMMAND("45-tune", add_tune);

}  // namespace celltyper::cli
