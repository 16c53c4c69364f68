// LabelMapper: normalisation, match priority, user tables and the project's real label map.

#include <fstream>
#include <functional>
#include <sstream>

#include "celltyper/error.hpp"
#include "celltyper/ontology.hpp"
#include "support/test_support.hpp"

namespace celltyper {
namespace {

constexpr const char* kObo = R"OBO(
[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000003
name: T cell
synonym: "T lymphocyte" EXACT []
synonym: "thymocyte" RELATED []
is_a: CL:0000000

[Term]
id: CL:0000004
name: B cell
is_a: CL:0000000

[Term]
id: CL:0000005
name: CD4-positive T cell
is_a: CL:0000003

[Term]
id: CL:0000006
name: natural killer cell
synonym: "killer cell" EXACT []
is_a: CL:0000000

[Term]
id: CL:0000007
name: killer T cell
synonym: "killer cell" EXACT []
is_a: CL:0000003

[Term]
id: CL:0000020
name: obsolete old T cell
synonym: "old T lymphocyte" EXACT []
is_obsolete: true
replaced_by: CL:0000003

[Term]
id: CL:0000021
name: B cell
is_obsolete: true
)OBO";

Ontology toy() {
  std::istringstream stream(kObo);
  return parse_obo(stream, "toy.obo");
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  return "no error";
}

TEST(NormalizeLabel, LowerCasesAndCollapsesSeparators) {
  EXPECT_EQ(normalize_label("CD14+_Mono"), "cd14+ mono");
  EXPECT_EQ(normalize_label("  T-cell  "), "t cell");
  EXPECT_EQ(normalize_label("t__CELL"), "t cell");
  EXPECT_EQ(normalize_label("Naive\tCD4 - T"), "naive cd4 t");
  EXPECT_EQ(normalize_label("CD4+/CD25 T Reg"), "cd4+/cd25 t reg");
  EXPECT_EQ(normalize_label("-_ "), "");
  // A marker's closing hyphen means "negative" and stays.
  EXPECT_EQ(normalize_label("CD16- monocyte"), "cd16- monocyte");
  EXPECT_EQ(normalize_label("CD4+CD25-"), "cd4+cd25-");
  EXPECT_EQ(normalize_label("CD4-positive"), "cd4 positive");
}

TEST(LabelMapper, MatchesLabelsSynonymsAndIds) {
  const Ontology ontology = toy();
  const LabelMapper mapper(&ontology);
  for (const char* label : {"T cell", "t CELL", "T_cell", "t-cell", " T  cell "}) {
    const LabelMatch match = mapper.map(label);
    EXPECT_EQ(match.cl_id, "CL:0000003") << label;
    EXPECT_EQ(match.kind, LabelMatchKind::kLabel) << label;
    EXPECT_EQ(match.cl_label, "T cell");
    EXPECT_EQ(match.label, label);
  }
  EXPECT_EQ(mapper.map("cd4 positive T cell").cl_id, "CL:0000005");
  // Plurals: each word "cells" read as "cell", else the last word without its "s"; a label or an
  // exact synonym of its own wins, and a plural match says so.
  for (const char* label : {"T cells", "t_CELLS", "T lymphocytes", "B-cells"}) {
    const LabelMatch match = mapper.map(label);
    EXPECT_NE(match.cl_id, "") << label;
    EXPECT_TRUE(match.plural) << label;
  }
  EXPECT_EQ(mapper.map("T cells").cl_id, "CL:0000003");
  EXPECT_EQ(mapper.map("T cells").kind, LabelMatchKind::kLabel);
  EXPECT_EQ(mapper.map("T lymphocytes").kind, LabelMatchKind::kSynonym);
  EXPECT_EQ(mapper.map("natural killer cells").cl_id, "CL:0000006");
  EXPECT_EQ(mapper.map("killer cells").kind, LabelMatchKind::kAmbiguous);  // (a synonym of two terms, as "killer cell")
  EXPECT_FALSE(mapper.map("T cell").plural);
  EXPECT_FALSE(mapper.map("Bs").mapped());    // (a word of two letters is no plural)
  EXPECT_FALSE(mapper.map("T cellss").mapped());
  const LabelMatch synonym = mapper.map("T-Lymphocyte");
  EXPECT_EQ(synonym.cl_id, "CL:0000003");
  EXPECT_EQ(synonym.kind, LabelMatchKind::kSynonym);
  const LabelMatch id = mapper.map(" CL:0000004 ");
  EXPECT_EQ(id.cl_id, "CL:0000004");
  EXPECT_EQ(id.kind, LabelMatchKind::kIdentifier);
  EXPECT_EQ(mapper.map("CL_0000004").cl_id, "CL:0000004");  // (the PURL's form)
  // A RELATED synonym is not used unless asked for.
  EXPECT_FALSE(mapper.map("thymocyte").mapped());
  EXPECT_EQ(mapper.map("thymocyte").kind, LabelMatchKind::kUnmapped);
  LabelMapperOptions related;
  related.match_related_synonyms = true;
  EXPECT_EQ(LabelMapper(&ontology, related).map("thymocyte").cl_id, "CL:0000003");
  EXPECT_FALSE(mapper.map("").mapped());
  EXPECT_FALSE(mapper.map("Unknown").mapped());
  EXPECT_STREQ(to_string(LabelMatchKind::kSynonym), "synonym");
}

TEST(LabelMapper, DeprecatedAndAmbiguousTerms) {
  const Ontology ontology = toy();
  const LabelMapper mapper(&ontology);
  // The live "B cell" wins over the obsolete term with the same label.
  EXPECT_EQ(mapper.map("B cell").cl_id, "CL:0000004");
  // A deprecated term's label and synonyms lead to its replacement ...
  EXPECT_EQ(mapper.map("obsolete old T cell").cl_id, "CL:0000003");
  EXPECT_EQ(mapper.map("old T lymphocyte").cl_id, "CL:0000003");
  EXPECT_EQ(mapper.map("CL:0000020").cl_id, "CL:0000003");
  // ... unless replacements are not followed.
  LabelMapperOptions keep;
  keep.follow_replaced_by = false;
  EXPECT_EQ(LabelMapper(&ontology, keep).map("obsolete old T cell").cl_id, "CL:0000020");
  // One synonym, two live terms: not mapped, both candidates reported.
  const LabelMatch ambiguous = mapper.map("Killer cell");
  EXPECT_FALSE(ambiguous.mapped());
  EXPECT_EQ(ambiguous.kind, LabelMatchKind::kAmbiguous);
  EXPECT_EQ(ambiguous.candidates, (std::vector<std::string>{"CL:0000006", "CL:0000007"}));
  LabelMapperOptions no_synonyms;
  no_synonyms.match_exact_synonyms = false;
  EXPECT_FALSE(LabelMapper(&ontology, no_synonyms).map("T lymphocyte").mapped());
  LabelMapperOptions no_labels;
  no_labels.match_labels = false;
  EXPECT_FALSE(LabelMapper(&ontology, no_labels).map("B cell").mapped());
}

TEST(LabelMapper, UserTableScopesByDatasetAndWins) {
  const Ontology ontology = toy();
  const test::TempDir dir;
  std::ofstream(dir.file("map.tsv")) << "dataset\tlabel\tcl_id\tcl_label\tnote\n"
                                        "A\tT\tCL:0000003\tT cell\t\n"
                                        "B\tT\tCL:0000004\tB cell\tsilly but scoped\n"
                                        "\tTcells\tCL:0000005\t\tany dataset\n"
                                        "A\tB cell\tCL:0000005\n"
                                        "\n"
                                        "A\tT\tCL:0000003\t\trepeated row is fine\n"
                                        "A\told\tCL:0000020\r\n";
  LabelMapper mapper(&ontology);
  mapper.load_table(dir.file("map.tsv"));
  EXPECT_EQ(mapper.map("T", "A").cl_id, "CL:0000003");
  EXPECT_EQ(mapper.map("T", "A").kind, LabelMatchKind::kUserMap);
  EXPECT_EQ(mapper.map("t", "B").cl_id, "CL:0000004");
  EXPECT_FALSE(mapper.map("T", "C").mapped());            // no row for C, no global row
  EXPECT_EQ(mapper.map("T").kind, LabelMatchKind::kAmbiguous);  // no dataset: rows disagree
  EXPECT_EQ(mapper.map("T").candidates, (std::vector<std::string>{"CL:0000003", "CL:0000004"}));
  EXPECT_EQ(mapper.map("Tcells", "A").cl_id, "CL:0000005");  // global row
  EXPECT_EQ(mapper.map("Tcells").cl_id, "CL:0000005");
  EXPECT_EQ(mapper.map("B cell", "A").cl_id, "CL:0000005");  // the table beats the label
  EXPECT_EQ(mapper.map("B cell", "A").kind, LabelMatchKind::kUserMap);
  EXPECT_EQ(mapper.map("B cell", "B").cl_id, "CL:0000004");  // other dataset: label match
  EXPECT_EQ(mapper.map("B cell", "B").kind, LabelMatchKind::kLabel);
  EXPECT_EQ(mapper.map("old", "A").cl_id, "CL:0000003");  // deprecated id in the table
  EXPECT_EQ(mapper.map("old", "A").cl_label, "T cell");

  const std::vector<std::string> labels = {"T", "B cell", "Unknown", "T", "Doublet", "Tcells"};
  const auto matches = mapper.map_all(labels, "A");
  ASSERT_EQ(matches.size(), labels.size());
  EXPECT_EQ(matches[1].cl_id, "CL:0000005");
  EXPECT_FALSE(matches[2].mapped());
  const auto ids = mapper.to_cl_ids(labels, "A");
  EXPECT_EQ(ids, (std::map<std::string, std::string>{
                     {"B cell", "CL:0000005"}, {"T", "CL:0000003"}, {"Tcells", "CL:0000005"}}));
  EXPECT_EQ(mapper.unmapped_labels(labels, "A"), (std::vector<std::string>{"Doublet", "Unknown"}));

  // Without an ontology only the table is used and ids are reported as written.
  LabelMapper bare;
  bare.add_mapping("", "Platelet", "CL:0000233");
  EXPECT_EQ(bare.map("platelet").cl_id, "CL:0000233");
  EXPECT_EQ(bare.map("platelet").cl_label, "");
  EXPECT_FALSE(bare.map("B cell").mapped());
}

TEST(LabelMapper, BadTablesThrowNamingFileAndLine) {
  const Ontology ontology = toy();
  const test::TempDir dir;
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name)) << text;
    return dir.file(name);
  };
  LabelMapper mapper(&ontology);
  EXPECT_NE(error_of([&] { mapper.load_table(dir.file("absent.tsv")); }).find("absent.tsv does not exist"),
            std::string::npos);
  EXPECT_NE(error_of([&] { mapper.load_table(write("empty.tsv", "")); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([&] { mapper.load_table(write("header.tsv", "name\tid\nT\tCL:0000003\n")); })
                .find("'label' and 'cl_id'"),
            std::string::npos);
  const std::string bad_id = error_of([&] { mapper.load_table(write("bad_id.tsv", "label\tcl_id\nT\tCL:0000003\nB\tUBERON:1\n")); });
  EXPECT_NE(bad_id.find("bad_id.tsv line 3"), std::string::npos) << bad_id;
  EXPECT_NE(bad_id.find("UBERON:1"), std::string::npos) << bad_id;
  EXPECT_NE(error_of([&] { mapper.load_table(write("unknown.tsv", "label\tcl_id\nX\tCL:7777777\n")); })
                .find("CL:7777777 for label 'X' is not a term of toy.obo"),
            std::string::npos);
  const std::string conflict = error_of([&] {
    LabelMapper fresh(&ontology);
    fresh.load_table(write("conflict.tsv", "dataset\tlabel\tcl_id\nA\tT cells\tCL:0000003\nA\tt_cells\tCL:0000004\n"));
  });
  EXPECT_NE(conflict.find("conflict.tsv line 3"), std::string::npos) << conflict;
  EXPECT_NE(conflict.find("conflict.tsv line 2"), std::string::npos) << conflict;
  EXPECT_NE(error_of([&] { mapper.load_table(write("empty_label.tsv", "label\tcl_id\n\tCL:0000003\n")); })
                .find("empty label"),
            std::string::npos);
}

// ---- the project's label map against the real ontologies -----------------------------------

struct MapRow {
  std::string dataset, label, cl_id, cl_label;
};

std::vector<MapRow> read_rows(const std::string& path) {
  std::ifstream stream(path);
  std::string line;
  std::getline(stream, line);
  std::vector<MapRow> rows;
  while (std::getline(stream, line)) {
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::stringstream fields_stream(line);
    std::string field;
    while (std::getline(fields_stream, field, '\t')) fields.push_back(field);
    fields.resize(5);
    rows.push_back({fields[0], fields[1], fields[2], fields[3]});
  }
  return rows;
}

TEST(LabelMapperData, EveryRowOfTheProjectLabelMapMaps) {
  CELLTYPER_REQUIRE_SHARED(map_path, "label_map_to_cell_ontology.tsv");
  for (const char* ontology_file : {"cell-ontology/cl-basic.obo", "cell-ontology/CL-ontology-v2026-03-26.json"}) {
    CELLTYPER_REQUIRE_SHARED(ontology_path, ontology_file);
    const Ontology ontology = load_ontology(ontology_path);
    LabelMapper mapper(&ontology);
    mapper.load_table(map_path);
    const std::vector<MapRow> rows = read_rows(map_path);
    ASSERT_EQ(rows.size(), 34u);
    for (const MapRow& row : rows) {
      const LabelMatch match = mapper.map(row.label, row.dataset);
      EXPECT_EQ(match.cl_id, row.cl_id) << ontology_file << ": " << row.dataset << " / " << row.label;
      EXPECT_EQ(match.kind, LabelMatchKind::kUserMap) << row.label;
    }
    // Labels are distinct enough that even unscoped queries agree.
    for (const MapRow& row : rows) EXPECT_EQ(mapper.map(row.label).cl_id, row.cl_id) << row.label;
  }
}

TEST(LabelMapperData, ExactLabelsAndSynonymsWithoutATable) {
  CELLTYPER_REQUIRE_SHARED(map_path, "label_map_to_cell_ontology.tsv");
  CELLTYPER_REQUIRE_SHARED(json_path, "cell-ontology/CL-ontology-v2026-03-26.json");
  CELLTYPER_REQUIRE_SHARED(obo_path, "cell-ontology/cl-basic.obo");
  const Ontology json = load_ontology(json_path);
  const LabelMapper mapper(&json);
  // The table's cl_label column is the CL label of the 2026 release: each maps back to its id.
  for (const MapRow& row : read_rows(map_path)) {
    const LabelMatch match = mapper.map(row.cl_label);
    EXPECT_EQ(match.cl_id, row.cl_id) << row.cl_label;
    EXPECT_EQ(match.kind, LabelMatchKind::kLabel) << row.cl_label;
  }
  const Ontology obo = load_ontology(obo_path);
  for (const Ontology* ontology : {&json, &obo}) {
    const LabelMapper plain(ontology);
    EXPECT_EQ(plain.map("B cell").cl_id, "CL:0000236");
    EXPECT_EQ(plain.map("B cell").kind, LabelMatchKind::kLabel);
    EXPECT_EQ(plain.map("monocyte").cl_id, "CL:0000576");
    EXPECT_EQ(plain.map("Monocyte").cl_id, "CL:0000576");
    EXPECT_EQ(plain.map("T_cell").cl_id, "CL:0000084");
    EXPECT_EQ(plain.map("T-lymphocyte").cl_id, "CL:0000084");
    EXPECT_EQ(plain.map("T-lymphocyte").kind, LabelMatchKind::kSynonym);
    EXPECT_EQ(plain.map("regulatory T-cell").cl_id, "CL:0000815");
    EXPECT_EQ(plain.map("natural killer cell").cl_id, "CL:0000623");
    EXPECT_EQ(plain.map("CD14-positive monocyte").cl_id, "CL:0001054");
    // Plurals of CL names map (savercat's "B cells", "Monocytes"), alternatives that each name a
    // term ("T/NK cells"), shorthands of shared label sets ("CD14+ Mono", "NK"); a dataset's own
    // names need the table.
    EXPECT_EQ(plain.unmapped_labels({"B cell", "CD14+ Mono", "Monocytes", "NK", "T/NK cells", "alpha", "Cluster A"}),
              (std::vector<std::string>{"Cluster A", "alpha"}));
    for (const auto& [label, id] : std::vector<std::pair<std::string, std::string>>{
             {"B cells", "CL:0000236"}, {"Monocytes", "CL:0000576"}, {"Mast cells", "CL:0000097"}, {"Hepatocytes", "CL:0000182"},
             {"natural killer cells", "CL:0000623"}, {"T-cells", "CL:0000084"}, {"Macrophages", "CL:0000235"}}) {
      const LabelMatch match = plain.map(label);
      EXPECT_EQ(match.cl_id, id) << label;
      EXPECT_TRUE(match.plural) << label;
    }
    EXPECT_FALSE(plain.map("B cell").plural);
  }
  // Synonyms shared by a live and an obsolete term resolve to the live one.
  EXPECT_EQ(mapper.map("Muller glia").cl_id, "CL:0000636");
  EXPECT_EQ(mapper.map("cortical neuron").cl_id, "CL:0010012");
  // Obsolete labels lead to the replacement.
  EXPECT_EQ(mapper.map("obsolete bone matrix secreting cell").cl_id, "CL:0000062");
}

TEST(LabelMapper, AlternativesMapToTheirLowestCommonAncestor) {
  const Ontology ontology = toy();
  const LabelMapper mapper(&ontology);
  // "CD4-positive T cell / T cell": the common ancestor is T cell; the last part's closing words
  // complete a part that names nothing alone ("CD4-positive/killer T cells").
  for (const char* label : {"CD4-positive T cell/T cell", "CD4-positive/killer T cells", "CL:0000005 / T cells"}) {
    const LabelMatch match = mapper.map(label);
    EXPECT_EQ(match.cl_id, "CL:0000003") << label;
    EXPECT_EQ(match.kind, LabelMatchKind::kCommonAncestor) << label;
  }
  EXPECT_EQ(mapper.map("CD4-positive/killer T cells").parts, (std::vector<std::string>{"CL:0000005", "CL:0000007"}));
  EXPECT_STREQ(to_string(LabelMatchKind::kCommonAncestor), "common_ancestor");
  // Only "cell", above every term, is common to T and B cells: that says nothing.
  EXPECT_FALSE(mapper.map("T/B cells").mapped());
  EXPECT_EQ(mapper.map("T/B cells").parts, (std::vector<std::string>{"CL:0000003", "CL:0000004"}));
  // Every part must name a term, unambiguously; empty parts map nothing.
  for (const char* label : {"T/unknown cells", "T/killer cells", "T cells/", "/T cells", "/", "T//T cells"}) {
    EXPECT_FALSE(mapper.map(label).mapped()) << label;
  }
  // CellTypist's multi-labels join alternatives with '|', as a slash does (mixed too).
  for (const char* label : {"CD4-positive T cell|killer T cell", "CD4-positive|killer T cells", "CD4-positive T cell/T cell|killer T cell"}) {
    const LabelMatch match = mapper.map(label);
    EXPECT_EQ(match.cl_id, "CL:0000003") << label;
    EXPECT_EQ(match.kind, LabelMatchKind::kCommonAncestor) << label;
  }
  EXPECT_EQ(mapper.alternatives_within("CD4-positive T cell|killer T cell", "CL:0000003"), (std::vector<std::string>{"CL:0000005", "CL:0000007"}));
  EXPECT_EQ(mapper.map("T|unknown cells").reason, "read as alternatives 'T' | 'unknown cells', and 'unknown cells' names no Cell Ontology term");
  EXPECT_FALSE(mapper.map("T cells|").mapped());
  // A table row for the whole label wins.
  LabelMapper table(&ontology);
  table.add_mapping("", "T/NK cells", "CL:0000006");
  EXPECT_EQ(table.map("T/NK cells").kind, LabelMatchKind::kUserMap);
  // A part that names nothing leaves no parts.
  EXPECT_TRUE(mapper.map("T/unknown cells").parts.empty());
}

TEST(LabelMapper, UnmappedLabelsSayWhy) {
  const Ontology ontology = toy();
  const LabelMapper mapper(&ontology);
  // Only "cell", above every term, is common to T and B cells; a part that names nothing; numbers.
  EXPECT_NE(mapper.map("T/B cells").reason.find("the common ancestor of its parts, cell, is too broad"), std::string::npos)
      << mapper.map("T/B cells").reason;
  EXPECT_EQ(mapper.map("T/unknown cells").reason, "read as alternatives 'T' / 'unknown cells', and 'unknown cells' names no Cell Ontology term");
  for (const char* label : {"7", "12", " 3 ", "0.5"}) EXPECT_EQ(mapper.map(label).reason, "a number (a cluster id?), not a cell type") << label;
  // A name no term has: nothing more to say; mapped labels have no reason.
  EXPECT_EQ(mapper.map("unknown cells").reason, "");
  EXPECT_EQ(mapper.map("Cluster 7").reason, "");
  EXPECT_EQ(mapper.map("T cells").reason, "");
}

TEST(LabelMapper, AlternativesNarrowTheTermTheLabelMapsTo) {
  const Ontology ontology = toy();
  const LabelMapper mapper(&ontology);
  const std::vector<std::string> both = {"CL:0000005", "CL:0000007"};
  // At the common ancestor (T cell) or above it (a table's broader id: cell): the parts.
  EXPECT_EQ(mapper.alternatives_within("CD4-positive/killer T cells", "CL:0000003"), both);
  EXPECT_EQ(mapper.alternatives_within("CD4-positive/killer T cells", "CL:0000000"), both);
  // An id beside or below a part: the table read the label otherwise.
  EXPECT_TRUE(mapper.alternatives_within("CD4-positive/killer T cells", "CL:0000005").empty());
  // A part at the id itself covers the rest: nothing narrows; below a broader id it does.
  EXPECT_TRUE(mapper.alternatives_within("T cells/CD4-positive T cell", "CL:0000003").empty());
  EXPECT_EQ(mapper.alternatives_within("T cells/CD4-positive T cell", "CL:0000000"), std::vector<std::string>{"CL:0000003"});
  // No alternatives, a part naming nothing, an id the ontology lacks, no ontology.
  EXPECT_TRUE(mapper.alternatives_within("T cells", "CL:0000000").empty());
  EXPECT_TRUE(mapper.alternatives_within("T/unknown cells", "CL:0000000").empty());
  EXPECT_TRUE(mapper.alternatives_within("CD4-positive/killer T cells", "CL:9999999").empty());
  EXPECT_TRUE(LabelMapper().alternatives_within("CD4-positive/killer T cells", "CL:0000003").empty());
}

TEST(LabelMapperData, AlternativesOfRealLabels) {
  CELLTYPER_REQUIRE_SHARED(json_path, "cell-ontology/CL-ontology-v2026-03-26.json");
  CELLTYPER_REQUIRE_SHARED(obo_path, "cell-ontology/cl-basic.obo");
  for (const auto& path : {json_path, obo_path}) {
    const Ontology ontology = load_ontology(path);
    const LabelMapper mapper(&ontology);
    for (const auto& [label, id] : std::vector<std::pair<std::string, std::string>>{
             {"T/NK cells", "CL:0000542"}, {"NK/T cells", "CL:0000542"}, {"B cells/T cells/NK cells", "CL:0000542"},
             {"B/Plasma cells", "CL:0000945"}, {"pDC/cDC", "CL:0000451"}, {"Neurons/Astrocytes", "CL:0002319"}}) {
      const LabelMatch match = mapper.map(label);
      EXPECT_EQ(match.cl_id, id) << label << " in " << path;
      EXPECT_EQ(match.kind, LabelMatchKind::kCommonAncestor) << label;
    }
    // Their only common ancestors lie above most of the ontology (eukaryotic / animal / somatic cell),
    // or far above both parts (secretory cell: 400-600 terms for two leaves).
    EXPECT_FALSE(mapper.map("Hepatocytes/T cells").mapped()) << path;
    EXPECT_FALSE(mapper.map("Sertoli/Leydig cells").mapped()) << path;
    // Of blood cell and myeloid cell (a DAG), myeloid cell is 33-37 times the broader part: blood cell.
    EXPECT_EQ(mapper.map("Erythrocytes/Platelets").cl_id, "CL:0000081") << path;
    // CellTypist's multi-labels (its Immune_All_Low names).
    EXPECT_EQ(mapper.map("Naive B cells|Memory B cells").cl_id, "CL:0000785") << path;  // mature B cell
    EXPECT_EQ(mapper.map("Classical monocytes|Non-classical monocytes").kind, LabelMatchKind::kCommonAncestor) << path;
    // pbmc68k_reduced's labels join markers of one cell; one part names nothing: the table maps them.
    EXPECT_FALSE(mapper.map("CD4+/CD45RA+/CD25- Naive T").mapped()) << path;
  }
}

TEST(LabelShorthands, FormsDropPlusSignsCellWordsAndPlurals) {
  EXPECT_EQ(shorthand_forms(normalize_label("CD14+ Mono")), (std::vector<std::string>{"cd14 mono"}));
  EXPECT_EQ(shorthand_forms(normalize_label("CD14+ Monocytes")), (std::vector<std::string>{"cd14 monocytes", "cd14 monocyte"}));
  EXPECT_EQ(shorthand_forms(normalize_label("CD8+ T cells")), (std::vector<std::string>{"cd8 t"}));
  EXPECT_EQ(shorthand_forms(normalize_label("T cells CD4+")), (std::vector<std::string>{"t cd4"}));
  EXPECT_EQ(shorthand_forms(normalize_label("NK_CD56bright")), (std::vector<std::string>{"nk cd56bright"}));
  EXPECT_EQ(shorthand_forms(normalize_label("DCs")), (std::vector<std::string>{"dcs", "dc"}));
  EXPECT_EQ(shorthand_forms(normalize_label("cells")), (std::vector<std::string>{}));
  EXPECT_EQ(shorthand_forms(""), (std::vector<std::string>{}));
  // Every key is its own form (a key no label reaches would be dead).
  for (const LabelShorthand& shorthand : label_shorthands()) {
    EXPECT_EQ(shorthand_forms(shorthand.key).front(), shorthand.key);
    EXPECT_EQ(normalize_label(shorthand.key), shorthand.key);
  }
}

TEST(LabelMapperData, ShorthandsOfSharedLabelSets) {
  CELLTYPER_REQUIRE_SHARED(map_path, "label_map_to_cell_ontology.tsv");
  CELLTYPER_REQUIRE_SHARED(json_path, "cell-ontology/CL-ontology-v2026-03-26.json");
  CELLTYPER_REQUIRE_SHARED(obo_path, "cell-ontology/cl-basic.obo");
  for (const auto& path : {json_path, obo_path}) {
    const Ontology ontology = load_ontology(path);
    const LabelMapper mapper(&ontology);
    LabelMapperOptions names_only;
    names_only.match_shorthands = false;
    const LabelMapper plain(&ontology, names_only);
    // Every shorthand's term is live in both releases and its key maps to it; where a CL name or
    // synonym reads the key first ("treg", "tfh"), it names the same term.
    for (const LabelShorthand& shorthand : label_shorthands()) {
      // (the 2022 OBO release predates the cycling cell terms: those shorthands map nowhere there)
      if (path == obo_path && !ontology.contains(shorthand.cl_id)) {
        EXPECT_FALSE(mapper.map(shorthand.key).mapped()) << shorthand.key;
        continue;
      }
      ASSERT_TRUE(ontology.contains(shorthand.cl_id)) << shorthand.key << " " << shorthand.cl_id << " in " << path;
      EXPECT_FALSE(ontology.is_deprecated(shorthand.cl_id)) << shorthand.key;
      EXPECT_EQ(mapper.map(shorthand.key).cl_id, shorthand.cl_id) << shorthand.key << " in " << path;
      const LabelMatch named = plain.map(shorthand.key);
      EXPECT_TRUE(!named.mapped() || named.cl_id == shorthand.cl_id) << shorthand.key << ": " << named.cl_id;
    }
    // The project's curated ids for pbmc3k's Seurat labels and pbmc68k_reduced's sorted populations,
    // without the table.
    std::size_t compared = 0;
    for (const MapRow& row : read_rows(map_path)) {
      if (row.dataset != "pbmc3k-seurat-labels" && row.dataset != "pbmc68k_reduced") continue;
      if (row.label.find('/') != std::string::npos) continue;  // ("CD4+/CD25 T Reg": its parts are markers)
      EXPECT_EQ(mapper.map(row.label).cl_id, row.cl_id) << row.label << " in " << path;
      ++compared;
    }
    EXPECT_EQ(compared, 15u);
    // Azimuth's human PBMC level 2 and common variants.
    for (const auto& [label, id] : std::vector<std::pair<std::string, std::string>>{
             {"CD4 TCM", "CL:0000904"}, {"CD4 TEM", "CL:0000905"}, {"CD8 TEM", "CL:0000913"}, {"CD8 TCM", "CL:0000907"},
             {"CD4 Naive", "CL:0000895"}, {"CD8 Naive", "CL:0000900"}, {"CD4 CTL", "CL:0000934"}, {"CD14 Mono", "CL:0001054"},
             {"CD16 Mono", "CL:0002396"}, {"NK_CD56bright", "CL:0000938"}, {"cDC1", "CL:0002394"}, {"cDC2", "CL:0002399"},
             {"pDC", "CL:0000784"}, {"HSPC", "CL:0008001"}, {"Eryth", "CL:0000232"}, {"MAIT", "CL:0000940"},
             {"gdT", "CL:0000798"}, {"dnT", "CL:0002489"}, {"Treg", "CL:0000815"}, {"ILC", "CL:0001065"}, {"B naive", "CL:0000788"},
             {"B memory", "CL:0000787"}, {"B intermediate", "CL:0000236"}, {"Plasmablast", "CL:0000980"},
             {"Platelet", "CL:0000233"}, {"CD16 Monocytes", "CL:0002396"}, {"CD16- monocytes", "CL:0002057"},
             {"CD16+ monocyte", "CL:0002396"}, {"CD16+ Monocytes", "CL:0002396"}, {"CD16+ Mono", "CL:0002396"},
             {"CD8+ T cells", "CL:0000625"}, {"CD4+ T cells", "CL:0000624"}, {"T cells CD4+", "CL:0000624"}, {"NK cells", "CL:0000623"},
             {"CD14+ Monocytes", "CL:0001054"}, {"cDC1s", "CL:0002394"}, {"Tregs", "CL:0000815"}, {"DCs", "CL:0000451"}}) {
      EXPECT_EQ(mapper.map(label).cl_id, id) << label << " in " << path;
    }
    if (path == json_path) {
      EXPECT_EQ(mapper.map("CD4 Proliferating").cl_id, "CL:4033075");
      EXPECT_EQ(mapper.map("NK Proliferating").cl_id, "CL:4033071");
      EXPECT_EQ(mapper.map("ASDC").cl_id, "CL:0017009");
    }
    EXPECT_EQ(mapper.map("CD14+ Mono").kind, LabelMatchKind::kShorthand);
    EXPECT_STREQ(to_string(LabelMatchKind::kShorthand), "shorthand");
    // Shorthands in alternatives: "CD4/CD8 T" reads as CD4 T and CD8 T.
    EXPECT_EQ(mapper.map("CD4/CD8 T cells").parts, (std::vector<std::string>{"CL:0000624", "CL:0000625"}));
    EXPECT_TRUE(mapper.map("CD4/CD8 T cells").mapped());
    // No shorthand for names with several readings (pancreatic "alpha" / "beta", "Endo", "Micro"),
    // nor for what is no cell type; the option turns the step off.
    for (const char* label : {"alpha", "beta", "Endo", "Micro", "Epi", "Doublet", "unknown", "3"}) {
      EXPECT_FALSE(mapper.map(label).mapped()) << label << " -> " << mapper.map(label).cl_id;
    }
    EXPECT_FALSE(plain.map("CD14+ Mono").mapped());
    EXPECT_FALSE(plain.map("NK").mapped());
  }
}

}  // namespace
}  // namespace celltyper
