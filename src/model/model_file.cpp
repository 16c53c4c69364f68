// Model files: one versioned HDF5 file with the classifier, classes, gene vectors and provenance
// (layout in model_file.hpp).
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/output_file.hpp>

#include "io/hdf5_util.hpp"
#include "splitmix64.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <fstream>
#include <cstring>
#include <charconv>
#include <bit>
#include <cmath>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>

#ifndef CELLTYPER_VERSION
#define CELLTYPER_VERSION "unknown"
#endif

namespace celltyper {

using h5::Handle;

namespace {

constexpr const char* kFormatName = "celltyper-model";

std::string string_attr(hid_t object, const char* name) { return h5::string_attribute(object, name).value_or(""); }

nlohmann::json parse_json_attr(hid_t object, const char* name, const std::string& what) {
  const std::string text = string_attr(object, name);
  if (text.empty()) return nlohmann::json::object();
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw InputError(fmt::format("{}: attribute {} is not valid JSON", what, name));
  }
  // Fields are read from it by name later: anything but an object is a damaged file.
  if (!parsed.is_object()) throw InputError(fmt::format("{}: attribute {} is not a JSON object", what, name));
  return parsed;
}

std::string dump(const nlohmann::json& json) { return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

/// `json` without measured durations ("seconds", "fit_seconds", ...: at any depth), which differ
/// run to run, nor the thread counts a fit ran with (an MLP's or XGBoost's fit report: the same
/// weights with 1 or 2 threads): what a model records under SOURCE_DATE_EPOCH, so that training
/// twice writes the same bytes.
nlohmann::json without_durations(const nlohmann::json& json) {
  if (json.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : json) out.push_back(without_durations(item));
    return out;
  }
  if (!json.is_object()) return json;
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, value] : json.items()) {
    if (key == "seconds" || key.ends_with("_seconds") || key == "threads") continue;  // (the machine's, not the model's)
    out[key] = without_durations(value);
  }
  return out;
}

}  // namespace

GeneVectorSource ModelGenes::source() const {
  GeneVectorSource result;
  result.dims = dims;
  result.identity = store_identity;
  result.description = store_description;
  result.find = [this](std::int64_t entrez) -> const float* {
    const auto found = std::lower_bound(entrez_ids.begin(), entrez_ids.end(), entrez);
    if (found == entrez_ids.end() || *found != entrez) return nullptr;
    return vectors.data() + (found - entrez_ids.begin()) * dims;
  };
  return result;
}

namespace {

/// `text` cut at every `separator` (n separators: n + 1 parts, empty ones included).
std::vector<std::string> split_on(std::string_view text, char separator) {
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t end = std::min(text.find(separator, start), text.size());
    parts.emplace_back(text.substr(start, end - start));
    if (end == text.size()) return parts;
    start = end + 1;
  }
}

GeneTable minimal_gene_table(const std::vector<std::int64_t>& entrez_ids, const std::vector<std::string>& symbols,
                             const std::vector<std::string>& ensembl_ids, const std::vector<std::string>& aliases = {}) {
  std::vector<Gene> genes;
  genes.reserve(entrez_ids.size());
  for (std::size_t i = 0; i < entrez_ids.size(); ++i) {
    Gene gene;
    gene.entrez_id = entrez_ids[i];
    gene.symbol = symbols[i];
    if (!ensembl_ids[i].empty()) gene.ensembl_ids.push_back(ensembl_ids[i]);
    if (i < aliases.size() && !aliases[i].empty()) {
      for (auto& alias : split_on(aliases[i], '|')) {
        if (!alias.empty() && alias != gene.symbol) gene.aliases.push_back(std::move(alias));
      }
    }
    genes.push_back(std::move(gene));
  }
  return GeneTable(std::move(genes), "model genes");
}

}  // namespace

GeneTable ModelGenes::gene_table() const { return minimal_gene_table(entrez_ids, symbols, ensembl_ids); }

GeneTable ExpressionPanel::gene_table() const { return minimal_gene_table(entrez_ids, symbols, ensembl_ids); }

GeneTable ReferenceSample::gene_table() const { return minimal_gene_table(entrez_ids, symbols, ensembl_ids, aliases); }

namespace detail {
/// A loaded model's reference sample values, read on first use (ReferenceSample::cell_values)
/// through its /reference group, held open from load_model on: the file the model was loaded
/// from, even if its path has since been replaced or removed.
struct DeferredSampleValues {
  std::string path;  ///< for messages
  Handle group;
  std::once_flag once;
  CsrBlockF64 values;
  std::exception_ptr error;
  DeferredSampleValues() = default;
  DeferredSampleValues(const DeferredSampleValues&) = delete;
  DeferredSampleValues& operator=(const DeferredSampleValues&) = delete;
  ~DeferredSampleValues() {
    auto lock = h5::hdf5_lock();
    group.reset();
  }
};
}  // namespace detail

