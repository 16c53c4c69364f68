// GeneTable: construction, look-up indexes, content hash, default path.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <functional>
#include <map>
#include <string_view>
#include <tuple>

#include "genes/gene_names.hpp"
#include "genes/huge_pages.hpp"

namespace celltyper {

namespace {

/// An open-addressing hash index from names to gene indexes. Keys are not copied: each slot
/// points at a string owned by the table's genes or by `Indexes` (lower-cased and mitochondrial
/// names, filled before any insertion), which stay put while the table lives (a moved vector
/// keeps its buffer; copies rebuild their indexes).
class NameIndex {
 public:
  /// What a slot holds: the first / preferred gene and how many genes carry the key.
  struct Entry {
    std::int32_t gene = kNoGene;
    std::uint32_t n_genes = 0;
  };

  void reserve(std::size_t n_keys) {
    std::size_t capacity = 16;
    while (2 * capacity < 3 * n_keys) capacity *= 2;  // load factor at most 2/3
    slots_.clear();
    genes_detail::reserve_huge(slots_, capacity);
    slots_.assign(capacity, Slot{});
  }

  /// The entry for `key`, created (n_genes = 0) when absent. `key` must outlive the index.
  Entry& insert(const std::string& key) {
    if (4 * (size_ + 1) > 3 * slots_.size()) grow();  // keep the load factor under 3/4
    const std::uint64_t hash = hash_of(key);
    for (std::size_t position = hash & (slots_.size() - 1);; position = (position + 1) & (slots_.size() - 1)) {
      Slot& slot = slots_[position];
      if (slot.key == nullptr) {
        slot = Slot{hash, &key, Entry{}};
        ++size_;
        return slot.entry;
      }
      if (slot.hash == hash && *slot.key == key) return slot.entry;
    }
  }

  /// The entry for `key`, or nullptr.
  [[nodiscard]] const Entry* find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    const std::uint64_t hash = hash_of(key);
    for (std::size_t position = hash & (slots_.size() - 1);; position = (position + 1) & (slots_.size() - 1)) {
      const Slot& slot = slots_[position];
      if (slot.key == nullptr) return nullptr;
      if (slot.hash == hash && *slot.key == key) return &slot.entry;
    }
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    const std::string* key = nullptr;
    Entry entry;
  };

  static std::uint64_t hash_of(std::string_view key) {
    // Mix std::hash so that linear probing on the low bits stays well spread.
    std::uint64_t hash = std::hash<std::string_view>{}(key);
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdULL;
    hash ^= hash >> 33;
    return hash;
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : 2 * old.size(), Slot{});
    for (const Slot& slot : old) {
      if (slot.key == nullptr) continue;
      std::size_t position = slot.hash & (slots_.size() - 1);
      while (slots_[position].key != nullptr) position = (position + 1) & (slots_.size() - 1);
      slots_[position] = slot;
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

/// Sort key of a gene when several share a symbol or an Ensembl id: lower is preferred.
std::tuple<bool, bool, std::int64_t> preference_key(const Gene& gene) {
  return {gene.gene_type != "protein-coding", gene.symbol.starts_with("LOC"), gene.entrez_id};
}

/// Keep in `list` the first occurrence of each non-empty entry that is not `exclude`
/// (lists are short: a quadratic scan beats a hash set).
void deduplicate(std::vector<std::string>& list, const std::string& exclude) {
  std::size_t kept = 0;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i].empty() || list[i] == exclude) continue;
    if (std::find(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(kept), list[i]) !=
        list.begin() + static_cast<std::ptrdiff_t>(kept)) {
      continue;
    }
    if (kept != i) list[kept] = std::move(list[i]);
    ++kept;
  }
  list.resize(kept);
}

