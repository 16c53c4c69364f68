/// @file ontology.hpp
/// The Cell Ontology (CL): terms, the is_a hierarchy and mapping free-text labels to CL ids.
///
/// Conventions:
/// - Only `CL:` terms are kept. `is_a` parents in other ontologies (UBERON, PR, CP, ...) and
///   parents that are not defined in the file are dropped without error.
/// - The hierarchy is the `is_a` DAG only (`relationship:` lines such as part_of are ignored).
///   Edges point from a term to its direct parents; the root is `CL:0000000` ("cell").
/// - Terms are addressed either by CL id (`"CL:0000236"`) or by a dense `TermIndex` (position in
///   load order). Index-based functions are the fast path used by the metrics; id-based ones
///   throw `InputError` for ids that are not in the ontology.
/// - Ancestor and descendant sets are precomputed for every term as sorted vectors of indices
///   (a few tens of thousands of entries for CL's ~3-4k terms).
///
/// Two input formats are read: OBO 1.2 (`cl-basic.obo`) and the CELLxGENE ontology-guide JSON
/// export (`CL-ontology-v<date>.json`: an object keyed by id whose values hold `label`,
/// `description`, `synonyms`, `deprecated`, `replaced_by` and the `ancestors` closure with
/// distances; the direct parents are the ancestors at distance 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace celltyper {

/// Dense index of a term inside one `Ontology` (0 .. size()-1).
using TermIndex = std::int32_t;

/// How much broader a common ancestor may be than the broadest of the terms it groups (terms at or
/// below it) to say something of them: CL's "T/NK cells" -> lymphocyte 2.0x, "pDC/cDC" -> dendritic
/// cell 1.3x, "Monocytes/Macrophages" -> myeloid leukocyte 2.3-2.8x, "Erythrocytes/Platelets" ->
/// blood cell 4.7-6x; "Keratinocytes/Melanocytes" -> "stuff accumulating cell" 11.5-18x,
/// "Erythrocytes/Platelets" -> myeloid cell 33-37x, "Sertoli/Leydig cells" -> secretory cell
/// 400-600x, the retina's alpha cell and pancreatic D cell -> neuron ~800x.
inline constexpr std::size_t kCloseAncestorBreadth = 10;

/// Id of the Cell Ontology root term, "cell".
inline constexpr std::string_view kCellOntologyRoot = "CL:0000000";

/// Scope of a synonym, as in OBO (`synonym: "text" EXACT []`).
enum class SynonymScope {
  kExact,
  kRelated,
  kBroad,
  kNarrow,
};

/// Name of a scope for messages and JSON ("EXACT", "RELATED", ...).
const char* to_string(SynonymScope scope);

/// One synonym of a term.
struct Synonym {
  std::string text;
  /// The CELLxGENE JSON export only carries exact synonyms, so its synonyms are all kExact.
  SynonymScope scope = SynonymScope::kExact;
};

/// One Cell Ontology term as read from the file.
struct OntologyTerm {
  std::string id;                    ///< "CL:0000236"
  std::string label;                 ///< OBO `name`, JSON `label`: "B cell"
  std::string definition;            ///< OBO `def` text, JSON `description` ("" when absent)
  std::vector<Synonym> synonyms;     ///< in file order
  std::vector<std::string> parents;  ///< direct is_a parents (CL ids only, file order)
  bool deprecated = false;           ///< OBO `is_obsolete: true`, JSON `deprecated`
  std::string replaced_by;           ///< replacement id ("" when none; may be outside CL)
};

/// How a predicted term relates to a true term in the is_a DAG (first matching rule wins).
enum class TermRelation {
  kExact,                   ///< the same term
  kPredictionIsAncestor,    ///< prediction is a parent or higher ancestor of the truth ("parent")
  kPredictionIsDescendant,  ///< prediction is a child or lower descendant of the truth ("child")
  kSibling,                 ///< not the above, but the two share at least one direct parent
  kUnrelated,               ///< none of the above
};

/// Number of `TermRelation` values (for count arrays indexed by relation).
inline constexpr std::size_t kTermRelationCount = 5;

/// Short name of a relation: "exact", "parent", "child", "sibling", "unrelated".
const char* to_string(TermRelation relation);

/// The Cell Ontology restricted to `CL:` terms and is_a edges, with precomputed closures.
/// Immutable after construction; safe to share between threads.
class Ontology {
 public:
  /// An empty ontology.
  Ontology() = default;

