// `celltyper annotate`: predict cell types of a query dataset with one or more model files.
#include <celltyper/annotate.hpp>
#include <celltyper/annotation_csv.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/file_checks.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/text_matrix.hpp>
#include <celltyper/train.hpp>

#include "cli/columns.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "genes/gene_names.hpp"
#include "io/utf8.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

namespace celltyper::cli {

namespace {

/// `INPUT` (without a trailing '/' of an MTX folder, and without ".h5ad") plus `suffix`, beside the
/// input: the default output of annotate.
std::string default_output(const std::string& input, const std::string& suffix) {
  std::filesystem::path path(input);
  while (!path.empty() && path.filename().empty()) path = path.parent_path();  // "folder/"
  std::string stem = path.filename().string();
  // Only ".h5ad" gives way ("pbmc.h5ad" -> "pbmc.celltyper.h5ad"); other inputs keep their whole
  // name, so that Cell Ranger's "filtered_feature_bc_matrix.h5" and the MTX folder beside it, or
  // "sample.loom" and "sample.zarr", write different files.
  // (a MuData file's ".h5mu" too: "cite.h5mu" -> "cite.celltyper.h5mu")
  if (stem.size() > 5 && (genes_detail::ascii_lower(stem).ends_with(".h5ad") || genes_detail::ascii_lower(stem).ends_with(".h5mu"))) {
    stem.resize(stem.size() - 5);
  }
  return refuse_symlinked_default((path.parent_path() / (stem + suffix)).string());
}

/// Write the CSV into the temporary file of `output` (committed with the h5ad).
void write_csv(const OutputFile& output, const Annotation& annotation) {
  std::ofstream out(output.temporary(), std::ios::trunc);
  if (!out) throw IoError(fmt::format("{}: cannot create: {}", output.path(), std::strerror(errno)));
  write_annotation_csv(annotation, out);
  out.flush();
  if (!out) throw IoError(fmt::format("cannot write {} (disk full?)", output.path()));
}

/// A message about one of `references` (it starts with its path) names the references' matrix
/// flag, --reference-layer, where the engine wrote --layer (the query's).
std::string for_references(std::string message, const std::vector<std::string>& references) {
  const bool about_reference = std::any_of(references.begin(), references.end(), [&](const std::string& path) {
    return message.rfind(path + ":", 0) == 0 || message.rfind(std::string(kNotePrefix) + path + ":", 0) == 0;
  });
  if (!about_reference) return message;
  for (std::size_t at = message.find("--layer"); at != std::string::npos; at = message.find("--layer", at + 17)) {
    message.replace(at, 7, "--reference-layer");
  }
  return message;
}

}  // namespace

void add_annotate(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> models;
    std::string input;
    std::string out;
    std::string csv;
    std::string over_clustering;
    std::string cell_table;
    std::string gene_table;
    std::string ontology;
    std::string normalization = "auto";
    std::string memory_limit = "32M";
    bool json = false;
    bool no_refit = false;
    // Reference mode: train on the fly on the genes the query shares with the references.
    std::vector<std::string> references;
    std::string label;
    std::string reference_layer = "auto";
    std::string save_model;
    std::string genes;
    TrainOptions train;
    AnnotateOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("annotate", "Predict the cell type of every cell of a dataset with trained model files");
  command->add_option("-m,--model", args->models, "Model file from 'celltyper train' (repeat to average several models)");
  command
          ->add_option("-r,--reference", args->references,
                       "Reference mode, instead of --model: labelled .h5ad files (comma-separated) to train on, on the fly, with the genes "
                       "they share with the query (as SingleR and Seurat label transfer do)");
  command->add_option("-l,--label", args->label, std::string("Reference mode: ") + kLabelHelp);
  command->add_option("--reference-layer", args->reference_layer, "Reference mode: matrix of the references (auto, X, raw, or a layer; as --layer)")
      ->capture_default_str();
  command->add_option("--classifier", args->train.classifier, "Reference mode: classifier")->capture_default_str();
  command->add_option("--features", args->train.features, "Reference mode: feature route (expression | genept)")
      ->check(CLI::IsMember({std::string(kFeaturesGenept), std::string(kFeaturesExpression)}))
      ->capture_default_str();
  command->add_option("--label-map", args->train.label_map, "Reference mode: label -> Cell Ontology id table, to record CL ids of the classes");
  command->add_option("--label-dataset", args->train.label_map_dataset, "Reference mode: prefer rows of this dataset in --label-map");
  command->add_flag("--harmonize-labels", args->train.harmonize_labels,
                    "Reference mode: pool references labelled at different depths as `celltyper train --harmonize-labels` does (labels "
                    "become Cell Ontology terms; a coarse label trains as the classes below it)");
  command->add_option("--gene-pooling", args->train.gene_pooling,
                      "Reference mode with several references measuring different genes: impute (a reference's missing genes take the "
                      "others' mean), shared (only the genes every reference measured) or all (see `celltyper train --gene-pooling`)")
      ->check(CLI::IsMember({"impute", "shared", "all"}))
      ->capture_default_str();
  command->add_flag("--own-gene-names", args->train.own_gene_names,
                    "Reference mode: train on the references' var names as written, not the gene table's (see `celltyper train --own-gene-names`)");
  command->add_flag("--balance-references", args->train.balance_references,
                    "Reference mode with several references: weigh each reference alike (see `celltyper train --balance-references`)");
  command->add_option("-g,--genes", args->genes, "Reference mode with --features genept: gene embedding store (default: the setup's)");
  command->add_flag("--augment-depth,!--no-augment-depth", args->train.augment_depth,
                    "Reference mode: depth augmentation (default on; see `celltyper train --augment-depth`)");
  command->add_flag("--calibrate,!--no-calibrate", args->train.calibrate,
                    "Reference mode: calibrate the scores on 20% of the reference cells held out (default on; see `celltyper train --calibrate`)");
  command->add_option("--save-model", args->save_model, "Reference mode: also write the model trained on the fly to this file");
  command->add_flag("--no-refit", args->no_refit,
                    "Use each model as trained even when the query lacks part of its genes (default: a model, expression or GenePT-w, "
                    "is refitted on the shared genes from the reference sample it carries)");
  command->add_flag("--allow-low-coverage", args->options.allow_low_coverage,
                    "Annotate even when the query measures fewer than 20 of a model's genes or under 2% of its reference expression");
  command->add_option("-i,--input", args->input, "Query: .h5ad, a MuData .h5mu (its rna modality), Cell Ranger .h5, an MTX folder (Cell Ranger, STARsolo, kallisto | bustools, alevin-fry), loom, AnnData Zarr, an R object (.rds: Seurat, SingleCellExperiment, a matrix) or a text count table (.csv / .tsv / .txt, optionally .gz)")->required();
  command->add_option("-o,--out", args->out, "Output .h5ad: a copy of the input with celltyper_* obs columns (default INPUT.celltyper.h5ad, unless --csv is given; a MuData input: a copy with them in mod/rna/obs, default INPUT.celltyper.h5mu, or with --out NAME.h5ad a copy of the modality alone; for 10x and text input a new .h5ad of its counts, written only when asked)");
  command->add_option("--csv", args->csv, "Write per-cell labels and scores to this CSV file ('-' = standard output, the label summary then on stderr; alone, without --out: instead of the .h5ad copy; 10x, text, loom, Zarr and Seurat input: the output, default INPUT.celltyper.csv, the input's whole name kept: x.h5.celltyper.csv)");
  command->add_option("--min-score", args->options.min_score, "Cells whose best probability is below this are 'Unassigned' (0: every cell gets its best class; with --hierarchical, 0 means 0.5)")
      ->capture_default_str();
  command->add_flag("--unassign-unlike", args->options.unassign_unlike,
                    "Cells that resemble none of the reference's cell types (obs celltyper_unlike_reference) are 'Unassigned', as "
                    "SingleR's pruned labels (a type the reference lacks is otherwise named by its nearest class, often with a high "
                    "score); up to about 2% of a query of the reference's own types are flagged too, and cells too shallow to judge keep their "
                    "labels");
  command->add_option("--top-k", args->options.top_k, "Also write the k best labels and scores per cell");
  command->add_option("--over-clustering", args->over_clustering, "obs:COLUMN of clusters: add a per-cluster majority vote");
  command->add_option("--group", args->options.group,
                      "Samples of a file joined from several (anndata.concat(join=\"outer\"), a CELLxGENE Census query): obs:COLUMN that "
                      "tells them, or none; a sample padded with zeros on genes it never measured is annotated on the genes it measured "
                      "(default: told by any categorical or text obs column of 2-64 values); a column named here also gets a summary and "
                      "warnings per sample");
  command->add_option("--obs", args->cell_table,
                      "Table of per-cell metadata (CSV / TSV: cell names in the first column) joined to the query's obs by cell name "
                      "(clusters for --over-clustering beside a text count table; kept in the .h5ad written, for every input)");
  command->add_option("--layer", args->options.embed.matrix, kLayerHelp)->capture_default_str();
  command->add_option("--gene-table", args->gene_table,
                      "Gene table for resolving var names (default: org.Hs.eg.db; without one, the model's own gene list)");
  command->add_option("--gene-column", args->options.embed.genes.column, "var column with gene ids (default: auto-detect)");
  command->add_option("--threads", args->options.embed.num_threads, "Threads (default: all cores)");
  command->add_option("--memory-limit", args->memory_limit,
                      "Memory for matrix blocks in flight, e.g. 32M, 1G (features are computed and classified block by block)")
      ->capture_default_str();
  command->add_flag("--hierarchical", args->options.hierarchical,
                    "Ontology-aware labels: the most specific Cell Ontology term whose summed class probability reaches --min-score "
                    "(an uncertain cell gets 'T cell' rather than a wrong subtype); the flat label goes to celltyper_flat_label");
  command->add_option("--ontology", args->ontology, fmt::format("Cell Ontology .obo or CELLxGENE .json for --hierarchical and the names of the labels' CL ids ({})", kOntologyDefaultHelp));
  command->add_option("--normalize", args->normalization, kNormalizeHelp)
      ->capture_default_str();
  command->add_flag("--json", args->json, "Print the label counts as JSON on stdout");
  command->callback([args, command, &global] {
    args->references = split_path_list(args->references);
    if (!args->over_clustering.empty()) {
      const std::string& text = args->over_clustering;
      args->options.over_clustering = text.rfind("obs:", 0) == 0 ? text.substr(4) : text;
    }
    // The gene table (about 0.4 s from org.Hs.eg.db) loads on a second thread while the models
    // and the query are opened.
    const std::string table_path = choose_gene_table_path(args->gene_table);
    std::future<GeneTable> loading_table;
    if (!table_path.empty()) loading_table = std::async(std::launch::async, [table_path] { return load_gene_table_cached(table_path, GeneTableFields::kIdentifiers); });
    if (!args->models.empty() && !args->references.empty()) {
      throw InputError("--model and --reference exclude each other: annotate with a trained model (--model FILE) or train one on the fly "
                       "(--reference REF.h5ad --label obs:COLUMN)");
    }
    if (args->models.empty() && args->references.empty()) {
      throw InputError("annotate needs either --model FILE (a trained model) or --reference REF.h5ad --label obs:COLUMN (train on the fly)");
    }
    if (!args->references.empty() && args->label.empty()) throw InputError("--reference needs --label obs:COLUMN (the references' cell types)");
    {  // --out writes .h5ad: a name asking for another format is a mistake, not a file to overwrite
      std::string extension = std::filesystem::path(args->out).extension().string();
      std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (extension == ".csv" || extension == ".tsv" || extension == ".txt" || extension == ".gz") {
        throw InputError(fmt::format("--out {} names a table, but --out writes an .h5ad (the input with celltyper_* columns): pass "
                                     "--csv {} for per-cell labels and scores as CSV", args->out, args->out));
      }
      if (extension == ".zarr" || extension == ".loom" || extension == ".rds") {
        throw InputError(fmt::format("--out {}: --out writes AnnData .h5ad only (name it .h5ad; --csv FILE writes a table)", args->out));
      }
    }
    if (args->references.empty()) {
      for (const char* flag : {"--label", "--save-model", "--label-map", "--label-dataset", "--harmonize-labels", "--gene-pooling",
                               "--balance-references", "--own-gene-names"}) {
        if (command->count(flag) > 0) throw InputError(fmt::format("{} applies to reference mode (--reference) only", flag));
      }
      // (a model carries the gene vectors it was trained with: a store named for every step of a
      // pipeline is not a mistake here, as it is not for the expression route)
      if (command->count("--genes") > 0) {
        fmt::print(stderr, "warning: --genes {} is not used: a model carries the gene vectors it was trained with (--genes applies to "
                           "reference mode)\n",
                   args->genes);
      }
    }
    // (--obs: the table's columns, joined by cell name, also go into the copy of an .h5ad input)
    std::vector<std::string> table_columns;
    const std::unique_ptr<Dataset> dataset = [&] {
      if (args->cell_table.empty()) return open_dataset(args->input);
      const DataFrame table = read_cell_table(args->cell_table);
      std::unique_ptr<Dataset> input = open_dataset(args->input);
      // (a column the input has stays as it is in the copy: the table's value is used for this
      // annotation, --over-clustering and --group, but the input's values, e.g. a truth column
      // for cells the table lacks, are not overwritten)
      const std::vector<std::string> own = input->obs_column_names();
      for (const Column& column : table.columns) {
        if (!is_annotation_column(column.name) && std::find(own.begin(), own.end(), column.name) == own.end()) {
          table_columns.push_back(column.name);
        }
      }
      return with_cell_table(std::move(input), table, args->cell_table);
    }();
    // An .h5ad input is copied with the celltyper_* columns added. A 10x input (Cell Ranger .h5 or
    // MTX folder) or a text table has no .h5ad to copy: its labels go to a CSV, or with --out to a
    // new .h5ad holding its counts, genes and cells (AnnData for scanpy from a GEO table).
    const bool h5ad = dataset->format() == "h5ad";
    // A MuData file (.h5mu) is read as its gene-expression modality: --out NAME.h5mu (the default
    // INPUT.celltyper.h5mu) copies it with the labels in that modality's obs (mod/rna/obs, as
    // muon keeps them), --out NAME.h5ad copies the modality alone (its layers, obsm, uns too).
    const bool mudata = h5ad && dataset->h5ad_file() != nullptr && !dataset->h5ad_file()->modality().empty();
    const std::string out_extension = genes_detail::ascii_lower(std::filesystem::path(args->out).extension().string());
    if (!mudata && out_extension == ".h5mu") {
      throw InputError(fmt::format("--out {}: a MuData file is written for a MuData input only; {} is {}: name the output .h5ad", args->out,
                                   args->input, h5ad ? "an AnnData .h5ad" : "no AnnData"));
    }
    // (--csv alone asks for the table, not also a copy of the input beside it: a read-only download folder)
    const std::string out = !h5ad || !args->out.empty() ? args->out
                            : args->csv.empty()         ? default_output(args->input, mudata ? ".celltyper.h5mu" : ".celltyper.h5ad")
                                                        : "";
    const std::string csv_path = args->csv.empty() && !h5ad && out.empty() ? default_output(args->input, ".celltyper.csv") : args->csv;
    std::vector<std::string> inputs = args->models;
    inputs.insert(inputs.end(), {args->input, table_path, args->ontology, args->genes, args->cell_table});
    inputs.insert(inputs.end(), args->references.begin(), args->references.end());
    // --csv - writes the table to standard output (the label summary goes to stderr then).
    const bool csv_to_stdout = csv_path == "-";
    if (csv_to_stdout && args->json) throw InputError("--csv - and --json both write to standard output: give --csv a file name");
    check_outputs({out, csv_to_stdout ? std::string() : csv_path, args->save_model}, inputs);
    args->options.embed.normalization = parse_normalization_choice(args->normalization);
    args->options.embed.memory_limit_bytes = parse_bytes(args->memory_limit);
    Ontology ontology;
    if (args->options.hierarchical) {
      const std::string path = default_ontology_path(args->ontology);
      if (path.empty()) {
        throw InputError(fmt::format("--hierarchical needs the Cell Ontology: pass --ontology FILE (.obo or .json) or set CELLTYPER_ONTOLOGY; {}",
                                     kOntologyReleaseHint));
      }
      ontology = load_ontology(path);
      args->options.ontology = &ontology;
    }
    args->options.refit = !args->no_refit;
    const bool verbose = progress_enabled(global.quiet);
    if (verbose) args->options.log = [](const std::string& message) { fmt::print(stderr, "{}\n", message); };
    if (!args->references.empty() && table_path.empty()) {
      throw InputError("reference mode needs a gene table: pass --gene-table or install r-bioc-org.hs.eg.db (scripts/setup.sh)");
    }
    // The copy of the input runs on its own thread from here on, while the models load (a
    // reference sample of up to 20,000 cells each, ~0.4 s), the gene table finishes and the
    // cells are annotated.
    // Unreadable models are reported before the output is started (missing ones by load_model).
    for (const auto& path : args->models) {
      if (std::filesystem::exists(path)) require_readable(path, "model");
    }
    std::optional<H5adCopy> copy;
    if (h5ad && !out.empty()) copy.emplace(args->input, out);
    std::optional<H5adWriter> written_h5ad;  // a 10x or text input's new .h5ad (--out)
    if (!h5ad && !out.empty()) {
      H5adWriteOptions write;
      write.gzip_level = 4;  // anndata's compression="gzip"
      written_h5ad.emplace(out, dataset->n_obs(), dataset->n_vars(), write);
    }
    std::optional<OutputFile> csv;
    if (!csv_path.empty() && !csv_to_stdout) csv.emplace(csv_path);
    std::vector<CellTypeModel> models;
    for (const auto& path : args->models) models.push_back(load_model(path));
    std::vector<const CellTypeModel*> given;
    for (const auto& model : models) given.push_back(&model);
    GeneTable table;
    // A model trained with another gene table (another species'): its names, not the default's.
    std::optional<GeneTable> standard;  // (the default table, when the recorded one's absence asks for it)
    RecordedGeneTable recorded;
    recorded = models_recorded_gene_table(
        given,
        [&]() -> const GeneTable* {
          if (!standard && loading_table.valid()) standard = loading_table.get();
          return standard ? &*standard : nullptr;
        },
        args->gene_table);
    // What is said before the annotation (the gene table, the reference's training, the ontology):
    // printed as it happens and kept for --json's warnings, as the Python result's.
    std::vector<std::string> said;
    const auto say = [&](std::vector<std::string> messages) {
      print_warnings(messages, global.quiet);
      said.insert(said.end(), messages.begin(), messages.end());
    };
    if (!recorded.message.empty()) say({recorded.message});
    if (recorded.table) {
      table = std::move(*recorded.table);
    } else if (standard) {
      table = std::move(*standard);
    } else {
      table = table_path.empty() ? models_gene_table(given) : loading_table.get();
    }
    Ontology loaded_ontology;  // (without --hierarchical: CL ids of reference labels, names of the labels' ids)
    if (!args->references.empty()) {
      // Reference mode: the model is trained on the genes the query measures.
      TrainOptions& train = args->train;
      train.label_column = obs_columns(args->label, "--label");
      train.num_threads = args->options.embed.num_threads;
      train.embed.matrix = args->reference_layer;
      train.embed.memory_limit_bytes = args->options.embed.memory_limit_bytes;
      train.log = args->options.log;
      // CL ids of labels that are CL names (after --label-map and the data's own ids).
      if (train.ontology == nullptr && args->options.ontology != nullptr) train.ontology = args->options.ontology;
      if (train.ontology == nullptr) {
        if (const std::string path = default_ontology_path(args->ontology); !path.empty()) {
          loaded_ontology = load_ontology(path);
          train.ontology = &loaded_ontology;
          args->options.ontology = &loaded_ontology;
        }
      }
      if (train.harmonize_labels && train.ontology == nullptr && train.label_map.empty()) {
        throw InputError(fmt::format("--harmonize-labels needs the Cell Ontology (--ontology FILE) or a label map (--label-map TSV); {}",
                                     kOntologyReleaseHint));
      }
      GeneStore store;
      if (train.features == kFeaturesGenept) store = GeneStore::load(resolve_gene_store_path(args->genes));
      if (train.features != kFeaturesGenept && !args->genes.empty()) {
        fmt::print(stderr, "warning: --genes {} is not used: the expression route (--features expression, the default) reads no gene store; "
                           "--features genept embeds cells with it\n",
                   args->genes);
      }
      const OpenedDatasets references = open_datasets(args->references);
      for (std::size_t r = 0; r < references.views.size(); ++r) {
        if (is_extract_output(*references.views[r])) {
          throw InputError(fmt::format("{}: a `celltyper extract` training matrix holds cell embeddings of every gene, and reference mode "
                                       "trains on the genes the query shares: train a model on it (celltyper train --reference {}) and "
                                       "annotate with --model",
                                       args->references[r], args->references[r]));
        }
      }
      const auto started = std::chrono::steady_clock::now();
      // (the model keeps its reference sample: annotate reads a query padded with zeros through it)
      TrainResult trained = [&] {
        try {
          return train_for_query(references.views, *dataset, train, store, table, args->options.embed,
                                 args->options.allow_low_coverage ? 0 : args->options.min_coverage_genes);
        } catch (const InputError& error) {
          throw InputError(for_references(error.what(), args->references));
        }
      }();
      for (std::string& warning : trained.warnings) warning = for_references(std::move(warning), args->references);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (!global.quiet) {
        fmt::print(stderr,
                   "reference mode: trained {} on {} cells, {} classes, {} features from the {} genes the query shares with the "
                   "references' {} ({:.1f} s)\n",
                   train.classifier, trained.n_cells, trained.model.class_names.size(),
                   trained.model.features == kFeaturesExpression ? trained.model.panel.size() : trained.model.genes.size(),
                   trained.n_shared_genes, trained.n_reference_genes, seconds);
        fmt::print(stderr, "reference mode: scores {}\n", calibration_text(calibration_summary(trained.model)));
      }
      say(trained.warnings);
      // (references of another species trained on their own var names: the query is read in them)
      if (trained_on_own_gene_names(trained.model)) table = trained.model.gene_table();
      if (!args->save_model.empty()) save_model(trained.model, args->save_model);
      models.push_back(std::move(trained.model));
    }
    std::vector<const CellTypeModel*> pointers;
    for (const auto& model : models) pointers.push_back(&model);
    // Classes with CL ids: the ontology names them (obs celltyper_ontology_name), when it is installed or given.
    if (args->options.ontology == nullptr && std::any_of(models.begin(), models.end(), [](const CellTypeModel& model) {
          return std::any_of(model.class_cl_ids.begin(), model.class_cl_ids.end(), [](const std::string& id) { return !id.empty(); });
        })) {
      if (const std::string path = default_ontology_path(args->ontology); !path.empty()) {
        try {  // (the names are an extra: an unreadable ontology costs them, not the labels)
          loaded_ontology = load_ontology(path);
          args->options.ontology = &loaded_ontology;
        } catch (const Error& error) {
          say({fmt::format("the Cell Ontology could not be read, so obs celltyper_ontology_name is left out: {}", error.what())});
        }
      } else {
        say({std::string(kNoOntologyForNamesWarning)});
      }
    }
    ProgressBar bar("annotate", "cells", 0, progress_enabled(global.quiet));
    args->options.progress = [&bar](std::int64_t done, std::int64_t total) {
      bar.set_total(total);
      bar.update(done);
      if (done >= total) bar.finish();  // (the line ends before what annotate says next)
    };
    const Annotation annotation = annotate_dataset(*dataset, pointers, table, args->options);
    bar.finish();
    // What the run did, kept in the annotated file (uns['celltyper_annotation']) and printed by --json.
    std::vector<std::string> model_names = args->models;
    if (!args->references.empty()) model_names.push_back(fmt::format("reference mode: {}", fmt::join(args->references, ",")));
    const std::string kept = annotation_record(annotation, pointers, model_names, args->options, said, false)
                                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const auto with_record = [&kept](H5adAdditions additions) {
      additions.uns_strings["celltyper_annotation"] = kept;
      return additions;
    };
    if (copy) {
      H5adAdditions additions = with_record(annotation_additions(annotation));
      if (!table_columns.empty()) {
        DataFrame joined = dataset->read_obs_columns(table_columns);
        additions.obs_columns.insert(additions.obs_columns.begin(), std::make_move_iterator(joined.columns.begin()),
                                     std::make_move_iterator(joined.columns.end()));
      }
      copy->prepare(additions);
    }
    if (written_h5ad) write_dataset_h5ad(*dataset, *written_h5ad, with_record(annotation_additions(annotation)));
    if (csv) write_csv(*csv, annotation);
    commit_together({copy ? &copy->output() : written_h5ad ? &written_h5ad->output() : nullptr, csv ? &*csv : nullptr});  // both files or neither
    if (csv_to_stdout) {
      write_annotation_csv(annotation, std::cout);
      std::cout.flush();
      if (!std::cout) throw IoError("cannot write the CSV to standard output");
    }
    const std::string written = out.empty() ? csv_path : out;
    const auto counts = label_counts(annotation);
    const ScoreSummary confidence = summarize_scores(annotation.scores);
    if (args->json) {
      nlohmann::json record = annotation_record(annotation, pointers, model_names, args->options, said);
      record["output"] = written;
      fmt::print("{}\n", record.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else if ((!csv_to_stdout || !global.quiet) && !counts.empty()) {  // (zero cells: no table; annotate says so)
      // (padded by characters here: "γδ T" is 4 wide, not its 6 bytes; on stderr when the CSV is on stdout)
      std::FILE* stream = csv_to_stdout ? stderr : stdout;
      const auto characters = [](const std::string& text) { return detail::utf8_code_points(text); };
      std::size_t width = 5;
      for (const auto& [label, count] : counts) width = std::max(width, characters(label));
      fmt::print(stream, "{:<{}}  {:>7}  {:>6}\n", "label", width, "cells", "share");
      for (const auto& [label, count] : counts) {
        fmt::print(stream, "{}{}  {:>7}  {:>5.1f}%\n", label, std::string(width - characters(label), ' '), count,
                   100.0 * static_cast<double>(count) / static_cast<double>(annotation.labels.size()));
      }
    }
    if (!global.quiet) {
      for (std::size_t m = 0; m < annotation.models.size(); ++m) {
        const ModelUse& use = annotation.models[m];
        fmt::print(stderr, "coverage{}: the query measures {} of {} model genes ({:.1f}% of the reference expression), {} of {} feature genes{}\n",
                   annotation.models.size() == 1 ? "" : fmt::format(" (model {})", m + 1), use.coverage.n_measured,
                   use.coverage.n_model_genes, 100 * use.coverage.mass, use.coverage.n_features_measured, use.coverage.n_features_genes,
                   use.refitted ? fmt::format("; refitted on {} shared genes ({} features, {:.1f} s)", use.refit_genes, use.refit_panel, use.refit_seconds)
                                : "");
      }
      fmt::print(stderr, "annotated {} cells with {} model{} -> {}\n", annotation.labels.size(), models.size(), models.size() == 1 ? "" : "s", written);
      if (!annotation.scores.empty()) {
        // (cells already Unassigned, e.g. empty ones, need no advice on how to leave them so)
        std::int64_t low_but_labelled = 0;
        for (std::size_t i = 0; i < annotation.scores.size(); ++i) {
          if (!(annotation.scores[i] >= kLowScore) && annotation.labels[i] != kUnassigned) ++low_but_labelled;
        }
        // (a --min-score other than 0.5 left its own cells Unassigned: say how many, flat labels)
        std::string threshold;
        if (args->options.min_score > 0 && args->options.min_score != kLowScore && !args->options.hierarchical) {
          std::int64_t below = 0;
          for (std::size_t i = 0; i < annotation.scores.size(); ++i) below += annotation.scores[i] < args->options.min_score ? 1 : 0;
          threshold = fmt::format("; {} ({:.1f}%) below --min-score {} (Unassigned)", below,
                                  100.0 * static_cast<double>(below) / static_cast<double>(annotation.scores.size()), args->options.min_score);
        }
        // (cells Unassigned already, e.g. without a count in the model's genes, score 0: said apart)
        const std::int64_t unassigned_low = confidence.n_low - low_but_labelled;
        fmt::print(stderr, "confidence: median score {:.2f}; {} cell{} ({:.1f}%) below {}{}{} (obs celltyper_score){}\n", confidence.median,
                   confidence.n_low, confidence.n_low == 1 ? "" : "s",
                   100.0 * static_cast<double>(confidence.n_low) / static_cast<double>(annotation.scores.size()), kLowScore,
                   unassigned_low > 0 && low_but_labelled > 0 ? fmt::format(" ({} of them Unassigned already)", unassigned_low) : std::string(),
                   threshold,
                   confidence.n_low == 0 || args->options.hierarchical || low_but_labelled == 0
                       ? ""
                       : ": uncertain calls; --hierarchical names each cell at the most specific Cell Ontology term whose summed probability reaches --min-score "
                         "(0.5 unless given; for an uncertain call, usually a coarser term), --min-score 0.5 leaves it Unassigned");
      }
      if (annotation.has_similarity && !annotation.labels.empty()) {
        const auto n = static_cast<std::int64_t>(annotation.labels.size());
        fmt::print(stderr, "resemblance: {} cell{} ({:.1f}%{}) unlike every reference type (obs celltyper_unlike_reference){}{}\n",
                   annotation.n_unlike_reference, annotation.n_unlike_reference == 1 ? "" : "s",
                   annotation.n_similarity_judged == 0 ? 0.0 : 100.0 * static_cast<double>(annotation.n_unlike_reference) /
                                                               static_cast<double>(annotation.n_similarity_judged),
                   annotation.n_similarity_judged == n ? "" : fmt::format(" of the {} judged", annotation.n_similarity_judged),
                   annotation.n_similarity_judged == n ? "" : fmt::format("; {} not judged (too shallow, or empty)", n - annotation.n_similarity_judged),
                   args->options.unassign_unlike ? fmt::format("; {} left Unassigned by --unassign-unlike", annotation.n_unassigned_unlike) : "");
      }
      if (!annotation.samples.empty()) {  // (--group obs:COLUMN: each sample's labels and doubts)
        fmt::print(stderr, "per sample (obs {}): cells, median score, below {}, unlike the reference, most frequent labels\n",
                   annotation.samples.front().column, kLowScore);
        constexpr std::size_t kMaxSampleLines = 64;  // (a column of hundreds of values: the rest in --json)
        for (std::size_t i = 0; i < annotation.samples.size(); ++i) {
          if (i == kMaxSampleLines) {
            fmt::print(stderr, "  ... and {} more samples (--json lists every one)\n", annotation.samples.size() - kMaxSampleLines);
            break;
          }
          const SampleSummary& sample = annotation.samples[i];
          std::vector<std::string> top;
          for (std::size_t i = 0; i < std::min<std::size_t>(3, sample.label_counts.size()); ++i) {
            const double percent = 100.0 * static_cast<double>(sample.label_counts[i].second) / static_cast<double>(sample.n_cells);
            // (a label of a few cells in a large sample reads "<1%", not "0%", and the label beside
            // it ">99%", not "100%")
            const bool all = sample.label_counts[i].second == sample.n_cells;
            top.push_back(percent < 1.0                ? fmt::format("{} <1%", sample.label_counts[i].first)
                          : percent > 99.0 && !all ? fmt::format("{} >99%", sample.label_counts[i].first)
                                                   : fmt::format("{} {:.0f}%", sample.label_counts[i].first, percent));
          }
          const auto share = [](std::int64_t part, std::int64_t of) { return of > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(of) : 0.0; };
          fmt::print(stderr, "  {}: {} cells, {:.2f}, {:.1f}%, {}; {}\n", sample.level.empty() ? std::string("(missing)") : sample.level,
                     sample.n_cells, sample.median_score, share(sample.n_low_score, sample.n_cells),
                     annotation.has_similarity && sample.n_similarity_judged > 0
                         ? fmt::format("{:.1f}%", share(sample.n_unlike_reference, sample.n_similarity_judged))
                         : std::string("-"),
                     fmt::join(top, ", "));
        }
      }
    }
    print_warnings(annotation.warnings, global.quiet);
  });
}

CELLTYPER_REGISTER_COMMAND("50-annotate", add_annotate);

}  // namespace celltyper::cli
