// `celltyper evaluate`: metrics (flat, ranking, Cell-Ontology-aware) of the predictions stored in
// an annotated .h5ad, per group and overall, with optional JSON, HTML report and PNG plots.
#include <celltyper/error.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/report.hpp>

#include "cli/commands.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

namespace celltyper::cli {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void add_evaluate(CLI::App& app, const GlobalOptions& global) {
  struct Args {
    std::string input;
    std::string ontology;
    bool no_ontology = false;
    std::string compare = "auto";
    std::string json;
    std::string report;
    std::string png;
    double png_scale = 1.0;
    DatasetEvaluationOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand(
      "evaluate", "Score the predictions in an annotated .h5ad against true labels: flat, ranking and Cell Ontology metrics, HTML report");
  command->add_option("-i,--input", args->input, "Annotated .h5ad (from 'celltyper annotate' or any file with both columns)")->required();
  command->add_option("--truth", args->options.truth, "True labels, obs:COLUMN")->required();
  command->add_option("--pred", args->options.prediction, "Predicted labels or CL ids, obs:COLUMN (e.g. obs:celltyper_ontology_id)")
      ->capture_default_str();
  command->add_option("--ontology", args->ontology,
                      fmt::format("Cell Ontology .obo or CELLxGENE .json ({})", kOntologyDefaultHelp));
  command->add_flag("--no-ontology", args->no_ontology, "Skip the Cell Ontology metrics");
  command->add_option("--label-map", args->options.label_map, "label -> CL id table (layout of label_map_to_cell_ontology.tsv)");
  command->add_option("--label-dataset", args->options.label_dataset, "Prefer rows of this dataset of --label-map for the truth labels");
  command->add_option("--compare", args->compare,
                      "What flat metrics compare: labels, ontology (CL terms), or auto (labels when at least half of the predicted labels "
                      "occur among the truth labels)")
      ->check(CLI::IsMember({"auto", "labels", "ontology"}))
      ->capture_default_str();
  command->add_option("--probabilities", args->options.probabilities,
                      "Class probabilities, obsm:KEY, for top-k accuracy and reciprocal rank (auto: obsm:celltyper_probabilities when "
                      "present; none: skip)")
      ->capture_default_str();
  command->add_option("--probability-classes", args->options.probability_classes,
                      "uns:KEY with the probability class names, a list (or a JSON list, as celltyper wrote before) (default: derived from the obsm key)");
  command->add_option("--top-k", args->options.top_k, "k of the top-k accuracies")->delimiter(',')->capture_default_str();
  command->add_option("--group", args->options.group, "Also evaluate each group of this obs:COLUMN (held-out sets, donors, batches)");
  command->add_option("--embedding", args->options.embedding,
                      "obsm:KEY drawn as the PCA cell map (auto: X_celltyper, else celltyper_probabilities, else X_pca; none: no map)")
      ->capture_default_str();
  command->add_option("--max-points", args->options.max_map_points, "Cells drawn in the map (deterministic subsample above this)")
      ->check(CLI::Range(std::size_t{2}, std::size_t{1} << 24))
      ->capture_default_str();
  command->add_option("--seed", args->options.seed, "Seed of the map subsample")->capture_default_str();
  command->add_option("--json", args->json, "Write the metrics as JSON to this file ('-' = standard output instead of the table)");
  command->add_option("--report", args->report, "Write a self-contained HTML report to this file");
  command->add_option("--png", args->png, "Write each plot as PNG into this folder (needs Chromium)");
  command->add_option("--png-scale", args->png_scale, "Device pixels per CSS pixel of the PNGs")
      ->check(CLI::Range(0.25, 8.0))
      ->capture_default_str();
  command->callback([args, &global] {
    const auto start = std::chrono::steady_clock::now();
    check_outputs({args->json == "-" ? std::string() : args->json, args->report},
                                 {args->input, args->ontology, args->options.label_map});
    if (!args->png.empty()) {
      const std::string chromium = find_chromium();
      if (chromium.empty() || access(chromium.c_str(), X_OK) != 0) {
        throw UnsupportedError(fmt::format(
            "--png renders the plots with headless Chromium, which was not found{}: install it (Debian: apt-get install chromium) or "
            "set CELLTYPER_CHROMIUM to its path; --report needs no browser",
            chromium.empty() ? std::string() : fmt::format(" ('{}' is not executable)", chromium)));
      }
    }
    for (const auto& k : args->options.top_k) {
      if (k < 1) throw InputError(fmt::format("--top-k {}: k must be at least 1", k));
    }
    std::optional<Ontology> ontology;
    if (!args->no_ontology) {
      const std::string path = default_ontology_path(args->ontology);
      if (!path.empty()) {
        ontology = load_ontology(path);
      } else if (!global.quiet) {
        fmt::print(stderr, "note: no Cell Ontology found (--ontology FILE or CELLTYPER_ONTOLOGY; {}): ontology metrics skipped\n",
                   kOntologyReleaseHint);
      }
    }
    args->options.ontology = ontology ? &*ontology : nullptr;
    args->options.compare = args->compare == "labels" ? CompareOn::kLabels
                            : args->compare == "ontology" ? CompareOn::kOntology
                                                          : CompareOn::kAuto;
    args->options.umap = !args->report.empty() || !args->png.empty();
    const DatasetEvaluation evaluation = evaluate_annotated(args->input, args->options);
    const double evaluate_seconds = seconds_since(start);

    const nlohmann::json json = to_json(evaluation);
    if (args->json == "-") {
      fmt::print("{}\n", json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
      print_warnings(evaluation.warnings, global.quiet);  // (the text report, not printed, carries them otherwise)
    } else {
      fmt::print("{}", format_report(evaluation));
      if (!args->json.empty()) write_output_file(args->json, json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    }
    std::fflush(stdout);
    const auto report_start = std::chrono::steady_clock::now();
    const ReportContent content = report_content(evaluation);
    if (!args->report.empty()) write_html_report(content, args->report);
    const double report_seconds = seconds_since(report_start);
    std::vector<std::filesystem::path> images;
    const auto png_start = std::chrono::steady_clock::now();
    if (!args->png.empty()) {
      PngExportOptions png_options;
      png_options.scale = args->png_scale;
      images = export_report_png(content, args->png, png_options);
    }
    const double png_seconds = seconds_since(png_start);
    if (!global.quiet) {
      fmt::print(stderr, "evaluated {} cells in {:.2f} s", evaluation.sets.front().result.n_cells, evaluate_seconds);
      if (!args->report.empty()) fmt::print(stderr, "; report {} ({:.2f} s)", args->report, report_seconds);
      if (!images.empty()) fmt::print(stderr, "; {} PNGs in {} ({:.1f} s)", images.size(), args->png, png_seconds);
      fmt::print(stderr, "\n");
    }
  });
}

CELLTYPER_REGISTER_COMMAND("60-evaluate", add_evaluate);

}  // namespace celltyper::cli
