// GeneTable: construction, look-up indexes, content hash, default path.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <type_traits>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <functional>
#include <map>
#include <string_view>
#include <tuple>

#include "genes/gene_names.hpp"
#include "huge_pages.hpp"

namespace celltyper {

namespace {

/// One slot of a `NameIndex`: the key as an offset into the indexes' key pool, the first or
/// preferred gene and how many genes carry the key. Plain bytes, so that the binary cache saves
/// slots as they are and maps them back without rebuilding (`GeneTable::restore`).
struct NameSlot {
  std::uint64_t hash = 0;
  std::uint32_t key_offset = 0;
  std::uint32_t key_length = 0;  ///< 0 = empty slot (keys are never empty)
  std::int32_t gene = kNoGene;
  std::uint32_t n_genes = 0;
};
static_assert(sizeof(NameSlot) == 24 && std::is_trivially_copyable_v<NameSlot>);

/// Hash of a key: 8 bytes at a time, multiply and fold (stable across builds and libraries,
/// unlike std::hash, because cached indexes keep it).
std::uint64_t name_hash(std::string_view key) {
  std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ (key.size() * 0xff51afd7ed558ccdULL);
  std::size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, key.data() + i, 8);
    h = (h ^ word) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, key.data() + i, key.size() - i);
  h = (h ^ tail) * 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 29;
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 32);
}

/// An open-addressing hash index from names to gene indexes (linear probing, power-of-two
/// capacity). Keys live in a pool shared by the table's indexes. Built in memory (`owned_`), or
/// a view of slots saved by the binary cache and still mapped.
class NameIndex {
 public:
  /// Room for `n_keys` keys at a load factor of at most 2/3 (insert grows the slots past 3/4).
  void reserve(std::size_t n_keys) {
    std::size_t capacity = 16;
    while (2 * capacity < 3 * n_keys) capacity *= 2;
    owned_.clear();
    detail::reserve_huge(owned_, capacity);
    owned_.assign(capacity, NameSlot{});
    slots_ = owned_.data();
    capacity_ = capacity;
    size_ = 0;
  }

  /// The slot for `key`, created (n_genes = 0, key appended to `pool`) when absent.
  NameSlot& insert(std::string_view key, std::string& pool) {
    if (4 * (size_ + 1) > 3 * capacity_) grow();
    const std::uint64_t hash = name_hash(key);
    for (std::size_t position = hash & (capacity_ - 1);; position = (position + 1) & (capacity_ - 1)) {
      NameSlot& slot = owned_[position];
      if (slot.key_length == 0) {
        if (pool.size() + key.size() > UINT32_MAX) throw InputError("gene table: the names exceed 4 GB");
        slot = NameSlot{hash, static_cast<std::uint32_t>(pool.size()), static_cast<std::uint32_t>(key.size()), kNoGene, 0};
        pool.append(key);
        ++size_;
        return slot;
      }
      if (slot.hash == hash && key_of(slot, pool) == key) return slot;
    }
  }

  /// The slot for `key`, or nullptr.
  [[nodiscard]] const NameSlot* find(std::string_view key, std::string_view pool) const {
    if (capacity_ == 0 || key.empty()) return nullptr;
    const std::uint64_t hash = name_hash(key);
    for (std::size_t position = hash & (capacity_ - 1);; position = (position + 1) & (capacity_ - 1)) {
      const NameSlot& slot = slots_[position];
      if (slot.key_length == 0) return nullptr;
      if (slot.hash == hash && key_of(slot, pool) == key) return &slot;
    }
  }

  /// Append capacity, size and the slots to `out` (8-byte aligned there).
  void save(std::string& out) const {
    const std::uint64_t header[2] = {capacity_, size_};
    out.append(reinterpret_cast<const char*>(header), sizeof(header));
    out.append(reinterpret_cast<const char*>(slots_), capacity_ * sizeof(NameSlot));
  }