/// 64-bit FNV-1a (Fowler, Noll, Vo).
class Fnv1a64 {
 public:
  void add(std::string_view bytes) {
    for (const char byte : bytes) {
      state_ ^= static_cast<unsigned char>(byte);
      state_ *= 0x100000001b3ULL;
    }
  }
  void add_separator(char separator) { add(std::string_view(&separator, 1)); }
  void add_list(const std::vector<std::string>& list) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (i > 0) add_separator(',');
      add(list[i]);
    }
  }
  [[nodiscard]] std::uint64_t value() const { return state_; }

 private:
  std::uint64_t state_ = 0xcbf29ce484222325ULL;
};

}  // namespace

struct GeneTable::Indexes {
  NameIndex by_ensembl;       ///< Ensembl id -> preferred gene
  NameIndex by_symbol;        ///< official (and HGNC mitochondrial) symbol -> preferred gene
  NameIndex by_symbol_lower;  ///< lower-cased symbol -> preferred gene
  NameIndex by_alias;         ///< alias -> first gene, number of genes
  std::vector<std::string> lower_symbols;        ///< keys of by_symbol_lower, per gene
  std::vector<std::string> mitochondrial_names;  ///< HGNC "MT-" symbols (keys of by_symbol)
  std::vector<std::string> mitochondrial_lower;  ///< the same, lower-cased
};

GeneTable::GeneTable() : indexes_(std::make_unique<Indexes>()) {}
GeneTable::GeneTable(const GeneTable& other)
    : genes_(other.genes_),
      source_(other.source_),
      species_(other.species_),
      ensembl_prefix_(other.ensembl_prefix_),
      content_hash_(other.content_hash_) {
  build_indexes();  // the other table's indexes point into its own genes
}
GeneTable::GeneTable(GeneTable&&) noexcept = default;
GeneTable& GeneTable::operator=(const GeneTable& other) {
  if (this != &other) *this = GeneTable(other);
  return *this;
}
GeneTable& GeneTable::operator=(GeneTable&&) noexcept = default;
GeneTable::~GeneTable() = default;

GeneTable::GeneTable(std::vector<Gene> genes, std::string source, std::string species)
    : genes_(std::move(genes)), source_(std::move(source)), species_(std::move(species)) {
  const auto by_entrez = [](const Gene& left, const Gene& right) { return left.entrez_id < right.entrez_id; };
  if (!std::is_sorted(genes_.begin(), genes_.end(), by_entrez)) std::sort(genes_.begin(), genes_.end(), by_entrez);
  check_rows();

  std::map<std::string, std::size_t, std::less<>> prefix_counts;
  for (Gene& gene : genes_) {
    for (auto& ensembl_id : gene.ensembl_ids) {
      if (const auto core = genes_detail::ensembl_gene_core(ensembl_id)) {
        ensembl_id.resize(core->size());
        const auto prefix = genes_detail::ensembl_prefix(ensembl_id);
        const auto position = prefix_counts.find(prefix);
        if (position == prefix_counts.end()) prefix_counts.emplace(std::string(prefix), 1);
        else ++position->second;
      }
    }
    deduplicate(gene.ensembl_ids, {});
    deduplicate(gene.uniprot_ids, {});
    deduplicate(gene.aliases, gene.symbol);
  }
  std::size_t best_count = 0;
  for (const auto& [prefix, count] : prefix_counts) {
    if (count > best_count) {
      best_count = count;
      ensembl_prefix_ = prefix;
    }
  }

  Fnv1a64 hash;
  for (const Gene& gene : genes_) {
    hash.add(fmt::format_int(gene.entrez_id).str());
    for (const std::string* field : {&gene.symbol, &gene.name, &gene.gene_type, &gene.chromosome}) {
      hash.add_separator('\x1f');
      hash.add(*field);
    }
    for (const auto* list : {&gene.ensembl_ids, &gene.uniprot_ids, &gene.aliases}) {
      hash.add_separator('\x1f');
      hash.add_list(*list);
    }
    hash.add_separator('\x1f');
    hash.add(gene.summary_status);
    hash.add_separator('\x1f');
    hash.add(gene.summary);
    hash.add_separator('\x1e');
  }
  content_hash_ = hash.value();
  build_indexes();
}

