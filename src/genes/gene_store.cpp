// Gene store: HDF5 file of unit-norm gene vectors with provenance; load with integrity checks,
// atomic save, look-ups, truncation, nearest neighbours, export.
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_vector_source.hpp>
#include <celltyper/installed_files.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_text.hpp>
#include <celltyper/output_file.hpp>

#include "genes/gene_names.hpp"
#include "io/hdf5_util.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <numeric>

namespace celltyper {

using h5::Handle;

namespace {

constexpr const char* kFormatName = "celltyper-gene-store";
constexpr std::int64_t kFormatVersion = 1;
constexpr double kUnitNormTolerance = 1e-3;

static_assert(std::endian::native == std::endian::little, "gene stores hash and write little-endian floats");

/// L2-normalise `dims` floats in place (norm accumulated in double); returns the old norm.
double normalise_row(float* row, int dims) {
  double sum = 0;
  for (int j = 0; j < dims; ++j) sum += static_cast<double>(row[j]) * row[j];
  const double norm = std::sqrt(sum);
  if (norm > 0) {
    const double scale = 1.0 / norm;
    for (int j = 0; j < dims; ++j) row[j] = static_cast<float>(row[j] * scale);
  }
  return norm;
}

std::string string_attr(hid_t object, const char* name) { return h5::string_attribute(object, name).value_or(""); }

}  // namespace

// ---- provenance ------------------------------------------------------------------------------

nlohmann::json GeneStoreProvenance::to_json() const {
  return {{"backend", backend},
          {"model", model},
          {"dims", dims},
          {"text_recipe_hash", text_recipe_hash},
          {"gene_table_hash", gene_table_hash},
          {"species", species},
          {"created_utc", created_utc},
          {"celltyper_version", celltyper_version},
          {"extra", extra}};
}

GeneStoreProvenance GeneStoreProvenance::from_json(const nlohmann::json& json) {
  GeneStoreProvenance out;
  if (!json.is_object()) return out;
  out.backend = json.value("backend", "");
  out.model = json.value("model", "");
  out.dims = json.value("dims", 0);
  out.text_recipe_hash = json.value("text_recipe_hash", "");
  out.gene_table_hash = json.value("gene_table_hash", "");
  out.species = json.value("species", "");
  out.created_utc = json.value("created_utc", "");
  out.celltyper_version = json.value("celltyper_version", "");
  if (json.contains("extra") && json["extra"].is_object()) out.extra = json["extra"];
  return out;
}

std::optional<std::int64_t> source_date_epoch() {
  const char* value = std::getenv("SOURCE_DATE_EPOCH");
  if (value == nullptr || *value == '\0') return std::nullopt;
  std::int64_t seconds = 0;
  const char* end = value + std::strlen(value);
  const auto [stop, error] = std::from_chars(value, end, seconds);
  if (error != std::errc() || stop != end || seconds < 0) {
    throw InputError(fmt::format("SOURCE_DATE_EPOCH '{}' is not a number of seconds since 1970-01-01 (unset it, or give e.g. $(git log -1 "
                                 "--format=%ct))",
                                 value));
  }
  return seconds;
}

std::string utc_timestamp() {
  const std::optional<std::int64_t> fixed = source_date_epoch();
  const std::time_t now = fixed ? static_cast<std::time_t>(*fixed) : std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buffer;
}

// ---- construction ----------------------------------------------------------------------------

GeneStore::GeneStore(std::vector<std::int64_t> entrez_ids, std::vector<std::string> symbols,
                     std::vector<std::string> ensembl_ids, std::vector<float> matrix, int dims,
                     GeneStoreProvenance provenance)
    : dims_(dims), provenance_(std::move(provenance)) {
  const std::size_t n = entrez_ids.size();
  if (dims < 1) throw InputError(fmt::format("gene store: dims must be at least 1, got {}", dims));
  if (symbols.size() != n || ensembl_ids.size() != n || matrix.size() != n * static_cast<std::size_t>(dims)) {
    throw InputError(fmt::format("gene store: {} Entrez ids, {} symbols, {} Ensembl ids and {} matrix values do not "
                                 "make a {} x {} store",
                                 n, symbols.size(), ensembl_ids.size(), matrix.size(), n, dims));
  }
  const auto row_length = static_cast<std::size_t>(dims);
  if (std::is_sorted(entrez_ids.begin(), entrez_ids.end())) {
    // Already in order (the usual case): take the vectors over without copying the matrix.
    entrez_ids_ = std::move(entrez_ids);
    symbols_ = std::move(symbols);
    ensembl_ids_ = std::move(ensembl_ids);
    matrix_ = std::move(matrix);
  } else {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return entrez_ids[a] < entrez_ids[b]; });
    entrez_ids_.resize(n);
    symbols_.resize(n);
    ensembl_ids_.resize(n);
    matrix_.resize(matrix.size());
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t from = order[i];
      entrez_ids_[i] = entrez_ids[from];
      symbols_[i] = std::move(symbols[from]);
      ensembl_ids_[i] = std::move(ensembl_ids[from]);
      std::copy_n(matrix.data() + from * row_length, dims, matrix_.data() + i * row_length);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0 && entrez_ids_[i] == entrez_ids_[i - 1]) {
      throw InputError(fmt::format("gene store: Entrez id {} appears twice", entrez_ids_[i]));
    }
    float* row = matrix_.data() + i * row_length;
    for (int j = 0; j < dims; ++j) {
      if (!std::isfinite(row[j])) {
        throw InputError(fmt::format("gene store: the vector of gene {} ({}) has a non-finite value at dimension {}",
                                     symbols_[i], entrez_ids_[i], j));
      }
    }
    if (normalise_row(row, dims) == 0) {
      throw InputError(fmt::format("gene store: the vector of gene {} ({}) is all zero", symbols_[i], entrez_ids_[i]));
    }
  }
  if (provenance_.dims == 0) provenance_.dims = dims;
}

