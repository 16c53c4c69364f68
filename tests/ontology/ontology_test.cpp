// Ontology on a tiny hand-made OBO file: parsing, closures, depth, LCAs, relations, errors.

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "celltyper/error.hpp"
#include "celltyper/ontology.hpp"
#include "support/test_support.hpp"

namespace celltyper {
namespace {

// cell (0)
// +- immune cell (1)
//    +- lymphocyte (2)
//    |  +- T cell (3)
//    |  |  +- CD4 T (5)
//    |  |  |  +- CD4 NKT-like (13)  [also is_a innate lymphocyte (10)]
//    |  |  +- CD8 T (6)
//    |  |  +- NKT (11)              [also is_a innate lymphocyte (10)]
//    |  +- B cell (4)
//    |  +- innate lymphocyte (10)
//    |     +- NK (12)
//    +- myeloid (7)
//       +- monocyte (8)
// obsolete: 20 -> replaced_by 3; 21 -> 20 (chain); 22 -> CLO (outside CL)
constexpr const char* kToyObo = R"OBO(format-version: 1.2
data-version: toy/2024-01-01
ontology: toy

[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000001
name: immune cell
is_a: CL:0000000 ! cell
is_a: UBERON:0000001 ! not a cell type
relationship: part_of UBERON:0002390 ! hematopoietic system

[Term]
id: CL:0000002
name: lymphocyte
def: "A \"round\" cell." [PMID:1]
is_a: CL:0000001 {is_inferred="true"} ! immune cell

[Term]
id: CL:0000003
name: T cell
synonym: "T lymphocyte" EXACT []
synonym: "T-lymphocyte" EXACT []
synonym: "thymocyte" RELATED []
is_a: CL:0000002 ! lymphocyte

[Term]
id: CL:0000004
name: B cell
synonym: "B lymphocyte" EXACT []
is_a: CL:0000002 ! lymphocyte

[Term]
id: CL:0000005
name: CD4 T cell
is_a: CL:0000003

[Term]
id: CL:0000006
name: CD8 T cell
is_a: CL:0000003

[Term]
id: CL:0000007
name: myeloid cell
is_a: CL:0000001

[Term]
id: CL:0000008
name: monocyte
is_a: CL:0000007

[Term]
id: CL:0000010
name: innate lymphocyte
is_a: CL:0000002

[Term]
id: CL:0000011
name: NKT cell
is_a: CL:0000003
is_a: CL:0000010

[Term]
id: CL:0000012
name: NK cell
is_a: CL:0000010

[Term]
id: CL:0000013
name: CD4 NKT-like cell
is_a: CL:0000005
is_a: CL:0000010

[Term]
id: CL:0000020
name: obsolete old T cell
is_obsolete: true
replaced_by: CL:0000003

[Term]
id: CL:0000021
name: obsolete older T cell
is_obsolete: true
replaced_by: CL:0000020

[Term]
id: CL:0000022
name: obsolete cell line cell
is_obsolete: true
replaced_by: CLO:0000019

[Term]
id: CP:0000001
name: not a CL term
is_a: CL:0000000

[Typedef]
id: part_of
name: part of
is_a: CL:0000003
)OBO";

Ontology toy() {
  std::istringstream stream(kToyObo);
  return parse_obo(stream, "toy.obo");
}

TermIndex idx(const Ontology& ontology, const char* id) { return ontology.index_of(id); }

TEST(OntologyObo, ParsesTermsAndIgnoresOtherStanzas) {
  const Ontology ontology = toy();
  EXPECT_EQ(ontology.size(), 16u);  // CP: term and Typedef dropped
  EXPECT_EQ(ontology.version(), "toy/2024-01-01");
  EXPECT_EQ(ontology.source(), "toy.obo");
  EXPECT_FALSE(ontology.contains("CP:0000001"));
  EXPECT_FALSE(ontology.contains("part_of"));
  EXPECT_EQ(ontology.label("CL:0000003"), "T cell");
  EXPECT_EQ(ontology.term("CL:0000002").definition, "A \"round\" cell.");
  const auto& synonyms = ontology.synonyms("CL:0000003");
  ASSERT_EQ(synonyms.size(), 3u);
  EXPECT_EQ(synonyms[0].text, "T lymphocyte");
  EXPECT_EQ(synonyms[0].scope, SynonymScope::kExact);
  EXPECT_EQ(synonyms[2].scope, SynonymScope::kRelated);
  EXPECT_STREQ(to_string(SynonymScope::kRelated), "RELATED");
  // UBERON parent and relationship: lines ignored; modifiers and comments stripped.
  EXPECT_EQ(ontology.parents("CL:0000001"), std::vector<std::string>{"CL:0000000"});
  EXPECT_EQ(ontology.term("CL:0000001").parents, std::vector<std::string>{"CL:0000000"});
  EXPECT_EQ(ontology.parents("CL:0000002"), std::vector<std::string>{"CL:0000001"});
  EXPECT_EQ(ontology.parents("CL:0000011"), (std::vector<std::string>{"CL:0000003", "CL:0000010"}));
  EXPECT_EQ(ontology.children("CL:0000003"), (std::vector<std::string>{"CL:0000005", "CL:0000006", "CL:0000011"}));
  ASSERT_TRUE(ontology.root().has_value());
  EXPECT_EQ(ontology.term(*ontology.root()).id, "CL:0000000");
}

TEST(OntologyObo, AncestorsAndDescendants) {
  const Ontology ontology = toy();
  EXPECT_EQ(ontology.ancestors("CL:0000005"),
            (std::vector<std::string>{"CL:0000000", "CL:0000001", "CL:0000002", "CL:0000003"}));
  EXPECT_EQ(ontology.ancestors("CL:0000005", /* include_self = */ true),
            (std::vector<std::string>{"CL:0000000", "CL:0000001", "CL:0000002", "CL:0000003", "CL:0000005"}));
  EXPECT_EQ(ontology.ancestors("CL:0000013"), (std::vector<std::string>{"CL:0000000", "CL:0000001", "CL:0000002",
                                                                        "CL:0000003", "CL:0000005", "CL:0000010"}));
  EXPECT_TRUE(ontology.ancestors("CL:0000000").empty());
  EXPECT_EQ(ontology.descendants("CL:0000010"), (std::vector<std::string>{"CL:0000011", "CL:0000012", "CL:0000013"}));
  EXPECT_EQ(ontology.descendants("CL:0000010", /* include_self = */ true),
            (std::vector<std::string>{"CL:0000010", "CL:0000011", "CL:0000012", "CL:0000013"}));
  EXPECT_EQ(ontology.descendants("CL:0000000").size(), 12u);  // all live terms but the root
  EXPECT_TRUE(ontology.is_ancestor("CL:0000002", "CL:0000013"));
  EXPECT_FALSE(ontology.is_ancestor("CL:0000013", "CL:0000002"));
  EXPECT_FALSE(ontology.is_ancestor("CL:0000005", "CL:0000005"));
  // Distances are shortest paths: 13 -> 10 -> 2 is shorter than 13 -> 5 -> 3 -> 2.
  EXPECT_EQ(ontology.distance_up(idx(ontology, "CL:0000013"), idx(ontology, "CL:0000002")), 2);
  EXPECT_EQ(ontology.distance_up(idx(ontology, "CL:0000013"), idx(ontology, "CL:0000003")), 2);
  EXPECT_EQ(ontology.distance_up(idx(ontology, "CL:0000013"), idx(ontology, "CL:0000013")), 0);
  EXPECT_FALSE(ontology.distance_up(idx(ontology, "CL:0000002"), idx(ontology, "CL:0000013")).has_value());
}

TEST(OntologyObo, IndexVectorsAreSortedAndConsistent) {
  const Ontology ontology = toy();
  for (TermIndex i = 0; i < static_cast<TermIndex>(ontology.size()); ++i) {
    const auto& ancestors = ontology.ancestor_indices(i);
    EXPECT_TRUE(std::is_sorted(ancestors.begin(), ancestors.end()));
    EXPECT_EQ(ancestors.size(), ontology.ancestor_distances(i).size());
    for (const TermIndex ancestor : ancestors) {
      const auto& below = ontology.descendant_indices(ancestor);
      EXPECT_TRUE(std::binary_search(below.begin(), below.end(), i));
    }
    for (const TermIndex parent : ontology.parent_indices(i)) {
      const auto& children = ontology.child_indices(parent);
      EXPECT_TRUE(std::binary_search(children.begin(), children.end(), i));
    }
  }
}

TEST(OntologyObo, Depth) {
  const Ontology ontology = toy();
  EXPECT_EQ(ontology.depth("CL:0000000"), 0);
  EXPECT_EQ(ontology.depth("CL:0000001"), 1);
  EXPECT_EQ(ontology.depth("CL:0000003"), 3);
  EXPECT_EQ(ontology.depth("CL:0000005"), 4);
  EXPECT_EQ(ontology.depth("CL:0000008"), 3);
  EXPECT_EQ(ontology.depth("CL:0000013"), 4);  // shortest: via innate lymphocyte
  EXPECT_EQ(ontology.depth("CL:0000020"), -1);  // obsolete, no parents
}

TEST(OntologyObo, DeprecatedAndCanonical) {
  const Ontology ontology = toy();
  EXPECT_TRUE(ontology.is_deprecated("CL:0000020"));
  EXPECT_FALSE(ontology.is_deprecated("CL:0000003"));
  EXPECT_EQ(ontology.replaced_by("CL:0000020"), "CL:0000003");
  EXPECT_EQ(ontology.replaced_by("CL:0000003"), "");
  EXPECT_EQ(ontology.canonical("CL:0000020"), "CL:0000003");
  EXPECT_EQ(ontology.canonical("CL:0000021"), "CL:0000003");  // chain
  EXPECT_EQ(ontology.canonical("CL:0000022"), "CL:0000022");  // replacement outside CL
  EXPECT_EQ(ontology.canonical("CL:0000005"), "CL:0000005");
  EXPECT_THROW((void)ontology.canonical("CL:9999999"), InputError);
}

TEST(OntologyObo, UnknownIdsThrowInputErrorNamingTheTerm) {
  const Ontology ontology = toy();
  EXPECT_FALSE(ontology.find_index("CL:9999999").has_value());
  try {
    (void)ontology.label("CL:9999999");
    FAIL() << "expected InputError";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("CL:9999999"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("toy.obo"), std::string::npos);
  }
  EXPECT_THROW((void)ontology.ancestors("UBERON:0000001"), InputError);
}

TEST(OntologyObo, LowestCommonAncestors) {
  const Ontology ontology = toy();
  EXPECT_EQ(ontology.lowest_common_ancestors("CL:0000005", "CL:0000006"), std::vector<std::string>{"CL:0000003"});
  EXPECT_EQ(ontology.lowest_common_ancestors("CL:0000005", "CL:0000005"), std::vector<std::string>{"CL:0000005"});
  EXPECT_EQ(ontology.lowest_common_ancestors("CL:0000005", "CL:0000003"), std::vector<std::string>{"CL:0000003"});
  EXPECT_EQ(ontology.lowest_common_ancestors("CL:0000005", "CL:0000008"), std::vector<std::string>{"CL:0000001"});
  EXPECT_EQ(ontology.lowest_common_ancestors("CL:0000011", "CL:0000012"), std::vector<std::string>{"CL:0000010"});
  // Two lowest common ancestors in the DAG.
  EXPECT_EQ(ontology.lowest_common_ancestors("CL:0000011", "CL:0000013"),
            (std::vector<std::string>{"CL:0000003", "CL:0000010"}));
  EXPECT_TRUE(ontology.lowest_common_ancestors("CL:0000020", "CL:0000003").empty());
}

TEST(OntologyObo, UpwardLcaDistance) {
  const Ontology ontology = toy();
  // (prediction, truth)
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000005", "CL:0000005"), 0);
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000003", "CL:0000005"), 1);  // parent
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000002", "CL:0000005"), 2);  // grandparent
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000005", "CL:0000003"), 0);  // child
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000006", "CL:0000005"), 1);  // sibling
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000004", "CL:0000005"), 2);  // cousin-ish
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000008", "CL:0000005"), 3);  // via immune cell
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000000", "CL:0000005"), 4);  // root predicted
  // Two LCAs {3, 10}: 13 -> 10 is 1 step, 13 -> 5 -> 3 is 2; the nearest counts.
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000011", "CL:0000013"), 1);
  // Truth 11: 11 -> 3 and 11 -> 10 are both 1 step.
  EXPECT_EQ(ontology.upward_lca_distance("CL:0000013", "CL:0000011"), 1);
  EXPECT_FALSE(ontology.upward_lca_distance("CL:0000020", "CL:0000003").has_value());
}

TEST(OntologyObo, ClassifyRelation) {
  const Ontology ontology = toy();
  EXPECT_EQ(ontology.classify_relation("CL:0000005", "CL:0000005"), TermRelation::kExact);
  EXPECT_EQ(ontology.classify_relation("CL:0000003", "CL:0000005"), TermRelation::kPredictionIsAncestor);
  EXPECT_EQ(ontology.classify_relation("CL:0000000", "CL:0000005"), TermRelation::kPredictionIsAncestor);
  EXPECT_EQ(ontology.classify_relation("CL:0000005", "CL:0000003"), TermRelation::kPredictionIsDescendant);
  EXPECT_EQ(ontology.classify_relation("CL:0000013", "CL:0000002"), TermRelation::kPredictionIsDescendant);
  EXPECT_EQ(ontology.classify_relation("CL:0000006", "CL:0000005"), TermRelation::kSibling);
  EXPECT_EQ(ontology.classify_relation("CL:0000011", "CL:0000012"), TermRelation::kSibling);  // share 10
  EXPECT_EQ(ontology.classify_relation("CL:0000004", "CL:0000005"), TermRelation::kUnrelated);
  EXPECT_EQ(ontology.classify_relation("CL:0000008", "CL:0000004"), TermRelation::kUnrelated);
  EXPECT_STREQ(to_string(TermRelation::kPredictionIsAncestor), "parent");
  EXPECT_STREQ(to_string(TermRelation::kPredictionIsDescendant), "child");
}

TEST(OntologyObo, MalformedInputThrowsWithLineNumbers) {
  const auto parse = [](const std::string& text) {
    std::istringstream stream(text);
    return parse_obo(stream, "bad.obo");
  };
  const auto message_of = [&](const std::string& text) -> std::string {
    try {
      (void)parse(text);
    } catch (const InputError& error) {
      return error.what();
    }
    return "no error";
  };
  EXPECT_NE(message_of("[Term]\nname: no id\n").find("bad.obo line 1: [Term] stanza without an id"),
            std::string::npos);
  EXPECT_NE(message_of("[Term]\nid: CL:0000001\ndef: \"unterminated\n").find("bad.obo line 3"), std::string::npos);
  EXPECT_NE(message_of("[Term]\nid: CL:0000001\njust text\n").find("expected 'tag: value'"), std::string::npos);
  EXPECT_NE(message_of("format-version: 1.2\n").find("no [Term] stanza"), std::string::npos);
  EXPECT_NE(message_of("[Term]\nid: CL:0000001\n\n[Term]\nid: CL:0000001\n").find("defined twice"),
            std::string::npos);
  const std::string cycle =
      "[Term]\nid: CL:0000001\nis_a: CL:0000002\n\n[Term]\nid: CL:0000002\nis_a: CL:0000001\n";
  EXPECT_NE(message_of(cycle).find("cycle"), std::string::npos);
  // Windows line endings are fine; a parent outside the file is dropped.
  const Ontology crlf = parse("[Term]\r\nid: CL:0000001\r\nname: x\r\nis_a: CL:0000404\r\n");
  EXPECT_EQ(crlf.label("CL:0000001"), "x");
  EXPECT_TRUE(crlf.parents("CL:0000001").empty());
}

TEST(OntologyJson, ParsesCellxgeneExportShape) {
  const std::string text = R"({
    "CL:0000000": {"ancestors": {}, "label": "cell", "deprecated": false},
    "CL:0000001": {"ancestors": {"CL:0000000": 1}, "label": "immune cell", "deprecated": false,
                   "synonyms": ["leukocyte"], "description": "Defends."},
    "CL:0000002": {"ancestors": {"CL:0000001": 1, "CL:0000000": 2, "UBERON:1": 1}, "label": "lymphocyte",
                   "deprecated": false, "synonyms": null},
    "CL:0000003": {"ancestors": {}, "label": "obsolete x", "deprecated": true, "replaced_by": "CL:0000002"}
  })";
  const Ontology ontology = parse_cellxgene_json(text, "toy.json", "v1");
  EXPECT_EQ(ontology.size(), 4u);
  EXPECT_EQ(ontology.version(), "v1");
  EXPECT_EQ(ontology.parents("CL:0000002"), std::vector<std::string>{"CL:0000001"});
  EXPECT_EQ(ontology.ancestors("CL:0000002"), (std::vector<std::string>{"CL:0000000", "CL:0000001"}));
  EXPECT_EQ(ontology.term("CL:0000001").definition, "Defends.");
  ASSERT_EQ(ontology.synonyms("CL:0000001").size(), 1u);
  EXPECT_EQ(ontology.synonyms("CL:0000001")[0].scope, SynonymScope::kExact);
  EXPECT_TRUE(ontology.is_deprecated("CL:0000003"));
  EXPECT_EQ(ontology.canonical("CL:0000003"), "CL:0000002");
  EXPECT_EQ(ontology.depth("CL:0000002"), 2);

