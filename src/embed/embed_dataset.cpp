#include <celltyper/embed_dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/expression_features.hpp>
#include <celltyper/matrix_summary.hpp>
#include "text_lists.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace celltyper {

AlignedGeneVectors align_gene_vectors(const GeneTable& table, const GeneResolveResult& resolved, const GeneVectorSource& source,
                                      int dims, const std::vector<std::int64_t>& library_genes) {
  if (dims <= 0 || dims > source.dims) {
    throw InputError(fmt::format("--dims {} is not available: the gene vectors have {} dimensions", dims, source.dims));
  }
  AlignedGeneVectors aligned;
  aligned.dims = dims;
  aligned.var_to_row.assign(resolved.gene_index.size(), AlignedGeneVectors::kNoVector);
  std::vector<std::int32_t> row_of_gene(table.size(), -1);
  for (std::size_t var = 0; var < resolved.gene_index.size(); ++var) {
    if (resolved.is_other_feature(var)) {
      aligned.var_to_row[var] = AlignedGeneVectors::kOtherFeature;
      continue;
    }
    const std::int32_t gene = resolved.gene_index[var];
    if (!library_genes.empty() && (gene < 0 || !std::binary_search(library_genes.begin(), library_genes.end(), table.gene(gene).entrez_id))) {
      aligned.var_to_row[var] = AlignedGeneVectors::kOtherFeature;
      continue;
    }
    if (gene < 0) continue;
    std::int32_t& row = row_of_gene[static_cast<std::size_t>(gene)];
    if (row < 0) {
      const float* vector = source.find(table.gene(gene).entrez_id);
      if (vector == nullptr) continue;
      double norm = 0;
      for (int d = 0; d < dims; ++d) norm += static_cast<double>(vector[d]) * vector[d];
      if (norm <= 0) continue;
      const double inverse = 1.0 / std::sqrt(norm);
      row = static_cast<std::int32_t>(aligned.n_rows());
      for (int d = 0; d < dims; ++d) aligned.matrix.push_back(static_cast<float>(vector[d] * inverse));
    }
    aligned.var_to_row[var] = row;
  }
  return aligned;
}

NormalizationChoice parse_normalization_choice(const std::string& text) {
  if (text == "auto") return NormalizationChoice::kAuto;
  Normalization given = Normalization::kNone;
  try {
    given = parse_normalization(text);
  } catch (const InputError&) {  // (the choice also takes auto, the default)
    throw InputError(fmt::format("unknown normalisation '{}' (expected auto, none, cp10k, log1p-cp10k, relog1p-cp10k, relog2-cp10k, "
                                 "relog10-cp10k, square-cp10k or sinh-cp10k)", text));
  }
  switch (given) {
    case Normalization::kNone: return NormalizationChoice::kNone;
    case Normalization::kCp10k: return NormalizationChoice::kCp10k;
    case Normalization::kLog1pCp10k: return NormalizationChoice::kLog1pCp10k;
    case Normalization::kRelog1pCp10k: return NormalizationChoice::kRelog1pCp10k;
    case Normalization::kRelog2Cp10k: return NormalizationChoice::kRelog2Cp10k;
    case Normalization::kRelog10Cp10k: return NormalizationChoice::kRelog10Cp10k;
    case Normalization::kSquareCp10k: return NormalizationChoice::kSquareCp10k;
    case Normalization::kSinhCp10k: return NormalizationChoice::kSinhCp10k;
  }
  return NormalizationChoice::kAuto;
}

nlohmann::json EmbedResult::to_json() const {
  return {{"n_cells", n_cells},
          {"dims", dims},
          {"matrix", matrix},
          {"normalization", to_string(normalization)},
          {"normalization_reason", normalization_reason},
          {"genes", genes.to_json()},
          {"n_vars_with_vector", n_vars_with_vector},
          {"median_coverage", median_coverage},
          {"min_coverage", min_coverage},
          {"n_empty_cells", n_empty_cells},
          {"warnings", warnings},
          {"seconds", seconds},
          {"provenance", provenance}};
}

