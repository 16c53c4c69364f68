/// @file metrics.cpp
/// Flat, ranking and ontology-aware evaluation metrics.

#include "celltyper/metrics.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "celltyper/error.hpp"
#include "text_lists.hpp"

namespace celltyper {
namespace {

double ratio(double numerator, double denominator) { return denominator > 0.0 ? numerator / denominator : 0.0; }

/// The order of classes in tables: labels that are numbers (cluster ids; detail::whole_number,
/// as `--group` orders its groups) first, by value (-1, 0, 1, 2, ..., 10, as scikit-learn orders
/// integer labels; text order would put 10 after 1), then the rest in text order. Labels of one
/// value ("01" and "1") in text order. Term indices by value.
struct LabelOrder {
  bool operator()(const std::string& a, const std::string& b) const {
    const std::optional<double> x = detail::whole_number(a);
    const std::optional<double> y = detail::whole_number(b);
    if (x.has_value() != y.has_value()) return x.has_value();
    if (x && *x != *y) return *x < *y;
    return a < b;
  }
  template <typename Index>
  bool operator()(const Index& a, const Index& b) const {
    return a < b;
  }
};

/// Per-class counts of a flat classification over the union of labels (in LabelOrder).
template <typename Label>
struct FlatCounts {
  std::vector<Label> classes;  ///< union of truth and prediction in LabelOrder
  std::vector<std::size_t> true_positives;
  std::vector<std::size_t> support;
  std::vector<std::size_t> predicted;
  std::vector<std::size_t> confusion;  ///< classes x classes, rows = truth
  std::size_t correct = 0;
};

template <typename Label>
FlatCounts<Label> count_flat(const std::vector<Label>& truth, const std::vector<Label>& prediction) {
  FlatCounts<Label> counts;
  std::set<Label, LabelOrder> all(truth.begin(), truth.end());
  all.insert(prediction.begin(), prediction.end());
  counts.classes.assign(all.begin(), all.end());
  const std::size_t n_classes = counts.classes.size();
  counts.true_positives.assign(n_classes, 0);
  counts.support.assign(n_classes, 0);
  counts.predicted.assign(n_classes, 0);
  counts.confusion.assign(n_classes * n_classes, 0);
  const auto code = [&](const Label& label) {
    return static_cast<std::size_t>(std::lower_bound(counts.classes.begin(), counts.classes.end(), label, LabelOrder()) -
                                    counts.classes.begin());
  };
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const std::size_t t = code(truth[i]);
    const std::size_t p = code(prediction[i]);
    ++counts.support[t];
    ++counts.predicted[p];
    ++counts.confusion[t * n_classes + p];
    if (t == p) {
      ++counts.true_positives[t];
      ++counts.correct;
    }
  }
  return counts;
}

/// Per-class precision / recall / F1 with scikit-learn's zero_division=0 semantics.
template <typename Label>
std::vector<ClassMetrics> class_metrics(const FlatCounts<Label>& counts) {
  std::vector<ClassMetrics> metrics(counts.classes.size());
  for (std::size_t c = 0; c < counts.classes.size(); ++c) {
    const auto tp = static_cast<double>(counts.true_positives[c]);
    metrics[c].support = counts.support[c];
    metrics[c].predicted = counts.predicted[c];
    metrics[c].precision = ratio(tp, static_cast<double>(counts.predicted[c]));
    metrics[c].recall = ratio(tp, static_cast<double>(counts.support[c]));
    metrics[c].f1 = ratio(2.0 * tp, static_cast<double>(counts.support[c] + counts.predicted[c]));
  }
  return metrics;
}

AveragedMetrics macro_average(const std::vector<ClassMetrics>& metrics) {
  AveragedMetrics average;
  if (metrics.empty()) return average;
  for (const auto& m : metrics) {
    average.precision += m.precision;
    average.recall += m.recall;
    average.f1 += m.f1;
  }
  const auto n = static_cast<double>(metrics.size());
  average.precision /= n;
  average.recall /= n;
  average.f1 /= n;
  return average;
}

AveragedMetrics weighted_average(const std::vector<ClassMetrics>& metrics) {
  AveragedMetrics average;
  double total = 0.0;
  for (const auto& m : metrics) {
    const auto weight = static_cast<double>(m.support);
    average.precision += weight * m.precision;
    average.recall += weight * m.recall;
    average.f1 += weight * m.f1;
    total += weight;
  }
  average.precision = ratio(average.precision, total);
  average.recall = ratio(average.recall, total);
  average.f1 = ratio(average.f1, total);
  return average;
}

/// A term and its ancestors without the root, sorted.
std::vector<TermIndex> closure_without_root(const Ontology& ontology, TermIndex index) {
  std::vector<TermIndex> closure = ontology.ancestor_indices(index);
  closure.insert(std::upper_bound(closure.begin(), closure.end(), index), index);
  if (const auto root = ontology.root()) {
    const auto found = std::lower_bound(closure.begin(), closure.end(), *root);
    if (found != closure.end() && *found == *root) closure.erase(found);
  }
  return closure;
}

OntologyMetrics ontology_metrics(const std::vector<std::string>& truth, const std::vector<std::string>& prediction,
                                 const EvaluationOptions& options) {
  const Ontology& ontology = *options.ontology;
  // Resolve each distinct label once: -1 = unmapped.
  std::unordered_map<std::string, TermIndex> resolved;
  const auto resolve = [&](const std::string& label) {
    const auto cached = resolved.find(label);
    if (cached != resolved.end()) return cached->second;
    std::optional<TermIndex> index;
    if (const auto mapped = options.cl_ids.find(label); mapped != options.cl_ids.end()) {
      index = ontology.find_index(mapped->second);
    } else {
      index = ontology.find_index(label);
    }
    TermIndex result = -1;
    if (index) {
      result = ontology.canonical(*index);
      if (ontology.root() && ontology.depth(result) < 0) result = -1;  // not connected to the root
    }
    resolved.emplace(label, result);
    return result;
  };

  // Each truth label's alternatives, resolved once (empty = none: the label's term).
  std::unordered_map<std::string, std::vector<TermIndex>> alternatives_of;
  const auto alternatives = [&](const std::string& label) -> const std::vector<TermIndex>& {
    const auto cached = alternatives_of.find(label);
    if (cached != alternatives_of.end()) return cached->second;
    std::vector<TermIndex> terms;
    if (const auto given = options.alternatives.find(label); given != options.alternatives.end()) {
      for (const auto& id : given->second) {
        const auto index = ontology.find_index(id);
        if (!index) {
          terms.clear();  // (a part the ontology lacks: the label's term alone)
          break;
        }
        terms.push_back(ontology.canonical(*index));
      }
    }
    return alternatives_of.emplace(label, std::move(terms)).first->second;
  };

  OntologyMetrics metrics;
  metrics.available = true;
  std::set<std::string, LabelOrder> unmapped_labels;  // (cluster ids by value, as the tables)
  std::vector<TermIndex> mapped_truth;
  std::vector<TermIndex> corrected_prediction;

  struct PairStats {
    std::size_t intersection = 0;
    std::size_t prediction_size = 0;
    std::size_t truth_size = 0;
    std::int32_t lca_distance = 0;
    TermRelation relation = TermRelation::kUnrelated;
  };
  std::map<std::tuple<TermIndex, TermIndex, const std::vector<TermIndex>*>, PairStats> pair_cache;
  std::size_t intersection_sum = 0;
  std::size_t prediction_sum = 0;
  std::size_t truth_sum = 0;
  double distance_sum = 0.0;

  for (std::size_t i = 0; i < truth.size(); ++i) {
    const TermIndex t = resolve(truth[i]);
    const TermIndex p = resolve(prediction[i]);
    if (t < 0) {
      ++metrics.n_unmapped_truth;
      unmapped_labels.insert(truth[i]);
    }
    if (p < 0) {
      ++metrics.n_unmapped_prediction;
      unmapped_labels.insert(prediction[i]);
    }
    if (t < 0 || p < 0) {
      ++metrics.n_unmapped;
      continue;
    }
    ++metrics.n_mapped;
    const std::vector<TermIndex>& parts = alternatives(options.truth_readings.empty() ? truth[i] : options.truth_readings[i]);
    if (!parts.empty()) ++metrics.n_truth_alternatives;
    auto [entry, inserted] = pair_cache.try_emplace({p, t, parts.empty() ? nullptr : &parts});
    PairStats& stats = entry->second;
    if (inserted) {
      const std::vector<TermIndex> closure_prediction = closure_without_root(ontology, p);
      const std::vector<TermIndex> closure_truth = closure_without_root(ontology, t);
      std::vector<TermIndex> common;
      std::set_intersection(closure_prediction.begin(), closure_prediction.end(), closure_truth.begin(),
                            closure_truth.end(), std::back_inserter(common));
      stats.intersection = common.size();
      stats.prediction_size = closure_prediction.size();
      stats.truth_size = closure_truth.size();
      // Both terms reach the root (or the ontology has none and the DAG may be disconnected).
      stats.lca_distance = ontology.upward_lca_distance(p, t).value_or(ontology.depth(t) + 1);
      stats.relation = ontology.classify_relation(p, t);
      // Below a label of alternatives' term but at or below none of them (a B cell for "T/NK
      // cells"): not below the truth; related to it as to its closest alternative (parent, then
      // sibling, then unrelated: the TermRelation order).
      if (stats.relation == TermRelation::kPredictionIsDescendant && !parts.empty() &&
          std::none_of(parts.begin(), parts.end(), [&](TermIndex part) { return part == p || ontology.is_ancestor(part, p); })) {
        stats.relation = TermRelation::kUnrelated;
        for (const TermIndex part : parts) stats.relation = std::min(stats.relation, ontology.classify_relation(p, part));
      }
    }
    intersection_sum += stats.intersection;
    prediction_sum += stats.prediction_size;
    truth_sum += stats.truth_size;
    distance_sum += stats.lca_distance;
    ++metrics.relation_counts[static_cast<std::size_t>(stats.relation)];
    if (p != t) ++metrics.n_errors;
    mapped_truth.push_back(t);
    const bool counts_as_correct =
        stats.relation == TermRelation::kExact || stats.relation == TermRelation::kPredictionIsDescendant;
    corrected_prediction.push_back(counts_as_correct ? t : p);
  }
  metrics.unmapped_labels.assign(unmapped_labels.begin(), unmapped_labels.end());
  if (metrics.n_mapped == 0) return metrics;

  const auto n = static_cast<double>(metrics.n_mapped);
  const FlatCounts<TermIndex> corrected = count_flat(mapped_truth, corrected_prediction);
  metrics.corrected_accuracy = static_cast<double>(corrected.correct) / n;
  metrics.corrected_macro_f1 = macro_average(class_metrics(corrected)).f1;
  metrics.hierarchical_precision = ratio(static_cast<double>(intersection_sum), static_cast<double>(prediction_sum));
  metrics.hierarchical_recall = ratio(static_cast<double>(intersection_sum), static_cast<double>(truth_sum));
  metrics.hierarchical_f1 =
      ratio(2.0 * metrics.hierarchical_precision * metrics.hierarchical_recall,
            metrics.hierarchical_precision + metrics.hierarchical_recall);
  metrics.mean_lca_distance_all = distance_sum / n;
  // Correct cells contribute distance 0, so the error mean divides the same sum.
  metrics.mean_lca_distance_errors = ratio(distance_sum, static_cast<double>(metrics.n_errors));
  return metrics;
}

nlohmann::json averaged_json(const AveragedMetrics& average) {
  return {{"precision", average.precision}, {"recall", average.recall}, {"f1", average.f1}};
}

}  // namespace

