#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/floored_logs.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/loom.hpp>
#include <celltyper/rds.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/remote.hpp>
#include <celltyper/tenx.hpp>
#include <celltyper/text_matrix.hpp>
#include <celltyper/zarr.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace celltyper {

namespace {

std::unique_ptr<Dataset> open_format(const std::string& path) {
  if (is_remote_path(path)) return std::make_unique<H5adFile>(path);  // http(s):// or s3:// .h5ad
  std::error_code error;
  if (!std::filesystem::exists(path, error)) throw InputError(fmt::format("{}: no such file or directory", path));
  if (std::filesystem::is_directory(path, error)) return is_zarr_anndata(path) ? open_zarr(path) : open_tenx_mtx(path);
  if (is_loom(path)) return open_loom(path);  // before 10x: a loom's row_attrs may hold gene_names
  if (is_tenx_h5(path)) return open_tenx_h5(path);
  if (is_rds_path(path)) return open_rds(path);                  // an R object (saveRDS), read through Rscript
  if (is_text_matrix_path(path)) return open_text_matrix(path);  // a GEO-style count table
  return std::make_unique<H5adFile>(path);
}

}  // namespace

std::unique_ptr<Dataset> open_dataset(const std::string& path) {
  // (logs stored with a floor per cell, edgeR's log CPM: read with the floor as 0)
  return with_floors_removed(open_format(path));
}

DataFrame Dataset::read_obs_columns(const std::vector<std::string>& names) const {
  DataFrame frame = read_obs();
  for (const auto& name : names) (void)frame.at(name, fmt::format("obs of {}", path()));
  std::erase_if(frame.columns, [&names](const Column& column) { return std::find(names.begin(), names.end(), column.name) == names.end(); });
  return frame;
}

std::vector<std::string> Dataset::obs_column_names() const {
  std::vector<std::string> names;
  for (const Column& column : read_obs().columns) names.push_back(column.name);
  return names;
}

const Dataset::VarScan& Dataset::var_scan(const std::string& source, const std::function<VarScan()>& scan) const {
  const std::lock_guard<std::mutex> lock(var_scans_.mutex);
  if (const auto found = var_scans_.by_source.find(source); found != var_scans_.by_source.end()) return found->second;
  return var_scans_.by_source.emplace(source, scan()).first->second;  // (std::map: the reference stays valid)
}

std::string resolve_matrix_source(const Dataset& dataset, const std::string& name, std::string* note, bool named_note) {
  if (name == "auto") {
    std::string source = choose_counts_matrix(dataset, note);
    // (what the reader chose, e.g. a MuData file's modality, before which of its matrices)
    const std::string reading = dataset.reading_note();
    if (note != nullptr && !reading.empty() && note->find(reading) == std::string::npos) *note = note->empty() ? reading : reading + "; " + *note;
    return source;
  }
  const std::vector<std::string> sources = dataset.matrix_sources();
  const auto has = [&](const std::string& source) { return std::find(sources.begin(), sources.end(), source) != sources.end(); };
  for (const std::string& candidate : {name, name == "raw" ? std::string("raw/X") : name, "layers/" + name}) {
    if (!has(candidate)) continue;
    // (a matrix named explicitly is read the way the reader chose too: a MuData file's modality,
    // logs with a floor per cell)
    if (const std::string reading = dataset.reading_note(); named_note && note != nullptr && !reading.empty()) *note = reading;
    return candidate;
  }
  throw InputError(fmt::format("{}: no matrix '{}' (available: {})", dataset.path(), name,
                               sources.empty() ? std::string("none") : fmt::format("{}", fmt::join(sources, ", "))));
}

}  // namespace celltyper