namespace {

/// Lists of int32 indices as CSR rows: `indptr_name` (int64, lists + 1 offsets) and
/// `values_name` (the concatenated lists).
void write_index_lists(hid_t group, const char* indptr_name, const char* values_name, const std::vector<std::vector<std::int32_t>>& lists) {
  std::vector<std::int64_t> indptr = {0};
  std::vector<std::int32_t> values;
  for (const auto& list : lists) {
    values.insert(values.end(), list.begin(), list.end());
    indptr.push_back(static_cast<std::int64_t>(values.size()));
  }
  h5::write_1d<std::int64_t>(group, indptr_name, indptr.data(), static_cast<std::int64_t>(indptr.size()));
  h5::write_1d<std::int32_t>(group, values_name, values.data(), static_cast<std::int64_t>(values.size()), 4);
}

/// `group`/size_factor_entrez_id (ExpressionPanel and ModelGenes::size_factor_genes), when any.
void write_size_factor_genes(hid_t group, const std::vector<std::int64_t>& genes) {
  if (genes.empty()) return;
  h5::write_1d<std::int64_t>(group, "size_factor_entrez_id", genes.data(), static_cast<std::int64_t>(genes.size()));
}

/// `group`/size_factor_entrez_id (named `where` in messages), ascending; empty when absent.
std::vector<std::int64_t> read_size_factor_genes(hid_t group, const std::string& path, const std::string& where) {
  if (!h5::exists(group, "size_factor_entrez_id")) return {};
  Handle dataset = h5::open_dataset(group, "size_factor_entrez_id", path);
  std::vector<std::int64_t> genes = h5::read_all_1d<std::int64_t>(dataset.get());
  if (!std::is_sorted(genes.begin(), genes.end())) throw InputError(fmt::format("{}: {}/size_factor_entrez_id is not ascending", path, where));
  return genes;
}

void write_reference_sample(hid_t root, const ReferenceSample& sample) {
  Handle group = h5::create_group(root, "reference");
  h5::write_string_attribute(group.get(), "normalization", sample.normalization);
  h5::write_string_attribute(group.get(), "matrix", sample.matrix);
  h5::write_int_array_attribute(group.get(), "n_reference_cells", {sample.n_reference_cells});
  const auto n_genes = static_cast<std::int64_t>(sample.entrez_ids.size());
  h5::write_1d<std::int64_t>(group.get(), "entrez_id", sample.entrez_ids.data(), n_genes);
  h5::write_strings(group.get(), "symbol", sample.symbols);
  h5::write_strings(group.get(), "ensembl_id", sample.ensembl_ids);
  if (sample.aliases.size() == sample.entrez_ids.size() && !sample.aliases.empty()) {
    // (one deflated text, a line per gene: variable-length strings are not compressed)
    std::string text;
    for (std::size_t g = 0; g < sample.aliases.size(); ++g) text += (g == 0 ? "" : "\n") + sample.aliases[g];
    h5::write_1d<std::uint8_t>(group.get(), "alias_lines", reinterpret_cast<const std::uint8_t*>(text.data()),
                               static_cast<std::int64_t>(text.size()), 4);
  }
  const CsrBlockF64& values = sample.cell_values();
  const std::vector<std::int64_t> indptr(values.indptr.begin(), values.indptr.end());
  const std::vector<std::int32_t> indices(values.indices.begin(), values.indices.end());
  const std::vector<float> data(values.values.begin(), values.values.end());
  const auto nnz = static_cast<std::int64_t>(data.size());
  h5::write_1d<std::int64_t>(group.get(), "indptr", indptr.data(), static_cast<std::int64_t>(indptr.size()), 4);
  h5::write_1d<std::int32_t>(group.get(), "indices", indices.data(), nnz, 4);
  h5::write_1d<float>(group.get(), "data", data.data(), nnz, 4);
  h5::write_1d<std::int32_t>(group.get(), "label", sample.labels.data(), sample.n_cells(), 4);
  if (!sample.measured.empty()) {  // pooled references: each cell's reference, each reference's columns
    h5::write_1d<std::int32_t>(group.get(), "cell_reference", sample.references.data(), sample.n_cells(), 4);
    write_index_lists(group.get(), "measured_indptr", "measured_columns", sample.measured);
  }
  if (!sample.label_sets.empty()) {  // coarse labels' sets, as CSR rows of class indices
    write_index_lists(group.get(), "label_set_indptr", "label_set_classes", sample.label_sets);
  }
}

void write_similarity_profile(hid_t root, const SimilarityProfile& profile) {
  Handle group = h5::create_group(root, "similarity");
  h5::write_int_array_attribute(group.get(), "n_levels", {profile.n_levels});
  const auto k = static_cast<std::int64_t>(profile.n_profiles());
  const auto f = static_cast<std::int64_t>(profile.entrez_ids.size());
  h5::write_1d<std::int64_t>(group.get(), "entrez_id", profile.entrez_ids.data(), f);
  h5::write_1d<std::int32_t>(group.get(), "class", profile.classes.data(), k);
  h5::write_1d<float>(group.get(), "centred_rank", profile.centred_ranks.data(), k * f, 4);
  h5::write_1d<double>(group.get(), "level_log_detected", profile.level_log_detected.data(), k * profile.n_levels);
  h5::write_1d<double>(group.get(), "level_threshold", profile.level_threshold.data(), k * profile.n_levels);
  h5::write_1d<double>(group.get(), "min_detected", profile.min_detected.data(), k);
}

SimilarityProfile read_similarity_profile(hid_t root, const std::string& path, std::size_t n_classes) {
  Handle group = h5::open_group(root, "similarity", path);
  const auto read = [&](const char* name) { return h5::open_dataset(group.get(), name, path); };
  SimilarityProfile profile;
  const auto levels = h5::int_array_attribute(group.get(), "n_levels");
  profile.n_levels = levels.empty() ? 0 : levels.front();
  profile.entrez_ids = h5::read_all_1d<std::int64_t>(read("entrez_id").get());
  profile.classes = h5::read_all_1d<std::int32_t>(read("class").get());
  const std::vector<float> ranks = h5::read_all_1d<float>(read("centred_rank").get());
  profile.centred_ranks = ranks;
  profile.level_log_detected = h5::read_all_1d<double>(read("level_log_detected").get());
  profile.level_threshold = h5::read_all_1d<double>(read("level_threshold").get());
  profile.min_detected = h5::read_all_1d<double>(read("min_detected").get());
  const std::size_t k = profile.classes.size();
  constexpr std::int64_t kMaxLevels = 64;  // (a count from the file: bounded before any product)
  const bool consistent = profile.n_levels > 0 && profile.n_levels <= kMaxLevels && k <= n_classes &&
                          profile.entrez_ids.size() <= (std::size_t{1} << 31) &&
                          std::adjacent_find(profile.entrez_ids.begin(), profile.entrez_ids.end(),
                                             [](std::int64_t a, std::int64_t b) { return a >= b; }) == profile.entrez_ids.end() &&
                          profile.centred_ranks.size() == k * profile.entrez_ids.size() &&
                          profile.level_log_detected.size() == k * static_cast<std::size_t>(profile.n_levels) &&
                          profile.level_threshold.size() == profile.level_log_detected.size() && profile.min_detected.size() == k &&
                          std::all_of(profile.classes.begin(), profile.classes.end(),
                                      [n_classes](std::int32_t c) { return c >= 0 && static_cast<std::size_t>(c) < n_classes; }) &&
                          std::all_of(profile.centred_ranks.begin(), profile.centred_ranks.end(), [](float v) { return std::isfinite(v); }) &&
                          std::all_of(profile.level_threshold.begin(), profile.level_threshold.end(), [](double v) { return std::isfinite(v); }) &&
                          std::all_of(profile.level_log_detected.begin(), profile.level_log_detected.end(), [](double v) { return std::isfinite(v); }) &&
                          std::all_of(profile.min_detected.begin(), profile.min_detected.end(), [](double v) { return std::isfinite(v) && v >= 0; });
  if (!consistent) {
    throw InputError(fmt::format("{}: /similarity datasets disagree, are out of order or hold non-finite values", path));
  }
  return profile;
}

ReferenceSample read_reference_sample(hid_t root, const std::string& path, std::size_t n_classes) {
  ReferenceSample sample;
  Handle group = h5::open_group(root, "reference", path);
  sample.normalization = string_attr(group.get(), "normalization");
  sample.matrix = string_attr(group.get(), "matrix");
  const auto n_reference = h5::int_array_attribute(group.get(), "n_reference_cells");
  sample.n_reference_cells = n_reference.empty() ? 0 : n_reference.front();
  auto read = [&](const char* name) { return h5::open_dataset(group.get(), name, path); };
  sample.entrez_ids = h5::read_all_1d<std::int64_t>(read("entrez_id").get());
  sample.symbols = h5::read_strings(read("symbol").get());
  sample.ensembl_ids = h5::read_strings(read("ensembl_id").get());
  if (h5::exists(group.get(), "alias_lines")) {
    const std::vector<std::uint8_t> bytes = h5::read_all_1d<std::uint8_t>(read("alias_lines").get());
    sample.aliases = split_on(std::string(bytes.begin(), bytes.end()), '\n');
    if (sample.aliases.size() != sample.entrez_ids.size()) {
      throw InputError(fmt::format("{}: /reference/alias_lines has {} lines for {} genes; the model file is corrupt", path,
                                   sample.aliases.size(), sample.entrez_ids.size()));
    }
  }
  sample.labels = h5::read_all_1d<std::int32_t>(read("label").get());
  const auto n_genes = static_cast<std::int64_t>(sample.entrez_ids.size());
  const auto n_cells = sample.n_cells();
  const std::int64_t n_indptr = h5::dataset_length(read("indptr").get());
  const std::int64_t n_indices = h5::dataset_length(read("indices").get());
  const std::int64_t n_data = h5::dataset_length(read("data").get());
  const bool consistent = static_cast<std::int64_t>(sample.symbols.size()) == n_genes &&
                          static_cast<std::int64_t>(sample.ensembl_ids.size()) == n_genes && n_indptr == n_cells + 1 && n_indices == n_data;
  if (!consistent) {
    throw InputError(fmt::format("{}: /reference datasets disagree: {} genes, {} cells, {} row pointers, {} indices, {} values", path,
                                 n_genes, n_cells, n_indptr, n_indices, n_data));
  }
  if (!std::is_sorted(sample.entrez_ids.begin(), sample.entrez_ids.end()) ||
      std::adjacent_find(sample.entrez_ids.begin(), sample.entrez_ids.end()) != sample.entrez_ids.end()) {
    throw InputError(fmt::format("{}: /reference/entrez_id is not strictly ascending", path));
  }
  if (h5::exists(group.get(), "label_set_indptr") || h5::exists(group.get(), "label_set_classes")) {
    const auto set_indptr = h5::read_all_1d<std::int64_t>(read("label_set_indptr").get());
    const auto set_classes = h5::read_all_1d<std::int32_t>(read("label_set_classes").get());
    if (set_indptr.empty() || set_indptr.front() != 0 || !std::is_sorted(set_indptr.begin(), set_indptr.end()) ||
        set_indptr.back() != static_cast<std::int64_t>(set_classes.size())) {
      throw InputError(fmt::format("{}: /reference/label_set_indptr does not index /reference/label_set_classes", path));
    }
    for (const std::int32_t member : set_classes) {
      if (member < 0 || static_cast<std::size_t>(member) >= n_classes) {
        throw InputError(fmt::format("{}: /reference/label_set_classes holds {} outside the {} classes", path, member, n_classes));
      }
    }
    for (std::size_t s = 0; s + 1 < set_indptr.size(); ++s) {
      if (set_indptr[s] == set_indptr[s + 1]) throw InputError(fmt::format("{}: /reference label set {} is empty", path, s));
      sample.label_sets.emplace_back(set_classes.begin() + set_indptr[s], set_classes.begin() + set_indptr[s + 1]);
    }
  }
  if (h5::exists(group.get(), "cell_reference") || h5::exists(group.get(), "measured_indptr")) {
    sample.references = h5::read_all_1d<std::int32_t>(read("cell_reference").get());
    const auto measured_indptr = h5::read_all_1d<std::int64_t>(read("measured_indptr").get());
    const auto measured_columns = h5::read_all_1d<std::int32_t>(read("measured_columns").get());
    if (static_cast<std::int64_t>(sample.references.size()) != n_cells || measured_indptr.size() < 2 || measured_indptr.front() != 0 ||
        !std::is_sorted(measured_indptr.begin(), measured_indptr.end()) ||
        measured_indptr.back() != static_cast<std::int64_t>(measured_columns.size())) {
      throw InputError(fmt::format("{}: /reference/cell_reference and /reference/measured_* disagree", path));
    }
    for (std::size_t r = 0; r + 1 < measured_indptr.size(); ++r) {
      std::vector<std::int32_t> columns(measured_columns.begin() + measured_indptr[r], measured_columns.begin() + measured_indptr[r + 1]);
      const bool ascending = std::adjacent_find(columns.begin(), columns.end(), std::greater_equal<>()) == columns.end();
      if (!ascending || (!columns.empty() && (columns.front() < 0 || columns.back() >= n_genes))) {
        throw InputError(fmt::format("{}: /reference/measured_columns of reference {} are not ascending columns in [0, {})", path, r, n_genes));
      }
      sample.measured.push_back(std::move(columns));
    }
    for (const std::int32_t reference : sample.references) {
      if (reference < 0 || static_cast<std::size_t>(reference) >= sample.measured.size()) {
        throw InputError(fmt::format("{}: /reference/cell_reference holds {} outside the {} references", path, reference, sample.measured.size()));
      }
    }
  }
  const std::size_t n_codes = n_classes + sample.label_sets.size();
  for (const std::int32_t label : sample.labels) {
    if (label < 0 || static_cast<std::size_t>(label) >= n_codes) {
      throw InputError(fmt::format("{}: /reference/label holds {} outside the {} classes and {} coarse labels", path, label, n_classes,
                                   sample.label_sets.size()));
    }
  }
  sample.deferred = std::make_shared<detail::DeferredSampleValues>();
  sample.deferred->path = path;
  sample.deferred->group = std::move(group);  // keeps the file open (HDF5 closes it with its last object)
  return sample;
}

/// The reference sample's values (/reference/indptr, indices, data under `group`) of model
/// `path`, checked.
CsrBlockF64 read_sample_values(hid_t group, const std::string& path, std::int64_t n_cells, std::int64_t n_genes) {
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  auto read = [&](const char* name) { return h5::open_dataset(group, name, path); };
  const auto indptr = h5::read_all_1d<std::int64_t>(read("indptr").get());
  const auto indices = h5::read_all_1d<std::int32_t>(read("indices").get());
  const auto data = h5::read_all_1d<float>(read("data").get());
  const bool consistent = static_cast<std::int64_t>(indptr.size()) == n_cells + 1 && indices.size() == data.size() && !indptr.empty() &&
                          indptr.front() == 0 && indptr.back() == static_cast<std::int64_t>(data.size()) &&
                          std::is_sorted(indptr.begin(), indptr.end());
  if (!consistent) {
    throw InputError(fmt::format("{}: /reference datasets disagree: {} genes, {} cells, {} row pointers, {} indices, {} values", path,
                                 n_genes, n_cells, indptr.size(), indices.size(), data.size()));
  }
  for (const std::int32_t column : indices) {
    if (column < 0 || column >= n_genes) throw InputError(fmt::format("{}: /reference/indices holds {} outside [0, {})", path, column, n_genes));
  }
  for (const float value : data) {
    if (!std::isfinite(value)) throw InputError(fmt::format("{}: /reference/data has a non-finite value", path));
  }
  CsrBlockF64 values;
  values.reset(0, n_cells, n_genes);
  values.indptr.assign(indptr.begin(), indptr.end());
  values.indices.assign(indices.begin(), indices.end());
  values.values.assign(data.begin(), data.end());
  return values;
}

}  // namespace