double OntologyMetrics::share(TermRelation relation) const {
  return ratio(static_cast<double>(relation_counts[static_cast<std::size_t>(relation)]),
               static_cast<double>(n_mapped));
}

RankingTally::RankingTally(std::vector<int> top_k) : top_k_(std::move(top_k)), hits_(top_k_.size(), 0) {
  for (const int k : top_k_) {
    if (k < 1) throw InputError(fmt::format("top-k accuracy needs k >= 1, got {}", k));
  }
}

void RankingTally::add(const std::vector<std::string>& truth, const ProbabilityMatrix& probabilities) {
  const std::size_t n_cells = truth.size();
  const std::size_t n_classes = probabilities.class_names.size();
  if (n_classes == 0) throw InputError("probability matrix has no class names");
  if (probabilities.values.size() != n_cells * n_classes) {
    throw InputError(fmt::format("probability matrix has {} values; expected {} cells x {} classes = {}",
                                 probabilities.values.size(), n_cells, n_classes, n_cells * n_classes));
  }
  std::unordered_map<std::string, std::size_t> column_of;
  for (std::size_t j = 0; j < n_classes; ++j) {
    if (!column_of.emplace(probabilities.class_names[j], j).second) {
      throw InputError("probability matrix names class '" + probabilities.class_names[j] + "' twice");
    }
  }
  for (std::size_t i = 0; i < n_cells * n_classes; ++i) {  // (checked before any sum changes)
    if (std::isnan(probabilities.values[i])) {
      throw InputError(fmt::format("probability matrix has NaN at cell {}, class '{}'", i / n_classes, probabilities.class_names[i % n_classes]));
    }
  }
  added_ = true;
  n_cells_ += n_cells;
  for (std::size_t i = 0; i < n_cells; ++i) {
    const float* row = probabilities.values.data() + i * n_classes;
    const auto found = column_of.find(truth[i]);
    if (found == column_of.end()) {
      ++n_truth_not_in_classes_;
      continue;
    }
    if (std::all_of(row, row + n_classes, [](float p) { return p == 0.0F; })) {
      ++n_without_probabilities_;
      continue;
    }
    const std::size_t column = found->second;
    const float value = row[column];
    std::size_t rank = 1;
    for (std::size_t j = 0; j < n_classes; ++j) {
      if (row[j] > value || (j < column && row[j] == value)) ++rank;
    }
    reciprocal_rank_sum_ += 1.0 / static_cast<double>(rank);
    for (std::size_t q = 0; q < top_k_.size(); ++q) {
      if (rank <= static_cast<std::size_t>(top_k_[q])) ++hits_[q];
    }
    // Calibration.
    const std::size_t top = static_cast<std::size_t>(std::max_element(row, row + n_classes) - row);
    double sum = 0.0;
    double brier = 0.0;
    for (std::size_t j = 0; j < n_classes; ++j) {
      const double p = row[j];
      sum += p;
      brier += (p - (j == column ? 1.0 : 0.0)) * (p - (j == column ? 1.0 : 0.0));
    }
    if (std::abs(sum - 1.0) > 0.01) sums_to_one_ = false;
    const double confidence = row[top];
    const std::size_t bin = calibration_bin(confidence);
    ++n_scored_;
    n_top_right_ += top == column ? 1 : 0;
    confidence_sum_ += confidence;
    log_loss_sum_ -= std::log(std::clamp(static_cast<double>(value), 1e-15, 1.0));
    brier_sum_ += brier;
    ++bin_cells_[bin];
    bin_right_[bin] += top == column ? 1 : 0;
    bin_confidence_[bin] += confidence;
  }
}

