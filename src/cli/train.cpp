// `celltyper train`: embed labelled references, validate, train a classifier, write a model file.
#include <celltyper/annotate.hpp>
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/train.hpp>

#include "cli/columns.hpp"
#include "cli/commands.hpp"
#include "cli/parallel.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

namespace celltyper::cli {

namespace {

std::string flag_name(const std::string& parameter) {
  std::string flag = parameter;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return "--" + flag;
}

}  // namespace

void add_train(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> references;
    std::string label;
    std::string group;
    std::string genes;
    std::string gene_table;
    std::string restrict_genes;
    std::string ontology;
    std::string out;
    std::string normalization = "auto";
    bool json = false;
    bool distributed = false;
    std::map<std::string, double> hyperparameters;  ///< values of the per-parameter flags
    TrainOptions options;
  };
  auto args = std::make_shared<Args>();
  std::string classifiers;
  for (const auto& spec : classifier_specs()) classifiers += (classifiers.empty() ? "" : " | ") + spec.type;
  CLI::App* command = app.add_subcommand("train", "Train a cell-type classifier on labelled reference datasets and write a model file");
  command->add_option("-r,--reference", args->references, "Labelled references (comma-separated or repeated): .h5ad, or any input annotate reads (with --obs for the labels of a table)")
      ->required();
  command->add_option("-l,--label", args->label, kLabelHelp)->required();
  command->add_option("--group", args->group, "Group column (donor, batch), obs:COLUMN, or 'file' (each reference is a group): validation holds out whole groups");
  command->add_option("--obs", args->options.cell_table,
                      "Table of per-cell metadata (CSV / TSV: cell names in the first column) joined to the references' obs by cell name: "
                      "labels kept beside a text count table");
  command->add_option("-o,--out", args->out, "Model file to write (.h5)")->required();
  command->add_option("-g,--genes", args->genes, "Gene embedding store for --features genept (default: the store built by scripts/setup.sh)");
  command->add_option("--gene-table", args->gene_table, "Gene table for resolving var names (default: org.Hs.eg.db)");
  command->add_option("--gene-column", args->options.embed.genes.column, "var column with gene ids (default: auto-detect)");
  command->add_option("--classifier", args->options.classifier, classifiers)->capture_default_str();
  command->add_option("--features", args->options.features,
                      "genept: cell embeddings from gene vectors; expression: log1p-CP10k of the references' most variable genes "
                      "(the CellTypist method; average both with several --model flags in annotate)")
      ->check(CLI::IsMember({std::string(kFeaturesGenept), std::string(kFeaturesExpression)}))
      ->capture_default_str();
  command->add_option("--n-genes", args->options.n_genes, "Expression features: number of most variable genes in the panel")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  command->add_option("--restrict-genes", args->restrict_genes,
                      "Use only the genes of this query .h5ad (its var) or gene list (.txt, one id or symbol per line): a model for a "
                      "query with a smaller gene panel (its GenePT-w vectors then mean the same as the reference's)");
  command->add_option("--reference-sample", args->options.reference_sample_cells,
                      "Labelled cells (class-balanced) the model keeps with all their genes, so that annotate can refit it on the genes "
                      "a query shares with it (0 = none)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{10000000}))
      ->capture_default_str();
  command->add_option("--dims", args->options.embed.dims, "Use the first k dimensions of the gene vectors (default: all)");
  command->add_option("--layer", args->options.embed.matrix, kLayerHelp)->capture_default_str();
  command->add_option("--normalize", args->normalization,
                      kNormalizeHelp)
      ->capture_default_str();
  command->add_option("--seed", args->options.seed, "Seed of every random step: the validation split, the depth-augmented copies of the cells, the classifier's fit (the saved model depends on it)")->capture_default_str();
  command->add_option("--threads", args->options.num_threads, "Threads (default: all cores; never changes the model)");
  command->add_option("--validation-fraction", args->options.validation_fraction,
                      "Share of cells held out to report validation metrics (0 = none); the saved model is refit on all cells")
      ->capture_default_str();
  command->add_flag("--calibrate,!--no-calibrate", args->options.calibrate,
                    "Calibrate the scores (default on): a temperature fitted on the validation cells makes a score read as the chance, on cells like the reference's own, "
                    "that the call is right (across datasets it may run high); labels never change (--no-calibrate: the classifier's own probabilities)");
  command->add_option("--label-map", args->options.label_map,
                      "label -> Cell Ontology id table (label_map_to_cell_ontology.tsv) to record CL ids of the classes (labels that are CL ids or names, and CELLxGENE files' obs COLUMN_ontology_term_id, need none)");
  command->add_option("--label-dataset", args->options.label_map_dataset, "Prefer rows of this dataset in --label-map");
  command->add_flag("--harmonize-labels", args->options.harmonize_labels,
                    "Pool references labelled at different depths: labels become Cell Ontology terms (--label-map and the "
                    "ontology's names); the classes are the most specific terms, and a cell with a coarser term (e.g. 'lymphocyte') "
                    "trains on the summed probability of the classes below it (logreg, mlp; xgboost and knn leave it out), as does a "
                    "label of alternatives ('T/NK cells', CellTypist's 'A|B'); the scores calibrate on held-out cells labelled with a class");
  command->add_flag("--flat-labels", args->options.flat_labels, "With --harmonize-labels: every term is a class of its own (flat pooled training)");
  command->add_option("--ontology", args->ontology, fmt::format("Cell Ontology .obo or CELLxGENE .json: CL ids for labels that are CL names, and the terms of --harmonize-labels ({})", kOntologyDefaultHelp));
  command->add_flag("--own-gene-names", args->options.own_gene_names,
                    kOwnGeneNamesHelp);
  command->add_flag("--balance-references", args->options.balance_references,
                    "Weight cells so that every reference counts equally (a large reference does not drown a small one)");
  command->add_flag("--augment-depth,!--no-augment-depth", args->options.augment_depth,
                    "Depth augmentation (default on; expression route, references with counts): each reference cell also trains as a binomially thinned copy keeping 10-50% of its counts, weighing 0.3 of a cell, so shallower or sparser queries (other chemistries) look familiar");
  command->add_option("--augment-depth-max-copies", args->options.augment_depth_max_copies,
                      "Depth augmentation: thinned copies per reference at most (0 = every cell); a larger reference has a random "
                      "subset copied, each copy weighing proportionally more")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command->add_option("--gene-pooling", args->options.gene_pooling,
                      "Several references with different genes: impute (every gene; a reference's unmeasured genes get the others' "
                      "mean, library sizes over the shared genes), shared (only the genes every reference measured; always for genept), "
                      "all (unmeasured genes count as zeros)")
      ->check(CLI::IsMember({"impute", "shared", "all"}))
      ->capture_default_str();
  command->add_flag("--json", args->json, "Print the training summary as JSON on stdout");
  command->add_flag("--distributed", args->distributed,
                    "Under mpirun: train the MLP data-parallel, every process computing its share of each batch and gradients "
                    "summed over processes (same global batch as one process); rank 0 writes the model");
  // One flag per hyperparameter, from the classifiers' declarations.
  std::map<std::string, std::string> declared;
  for (const auto& spec : classifier_specs()) {
    for (const auto& parameter : spec.parameters) {
      auto [it, inserted] = declared.emplace(parameter.name, spec.type);
      if (!inserted) continue;
      command
          ->add_option(flag_name(parameter.name), args->hyperparameters[parameter.name],
                       fmt::format("[{}] {} (default {}, {}..{})", spec.type, parameter.help, parameter.default_value, parameter.min,
                                   parameter.max))
          ->type_name(parameter.integer ? "INT" : "FLOAT");
    }
  }
  command->callback([args, command, &global] {
    args->references = split_path_list(args->references);
    TrainOptions& options = args->options;
    options.embed.normalization = parse_normalization_choice(args->normalization);
    std::vector<std::string> inputs = args->references;
    inputs.push_back(args->options.cell_table);
    inputs.insert(inputs.end(), {args->genes, args->gene_table, args->restrict_genes, options.label_map, args->ontology});
    check_outputs({args->out, args->out + ".epochs.jsonl"}, inputs);
    options.references = args->references;
    options.label_column = obs_columns(args->label, "--label");
    if (!args->group.empty()) options.group_column = args->group == kGroupByFile ? std::string(kGroupByFile) : obs_column(args->group, "--group");
    const ClassifierSpec& spec = find_classifier_spec(options.classifier);
    for (const auto& [name, value] : args->hyperparameters) {
      if (command->count(flag_name(name)) == 0) continue;
      const bool known = std::any_of(spec.parameters.begin(), spec.parameters.end(), [&](const auto& p) { return p.name == name; });
      if (!known) {
        const std::string pointer = foreign_hyperparameter(spec.type, name, flag_name);
        throw InputError(fmt::format("{} does not apply to --classifier {}{}", flag_name(name), spec.type, pointer.empty() ? "" : ": " + pointer));
      }
      options.hyperparameters[name] = value;
    }
    resolve_hyperparameters(spec, options.hyperparameters);  // validate before the expensive part
    Communicator* processes = nullptr;
    if (args->distributed) {
      if (options.classifier != "mlp") throw InputError(fmt::format("--distributed trains --classifier mlp only, not {}", options.classifier));
      processes = &world();
      if (processes->distributed()) {
        // Every process must train on the same data (a path naming another file on another node
        // would make the gradient sums mismatch inside MPI): the arguments and the files' sizes
        // are compared with the first process's, and every process stops when one differs.
        std::string mine = fmt::format("label {}, features {}, obs table {}", options.label_column, options.features,
                                       options.cell_table.empty() ? "-" : options.cell_table);
        for (const auto& path : options.references) {
          std::error_code error;
          const auto bytes = std::filesystem::is_regular_file(path, error) ? std::filesystem::file_size(path, error) : std::uintmax_t{0};
          mine += bytes > 0 && !error ? fmt::format("; {} ({} bytes)", path, bytes) : fmt::format("; {}", path);
        }
        std::string first = mine;
        processes->broadcast(first, 0);
        double differing = first == mine ? 0.0 : 1.0;
        processes->allreduce_sum(&differing, 1);
        if (differing > 0) {
          throw InputError(processes->is_root()
                               ? fmt::format("--distributed: {} process(es) read other training data than process 0 ({}): every process must "
                                             "see the same files",
                                             static_cast<int>(differing), first)
                               : fmt::format("--distributed: process {} reads other training data than process 0 (here: {}; process 0: {}): "
                                             "every process must see the same files",
                                             processes->rank(), mine, first));
        }
        options.data_parallel = {processes->rank(), processes->size(),
                                 [processes](float* values, std::size_t count) { processes->allreduce_sum(values, count); }};
      } else if (!global.quiet) {
        fmt::print(stderr, "warning: --distributed without mpirun: training in one process\n");
      }
    }
    const bool root = processes == nullptr || processes->is_root();
    // Training matrices from `celltyper extract` hold cell embeddings only: genept unless told.
    if (command->count("--features") == 0 &&
        std::all_of(options.references.begin(), options.references.end(), [](const std::string& path) { return is_extract_output(*open_dataset(path)); })) {
      options.features = kFeaturesGenept;
    }
    if (options.features == kFeaturesExpression && command->count("--dims") > 0) throw InputError("--dims applies to --features genept only");
    // The expression route needs no gene vectors: load a store only when it is used.
    GeneStore store;
    if (options.features == kFeaturesExpression && !args->genes.empty()) {
      fmt::print(stderr, "warning: --genes {} is not used: the expression route (--features expression, the default) reads no gene store; "
                         "--features genept embeds cells with it\n",
                 args->genes);
    }
    if (options.features != kFeaturesExpression) store = GeneStore::load(resolve_gene_store_path(args->genes));
    const GeneTable table = load_requested_gene_table(args->gene_table, GeneTableFields::kIdentifiers);
    if (!args->restrict_genes.empty()) {
      // (references of another species train on their own var names, train_model: the list in those)
      const std::optional<GeneTable> own = own_gene_names_table(open_datasets(options.references, options.cell_table).views, options, table);
      options.restrict_genes = genes_of(args->restrict_genes, own ? *own : table);
    }
    if (options.flat_labels && !options.harmonize_labels) throw InputError("--flat-labels applies with --harmonize-labels only");
    // The Cell Ontology gives the classes their CL ids (labels that are CL names) and the terms of
    // --harmonize-labels; without one, only --label-map and the data's own CL ids do.
    Ontology ontology;
    const std::string ontology_path = default_ontology_path(args->ontology);
    if (!ontology_path.empty()) {
      ontology = load_ontology(ontology_path);
      options.ontology = &ontology;
    } else if (options.harmonize_labels && options.label_map.empty()) {
      throw InputError(fmt::format("--harmonize-labels needs the Cell Ontology (--ontology FILE) or --label-map; {}", kOntologyReleaseHint));
    }
    // Step messages only on a terminal, so that a failing run prints exactly one line.
    if (progress_enabled(global.quiet) && root) options.log = [](const std::string& message) { fmt::print(stderr, "{}\n", message); };
    // Iterative classifiers (mlp, xgboost) log every epoch as JSONL next to the model.
    const std::string epoch_log = args->out + ".epochs.jsonl";
    auto epochs = std::make_shared<std::ofstream>();
    const bool show_epochs = progress_enabled(global.quiet);
    options.on_epoch = [epochs, epoch_log, show_epochs, root](const nlohmann::json& epoch) {
      if (!root) return;
      if (!epochs->is_open()) {
        epochs->open(epoch_log, std::ios::trunc);
        if (!*epochs) throw IoError(fmt::format("cannot create {}", epoch_log));
      }
      *epochs << epoch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
      if (show_epochs) {
        fmt::print(stderr, "\r{} epoch {:>4}  loss {:.4f}  train acc {:.3f}{}", epoch.value("phase", ""), epoch.value("epoch", 0),
                   epoch.value("loss", 0.0), epoch.value("train_accuracy", 0.0),
                   epoch.contains("validation_macro_f1") ? fmt::format("  val macro-F1 {:.3f}", epoch["validation_macro_f1"].get<double>()) : "");
      }
    };
    TrainResult result = train_model(options, store, table);
    if (epochs->is_open()) {
      epochs->flush();
      if (show_epochs) fmt::print(stderr, "\n");
    }
    if (!root) return;  // every process holds the same model; rank 0 writes it
    if (processes != nullptr) result.model.provenance["processes"] = processes->description();
    save_model(result.model, args->out);
    if (args->json) {
      nlohmann::json summary = {{"model", args->out},
                                {"classifier", options.classifier},
                                {"n_cells", result.n_cells},
                                {"n_classes", result.model.class_names.size()},
                                {"classes", result.model.class_names},
                                {"cl_ids", result.model.class_cl_ids},
                                {"features", result.model.features},
                                {"n_genes", result.model.features == kFeaturesExpression ? result.model.panel.size() : result.model.genes.size()},
                                {"dims", result.model.genes.dims},
                                {"validation", result.model.validation},
                                {"provenance", result.model.provenance},
                                {"warnings", result.warnings}};
      fmt::print("{}\n", summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    if (!global.quiet) {
      if (result.has_validation) {
        // (the classes the averages hide: a rare type's misses)
        const std::string weakest = weakest_classes(result.validation.per_class);
        fmt::print(stderr, "validation ({} held-out cells): accuracy {:.3f}, macro-F1 {:.3f}{}\n", result.n_validation,
                   result.validation.accuracy, result.validation.macro.f1,
                   weakest.empty() ? std::string() : fmt::format("; recall below 0.8: {}", weakest));
      }
      fmt::print(stderr, "scores: {}\n", calibration_text(calibration_summary(result.model)));
      if (options.features == kFeaturesExpression) {
        fmt::print(stderr, "trained {} on {} cells, {} classes, expression of {} genes -> {}\n", options.classifier, result.n_cells,
                   result.model.class_names.size(), result.model.panel.size(), args->out);
      } else {
        fmt::print(stderr, "trained {} on {} cells, {} classes, {} genes x {} dims -> {}\n", options.classifier, result.n_cells,
                   result.model.class_names.size(), result.model.genes.size(), result.model.genes.dims, args->out);
      }
      // A reference of log-normalised values trained as its counts: say so (inspect MODEL does too).
      for (const auto& reference : result.model.provenance.value("references", nlohmann::json::array())) {
        if (!reference.value("counts_recovered", false)) continue;
        fmt::print(stderr, "{}: {}\n", reference.value("path", std::string()), reference.value("normalization_reason", std::string()));
      }
    }
    print_warnings(result.warnings, global.quiet);
  });
}

CELLTYPER_REGISTER_COMMAND("40-train", add_train);

}  // namespace celltyper::cli
