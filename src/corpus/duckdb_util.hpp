/// Internal: a thin RAII layer over DuckDB's C API (duckdb.h) for the metadata catalogue:
/// an in-memory database, statements that throw on failure, and an appender for typed rows
/// (scalars and lists).
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace celltyper::corpus::detail {

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
