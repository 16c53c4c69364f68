// Coverage of a model by a query's genes, and refitting a model on the genes a query shares with
// it from the reference sample the model carries (annotate.hpp).
#include <celltyper/annotate.hpp>
#include <celltyper/error.hpp>
#include <celltyper/memory_dataset.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <map>

namespace celltyper {

std::vector<std::int64_t> dataset_genes(const Dataset& dataset, const std::string& matrix, const GeneTable& table,
                                        const GeneResolveOptions& options) {
  const GeneResolveResult resolved = resolve_genes(table, dataset.read_var_of(resolve_matrix_source(dataset, matrix)), options);
  std::vector<std::int64_t> ids;
  for (const std::int32_t gene : resolved.gene_index) {
    if (gene != kNoGene) ids.push_back(table.gene(gene).entrez_id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

ModelCoverage model_coverage(const CellTypeModel& model, const std::vector<std::int64_t>& query_genes) {
  const auto measured = [&query_genes](std::int64_t entrez) { return std::binary_search(query_genes.begin(), query_genes.end(), entrez); };
  ModelCoverage coverage;
  const std::vector<std::int64_t>& feature_genes = model.features == kFeaturesExpression ? model.panel.entrez_ids : model.genes.entrez_ids;
  coverage.n_features_genes = static_cast<std::int64_t>(feature_genes.size());
  coverage.n_features_measured = std::count_if(feature_genes.begin(), feature_genes.end(), measured);
  const ReferenceSample& sample = model.reference;
  if (sample.empty()) {
    coverage.n_model_genes = coverage.n_features_genes;
    coverage.n_measured = coverage.n_features_measured;
    coverage.mass = coverage.feature_share();
    return coverage;
  }
  // The model's genes: those it may use (a model restricted to some genes sums library sizes
  // over them), else every gene of its references.
  const std::vector<std::int64_t>& allowed = model.panel.size_factor_genes;
  std::vector<std::uint8_t> in_model(sample.entrez_ids.size(), 1);
  std::vector<std::uint8_t> is_measured(sample.entrez_ids.size(), 0);
  for (std::size_t g = 0; g < sample.entrez_ids.size(); ++g) {
    const std::int64_t entrez = sample.entrez_ids[g];
    if (!allowed.empty() && !std::binary_search(allowed.begin(), allowed.end(), entrez)) in_model[g] = 0;
    if (in_model[g] == 0) continue;
    ++coverage.n_model_genes;
    if (measured(entrez)) {
      is_measured[g] = 1;
      ++coverage.n_measured;
    }
  }
  // Mean over sampled cells of the measured genes' share of the cell's expression (linear scale).
  const bool logged = sample.normalization == "none";
  const std::size_t n_classes = model.class_names.size();
  std::vector<double> class_sum(n_classes, 0.0);
  std::vector<std::int64_t> class_cells(n_classes, 0);
  double sum = 0;
  std::int64_t cells = 0;
  const CsrBlockF64& values = sample.values;
  for (std::int64_t cell = 0; cell < values.n_rows; ++cell) {
    double total = 0;
    double covered = 0;
    for (std::int64_t k = values.indptr[static_cast<std::size_t>(cell)]; k < values.indptr[static_cast<std::size_t>(cell) + 1]; ++k) {
      const auto g = static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)]);
      if (in_model[g] == 0) continue;
      const double value = values.values[static_cast<std::size_t>(k)];
      const double linear = logged ? std::expm1(value) : value;
      total += linear;
      if (is_measured[g] != 0) covered += linear;
    }
    if (total <= 0) continue;
    const double share = covered / total;
    sum += share;
    ++cells;
    const auto label = static_cast<std::size_t>(sample.labels[static_cast<std::size_t>(cell)]);
    if (label >= n_classes) continue;  // a coarse cell: no class profile of its own
    class_sum[label] += share;
    ++class_cells[label];
  }
  coverage.mass = cells > 0 ? sum / static_cast<double>(cells) : 0.0;
  coverage.class_mass.resize(n_classes);
  for (std::size_t c = 0; c < n_classes; ++c) {
    coverage.class_mass[c] = class_cells[c] > 0 ? class_sum[c] / static_cast<double>(class_cells[c]) : coverage.mass;
  }
  return coverage;
}

bool can_refit(const CellTypeModel& model) { return model.features == kFeaturesExpression && !model.reference.empty(); }

CellTypeModel refit_model(const CellTypeModel& model, const std::vector<std::int64_t>& genes, int num_threads,
                          const std::function<void(const std::string&)>& log) {
  if (!can_refit(model)) {
    throw InputError(model.reference.empty() ? "this model carries no reference sample to refit from (train it again with this celltyper)"
                                             : "only expression models can be refitted on a query's genes");
  }
  const ReferenceSample& sample = model.reference;
  std::vector<std::int64_t> shared;
  std::set_intersection(sample.entrez_ids.begin(), sample.entrez_ids.end(), genes.begin(), genes.end(), std::back_inserter(shared));
  if (!model.panel.size_factor_genes.empty()) {  // a restricted model stays within its genes
    std::vector<std::int64_t> within;
    std::set_intersection(shared.begin(), shared.end(), model.panel.size_factor_genes.begin(), model.panel.size_factor_genes.end(),
                          std::back_inserter(within));
    shared = std::move(within);
  }
  if (shared.empty()) throw InputError("the query measures none of the genes of the model's reference sample");

  // The sample as a dataset: obs 'label' (class names), var 'entrez_id'.
  DataFrame obs;
  std::vector<std::string> labels;
  labels.reserve(sample.labels.size());
  // A coarse cell (mixed-granularity model) is labelled with a name for its set of classes, and
  // trains on their summed probability as in the original fit.
  std::map<std::string, std::vector<std::string>> coarse_sets;
  std::vector<std::string> set_names;
  const std::size_t n_classes = model.class_names.size();
  for (const auto& members : sample.label_sets) {
    std::string name = "one of {";
    std::vector<std::string> classes;
    for (const auto member : members) {
      classes.push_back(model.class_names[static_cast<std::size_t>(member)]);
      name += (classes.size() > 1 ? " | " : "") + classes.back();
    }
    set_names.push_back(name + "}");
    coarse_sets[set_names.back()] = std::move(classes);
  }
  for (std::size_t cell = 0; cell < sample.labels.size(); ++cell) {
    obs.index.push_back(std::to_string(cell));
    const auto code = static_cast<std::size_t>(sample.labels[cell]);
    labels.push_back(code < n_classes ? model.class_names[code] : set_names[code - n_classes]);
  }
  obs.columns.push_back(Column::categorical("label", labels));
  DataFrame var;
  var.index = sample.symbols;
  std::vector<std::string> entrez_text;
  entrez_text.reserve(sample.entrez_ids.size());
  for (const std::int64_t entrez : sample.entrez_ids) entrez_text.push_back(std::to_string(entrez));
  var.columns.push_back(Column::from_strings("entrez_id", std::move(entrez_text)));
  const MemoryDataset dataset("the model's reference sample", std::move(obs), std::move(var), sample.values);

  TrainOptions options;
  options.label_column = "label";
  options.classifier = model.classifier->type();
  options.features = kFeaturesExpression;
  const nlohmann::json& provenance = model.provenance;
  options.n_genes = provenance.value("n_genes_requested", provenance.value("n_genes", 3000));
  if (provenance.contains("final_hyperparameters") && provenance["final_hyperparameters"].is_object()) {
    for (const auto& [name, value] : provenance["final_hyperparameters"].items()) {
      if (value.is_number()) options.hyperparameters[name] = value.get<double>();
    }
  }
  options.seed = provenance.value("seed", std::uint64_t{0});
  options.validation_fraction = 0;
  options.num_threads = num_threads;
  options.restrict_genes = shared;
  options.coarse_label_sets = std::move(coarse_sets);
  options.reference_sample_cells = 0;
  options.embed.matrix = "X";
  options.embed.genes.column = "entrez_id";
  options.embed.normalization = parse_normalization_choice(sample.normalization.empty() ? "auto" : sample.normalization);
  options.log = log;
  const auto started = std::chrono::steady_clock::now();
  TrainResult trained = train_model({&dataset}, options, GeneStore(), sample.gene_table());
  CellTypeModel refitted = std::move(trained.model);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (std::size_t c = 0; c < refitted.class_names.size(); ++c) {
    const auto found = std::find(model.class_names.begin(), model.class_names.end(), refitted.class_names[c]);
    if (found != model.class_names.end()) refitted.class_cl_ids[c] = model.class_cl_ids[static_cast<std::size_t>(found - model.class_names.begin())];
  }
  refitted.provenance["refit"] = {{"from", provenance.value("references", nlohmann::json::array())},
                                  {"n_shared_genes", shared.size()},
                                  {"n_sample_cells", sample.n_cells()},
                                  {"seconds", seconds}};
  return refitted;
}

}  // namespace celltyper
