/// @file gene_table.hpp
/// Gene identity: a table of (human) genes keyed by NCBI Entrez Gene id, with symbols, aliases,
/// Ensembl ids and RefSeq summaries, and the resolver that maps an AnnData file's `var` names
/// (symbols, Ensembl ids or Entrez ids, whatever column holds them) onto rows of that table.
///
/// Conventions:
/// - A gene is identified inside celltyper by its *gene index*: its row in a `GeneTable`, an
///   `std::int32_t`; `kNoGene` (-1) means "no gene". Rows are sorted by Entrez id, so the same set
///   of genes gives the same indices whatever file it was loaded from.
/// - Ensembl ids are stored and looked up without their version suffix
///   (`ENSG00000121410.12` -> `ENSG00000121410`; GENCODE's `_PAR_Y` suffix is dropped too).
/// - Sources: the TSV layout of `../shared/data/gene-annotations/human_genes.tsv`, or the SQLite
///   database of Bioconductor's `org.Hs.eg.db` package (Carlson M., org.Hs.eg.db: Genome wide
///   annotation for Human, R package; Debian `r-bioc-org.hs.eg.db`).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace celltyper {

struct DataFrame;

/// Gene index meaning "no gene".
inline constexpr std::int32_t kNoGene = -1;

/// One gene (one NCBI Entrez Gene record).
struct Gene {
  std::int64_t entrez_id = 0;             ///< NCBI Entrez Gene id, e.g. 916
  std::string symbol;                     ///< official symbol, e.g. "CD3E"
  std::string name;                       ///< full name, e.g. "CD3 epsilon subunit of T-cell receptor complex"
  std::string gene_type;                  ///< NCBI gene type: "protein-coding", "ncRNA", "pseudo", ...
  std::string chromosome;                 ///< e.g. "11"; several joined by ',' ("X,Y"); "" if unknown
  std::vector<std::string> ensembl_ids;   ///< Ensembl gene ids without version, source order
  std::vector<std::string> uniprot_ids;   ///< UniProt accessions
  std::vector<std::string> aliases;       ///< other symbols (never the official symbol itself)
  std::string summary_status;             ///< RefSeq status of the summary, e.g. "REVIEWED REFSEQ"
  std::string summary;                    ///< NCBI RefSeq summary text; often empty
};

/// Outcome of looking a name up among the aliases of a `GeneTable`.
struct AliasLookup {
  std::int32_t gene = kNoGene;  ///< the gene when the alias names exactly one gene
  std::size_t n_genes = 0;      ///< how many genes carry this alias (> 1: ambiguous)
  [[nodiscard]] bool found() const { return n_genes == 1; }
  [[nodiscard]] bool ambiguous() const { return n_genes > 1; }
};

