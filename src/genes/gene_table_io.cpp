// Gene table readers: TSV (plain or gzip) and Bioconductor org.*.eg.db SQLite.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>

#include "genes/file_text.hpp"

#include <sqlite3.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <memory>
#include <unordered_map>

namespace celltyper {

namespace {

constexpr std::string_view kSqliteMagic("SQLite format 3\0", 16);

/// The first `count` bytes of `path` (fewer when the file is shorter). Throws IoError.
std::string read_prefix(const std::string& path, std::size_t count) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file && errno == ENOENT) throw InputError(fmt::format("gene table {} does not exist", path));  // (a missing file: exit 2)
  if (!file) throw IoError(fmt::format("cannot open gene table {}: {}", path, std::strerror(errno)));
  std::string bytes(count, '\0');
  bytes.resize(std::fread(bytes.data(), 1, count, file.get()));
  return bytes;
}

/// The whole content of `path`, decompressed when it is gzip. Throws IoError.
std::string read_text_file(const std::string& path) {
  const std::string magic = read_prefix(path, 2);
  const bool is_gzip = magic.size() == 2 && static_cast<unsigned char>(magic[0]) == 0x1f &&
                       static_cast<unsigned char>(magic[1]) == 0x8b;
  if (is_gzip) {
    std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), &gzclose);
    if (!file) throw IoError(fmt::format("cannot open gene table {}: {}", path, std::strerror(errno)));
    gzbuffer(file.get(), 1 << 20);
    std::string text;
    std::array<char, 1 << 16> buffer{};
    for (;;) {
      const int n_read = gzread(file.get(), buffer.data(), static_cast<unsigned>(buffer.size()));
      if (n_read < 0) {
        int code = 0;
        throw IoError(fmt::format("cannot decompress gene table {}: {}", path, gzerror(file.get(), &code)));
      }
      if (n_read == 0) break;
      text.append(buffer.data(), static_cast<std::size_t>(n_read));
    }
    if (gzclose(file.release()) == Z_BUF_ERROR) {  // (a stream cut short: tenx.cpp's read_text_file)
      throw InputError(fmt::format("cannot decompress gene table {}: the gzip stream ends early (truncated file)", path));
    }
    return text;
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IoError(fmt::format("cannot open gene table {}: {}", path, std::strerror(errno)));
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  std::string text;
  if (!error) text.resize(static_cast<std::size_t>(size));
  std::size_t n_read = std::fread(text.data(), 1, text.size(), file.get());
  text.resize(n_read);
  // Files whose size is not known in advance (pipes): read on until the end.
  std::array<char, 1 << 16> buffer{};
  while ((n_read = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) text.append(buffer.data(), n_read);
  if (std::ferror(file.get())) throw IoError(fmt::format("cannot read gene table {}: {}", path, std::strerror(errno)));
  return text;
}

/// Split `line` at `separator` into `fields` (reused).
void split(std::string_view line, char separator, std::vector<std::string_view>& fields) {
  fields.clear();
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = line.find(separator, begin);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(begin));
      return;
    }
    fields.push_back(line.substr(begin, end - begin));
    begin = end + 1;
  }
}

/// The non-empty comma-separated entries of `field`, spaces around them trimmed.
std::vector<std::string> split_list(std::string_view field) {
  std::vector<std::string> entries;
  std::size_t begin = 0;
  while (begin <= field.size()) {
    std::size_t end = field.find(',', begin);
    if (end == std::string_view::npos) end = field.size();
    std::string_view entry = field.substr(begin, end - begin);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    if (!entry.empty()) entries.emplace_back(entry);
    begin = end + 1;
  }
  return entries;
}

/// A prepared statement, finalized on destruction.
class Statement {
 public:
  Statement(sqlite3* database, const std::string& path, const char* sql) {
    if (sqlite3_prepare_v2(database, sql, -1, &statement_, nullptr) != SQLITE_OK) {
      const std::string message = sqlite3_errmsg(database);
      sqlite3_finalize(statement_);
      throw InputError(fmt::format("{} is not a Bioconductor org.*.eg.db gene database: {} (query: {})", path,
                                   message, sql));
    }
  }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  /// Advance to the next row; false at the end. Throws IoError on a read error.
  bool step(sqlite3* database, const std::string& path) {
    const int code = sqlite3_step(statement_);
    if (code == SQLITE_ROW) return true;
    if (code == SQLITE_DONE) return false;
    throw IoError(fmt::format("cannot read gene database {}: {}", path, sqlite3_errmsg(database)));
  }
  [[nodiscard]] std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
  [[nodiscard]] std::string text(int column) const {
    const auto* bytes = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
    if (bytes == nullptr) return {};
    return std::string(bytes, static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
  }

 private:
  sqlite3_stmt* statement_ = nullptr;
};

}  // namespace

