#include <celltyper/dataframe.hpp>
#include <celltyper/error.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <unordered_map>

namespace celltyper {

const char* to_string(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::kString: return "string";
    case ColumnKind::kCategorical: return "categorical";
    case ColumnKind::kFloat: return "float";
    case ColumnKind::kInt: return "int";
    case ColumnKind::kBool: return "bool";
    case ColumnKind::kNullableInt: return "nullable-int";
    case ColumnKind::kNullableBool: return "nullable-bool";
  }
  return "unknown";
}

std::size_t Column::size() const {
  switch (kind) {
    case ColumnKind::kString: return strings.size();
    case ColumnKind::kCategorical: return codes.size();
    case ColumnKind::kFloat: return numbers.size();
    case ColumnKind::kInt:
    case ColumnKind::kNullableInt: return integers.size();
    case ColumnKind::kBool:
    case ColumnKind::kNullableBool: return booleans.size();
  }
  return 0;
}

bool Column::is_missing(std::size_t row) const {
  switch (kind) {
    case ColumnKind::kCategorical: return codes[row] < 0;
    case ColumnKind::kFloat: return std::isnan(numbers[row]);
    default: return !mask.empty() && mask[row] != 0;  // nullable kinds (and strings from nullable-string-array)
  }
}

std::string Column::value_as_string(std::size_t row) const {
  if (is_missing(row)) return {};
  switch (kind) {
    case ColumnKind::kString: return strings[row];
    case ColumnKind::kCategorical: return categories[static_cast<std::size_t>(codes[row])];
    case ColumnKind::kFloat: return fmt::format("{}", numbers[row]);
    case ColumnKind::kInt:
    case ColumnKind::kNullableInt: return fmt::format("{}", integers[row]);
    case ColumnKind::kBool:
    case ColumnKind::kNullableBool: return booleans[row] ? "True" : "False";
  }
  return {};
}

Column Column::categorical(std::string name, const std::vector<std::string>& labels, bool sorted_categories) {
  Column column;
  column.name = std::move(name);
  column.kind = ColumnKind::kCategorical;
  column.dtype = "category";
  column.categories_dtype = "str";
  std::unordered_map<std::string, std::int32_t> code_of;
  for (const auto& label : labels) {
    if (code_of.emplace(label, static_cast<std::int32_t>(column.categories.size())).second) {
      column.categories.push_back(label);
    }
  }
  if (sorted_categories) {
    std::sort(column.categories.begin(), column.categories.end());
    for (std::size_t i = 0; i < column.categories.size(); ++i) code_of[column.categories[i]] = static_cast<std::int32_t>(i);
  }
  column.codes.reserve(labels.size());
  for (const auto& label : labels) column.codes.push_back(code_of[label]);
  return column;
}

Column Column::categorical_or_missing(std::string name, const std::vector<std::string>& labels) {
  Column column = categorical(std::move(name), labels);
  const auto empty = std::find(column.categories.begin(), column.categories.end(), std::string());
  if (empty == column.categories.end()) return column;
  const auto code = static_cast<std::int32_t>(empty - column.categories.begin());
  column.categories.erase(empty);
  for (auto& value : column.codes) value = value == code ? -1 : (value > code ? value - 1 : value);
  return column;
}

Column Column::from_strings(std::string name, std::vector<std::string> values) {
  Column column;
  column.name = std::move(name);
  column.kind = ColumnKind::kString;
  column.dtype = "str";
  column.strings = std::move(values);
  return column;
}

Column Column::from_floats(std::string name, std::vector<double> values, std::string dtype) {
  Column column;
  column.name = std::move(name);
  column.kind = ColumnKind::kFloat;
  column.dtype = std::move(dtype);
  column.numbers = std::move(values);
  return column;
}

Column Column::from_ints(std::string name, std::vector<std::int64_t> values, std::string dtype) {
  Column column;
  column.name = std::move(name);
  column.kind = ColumnKind::kInt;
  column.dtype = std::move(dtype);
  column.integers = std::move(values);
  return column;
}

Column Column::from_bools(std::string name, std::vector<std::uint8_t> values) {
  Column column;
  column.name = std::move(name);
  column.kind = ColumnKind::kBool;
  column.dtype = "bool";
  column.booleans = std::move(values);
  return column;
}

const Column* DataFrame::find(const std::string& name) const {
  for (const auto& column : columns) {
    if (column.name == name) return &column;
  }
  return nullptr;
}

Column* DataFrame::find(const std::string& name) {
  for (auto& column : columns) {
    if (column.name == name) return &column;
  }
  return nullptr;
}

const Column& DataFrame::at(const std::string& name, const std::string& what) const {
  if (const Column* column = find(name)) return *column;
  std::vector<std::string> names;
  for (const auto& column : columns) names.push_back(column.name);
  throw InputError(fmt::format("{}: no column '{}' (available: {})", what, name,
                               names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", "))));
}

void DataFrame::set(Column column) {
  if (Column* existing = find(column.name)) {
    *existing = std::move(column);
  } else {
    columns.push_back(std::move(column));
  }
}

std::string_view without_surrounding_spaces(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.remove_suffix(1);
  return text;
}

bool is_missing_text(std::string_view text) {
  text = without_surrounding_spaces(text);
  for (const std::string_view missing : {"", "nan", "NaN", "NA", "<NA>", "None", "null", "N/A", "n/a", "NULL", "#N/A", "#N/A N/A", "#NA", "-NaN", "-nan",
                                         "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN"}) {
    if (text == missing) return true;
  }
  return false;
}

bool is_missing_label(std::string_view label) {
  if (is_missing_text(label)) return true;
  label = without_surrounding_spaces(label);
  // CELLxGENE's cell_type (and its _ontology_term_id) for a cell its authors did not type, and
  // the "Unknown" cluster of many an annotation: no label to learn or score, not a class.
  constexpr std::string_view kUnknown = "unknown";
  return label.size() == kUnknown.size() &&
         std::equal(label.begin(), label.end(), kUnknown.begin(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

bool is_unlabelled(std::string_view label) {
  if (is_missing_label(label)) return true;
  label = without_surrounding_spaces(label);
  constexpr std::string_view kUnassigned = "unassigned";
  return label.size() == kUnassigned.size() && std::equal(label.begin(), label.end(), kUnassigned.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

std::string group_value(const Column& column, std::size_t row) {
  if (column.is_missing(row)) return std::string(kMissingGroup);
  std::string value = column.value_as_string(row);
  return is_missing_label(value) ? std::string(kMissingGroup) : value;
}

}  // namespace celltyper