  /// Build from terms (e.g. parsed from a file or made in a test). `source` names the origin in
  /// error messages, `version` is the release (e.g. OBO `data-version`, "" when unknown). Terms
  /// whose id does not start with "CL:" are dropped, as are parents that are not CL terms of this
  /// set. Throws InputError on duplicate ids or an is_a cycle.
  Ontology(std::vector<OntologyTerm> terms, std::string source, std::string version = "");

  /// Number of terms (deprecated ones included).
  [[nodiscard]] std::size_t size() const { return terms_.size(); }
  /// File or description the ontology came from.
  [[nodiscard]] const std::string& source() const { return source_; }
  /// Release of the ontology when known (OBO `data-version`, JSON file name), else "".
  [[nodiscard]] const std::string& version() const { return version_; }

  // ---- lookup -----------------------------------------------------------------------------

  /// Index of `id`, or nullopt when the ontology has no such term.
  [[nodiscard]] std::optional<TermIndex> find_index(std::string_view id) const;
  /// Index of `id`; throws InputError naming the id and the source when absent.
  [[nodiscard]] TermIndex index_of(std::string_view id) const;
  /// Whether the ontology has a term `id`.
  [[nodiscard]] bool contains(std::string_view id) const { return find_index(id).has_value(); }
  /// The term at `index` (asserts the index is in range).
  [[nodiscard]] const OntologyTerm& term(TermIndex index) const;
  /// The term `id`; throws InputError when absent.
  [[nodiscard]] const OntologyTerm& term(std::string_view id) const { return term(index_of(id)); }
  /// Every term, in index order.
  [[nodiscard]] const std::vector<OntologyTerm>& terms() const { return terms_; }
  /// Index of the root `CL:0000000`, or nullopt when the file lacks it.
  [[nodiscard]] std::optional<TermIndex> root() const;

  /// Label ("name") of `id`; throws InputError when absent.
  [[nodiscard]] const std::string& label(std::string_view id) const { return term(id).label; }
  /// Synonyms of `id`; throws InputError when absent.
  [[nodiscard]] const std::vector<Synonym>& synonyms(std::string_view id) const { return term(id).synonyms; }
  /// Whether `id` is deprecated (obsolete); throws InputError when absent.
  [[nodiscard]] bool is_deprecated(std::string_view id) const { return term(id).deprecated; }
  /// Replacement declared for `id` ("" when none); throws InputError when absent.
  [[nodiscard]] const std::string& replaced_by(std::string_view id) const { return term(id).replaced_by; }
  /// `id` after following `replaced_by` links while they lead to terms of this ontology (the
  /// first non-deprecated term reached, or the last term of the chain). Returns `id` itself for
  /// live terms and for deprecated terms without an in-ontology replacement. Throws InputError
  /// when `id` is absent.
  [[nodiscard]] std::string canonical(std::string_view id) const;
  /// Index form of `canonical`.
  [[nodiscard]] TermIndex canonical(TermIndex index) const;

  // ---- hierarchy (index form: fast, no allocation) ------------------------------------------

