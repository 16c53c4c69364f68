#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/row_subset_dataset.hpp>

#include "io/hdf5_open.hpp"
#include "io/hdf5_util.hpp"
#include "io/matrix_readers.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace celltyper {

using h5::Handle;

namespace {

bool is_numeric_dtype(const std::string& dtype) {
  return dtype.rfind("int", 0) == 0 || dtype.rfind("uint", 0) == 0 || dtype.rfind("float", 0) == 0;
}

/// Text form of numeric categories (pandas prints integers without a decimal point).
std::vector<std::string> numeric_categories_as_text(hid_t dataset, const std::string& dtype) {
  std::vector<std::string> out;
  if (dtype.rfind("float", 0) == 0) {
    for (const double value : h5::read_all_1d<double>(dataset)) out.push_back(fmt::format("{}", value));
  } else {
    for (const std::int64_t value : h5::read_all_1d<std::int64_t>(dataset)) out.push_back(fmt::format("{}", value));
  }
  return out;
}


}  // namespace

struct H5adFile::Impl {
  std::string path;
  H5adOpenOptions options;
  std::shared_ptr<RemoteFile> remote;  // http(s):// or s3:// files (declared first: outlives `file`)
  Handle file;
  // A MuData file (.h5mu): the gene-expression modality's AnnData group (/mod/<name>), whose
  // X, obs, var, layers, obsm and uns are read as a plain .h5ad's; empty for an .h5ad.
  Handle modality_group;
  std::string modality;
  std::vector<std::string> modalities;
  std::int64_t n_obs = 0;
  std::int64_t n_vars = 0;
  std::string encoding_version;

  /// The AnnData's root: the file, or the MuData modality's group.
  [[nodiscard]] hid_t root() const { return modality_group ? modality_group.get() : file.get(); }

  [[noreturn]] void fail(const std::string& message) const { throw InputError(fmt::format("{}: {}", path, message)); }

  /// Read one column (a dataset or an encoded group) of the data frame group `frame`.
  Column read_column(hid_t frame, const std::string& frame_path, const std::string& name) const {
    const std::string where = frame_path + "/" + name;
    const H5O_type_t type = h5::object_type(frame, name);
    if (type == H5O_TYPE_DATASET) {
      Handle dataset = h5::open_dataset(frame, name, path);
      // anndata 0.7: categorical codes carry a `categories` reference to __categories/<name>.
      if (h5::has_attribute(dataset.get(), "categories")) return read_legacy_categorical(frame, dataset.get(), where, name);
      const auto encoding = h5::string_attribute(dataset.get(), "encoding-type");
      if (encoding && *encoding != "array" && *encoding != "string-array") {
        fail(fmt::format("{} has unknown encoding-type '{}'", where, *encoding));
      }
      return h5::read_array_column(dataset.get(), name);
    }
    if (type != H5O_TYPE_GROUP) fail(fmt::format("{} is missing", where));
    Handle group = h5::open_group(frame, name, path);
    const std::string encoding = h5::string_attribute(group.get(), "encoding-type").value_or("");
    Column column;
    column.name = name;
    if (encoding == "categorical") {
      column.kind = ColumnKind::kCategorical;
      column.dtype = "category";
      column.ordered = h5::bool_attribute(group.get(), "ordered").value_or(false);
      Handle codes = h5::open_dataset(group.get(), "codes", path);
      Handle categories = h5::open_dataset(group.get(), "categories", path);
      column.codes = h5::read_all_1d<std::int32_t>(codes.get());
      column.categories_dtype = h5::dtype_name(categories.get());
      column.categories = column.categories_dtype == "str" ? h5::read_strings(categories.get())
                                                           : numeric_categories_as_text(categories.get(), column.categories_dtype);
      check_codes(column, where);
    } else if (encoding == "nullable-integer" || encoding == "nullable-boolean" || encoding == "nullable-string-array") {
      Handle values = h5::open_dataset(group.get(), "values", path);
      Handle mask = h5::open_dataset(group.get(), "mask", path);
      column = h5::read_array_column(values.get(), name);
      column.mask = h5::read_all_1d<std::uint8_t>(mask.get());
      if (column.kind == ColumnKind::kInt) column.kind = ColumnKind::kNullableInt;
      if (column.kind == ColumnKind::kBool) column.kind = ColumnKind::kNullableBool;
      if (column.mask.size() != column.size()) fail(fmt::format("{}: mask has {} entries for {} values", where, column.mask.size(), column.size()));
    } else {
      fail(fmt::format("{} has unknown encoding-type '{}'", where, encoding.empty() ? std::string("(none)") : encoding));
    }
    return column;
  }