/// An immutable table of genes with look-up indexes by Ensembl id, Entrez id, symbol and alias.
///
/// When several genes share a symbol (18 symbols in org.Hs.eg.db 3.16, e.g. "HBD", "TEC") or an
/// Ensembl id (readthrough transcripts, "LOC" records), look-ups return the *preferred* gene:
/// protein-coding before other types, a named gene before a "LOC..." placeholder, then the lowest
/// Entrez id (the older, canonical record). Aliases are never resolved that way: an alias carried
/// by several genes is ambiguous.
class GeneTable {
 public:
  /// An empty table.
  GeneTable();
  /// Build a table from `genes` (any order; rows are sorted by Entrez id). Ensembl ids get their
  /// version stripped; aliases equal to the gene's own symbol and repeated list entries are
  /// dropped. Throws InputError naming `source` on a duplicate Entrez id or an empty symbol.
  explicit GeneTable(std::vector<Gene> genes, std::string source = {}, std::string species = {});
  /// A table saved from a `GeneTable` (the binary cache): `genes` exactly as `genes()` held them
  /// (sorted, Ensembl versions stripped, lists deduplicated), with the saved prefix and content
  /// hash, which are trusted (the caller checks the saved bytes). Skips the normalisation and
  /// the hash over every text; still checks order, unique Entrez ids and non-empty symbols
  /// (InputError naming `source`). `saved_indexes`, when given, are the bytes `save_indexes`
  /// wrote for this table (8-byte aligned): the look-up indexes use them in place, kept alive by
  /// `keep_alive` (e.g. the cache file's mapping), instead of being rebuilt; they are checked
  /// (sizes, every key inside the saved names, every gene in range) and InputError names
  /// `source` when they are damaged. Without them the indexes are rebuilt.
  static GeneTable restore(std::vector<Gene> genes, std::string source, std::string species, std::string ensembl_prefix,
                           std::uint64_t content_hash, std::string_view saved_indexes = {},
                           std::shared_ptr<const void> keep_alive = {});
  /// Append the look-up indexes (names and hash slots) to `out`, for `restore`: zero bytes pad
  /// `out` to a multiple of 8 first, so that they start 8-byte aligned in a file whose content
  /// begins with `out`. Plain bytes of this machine (the binary cache is local).
  void save_indexes(std::string& out) const;
  GeneTable(const GeneTable&);
  GeneTable(GeneTable&&) noexcept;
  GeneTable& operator=(const GeneTable&);
  GeneTable& operator=(GeneTable&&) noexcept;
  ~GeneTable();

  /// Number of genes.
  [[nodiscard]] std::size_t size() const { return genes_.size(); }
  [[nodiscard]] bool empty() const { return genes_.empty(); }
  /// All genes, sorted by Entrez id; position = gene index.
  [[nodiscard]] const std::vector<Gene>& genes() const { return genes_; }
  /// The gene at `index` (0 <= index < size()).
  [[nodiscard]] const Gene& gene(std::int32_t index) const { return genes_[static_cast<std::size_t>(index)]; }
  /// Where the table came from (a path), "" when built in memory.
  [[nodiscard]] const std::string& source() const { return source_; }
  /// Organism, e.g. "Homo sapiens" (from org.*.eg.db metadata); "" when the source does not say.
  [[nodiscard]] const std::string& species() const { return species_; }
  /// The most common Ensembl gene-id prefix of the table ("ENSG" for human), "" without Ensembl ids.
  [[nodiscard]] const std::string& ensembl_prefix() const { return ensembl_prefix_; }

  /// Gene with this Ensembl gene id (version suffix ignored), or kNoGene.
  [[nodiscard]] std::int32_t find_ensembl(std::string_view ensembl_id) const;
  /// Gene with this Entrez id, or kNoGene.
  [[nodiscard]] std::int32_t find_entrez(std::int64_t entrez_id) const;
  /// Gene whose official symbol is exactly `symbol` (case-sensitive), or kNoGene. Mitochondrial
  /// genes also answer to their HGNC symbol ("MT-CO1", "MT-ND4L"), which 10x, Ensembl and
  /// CELLxGENE use but NCBI (COX1, ND4L) does not; it is rebuilt from the NCBI alias "MTCO1".
  [[nodiscard]] std::int32_t find_symbol(std::string_view symbol) const;
  /// Gene whose official symbol equals `symbol` ignoring ASCII case, or kNoGene.
  [[nodiscard]] std::int32_t find_symbol_case_insensitive(std::string_view symbol) const;
  /// Genes carrying `alias` (case-sensitive) as an alias. An alias that is also some gene's
  /// official symbol is still reported here; resolvers must try `find_symbol` first.
  [[nodiscard]] AliasLookup find_alias(std::string_view alias) const;
  /// Whether `name` is, exactly, some gene's symbol, alias, Ensembl id (version ignored) or
  /// Entrez id (all digits).
  [[nodiscard]] bool is_known_name(std::string_view name) const;

  /// FNV-1a 64-bit hash over every field of every gene, in gene-index order, with field and record
  /// separators. Identifies the table's content for provenance (model files record it).
  [[nodiscard]] std::uint64_t content_hash() const { return content_hash_; }
  /// `content_hash()` as 16 lower-case hex digits.
  [[nodiscard]] std::string content_hash_hex() const;

