/// @file dataframe.hpp
/// In-memory form of AnnData's `obs` / `var` data frames: an index of row names and named,
/// typed columns in on-disk column order. Categoricals keep their integer codes (-1 = missing),
/// as anndata does, so that large obs tables stay small.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace celltyper {

/// What a column holds.
enum class ColumnKind {
  kString,        ///< `strings`
  kCategorical,   ///< `codes` into `categories`; code -1 = missing (NaN in pandas)
  kFloat,         ///< `numbers` (NaN = missing)
  kInt,           ///< `integers`
  kBool,          ///< `booleans` (0/1)
  kNullableInt,   ///< `integers` + `mask` (mask 1 = missing): pandas `Int64` etc.
  kNullableBool,  ///< `booleans` + `mask`: pandas `boolean`
};

/// Name of a kind for messages and JSON ("string", "categorical", ...).
const char* to_string(ColumnKind kind);

/// One typed column. Only the vectors of its kind are filled.
struct Column {
  std::string name;
  ColumnKind kind = ColumnKind::kString;
  std::string dtype;                     ///< on-disk element type, e.g. "float32", "int64", "str"
  std::vector<std::string> strings;      ///< kString
  std::vector<std::int32_t> codes;       ///< kCategorical
  std::vector<std::string> categories;   ///< kCategorical: category values as text
  std::string categories_dtype;          ///< kCategorical: on-disk type of the categories
  bool ordered = false;                  ///< kCategorical: pandas `ordered`
  std::vector<double> numbers;           ///< kFloat
  std::vector<std::int64_t> integers;    ///< kInt, kNullableInt
  std::vector<std::uint8_t> booleans;    ///< kBool, kNullableBool
  std::vector<std::uint8_t> mask;        ///< kNullable* (and kString from nullable-string-array): 1 = missing

  /// Number of rows.
  [[nodiscard]] std::size_t size() const;
  /// Whether row `row` is missing (NaN float, code -1, masked).
  [[nodiscard]] bool is_missing(std::size_t row) const;
  /// The value of row `row` as text ("" when missing; "True"/"False" for booleans).
  [[nodiscard]] std::string value_as_string(std::size_t row) const;

  /// Build a categorical column from per-row labels; categories in first-seen order unless
  /// `sorted_categories` (pandas' default for `astype("category")` is sorted).
  static Column categorical(std::string name, const std::vector<std::string>& labels,
                            bool sorted_categories = true);
  /// categorical() in which rows labelled "" are missing values (code -1, NaN in pandas), not
  /// the category "": a cell without an id, a label or a kept value.
  static Column categorical_or_missing(std::string name, const std::vector<std::string>& labels);
  static Column from_strings(std::string name, std::vector<std::string> values);
  static Column from_floats(std::string name, std::vector<double> values, std::string dtype = "float64");
  static Column from_ints(std::string name, std::vector<std::int64_t> values, std::string dtype = "int64");
  static Column from_bools(std::string name, std::vector<std::uint8_t> values);
};

/// A label that spells a missing value: "" and the text pandas, R and SQL write for one ("nan",
/// "NaN", "NA", "<NA>", "None", "null"), and "unknown" in any letter case (CELLxGENE's cell_type
/// of a cell its authors did not type), surrounding spaces ignored. Such cells have no label
/// (train, cv, evaluate, corpus selection and extract).
bool is_missing_label(std::string_view label);

/// A reference cell without a type to learn: a missing label, or "Unassigned" in any letter case (what celltyper
/// and CellTypist write for a cell below their score threshold), so that an annotated file can
/// be a reference (train, cv, corpus selection and extract).
bool is_unlabelled(std::string_view label);

/// `text` without leading and trailing white space.
std::string_view without_surrounding_spaces(std::string_view text);

/// The text pandas, R and SQL write for a missing value ("", "nan", "NA", "<NA>", "None", "null"),
/// and the rest of what pandas' read_csv reads as one by default ("N/A", "n/a", "NULL", "#N/A", ...),
/// surrounding spaces ignored: missing in any metadata column (a text table's obs). Unlike
/// is_missing_label, "unknown" is a value here (a sex, a disease, a cluster named so).
bool is_missing_text(std::string_view text);

/// The group a cell of a group column (donor, batch, sample) belongs to: its value as text, or
/// kMissingGroup when the value is missing (is_missing_label's spellings included), so that such
/// cells form one group named as such, not a group called "" (cv, train --group, evaluate --group).
inline constexpr std::string_view kMissingGroup = "(missing)";
std::string group_value(const Column& column, std::size_t row);

/// A data frame: row names (`index`) and columns in order.
struct DataFrame {
  std::string index_name = "_index";   ///< name of the index column on disk
  std::string origin;                  ///< where it was read from, for messages ("FILE:/var"); "" = built in memory
  std::vector<std::string> index;      ///< row names (obs_names / var_names)
  std::vector<Column> columns;         ///< columns in `column-order`

  [[nodiscard]] std::size_t n_rows() const { return index.size(); }
  /// The column called `name`, or nullptr.
  [[nodiscard]] const Column* find(const std::string& name) const;
  [[nodiscard]] Column* find(const std::string& name);
  /// The column called `name`; throws InputError naming `what` (e.g. "obs of pbmc.h5ad") and
  /// the available columns when absent.
  [[nodiscard]] const Column& at(const std::string& name, const std::string& what) const;
  /// Add `column`, replacing a column of the same name (keeping its position).
  void set(Column column);
};

}  // namespace celltyper
