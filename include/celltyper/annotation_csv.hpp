/// @file annotation_csv.hpp
/// The per-cell CSV of `celltyper annotate --csv`: obs_name, then the obs columns of the annotated
/// .h5ad in their order (annotation_obs_columns: celltyper_label, celltyper_score, the ontology id,
/// top-k pairs, majority vote, flat label, gene coverage, celltyper_similarity,
/// celltyper_unlike_reference, celltyper_similarity_judged, each when present). RFC 4180 quoting;
/// scores with 6 significant digits.
#pragma once

#include <celltyper/annotate.hpp>

#include <ostream>
#include <string>

namespace celltyper {

/// `text` as one CSV field (quoted when it holds a comma, quote or line break).
std::string csv_field(const std::string& text);

/// Write `annotation` as CSV to `out` (header line first).
void write_annotation_csv(const Annotation& annotation, std::ostream& out);

}  // namespace celltyper