RankingMetrics RankingTally::result() const {
  RankingMetrics ranking;
  ranking.available = added_;
  if (!added_) return ranking;
  ranking.n_truth_not_in_classes = n_truth_not_in_classes_;
  ranking.n_without_probabilities = n_without_probabilities_;
  const auto n = static_cast<double>(n_cells_);
  for (std::size_t q = 0; q < top_k_.size(); ++q) ranking.top_k.push_back({top_k_[q], ratio(static_cast<double>(hits_[q]), n)});
  ranking.mean_reciprocal_rank = ratio(reciprocal_rank_sum_, n);
  CalibrationMetrics& calibration = ranking.calibration;
  if (n_scored_ == 0 || !sums_to_one_) return ranking;
  const auto scored = static_cast<double>(n_scored_);
  calibration.available = true;
  calibration.n_cells = n_scored_;
  calibration.accuracy = static_cast<double>(n_top_right_) / scored;
  calibration.mean_confidence = confidence_sum_ / scored;
  calibration.log_loss = log_loss_sum_ / scored;
  calibration.brier_score = brier_sum_ / scored;
  for (std::size_t b = 0; b < kCalibrationBins; ++b) {
    if (bin_cells_[b] == 0) continue;
    const auto cells = static_cast<double>(bin_cells_[b]);
    calibration.expected_calibration_error +=
        cells / scored * std::abs(bin_confidence_[b] / cells - static_cast<double>(bin_right_[b]) / cells);
  }
  return ranking;
}

