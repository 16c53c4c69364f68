// query_catalog: DuckDB views over the catalogue's Parquet parts, and result formatting.
#include <celltyper/catalog.hpp>
#include <celltyper/error.hpp>

#include "corpus/duckdb_util.hpp"
#include "io/utf8.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace celltyper {

namespace fs = std::filesystem;
using corpus::detail::DuckDb;
using corpus::detail::duckdb_api;
using corpus::detail::sql_literal;

namespace {

bool has_parts(const fs::path& dir) {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("part-", 0) == 0 && entry.path().extension() == ".parquet") return true;
  }
  return false;
}

std::string type_name(duckdb_result& result, idx_t column) {
  duckdb_logical_type type = duckdb_api().duckdb_column_logical_type(&result, column);
  char* text = duckdb_api().duckdb_logical_type_get_alias(type);
  std::string name;
  if (text != nullptr) {
    name = text;
    duckdb_api().duckdb_free(text);
  } else {
    switch (duckdb_api().duckdb_get_type_id(type)) {
      case DUCKDB_TYPE_BOOLEAN: name = "BOOLEAN"; break;
      case DUCKDB_TYPE_TINYINT: name = "TINYINT"; break;
      case DUCKDB_TYPE_SMALLINT: name = "SMALLINT"; break;
      case DUCKDB_TYPE_INTEGER: name = "INTEGER"; break;
      case DUCKDB_TYPE_BIGINT: name = "BIGINT"; break;
      case DUCKDB_TYPE_HUGEINT: name = "HUGEINT"; break;
      case DUCKDB_TYPE_UTINYINT: name = "UTINYINT"; break;
      case DUCKDB_TYPE_USMALLINT: name = "USMALLINT"; break;
      case DUCKDB_TYPE_UINTEGER: name = "UINTEGER"; break;
      case DUCKDB_TYPE_UBIGINT: name = "UBIGINT"; break;
      case DUCKDB_TYPE_FLOAT: name = "FLOAT"; break;
      case DUCKDB_TYPE_DOUBLE: name = "DOUBLE"; break;
      case DUCKDB_TYPE_DECIMAL: name = "DECIMAL"; break;
      case DUCKDB_TYPE_VARCHAR: name = "VARCHAR"; break;
      case DUCKDB_TYPE_LIST: name = "LIST"; break;
      case DUCKDB_TYPE_STRUCT: name = "STRUCT"; break;
      case DUCKDB_TYPE_MAP: name = "MAP"; break;
      default: name = "OTHER"; break;
    }
  }
  duckdb_api().duckdb_destroy_logical_type(&type);
  return name;
}

/// Every value of `result` as text (the query wrapped so that DuckDB does the casting).
QueryResult collect(duckdb_result& typed, duckdb_result& text) {
  QueryResult out;
  const idx_t columns = duckdb_api().duckdb_column_count(&typed);
  for (idx_t c = 0; c < columns; ++c) {
    out.columns.emplace_back(duckdb_api().duckdb_column_name(&typed, c));
    out.types.push_back(type_name(typed, c));
  }
  const idx_t rows = duckdb_api().duckdb_row_count(&text);
  for (idx_t r = 0; r < rows; ++r) {
    std::vector<std::optional<std::string>> row;
    for (idx_t c = 0; c < columns; ++c) {
      if (duckdb_api().duckdb_value_is_null(&text, c, r)) {
        row.emplace_back(std::nullopt);
        continue;
      }
      char* value = duckdb_api().duckdb_value_varchar(&text, c, r);
      row.emplace_back(value != nullptr ? std::string(value) : std::string());
      duckdb_api().duckdb_free(value);
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

/// Whether `sql` holds a ';' between statements (outside quotes and comments): `query` shows one
/// result, so a second statement would be run unseen.
bool several_statements(const std::string& sql) {
  char quote = 0;  // ' or " while inside one
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      if (c == quote) quote = 0;  // ('' and "" escapes close and reopen: the same)
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      i = std::min(sql.find('\n', i), sql.size());
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      const std::size_t end = sql.find("*/", i + 2);
      i = end == std::string::npos ? sql.size() : end + 1;
    } else if (c == ';') {
      return true;
    }
  }
  return false;
}

std::string strip_statement(std::string sql) {
  while (!sql.empty() && (std::isspace(static_cast<unsigned char>(sql.back())) != 0 || sql.back() == ';')) sql.pop_back();
  return sql;
}

}  // namespace