 private:
  struct Indexes;
  /// Ascending, unique Entrez ids, non-empty symbols, size (InputError naming the source).
  void check_rows() const;
  void build_indexes();
  std::vector<Gene> genes_;
  std::string source_;
  std::string species_;
  std::string ensembl_prefix_;
  std::uint64_t content_hash_ = 0;
  std::unique_ptr<Indexes> indexes_;
};

/// Load a gene table from the TSV layout of `human_genes.tsv`: a header line naming the columns
/// (`entrez_id` and `symbol` required; `name`, `gene_type`, `chromosome`, `ensembl_ids`,
/// `uniprot_ids`, `aliases`, `refseq_summary_status`, `refseq_summary` optional, any order), then
/// one tab-separated line per gene; list fields are comma-separated. Gzip-compressed files are
/// read too. Throws IoError when unreadable, InputError naming file, line and column when malformed.
GeneTable load_gene_table_tsv(const std::string& path);

/// Load a gene table from a Bioconductor `org.*.eg.db` SQLite database (tables `genes`,
/// `gene_info`, `genetype`, `chromosomes`, `ensembl`, `uniprot`, `alias`, `metadata`), opened
/// read-only and immutable. These databases carry no RefSeq summaries (`summary` stays empty).
/// Aliases containing a comma are split as in the TSV layout, so that the TSV exported from a
/// database, without its summaries, has the same `content_hash()` as the database.
/// Throws IoError when unreadable, InputError when the tables are missing or malformed.
GeneTable load_gene_table_sqlite(const std::string& path);

/// Load a gene table, choosing the reader by content: the SQLite magic header selects
/// `load_gene_table_sqlite`, anything else (plain or gzip text) `load_gene_table_tsv`.
GeneTable load_gene_table(const std::string& path);

/// The gene table used when the user names none: the environment variable `CELLTYPER_GENE_TABLE`
/// when set and non-empty (returned as is, even if the file is absent, so that the error names
/// it); else the org.Hs.eg.db SQLite of Debian's `r-bioc-org.hs.eg.db`
/// (`/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite`, or the same under
/// `/usr/local/lib/R/site-library`) when it exists; else "".
std::string default_gene_table_path();

/// Which kind of identifier a column of gene names holds.
enum class GeneIdType {
  kEnsembl,  ///< mostly Ensembl gene ids (`ENS[A-Z]*G<digits>`, optional version)
  kEntrez,   ///< mostly Entrez ids (all digits)
  kSymbol,   ///< anything else: gene symbols
  kUnknown,  ///< no non-empty values
};

/// Name for messages and JSON: "ensembl", "entrez", "symbol", "unknown".
const char* to_string(GeneIdType type);

/// How one var name was matched to a gene.
enum class GeneMatch : std::uint8_t {
  kEnsembl,                ///< by Ensembl gene id (version stripped)
  kEntrez,                 ///< by Entrez id
  kSymbol,                 ///< by official symbol, exact case
  kSymbolCaseInsensitive,  ///< by official symbol ignoring case
  kAlias,                  ///< by an alias carried by exactly one gene
  kAmbiguous,              ///< only by an alias carried by several genes: left unmatched
  kUnmatched,              ///< not found
};

/// Number of `GeneMatch` values.
inline constexpr std::size_t kGeneMatchKinds = 7;

/// Name for messages and JSON: "ensembl", "entrez", "symbol", "symbol_case_insensitive",
/// "alias", "ambiguous", "unmatched".
const char* to_string(GeneMatch match);

