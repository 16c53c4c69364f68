/// @file gene_text.hpp
/// Gene texts: one deterministic plain-text document per gene, the input of every gene-embedding
/// backend (GenePT, Chen Y. & Zou J., "Simple and effective embedding model for single-cell
/// biology built from ChatGPT", Nature Biomedical Engineering 2024, embeds the NCBI summary; we
/// add the full name, the gene type and Gene Ontology term names).
///
/// Layout of one document (sections absent when empty; `; ` joins list items):
///
///     CD3E: CD3 epsilon subunit of T-cell receptor complex. Gene type: protein-coding.
///     [Also known as: <aliases>.]   (only when the recipe asks for them)
///     Summary: <NCBI RefSeq summary>
///     Biological process: <GO BP term names, sorted, deduplicated>.
///     Molecular function: <GO MF term names>.
///     Cellular component: <GO CC term names>.
///     Enrichment: <free text, e.g. a chat model's answer>
///
/// Which sections are written, and how many times each, is the recipe (`GeneTextOptions`,
/// `--sections`); provenance records it as `options.sections`. Sections are separated by one
/// space (no tabs or newlines: texts fit a TSV cell). Every tab, carriage return and newline
/// inside a source string becomes a space, runs of spaces are collapsed. Sources:
/// - the gene table (symbol, name, gene type, summary when the table has one),
/// - GO annotations: Bioconductor `org.Hs.eg.db` (gene -> GO id, tables `go_bp`/`go_mf`/`go_cc`)
///   plus `GO.db` (GO id -> term name, table `go_term`) read with SQLite, or the TSV pair
///   `human_gene2go.tsv` (`entrez_id, go_id, evidence, ontology`) + `go_terms.tsv`
///   (`go_id, ontology, term, definition`). The Gene Ontology Consortium, "The Gene Ontology
///   knowledgebase in 2023", Genetics 224(1), 2023.
/// - optional summaries / enrichment texts keyed by Entrez id or symbol.
///
/// A set of texts is identified by its *recipe hash*: FNV-1a 64 over `kGeneTextRecipeVersion`
/// and every (Entrez id, text) pair in order. It changes whenever the recipe or any source
/// changes the texts, and it is recomputed (and checked) when a texts file is read back.
#pragma once

#include <celltyper/gene_table.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace celltyper {

/// Version of the document layout above; part of every recipe hash. Bump on any layout change.
inline constexpr std::string_view kGeneTextRecipeVersion = "celltyper-gene-text/1";

/// 64-bit FNV-1a (Fowler, Noll, Vo) over bytes, for content identities of files and matrices.
class ContentHasher {
 public:
  /// Hash `size` bytes at `data`.
  ContentHasher& bytes(const void* data, std::size_t size) {
    const auto* byte = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) {
      state_ ^= byte[i];
      state_ *= 0x100000001b3ULL;
    }
    return *this;
  }
  /// Hash a string followed by a 0x1f unit separator (so "ab","c" differs from "a","bc").
  ContentHasher& field(std::string_view text) {
    bytes(text.data(), text.size());
    const unsigned char separator = 0x1f;
    return bytes(&separator, 1);
  }
  /// Hash the 8 little-endian bytes of `value`.
  ContentHasher& integer(std::int64_t value) {
    unsigned char buffer[8];
    for (int i = 0; i < 8; ++i) buffer[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(value) >> (8 * i));
    return bytes(buffer, 8);
  }
  [[nodiscard]] std::uint64_t value() const { return state_; }
  /// `value()` as 16 lower-case hex digits.
  [[nodiscard]] std::string hex() const;

 private:
  std::uint64_t state_ = 0xcbf29ce484222325ULL;
};

/// The three Gene Ontology aspects; the value is the index into `GeneGoTerms`.
enum class GoAspect : std::uint8_t {
  kBiologicalProcess = 0,  ///< "BP"
  kMolecularFunction = 1,  ///< "MF"
  kCellularComponent = 2,  ///< "CC"
};

/// Term names of one gene per aspect (index = GoAspect), each sorted and deduplicated.
using GeneGoTerms = std::array<std::vector<std::string>, 3>;