namespace {

/// The --layer value that reads matrix source `source` ("raw/X" -> "raw", "layers/NAME" -> NAME).
std::string layer_flag(const std::string& source) {
  if (source == "raw/X") return "--layer raw";
  if (source.rfind("layers/", 0) == 0) return "--layer " + source.substr(7);
  return "--layer " + source;
}

/// Whether the engine sees every matrix of `origin`'s dataset (not so for an in-memory AnnData,
/// given the one matrix it is to read).
bool knows_other_matrices(const MatrixOrigin& origin) { return origin.dataset != nullptr && origin.dataset->format() != "memory"; }

/// The matrices of `origin`'s dataset other than the one read, as they scan: "--layer raw
/// (log-normalized)" for each that is neither scaled nor empty; `any` is set to whether the
/// dataset has other matrices at all.
std::vector<std::string> usable_others(const MatrixOrigin& origin, bool& any) {
  any = false;
  std::vector<std::string> usable;
  if (!knows_other_matrices(origin)) return usable;
  for (const std::string& source : origin.dataset->matrix_sources()) {
    if (source == origin.source) continue;
    any = true;
    SummarizeOptions scan;
    scan.max_rows = 2000;
    const ValueScale scale = summarize_matrix(*origin.dataset->open_matrix(source), scan).scale;
    if (scale != ValueScale::kScaled && scale != ValueScale::kEmpty) usable.push_back(fmt::format("{} ({})", layer_flag(source), to_string(scale)));
  }
  return usable;
}

/// What to read instead of scaled values: the file's other matrices that are not scaled, or, when
/// it has none, where scaled values come from.
std::string instead_of_scaled(const MatrixOrigin& origin) {
  const std::string made_from = "use the counts or log-normalised values the scaled ones were made from (before sc.pp.scale or ScaleData)";
  if (!knows_other_matrices(origin)) return "read a matrix of counts or log-normalised values (--layer NAME), or " + made_from;
  bool any = false;
  const std::vector<std::string> usable = usable_others(origin, any);
  if (!usable.empty()) return fmt::format("read another of the file's matrices: {}", detail::some_of(usable, 5, ", "));
  return fmt::format("{}: {}", any ? "the file's other matrices are scaled or empty too" : "the file holds no other matrix (no layers, no raw)",
                     made_from);
}

/// Where the counts behind log-like values of unknown normalisation may be.
std::string counts_instead(const MatrixOrigin& origin) {
  if (!knows_other_matrices(origin)) return "the counts (--layer NAME) are safest";
  bool any = false;
  const std::vector<std::string> usable = usable_others(origin, any);
  if (!usable.empty()) return fmt::format("the counts are safest; the file's other matrices: {}", detail::some_of(usable, 5, ", "));
  return "the counts are safest (the file holds no other usable matrix)";
}

}  // namespace