GeneTable GeneTable::restore(std::vector<Gene> genes, std::string source, std::string species, std::string ensembl_prefix,
                             std::uint64_t content_hash) {
  GeneTable table;
  table.genes_ = std::move(genes);
  table.source_ = std::move(source);
  table.species_ = std::move(species);
  table.ensembl_prefix_ = std::move(ensembl_prefix);
  table.content_hash_ = content_hash;
  table.check_rows();
  table.build_indexes();
  return table;
}

void GeneTable::check_rows() const {
  const std::string where = source_.empty() ? std::string("gene table") : source_;
  for (std::size_t i = 0; i < genes_.size(); ++i) {
    if (i > 0 && genes_[i].entrez_id < genes_[i - 1].entrez_id) {
      throw InputError(fmt::format("{}: genes are not in Entrez id order", where));
    }
    if (i > 0 && genes_[i].entrez_id == genes_[i - 1].entrez_id) {
      throw InputError(fmt::format("{}: Entrez id {} appears twice ({} and {})", where, genes_[i].entrez_id,
                                   genes_[i - 1].symbol, genes_[i].symbol));
    }
    if (genes_[i].symbol.empty()) {
      throw InputError(fmt::format("{}: gene with Entrez id {} has an empty symbol", where, genes_[i].entrez_id));
    }
  }
  if (genes_.size() > static_cast<std::size_t>(INT32_MAX)) {
    throw InputError(fmt::format("{}: {} genes are more than a gene index can hold", where, genes_.size()));
  }
}

void GeneTable::build_indexes() {
  indexes_ = std::make_unique<Indexes>();
  Indexes& indexes = *indexes_;
  // Key strings first (NameIndex keeps pointers to them), then the indexes.
  genes_detail::reserve_huge(indexes.lower_symbols, genes_.size());
  std::vector<std::int32_t> mitochondrial_genes;
  std::size_t n_ensembl = 0;
  std::size_t n_aliases = 0;
  for (std::size_t i = 0; i < genes_.size(); ++i) {
    const Gene& gene = genes_[i];
    indexes.lower_symbols.push_back(genes_detail::ascii_lower(gene.symbol));
    n_ensembl += gene.ensembl_ids.size();
    n_aliases += gene.aliases.size();
    // NCBI names mitochondrial genes COX1, ND1, ...; HGNC, Ensembl and 10x use MT-CO1, MT-ND1, ...
    // NCBI keeps the HGNC form without its hyphen as an alias (MTCO1), from which it is rebuilt.
    if (gene.chromosome != "MT") continue;
    for (const auto& alias : gene.aliases) {
      if (alias.size() > 2 && alias.starts_with("MT") && alias[2] >= 'A' && alias[2] <= 'Z' &&
          alias.find('-') == std::string::npos) {
        indexes.mitochondrial_names.push_back("MT-" + alias.substr(2));
        indexes.mitochondrial_lower.push_back(genes_detail::ascii_lower(indexes.mitochondrial_names.back()));
        mitochondrial_genes.push_back(static_cast<std::int32_t>(i));
        break;
      }
    }
  }
  // Insert `gene` under `key`, keeping the preferred gene when several share the key.
  const auto insert_preferred = [this](NameIndex& index, const std::string& key, std::int32_t gene) {
    NameIndex::Entry& entry = index.insert(key);
    if (entry.n_genes++ == 0 || preference_key(genes_[static_cast<std::size_t>(gene)]) <
                                    preference_key(genes_[static_cast<std::size_t>(entry.gene)])) {
      entry.gene = gene;
    }
  };
  indexes.by_symbol.reserve(genes_.size() + mitochondrial_genes.size());
  indexes.by_symbol_lower.reserve(genes_.size() + mitochondrial_genes.size());
  indexes.by_ensembl.reserve(n_ensembl);
  indexes.by_alias.reserve(n_aliases);
  for (std::size_t i = 0; i < genes_.size(); ++i) {
    const Gene& gene = genes_[i];
    const auto index = static_cast<std::int32_t>(i);
    insert_preferred(indexes.by_symbol, gene.symbol, index);
    insert_preferred(indexes.by_symbol_lower, indexes.lower_symbols[i], index);
    for (const auto& ensembl_id : gene.ensembl_ids) insert_preferred(indexes.by_ensembl, ensembl_id, index);
    for (const auto& alias : gene.aliases) {
      NameIndex::Entry& entry = indexes.by_alias.insert(alias);
      if (entry.n_genes++ == 0) entry.gene = index;
    }
  }
  for (std::size_t k = 0; k < mitochondrial_genes.size(); ++k) {
    if (indexes.by_symbol.find(indexes.mitochondrial_names[k]) != nullptr) continue;  // a real symbol wins
    insert_preferred(indexes.by_symbol, indexes.mitochondrial_names[k], mitochondrial_genes[k]);
    insert_preferred(indexes.by_symbol_lower, indexes.mitochondrial_lower[k], mitochondrial_genes[k]);
  }
}