  Column read_legacy_categorical(hid_t frame, hid_t codes, const std::string& where, const std::string& name) const {
    Column column;
    column.name = name;
    column.kind = ColumnKind::kCategorical;
    column.dtype = "category";
    column.codes = h5::read_all_1d<std::int32_t>(codes);
    column.ordered = h5::bool_attribute(codes, "ordered").value_or(false);
    Handle attribute(H5Aopen(codes, "categories", H5P_DEFAULT));
    hobj_ref_t reference{};
    if (!attribute || H5Aread(attribute.get(), H5T_STD_REF_OBJ, &reference) < 0) {
      fail(fmt::format("{}: cannot read the 'categories' reference", where));
    }
    Handle categories(H5Rdereference2(frame, H5P_DEFAULT, H5R_OBJECT, &reference));
    if (!categories) fail(fmt::format("{}: dangling 'categories' reference", where));
    column.categories_dtype = h5::dtype_name(categories.get());
    column.categories = column.categories_dtype == "str" ? h5::read_strings(categories.get())
                                                         : numeric_categories_as_text(categories.get(), column.categories_dtype);
    check_codes(column, where);
    return column;
  }

  void check_codes(const Column& column, const std::string& where) const {
    // (categories named twice would merge their cells into one label; pandas and anndata refuse them)
    std::unordered_map<std::string_view, std::size_t> first;
    for (std::size_t i = 0; i < column.categories.size(); ++i) {
      if (const auto [at, fresh] = first.emplace(column.categories[i], i); !fresh) {
        fail(fmt::format("{}: the category '{}' is named twice (categories {} and {}): its cells' labels would merge; categories must be "
                         "unique (pandas refuses such a column)",
                         where, column.categories[i], at->second, i));
      }
    }
    const auto n = static_cast<std::int32_t>(column.categories.size());
    for (std::size_t i = 0; i < column.codes.size(); ++i) {
      if (column.codes[i] < -1 || column.codes[i] >= n) {
        fail(fmt::format("{}: code {} at row {} is outside the {} categories", where, column.codes[i], i, n));
      }
    }
  }

  /// The data frame group `frame_path` of the AnnData (of a MuData file's own root with `file_root`).
  DataFrame read_frame(const std::string& frame_path, const std::vector<std::string>* only, std::int64_t expected_rows, bool file_root = false) const {
    auto lock = h5::hdf5_lock();
    const hid_t base = file_root ? file.get() : root();
    DataFrame frame;
    frame.origin = fmt::format("{}:/{}", path, frame_path);
    if (h5::object_type(base, frame_path) != H5O_TYPE_GROUP) {
      if (h5::object_type(base, frame_path) == H5O_TYPE_DATASET) {
        fail(fmt::format("{} is a compound dataset (anndata < 0.7); re-save the file with a recent anndata", frame_path));
      }
      // anndata writes obs/var always; tolerate absence with a generated index (of a sane size:
      // a shape claimed by a damaged file must not make us allocate gigabytes of names).
      constexpr std::int64_t kMaxGeneratedIndex = 10'000'000;
      if (expected_rows > kMaxGeneratedIndex) {
        fail(fmt::format("{} is missing, and names for {} rows will not be made up: write the file with anndata (it writes {})",
                         frame_path, expected_rows, frame_path));
      }
      for (std::int64_t i = 0; i < expected_rows; ++i) frame.index.push_back(std::to_string(i));
      return frame;
    }
    Handle group = h5::open_group(base, frame_path, path);
    const auto encoding = h5::string_attribute(group.get(), "encoding-type");
    if (encoding && *encoding != "dataframe") fail(fmt::format("{} has encoding-type '{}', expected 'dataframe'", frame_path, *encoding));
    frame.index_name = h5::string_attribute(group.get(), "_index").value_or("_index");
    if (!h5::exists(group.get(), frame.index_name)) fail(fmt::format("{} has no index dataset '{}'", frame_path, frame.index_name));
    {
      Handle index = h5::open_dataset(group.get(), frame.index_name, path);
      if (h5::is_string_dataset(index.get())) {
        frame.index = h5::read_strings(index.get());
      } else {
        const Column numeric = h5::read_array_column(index.get(), frame.index_name);
        for (std::size_t i = 0; i < numeric.size(); ++i) frame.index.push_back(numeric.value_as_string(i));
      }
    }
    std::vector<std::string> order = h5::string_array_attribute(group.get(), "column-order");
    if (!h5::has_attribute(group.get(), "column-order")) {
      for (const auto& member : h5::list_members(group.get())) {
        if (member != frame.index_name && member != "__categories") order.push_back(member);
      }
    }
    for (const auto& name : order) {
      if (only != nullptr && std::find(only->begin(), only->end(), name) == only->end()) continue;
      Column column = read_column(group.get(), frame_path, name);
      if (column.size() != frame.index.size()) {
        fail(fmt::format("{}/{} has {} rows but the index has {}", frame_path, name, column.size(), frame.index.size()));
      }
      frame.columns.push_back(std::move(column));
    }
    if (expected_rows >= 0 && static_cast<std::int64_t>(frame.index.size()) != expected_rows) {
      fail(fmt::format("{} has {} rows but X has {}", frame_path, frame.index.size(), expected_rows));
    }
    return frame;
  }