  /// Use slots saved by `save` at `bytes` (8-byte aligned, kept alive by the caller); advances
  /// `bytes`. False when they do not fit, the capacity is no power of two, the load factor is
  /// broken, or a slot points outside `pool` or at no gene of `n_genes`.
  bool view(std::string_view& bytes, std::string_view pool, std::size_t n_genes) {
    std::uint64_t header[2] = {0, 0};
    if (bytes.size() < sizeof(header)) return false;
    std::memcpy(header, bytes.data(), sizeof(header));
    const std::uint64_t capacity = header[0];
    const std::uint64_t size = header[1];
    if (capacity < 16 || (capacity & (capacity - 1)) != 0 || 4 * size > 3 * capacity ||
        capacity > (bytes.size() - sizeof(header)) / sizeof(NameSlot)) {
      return false;
    }
    const auto* slots = reinterpret_cast<const NameSlot*>(bytes.data() + sizeof(header));
    std::uint64_t used = 0;
    for (std::uint64_t i = 0; i < capacity; ++i) {
      const NameSlot& slot = slots[i];
      if (slot.key_length == 0) continue;
      ++used;
      if (std::uint64_t{slot.key_offset} + slot.key_length > pool.size() || slot.n_genes == 0 || slot.gene < 0 ||
          static_cast<std::size_t>(slot.gene) >= n_genes) {
        return false;
      }
    }
    if (used != size) return false;
    owned_.clear();
    slots_ = slots;
    capacity_ = capacity;
    size_ = size;
    bytes.remove_prefix(sizeof(header) + capacity * sizeof(NameSlot));
    return true;
  }

 private:
  static std::string_view key_of(const NameSlot& slot, std::string_view pool) {
    return pool.substr(slot.key_offset, slot.key_length);
  }

  void grow() {
    std::vector<NameSlot> old = std::move(owned_);
    const std::size_t capacity = old.empty() ? 16 : 2 * old.size();
    owned_.assign(capacity, NameSlot{});
    for (const NameSlot& slot : old) {
      if (slot.key_length == 0) continue;
      std::size_t position = slot.hash & (capacity - 1);
      while (owned_[position].key_length != 0) position = (position + 1) & (capacity - 1);
      owned_[position] = slot;
    }
    slots_ = owned_.data();
    capacity_ = capacity;
  }

  std::vector<NameSlot> owned_;     ///< the slots when built here
  const NameSlot* slots_ = nullptr;  ///< owned_.data() or saved slots
  std::size_t capacity_ = 0;
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
  std::string owned_pool;     ///< every key, back to back, when built here
  std::string_view pool;      ///< owned_pool or a saved pool
  std::shared_ptr<const void> keep_alive;  ///< the mapping that holds saved slots and pool

  /// The four indexes in their saved order.
  [[nodiscard]] std::array<NameIndex*, 4> all() { return {&by_ensembl, &by_symbol, &by_symbol_lower, &by_alias}; }
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
                             std::uint64_t content_hash, std::string_view saved_indexes, std::shared_ptr<const void> keep_alive) {
  GeneTable table;
  table.genes_ = std::move(genes);
  table.source_ = std::move(source);
  table.species_ = std::move(species);
  table.ensembl_prefix_ = std::move(ensembl_prefix);
  table.content_hash_ = content_hash;
  table.check_rows();
  if (saved_indexes.empty()) {
    table.build_indexes();
    return table;
  }
  const std::string where = table.source_.empty() ? std::string("gene table") : table.source_;
  auto indexes = std::make_unique<Indexes>();
  std::uint64_t pool_size = 0;
  if (reinterpret_cast<std::uintptr_t>(saved_indexes.data()) % 8 != 0 || saved_indexes.size() < 8) {
    throw InputError(fmt::format("{}: saved name indexes are misaligned or cut short", where));
  }
  std::memcpy(&pool_size, saved_indexes.data(), 8);
  const std::uint64_t padded = (pool_size + 7) / 8 * 8;  // read only once pool_size is known to fit
  if (pool_size > saved_indexes.size() - 8 || padded > saved_indexes.size() - 8) {
    throw InputError(fmt::format("{}: saved name indexes are cut short", where));
  }
  indexes->pool = saved_indexes.substr(8, pool_size);
  std::string_view rest = saved_indexes.substr(8 + padded);
  for (NameIndex* index : indexes->all()) {
    if (!index->view(rest, indexes->pool, table.genes_.size())) {
      throw InputError(fmt::format("{}: saved name indexes are damaged", where));
    }
  }
  if (!rest.empty()) throw InputError(fmt::format("{}: {} bytes after the saved name indexes", where, rest.size()));
  indexes->keep_alive = std::move(keep_alive);
  table.indexes_ = std::move(indexes);
  return table;
}

