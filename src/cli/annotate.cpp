// `celltyper annotate`: predict cell types of a query dataset with one or more model files.
#include <celltyper/annotate.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/output_file.hpp>

#include "cli/commands.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>

namespace celltyper::cli {

namespace {

std::string default_annotated_output(const std::string& input) {
  std::filesystem::path path(input);
  std::string stem = path.filename().string();
  if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".h5ad") == 0) stem.resize(stem.size() - 5);
  return (path.parent_path() / (stem + ".celltyper.h5ad")).string();
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

/// Write the CSV into the temporary file of `output` (committed with the h5ad).
void write_csv(const OutputFile& output, const Annotation& annotation) {
  const std::string& path = output.path();
  {
    std::ofstream out(output.temporary(), std::ios::trunc);
    if (!out) throw IoError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
    out << "obs_name,celltyper_label,celltyper_score,celltyper_ontology_id";
    for (std::size_t k = 0; k < annotation.top_labels.size(); ++k) out << fmt::format(",celltyper_top{0}_label,celltyper_top{0}_score", k + 1);
    if (!annotation.majority_vote.empty()) out << ",celltyper_majority_vote";
    out << '\n';
    for (std::size_t i = 0; i < annotation.labels.size(); ++i) {
      out << csv_field(annotation.obs_names[i]) << ',' << csv_field(annotation.labels[i]) << ',' << fmt::format("{:.6g}", annotation.scores[i])
          << ',' << annotation.cl_ids[i];
      for (std::size_t k = 0; k < annotation.top_labels.size(); ++k) {
        out << ',' << csv_field(annotation.top_labels[k][i]) << ',' << fmt::format("{:.6g}", annotation.top_scores[k][i]);
      }
      if (!annotation.majority_vote.empty()) out << ',' << csv_field(annotation.majority_vote[i]);
      out << '\n';
    }
    out.flush();
    if (!out) throw IoError(fmt::format("cannot write {} (disk full?)", path));
  }
}

/// Without a full gene table: the union of the models' own genes.
GeneTable models_gene_table(const std::vector<CellTypeModel>& models) {
  if (models.size() == 1) return models.front().gene_table();
  std::map<std::int64_t, Gene> genes;
  for (const auto& model : models) {
    const GeneTable own = model.gene_table();
    for (std::size_t g = 0; g < own.size(); ++g) genes.emplace(own.gene(static_cast<std::int32_t>(g)).entrez_id, own.gene(static_cast<std::int32_t>(g)));
  }
  std::vector<Gene> list;
  for (auto& [entrez, gene] : genes) list.push_back(std::move(gene));
  return GeneTable(std::move(list), "model genes");
}

}  // namespace

