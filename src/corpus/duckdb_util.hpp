/// Internal: a thin RAII layer over DuckDB's C API (duckdb.h) for the metadata catalogue:
/// an in-memory database, statements that throw on failure, and an appender for typed rows
/// (scalars and lists).
#pragma once

#include <duckdb.h>

#include "io/dynamic_api.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace celltyper::corpus::detail {

/// DuckDB's C API functions the catalogue uses, loaded on first use (dynamic_api.hpp says why).
#define CELLTYPER_DUCKDB_FUNCTIONS(X) \
  X(duckdb_append_bool) X(duckdb_append_double) X(duckdb_append_int64) X(duckdb_append_null) X(duckdb_append_value) \
  X(duckdb_append_varchar_length) X(duckdb_appender_close) X(duckdb_appender_create) X(duckdb_appender_destroy) \
  X(duckdb_appender_end_row) X(duckdb_appender_error) X(duckdb_close) X(duckdb_column_count) \
  X(duckdb_column_logical_type) X(duckdb_column_name) X(duckdb_connect) X(duckdb_create_config) \
  X(duckdb_create_double) X(duckdb_create_int64) X(duckdb_create_list_value) X(duckdb_create_logical_type) \
  X(duckdb_create_varchar_length) X(duckdb_destroy_config) X(duckdb_destroy_logical_type) X(duckdb_destroy_result) \
  X(duckdb_destroy_value) X(duckdb_disconnect) X(duckdb_free) X(duckdb_get_type_id) X(duckdb_logical_type_get_alias) \
  X(duckdb_open_ext) X(duckdb_query) X(duckdb_result_error) X(duckdb_row_count) X(duckdb_set_config) \
  X(duckdb_value_boolean) X(duckdb_value_int64) X(duckdb_value_is_null) X(duckdb_value_varchar)

struct DuckDbApi {
  CELLTYPER_DUCKDB_FUNCTIONS(CELLTYPER_DYNAMIC_POINTER)
};

/// The loaded API (once per process); UnsupportedError saying how to get DuckDB when
/// libduckdb.so cannot be loaded.
const DuckDbApi& duckdb_api();

/// SQL string literal: 'text' with quotes doubled.
std::string sql_literal(const std::string& text);

/// An in-memory DuckDB database with one connection.
class DuckDb {
 public:
  /// `threads`: DuckDB's worker threads (0 = DuckDB's default).
  explicit DuckDb(int threads = 1);
  ~DuckDb();
  DuckDb(const DuckDb&) = delete;
  DuckDb& operator=(const DuckDb&) = delete;

  /// Run `sql`, discarding any result; throws IoError with DuckDB's message (`what` names the
  /// action for the message).
  void execute(const std::string& sql, const std::string& what);
  /// Run `sql` and return its result (caller destroys it with duckdb_destroy_result), or the
  /// error message in `error` (and nullopt).
  std::optional<duckdb_result> try_query(const std::string& sql, std::string& error);
  [[nodiscard]] duckdb_connection connection() const { return connection_; }

 private:
  duckdb_database database_ = nullptr;
  duckdb_connection connection_ = nullptr;
};

/// Appends rows to one table; values are given column by column, then `end_row()`.
class Appender {
 public:
  Appender(DuckDb& db, const std::string& table);
  ~Appender();
  Appender(const Appender&) = delete;
  Appender& operator=(const Appender&) = delete;

  Appender& text(const std::string& value);
  Appender& text_or_null(const std::optional<std::string>& value);
  Appender& integer(std::int64_t value);
  Appender& real(double value);
  Appender& boolean(bool value);
  Appender& null();
  Appender& text_list(const std::vector<std::string>& values);
  Appender& integer_list(const std::vector<std::int64_t>& values);
  Appender& real_list(const std::vector<double>& values);
  void end_row();
  /// Flush the rows to the table (also done by the destructor).
  void close();

 private:
  void check(duckdb_state state, const char* what);
  duckdb_appender appender_ = nullptr;
  std::string table_;
};

}  // namespace celltyper::corpus::detail