/// Options of the GO readers.
struct GoLoadOptions {
  /// Evidence codes whose links are dropped. Default: "ND" (no biological data available; such
  /// links only point at the root terms).
  std::vector<std::string> exclude_evidence = {"ND"};
  /// Drop links to the three root terms "biological_process", "molecular_function",
  /// "cellular_component" (GO:0008150, GO:0003674, GO:0005575), which say nothing.
  bool drop_root_terms = true;
};

/// GO annotations of genes, keyed by Entrez id.
struct GoAnnotations {
  std::unordered_map<std::int64_t, GeneGoTerms> genes;  ///< per Entrez id: term names per aspect
  std::unordered_map<std::int64_t, std::vector<std::string>> go_ids;  ///< per Entrez id: GO ids (all aspects, sorted)
  std::string source;        ///< the files read, e.g. "org.Hs.eg.sqlite + GO.sqlite"
  std::string content_hash;  ///< 16 hex digits over every (gene, aspect, term) kept, sorted
  std::size_t n_links = 0;            ///< distinct (gene, GO id) links kept
  std::size_t n_dropped_evidence = 0; ///< link rows dropped for their evidence code or a root term
  std::size_t n_unknown_terms = 0;    ///< link rows whose GO id has no term name (dropped)
};

/// Read GO annotations from Bioconductor SQLite databases: gene -> GO links from `org_db_path`
/// (an `org.*.eg.db` SQLite, tables `genes`, `go_bp`, `go_mf`, `go_cc`) and term names from
/// `go_db_path` (`GO.db`'s GO.sqlite, table `go_term`). Both opened read-only.
/// Throws IoError when unreadable, InputError naming the file when the tables are missing.
GoAnnotations load_go_sqlite(const std::string& org_db_path, const std::string& go_db_path,
                             const GoLoadOptions& options = {});

/// Read GO annotations from TSV files with header lines: `gene2go_path` with columns
/// `entrez_id`, `go_id`, `ontology` (BP/MF/CC) and optional `evidence`; `go_terms_path` with
/// `go_id` and `term`. Throws IoError when unreadable, InputError naming file and line when
/// malformed.
GoAnnotations load_go_tsv(const std::string& gene2go_path, const std::string& go_terms_path,
                          const GoLoadOptions& options = {});

/// GO.db's SQLite (`/usr/lib/R/site-library/GO.db/extdata/GO.sqlite` of Debian's
/// `r-bioc-go.db`, or the same under /usr/local/lib/R/site-library) when present, else "".
std::string default_go_db_path();

/// Extra texts per gene (summaries or enrichment), keyed by Entrez id.
struct GeneExtraTexts {
  std::unordered_map<std::int64_t, std::string> texts;  ///< per Entrez id (non-empty texts only)
  std::string source;                    ///< the file read
  std::string content_hash;              ///< 16 hex digits over the (Entrez id, text) pairs, sorted
  std::size_t n_unresolved = 0;          ///< rows whose id matched no gene of the table (skipped)
  std::vector<std::string> unresolved_examples;  ///< up to 10 of those ids
};

/// Read gene summaries from a TSV with a header: an id column (`entrez_id`, else `symbol`, else
/// `gene`/`gene_id`/`id`, else the first column; ids resolved through `table` as Entrez id,
/// Ensembl id, symbol, then unique alias) and a text column (`summary`, `refseq_summary`,
/// `text`, else the last column). Later rows for the same gene are appended with a space.
/// Throws IoError / InputError (file and line).
GeneExtraTexts load_gene_summaries(const std::string& path, const GeneTable& table);

/// Read enrichment texts (e.g. written by `write_gene_enrichment`, `celltyper genes enrich`) from
/// JSONL: one object per line with an id (`id`, `entrez_id` or `symbol`; number or string,
/// resolved as for summaries) and `text` (or `enrichment`); header lines (objects without a
/// text, such as `{"celltyper_gene_enrichment":1,...}` or a celltyper results store's
/// `{"celltyper_results":1,...}`) and blank lines are skipped. A file whose first non-blank
/// character is not `{` is read as a TSV with a header, as `load_gene_summaries` reads one
/// (`entrez_id`/`symbol`/... and `text`). Throws InputError naming file and line on malformed
/// input.
GeneExtraTexts load_gene_enrichment(const std::string& path, const GeneTable& table);

