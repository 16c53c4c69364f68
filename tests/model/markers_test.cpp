// Marker genes of a model's classes (markers.hpp) on a sample small enough to work out by hand:
// log1p(CP10k) means per class, the other classes' mean, genes judged only where measured,
// coarse-labelled cells and classes without cells, values stored as logs of either base.
#include <celltyper/error.hpp>
#include <celltyper/markers.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace celltyper {
namespace {

/// Genes A1, B1, H (every type), P (measured by the second reference only); classes TypeA, TypeB,
/// TypeC and TypeD (no cells of its own). Every cell holds 10 counts.
CellTypeModel small_model() {
  CellTypeModel model;
  model.features = kFeaturesExpression;
  model.class_names = {"TypeA", "TypeB", "TypeC", "TypeD"};
  model.class_cl_ids = {"CL:0000001", "", "", ""};
  ReferenceSample& sample = model.reference;
  sample.entrez_ids = {1, 2, 3, 4};
  sample.symbols = {"A1", "B1", "H", "P"};
  sample.ensembl_ids = {"", "", "", ""};
  sample.values.reset(0, 0, 4);
  const auto add = [&](std::vector<std::pair<std::int32_t, double>> cell, std::int32_t label, std::int32_t reference) {
    for (const auto& [gene, value] : cell) {
      sample.values.indices.push_back(gene);
      sample.values.values.push_back(value);
    }
    sample.values.indptr.push_back(static_cast<std::int64_t>(sample.values.indices.size()));
    ++sample.values.n_rows;
    sample.labels.push_back(label);
    sample.references.push_back(reference);
  };
  add({{0, 5}, {2, 5}}, 0, 0);  // TypeA, first reference (no P)
  add({{0, 5}, {2, 5}}, 0, 1);  // TypeA, second reference: P measured, not expressed
  add({{1, 5}, {2, 5}}, 1, 0);  // TypeB
  add({{1, 5}, {2, 5}}, 1, 0);
  add({{2, 5}, {3, 5}}, 2, 1);  // TypeC, P expressed
  add({{2, 5}, {3, 5}}, 2, 1);
  add({{1, 10}}, 4, 0);  // a coarse label (TypeA or TypeB): no one class's
  sample.label_sets = {{0, 1}};
  sample.measured = {{0, 1, 2}, {0, 1, 2, 3}};
  sample.normalization = "log1p-cp10k";
  sample.matrix = "X";
  sample.n_reference_cells = sample.n_cells();
  return model;
}

std::vector<std::string> symbols(const ClassMarkers& markers) {
  std::vector<std::string> out;
  for (const MarkerGene& gene : markers.genes) out.push_back(gene.symbol);
  return out;
}

TEST(Markers, EachClassGetsTheGenesItExpressesAboveTheOtherClassesMean) {
  const std::vector<ClassMarkers> markers = class_markers(small_model(), 5);
  ASSERT_EQ(markers.size(), 4U);
  const double high = std::log1p(5.0 * 1e4 / 10);  // 5 of a cell's 10 counts
  // TypeA: A1 (its own); H (every type alike) is no higher in it; B1 and P unexpressed.
  EXPECT_EQ(markers[0].name, "TypeA");
  EXPECT_EQ(markers[0].cl_id, "CL:0000001");
  EXPECT_EQ(markers[0].n_cells, 2);
  EXPECT_EQ(symbols(markers[0]), (std::vector<std::string>{"A1"}));
  EXPECT_NEAR(markers[0].genes[0].mean, high, 1e-5);
  EXPECT_NEAR(markers[0].genes[0].mean_elsewhere, 0.0, 1e-12);
  EXPECT_NEAR(markers[0].genes[0].fraction, 1.0, 1e-12);
  // TypeB: the coarse-labelled cell (B1 at 10 of 10 counts) is no TypeB cell.
  EXPECT_EQ(markers[1].n_cells, 2);
  EXPECT_EQ(symbols(markers[1]), (std::vector<std::string>{"B1"}));
  EXPECT_NEAR(markers[1].genes[0].mean, high, 1e-5);
  // TypeC: P, compared with the one other type whose cells measured it (TypeA's second-reference
  // cell: 0), not with TypeB, which never measured it.
  EXPECT_EQ(symbols(markers[2]), (std::vector<std::string>{"P"}));
  EXPECT_NEAR(markers[2].genes[0].mean_elsewhere, 0.0, 1e-12);
  EXPECT_NEAR(markers[2].genes[0].fraction_elsewhere, 0.0, 1e-12);
  // TypeD has no sampled cells of its own.
  EXPECT_EQ(markers[3].n_cells, 0);
  EXPECT_TRUE(markers[3].genes.empty());
  // n cuts the list; the JSON carries the same.
  const std::vector<ClassMarkers> one = class_markers(small_model(), 1);
  EXPECT_EQ(symbols(one[0]), (std::vector<std::string>{"A1"}));
  const nlohmann::json json = markers_to_json(one);
  EXPECT_EQ(json[0]["class"], "TypeA");
  EXPECT_EQ(json[0]["genes"][0]["symbol"], "A1");
  EXPECT_EQ(json[0]["genes"][0]["entrez_id"], 1);
  EXPECT_EQ(json[3]["genes"].size(), 0U);
}

TEST(Markers, LoggedValuesAreReadOnTheOneScaleAndAModelWithoutCellsIsRefused) {
  CellTypeModel model = small_model();
  const double high = std::log1p(5.0 * 1e4 / 10);
  // log2(1 + CP10k) values are un-logged and normalised again: the same log1p(CP10k) means
  CellTypeModel log2 = small_model();
  log2.reference.normalization = "relog2-cp10k";
  for (double& value : log2.reference.values.values) value = std::log2(1.0 + value * 1e4 / 10);
  const std::vector<ClassMarkers> relogged = class_markers(log2, 1);
  EXPECT_EQ(symbols(relogged[0]), (std::vector<std::string>{"A1"}));
  EXPECT_NEAR(relogged[0].genes[0].mean, high, 1e-5);
  EXPECT_NEAR(relogged[2].genes[0].mean, high, 1e-5);
  // values of an unknown log ("none") are averaged as stored
  model.reference.normalization = "none";
  const std::vector<ClassMarkers> markers = class_markers(model, 1);
  EXPECT_EQ(symbols(markers[0]), (std::vector<std::string>{"A1"}));
  EXPECT_NEAR(markers[0].genes[0].mean, 5.0, 1e-6);
  model.reference = ReferenceSample();
  try {
    (void)class_markers(model, 3);
    FAIL() << "no error";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("the model keeps no reference cells (trained with --reference-sample 0, or from references"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace celltyper
