// Marker genes of a model's classes from its reference sample (markers.hpp).
#include <celltyper/cell_embedder.hpp>
#include <celltyper/error.hpp>
#include <celltyper/markers.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace celltyper {

namespace {

/// A class's genes need this share of its cells expressing them to be its markers (scanpy's
/// filter_rank_genes_groups keeps min_in_group_fraction 0.25; a fifth keeps markers of types
/// sampled shallowly).
constexpr double kMinFraction = 0.2;

}  // namespace

std::vector<ClassMarkers> class_markers(const CellTypeModel& model, std::size_t n) {
  const ReferenceSample& sample = model.reference;
  if (sample.empty()) {
    throw InputError("the model keeps no reference cells (trained with --reference-sample 0, or from references normalised differently): "
                     "its types' marker genes cannot be told");
  }
  const CsrBlockF64& values = sample.cell_values();
  const std::size_t n_genes = sample.entrez_ids.size();
  const std::size_t n_classes = model.class_names.size();
  const Normalization stored = sample.normalization.empty() ? Normalization::kNone : parse_normalization(sample.normalization);
  // A cell's library: the model's library genes (every gene when it has none), as its features.
  const std::vector<std::int64_t>& library_genes = model.library_genes();
  std::vector<std::uint8_t> in_library(n_genes, 1);
  if (!library_genes.empty()) {
    for (std::size_t g = 0; g < n_genes; ++g) {
      in_library[g] = std::binary_search(library_genes.begin(), library_genes.end(), sample.entrez_ids[g]) ? 1 : 0;
    }
  }
  // Values on one scale, log1p(CP10k): counts, CP10k and logged values (un-logged: expm1, 2^x - 1,
  // 10^x - 1) normalised over the cell's library; values of an unknown log ("none") as stored.
  const auto linear = [stored](double value) { return is_relog(stored) ? unlogged(value, stored) : value; };
  // Per class and gene: sums of log1p(CP10k) and expressing cells (float: the sample is at most
  // 10^5 cells, and classes x genes can reach 10^7); then means and shares, in place.
  std::vector<float> mean(n_classes * n_genes, 0.0F);
  std::vector<float> fraction(n_classes * n_genes, 0.0F);
  const std::size_t n_references = std::max<std::size_t>(1, sample.measured.size());
  std::vector<std::int64_t> cells(n_classes * n_references, 0);  // per class and reference
  for (std::int64_t cell = 0; cell < values.n_rows; ++cell) {
    const auto label = static_cast<std::size_t>(sample.labels[static_cast<std::size_t>(cell)]);
    if (label >= n_classes) continue;  // a coarse label: no one class
    const std::size_t reference =
        sample.measured.empty() || sample.references.empty() ? 0 : static_cast<std::size_t>(sample.references[static_cast<std::size_t>(cell)]);
    ++cells[label * n_references + reference];
    const auto begin = static_cast<std::size_t>(values.indptr[static_cast<std::size_t>(cell)]);
    const auto end = static_cast<std::size_t>(values.indptr[static_cast<std::size_t>(cell) + 1]);
    double library = 0;
    for (std::size_t k = begin; k < end; ++k) {
      if (values.values[k] > 0 && in_library[static_cast<std::size_t>(values.indices[k])] != 0) library += linear(values.values[k]);
    }
    for (std::size_t k = begin; k < end; ++k) {
      const double value = values.values[k];
      if (!(value > 0)) continue;
      const double logged = stored == Normalization::kNone ? value : library > 0 ? std::log1p(linear(value) * 1e4 / library) : 0.0;
      const std::size_t at = label * n_genes + static_cast<std::size_t>(values.indices[k]);
      mean[at] += static_cast<float>(logged);
      fraction[at] += 1.0F;
    }
  }
  // Divided by the cells that measured the gene (its reference's panel); NaN where none did.
  std::vector<std::int64_t> class_cells(n_classes, 0);
  std::vector<double> measuring(n_genes);
  for (std::size_t c = 0; c < n_classes; ++c) {
    std::fill(measuring.begin(), measuring.end(), 0.0);
    for (std::size_t r = 0; r < n_references; ++r) {
      const std::int64_t count = cells[c * n_references + r];
      class_cells[c] += count;
      if (count == 0) continue;
      if (sample.measured.empty()) {
        for (double& m : measuring) m += static_cast<double>(count);
      } else {
        for (const std::int32_t column : sample.measured[r]) measuring[static_cast<std::size_t>(column)] += static_cast<double>(count);
      }
    }
    for (std::size_t g = 0; g < n_genes; ++g) {
      const std::size_t at = c * n_genes + g;
      mean[at] = measuring[g] > 0 ? static_cast<float>(mean[at] / measuring[g]) : std::nanf("");
      fraction[at] = measuring[g] > 0 ? static_cast<float>(fraction[at] / measuring[g]) : std::nanf("");
    }
  }
  std::vector<ClassMarkers> result(n_classes);
  for (std::size_t c = 0; c < n_classes; ++c) {
    ClassMarkers& markers = result[c];
    markers.name = model.class_names[c];
    markers.cl_id = c < model.class_cl_ids.size() ? model.class_cl_ids[c] : std::string();
    markers.n_cells = class_cells[c];
    if (class_cells[c] == 0) continue;
    std::vector<MarkerGene> candidates;
    for (std::size_t g = 0; g < n_genes; ++g) {
      const double own = mean[c * n_genes + g];
      if (std::isnan(own) || !(fraction[c * n_genes + g] >= kMinFraction)) continue;
      double other_mean = 0;
      double other_fraction = 0;
      int others = 0;
      for (std::size_t o = 0; o < n_classes; ++o) {
        if (o == c || std::isnan(mean[o * n_genes + g])) continue;
        other_mean += mean[o * n_genes + g];
        other_fraction += fraction[o * n_genes + g];
        ++others;
      }
      if (others == 0 || !(own > other_mean / others)) continue;  // a marker is higher in its type than elsewhere
      MarkerGene gene;
      gene.symbol = g < sample.symbols.size() && !sample.symbols[g].empty() ? sample.symbols[g] : std::to_string(sample.entrez_ids[g]);
      gene.entrez_id = sample.entrez_ids[g];
      gene.mean = own;
      gene.mean_elsewhere = other_mean / others;
      gene.fraction = fraction[c * n_genes + g];
      gene.fraction_elsewhere = other_fraction / others;
      candidates.push_back(std::move(gene));
    }
    const auto better = [](const MarkerGene& a, const MarkerGene& b) {
      const double gap_a = a.mean - a.mean_elsewhere;
      const double gap_b = b.mean - b.mean_elsewhere;
      return gap_a != gap_b ? gap_a > gap_b : a.entrez_id < b.entrez_id;
    };
    const std::size_t keep = std::min(n, candidates.size());
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(keep), candidates.end(), better);
    candidates.resize(keep);
    markers.genes = std::move(candidates);
  }
  return result;
}

nlohmann::json markers_to_json(const std::vector<ClassMarkers>& markers) {
  nlohmann::json out = nlohmann::json::array();
  for (const ClassMarkers& markers_of : markers) {
    nlohmann::json genes = nlohmann::json::array();
    for (const MarkerGene& gene : markers_of.genes) {
      genes.push_back({{"symbol", gene.symbol},
                       {"entrez_id", gene.entrez_id},
                       {"mean", gene.mean},
                       {"mean_elsewhere", gene.mean_elsewhere},
                       {"fraction", gene.fraction},
                       {"fraction_elsewhere", gene.fraction_elsewhere}});
    }
    out.push_back({{"class", markers_of.name}, {"cl_id", markers_of.cl_id}, {"n_cells", markers_of.n_cells}, {"genes", std::move(genes)}});
  }
  return out;
}

}  // namespace celltyper