// ---- HDF5 ------------------------------------------------------------------------------------

namespace {

/// Open a gene store read-only after the checks every reader makes (exists, readable, HDF5, the
/// celltyper_format attribute, a format version this build reads). Caller holds the HDF5 lock.
Handle open_store(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) throw IoError(fmt::format("cannot open gene store {}: no such file", path));
  if (std::filesystem::is_directory(path, error)) throw InputError(fmt::format("gene store {} is a directory", path));
  require_readable(path, "gene store");
  h5::silence_hdf5_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw InputError(fmt::format("{}: not a gene store (not an HDF5 file; make one with 'celltyper genes embed')", path));
  }
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file) h5::throw_open_failure(path, path);
  const hid_t root = file.get();
  const std::string format = string_attr(root, "celltyper_format");
  if (format != kFormatName) {
    throw InputError(fmt::format("{}: not a celltyper gene store (root attribute celltyper_format is '{}', expected '{}')",
                                 path, format, kFormatName));
  }
  const auto version = h5::int_array_attribute(root, "format_version");
  if (version.empty() || version.front() > kFormatVersion) {
    throw UnsupportedError(fmt::format("{}: gene store format version {} is newer than this celltyper reads ({})", path,
                                       version.empty() ? std::string("?") : std::to_string(version.front()), kFormatVersion));
  }
  return file;
}

/// The root attributes of an open store; `store_dims` when the file records no `dims`.
GeneStoreProvenance read_provenance(hid_t root, const std::string& path, int store_dims) {
  GeneStoreProvenance provenance;
  provenance.backend = string_attr(root, "backend");
  provenance.model = string_attr(root, "model");
  const auto dims = h5::int_array_attribute(root, "dims");
  provenance.dims = dims.empty() ? store_dims : static_cast<int>(dims.front());
  provenance.text_recipe_hash = string_attr(root, "text_recipe_hash");
  provenance.gene_table_hash = string_attr(root, "gene_table_hash");
  provenance.species = string_attr(root, "species");
  provenance.created_utc = string_attr(root, "created_utc");
  provenance.celltyper_version = string_attr(root, "celltyper_version");
  const std::string extra = string_attr(root, "provenance_json");
  if (!extra.empty()) {
    try {
      provenance.extra = nlohmann::json::parse(extra);
    } catch (const nlohmann::json::exception&) {
      throw InputError(fmt::format("{}: root attribute provenance_json is not valid JSON", path));
    }
  }
  return provenance;
}

}  // namespace

