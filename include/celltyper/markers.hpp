// Marker genes of a model's cell types, from the reference cells it keeps: what a biologist
// checks a label against (a dot plot of each type's top genes on the query), as CellTypist's
// `extract_top_markers` and scanpy's `rank_genes_groups` give them.
#pragma once

#include <celltyper/model_file.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace celltyper {

/// One gene of a type: its mean log1p(CP10k) expression and the share of cells expressing it, in
/// the type's sampled cells and in the other types' (the mean over those types, each type counting
/// once, so that a large type does not set "elsewhere").
struct MarkerGene {
  std::string symbol;
  std::int64_t entrez_id = 0;
  double mean = 0;
  double mean_elsewhere = 0;
  double fraction = 0;
  double fraction_elsewhere = 0;
};

/// A model class's markers, best first.
struct ClassMarkers {
  std::string name;
  std::string cl_id;
  std::int64_t n_cells = 0;  ///< the class's cells in the model's reference sample
  std::vector<MarkerGene> genes;
};

/// The `n` genes of each class of `model` whose mean log1p(CP10k) in the class's reference cells
/// exceeds their mean in the other classes by most (one-vs-rest log fold change; fewer when fewer
/// are higher in the class), among genes that at least a fifth of the class's cells express; a
/// gene is judged on the cells whose reference measured it (pooled references with different
/// panels). Logged values are un-logged and normalised again over each cell's library (values of
/// an unknown log are averaged as stored). Classes in `model.class_names` order; a class without
/// sampled cells (only coarse labels below it) has no genes. Throws InputError when the model
/// carries no reference sample (--reference-sample 0, references normalised differently).
std::vector<ClassMarkers> class_markers(const CellTypeModel& model, std::size_t n);

/// `markers` as JSON: [{class, cl_id, n_cells, genes: [{symbol, entrez_id, mean, ...}]}].
nlohmann::json markers_to_json(const std::vector<ClassMarkers>& markers);

}  // namespace celltyper