const CsrBlockF64& ReferenceSample::cell_values() const {
  if (!deferred) return values;
  std::call_once(deferred->once, [this] {
    try {
      deferred->values = read_sample_values(deferred->group.get(), deferred->path, n_cells(), static_cast<std::int64_t>(entrez_ids.size()));
      auto lock = h5::hdf5_lock();
      deferred->group.reset();  // read once: the file need not stay open
    } catch (...) {
      deferred->error = std::current_exception();
    }
  });
  if (deferred->error) std::rethrow_exception(deferred->error);
  return deferred->values;
}

bool is_model_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return false;
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) return false;
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  return file && h5::string_attribute(file.get(), "format").value_or("") == kFormatName;
}

nlohmann::json calibration_summary(const CellTypeModel& model) {
  // (what training recorded, with the temperature the classifier applies)
  nlohmann::json out = model.provenance.is_object() ? model.provenance.value("calibration", nlohmann::json::object()) : nlohmann::json::object();
  if (!out.contains("n_cells") && !out.contains("reason")) out["reason"] = "trained before calibration";
  out["temperature"] = model.classifier ? model.classifier->temperature() : 1.0;
  return out;
}

std::string calibration_text(const nlohmann::json& summary) {
  if (!summary.contains("n_cells")) {
    return fmt::format("the classifier's probabilities, not calibrated ({})", summary.value("reason", std::string("no calibration")));
  }
  const auto figure = [&](const char* key, const char* which) {
    return summary.contains(key) && summary[key].is_object() ? summary[key].value(which, 0.0) : 0.0;
  };
  const auto one_hot = summary.value("n_one_hot", std::int64_t{0});
  const auto coarse = summary.value("n_coarse_left_out", std::int64_t{0});
  const auto coarse_used = summary.value("n_coarse_used", std::int64_t{0});
  return fmt::format("calibrated (temperature {:.3g} from {} held-out cells{}{}: mean score {:.2f} -> {:.2f} at accuracy {:.2f}, expected "
                     "calibration error {:.3f} -> {:.3f} on those cells{})",
                     summary.value("temperature", 1.0), summary["n_cells"].get<std::int64_t>(),
                     coarse > 0        ? fmt::format(" labelled with a class (not the {} with a coarser label)", coarse)
                     : coarse_used > 0 ? fmt::format(", {} of them with a coarser label, met by any class below it (too few carry a class)",
                                                     coarse_used)
                                       : std::string(),
                     one_hot > 0 ? fmt::format(", besides {} whose one class probability above 0 no temperature changes", one_hot) : std::string(),
                     figure("mean_confidence", "before"), figure("mean_confidence", "after"), summary.value("accuracy", 0.0),
                     figure("expected_calibration_error", "before"), figure("expected_calibration_error", "after"),
                     summary.value("bounded_by_accuracy", false) ? "; their accuracy bounded it" : "");
}