Normalization choose_normalization(MatrixReader& reader, NormalizationChoice choice, std::size_t memory_limit_bytes,
                                   const std::string& matrix, std::string& reason, std::vector<std::string>& warnings,
                                   bool relog_log_normalized, bool* counts, const MatrixOrigin& origin, bool log_transformed_as_is) {
  SummarizeOptions scan;
  scan.max_rows = 2000;
  scan.memory_limit_bytes = memory_limit_bytes;
  const MatrixSummary summary = summarize_matrix(reader, scan);
  if (counts != nullptr) *counts = summary.scale == ValueScale::kRawCounts || summary.scale == ValueScale::kEmpty;
  const std::string seen = fmt::format("{} looks {} ({})", matrix, to_string(summary.scale), summary.scale_reason);
  switch (choice) {
    case NormalizationChoice::kAuto:
      switch (summary.scale) {
        case ValueScale::kRawCounts:
        case ValueScale::kEmpty:
          reason = "auto: " + seen;
          return Normalization::kLog1pCp10k;
        case ValueScale::kLogNormalized:
        case ValueScale::kLog2Normalized:
        case ValueScale::kLog10Normalized: {
          const bool base2 = summary.scale == ValueScale::kLog2Normalized;
          const bool base10 = summary.scale == ValueScale::kLog10Normalized;
          if (relog_log_normalized) {
            reason = "auto: " + seen + "; normalised again over the library genes (" + (base2 ? "2^x - 1" : base10 ? "10^x - 1" : "expm1") +
                     ", CP10k, log1p)";
            return base2 ? Normalization::kRelog2Cp10k : base10 ? Normalization::kRelog10Cp10k : Normalization::kRelog1pCp10k;
          }
          // GenePT-w: the library is every gene of the cell, so the values are log1p-cp10k already
          // (log2 ones times 1/ln 2, which the cell vector's L2 norm removes).
          reason = "auto: " + seen + "; used unchanged";
          return Normalization::kNone;
        }
        case ValueScale::kSqrtCounts:
          // The counts themselves, read back: used as they are, square roots of pbmc3k's counts
          // against a model of its counts gave accuracy 0.805 (the counts 0.890).
          reason = "auto: " + seen + "; squared back to counts, log1p(CP10k) as for counts";
          return Normalization::kSquareCp10k;
        case ValueScale::kAsinhCounts:
          reason = "auto: " + seen + "; read back with sinh to counts, log1p(CP10k) as for counts";
          return Normalization::kSinhCp10k;
        case ValueScale::kLogTransformed: {
          if (log_transformed_as_is) {  // (as the model reading them learnt its reference's)
            reason = "auto: " + seen + "; used unchanged, as the model learnt its reference's values";
            warnings.push_back(seen + ": used unchanged, as the model learnt its reference's values (normalisation none); a model "
                                      "trained with this version reads them back and normalises them as counts: " + counts_instead(origin));
            return Normalization::kNone;
          }
          // Logs of values that are neither counts nor normalised to equal totals: TPM or FPKM
          // kept for some genes, RSEM's expected read counts (plate-based data as GEO holds
          // it). Used as they were, log2(TPM + 1) against a model of log1p(CP10k) lost a sixth
          // of the labels at confident scores (pbmc3k, 0.725 against the counts' 0.890): read
          // back and normalised as counts (0.888). The base: values above ln(2 x 10^6) cannot be
          // natural logs of values per million, so base 2 (GEO's log2(TPM + 1)); else e (a
          // log10 read as e cost 0.03 there, a log2 read as e 0.07; a log2 or log10 read in a
          // larger base, 0.3 to 0.5: never guessed).
          const bool base2 = summary.max_value > kNaturalLogOfMillionsMax;
          reason = "auto: " + seen + "; read back (" + (base2 ? "2^x - 1" : "expm1") + ") and normalised as counts (CP10k, log1p)";
          warnings.push_back(fmt::format("{}: read back as {} of TPM, FPKM or read counts and normalised as counts (log1p of CP10k); {}; "
                                         "another base: --normalize {} (--normalize none uses the values as they are)",
                                         seen,
                                         base2 ? fmt::format("log2(1 + x), values up to {:.3g} being more than natural logs of millions,",
                                                             summary.max_value)
                                               : "log1p(x), natural logs,",
                                         counts_instead(origin), base2 ? "relog1p-cp10k or relog10-cp10k" : "relog2-cp10k or relog10-cp10k"));
          return base2 ? Normalization::kRelog2Cp10k : Normalization::kRelog1pCp10k;
        }
        case ValueScale::kNormalized:
          // CP10k / CPM: log1p(CP10k) of them is what counts give (the total is rescaled to 10^4).
          reason = "auto: " + seen + "; log1p(CP10k) as for counts";
          return Normalization::kLog1pCp10k;
        case ValueScale::kScaled:
          if (summary.n_negative * 1000 < summary.stored_values) {  // a few damaged values, not scaled data
            throw InputError(fmt::format("{}: {}", matrix, summary.scale_reason));
          }
          throw InputError(fmt::format("{}: negative values cannot be used; {}; or pass --normalize none to use them anyway", seen,
                                       instead_of_scaled(origin)));
        case ValueScale::kUnknown:
          if (summary.mixed_scales) {
            // No one normalisation suits counts and log-normalised cells: most labels of one part would be wrong.
            throw InputError(fmt::format("{}: {}: no one normalisation suits both; give every cell the same processing first (e.g. the "
                                         "counts of every cell), or pass --normalize NAME to treat every cell one way (log1p-cp10k for counts)",
                                         matrix, summary.scale_reason));
          }
          // Not logged, not counts (TPM, FPKM, ambient- or depth-corrected counts): normalised as counts are.
          reason = "auto: " + seen + "; log1p(CP10k) as for counts";
          warnings.push_back(seen + ": normalised as counts (log1p of CP10k); check that this is the matrix you want "
                                    "(--layer NAME reads another, --normalize none uses the values as they are)");
          return Normalization::kLog1pCp10k;
      }
      break;
    case NormalizationChoice::kNone:
      reason = "requested";
      if (summary.scale == ValueScale::kRawCounts) warnings.push_back(seen + ": raw counts used without normalisation (--normalize none)");
      return Normalization::kNone;
    case NormalizationChoice::kCp10k:
    case NormalizationChoice::kLog1pCp10k:
      reason = "requested";
      if (summary.scale != ValueScale::kRawCounts && summary.scale != ValueScale::kEmpty && summary.scale != ValueScale::kNormalized &&
          summary.scale != ValueScale::kUnknown) {
        warnings.push_back(seen + ": CP10k normalisation expects raw counts; the values may already be normalised");
      }
      return choice == NormalizationChoice::kCp10k ? Normalization::kCp10k : Normalization::kLog1pCp10k;
    case NormalizationChoice::kRelog1pCp10k:
    case NormalizationChoice::kRelog2Cp10k:
    case NormalizationChoice::kRelog10Cp10k: {
      reason = "requested";
      const bool base2 = choice == NormalizationChoice::kRelog2Cp10k;
      const bool base10 = choice == NormalizationChoice::kRelog10Cp10k;
      const ValueScale expected = base2 ? ValueScale::kLog2Normalized : base10 ? ValueScale::kLog10Normalized : ValueScale::kLogNormalized;
      // (a model's reference sample keeps a subset of the genes: its expm1 totals differ per cell)
      if (summary.scale != expected && summary.scale != ValueScale::kLogTransformed && summary.scale != ValueScale::kEmpty) {
        warnings.push_back(seen + (base2    ? ": relog2-cp10k expects log2(1 + CP10k)-normalised values"
                                   : base10 ? ": relog10-cp10k expects log10(1 + CP10k)-normalised values"
                                            : ": relog1p-cp10k expects log1p(CP10k)-normalised values"));
      }
      return base2 ? Normalization::kRelog2Cp10k : base10 ? Normalization::kRelog10Cp10k : Normalization::kRelog1pCp10k;
    }
    case NormalizationChoice::kSquareCp10k:
    case NormalizationChoice::kSinhCp10k: {
      reason = "requested";
      const bool square = choice == NormalizationChoice::kSquareCp10k;
      const ValueScale expected = square ? ValueScale::kSqrtCounts : ValueScale::kAsinhCounts;
      if (summary.scale != expected && summary.scale != ValueScale::kEmpty) {
        warnings.push_back(seen + (square ? ": square-cp10k expects square roots of counts" : ": sinh-cp10k expects asinh of counts"));
      }
      return square ? Normalization::kSquareCp10k : Normalization::kSinhCp10k;
    }
  }
  return Normalization::kLog1pCp10k;
}