/// Write enrichment texts (per Entrez id, ascending) to `path`, atomically. `.jsonl`/`.json`: a
/// first line `{"celltyper_gene_enrichment":1, ...header}` (the members of `header`, e.g. model
/// and prompt), then `{"entrez_id":..,"symbol":..,"text":..}` per gene, texts as given; anything
/// else: TSV `entrez_id<TAB>symbol<TAB>text` with texts cleaned to one line. Symbols come from
/// `table` ("" when absent). Throws IoError.
void write_gene_enrichment(const std::map<std::int64_t, std::string>& texts, const GeneTable& table, const std::string& path,
                           const nlohmann::json& header = nlohmann::json::object());

/// Genes named in a list file: one gene per line (first tab-separated field; Entrez id, Ensembl
/// id, symbol or unique alias, resolved by `resolve_gene_name`); blank lines, lines starting with
/// '#' and a header line ("entrez_id", "symbol", "gene", "gene_id" or "id") are skipped. Returns
/// gene indices of `table`, ascending, without repeats. Throws InputError listing up to 5 ids that
/// are not in the table (with their lines), or when the list names no gene; IoError when unreadable.
std::vector<std::int32_t> read_gene_subset(const std::string& path, const GeneTable& table);

/// Gene index of `name` in `table`: tried, in order, as an Entrez id (all digits), an Ensembl
/// gene id (version ignored), an official symbol, a symbol ignoring case, then an alias carried
/// by exactly one gene. kNoGene when none matches.
std::int32_t resolve_gene_name(const GeneTable& table, std::string_view name);

/// The sections of a document (the symbol always leads it). The value indexes
/// `GeneTextOptions::section_repeats`; the names are those of `parse_gene_text_sections`.
enum class GeneTextSection : std::uint8_t {
  kName = 0,        ///< "name": the full name after the symbol ("CD3E: CD3 epsilon subunit ...")
  kGeneType = 1,    ///< "type": "Gene type: protein-coding."
  kAliases = 2,     ///< "aliases": "Also known as: T3E; TCRE." (the gene table's other symbols)
  kSummary = 3,     ///< "summary": the RefSeq summary (table's, overridden by `summaries`)
  kGoBp = 4,        ///< "bp": GO biological process term names
  kGoMf = 5,        ///< "mf": GO molecular function term names
  kGoCc = 6,        ///< "cc": GO cellular component term names
  kEnrichment = 7,  ///< "enrichment": the enrichment text (when given)
};
inline constexpr std::size_t kGeneTextSectionCount = 8;
/// The GO sections in aspect order (BP, MF, CC: the index of `GeneGoTerms`).
inline constexpr std::array<GeneTextSection, 3> kGoTextSections = {GeneTextSection::kGoBp, GeneTextSection::kGoMf,
                                                                   GeneTextSection::kGoCc};

/// Times each section is written, indexed by GeneTextSection: 0 leaves it out, 2 writes it twice
/// (which doubles its words' counts for LSA and their share of a transformer's window average).
using GeneTextSectionRepeats = std::array<std::uint8_t, kGeneTextSectionCount>;

/// The default recipe: every section once except the aliases (the layout in the file comment).
inline constexpr GeneTextSectionRepeats kDefaultGeneTextSections = {1, 1, 0, 1, 1, 1, 1, 1};

/// Parse a section list such as "name,type,summary:2,bp,mf,cc": the sections named are written
/// (`:N`, N in 0..9, repeats one N times), the others are left out; "default" stands for the
/// default recipe's sections and may be followed by changes ("default,aliases,summary:2").
/// Names: name, type, aliases, summary, bp, mf, cc, enrichment (also "go" = bp,mf,cc).
/// Throws InputError naming the bad item and the valid names.
GeneTextSectionRepeats parse_gene_text_sections(std::string_view spec);

/// The canonical form of `repeats` for provenance: "name,type,summary,bp,mf,cc,enrichment"
/// (sections left out omitted, ":N" when written N > 1 times).
std::string format_gene_text_sections(const GeneTextSectionRepeats& repeats);

