// Gene Ontology annotations for gene texts: Bioconductor org.*.eg.db + GO.db SQLite databases,
// or the TSV pair human_gene2go.tsv + go_terms.tsv.
#include <celltyper/error.hpp>
#include <celltyper/gene_text.hpp>

#include "genes/file_text.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <unordered_set>

namespace celltyper {

namespace {

constexpr std::array<std::string_view, 3> kRootTerms{"GO:0008150", "GO:0003674", "GO:0005575"};

/// Raw links gathered by a reader: per gene, per aspect, GO ids.
using RawLinks = std::map<std::int64_t, std::array<std::set<std::string>, 3>>;

struct LinkFilter {
  const GoLoadOptions& options;
  std::size_t dropped = 0;
  bool keep(std::string_view go_id, std::string_view evidence) {
    const bool bad_evidence = std::find(options.exclude_evidence.begin(), options.exclude_evidence.end(), evidence) !=
                              options.exclude_evidence.end();
    const bool root = options.drop_root_terms && std::find(kRootTerms.begin(), kRootTerms.end(), go_id) != kRootTerms.end();
    if (bad_evidence || root) {
      ++dropped;
      return false;
    }
    return true;
  }
};

/// Name the links, sort, deduplicate and hash.
GoAnnotations finish(const RawLinks& links, const std::unordered_map<std::string, std::string>& term_names,
                     std::size_t n_dropped, std::string source) {
  GoAnnotations out;
  out.source = std::move(source);
  out.n_dropped_evidence = n_dropped;
  ContentHasher hasher;
  for (const auto& [entrez_id, aspects] : links) {
    GeneGoTerms terms;
    std::vector<std::string> ids;
    for (std::size_t aspect = 0; aspect < 3; ++aspect) {
      for (const auto& go_id : aspects[aspect]) {
        const auto name = term_names.find(go_id);
        if (name == term_names.end() || name->second.empty()) {
          ++out.n_unknown_terms;
          continue;
        }
        terms[aspect].push_back(name->second);
        ids.push_back(go_id);
      }
      std::sort(terms[aspect].begin(), terms[aspect].end());
      terms[aspect].erase(std::unique(terms[aspect].begin(), terms[aspect].end()), terms[aspect].end());
    }
    if (ids.empty()) continue;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    out.n_links += ids.size();
    hasher.integer(entrez_id);
    for (std::size_t aspect = 0; aspect < 3; ++aspect) {
      hasher.integer(static_cast<std::int64_t>(aspect));
      for (const auto& name : terms[aspect]) hasher.field(name);
    }
    out.genes.emplace(entrez_id, std::move(terms));
    out.go_ids.emplace(entrez_id, std::move(ids));
  }
  out.content_hash = hasher.hex();
  return out;
}

using Database = std::unique_ptr<sqlite3, int (*)(sqlite3*)>;

Database open_database(const std::string& path, std::string_view what) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) throw IoError(fmt::format("cannot open {} {}: no such file", what, path));
  sqlite3* raw = nullptr;
  const std::string uri = read_only_sqlite_uri(path);
  const int code = sqlite3_open_v2(uri.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
  Database database(raw, &sqlite3_close);
  if (code != SQLITE_OK) {
    throw IoError(fmt::format("cannot open {} {}: {}", what, path, raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(code)));
  }
  return database;
}

/// Run `sql` on `database`, calling `row(statement)` for every result row.
template <typename Row>
void query(sqlite3* database, const std::string& path, std::string_view what, const char* sql, Row&& row) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(database, sql, -1, &raw, nullptr) != SQLITE_OK) {
    const std::string message = sqlite3_errmsg(database);
    sqlite3_finalize(raw);
    throw InputError(fmt::format("{} is not a {}: {} (query: {})", path, what, message, sql));
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw, &sqlite3_finalize);
  for (;;) {
    const int code = sqlite3_step(raw);
    if (code == SQLITE_DONE) return;
    if (code != SQLITE_ROW) throw IoError(fmt::format("cannot read {} {}: {}", what, path, sqlite3_errmsg(database)));
    row(raw);
  }
}