nlohmann::json describe_model(const CellTypeModel& model) {
  const nlohmann::json& provenance = model.provenance;
  auto from = [&provenance](const char* key, nlohmann::json fallback) { return provenance.contains(key) ? provenance[key] : fallback; };
  nlohmann::json classes = nlohmann::json::array();
  const nlohmann::json counts = from("class_counts", nlohmann::json::object());
  for (std::size_t c = 0; c < model.class_names.size(); ++c) {
    const std::string& name = model.class_names[c];
    classes.push_back({{"name", name},
                       {"cl_id", c < model.class_cl_ids.size() ? model.class_cl_ids[c] : std::string()},
                       {"n_cells", counts.contains(name) ? counts[name] : nlohmann::json(nullptr)}});
  }
  nlohmann::json references = nlohmann::json::array();
  for (const auto& reference : from("references", nlohmann::json::array())) {
    references.push_back({{"path", reference.value("path", std::string())},
                          {"n_cells", reference.value("n_cells", std::int64_t{0})},
                          {"n_used", reference.value("n_used", std::int64_t{0})},
                          {"n_thinned_copies", reference.value("n_thinned_copies", std::int64_t{0})},
                          {"normalization", reference.value("normalization", std::string())},
                          {"matrix", reference.value("matrix", std::string())},
                          {"counts_recovered", reference.value("counts_recovered", false)},
                          {"label_column", reference.value("label_column", std::string())}});
  }
  nlohmann::json validation = nullptr;
  if (model.validation.contains("accuracy")) {
    validation = {{"accuracy", model.validation["accuracy"]},
                  {"macro_f1", model.validation.contains("macro") ? model.validation["macro"].value("f1", 0.0) : 0.0}};
  }
  nlohmann::json described = {{"format", kFormatName},
          {"celltyper_version", from("model_celltyper_version", "")},
          {"created_utc", from("model_created_utc", "")},
          {"training_warnings", from("training_warnings", nlohmann::json::array())},
          {"features", model.features},
          {"gene_table", from("gene_table", "")},
          {"n_features", model.n_features()},
          {"classifier", model.classifier ? model.classifier->type() : std::string()},
          {"label_column", from("label_column", "")},
          {"n_classes", model.class_names.size()},
          {"classes", classes},
          {"n_cells", from("n_cells", 0)},
          {"n_thinned_copies", from("n_thinned_copies", 0)},
          {"augment_depth", from("augment_depth", false)},
          {"references", references},
          {"validation", validation},
          {"calibration", calibration_summary(model)},
          {"library_genes", model.library_genes().size()},
          {"restrict_genes", from("restrict_genes", 0)},
          {"reference_sample", {{"n_cells", model.reference.n_cells()}, {"n_genes", model.reference.entrez_ids.size()}}},
          {"type_profiles", {{"n_classes", model.similarity.n_profiles()},
                             {"n_genes", model.similarity.entrez_ids.size()},
                             {"n_depth_levels", model.similarity.n_levels}}}};
  for (const char* key : {"cv_fold", "cv_held_out", "cv_fold_groups"}) {  // (a cv fold's model)
    if (provenance.contains(key)) described[key] = provenance[key];
  }
  return described;
}