  /// Rows of the data frame group `frame` (length of its index), -1 when the group is absent.
  std::int64_t frame_rows(const std::string& frame) const {
    const hid_t root = this->root();
    if (h5::object_type(root, frame) != H5O_TYPE_GROUP) return -1;
    Handle group = h5::open_group(root, frame, path);
    const std::string index_name = h5::string_attribute(group.get(), "_index").value_or("_index");
    if (!h5::exists(group.get(), index_name)) fail(fmt::format("{} has no index dataset '{}'", frame, index_name));
    return h5::dataset_length(h5::open_dataset(group.get(), index_name, path).get());
  }

  /// Describe the matrix stored at `source` (a dense dataset or a sparse group).
  MatrixInfo describe(const std::string& source) const {
    auto lock = h5::hdf5_lock();
    MatrixInfo info;
    info.source = source;
    const H5O_type_t type = h5::object_type(root(), source);
    if (type == H5O_TYPE_UNKNOWN) fail(fmt::format("matrix '{}' is missing", source));
    if (type == H5O_TYPE_DATASET) {
      Handle dataset = h5::open_dataset(root(), source, path);
      const auto encoding = h5::string_attribute(dataset.get(), "encoding-type");
      if (encoding && *encoding != "array") fail(fmt::format("{} has unknown encoding-type '{}'", source, *encoding));
      const auto shape = h5::dataset_shape(dataset.get());
      if (shape.size() != 2) fail(fmt::format("{} is a dense array of rank {}, expected 2", source, shape.size()));
      info.encoding = MatrixEncoding::kDense;
      info.n_rows = shape[0];
      info.n_cols = shape[1];
      info.nnz = shape[0] * shape[1];
      info.value_dtype = h5::dtype_name(dataset.get());
      info.compression = h5::compression_name(dataset.get());
      info.chunks = h5::chunk_shape(dataset.get());
      info.encoding_version = h5::string_attribute(dataset.get(), "encoding-version").value_or("");
      info.stored_bytes = h5::storage_bytes(dataset.get());
      if (!is_numeric_dtype(info.value_dtype)) fail(fmt::format("{} holds {} values, expected numbers", source, info.value_dtype));
      // (a sparse matrix missing its chunks is refused as damaged; a dense one read as its fill
      // value, zeros, was taken for cells without counts)
      if (info.nnz > 0 && info.stored_bytes == 0) {
        fail(fmt::format("{} is a dense {} x {} array the file never stored (every value would read as its fill value): a damaged file; "
                         "write it again",
                         source, info.n_rows, info.n_cols));
      }
      return info;
    }
    Handle group = h5::open_group(root(), source, path);
    std::string encoding = h5::string_attribute(group.get(), "encoding-type").value_or("");
    std::vector<std::int64_t> shape = h5::int_array_attribute(group.get(), "shape");
    if (encoding.empty()) {  // anndata 0.7 / h5sparse
      const std::string legacy = h5::string_attribute(group.get(), "h5sparse_format").value_or("");
      if (legacy == "csr" || legacy == "csc") encoding = legacy + "_matrix";
      if (shape.empty()) shape = h5::int_array_attribute(group.get(), "h5sparse_shape");
    }
    if (encoding == "csr_matrix") {
      info.encoding = MatrixEncoding::kCsr;
    } else if (encoding == "csc_matrix") {
      info.encoding = MatrixEncoding::kCsc;
    } else {
      fail(fmt::format("{} has unknown encoding-type '{}' (expected csr_matrix, csc_matrix or a dense array)", source,
                       encoding.empty() ? std::string("(none)") : encoding));
    }
    if (shape.size() != 2 || shape[0] < 0 || shape[1] < 0) fail(fmt::format("{} has no valid 'shape' attribute", source));
    info.n_rows = shape[0];
    info.n_cols = shape[1];
    if (info.n_cols > std::int64_t{2147483647}) fail(fmt::format("{} has {} columns; at most 2^31 - 1 are supported", source, info.n_cols));
    info.encoding_version = h5::string_attribute(group.get(), "encoding-version").value_or("");
    for (const char* part : {"data", "indices", "indptr"}) {
      if (h5::object_type(group.get(), part) != H5O_TYPE_DATASET) fail(fmt::format("{}/{} is missing", source, part));
    }
    Handle data = h5::open_dataset(group.get(), "data", path);
    Handle indices = h5::open_dataset(group.get(), "indices", path);
    Handle indptr = h5::open_dataset(group.get(), "indptr", path);
    info.nnz = h5::dataset_length(data.get());
    info.value_dtype = h5::dtype_name(data.get());
    info.index_dtype = h5::dtype_name(indices.get());
    info.compression = h5::compression_name(data.get());
    info.chunks = h5::chunk_shape(data.get());
    info.stored_bytes = h5::storage_bytes(data.get()) + h5::storage_bytes(indices.get()) + h5::storage_bytes(indptr.get());
    if (!is_numeric_dtype(info.value_dtype)) fail(fmt::format("{}/data holds {} values, expected numbers", source, info.value_dtype));
    if (info.index_dtype.find("int") == std::string::npos) fail(fmt::format("{}/indices holds {} values, expected integers", source, info.index_dtype));
    return info;
  }
};