std::string column_text(sqlite3_stmt* statement, int column) {
  const auto* bytes = reinterpret_cast<const char*>(sqlite3_column_text(statement, column));
  if (bytes == nullptr) return {};
  return std::string(bytes, static_cast<std::size_t>(sqlite3_column_bytes(statement, column)));
}

/// Visit a TSV text: `on_header(fields)` for the first line, then `visit(fields, line_number)`
/// for every other non-empty line (which must have as many fields as the header).
template <typename OnHeader, typename Visit>
void for_each_tsv_line(std::string_view text, const std::string& path, std::string_view what, OnHeader&& on_header,
                       Visit&& visit) {
  std::size_t n_header_fields = 0;
  std::vector<std::string_view> fields;
  std::size_t begin = 0;
  std::size_t line_number = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fields.clear();
    std::size_t field_begin = 0;
    for (;;) {
      const std::size_t tab = line.find('\t', field_begin);
      fields.push_back(line.substr(field_begin, tab == std::string_view::npos ? std::string_view::npos : tab - field_begin));
      if (tab == std::string_view::npos) break;
      field_begin = tab + 1;
    }
    if (line_number == 1) {
      n_header_fields = fields.size();
      on_header(fields);
      continue;
    }
    if (line.empty()) continue;
    if (fields.size() != n_header_fields) {
      throw InputError(fmt::format("{} {}: line {} has {} tab-separated fields, expected {} as in the header", what, path,
                                   line_number, fields.size(), n_header_fields));
    }
    visit(fields, line_number);
  }
  if (line_number == 0) throw InputError(fmt::format("{} {} is empty", what, path));
}

std::size_t require_column(const std::vector<std::string_view>& header, std::string_view name, const std::string& path,
                           std::string_view what) {
  const auto position = std::find(header.begin(), header.end(), name);
  if (position == header.end()) {
    throw InputError(fmt::format("{} {}: the header has no column '{}'", what, path, name));
  }
  return static_cast<std::size_t>(position - header.begin());
}

}  // namespace

std::string default_go_db_path() {
  for (const char* root : {"/usr/lib/R/site-library", "/usr/local/lib/R/site-library"}) {
    const std::string path = std::string(root) + "/GO.db/extdata/GO.sqlite";
    std::error_code error;
    if (std::filesystem::is_regular_file(path, error)) return path;
  }
  return {};
}

GoAnnotations load_go_sqlite(const std::string& org_db_path, const std::string& go_db_path, const GoLoadOptions& options) {
  std::unordered_map<std::string, std::string> term_names;
  {
    const Database database = open_database(go_db_path, "GO.db database");
    query(database.get(), go_db_path, "GO.db database (table go_term)", "SELECT go_id, term FROM go_term",
          [&](sqlite3_stmt* row) { term_names.emplace(column_text(row, 0), column_text(row, 1)); });
    if (term_names.empty()) throw InputError(fmt::format("GO.db database {}: table go_term is empty", go_db_path));
  }
  RawLinks links;
  LinkFilter filter{options};
  const Database database = open_database(org_db_path, "org.*.eg.db database");
  static constexpr std::array<const char*, 3> kQueries{
      "SELECT g.gene_id, t.go_id, t.evidence FROM go_bp t JOIN genes g ON g._id = t._id",
      "SELECT g.gene_id, t.go_id, t.evidence FROM go_mf t JOIN genes g ON g._id = t._id",
      "SELECT g.gene_id, t.go_id, t.evidence FROM go_cc t JOIN genes g ON g._id = t._id"};
  for (std::size_t aspect = 0; aspect < 3; ++aspect) {
    query(database.get(), org_db_path, "Bioconductor org.*.eg.db database with GO tables", kQueries[aspect],
          [&](sqlite3_stmt* row) {
            const std::string gene_id = column_text(row, 0);
            std::int64_t entrez_id = 0;
            const auto [end, error] = std::from_chars(gene_id.data(), gene_id.data() + gene_id.size(), entrez_id);
            if (error != std::errc() || end != gene_id.data() + gene_id.size()) {
              throw InputError(fmt::format("org.*.eg.db database {}: genes.gene_id '{}' is not an Entrez id", org_db_path, gene_id));
            }
            std::string go_id = column_text(row, 1);
            if (!filter.keep(go_id, column_text(row, 2))) return;
            links[entrez_id][aspect].insert(std::move(go_id));
          });
  }
  return finish(links, term_names, filter.dropped,
                fmt::format("{} + {}", std::filesystem::path(org_db_path).filename().string(),
                            std::filesystem::path(go_db_path).filename().string()));
}