namespace {

// A model file's checksum: written into the HDF5 user block (the first kUserBlock bytes, which
// libhdf5 leaves to the application) after the file is complete, over every byte after it, and
// checked by load_model, so that a model damaged in transfer or on disk is refused rather than
// predicting with altered weights. Files without one (written before 0.44) are read as before.
constexpr std::size_t kUserBlock = 512;
constexpr std::string_view kChecksumMagic = "celltyper-model checksum ";

/// 64-bit checksum of the bytes from `offset` to the end of `path` (8-byte words multiplied and
/// rotated, the length mixed in, a SplitMix64 step); nullopt when the file cannot be read.
std::optional<std::uint64_t> file_checksum(const std::string& path, std::size_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in || !in.seekg(static_cast<std::streamoff>(offset))) return std::nullopt;
  std::uint64_t h = 0x243F6A8885A308D3ULL;
  std::uint64_t length = 0;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0) break;
    length += got;
    for (std::size_t i = 0; i < got; i += 8) {  // (the file's last word may be short: zero-padded)
      std::uint64_t word = 0;
      std::memcpy(&word, buffer.data() + i, std::min<std::size_t>(8, got - i));
      h = std::rotl(h ^ (word * 0x9E3779B97F4A7C15ULL), 29) * 0xBF58476D1CE4E5B9ULL;
    }
  }
  if (in.bad()) return std::nullopt;
  return detail::SplitMix64{h ^ length}.next();
}

