// Annotation of a query dataset with one or more trained models.
#include <celltyper/annotate.hpp>
#include <celltyper/calibration.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/linear_scores.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/parallel.hpp>
#include <celltyper/reference_similarity.hpp>
#include <celltyper/row_subset_dataset.hpp>
#include <celltyper/thinned_dataset.hpp>
#include <celltyper/train.hpp>
#include "text_lists.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <limits>
#include <optional>
#include <map>
#include <numeric>
#include <set>
#include <string_view>
#include <unordered_set>

#ifndef CELLTYPER_VERSION
#define CELLTYPER_VERSION "unknown"
#endif

namespace celltyper {

namespace {

/// `options` as a GenePT-w model embeds with: its vectors' dimensions, its library genes.
EmbedOptions model_embed_options(const CellTypeModel& model, const EmbedOptions& options) {
  EmbedOptions embed = options;
  embed.log_transformed_as_is = learnt_values_as_they_were(model);
  embed.dims = model.genes.dims;
  embed.size_factor_genes = model.genes.size_factor_genes;
  return embed;
}

}  // namespace

/// Whether `model` learnt its references' values as they were (normalisation "none" for every
/// reference: logs of unknown normalisation before session 54, or --normalize none).
bool learnt_values_as_they_were(const CellTypeModel& model) {
  const nlohmann::json references = model.provenance.value("references", nlohmann::json::array());
  if (!references.is_array() || references.empty()) return model.reference.normalization == "none";
  return std::all_of(references.begin(), references.end(),
                     [](const nlohmann::json& reference) { return reference.is_object() && reference.value("normalization", std::string()) == "none"; });
}

/// Whether `model` learnt logs of unknown normalisation as they were (a reference its training
/// found "log-transformed" and used unchanged, before session 54): a normalised query (counts,
/// TPM) is then on another scale than its features.
bool learnt_unknown_logs(const CellTypeModel& model) {
  const nlohmann::json references = model.provenance.value("references", nlohmann::json::array());
  if (!references.is_array()) return false;
  return std::any_of(references.begin(), references.end(), [](const nlohmann::json& reference) {
    return reference.is_object() && reference.value("normalization", std::string()) == "none" &&
           reference.value("normalization_reason", std::string()).find("looks log-transformed") != std::string::npos;
  });
}

void warn_if_scales_differ(const Dataset& dataset, const CellTypeModel& model, const ExpressionFeatures& computed,
                           const EmbedOptions& options, std::vector<std::string>& warnings) {
  // A model of values used as they were (logs of TPM before session 54) against a query it
  // normalises (counts): the features differ in scale (0.26 accuracy on pbmc3k's counts).
  if (!learnt_unknown_logs(model) || computed.normalization == Normalization::kNone || options.normalization != NormalizationChoice::kAuto) return;
  const std::string warning = fmt::format(
      "{}: normalised ({}) while the model learnt its reference's values as they were (normalisation none: logs of unknown "
      "normalisation, before session 54): the features differ in scale and many labels may be wrong; train the model again (this "
      "version reads such logs back and normalises them as counts) or give the query the reference's kind of values",
      dataset.path(), to_string(computed.normalization));
  if (std::find(warnings.begin(), warnings.end(), warning) == warnings.end()) warnings.push_back(warning);
}

std::vector<float> embed_with_model(const Dataset& dataset, const CellTypeModel& model, const GeneTable& table,
                                    const EmbedOptions& options, std::vector<std::uint8_t>* empty, EmbedResult* result) {
  const EmbedOptions embed = model_embed_options(model, options);
  const GeneVectorSource source = model.genes.source();
  MemorySink sink;
  EmbedResult embedded = embed_dataset(dataset, table, source, embed, sink);
  if (empty != nullptr) *empty = std::move(sink.empty);
  if (result != nullptr) *result = std::move(embedded);
  return std::move(sink.values);
}

ExpressionOptions expression_options(const EmbedOptions& embed) {
  ExpressionOptions options;
  options.matrix = embed.matrix;
  options.normalization = embed.normalization;
  options.num_threads = embed.num_threads;
  options.memory_limit_bytes = embed.memory_limit_bytes;
  options.genes = embed.genes;
  return options;
}

ExpressionOptions expression_options(const EmbedOptions& embed, const CellTypeModel& model) {
  ExpressionOptions options = expression_options(embed);
  options.log_transformed_as_is = learnt_values_as_they_were(model);
  return options;
}

std::vector<float> model_features(const Dataset& dataset, const CellTypeModel& model, const GeneTable& table, const EmbedOptions& options,
                                  std::vector<std::uint8_t>& empty, std::vector<std::string>& warnings) {
  if (model.features == kFeaturesExpression) {
    ExpressionOptions settings = expression_options(options, model);
    settings.size_factor_genes = model.panel.size_factor_genes;
    ExpressionFeatures computed = expression_features(dataset, table, model.panel.entrez_ids, settings);
    warnings.insert(warnings.end(), computed.warnings.begin(), computed.warnings.end());
    warn_if_scales_differ(dataset, model, computed, options, warnings);
    empty = std::move(computed.empty);
    return std::move(computed.values);
  }
  EmbedResult embedded;
  std::vector<float> features = embed_with_model(dataset, model, table, options, &empty, &embedded);
  warnings.insert(warnings.end(), embedded.warnings.begin(), embedded.warnings.end());
  return features;
}

namespace {

/// Hands each embedded block to a FeatureBlockCallback.
class CallbackSink final : public EmbeddingSink {
 public:
  explicit CallbackSink(const FeatureBlockCallback& callback) : callback_(callback) {}
  void begin(std::int64_t /*n_cells*/, int /*dims*/) override {}
  void write(std::int64_t first_row, std::int64_t n_rows, const float* values, const CellEmbedStats& stats) override {
    callback_(first_row, n_rows, values, stats.empty.data());
  }
  void finish(const nlohmann::json& /*provenance*/) override {}

 private:
  const FeatureBlockCallback& callback_;
};

}  // namespace

void stream_model_features(const Dataset& dataset, const CellTypeModel& model, const GeneTable& table, const EmbedOptions& options,
                           const FeatureBlockCallback& callback, std::vector<std::string>& warnings) {
  if (model.features == kFeaturesExpression) {
    ExpressionOptions settings = expression_options(options, model);
    settings.size_factor_genes = model.panel.size_factor_genes;
    const ExpressionFeatures run = stream_expression_features(dataset, table, model.panel.entrez_ids, settings, callback);
    warnings.insert(warnings.end(), run.warnings.begin(), run.warnings.end());
    warn_if_scales_differ(dataset, model, run, options, warnings);
    return;
  }
  const EmbedOptions embed = model_embed_options(model, options);
  const GeneVectorSource source = model.genes.source();
  CallbackSink sink(callback);
  const EmbedResult embedded = embed_dataset(dataset, table, source, embed, sink);
  warnings.insert(warnings.end(), embedded.warnings.begin(), embedded.warnings.end());
}

HierarchicalPrediction predict_hierarchical(const std::vector<float>& probabilities, const std::vector<std::string>& class_names,
                                            const std::vector<std::string>& class_cl_ids, const Ontology& ontology, double min_score,
                                            const std::vector<std::uint8_t>& skip) {
  const std::size_t c_all = class_names.size();
  if (class_cl_ids.size() != c_all || c_all == 0 || probabilities.size() % c_all != 0) {
    throw InputError(fmt::format("hierarchical prediction: {} classes, {} CL ids, {} probabilities", c_all, class_cl_ids.size(), probabilities.size()));
  }
  // Candidate nodes: each class's canonical CL term and its ancestors (root excluded: "cell"
  // says nothing), plus classes without a term as their own leaves.
  struct Node {
    std::string label;
    std::string cl_id;
    TermIndex term = -1;  // -1: a class without a CL term (a leaf of its own)
  };
  std::vector<Node> nodes;
  std::map<TermIndex, std::size_t> node_of_term;
  std::vector<std::vector<std::size_t>> class_nodes(c_all);
  // The classes whose own term a node is: the call takes the name of the likeliest of them when
  // that class alone reaches min_score. A term reached only by summing keeps the ontology's name:
  // "T/NK cells" (mapped to lymphocyte, their common ancestor) must not name B cells that reach
  // lymphocyte through "B cell" and "T/NK cells" together.
  std::map<std::size_t, std::vector<std::size_t>> own_classes;
  const auto root = ontology.root();
  std::size_t n_mapped = 0;
  for (std::size_t c = 0; c < c_all; ++c) {
    const std::string& id = class_cl_ids[c];
    const auto found = id.empty() ? std::nullopt : ontology.find_index(id);
    if (!found) {
      class_nodes[c].push_back(nodes.size());
      nodes.push_back({class_names[c], id, -1});
      continue;
    }
    ++n_mapped;
    const TermIndex term = ontology.canonical(*found);
    std::vector<TermIndex> terms = ontology.ancestor_indices(term);
    terms.push_back(term);
    for (const TermIndex t : terms) {
      if (root && t == *root) continue;
      auto [it, inserted] = node_of_term.emplace(t, nodes.size());
      if (inserted) nodes.push_back({ontology.term(t).label, ontology.term(t).id, t});
      class_nodes[c].push_back(it->second);
      if (t == term) own_classes[it->second].push_back(c);
    }
  }
  if (n_mapped == 0) {
    throw InputError("hierarchical prediction: no class of the model has a Cell Ontology id (train with --label-map, or labels that are CL names)");
  }
  std::vector<std::size_t> breadth(nodes.size(), 0);  // descendants in the ontology (a class without a term: none)
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    if (nodes[k].term >= 0) breadth[k] = ontology.descendant_indices(nodes[k].term).size();
  }
  const std::size_t n = probabilities.size() / c_all;
  HierarchicalPrediction prediction;
  prediction.labels.assign(n, kUnassigned);
  prediction.cl_ids.assign(n, "");
  prediction.scores.assign(n, 0.0f);
  std::vector<double> mass(nodes.size());
  std::vector<std::size_t> qualifying;
  for (std::size_t row = 0; row < n; ++row) {
    if (!skip.empty() && skip[row] != 0) continue;
    const float* p = probabilities.data() + row * c_all;
    std::fill(mass.begin(), mass.end(), 0.0);
    for (std::size_t c = 0; c < c_all; ++c) {
      for (const std::size_t node : class_nodes[c]) mass[node] += p[c];
    }
    // Qualifying terms form an upward-closed set (a term's mass is at least its descendants');
    // keep its most specific members (no qualifying descendant) and take the most probable.
    // Shortest-path depth is not used: in the CL DAG a child can be "shallower" than its parent.
    qualifying.clear();
    for (std::size_t k = 0; k < nodes.size(); ++k) {
      if (mass[k] >= min_score) qualifying.push_back(k);
    }
    std::size_t best = nodes.size();
    for (const std::size_t k : qualifying) {
      bool specific = true;
      if (nodes[k].term >= 0) {
        for (const std::size_t j : qualifying) {
          if (j != k && nodes[j].term >= 0 && ontology.is_ancestor(nodes[k].term, nodes[j].term)) {
            specific = false;
            break;
          }
        }
      }
      // (equal masses, e.g. two incomparable terms above every class at 1: the narrower one, of
      // fewer descendants, so "hematopoietic cell" before "eukaryotic cell")
      if (!specific) continue;
      // (masses compared in millionths: a strict order, whatever order the terms come in)
      const auto rounded = [&](std::size_t node) { return std::llround(mass[node] * 1e6); };
      if (best == nodes.size() || rounded(k) > rounded(best) || (rounded(k) == rounded(best) && breadth[k] < breadth[best])) best = k;
    }
    if (best == nodes.size()) {  // Unassigned: its score is the largest probability of any term, as a flat label's is
      prediction.scores[row] = static_cast<float>(std::min(1.0, *std::max_element(mass.begin(), mass.end())));
      continue;
    }
    prediction.labels[row] = nodes[best].label;
    std::size_t own = c_all;
    if (const auto owners = own_classes.find(best); owners != own_classes.end()) {
      for (const std::size_t c : owners->second) {
        if (own == c_all || p[c] > p[own]) own = c;
      }
    }
    if (own < c_all && p[own] >= min_score) prediction.labels[row] = class_names[own];
    prediction.cl_ids[row] = nodes[best].cl_id;
    prediction.scores[row] = static_cast<float>(std::min(1.0, mass[best]));
  }
  return prediction;
}

namespace {

/// Cells with fewer detected genes than this are no typical cells (scanpy's tutorials filter
/// them: sc.pp.filter_cells(adata, min_genes=200)).
constexpr std::int64_t kMinDetectedGenes = 200;

/// Cells holding fewer transcripts of an imaging panel's genes than this (segmentation fragments,
/// cells cut at the section's edge) are labelled unreliably: pbmc3k cells (9 types) on a
/// 413-gene panel thinned to medians of 3-12 transcripts (session 42) were right at 0.32-0.47
/// with 1-4 transcripts, 0.44-0.52 with 5-9, 0.55-0.69 with 10-19. 10x Genomics' and squidpy's
/// Xenium tutorials filter them: sc.pp.filter_cells(adata, min_counts=10).
constexpr std::int64_t kMinPanelTranscripts = 10;

/// Whether every stored value of `block` is a whole number (counts, not log values).
bool whole_numbers(const CsrBlock& block) {
  return std::all_of(block.values.begin(), block.values.end(), [](float value) { return value == std::floor(value); });
}

/// Per cell, how much of it was measured, and the floor under which its label is unreliable.
struct ShallowCells {
  std::vector<std::int64_t> per_cell;  ///< detected genes, or a panel's transcripts, per cell (empty: not counted)
  bool transcripts = false;            ///< per_cell counts a panel's transcripts (else detected genes)
  bool warned = false;                 ///< whether the whole query got the warning
  [[nodiscard]] bool low(std::size_t row) const {
    return transcripts ? per_cell[row] > 0 && per_cell[row] < kMinPanelTranscripts : per_cell[row] < kMinDetectedGenes;
  }
};

/// Cells too shallow for a trustworthy label get one like any cell: say so when they are over 5%
/// of the cells.
/// - A whole transcriptome (at least 10,000 genes, less the genes read as not measured,
///   `n_unmeasured`: a panel padded with zeros): barcodes under 200 detected genes, an unfiltered
///   Cell Ranger matrix's empty droplets or debris. CSR matrices only (the genes per cell come from
///   indptr alone); a matrix cut to 2,000 highly variable genes detects few genes in every cell.
/// - A panel of counts (fewer genes: Xenium, MERSCOPE, CosMx): cells holding 1-9 transcripts of the
///   genes `resolved` reads (control probes are not genes; cells without any are Unassigned and
///   warned of apart).
ShallowCells warn_about_shallow_cells(const Dataset& dataset, const std::string& matrix, const GeneResolveResult& resolved,
                                      std::int64_t n_unmeasured, bool depth_matched, Annotation& annotation) {
  const MatrixInfo info = dataset.matrix_info(matrix);
  if (info.n_rows == 0) return {};
  ShallowCells result;
  if (info.n_cols - n_unmeasured >= 10000) {
    if (info.encoding != MatrixEncoding::kCsr) return {};
    result.per_cell = dataset.open_matrix(matrix)->row_nnz();
  } else {
    std::vector<std::uint8_t> is_gene(resolved.gene_index.size(), 0);
    for (std::size_t var = 0; var < is_gene.size(); ++var) is_gene[var] = resolved.gene_index[var] != kNoGene ? 1 : 0;
    const std::unique_ptr<MatrixReader> reader = dataset.open_matrix(matrix);
    bool counts = true;
    {  // (log values, seen on a sample of cells: no pass over the whole matrix)
      BlockStreamOptions sample = stream_options(dataset, matrix, std::size_t{32} << 20);
      sample.rows = scan_ranges(*reader, 2000);
      for_each_block(*reader, sample, [&](const CsrBlock& block) {
        counts = counts && whole_numbers(block);
      });
    }
    if (!counts) return {};
    result.per_cell.assign(static_cast<std::size_t>(info.n_rows), 0);
    for_each_block(*reader, stream_options(dataset, matrix, std::size_t{32} << 20), [&](const CsrBlock& block) {
      counts = counts && whole_numbers(block);
      for (std::int64_t row = 0; counts && row < block.n_rows; ++row) {
        double total = 0;
        for (std::int64_t k = block.indptr[static_cast<std::size_t>(row)]; k < block.indptr[static_cast<std::size_t>(row) + 1]; ++k) {
          const auto column = static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)]);
          if (column < is_gene.size() && is_gene[column] != 0) total += block.values[static_cast<std::size_t>(k)];
        }
        result.per_cell[static_cast<std::size_t>(block.first_row + row)] = static_cast<std::int64_t>(total);
      }
    });
    if (!counts) return {};  // (log values say nothing of transcripts)
    result.transcripts = true;
  }
  std::int64_t low = 0;
  for (std::size_t row = 0; row < result.per_cell.size(); ++row) low += result.low(row) ? 1 : 0;
  if (low * 20 <= static_cast<std::int64_t>(result.per_cell.size())) return result;
  result.warned = true;
  const double percent = 100.0 * static_cast<double>(low) / static_cast<double>(result.per_cell.size());
  if (result.transcripts) {
    annotation.warnings.push_back(fmt::format(
        "{} of {} cells ({:.0f}%) hold fewer than {} transcripts of the panel's genes (segmentation fragments, or cells cut at the "
        "section's edge?): their labels are unreliable (about half right in a benchmark); filter cells first (e.g. scanpy's sc.pp.filter_cells(adata, "
        "min_counts={}), as Xenium tutorials do) or read celltyper_score",
        low, result.per_cell.size(), percent, kMinPanelTranscripts, kMinPanelTranscripts));
  } else if (depth_matched) {  // (a shallow run: its cells, matched to its depth, are not all debris)
    annotation.warnings.push_back(fmt::format(
        "{} of {} cells ({:.0f}%) have fewer than {} detected genes: the query is shallow (see the depth note) and their labels are less "
        "sure; if they are empty droplets or debris (an unfiltered matrix?), filter them first (e.g. scanpy's sc.pp.filter_cells(adata, "
        "min_genes={})): an empty droplet's ambient RNA reads as a confident call of a common type",
        low, result.per_cell.size(), percent, kMinDetectedGenes, kMinDetectedGenes));
  } else {
    annotation.warnings.push_back(fmt::format(
        "{} of {} cells ({:.0f}%) have fewer than {} detected genes (empty droplets or debris, as in an unfiltered matrix?): their "
        "labels are unreliable and their scores do not say so (an empty droplet's ambient RNA reads as a confident call of a common "
        "type); filter cells first (e.g. scanpy's sc.pp.filter_cells(adata, min_genes={}))",
        low, result.per_cell.size(), percent, kMinDetectedGenes, kMinDetectedGenes));
  }
  return result;
}