GoAnnotations load_go_tsv(const std::string& gene2go_path, const std::string& go_terms_path, const GoLoadOptions& options) {
  std::unordered_map<std::string, std::string> term_names;
  {
    const std::string text = read_whole_file(go_terms_path, "GO terms file");
    std::size_t id_column = 0;
    std::size_t term_column = 0;
    for_each_tsv_line(
        text, go_terms_path, "GO terms file",
        [&](const std::vector<std::string_view>& header) {
          id_column = require_column(header, "go_id", go_terms_path, "GO terms file");
          term_column = require_column(header, "term", go_terms_path, "GO terms file");
        },
        [&](const std::vector<std::string_view>& fields, std::size_t) {
          term_names.emplace(std::string(fields[id_column]), std::string(fields[term_column]));
        });
  }
  const std::string text = read_whole_file(gene2go_path, "gene-to-GO file");
  std::size_t entrez_column = 0;
  std::size_t go_column = 0;
  std::size_t ontology_column = 0;
  std::size_t evidence_column = 0;
  bool has_evidence = false;
  const auto on_header = [&](const std::vector<std::string_view>& header) {
    entrez_column = require_column(header, "entrez_id", gene2go_path, "gene-to-GO file");
    go_column = require_column(header, "go_id", gene2go_path, "gene-to-GO file");
    ontology_column = require_column(header, "ontology", gene2go_path, "gene-to-GO file");
    const auto evidence_position = std::find(header.begin(), header.end(), "evidence");
    has_evidence = evidence_position != header.end();
    if (has_evidence) evidence_column = static_cast<std::size_t>(evidence_position - header.begin());
  };
  RawLinks links;
  LinkFilter filter{options};
  for_each_tsv_line(text, gene2go_path, "gene-to-GO file", on_header, [&](const std::vector<std::string_view>& fields, std::size_t line) {
    std::int64_t entrez_id = 0;
    const std::string_view entrez = fields[entrez_column];
    const auto [end, error] = std::from_chars(entrez.data(), entrez.data() + entrez.size(), entrez_id);
    if (error != std::errc() || end != entrez.data() + entrez.size() || entrez_id <= 0) {
      throw InputError(fmt::format("gene-to-GO file {}: line {}, column entrez_id: expected a positive integer, found '{}'",
                                   gene2go_path, line, entrez));
    }
    const std::string_view ontology = fields[ontology_column];
    std::size_t aspect = 0;
    if (ontology == "BP") aspect = 0;
    else if (ontology == "MF") aspect = 1;
    else if (ontology == "CC") aspect = 2;
    else {
      throw InputError(fmt::format("gene-to-GO file {}: line {}, column ontology: expected BP, MF or CC, found '{}'",
                                   gene2go_path, line, ontology));
    }
    const std::string_view evidence = has_evidence ? fields[evidence_column] : std::string_view();
    if (!filter.keep(fields[go_column], evidence)) return;
    links[entrez_id][aspect].emplace(fields[go_column]);
  });
  return finish(links, term_names, filter.dropped,
                fmt::format("{} + {}", std::filesystem::path(gene2go_path).filename().string(),
                            std::filesystem::path(go_terms_path).filename().string()));
}

}  // namespace celltyper