EvaluationResult evaluate(const std::vector<std::string>& truth, const std::vector<std::string>& prediction,
                          const EvaluationOptions& options) {
  if (truth.size() != prediction.size()) {
    throw InputError(fmt::format("evaluation needs one prediction per cell: {} truth labels but {} predictions",
                                 truth.size(), prediction.size()));
  }
  if (truth.empty()) throw InputError("evaluation needs at least one cell; got none");
  if (!options.truth_readings.empty() && options.truth_readings.size() != truth.size()) {
    throw InputError(fmt::format("evaluation needs one truth reading per cell: {} truth labels but {} readings", truth.size(),
                                 options.truth_readings.size()));
  }
  EvaluationResult result;
  result.n_cells = truth.size();

  const FlatCounts<std::string> counts = count_flat(truth, prediction);
  result.accuracy = static_cast<double>(counts.correct) / static_cast<double>(result.n_cells);
  result.per_class = class_metrics(counts);
  for (std::size_t c = 0; c < counts.classes.size(); ++c) result.per_class[c].label = counts.classes[c];
  result.macro = macro_average(result.per_class);
  result.weighted = weighted_average(result.per_class);
  result.confusion.labels = counts.classes;
  result.confusion.counts = counts.confusion;

  if (options.probabilities != nullptr) {
    RankingTally tally(options.top_k);
    tally.add(truth, *options.probabilities);
    result.ranking = tally.result();
  }
  if (options.ontology != nullptr) result.ontology = ontology_metrics(truth, prediction, options);
  return result;
}