void write_checksum(const std::string& temporary, const std::string& path) {
  const auto checksum = file_checksum(temporary, kUserBlock);
  std::fstream out(temporary, std::ios::binary | std::ios::in | std::ios::out);
  const std::string header = fmt::format("{}{:016x}\n", kChecksumMagic, checksum.value_or(0));
  if (!checksum || !out || !out.write(header.data(), static_cast<std::streamsize>(header.size())) || !out.flush()) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw IoError(fmt::format("{}: cannot write (disk full?)", path));
  }
}

/// Why a model's bytes differ from those its checksum was written over ("" when they do not, or
/// the file has no checksum). Read without the HDF5 lock (a whole read of the file).
std::string checksum_damage(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string header(kChecksumMagic.size() + 17, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header.size())) || !header.starts_with(kChecksumMagic)) return {};  // (none)
  const std::string hex = header.substr(kChecksumMagic.size(), 16);
  std::uint64_t recorded = 0;
  const auto [end, error] = std::from_chars(hex.data(), hex.data() + hex.size(), recorded, 16);
  const auto actual = file_checksum(path, kUserBlock);
  if (error == std::errc() && end == hex.data() + hex.size() && actual && *actual == recorded) return {};
  return fmt::format("{}: the model file is damaged: its bytes differ from those it was written with (checksum {:016x}, recorded {}): "
                     "copied incompletely, or altered in transfer, on disk or by an HDF5 editor (h5py's 'r+' / 'a')? Copy it again, or "
                     "train it again",
                     path, actual.value_or(0), hex);
}

}  // namespace

void save_model(const CellTypeModel& model, const std::string& path) {
  if (!model.classifier || !model.classifier->trained()) throw InputError("save_model: the model has no trained classifier");
  if (model.features != kFeaturesGenept && model.features != kFeaturesExpression) {
    throw InputError(fmt::format("save_model: unknown feature route '{}'", model.features));
  }
  const ClassifierState state = model.classifier->export_state();
  OutputFile output(path);  // temporary file, renamed into place by commit()
  const std::string& temporary = output.temporary();
  {
    auto lock = h5::hdf5_lock();
    h5::silence_hdf5_errors();
    Handle creation = h5::untimed_file_plist();
    H5Pset_userblock(creation.get(), kUserBlock);  // (the checksum's place)
    Handle file(H5Fcreate(temporary.c_str(), H5F_ACC_EXCL, creation.get(), H5P_DEFAULT));
    if (!file) throw IoError(fmt::format("cannot create {} (directory missing or not writable?)", temporary));
    try {
      const hid_t root = file.get();
      h5::write_string_attribute(root, "format", kFormatName);
      h5::write_int_array_attribute(root, "version", {kModelFormatVersion});
      h5::write_string_attribute(root, "features", model.features);
      h5::write_string_attribute(root, "celltyper_version", CELLTYPER_VERSION);
      h5::write_string_attribute(root, "created_utc", utc_timestamp());
      const bool reproducible = source_date_epoch().has_value();
      h5::write_string_attribute(root, "provenance_json", dump(reproducible ? without_durations(model.provenance) : model.provenance));
      h5::write_string_attribute(root, "validation_json", dump(reproducible ? without_durations(model.validation) : model.validation));

      Handle classes = h5::create_group(root, "classes");
      h5::write_strings(classes.get(), "name", model.class_names);
      std::vector<std::string> cl_ids = model.class_cl_ids;
      cl_ids.resize(model.class_names.size());
      h5::write_strings(classes.get(), "cl_id", cl_ids);

      Handle gene_group;
      if (model.features == kFeaturesExpression) {
        const ExpressionPanel& panel = model.panel;
        gene_group = h5::create_group(root, "panel");
        h5::write_1d<std::int64_t>(gene_group.get(), "entrez_id", panel.entrez_ids.data(), panel.size());
        h5::write_strings(gene_group.get(), "symbol", panel.symbols);
        h5::write_strings(gene_group.get(), "ensembl_id", panel.ensembl_ids);
        write_size_factor_genes(gene_group.get(), panel.size_factor_genes);
      } else {
        const ModelGenes& genes = model.genes;
        gene_group = h5::create_group(root, "genes");
        h5::write_int_array_attribute(gene_group.get(), "dims", {genes.dims});
        h5::write_string_attribute(gene_group.get(), "store_identity", genes.store_identity);
        h5::write_string_attribute(gene_group.get(), "store_description", genes.store_description);
        h5::write_1d<std::int64_t>(gene_group.get(), "entrez_id", genes.entrez_ids.data(), genes.size());
        h5::write_strings(gene_group.get(), "symbol", genes.symbols);
        h5::write_strings(gene_group.get(), "ensembl_id", genes.ensembl_ids);
        h5::write_2d<float>(gene_group.get(), "vectors", genes.vectors.data(), genes.size(), genes.dims);
        write_size_factor_genes(gene_group.get(), genes.size_factor_genes);
      }

      if (!model.reference.empty()) write_reference_sample(root, model.reference);
      if (!model.similarity.empty()) write_similarity_profile(root, model.similarity);
      Handle classifier = h5::create_group(root, "classifier");
      h5::write_string_attribute(classifier.get(), "type", model.classifier->type());
      h5::write_string_attribute(classifier.get(), "state_json", dump(reproducible ? without_durations(state.attributes) : state.attributes));
      for (const auto& [name, array] : state.float_arrays) {
        Handle dataset = h5::write_1d<float>(classifier.get(), "float32_" + name, array.values.data(),
                                             static_cast<std::int64_t>(array.values.size()), 4);
        h5::write_int_array_attribute(dataset.get(), "shape", array.shape);
      }
      for (const auto& [name, array] : state.double_arrays) {
        Handle dataset = h5::write_1d<double>(classifier.get(), "float64_" + name, array.values.data(),
                                              static_cast<std::int64_t>(array.values.size()));
        h5::write_int_array_attribute(dataset.get(), "shape", array.shape);
      }
      for (const auto& [name, values] : state.int_arrays) {
        h5::write_1d<std::int32_t>(classifier.get(), "int32_" + name, values.data(), static_cast<std::int64_t>(values.size()));
      }
      for (const auto& [name, values] : state.blobs) {
        h5::write_1d<std::uint8_t>(classifier.get(), "bytes_" + name, values.data(), static_cast<std::int64_t>(values.size()));
      }
      classifier.reset();
      gene_group.reset();
      classes.reset();
      if (H5Fflush(root, H5F_SCOPE_GLOBAL) < 0) throw IoError(fmt::format("{}: cannot write (disk full?)", path));
      file.reset();
    } catch (const IoError& error) {  // (a dataset's message names the dataset: say which file too)
      file.reset();
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
      const std::string message = error.what();
      throw IoError(message.starts_with(path + ": ") || message.find(temporary) != std::string::npos ? message
                                                                                                    : fmt::format("{}: {}", path, message));
    } catch (...) {
      file.reset();
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
      throw;
    }
  }
  write_checksum(temporary, path);
  output.commit();
}