H5adFile::H5adFile(const std::string& path, const H5adOpenOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->options = options;
  const bool remote = is_remote_path(path);
  if (!remote) {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) throw InputError(fmt::format("{}: no such file", path));
    if (std::filesystem::is_directory(path, error)) throw InputError(fmt::format("{}: is a directory, expected an .h5ad file", path));
    require_readable(path, "h5ad file");
    auto lock = h5::hdf5_lock();
    h5::silence_hdf5_errors();
    if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(fmt::format("{}: not an HDF5 file (an .h5ad must be HDF5)", path));
  }
  h5::OpenFile opened = h5::open_file_readonly(path, options.remote ? *options.remote : RemoteOptions::from_environment());
  impl_->remote = std::move(opened.remote);
  impl_->file = std::move(opened.file);
  if (!impl_->file) {
    if (is_remote_path(path)) throw InputError(fmt::format("{}: HDF5 cannot open the file (truncated or corrupt?)", path));
    h5::throw_open_failure(path, path);
  }
  h5::with_remote_errors([&] { open_top_level(); });
}

void H5adFile::open_top_level() {
  auto lock = h5::hdf5_lock();
  const std::string& path = impl_->path;
  // A MuData file (muon's .h5mu): its modalities are AnnData groups under /mod; the
  // gene-expression one is read as the dataset (its obs, var, layers), the others are left.
  if (!h5::exists(impl_->file.get(), "X") && matrix_sources().empty() && h5::object_type(impl_->file.get(), "mod") == H5O_TYPE_GROUP) {
    open_modality();
  }
  const hid_t file = impl_->root();
  impl_->encoding_version = h5::string_attribute(file, "encoding-version").value_or("");

  // Shape: from X, else raw/X or the first layer for the number of cells and obs/var lengths.
  const auto sources = matrix_sources();
  if (h5::exists(file, "X")) {
    const MatrixInfo x = impl_->describe("X");
    impl_->n_obs = x.n_rows;
    impl_->n_vars = x.n_cols;
    // Validate indptr now, before any compute (cheap: one value per row).
    if (x.encoding != MatrixEncoding::kDense) (void)open_matrix("X");
  } else if (!sources.empty()) {
    impl_->n_obs = impl_->describe(sources.front()).n_rows;
    impl_->n_vars = std::max<std::int64_t>(impl_->frame_rows("var"), 0);
  } else {
    if (!impl_->modality.empty()) {
      throw InputError(fmt::format("{}: a MuData file whose modality '{}' holds no matrix (mod/{}: no X, raw/X or layer)", path,
                                   impl_->modality, impl_->modality));
    }
    // celltyper's own files (a model, a gene store) given where a dataset goes
    std::optional<std::string> format = h5::string_attribute(file, "format");
    if (!format || format->rfind("celltyper-", 0) != 0) format = h5::string_attribute(file, "celltyper_format");  // (a gene store's)
    if (format && format->rfind("celltyper-", 0) == 0) {
      throw InputError(fmt::format("{}: a {} file, not a dataset{}", path, *format,
                                   *format == "celltyper-model"        ? " (a trained model: annotate takes it with --model, inspect describes it)"
                                   : *format == "celltyper-gene-store" ? " (a gene store: --genes takes it, genes info describes it)"
                                                                       : ""));
    }
    throw InputError(fmt::format("{}: no matrix found: /X is missing and there is no raw/X or layer", path));
  }
  // obs / var lengths must agree with X.
  for (const auto& [frame, expected] : {std::pair<std::string, std::int64_t>{"obs", impl_->n_obs}, {"var", impl_->n_vars}}) {
    const std::int64_t rows = impl_->frame_rows(frame);
    if (rows >= 0 && rows != expected) {
      impl_->fail(fmt::format("{} has {} rows but X has shape {} x {}: shape mismatch", frame, rows, impl_->n_obs, impl_->n_vars));
    }
  }
}