nlohmann::json GeneStore::read_info(const std::string& path) {
  auto lock = h5::hdf5_lock();
  Handle file = open_store(path);
  const hid_t root = file.get();
  const std::string identity = string_attr(root, "identity_hash");
  std::vector<std::int64_t> shape;
  if (h5::exists(root, "embeddings")) shape = h5::dataset_shape(h5::open_dataset(root, "embeddings", path).get());
  if (identity.empty() || shape.size() != 2) {  // an older store: hash the matrix itself
    lock.unlock();
    return load(path).info_json();
  }
  nlohmann::json json = read_provenance(root, path, static_cast<int>(shape[1])).to_json();
  json["n_genes"] = shape[0];
  json["store_dims"] = shape[1];
  json["identity_hash"] = identity;
  return json;
}

GeneStore GeneStore::load(const std::string& path) {
  auto lock = h5::hdf5_lock();
  Handle file = open_store(path);
  const hid_t root = file.get();
  GeneStore store;
  try {
    Handle entrez = h5::open_dataset(root, "genes/entrez_id", path);
    Handle symbols = h5::open_dataset(root, "genes/symbol", path);
    Handle ensembl = h5::open_dataset(root, "genes/ensembl_id", path);
    Handle embeddings = h5::open_dataset(root, "embeddings", path);
    const auto shape = h5::dataset_shape(embeddings.get());
    if (shape.size() != 2 || shape[1] < 1) {
      throw InputError(fmt::format("{}: /embeddings must be a 2-D [n_genes x dims] matrix, found shape [{}]", path,
                                   fmt::join(shape, " x ")));
    }
    const std::int64_t n = shape[0];
    for (const auto& [name, handle] : {std::pair<const char*, hid_t>{"genes/entrez_id", entrez.get()},
                                       {"genes/symbol", symbols.get()}, {"genes/ensembl_id", ensembl.get()}}) {
      const auto length = h5::dataset_shape(handle);
      if (length.size() != 1 || length[0] != n) {
        throw InputError(fmt::format("{}: /{} has shape [{}] but /embeddings has {} rows: shape mismatch", path, name,
                                     fmt::join(length, " x "), n));
      }
    }
    if (!h5::is_string_dataset(symbols.get()) || !h5::is_string_dataset(ensembl.get())) {
      throw InputError(fmt::format("{}: /genes/symbol and /genes/ensembl_id must be string datasets", path));
    }
    store.dims_ = static_cast<int>(shape[1]);
    store.entrez_ids_ = h5::read_all_1d<std::int64_t>(entrez.get());
    store.symbols_ = h5::read_strings(symbols.get());
    store.ensembl_ids_ = h5::read_strings(ensembl.get());
    store.matrix_.resize(static_cast<std::size_t>(n) * static_cast<std::size_t>(shape[1]));
    h5::read_rows_2d<float>(embeddings.get(), 0, n, shape[1], store.matrix_.data());
  } catch (const IoError& failure) {
    throw InputError(fmt::format("{}: cannot read the gene store (truncated or corrupt?): {}", path, failure.what()));
  }
  store.provenance_ = read_provenance(root, path, store.dims_);
  lock.unlock();

  // Integrity: finite values, unit rows, unique ascending ids.
  const auto n = store.n_genes();
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = store.row(i);
    double sum = 0;
    for (int j = 0; j < store.dims_; ++j) {
      if (!std::isfinite(row[j])) {
        throw InputError(fmt::format("{}: /embeddings row {} (gene {}) has a non-finite value at column {}", path, i,
                                     store.symbols_[static_cast<std::size_t>(i)], j));
      }
      sum += static_cast<double>(row[j]) * row[j];
    }
    if (std::abs(std::sqrt(sum) - 1.0) > kUnitNormTolerance) {
      throw InputError(fmt::format("{}: /embeddings row {} (gene {}) has norm {:.6g}, expected 1 (within {})", path, i,
                                   store.symbols_[static_cast<std::size_t>(i)], std::sqrt(sum), kUnitNormTolerance));
    }
    if (i > 0 && store.entrez_ids_[static_cast<std::size_t>(i)] <= store.entrez_ids_[static_cast<std::size_t>(i - 1)]) {
      if (store.entrez_ids_[static_cast<std::size_t>(i)] == store.entrez_ids_[static_cast<std::size_t>(i - 1)]) {
        throw InputError(fmt::format("{}: /genes/entrez_id repeats {} (rows {} and {})", path,
                                     store.entrez_ids_[static_cast<std::size_t>(i)], i - 1, i));
      }
      // Not ascending: reorder (and check all duplicates) through the constructor.
      return GeneStore(std::move(store.entrez_ids_), std::move(store.symbols_), std::move(store.ensembl_ids_),
                       std::move(store.matrix_), store.dims_, std::move(store.provenance_));
    }
  }
  return store;
}