  /// Direct is_a parents of `index`, sorted by index.
  [[nodiscard]] const std::vector<TermIndex>& parent_indices(TermIndex index) const;
  /// Direct is_a children of `index`, sorted by index.
  [[nodiscard]] const std::vector<TermIndex>& child_indices(TermIndex index) const;
  /// All ancestors of `index` (transitive is_a closure, self excluded), sorted by index.
  [[nodiscard]] const std::vector<TermIndex>& ancestor_indices(TermIndex index) const;
  /// Shortest is_a distance from `index` to each of `ancestor_indices(index)` (same order).
  [[nodiscard]] const std::vector<std::int32_t>& ancestor_distances(TermIndex index) const;
  /// All descendants of `index` (self excluded), sorted by index.
  [[nodiscard]] const std::vector<TermIndex>& descendant_indices(TermIndex index) const;
  /// Whether `ancestor` is a strict ancestor of `term` (binary search).
  [[nodiscard]] bool is_ancestor(TermIndex ancestor, TermIndex term) const;
  /// Shortest number of is_a steps from `term` up to `ancestor` (0 when equal), or nullopt when
  /// `ancestor` is not `term` or one of its ancestors.
  [[nodiscard]] std::optional<std::int32_t> distance_up(TermIndex term, TermIndex ancestor) const;
  /// Shortest is_a distance from `index` to the root (0 for the root itself), or -1 when the
  /// root is not an ancestor (deprecated terms without parents, or no root in the file).
  [[nodiscard]] std::int32_t depth(TermIndex index) const;
  /// Lowest common ancestors of `a` and `b` (each term counts as its own ancestor): the common
  /// ancestors none of whose descendants is also a common ancestor. Several in a DAG; empty when
  /// the two share no ancestor. Sorted by index.
  [[nodiscard]] std::vector<TermIndex> lowest_common_ancestors(TermIndex a, TermIndex b) const;
  /// The same for any number of terms (at least one): their common ancestors none of whose
  /// descendants is also common to all.
  [[nodiscard]] std::vector<TermIndex> lowest_common_ancestors(const std::vector<TermIndex>& terms) const;
  /// Whether more than half of the ontology's terms lie below `index` ("cell", "animal cell",
  /// "eukaryotic cell"): a term that says nothing of a cell.
  [[nodiscard]] bool above_most_terms(TermIndex index) const { return 2 * descendant_indices(index).size() > size(); }
  /// Whether `ancestor` groups `terms` closely: not above most terms, and with at most
  /// kCloseAncestorBreadth times the terms at or below the broadest of them at or below it.
  [[nodiscard]] bool close_ancestor(TermIndex ancestor, const std::vector<TermIndex>& terms) const;
  /// "Upward LCA distance": the is_a steps from `truth` up to the nearest lowest common ancestor
  /// of (`prediction`, `truth`). 0 when equal or when the prediction is a descendant of the truth;
  /// the distance to the prediction when it is an ancestor; 1 for siblings. nullopt when the two
  /// share no ancestor.
  [[nodiscard]] std::optional<std::int32_t> upward_lca_distance(TermIndex prediction, TermIndex truth) const;
  /// Relation of `prediction` to `truth` (see TermRelation).
  [[nodiscard]] TermRelation classify_relation(TermIndex prediction, TermIndex truth) const;

  // ---- hierarchy (id form: convenient; ids in index order; throw InputError on unknown ids) -

  /// Direct is_a parents of `id` (CL ids).
  [[nodiscard]] std::vector<std::string> parents(std::string_view id) const;
  /// Direct is_a children of `id`.
  [[nodiscard]] std::vector<std::string> children(std::string_view id) const;
  /// Ancestors of `id`, optionally including `id` itself.
  [[nodiscard]] std::vector<std::string> ancestors(std::string_view id, bool include_self = false) const;
  /// Descendants of `id`, optionally including `id` itself.
  [[nodiscard]] std::vector<std::string> descendants(std::string_view id, bool include_self = false) const;
  /// Whether `ancestor` is a strict ancestor of `id`.
  [[nodiscard]] bool is_ancestor(std::string_view ancestor, std::string_view id) const;
  /// Depth of `id` (see the index form).
  [[nodiscard]] std::int32_t depth(std::string_view id) const { return depth(index_of(id)); }
  /// Lowest common ancestors of `a` and `b` as ids.
  [[nodiscard]] std::vector<std::string> lowest_common_ancestors(std::string_view a, std::string_view b) const;
  /// Upward LCA distance (see the index form).
  [[nodiscard]] std::optional<std::int32_t> upward_lca_distance(std::string_view prediction,
                                                                std::string_view truth) const;
  /// Relation of `prediction` to `truth`.
  [[nodiscard]] TermRelation classify_relation(std::string_view prediction, std::string_view truth) const;

 private:
  [[nodiscard]] std::vector<std::string> ids_of(const std::vector<TermIndex>& indices) const;

  std::string source_;
  std::string version_;
  std::vector<OntologyTerm> terms_;
  std::unordered_map<std::string, TermIndex> index_by_id_;
  std::vector<std::vector<TermIndex>> parents_;
  std::vector<std::vector<TermIndex>> children_;
  std::vector<std::vector<TermIndex>> ancestors_;
  std::vector<std::vector<std::int32_t>> ancestor_distances_;
  std::vector<std::vector<TermIndex>> descendants_;
  std::vector<std::int32_t> depth_;
  TermIndex root_ = -1;
};

/// Parse OBO 1.2 text: `[Term]` stanzas with `id`, `name`, `def`, `synonym`, `is_a`,
/// `is_obsolete`, `replaced_by`; other tags and stanzas are ignored. `source` names the text in
/// error messages. Throws InputError (with the line number) on malformed stanzas.
Ontology parse_obo(std::istream& input, const std::string& source = "<obo>");

