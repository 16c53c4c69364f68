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

namespace {

std::string number_or_na(float value) { return std::isnan(value) ? std::string("NA") : fmt::format("{:.6g}", value); }

}  // namespace

// Missing values are NA and booleans TRUE / FALSE: what R's read.csv (for Seurat's AddMetaData)
// and pandas' read_csv both read as missing values and logicals.
void write_annotation_csv(const Annotation& annotation, std::ostream& out) {
  out << "obs_name,celltyper_label,celltyper_score,celltyper_ontology_id";
  for (std::size_t k = 0; k < annotation.top_labels.size(); ++k) out << fmt::format(",celltyper_top{0}_label,celltyper_top{0}_score", k + 1);
  if (annotation.has_majority_vote) out << ",celltyper_majority_vote";
  // the columns of the annotated .h5ad, in its order
  if (annotation.has_flat_labels) out << ",celltyper_flat_label";
  const bool coverage = annotation.gene_coverage.size() == annotation.labels.size();
  if (coverage) out << ",celltyper_gene_coverage";
  const bool similarity = annotation.has_similarity;
  if (similarity) out << ",celltyper_similarity,celltyper_unlike_reference";
  out << '\n';
  for (std::size_t i = 0; i < annotation.labels.size(); ++i) {
    out << csv_field(annotation.obs_names[i]) << ',' << csv_field(annotation.labels[i]) << ',' << fmt::format("{:.6g}", annotation.scores[i])
        << ',' << (annotation.cl_ids[i].empty() ? std::string("NA") : annotation.cl_ids[i]);
    for (std::size_t k = 0; k < annotation.top_labels.size(); ++k) {
      out << ',' << csv_field(annotation.top_labels[k][i]) << ',' << fmt::format("{:.6g}", annotation.top_scores[k][i]);
    }
    if (annotation.has_majority_vote) out << ',' << csv_field(annotation.majority_vote[i]);
    if (annotation.has_flat_labels) out << ',' << csv_field(annotation.flat_labels[i]);
    if (coverage) out << ',' << number_or_na(annotation.gene_coverage[i]);
    if (similarity) {
      out << ',' << number_or_na(annotation.similarity[i]) << ',' << (annotation.unlike_reference[i] != 0 ? "TRUE" : "FALSE");
    }
    out << '\n';
  }
}

}  // namespace celltyper