nlohmann::json to_json(const EvaluationResult& result) {
  nlohmann::json json;
  json["n_cells"] = result.n_cells;
  json["accuracy"] = result.accuracy;
  json["macro"] = averaged_json(result.macro);
  json["weighted"] = averaged_json(result.weighted);
  json["per_class"] = nlohmann::json::array();
  for (const auto& m : result.per_class) {
    json["per_class"].push_back({{"label", m.label},
                                 {"precision", m.precision},
                                 {"recall", m.recall},
                                 {"f1", m.f1},
                                 {"support", m.support},
                                 {"predicted", m.predicted}});
  }
  nlohmann::json rows = nlohmann::json::array();
  const std::size_t n_labels = result.confusion.labels.size();
  for (std::size_t t = 0; t < n_labels; ++t) {
    nlohmann::json row = nlohmann::json::array();
    for (std::size_t p = 0; p < n_labels; ++p) row.push_back(result.confusion.at(t, p));
    rows.push_back(std::move(row));
  }
  json["confusion_matrix"] = {{"labels", result.confusion.labels}, {"counts", std::move(rows)}};

  if (result.ranking.available) {
    nlohmann::json top_k = nlohmann::json::object();
    for (const auto& entry : result.ranking.top_k) top_k[std::to_string(entry.k)] = entry.accuracy;
    json["ranking"] = {{"top_k_accuracy", std::move(top_k)},
                       {"mean_reciprocal_rank", result.ranking.mean_reciprocal_rank},
                       {"n_truth_not_in_classes", result.ranking.n_truth_not_in_classes},
                       {"n_without_probabilities", result.ranking.n_without_probabilities}};
    const CalibrationMetrics& calibration = result.ranking.calibration;
    json["ranking"]["calibration"] = calibration.available ? nlohmann::json{{"n_cells", calibration.n_cells},
                                                                             {"accuracy", calibration.accuracy},
                                                                             {"mean_confidence", calibration.mean_confidence},
                                                                             {"expected_calibration_error", calibration.expected_calibration_error},
                                                                             {"bins", kCalibrationBins},
                                                                             {"log_loss", calibration.log_loss},
                                                                             {"brier_score", calibration.brier_score}}
                                                           : nlohmann::json(nullptr);
  } else {
    json["ranking"] = nullptr;
  }

  if (result.ontology.available) {
    const OntologyMetrics& o = result.ontology;
    nlohmann::json relations = nlohmann::json::object();
    nlohmann::json shares = nlohmann::json::object();
    for (std::size_t r = 0; r < kTermRelationCount; ++r) {
      const auto relation = static_cast<TermRelation>(r);
      relations[to_string(relation)] = o.relation_counts[r];
      shares[to_string(relation)] = o.share(relation);
    }
    // With no cell mapped on both sides the CL metrics are not available: null, not 0.
    const auto metric = [&](double value) { return o.n_mapped > 0 ? nlohmann::json(value) : nlohmann::json(nullptr); };
    json["ontology"] = {{"n_mapped", o.n_mapped},
                        {"n_unmapped", o.n_unmapped},
                        {"n_unmapped_truth", o.n_unmapped_truth},
                        {"n_unmapped_prediction", o.n_unmapped_prediction},
                        {"unmapped_labels", o.unmapped_labels},
                        {"corrected_accuracy", metric(o.corrected_accuracy)},
                        {"corrected_macro_f1", metric(o.corrected_macro_f1)},
                        {"hierarchical_precision", metric(o.hierarchical_precision)},
                        {"hierarchical_recall", metric(o.hierarchical_recall)},
                        {"hierarchical_f1", metric(o.hierarchical_f1)},
                        {"n_errors", o.n_errors},
                        {"mean_lca_distance_errors", metric(o.mean_lca_distance_errors)},
                        {"mean_lca_distance_all", metric(o.mean_lca_distance_all)},
                        {"n_truth_alternatives", o.n_truth_alternatives},
                        {"relation_counts", std::move(relations)},
                        {"relation_shares", std::move(shares)}};
  } else {
    json["ontology"] = nullptr;
  }
  return json;
}