/// Options of `resolve_genes`.
struct GeneResolveOptions {
  /// Which var column holds the gene names: "" = auto-detect (the index and every string or
  /// categorical column are tried; the one naming the most distinct genes wins, then the one
  /// resolving most vars, ties going to the index: a chromosome column "1".."22", read as Entrez
  /// ids, matches every var to 22 genes);
  /// "_index" or "index" = the var index (unless a column has that name); else a column name.
  std::string column;
  /// Retry a name whose exact look-up failed with its '.' read as '-' (R's make.names:
  /// "HLA.DRA"; names without a '-'), then without a make-unique suffix (scanpy "MALAT1-1",
  /// Seurat "MALAT1.1") when that suffix is "-<digits>" or ".<digits>".
  bool strip_unique_suffix = true;
  /// How many unmatched / ambiguous / duplicate names to keep as examples.
  std::size_t max_examples = 10;
  /// A column of row numbers (anndata's default var index '0'..'n-1', see `resolve_genes`) holds
  /// no gene names: true = throw InputError; false = resolve no gene and add a warning (inspect).
  bool refuse_row_numbers = true;
  /// The column holds gene ids celltyper wrote itself (a model's reference sample, read back
  /// for a refit): never taken for row numbers, even when they run 1..n (a user's own gene
  /// table numbered so).
  bool ids_not_row_numbers = false;
  /// Per var, 0 when it holds (next to) no counts in a scan, else 1; or null: when given, of
  /// several vars naming one gene a var with counts is read before one without, whatever their
  /// names (after the other name column's say: a var it vouches for comes first) (an outer join of files annotated with different symbols pads the newer name
  /// with zeros beside the older name's counts). `resolve_dataset_genes` (matrix_summary.hpp)
  /// gives it when vars name a gene twice.
  const std::vector<std::int64_t>* var_cells = nullptr;
};

/// One column considered by the auto-detection.
struct GeneColumnCandidate {
  std::string column;                       ///< "_index" for the var index
  GeneIdType id_type = GeneIdType::kUnknown;
  std::size_t n_resolved = 0;               ///< vars matched to a gene
  std::size_t n_distinct = 0;               ///< distinct genes they name (what decides)
};

/// Outcome of `resolve_genes`: one entry per var (row of `var`).
struct GeneResolveResult {
  std::string column;                          ///< column used; "_index" for the var index
  GeneIdType id_type = GeneIdType::kUnknown;   ///< kind of identifier detected in that column
  /// Per var: the gene it is read as, or kNoGene (unmatched, ambiguous, or another var names the
  /// same gene with a better match: exact symbol > case-blind > alias, each > its make-unique
  /// suffix fallback; the earliest among equals). Every gene is read from one var at most.
  std::vector<std::int32_t> gene_index;
  std::vector<GeneMatch> match;                ///< per var: how it matched
  std::array<std::size_t, kGeneMatchKinds> counts{};  ///< vars per GeneMatch (index = enum value)
  std::size_t n_suffix_stripped = 0;           ///< matches found only after removing "-1"/".1"
  std::size_t n_dots_restored = 0;             ///< matches found only with '.' read as '-' (R's make.names: HLA.DRA)
  std::size_t n_distinct_genes = 0;            ///< distinct genes matched
  std::size_t n_duplicate_vars = 0;            ///< matched vars whose gene another var is read from
  std::vector<std::string> unmatched_examples; ///< a few unmatched names
  std::vector<std::string> ambiguous_examples; ///< a few ambiguous names, "NAME (k genes)"
  std::vector<std::string> duplicate_examples; ///< a few "NAME -> SYMBOL (also FIRST)"
  std::vector<GeneColumnCandidate> candidates; ///< columns tried by auto-detection (or the one named)
  std::vector<std::string> warnings;           ///< e.g. a likely species mismatch
  std::size_t n_symbol_vars = 0;               ///< vars named by a symbol (not an Ensembl or Entrez id)
  std::size_t n_mouse_cased_vars = 0;          ///< of those, cased like mouse genes (Cd3e, not CD3E)
  /// Most symbols are cased like mouse genes, the table's are not, and fewer than half the vars
  /// match exactly: names of another species read through this table (the species warning says
  /// so; train records it in the model and annotate compares a query with it).
  bool mouse_cased_mismatch = false;
  std::string table_hash;                      ///< content_hash_hex() of the table used
  /// Per var, 1 when var's feature-type column (10x's `feature_types` / `feature_type`) names
  /// something other than gene expression (Antibody Capture, CRISPR Guide Capture, Peaks, ...):
  /// not read as a gene (kNoGene, in no match count) and left out of library sizes. Empty when
  /// var has no such column.
  /// Without such a column (or for its vars of no type beside gene-expression ones), vars
  /// are flagged by what they are named or identified by: imaging control probes, ATAC peaks
  /// ("chr1:10109-10357"), antibody tags (TotalSeq, isotype controls, ADT / HTO names), and, in a
  /// file whose id column (Cell Ranger's gene_ids) gives nearly every var an Ensembl id, the
  /// few vars it gives none (a 10x antibody's id is its name).
  std::vector<std::uint8_t> other_feature;
  std::size_t n_other_features = 0;            ///< vars flagged in `other_feature`
  std::string other_feature_examples;          ///< "var 'feature_types': Antibody Capture 17, Peaks 1200" (how they were told)
  /// Whether some flags are a guess (antibody-like names, no type beside typed genes, no
  /// Ensembl id among Ensembl ids), not a feature-type column's word or an unmistakable name
  /// (control probes, genome intervals): train and annotate then warn, else they note.
  bool other_features_guessed = false;
  std::vector<std::string> other_feature_names;  ///< the first few flagged vars' names
  /// The message train and annotate give about `other_feature` ("" when none is flagged): what
  /// was left out and how it was told, with "note: " when nothing was guessed.
  [[nodiscard]] std::string other_features_message() const;