void GeneStore::save(const std::string& path) const {
  OutputFile output(path);
  const std::string& temporary = output.temporary();
  const std::string identity = identity_hash();
  {
    auto lock = h5::hdf5_lock();
    h5::silence_hdf5_errors();
    Handle file(H5Fcreate(temporary.c_str(), H5F_ACC_EXCL, h5::untimed_file_plist().get(), H5P_DEFAULT));
    if (!file) throw IoError(fmt::format("{}: cannot create the gene store (directory missing or not writable?)", path));
    try {
      const hid_t root = file.get();
      h5::write_string_attribute(root, "celltyper_format", kFormatName);
      h5::write_int_array_attribute(root, "format_version", {kFormatVersion});
      h5::write_string_attribute(root, "backend", provenance_.backend);
      h5::write_string_attribute(root, "model", provenance_.model);
      h5::write_int_array_attribute(root, "dims", {provenance_.dims});
      h5::write_string_attribute(root, "text_recipe_hash", provenance_.text_recipe_hash);
      h5::write_string_attribute(root, "gene_table_hash", provenance_.gene_table_hash);
      h5::write_string_attribute(root, "species", provenance_.species);
      h5::write_string_attribute(root, "created_utc", provenance_.created_utc);
      h5::write_string_attribute(root, "celltyper_version", provenance_.celltyper_version);
      h5::write_string_attribute(root, "identity_hash", identity);
      h5::write_string_attribute(root, "provenance_json", provenance_.extra.dump(-1, ' ', false,
                                                                                 nlohmann::json::error_handler_t::replace));
      Handle genes = h5::create_group(root, "genes");
      h5::write_1d<std::int64_t>(genes.get(), "entrez_id", entrez_ids_.data(), n_genes());
      h5::write_strings(genes.get(), "symbol", symbols_);
      h5::write_strings(genes.get(), "ensembl_id", ensembl_ids_);
      h5::write_2d<float>(root, "embeddings", matrix_.data(), n_genes(), dims_);
      file.reset();
    } catch (...) {
      file.reset();
      throw;
    }
  }
  output.commit();
}

// ---- queries ---------------------------------------------------------------------------------

std::int32_t GeneStore::find_entrez(std::int64_t entrez_id) const {
  const auto position = std::lower_bound(entrez_ids_.begin(), entrez_ids_.end(), entrez_id);
  if (position == entrez_ids_.end() || *position != entrez_id) return -1;
  return static_cast<std::int32_t>(position - entrez_ids_.begin());
}