void add_annotate(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> models;
    std::string input;
    std::string out;
    std::string csv;
    std::string over_clustering;
    std::string gene_table;
    std::string ontology;
    std::string normalization = "auto";
    std::string memory_limit = "32M";
    bool json = false;
    AnnotateOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("annotate", "Predict the cell type of every cell of a dataset with trained model files");
  command->add_option("-m,--model", args->models, "Model file from 'celltyper train' (repeat to average several models)")->required();
  command->add_option("-i,--input", args->input, "Query .h5ad")->required();
  command->add_option("-o,--out", args->out, "Output .h5ad: a copy of the input with celltyper_* obs columns (default INPUT.celltyper.h5ad)");
  command->add_option("--csv", args->csv, "Also write per-cell labels and scores to this CSV file");
  command->add_option("--min-score", args->options.min_score, "Cells whose best probability is below this are 'Unassigned'")
      ->capture_default_str();
  command->add_option("--top-k", args->options.top_k, "Also write the k best labels and scores per cell");
  command->add_option("--over-clustering", args->over_clustering, "obs:COLUMN of clusters: add a per-cluster majority vote");
  command->add_option("--layer", args->options.embed.matrix, "Matrix to embed: X, raw, or a layer name")->capture_default_str();
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
  command->add_option("--ontology", args->ontology, "Cell Ontology .obo or .json for --hierarchical (default: the bundled/shared cl-basic.obo)");
  command->add_option("--normalize", args->normalization, "auto | none | cp10k | log1p-cp10k (auto: counts are normalised, logged data used as is)")
      ->capture_default_str();
  command->add_flag("--json", args->json, "Print the label counts as JSON on stdout");
  command->callback([args, &global] {
    if (!args->over_clustering.empty()) {
      const std::string& text = args->over_clustering;
      args->options.over_clustering = text.rfind("obs:", 0) == 0 ? text.substr(4) : text;
    }
    // The gene table (about 0.4 s from org.Hs.eg.db) loads on a second thread while the models
    // and the query are opened.
    const std::string table_path = args->gene_table.empty() ? default_gene_table_path() : args->gene_table;
    std::future<GeneTable> loading_table;
    if (!table_path.empty()) loading_table = std::async(std::launch::async, [table_path] { return load_gene_table(table_path); });
    std::vector<CellTypeModel> models;
    for (const auto& path : args->models) models.push_back(load_model(path));
    const auto dataset = open_dataset(args->input);
    if (dataset->format() != "h5ad") throw InputError(fmt::format("{}: annotate writes a copy of an .h5ad input; {} input is not supported yet", args->input, dataset->format()));
    std::string out = args->out.empty() ? default_annotated_output(args->input) : args->out;
    std::vector<std::string> inputs = args->models;
    inputs.insert(inputs.end(), {args->input, table_path, args->ontology});
    check_outputs_are_not_inputs({out, args->csv}, inputs);
    args->options.embed.normalization = parse_normalization_choice(args->normalization);
    args->options.embed.memory_limit_bytes = parse_bytes(args->memory_limit);
    Ontology ontology;
    if (args->options.hierarchical) {
      const std::string path = default_ontology_path(args->ontology);
      if (path.empty()) throw InputError("--hierarchical needs the Cell Ontology: pass --ontology FILE (.obo or .json) or set CELLTYPER_ONTOLOGY");
      ontology = load_ontology(path);
      args->options.ontology = &ontology;
    }
    H5adCopy copy(args->input, out);  // copies the input while the gene table finishes and the cells are annotated
    std::optional<OutputFile> csv;
    if (!args->csv.empty()) csv.emplace(args->csv);
    const GeneTable table = table_path.empty() ? models_gene_table(models) : loading_table.get();
    std::vector<const CellTypeModel*> pointers;
    for (const auto& model : models) pointers.push_back(&model);
    const Annotation annotation = annotate_dataset(*dataset, pointers, table, args->options);
    copy.prepare(annotation_additions(annotation));
    if (csv) write_csv(*csv, annotation);
    commit_together({&copy.output(), csv ? &*csv : nullptr});  // both files or neither
    const auto counts = label_counts(annotation);
    if (args->json) {
      nlohmann::json summary = {{"output", out}, {"n_cells", annotation.labels.size()}, {"classes", annotation.class_names}};
      summary["label_counts"] = nlohmann::json::object();
      for (const auto& [label, count] : counts) summary["label_counts"][label] = count;
      summary["warnings"] = annotation.warnings;
      fmt::print("{}\n", summary.dump(2));
    } else {
      std::size_t width = 5;
      for (const auto& [label, count] : counts) width = std::max(width, label.size());
      fmt::print("{:<{}}  {:>7}  {:>6}\n", "label", width, "cells", "share");
      for (const auto& [label, count] : counts) {
        fmt::print("{:<{}}  {:>7}  {:>5.1f}%\n", label, width, count, 100.0 * static_cast<double>(count) / static_cast<double>(annotation.labels.size()));
      }
    }
    if (!global.quiet) {
      fmt::print(stderr, "annotated {} cells with {} model{} -> {}\n", annotation.labels.size(), models.size(), models.size() == 1 ? "" : "s", out);
      for (const auto& warning : annotation.warnings) fmt::print(stderr, "warning: {}\n", warning);
    }
  });
}

CELLTYPER_REGISTER_COMMAND("50-annotate", add_annotate);

}  // namespace celltyper::cli