  /// Whether var `var` is a feature other than gene expression (see `other_feature`).
  [[nodiscard]] bool is_other_feature(std::size_t var) const { return !other_feature.empty() && other_feature[var] != 0; }

  [[nodiscard]] std::size_t n_vars() const { return gene_index.size(); }
  [[nodiscard]] std::size_t count(GeneMatch kind) const { return counts[static_cast<std::size_t>(kind)]; }
  /// Vars matched to a gene (all kinds but ambiguous and unmatched; features other than gene
  /// expression are none of these).
  [[nodiscard]] std::size_t n_matched() const;
  /// n_matched() / (n_vars() - n_other_features); 0 for no such vars.
  [[nodiscard]] double fraction_matched() const;
  /// A few human-readable lines: column, id type, counts, examples, warnings.
  [[nodiscard]] std::string summary() const;
  /// Everything but the per-var vectors, as JSON.
  [[nodiscard]] nlohmann::json to_json() const;
};

/// Resolve the genes of `var` (an AnnData var data frame) against `table`.
///
/// Per name, in order: Ensembl id (when it looks like one; version stripped), Entrez id (when all
/// digits), exact official symbol, official symbol ignoring case, alias carried by one gene; then,
/// if still unmatched and `strip_unique_suffix`, the same with '.' read as '-' (a name without '-'),
/// then without a "-<digits>"/".<digits>" suffix. Several vars naming one gene: it is read from
/// the best-matched one (see `GeneResolveResult::gene_index`).
/// A name found only as an alias of several genes is `kAmbiguous` and unmatched.
/// Warns (in `warnings`) when the names look like another species (Ensembl prefix such as
/// ENSMUSG, or mouse-cased symbols such as "Cd3e") or when fewer than half match.
/// A column of row numbers is never read as Entrez ids: all-digit names in strictly increasing
/// order that are '0'..'n-1' or '1'..'n' (anndata's default RangeIndex, also what a file without
/// var gets), start at '0' (no Entrez id is 0), or stay below 2n + 10 (row numbers kept through
/// subsetting). Auto-detection skips such a column; when no other column resolves a gene, or the
/// named column is one, it throws InputError (unless `refuse_row_numbers` is false).
/// Throws InputError when `options.column` names no column or a non-text column.
GeneResolveResult resolve_genes(const GeneTable& table, const DataFrame& var,
                                const GeneResolveOptions& options = {});

}  // namespace celltyper