std::int32_t GeneStore::find_gene(const std::string& name, const GeneTable* table) const {
  if (name.empty()) return -1;
  if (genes_detail::is_all_digits(name)) {
    const std::int32_t row = find_entrez(std::stoll(name));
    if (row >= 0) return row;
  }
  if (const auto core = genes_detail::ensembl_gene_core(name)) {
    for (std::size_t i = 0; i < ensembl_ids_.size(); ++i) {
      if (ensembl_ids_[i] == *core) return static_cast<std::int32_t>(i);
    }
  }
  if (table != nullptr) {
    const std::int32_t gene = resolve_gene_name(*table, name);
    if (gene != kNoGene) {
      const std::int32_t row = find_entrez(table->gene(gene).entrez_id);
      if (row >= 0) return row;
    }
  }
  for (std::size_t i = 0; i < symbols_.size(); ++i) {
    if (symbols_[i] == name) return static_cast<std::int32_t>(i);
  }
  const std::string lower = genes_detail::ascii_lower(name);
  for (std::size_t i = 0; i < symbols_.size(); ++i) {
    if (genes_detail::ascii_lower(symbols_[i]) == lower) return static_cast<std::int32_t>(i);
  }
  return -1;
}

std::string GeneStore::identity_hash() const {
  ContentHasher hasher;
  hasher.integer(dims_).integer(n_genes());
  hasher.bytes(entrez_ids_.data(), entrez_ids_.size() * sizeof(std::int64_t));
  hasher.bytes(matrix_.data(), matrix_.size() * sizeof(float));
  return hasher.hex();
}

nlohmann::json GeneStore::info_json() const {
  nlohmann::json json = provenance_.to_json();
  json["n_genes"] = n_genes();
  json["store_dims"] = dims_;
  json["identity_hash"] = identity_hash();
  return json;
}

GeneStore GeneStore::truncated(int k) const {
  if (k < 1 || k > dims_) throw InputError(fmt::format("truncate: dims must be in 1..{}, got {}", dims_, k));
  std::vector<std::int64_t> ids;
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl;
  std::vector<float> matrix;
  matrix.reserve(static_cast<std::size_t>(n_genes()) * static_cast<std::size_t>(k));
  std::int64_t n_dropped = 0;
  std::vector<float> prefix(static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < n_genes(); ++i) {
    std::copy_n(row(i), k, prefix.data());
    if (normalise_row(prefix.data(), k) == 0) {
      ++n_dropped;
      continue;
    }
    ids.push_back(entrez_ids_[static_cast<std::size_t>(i)]);
    symbols.push_back(symbols_[static_cast<std::size_t>(i)]);
    ensembl.push_back(ensembl_ids_[static_cast<std::size_t>(i)]);
    matrix.insert(matrix.end(), prefix.begin(), prefix.end());
  }
  GeneStoreProvenance provenance = provenance_;
  provenance.extra["truncation"] = {{"from_dims", dims_}, {"to_dims", k}, {"n_dropped_zero_rows", n_dropped}};
  return GeneStore(std::move(ids), std::move(symbols), std::move(ensembl), std::move(matrix), k, std::move(provenance));
}

std::vector<std::pair<std::int32_t, float>> GeneStore::nearest(std::int32_t query, int k) const {
  if (query < 0 || query >= n_genes()) throw InputError(fmt::format("nearest: row {} out of range 0..{}", query, n_genes() - 1));
  std::vector<std::pair<std::int32_t, float>> scored;
  scored.reserve(static_cast<std::size_t>(n_genes()));
  const float* q = row(query);
  for (std::int64_t i = 0; i < n_genes(); ++i) {
    if (i == query) continue;
    const float* r = row(i);
    float dot = 0;
    for (int j = 0; j < dims_; ++j) dot += q[j] * r[j];
    scored.emplace_back(static_cast<std::int32_t>(i), dot);
  }
  const auto better = [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); };
  const std::size_t keep = std::min(scored.size(), static_cast<std::size_t>(std::max(k, 0)));
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(keep), scored.end(), better);
  scored.resize(keep);
  return scored;
}