/// Parse the CELLxGENE ontology-guide JSON export (see the file comment). Throws InputError when
/// the text is not JSON or a term lacks a string `label`. `version` is stored as the release.
Ontology parse_cellxgene_json(std::string_view text, const std::string& source = "<json>",
                              const std::string& version = "");

/// Load an ontology file, choosing the parser by extension: `.obo` or `.json`. Throws
/// InputError naming the file when it is missing, has another extension, or is malformed.
Ontology load_ontology(const std::filesystem::path& path);

/// The Cell Ontology file in `folder`: the newest CELLxGENE export (`CL-ontology-<version>.json`,
/// the release CELLxGENE's schema checks ids against; the largest version wins) else
/// `cl-basic.obo`; "" when it holds neither.
std::string ontology_in_folder(const std::filesystem::path& folder);

/// Where to find the ontology: `argument` when non-empty; else the environment variable
/// `CELLTYPER_ONTOLOGY` when set and non-empty; else the copy scripts/setup.sh installs beside
/// the executable (`ontology_in_folder` of each of `installed_share_folders()`: build/share/celltyper
/// for build/celltyper and for the Python module, from any working directory); else
/// `ontology_in_folder(../shared/data/cell-ontology)`
/// relative to the working directory; else "".
std::string default_ontology_path(const std::string& argument = "");

/// Which ontology the commands use when --ontology is not given (for --help).
inline constexpr const char* kOntologyDefaultHelp = "default: $CELLTYPER_ONTOLOGY, else the copy scripts/setup.sh installs in build/share/celltyper";

/// Where users get the Cell Ontology when none is found (for messages).
/// annotate's warning when the model's classes have CL ids but no Cell Ontology is installed,
/// given or set (CELLTYPER_ONTOLOGY): the names column is left out, which a script reading the
/// output on another machine would miss.
inline constexpr const char* kNoOntologyForNamesWarning =
    "no Cell Ontology was found here, so obs celltyper_ontology_name (each cell's CL id named) is left out; celltyper_ontology_id is "
    "written: pass --ontology FILE or set CELLTYPER_ONTOLOGY (cl-basic.obo at https://purl.obolibrary.org/obo/cl/cl-basic.obo; "
    "scripts/setup.sh installs one in build/share/celltyper)";

inline constexpr const char* kOntologyReleaseHint =
    "the official release is cl-basic.obo at https://purl.obolibrary.org/obo/cl/cl-basic.obo, or CELLxGENE's "
    "CL-ontology-<version>.json (cellxgene-ontology-guide); scripts/setup.sh installs one in build/share/celltyper";

// ---- label mapping ---------------------------------------------------------------------------

/// Normalise a free-text label for matching: ASCII lower case, each run of whitespace,
/// underscores and hyphens becomes one space, leading and trailing separators dropped; a hyphen
/// closing a word ("CD16- monocyte", "CD25-": negative for the marker) stays.
/// "CD14+_Mono" and "cd14+ mono" both give "cd14+ mono"; "T-cell" gives "t cell".
std::string normalize_label(std::string_view label);

/// `LabelMatch::reason` of a label that is a number ("0", "12": a clustering's cluster ids).
inline constexpr std::string_view kNumberLabelReason = "a number (a cluster id?), not a cell type";

/// How a label was mapped, in priority order.
enum class LabelMatchKind {
  kUserMap,     ///< a row of the user's mapping table
  kIdentifier,  ///< the label is itself a CL id of the ontology
  kLabel,       ///< equal (after normalisation) to a CL term's label
  kSynonym,     ///< equal to one exact synonym (or related one, when enabled)
  /// alternatives joined by '/' or '|' ("T/NK cells"; CellTypist's multi-labels "Naive B cells|Memory B
  /// cells"): the lowest common ancestor of the terms they name
  kCommonAncestor,
  /// a shorthand of a widely shared label set ("CD14+ Mono", "NK", "cDC1"; `label_shorthands`)
  kShorthand,
  kAmbiguous,   ///< several rows / synonyms give different terms; not mapped
  kUnmapped,    ///< no match
};

/// Name of a match kind: "user_map", "identifier", "label", "synonym", "common_ancestor",
/// "shorthand", "ambiguous", "unmapped".
const char* to_string(LabelMatchKind kind);

