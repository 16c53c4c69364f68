// One file of the catalogue: layout, obs category counts and QC distributions.
#include "corpus/catalog_record.hpp"

#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <unordered_map>

namespace celltyper::corpus::detail {

namespace {

/// Quantile with linear interpolation between order statistics (numpy's default method).
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::nan("");
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return sorted[below] + (sorted[above] - sorted[below]) * fraction;
}

QcDistribution distribution(std::string metric, std::vector<double> values) {
  QcDistribution out;
  out.metric = std::move(metric);
  out.n_cells = static_cast<std::int64_t>(values.size());
  out.histogram_lower = qc_histogram_lower_edges();
  out.histogram_counts.assign(out.histogram_lower.size(), 0);
  double sum = 0;
  for (const double value : values) {
    sum += value;
    ++out.histogram_counts[qc_histogram_bin(value)];
  }
  std::sort(values.begin(), values.end());
  out.min = values.empty() ? std::nan("") : values.front();
  out.max = values.empty() ? std::nan("") : values.back();
  out.mean = values.empty() ? std::nan("") : sum / static_cast<double>(values.size());
  out.q05 = quantile(values, 0.05);
  out.q25 = quantile(values, 0.25);
  out.median = quantile(values, 0.5);
  out.q75 = quantile(values, 0.75);
  out.q95 = quantile(values, 0.95);
  return out;
}

std::string resolve_qc_matrix(const H5adFile& file, const std::string& requested) {
  const auto sources = file.matrix_sources();
  const auto has = [&](const std::string& s) { return std::find(sources.begin(), sources.end(), s) != sources.end(); };
  if (requested != "auto") {
    if (!has(requested)) {
      throw InputError(fmt::format("{}: no matrix '{}' for --qc (available: {})", file.path(), requested, fmt::join(sources, ", ")));
    }
    return requested;
  }
  for (const char* candidate : {"layers/counts", "raw/X", "X"}) {
    if (has(candidate)) return candidate;
  }
  if (sources.empty()) throw InputError(fmt::format("{}: no matrix to compute QC from", file.path()));
  return sources.front();
}

/// Value counts of one obs column; false when it has more than `max_categories` values.
bool count_categories(const std::string& file, const Column& column, std::size_t max_categories,
                      std::vector<CategoryCount>& out) {
  if (column.kind == ColumnKind::kCategorical) {
    if (column.categories.size() > max_categories) return false;
    std::vector<std::int64_t> counts(column.categories.size(), 0);
    std::int64_t missing = 0;
    for (const auto code : column.codes) {
      if (code >= 0 && static_cast<std::size_t>(code) < counts.size()) {
        ++counts[static_cast<std::size_t>(code)];
      } else {
        ++missing;
      }
    }
    for (std::size_t i = 0; i < counts.size(); ++i) out.push_back({file, column.name, column.categories[i], counts[i]});
    if (missing > 0) out.push_back({file, column.name, std::nullopt, missing});
    return true;
  }
  std::unordered_map<std::string, std::size_t> slot;
  std::vector<std::pair<std::string, std::int64_t>> counts;
  std::int64_t missing = 0;
  for (std::size_t row = 0; row < column.size(); ++row) {
    if (column.is_missing(row)) {
      ++missing;
      continue;
    }
    const auto [it, added] = slot.emplace(column.value_as_string(row), counts.size());
    if (added) {
      if (counts.size() >= max_categories) return false;
      counts.emplace_back(it->first, 0);
    }
    ++counts[it->second].second;
  }
  std::sort(counts.begin(), counts.end());
  for (auto& [value, n] : counts) out.push_back({file, column.name, value, n});
  if (missing > 0) out.push_back({file, column.name, std::nullopt, missing});
  return true;
}

}  // namespace

std::vector<double> qc_histogram_lower_edges() {
  std::vector<double> edges{0.0};
  for (int k = 0; k <= 30; ++k) edges.push_back(std::ldexp(1.0, k));
  return edges;
}

std::size_t qc_histogram_bin(double value) {
  if (!(value >= 1.0)) return 0;  // [0, 1), negatives and NaN
  const int exponent = std::ilogb(value);  // value in [2^e, 2^(e+1))
  return static_cast<std::size_t>(std::min(exponent + 1, 31));
}

std::string utc_now_iso() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

std::string obs_request_text(const std::vector<std::string>& columns) {
  return columns.empty() ? std::string("*") : fmt::format("{}", fmt::join(columns, ","));
}

