#include "corpus/duckdb_util.hpp"

#include <celltyper/error.hpp>

#include <fmt/format.h>

#include <string_view>

namespace celltyper::corpus::detail {

namespace {

/// DuckDB's error text on one line (an error is one line on stderr): its lines joined with "; ",
/// less the echo of the query ("LINE 1: SELECT ...") and the caret line under it.
std::string one_line(std::string_view message) {
  std::string out;
  while (!message.empty()) {
    const auto end = message.find('\n');
    std::string_view line = message.substr(0, end);
    message = end == std::string_view::npos ? std::string_view() : message.substr(end + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty() || line.starts_with("LINE ") || line.find_first_not_of("^ ") == std::string_view::npos) continue;
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

}  // namespace

const DuckDbApi& duckdb_api() {
  // The library unpacked by scripts/fetch_duckdb.sh (path fixed at configure time), else the
  // loader's search path (rpath, LD_LIBRARY_PATH).
  static const DuckDbApi api = CELLTYPER_LOAD_DYNAMIC_API(DuckDbApi, CELLTYPER_DUCKDB_FUNCTIONS, "DuckDB (the catalogue's database, libduckdb.so)",
                                                          "run scripts/fetch_duckdb.sh", CELLTYPER_DUCKDB_LIBRARY, "libduckdb.so");
  return api;
}

std::string sql_literal(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    out.push_back(c);
    if (c == '\'') out.push_back('\'');
  }
  return out + "'";
}

DuckDb::DuckDb(int threads) {
  duckdb_config config = nullptr;
  if (duckdb_api().duckdb_create_config(&config) != DuckDBSuccess) throw IoError("DuckDB: cannot create a configuration");
  if (threads > 0) duckdb_api().duckdb_set_config(config, "threads", std::to_string(threads).c_str());
  char* error = nullptr;
  const duckdb_state state = duckdb_api().duckdb_open_ext(nullptr, &database_, config, &error);
  duckdb_api().duckdb_destroy_config(&config);
  if (state != DuckDBSuccess) {
    const std::string message = error != nullptr ? error : "unknown error";
    duckdb_api().duckdb_free(error);
    throw IoError(fmt::format("DuckDB: cannot open an in-memory database: {}", message));
  }
  if (duckdb_api().duckdb_connect(database_, &connection_) != DuckDBSuccess) {
    duckdb_api().duckdb_close(&database_);
    throw IoError("DuckDB: cannot connect");
  }
}

DuckDb::~DuckDb() {
  if (connection_ != nullptr) duckdb_api().duckdb_disconnect(&connection_);
  if (database_ != nullptr) duckdb_api().duckdb_close(&database_);
}

void DuckDb::execute(const std::string& sql, const std::string& what) {
  std::string error;
  auto result = try_query(sql, error);
  if (!result) throw IoError(fmt::format("{}: {}", what, error));
  duckdb_api().duckdb_destroy_result(&*result);
}

std::optional<duckdb_result> DuckDb::try_query(const std::string& sql, std::string& error) {
  duckdb_result result;
  if (duckdb_api().duckdb_query(connection_, sql.c_str(), &result) != DuckDBSuccess) {
    const char* message = duckdb_api().duckdb_result_error(&result);
    error = message != nullptr ? one_line(message) : "unknown DuckDB error";
    duckdb_api().duckdb_destroy_result(&result);
    return std::nullopt;
  }
  return result;
}

Appender::Appender(DuckDb& db, const std::string& table) : table_(table) {
  if (duckdb_api().duckdb_appender_create(db.connection(), nullptr, table.c_str(), &appender_) != DuckDBSuccess) {
    const std::string message = appender_ != nullptr && duckdb_api().duckdb_appender_error(appender_) != nullptr ? duckdb_api().duckdb_appender_error(appender_) : "";
    duckdb_api().duckdb_appender_destroy(&appender_);
    throw IoError(fmt::format("DuckDB: cannot append to table {}: {}", table, message));
  }
}

Appender::~Appender() {
  if (appender_ != nullptr) duckdb_api().duckdb_appender_destroy(&appender_);
}

void Appender::check(duckdb_state state, const char* what) {
  if (state != DuckDBSuccess) {
    const char* message = duckdb_api().duckdb_appender_error(appender_);
    throw IoError(fmt::format("DuckDB: {} into table {} failed: {}", what, table_, message != nullptr ? message : "unknown error"));
  }
}

Appender& Appender::text(const std::string& value) {
  check(duckdb_api().duckdb_append_varchar_length(appender_, value.data(), value.size()), "append text");
  return *this;
}
Appender& Appender::text_or_null(const std::optional<std::string>& value) { return value ? text(*value) : null(); }
Appender& Appender::integer(std::int64_t value) {
  check(duckdb_api().duckdb_append_int64(appender_, value), "append integer");
  return *this;
}
Appender& Appender::real(double value) {
  check(duckdb_api().duckdb_append_double(appender_, value), "append double");
  return *this;
}
Appender& Appender::boolean(bool value) {
  check(duckdb_api().duckdb_append_bool(appender_, value), "append boolean");
  return *this;
}
Appender& Appender::null() {
  check(duckdb_api().duckdb_append_null(appender_), "append NULL");
  return *this;
}

namespace {
/// Build a LIST value from element values (taking ownership of them) and append it.
duckdb_state append_list(duckdb_appender appender, duckdb_type element_type, std::vector<duckdb_value>& values) {
  duckdb_logical_type type = duckdb_api().duckdb_create_logical_type(element_type);
  duckdb_value none = nullptr;  // DuckDB refuses a null array even for an empty list
  duckdb_value list = duckdb_api().duckdb_create_list_value(type, values.empty() ? &none : values.data(), values.size());
  const duckdb_state state = list != nullptr ? duckdb_api().duckdb_append_value(appender, list) : DuckDBError;
  duckdb_api().duckdb_destroy_value(&list);
  for (auto& value : values) duckdb_api().duckdb_destroy_value(&value);
  duckdb_api().duckdb_destroy_logical_type(&type);
  return state;
}
}  // namespace

Appender& Appender::text_list(const std::vector<std::string>& values) {
  std::vector<duckdb_value> items;
  for (const auto& value : values) items.push_back(duckdb_api().duckdb_create_varchar_length(value.data(), value.size()));
  check(append_list(appender_, DUCKDB_TYPE_VARCHAR, items), "append text list");
  return *this;
}
Appender& Appender::integer_list(const std::vector<std::int64_t>& values) {
  std::vector<duckdb_value> items;
  for (const auto value : values) items.push_back(duckdb_api().duckdb_create_int64(value));
  check(append_list(appender_, DUCKDB_TYPE_BIGINT, items), "append integer list");
  return *this;
}
Appender& Appender::real_list(const std::vector<double>& values) {
  std::vector<duckdb_value> items;
  for (const auto value : values) items.push_back(duckdb_api().duckdb_create_double(value));
  check(append_list(appender_, DUCKDB_TYPE_DOUBLE, items), "append double list");
  return *this;
}

void Appender::end_row() { check(duckdb_api().duckdb_appender_end_row(appender_), "end row"); }

void Appender::close() {
  if (appender_ == nullptr) return;
  const duckdb_state state = duckdb_api().duckdb_appender_close(appender_);
  check(state, "flush");
  duckdb_api().duckdb_appender_destroy(&appender_);
}

}  // namespace celltyper::corpus::detail