  EXPECT_THROW((void)parse_cellxgene_json("{not json", "x.json"), InputError);
  EXPECT_THROW((void)parse_cellxgene_json("[1, 2]", "x.json"), InputError);
  EXPECT_THROW((void)parse_cellxgene_json(R"({"CL:1": {"ancestors": {}}})", "x.json"), InputError);
  EXPECT_THROW((void)parse_cellxgene_json(R"({"CL:1": {"label": "a", "synonyms": "b"}})", "x.json"), InputError);
  EXPECT_THROW((void)parse_cellxgene_json(R"({"CL:1": {"label": "a", "ancestors": {"CL:2": "x"}}})", "x.json"),
               InputError);
}

TEST(OntologyLoad, DetectsFormatByExtensionAndReportsBadFiles) {
  const test::TempDir dir;
  {
    std::ofstream(dir.file("toy.obo")) << kToyObo;
    std::ofstream(dir.file("toy.JSON")) << R"({"CL:0000000": {"label": "cell"}})";
    std::ofstream(dir.file("toy.owl")) << "<rdf/>";
    std::ofstream(dir.file("broken.json")) << "{";
  }
  EXPECT_EQ(load_ontology(dir.file("toy.obo")).size(), 16u);
  EXPECT_EQ(load_ontology(dir.file("toy.JSON")).size(), 1u);
  const auto message_of = [](const std::string& path) -> std::string {
    try {
      (void)load_ontology(path);
    } catch (const InputError& error) {
      return error.what();
    }
    return "no error";
  };
  EXPECT_NE(message_of(dir.file("missing.obo")).find("missing.obo does not exist"), std::string::npos);
  EXPECT_NE(message_of(dir.file("toy.owl")).find("expected .obo"), std::string::npos);
  EXPECT_NE(message_of(dir.file("broken.json")).find("broken.json is not valid JSON"), std::string::npos);
}

