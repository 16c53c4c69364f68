// Evaluation metrics on hand-computed cases and a naive oracle.

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "celltyper/error.hpp"
#include "celltyper/metrics.hpp"
#include "support/test_support.hpp"

namespace celltyper {
namespace {

OntologyTerm make_term(const char* id, const char* label, std::vector<std::string> parents) {
  OntologyTerm term;
  term.id = id;
  term.label = label;
  term.parents = std::move(parents);
  return term;
}

// cell (0) > immune (1) > lymphocyte (2) > T (3) > CD4 T (5), CD8 T (6)
//                                       > B (4)
//          > immune (1) > myeloid (7) > monocyte (8)
// CL:0000020: deprecated, replaced by B; CL:0000022: deprecated, no replacement, no parents.
Ontology toy() {
  std::vector<OntologyTerm> terms = {
      make_term("CL:0000000", "cell", {}),
      make_term("CL:0000001", "immune cell", {"CL:0000000"}),
      make_term("CL:0000002", "lymphocyte", {"CL:0000001"}),
      make_term("CL:0000003", "T cell", {"CL:0000002"}),
      make_term("CL:0000004", "B cell", {"CL:0000002"}),
      make_term("CL:0000005", "CD4 T cell", {"CL:0000003"}),
      make_term("CL:0000006", "CD8 T cell", {"CL:0000003"}),
      make_term("CL:0000007", "myeloid cell", {"CL:0000001"}),
      make_term("CL:0000008", "monocyte", {"CL:0000007"}),
      make_term("CL:0000020", "obsolete B", {}),
      make_term("CL:0000022", "obsolete thing", {}),
  };
  terms[9].deprecated = true;
  terms[9].replaced_by = "CL:0000004";
  terms[10].deprecated = true;
  return Ontology(std::move(terms), "toy");
}

const std::map<std::string, std::string> kToyIds = {
    {"CD4 T", "CL:0000005"}, {"CD8 T", "CL:0000006"}, {"T", "CL:0000003"}, {"B", "CL:0000004"},
    {"Mono", "CL:0000008"}, {"old B", "CL:0000020"}, {"thing", "CL:0000022"}};

// Eight cells covering every relation; cell 7 has an unmapped prediction.
const std::vector<std::string> kTruth = {"CD4 T", "CD4 T", "T", "CD4 T", "CD4 T", "B", "Mono", "B"};
const std::vector<std::string> kPrediction = {"CD4 T", "T", "CD4 T", "CD8 T", "B", "B", "Unknown", "Mono"};

const ClassMetrics& row(const EvaluationResult& result, const std::string& label) {
  for (const auto& m : result.per_class) {
    if (m.label == label) return m;
  }
  throw std::runtime_error("no class " + label);
}

TEST(Metrics, FlatMetricsByHand) {
  const EvaluationResult result = evaluate(kTruth, kPrediction);
  EXPECT_EQ(result.n_cells, 8u);
  EXPECT_DOUBLE_EQ(result.accuracy, 2.0 / 8.0);
  // Classes: union of truth and prediction, sorted.
  ASSERT_EQ(result.per_class.size(), 6u);
  EXPECT_EQ(result.per_class[0].label, "B");
  EXPECT_EQ(result.per_class[5].label, "Unknown");
  EXPECT_DOUBLE_EQ(row(result, "B").precision, 0.5);
  EXPECT_DOUBLE_EQ(row(result, "B").recall, 0.5);
  EXPECT_DOUBLE_EQ(row(result, "B").f1, 0.5);
  EXPECT_EQ(row(result, "B").support, 2u);
  EXPECT_EQ(row(result, "B").predicted, 2u);
  EXPECT_DOUBLE_EQ(row(result, "CD4 T").precision, 0.5);
  EXPECT_DOUBLE_EQ(row(result, "CD4 T").recall, 0.25);
  EXPECT_DOUBLE_EQ(row(result, "CD4 T").f1, 1.0 / 3.0);
  EXPECT_EQ(row(result, "CD4 T").support, 4u);
  // Predicted but never true (zero_division = 0), true but never predicted right.
  EXPECT_EQ(row(result, "CD8 T").support, 0u);
  EXPECT_EQ(row(result, "CD8 T").predicted, 1u);
  EXPECT_DOUBLE_EQ(row(result, "CD8 T").precision, 0.0);
  EXPECT_DOUBLE_EQ(row(result, "CD8 T").recall, 0.0);
  EXPECT_DOUBLE_EQ(row(result, "Unknown").f1, 0.0);
  EXPECT_DOUBLE_EQ(row(result, "T").f1, 0.0);

  EXPECT_DOUBLE_EQ(result.macro.precision, 1.0 / 6.0);
  EXPECT_DOUBLE_EQ(result.macro.recall, 0.125);
  EXPECT_DOUBLE_EQ(result.macro.f1, 5.0 / 36.0);
  EXPECT_DOUBLE_EQ(result.weighted.precision, 3.0 / 8.0);
  EXPECT_DOUBLE_EQ(result.weighted.recall, 0.25);
  EXPECT_DOUBLE_EQ(result.weighted.f1, 7.0 / 24.0);

  // Confusion matrix: rows truth, columns prediction, labels sorted.
  const ConfusionMatrix& confusion = result.confusion;
  EXPECT_EQ(confusion.labels, (std::vector<std::string>{"B", "CD4 T", "CD8 T", "Mono", "T", "Unknown"}));
  EXPECT_EQ(confusion.at(1, 1), 1u);  // CD4 T -> CD4 T
  EXPECT_EQ(confusion.at(1, 4), 1u);  // CD4 T -> T
  EXPECT_EQ(confusion.at(1, 2), 1u);  // CD4 T -> CD8 T
  EXPECT_EQ(confusion.at(1, 0), 1u);  // CD4 T -> B
  EXPECT_EQ(confusion.at(3, 5), 1u);  // Mono -> Unknown
  EXPECT_EQ(confusion.at(0, 3), 1u);  // B -> Mono
  std::size_t total = 0;
  for (const auto count : confusion.counts) total += count;
  EXPECT_EQ(total, 8u);

  EXPECT_FALSE(result.ranking.available);
  EXPECT_FALSE(result.ontology.available);
}

TEST(Metrics, NumberLabelsAreOrderedByValue) {
  // Cluster ids order -1, 0, 1, 2, 10 (scikit-learn's order of integer labels; -1: DBSCAN's
  // noise), numbers as "1.5" among them, before text labels in text order; "01" and "1" stay two
  // labels (text order between them).
  const std::vector<std::string> truth = {"10", "2", "1", "0", "01", "B", "10", "-1", "1.5"};
  const std::vector<std::string> prediction = {"T", "2", "1", "0", "01", "B", "10", "-1", "1.5"};
  const EvaluationResult result = evaluate(truth, prediction);
  EXPECT_EQ(result.confusion.labels, (std::vector<std::string>{"-1", "0", "01", "1", "1.5", "2", "10", "B", "T"}));
  EXPECT_EQ(row(result, "10").support, 2u);
  EXPECT_EQ(row(result, "10").predicted, 1u);
  EXPECT_EQ(result.confusion.at(6, 8), 1u);  // 10 -> T
  EXPECT_EQ(result.confusion.at(6, 6), 1u);  // 10 -> 10
  EXPECT_DOUBLE_EQ(result.accuracy, 8.0 / 9.0);

  // The ontology side's list of labels without a CL id orders them the same way.
  const Ontology ontology = toy();
  EvaluationOptions options;
  options.ontology = &ontology;
  options.cl_ids = kToyIds;
  const EvaluationResult mapped = evaluate({"10", "2", "B", "-1", "T"}, {"B", "B", "B", "B", "T"}, options);
  EXPECT_EQ(mapped.ontology.unmapped_labels, (std::vector<std::string>{"-1", "2", "10"}));
}

TEST(Metrics, PerfectPrediction) {
  const std::vector<std::string> labels = {"a", "b", "b", "c"};
  const EvaluationResult result = evaluate(labels, labels);
  EXPECT_DOUBLE_EQ(result.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(result.macro.f1, 1.0);
  EXPECT_DOUBLE_EQ(result.weighted.precision, 1.0);
}

TEST(Metrics, OntologyMetricsByHand) {
  const Ontology ontology = toy();
  EvaluationOptions options;
  options.ontology = &ontology;
  options.cl_ids = kToyIds;
  const EvaluationResult result = evaluate(kTruth, kPrediction, options);
  const OntologyMetrics& o = result.ontology;
  ASSERT_TRUE(o.available);
  EXPECT_EQ(o.n_mapped, 7u);
  EXPECT_EQ(o.n_unmapped, 1u);
  EXPECT_EQ(o.n_unmapped_truth, 0u);
  EXPECT_EQ(o.n_unmapped_prediction, 1u);
  EXPECT_EQ(o.unmapped_labels, std::vector<std::string>{"Unknown"});
  // Relations: exact (cells 1, 6), parent (2), child (3), sibling (4), unrelated (5, 8).
  EXPECT_EQ(o.relation_counts[static_cast<std::size_t>(TermRelation::kExact)], 2u);
  EXPECT_EQ(o.relation_counts[static_cast<std::size_t>(TermRelation::kPredictionIsAncestor)], 1u);
  EXPECT_EQ(o.relation_counts[static_cast<std::size_t>(TermRelation::kPredictionIsDescendant)], 1u);
  EXPECT_EQ(o.relation_counts[static_cast<std::size_t>(TermRelation::kSibling)], 1u);
  EXPECT_EQ(o.relation_counts[static_cast<std::size_t>(TermRelation::kUnrelated)], 2u);
  EXPECT_DOUBLE_EQ(o.share(TermRelation::kExact), 2.0 / 7.0);
  EXPECT_DOUBLE_EQ(o.share(TermRelation::kUnrelated), 2.0 / 7.0);
  // Corrected: cell 3 (truth T, predicted its child CD4 T) becomes correct -> 3 of 7.
  EXPECT_DOUBLE_EQ(o.corrected_accuracy, 3.0 / 7.0);
  // Corrected classes (CL ids): CD4 f1 2/5, T 2/3, B 1/2, CD8 0, monocyte 0.
  EXPECT_DOUBLE_EQ(o.corrected_macro_f1, 47.0 / 150.0);
  // |A(p) & A(t)| / |A(p)| / |A(t)| per cell, root excluded:
  // 4/4/4, 3/3/4, 3/4/3, 3/4/4, 2/3/4, 3/3/3, 1/3/3 -> 19 / 24 / 25.
  EXPECT_DOUBLE_EQ(o.hierarchical_precision, 19.0 / 24.0);
  EXPECT_DOUBLE_EQ(o.hierarchical_recall, 19.0 / 25.0);
  EXPECT_DOUBLE_EQ(o.hierarchical_f1, 38.0 / 49.0);
  // Upward LCA distances: 0, 1, 0, 1, 2, 0, 2 -> 6 over 7 cells and over 5 errors.
  EXPECT_EQ(o.n_errors, 5u);
  EXPECT_DOUBLE_EQ(o.mean_lca_distance_all, 6.0 / 7.0);
  EXPECT_DOUBLE_EQ(o.mean_lca_distance_errors, 6.0 / 5.0);
  // Flat metrics are unchanged by the ontology and keep the unmapped cell.
  EXPECT_EQ(result.n_cells, 8u);
  EXPECT_DOUBLE_EQ(result.accuracy, 0.25);
}

TEST(Metrics, ATruthOfAlternativesCreditsOnlyPredictionsAtOrBelowOneOfThem) {
  // "CD4 T/B" at lymphocyte names CD4 T cell and B cell: a CD8 T cell or a T cell predicted for it
  // is a lymphocyte but neither alternative; lymphocyte itself is the label's own term (right).
  const Ontology ontology = toy();
  const std::vector<std::string> truth(6, "CD4 T/B");
  const std::vector<std::string> prediction = {"CD4 T", "B", "lymphocyte", "CD8 T", "T", "Mono"};
  EvaluationOptions options;
  options.ontology = &ontology;
  options.cl_ids = kToyIds;
  options.cl_ids["CD4 T/B"] = "CL:0000002";
  options.cl_ids["lymphocyte"] = "CL:0000002";
  const EvaluationResult plain = evaluate(truth, prediction, options);
  options.alternatives["CD4 T/B"] = {"CL:0000005", "CL:0000004"};
  const EvaluationResult narrowed = evaluate(truth, prediction, options);
  EXPECT_DOUBLE_EQ(plain.ontology.corrected_accuracy, 5.0 / 6.0);  // (every lymphocyte counts)
  EXPECT_DOUBLE_EQ(narrowed.ontology.corrected_accuracy, 3.0 / 6.0);
  // One truth class (lymphocyte) with 3 of 6 right; CD8 T, T and monocyte are classes of F1 0.
  EXPECT_DOUBLE_EQ(narrowed.ontology.corrected_macro_f1, (2.0 * 3 / (6 + 3)) / 4.0);
  const auto count = [&](TermRelation relation) { return narrowed.ontology.relation_counts[static_cast<std::size_t>(relation)]; };
  EXPECT_EQ(count(TermRelation::kExact), 1u);
  EXPECT_EQ(count(TermRelation::kPredictionIsDescendant), 2u);
  EXPECT_EQ(count(TermRelation::kPredictionIsAncestor), 1u);  // T: above the CD4 T alternative
  EXPECT_EQ(count(TermRelation::kSibling), 1u);               // CD8 T: beside it
  EXPECT_EQ(count(TermRelation::kUnrelated), 1u);
  // Hierarchical P / R and LCA distances read the label's own term either way.
  EXPECT_DOUBLE_EQ(narrowed.ontology.hierarchical_f1, plain.ontology.hierarchical_f1);
  EXPECT_DOUBLE_EQ(narrowed.ontology.mean_lca_distance_all, plain.ontology.mean_lca_distance_all);
  EXPECT_EQ(narrowed.ontology.n_truth_alternatives, 6u);
  // Per cell: two labels read as one class ("lymphocyte"), one of them naming alternatives.
  options.truth_readings = {"CD4 T/B", "CD4 T/B", "CD4 T/B", "CD4 T/B", "lymphocyte", "lymphocyte"};
  const EvaluationResult per_cell = evaluate(std::vector<std::string>(6, "lymphocyte"), prediction, options);
  EXPECT_DOUBLE_EQ(per_cell.ontology.corrected_accuracy, 4.0 / 6.0);  // (CD8 T wrong; T right for "lymphocyte")
  EXPECT_EQ(per_cell.ontology.n_truth_alternatives, 4u);
  options.truth_readings.pop_back();
  EXPECT_THROW(evaluate(truth, prediction, options), InputError);
  options.truth_readings.clear();
  // An alternative the ontology lacks: the label's term alone.
  options.alternatives["CD4 T/B"] = {"CL:0000005", "CL:9999999"};
  EXPECT_DOUBLE_EQ(evaluate(truth, prediction, options).ontology.corrected_accuracy, 5.0 / 6.0);
}

TEST(Metrics, OntologyLabelsAsIdsDeprecatedAndDisconnected) {
  const Ontology ontology = toy();
  EvaluationOptions options;
  options.ontology = &ontology;
  options.cl_ids = kToyIds;
  // "CL:0000005" is used as an id; "old B" is deprecated -> B; "thing" has no path to the root;
  // "CL:0009999" is not in the ontology.
  const std::vector<std::string> truth = {"CL:0000005", "B", "B", "T", "CL:0009999"};
  const std::vector<std::string> prediction = {"CL:0000003", "old B", "thing", "T", "T"};
  const EvaluationResult result = evaluate(truth, prediction, options);
  const OntologyMetrics& o = result.ontology;
  EXPECT_EQ(o.n_mapped, 3u);
  EXPECT_EQ(o.n_unmapped, 2u);
  EXPECT_EQ(o.n_unmapped_truth, 1u);
  EXPECT_EQ(o.n_unmapped_prediction, 1u);
  EXPECT_EQ(o.unmapped_labels, (std::vector<std::string>{"CL:0009999", "thing"}));
  EXPECT_EQ(o.relation_counts[static_cast<std::size_t>(TermRelation::kExact)], 2u);
  EXPECT_EQ(o.relation_counts[static_cast<std::size_t>(TermRelation::kPredictionIsAncestor)], 1u);
  EXPECT_DOUBLE_EQ(o.corrected_accuracy, 2.0 / 3.0);
  EXPECT_EQ(o.n_errors, 1u);
  EXPECT_DOUBLE_EQ(o.mean_lca_distance_errors, 1.0);
  // Flat accuracy compares strings: "old B" != "B".
  EXPECT_DOUBLE_EQ(result.accuracy, 1.0 / 5.0);
}

TEST(Metrics, NoMappedCells) {
  const Ontology ontology = toy();
  EvaluationOptions options;
  options.ontology = &ontology;
  const EvaluationResult result = evaluate({"x", "y"}, {"x", "z"}, options);
  EXPECT_TRUE(result.ontology.available);
  EXPECT_EQ(result.ontology.n_mapped, 0u);
  EXPECT_EQ(result.ontology.n_unmapped, 2u);
  EXPECT_DOUBLE_EQ(result.ontology.hierarchical_f1, 0.0);
  EXPECT_DOUBLE_EQ(result.ontology.share(TermRelation::kExact), 0.0);
}

// Naive oracle for the hierarchical metrics and distances: id-based set operations.
TEST(Metrics, HierarchicalMetricsMatchNaiveOracle) {
  const Ontology ontology = toy();
  const std::vector<std::string> live = {"CL:0000000", "CL:0000001", "CL:0000002", "CL:0000003", "CL:0000004",
                                         "CL:0000005", "CL:0000006", "CL:0000007", "CL:0000008"};
  std::mt19937 generator(7);
  std::vector<std::string> truth;
  std::vector<std::string> prediction;
  for (int i = 0; i < 300; ++i) {
    truth.push_back(live[generator() % live.size()]);
    prediction.push_back(live[generator() % live.size()]);
  }
  double intersection = 0;
  double predicted = 0;
  double actual = 0;
  double distance = 0;
  double correct_after_correction = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    auto set_of = [&](const std::string& id) {
      std::set<std::string> closure;
      for (const auto& a : ontology.ancestors(id, true)) {
        if (a != "CL:0000000") closure.insert(a);
      }
      return closure;
    };
    const auto p = set_of(prediction[i]);
    const auto t = set_of(truth[i]);
    for (const auto& a : p) intersection += t.count(a);
    predicted += static_cast<double>(p.size());
    actual += static_cast<double>(t.size());
    distance += *ontology.upward_lca_distance(prediction[i], truth[i]);
    const auto descendants = ontology.descendants(truth[i], true);
    correct_after_correction +=
        std::find(descendants.begin(), descendants.end(), prediction[i]) != descendants.end() ? 1 : 0;
  }
  EvaluationOptions options;
  options.ontology = &ontology;
  const OntologyMetrics o = evaluate(truth, prediction, options).ontology;
  EXPECT_EQ(o.n_mapped, 300u);
  EXPECT_NEAR(o.hierarchical_precision, intersection / predicted, 1e-12);
  EXPECT_NEAR(o.hierarchical_recall, intersection / actual, 1e-12);
  EXPECT_NEAR(o.mean_lca_distance_all, distance / 300.0, 1e-12);
  EXPECT_NEAR(o.corrected_accuracy, correct_after_correction / 300.0, 1e-12);
}

TEST(Metrics, RankingByHand) {
  ProbabilityMatrix probabilities;
  probabilities.class_names = {"B", "CD4 T", "T"};
  probabilities.values = {
      0.7F, 0.2F, 0.1F,  // truth B: rank 1
      0.5F, 0.3F, 0.2F,  // truth CD4 T: rank 2
      0.2F, 0.2F, 0.2F,  // truth T: ties rank after earlier columns -> 3
      0.1F, 0.1F, 0.8F,  // truth Mono: not a column
  };
  EvaluationOptions options;
  options.probabilities = &probabilities;
  options.top_k = {1, 2, 3, 5};
  const EvaluationResult result = evaluate({"B", "CD4 T", "T", "Mono"}, {"B", "B", "B", "T"}, options);
  const RankingMetrics& r = result.ranking;
  ASSERT_TRUE(r.available);
  ASSERT_EQ(r.top_k.size(), 4u);
  EXPECT_EQ(r.top_k[0].k, 1);
  EXPECT_DOUBLE_EQ(r.top_k[0].accuracy, 0.25);
  EXPECT_DOUBLE_EQ(r.top_k[1].accuracy, 0.5);
  EXPECT_DOUBLE_EQ(r.top_k[2].accuracy, 0.75);
  EXPECT_DOUBLE_EQ(r.top_k[3].accuracy, 0.75);  // k above the class count
  EXPECT_DOUBLE_EQ(r.mean_reciprocal_rank, (1.0 + 0.5 + 1.0 / 3.0) / 4.0);
  EXPECT_EQ(r.n_truth_not_in_classes, 1u);
  EXPECT_EQ(r.n_without_probabilities, 0u);
}

TEST(Metrics, ACellWithoutProbabilitiesIsAMissAtEveryK) {
  // A cell without any model gene has probabilities of 0 throughout (predicted Unassigned): its
  // tied zeros rank nothing, so top-1 accuracy cannot exceed accuracy (an audit's fold: 0.8714
  // accuracy, 0.8729 top-1 when the tie order put its truth first).
  ProbabilityMatrix probabilities;
  probabilities.class_names = {"B", "T"};
  probabilities.values = {
      0.9F, 0.1F,  // truth B: rank 1
      0.0F, 0.0F,  // truth B, no probabilities: a miss (the tie would rank B first)
  };
  EvaluationOptions options;
  options.probabilities = &probabilities;
  options.top_k = {1, 2};
  const EvaluationResult result = evaluate({"B", "B"}, {"B", "Unassigned"}, options);
  EXPECT_DOUBLE_EQ(result.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(result.ranking.top_k[0].accuracy, 0.5);
  EXPECT_DOUBLE_EQ(result.ranking.top_k[1].accuracy, 0.5);
  EXPECT_DOUBLE_EQ(result.ranking.mean_reciprocal_rank, 0.5);
  EXPECT_EQ(result.ranking.n_without_probabilities, 1u);
}

TEST(Metrics, CalibrationByHand) {
  // Four cells, each alone in its bin of the top probability: ECE = mean |confidence - right|.
  ProbabilityMatrix probabilities;
  probabilities.class_names = {"A", "B"};
  probabilities.values = {
      0.9F,  0.1F,   // truth A: top A, right
      0.62F, 0.38F,  // truth B: top A, wrong
      0.3F,  0.7F,   // truth B: top B, right
      0.82F, 0.18F,  // truth A: right
  };
  EvaluationOptions options;
  options.probabilities = &probabilities;
  const EvaluationResult result = evaluate({"A", "B", "B", "A"}, {"A", "A", "B", "A"}, options);
  const CalibrationMetrics& c = result.ranking.calibration;
  ASSERT_TRUE(c.available);
  EXPECT_EQ(c.n_cells, 4u);
  EXPECT_DOUBLE_EQ(c.accuracy, 0.75);
  EXPECT_NEAR(c.mean_confidence, (0.9 + 0.62 + 0.7 + 0.82) / 4, 1e-6);
  EXPECT_NEAR(c.expected_calibration_error, (0.1 + 0.62 + 0.3 + 0.18) / 4, 1e-6);
  EXPECT_NEAR(c.log_loss, -(std::log(0.9) + std::log(0.38) + std::log(0.7) + std::log(0.82)) / 4, 1e-6);
  EXPECT_NEAR(c.brier_score, (0.02 + 2 * 0.62 * 0.62 + 0.18 + 2 * 0.18 * 0.18) / 4, 1e-6);
  const nlohmann::json json = to_json(result)["ranking"]["calibration"];
  EXPECT_EQ(json["n_cells"], 4);
  EXPECT_EQ(json["bins"], kCalibrationBins);
  EXPECT_NEAR(json["expected_calibration_error"].get<double>(), 0.3, 1e-6);
  EXPECT_NE(format_report(result).find("calibration over 4 cells (truth a class): top-class accuracy 0.7500, mean top probability 0.7600, "
                                       "ECE 0.3000"),
            std::string::npos)
      << format_report(result);
  // A probability on a bin's upper edge belongs to that bin, though 0.6F is 0.6000000238.
  // (0.6 right and 0.65 wrong in one bin would give |0.625 - 0.5| = 0.125)
  probabilities.values = {0.6F, 0.4F, 0.65F, 0.35F};
  const EvaluationResult edges = evaluate({"A", "B"}, {"A", "A"}, options);
  EXPECT_NEAR(edges.ranking.calibration.expected_calibration_error, 0.5 * 0.4 + 0.5 * 0.65, 1e-6);
  // Cells in one bin: their mean confidence against their share right.
  probabilities.values = {0.9F, 0.1F, 0.9F, 0.1F, 0.9F, 0.1F, 0.9F, 0.1F};
  const EvaluationResult same_bin = evaluate({"A", "A", "A", "B"}, {"A", "A", "A", "A"}, options);
  EXPECT_NEAR(same_bin.ranking.calibration.expected_calibration_error, 0.15, 1e-6);
  // A truth that is no column, and a cell without probabilities, are left out; rows that are
  // scores, not probabilities (not summing to 1), have no calibration.
  probabilities.values = {0.9F, 0.1F, 0.0F, 0.0F, 0.2F, 0.8F, 0.5F, 0.5F};
  const EvaluationResult left_out = evaluate({"A", "A", "Mono", "B"}, {"A", "Unassigned", "B", "A"}, options);
  EXPECT_EQ(left_out.ranking.calibration.n_cells, 2u);
  probabilities.values = {0.9F, 0.3F, 0.2F, 0.1F, 0.2F, 0.8F, 0.5F, 0.5F};
  const EvaluationResult scores = evaluate({"A", "A", "B", "B"}, {"A", "A", "B", "A"}, options);
  EXPECT_TRUE(scores.ranking.available);
  EXPECT_FALSE(scores.ranking.calibration.available);
  EXPECT_TRUE(to_json(scores)["ranking"]["calibration"].is_null());
}

TEST(Metrics, RankingTallyOfBatchesEqualsTheirCellsAtOnce) {
  // Two folds whose models know different classes, against one matrix over the union (0 where a
  // fold's model lacks a class): the same top-k, reciprocal rank and calibration.
  std::mt19937 random(7);
  std::uniform_real_distribution<float> uniform(0.05F, 1.0F);
  const std::vector<std::string> all_classes = {"A", "B", "C", "D"};
  ProbabilityMatrix first{{"A", "B", "C"}, {}};
  ProbabilityMatrix second{{"C", "A", "D"}, {}};
  ProbabilityMatrix all{all_classes, {}};
  std::vector<std::string> first_truth;
  std::vector<std::string> second_truth;
  const auto fill = [&](ProbabilityMatrix& fold, std::vector<std::string>& truth, int n) {
    for (int i = 0; i < n; ++i) {
      std::vector<float> row(3);
      float sum = 0;
      for (auto& p : row) sum += (p = uniform(random));
      std::vector<float> wide(4, 0.0F);
      for (std::size_t k = 0; k < 3; ++k) {
        fold.values.push_back(row[k] / sum);
        const auto column = std::find(all_classes.begin(), all_classes.end(), fold.class_names[k]) - all_classes.begin();
        wide[static_cast<std::size_t>(column)] = row[k] / sum;
      }
      all.values.insert(all.values.end(), wide.begin(), wide.end());
      truth.push_back(fold.class_names[random() % 3]);
    }
  };
  fill(first, first_truth, 40);
  fill(second, second_truth, 30);
  RankingTally tally({1, 2});
  tally.add(first_truth, first);
  tally.add(second_truth, second);
  const RankingMetrics pooled = tally.result();
  std::vector<std::string> truth = first_truth;
  truth.insert(truth.end(), second_truth.begin(), second_truth.end());
  RankingTally at_once({1, 2});
  at_once.add(truth, all);
  const RankingMetrics expected = at_once.result();
  ASSERT_TRUE(pooled.available);
  EXPECT_DOUBLE_EQ(pooled.top_k[0].accuracy, expected.top_k[0].accuracy);
  EXPECT_DOUBLE_EQ(pooled.top_k[1].accuracy, expected.top_k[1].accuracy);
  EXPECT_DOUBLE_EQ(pooled.mean_reciprocal_rank, expected.mean_reciprocal_rank);
  ASSERT_TRUE(pooled.calibration.available);
  EXPECT_EQ(pooled.calibration.n_cells, 70u);
  EXPECT_DOUBLE_EQ(pooled.calibration.accuracy, expected.calibration.accuracy);
  EXPECT_DOUBLE_EQ(pooled.calibration.expected_calibration_error, expected.calibration.expected_calibration_error);
  EXPECT_DOUBLE_EQ(pooled.calibration.log_loss, expected.calibration.log_loss);
  EXPECT_DOUBLE_EQ(pooled.calibration.brier_score, expected.calibration.brier_score);
  // A truth the batch's model lacks: a miss at every k and outside the calibration.
  RankingTally missing({1, 2});
  missing.add({"D"}, ProbabilityMatrix{first.class_names, {0.2F, 0.3F, 0.5F}});
  const RankingMetrics unknown = missing.result();
  EXPECT_EQ(unknown.n_truth_not_in_classes, 1u);
  EXPECT_DOUBLE_EQ(unknown.top_k[1].accuracy, 0.0);
  EXPECT_FALSE(unknown.calibration.available);
  // A NaN is refused before any sum changes.
  ProbabilityMatrix bad{{"A", "B", "C"}, {0.5F, 0.5F, 0.0F, 0.2F, NAN, 0.8F}};
  RankingTally checked({1});
  EXPECT_THROW(checked.add({"A", "B"}, bad), InputError);
  EXPECT_FALSE(checked.result().available);
  EXPECT_FALSE(RankingTally({1}).result().available);  // (nothing added)
  EXPECT_THROW(RankingTally({0}), InputError);
}

TEST(Metrics, BadInputThrows) {
  EXPECT_THROW((void)evaluate({"a"}, {"a", "b"}), InputError);
  EXPECT_THROW((void)evaluate({}, {}), InputError);
  ProbabilityMatrix probabilities;
  probabilities.class_names = {"a", "b"};
  probabilities.values = {0.5F, 0.5F, 0.1F};
  EvaluationOptions options;
  options.probabilities = &probabilities;
  EXPECT_THROW((void)evaluate({"a", "b"}, {"a", "b"}, options), InputError);  // wrong shape
  probabilities.values = {0.5F, 0.5F, 0.1F, NAN};
  EXPECT_THROW((void)evaluate({"a", "b"}, {"a", "b"}, options), InputError);  // NaN
  probabilities.values = {0.5F, 0.5F, 0.1F, 0.9F};
  probabilities.class_names = {"a", "a"};
  EXPECT_THROW((void)evaluate({"a", "b"}, {"a", "b"}, options), InputError);  // duplicate class
  probabilities.class_names = {"a", "b"};
  options.top_k = {0};
  EXPECT_THROW((void)evaluate({"a", "b"}, {"a", "b"}, options), InputError);  // k < 1
  try {
    (void)evaluate({"a"}, {"a", "b"});
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("1 truth labels but 2 predictions"), std::string::npos);
  }
}

TEST(Metrics, JsonAndTextReport) {
  const Ontology ontology = toy();
  ProbabilityMatrix probabilities;
  probabilities.class_names = {"B", "CD4 T"};
  probabilities.values.assign(kTruth.size() * 2, 0.5F);
  EvaluationOptions options;
  options.ontology = &ontology;
  options.cl_ids = kToyIds;
  options.probabilities = &probabilities;
  const EvaluationResult result = evaluate(kTruth, kPrediction, options);
  const nlohmann::json json = to_json(result);
  EXPECT_EQ(json["n_cells"], 8);
  EXPECT_DOUBLE_EQ(json["accuracy"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(json["macro"]["f1"].get<double>(), 5.0 / 36.0);
  EXPECT_DOUBLE_EQ(json["weighted"]["recall"].get<double>(), 0.25);
  ASSERT_EQ(json["per_class"].size(), 6u);
  EXPECT_EQ(json["per_class"][0]["label"], "B");
  EXPECT_EQ(json["per_class"][0]["support"], 2);
  EXPECT_EQ(json["confusion_matrix"]["labels"].size(), 6u);
  EXPECT_EQ(json["confusion_matrix"]["counts"][1][4], 1);
  EXPECT_TRUE(json["ranking"]["top_k_accuracy"].contains("3"));
  EXPECT_EQ(json["ontology"]["n_unmapped"], 1);
  EXPECT_EQ(json["ontology"]["unmapped_labels"][0], "Unknown");
  EXPECT_EQ(json["ontology"]["relation_counts"]["parent"], 1);
  EXPECT_DOUBLE_EQ(json["ontology"]["relation_shares"]["exact"].get<double>(), 2.0 / 7.0);
  EXPECT_DOUBLE_EQ(json["ontology"]["hierarchical_f1"].get<double>(), 38.0 / 49.0);
  EXPECT_TRUE(to_json(evaluate(kTruth, kPrediction))["ontology"].is_null());

  const std::string report = format_report(result);
  for (const char* expected : {"accuracy  0.2500", "macro avg", "weighted avg", "CD4 T", "Unknown",
                               "top-1 accuracy", "mean reciprocal rank", "unmapped labels: Unknown",
                               "hierarchical P / R / F", "parent 14.3%"}) {
    EXPECT_NE(report.find(expected), std::string::npos) << expected << "\n" << report;
  }
}

TEST(Metrics, WeakestClassesNameTheRareMissesTheAveragesHide) {
  // 100 T cells all right, 4 DC of which 1 right, 2 platelets of which 1 right, 10 B of which 9.
  std::vector<std::string> truth;
  std::vector<std::string> prediction;
  const auto add = [&](const std::string& label, int right, int wrong) {
    for (int i = 0; i < right; ++i) { truth.push_back(label); prediction.push_back(label); }
    for (int i = 0; i < wrong; ++i) { truth.push_back(label); prediction.push_back("T"); }
  };
  add("T", 100, 0);
  add("DC", 1, 3);
  add("Platelet", 1, 1);
  add("B", 9, 1);
  const EvaluationResult result = evaluate(truth, prediction);
  EXPECT_EQ(weakest_classes(result.per_class), "DC 0.250 (1 of 4), Platelet 0.500 (1 of 2)");
  EXPECT_EQ(weakest_classes(result.per_class, 0.95), "DC 0.250 (1 of 4), Platelet 0.500 (1 of 2), B 0.900 (9 of 10)");
  EXPECT_EQ(weakest_classes(result.per_class, 0.95, 1), "DC 0.250 (1 of 4), 2 more");
  EXPECT_EQ(weakest_classes(result.per_class, 0.95, 2), "DC 0.250 (1 of 4), Platelet 0.500 (1 of 2), B 0.900 (9 of 10)");
  EXPECT_EQ(weakest_classes(result.per_class, 0.2), "");
}

}  // namespace
}  // namespace celltyper