std::int32_t GeneTable::find_ensembl(std::string_view ensembl_id) const {
  if (const auto core = genes_detail::ensembl_gene_core(ensembl_id)) ensembl_id = *core;
  const NameIndex::Entry* entry = indexes_ ? indexes_->by_ensembl.find(ensembl_id) : nullptr;
  return entry == nullptr ? kNoGene : entry->gene;
}

std::int32_t GeneTable::find_entrez(std::int64_t entrez_id) const {
  const auto position = std::lower_bound(genes_.begin(), genes_.end(), entrez_id,
                                         [](const Gene& gene, std::int64_t id) { return gene.entrez_id < id; });
  return position != genes_.end() && position->entrez_id == entrez_id
             ? static_cast<std::int32_t>(position - genes_.begin())
             : kNoGene;
}

std::int32_t GeneTable::find_symbol(std::string_view symbol) const {
  const NameIndex::Entry* entry = indexes_ ? indexes_->by_symbol.find(symbol) : nullptr;
  return entry == nullptr ? kNoGene : entry->gene;
}

std::int32_t GeneTable::find_symbol_case_insensitive(std::string_view symbol) const {
  const NameIndex::Entry* entry =
      indexes_ ? indexes_->by_symbol_lower.find(genes_detail::ascii_lower(symbol)) : nullptr;
  return entry == nullptr ? kNoGene : entry->gene;
}

AliasLookup GeneTable::find_alias(std::string_view alias) const {
  const NameIndex::Entry* entry = indexes_ ? indexes_->by_alias.find(alias) : nullptr;
  if (entry == nullptr) return {};
  return {entry->n_genes == 1 ? entry->gene : kNoGene, entry->n_genes};
}

bool GeneTable::is_known_name(std::string_view name) const {
  if (name.empty()) return false;
  if (find_symbol(name) != kNoGene || find_alias(name).n_genes > 0) return true;
  if (genes_detail::ensembl_gene_core(name) && find_ensembl(name) != kNoGene) return true;
  if (genes_detail::is_all_digits(name)) {
    std::int64_t entrez_id = 0;
    std::from_chars(name.data(), name.data() + name.size(), entrez_id);
    return find_entrez(entrez_id) != kNoGene;
  }
  return false;
}

std::string GeneTable::content_hash_hex() const { return fmt::format("{:016x}", content_hash_); }

std::string default_gene_table_path() {
  if (const char* from_environment = std::getenv("CELLTYPER_GENE_TABLE");
      from_environment != nullptr && *from_environment != '\0') {
    return from_environment;
  }
  for (const char* candidate : {"/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite",
                                "/usr/local/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"}) {
    std::error_code error;
    if (std::filesystem::is_regular_file(candidate, error)) return candidate;
  }
  return {};
}

}  // namespace celltyper