/// Said with a low-coverage warning (model mode's refit, reference mode): the unlike-reference
/// check, on the shared genes' most variable ones, finds fewer cells of types the reference lacks.
constexpr const char* kUnlikeOnFewerGenes =
    "on fewer genes the check for cells unlike the reference's types (celltyper_unlike_reference, --unassign-unlike) misses more of them "
    "(bench/novelty: lung cancer cells among PBMCs on 5,195 shared genes, about a third of a PBMC reference's expression, 18% flagged, "
    "against 98% on all their genes)";

/// Annotation::samples for the samples of obs `column` (cells without a value form the sample ""),
/// and the whole-query warnings a sample earns on its own while the whole query does not: cells
/// too shallow to trust (`shallow`, when counted), cells unlike every reference type (unless
/// `query_warned_unlike`: the query, or a label of it, was warned of such cells; the warning
/// says `unassigned_unlike`'s cells were left Unassigned).
void summarize_samples(const Dataset& dataset, const std::string& column, const ShallowCells& shallow, bool query_warned_unlike,
                       bool unassigned_unlike, Annotation& annotation) {
  const DataFrame obs = dataset.read_obs_columns({column});
  const Column& samples = obs.at(column, fmt::format("obs of {}", dataset.path()));
  std::map<std::string, std::vector<std::size_t>> rows_of;
  std::vector<std::string> order;  // (first-seen order; categories in their own)
  if (samples.kind == ColumnKind::kCategorical) {
    for (const std::string& category : samples.categories) order.push_back(category);
  }
  for (std::size_t row = 0; row < samples.size(); ++row) {
    const std::string level = samples.is_missing(row) ? std::string() : samples.value_as_string(row);
    auto& rows = rows_of[level];
    if (rows.empty() && samples.kind != ColumnKind::kCategorical) order.push_back(level);
    rows.push_back(row);
  }
  if (samples.kind != ColumnKind::kCategorical) {  // (numbers in numeric order, as evaluate --group lists them)
    detail::sort_numbers_first(order, [](const std::string& level) -> const std::string& { return level; });
  }
  std::erase(order, std::string());
  if (rows_of.count("") != 0) order.push_back("");  // (cells without a value last)
  std::vector<std::string> shallow_samples;
  std::vector<std::string> unlike_samples;
  for (const std::string& level : order) {
    const auto found = rows_of.find(level);
    if (found == rows_of.end()) continue;  // (a category no cell has)
    const std::vector<std::size_t>& rows = found->second;
    SampleSummary sample;
    sample.column = column;
    sample.level = level;
    sample.n_cells = static_cast<std::int64_t>(rows.size());
    std::map<std::string, std::int64_t> counts;
    std::vector<float> scores;
    for (const std::size_t row : rows) {
      ++counts[annotation.labels[row]];
      if (row < annotation.scores.size()) scores.push_back(annotation.scores[row]);
      if (annotation.has_similarity && row < annotation.similarity_judged.size() && annotation.similarity_judged[row] != 0) {
        ++sample.n_similarity_judged;
        sample.n_unlike_reference += annotation.unlike_reference[row];
      }
    }
    sample.label_counts.assign(counts.begin(), counts.end());
    std::stable_sort(sample.label_counts.begin(), sample.label_counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    const ScoreSummary confidence = summarize_scores(scores);
    sample.median_score = confidence.median;
    sample.n_low_score = confidence.n_low;
    const std::string name = level.empty() ? std::string("(missing)") : level;
    if (!shallow.per_cell.empty()) {
      const std::int64_t n_low = std::count_if(rows.begin(), rows.end(), [&](std::size_t row) { return shallow.low(row); });
      (shallow.transcripts ? sample.n_low_transcripts : sample.n_low_genes) = n_low;
      if (!shallow.warned && n_low * 20 > sample.n_cells) {
        shallow_samples.push_back(fmt::format("'{}' {} of {} ({:.0f}%)", name, n_low, sample.n_cells,
                                              100.0 * static_cast<double>(n_low) / static_cast<double>(sample.n_cells)));
      }
    }
    if (!query_warned_unlike && sample.n_unlike_reference >= kSimilarityWarnMinCells &&
        static_cast<double>(sample.n_unlike_reference) >= kSimilarityWarnShare * static_cast<double>(sample.n_similarity_judged)) {
      unlike_samples.push_back(fmt::format("'{}' {} of {} ({:.0f}%)", name, sample.n_unlike_reference, sample.n_similarity_judged,
                                           100.0 * static_cast<double>(sample.n_unlike_reference) / static_cast<double>(sample.n_similarity_judged)));
    }
    annotation.samples.push_back(std::move(sample));
  }
  if (!shallow_samples.empty() && shallow.transcripts) {
    annotation.warnings.push_back(fmt::format(
        "samples with many cells of fewer than {} transcripts of the panel's genes (segmentation fragments?), by obs {}: {}: their "
        "labels are unreliable; filter cells first (e.g. sc.pp.filter_cells(adata, min_counts={})) or read celltyper_score",
        kMinPanelTranscripts, column, fmt::join(shallow_samples, ", "), kMinPanelTranscripts));
  } else if (!shallow_samples.empty()) {
    annotation.warnings.push_back(fmt::format(
        "samples with many cells of fewer than {} detected genes (empty droplets or debris?), by obs {}: {}: their labels are unreliable "
        "and their scores do not say so; filter cells first (e.g. sc.pp.filter_cells(adata, min_genes={}))",
        kMinDetectedGenes, column, fmt::join(shallow_samples, ", "), kMinDetectedGenes));
  }
  if (!unlike_samples.empty()) {
    annotation.warnings.push_back(fmt::format(
        "samples whose cells resemble none of the reference's cell types (obs celltyper_unlike_reference), by obs {}: {} of the cells "
        "deep enough to judge: the references may lack their types (another tissue?), {}",
        column, fmt::join(unlike_samples, ", "),
        unassigned_unlike ? "and --unassign-unlike left those cells Unassigned" : "and their labels name the nearest class"));
  }
}

/// Repeated cell names (files concatenated without index_unique): the labels are right, but a
/// table joined back by name (the CSV, a Seurat object's metadata) would give a cell another's.
void warn_about_repeated_names(const std::vector<std::string>& names, Annotation& annotation) {
  std::unordered_set<std::string_view> seen;
  seen.reserve(names.size());
  std::size_t repeats = 0;
  std::string_view example;
  for (const std::string& name : names) {
    if (seen.insert(name).second) continue;
    if (repeats++ == 0) example = name;
  }
  if (repeats == 0) return;
  annotation.warnings.push_back(fmt::format("{} cell names repeat an earlier one (e.g. '{}'): rows are in the file's order; join the "
                                            "labels by position, not by name (or make the names unique, e.g. adata.obs_names_make_unique())",
                                            repeats, example));
}

/// A share as a percentage for messages: "15%", or "<1%" (never "0%" for a share above zero).
std::string percent_of(double share) { return share > 0 && share < 0.005 ? std::string("<1%") : fmt::format("{:.0f}%", 100 * share); }

/// Query cells sampled to tell a panel padded with zeros (kPaddingMinAbsent and the rest: annotate.hpp).
constexpr std::int64_t kPaddingScanCells = 2000;

/// Rows as ranges, consecutive rows merged.
std::vector<RowRange> row_ranges(const std::vector<std::int64_t>& rows) {
  std::vector<RowRange> ranges;
  for (const std::int64_t row : rows) {
    if (!ranges.empty() && ranges.back().end == row) {
      ++ranges.back().end;
    } else {
      ranges.push_back({row, row + 1});
    }
  }
  return ranges;
}

/// Per row of `stream.rows`, its counts over the vars `counted` marks; `counts` turns false when a
/// value read is not a whole number.
std::vector<double> row_totals_over(MatrixReader& reader, const BlockStreamOptions& stream, const std::vector<std::uint8_t>& counted,
                                    bool& counts) {
  std::vector<double> totals;
  for_each_block(reader, stream, [&](const CsrBlock& block) {
    counts = counts && whole_numbers(block);
    append_row_totals_over(block, counted, totals);
  });
  return totals;
}

/// The counts (over the vars `counted` marks) of the barcodes of an unfiltered droplet matrix that
/// hold a cell, by Cell Ranger 2's cell calling (OrdMag: at least a tenth of the 99th percentile of
/// the largest totals, up to 3,000, the cells a run expects); nullopt for a filtered matrix, or a
/// matrix other than a CSR whole transcriptome (10,000 genes or more; an imaging panel's cells are
/// never empty droplets). The same rule on the genes each barcode detects (from indptr alone)
/// first finds the candidates: a filtered matrix, where it leaves out under a quarter of the
/// barcodes (its shallow cells are cells), stops there; otherwise the totals of the candidates
/// (20,000 of them at most, spread over the file) are read and the rule applied to them (a rule on
/// genes alone keeps ambient droplets of a few hundred counts, as many as the cells).
std::optional<std::vector<double>> called_cell_totals(MatrixReader& reader, BlockStreamOptions stream, const std::vector<std::uint8_t>& counted,
                                                      bool& counts) {
  const MatrixInfo info = reader.info();
  if (info.encoding != MatrixEncoding::kCsr || info.n_cols < 10000 || info.n_rows == 0) return std::nullopt;
  const std::vector<std::int64_t> detected = reader.row_nnz();
  const double gene_floor = ordmag_floor(std::vector<double>(detected.begin(), detected.end()));
  std::vector<std::int64_t> candidates;
  for (std::size_t row = 0; row < detected.size(); ++row) {
    if (static_cast<double>(detected[row]) >= gene_floor) candidates.push_back(static_cast<std::int64_t>(row));
  }
  if (candidates.empty() || 4 * candidates.size() > 3 * detected.size()) return std::nullopt;
  constexpr std::size_t kMaxCandidates = 20000;
  std::vector<std::int64_t> read;
  const std::size_t step = (candidates.size() + kMaxCandidates - 1) / kMaxCandidates;
  for (std::size_t i = 0; i < candidates.size(); i += step) read.push_back(candidates[i]);
  stream.rows = row_ranges(read);
  const std::vector<double> totals = row_totals_over(reader, stream, counted, counts);
  if (totals.empty()) return std::nullopt;
  const double floor = ordmag_floor(totals);
  std::vector<double> cells;
  std::copy_if(totals.begin(), totals.end(), std::back_inserter(cells), [floor](double total) { return total >= floor; });
  return cells;
}

/// The median counts of `dataset`'s cells (2,000 of them spread over the file: scan_ranges) over
/// its vars naming `genes` (Entrez ids, ascending): a refit's depth matching (refit_model). 0 when
/// its values are not counts or no scanned cell counts any of them. A `query`'s over the barcodes
/// that hold a cell (called_cell_totals): an unfiltered matrix's empty droplets are not its cells'
/// depth (20,000 barcodes of 10-200 counts beside 1,319 pbmc3k cells: a median of 15 counts was
/// read as the cells' depth, a depth-matched model's reference thinned to it, and the cells'
/// accuracy fell from 0.886 to 0.306).
double median_counts_over(const Dataset& dataset, const std::string& matrix, const GeneTable& table, const GeneResolveOptions& resolve,
                          const std::vector<std::int64_t>& genes, bool query) {
  const GeneResolveResult resolved = resolve_dataset_genes(table, dataset, matrix, resolve);
  std::vector<std::uint8_t> counted(resolved.gene_index.size(), 0);
  for (std::size_t var = 0; var < counted.size(); ++var) {
    const std::int32_t gene = resolved.gene_index[var];
    counted[var] = gene != kNoGene && std::binary_search(genes.begin(), genes.end(), table.gene(gene).entrez_id) ? 1 : 0;
  }
  const std::unique_ptr<MatrixReader> reader = dataset.open_matrix(matrix);
  BlockStreamOptions stream = stream_options(dataset, matrix, std::size_t{32} << 20);
  bool counts = true;
  if (query) {
    if (std::optional<std::vector<double>> cells = called_cell_totals(*reader, stream, counted, counts)) return counts ? upper_median(*cells) : 0;
  }
  stream.rows = scan_ranges(*reader, kPaddingScanCells);
  std::vector<double> totals = row_totals_over(*reader, stream, counted, counts);
  return counts ? upper_median(totals) : 0;
}

/// The genes (Entrez ids, ascending) that the vars of `resolved` name and no cell of `summary`
/// counts under any of its vars (a gene named twice, e.g. by its symbol and an alias, is counted
/// when one of them is).
std::vector<std::int64_t> uncounted_genes(const MatrixSummary& summary, const GeneResolveResult& resolved, const GeneTable& table) {
  std::vector<std::int64_t> uncounted;
  std::vector<std::int64_t> counted;
  for (std::size_t var = 0; var < resolved.gene_index.size() && var < summary.column_cells.size(); ++var) {
    if (resolved.gene_index[var] == kNoGene) continue;
    (summary.column_cells[var] == 0 ? uncounted : counted).push_back(table.gene(resolved.gene_index[var]).entrez_id);
  }
  std::sort(uncounted.begin(), uncounted.end());
  uncounted.erase(std::unique(uncounted.begin(), uncounted.end()), uncounted.end());
  std::sort(counted.begin(), counted.end());
  std::vector<std::int64_t> genes;
  std::set_difference(uncounted.begin(), uncounted.end(), counted.begin(), counted.end(), std::back_inserter(genes));
  return genes;
}

/// The query's genes (Entrez ids, ascending) that no cell expresses when the query is a panel
/// padded with zeros: a file joined from others (anndata.concat(join="outer"), Seurat's merge)
/// or written out to a reference's genes holds a var for every gene but counts only for the
/// ones its technology measured. The sign: genes every cell type of a model's reference
/// detects in at least half its cells have no count in any of the query's sampled cells
/// (kPaddingMinAbsent of them; one such gene can be biology, a block of them cannot).
/// `ubiquitous`: per model that carries a reference sample, those genes (model_ubiquitous_genes).
/// Empty, and `note` untouched, otherwise or when no model carries a reference sample to tell.
std::vector<std::int64_t> zero_padded_genes(const Dataset& dataset, const std::string& matrix, const GeneTable& table,
                                            const GeneResolveResult& resolved, const std::vector<std::vector<std::int64_t>>& ubiquitous,
                                            std::string* note) {
  if (ubiquitous.empty()) return {};
  SummarizeOptions scan;
  scan.max_rows = kPaddingScanCells;
  scan.count_columns = true;
  const MatrixSummary sampled = summarize_matrix(*dataset.open_matrix(matrix), scan);
  // (cells without any count say nothing about the panel: an empty matrix is no padded one)
  const std::int64_t cells_with_counts = sampled.rows_scanned - sampled.rows_without_counts;
  if (cells_with_counts < kPaddingMinCells) return {};
  const std::vector<std::int64_t> zero_in_sample = uncounted_genes(sampled, resolved, table);
  if (zero_in_sample.empty()) return {};
  std::map<std::int64_t, std::int64_t> query_cells;  // per gene its vars name: sampled cells detecting it
  for (std::size_t var = 0; var < resolved.gene_index.size() && var < sampled.column_cells.size(); ++var) {
    if (resolved.gene_index[var] != kNoGene) query_cells[table.gene(resolved.gene_index[var]).entrez_id] += sampled.column_cells[var];
  }
  std::vector<std::int64_t> absent;  // the longest list over the models that qualifies
  std::size_t ubiquitous_named = 0;   // of how many ubiquitous genes its vars name
  for (const std::vector<std::int64_t>& genes : ubiquitous) {
    std::vector<std::int64_t> lacking;
    std::vector<double> rates;  // of the ubiquitous genes the query detects
    for (const std::int64_t gene : genes) {
      const auto named = query_cells.find(gene);
      if (named == query_cells.end()) continue;  // not among its vars: plain coverage
      if (named->second == 0) {
        lacking.push_back(gene);
      } else {
        rates.push_back(static_cast<double>(named->second) / static_cast<double>(cells_with_counts));
      }
    }
    if (!looks_padded(lacking.size(), rates)) continue;
    if (lacking.size() > absent.size()) {
      ubiquitous_named = lacking.size() + rates.size();
      absent = std::move(lacking);
    }
  }
  if (absent.empty()) return {};
  // Padded: the genes without a count in any cell (every cell read when the sample was not all).
  std::vector<std::int64_t> padded = zero_in_sample;
  if (sampled.rows_scanned < dataset.n_obs()) {
    scan.max_rows = -1;
    padded = uncounted_genes(summarize_matrix(*dataset.open_matrix(matrix), scan), resolved, table);
  }
  if (note != nullptr && !padded.empty()) {
    std::vector<std::string> examples;
    for (const std::int64_t entrez : absent) {
      if (examples.size() == 5) break;
      if (const std::int32_t gene = table.find_entrez(entrez); gene != kNoGene) examples.push_back(table.gene(gene).symbol);
    }
    *note = fmt::format("{} of its genes have no count in any of its {} cells, among them {} of the {} genes that every cell type of "
                        "the reference expresses ({}): read as not measured, as in a panel padded with zeros (anndata.concat("
                        "join=\"outer\"), Seurat's merge)",
                        padded.size(), dataset.n_obs(), absent.size(), ubiquitous_named, fmt::join(examples, ", "));
  }
  return padded;
}

/// Levels an obs column may have to be read as the samples of a joined file.
constexpr std::size_t kPanelGroupMaxLevels = 64;
/// Cells scanned to tell whether a level's panel is padded: kPanelGroupScanCells of each at
/// most (fewer with many levels: kPanelGroupScanTotal over every level of every candidate
/// column), read in runs of consecutive cells.
constexpr std::int64_t kPanelGroupScanCells = 500;
constexpr std::int64_t kPanelGroupScanTotal = 8000;
constexpr std::int64_t kPanelGroupScanRuns = 4;
/// A column named by --group may have more levels than kPanelGroupMaxLevels, up to this.
constexpr std::size_t kPanelGroupMaxNamedLevels = 1024;

/// Whether an obs column, by its name, holds cell types or clusters rather than samples: left
/// out of the columns padded_groups tries on its own (a label column's rare, low-RNA type,
/// platelets, lacks ubiquitous genes as a padded sample does): celltype, cell_type, "Cell Type",
/// labels, annotation(s), cell_ontology_class, louvain, leiden, (seurat_)clusters, and an earlier
/// run's celltyper_* columns; --group names any column.
bool looks_like_cell_types(std::string_view name) {
  std::string key;
  for (const char c : name) {
    if (c != '_' && c != ' ' && c != '.' && c != '-') key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (key.starts_with("celltyper")) return true;
  for (const std::string_view word : {"celltype", "celltypes", "label", "labels", "annotation", "annotations", "cellontologyclass",
                                      "louvain", "leiden", "cluster", "clusters", "seuratclusters", "bulklabels", "celllabel",
                                      "predictedcelltype", "majorityvoting", "predictedlabels"}) {
    if (key == word) return true;
  }
  return false;
}

/// The cells of one sample of a joined file whose panel is padded with zeros (see padded_groups).
struct PaddedGroup {
  std::string column;
  std::string level;
  std::vector<std::int64_t> rows;    ///< ascending
  std::vector<std::int64_t> padded;  ///< Entrez ids (ascending) its vars name and none of its cells counts
  std::size_t n_absent = 0;          ///< of the reference's ubiquitous genes
  std::size_t n_named = 0;           ///< of which the query names
  std::vector<std::string> examples; ///< symbols of some of them
};

/// The samples of a file joined from several (anndata.concat(join="outer") of a whole
/// transcriptome and a targeted panel, a CELLxGENE Census query over datasets) whose panel is
/// padded with zeros while the others measured the genes: the whole-file rule (zero_padded_genes)
/// sees counts for those genes and reads the zeros of the padded cells as absent expression. The
/// samples are the levels of an obs column: `group` ("obs:COLUMN" or "COLUMN"), or, when `group`
/// is empty, every categorical (or text) obs column of 2..kPanelGroupMaxLevels levels, the one whose padded
/// levels hold the most cells (then the fewest levels) chosen. A level is padded by the
/// whole-file rule applied to up to kPanelGroupScanCells of its cells; its padded genes are the
/// genes of `measured` (the query's genes as the whole file reads them) without a count in any of
/// its cells. `ubiquitous` as for zero_padded_genes. Empty when no model carries a reference
/// sample or `group` is "none".
std::vector<PaddedGroup> padded_groups(const Dataset& dataset, const std::string& matrix, const GeneTable& table,
                                       const GeneResolveResult& resolved, const GeneResolveOptions& resolve_options,
                                       const std::vector<std::vector<std::int64_t>>& ubiquitous,
                                       const std::vector<std::int64_t>& measured, const std::string& group) {
  if (group == "none") return {};
  const std::string named_column = group.empty() ? std::string() : group.rfind("obs:", 0) == 0 ? group.substr(4) : group;
  std::optional<DataFrame> named_obs;  // (a named column is read, and so checked, whatever the models)
  if (!named_column.empty()) named_obs = dataset.read_obs_columns({named_column});
  if (ubiquitous.empty()) return {};
  // Candidate columns: per cell the code of its level (-1: none).
  struct Candidate {
    std::string name;
    std::vector<std::string> levels;
    std::vector<std::int16_t> codes;
    std::vector<std::int64_t> sizes;  // per level
  };
  std::vector<Candidate> candidates;
  const auto too_many_levels = [&](const std::string& name) {
    throw InputError(fmt::format("--group obs:{}: more than {} distinct values in {}: a column telling the samples of a joined file "
                                 "(a dataset, a batch) has few",
                                 name, kPanelGroupMaxNamedLevels, dataset.path()));
  };
  const auto add_candidate = [&](const Column& column, bool named) {
    Candidate candidate;
    candidate.name = column.name;
    const std::size_t n = column.size();
    if (column.kind == ColumnKind::kCategorical) {  // its codes are the levels' (categories no cell has dropped)
      if (!named && column.categories.size() > kPanelGroupMaxLevels) return;
      std::vector<std::int64_t> sizes(column.categories.size(), 0);
      for (const std::int32_t code : column.codes) {
        if (code >= 0 && static_cast<std::size_t>(code) < sizes.size()) ++sizes[static_cast<std::size_t>(code)];
      }
      std::vector<std::int16_t> level_of(sizes.size(), -1);
      for (std::size_t c = 0; c < sizes.size(); ++c) {
        if (sizes[c] == 0) continue;
        if (candidate.levels.size() == kPanelGroupMaxNamedLevels) too_many_levels(column.name);
        level_of[c] = static_cast<std::int16_t>(candidate.levels.size());
        candidate.levels.push_back(column.categories[c]);
        candidate.sizes.push_back(sizes[c]);
      }
      if (candidate.levels.size() < 2) return;
      candidate.codes.resize(n);
      for (std::size_t row = 0; row < n; ++row) {
        const std::int32_t code = column.codes[row];
        candidate.codes[row] = code >= 0 && static_cast<std::size_t>(code) < level_of.size() ? level_of[static_cast<std::size_t>(code)] : std::int16_t{-1};
      }
      candidates.push_back(std::move(candidate));
      return;
    }
    candidate.codes.assign(n, -1);
    std::map<std::string, std::int16_t> code_of;
    for (std::size_t row = 0; row < n; ++row) {
      if (column.is_missing(row)) continue;
      std::string value = column.value_as_string(row);
      auto found = code_of.find(value);
      if (found == code_of.end()) {
        if (!named && code_of.size() == kPanelGroupMaxLevels) return;  // too many levels for samples
        if (code_of.size() == kPanelGroupMaxNamedLevels) too_many_levels(column.name);
        found = code_of.emplace(value, static_cast<std::int16_t>(candidate.levels.size())).first;
        candidate.levels.push_back(std::move(value));
        candidate.sizes.push_back(0);
      }
      candidate.codes[row] = found->second;
      ++candidate.sizes[static_cast<std::size_t>(found->second)];
    }
    if (candidate.levels.size() < 2) return;
    candidates.push_back(std::move(candidate));
  };
  if (named_obs) {
    add_candidate(named_obs->at(named_column, fmt::format("obs of {}", dataset.path())), true);
  } else {
    // Every column in one read (the index once); a column the reader cannot parse is left out
    // (it would not stop an annotation that never needed it): then column by column.
    const auto consider = [&](const Column& column) {
      if (looks_like_cell_types(column.name)) return;
      if ((column.kind == ColumnKind::kCategorical && column.categories.size() >= 2) || column.kind == ColumnKind::kString) {
        add_candidate(column, false);
      }
    };
    const std::vector<std::string> names = dataset.obs_column_names();
    std::optional<DataFrame> obs;
    try {
      obs = dataset.read_obs_columns(names);
    } catch (const InputError&) {
      for (const std::string& name : names) {
        try {
          const DataFrame one = dataset.read_obs_columns({name});
          if (const Column* column = one.find(name)) consider(*column);
        } catch (const InputError&) {
        }
      }
    }
    if (obs) {
      for (const Column& column : obs->columns) consider(column);
    }
  }
  if (candidates.empty()) return {};

  // The genes to look at: every model's ubiquitous genes that the query measures (as the whole
  // file reads it), each a slot; per var its slot.
  std::vector<std::int64_t> slot_genes;
  for (const std::vector<std::int64_t>& genes : ubiquitous) slot_genes.insert(slot_genes.end(), genes.begin(), genes.end());
  std::sort(slot_genes.begin(), slot_genes.end());
  slot_genes.erase(std::unique(slot_genes.begin(), slot_genes.end()), slot_genes.end());
  std::vector<std::int64_t> kept;
  std::set_intersection(slot_genes.begin(), slot_genes.end(), measured.begin(), measured.end(), std::back_inserter(kept));
  slot_genes = std::move(kept);
  if (slot_genes.empty()) return {};
  std::vector<std::int32_t> var_slot(resolved.gene_index.size(), -1);
  for (std::size_t var = 0; var < resolved.gene_index.size(); ++var) {
    if (resolved.gene_index[var] == kNoGene) continue;
    const std::int64_t entrez = table.gene(resolved.gene_index[var]).entrez_id;
    const auto at = std::lower_bound(slot_genes.begin(), slot_genes.end(), entrez);
    if (at != slot_genes.end() && *at == entrez) var_slot[var] = static_cast<std::int32_t>(at - slot_genes.begin());
  }

  // Cells to scan: every cell of a small file, else kPanelGroupScanRuns runs of consecutive cells
  // spread over the file (a level spread over the file, e.g. donors of interleaved cells, is
  // sampled there), then, for each level with fewer than `per_level` cells in them, its cells in
  // kPanelGroupScanRuns runs of its own spread over it (a sample joined to others is a block of
  // rows: few reads).
  const std::int64_t n = dataset.n_obs();
  std::size_t n_levels = 0;
  for (const Candidate& candidate : candidates) n_levels += candidate.levels.size();
  const std::int64_t per_level = std::clamp<std::int64_t>(kPanelGroupScanTotal / static_cast<std::int64_t>(n_levels), 2 * kPaddingMinCells,
                                                          kPanelGroupScanCells);
  std::vector<std::uint8_t> picked(static_cast<std::size_t>(n), 0);
  if (n <= kPanelGroupScanTotal) {
    std::fill(picked.begin(), picked.end(), 1);
  } else {
    const std::int64_t run_cells = kPanelGroupScanTotal / (2 * kPanelGroupScanRuns);
    for (std::int64_t run = 0; run < kPanelGroupScanRuns; ++run) {
      const std::int64_t first = run * (n - run_cells) / std::max<std::int64_t>(1, kPanelGroupScanRuns - 1);
      std::fill_n(picked.begin() + first, run_cells, 1);
    }
  }
  for (const Candidate& candidate : candidates) {
    std::vector<std::int64_t> in_sample(candidate.levels.size(), 0);
    for (std::size_t row = 0; row < candidate.codes.size(); ++row) {
      if (candidate.codes[row] >= 0 && picked[row] != 0) ++in_sample[static_cast<std::size_t>(candidate.codes[row])];
    }
    std::vector<std::int64_t> seen(candidate.levels.size(), 0);
    for (std::size_t row = 0; row < candidate.codes.size(); ++row) {
      const std::int32_t code = candidate.codes[row];
      if (code < 0 || in_sample[static_cast<std::size_t>(code)] >= per_level) continue;
      const std::int64_t size = candidate.sizes[static_cast<std::size_t>(code)];
      const std::int64_t occurrence = seen[static_cast<std::size_t>(code)]++;
      // run r covers the level's occurrences [r * size / runs, r * size / runs + per_level / runs)
      const std::int64_t run = occurrence * kPanelGroupScanRuns / size;
      if (size <= per_level || occurrence - run * size / kPanelGroupScanRuns < per_level / kPanelGroupScanRuns) picked[row] = 1;
    }
  }
  std::vector<RowRange> sample;  // the picked cells as runs of consecutive rows
  for (std::int64_t row = 0; row < n; ++row) {
    if (picked[static_cast<std::size_t>(row)] == 0) continue;
    if (!sample.empty() && sample.back().end == row) {
      ++sample.back().end;
    } else {
      sample.push_back({row, row + 1});
    }
  }
  // Per candidate and level: sampled cells with counts, and per slot the cells detecting it.
  std::vector<std::vector<std::int64_t>> with_counts(candidates.size());
  std::vector<std::vector<std::vector<std::int64_t>>> detecting(candidates.size());
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    with_counts[c].assign(candidates[c].levels.size(), 0);
    detecting[c].assign(candidates[c].levels.size(), std::vector<std::int64_t>(slot_genes.size(), 0));
  }
  {
    const auto reader = dataset.open_matrix(matrix);
    std::vector<std::int64_t> stamp(slot_genes.size(), -1);
    std::vector<std::int32_t> hits;
    BlockStreamOptions stream = stream_options(dataset, matrix, std::size_t{32} << 20);
    stream.rows = std::move(sample);
    stream.refuse_non_finite = false;  // (the annotation's own pass refuses such a value)
    for_each_block(*reader, stream, [&](const CsrBlock& block) {
      for (std::int64_t i = 0; i < block.n_rows; ++i) {
        const std::int64_t row = block.first_row + i;
        hits.clear();
        bool counts = false;
        for (std::int64_t k = block.indptr[static_cast<std::size_t>(i)]; k < block.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
          if (block.values[static_cast<std::size_t>(k)] == 0) continue;
          counts = true;
          const auto var = static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)]);
          const std::int32_t slot = var < var_slot.size() ? var_slot[var] : -1;
          if (slot >= 0 && stamp[static_cast<std::size_t>(slot)] != row) {
            stamp[static_cast<std::size_t>(slot)] = row;
            hits.push_back(slot);
          }
        }
        if (!counts) continue;
        for (std::size_t c = 0; c < candidates.size(); ++c) {
          const std::int32_t code = candidates[c].codes[static_cast<std::size_t>(row)];
          if (code < 0) continue;
          ++with_counts[c][static_cast<std::size_t>(code)];
          for (const std::int32_t slot : hits) ++detecting[c][static_cast<std::size_t>(code)][static_cast<std::size_t>(slot)];
        }
      }
    });
  }
  // Per candidate, its padded levels (the whole-file rule on each level's sample).
  struct Verdict {
    std::size_t level = 0;
    std::size_t n_absent = 0;
    std::size_t n_named = 0;
    std::vector<std::int64_t> absent;
  };
  std::size_t best = SIZE_MAX;
  std::int64_t best_cells = 0;
  std::vector<Verdict> best_verdicts;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    std::vector<Verdict> verdicts;
    std::int64_t cells = 0;
    for (std::size_t level = 0; level < candidates[c].levels.size(); ++level) {
      if (with_counts[c][level] < kPaddingMinCells) continue;
      Verdict verdict;
      verdict.level = level;
      for (const std::vector<std::int64_t>& genes : ubiquitous) {
        std::vector<std::int64_t> lacking;
        std::vector<double> rates;
        for (const std::int64_t gene : genes) {
          const auto at = std::lower_bound(slot_genes.begin(), slot_genes.end(), gene);
          if (at == slot_genes.end() || *at != gene) continue;  // not measured by the file
          const std::int64_t detected = detecting[c][level][static_cast<std::size_t>(at - slot_genes.begin())];
          if (detected == 0) {
            lacking.push_back(gene);
          } else {
            rates.push_back(static_cast<double>(detected) / static_cast<double>(with_counts[c][level]));
          }
        }
        const std::size_t named = lacking.size() + rates.size();
        if (!looks_padded(lacking.size(), rates) || lacking.size() <= verdict.absent.size()) continue;
        verdict.n_named = named;
        verdict.n_absent = lacking.size();
        verdict.absent = std::move(lacking);
      }
      if (verdict.absent.empty()) continue;
      cells += candidates[c].sizes[level];
      verdicts.push_back(std::move(verdict));
    }
    if (verdicts.empty()) continue;
    if (best == SIZE_MAX || cells > best_cells || (cells == best_cells && candidates[c].levels.size() < candidates[best].levels.size())) {
      best = c;
      best_cells = cells;
      best_verdicts = std::move(verdicts);
    }
  }
  if (best == SIZE_MAX) return {};

  // Each padded level's genes without a count in any of its cells (every cell of it read).
  std::vector<PaddedGroup> groups;
  for (Verdict& verdict : best_verdicts) {
    PaddedGroup padded;
    padded.column = candidates[best].name;
    padded.level = candidates[best].levels[verdict.level];
    for (std::size_t row = 0; row < candidates[best].codes.size(); ++row) {
      if (candidates[best].codes[row] == static_cast<std::int32_t>(verdict.level)) padded.rows.push_back(static_cast<std::int64_t>(row));
    }
    const RowSubsetDataset cells(dataset, padded.rows, dataset.path());
    SummarizeOptions scan;
    scan.max_rows = -1;
    scan.count_columns = true;
    // (its genes as its own cells read them: a gene named by two vars, one per sample of a file
    // joined from files of different symbol versions (ADRBK1, GRK2), is read from the var with
    // counts in this sample, as its cells' features are)
    padded.padded = uncounted_genes(summarize_matrix(*cells.open_matrix(matrix), scan),
                                    resolve_dataset_genes(table, cells, matrix, resolve_options), table);
    std::vector<std::int64_t> in_measured;  // (genes the whole file already reads as not measured stay so)
    std::set_intersection(padded.padded.begin(), padded.padded.end(), measured.begin(), measured.end(), std::back_inserter(in_measured));
    padded.padded = std::move(in_measured);
    if (padded.padded.empty()) continue;
    // (the ubiquitous genes its sampled cells lack that no cell of it counts)
    std::vector<std::int64_t> absent;
    std::sort(verdict.absent.begin(), verdict.absent.end());
    std::set_intersection(verdict.absent.begin(), verdict.absent.end(), padded.padded.begin(), padded.padded.end(), std::back_inserter(absent));
    if (absent.size() < kPaddingMinAbsent) continue;  // (its sampled cells missed them by chance)
    padded.n_absent = absent.size();
    padded.n_named = verdict.n_named;
    for (const std::int64_t entrez : absent) {
      if (padded.examples.size() == 5) break;
      if (const std::int32_t gene = table.find_entrez(entrez); gene != kNoGene) padded.examples.push_back(table.gene(gene).symbol);
    }
    groups.push_back(std::move(padded));
  }
  return groups;
}