GeneTable load_gene_table_tsv(const std::string& path) {
  const std::string text = read_text_file(path);
  const std::string_view all(text);
  std::size_t line_begin = 0;
  std::size_t line_number = 0;
  // Next line without its "\n" / "\r\n"; false at the end of the text.
  const auto next_line = [&](std::string_view& line) {
    if (line_begin >= all.size()) return false;
    std::size_t line_end = all.find('\n', line_begin);
    if (line_end == std::string_view::npos) line_end = all.size();
    line = all.substr(line_begin, line_end - line_begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line_begin = line_end + 1;
    ++line_number;
    return true;
  };

  std::string_view line;
  if (!next_line(line)) throw InputError(fmt::format("gene table {} is empty", path));
  std::vector<std::string_view> fields;
  split(line, '\t', fields);
  const std::size_t n_columns = fields.size();
  std::unordered_map<std::string_view, std::size_t> column_of;
  for (std::size_t i = 0; i < fields.size(); ++i) column_of.emplace(fields[i], i);
  constexpr std::size_t kAbsent = static_cast<std::size_t>(-1);
  const auto column = [&](std::string_view name, bool required) {
    const auto position = column_of.find(name);
    if (position != column_of.end()) return position->second;
    if (required) {
      throw InputError(fmt::format("gene table {}: the header has no column '{}' (found: {})", path, name,
                                   fmt::join(fields, ", ")));
    }
    return kAbsent;
  };
  const std::size_t entrez_column = column("entrez_id", true);
  const std::size_t symbol_column = column("symbol", true);
  const std::size_t name_column = column("name", false);
  const std::size_t type_column = column("gene_type", false);
  const std::size_t chromosome_column = column("chromosome", false);
  const std::size_t ensembl_column = column("ensembl_ids", false);
  const std::size_t uniprot_column = column("uniprot_ids", false);
  const std::size_t alias_column = column("aliases", false);
  const std::size_t status_column = column("refseq_summary_status", false);
  const std::size_t summary_column = column("refseq_summary", false);

  std::vector<Gene> genes;
  genes.reserve(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')));
  while (next_line(line)) {
    if (line.empty()) continue;
    split(line, '\t', fields);
    if (fields.size() != n_columns) {
      throw InputError(fmt::format("gene table {}: line {} has {} tab-separated fields, expected {} as in the header",
                                   path, line_number, fields.size(), n_columns));
    }
    Gene& gene = genes.emplace_back();
    const std::string_view entrez = fields[entrez_column];
    const auto [end, error] = std::from_chars(entrez.data(), entrez.data() + entrez.size(), gene.entrez_id);
    if (error != std::errc() || end != entrez.data() + entrez.size() || gene.entrez_id <= 0) {
      throw InputError(fmt::format("gene table {}: line {}, column entrez_id: expected a positive integer, found '{}'",
                                   path, line_number, entrez));
    }
    gene.symbol = fields[symbol_column];
    if (gene.symbol.empty()) {
      throw InputError(fmt::format("gene table {}: line {}, column symbol: empty symbol for Entrez id {}", path,
                                   line_number, gene.entrez_id));
    }
    const auto text_field = [&](std::size_t index) {
      return index == kAbsent ? std::string() : std::string(fields[index]);
    };
    const auto list_field = [&](std::size_t index) {
      return index == kAbsent ? std::vector<std::string>() : split_list(fields[index]);
    };
    gene.name = text_field(name_column);
    gene.gene_type = text_field(type_column);
    gene.chromosome = text_field(chromosome_column);
    gene.ensembl_ids = list_field(ensembl_column);
    gene.uniprot_ids = list_field(uniprot_column);
    gene.aliases = list_field(alias_column);
    gene.summary_status = text_field(status_column);
    gene.summary = text_field(summary_column);
  }
  return GeneTable(std::move(genes), path);
}

namespace {

/// A read-only connection to an org.*.eg.db file (immutable: no locking, no journal).
std::unique_ptr<sqlite3, int (*)(sqlite3*)> open_gene_database(const std::string& path) {
  sqlite3* raw_database = nullptr;
  const std::string uri = read_only_sqlite_uri(path);
  const int open_code = sqlite3_open_v2(uri.c_str(), &raw_database, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> database(raw_database, &sqlite3_close);
  if (open_code != SQLITE_OK) {
    throw IoError(fmt::format("cannot open gene database {}: {}", path,
                              raw_database != nullptr ? sqlite3_errmsg(raw_database) : sqlite3_errstr(open_code)));
  }
  return database;
}

/// (genes._id, text) rows of the per-gene annotation tables, in table order.
struct GeneAnnotationRows {
  std::vector<std::pair<std::int64_t, std::string>> gene_types, chromosomes, ensembl, uniprot, aliases;
};

GeneAnnotationRows read_annotation_rows(sqlite3* handle, const std::string& path) {
  GeneAnnotationRows rows;
  const auto read_pairs = [&](const char* sql, std::vector<std::pair<std::int64_t, std::string>>& out) {
    Statement query(handle, path, sql);
    while (query.step(handle, path)) out.emplace_back(query.integer(0), query.text(1));
  };
  read_pairs("SELECT _id, gene_type FROM genetype ORDER BY rowid", rows.gene_types);
  read_pairs("SELECT _id, chromosome FROM chromosomes ORDER BY rowid", rows.chromosomes);
  read_pairs("SELECT _id, ensembl_id FROM ensembl ORDER BY rowid", rows.ensembl);
  read_pairs("SELECT _id, uniprot_id FROM uniprot ORDER BY rowid", rows.uniprot);
  read_pairs("SELECT _id, alias_symbol FROM alias ORDER BY rowid", rows.aliases);
  return rows;
}

}  // namespace

GeneTable load_gene_table_sqlite(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw IoError(fmt::format("cannot open gene database {}: no such file", path));
  }
  const auto database = open_gene_database(path);
  sqlite3* handle = database.get();
  // The annotation tables are read on a second connection while this one reads the genes
  // (every command that resolves gene names starts with this load).
  auto annotation_rows = std::async(std::launch::async, [&path] {
    const auto second = open_gene_database(path);
    return read_annotation_rows(second.get(), path);
  });

  std::vector<Gene> genes;
  std::unordered_map<std::int64_t, std::size_t> row_of;  // genes._id -> position in `genes`
  try {
    Statement genes_query(handle, path,
                          "SELECT g._id, g.gene_id, i.symbol, i.gene_name FROM genes g "
                          "LEFT JOIN gene_info i ON i._id = g._id ORDER BY g._id");
    while (genes_query.step(handle, path)) {
      Gene gene;
      const std::string entrez = genes_query.text(1);
      const auto [end, parse_error] = std::from_chars(entrez.data(), entrez.data() + entrez.size(), gene.entrez_id);
      if (parse_error != std::errc() || end != entrez.data() + entrez.size() || gene.entrez_id <= 0) {
        throw InputError(fmt::format("gene database {}: table genes, column gene_id: expected an Entrez id, found '{}'",
                                     path, entrez));
      }
      gene.symbol = genes_query.text(2);
      gene.name = genes_query.text(3);
      if (gene.symbol.empty()) {
        throw InputError(
            fmt::format("gene database {}: gene_info has no symbol for Entrez id {}", path, gene.entrez_id));
      }
      row_of.emplace(genes_query.integer(0), genes.size());
      genes.push_back(std::move(gene));
    }
  } catch (...) {
    annotation_rows.wait();
    throw;
  }
  GeneAnnotationRows rows = annotation_rows.get();
  // Visit (gene, text) pairs in table order.
  const auto for_each_pair = [&](std::vector<std::pair<std::int64_t, std::string>>& pairs, auto&& visit) {
    for (auto& [id, text] : pairs) {
      const auto position = row_of.find(id);
      if (position != row_of.end()) visit(genes[position->second], std::move(text));
    }
  };
  for_each_pair(rows.gene_types, [](Gene& gene, std::string value) { gene.gene_type = std::move(value); });
  for_each_pair(rows.chromosomes, [](Gene& gene, const std::string& value) {
    if (!gene.chromosome.empty()) gene.chromosome += ',';
    gene.chromosome += value;
  });
  for_each_pair(rows.ensembl, [](Gene& gene, std::string value) { gene.ensembl_ids.push_back(std::move(value)); });
  for_each_pair(rows.uniprot, [](Gene& gene, std::string value) { gene.uniprot_ids.push_back(std::move(value)); });
  // A few aliases contain a comma ("NERF-1a,b"); split them as the TSV layout must, so that both
  // sources give the same table and the same content hash.
  for_each_pair(rows.aliases, [](Gene& gene, const std::string& value) {
    for (auto& alias : split_list(value)) gene.aliases.push_back(std::move(alias));
  });
  std::string species;
  {
    Statement metadata(handle, path, "SELECT name, value FROM metadata");
    while (metadata.step(handle, path)) {
      if (metadata.text(0) == "ORGANISM") species = metadata.text(1);
    }
  }
  return GeneTable(std::move(genes), path, std::move(species));
}

GeneTable load_gene_table(const std::string& path) {
  if (path.empty()) {
    throw InputError("no gene table given: name one or set CELLTYPER_GENE_TABLE (a human_genes.tsv or an "
                     "org.Hs.eg.sqlite from Debian's r-bioc-org.hs.eg.db)");
  }
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    throw InputError(fmt::format("gene table {} is a directory, expected a .tsv or .sqlite file", path));
  }
  if (read_prefix(path, kSqliteMagic.size()) == kSqliteMagic) return load_gene_table_sqlite(path);
  return load_gene_table_tsv(path);
}

}  // namespace celltyper