// ---- default path, export ----------------------------------------------------------------------

std::string default_gene_store_path() {
  if (const char* env = std::getenv("CELLTYPER_GENE_STORE"); env != nullptr && env[0] != '\0') return env;
  if (std::filesystem::path installed = installed_file("gene_embeddings.h5"); !installed.empty()) return installed.string();
  // (none installed: where setup.sh puts it, for the message that says to run it)
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  const std::filesystem::path directory = error ? std::filesystem::current_path(error) : exe.parent_path();
  return (directory / "share" / "celltyper" / "gene_embeddings.h5").string();
}

std::string resolve_gene_store_path(const std::string& path) {
  const std::string chosen = path.empty() ? default_gene_store_path() : path;
  std::error_code error;
  if (!std::filesystem::exists(chosen, error)) {
    if (path.empty()) {
      const char* environment = std::getenv("CELLTYPER_GENE_STORE");
      if (environment != nullptr && environment[0] != '\0') {
        throw InputError(fmt::format("no gene store at {} (named by CELLTYPER_GENE_STORE): correct or unset the variable, or pass --genes",
                                     chosen));
      }
      throw InputError(fmt::format("no gene store at {} (the default; set --genes or CELLTYPER_GENE_STORE): run "
                                   "scripts/setup.sh or celltyper genes embed",
                                   chosen));
    }
    throw InputError(fmt::format("gene store {} does not exist: run scripts/setup.sh or celltyper genes embed", chosen));
  }
  return chosen;
}

void export_gene_store_tsv(const GeneStore& store, const std::string& prefix) {
  std::string content = "entrez_id\tsymbol\tensembl_id";
  for (int j = 0; j < store.dims(); ++j) content += fmt::format("\td{}", j);
  content += '\n';
  content.reserve(content.size() + static_cast<std::size_t>(store.n_genes()) * (32 + 12 * static_cast<std::size_t>(store.dims())));
  for (std::int64_t i = 0; i < store.n_genes(); ++i) {
    const auto index = static_cast<std::size_t>(i);
    content += fmt::format("{}\t{}\t{}", store.entrez_ids()[index], store.symbols()[index], store.ensembl_ids()[index]);
    const float* row = store.row(i);
    for (int j = 0; j < store.dims(); ++j) content += fmt::format("\t{}", row[j]);
    content += '\n';
  }
  write_output_file(prefix + ".tsv", content);
}

void export_gene_store_npy(const GeneStore& store, const std::string& prefix) {
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", store.n_genes(), store.dims());
  // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, '\n' last.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string content("\x93NUMPY\x01\x00", 8);
  const auto length = static_cast<std::uint16_t>(header.size());
  content += static_cast<char>(length & 0xff);
  content += static_cast<char>(length >> 8);
  content += header;
  const auto* bytes = reinterpret_cast<const char*>(store.matrix().data());
  content.append(bytes, store.matrix().size() * sizeof(float));
  write_output_file(prefix + ".npy", content);
  std::string genes = "entrez_id\tsymbol\tensembl_id\n";
  for (std::int64_t i = 0; i < store.n_genes(); ++i) {
    const auto index = static_cast<std::size_t>(i);
    genes += fmt::format("{}\t{}\t{}\n", store.entrez_ids()[index], store.symbols()[index], store.ensembl_ids()[index]);
  }
  write_output_file(prefix + ".genes.tsv", genes);
}

GeneVectorSource store_vector_source(const GeneStore& store, std::string description) {
  return {store.dims(),
          [&store](std::int64_t entrez) -> const float* {
            const std::int32_t row = store.find_entrez(entrez);
            return row < 0 ? nullptr : store.row(row);
          },
          store.identity_hash(), std::move(description)};
}

}  // namespace celltyper