/// Why a query may measure too few of a model's genes, when the matrix says so: its obs names
/// are genes (a genes x cells matrix), or its values are scaled (z-scores of a few highly
/// variable genes, with the counts elsewhere). "" when neither.
std::string low_coverage_cause(const Dataset& dataset, const std::string& matrix, const GeneTable& table) {
  try {  // a diagnosis only: whatever fails here leaves the coverage error as it is
    DataFrame cells;
    cells.index = dataset.read_obs_columns({}).index;
    GeneResolveOptions resolve;
    resolve.refuse_row_numbers = false;  // anndata's default cell names "0", "1", ...
    const GeneResolveResult as_genes = resolve_genes(table, cells, resolve);
    if (as_genes.n_matched() >= 20 && 2 * as_genes.n_matched() >= as_genes.n_vars()) {
      if (dataset.format() == "text") {
        return fmt::format(". The table was read the wrong way round: {} of its {} cell names are genes (the genes are the side named by "
                           "Ensembl ids, else by the header's corner: name it 'gene' or 'cell')",
                           as_genes.n_matched(), as_genes.n_vars());
      }
      return fmt::format(". The matrix looks transposed: {} of its {} cell names are genes (write it cells x genes, e.g. adata.T)",
                         as_genes.n_matched(), as_genes.n_vars());
    }
    SummarizeOptions scan;
    scan.max_rows = 2000;
    const MatrixSummary summary = summarize_matrix(*dataset.open_matrix(matrix), scan);
    if (summary.scale == ValueScale::kScaled) {
      return fmt::format(". {} also looks scaled ({}): annotate the counts or log-normalised values of every gene (--layer NAME)", matrix,
                         summary.scale_reason);
    }
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace

Annotation annotate_dataset(const Dataset& dataset, const std::vector<const CellTypeModel*>& given, const GeneTable& table,
                            const AnnotateOptions& requested) {
  if (given.empty()) throw InputError("annotate: no model given");
  if (requested.top_k < 0) throw InputError(fmt::format("--top-k {} is negative", requested.top_k));
  if (!(requested.min_score >= 0 && requested.min_score <= 1)) throw InputError(fmt::format("--min-score {} is not in [0, 1]", requested.min_score));
  Annotation annotation;
  if (dataset.n_obs() == 0) {
    annotation.warnings.push_back(fmt::format("{}: the dataset has zero cells: nothing to annotate (the output has the annotation's columns, empty)",
                                              dataset.path()));
  }
  // The query's matrix, chosen once for every model (--layer auto: a CELLxGENE file's counts in raw/X).
  AnnotateOptions options = requested;
  std::string matrix_note;
  options.embed.matrix = resolve_matrix_source(dataset, options.embed.matrix, &matrix_note, true);
  if (!matrix_note.empty()) annotation.warnings.push_back(fmt::format("{}{}: {}", kNotePrefix, dataset.path(), matrix_note));

  // How much of each model the query measures; refit a model on the shared genes when the
  // query lacks part of its features or of its reference expression.
  // (the var read and resolved once: for the genes measured and for the padding check)
  const GeneResolveResult resolved = resolve_dataset_genes(table, dataset, options.embed.matrix, options.embed.genes);
  // Antibody tags, peaks, control probes beside the genes: said (a matrix of them alone: the
  // resolver's warning).
  if (resolved.n_other_features > 0 && resolved.n_other_features < resolved.n_vars()) {
    annotation.warnings.push_back(message_about(dataset.path(), resolved.other_features_message()));
  } else if (resolved.n_other_features > 0) {
    throw InputError(message_about(dataset.path(), resolved.other_features_message()));
  }
  std::vector<std::int64_t> query_genes = resolved_gene_ids(resolved, table);
  // A model of references named like mouse genes (read through a human table) on a query named
  // like human genes: likely another species than the model's (its unlike-every-type flags too).
  bool species_mismatch = resolved.mouse_cased_mismatch;  // (the query's genes and the gene table, or the query's and the model's)
  if (!resolved.mouse_cased_mismatch && resolved.n_matched() > 0 &&
      std::any_of(given.begin(), given.end(), [](const CellTypeModel* model) {
        return model->provenance.value("reference_gene_names", std::string()) == "mouse-cased";
      })) {
    species_mismatch = true;
    annotation.warnings.push_back(fmt::format(
        "{}: likely species mismatch: the model's references name their genes like mouse genes (Cd3e) and this query's are not (human-cased "
        "symbols or ids): its labels rest on same-named genes, and cells it flags as unlike every type may be so because of the species",
        dataset.path()));
  }
  std::string padded_note;
  std::int64_t n_padded_genes = 0;  // genes of the query read as not measured (the whole-file rule)
  // The genes every type of a model's reference sample detects (read or computed once per model).
  std::vector<std::vector<std::int64_t>> ubiquitous;
  for (const CellTypeModel* model : given) {
    if (!model->reference.empty()) ubiquitous.push_back(model_ubiquitous_genes(*model));
  }
  if (const std::vector<std::int64_t> padded = zero_padded_genes(dataset, options.embed.matrix, table, resolved, ubiquitous, &padded_note);
      !padded.empty()) {
    n_padded_genes = static_cast<std::int64_t>(padded.size());
    std::vector<std::int64_t> measured;
    std::set_difference(query_genes.begin(), query_genes.end(), padded.begin(), padded.end(), std::back_inserter(measured));
    query_genes = std::move(measured);
    annotation.warnings.push_back(fmt::format("{}: {}", dataset.path(), padded_note));
  }
  // Each model as used on `genes` (the query's measured genes; `where` names the cells in
  // messages): its coverage, refitted when the query lacks part of it. `refuse`: a query below the
  // coverage floor is an InputError, else `too_few` says so (a padded group of a joined file).
  struct Fitted {
    std::vector<CellTypeModel> refitted;
    std::vector<const CellTypeModel*> models;
    std::vector<ModelUse> uses;
    std::string too_few;  // why the cells cannot be annotated ("" = they can)
  };
  // `depth_of`: the cells whose depth a refit matches (the whole file's: those outside its padded samples).
  const auto fit = [&](const Dataset& where, const std::vector<std::int64_t>& genes, bool refuse, const Dataset& depth_of) {
    Fitted fitted;
    fitted.refitted.reserve(given.size());  // (models point into it)
    fitted.models = given;
    for (std::size_t m = 0; m < given.size(); ++m) {
      const CellTypeModel& model = *given[m];
      ModelUse use;
      use.coverage = model_coverage(model, genes);
      const ModelCoverage& coverage = use.coverage;
      const std::string which = given.size() == 1 ? "the model" : fmt::format("model {}", m + 1);
      const std::string measured = fmt::format("{} measures {} of {}'s {} genes ({:.0f}% of its reference expression{})", where.path(),
                                               coverage.n_measured, which, coverage.n_model_genes, 100 * coverage.mass,
                                               model.reference.empty() ? ": by gene count, the model carries no reference sample" : "");
      // A model with fewer genes than the floor is judged by whether the query measures them all.
      const std::int64_t genes_needed = std::min(options.min_coverage_genes, coverage.n_model_genes);
      if (!options.allow_low_coverage && (coverage.n_measured < genes_needed || coverage.mass < options.min_coverage_mass)) {
        if (!refuse) {
          fitted.too_few = fmt::format("{}: too few to annotate (need {} genes and {:.0f}%)", measured, genes_needed, 100 * options.min_coverage_mass);
          return fitted;
        }
        // Another species' genes (mouse Ensembl ids against a human gene table): no flag helps.
        const auto species = std::find_if(resolved.warnings.begin(), resolved.warnings.end(),
                                          [](const std::string& warning) { return warning.starts_with("likely species mismatch"); });
        if (species != resolved.warnings.end()) {
          throw InputError(fmt::format("{}: too few to annotate: {}. Annotate it with a model of its species, resolving its genes with "
                                       "a gene table of that species (--gene-table; a model trained with one uses it by default)",
                                       measured, *species));
        }
        const std::string cause = low_coverage_cause(where, options.embed.matrix, table);
        if (!cause.empty()) throw InputError(fmt::format("{}: too few to annotate{}", measured, cause));
        throw InputError(fmt::format("{}: too few to annotate (need {} genes and {:.0f}%); train on a reference that measures this panel, "
                                     "or pass --allow-low-coverage",
                                     measured, genes_needed, 100 * options.min_coverage_mass));
      }
      const bool partial = coverage.mass < options.refit_below || coverage.feature_share() < options.refit_below;
      std::vector<std::int64_t> shared;  // (the query's depth where the refit reads it: the genes it shares with the sample)
      std::set_intersection(genes.begin(), genes.end(), model.reference.entrez_ids.begin(), model.reference.entrez_ids.end(),
                            std::back_inserter(shared));
      // A query of the model's genes far shallower than its reference cells (a shallow run, cells
      // thinned by ambient removal): refitted on the reference cells thinned to its depth, as a
      // query measuring part of the genes is. The depth the model recorded screens the query
      // first, so that annotating a deep query never reads the reference sample.
      double depth = -1;  // (-1: not read yet)
      bool shallow = false;
      if (!partial && options.refit && can_refit(model) && model.features == kFeaturesExpression) {
        const double recorded = model.provenance.value("reference_sample_median_counts", 0.0);
        if (recorded > 0) {
          depth = median_counts_over(depth_of, options.embed.matrix, table, options.embed.genes, shared, true);
          shallow = depth > 0 && depth < kDepthMatchRatioAllGenes * recorded &&
                    depth < kDepthMatchRatioAllGenes * reference_sample_depth(model.reference, shared);
        }
      }
      if ((partial || shallow) && options.refit && can_refit(model)) {
        if (options.log) {
          options.log(partial ? fmt::format("{}: refitting on the {} shared genes", measured, coverage.n_measured)
                              : fmt::format("{}: its cells are far shallower than the model's reference cells: refitting on them thinned to its depth",
                                            where.path()));
        }
        const auto started = std::chrono::steady_clock::now();
        try {
          if (depth < 0) depth = median_counts_over(depth_of, options.embed.matrix, table, options.embed.genes, shared, true);
          fitted.refitted.push_back(refit_model(model, genes, options.embed.num_threads, {}, depth));
          if (const double ratio = fitted.refitted.back().provenance["refit"].value("depth_ratio", 0.0); ratio > 0) {
            annotation.warnings.push_back(fmt::format(
                "{}{}: its cells hold {} of the counts of the model's reference cells over the genes they share (median {:.0f}): "
                "the refit trains on the reference cells thinned to that depth (an imaging panel's or a shallow run's cells)",
                kNotePrefix, where.path(), percent_of(ratio), depth));
          }
        } catch (const InputError& error) {  // (named with the query, and the species when that is the likely cause)
          const auto species = std::find_if(resolved.warnings.begin(), resolved.warnings.end(),
                                            [](const std::string& warning) { return warning.starts_with("likely species mismatch"); });
          throw InputError(fmt::format("{}: {}{}", where.path(), error.what(),
                                       species == resolved.warnings.end() ? std::string() : fmt::format(" ({})", *species)));
        }
        use.refitted = true;
        use.refit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        use.refit_genes = fitted.refitted.back().provenance["refit"].value("n_shared_genes", std::int64_t{0});
        use.refit_panel = fitted.refitted.back().n_features();
        fitted.models[m] = &fitted.refitted.back();
        if (coverage.mass < options.warn_coverage_below || coverage.feature_share() < options.warn_coverage_below) {
          // (the similarity check, refitted too, compares the shared genes' most variable ones:
          // on a third of the reference's expression it finds few cells of types it lacks)
          annotation.warnings.push_back(fmt::format(
              "{}: refitted on the {} shared genes from the model's reference sample ({} cells, {:.1f} s){}", measured, use.refit_genes,
              model.reference.n_cells(), use.refit_seconds,
              model.similarity.empty() || coverage.mass >= options.warn_coverage_below ? "" : fmt::format("; {}", kUnlikeOnFewerGenes)));
        }
      } else if (coverage.mass < options.warn_coverage_below || coverage.feature_share() < options.warn_coverage_below) {
        annotation.warnings.push_back(fmt::format(
            "{}; {} of its {} feature genes: labels may be wrong. Fix: `celltyper annotate --reference REF.h5ad --label obs:COLUMN` "
            "(trains on the shared genes), or `celltyper train --restrict-genes {}`{}",
            measured, coverage.n_features_measured, coverage.n_features_genes, dataset.path(),
            can_refit(model) ? " (or drop --no-refit)" : ""));
      }
      const nlohmann::json calibration = calibration_summary(*fitted.models[m]);
      use.temperature = calibration["temperature"].get<double>();
      use.calibrated = calibration.contains("n_cells");
      if (!use.calibrated) use.uncalibrated_reason = calibration.value("reason", std::string("no calibration"));
      fitted.uses.push_back(std::move(use));
    }
    return fitted;
  };
  // Samples of a joined file whose own panel is padded with zeros: annotated on their genes.
  const std::vector<PaddedGroup> groups =
      padded_groups(dataset, options.embed.matrix, table, resolved, options.embed.genes, ubiquitous, query_genes, options.group);
  std::optional<RowSubsetDataset> unpadded;  // (the cells the whole file's models annotate)
  if (!groups.empty()) {
    std::vector<std::uint8_t> in_group(static_cast<std::size_t>(dataset.n_obs()), 0);
    for (const PaddedGroup& group : groups) {
      for (const std::int64_t row : group.rows) in_group[static_cast<std::size_t>(row)] = 1;
    }
    std::vector<std::int64_t> rows;
    for (std::size_t row = 0; row < in_group.size(); ++row) {
      if (in_group[row] == 0) rows.push_back(static_cast<std::int64_t>(row));
    }
    if (!rows.empty()) unpadded.emplace(dataset, std::move(rows), dataset.path());
  }
  Fitted whole = fit(dataset, query_genes, true, unpadded ? static_cast<const Dataset&>(*unpadded) : dataset);
  const std::vector<const CellTypeModel*>& models = whole.models;
  annotation.models = whole.uses;
  // An ensemble averages probabilities: a calibrated model's (sharper, as a rule) outweigh an
  // uncalibrated one's, which changes which class wins.
  if (std::any_of(whole.uses.begin(), whole.uses.end(), [](const ModelUse& use) { return use.calibrated; }) &&
      std::any_of(whole.uses.begin(), whole.uses.end(), [](const ModelUse& use) { return !use.calibrated; })) {
    std::vector<std::string> which;
    for (std::size_t m = 0; m < whole.uses.size(); ++m) {
      which.push_back(whole.uses[m].calibrated ? fmt::format("model {} calibrated (temperature {:.3g})", m + 1, whole.uses[m].temperature)
                                               : fmt::format("model {} not", m + 1));
    }
    annotation.warnings.push_back(fmt::format(
        "the models' scores are calibrated differently ({}): their averaged probabilities weigh the calibrated ones more; train every "
        "model with this celltyper's defaults (or all with --no-calibrate) to average them alike",
        fmt::join(which, ", ")));
  }
  // Uncalibrated scores run low (pbmc3k: mean 0.58 at accuracy 0.90): --min-score and
  // --hierarchical then leave cells Unassigned or coarse that a calibrated model names. Said unless
  // the user turned calibration off.
  std::vector<std::string> uncalibrated;
  for (std::size_t m = 0; m < whole.uses.size(); ++m) {
    const ModelUse& use = whole.uses[m];
    if (use.calibrated || use.uncalibrated_reason == kCalibrationTurnedOff || use.uncalibrated_reason == kCalibrationTurnedOffBefore) continue;
    uncalibrated.push_back(fmt::format("{}{}", whole.uses.size() == 1 ? "" : fmt::format("model {}: ", m + 1), use.uncalibrated_reason));
  }
  if (!uncalibrated.empty() && std::none_of(whole.uses.begin(), whole.uses.end(), [](const ModelUse& use) { return use.calibrated; })) {
    annotation.warnings.push_back(fmt::format(
        "{}the scores are the classifier's own probabilities, not calibrated ({}): they tend to run below the share of calls that are right, "
        "so --min-score and --hierarchical leave more cells Unassigned or at coarse terms than a calibrated model would; a model trained "
        "by this celltyper on at least 100 reference cells (20 held out) is calibrated",
        kNotePrefix, fmt::join(uncalibrated, "; ")));
  }
  const std::int64_t n = dataset.n_obs();
  // obs's names, and the over-clustering column when asked for: not the whole frame.
  const DataFrame obs = dataset.read_obs_columns(options.over_clustering.empty() ? std::vector<std::string>{}
                                                                                   : std::vector<std::string>{options.over_clustering});
  annotation.obs_names = obs.index;
  warn_about_repeated_names(annotation.obs_names, annotation);
  const Column* clusters = nullptr;
  if (!options.over_clustering.empty()) clusters = &obs.at(options.over_clustering, fmt::format("obs of {}", dataset.path()));

  // Union of classes, first-seen order: by name, and across models by Cell Ontology id ("B" of
  // one model and "B cell" of another, both CL:0000236, are one column; two classes of one
  // model stay two columns whatever their ids).
  std::map<std::string, std::size_t> column_of;
  std::map<std::string, std::size_t> column_of_id;
  std::vector<std::vector<std::size_t>> model_columns;
  std::vector<std::string> merged;  // "'B cell' as 'B' (CL:0000236)"
  for (const auto* model : models) {
    const std::size_t n_classes = model->class_names.size();
    std::vector<std::size_t> columns(n_classes, SIZE_MAX);
    std::set<std::size_t> taken;  // columns this model's classes fill: one class each
    // Same names first (a model's class keeps the column of its name), then the same CL terms.
    for (std::size_t c = 0; c < n_classes; ++c) {
      if (const auto named = column_of.find(model->class_names[c]); named != column_of.end() && taken.insert(named->second).second) {
        columns[c] = named->second;
      }
    }
    for (std::size_t c = 0; c < n_classes; ++c) {
      if (columns[c] != SIZE_MAX) continue;
      const auto& id = model->class_cl_ids[c];
      if (const auto same_term = id.empty() ? column_of_id.end() : column_of_id.find(id);
          same_term != column_of_id.end() && column_of.count(model->class_names[c]) == 0 && taken.insert(same_term->second).second) {
        columns[c] = same_term->second;
        merged.push_back(fmt::format("'{}' as '{}' ({})", model->class_names[c], annotation.class_names[columns[c]], id));
      }
    }
    for (std::size_t c = 0; c < n_classes; ++c) {
      const auto& name = model->class_names[c];
      const auto& id = model->class_cl_ids[c];
      if (columns[c] == SIZE_MAX) {  // a column of its own (a name already taken gets a suffix)
        std::string unique = name;
        for (int k = 2; column_of.count(unique) != 0; ++k) unique = fmt::format("{} ({})", name, k);
        columns[c] = annotation.class_names.size();
        column_of.emplace(unique, columns[c]);
        annotation.class_names.push_back(unique);
        annotation.class_cl_ids.push_back(id);
      } else if (annotation.class_cl_ids[columns[c]].empty()) {
        annotation.class_cl_ids[columns[c]] = id;
      }
      if (!id.empty()) column_of_id.emplace(id, columns[c]);
    }
    model_columns.push_back(std::move(columns));
  }
  const std::size_t c_all = annotation.class_names.size();
  if (models.size() > 1) {
    if (!merged.empty()) {
      annotation.warnings.push_back(fmt::format("classes of different models naming one Cell Ontology term are one class: {}",
                                                fmt::join(merged, ", ")));
    }
    for (std::size_t m = 0; m < models.size(); ++m) {
      const std::set<std::size_t> has(model_columns[m].begin(), model_columns[m].end());
      std::vector<std::string> lacking;
      for (std::size_t column = 0; column < c_all; ++column) {
        if (has.count(column) == 0) lacking.push_back(annotation.class_names[column]);
      }
      if (lacking.empty()) continue;
      annotation.warnings.push_back(fmt::format(
          "model {} has no class {}: the models' probabilities are averaged with 0 for it there, so such a class rarely wins; "
          "ensembles suit models trained on the same labels (or labels mapped to Cell Ontology ids)",
          m + 1, detail::some_of(lacking, 6)));
    }
  }
  // The similarity check (reference_similarity.hpp) reads the same features as the classifier:
  // per cell the best similarity over models, whether some model judged it, and whether some
  // model found it like one of its types.
  const auto has_profile = [](const CellTypeModel* model) { return !model->similarity.empty(); };
  const bool check_similarity = std::any_of(models.begin(), models.end(), has_profile);
  if (check_similarity && !std::all_of(models.begin(), models.end(), has_profile)) {
    // A model without profiles judges no cell: a cell of a type only it knows resembles none of
    // the others' types and is flagged (and Unassigned under --unassign-unlike).
    std::vector<std::string> bare;
    for (std::size_t m = 0; m < models.size(); ++m) {
      if (!has_profile(models[m])) bare.push_back(fmt::format("model {}", m + 1));
    }
    annotation.warnings.push_back(fmt::format(
        "{} {} no reference profiles (trained with --reference-sample 0, or by a celltyper before they were kept): the "
        "unlike-reference check judges cells against the other models' types only, so a cell of a type only {} knows may be "
        "flagged celltyper_unlike_reference{}",
        fmt::join(bare, ", "), bare.size() == 1 ? "keeps" : "keep", bare.size() == 1 ? "it" : "they",
        options.unassign_unlike ? " and left Unassigned" : ""));
  }
  // What the models say of the cells of a dataset (the query, or a sample of it), per cell.
  struct Predicted {
    std::vector<float> probabilities;   // [cells x c_all], summed over models
    std::vector<std::int32_t> models_used;
    std::vector<float> similarity;
    std::vector<std::uint8_t> judged;
    std::vector<std::uint8_t> judged_like;
  };
  // Predict every cell of `data` with `use` (per model its classes' columns in `class_columns`).
  const auto predict = [&](const Dataset& data, const std::vector<const CellTypeModel*>& use,
                           const std::vector<std::vector<std::size_t>>& class_columns, bool report_progress) {
    const std::int64_t cells = data.n_obs();
    std::int64_t done = 0;  // cells x models predicted (AnnotateOptions::progress)
    const auto advance = [&](std::int64_t rows) {
      done += rows;
      // (in cells: a pass per model over every cell)
      if (report_progress && options.progress) options.progress(done / static_cast<std::int64_t>(use.size()), cells);
    };
    Predicted predicted;
    predicted.probabilities.assign(static_cast<std::size_t>(cells) * c_all, 0.0f);
    predicted.models_used.assign(static_cast<std::size_t>(cells), 0);
    if (check_similarity) {
      predicted.similarity.assign(static_cast<std::size_t>(cells), std::numeric_limits<float>::quiet_NaN());
      predicted.judged.assign(static_cast<std::size_t>(cells), 0);
      predicted.judged_like.assign(static_cast<std::size_t>(cells), 0);
    }
    if (cells == 0) return predicted;  // (an empty shard of a scattered query: nothing to read)
    const auto record_similarity = [&](std::int64_t cell, const CellSimilarity& result) {  // (one thread per cell)
      const auto row = static_cast<std::size_t>(cell);
      if (result.best_class < 0) return;
      if (std::isnan(predicted.similarity[row]) || result.similarity > predicted.similarity[row]) predicted.similarity[row] = result.similarity;
      if (result.verdict == SimilarityVerdict::kShallow) return;
      predicted.judged[row] = 1;
      if (result.verdict == SimilarityVerdict::kLike) predicted.judged_like[row] = 1;
    };
    // Features are streamed block by block into the classifier: only the probabilities of all
    // cells are kept, never all their features (a cell's prediction depends only on that cell).
    // Consecutive blocks are gathered up to the memory cap before each prediction call, so that a
    // classifier's per-call overhead (thread start-up, XGBoost's DMatrix) is paid rarely.
    for (std::size_t m = 0; m < use.size(); ++m) {
      std::optional<SimilarityScorer> scorer;
      // The profile's genes: read beside the classifier's features (logistic regression's sparse
      // pass takes the ones outside the panel as extra columns; another classifier's dense features
      // serve when they hold them all), else in a pass of their own.
      const std::optional<LinearScores> linear = linear_scores(*use[m]);
      std::vector<std::int64_t> extra;  // profile genes outside the panel
      std::vector<std::int64_t> columns;  // the scorer's columns
      if (check_similarity && has_profile(use[m])) {  // (a refit for a padded sample has a profile the query's models may lack)
        std::vector<std::int64_t> panel_sorted = use[m]->panel.entrez_ids;
        std::sort(panel_sorted.begin(), panel_sorted.end());
        const std::vector<std::int64_t>& genes = use[m]->similarity.entrez_ids;
        std::set_difference(genes.begin(), genes.end(), panel_sorted.begin(), panel_sorted.end(), std::back_inserter(extra));
        if (linear || extra.empty()) {
          columns = use[m]->panel.entrez_ids;
          columns.insert(columns.end(), extra.begin(), extra.end());
        } else {
          columns = genes;
        }
        scorer.emplace(use[m]->similarity, columns);
      }
      const auto score_block = [&](const SparseFeatureBlock& block) {
        constexpr std::int64_t kRowsPerItem = 256;
        parallel_for((block.n_rows + kRowsPerItem - 1) / kRowsPerItem, options.embed.num_threads, [&](std::int64_t item) {
          for (std::int64_t r = item * kRowsPerItem; r < std::min(block.n_rows, (item + 1) * kRowsPerItem); ++r) {
            const auto local = static_cast<std::size_t>(r);
            if (block.empty[local] != 0) continue;
            const auto start = static_cast<std::size_t>(block.starts[local]);
            record_similarity(block.first_row + r, scorer->score(block.columns.data() + start, block.values.data() + start,
                                                                 static_cast<std::size_t>(block.counts[local])));
          }
        });
      };
      if (scorer && !linear && !extra.empty()) {  // a pass of its own
        ExpressionOptions settings = expression_options(options.embed, *use[m]);
        settings.size_factor_genes = use[m]->library_genes();
        // (no floor on the genes found: a query lacking them is judged on the ones it has, never refused)
        stream_sparse_expression_features(data, table, use[m]->similarity.entrez_ids, settings, score_block, 0.0);
        scorer.reset();
      }
      if (linear) {  // logreg on expression: sparse, fused
        const ExpressionFeatures run = add_linear_probabilities(data, *use[m], *linear, table, options.embed, class_columns[m], c_all,
                                                                predicted.probabilities, predicted.models_used,
                                                                [&](const SparseFeatureBlock& block) {
                                                                  if (scorer) score_block(block);
                                                                  advance(block.n_rows);
                                                                },
                                                                extra);
        annotation.warnings.insert(annotation.warnings.end(), run.warnings.begin(), run.warnings.end());
        warn_if_scales_differ(data, *use[m], run, options.embed, annotation.warnings);
        continue;
      }
      const std::size_t c = use[m]->class_names.size();
      const auto width = static_cast<std::size_t>(std::max<std::int64_t>(1, use[m]->n_features()));
      const std::size_t batch_rows = std::max<std::size_t>(1024, options.embed.memory_limit_bytes / (width * sizeof(float)));
      std::vector<float> batch;
      std::vector<std::uint8_t> batch_empty;
      std::int64_t batch_first = 0;
      const auto flush = [&] {
        const auto rows = static_cast<std::int64_t>(batch_empty.size());
        if (rows == 0) return;
        const std::vector<float> probabilities = use[m]->classifier->predict_proba(batch.data(), rows, options.embed.num_threads);
        for (std::int64_t i = 0; i < rows; ++i) {
          if (batch_empty[static_cast<std::size_t>(i)] != 0) continue;
          const auto row = static_cast<std::size_t>(batch_first + i);
          ++predicted.models_used[row];
          const float* p = probabilities.data() + static_cast<std::size_t>(i) * c;
          for (std::size_t k = 0; k < c; ++k) {
            if (class_columns[m][k] != SIZE_MAX) predicted.probabilities[row * c_all + class_columns[m][k]] += p[k];
          }
        }
        batch.clear();
        batch_empty.clear();
      };
      const auto gather = [&](std::int64_t first_row, std::int64_t n_rows, const float* features, const std::uint8_t* empty) {
        if (scorer) {
          for (std::int64_t i = 0; i < n_rows; ++i) {
            if (empty[i] == 0) record_similarity(first_row + i, scorer->score_dense(features + static_cast<std::size_t>(i) * width));
          }
        }
        if (!batch_empty.empty() && batch_empty.size() + static_cast<std::size_t>(n_rows) > batch_rows) flush();
        if (batch_empty.empty()) batch_first = first_row;
        batch.insert(batch.end(), features, features + static_cast<std::size_t>(n_rows) * width);
        batch_empty.insert(batch_empty.end(), empty, empty + n_rows);
        advance(n_rows);
      };
      stream_model_features(data, *use[m], table, options.embed, gather, annotation.warnings);
      flush();
    }
    return predicted;
  };
  Predicted predicted = predict(dataset, models, model_columns, true);
  // A padded sample's cells: predicted again by the models as used on its own genes.
  std::vector<std::uint8_t> cannot_annotate;  // cells of a sample measuring too few genes
  std::map<std::vector<std::int64_t>, Fitted> fits;
  for (const PaddedGroup& group : groups) {
    const RowSubsetDataset cells(dataset, group.rows, fmt::format("{} [{}={}]", dataset.path(), group.column, group.level));
    std::vector<std::int64_t> genes;
    std::set_difference(query_genes.begin(), query_genes.end(), group.padded.begin(), group.padded.end(), std::back_inserter(genes));
    annotation.warnings.push_back(fmt::format(
        "{}: {} of the query's genes have no count in any of its {} cells, among them {} of the {} genes that every cell type of the "
        "reference expresses ({}), while other cells of the file count them: a sample padded with zeros when the file was joined "
        "(anndata.concat(join=\"outer\"), a CELLxGENE Census query over datasets); its cells are annotated on the genes it measured{}",
        cells.path(), group.padded.size(), group.rows.size(), group.n_absent, group.n_named, fmt::join(group.examples, ", "),
        options.group.empty() ? fmt::format(" (samples told by obs '{}'; --group obs:COLUMN names another column, --group none "
                                            "reads the file as one panel)", group.column)
                              : std::string()));
    // (samples measuring the same genes share one fit)
    auto cached = fits.find(genes);
    if (cached == fits.end()) cached = fits.emplace(genes, fit(cells, genes, false, cells)).first;
    const Fitted& fitted = cached->second;
    PanelGroupUse record;
    record.column = group.column;
    record.level = group.level;
    record.n_cells = static_cast<std::int64_t>(group.rows.size());
    record.n_padded_genes = static_cast<std::int64_t>(group.padded.size());
    if (fitted.too_few.empty()) record.models = fitted.uses;
    annotation.panel_groups.push_back(std::move(record));
    if (!fitted.too_few.empty()) {
      annotation.warnings.push_back(fitted.too_few + ": its cells are left Unassigned (--allow-low-coverage annotates them anyway)");
      if (cannot_annotate.empty()) cannot_annotate.assign(static_cast<std::size_t>(n), 0);
      for (const std::int64_t row : group.rows) {  // (nothing the models said of its zeros stays)
        const auto cell = static_cast<std::size_t>(row);
        cannot_annotate[cell] = 1;
        predicted.models_used[cell] = 0;
        std::fill_n(predicted.probabilities.begin() + static_cast<std::ptrdiff_t>(cell * c_all), c_all, 0.0f);
        if (check_similarity) {
          predicted.similarity[cell] = std::numeric_limits<float>::quiet_NaN();
          predicted.judged[cell] = 0;
          predicted.judged_like[cell] = 0;
        }
      }
      continue;
    }
    // Each class the column it has as the whole query uses the model (SIZE_MAX: a class that
    // model lost, left out).
    std::vector<std::vector<std::size_t>> columns;
    for (std::size_t m = 0; m < fitted.models.size(); ++m) {
      const std::vector<std::string>& names = models[m]->class_names;
      std::vector<std::size_t> of_model;
      for (const std::string& name : fitted.models[m]->class_names) {
        const auto at = std::find(names.begin(), names.end(), name);
        of_model.push_back(at == names.end() ? SIZE_MAX : model_columns[m][static_cast<std::size_t>(at - names.begin())]);
      }
      columns.push_back(std::move(of_model));
    }
    const Predicted in_group = predict(cells, fitted.models, columns, false);
    for (std::size_t i = 0; i < group.rows.size(); ++i) {
      const auto row = static_cast<std::size_t>(group.rows[i]);
      std::copy_n(in_group.probabilities.begin() + static_cast<std::ptrdiff_t>(i * c_all), c_all,
                  predicted.probabilities.begin() + static_cast<std::ptrdiff_t>(row * c_all));
      predicted.models_used[row] = in_group.models_used[i];
      if (check_similarity) {
        predicted.similarity[row] = in_group.similarity[i];
        predicted.judged[row] = in_group.judged[i];
        predicted.judged_like[row] = in_group.judged_like[i];
      }
    }
  }
  annotation.probabilities = std::move(predicted.probabilities);
  std::vector<std::int32_t> models_used = std::move(predicted.models_used);
  annotation.similarity = std::move(predicted.similarity);
  const std::vector<std::uint8_t> judged = std::move(predicted.judged);
  const std::vector<std::uint8_t> judged_like = std::move(predicted.judged_like);
  const auto k_best = static_cast<std::size_t>(std::min<std::int64_t>(options.top_k, static_cast<std::int64_t>(c_all)));
  annotation.labels.resize(static_cast<std::size_t>(n));
  annotation.scores.resize(static_cast<std::size_t>(n));
  annotation.cl_ids.resize(static_cast<std::size_t>(n));
  annotation.top_labels.assign(k_best, std::vector<std::string>(static_cast<std::size_t>(n)));
  annotation.top_scores.assign(k_best, std::vector<float>(static_cast<std::size_t>(n)));
  std::int64_t n_empty = 0;
  std::vector<std::size_t> order(c_all);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto row = static_cast<std::size_t>(i);
    float* p = annotation.probabilities.data() + row * c_all;
    if (models_used[row] == 0) {
      if (cannot_annotate.empty() || cannot_annotate[row] == 0) ++n_empty;
      annotation.labels[row] = kUnassigned;
      annotation.scores[row] = 0;
      for (std::size_t k = 0; k < k_best; ++k) annotation.top_labels[k][row] = kUnassigned;
      continue;
    }
    for (std::size_t k = 0; k < c_all; ++k) p[k] /= static_cast<float>(models_used[row]);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [p](std::size_t a, std::size_t b) { return p[a] > p[b]; });
    const std::size_t best = order.front();
    annotation.scores[row] = p[best];
    if (p[best] >= options.min_score) {
      annotation.labels[row] = annotation.class_names[best];
      annotation.cl_ids[row] = annotation.class_cl_ids[best];
    } else {
      annotation.labels[row] = kUnassigned;
    }
    for (std::size_t k = 0; k < k_best; ++k) {
      annotation.top_labels[k][row] = annotation.class_names[order[k]];
      annotation.top_scores[k][row] = p[order[k]];
    }
  }
  if (n_empty > 0) {
    annotation.warnings.push_back(fmt::format("{} cell{} no count in any gene the model{} use{}: Unassigned", n_empty, n_empty == 1 ? " has" : "s have",
                                              given.size() == 1 ? "" : "s", given.size() == 1 ? "s" : ""));
  }
  const bool depth_matched = std::any_of(models.begin(), models.end(), [](const CellTypeModel* model) {
    return model->provenance.contains("depth_matched") || (model->provenance.contains("refit") && model->provenance["refit"].contains("depth_ratio"));
  });
  const ShallowCells shallow_cells = warn_about_shallow_cells(dataset, options.embed.matrix, resolved, n_padded_genes, depth_matched, annotation);

  // Per cell: the measured share of its predicted types' reference expression (class profiles
  // of the models' reference samples weighted by the cell's probabilities), under the models'
  // coverage of the genes its cells measured (`uses`: the query's, or a padded sample's for its
  // `rows`).
  annotation.gene_coverage.assign(static_cast<std::size_t>(n), 0.0f);
  const auto cell_coverage = [&](const std::vector<ModelUse>& uses, const std::vector<std::int64_t>* rows) {
    std::vector<double> mass_sum(c_all, 0.0);
    std::vector<int> mass_models(c_all, 0);
    double dataset_mass = 0;
    for (std::size_t m = 0; m < uses.size(); ++m) {
      const ModelCoverage& coverage = uses[m].coverage;
      dataset_mass += coverage.mass / static_cast<double>(uses.size());
      for (std::size_t c = 0; c < coverage.class_mass.size(); ++c) {
        const auto column = column_of.find(given[m]->class_names[c]);
        if (column == column_of.end()) continue;  // a class the refitted model lost
        mass_sum[column->second] += coverage.class_mass[c];
        ++mass_models[column->second];
      }
    }
    const std::int64_t count = rows == nullptr ? n : static_cast<std::int64_t>(rows->size());
    for (std::int64_t r = 0; r < count; ++r) {
      const auto i = static_cast<std::size_t>(rows == nullptr ? r : (*rows)[static_cast<std::size_t>(r)]);
      const float* p = annotation.probabilities.data() + i * c_all;
      double weighted = 0;
      double weight = 0;
      for (std::size_t c = 0; c < c_all; ++c) {
        if (mass_models[c] == 0) continue;
        weighted += p[c] * mass_sum[c] / mass_models[c];
        weight += p[c];
      }
      annotation.gene_coverage[i] = static_cast<float>(weight > 0 ? weighted / weight : dataset_mass);
    }
  };
  cell_coverage(annotation.models, nullptr);
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (!annotation.panel_groups[g].models.empty()) {
      cell_coverage(annotation.panel_groups[g].models, &groups[g].rows);
    } else {  // (too few genes to annotate: next to none of the reference expression)
      for (const std::int64_t row : groups[g].rows) annotation.gene_coverage[static_cast<std::size_t>(row)] = 0.0f;
    }
  }

  if (options.hierarchical) {
    if (options.ontology == nullptr) throw InputError("--hierarchical needs the Cell Ontology (--ontology FILE)");
    std::vector<std::uint8_t> skip(models_used.size());
    for (std::size_t row = 0; row < skip.size(); ++row) skip[row] = models_used[row] == 0 ? 1 : 0;
    const double threshold = options.min_score > 0 ? options.min_score : kHierarchicalMinScore;
    HierarchicalPrediction hierarchical =
        predict_hierarchical(annotation.probabilities, annotation.class_names, annotation.class_cl_ids, *options.ontology, threshold, skip);
    annotation.flat_labels = std::move(annotation.labels);
    annotation.has_flat_labels = true;
    annotation.labels = std::move(hierarchical.labels);
    annotation.cl_ids = std::move(hierarchical.cl_ids);
    for (std::size_t row = 0; row < skip.size(); ++row) {
      if (skip[row] == 0) annotation.scores[row] = hierarchical.scores[row];
    }
    // An uncertain cell of a class without a CL id (or with one the ontology lacks) has no
    // coarser term to go to: say so.
    std::set<std::string> without_id;
    for (std::size_t c = 0; c < annotation.class_names.size(); ++c) {
      if (annotation.class_cl_ids[c].empty() || !options.ontology->contains(annotation.class_cl_ids[c])) without_id.insert(annotation.class_names[c]);
    }
    std::int64_t stranded = 0;
    std::set<std::string> stranded_classes;
    for (std::size_t row = 0; row < skip.size(); ++row) {
      if (skip[row] != 0 || annotation.labels[row] != kUnassigned) continue;
      // (its most probable class, whatever --min-score made of the flat label)
      const float* p = annotation.probabilities.data() + row * c_all;
      const std::string& best = annotation.class_names[static_cast<std::size_t>(std::max_element(p, p + c_all) - p)];
      if (without_id.count(best) == 0) continue;
      ++stranded;
      stranded_classes.insert(best);
    }
    if (stranded > 0) {
      annotation.warnings.push_back(fmt::format(
          "--hierarchical: {} cells left Unassigned: their most probable class has no Cell Ontology id ({}) or one the ontology "
          "lacks, so no coarser term can take them below a score of {}; train with --label-map TSV (columns label, cl_id) to name the "
          "classes' terms, or pass the ontology release they come from (--ontology FILE)",
          stranded, fmt::join(stranded_classes, ", "), threshold));
    }
  }
  // (after hierarchical prediction: the warnings name the labels given)
  bool warned_unlike = false;  // (the query, or a label of it: no sample's warning repeats it)
  if (check_similarity) {
    annotation.unlike_reference.assign(static_cast<std::size_t>(n), 0);
    annotation.similarity_judged.assign(static_cast<std::size_t>(n), 0);
    annotation.has_similarity = true;
    std::map<std::string, std::int64_t> unlike_labels;
    std::map<std::string, std::int64_t> judged_labels;
    std::int64_t n_predicted = 0;  // cells some model predicted (not empty)
    for (std::size_t row = 0; row < static_cast<std::size_t>(n); ++row) {
      if (models_used[row] != 0) ++n_predicted;
      if (judged[row] == 0 || models_used[row] == 0) continue;
      annotation.similarity_judged[row] = 1;
      ++annotation.n_similarity_judged;
      const std::string& label = annotation.labels[row];
      const bool named = label != kUnassigned;  // (warnings name the labels given)
      if (named) ++judged_labels[label];
      if (judged_like[row] != 0) continue;
      annotation.unlike_reference[row] = 1;
      ++annotation.n_unlike_reference;
      if (named) ++unlike_labels[label];
    }
    const auto judged_cells = static_cast<double>(annotation.n_similarity_judged);
    // Most cells not judged: the check says nothing of them (a PBMC query under a pancreas model
    // detects few of its genes, as does a 10x query under a model of a 765-gene panel).
    if (n_predicted >= kSimilarityWarnMinCells && 2 * annotation.n_similarity_judged < n_predicted) {
      // (a query far shallower than the reference, as the refit or reference mode found: its depth is the cause)
      const bool shallow = depth_matched;
      annotation.warnings.push_back(fmt::format(
          "the check whether cells resemble the reference's types judged only {} of {} cells ({:.0f}%): the others detect fewer of the "
          "model's compared genes than its types' own cells do at 1,000 counts ({}); their celltyper_unlike_reference is False for want "
          "of a verdict (obs celltyper_similarity_judged tells them apart)",
          annotation.n_similarity_judged, n_predicted, 100.0 * judged_cells / static_cast<double>(n_predicted),
          shallow                                        ? "the query's cells are shallow, see the depth note: cells of a type the reference lacks go unflagged"
          : shallow_cells.warned && !shallow_cells.transcripts ? "barcodes of few detected genes, see the warning on them: empty droplets or debris"
                                                               : "shallow cells, or cells that do not express the reference's genes: another tissue or species?"));
    }
    if (annotation.n_unlike_reference >= kSimilarityWarnMinCells &&
        static_cast<double>(annotation.n_unlike_reference) >= kSimilarityWarnShare * judged_cells) {
      std::vector<std::pair<std::string, std::int64_t>> by_count(unlike_labels.begin(), unlike_labels.end());
      std::stable_sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
      std::vector<std::string> named;
      for (std::size_t i = 0; i < std::min<std::size_t>(3, by_count.size()); ++i) named.push_back(fmt::format("'{}' {}", by_count[i].first, by_count[i].second));
      warned_unlike = true;
      annotation.warnings.push_back(fmt::format(
          "{} of the {} cells deep enough to judge ({:.0f}%) resemble none of the reference's cell types (their correlation with the "
          "profile of the type they match best is below what that type's own cells reach at their depth; obs "
          "celltyper_unlike_reference): {}{}",
          annotation.n_unlike_reference, annotation.n_similarity_judged, 100.0 * annotation.n_unlike_reference / judged_cells,
          species_mismatch ? fmt::format("across species this check says little of the labels{} (see the species warning){}",
                                         named.empty() ? std::string() : fmt::format(" ({})", fmt::join(named, ", ")),
                                         options.unassign_unlike ? "; --unassign-unlike left them Unassigned all the same" : "")
          : options.unassign_unlike ? fmt::format("--unassign-unlike left them Unassigned{}; the references may lack these types",
                                                  named.empty() ? std::string() : fmt::format(" (their labels would have been {})", fmt::join(named, ", ")))
                                    : fmt::format("their labels{} are likely wrong, the references may lack these types",
                                                  named.empty() ? std::string() : fmt::format(" ({})", fmt::join(named, ", "))),
          std::any_of(models.begin(), models.end(), [&](const CellTypeModel* model) { return has_profile(model) && model->similarity.n_levels == 1; })
              ? " (or, as a reference of log values gives no depths to compare with, the query is much shallower than it)"
              : ""));
    } else {
      // Fewer overall, but a label given mostly to such cells (a type the references lack, called
      // by its nearest class).
      std::vector<std::string> labels;
      std::int64_t judged_named = 0;
      std::int64_t unlike_named = 0;
      for (const auto& [label, count] : judged_labels) judged_named += count;
      for (const auto& [label, count] : unlike_labels) unlike_named += count;
      // A class of few reference cells has a rough profile (its threshold, a 1% quantile, rests on
      // them): said beside its label (Wang's 10 delta cells: 26% of Xin's delta cells below it).
      const auto few_cells = [&](const std::string& label) {
        std::int64_t cells = -1;
        for (const CellTypeModel* model : models) {
          const nlohmann::json& provenance = model->provenance;
          if (!provenance.is_object() || !provenance.contains("class_counts") || !provenance["class_counts"].is_object()) continue;
          const nlohmann::json& counts = provenance["class_counts"];
          if (counts.contains(label) && counts[label].is_number_integer()) cells = std::max(cells, counts[label].get<std::int64_t>());
        }
        return cells >= 0 && cells < kSimilarityFewClassCells ? fmt::format("; its profile rests on {} reference cells", cells) : std::string();
      };
      for (const auto& [label, count] : unlike_labels) {
        const std::int64_t of = judged_labels[label];
        const double share = static_cast<double>(count) / static_cast<double>(std::max<std::int64_t>(of, 1));
        // the other labels' judged cells: how often a cell of a type the references have is unlike
        const std::int64_t rest = judged_named - of;
        const double rest_share = rest > 0 ? static_cast<double>(unlike_named - count) / static_cast<double>(rest) : 0.0;
        const bool most = of >= kSimilarityWarnLabelCells && share >= kSimilarityWarnLabelShare;
        const bool beyond_the_rest = count >= kSimilarityWarnLabelMinUnlike && share >= kSimilarityWarnLabelExcessShare && rest >= kSimilarityWarnRestCells &&
                                     share >= kSimilarityWarnLabelExcess * rest_share;
        const bool few_but_all = of < kSimilarityWarnLabelCells && count >= kSimilarityWarnFewLabelMinUnlike &&
                                 share >= kSimilarityWarnFewLabelShare && rest >= kSimilarityWarnRestCells && rest_share < kSimilarityWarnFewLabelRestShare;
        if (most || few_but_all) {
          labels.push_back(fmt::format("'{}' {} of {} ({:.0f}%{})", label, count, of, 100.0 * share, few_cells(label)));
        } else if (beyond_the_rest) {
          labels.push_back(fmt::format("'{}' {} of {} ({:.0f}%, against {:.1f}% of the other labels' cells{})", label, count, of, 100.0 * share,
                                       100.0 * rest_share, few_cells(label)));
        }
      }
      if (!labels.empty()) {
        warned_unlike = true;
        annotation.warnings.push_back(
            options.unassign_unlike
                ? fmt::format("cells that would be labelled {} resemble none of the reference's cell types (obs celltyper_unlike_reference): "
                              "--unassign-unlike left them Unassigned; the references may lack their type",
                              fmt::join(labels, ", "))
                : fmt::format("cells labelled {} resemble none of the reference's cell types (obs celltyper_unlike_reference): the "
                              "references may lack their type, and these labels name its nearest class",
                              fmt::join(labels, ", ")));
      }
    }
  }
  // --unassign-unlike: cells that resemble none of the reference's types are Unassigned (SingleR's
  // pruned labels), after the warnings above named the labels they would have had and before the
  // majority vote (a cluster of such cells votes Unassigned).
  if (options.unassign_unlike) {
    if (!check_similarity) {
      annotation.warnings.push_back(
          "--unassign-unlike: no model carries reference profiles (trained with --reference-sample 0, or by a celltyper before "
          "they were kept), so no cell can be found unlike the reference's types and none is left Unassigned for it");
    } else {
      for (std::size_t row = 0; row < annotation.unlike_reference.size(); ++row) {
        if (annotation.unlike_reference[row] == 0) continue;
        if (annotation.labels[row] != kUnassigned) ++annotation.n_unassigned_unlike;
        annotation.labels[row] = kUnassigned;
        annotation.cl_ids[row].clear();
        if (annotation.has_flat_labels) annotation.flat_labels[row] = kUnassigned;
      }
    }
  }
  if (clusters != nullptr) {
    // The label most of each cluster's cells have, Unassigned (below --min-score) a vote like any
    // (as CellTypist's majority voting: a cluster of Unassigned cells stays so, whatever one
    // confident cell says); ties go to the class listed first, Unassigned last. It counts the
    // flat labels (the classes), --hierarchical's too, after --unassign-unlike.
    const std::vector<std::string>& voters = annotation.has_flat_labels ? annotation.flat_labels : annotation.labels;
    std::map<std::string, std::vector<std::int64_t>> votes;
    std::map<std::string, std::int64_t> class_index;
    for (std::size_t c = 0; c < c_all; ++c) class_index[annotation.class_names[c]] = static_cast<std::int64_t>(c);
    std::int64_t n_no_cluster = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto row = static_cast<std::size_t>(i);
      if (group_value(*clusters, row) == kMissingGroup) {  // (no cluster: no vote, its own label)
        ++n_no_cluster;
        continue;
      }
      auto& count = votes[clusters->value_as_string(row)];
      count.resize(c_all + 1, 0);  // (the last: Unassigned)
      const auto found = class_index.find(voters[row]);
      ++count[found != class_index.end() ? static_cast<std::size_t>(found->second) : c_all];
    }
    std::map<std::string, std::string> winner;
    for (const auto& [cluster, count] : votes) {
      const auto best = static_cast<std::size_t>(std::max_element(count.begin(), count.end()) - count.begin());
      winner[cluster] = best < c_all ? annotation.class_names[best] : kUnassigned;
    }
    if (votes.size() * 2 > static_cast<std::size_t>(n) && n >= 20) {
      annotation.warnings.push_back(fmt::format("--over-clustering {}: {} clusters for {} cells: not clusters (a continuous value?); the "
                                                "majority vote is then each cell's own label",
                                                options.over_clustering, votes.size(), n));
    }
    if (n_no_cluster > 0) {
      annotation.warnings.push_back(fmt::format("--over-clustering {}: {} of {} cells have no cluster (a missing value): their "
                                                "celltyper_majority_vote is their own label, not a cluster's vote",
                                                options.over_clustering, n_no_cluster, n));
    }
    annotation.majority_vote.resize(static_cast<std::size_t>(n));
    annotation.has_majority_vote = true;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto row = static_cast<std::size_t>(i);
      annotation.majority_vote[row] = group_value(*clusters, row) == kMissingGroup ? voters[row] : winner[clusters->value_as_string(row)];
    }
  }
  // The terms' names beside their ids (a class named "CD14+ Mono" is CL:0001054, "CD14-positive monocyte").
  // (an obsolete id by the name of its replacement, as --hierarchical places it; every file of
  // classes with ids gets the column, a file of no cells too)
  if (options.ontology != nullptr &&
      std::any_of(annotation.class_cl_ids.begin(), annotation.class_cl_ids.end(), [](const std::string& id) { return !id.empty(); })) {
    annotation.has_cl_names = true;
    annotation.cl_names.assign(annotation.cl_ids.size(), std::string());
    std::map<std::string, std::string> name_of;
    for (std::size_t row = 0; row < annotation.cl_ids.size(); ++row) {
      const std::string& id = annotation.cl_ids[row];
      if (id.empty()) continue;
      auto found = name_of.find(id);
      if (found == name_of.end()) {
        found = name_of.emplace(id, options.ontology->contains(id) ? options.ontology->label(options.ontology->canonical(id)) : std::string()).first;
      }
      annotation.cl_names[row] = found->second;
    }
  }
  if (!options.group.empty() && options.group != "none") {
    summarize_samples(dataset, options.group.rfind("obs:", 0) == 0 ? options.group.substr(4) : options.group, shallow_cells, warned_unlike,
                      options.unassign_unlike && check_similarity, annotation);
  }
  // (a padded sample's pass may repeat a warning of the whole query's)
  std::set<std::string> said;
  annotation.warnings.erase(std::remove_if(annotation.warnings.begin(), annotation.warnings.end(),
                                           [&said](const std::string& warning) { return !said.insert(warning).second; }),
                            annotation.warnings.end());
  return annotation;
}