void H5adFile::open_modality() {
  const std::string& path = impl_->path;
  Handle mod = h5::open_group(impl_->file.get(), "mod", path);
  impl_->modalities = h5::list_members(mod.get());
  // (the gene-expression modality by its usual names, letter case aside: rna, RNA, gex; muon's
  // own readers name it "rna")
  const auto rna = std::find_if(impl_->modalities.begin(), impl_->modalities.end(), [](const std::string& name) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower == "rna" || lower == "gex" || lower == "gene expression" || lower == "mrna";
  });
  const std::string listed = impl_->modalities.empty() ? std::string("none") : fmt::format("{}", fmt::join(impl_->modalities, ", "));
  if (rna == impl_->modalities.end() || h5::object_type(mod.get(), *rna) != H5O_TYPE_GROUP) {
    throw InputError(fmt::format("{}: a MuData file (.h5mu; modalities {}) without a gene-expression modality (celltyper reads the one named "
                                 "rna, gex or mrna); write the one with gene counts out (Python: mudata.read_h5mu('{}')['NAME']"
                                 ".write_h5ad('NAME.h5ad')) and pass that .h5ad",
                                 path, listed, path));
  }
  impl_->modality = *rna;
  impl_->modality_group = h5::open_group(mod.get(), *rna, path);
}

std::string H5adFile::reading_note() const {
  if (impl_->modality.empty()) return {};
  return fmt::format("a MuData file: read its gene-expression modality '{}' (modalities {})", impl_->modality, fmt::join(impl_->modalities, ", "));
}

const std::string& H5adFile::modality() const { return impl_->modality; }
std::string H5adFile::group() const { return impl_->modality.empty() ? std::string() : "mod/" + impl_->modality; }

H5adFile::~H5adFile() {
  if (impl_) {
    auto lock = h5::hdf5_lock();
    impl_->file.reset();
  }
}

