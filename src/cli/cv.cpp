// `celltyper cv`: leave-one-group-out cross-validation of train + annotate configurations.
#include <celltyper/annotate.hpp>
#include <celltyper/cross_validation.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/report.hpp>
#include <celltyper/train.hpp>

#include "cli/columns.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "text_lists.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <unistd.h>

namespace celltyper::cli {

namespace {

/// --save-models DIR, checked before the folds train: a name, not a file, and (when missing) under
/// a writable directory; created when the first fold's models are written.
/// Checks the --save-models directory before any fold trains; returns the model files an
/// earlier run's models.tsv there lists (this run's models.tsv replaces it).
std::vector<std::string> check_model_directory(const std::string& directory) {
  if (directory.empty()) throw InputError("--save-models needs a directory name");
  std::error_code error;
  const std::filesystem::path path(directory);
  if (std::filesystem::exists(path, error)) {
    if (!std::filesystem::is_directory(path, error)) throw InputError(fmt::format("--save-models {}: a file, not a directory", directory));
    if (std::filesystem::is_directory(path / "models.tsv", error)) {
      throw InputError(fmt::format("--save-models {}: its models.tsv is a directory", directory));
    }
    std::vector<std::string> listed;  // (fold, method, file, held_out: the third column)
    std::ifstream table(path / "models.tsv");
    std::string line;
    for (bool header = true; std::getline(table, line); header = false) {
      if (header) continue;
      const std::size_t first = line.find('\t');
      const std::size_t second = first == std::string::npos ? first : line.find('\t', first + 1);
      if (second == std::string::npos) continue;
      const std::size_t third = line.find('\t', second + 1);
      const std::string file = line.substr(second + 1, third == std::string::npos ? std::string::npos : third - second - 1);
      if (!file.empty() && file.find('/') == std::string::npos) listed.push_back(file);
    }
    return listed;
  }
  std::filesystem::path parent = std::filesystem::absolute(path, error).parent_path();
  while (!parent.empty() && !std::filesystem::exists(parent, error) && parent != parent.root_path()) parent = parent.parent_path();
  if (!std::filesystem::is_directory(parent, error) || ::access(parent.c_str(), W_OK) != 0) {
    throw IoError(fmt::format("--save-models {}: cannot create the directory ({} is not a writable directory)", directory, parent.string()));
  }
  return {};
}

/// A fold's name as part of a file name: a reference file held out by --group file by its name
/// without .h5ad; characters other than letters, digits, '.', '-' and '_' as '_' (a group
/// "donor/1" is "donor_1", never a path).
std::string fold_file_stem(const std::string& fold, bool by_file) {
  std::string stem = by_file ? std::filesystem::path(fold).filename().string() : fold;
  if (stem.empty()) stem = fold;
  if (stem.size() > 5 && stem.ends_with(".h5ad")) stem.resize(stem.size() - 5);
  for (char& c : stem) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '-' && c != '_') c = '_';
  }
  return stem.empty() || stem.front() == '.' ? "fold" + stem : stem;
}

/// Writes each fold's models as the fold ends: DIRECTORY/FOLD.CLASSIFIER-FEATURES.h5 (a name two
/// folds would share gets -2, -3, ...), then models.tsv (fold, method, file, held_out: what the
/// model held out in words).
class FoldModelWriter {
 public:
  FoldModelWriter(std::string directory, bool by_file, std::vector<std::string> earlier)
      : directory_(std::move(directory)), by_file_(by_file), earlier_(std::move(earlier)) {}

  void write(CvFoldModel&& kept) {
    if (used_.empty()) {
      std::error_code error;
      std::filesystem::create_directories(directory_, error);
      if (error) throw IoError(fmt::format("--save-models {}: cannot create the directory: {}", directory_, error.message()));
    }
    std::string method = kept.method;
    std::replace(method.begin(), method.end(), ':', '-');
    const std::string base = fold_file_stem(kept.fold, by_file_) + "." + method;
    std::string name = base + ".h5";
    for (int k = 2; used_.count(name) != 0; ++k) name = fmt::format("{}-{}.h5", base, k);
    used_.insert(name);
    save_model(*kept.model, (std::filesystem::path(directory_) / name).string());
    table_ << kept.fold << '\t' << kept.method << '\t' << name << '\t' << kept.model->provenance.value("cv_held_out", std::string()) << '\n';
  }

