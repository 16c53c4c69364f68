#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/inspect.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/recovered_counts.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <unordered_map>

namespace celltyper {

namespace {

nlohmann::json matrix_info_json(const MatrixInfo& info) {
  return {{"source", info.source},       {"encoding", to_string(info.encoding)}, {"shape", {info.n_rows, info.n_cols}},
          {"nnz", info.nnz},             {"value_dtype", info.value_dtype},      {"index_dtype", info.index_dtype},
          {"compression", info.compression}, {"chunks", info.chunks},            {"stored_bytes", info.stored_bytes},
          {"encoding_version", info.encoding_version}};
}

/// Value counts, most frequent first (ties in first-seen order), limited to `top`.
nlohmann::json top_counts(const std::vector<std::string>& labels, const std::vector<std::int64_t>& counts, std::size_t top) {
  std::vector<std::size_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return counts[a] > counts[b]; });
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t i = 0; i < std::min(top, order.size()); ++i) out.push_back({labels[order[i]], counts[order[i]]});
  return out;
}

nlohmann::json column_json(const Column& column, std::size_t top) {
  nlohmann::json out{{"name", column.name}, {"kind", to_string(column.kind)}, {"dtype", column.dtype}};
  std::int64_t missing = 0;
  for (std::size_t i = 0; i < column.size(); ++i) missing += column.is_missing(i) ? 1 : 0;
  out["n_missing"] = missing;
  switch (column.kind) {
    case ColumnKind::kCategorical: {
      std::vector<std::int64_t> counts(column.categories.size(), 0);
      for (const auto code : column.codes) {
        if (code >= 0) ++counts[static_cast<std::size_t>(code)];
      }
      out["n_categories"] = column.categories.size();
      out["ordered"] = column.ordered;
      out["categories_dtype"] = column.categories_dtype;
      out["top"] = top_counts(column.categories, counts, top);
      nlohmann::json all = nlohmann::json::object();
      for (std::size_t i = 0; i < counts.size(); ++i) all[column.categories[i]] = counts[i];
      out["counts"] = std::move(all);
      break;
    }
    case ColumnKind::kString: {
      std::unordered_map<std::string, std::size_t> slot;
      std::vector<std::string> labels;
      std::vector<std::int64_t> counts;
      for (std::size_t i = 0; i < column.size(); ++i) {
        if (column.is_missing(i)) continue;
        const auto [it, added] = slot.emplace(column.strings[i], labels.size());
        if (added) {
          labels.push_back(column.strings[i]);
          counts.push_back(0);
        }
        ++counts[it->second];
      }
      out["n_unique"] = labels.size();
      out["top"] = top_counts(labels, counts, top);
      break;
    }
    case ColumnKind::kFloat:
    case ColumnKind::kInt:
    case ColumnKind::kNullableInt: {
      double low = std::numeric_limits<double>::infinity();
      double high = -low;
      double sum = 0;
      std::int64_t n = 0;
      for (std::size_t i = 0; i < column.size(); ++i) {
        if (column.is_missing(i)) continue;
        const double value = column.kind == ColumnKind::kFloat ? column.numbers[i] : static_cast<double>(column.integers[i]);
        if (!std::isfinite(value)) continue;
        low = std::min(low, value);
        high = std::max(high, value);
        sum += value;
        ++n;
      }
      if (n > 0) {
        out["min"] = low;
        out["max"] = high;
        out["mean"] = sum / static_cast<double>(n);
      }
      break;
    }
    case ColumnKind::kBool:
    case ColumnKind::kNullableBool: {
      std::int64_t n_true = 0;
      for (std::size_t i = 0; i < column.size(); ++i) n_true += (!column.is_missing(i) && column.booleans[i]) ? 1 : 0;
      out["n_true"] = n_true;
      break;
    }
  }
  return out;
}

nlohmann::json frame_json(const DataFrame& frame, std::size_t top) {
  nlohmann::json columns = nlohmann::json::array();
  for (const auto& column : frame.columns) columns.push_back(column_json(column, top));
  nlohmann::json examples = nlohmann::json::array();
  for (std::size_t i = 0; i < std::min<std::size_t>(3, frame.index.size()); ++i) examples.push_back(frame.index[i]);
  return {{"n_rows", frame.n_rows()}, {"index_name", frame.index_name}, {"index_examples", examples}, {"columns", columns}};
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000 && unit < 4) {
    bytes /= 1000;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} {}", bytes, units[unit]) : fmt::format("{:.1f} {}", bytes, units[unit]);
}

}  // namespace