std::vector<Column> annotation_obs_columns(const Annotation& annotation) {
  std::vector<Column> columns;
  auto floats = [](const std::vector<float>& values) { return std::vector<double>(values.begin(), values.end()); };
  columns.push_back(Column::categorical("celltyper_label", annotation.labels));
  columns.push_back(Column::from_floats("celltyper_score", floats(annotation.scores), "float32"));
  if (std::any_of(annotation.class_cl_ids.begin(), annotation.class_cl_ids.end(), [](const auto& id) { return !id.empty(); })) {
    columns.push_back(Column::categorical_or_missing("celltyper_ontology_id", annotation.cl_ids));
    if (annotation.has_cl_names) columns.push_back(Column::categorical_or_missing("celltyper_ontology_name", annotation.cl_names));
  }
  for (std::size_t k = 0; k < annotation.top_labels.size(); ++k) {
    columns.push_back(Column::categorical(fmt::format("celltyper_top{}_label", k + 1), annotation.top_labels[k]));
    columns.push_back(Column::from_floats(fmt::format("celltyper_top{}_score", k + 1), floats(annotation.top_scores[k]), "float32"));
  }
  if (annotation.has_majority_vote) columns.push_back(Column::categorical("celltyper_majority_vote", annotation.majority_vote));
  if (annotation.has_flat_labels) columns.push_back(Column::categorical("celltyper_flat_label", annotation.flat_labels));
  if (annotation.gene_coverage.size() == annotation.labels.size()) {
    columns.push_back(Column::from_floats("celltyper_gene_coverage", floats(annotation.gene_coverage), "float32"));
  }
  if (annotation.has_similarity) {
    columns.push_back(Column::from_floats("celltyper_similarity", floats(annotation.similarity), "float32"));
    columns.push_back(Column::from_bools("celltyper_unlike_reference", annotation.unlike_reference));
    columns.push_back(Column::from_bools("celltyper_similarity_judged", annotation.similarity_judged));
  }
  return columns;
}

