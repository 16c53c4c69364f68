// `celltyper inspect FILE`: describe a dataset (h5ad, Cell Ranger .h5 or MTX directory), or a model file.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/inspect.hpp>
#include <celltyper/markers.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/remote.hpp>

#include "cli/commands.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <future>
#include <memory>

namespace celltyper::cli {
namespace {

/// `describe_model`'s JSON as text.
std::string format_model_description(const std::string& path, const nlohmann::json& model) {
  std::string out = fmt::format("{}  (celltyper model, written by celltyper {} on {})\n", path, model["celltyper_version"].get<std::string>(),
                                model["created_utc"].get<std::string>());
  const std::string features = model["features"] == kFeaturesExpression
                                   ? fmt::format("expression of {} panel genes", model["n_features"].get<std::int64_t>())
                                   : fmt::format("GenePT-w cell embeddings ({} dims)", model["n_features"].get<std::int64_t>());
  out += fmt::format("Classifier  {} on {}\n", model["classifier"].get<std::string>(), features);
  const auto copies = model["n_thinned_copies"].get<std::int64_t>();
  out += fmt::format("Trained on  {} labelled cells{}, label {}\n", model["n_cells"].get<std::int64_t>(),
                     copies > 0 ? fmt::format(" (+ {} thinned copies: depth augmentation)", copies) : std::string(),
                     model["label_column"].get<std::string>());
  if (model.contains("cv_fold") && model["cv_fold"].is_string()) {
    const std::string held_out = model.value("cv_held_out", std::string());
    out += fmt::format("  a cv fold's model: trained with {} held out\n",
                       held_out.empty() ? fmt::format("fold '{}'", model["cv_fold"].get<std::string>()) : held_out);
  }
  for (const auto& reference : model["references"]) {
    // how its values were read: a normalisation, or (a `celltyper extract` matrix) the embeddings it carried
    const std::string normalization = reference["normalization"].get<std::string>();
    const std::string matrix = reference.value("matrix", std::string());
    const std::string how = !normalization.empty()       ? normalization + (reference.value("counts_recovered", false) ? " of the counts read back from its log values" : "")
                            : matrix.rfind("obsm/", 0) == 0 ? "precomputed embeddings, " + matrix
                                                            : matrix;
    // (its label column, when the references read theirs from differently named ones)
    const std::string label = model["label_column"].get<std::string>().find(',') == std::string::npos ? std::string()
                                                                                                  : reference.value("label_column", std::string());
    out += fmt::format("  {}: {} of {} cells used{}{}\n", reference["path"].get<std::string>(), reference["n_used"].get<std::int64_t>(),
                       reference["n_cells"].get<std::int64_t>(), label.empty() ? std::string() : ", labels " + label,
                       how.empty() ? std::string() : fmt::format(" ({})", how));
  }
  if (const std::string table = model.value("gene_table", std::string()); !table.empty()) {
    out += fmt::format("Gene table  {}\n", table);
  }
  if (!model["validation"].is_null()) {
    out += fmt::format("Validation  accuracy {:.3f}, macro-F1 {:.3f} (held-out reference cells)\n", model["validation"]["accuracy"].get<double>(),
                       model["validation"]["macro_f1"].get<double>());
  }
  if (const auto& calibration = model.value("calibration", nlohmann::json::object()); calibration.contains("temperature")) {
    out += fmt::format("Scores      {}\n", calibration_text(calibration));
  }
  if (const auto library_genes = model.value("library_genes", std::size_t{0}); library_genes > 0) {
    out += fmt::format("Library sizes  summed over {} genes on the references and on every query ({})\n", library_genes,
                       model.value("restrict_genes", std::int64_t{0}) > 0 ? "those of --restrict-genes the references measured"
                                                                          : "the genes its references measured");
  }
  const auto& sample = model["reference_sample"];
  if (sample["n_cells"].get<std::int64_t>() > 0) {
    out += fmt::format("Reference sample  {} cells x {} genes{}\n", sample["n_cells"].get<std::int64_t>(), sample["n_genes"].get<std::int64_t>(),
                       model["features"] == kFeaturesExpression ? " (annotate refits the model on the genes a query shares)" : "");
  }
  const auto& profiles = model["type_profiles"];
  if (profiles.is_object() && profiles["n_classes"].get<std::int64_t>() > 0) {
    out += fmt::format("Type profiles  {} classes over {} genes, {} depth level{} (annotate flags cells unlike every type)\n",
                       profiles["n_classes"].get<std::int64_t>(), profiles["n_genes"].get<std::int64_t>(),
                       profiles["n_depth_levels"].get<std::int64_t>(), profiles["n_depth_levels"].get<std::int64_t>() == 1 ? "" : "s");
  }
  if (const auto& warnings = model["training_warnings"]; !warnings.empty()) {
    out += fmt::format("Training warnings ({})\n", warnings.size());
    for (const auto& warning : warnings) out += fmt::format("  {}\n", warning.get<std::string>());
  }
  out += fmt::format("Classes ({})\n", model["n_classes"].get<std::int64_t>());
  std::size_t width = 0;
  for (const auto& c : model["classes"]) width = std::max(width, c["name"].get<std::string>().size());
  for (const auto& c : model["classes"]) {
    const std::string cells = c["n_cells"].is_null() ? std::string() : fmt::format("{} cells", c["n_cells"].get<std::int64_t>());
    out += fmt::format("  {:<{}}  {:<11}  {}\n", c["name"].get<std::string>(), width, c["cl_id"].get<std::string>(), cells);
  }
  if (model.contains("markers")) {
    out += "Markers (reference cells: mean log1p(CP10k) in the type / in the others' mean, share expressing)\n";
    for (const auto& c : model["markers"]) {
      std::vector<std::string> genes;
      for (const auto& gene : c["genes"]) {
        genes.push_back(fmt::format("{} {:.1f}/{:.1f} {:.0f}%", gene["symbol"].get<std::string>(), gene["mean"].get<double>(),
                                    gene["mean_elsewhere"].get<double>(), 100.0 * gene["fraction"].get<double>()));
      }
      const std::string none = c["n_cells"].get<std::int64_t>() == 0 ? "(no sampled cells of its own)" : "(no gene higher in it than elsewhere)";
      out += fmt::format("  {:<{}}  {}\n", c["class"].get<std::string>(), width, genes.empty() ? none : fmt::format("{}", fmt::join(genes, ", ")));
    }
  }
  return out;
}

}  // namespace

void add_inspect(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::string path;
    std::string gene_table;
    bool no_genes = false;
    bool json = false;
    int markers = 0;
    int threads = 0;  // (applied to the whole process by --threads, as for every command)
    InspectOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand("inspect", "Describe a dataset: shape, encodings, value scale, obs columns, gene ids");
  command->add_option("file", args->path, "An .h5ad file, a Cell Ranger .h5 file, an MTX folder (Cell Ranger, STARsolo, kallisto | bustools, alevin-fry), loom, AnnData Zarr, an R object (.rds: Seurat, SingleCellExperiment, a matrix) or a text count table (.csv / .tsv / .txt, optionally .gz) (or a celltyper model: what it is)")->required();
  command->add_flag("--json", args->json, "Print machine-readable JSON");
  command->add_option("--layer", args->options.matrix, "Matrix to scan: X (default), raw, or a layer name");
  command->add_option("--max-cells", args->options.max_cells, "Scan about N cells, in 8 runs spread over the matrix (default: all)");
  command->add_option("--top", args->options.top_categories, "Categories listed per obs column")->capture_default_str();
  command->add_option("--gene-table", args->gene_table,
                      "Gene table for the gene-id overlap: org.*.eg.db SQLite or TSV (default: $CELLTYPER_GENE_TABLE, else Debian's org.Hs.eg.db)");
  command->add_option("--gene-column", args->options.gene_column, "var column holding gene ids (default: auto-detect; 'index' for var_names)");
  command->add_flag("--no-genes", args->no_genes, "Skip the gene-id overlap");
  command->add_option("--threads", args->threads, "Threads for reading and scanning (default: all cores)");
  command
      ->add_option("--markers", args->markers,
                   "Given a model: also list each type's N marker genes, from the reference cells the model keeps (mean log1p(CP10k) "
                   "in the type above the other types' mean)")
      ->check(CLI::Range(1, 10000));
  command->callback([args, &global] {
    if (!is_remote_path(args->path) && is_model_file(args->path)) {  // a model: what it is, not a dataset scan
      const CellTypeModel model = load_model(args->path);
      std::string text;
      try {
        nlohmann::json description = describe_model(model);
        if (args->markers > 0) description["markers"] = markers_to_json(class_markers(model, static_cast<std::size_t>(args->markers)));
        text = args->json ? description.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n" : format_model_description(args->path, description);
      } catch (const nlohmann::json::exception& error) {  // a hand-edited provenance of the wrong shape
        throw InputError(fmt::format("{}: the model's provenance is not what celltyper writes ({})", args->path, error.what()));
      }
      fmt::print("{}", text);
      return;
    }
    if (args->markers > 0) throw InputError(fmt::format("--markers lists a model's marker genes; {} is not a celltyper model", args->path));
    GeneTable table;
    std::future<GeneTable> loading;  // the table loads while the file is opened and its matrix scanned
    if (!args->no_genes) {
      const std::string table_path = choose_gene_table_path(args->gene_table);
      if (!table_path.empty()) {
        loading = std::async(std::launch::async, [table_path] { return load_gene_table_cached(table_path, GeneTableFields::kIdentifiers); });
        args->options.gene_table_later = [&table, &loading]() -> const GeneTable* {
          table = loading.get();
          return &table;
        };
      }
    }
    const auto dataset = open_dataset(args->path);
    if (!args->no_genes && !loading.valid() && !global.quiet) {
      fmt::print(stderr, "celltyper: no gene table found (set --gene-table or CELLTYPER_GENE_TABLE); skipping the gene-id overlap\n");
    }
    nlohmann::json report = inspect_dataset(*dataset, args->options);
    const RemoteStats remote = remote_stats_total();
    if (is_remote_path(args->path)) {
      report["remote"] = {{"requests", remote.requests}, {"retries", remote.retries}, {"bytes_fetched", remote.bytes_fetched},
                          {"cache_hits", remote.cache_hits}};
    }
    if (args->json) {
      fmt::print("{}\n", report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      fmt::print("{}", format_inspect_report(report));
      if (is_remote_path(args->path)) {
        fmt::print("remote: {} requests ({} retries), {} bytes fetched\n", remote.requests, remote.retries, remote.bytes_fetched);
      }
    }
  });
}

CELLTYPER_REGISTER_COMMAND("10-inspect", add_inspect);

}  // namespace celltyper::cli