/// Result of mapping one label.
struct LabelMatch {
  std::string label;                    ///< the input label
  std::string cl_id;                    ///< mapped CL id ("" unless mapped)
  std::string cl_label;                 ///< label of `cl_id` in the ontology ("" when unknown)
  LabelMatchKind kind = LabelMatchKind::kUnmapped;
  std::vector<std::string> candidates;  ///< the competing ids when kind is kAmbiguous
  /// Mapped as the plural of a CL label or synonym ("B cells", "Monocytes"): `kind` says which.
  bool plural = false;
  /// A label of alternatives: the CL ids they name, in order ("T/NK cells": T cell, natural killer
  /// cell), also when no common ancestor qualifies (kind kUnmapped or kAmbiguous then).
  std::vector<std::string> parts;
  /// Why an unmapped label maps nowhere, when more can be said than "no term has this name" ("the
  /// common ancestor of its parts, animal cell, is above most of the ontology"; "a number: a
  /// cluster id?"); "" otherwise.
  std::string reason;
  /// Whether the label was mapped to an id.
  [[nodiscard]] bool mapped() const { return !cl_id.empty(); }
};

/// Options of `LabelMapper`.
struct LabelMapperOptions {
  bool match_labels = true;            ///< try exact (normalised) CL label matches
  bool match_exact_synonyms = true;    ///< try EXACT synonyms
  bool match_related_synonyms = false; ///< also try RELATED / BROAD / NARROW synonyms
  bool follow_replaced_by = true;      ///< report the canonical (replacement) id of deprecated terms
  bool match_shorthands = true;        ///< try `label_shorthands` (step (e') of LabelMapper)
};

/// One shorthand cell-type label and its CL id.
struct LabelShorthand {
  const char* key;    ///< a `shorthand_forms` form: "cd14 mono", "nk cd56bright", "cdc1"
  const char* cl_id;  ///< "CL:0001054"
};

/// Shorthands of widely shared label sets (Seurat's PBMC tutorial, Azimuth's PBMC levels, scanpy
/// and CellTypist notebooks) with one established reading: "CD14+ Mono" (CD14-positive monocyte),
/// "NK", "B", "DC", "cDC1", "CD4 TCM", "NK_CD56bright", "HSPC", "Eryth", "Astro", ...
/// (src/ontology/label_shorthands.cpp lists them with their sources).
std::span<const LabelShorthand> label_shorthands();

/// The forms under which a `normalize_label` form is looked up among `label_shorthands`: '+'
/// dropped, the words "cell" / "cells" dropped ("CD14+ Monocytes" -> "cd14 monocytes"), then also
/// without a final plural "s" ("cd14 monocyte").
std::vector<std::string> shorthand_forms(std::string_view normalized);

/// What joins the alternatives of a label (step (f) of LabelMapper): a slash ("T/NK cells") and
/// the bar of CellTypist's multi-labels ("Naive B cells|Memory B cells": both types' probabilities
/// passed its threshold).
inline constexpr const char* kAlternativeSeparators = "/|";

/// Maps free-text cell-type labels to CL ids, trying in order: (a) the user's table (rows of the
/// queried dataset first, then rows with an empty dataset; a query without a dataset uses every
/// row), (b) the label being a CL id, (c) exact CL label, (d) exact synonym, (e) the label read
/// as a plural of (c) or (d): each word "cells" as "cell", else its last word without a final
/// "s" ("B cells", "Monocytes", "Mast cells"; authors' labels name groups of cells), (f) a label
/// of alternatives joined by '/' (or '|', kAlternativeSeparators) whose every part maps by (b)-(e), alone or completed with the
/// last part's closing words ("T/NK cells": "T cells" and "NK cells"; "CD4/CD8 T cells"): the
/// lowest common ancestor of their terms (lymphocyte), when there is one that is neither above
/// most of the ontology ("Hepatocytes/T cells": animal cell) nor over 10 times as broad as the
/// broadest part ("Sertoli/Leydig cells": secretory cell); several such ancestors (a DAG) make the
/// label ambiguous; (e') after (c) and the plural of (c), before (d): a shorthand of
/// `label_shorthands` ("CD14+ Mono", "NK", "cDC1"; also a part of (f): "CD4/CD8 T"), when its term
/// is in the ontology (before the synonyms: CL's "CD16+ monocyte" names the CD14+CD16+ term, the
/// field's "CD16+ Mono" the CD14-low one). Under either reading of the slash (one of the types, or a cell with every
/// property) that ancestor holds for the cell, and so for the types below it the label excludes
/// (B cells are lymphocytes, not "T/NK cells"): a prediction there counts as at or below the truth. Matching is on
/// `normalize_label` forms. Live terms win over deprecated ones with the same label.
class LabelMapper {
 public:
  /// A mapper using `ontology` (may be null: then only the user table is used). The ontology
  /// must outlive the mapper.
  explicit LabelMapper(const Ontology* ontology = nullptr, LabelMapperOptions options = {});