bool is_annotation_column(std::string_view name) {
  constexpr std::string_view kPrefix = "celltyper_";
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  name.remove_prefix(kPrefix.size());
  for (const std::string_view own : {"label", "score", "ontology_id", "ontology_name", "gene_coverage", "similarity", "unlike_reference", "similarity_judged",
                                     "majority_vote", "flat_label"}) {
    if (name == own) return true;
  }
  // top{k}_label, top{k}_score
  if (name.substr(0, 3) != "top") return false;
  name.remove_prefix(3);
  const std::size_t digits = name.find_first_not_of("0123456789");
  if (digits == 0 || digits == std::string_view::npos) return false;
  name.remove_prefix(digits);
  return name == "_label" || name == "_score";
}

H5adAdditions annotation_additions(const Annotation& annotation) {
  H5adAdditions additions;
  additions.obs_columns = annotation_obs_columns(annotation);
  additions.drop_obs_column = [](const std::string& name) { return is_annotation_column(name); };
  DenseMatrix probabilities;
  probabilities.rows = static_cast<std::int64_t>(annotation.labels.size());
  probabilities.cols = static_cast<std::int64_t>(annotation.class_names.size());
  probabilities.values = annotation.probabilities;
  additions.obsm["celltyper_probabilities"] = std::move(probabilities);
  // lists of strings (anndata's string-array): pd.DataFrame(obsm[...], columns=uns[...]) works
  additions.uns_string_arrays["celltyper_probability_classes"] = annotation.class_names;
  additions.uns_string_arrays["celltyper_probability_cl_ids"] = annotation.class_cl_ids;
  return additions;
}