void GeneTable::save_indexes(std::string& out) const {
  if (!indexes_) throw InputError("gene table without indexes");
  out.append((8 - out.size() % 8) % 8, '\0');
  const std::uint64_t pool_size = indexes_->pool.size();
  out.append(reinterpret_cast<const char*>(&pool_size), 8);
  out.append(indexes_->pool);
  out.append((8 - out.size() % 8) % 8, '\0');
  for (const NameIndex* index : indexes_->all()) index->save(out);
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
  std::string& pool = indexes.owned_pool;
  std::vector<std::int32_t> mitochondrial_genes;
  std::vector<std::string> mitochondrial_names;
  std::size_t n_ensembl = 0;
  std::size_t n_aliases = 0;
  std::size_t key_bytes = 0;
  for (std::size_t i = 0; i < genes_.size(); ++i) {
    const Gene& gene = genes_[i];
    n_ensembl += gene.ensembl_ids.size();
    n_aliases += gene.aliases.size();
    key_bytes += 2 * gene.symbol.size();
    for (const auto& id : gene.ensembl_ids) key_bytes += id.size();
    for (const auto& alias : gene.aliases) key_bytes += alias.size();
    // NCBI names mitochondrial genes COX1, ND1, ...; HGNC, Ensembl and 10x use MT-CO1, MT-ND1, ...
    // NCBI keeps the HGNC form without its hyphen as an alias (MTCO1), from which it is rebuilt.
    if (gene.chromosome != "MT") continue;
    for (const auto& alias : gene.aliases) {
      if (alias.size() > 2 && alias.starts_with("MT") && alias[2] >= 'A' && alias[2] <= 'Z' &&
          alias.find('-') == std::string::npos) {
        mitochondrial_names.push_back("MT-" + alias.substr(2));
        mitochondrial_genes.push_back(static_cast<std::int32_t>(i));
        break;
      }
    }
  }
  pool.reserve(key_bytes + 8 * mitochondrial_names.size());
  // Insert `gene` under `key`, keeping the preferred gene when several share the key.
  const auto insert_preferred = [this, &pool](NameIndex& index, std::string_view key, std::int32_t gene) {
    if (key.empty()) return;
    NameSlot& slot = index.insert(key, pool);
    if (slot.n_genes++ == 0 || preference_key(genes_[static_cast<std::size_t>(gene)]) <
                                   preference_key(genes_[static_cast<std::size_t>(slot.gene)])) {
      slot.gene = gene;
    }
  };
  indexes.by_symbol.reserve(genes_.size() + mitochondrial_genes.size());
  indexes.by_symbol_lower.reserve(genes_.size() + mitochondrial_genes.size());
  indexes.by_ensembl.reserve(n_ensembl);
  indexes.by_alias.reserve(n_aliases);
  std::string lower;
  for (std::size_t i = 0; i < genes_.size(); ++i) {
    const Gene& gene = genes_[i];
    const auto index = static_cast<std::int32_t>(i);
    insert_preferred(indexes.by_symbol, gene.symbol, index);
    lower = genes_detail::ascii_lower(gene.symbol);
    insert_preferred(indexes.by_symbol_lower, lower, index);
    for (const auto& ensembl_id : gene.ensembl_ids) insert_preferred(indexes.by_ensembl, ensembl_id, index);
    for (const auto& alias : gene.aliases) {
      if (alias.empty()) continue;
      NameSlot& slot = indexes.by_alias.insert(alias, pool);
      if (slot.n_genes++ == 0) slot.gene = index;
    }
  }
  for (std::size_t k = 0; k < mitochondrial_genes.size(); ++k) {
    if (indexes.by_symbol.find(mitochondrial_names[k], pool) != nullptr) continue;  // a real symbol wins
    insert_preferred(indexes.by_symbol, mitochondrial_names[k], mitochondrial_genes[k]);
    insert_preferred(indexes.by_symbol_lower, genes_detail::ascii_lower(mitochondrial_names[k]), mitochondrial_genes[k]);
  }
  indexes.pool = pool;
}

std::int32_t GeneTable::find_ensembl(std::string_view ensembl_id) const {
  if (const auto core = genes_detail::ensembl_gene_core(ensembl_id)) ensembl_id = *core;
  const NameSlot* entry = indexes_ ? indexes_->by_ensembl.find(ensembl_id, indexes_->pool) : nullptr;
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
  const NameSlot* entry = indexes_ ? indexes_->by_symbol.find(symbol, indexes_->pool) : nullptr;
  return entry == nullptr ? kNoGene : entry->gene;
}

std::int32_t GeneTable::find_symbol_case_insensitive(std::string_view symbol) const {
  const NameSlot* entry =
      indexes_ ? indexes_->by_symbol_lower.find(genes_detail::ascii_lower(symbol), indexes_->pool) : nullptr;
  return entry == nullptr ? kNoGene : entry->gene;
}

AliasLookup GeneTable::find_alias(std::string_view alias) const {
  const NameSlot* entry = indexes_ ? indexes_->by_alias.find(alias, indexes_->pool) : nullptr;
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
