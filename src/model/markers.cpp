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
    throw InputError("the model keeps no reference cells (trained with --reference-sample 0): its types' marker genes cannot be told");
  }
  const CsrBlockF64& values = sample.cell_values();
  const std::size_t n_genes = sample.entrez_ids.size();
  const std::size_t n_classes = model.class_names.size();
  const Normalization stored = sample.normalization.empty() ? Normalization::kNone : parse_normalization(sample.normalization);
  const bool counts = stored == Normalization::kLog1pCp10k;
  // A cell's library: the model's library genes (every gene when it has none), as its features.
  const std::vector<std::int64_t>& library_genes = model.library_genes();
  std::vector<std::uint8_t> in_library(n_genes, 1);
  if (!library_genes.empty()) {
    for (std::size_t g = 0; g < n_genes; ++g) {
      in_library[g] = std::binary_search(library_genes.begin(), library_genes.end(), sample.entrez_ids[g]) ? 1 : 0;
    }
  }
  // Per class and gene: sums of log1p(CP10k), expressing cells and cells that measured the gene.
  std::vector<double> sum(n_classes * n_genes, 0.0);
  std::vector<double> expressing(n_classes * n_genes, 0.0);
  std::vector<double> measuring(n_classes * n_genes, 0.0);
  std::vector<std::int64_t> cells(n_classes, 0);
  std::vector<std::vector<double>> measured_by_reference;  // per reference: 1 for each column it measured
  for (const auto& columns : sample.measured) {
    std::vector<double> mask(n_genes, 0.0);
    for (const std::int32_t column : columns) mask[static_cast<std::size_t>(column)] = 1.0;
    measured_by_reference.push_back(std::move(mask));
  }
  for (std::int64_t cell = 0; cell < values.n_rows; ++cell) {
    const auto label = static_cast<std::size_t>(sample.labels[static_cast<std::size_t>(cell)]);
    if (label >= n_classes) continue;  // a coarse label: no one class
    ++cells[label];
    const auto begin = static_cast<std::size_t>(values.indptr[static_cast<std::size_t>(cell)]);
    const auto end = static_cast<std::size_t>(values.indptr[static_cast<std::size_t>(cell) + 1]);
    double library = 0;
    for (std::size_t k = begin; k < end; ++k) {
      if (values.values[k] > 0 && in_library[static_cast<std::size_t>(values.indices[k])] != 0) library += values.values[k];
    }
    double* class_sum = sum.data() + label * n_genes;
    double* class_expressing = expressing.data() + label * n_genes;
    for (std::size_t k = begin; k < end; ++k) {
      const double value = values.values[k];
      if (!(value > 0)) continue;
      const double logged = counts ? (library > 0 ? std::log1p(value * 1e4 / library) : 0.0)
                            : stored == Normalization::kCp10k ? std::log1p(value)
                                                              : value;  // log values as stored
      const auto g = static_cast<std::size_t>(values.indices[k]);
      class_sum[g] += logged;
      class_expressing[g] += 1;
    }
    double* class_measuring = measuring.data() + label * n_genes;
    if (sample.references.empty() || measured_by_reference.empty()) {
      for (std::size_t g = 0; g < n_genes; ++g) class_measuring[g] += 1;
    } else {
      const auto& mask = measured_by_reference[static_cast<std::size_t>(sample.references[static_cast<std::size_t>(cell)])];
      for (std::size_t g = 0; g < n_genes; ++g) class_measuring[g] += mask[g];
    }
  }
  // Per class and gene: mean and expressing share over the cells that measured it (NaN: none did).
  std::vector<double> mean(n_classes * n_genes, std::nan(""));
  std::vector<double> fraction(n_classes * n_genes, std::nan(""));
  for (std::size_t i = 0; i < n_classes * n_genes; ++i) {
    if (measuring[i] > 0) {
      mean[i] = sum[i] / measuring[i];
      fraction[i] = expressing[i] / measuring[i];
    }
  }
  std::vector<ClassMarkers> result(n_classes);
  for (std::size_t c = 0; c < n_classes; ++c) {
    ClassMarkers& markers = result[c];
    markers.name = model.class_names[c];
    markers.cl_id = c < model.class_cl_ids.size() ? model.class_cl_ids[c] : std::string();
    markers.n_cells = cells[c];
    if (cells[c] == 0) continue;
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
      if (others == 0) continue;
      MarkerGene gene;
      gene.symbol = g < sample.symbols.size() ? sample.symbols[g] : std::string();
      gene.entrez_id = sample.entrez_ids[g];
      gene.mean = own;
      gene.mean_elsewhere = other_mean / others;
      gene.fraction = fraction[c * n_genes + g];
      gene.fraction_elsewhere = other_fraction / others;
      if (gene.symbol.empty()) gene.symbol = std::to_string(gene.entrez_id);
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