std::vector<std::pair<std::string, std::int64_t>> label_counts(const Annotation& annotation) {
  std::map<std::string, std::int64_t> counts;
  for (const auto& label : annotation.labels) ++counts[label];
  std::vector<std::pair<std::string, std::int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return sorted;
}

ScoreSummary summarize_scores(const std::vector<float>& scores) {
  ScoreSummary summary;
  if (scores.empty()) return summary;
  std::vector<float> sorted = scores;
  const std::size_t middle = sorted.size() / 2;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(middle), sorted.end());
  summary.median = sorted[middle];
  if (sorted.size() % 2 == 0) summary.median = (summary.median + *std::max_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(middle))) / 2;
  summary.n_low = std::count_if(scores.begin(), scores.end(), [](float score) { return !(score >= kLowScore); });
  return summary;
}

TrainResult train_for_query(const std::vector<const Dataset*>& references, const Dataset& query, TrainOptions options,
                            const GeneStore& store, const GeneTable& given_table, const EmbedOptions& query_embed,
                            std::int64_t min_shared_genes) {
  // References of another species' ids than the table's: their own var names are the genes, the
  // query's too (own_gene_names_table); the model records so.
  std::string own_names;
  const std::optional<GeneTable> own = own_gene_names_table(references, options, given_table, &own_names);
  const GeneTable& table = own ? *own : given_table;
  // Validation cells only calibrate the scores (no calibration: none); the model on every cell is
  // the one a refit of a saved model on these genes trains.
  if (!options.calibrate) options.validation_fraction = 0;
  options.final_fit_from_scratch = true;
  options.restrict_genes = dataset_genes(query, query_embed.matrix, table, query_embed.genes);
  if (options.restrict_genes.empty()) {
    throw InputError(fmt::format("{}: none of its {} gene names resolves in the gene table: nothing to train on (choose another var "
                                 "column of gene names, or check the species)",
                                 query.path(), query.n_vars()));
  }
  // The references' genes, and of them the query's: the gene floor model mode applies.
  std::vector<std::int64_t> reference_genes;
  const auto matrix_of = [&](std::size_t r) -> const std::string& {
    return !options.matrices.empty() && !options.matrices[r].empty() ? options.matrices[r] : options.embed.matrix;
  };
  std::vector<std::vector<std::int64_t>> own_genes;  // per reference
  for (std::size_t r = 0; r < references.size(); ++r) {
    const std::vector<std::int64_t>& own = own_genes.emplace_back(dataset_genes(*references[r], matrix_of(r), table, options.embed.genes));
    std::vector<std::int64_t> merged;
    std::set_union(reference_genes.begin(), reference_genes.end(), own.begin(), own.end(), std::back_inserter(merged));
    reference_genes = std::move(merged);
  }
  std::vector<std::int64_t> shared;
  std::set_intersection(reference_genes.begin(), reference_genes.end(), options.restrict_genes.begin(), options.restrict_genes.end(),
                        std::back_inserter(shared));
  const auto needed = std::min<std::int64_t>(min_shared_genes, static_cast<std::int64_t>(reference_genes.size()));
  if (static_cast<std::int64_t>(shared.size()) < needed) {
    throw InputError(fmt::format("{} measures {} of the references' {} genes: too few to annotate (need {}); annotate with a reference "
                                 "that measures this panel, or pass --allow-low-coverage",
                                 query.path(), shared.size(), reference_genes.size(), needed));
  }
  // Depth matching, as a refit does (refit_model): a reference whose cells hold more than twice
  // the query's counts over the shared genes trains on its cells thinned to the query's depth.
  std::vector<std::unique_ptr<ThinnedDataset>> thinned;
  std::vector<const Dataset*> views = references;
  std::vector<std::string> notes;
  // A reference's median cell's counts over the shared genes, read once: the coverage warning and
  // depth matching both use it.
  std::vector<std::optional<double>> shared_depths(references.size());
  const auto shared_depth = [&](std::size_t r) {
    if (!shared_depths[r]) {
      shared_depths[r] = median_counts_over(*references[r], resolve_matrix_source(*references[r], matrix_of(r)), table, options.embed.genes, shared, false);
    }
    return *shared_depths[r];
  };
  // ... and over its own genes (the same when the query measures them all).
  std::vector<std::optional<double>> whole_depths(references.size());
  const auto whole_depth = [&](std::size_t r) {
    if (!whole_depths[r]) {
      whole_depths[r] = shared.size() < reference_genes.size() ? median_counts_over(*references[r], resolve_matrix_source(*references[r], matrix_of(r)),
                                                                                    table, options.embed.genes, own_genes[r], false)
                                                                : shared_depth(r);
    }
    return *whole_depths[r];
  };
  // A query measuring a small share of a reference's counts (its median cell's, over the shared
  // genes): model mode's coverage warning, which the model trained on those genes cannot give.
  for (std::size_t r = 0; shared.size() < reference_genes.size() && r < references.size(); ++r) {
    const double whole = whole_depth(r);
    if (whole <= 0 || shared_depth(r) >= AnnotateOptions{}.warn_coverage_below * whole) continue;
    std::vector<std::int64_t> measured;
    std::set_intersection(own_genes[r].begin(), own_genes[r].end(), shared.begin(), shared.end(), std::back_inserter(measured));
    notes.push_back(fmt::format("{} measures {} of the {} genes of {} ({} of its counts in the median cell): trained on the genes it measures; {}",
                                query.path(), measured.size(), own_genes[r].size(), references[r]->path(), percent_of(shared_depth(r) / whole),
                                kUnlikeOnFewerGenes));
  }
  nlohmann::json matched = nlohmann::json::array();
  if (options.features == kFeaturesExpression && options.augment_depth) {
    const double query_depth = median_counts_over(query, resolve_matrix_source(query, query_embed.matrix), table, query_embed.genes, shared, true);
    for (std::size_t r = 0; query_depth > 0 && r < references.size(); ++r) {
      const double depth = shared_depth(r);
      // (a query of nearly all the reference's genes is matched further down, as model mode's is)
      const bool all_genes = depth >= AnnotateOptions{}.refit_below * whole_depth(r);
      if (depth <= 0 || query_depth >= (all_genes ? kDepthMatchRatioAllGenes : kDepthMatchRatio) * depth) continue;
      const double ratio = query_depth / depth;
      const auto [low, high] = depth_match_range(ratio, depth);
      thinned.push_back(std::make_unique<ThinnedDataset>(*references[r], low, high, options.seed ^ 0xD3E7A11ULL, std::vector<std::int64_t>{},
                                                         std::vector<std::uint8_t>{}, references[r]->path()));
      views[r] = thinned.back().get();
      matched.push_back({{"reference", references[r]->path()}, {"depth_ratio", ratio}});
      notes.push_back(fmt::format("{}{}: its cells hold {} of the counts of the reference's cells ({}) over the genes they share (median "
                                  "{:.0f}): trained on the reference cells thinned to that depth (an imaging panel's or a shallow run's cells)",
                                  kNotePrefix, query.path(), percent_of(ratio), references[r]->path(), query_depth));
    }
  }
  TrainResult result = train_model(views, options, store, table);
  result.warnings.insert(result.warnings.end(), notes.begin(), notes.end());
  if (own) result.warnings.insert(result.warnings.begin(), own_names);
  if (!matched.empty()) result.model.provenance["depth_matched"] = matched;  // (its reference sample holds the thinned cells)
  result.n_reference_genes = static_cast<std::int64_t>(reference_genes.size());
  result.n_shared_genes = static_cast<std::int64_t>(shared.size());
  return result;
}