FileRecord catalogue_file(const std::string& path, const CatalogOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  FileRecord record;
  record.path = path;
  record.obs_request = obs_request_text(options.obs_columns);
  record.catalogued_at = utc_now_iso();
  if (!is_remote_path(path)) {
    std::error_code error;
    const auto modified = std::filesystem::last_write_time(path, error);
    if (!error) {
      const auto system = std::chrono::file_clock::to_sys(modified);
      record.modified_unix = std::chrono::duration_cast<std::chrono::seconds>(system.time_since_epoch()).count();
    }
    const auto size = std::filesystem::file_size(path, error);
    if (!error) record.size_bytes = static_cast<std::uint64_t>(size);
  }
  std::unique_ptr<H5adFile> file;
  const RemoteStats before = remote_stats_of_this_thread();  // (a file that fails to open leaves no RemoteFile to ask)
  try {
    H5adOpenOptions open_options;
    open_options.num_threads = 1;
    open_options.remote = options.remote;
    file = std::make_unique<H5adFile>(path, open_options);
    record.size_bytes = file->file_bytes();
    record.n_obs = file->n_obs();
    record.n_vars = file->n_vars();
    const auto sources = file->matrix_sources();
    record.x_source = std::find(sources.begin(), sources.end(), "X") != sources.end() ? "X" : (sources.empty() ? "" : sources.front());
    if (!record.x_source.empty()) {
      const MatrixInfo info = file->matrix_info(record.x_source);
      record.x_encoding = info.encoding == MatrixEncoding::kCsr ? "csr" : info.encoding == MatrixEncoding::kCsc ? "csc" : "dense";
      record.x_dtype = info.value_dtype;
      record.x_index_dtype = info.index_dtype;
      record.x_nnz = info.nnz;
      record.x_chunks = info.chunks;
      record.x_compression = info.compression;
      record.x_stored_bytes = info.stored_bytes;
    }
    record.encoding_version = file->encoding_version();
    record.obs_columns = file->obs_column_names();
    record.var_columns = file->var_column_names();
    record.obsm_keys = file->keys("obsm");
    record.layers_keys = file->keys("layers");
    record.uns_keys = file->keys("uns");
    record.has_raw = std::find(sources.begin(), sources.end(), "raw/X") != sources.end();

    // obs categories: the requested columns, or every categorical column.
    std::vector<std::string> wanted;
    if (options.obs_columns.empty()) {
      const DataFrame obs = file->read_obs();
      for (const auto& column : obs.columns) {
        if (column.kind != ColumnKind::kCategorical) continue;
        if (count_categories(path, column, options.max_categories, record.categories)) {
          record.obs_columns_catalogued.push_back(column.name);
        } else {
          record.obs_columns_skipped.push_back(column.name);
        }
      }
    } else {
      for (const auto& name : options.obs_columns) {
        if (std::find(record.obs_columns.begin(), record.obs_columns.end(), name) == record.obs_columns.end()) {
          record.obs_columns_missing.push_back(name);
        } else {
          wanted.push_back(name);
        }
      }
      if (!wanted.empty()) {
        const DataFrame obs = file->read_obs_columns(wanted);
        for (const auto& name : wanted) {
          const Column& column = obs.at(name, fmt::format("obs of {}", path));
          if (count_categories(path, column, options.max_categories, record.categories)) {
            record.obs_columns_catalogued.push_back(name);
          } else {
            record.obs_columns_skipped.push_back(name);
          }
        }
      }
    }

    if (options.qc) {
      record.qc_matrix = resolve_qc_matrix(*file, options.qc_matrix);
      const auto reader = file->open_matrix(record.qc_matrix);
      const std::int64_t n_rows = reader->info().n_rows;
      std::vector<double> totals(static_cast<std::size_t>(n_rows), 0.0);
      std::vector<double> detected(static_cast<std::size_t>(n_rows), 0.0);
      CsrBlockF64 block;
      for (const RowRange& range : reader->plan_blocks(options.memory_limit_bytes)) {
        reader->read_rows(range.begin, range.size(), block);
        for (std::int64_t r = 0; r < block.n_rows; ++r) {
          double sum = 0;
          std::int64_t positive = 0;
          for (std::int64_t k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r + 1)]; ++k) {
            const double value = block.values[static_cast<std::size_t>(k)];
            sum += value;
            positive += value > 0 ? 1 : 0;
          }
          totals[static_cast<std::size_t>(range.begin + r)] = sum;
          detected[static_cast<std::size_t>(range.begin + r)] = static_cast<double>(positive);
        }
      }
      record.qc_rows.push_back(distribution("total_counts", std::move(totals)));
      record.qc_rows.push_back(distribution("genes_detected", std::move(detected)));
      record.qc = true;
    }
    record.remote = file->remote_stats();
  } catch (const std::exception& error) {
    record.status = "error";
    record.error = error.what();
    const auto* known = dynamic_cast<const Error*>(&error);
    record.error_code = known != nullptr ? known->exit_code() : 70;
    record.categories.clear();
    record.qc_rows.clear();
    record.qc = false;
    if (file) {
      record.remote = file->remote_stats();
    } else {
      record.remote = remote_stats_of_this_thread();
      record.remote -= before;
    }
  }
  file.reset();
  record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return record;
}

}  // namespace celltyper::corpus::detail