namespace {

/// Refuse classifier parameters that are not all finite: NaN weights make every cell
/// "Unassigned" with a NaN score instead of an error.
void check_finite_parameters(const ClassifierState& state, const std::string& path) {
  const auto check = [&path](const auto& values, const std::string& dataset) {
    const auto bad = std::find_if(values.begin(), values.end(), [](auto value) { return !std::isfinite(value); });
    if (bad != values.end()) {
      throw InputError(fmt::format("{}: /classifier/{} has a non-finite value ({}) at index {}; the model file is corrupt, train it again",
                                   path, dataset, *bad, bad - values.begin()));
    }
  };
  for (const auto& [name, array] : state.float_arrays) check(array.values, "float32_" + name);
  for (const auto& [name, array] : state.double_arrays) check(array.values, "float64_" + name);
}

}  // namespace

CellTypeModel load_model(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) throw InputError(fmt::format("{}: no such file (cannot open the model)", path));
  if (std::filesystem::is_directory(path, error)) throw InputError(fmt::format("model {} is a directory", path));
  require_readable(path, "model");
  const std::string damage = checksum_damage(path);  // (said after the format and version checks)
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw InputError(fmt::format("{}: not a celltyper model (not an HDF5 file, or truncated; make one with 'celltyper train')", path));
  }
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file) h5::throw_open_failure(path, path, "the model");
  const hid_t root = file.get();
  const std::string format = string_attr(root, "format");
  if (format != kFormatName) {
    throw InputError(fmt::format("{}: not a celltyper model (root attribute format is '{}', expected '{}')", path, format, kFormatName));
  }
  const auto version = h5::int_array_attribute(root, "version");
  if (version.empty() || version.front() < 1) throw InputError(fmt::format("{}: model has no valid version attribute", path));
  if (version.front() > kModelFormatVersion) {
    throw InputError(fmt::format("{}: model format version {} is newer than this celltyper reads ({}); upgrade celltyper", path,
                                 version.front(), kModelFormatVersion));
  }
  if (!damage.empty()) throw InputError(damage);
  CellTypeModel model;
  try {
    model.provenance = parse_json_attr(root, "provenance_json", path);
    model.validation = parse_json_attr(root, "validation_json", path);
    model.provenance["model_celltyper_version"] = string_attr(root, "celltyper_version");
    model.provenance["model_created_utc"] = string_attr(root, "created_utc");

    Handle names = h5::open_dataset(root, "classes/name", path);
    Handle cl_ids = h5::open_dataset(root, "classes/cl_id", path);
    model.class_names = h5::read_strings(names.get());
    model.class_cl_ids = h5::read_strings(cl_ids.get());
    if (model.class_names.size() < 2 || model.class_cl_ids.size() != model.class_names.size()) {
      throw InputError(fmt::format("{}: /classes/name has {} entries and /classes/cl_id {} (need equal, at least 2)", path,
                                   model.class_names.size(), model.class_cl_ids.size()));
    }
    {  // (a class named twice: its probabilities would be summed under one label by some readers, split by others)
      std::vector<std::string> sorted = model.class_names;
      std::sort(sorted.begin(), sorted.end());
      if (const auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end()) {
        throw InputError(fmt::format("{}: /classes/name names the class '{}' twice: not a model celltyper writes", path, *twice));
      }
    }

    model.features = version.front() >= 2 ? string_attr(root, "features") : std::string(kFeaturesGenept);
    if (model.features == kFeaturesExpression) {
      Handle panel = h5::open_group(root, "panel", path);
      Handle entrez = h5::open_dataset(panel.get(), "entrez_id", path);
      Handle symbols = h5::open_dataset(panel.get(), "symbol", path);
      Handle ensembl = h5::open_dataset(panel.get(), "ensembl_id", path);
      model.panel.entrez_ids = h5::read_all_1d<std::int64_t>(entrez.get());
      model.panel.symbols = h5::read_strings(symbols.get());
      model.panel.ensembl_ids = h5::read_strings(ensembl.get());
      const auto n = model.panel.size();
      if (n < 1 || static_cast<std::int64_t>(model.panel.symbols.size()) != n || static_cast<std::int64_t>(model.panel.ensembl_ids.size()) != n) {
        throw InputError(fmt::format("{}: /panel datasets disagree: {} Entrez ids, {} symbols, {} Ensembl ids", path, n,
                                     model.panel.symbols.size(), model.panel.ensembl_ids.size()));
      }
      std::vector<std::int64_t> sorted = model.panel.entrez_ids;
      std::sort(sorted.begin(), sorted.end());
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) throw InputError(fmt::format("{}: /panel/entrez_id lists a gene twice", path));
      model.panel.size_factor_genes = read_size_factor_genes(panel.get(), path, "/panel");
    } else if (model.features == kFeaturesGenept) {
      Handle genes = h5::open_group(root, "genes", path);
      const auto dims = h5::int_array_attribute(genes.get(), "dims");
      ModelGenes& model_genes = model.genes;
      model_genes.dims = dims.empty() ? 0 : static_cast<int>(dims.front());
      model_genes.store_identity = string_attr(genes.get(), "store_identity");
      model_genes.store_description = string_attr(genes.get(), "store_description");
      Handle entrez = h5::open_dataset(genes.get(), "entrez_id", path);
      Handle symbols = h5::open_dataset(genes.get(), "symbol", path);
      Handle ensembl = h5::open_dataset(genes.get(), "ensembl_id", path);
      Handle vectors = h5::open_dataset(genes.get(), "vectors", path);
      const auto shape = h5::dataset_shape(vectors.get());
      model_genes.entrez_ids = h5::read_all_1d<std::int64_t>(entrez.get());
      model_genes.symbols = h5::read_strings(symbols.get());
      model_genes.ensembl_ids = h5::read_strings(ensembl.get());
      const auto n = static_cast<std::int64_t>(model_genes.entrez_ids.size());
      if (shape.size() != 2 || shape[0] != n || shape[1] != model_genes.dims || model_genes.dims < 1 ||
          static_cast<std::int64_t>(model_genes.symbols.size()) != n || static_cast<std::int64_t>(model_genes.ensembl_ids.size()) != n) {
        throw InputError(fmt::format("{}: /genes datasets disagree: {} Entrez ids, {} symbols, vectors [{}], dims {}", path, n,
                                     model_genes.symbols.size(), fmt::join(shape, " x "), model_genes.dims));
      }
      if (!std::is_sorted(model_genes.entrez_ids.begin(), model_genes.entrez_ids.end()) ||
          std::adjacent_find(model_genes.entrez_ids.begin(), model_genes.entrez_ids.end()) != model_genes.entrez_ids.end()) {
        throw InputError(fmt::format("{}: /genes/entrez_id is not strictly ascending", path));
      }
      model_genes.vectors.resize(static_cast<std::size_t>(n * model_genes.dims));
      if (n > 0) h5::read_rows_2d<float>(vectors.get(), 0, n, model_genes.dims, model_genes.vectors.data());
      for (float value : model_genes.vectors) {
        if (!std::isfinite(value)) throw InputError(fmt::format("{}: /genes/vectors has a non-finite value", path));
      }
      model_genes.size_factor_genes = read_size_factor_genes(genes.get(), path, "/genes");
    } else {
      throw InputError(fmt::format("{}: unknown feature route '{}' (this celltyper knows genept and expression)", path, model.features));
    }

    if (h5::exists(root, "reference")) model.reference = read_reference_sample(root, path, model.class_names.size());
    if (h5::exists(root, "similarity")) model.similarity = read_similarity_profile(root, path, model.class_names.size());
    Handle classifier = h5::open_group(root, "classifier", path);
    const std::string type = string_attr(classifier.get(), "type");
    ClassifierState state;
    state.attributes = parse_json_attr(classifier.get(), "state_json", path);
    for (const auto& member : h5::list_members(classifier.get())) {
      Handle dataset = h5::open_dataset(classifier.get(), member, path);
      auto starts = [&](const char* prefix) { return member.rfind(prefix, 0) == 0; };
      auto strip = [&](const char* prefix) { return member.substr(std::string(prefix).size()); };
      if (starts("float32_")) {
        state.float_arrays[strip("float32_")] = {h5::int_array_attribute(dataset.get(), "shape"), h5::read_all_1d<float>(dataset.get())};
      } else if (starts("float64_")) {
        state.double_arrays[strip("float64_")] = {h5::int_array_attribute(dataset.get(), "shape"), h5::read_all_1d<double>(dataset.get())};
      } else if (starts("int32_")) {
        state.int_arrays[strip("int32_")] = h5::read_all_1d<std::int32_t>(dataset.get());
      } else if (starts("bytes_")) {
        state.blobs[strip("bytes_")] = h5::read_all_1d<std::uint8_t>(dataset.get());
      }
    }
    const bool known = std::any_of(classifier_specs().begin(), classifier_specs().end(), [&](const auto& spec) { return spec.type == type; });
    if (!known) throw InputError(fmt::format("{}: classifier type '{}' is not known to this celltyper", path, type));
    check_finite_parameters(state, path);
    model.classifier = make_classifier(type);
    model.classifier->import_state(state, path);
    if (model.classifier->n_classes() != static_cast<int>(model.class_names.size())) {
      throw InputError(fmt::format("{}: classifier has {} classes but /classes/name lists {}", path, model.classifier->n_classes(),
                                   model.class_names.size()));
    }
    if (model.classifier->n_features() != model.n_features()) {
      throw InputError(fmt::format("{}: classifier expects {} features but the model's {} features have {}", path,
                                   model.classifier->n_features(), model.features, model.n_features()));
    }
  } catch (const IoError& failure) {
    throw InputError(fmt::format("{}: cannot read the model (truncated or corrupt?): {}", path, failure.what()));
  }
  return model;
}

}  // namespace celltyper