RemoteStats H5adFile::remote_stats() const { return impl_->remote ? impl_->remote->stats() : RemoteStats{}; }
std::uint64_t H5adFile::file_bytes() const {
  if (impl_->remote) return impl_->remote->size();
  std::error_code error;
  const auto size = std::filesystem::file_size(impl_->path, error);
  return error ? 0 : static_cast<std::uint64_t>(size);
}

const std::string& H5adFile::path() const { return impl_->path; }
std::int64_t H5adFile::n_obs() const { return impl_->n_obs; }
std::int64_t H5adFile::n_vars() const { return impl_->n_vars; }
std::string H5adFile::encoding_version() const { return impl_->encoding_version; }

DataFrame H5adFile::read_obs() const {
  return h5::with_remote_errors([&] { return impl_->read_frame("obs", nullptr, impl_->n_obs); });
}
DataFrame H5adFile::read_var() const {
  return h5::with_remote_errors([&] { return impl_->read_frame("var", nullptr, impl_->n_vars); });
}
DataFrame H5adFile::read_obs_columns(const std::vector<std::string>& names) const {
  const std::vector<std::string> present = h5::with_remote_errors([&] { return frame_column_names("obs"); });
  // A MuData file's own /obs (labels set on the MuData object, e.g. after a joint clustering, or
  // a modality's pulled up by muon as 'rna:celltype'): read where the modality's obs lacks them.
  const std::vector<std::pair<std::string, std::string>> global = h5::with_remote_errors([&] { return global_obs_columns(present); });
  std::vector<std::string> own;
  std::vector<std::string> elsewhere;  // asked for ...
  std::vector<std::string> stored_as;  // ... and their names in /obs
  for (const auto& name : names) {
    if (std::find(present.begin(), present.end(), name) != present.end()) {
      own.push_back(name);
      continue;
    }
    const auto found = std::find_if(global.begin(), global.end(), [&](const auto& column) { return column.first == name; });
    if (found != global.end()) {
      elsewhere.push_back(name);
      stored_as.push_back(found->second);
      continue;
    }
    // A missing column: the message lists every column of obs, not just the ones asked for.
    if (impl_->modality.empty()) return Dataset::read_obs_columns(names);
    try {
      return Dataset::read_obs_columns(names);
    } catch (const InputError& error) {
      throw InputError(fmt::format("{} (a MuData file: columns are looked up in the obs of its modality '{}', mod/{}/obs, then in the file's own "
                                   "/obs as COLUMN or {}:COLUMN)",
                                   error.what(), impl_->modality, impl_->modality, impl_->modality));
    }
  }
  DataFrame frame = h5::with_remote_errors([&] { return impl_->read_frame("obs", &own, impl_->n_obs); });
  if (elsewhere.empty()) return frame;
  // The file's own obs holds every modality's cells (their union): its rows are matched to the
  // modality's by cell name.
  DataFrame file_obs = h5::with_remote_errors([&] { return impl_->read_frame("obs", &stored_as, -1, true); });
  const std::string listed = fmt::format("{}", fmt::join(stored_as, ", "));
  std::unordered_map<std::string_view, std::int64_t> row_of;
  row_of.reserve(file_obs.index.size());
  for (std::size_t row = 0; row < file_obs.index.size(); ++row) {
    if (!row_of.emplace(file_obs.index[row], static_cast<std::int64_t>(row)).second) {
      throw InputError(fmt::format("{}: the file's own /obs names the cell '{}' twice, so its {} cannot be matched to the cells of modality '{}' "
                                   "(muon: mdata.obs_names_make_unique(), then mdata.write())",
                                   impl_->path, file_obs.index[row], listed, impl_->modality));
    }
  }
  std::vector<std::int64_t> rows(frame.index.size());
  for (std::size_t cell = 0; cell < frame.index.size(); ++cell) {
    const auto found = row_of.find(frame.index[cell]);
    if (found == row_of.end()) {
      throw InputError(fmt::format("{}: the cell '{}' of modality '{}' is not in the file's own /obs, so its {} cannot be matched to the "
                                   "modality's cells (mudata writes every modality's cells there)",
                                   impl_->path, frame.index[cell], impl_->modality, listed));
    }
    rows[cell] = found->second;
  }
  DataFrame aligned = take_rows(file_obs, rows);
  for (Column& column : aligned.columns) {
    column.name = elsewhere[static_cast<std::size_t>(std::find(stored_as.begin(), stored_as.end(), column.name) - stored_as.begin())];
    frame.columns.push_back(std::move(column));
  }
  std::vector<Column> ordered;  // (as asked for)
  for (const auto& name : names) {
    const auto at = std::find_if(frame.columns.begin(), frame.columns.end(), [&](const Column& column) { return column.name == name; });
    if (at != frame.columns.end()) ordered.push_back(std::move(*at));
  }
  frame.columns = std::move(ordered);
  return frame;
}