RecordedGeneTable models_recorded_gene_table(const std::vector<const CellTypeModel*>& models,
                                             const std::function<const GeneTable*()>& standard, const std::string& requested) {
  RecordedGeneTable chosen;
  // Models trained on their references' own var names (another species, own_gene_names_table): the
  // query's names are matched to theirs, whatever the default table (a name has one id in every
  // such model, so several of them share one table).
  if (!models.empty() && std::all_of(models.begin(), models.end(), [](const CellTypeModel* model) { return trained_on_own_gene_names(*model); })) {
    chosen.table = models_gene_table(models);
    chosen.message = fmt::format("{}the model{} genes are {} references' var names as written (not a gene table's): "
                                 "the query's var names are matched to {} {} genes (letter case aside)",
                                 kNotePrefix, models.size() == 1 ? "'s" : "s'", models.size() == 1 ? "its" : "their",
                                 models.size() == 1 ? "its" : "their", chosen.table->size());
    if (!requested.empty()) {
      chosen.message += fmt::format("; --gene-table {} is not used: the model{} the query in {} own genes' names", requested,
                                    models.size() == 1 ? " reads" : "s read", models.size() == 1 ? "its" : "their");
    }
    return chosen;
  }
  if (!requested.empty()) return chosen;  // (the table given serves)
  if (const char* given = std::getenv("CELLTYPER_GENE_TABLE"); given != nullptr && *given != '\0') return chosen;
  std::string recorded;
  std::string hash;
  for (const CellTypeModel* model : models) {
    const std::string table = model->provenance.value("gene_table", std::string());
    const std::string table_hash = model->provenance.value("gene_table_hash", std::string());
    if (table.empty() || table_hash.empty() || (!recorded.empty() && (table != recorded || table_hash != hash))) return chosen;
    recorded = table;
    hash = table_hash;
  }
  const std::string standard_path = default_gene_table_path();
  std::error_code error;
  if (recorded.empty() || recorded == standard_path || !std::filesystem::path(recorded).is_absolute()) return chosen;
  // The default table of the machine the model was trained on (org.Hs.eg.db's, elsewhere
  // installed): this machine's default serves, as for every model, without a word.
  if (std::filesystem::path(recorded).filename() == "org.Hs.eg.sqlite") return chosen;
  if (!standard_path.empty() && std::filesystem::equivalent(recorded, standard_path, error)) return chosen;
  std::string why;  // why the recorded table cannot serve
  if (!std::filesystem::is_regular_file(recorded, error)) {
    why = "is not on this machine";
  } else {
    try {
      GeneTable table = load_gene_table_cached(recorded, GeneTableFields::kIdentifiers);
      if (table.content_hash_hex() == hash) {
        chosen.message = fmt::format("{}gene table {}, which the model was trained with (--gene-table to change)", kNotePrefix, recorded);
        chosen.table = std::move(table);
        return chosen;
      }
      why = "holds other content now than when the model was trained";
    } catch (const Error& failure) {
      why = fmt::format("cannot be read ({})", failure.what());
    }
  }
  // Does the default table give the models' genes the ids they were trained with (a newer copy of
  // the same species' table), or other genes' (another species', or ids of the user's own)?
  GeneTable own = models_gene_table(models);
  const GeneTable* fallback = standard ? standard() : nullptr;
  std::size_t named = 0;
  std::size_t agree = 0;
  for (const Gene& gene : own.genes()) {  // (by symbol, else by the first Ensembl id)
    const std::string_view ensembl = gene.ensembl_ids.empty() ? std::string_view() : std::string_view(gene.ensembl_ids.front());
    if (gene.symbol.empty() && ensembl.empty()) continue;
    ++named;
    const std::int32_t found = fallback == nullptr ? -1 : !gene.symbol.empty() ? fallback->find_symbol(gene.symbol) : fallback->find_ensembl(ensembl);
    if (found >= 0 && fallback->gene(found).entrez_id == gene.entrez_id) ++agree;
  }
  const double share = named > 0 ? static_cast<double>(agree) / static_cast<double>(named) : 0.0;
  chosen.warning = true;
  if (fallback != nullptr && named > 0 && share >= 0.9) {
    chosen.message = fmt::format("the model was trained with gene table {}, which {}: the default gene table {} serves (it gives {} of the "
                                 "model's {} genes the ids they were trained with); --gene-table FILE to use the model's own",
                                 recorded, why, fallback->source(), percent_of(share), named);
    return chosen;
  }
  chosen.message = fmt::format(
      "the model was trained with gene table {}, which {}: the query's var names are matched to the model's own {} genes (their symbols, "
      "aliases and Ensembl ids, as recorded){}; pass --gene-table FILE with the model's table to match every name and id it knows",
      recorded, why, own.size(),
      fallback != nullptr ? fmt::format(", not the default table {}, which gives only {} of them the ids they were trained with", fallback->source(),
                                        percent_of(share))
                          : std::string());
  chosen.table = std::move(own);
  return chosen;
}