TEST(OntologyLoad, DefaultPath) {
  EXPECT_EQ(default_ontology_path("/some/where.obo"), "/some/where.obo");
  const char* saved = std::getenv("CELLTYPER_ONTOLOGY");
  const std::string saved_value = saved != nullptr ? saved : "";
  setenv("CELLTYPER_ONTOLOGY", "/from/env.json", 1);
  EXPECT_EQ(default_ontology_path(), "/from/env.json");
  EXPECT_EQ(default_ontology_path("/argument/wins.obo"), "/argument/wins.obo");
  unsetenv("CELLTYPER_ONTOLOGY");
  const std::string fallback = default_ontology_path();
  EXPECT_TRUE(fallback.empty() || std::filesystem::is_regular_file(fallback)) << fallback;
  if (saved != nullptr) setenv("CELLTYPER_ONTOLOGY", saved_value.c_str(), 1);
}

TEST(OntologyLoad, AFolderGivesItsNewestCellxgeneExportElseClBasic) {
  test::TempDir dir;
  EXPECT_EQ(ontology_in_folder(dir.path()), "");
  EXPECT_EQ(ontology_in_folder(dir.path() / "missing"), "");
  std::ofstream(dir.file("cl-basic.obo")) << "format-version: 1.2\n";
  EXPECT_EQ(ontology_in_folder(dir.path()), dir.file("cl-basic.obo"));
  std::ofstream(dir.file("CL-ontology-v2025-11-04.json")) << "{}";
  std::ofstream(dir.file("CL-ontology-v2026-03-26.json")) << "{}";
  std::ofstream(dir.file("other-v2027-01-01.json")) << "{}";  // not a CELLxGENE export name
  std::filesystem::create_directory(dir.path() / "CL-ontology-v2028-01-01.json");  // not a file
  EXPECT_EQ(ontology_in_folder(dir.path()), dir.file("CL-ontology-v2026-03-26.json"));
}

TEST(OntologyBuild, FromTermsDropsNonCellOntologyTermsAndParents) {
  std::vector<OntologyTerm> terms(3);
  terms[0].id = "CL:0000000";
  terms[0].label = "cell";
  terms[1].id = "CL:0000001";
  terms[1].label = "child";
  terms[1].parents = {"CL:0000000", "PR:000001", "CL:0000000"};
  terms[2].id = "PR:000001";
  const Ontology ontology(terms, "made in a test");
  EXPECT_EQ(ontology.size(), 2u);
  EXPECT_EQ(ontology.parents("CL:0000001"), std::vector<std::string>{"CL:0000000"});
  EXPECT_EQ(ontology.version(), "");
  EXPECT_EQ(Ontology().size(), 0u);
  EXPECT_FALSE(Ontology().root().has_value());
}

}  // namespace
}  // namespace celltyper
