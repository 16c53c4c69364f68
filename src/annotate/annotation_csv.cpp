// The per-cell CSV of `celltyper annotate --csv` (annotation_csv.hpp).
#include <celltyper/annotation_csv.hpp>

#include <fmt/format.h>

#include <cmath>

namespace celltyper {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

// The columns of the annotated .h5ad (annotation_obs_columns), in its order. Missing values are
// NA and booleans TRUE / FALSE: what R's read.csv (for Seurat's AddMetaData) and pandas'
// read_csv both read as missing values and logicals.
void write_annotation_csv(const Annotation& annotation, std::ostream& out) {
  const std::vector<Column> columns = annotation_obs_columns(annotation);
  out << "obs_name";
  for (const Column& column : columns) out << ',' << column.name;
  out << '\n';
  for (std::size_t i = 0; i < annotation.obs_names.size(); ++i) {
    out << csv_field(annotation.obs_names[i]);
    for (const Column& column : columns) {
      out << ',';
      if (column.is_missing(i)) {
        out << "NA";
      } else if (column.kind == ColumnKind::kFloat) {
        out << fmt::format("{:.6g}", column.numbers[i]);
      } else if (column.kind == ColumnKind::kBool) {
        out << (column.booleans[i] != 0 ? "TRUE" : "FALSE");
      } else {
        out << csv_field(column.value_as_string(i));
      }
    }
    out << '\n';
  }
}

}  // namespace celltyper