nlohmann::json inspect_dataset(const Dataset& dataset, const InspectOptions& options) {
  nlohmann::json report;
  report["file"] = dataset.path();
  report["format"] = dataset.format();
  report["n_cells"] = dataset.n_obs();
  report["n_genes"] = dataset.n_vars();
  if (const auto* h5ad = dataset.h5ad_file()) {
    report["anndata_encoding_version"] = h5ad->encoding_version();
    if (!h5ad->modality().empty()) report["mudata_modality"] = h5ad->modality();  // (a MuData file: the modality read)
    report["obsm"] = h5ad->keys("obsm");
    report["varm"] = h5ad->keys("varm");
    report["uns"] = h5ad->keys("uns");
  }
  nlohmann::json matrices = nlohmann::json::array();
  std::vector<std::string> layers;
  for (const auto& source : dataset.matrix_sources()) {
    matrices.push_back(matrix_info_json(dataset.matrix_info(source)));
    if (source.rfind("layers/", 0) == 0) layers.push_back(source.substr(7));
  }
  report["matrices"] = matrices;
  report["layers"] = layers;
  // What train, annotate, cv, tune and embed read with no --layer (auto); a matrix that cannot be
  // read is described below, not a reason to stop describing the file.
  try {
    std::string why;
    report["default_matrix"] = {{"source", choose_counts_matrix(dataset, &why)}, {"why", why}};
  } catch (const InputError& error) {
    report["default_matrix"] = {{"source", ""}, {"why", fmt::format("cannot choose: {}", error.what())}};
  } catch (const IoError& error) {
    report["default_matrix"] = {{"source", ""}, {"why", fmt::format("cannot choose: {}", error.what())}};
  }

  const auto sources = dataset.matrix_sources();
  std::string source;
  if (!options.matrix.empty()) {
    source = resolve_matrix_source(dataset, options.matrix);
  } else if (!sources.empty()) {
    source = sources.front();
  }
  if (source.empty()) throw InputError(fmt::format("{}: no matrix to scan", dataset.path()));
  auto reader = dataset.open_matrix(source);
  SummarizeOptions summarize{options.max_cells, options.memory_limit_bytes};
  const MatrixSummary summary = summarize_matrix(*reader, summarize);
  report["matrix"] = summary.to_json();
  // Log-normalised values: whether train reads their counts back (recovered_counts.hpp; it says
  // nothing, and reads nothing, of other values).
  if (const CountsRecovery recovery = recover_counts(dataset, source, options.memory_limit_bytes, &summary);
      recovery.dataset != nullptr || !recovery.warning.empty()) {
    report["matrix"]["counts_read_back"] = recovery.dataset != nullptr;
    report["matrix"]["counts_read_back_note"] = recovery.dataset != nullptr ? recovery.note : recovery.warning;
  }

  const H5adFile* h5ad = dataset.h5ad_file();
  if (h5ad != nullptr && !h5ad->modality().empty()) {
    // (a MuData file: the modality's obs, then the columns of the file's own /obs it lacks, as
    // train, annotate and evaluate read them)
    nlohmann::json global = nlohmann::json::object();
    try {
      report["obs"] = frame_json(dataset.read_obs_columns(dataset.obs_column_names()), options.top_categories);
      for (const auto& [offered, stored] : h5ad->global_obs_columns()) global[offered] = stored;
    } catch (const InputError& error) {  // (its /obs cannot be matched to the modality's cells: the modality's obs alone)
      report["obs"] = frame_json(dataset.read_obs(), options.top_categories);
      report["mudata_obs_error"] = error.what();
    }
    report["mudata_obs_columns"] = global;
  } else {
    report["obs"] = frame_json(dataset.read_obs(), options.top_categories);
  }
  const DataFrame var = dataset.read_var_of(source);
  report["var"] = frame_json(var, options.top_categories);
  const GeneTable* table = options.gene_table_later ? options.gene_table_later() : options.gene_table;
  if (table != nullptr) {
    GeneResolveOptions resolve;
    resolve.column = options.gene_column;
    resolve.refuse_row_numbers = false;  // describe the file: row numbers resolve nothing, with a warning
    GeneResolveResult genes = resolve_dataset_genes(*table, dataset, source, resolve);  // (as the other commands read them)
    const std::string own_prefix = dataset.path() + ": ";  // (listed under the file's own heading: said once)
    for (std::string& warning : genes.warnings) {
      if (warning.starts_with(own_prefix)) warning.erase(0, own_prefix.size());
    }
    nlohmann::json identity = genes.to_json();
    identity["table"] = table->source();
    identity["table_genes"] = table->size();
    std::size_t known = 0;
    const Column* column = genes.column == "_index" ? nullptr : var.find(genes.column);
    for (std::size_t i = 0; i < var.n_rows(); ++i) {
      if (table->is_known_name(column == nullptr ? var.index[i] : column->value_as_string(i))) ++known;
    }
    identity["n_known_to_table"] = known;
    identity["summary"] = fmt::format("{} ({} of {} vars matched, {:.1f}%; {} of the names known to the table as written)",
                                      genes.column + " holds " + to_string(genes.id_type) + " ids", genes.n_matched(),
                                      genes.n_vars() - genes.n_other_features,
                                      100.0 * genes.fraction_matched(), known);
    identity["report"] = genes.summary();
    report["genes"] = std::move(identity);
  }
  return report;
}

