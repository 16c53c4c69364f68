/// @file annotation_csv.hpp
/// The per-cell CSV of `celltyper annotate --csv`: obs_name, celltyper_label, celltyper_score,
/// celltyper_ontology_id, then celltyper_topK_label/score pairs (--top-k) and
/// celltyper_majority_vote (--over-clustering) when present. RFC 4180 quoting; scores with 6
/// significant digits.
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