DataFrame H5adFile::read_var_of(const std::string& source) const {
  if (source == "raw/X") {
    const MatrixInfo info = matrix_info(source);
    return h5::with_remote_errors([&] { return impl_->read_frame("raw/var", nullptr, info.n_cols); });
  }
  return read_var();
}

std::vector<std::string> H5adFile::obs_column_names() const {
  std::vector<std::string> names = frame_column_names("obs");
  for (const auto& [offered, stored] : global_obs_columns(names)) names.push_back(offered);
  return names;
}

std::vector<std::pair<std::string, std::string>> H5adFile::global_obs_columns() const { return global_obs_columns(frame_column_names("obs")); }

std::vector<std::pair<std::string, std::string>> H5adFile::global_obs_columns(const std::vector<std::string>& own) const {
  if (impl_->modality.empty()) return {};
  const std::vector<std::string> global = frame_column_names("obs", true);
  const auto has = [](const std::vector<std::string>& names, const std::string& name) { return std::find(names.begin(), names.end(), name) != names.end(); };
  std::vector<std::pair<std::string, std::string>> columns;
  std::vector<std::string> offered;
  // (the file's own columns first: a column named so there wins over the modality's pulled up)
  for (const bool prefixed : {false, true}) {
    for (const auto& name : global) {
      const std::size_t colon = name.find(':');
      std::string as = name;
      if (colon != std::string::npos && has(impl_->modalities, name.substr(0, colon))) {
        if (!prefixed || name.substr(0, colon) != impl_->modality) continue;  // (another modality's, pulled up)
        as = name.substr(colon + 1);
      } else if (prefixed) {
        continue;
      }
      if (as.empty() || has(own, as) || has(offered, as)) continue;
      offered.push_back(as);
      columns.emplace_back(as, name);
    }
  }
  return columns;
}
std::vector<std::string> H5adFile::var_column_names() const { return frame_column_names("var"); }

std::vector<std::string> H5adFile::frame_column_names(const std::string& frame, bool file_root) const {
  auto lock = h5::hdf5_lock();
  const hid_t base = file_root ? impl_->file.get() : impl_->root();
  if (h5::object_type(base, frame) != H5O_TYPE_GROUP) return {};
  Handle group = h5::open_group(base, frame, impl_->path);
  if (h5::has_attribute(group.get(), "column-order")) return h5::string_array_attribute(group.get(), "column-order");
  const std::string index_name = h5::string_attribute(group.get(), "_index").value_or("_index");
  std::vector<std::string> names;
  for (const auto& member : h5::list_members(group.get())) {
    if (member != index_name && member != "__categories") names.push_back(member);
  }
  return names;
}

std::vector<std::string> H5adFile::keys(const std::string& group_name) const {
  auto lock = h5::hdf5_lock();
  if (h5::object_type(impl_->root(), group_name) != H5O_TYPE_GROUP) return {};
  Handle group = h5::open_group(impl_->root(), group_name, impl_->path);
  return h5::list_members(group.get());
}

std::vector<std::string> H5adFile::matrix_sources() const {
  auto lock = h5::hdf5_lock();
  const hid_t file = impl_->root();
  std::vector<std::string> sources;
  if (h5::exists(file, "X")) sources.emplace_back("X");
  if (h5::exists(file, "raw/X")) sources.emplace_back("raw/X");
  if (h5::object_type(file, "layers") == H5O_TYPE_GROUP) {
    Handle layers = h5::open_group(file, "layers", impl_->path);
    for (const auto& name : h5::list_members(layers.get())) sources.push_back("layers/" + name);
  }
  return sources;
}

