/// Column references on the command line: every flag naming an obs column takes "obs:COLUMN"
/// (or a bare "COLUMN").
#pragma once

#include <celltyper/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <string>

namespace celltyper::cli {

/// "obs:COL" or "COL" -> "COL"; any other "PREFIX:..." is refused naming `flag`.
inline std::string obs_column(const std::string& text, const char* flag) {
  if (text.rfind("obs:", 0) == 0) return text.substr(4);
  if (text.find(':') != std::string::npos) throw InputError(fmt::format("{} {}: only obs columns are supported (obs:COLUMN)", flag, text));
  return text;
}

/// The label flag: one obs column, or several separated by commas for references labelled in
/// differently named columns ("obs:celltype,obs:bulk_labels" -> "celltype,bulk_labels", each
/// reference reading the first it has: label_column_of).
inline std::string obs_columns(const std::string& text, const char* flag) {
  // (a column named with a comma and a colon, "obs:Cell type, level: 2", is one column)
  if (text.rfind("obs:", 0) == 0 && text.find(",obs:") == std::string::npos && text.find(':', 4) != std::string::npos) {
    return obs_column(text, flag);
  }
  std::string columns;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const std::size_t end = std::min(text.find(',', begin), text.size());
    const std::string column = obs_column(text.substr(begin, end - begin), flag);
    if (!column.empty()) columns += (columns.empty() ? "" : ",") + column;
    begin = end + 1;
  }
  return columns;
}

}  // namespace celltyper::cli