bool QueryResult::is_numeric(std::size_t c) const {
  static const char* const kNumeric[] = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                                         "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL"};
  return c < types.size() && std::find(std::begin(kNumeric), std::end(kNumeric), types[c]) != std::end(kNumeric);
}

QueryResult query_catalog(const std::string& dir, const std::string& sql) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) throw InputError(fmt::format("{}: no such catalogue directory", dir));
  DuckDb db(0);
  for (const auto& t : catalog_schema()) {
    const fs::path parts = fs::path(dir) / t.name;
    std::string create;
    if (has_parts(parts)) {
      create = fmt::format("CREATE VIEW {} AS SELECT * FROM read_parquet({}, union_by_name = true)", t.name,
                           sql_literal((parts / "part-*.parquet").string()));
    } else {
      create = fmt::format("CREATE TABLE {} (", t.name);
      for (std::size_t i = 0; i < t.columns.size(); ++i) {
        create += fmt::format("{}\"{}\" {}", i == 0 ? "" : ", ", t.columns[i].name, t.columns[i].sql_type);
      }
      create += ")";
    }
    db.execute(create, fmt::format("cannot open table {} of the catalogue in {}", t.name, dir));
  }
  const std::string statement = strip_statement(sql);
  if (statement.empty()) throw InputError("empty SQL query");
  if (several_statements(statement)) throw InputError("one SQL statement at a time: query shows one result (run each statement on its own)");
  std::string message;
  // A query that yields rows is materialised once, then read back with every column cast to
  // text by DuckDB (lists and structs included); other statements (SHOW, DESCRIBE, PRAGMA)
  // are run as they are.
  if (auto created = db.try_query("CREATE TEMP TABLE celltyper_query_result AS " + statement, message)) {
    duckdb_api().duckdb_destroy_result(&*created);
    auto typed = db.try_query("SELECT * FROM celltyper_query_result LIMIT 0", message);
    if (!typed) throw IoError(fmt::format("DuckDB: cannot read the query result: {}", message));
    // Lists, structs and maps as JSON text (["a", "b, c"]: a name holding ", " stays one name),
    // every other column as DuckDB's text.
    std::string select;
    std::vector<bool> nested;
    for (idx_t c = 0; c < duckdb_api().duckdb_column_count(&*typed); ++c) {
      std::string name = duckdb_api().duckdb_column_name(&*typed, c);
      std::string quoted = "\"";
      for (const char ch : name) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      quoted += "\"";
      const std::string type = type_name(*typed, c);
      nested.push_back(type == "LIST" || type == "STRUCT" || type == "MAP");
      select += fmt::format("{}{}::VARCHAR", c == 0 ? "" : ", ", nested.back() ? "to_json(" + quoted + ")" : quoted);
    }
    auto text = db.try_query(fmt::format("SELECT {} FROM celltyper_query_result", select.empty() ? "*" : select), message);
    if (!text) throw IoError(fmt::format("DuckDB: cannot read the query result: {}", message));
    QueryResult out = collect(*typed, *text);
    out.json_text = std::move(nested);
    duckdb_api().duckdb_destroy_result(&*typed);
    duckdb_api().duckdb_destroy_result(&*text);
    return out;
  }
  auto plain = db.try_query(statement, message);
  if (!plain) throw InputError(fmt::format("SQL error: {}", message));
  QueryResult out = collect(*plain, *plain);
  duckdb_api().duckdb_destroy_result(&*plain);
  return out;
}