EmbedResult embed_dataset(const Dataset& dataset, const GeneTable& table, const GeneVectorSource& source, const EmbedOptions& options,
                          EmbeddingSink& sink) {
  const auto start = std::chrono::steady_clock::now();
  EmbedResult result;
  if (dataset.n_obs() == 0) {
    result.warnings.push_back(fmt::format("{}: the dataset has zero cells: nothing to embed (the output has no rows)", dataset.path()));
  }
  std::string matrix_note;
  result.matrix = resolve_matrix_source(dataset, options.matrix, &matrix_note);
  if (!matrix_note.empty()) result.warnings.push_back(fmt::format("{}{}", kNotePrefix, matrix_note));
  result.genes = resolve_dataset_genes(table, dataset, result.matrix, options.genes);
  const int dims = options.dims > 0 ? options.dims : source.dims;
  AlignedGeneVectors aligned = align_gene_vectors(table, result.genes, source, dims, options.size_factor_genes);
  result.n_vars_with_vector = aligned.n_matched_vars();
  const std::string tried = fmt::format("var column '{}' read as {} ids; {} of {} vars matched the gene table, {} have a gene vector",
                                        result.genes.column, to_string(result.genes.id_type), result.genes.n_matched(),
                                        result.genes.n_vars(), result.n_vars_with_vector);
  if (result.n_vars_with_vector < std::max<std::int64_t>(options.min_matched_genes, 1)) {
    throw InputError(fmt::format("{}: too few genes overlap the gene vectors: {} (need {}). Pass --gene-column to choose another var "
                                 "column, or check the species and id type",
                                 dataset.path(), tried, std::max<std::int64_t>(options.min_matched_genes, 1)));
  }
  auto reader = dataset.open_matrix(result.matrix);
  // Log-normalised values were normalised over every gene: with a library of some genes only
  // (size_factor_genes), they are normalised again over those, as counts would be.
  const Normalization normalization =
      choose_normalization(*reader, options.normalization, options.memory_limit_bytes, fmt::format("{}: {}", dataset.path(), result.matrix),
                           result.normalization_reason, result.warnings, !options.size_factor_genes.empty(), nullptr,
                           MatrixOrigin{&dataset, result.matrix}, options.log_transformed_as_is);
  result.normalization = normalization;
  result.dims = dims;
  result.n_cells = dataset.n_obs();
  if (!options.rows.empty()) {
    result.n_cells = 0;
    for (const RowRange& range : options.rows) {
      if (range.begin < 0 || range.end > dataset.n_obs() || range.begin > range.end) {
        throw InputError(fmt::format("{}: rows [{}, {}) are outside the dataset's {} cells", dataset.path(), range.begin, range.end,
                                     dataset.n_obs()));
      }
      result.n_cells += range.size();
    }
  }
  result.warnings.insert(result.warnings.end(), result.genes.warnings.begin(), result.genes.warnings.end());

  {  // hot genes first in the gene matrix (a locality optimisation; results are unchanged)
    CsrBlock sample;
    reader->read_rows(0, std::min<std::int64_t>(reader->n_rows(), 2000), sample);
    aligned.order_rows_by_use(sample);
  }
  CellEmbedder embedder(std::move(aligned), {normalization, options.num_threads});
  std::vector<float> out;
  CellEmbedStats stats;
  std::vector<double> coverage;
  coverage.reserve(static_cast<std::size_t>(result.n_cells));
  bool checked_coverage = false;
  sink.begin(result.n_cells, dims);
  std::int64_t written = 0;  // rows handed to the sink so far (the sink's numbering)
  auto embed_block = [&](const CsrBlock& block) {
    out.resize(static_cast<std::size_t>(block.n_rows) * static_cast<std::size_t>(dims));
    embedder.embed(block, out.data(), &stats);
    coverage.insert(coverage.end(), stats.covered_fraction.begin(), stats.covered_fraction.end());
    for (const auto flag : stats.empty) result.n_empty_cells += flag;
    if (!checked_coverage) {  // fail fast on the first block, before writing much
      std::vector<double> first(stats.covered_fraction);
      const Quantiles q = quantiles(first);
      if (q.median < options.min_median_coverage) {
        throw InputError(fmt::format("{}: the median cell has only {:.1f}% of its counts on genes with a vector (need {:.0f}%{}): {}",
                                     dataset.path(), 100 * q.median, 100 * options.min_median_coverage,
                                     options.coverage_option.empty()
                                         ? std::string()
                                         : fmt::format("; a store of a few genes needs a lower floor, e.g. {} 0.01", options.coverage_option),
                                     tried));
      }
      checked_coverage = true;
    }
    sink.write(written, block.n_rows, out.data(), stats);
    written += block.n_rows;
    if (options.progress) options.progress(written, result.n_cells);
  };
  if (options.rows.empty()) {
    for_each_block(*reader, stream_options(dataset, result.matrix, options.memory_limit_bytes), embed_block);
  } else {
    // Only the requested ranges, cut at the dataset's own block boundaries (memory-capped).
    const std::vector<RowRange> blocks = reader->plan_blocks(options.memory_limit_bytes);
    CsrBlock block;
    for (const RowRange& range : options.rows) {
      auto it = std::upper_bound(blocks.begin(), blocks.end(), range.begin, [](std::int64_t row, const RowRange& b) { return row < b.end; });
      for (std::int64_t first = range.begin; first < range.end; ++it) {
        const std::int64_t end = it == blocks.end() ? range.end : std::min(range.end, it->end);
        reader->read_rows(first, end - first, block);
        embed_block(block);
        first = end;
      }
    }
  }
  const Quantiles q = quantiles(std::move(coverage));
  result.median_coverage = q.median;
  result.min_coverage = q.min;
  if (result.n_empty_cells > 0) {
    result.warnings.push_back(fmt::format("{} cells have no expressed gene with a vector: their embedding is the zero vector "
                                          "(flagged in celltyper_embedding_empty)",
                                          result.n_empty_cells));
  }
  result.provenance = {{"method", "GenePT-w: L2-normalised expression-weighted sum of gene vectors"},
                       {"input", dataset.path()},
                       {"matrix", result.matrix},
                       {"normalization", to_string(normalization)},
                       {"normalization_reason", result.normalization_reason},
                       {"dims", dims},
                       {"gene_vectors", source.description},
                       {"gene_vectors_identity", source.identity},
                       {"gene_table_hash", table.content_hash_hex()},
                       {"gene_column", result.genes.column},
                       {"gene_id_type", to_string(result.genes.id_type)},
                       {"n_vars_with_vector", result.n_vars_with_vector},
                       {"median_coverage", result.median_coverage},
                       {"celltyper_version", CELLTYPER_VERSION}};
  sink.finish(result.provenance);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void MemorySink::begin(std::int64_t n_cells, int n_dims) {
  rows = n_cells;
  dims = n_dims;
  values.assign(static_cast<std::size_t>(n_cells) * static_cast<std::size_t>(n_dims), 0.0f);
  empty.assign(static_cast<std::size_t>(n_cells), 0);
}

void MemorySink::write(std::int64_t first_row, std::int64_t n_rows, const float* block, const CellEmbedStats& stats) {
  std::copy(block, block + n_rows * dims, values.begin() + first_row * dims);
  std::copy(stats.empty.begin(), stats.empty.end(), empty.begin() + first_row);
}

}  // namespace celltyper