std::string weakest_classes(const std::vector<ClassMetrics>& per_class, double below, std::size_t at_most) {
  std::vector<const ClassMetrics*> weak;
  for (const ClassMetrics& metrics : per_class) {
    if (metrics.support > 0 && metrics.recall < below) weak.push_back(&metrics);
  }
  std::stable_sort(weak.begin(), weak.end(), [](const ClassMetrics* a, const ClassMetrics* b) { return a->recall < b->recall; });
  std::string text;
  if (weak.size() == at_most + 1) ++at_most;  // (naming it takes the room "1 more" would)
  for (std::size_t i = 0; i < std::min(at_most, weak.size()); ++i) {
    const auto found = static_cast<std::size_t>(std::lround(weak[i]->recall * static_cast<double>(weak[i]->support)));
    text += fmt::format("{}{} {:.3f} ({} of {})", i == 0 ? "" : ", ", weak[i]->label, weak[i]->recall, found, weak[i]->support);
  }
  if (weak.size() > at_most) text += fmt::format(", {} more", weak.size() - at_most);
  return text;
}

std::string format_report(const EvaluationResult& result) {
  std::string out;
  std::size_t width = 12;
  for (const auto& m : result.per_class) width = std::max(width, m.label.size());
  out += fmt::format("cells     {}\naccuracy  {:.4f}\n\n", result.n_cells, result.accuracy);
  out += fmt::format("{:<{}}  {:>9}  {:>6}  {:>6}  {:>7}  {:>9}\n", "label", width, "precision", "recall", "f1",
                     "support", "predicted");
  for (const auto& m : result.per_class) {
    out += fmt::format("{:<{}}  {:>9.4f}  {:>6.4f}  {:>6.4f}  {:>7}  {:>9}\n", m.label, width, m.precision, m.recall,
                       m.f1, m.support, m.predicted);
  }
  const auto average_row = [&](const char* name, const AveragedMetrics& average) {
    out += fmt::format("{:<{}}  {:>9.4f}  {:>6.4f}  {:>6.4f}  {:>7}\n", name, width, average.precision,
                       average.recall, average.f1, result.n_cells);
  };
  out += '\n';
  average_row("macro avg", result.macro);
  average_row("weighted avg", result.weighted);

  if (result.ranking.available) {
    out += '\n';
    for (const auto& entry : result.ranking.top_k) {
      out += fmt::format("top-{} accuracy        {:.4f}\n", entry.k, entry.accuracy);
    }
    out += fmt::format("mean reciprocal rank  {:.4f}\n", result.ranking.mean_reciprocal_rank);
    if (result.ranking.n_truth_not_in_classes > 0) {
      out += fmt::format("({} cells have a truth label that is not a probability column)\n",
                         result.ranking.n_truth_not_in_classes);
    }
    if (result.ranking.n_without_probabilities > 0) {
      out += fmt::format("({} cells have no probabilities (no model gene, Unassigned): misses at every k)\n",
                         result.ranking.n_without_probabilities);
    }
    if (const CalibrationMetrics& c = result.ranking.calibration; c.available) {
      out += fmt::format("calibration over {} cells (truth a class): top-class accuracy {:.4f}, mean top probability {:.4f}, "
                         "ECE {:.4f} ({} bins), log loss {:.4f}, Brier {:.4f}\n",
                         c.n_cells, c.accuracy, c.mean_confidence, c.expected_calibration_error, kCalibrationBins, c.log_loss, c.brier_score);
    }
  }

  if (result.ontology.available) {
    const OntologyMetrics& o = result.ontology;
    out += fmt::format("\nCell Ontology: {} cells mapped, {} unmapped ({} truth, {} prediction)\n", o.n_mapped,
                       o.n_unmapped, o.n_unmapped_truth, o.n_unmapped_prediction);
    if (!o.unmapped_labels.empty()) {
      out += fmt::format("unmapped labels: {}\n", fmt::join(o.unmapped_labels, ", "));
    }
    if (o.n_mapped == 0) {
      out += "no cell has a Cell Ontology term on both sides: the ontology metrics are not available (--label-map)\n";
      return out;
    }
    out += fmt::format("corrected accuracy           {:.4f} (of the {} mapped cells)\n", o.corrected_accuracy, o.n_mapped);
    out += fmt::format("corrected macro F1           {:.4f}\n", o.corrected_macro_f1);
    out += fmt::format("hierarchical P / R / F       {:.4f} / {:.4f} / {:.4f}\n", o.hierarchical_precision,
                       o.hierarchical_recall, o.hierarchical_f1);
    out += fmt::format("upward LCA distance          {:.3f} over {} cells predicted another term (descendants, at 0, included), {:.3f} over "
                       "all mapped cells\n",
                       o.mean_lca_distance_errors, o.n_errors, o.mean_lca_distance_all);
    out += "relation of prediction to truth (parent: an ancestor of the truth's term, child: a descendant, at any distance; sibling: a "
           "shared parent";
    if (o.n_truth_alternatives > 0) {
      out += fmt::format("; for the {} cells whose truth names alternatives ('T/NK cells'), child only at or below one of them, else as "
                         "related to the nearest",
                         o.n_truth_alternatives);
    }
    out += "):\n ";
    for (std::size_t r = 0; r < kTermRelationCount; ++r) {
      const auto relation = static_cast<TermRelation>(r);
      out += fmt::format(" {} {:.1f}%", to_string(relation), 100.0 * o.share(relation));
      out += r + 1 < kTermRelationCount ? "," : "\n";
    }
  }
  return out;
}

}  // namespace celltyper
