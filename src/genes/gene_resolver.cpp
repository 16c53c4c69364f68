// resolve_genes: map the var names of an AnnData file onto a GeneTable.
#include <celltyper/dataframe.hpp>
#include <celltyper/error.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/gene_table.hpp>

#include <algorithm>
#include <charconv>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <set>

#include "genes/gene_names.hpp"

namespace celltyper {

const char* to_string(GeneIdType type) {
  switch (type) {
    case GeneIdType::kEnsembl: return "ensembl";
    case GeneIdType::kEntrez: return "entrez";
    case GeneIdType::kSymbol: return "symbol";
    case GeneIdType::kUnknown: return "unknown";
  }
  return "unknown";
}

const char* to_string(GeneMatch match) {
  switch (match) {
    case GeneMatch::kEnsembl: return "ensembl";
    case GeneMatch::kEntrez: return "entrez";
    case GeneMatch::kSymbol: return "symbol";
    case GeneMatch::kSymbolCaseInsensitive: return "symbol_case_insensitive";
    case GeneMatch::kAlias: return "alias";
    case GeneMatch::kAmbiguous: return "ambiguous";
    case GeneMatch::kUnmatched: return "unmatched";
  }
  return "unmatched";
}

namespace {

constexpr std::string_view kIndexColumn = "_index";

/// How one name resolved.
struct NameResolution {
  std::int32_t gene = kNoGene;
  GeneMatch match = GeneMatch::kUnmatched;
  bool suffix_stripped = false;
  bool dots_restored = false;  ///< matched only with R's make.names '.' read back as '-'
  std::size_t n_alias_genes = 0;  ///< for kAmbiguous: how many genes carry the alias
};

/// Resolve `name` exactly as written (no suffix removal).
NameResolution resolve_exact(const GeneTable& table, std::string_view name) {
  NameResolution result;
  if (name.empty()) return result;
  if (genes_detail::ensembl_gene_core(name)) {
    if ((result.gene = table.find_ensembl(name)) != kNoGene) {
      result.match = GeneMatch::kEnsembl;
      return result;
    }
  }
  // A symbol joined before its Ensembl id ("CA6_ENSG00000131686.7", "CA6|ENSG00000131686"): the
  // id decides (the other order matches above: the id's digits end at the separator).
  for (const std::string_view separator : {"_ENS", "|ENS", ":ENS"}) {
    for (std::size_t at = name.find(separator, 1); at != std::string_view::npos; at = name.find(separator, at + 1)) {
      const std::string_view id = name.substr(at + 1);
      if (genes_detail::ensembl_gene_core(id) && (result.gene = table.find_ensembl(id)) != kNoGene) {
        result.match = GeneMatch::kEnsembl;
        return result;
      }
    }
  }
  if (genes_detail::is_all_digits(name)) {
    std::int64_t entrez_id = 0;
    std::from_chars(name.data(), name.data() + name.size(), entrez_id);
    if ((result.gene = table.find_entrez(entrez_id)) != kNoGene) {
      result.match = GeneMatch::kEntrez;
      return result;
    }
  }
  if ((result.gene = table.find_symbol(name)) != kNoGene) {
    result.match = GeneMatch::kSymbol;
    return result;
  }
  // A symbol differing only in case beats an exact alias: NCBI aliases include mouse-cased forms
  // of other genes' symbols ("Gem" is an alias of GMNN, while GEM is a symbol).
  if ((result.gene = table.find_symbol_case_insensitive(name)) != kNoGene) {
    result.match = GeneMatch::kSymbolCaseInsensitive;
    return result;
  }
  AliasLookup alias = table.find_alias(name);
  if (alias.n_genes == 0 && std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    // Lower-cased names ("cd3e", "hla-dra"): NCBI's aliases are upper-case, as the symbols the
    // case-blind lookup above finds. Not mouse-cased ones ("Ear2" is a mouse RNase, while EAR2
    // is an alias of the human NR2F6).
    const std::string upper = genes_detail::ascii_upper(name);
    if (upper != name) alias = table.find_alias(upper);
  }
  if (alias.found()) {
    result.gene = alias.gene;
    result.match = GeneMatch::kAlias;
    return result;
  }
  if (alias.ambiguous()) {
    result.match = GeneMatch::kAmbiguous;
    result.n_alias_genes = alias.n_genes;
  }
  return result;
}

/// `name` without a make-unique suffix "-<digits>" or ".<digits>", or "" when it has none.
std::string_view without_unique_suffix(std::string_view name) {
  std::size_t position = name.size();
  while (position > 0 && name[position - 1] >= '0' && name[position - 1] <= '9') --position;
  if (position == name.size() || position < 2) return {};
  if (name[position - 1] != '-' && name[position - 1] != '.') return {};
  return name.substr(0, position - 1);
}

/// `name` without a genome prefix of Cell Ranger's multi-genome references ("GRCh38_CD3E",
/// "hg19_CD3E", "mm10___Cd3e"), or "" when it has none.
std::string_view without_genome_prefix(std::string_view name) {
  static constexpr std::string_view kGenomes[] = {"GRCh38", "GRCh37", "hg38", "hg19", "GRCm39", "GRCm38", "mm39", "mm10"};
  for (const std::string_view genome : kGenomes) {
    if (name.size() <= genome.size() + 1 || name.substr(0, genome.size()) != genome) continue;
    std::string_view rest = name.substr(genome.size());
    if (rest.front() != '_' && rest.front() != '-') continue;
    while (!rest.empty() && (rest.front() == '_' || rest.front() == '-')) rest.remove_prefix(1);
    return rest;
  }
  return {};
}

NameResolution resolve_name(const GeneTable& table, std::string_view name, bool strip_unique_suffix) {
  // Spaces, tabs and line ends around a name (a table pasted from a spreadsheet) are no part of it.
  constexpr std::string_view kBlank = " \t\r\n";
  const std::size_t first = name.find_first_not_of(kBlank);
  name = first == std::string_view::npos ? std::string_view() : name.substr(first, name.find_last_not_of(kBlank) - first + 1);
  NameResolution result = resolve_exact(table, name);
  if (result.match != GeneMatch::kUnmatched || !strip_unique_suffix) return result;
  if (const std::string_view gene = without_genome_prefix(name); !gene.empty()) {
    NameResolution prefixed = resolve_name(table, gene, strip_unique_suffix);
    if (prefixed.gene != kNoGene) return prefixed;
  }
  // R's make.names (data frames read with check.names) writes "HLA-DRA" as "HLA.DRA".
  if (name.find('.') != std::string_view::npos && name.find('-') == std::string_view::npos && !genes_detail::ensembl_gene_core(name)) {
    std::string dashed(name);
    std::replace(dashed.begin(), dashed.end(), '.', '-');
    NameResolution restored = resolve_exact(table, dashed);
    if (restored.gene != kNoGene) {
      restored.dots_restored = true;
      return restored;
    }
  }
  const std::string_view base = without_unique_suffix(name);
  if (base.empty() || genes_detail::ensembl_gene_core(name)) return result;
  NameResolution stripped = resolve_exact(table, base);
  if (stripped.gene == kNoGene) return result;
  stripped.suffix_stripped = true;
  return stripped;
}

/// A text column of var (or its index) seen as per-row names without copying.
struct NameSource {
  std::string label;                                ///< "_index" or the column name
  const std::vector<std::string>* strings = nullptr;  ///< index or string column
  const Column* categorical = nullptr;              ///< categorical column
  [[nodiscard]] std::size_t size() const { return strings != nullptr ? strings->size() : categorical->codes.size(); }
  [[nodiscard]] std::string_view at(std::size_t row) const {
    if (strings != nullptr) return (*strings)[row];
    const std::int32_t code = categorical->codes[row];
    return code < 0 ? std::string_view() : std::string_view(categorical->categories[static_cast<std::size_t>(code)]);
  }
};

/// Per-row resolution of one candidate column.
struct ColumnResolution {
  NameSource source;
  GeneIdType id_type = GeneIdType::kUnknown;
  std::vector<NameResolution> rows;
  std::size_t n_resolved = 0;
  std::size_t n_distinct = 0;  ///< distinct genes among the resolved names
  bool row_numbers = false;  ///< the column holds row numbers, not gene names: nothing resolved
};

/// True when every name of `source` is a number, strictly increasing, and the numbers look like
/// row numbers rather than Entrez ids: '0'..'n-1' or '1'..'n', a first value of 0 (no Entrez id
/// is 0), or all below 2n + 10 (row numbers kept through subsetting). See `resolve_genes`.
bool looks_like_row_numbers(const NameSource& source) {
  const std::size_t n = source.size();
  if (n == 0) return false;
  std::uint64_t previous = 0;
  std::uint64_t first = 0;
  for (std::size_t row = 0; row < n; ++row) {
    const std::string_view name = source.at(row);
    std::uint64_t value = 0;
    const auto [end, status] = std::from_chars(name.data(), name.data() + name.size(), value);
    if (name.empty() || status != std::errc() || end != name.data() + name.size()) return false;
    if (row == 0) first = value;
    else if (value <= previous) return false;
    previous = value;
  }
  const bool consecutive = previous - first + 1 == n && first <= 1;
  return consecutive || first == 0 || previous < 2 * static_cast<std::uint64_t>(n) + 10;
}

/// The one-line message for a var whose chosen column holds row numbers.
std::string row_numbers_message(const DataFrame& var, const ColumnResolution& chosen, const std::vector<ColumnResolution>& tried,
                                bool named) {
  const std::string where = var.origin.empty() ? std::string("var") : var.origin;
  const std::size_t n = chosen.source.size();
  const std::string numbers = fmt::format("'{}'..'{}'", chosen.source.at(0), chosen.source.at(n - 1));
  if (named) {
    return fmt::format("{}: var column '{}' holds row numbers ({}), not gene names; pass --gene-column with the var column of gene "
                       "symbols or ids", where, chosen.source.label, numbers);
  }
  std::vector<std::string> others;
  for (const auto& candidate : tried) {
    if (candidate.source.label != chosen.source.label) others.push_back(candidate.source.label);
  }
  return fmt::format("{}: var has no gene names: its index holds row numbers ({}, anndata's default when var_names are not set){}; "
                     "pass --gene-column with the var column of gene symbols or ids, or write the gene names into var_names",
                     where, numbers,
                     others.empty() ? std::string(" and it has no text column")
                                    : fmt::format(" and no text column resolves a gene ({})", fmt::join(others, ", ")));
}

GeneIdType classify(const NameSource& source) {
  std::size_t n_values = 0;
  std::size_t n_ensembl = 0;
  std::size_t n_digits = 0;
  for (std::size_t row = 0; row < source.size(); ++row) {
    const std::string_view name = source.at(row);
    if (name.empty()) continue;
    ++n_values;
    if (genes_detail::ensembl_gene_core(name)) ++n_ensembl;
    else if (genes_detail::is_all_digits(name)) ++n_digits;
  }
  if (n_values == 0) return GeneIdType::kUnknown;
  if (2 * n_ensembl > n_values) return GeneIdType::kEnsembl;
  if (2 * n_digits > n_values) return GeneIdType::kEntrez;
  return GeneIdType::kSymbol;
}

ColumnResolution resolve_column(const GeneTable& table, const NameSource& source, bool strip_unique_suffix) {
  ColumnResolution result;
  result.source = source;
  result.id_type = classify(source);
  result.rows.resize(source.size());
  if (source.categorical != nullptr) {
    // Resolve each category once.
    std::vector<NameResolution> by_category(source.categorical->categories.size());
    for (std::size_t i = 0; i < by_category.size(); ++i) {
      by_category[i] = resolve_name(table, source.categorical->categories[i], strip_unique_suffix);
    }
    for (std::size_t row = 0; row < result.rows.size(); ++row) {
      const std::int32_t code = source.categorical->codes[row];
      if (code >= 0) result.rows[row] = by_category[static_cast<std::size_t>(code)];
    }
  } else {
    for (std::size_t row = 0; row < result.rows.size(); ++row) {
      result.rows[row] = resolve_name(table, (*source.strings)[row], strip_unique_suffix);
    }
  }
  std::vector<std::int32_t> genes;
  for (const auto& row : result.rows) {
    if (row.gene != kNoGene) genes.push_back(row.gene);
  }
  result.n_resolved = genes.size();
  std::sort(genes.begin(), genes.end());
  result.n_distinct = static_cast<std::size_t>(std::unique(genes.begin(), genes.end()) - genes.begin());
  return result;
}

NameSource source_of_column(const Column& column) {
  NameSource source;
  source.label = column.name;
  if (column.kind == ColumnKind::kString) source.strings = &column.strings;
  else source.categorical = &column;
  return source;
}

bool is_text_column(const Column& column) {
  return column.kind == ColumnKind::kString || column.kind == ColumnKind::kCategorical;
}

/// Common name of the species whose Ensembl gene ids start with `prefix`, or "".
std::string_view species_of_ensembl_prefix(std::string_view prefix) {
  static constexpr std::pair<std::string_view, std::string_view> kSpecies[] = {
      {"ENSG", "human"},      {"ENSMUSG", "mouse"},   {"ENSRNOG", "rat"},     {"ENSDARG", "zebrafish"},
      {"ENSMMUG", "macaque"}, {"ENSSSCG", "pig"},     {"ENSBTAG", "cattle"},  {"ENSGALG", "chicken"},
      {"ENSCAFG", "dog"},     {"ENSPTRG", "chimpanzee"}};
  for (const auto& [known, species] : kSpecies) {
    if (known == prefix) return species;
  }
  return {};
}

std::string describe_prefix(std::string_view prefix) {
  const std::string_view species = species_of_ensembl_prefix(prefix);
  return species.empty() ? std::string(prefix) : fmt::format("{} ({})", prefix, species);
}

/// Count the symbols (and those cased like mouse genes), append species-mismatch and low-match
/// warnings to `result`.
void add_warnings(const GeneTable& table, const NameSource& source, GeneResolveResult& result) {
  std::map<std::string, std::size_t, std::less<>> prefix_counts;
  std::size_t n_ensembl = 0;
  std::size_t& n_symbols = result.n_symbol_vars;
  std::size_t& n_mouse_cased = result.n_mouse_cased_vars;
  std::vector<std::string> mouse_examples;
  for (std::size_t row = 0; row < source.size(); ++row) {
    const std::string_view name = source.at(row);
    if (name.empty() || result.is_other_feature(row)) continue;  // (antibody tags, peaks: no names of genes)
    if (const std::string_view prefix = genes_detail::ensembl_prefix(name); !prefix.empty()) {
      ++n_ensembl;
      ++prefix_counts[std::string(prefix)];
    } else if (!genes_detail::is_all_digits(name)) {
      ++n_symbols;
      if (genes_detail::is_mouse_cased(name)) {
        ++n_mouse_cased;
        if (mouse_examples.size() < 3) mouse_examples.emplace_back(name);
      }
    }
  }
  const std::size_t n_matched = result.n_matched();
  const std::size_t n_gene_vars = result.n_vars() - result.n_other_features;  // antibody tags, peaks: no genes to match
  const std::string matched_text =
      fmt::format("{} of {} vars ({:.1f}%) matched", n_matched, n_gene_vars, 100.0 * result.fraction_matched());
  const std::string table_species = table.species().empty() ? std::string() : " (" + table.species() + ")";
  bool species_warned = false;
  if (n_gene_vars == 0 && result.n_other_features > 0) {  // (a protein-only or ATAC-only matrix: not a species question)
    result.warnings.push_back(result.other_features_message());
    return;
  }
  if (n_ensembl > 0 && !table.ensembl_prefix().empty()) {
    const auto dominant =
        std::max_element(prefix_counts.begin(), prefix_counts.end(),
                         [](const auto& left, const auto& right) { return left.second < right.second; });
    if (dominant->first != table.ensembl_prefix() && 2 * dominant->second > n_ensembl) {
      result.warnings.push_back(fmt::format(
          "likely species mismatch with the gene table: {} of {} Ensembl ids start with {} but the gene table's{} start with {}; {}",
          dominant->second, n_ensembl, describe_prefix(dominant->first), table_species,
          describe_prefix(table.ensembl_prefix()), matched_text));
      species_warned = true;
    }
  }
  if (n_symbols > 0 && 2 * n_mouse_cased > n_symbols) {
    std::size_t n_table_mouse_cased = 0;
    for (const Gene& gene : table.genes()) n_table_mouse_cased += genes_detail::is_mouse_cased(gene.symbol) ? 1 : 0;
    const std::size_t n_exact = n_matched - result.count(GeneMatch::kSymbolCaseInsensitive);
    if (2 * n_table_mouse_cased < table.size() && 2 * n_exact < result.n_vars()) {
      result.mouse_cased_mismatch = true;
      result.warnings.push_back(fmt::format(
          "likely species mismatch with the gene table: {} of {} symbols are cased like mouse genes (e.g. {}) but the gene table{} is "
          "not; only {} vars matched exactly and {} only ignoring case, which assumes same-named orthologs; {} vars match no gene "
          "and are left out{}: a gene table of the data's species (--gene-table) keeps them, as does training on the data's own var "
          "names as the genes (--own-gene-names)",
          n_mouse_cased, n_symbols, fmt::join(mouse_examples, ", "), table_species, n_exact,
          result.count(GeneMatch::kSymbolCaseInsensitive), n_gene_vars - n_matched,
          result.unmatched_examples.empty() ? std::string() : fmt::format(" (e.g. {})", fmt::join(result.unmatched_examples, ", "))));
      species_warned = true;
    }
  }
  if (!species_warned && n_gene_vars > 0 && 2 * n_matched < n_gene_vars) {
    result.warnings.push_back(fmt::format("few genes matched: only {} (column '{}', {} ids); is this the right "
                                          "gene table ({}{}) and column? For another species, its table: --gene-table FILE (a TSV "
                                          "with columns entrez_id and symbol, optionally aliases and ensembl_ids), or, training, the "
                                          "data's own var names as the genes (--own-gene-names)",
                                          matched_text, result.column, to_string(result.id_type),
                                          table.source().empty() ? "in memory" : table.source(), table_species));
  }
}

}  // namespace

std::string GeneResolveResult::other_features_message() const {
  if (n_other_features == 0) return {};
  const std::string examples = fmt::format("{}; e.g. {}", other_feature_examples, fmt::join(other_feature_names, ", "));
  if (n_other_features == n_vars()) {
    return fmt::format("no gene expression: every var ({}) is a feature other than gene expression ({}): celltyper reads RNA counts; give "
                       "it the gene-expression matrix (muon: mdata['rna'].write_h5ad(...); a Cell Ranger file's Gene Expression features)",
                       n_other_features, examples);
  }
  return fmt::format("{}{} var{} no gene{} ({}): left out of the genes and the library sizes{}", other_features_guessed ? std::string_view() : kNotePrefix,
                     n_other_features, n_other_features == 1 ? " is" : "s are", n_other_features == 1 ? "" : "s", examples,
                     other_features_guessed ? "; a var 'feature_types' column ('Gene Expression' for the genes, e.g. 'Antibody Capture' "
                                              "or 'Peaks' for the others) says which are genes"
                                            : "");
}

std::size_t GeneResolveResult::n_matched() const {
  return n_vars() - n_other_features - count(GeneMatch::kAmbiguous) - count(GeneMatch::kUnmatched);
}

double GeneResolveResult::fraction_matched() const {
  const std::size_t n_genes = n_vars() - n_other_features;
  return n_genes == 0 ? 0.0 : static_cast<double>(n_matched()) / static_cast<double>(n_genes);
}

std::string GeneResolveResult::summary() const {
  std::string text = fmt::format(
      "genes: {} of {} {}vars matched ({:.1f}%) to {} distinct genes, using {} ({} ids)\n", n_matched(), n_vars() - n_other_features,
      n_other_features > 0 ? "gene " : "", 100.0 * fraction_matched(), n_distinct_genes, column == kIndexColumn ? std::string("the var index") :
      fmt::format("var column '{}'", column), to_string(id_type));
  text += fmt::format("  by Ensembl id {}, Entrez id {}, symbol {}, alias {}, symbol ignoring case {}",
                      count(GeneMatch::kEnsembl), count(GeneMatch::kEntrez), count(GeneMatch::kSymbol),
                      count(GeneMatch::kAlias), count(GeneMatch::kSymbolCaseInsensitive));
  if (n_suffix_stripped > 0) text += fmt::format("; {} after removing a make-unique suffix", n_suffix_stripped);
  if (n_dots_restored > 0) text += fmt::format("; {} after reading R's make.names '.' as '-'", n_dots_restored);
  text += '\n';
  if (count(GeneMatch::kUnmatched) > 0) {
    text += fmt::format("  unmatched {} (e.g. {})\n", count(GeneMatch::kUnmatched),
                        fmt::join(unmatched_examples, ", "));
  }
  if (count(GeneMatch::kAmbiguous) > 0) {
    text += fmt::format("  ambiguous aliases {} (e.g. {})\n", count(GeneMatch::kAmbiguous),
                        fmt::join(ambiguous_examples, ", "));
  }
  if (n_other_features > 0) {
    text += fmt::format("  features other than gene expression: {} ({}): not genes, left out of library sizes\n", n_other_features,
                        other_feature_examples);
  }
  if (n_duplicate_vars > 0) {
    text += fmt::format("  duplicates: {} vars name a gene read from another var (e.g. {})\n", n_duplicate_vars,
                        fmt::join(duplicate_examples, ", "));
  }
  if (candidates.size() > 1) {
    std::vector<std::string> tried;
    for (const auto& candidate : candidates) {
      tried.push_back(fmt::format("{} ({}, {} matched, {} genes)", candidate.column, to_string(candidate.id_type),
                                  candidate.n_resolved, candidate.n_distinct));
    }
    text += fmt::format("  columns tried: {}\n", fmt::join(tried, "; "));
  }
  for (const auto& warning : warnings) text += fmt::format("  warning: {}\n", warning);
  return text;
}

nlohmann::json GeneResolveResult::to_json() const {
  nlohmann::json counts_json = nlohmann::json::object();
  for (std::size_t kind = 0; kind < kGeneMatchKinds; ++kind) {
    counts_json[to_string(static_cast<GeneMatch>(kind))] = counts[kind];
  }
  nlohmann::json candidates_json = nlohmann::json::array();
  for (const auto& candidate : candidates) {
    candidates_json.push_back({{"column", candidate.column},
                               {"id_type", to_string(candidate.id_type)},
                               {"n_resolved", candidate.n_resolved},
                               {"n_distinct", candidate.n_distinct}});
  }
  return {{"column", column},
          {"id_type", to_string(id_type)},
          {"n_vars", n_vars()},
          {"n_matched", n_matched()},
          {"fraction_matched", fraction_matched()},
          {"counts", counts_json},
          {"n_suffix_stripped", n_suffix_stripped},
          {"n_dots_restored", n_dots_restored},
          {"n_distinct_genes", n_distinct_genes},
          {"n_duplicate_vars", n_duplicate_vars},
          {"n_other_features", n_other_features},
          {"unmatched_examples", unmatched_examples},
          {"ambiguous_examples", ambiguous_examples},
          {"duplicate_examples", duplicate_examples},
          {"candidates", candidates_json},
          {"warnings", warnings},
          {"table_hash", table_hash}};
}

namespace {

/// Whether a feature type names something other than gene expression: Cell Ranger's kinds
/// (antibody-derived tags of CITE-seq, CRISPR guides, multiplexing tags, ATAC peaks, custom
/// features), their short names and other tools' spellings (muon's / Seurat's / CITE-seq-Count's
/// "Protein", "Antibody Derived Tags", "protein_expression", "Cell Hashing", "Chromatin
/// Accessibility", "sgRNA"). Anything else (Gene Expression, GEX, RNA, and the gene biotypes that
/// CELLxGENE's var['feature_type'] holds: protein_coding, lncRNA, TR_V_gene, ...) is a gene.
bool is_other_feature_type(std::string_view kind) {
  static const std::set<std::string, std::less<>> kOther = {
      "antibody capture", "crispr guide capture", "multiplexing capture", "peaks", "custom", "adt", "atac", "hto", "antibody", "crispr",
      "prot", "cite", "abseq", "hashtag", "chromatin", "cmo", "sgrna", "guide rna", "guide",
      // imaging panels' controls (10x Xenium's feature_type values)
      "negative control probe", "negative control codeword", "unassigned codeword", "blank codeword", "deprecated codeword",
      "genomic control", "control probe", "control codeword"};
  const std::string lower = genes_detail::ascii_lower(kind);
  if (kOther.find(lower) != kOther.end()) return true;
  for (const std::string_view other : {"crispr", "guide", "sgrna", "multiplex", "hashtag", "hashing"}) {  // (before "rna" below)
    if (lower.find(other) != std::string::npos) return true;
  }
  for (const std::string_view gene : {"coding", "rna", "gene", "transcript"}) {
    if (lower.find(gene) != std::string::npos) return false;
  }
  for (const std::string_view other : {"antibod", "protein", "adt", "hto", "peak", "atac", "chromatin", "codeword", "control probe", "abseq"}) {
    if (lower.find(other) != std::string::npos) return true;
  }
  return false;
}

/// Whether `name` is a genome interval, as ATAC peaks are named: "chr1:10109-10357",
/// "chr1-10109-10357" (Signac), "1:10109-10357", "chrUn_KI270742v1:100-200", "GL000194.1:100-200":
/// a chromosome (any name after "chr"; else 1-99, X, Y, M, MT, or an unplaced contig GL / KI / JH
/// with a version), a separator, start, a separator, end > start.
bool is_genome_interval(std::string_view name) {
  const auto is_separator = [](char c) { return c == ':' || c == '-' || c == '_'; };
  const auto digits_before = [&](std::size_t end) {  // where the run of digits ending at `end` begins
    std::size_t begin = end;
    while (begin > 0 && name[begin - 1] >= '0' && name[begin - 1] <= '9' && end - begin < 12) --begin;
    return begin;
  };
  const std::size_t end_begin = digits_before(name.size());
  if (end_begin == name.size() || end_begin < 2 || !is_separator(name[end_begin - 1])) return false;
  const std::size_t start_end = end_begin - 1;
  const std::size_t start_begin = digits_before(start_end);
  if (start_begin == start_end || start_begin < 2 || !is_separator(name[start_begin - 1])) return false;
  const std::string_view contig = name.substr(0, start_begin - 1);
  const auto number = [&](std::size_t begin, std::size_t end) {
    std::uint64_t value = 0;
    for (std::size_t i = begin; i < end; ++i) value = 10 * value + static_cast<std::uint64_t>(name[i] - '0');
    return value;
  };
  if (number(end_begin, name.size()) <= number(start_begin, start_end)) return false;
  if (contig.size() > 3 && genes_detail::ascii_lower(contig.substr(0, 3)) == "chr") return true;
  const bool numbered = contig.size() <= 2 && genes_detail::is_all_digits(contig);
  const bool lettered = contig == "X" || contig == "Y" || contig == "M" || contig == "MT";
  const bool unplaced = contig.size() > 4 && (contig.starts_with("GL") || contig.starts_with("KI") || contig.starts_with("JH")) &&
                        contig.find('.') != std::string_view::npos;
  return numbered || lettered || unplaced;
}

/// Whether `name` is an antibody-derived tag's or a hashtag's by its name: TotalSeq / AbSeq
/// (pAbO) oligos, isotype controls (IgG1_isotype, Mouse_IgG2a), ADT / HTO in the name ("CD3_ADT",
/// "ADT-CD4", "HTO_1", "Hashtag3").
bool is_antibody_tag_name(std::string_view name) {
  const std::string lower = genes_detail::ascii_lower(name);
  for (const std::string_view word : {"totalseq", "isotype", "pabo", "hashtag", "antibody", "sampletag"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  // BioLegend / BD names of a species' antigen ("Hu.CD3_UCHT1", "Ms.CD4"); 10x CellPlex oligos
  // ("CMO301"); CITE-seq-Count's name-barcode pairs ("CD3-CTCATTGTAACTCCT": 12 or more bases).
  if (lower.starts_with("hu.") || lower.starts_with("ms.")) return true;
  if (lower.size() == 6 && lower.starts_with("cmo") && genes_detail::is_all_digits(lower.substr(3))) return true;
  std::size_t bases = 0;
  while (bases < lower.size() && std::string_view("acgt").find(lower[lower.size() - 1 - bases]) != std::string_view::npos) ++bases;
  if (bases >= 12 && bases < lower.size()) {
    const char before = lower[lower.size() - 1 - bases];
    if (before == '-' || before == '_' || before == '|' || before == '.') return true;
  }
  const auto separator = [](char c) { return c == '_' || c == '-' || c == '.' || c == ':' || c == '|' || c == ' '; };
  const auto word_at = [&](std::size_t at, std::size_t size) {  // `size` letters at `at` are a word among separators
    return (at == 0 || separator(lower[at - 1])) && (at + size >= lower.size() || separator(lower[at + size]));
  };
  if (const std::size_t igg = lower.find("igg"); igg != std::string::npos && (igg == 0 || separator(lower[igg - 1])) &&
      (lower.starts_with("mouse") || lower.starts_with("rat") || lower.starts_with("hamster") || lower.find("ctrl") != std::string::npos ||
       lower.find("control") != std::string::npos)) {
    return true;
  }
  for (const std::string_view tag : {"adt", "hto"}) {
    for (std::size_t at = lower.find(tag); at != std::string::npos; at = lower.find(tag, at + 1)) {
      // (a word of its own beside another: "CD3_ADT", "HTO-1"; not ADTRP, not a name of its own)
      if (word_at(at, tag.size()) && lower.size() > tag.size()) return true;
    }
  }
  return false;
}

/// The imaging panels' control features by name, when no feature-type column says so (a
/// squidpy / spatialdata AnnData, MERSCOPE's cell_by_gene.csv, CosMx's exprMat_file.csv): the
/// prefix, or "" for a gene.
std::string_view control_probe_prefix(std::string_view name) {
  static constexpr std::string_view kPrefixes[] = {"NegControlProbe_", "NegControlCodeword_", "UnassignedCodeword_", "DeprecatedCodeword_",
                                                   "GenomicControl_", "BLANK_", "Blank-", "NegPrb", "SystemControl", "FalseCode"};
  for (const std::string_view prefix : kPrefixes) {
    if (name.starts_with(prefix)) return prefix;
  }
  return {};
}

/// Spike-in RNAs added to plate-based libraries by name: ERCC's ("ERCC-00002", "ERCC_00002"; not
/// the genes ERCC1 .. ERCC8) and Lexogen's SIRVs ("SIRV1", "SIRV101"): counts that are no cell's
/// transcripts (5-50% of a Smart-seq2 cell's reads).
bool is_spike_in_name(std::string_view name) {
  const std::string upper = genes_detail::ascii_upper(name.substr(0, name.find('.')));  // (letter case and a version aside)
  const auto digits_after = [&](std::size_t at, std::size_t least) {
    std::size_t n = 0;
    while (at + n < upper.size() && upper[at + n] >= '0' && upper[at + n] <= '9') ++n;
    return n >= least && at + n == upper.size();
  };
  if ((upper.starts_with("ERCC-") || upper.starts_with("ERCC_")) && digits_after(5, 5)) return true;
  return upper.starts_with("SIRV") && digits_after(4, 1);
}

/// Whether an id is a missing value written as text (pandas' astype(str) of NaN, R's NA).
bool is_missing_text(std::string_view id) {
  const std::string lower = genes_detail::ascii_lower(id);
  return lower.empty() || lower == "nan" || lower == "na" || lower == "none" || lower == "null" || lower == "<na>";
}

/// Flag the vars that are no genes (GeneResolveResult::other_feature): their counts are no
/// transcripts. First a feature-type column (10x: `feature_types` in scanpy's files,
/// `feature_type` in Cell Ranger's; is_other_feature_type): its typed genes stay genes, unless it
/// types every var a gene (then the names below decide, as without it). Then the names: imaging
/// control probes, genome intervals (ATAC peaks), antibody tags. Then two groups of vars that are
/// likely another matrix's, flagged whole when at least a quarter of the group is told so by its
/// names, or some of it is and under half of it names a gene exactly as written (`exact`, per
/// var: a symbol, Ensembl or Entrez id of the table in the column read); a CITE-seq panel names
/// its isotype controls and often its tags so, and its other tags after antigens (CD16, CD45RA);
/// a transgene, a spike-in or a gene joined from another file is no tag: vars of no type beside typed genes (an antibody
/// matrix joined to a Cell Ranger one, pandas leaving NaN), and, in a file whose id column gives
/// nearly every var an Ensembl id, the few it gives another id (a 10x antibody's id is its name).
/// A file whose every var is flagged (a protein-only or ATAC-only matrix) has them all flagged: no
/// gene to read.
void flag_other_features(const DataFrame& var, const std::vector<std::uint8_t>& exact, GeneResolveResult& result) {
  const std::size_t n = var.n_rows();
  std::vector<std::uint8_t> other(n, 0);
  std::vector<std::uint8_t> named(n, 0);  // told by a name rule that is a guess (antibody-like)
  std::map<std::string, std::map<std::string, std::size_t>> told;  // how (a column, a rule) -> its kinds ("" for none) -> vars
  std::vector<std::uint8_t> untyped;                      // vars of no type beside typed genes (empty: no such column)
  std::vector<std::uint8_t> gene_typed(n, 0);             // vars a feature-type column calls genes
  bool guessed = false;
  std::string typed_by;
  for (const char* name : {"feature_types", "feature_type"}) {
    const Column* column = var.find(name);
    if (column == nullptr || !is_text_column(*column) || column->size() != n) continue;
    const NameSource source = source_of_column(*column);
    std::size_t n_genes = 0;
    std::size_t n_untyped = 0;
    std::size_t n_typed_other = 0;
    std::vector<std::uint8_t> missing(n, 0);
    for (std::size_t row = 0; row < n; ++row) {
      const std::string_view kind = column->is_missing(row) ? std::string_view() : source.at(row);
      if (is_missing_text(kind)) {
        missing[row] = 1;
        ++n_untyped;
      } else if (is_other_feature_type(kind)) {
        other[row] = 1;
        ++n_typed_other;
        ++told[fmt::format("var '{}': ", name)][std::string(kind)];
      } else {
        ++n_genes;
      }
    }
    typed_by = name;
    // (a column typing every var a gene, or none: the names decide)
    if (n_typed_other > 0 || n_untyped > 0) {
      for (std::size_t row = 0; row < n; ++row) gene_typed[row] = other[row] == 0 && missing[row] == 0 ? 1 : 0;
    }
    if (n_untyped > 0 && n_untyped < n_genes) untyped = std::move(missing);
    break;
  }
  // Names no gene has (a typed gene is a gene, whatever its name).
  for (std::size_t row = 0; row < n; ++row) {
    if (other[row] != 0 || gene_typed[row] != 0) continue;
    const std::string_view name = var.index[row];
    std::string how;
    std::string kind;
    if (const std::string_view prefix = control_probe_prefix(name); !prefix.empty()) {
      how = "control probes named ";
      kind = std::string(prefix) + "*";
    } else if (is_spike_in_name(name)) {
      how = "spike-in RNAs (ERCC, SIRV)";
    } else if (is_genome_interval(name)) {
      how = "genome intervals (peaks)";
    } else if (is_antibody_tag_name(name)) {
      how = "antibody-tag names";
      named[row] = 1;
      guessed = true;
    }
    if (how.empty()) continue;
    other[row] = 1;
    ++told[how][kind];
  }
  // A group of likely another matrix's vars: flagged whole when a quarter of it is told by name,
  // or some of it is and under half of it names a gene exactly (a panel's tags are named after
  // antigens, CD16, CD45RA, CD4-1: aliases, suffixes or nothing; genes joined from another
  // file are mostly genes' symbols or ids).
  const auto flag_group = [&](const std::vector<std::size_t>& group, const std::string& how) {
    std::size_t n_named = 0;
    std::size_t n_exact = 0;
    for (const std::size_t row : group) {
      n_named += named[row];
      n_exact += row < exact.size() ? exact[row] : 0;
    }
    if (group.empty() || n_named == 0 || (4 * n_named < group.size() && 2 * n_exact >= group.size())) return;
    for (const std::size_t row : group) {
      if (other[row] != 0) continue;
      other[row] = 1;
      ++told[how][""];
      guessed = true;
    }
  };
  if (!untyped.empty()) {
    std::vector<std::size_t> group;
    for (std::size_t row = 0; row < n; ++row) {
      if (untyped[row] != 0) group.push_back(row);
    }
    flag_group(group, fmt::format("no '{}' beside typed genes", typed_by));
  }
  // An id column giving nearly every var an Ensembl id: the few it gives another id.
  if (typed_by.empty()) {
    for (const char* name : {"gene_ids", "gene_id", "ensembl_id", "ensembl_ids", "id"}) {
      const Column* column = var.find(name);
      if (column == nullptr || !is_text_column(*column) || column->size() != n) continue;
      const NameSource source = source_of_column(*column);
      std::size_t n_ensembl = 0;
      std::vector<std::size_t> group;
      for (std::size_t row = 0; row < n; ++row) {
        const std::string_view id = column->is_missing(row) ? std::string_view() : source.at(row);
        if (is_missing_text(id)) continue;
        if (genes_detail::ensembl_gene_core(id)) {
          ++n_ensembl;
        } else {
          group.push_back(row);
        }
      }
      if (!group.empty() && n_ensembl >= 100 && 20 * group.size() <= n && 10 * n_ensembl >= 9 * n) {
        flag_group(group, fmt::format("no Ensembl id in var '{}'", name));
      }
      break;
    }
  }
  std::size_t n_other = 0;
  for (const std::uint8_t flag : other) n_other += flag;
  if (n_other == 0) return;
  std::vector<std::string> parts;
  for (const auto& [how, kinds] : told) {
    std::vector<std::string> counted;
    for (const auto& [kind, count] : kinds) counted.push_back(kind.empty() ? fmt::format("{}", count) : fmt::format("{} {}", kind, count));
    parts.push_back(fmt::format("{}{}{}", how, how.ends_with(' ') ? "" : " ", fmt::join(counted, ", ")));
  }
  result.other_feature = std::move(other);
  result.n_other_features = n_other;
  result.other_feature_examples = fmt::format("{}", fmt::join(parts, ", "));
  result.other_features_guessed = guessed;
}

}  // namespace

GeneResolveResult resolve_genes(const GeneTable& table, const DataFrame& var, const GeneResolveOptions& options) {
  NameSource index_source;
  index_source.label = std::string(kIndexColumn);
  index_source.strings = &var.index;

  std::vector<ColumnResolution> tried;
  if (options.column.empty()) {
    tried.push_back(resolve_column(table, index_source, options.strip_unique_suffix));
    for (const Column& column : var.columns) {
      if (!is_text_column(column)) continue;
      if (column.size() != var.n_rows()) {
        throw InputError(fmt::format("var column '{}' has {} rows but var has {}", column.name, column.size(),
                                     var.n_rows()));
      }
      tried.push_back(resolve_column(table, source_of_column(column), options.strip_unique_suffix));
    }
  } else if (const Column* column = var.find(options.column)) {
    if (!is_text_column(*column)) {
      throw InputError(fmt::format("var column '{}' holds {} values, not gene names; use a string or categorical "
                                   "column, or \"_index\" for the var index",
                                   column->name, celltyper::to_string(column->kind)));
    }
    if (column->size() != var.n_rows()) {
      throw InputError(fmt::format("var column '{}' has {} rows but var has {}", column->name, column->size(),
                                   var.n_rows()));
    }
    tried.push_back(resolve_column(table, source_of_column(*column), options.strip_unique_suffix));
  } else if (options.column == kIndexColumn || options.column == "index" || options.column == var.index_name) {
    tried.push_back(resolve_column(table, index_source, options.strip_unique_suffix));
  } else {
    std::vector<std::string> available{std::string(kIndexColumn)};
    for (const Column& candidate : var.columns) {
      if (is_text_column(candidate)) available.push_back(candidate.name);
    }
    throw InputError(fmt::format("var has no column '{}' to read gene names from (text columns: {})", options.column,
                                 fmt::join(available, ", ")));
  }

  // Row numbers are not gene ids (they would "match" Entrez ids 1..n): resolve nothing from them.
  for (auto& candidate : tried) {
    if (options.ids_not_row_numbers || !looks_like_row_numbers(candidate.source)) continue;
    candidate.row_numbers = true;
    candidate.rows.assign(candidate.rows.size(), NameResolution{});
    candidate.n_resolved = 0;
    candidate.n_distinct = 0;
  }
  // The candidate resolving most distinct genes (a column of chromosome names "1".."22", read as
  // Entrez ids, resolves every var to 22 genes), then most vars; ties keep the earlier one (the
  // index comes first).
  std::size_t best = 0;
  for (std::size_t i = 1; i < tried.size(); ++i) {
    if (std::pair(tried[i].n_distinct, tried[i].n_resolved) > std::pair(tried[best].n_distinct, tried[best].n_resolved)) best = i;
  }
  const ColumnResolution& chosen = tried[best];
  std::string row_numbers;
  if (chosen.row_numbers) {
    row_numbers = row_numbers_message(var, chosen, tried, !options.column.empty());
    if (options.refuse_row_numbers) throw InputError(row_numbers);
  }

  GeneResolveResult result;
  std::vector<std::uint8_t> exact(chosen.rows.size(), 0);  // (names of genes as written: a symbol, an Ensembl or Entrez id)
  for (std::size_t row = 0; row < chosen.rows.size(); ++row) {
    const GeneMatch match = chosen.rows[row].match;
    exact[row] = !chosen.rows[row].suffix_stripped && !chosen.rows[row].dots_restored &&
                         (match == GeneMatch::kSymbol || match == GeneMatch::kEnsembl || match == GeneMatch::kEntrez)
                     ? 1
                     : 0;
  }
  flag_other_features(var, exact, result);
  // (a flagged var's examples name the first few)
  for (std::size_t row = 0; row < var.n_rows() && result.other_feature_names.size() < 3; ++row) {
    if (result.is_other_feature(row)) result.other_feature_names.push_back(var.index[row]);
  }
  result.column = chosen.source.label;
  result.id_type = chosen.id_type;
  result.table_hash = table.content_hash_hex();
  for (const auto& candidate : tried) {
    result.candidates.push_back({candidate.source.label, candidate.id_type, candidate.n_resolved, candidate.n_distinct});
  }
  const std::size_t n_vars = chosen.rows.size();
  result.gene_index.resize(n_vars);
  result.match.resize(n_vars);
  // Several vars naming one gene: the best match is read. First the vars whose other name
  // columns (a 10x features.tsv's gene ids beside its symbols, CELLxGENE's feature_name beside
  // Ensembl ids) name the same gene: of two vars called CD74, the one whose Ensembl id is CD74's.
  // Then an exact symbol before a case-blind one, before an alias, each before its
  // make-unique-suffix fallback; the earliest among equals: "HNRNPU-AS1" (an alias of HNRNPU)
  // never hides the var "HNRNPU". Only columns that resolve at least half as many genes vouch.
  std::vector<const ColumnResolution*> witnesses;
  for (std::size_t i = 0; i < tried.size(); ++i) {
    if (i != best && !tried[i].row_numbers && 2 * tried[i].n_distinct >= chosen.n_distinct) witnesses.push_back(&tried[i]);
  }
  const auto rank = [&](std::size_t row) {
    const NameResolution& resolution = chosen.rows[row];
    const auto kind = static_cast<int>(resolution.match);
    const bool vouched =
        witnesses.empty() || std::any_of(witnesses.begin(), witnesses.end(), [&](const ColumnResolution* witness) {
          return witness->rows[row].gene == resolution.gene && witness->rows[row].match != GeneMatch::kAmbiguous;
        });
    const bool empty = options.var_cells != nullptr && row < options.var_cells->size() && (*options.var_cells)[row] == 0;
    // (the other name column first: a var it vouches for is the gene's, counts or not; then counts)
    return (vouched ? 0 : 32) + (empty ? 16 : 0) + 2 * std::max(kind, static_cast<int>(GeneMatch::kSymbol)) +
           (resolution.suffix_stripped || resolution.dots_restored ? 1 : 0);
  };
  std::vector<std::int32_t> best_var(table.size(), -1);
  for (std::size_t row = 0; row < n_vars; ++row) {
    const NameResolution& resolution = chosen.rows[row];
    if (resolution.gene == kNoGene || result.is_other_feature(row)) continue;
    std::int32_t& best_row = best_var[static_cast<std::size_t>(resolution.gene)];
    if (best_row < 0 || rank(row) < rank(static_cast<std::size_t>(best_row))) best_row = static_cast<std::int32_t>(row);
  }
  std::size_t n_same_name = 0;
  std::string same_name_example;
  for (std::size_t row = 0; row < n_vars; ++row) {
    const NameResolution& resolution = chosen.rows[row];
    if (result.is_other_feature(row)) {  // an antibody tag named CD4 is not the gene CD4
      result.gene_index[row] = kNoGene;
      result.match[row] = GeneMatch::kUnmatched;
      continue;
    }
    result.gene_index[row] = resolution.gene;
    result.match[row] = resolution.match;
    ++result.counts[static_cast<std::size_t>(resolution.match)];
    const std::string_view name = chosen.source.at(row);
    if (resolution.match == GeneMatch::kUnmatched) {
      if (result.unmatched_examples.size() < options.max_examples) {
        result.unmatched_examples.emplace_back(name.empty() ? std::string_view("(empty)") : name);
      }
      continue;
    }
    if (resolution.match == GeneMatch::kAmbiguous) {
      if (result.ambiguous_examples.size() < options.max_examples) {
        result.ambiguous_examples.push_back(fmt::format("{} ({} genes)", name, resolution.n_alias_genes));
      }
      continue;
    }
    if (resolution.suffix_stripped) ++result.n_suffix_stripped;
    if (resolution.dots_restored) ++result.n_dots_restored;
    const auto best = static_cast<std::size_t>(best_var[static_cast<std::size_t>(resolution.gene)]);
    if (best == row) {
      ++result.n_distinct_genes;
      continue;
    }
    result.gene_index[row] = kNoGene;  // read through `best`
    ++result.n_duplicate_vars;
    if (result.duplicate_examples.size() < options.max_examples) {
      result.duplicate_examples.push_back(fmt::format("{} -> {} (also {})", name, table.gene(resolution.gene).symbol, chosen.source.at(best)));
    }
    // The same name (a name made unique by a reader, "CD74-1" beside "CD74", is read as the
    // ranking says: the other ids decide, the plain name otherwise; nothing to warn about).
    const std::string_view best_name = chosen.source.at(best);
    if (name == best_name) {
      ++n_same_name;
      if (same_name_example.empty()) same_name_example = fmt::format("'{}' and '{}'", best_name, name);
    }
  }
  if (n_same_name > 0) {
    result.warnings.push_back(fmt::format("{} gene name{} repeat{} another var's ({}): one var of each is read (the one whose other ids "
                                          "name the same gene, else the first), not their sum (sum or drop duplicated genes first)",
                                          n_same_name, n_same_name == 1 ? "" : "s", n_same_name == 1 ? "s" : "", same_name_example));
  }
  add_warnings(table, chosen.source, result);
  if (!row_numbers.empty()) result.warnings.insert(result.warnings.begin(), row_numbers);
  return result;
}

}  // namespace celltyper