std::string format_query_table(const QueryResult& result) {
  const std::size_t columns = result.columns.size();
  std::vector<std::size_t> width(columns, 0);
  const auto shown = [](const std::optional<std::string>& value) { return value ? *value : std::string("NULL"); };
  // Width in characters (UTF-8 continuation bytes do not count).
  const auto display_width = [](const std::string& text) { return detail::utf8_code_points(text); };
  for (std::size_t c = 0; c < columns; ++c) width[c] = display_width(result.columns[c]);
  for (const auto& row : result.rows) {
    for (std::size_t c = 0; c < columns; ++c) width[c] = std::max(width[c], display_width(shown(row[c])));
  }
  std::string out;
  const auto cell = [&](const std::string& text, std::size_t c) {
    const std::string pad(width[c] - display_width(text), ' ');
    out += result.is_numeric(c) ? pad + text : text + pad;
    out += c + 1 < columns ? "  " : "";
  };
  for (std::size_t c = 0; c < columns; ++c) cell(result.columns[c], c);
  out += "\n";
  for (std::size_t c = 0; c < columns; ++c) {
    out += std::string(width[c], '-');
    out += c + 1 < columns ? "  " : "";
  }
  out += "\n";
  for (const auto& row : result.rows) {
    for (std::size_t c = 0; c < columns; ++c) cell(shown(row[c]), c);
    out += "\n";
  }
  out += fmt::format("({} row{})\n", result.rows.size(), result.rows.size() == 1 ? "" : "s");
  return out;
}

std::string format_query_csv(const QueryResult& result) {
  const auto field = [](const std::string& text) {
    if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
    std::string quoted = "\"";
    for (const char c : text) {
      quoted.push_back(c);
      if (c == '"') quoted.push_back('"');
    }
    return quoted + "\"";
  };
  std::string out;
  for (std::size_t c = 0; c < result.columns.size(); ++c) out += (c ? "," : "") + field(result.columns[c]);
  out += "\n";
  for (const auto& row : result.rows) {
    for (std::size_t c = 0; c < row.size(); ++c) out += (c ? "," : "") + (row[c] ? field(*row[c]) : std::string());
    out += "\n";
  }
  return out;
}

std::string format_query_json(const QueryResult& result) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : result.rows) {
    nlohmann::json object = nlohmann::json::object();
    for (std::size_t c = 0; c < row.size(); ++c) {
      const std::string& name = result.columns[c];
      if (!row[c]) {
        object[name] = nullptr;
      } else if (c < result.json_text.size() && result.json_text[c]) {
        object[name] = nlohmann::json::parse(*row[c], nullptr, /* allow_exceptions = */ false);
        if (object[name].is_discarded()) object[name] = *row[c];
      } else if (result.types[c] == "BOOLEAN") {
        object[name] = *row[c] == "true";
      } else if (result.is_numeric(c)) {
        const nlohmann::json number = nlohmann::json::parse(*row[c], nullptr, /* allow_exceptions = */ false);
        if (number.is_number()) {
          object[name] = number;
        } else {
          object[name] = *row[c];  // inf, nan
        }
      } else {
        object[name] = *row[c];
      }
    }
    out.push_back(std::move(object));
  }
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string sql_quote(const std::string& text) {
  std::string quoted = "'";
  for (const char c : text) {
    quoted += c;
    if (c == '\'') quoted += '\'';
  }
  return quoted + "'";
}

CatalogedFiles catalog_files_with_column(const std::string& dir, const std::string& column, const std::string& where) {
  const std::string ok = where.empty() ? "status = 'ok'" : fmt::format("status = 'ok' AND ({})", where);
  const QueryResult counts = query_catalog(dir, fmt::format("SELECT count(*) FROM files WHERE {}", ok));
  const QueryResult listed =
      query_catalog(dir, fmt::format("SELECT path FROM files WHERE {} AND list_contains(obs_columns, {}) ORDER BY path", ok, sql_quote(column)));
  CatalogedFiles files;
  files.n_ok = std::stoll(counts.rows.at(0).at(0).value_or("0"));
  for (const auto& row : listed.rows) {
    if (row.at(0)) files.paths.push_back(*row.at(0));
  }
  if (files.paths.empty()) {
    throw InputError(fmt::format("select: the catalogue {} has no successfully read file with obs column '{}'{}", dir, column,
                                 where.empty() ? "" : fmt::format(" where {}", where)));
  }
  return files;
}

}  // namespace celltyper