  /// Read a user table: tab-separated with a header naming at least `label` and `cl_id`
  /// (optional `dataset`, `cl_label`, `note`), as in `label_map_to_cell_ontology.tsv`. Throws
  /// InputError naming the file and line for a missing file or column, an id that is not
  /// "CL:...", an id absent from the ontology, or two rows mapping one label differently.
  void load_table(const std::filesystem::path& path);
  /// Add one row of the user table (`dataset` "" = any dataset).
  void add_mapping(const std::string& dataset, const std::string& label, const std::string& cl_id);

  /// Map one label, optionally scoped to `dataset`.
  [[nodiscard]] LabelMatch map(std::string_view label, std::string_view dataset = {}) const;
  /// Map one label preferring `dataset`'s rows: scoped to it, else (nothing mapped) unscoped
  /// (--label-dataset: "prefer rows of this dataset").
  [[nodiscard]] LabelMatch map_preferring(std::string_view label, std::string_view dataset) const;
  /// Map every label of `labels` (one result per input, same order).
  [[nodiscard]] std::vector<LabelMatch> map_all(const std::vector<std::string>& labels,
                                                std::string_view dataset = {}) const;
  /// The alternatives of a label joined by '/' (step (f)) that narrow the id it maps to: the CL ids
  /// of its parts when every part names a term at or below `cl_id` (a deprecated id read as its
  /// replacement), without a part below another part; empty when the label has no such parts, a
  /// part names nothing or lies elsewhere (the id then is another reading of the label: the table
  /// sent "T/NK cells" to T cell), or the parts are `cl_id` itself. "T/NK cells" at lymphocyte:
  /// T cell and natural killer cell, so a B cell is not one of its cells. Under either reading of
  /// the slash (one of the types, or a cell with every property) a cell of the label lies at or
  /// below some part.
  [[nodiscard]] std::vector<std::string> alternatives_within(std::string_view label, const std::string& cl_id) const;
  /// label -> CL id for the distinct mapped labels of `labels` (input for EvaluationOptions).
  [[nodiscard]] std::map<std::string, std::string> to_cl_ids(const std::vector<std::string>& labels,
                                                             std::string_view dataset = {}) const;
  /// The datasets the user table's rows name (its `dataset` column), sorted.
  [[nodiscard]] std::vector<std::string> datasets() const;
  /// A warning when `dataset` is not "" and no row of the user table names it (a misspelt
  /// --label-dataset: rows of every dataset are then used), else "".
  [[nodiscard]] std::string unknown_dataset_note(const std::string& dataset) const;
  /// The distinct labels of `labels` that could not be mapped, sorted.
  [[nodiscard]] std::vector<std::string> unmapped_labels(const std::vector<std::string>& labels,
                                                         std::string_view dataset = {}) const;

 private:
  struct UserRow {
    std::string dataset;
    std::string cl_id;
    std::string origin;  ///< "file:line" for messages
  };
  void add_row(const std::string& dataset, const std::string& label, const std::string& cl_id,
               const std::string& origin);
  [[nodiscard]] LabelMatch finish(std::string_view label, TermIndex index, LabelMatchKind kind) const;
  [[nodiscard]] LabelMatch from_candidates(std::string_view label, std::vector<TermIndex> candidates,
                                           LabelMatchKind kind) const;
  /// Steps (b)-(e) of `map` for `label` (as written: it may be a CL id) and its normalised `key`.
  [[nodiscard]] LabelMatch map_name(std::string_view label, const std::string& key) const;
  /// Step (f) of `map`.
  [[nodiscard]] LabelMatch map_alternatives(std::string_view label) const;

  const Ontology* ontology_ = nullptr;
  LabelMapperOptions options_;
  std::unordered_map<std::string, std::vector<UserRow>> user_rows_;     ///< by normalised label
  std::unordered_map<std::string, std::vector<TermIndex>> by_label_;    ///< by normalised label
  std::unordered_map<std::string, std::vector<TermIndex>> by_synonym_;  ///< by normalised synonym
  std::unordered_map<std::string, TermIndex> by_shorthand_;             ///< by `shorthand_forms` key
};

}  // namespace celltyper
