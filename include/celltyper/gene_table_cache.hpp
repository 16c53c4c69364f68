/// @file gene_table_cache.hpp
/// A compact binary copy of a gene table, so that commands do not pay the ~0.6 s of reading
/// org.Hs.eg.db through SQLite (or parsing a large TSV) every time they start.
#pragma once

#include <celltyper/gene_table.hpp>

#include <optional>
#include <string>

namespace celltyper {

/// What a cached load fills in. `kIdentifiers` leaves each gene's texts (name, summary_status,
/// summary) empty: everything else (ids, symbols, aliases, type, chromosome, look-ups and the
/// content hash of the whole table) is as with `kAll`. For commands that resolve gene names but
/// never build gene texts (inspect, annotate, train, embed, ...): a third of the bytes and most
/// of the allocations of org.Hs.eg.db's 77k genes are skipped. A table read from its source
/// (no cache yet) is always complete.
enum class GeneTableFields { kAll, kIdentifiers };

/// Where cached gene tables live: `$CELLTYPER_CACHE_DIR` when set and non-empty (set it to "none"
/// to disable the cache), else `$XDG_CACHE_HOME/celltyper`, else `$HOME/.cache/celltyper`; ""
/// when none of these can be named.
std::string gene_table_cache_dir();

/// Write `table` to `path` (through a temporary file renamed into place), recording the size and
/// modification time of `source`, the file it was read from. Throws IoError.
void save_gene_table_binary(const GeneTable& table, const std::string& path, const std::string& source);

/// Read a table written by `save_gene_table_binary`; nullopt when `path` is absent, truncated, of
/// another format version, fails its content check, or was written for another state of `source`
/// (its size or modification time differ).
std::optional<GeneTable> load_gene_table_binary(const std::string& path, const std::string& source,
                                                GeneTableFields fields = GeneTableFields::kAll);

/// The cache file of source `path` in `gene_table_cache_dir()` ("" when there is no cache dir).
std::string gene_table_cache_path(const std::string& path);

/// `load_gene_table(path)` through the cache: the first load of a source writes a binary copy to
/// `gene_table_cache_path(path)`; later loads read that copy while the source keeps its size and
/// modification time. A cache that cannot be read or written is skipped silently: the result is
/// always the table `load_gene_table(path)` gives (same content hash).
GeneTable load_gene_table_cached(const std::string& path, GeneTableFields fields = GeneTableFields::kAll);

/// The gene table a command uses: `requested` when given, else `default_gene_table_path()`
/// ($CELLTYPER_GENE_TABLE, else Debian's org.Hs.eg.db); "" when there is none.
std::string choose_gene_table_path(const std::string& requested);

/// `load_gene_table_cached(choose_gene_table_path(requested))`; InputError saying how to get one
/// (--gene-table, r-bioc-org.hs.eg.db) when there is none.
GeneTable load_requested_gene_table(const std::string& requested, GeneTableFields fields = GeneTableFields::kAll);

}  // namespace celltyper