/// What goes into a document.
struct GeneTextOptions {
  /// Sections written and how often (see GeneTextSection); the symbol always leads.
  GeneTextSectionRepeats section_repeats = kDefaultGeneTextSections;
  /// Most GO term names per aspect (alphabetical order kept); 0 = all.
  std::size_t max_go_terms_per_aspect = 0;
  /// When true a gene with no summary, no GO term and no enrichment text gets an empty text
  /// (and so no embedding); when false (default) it still gets its symbol, name and type.
  bool require_annotation = false;

  /// Times `section` is written.
  [[nodiscard]] std::uint8_t repeats(GeneTextSection section) const {
    return section_repeats[static_cast<std::size_t>(section)];
  }
  /// Set how many times `section` is written (0 = left out).
  void set_repeats(GeneTextSection section, std::uint8_t times) { section_repeats[static_cast<std::size_t>(section)] = times; }
  /// Whether any GO aspect is written (so GO annotations are worth loading).
  [[nodiscard]] bool writes_go() const {
    for (const GeneTextSection aspect : kGoTextSections) {
      if (repeats(aspect) > 0) return true;
    }
    return false;
  }
};

/// Sources of `build_gene_texts`; only `table` is required.
struct GeneTextSources {
  const GeneTable* table = nullptr;            ///< genes (required)
  const GoAnnotations* go = nullptr;           ///< GO annotations, optional
  const GeneExtraTexts* summaries = nullptr;   ///< summaries replacing the table's, optional
  const GeneExtraTexts* enrichment = nullptr;  ///< enrichment texts, optional
};

/// One document per gene, in gene-table order (ascending Entrez id).
struct GeneTexts {
  std::vector<std::int64_t> entrez_ids;  ///< per gene
  std::vector<std::string> symbols;      ///< per gene
  std::vector<std::string> texts;        ///< per gene; "" = no text (no embedding)
  std::string recipe_hash;               ///< 16 hex digits, see the file comment
  nlohmann::json provenance = nlohmann::json::object();  ///< recipe, sources and their hashes, counts

  [[nodiscard]] std::size_t size() const { return texts.size(); }
  /// Genes with a non-empty text.
  [[nodiscard]] std::size_t n_nonempty() const;
};

/// The recipe hash of (entrez_ids, texts): FNV-1a over kGeneTextRecipeVersion and every pair.
std::string gene_text_recipe_hash(const std::vector<std::int64_t>& entrez_ids, const std::vector<std::string>& texts);

/// Build one document per gene of `sources.table` (see the file comment for the layout).
/// Throws InputError when `sources.table` is null or empty.
GeneTexts build_gene_texts(const GeneTextSources& sources, const GeneTextOptions& options = {});

/// Write texts to `path`, atomically (temporary file + rename). The format follows the
/// extension: `.jsonl`/`.json` = JSON lines (first line
/// `{"celltyper_gene_texts":1,"recipe":...,"recipe_hash":...,"provenance":{...}}`, then
/// `{"entrez_id":..,"symbol":..,"text":..}` per gene); anything else = TSV (first line
/// `#celltyper_gene_texts<TAB>recipe=...<TAB>recipe_hash=...<TAB>provenance=<json>`, then the
/// header `entrez_id<TAB>symbol<TAB>text`, then one line per gene). Genes with empty texts are
/// written too. Throws IoError.
void write_gene_texts(const GeneTexts& texts, const std::string& path);

/// Read a texts file written by `write_gene_texts` (either format, chosen by content), or any
/// TSV with a header naming `entrez_id` (or `symbol` when `table` is given to resolve symbols)
/// and `text`. The recipe hash is recomputed from the content; when the file's header states a
/// different one, `provenance["recipe_hash_in_file"]` keeps it and `provenance["edited"]` is
/// true. Throws IoError / InputError (file and line; duplicate Entrez ids are an error).
GeneTexts read_gene_texts(const std::string& path, const GeneTable* table = nullptr);

/// The texts of the genes in `entrez_ids` (in `texts` order; ids without a text are ignored),
/// with their own recipe hash; provenance notes the set they were selected from.
GeneTexts select_gene_texts(const GeneTexts& texts, const std::vector<std::int64_t>& entrez_ids);

}  // namespace celltyper