  /// models.tsv; returns the number of models written.
  std::size_t finish() {
    if (used_.empty()) return 0;
    write_output_file((std::filesystem::path(directory_) / "models.tsv").string(), "fold\tmethod\tfile\theld_out\n" + table_.str());
    return used_.size();
  }

  /// The models an earlier run's models.tsv listed that are still there and that this run did
  /// not write (its models.tsv will not list them), sorted.
  std::vector<std::string> earlier_left() const {
    std::set<std::string> names;
    std::error_code error;
    for (const std::string& name : earlier_) {
      if (used_.count(name) == 0 && std::filesystem::is_regular_file(std::filesystem::path(directory_) / name, error)) names.insert(name);
    }
    return {names.begin(), names.end()};
  }

 private:
  std::string directory_;
  bool by_file_;
  std::vector<std::string> earlier_;
  std::set<std::string> used_;
  std::ostringstream table_;
};

}  // namespace

void add_cv(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> references;
    std::vector<std::string> layers;
    std::string label;
    std::string group;
    std::vector<std::string> classifiers{"logreg"};
    std::vector<std::string> features{kFeaturesExpression};
    std::string genes;
    std::string gene_table;
    std::string ontology;
    std::string filter;
    std::string restrict_genes;
    std::string json;
    std::string predictions;
    std::string probabilities;
    std::string report;
    std::string png;
    std::string save_models;
    double png_scale = 1.0;
    bool no_ensemble = false;
    bool no_ontology = false;
    CrossValidationOptions options;
  };
  auto args = std::make_shared<Args>();
  args->options.train.validation_fraction = 0;
  CLI::App* command = app.add_subcommand(
      "cv", "Leave-one-group-out cross-validation (donor, technology, or reference file) of train + annotate configurations");
  command->add_option("-r,--reference", args->references, "Labelled .h5ad files (comma-separated or repeated)")->required();
  command->add_option("-l,--label", args->label, kLabelHelp)->required();
  command->add_option("--obs", args->options.train.cell_table,
                      "Table of per-cell metadata (CSV / TSV: cell names in the first column) joined to the references' obs by cell name: "
                      "labels kept beside a text count table");
  command->add_option("--group", args->group,
                      "obs:COLUMN whose groups are held out one at a time, or 'file' (each reference is a group); without it, --n-splits");
  command->add_option("--n-splits", args->options.n_splits,
                      "K folds: more than K groups are pooled into K folds of about equal cells (GroupKFold); without --group, the "
                      "labelled cells are split into K folds stratified by label (StratifiedKFold, shuffled with --seed)");
  command->add_option("--folds", args->options.folds, "Only hold out these groups (comma-separated; default: every group)")->delimiter(',');
  command->add_option("--classifier", args->classifiers, "Classifiers to compare (comma-separated)")->delimiter(',')->capture_default_str();
  command->add_option("--features", args->features, "Feature routes to compare: genept, expression (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  command->add_flag("--no-ensemble", args->no_ensemble, "Do not add the ensemble (mean probabilities of all configurations)");
  command->add_flag("--hierarchical", args->options.hierarchical, "Also score ontology-aware (hierarchical) prediction of every method");
  command->add_option("--min-score", args->options.min_score, "Threshold of hierarchical prediction")->capture_default_str();
  command->add_option("--layer", args->layers, "Matrix to read: auto (the default: raw/X when X is cut to a gene subset of it; else X when it holds counts, else layers/counts or raw/X when they do), X, raw or a layer; one for all references or one per reference")
      ->delimiter(',');
  command->add_option("--restrict-genes", args->restrict_genes,
                      "Train only on these genes: 'held-out' (per fold, the genes detected in the held-out cells, as `train "
                      "--restrict-genes QUERY.h5ad` does for a query) or an .h5ad / gene list file");
  command->add_option("--filter", args->filter, "Keep only cells with obs:COLUMN=VALUE (e.g. obs:demuxlet_cls=SNG)");
  command->add_option("-g,--genes", args->genes, "Gene embedding store (default: the store built by scripts/setup.sh)");
  command->add_option("--gene-table", args->gene_table, "Gene table for resolving var names (default: org.Hs.eg.db)");
  command->add_option("--gene-column", args->options.train.embed.genes.column, "var column with gene ids (default: auto-detect)");
  command->add_option("--dims", args->options.train.embed.dims, "Use the first k dimensions of the gene vectors (default: all)");
  command->add_option("--n-genes", args->options.train.n_genes, "Expression features: panel size")->capture_default_str();
  command->add_option("--label-map", args->options.train.label_map, "label -> Cell Ontology id table (label_map_to_cell_ontology.tsv)");
  command->add_option("--label-dataset", args->options.train.label_map_dataset, "Prefer rows of this dataset in --label-map");
  command->add_option("--ontology", args->ontology, fmt::format("Cell Ontology .obo or CELLxGENE .json ({})", kOntologyDefaultHelp));
  command->add_flag("--no-ontology", args->no_ontology, "Skip ontology-aware metrics");
  command->add_flag("--own-gene-names", args->options.train.own_gene_names,
                    kOwnGeneNamesHelp);
  command->add_flag("--harmonize-labels", args->options.harmonize_labels,
                    "Replace labels by their Cell Ontology term (pool files whose label names differ)");
  command->add_flag("--augment-depth,!--no-augment-depth", args->options.train.augment_depth,
                    "Depth augmentation (default on; see `celltyper train --augment-depth`)");
  command->add_option("--validation-fraction", args->options.train.validation_fraction,
                      "Share of each training fold held out for early stopping / validation (0 = none; 20% of it still calibrates "
                      "the scores unless --no-calibrate)")
      ->capture_default_str();
  command->add_flag("--calibrate,!--no-calibrate", args->options.train.calibrate,
                    "Calibrate each fold's scores as `celltyper train` does (default on; labels never change)");
  command->add_option("--seed", args->options.train.seed, "Seed of every random step of each fold's training (as train --seed)")->capture_default_str();
  command->add_option("--threads", args->options.train.num_threads, "Threads (default: all cores)");
  command->add_option("--json", args->json, "Write every fold's metrics as JSON to this file ('-' = standard output instead of the table)");
  command->add_option("--predictions", args->predictions,
                      "Write every held-out cell's out-of-fold prediction as CSV: obs_name, reference, fold, truth, and per method its "
                      "label and score");
  command->add_option("--probabilities", args->probabilities,
                      "Write every held-out cell's out-of-fold class probabilities as CSV, one row per cell and method (each "
                      "configuration and the ensemble)");
  command->add_option("--report", args->report,
                      "Write a self-contained HTML report (pooled out-of-fold metrics per method, confusion matrices, cell map)");
  command->add_option("--png", args->png, "Also write the report's plots as PNG files into this directory (headless Chromium)");
  command->add_option("--png-scale", args->png_scale, "Device pixels per CSS pixel of the PNGs")
      ->check(CLI::Range(0.25, 8.0))
      ->capture_default_str();
  command->add_option("--save-models", args->save_models,
                      "Write each fold's model of each configuration into this directory (FOLD.CLASSIFIER-FEATURES.h5, complete as "
                      "train writes one, and models.tsv naming each file's fold, method and what it held out)");
  command->callback([args, command, &global] {
    args->references = split_path_list(args->references);
    std::vector<std::string> inputs = args->references;
    inputs.push_back(args->options.train.cell_table);
    inputs.insert(inputs.end(), {args->genes, args->gene_table, args->ontology, args->restrict_genes, args->options.train.label_map});
    check_outputs({args->json == "-" ? std::string() : args->json, args->predictions, args->probabilities, args->report}, inputs);
    if (!args->png.empty() && find_chromium().empty()) {
      throw UnsupportedError("--png renders the plots with headless Chromium, which was not found: install it (Debian: apt-get install "
                             "chromium) or set CELLTYPER_CHROMIUM to its path; --report needs no browser");
    }
    CrossValidationOptions& options = args->options;
    options.train.references = args->references;
    options.train.label_column = obs_columns(args->label, "--label");
    if (!args->group.empty()) options.train.group_column = args->group == kGroupByFile ? std::string(kGroupByFile) : obs_column(args->group, "--group");
    if (args->layers.size() == 1) {
      options.train.embed.matrix = args->layers.front();
    } else if (!args->layers.empty()) {
      if (args->layers.size() != args->references.size()) {
        throw InputError(fmt::format("--layer lists {} matrices for {} references (give one, or one per reference)", args->layers.size(),
                                     args->references.size()));
      }
      options.train.matrices = args->layers;
    }
    if (!args->filter.empty()) {
      const std::string filter = obs_column(args->filter.substr(0, args->filter.find('=')), "--filter");
      const auto equals = args->filter.find('=');
      if (equals == std::string::npos) throw InputError(fmt::format("--filter {}: expected obs:COLUMN=VALUE", args->filter));
      options.filter_column = filter;
      options.filter_value = args->filter.substr(equals + 1);
    }
    // Training matrices from `celltyper extract` hold cell embeddings only: genept unless told (as train).
    if (command->count("--features") == 0 && !args->references.empty() &&
        std::all_of(args->references.begin(), args->references.end(), [](const std::string& path) { return is_extract_output(*open_dataset(path)); })) {
      args->features = {kFeaturesGenept};
    }
    for (const auto& classifier : args->classifiers) {
      find_classifier_spec(classifier);  // validate early
      for (const auto& features : args->features) {
        if (features != kFeaturesGenept && features != kFeaturesExpression) {
          throw InputError(fmt::format("--features must be {} or {}, got '{}'", kFeaturesGenept, kFeaturesExpression, features));
        }
        options.configurations.push_back({classifier, features, {}});
      }
    }
    options.ensemble = !args->no_ensemble;
    options.keep_models = command->count("--save-models") > 0;
    std::optional<FoldModelWriter> model_writer;
    if (options.keep_models) {
      model_writer.emplace(args->save_models, args->group == kGroupByFile, check_model_directory(args->save_models));
      options.model_sink = [&model_writer](CvFoldModel&& kept) { model_writer->write(std::move(kept)); };
    }
    options.keep_held_out_map = !args->report.empty() || !args->png.empty();
    options.keep_held_out = options.keep_held_out_map || !args->predictions.empty() || !args->probabilities.empty();
    Ontology ontology;
    if (!args->no_ontology) {
      const std::string path = default_ontology_path(args->ontology);
      if (!path.empty()) {
        ontology = load_ontology(path);
        options.ontology = &ontology;
      } else if (options.hierarchical || options.harmonize_labels) {
        throw InputError(fmt::format("--hierarchical / --harmonize-labels need the Cell Ontology: pass --ontology FILE; {}", kOntologyReleaseHint));
      }
    }
    // Expression-only runs need no gene vectors: load a store only when it is used or named.
    const bool uses_store = std::any_of(options.configurations.begin(), options.configurations.end(),
                                        [](const auto& configuration) { return configuration.features != kFeaturesExpression; });
    GeneStore store;
    if (uses_store || !args->genes.empty()) store = GeneStore::load(resolve_gene_store_path(args->genes));
    const GeneTable table = load_requested_gene_table(args->gene_table, GeneTableFields::kIdentifiers);
    if (args->restrict_genes == "held-out") {
      options.restrict_to_held_out_genes = true;
    } else if (!args->restrict_genes.empty()) {
      // (references of another species train on their own var names: the list in those)
      const std::optional<GeneTable> own =
          cv_own_gene_names_table(open_datasets(options.train.references, options.train.cell_table).views, options, table);
      options.train.restrict_genes = genes_of(args->restrict_genes, own ? *own : table);
    }
    if (progress_enabled(global.quiet)) options.log = [](const std::string& message) { fmt::print(stderr, "{}\n", message); };
    CrossValidationResult result = cross_validate(options, store, table);
    if (model_writer) {  // (in the JSON and the report too)
      if (const std::vector<std::string> earlier = model_writer->earlier_left(); !earlier.empty()) {
        result.warnings.push_back(fmt::format(
            "--save-models {}: an earlier run's models.tsv there listed {} model file{} this run did not write ({}): they stay, and "
            "models.tsv now lists only this run's models (remove them, or save into a new directory)",
            args->save_models, earlier.size(), earlier.size() == 1 ? "" : "s", detail::some_of(earlier, 6)));
      }
    }
    // (--json -: the JSON on stdout instead of the table; the note on unmapped labels on stderr)
    const bool json_to_stdout = args->json == "-";
    if (!json_to_stdout) fmt::print("{}", result.format_table());
    if (!result.unmapped_labels.empty() && !(json_to_stdout && global.quiet)) {
      std::string covered;  // how many held-out cells the ontology columns describe
      if (const auto coverage = result.ontology_coverage(); coverage.available) {
        covered = fmt::format("; corr-mF1, hF and LCA describe {} of the {} held-out cells",
                              coverage.fewest == coverage.most ? fmt::format("{}", coverage.most)
                                                               : fmt::format("{}-{}", coverage.fewest, coverage.most),
                              coverage.n_cells);
      }
      fmt::print(json_to_stdout ? stderr : stdout, "labels without a Cell Ontology id (left out of the ontology metrics): {}{}\n",
                 fmt::join(result.unmapped_labels, ", "), covered);
    }
    if (json_to_stdout) {
      fmt::print("{}\n", result.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else if (!args->json.empty()) {
      write_output_file(args->json, result.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    }
    if (!args->predictions.empty()) {
      std::ostringstream csv;
      write_held_out_csv(result, args->references, csv);
      write_output_file(args->predictions, csv.str());
    }
    if (!args->probabilities.empty()) {
      std::ostringstream csv;
      write_held_out_probabilities_csv(result, args->references, csv);
      write_output_file(args->probabilities, csv.str());
    }
    if (!args->report.empty() || !args->png.empty()) {
      std::vector<std::pair<std::string, std::string>> details;
      details.emplace_back("references", fmt::format("{}", fmt::join(args->references, ", ")));
      details.emplace_back("label", args->label);
      details.emplace_back("held out by", args->group.empty() ? fmt::format("{} stratified folds of cells", options.n_splits)
                                          : options.n_splits > 0 ? fmt::format("{} (pooled into {} folds)", args->group, options.n_splits)
                                                                 : args->group);
      if (options.ontology != nullptr) details.emplace_back("ontology", default_ontology_path(args->ontology));
      const ReportContent content = report_content(result, std::move(details), 20000, options.train.seed);
      if (!args->report.empty()) {
        write_html_report(content, args->report);
        if (!global.quiet) fmt::print(stderr, "report: {}\n", args->report);
      }
      if (!args->png.empty()) {
        PngExportOptions png_options;
        png_options.scale = args->png_scale;
        const auto images = export_report_png(content, args->png, png_options);
        if (!global.quiet) fmt::print(stderr, "{} PNGs in {}\n", images.size(), args->png);
      }
    }
    if (model_writer) {
      const std::size_t written = model_writer->finish();
      if (!global.quiet) {
        fmt::print(stderr, "models: {} fold model{} in {} (models.tsv names {})\n", written, written == 1 ? "" : "s", args->save_models,
                   written == 1 ? "it" : "them");
      }
    }
    print_warnings(result.warnings, global.quiet);
  });
}

CELLTYPER_REGISTER_COMMAND("60-cv", add_cv);

}  // namespace celltyper::cli