std::string format_inspect_report(const nlohmann::json& report) {
  std::string out;
  auto line = [&out](const std::string& text) {
    out += text;
    out += '\n';
  };
  std::string header = fmt::format("{}  ({}", report["file"].get<std::string>(), report["format"].get<std::string>());
  if (report.contains("mudata_modality")) header = fmt::format("{}  (MuData, modality '{}' read", report["file"].get<std::string>(), report["mudata_modality"].get<std::string>());
  if (report.contains("anndata_encoding_version") && !report["anndata_encoding_version"].get<std::string>().empty()) {
    header += fmt::format(", anndata encoding {}", report["anndata_encoding_version"].get<std::string>());
  }
  line(header + ")");
  // (antibody tags, peaks beside the genes: counted apart)
  const std::size_t n_other = report.contains("genes") ? report["genes"].value("n_other_features", std::size_t{0}) : 0;
  if (n_other > 0) {
    line(fmt::format("  {} cells x {} vars ({} genes, {} other features)", report["n_cells"].get<std::int64_t>(),
                     report["n_genes"].get<std::int64_t>(), report["n_genes"].get<std::int64_t>() - static_cast<std::int64_t>(n_other), n_other));
  } else {
    line(fmt::format("  {} cells x {} genes", report["n_cells"].get<std::int64_t>(), report["n_genes"].get<std::int64_t>()));
  }
  line("Matrices");
  for (const auto& m : report["matrices"]) {
    const auto shape = m["shape"];
    std::string index = m["index_dtype"].get<std::string>().empty() ? "" : fmt::format("  indices {}", m["index_dtype"].get<std::string>());
    // (a dense matrix stores every value, zeros too: its "nnz" would be cells x genes; the scan
    // below gives its density)
    const bool dense = m["encoding"].get<std::string>() == "dense";
    line(fmt::format("  {:<16} {:<11} {} x {}  {}{}  {}  {}  {} on disk", m["source"].get<std::string>(), m["encoding"].get<std::string>(),
                     shape[0].get<std::int64_t>(), shape[1].get<std::int64_t>(), m["value_dtype"].get<std::string>(), index,
                     m["compression"].get<std::string>(),
                     dense ? std::string("every value stored") : fmt::format("nnz {}", m["nnz"].get<std::int64_t>()),
                     human_bytes(m["stored_bytes"].get<double>())));
  }
  if (report.contains("default_matrix")) {
    const auto& chosen = report["default_matrix"];
    const std::string why = chosen["why"].get<std::string>();
    line(fmt::format("  read by default (--layer auto): {}{}", chosen["source"].get<std::string>(), why.empty() ? "" : " (" + why + ")"));
  }
  const auto& matrix = report["matrix"];
  if (report["n_cells"].get<std::int64_t>() == 0) {
    line(fmt::format("Values of {}: none (zero cells)", matrix["source"].get<std::string>()));
  } else {
  line(fmt::format("Values of {} ({} cells scanned): {}", matrix["source"].get<std::string>(), matrix["rows_scanned"].get<std::int64_t>(),
                   matrix["value_scale"].get<std::string>()));
  line(fmt::format("  {}", matrix["value_scale_reason"].get<std::string>()));
  if (matrix.contains("counts_read_back")) line(fmt::format("  as a training reference: {}", matrix["counts_read_back_note"].get<std::string>()));
  // NaN and infinite values (which annotate and train refuse) on the values line itself
  std::string non_finite;
  if (const auto nan = matrix.value("n_nan", std::int64_t{0}); nan > 0) non_finite += fmt::format(", {} NaN", nan);
  if (const auto inf = matrix.value("n_inf", std::int64_t{0}); inf > 0) non_finite += fmt::format(", {} infinite", inf);
  if (!non_finite.empty()) non_finite += " (annotate and train refuse them)";
  line(fmt::format("  density {:.2f}%, values {:.4g} .. {:.4g}{}", 100 * matrix["density"].get<double>(), matrix["min"].get<double>(),
                   matrix["max"].get<double>(), non_finite));
  const auto& totals = matrix["total_per_cell"];
  const auto& genes = matrix["genes_per_cell"];
  line(fmt::format("  per cell: total median {:.4g} (min {:.4g}, max {:.4g}); genes detected median {:.0f} (min {:.0f}, max {:.0f})",
                   totals["median"].get<double>(), totals["min"].get<double>(), totals["max"].get<double>(), genes["median"].get<double>(),
                   genes["min"].get<double>(), genes["max"].get<double>()));
  // An unfiltered droplet matrix: most barcodes are empty droplets, which annotate would label.
  const auto called = matrix.value("cells_by_ordmag", std::int64_t{-1});
  const auto scanned = matrix["rows_scanned"].get<std::int64_t>();
  if (called >= 0 && 4 * called <= 3 * scanned && matrix["value_scale"] == "raw-counts") {
    line(fmt::format("  {} of the {} barcodes scanned hold a cell by Cell Ranger 2's rule (OrdMag: a tenth of the 99th percentile of the largest "
                     "totals), the others look like empty droplets: an unfiltered matrix? annotate labels every barcode, empty ones with "
                     "confident scores too; filter cells first (Cell Ranger's filtered_feature_bc_matrix, or scanpy's "
                     "sc.pp.filter_cells(adata, min_genes=200))",
                     called, scanned));
  }
  }
  for (const char* frame_name : {"obs", "var"}) {
    const auto& frame = report[frame_name];
    const auto examples = frame["index_examples"].get<std::vector<std::string>>();
    line(fmt::format("{} ({} rows, {} columns{})", frame_name, frame["n_rows"].get<std::int64_t>(), frame["columns"].size(),
                     examples.empty() ? std::string() : fmt::format("; index e.g. {}", fmt::join(examples, ", "))));
    if (std::string_view(frame_name) == "obs" && report.contains("mudata_obs_error")) {
      line(fmt::format("  (the MuData file's own /obs is not read: {})", report["mudata_obs_error"].get<std::string>()));
    }
    for (const auto& column : frame["columns"]) {
      const std::string kind = column["kind"].get<std::string>();
      std::string detail;
      if (kind == "categorical") {
        std::vector<std::string> parts;
        for (const auto& pair : column["top"]) parts.push_back(fmt::format("{} {}", pair[0].get<std::string>(), pair[1].get<std::int64_t>()));
        detail = fmt::format("{} categories{}: {}", column["n_categories"].get<std::size_t>(), column["ordered"].get<bool>() ? " (ordered)" : "",
                             fmt::join(parts, ", "));
      } else if (kind == "string") {
        std::vector<std::string> parts;
        for (const auto& pair : column["top"]) parts.push_back(fmt::format("{} {}", pair[0].get<std::string>(), pair[1].get<std::int64_t>()));
        detail = fmt::format("{} distinct: {}", column["n_unique"].get<std::size_t>(), fmt::join(parts, ", "));
      } else if (column.contains("min")) {
        detail = fmt::format("{:.4g} .. {:.4g}, mean {:.4g}", column["min"].get<double>(), column["max"].get<double>(), column["mean"].get<double>());
      } else if (column.contains("n_true")) {
        detail = fmt::format("{} true", column["n_true"].get<std::int64_t>());
      }
      if (column["n_missing"].get<std::int64_t>() > 0) detail += fmt::format(" [{} missing]", column["n_missing"].get<std::int64_t>());
      if (std::string_view(frame_name) == "obs" && report.contains("mudata_obs_columns") && report["mudata_obs_columns"].contains(column["name"])) {
        detail += fmt::format(" (the file's own /obs, '{}')", report["mudata_obs_columns"][column["name"].get<std::string>()].get<std::string>());
      }
      line(fmt::format("  {:<24} {:<13} {}", column["name"].get<std::string>(), kind, detail));
    }
  }
  if (report.contains("obsm")) line(fmt::format("obsm: {}", report["obsm"].empty() ? "-" : fmt::format("{}", fmt::join(report["obsm"].get<std::vector<std::string>>(), ", "))));
  line(fmt::format("layers: {}", report["layers"].empty() ? "-" : fmt::format("{}", fmt::join(report["layers"].get<std::vector<std::string>>(), ", "))));
  if (report.contains("genes")) {
    line(fmt::format("Gene ids (table {}, {} genes):", report["genes"]["table"].get<std::string>(), report["genes"]["table_genes"].get<std::size_t>()));
    out += report["genes"]["report"].get<std::string>();
    if (!out.empty() && out.back() != '\n') out += '\n';
  }
  if (!matrix["warnings"].empty()) {
    for (const auto& warning : matrix["warnings"]) line(fmt::format("warning: {}", warning.get<std::string>()));
  }
  return out;
}

}  // namespace celltyper