MatrixInfo H5adFile::matrix_info(const std::string& source) const {
  return h5::with_remote_errors([&] { return impl_->describe(source); });
}

std::unique_ptr<MatrixReader> H5adFile::open_matrix(const std::string& source) const {
  return h5::with_remote_errors([&]() -> std::unique_ptr<MatrixReader> {
  MatrixInfo info = impl_->describe(source);
  if (source != "raw/X" && (info.n_rows != impl_->n_obs || info.n_cols != impl_->n_vars) && h5::exists(impl_->root(), "X")) {
    impl_->fail(fmt::format("{} has shape {} x {} but X has {} x {}: shape mismatch", source, info.n_rows, info.n_cols,
                            impl_->n_obs, impl_->n_vars));
  }
  // raw keeps its own genes (raw/var) but the same cells as X.
  if (source == "raw/X" && info.n_rows != impl_->n_obs) {
    impl_->fail(fmt::format("raw/X has {} cells but obs has {}: shape mismatch (raw was saved for other cells; --layer X reads X)",
                            info.n_rows, impl_->n_obs));
  }
  if (info.encoding == MatrixEncoding::kDense) {
    return detail::open_dense_reader(impl_->root(), impl_->path, source, std::move(info), impl_->options.chunk_cache_bytes);
  }
  detail::SparseLocation where{impl_->path, source, info.encoding, info.n_rows, info.n_cols, impl_->options.num_threads,
                               impl_->options.direct_io, impl_->remote, impl_->options.csc_gather_bytes};
  return detail::open_sparse_reader(impl_->root(), where, std::move(info), impl_->options.chunk_cache_bytes);
  });
}

std::optional<std::string> H5adFile::read_uns_string(const std::string& name) const {
  auto lock = h5::hdf5_lock();
  const std::string path = "uns/" + name;
  if (h5::object_type(impl_->root(), "uns") != H5O_TYPE_GROUP || h5::object_type(impl_->root(), path) != H5O_TYPE_DATASET) {
    return std::nullopt;
  }
  Handle dataset = h5::open_dataset(impl_->root(), path, impl_->path);
  if (!h5::is_string_dataset(dataset.get())) return std::nullopt;
  const std::vector<std::string> values = h5::read_strings(dataset.get());
  if (values.size() != 1) return std::nullopt;
  return values.front();
}

DenseMatrix H5adFile::read_obsm(const std::string& name) const {
  auto lock = h5::hdf5_lock();
  const std::string path = "obsm/" + name;
  if (h5::object_type(impl_->root(), path) != H5O_TYPE_DATASET) {
    impl_->fail(fmt::format("{} is missing or not a dense array", path));
  }
  Handle dataset = h5::open_dataset(impl_->root(), path, impl_->path);
  const auto shape = h5::dataset_shape(dataset.get());
  DenseMatrix matrix;
  matrix.rows = shape.empty() ? 0 : shape[0];
  matrix.cols = shape.size() >= 2 ? shape[1] : 1;
  if (matrix.rows != impl_->n_obs) impl_->fail(fmt::format("{} has {} rows but there are {} cells", path, matrix.rows, impl_->n_obs));
  // Trust no shape before allocating it: stored values a file never wrote, or more than its bytes
  // could hold compressed (deflate's limit is about 1032:1), are a damaged or hostile file.
  const double values = static_cast<double>(matrix.rows) * static_cast<double>(matrix.cols);
  const hsize_t stored = H5Dget_storage_size(dataset.get());
  const double bytes = static_cast<double>(file_bytes());
  if (values > 0 && (stored == 0 || (bytes > 0 && values * 4 > 1100.0 * bytes))) {
    impl_->fail(fmt::format("{} claims {} x {} values but the file {}: damaged or hostile; write it again", path, matrix.rows, matrix.cols,
                            stored == 0 ? "never stored them" : fmt::format("holds {} bytes", static_cast<std::uint64_t>(bytes))));
  }
  matrix.values.resize(static_cast<std::size_t>(matrix.rows * matrix.cols));
  if (!matrix.values.empty() &&
      H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, matrix.values.data()) < 0) {
    throw IoError(fmt::format("{}: cannot read {}", impl_->path, path));
  }
  return matrix;
}

}  // namespace celltyper
