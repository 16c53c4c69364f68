// Coverage of a model by a query's genes, and refitting a model on the genes a query shares with
// it from the reference sample the model carries (annotate.hpp).
#include <celltyper/annotate.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/reference_similarity.hpp>
#include <celltyper/thinned_dataset.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iterator>
#include <map>
#include <set>
#include <memory>
#include <numeric>

namespace celltyper {

std::vector<std::int64_t> dataset_genes(const Dataset& dataset, const std::string& matrix, const GeneTable& table,
                                        const GeneResolveOptions& options) {
  return resolved_gene_ids(resolve_dataset_genes(table, dataset, resolve_matrix_source(dataset, matrix), options), table);
}

std::vector<std::int64_t> resolved_gene_ids(const GeneResolveResult& resolved, const GeneTable& table) {
  std::vector<std::int64_t> ids;
  for (const std::int32_t gene : resolved.gene_index) {
    if (gene != kNoGene) ids.push_back(table.gene(gene).entrez_id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

namespace {

/// Whether `model` was trained on some genes only (--restrict-genes): it sums library sizes over
/// them. Pooled references with imputed genes, and references of fewer genes than a
/// transcriptome, also sum them over some genes without being restricted.
bool restricted_to_genes(const CellTypeModel& model) {
  return !model.library_genes().empty() && model.provenance.value("restrict_genes", std::int64_t{1}) > 0;
}

/// A GenePT-w model's gene vectors as a store to train with (the vectors the model embeds with:
/// rows are normalised again there, as every prefix is when cells are embedded).
GeneStore model_gene_store(const ModelGenes& genes) {
  GeneStoreProvenance provenance;
  provenance.backend = "model";
  provenance.model = genes.store_description;
  provenance.dims = genes.dims;
  return {genes.entrez_ids, genes.symbols, genes.ensembl_ids, genes.vectors, genes.dims, std::move(provenance)};
}

}  // namespace

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
  static const std::vector<std::int64_t> kEveryGene;
  const std::vector<std::int64_t>& allowed = restricted_to_genes(model) ? model.library_genes() : kEveryGene;
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
  // Feature genes are the model's genes too, also where no sampled cell expresses one or its
  // library leaves one out (else a query could measure more feature genes than model genes); they
  // carry no expression share.
  std::vector<std::int64_t> sampled(sample.entrez_ids.begin(), sample.entrez_ids.end());
  std::sort(sampled.begin(), sampled.end());
  for (const std::int64_t entrez : feature_genes) {
    const bool counted = std::binary_search(sampled.begin(), sampled.end(), entrez) &&
                         (allowed.empty() || std::binary_search(allowed.begin(), allowed.end(), entrez));
    if (counted) continue;
    ++coverage.n_model_genes;
    if (measured(entrez)) ++coverage.n_measured;
  }
  const std::size_t n_classes = model.class_names.size();
  if (coverage.n_measured == coverage.n_model_genes) {  // every share is 1: no need to read the sample's values
    coverage.mass = 1.0;
    coverage.class_mass.assign(n_classes, 1.0);
    return coverage;
  }
  // Mean over sampled cells of the measured genes' share of the cell's expression (linear scale).
  // (values used as they are: log1p(CP10k) read as such, the pre-relog models' way; relog: the base recorded)
  const Normalization stored = sample.normalization.empty() ? Normalization::kNone : parse_normalization(sample.normalization);
  std::vector<double> class_sum(n_classes, 0.0);
  std::vector<std::int64_t> class_cells(n_classes, 0);
  double sum = 0;
  std::int64_t cells = 0;
  const CsrBlockF64& values = sample.cell_values();
  for (std::int64_t cell = 0; cell < values.n_rows; ++cell) {
    double total = 0;
    double covered = 0;
    for (std::int64_t k = values.indptr[static_cast<std::size_t>(cell)]; k < values.indptr[static_cast<std::size_t>(cell) + 1]; ++k) {
      const auto g = static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)]);
      if (in_model[g] == 0) continue;
      const double value = values.values[static_cast<std::size_t>(k)];
      const double linear = stored == Normalization::kNone ? std::expm1(value) : unlogged(value, stored);
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

std::vector<std::int64_t> ubiquitous_genes(const CellTypeModel& model, double min_rate, std::int64_t min_cells) {
  const ReferenceSample& sample = model.reference;
  if (sample.empty()) return {};
  const std::size_t n_classes = model.class_names.size();
  const std::size_t n_genes = sample.entrez_ids.size();
  const std::size_t n_references = sample.references.empty() ? 1 : sample.measured.size();
  // Cells per (class, reference), and per (gene, class) the cells with a non-zero value.
  std::vector<std::int64_t> cells(n_classes * n_references, 0);
  std::vector<std::int32_t> detected(n_genes * n_classes, 0);
  const CsrBlockF64& values = sample.cell_values();
  for (std::int64_t cell = 0; cell < values.n_rows; ++cell) {
    const auto label = static_cast<std::size_t>(sample.labels[static_cast<std::size_t>(cell)]);
    if (label >= n_classes) continue;  // a coarse cell
    const std::size_t reference = sample.references.empty() ? 0 : static_cast<std::size_t>(sample.references[static_cast<std::size_t>(cell)]);
    if (reference >= n_references) continue;
    ++cells[label * n_references + reference];
    for (std::int64_t k = values.indptr[static_cast<std::size_t>(cell)]; k < values.indptr[static_cast<std::size_t>(cell) + 1]; ++k) {
      if (values.values[static_cast<std::size_t>(k)] != 0) ++detected[static_cast<std::size_t>(values.indices[static_cast<std::size_t>(k)]) * n_classes + label];
    }
  }
  // Which references measured each gene (pooled samples list them; else every gene).
  std::vector<std::vector<std::uint8_t>> measures;
  if (!sample.references.empty()) {
    measures.assign(n_references, std::vector<std::uint8_t>(n_genes, 0));
    for (std::size_t r = 0; r < n_references; ++r) {
      for (const std::int32_t g : sample.measured[r]) {
        if (g >= 0 && static_cast<std::size_t>(g) < n_genes) measures[r][static_cast<std::size_t>(g)] = 1;
      }
    }
  }
  std::vector<std::int64_t> genes;
  for (std::size_t g = 0; g < n_genes; ++g) {
    bool every = true;
    int classes = 0;  // classes with cells enough to say (one class alone would make its markers "ubiquitous")
    for (std::size_t c = 0; c < n_classes && every; ++c) {
      std::int64_t total = 0;
      for (std::size_t r = 0; r < n_references; ++r) {
        if (measures.empty() || measures[r][g] != 0) total += cells[c * n_references + r];
      }
      if (total < min_cells) continue;
      ++classes;
      every = static_cast<double>(detected[g * n_classes + c]) >= min_rate * static_cast<double>(total);
    }
    if (classes >= 2 && every) genes.push_back(sample.entrez_ids[g]);
  }
  return genes;  // ascending: the sample's columns are
}

bool looks_padded(std::size_t absent, std::vector<double>& detected_rates) {
  if (absent < kPaddingMinAbsent || detected_rates.empty()) return false;
  if (static_cast<double>(absent) < kPaddingMinShare * static_cast<double>(absent + detected_rates.size())) return false;
  const auto middle = detected_rates.begin() + static_cast<std::ptrdiff_t>(detected_rates.size() / 2);
  std::nth_element(detected_rates.begin(), middle, detected_rates.end());
  return *middle >= kPaddingMinQueryRate;  // (shallow cells miss genes by depth, not by panel)
}

std::vector<std::int64_t> model_ubiquitous_genes(const CellTypeModel& model) {
  if (model.provenance.is_object()) {
    const auto stored = model.provenance.find("ubiquitous_genes");
    if (stored != model.provenance.end() && stored->is_array()) {
      std::vector<std::int64_t> genes;
      for (const auto& gene : *stored) {
        if (gene.is_number_integer()) genes.push_back(gene.get<std::int64_t>());
      }
      std::sort(genes.begin(), genes.end());
      return genes;
    }
  }
  return ubiquitous_genes(model);  // a model from before session 28: from its sample
}

bool can_refit(const CellTypeModel& model) {
  if (model.reference.empty()) return false;
  return model.features == kFeaturesExpression || (model.features == kFeaturesGenept && model.genes.size() > 0);
}

double reference_sample_depth(const ReferenceSample& sample, const std::vector<std::int64_t>& genes) {
  if (sample.empty()) return 0;
  const CsrBlockF64& cell_values = sample.cell_values();
  if (!std::all_of(cell_values.values.begin(), cell_values.values.end(), [](double v) { return v == std::floor(v); })) return 0;
  std::vector<std::uint8_t> is_shared(sample.entrez_ids.size(), 0);
  for (std::size_t j = 0; j < sample.entrez_ids.size(); ++j) is_shared[j] = std::binary_search(genes.begin(), genes.end(), sample.entrez_ids[j]) ? 1 : 0;
  std::vector<double> totals;
  append_row_totals_over(cell_values, is_shared, totals);
  return totals.empty() ? 0 : upper_median(totals);
}

CellTypeModel refit_model(const CellTypeModel& model, const std::vector<std::int64_t>& genes, int num_threads,
                          const std::function<void(const std::string&)>& log, double query_depth) {
  if (!can_refit(model)) {
    throw InputError(model.reference.empty() ? "this model carries no reference sample to refit from (train it again with this celltyper)"
                                             : "only expression and GenePT-w models can be refitted on a query's genes");
  }
  const ReferenceSample& sample = model.reference;
  std::vector<std::int64_t> shared;
  std::set_intersection(sample.entrez_ids.begin(), sample.entrez_ids.end(), genes.begin(), genes.end(), std::back_inserter(shared));
  // A model restricted to a query's genes (--restrict-genes) stays within them. (Pooled
  // references with imputed genes also sum library sizes over some genes: not a restriction.)
  if (restricted_to_genes(model)) {
    std::vector<std::int64_t> within;
    const std::vector<std::int64_t>& allowed = model.library_genes();
    std::set_intersection(shared.begin(), shared.end(), allowed.begin(), allowed.end(), std::back_inserter(within));
    shared = std::move(within);
  }
  if (shared.empty()) throw InputError("the query measures none of the genes of the model's reference sample");
  const CsrBlockF64& cell_values = sample.cell_values();

  // The sample as a dataset (one per pooled reference when they measured different genes, so
  // that the refit imputes as the training did): obs 'label' (class names), var 'entrez_id'.
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
  // Sample cells without a count in the shared genes teach nothing there: left out before the
  // labels are read, so that a class with one cell left is left out as training leaves out a
  // class of one cell (a query of 14 marker genes keeps one platelet of the sample's).
  std::vector<std::uint8_t> shared_column(sample.entrez_ids.size(), 0);
  for (std::size_t j = 0; j < sample.entrez_ids.size(); ++j) {
    shared_column[j] = std::binary_search(shared.begin(), shared.end(), sample.entrez_ids[j]) ? 1 : 0;
  }
  std::vector<std::uint8_t> counts_in_shared(sample.labels.size(), 0);
  for (std::size_t cell = 0; cell < sample.labels.size(); ++cell) {
    for (std::int64_t k = cell_values.indptr[cell]; k < cell_values.indptr[cell + 1] && counts_in_shared[cell] == 0; ++k) {
      counts_in_shared[cell] = shared_column[static_cast<std::size_t>(cell_values.indices[static_cast<std::size_t>(k)])] != 0 &&
                                       cell_values.values[static_cast<std::size_t>(k)] != 0
                                   ? 1
                                   : 0;
    }
  }
  // (only where a class would keep one cell: elsewhere training drops them itself, as before)
  std::map<std::int64_t, std::int64_t> with_counts;  // label code -> its cells with a count in the shared genes
  for (std::size_t cell = 0; cell < sample.labels.size(); ++cell) with_counts[sample.labels[cell]] += counts_in_shared[cell];
  const bool leave_out_empty = std::any_of(with_counts.begin(), with_counts.end(), [](const auto& entry) { return entry.second == 1; });
  const std::size_t n_parts = std::max<std::size_t>(1, sample.measured.size());
  std::vector<std::unique_ptr<MemoryDataset>> parts;
  std::vector<const Dataset*> views;
  for (std::size_t part = 0; part < n_parts; ++part) {
    // Columns of this part: every sample gene, or the ones its reference measured.
    std::vector<std::int32_t> columns;
    if (sample.measured.empty()) {
      columns.resize(sample.entrez_ids.size());
      std::iota(columns.begin(), columns.end(), 0);
    } else {
      columns = sample.measured[part];
    }
    std::vector<std::int32_t> renumber(sample.entrez_ids.size(), -1);
    for (std::size_t j = 0; j < columns.size(); ++j) renumber[static_cast<std::size_t>(columns[j])] = static_cast<std::int32_t>(j);
    DataFrame obs;
    std::vector<std::string> labels;
    CsrBlockF64 values;
    values.reset(0, 0, static_cast<std::int64_t>(columns.size()));
    for (std::size_t cell = 0; cell < sample.labels.size(); ++cell) {
      if (!sample.measured.empty() && static_cast<std::size_t>(sample.references[cell]) != part) continue;
      if (leave_out_empty && counts_in_shared[cell] == 0) continue;
      obs.index.push_back(std::to_string(cell));
      const auto code = static_cast<std::size_t>(sample.labels[cell]);
      labels.push_back(code < n_classes ? model.class_names[code] : set_names[code - n_classes]);
      for (std::int64_t k = cell_values.indptr[cell]; k < cell_values.indptr[cell + 1]; ++k) {
        const std::int32_t column = renumber[static_cast<std::size_t>(cell_values.indices[static_cast<std::size_t>(k)])];
        if (column < 0) continue;
        values.indices.push_back(column);
        values.values.push_back(cell_values.values[static_cast<std::size_t>(k)]);
      }
      values.indptr.push_back(static_cast<std::int64_t>(values.indices.size()));
      ++values.n_rows;
    }
    if (values.n_rows == 0) continue;
    obs.columns.push_back(Column::categorical("label", labels));
    DataFrame var;
    std::vector<std::string> entrez_text;
    for (const std::int32_t column : columns) {
      var.index.push_back(sample.symbols[static_cast<std::size_t>(column)]);
      entrez_text.push_back(std::to_string(sample.entrez_ids[static_cast<std::size_t>(column)]));
    }
    var.columns.push_back(Column::from_strings("entrez_id", std::move(entrez_text)));
    parts.push_back(std::make_unique<MemoryDataset>(n_parts == 1 ? "the model's reference sample" : fmt::format("the model's reference sample, reference {}", part + 1),
                                                    std::move(obs), std::move(var), std::move(values)));
    views.push_back(parts.back().get());
  }

  // Depth matching (a query much shallower than the sample over the shared genes): the sample's
  // cells thinned to the query's depth train the refit.
  double depth_ratio = 0;
  std::vector<std::unique_ptr<ThinnedDataset>> thinned;
  // (the expression route's, where it was measured: bench/annotate/spatial_depth.py)
  if (query_depth > 0 && model.features == kFeaturesExpression) {
    const double sample_depth = reference_sample_depth(sample, shared);
    if (sample_depth > 0 && query_depth < kDepthMatchRatio * sample_depth) {
      depth_ratio = query_depth / sample_depth;
      const std::uint64_t seed = model.provenance.value("seed", std::uint64_t{0}) ^ 0xD3E7A11ULL;
      for (const Dataset* view : views) {
        std::vector<std::int64_t> keys;  // (cells thinned alike whichever part holds them)
        const DataFrame var = view->read_var();
        const Column& ids = var.at("entrez_id", "the reference sample");
        for (std::size_t j = 0; j < ids.size(); ++j) keys.push_back(std::stoll(ids.value_as_string(j)));
        const auto [low, high] = depth_match_range(depth_ratio, sample_depth);
        thinned.push_back(std::make_unique<ThinnedDataset>(*view, low, high, seed, std::move(keys), std::vector<std::uint8_t>{}, view->path()));
      }
      views.clear();
      for (const auto& view : thinned) views.push_back(view.get());
      if (log) {
        log(fmt::format("the query's cells hold a median of {:.0f} counts over the shared genes, the reference sample's {:.0f}: the refit "
                        "trains on its cells thinned to the query's depth",
                        query_depth, sample_depth));
      }
    }
  }

  TrainOptions options;
  options.label_column = "label";
  options.classifier = model.classifier->type();
  options.features = model.features;
  const bool genept = model.features == kFeaturesGenept;  // (its vectors' dims: the store below has no others)
  const nlohmann::json& provenance = model.provenance;
  options.n_genes = provenance.value("n_genes_requested", provenance.value("n_genes", 3000));
  if (provenance.contains("final_hyperparameters") && provenance["final_hyperparameters"].is_object()) {
    for (const auto& [name, value] : provenance["final_hyperparameters"].items()) {
      if (value.is_number()) options.hyperparameters[name] = value.get<double>();
    }
  }
  options.seed = provenance.value("seed", std::uint64_t{0});
  // A model whose training calibrated its scores gets a temperature fitted for the refitted
  // classifier, as reference mode fits one: a share of the sample held out only for it, then the
  // model trains on every cell from scratch (the labels are those of a refit without it). The
  // model's own temperature fits its panel; on fewer genes the refit is softer or sharper.
  const bool calibrated = provenance.contains("calibration") && provenance["calibration"].is_object() &&
                          provenance["calibration"].contains("n_cells");
  options.calibrate = calibrated;
  options.validation_fraction = calibrated ? TrainOptions{}.validation_fraction : 0;
  options.final_fit_from_scratch = true;
  options.num_threads = num_threads;
  options.restrict_genes = shared;
  options.coarse_label_sets = std::move(coarse_sets);
  options.gene_pooling = provenance.value("gene_pooling", std::string("impute"));
  options.balance_references = provenance.value("balance_references", false);
  options.augment_depth = provenance.value("augment_depth", false);  // models from before depth augmentation: none
  if (provenance.contains("augment_depth_range") && provenance["augment_depth_range"].is_array() && provenance["augment_depth_range"].size() == 2) {
    options.augment_depth_low = provenance["augment_depth_range"][0].get<double>();
    options.augment_depth_high = provenance["augment_depth_range"][1].get<double>();
  }
  options.augment_depth_weight = provenance.value("augment_depth_weight", 1.0);
  options.augment_depth_max_copies = provenance.value("augment_depth_max_copies", std::int64_t{0});  // before the cap: every cell
  // Whether training found counts (copies made): every reference alike, else (or for models from
  // before the flag) the sample's own cells decide.
  std::set<bool> found_counts;
  bool flag_missing = false;
  for (const auto& reference : provenance.value("references", nlohmann::json::array())) {
    if (reference.is_object() && reference.contains("counts") && reference["counts"].is_boolean()) {
      found_counts.insert(reference["counts"].get<bool>());
    } else {
      flag_missing = true;
    }
  }
  if (!flag_missing && found_counts.size() == 1) options.references_hold_counts = *found_counts.begin() ? 1 : 0;
  options.reference_sample_cells = 0;
  options.embed.matrix = "X";
  options.embed.genes.column = "entrez_id";
  options.embed.genes.ids_not_row_numbers = true;  // (a table of the user's numbered 1..N)
  options.embed.normalization = parse_normalization_choice(sample.normalization.empty() ? "auto" : sample.normalization);
  options.log = log;
  const auto started = std::chrono::steady_clock::now();
  TrainResult trained = train_model(views, options, genept ? model_gene_store(model.genes) : GeneStore(), sample.gene_table());
  CellTypeModel refitted = std::move(trained.model);
  // (the model's own probabilities, an older model's, or a refit whose sample held out too few
  // cells to fit a temperature: the model's, as trained)
  const nlohmann::json fitted = refitted.provenance.is_object() ? refitted.provenance.value("calibration", nlohmann::json::object())
                                                                 : nlohmann::json::object();
  if (!calibrated || !fitted.contains("n_cells")) {
    refitted.classifier->set_temperature(model.classifier->temperature());
    if (provenance.contains("calibration")) refitted.provenance["calibration"] = provenance["calibration"];
  }
  if (genept) {  // the vectors are the model's store's: say so, not "model"
    refitted.genes.store_identity = model.genes.store_identity;
    refitted.genes.store_description = model.genes.store_description;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (std::size_t c = 0; c < refitted.class_names.size(); ++c) {
    const auto found = std::find(model.class_names.begin(), model.class_names.end(), refitted.class_names[c]);
    if (found != model.class_names.end()) refitted.class_cl_ids[c] = model.class_cl_ids[static_cast<std::size_t>(found - model.class_names.begin())];
  }
  // The types' profiles over the refitted panel (the genes the query has), from the full sample.
  // (the sample's labels index the model's classes: the profiles are renumbered to the refitted
  // model's by name, and a class the refit lost loses its profile)
  SimilarityProfile profile =
      similarity_profile(sample, refitted.library_genes().empty() ? shared : refitted.library_genes(), n_classes, options.seed, num_threads);
  {
    const std::size_t f = profile.entrez_ids.size();
    const auto levels = static_cast<std::size_t>(profile.n_levels);
    SimilarityProfile kept;
    kept.entrez_ids = profile.entrez_ids;
    kept.n_levels = profile.n_levels;
    for (std::size_t k = 0; k < profile.n_profiles(); ++k) {
      const auto& name = model.class_names[static_cast<std::size_t>(profile.classes[k])];
      const auto found = std::find(refitted.class_names.begin(), refitted.class_names.end(), name);
      if (found == refitted.class_names.end()) continue;
      kept.classes.push_back(static_cast<std::int32_t>(found - refitted.class_names.begin()));
      kept.centred_ranks.insert(kept.centred_ranks.end(), profile.centred_ranks.begin() + static_cast<std::ptrdiff_t>(k * f),
                                profile.centred_ranks.begin() + static_cast<std::ptrdiff_t>((k + 1) * f));
      for (std::size_t level = 0; level < levels; ++level) {
        kept.level_log_detected.push_back(profile.level_log_detected[k * levels + level]);
        kept.level_threshold.push_back(profile.level_threshold[k * levels + level]);
      }
      kept.min_detected.push_back(profile.min_detected[k]);
    }
    if (!kept.classes.empty()) refitted.similarity = std::move(kept);
  }
  refitted.provenance["refit"] = {{"from", provenance.value("references", nlohmann::json::array())},
                                  {"n_shared_genes", shared.size()},
                                  {"n_sample_cells", sample.n_cells()},
                                  {"seconds", seconds}};
  if (depth_ratio > 0) refitted.provenance["refit"]["depth_ratio"] = depth_ratio;
  return refitted;
}

}  // namespace celltyper