GeneTable models_gene_table(const std::vector<const CellTypeModel*>& models) {
  if (models.size() == 1) return models.front()->gene_table();
  std::map<std::int64_t, Gene> genes;
  for (const CellTypeModel* model : models) {
    const GeneTable own = model->gene_table();
    for (std::size_t g = 0; g < own.size(); ++g) {
      const Gene& gene = own.gene(static_cast<std::int32_t>(g));
      genes.emplace(gene.entrez_id, gene);
    }
  }
  std::vector<Gene> list;
  for (auto& [entrez, gene] : genes) list.push_back(std::move(gene));
  return GeneTable(std::move(list), "model genes");
}

nlohmann::json to_json(const ModelUse& use) {
  return {{"n_model_genes", use.coverage.n_model_genes},
          {"n_measured", use.coverage.n_measured},
          {"mass_coverage", use.coverage.mass},
          {"n_feature_genes", use.coverage.n_features_genes},
          {"n_feature_genes_measured", use.coverage.n_features_measured},
          {"refitted", use.refitted},
          {"refit_genes", use.refit_genes},
          {"refit_features", use.refit_panel},
          {"refit_seconds", use.refit_seconds},
          {"temperature", use.temperature},
          {"calibrated", use.calibrated}};
}

nlohmann::json to_json(const SampleSummary& sample) {
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [label, count] : sample.label_counts) labels[label] = count;
  nlohmann::json out = {{"column", sample.column},
                        {"level", sample.level},
                        {"n_cells", sample.n_cells},
                        {"label_counts", labels},
                        {"median_score", sample.n_cells > 0 ? nlohmann::json(sample.median_score) : nlohmann::json(nullptr)},
                        {"n_low_score", sample.n_low_score},
                        {"n_similarity_judged", sample.n_similarity_judged},
                        {"n_unlike_reference", sample.n_unlike_reference}};
  if (sample.n_low_genes >= 0) out["n_low_genes"] = sample.n_low_genes;
  if (sample.n_low_transcripts >= 0) out["n_low_transcripts"] = sample.n_low_transcripts;
  return out;
}

nlohmann::json annotation_record(const Annotation& annotation, const std::vector<const CellTypeModel*>& models,
                                 const std::vector<std::string>& model_names, const AnnotateOptions& options,
                                 const std::vector<std::string>& more_warnings, bool timings) {
  nlohmann::json record = {{"celltyper_version", CELLTYPER_VERSION},
                           {"n_cells", annotation.labels.size()},
                           {"classes", annotation.class_names},
                           {"class_cl_ids", annotation.class_cl_ids}};
  record["label_counts"] = nlohmann::json::object();
  for (const auto& [label, count] : label_counts(annotation)) record["label_counts"][label] = count;
  const ScoreSummary confidence = summarize_scores(annotation.scores);
  record["median_score"] = annotation.scores.empty() ? nlohmann::json(nullptr) : nlohmann::json(confidence.median);
  record["n_low_score"] = confidence.n_low;
  if (annotation.has_similarity) {
    record["n_similarity_judged"] = annotation.n_similarity_judged;
    record["n_unlike_reference"] = annotation.n_unlike_reference;
  }
  if (options.unassign_unlike) record["n_unassigned_unlike"] = annotation.n_unassigned_unlike;
  std::vector<std::string> warnings = more_warnings;
  warnings.insert(warnings.end(), annotation.warnings.begin(), annotation.warnings.end());
  record["warnings"] = warnings;
  record["models"] = nlohmann::json::array();
  for (std::size_t m = 0; m < annotation.models.size(); ++m) {
    nlohmann::json use = to_json(annotation.models[m]);
    if (m < model_names.size()) use["model"] = model_names[m];
    if (m < models.size()) {  // (which model: its file's stamp and what it was trained on)
      const nlohmann::json& provenance = models[m]->provenance;
      for (const char* key : {"model_created_utc", "model_celltyper_version", "classifier", "features", "label_column", "seed"}) {
        if (provenance.contains(key)) use[key] = provenance[key];
      }
      nlohmann::json references = nlohmann::json::array();
      for (const auto& reference : provenance.value("references", nlohmann::json::array())) references.push_back(reference.value("path", std::string()));
      use["references"] = references;
    }
    record["models"].push_back(std::move(use));
  }
  record["panel_groups"] = nlohmann::json::array();
  for (const PanelGroupUse& group : annotation.panel_groups) record["panel_groups"].push_back(to_json(group));
  if (!timings) {  // (a file's record: the same command writes the same bytes)
    for (auto& use : record["models"]) use.erase("refit_seconds");
    for (auto& group : record["panel_groups"]) {
      for (auto& use : group["models"]) use.erase("refit_seconds");
    }
  }
  if (!annotation.samples.empty()) {
    record["samples"] = nlohmann::json::array();
    for (const SampleSummary& sample : annotation.samples) record["samples"].push_back(to_json(sample));
  }
  record["options"] = {{"min_score", options.min_score},
                       {"top_k", options.top_k},
                       {"hierarchical", options.hierarchical},
                       {"unassign_unlike", options.unassign_unlike},
                       {"refit", options.refit},
                       {"refit_below", options.refit_below},
                       {"allow_low_coverage", options.allow_low_coverage},
                       {"min_coverage_genes", options.min_coverage_genes},
                       {"min_coverage_mass", options.min_coverage_mass},
                       {"matrix", options.embed.matrix},
                       {"over_clustering", options.over_clustering},
                       {"group", options.group}};
  return record;
}

nlohmann::json to_json(const PanelGroupUse& group) {
  nlohmann::json models = nlohmann::json::array();
  for (const ModelUse& use : group.models) models.push_back(to_json(use));
  return {{"column", group.column}, {"level", group.level}, {"n_cells", group.n_cells}, {"n_padded_genes", group.n_padded_genes},
          {"models", models}};
}

}  // namespace celltyper
