#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/output_file.hpp>

#include "io/hdf5_util.hpp"

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <future>

#include <algorithm>
#include <filesystem>
#include <random>

namespace celltyper {

using h5::Handle;

namespace {

bool dtype_is(const std::string& dtype, const char* prefix) { return dtype.rfind(prefix, 0) == 0; }

/// Smallest signed integer type for categorical codes, as pandas chooses.
void write_codes(hid_t group, const std::vector<std::int32_t>& codes, std::size_t n_categories) {
  if (n_categories < 128) {
    std::vector<std::int8_t> small(codes.begin(), codes.end());
    h5::write_encoding(h5::write_1d(group, "codes", small.data(), static_cast<std::int64_t>(small.size())).get(), "array", "0.2.0");
  } else {
    h5::write_encoding(h5::write_1d(group, "codes", codes.data(), static_cast<std::int64_t>(codes.size())).get(), "array", "0.2.0");
  }
}

/// Bools as h5py writes numpy bool arrays (an int8 enum), tagged as an anndata array.
void write_bools(hid_t parent, const std::string& name, const std::vector<std::uint8_t>& values) {
  Handle type(H5Tenum_create(H5T_NATIVE_INT8));
  std::int8_t value = 0;
  H5Tenum_insert(type.get(), "FALSE", &value);
  value = 1;
  H5Tenum_insert(type.get(), "TRUE", &value);
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle dataset(H5Dcreate2(parent, name.c_str(), type.get(), space.get(), H5P_DEFAULT, h5::untimed_dataset_plist().get(), H5P_DEFAULT));
  if (!dataset) throw IoError(fmt::format("cannot create dataset '{}'", name));
  std::vector<std::int8_t> stored(values.begin(), values.end());
  if (!stored.empty() && H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, stored.data()) < 0) {
    throw IoError(fmt::format("cannot write dataset '{}'", name));
  }
  h5::write_encoding(dataset.get(), "array", "0.2.0");
}

void write_numbers(hid_t parent, const std::string& name, const Column& column) {
  const auto n = static_cast<std::int64_t>(column.size());
  Handle dataset;
  if (column.kind == ColumnKind::kFloat) {
    if (column.dtype == "float32") {
      std::vector<float> narrow(column.numbers.begin(), column.numbers.end());
      dataset = h5::write_1d(parent, name, narrow.data(), n);
    } else {
      dataset = h5::write_1d(parent, name, column.numbers.data(), n);
    }
  } else if (column.dtype == "int32" || column.dtype == "int16" || column.dtype == "int8") {
    std::vector<std::int32_t> narrow(column.integers.begin(), column.integers.end());
    dataset = h5::write_1d(parent, name, narrow.data(), n);
  } else {
    dataset = h5::write_1d(parent, name, column.integers.data(), n);
  }
  h5::write_encoding(dataset.get(), "array", "0.2.0");
}

/// Write one column in anndata's encoding (>= 0.8) under `frame`.
void write_column(hid_t frame, const Column& column) {
  h5::unlink_if_exists(frame, column.name);
  h5::unlink_if_exists(frame, "__categories/" + column.name);  // (anndata < 0.8 kept a column's categories there)
  switch (column.kind) {
    case ColumnKind::kString: h5::write_strings(frame, column.name, column.strings); break;
    case ColumnKind::kFloat:
    case ColumnKind::kInt: write_numbers(frame, column.name, column); break;
    case ColumnKind::kBool: write_bools(frame, column.name, column.booleans); break;
    case ColumnKind::kCategorical: {
      Handle group = h5::create_group(frame, column.name);
      h5::write_encoding(group.get(), "categorical", "0.2.0");
      h5::write_bool_attribute(group.get(), "ordered", column.ordered);
      write_codes(group.get(), column.codes, column.categories.size());
      if (dtype_is(column.categories_dtype, "int") || dtype_is(column.categories_dtype, "uint")) {
        std::vector<std::int64_t> values;
        for (const auto& text : column.categories) values.push_back(std::stoll(text));
        h5::write_encoding(h5::write_1d(group.get(), "categories", values.data(), static_cast<std::int64_t>(values.size())).get(), "array", "0.2.0");
      } else if (dtype_is(column.categories_dtype, "float")) {
        std::vector<double> values;
        for (const auto& text : column.categories) values.push_back(std::stod(text));
        h5::write_encoding(h5::write_1d(group.get(), "categories", values.data(), static_cast<std::int64_t>(values.size())).get(), "array", "0.2.0");
      } else {
        h5::write_strings(group.get(), "categories", column.categories);
      }
      break;
    }
    case ColumnKind::kNullableInt:
    case ColumnKind::kNullableBool: {
      Handle group = h5::create_group(frame, column.name);
      const bool is_int = column.kind == ColumnKind::kNullableInt;
      h5::write_encoding(group.get(), is_int ? "nullable-integer" : "nullable-boolean", "0.1.0");
      if (is_int) {
        h5::write_1d(group.get(), "values", column.integers.data(), static_cast<std::int64_t>(column.integers.size()));
      } else {
        write_bools(group.get(), "values", column.booleans);
      }
      std::vector<std::uint8_t> mask = column.mask;
      mask.resize(column.size(), 0);
      write_bools(group.get(), "mask", mask);
      break;
    }
  }
}

void write_frame(hid_t file, const std::string& path, const DataFrame& frame) {
  h5::unlink_if_exists(file, path);
  Handle group = h5::create_group(file, path);
  h5::write_encoding(group.get(), "dataframe", "0.2.0");
  const std::string index_name = frame.index_name.empty() ? "_index" : frame.index_name;
  h5::write_string_attribute(group.get(), "_index", index_name);
  std::vector<std::string> order;
  for (const auto& column : frame.columns) {
    if (column.size() != frame.n_rows()) {
      throw InputError(fmt::format("{} column '{}' has {} rows, the index has {}", path, column.name, column.size(), frame.n_rows()));
    }
    if (column.name == index_name) throw InputError(fmt::format("{} column '{}' has the index's name", path, column.name));
    order.push_back(column.name);
  }
  h5::write_string_array_attribute(group.get(), "column-order", order);
  h5::write_strings(group.get(), index_name, frame.index);
  for (const auto& column : frame.columns) write_column(group.get(), column);
}

Handle ensure_dict_group(hid_t file, const std::string& path) {
  if (h5::object_type(file, path) == H5O_TYPE_GROUP) return Handle(H5Gopen2(file, path.c_str(), H5P_DEFAULT));
  Handle group = h5::create_group(file, path);
  h5::write_encoding(group.get(), "dict", "0.1.0");
  return group;
}

void write_dense_matrix(hid_t parent, const std::string& name, const DenseMatrix& matrix) {
  if (static_cast<std::int64_t>(matrix.values.size()) != matrix.rows * matrix.cols) {
    throw InputError(fmt::format("matrix '{}' holds {} values for shape {} x {}", name, matrix.values.size(), matrix.rows, matrix.cols));
  }
  h5::unlink_if_exists(parent, name);
  Handle dataset = h5::write_2d(parent, name, matrix.values.data(), matrix.rows, matrix.cols);
  h5::write_encoding(dataset.get(), "array", "0.2.0");
}

void write_uns_string(hid_t file, const std::string& name, const std::string& value) {
  Handle uns = ensure_dict_group(file, "uns");
  h5::unlink_if_exists(uns.get(), name);
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR));
  Handle dataset(H5Dcreate2(uns.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, h5::untimed_dataset_plist().get(), H5P_DEFAULT));
  const char* pointer = value.c_str();
  if (!dataset || H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &pointer) < 0) {
    throw IoError(fmt::format("cannot write uns/{}", name));
  }
  h5::write_encoding(dataset.get(), "string", "0.2.0");
}

void write_uns_string_array(hid_t file, const std::string& name, const std::vector<std::string>& values) {
  Handle uns = ensure_dict_group(file, "uns");
  h5::unlink_if_exists(uns.get(), name);
  h5::write_strings(uns.get(), name, values);
}

/// The AnnData group `root` of the open `file` ("" = the file itself), kept open by `group`.
hid_t anndata_root(hid_t file, const std::string& root, const std::string& input, Handle& group) {
  if (root.empty()) return file;
  group = h5::open_group(file, root, input);
  return group.get();
}

/// Write `additions` into an open h5ad file (obs columns keep column-order up to date).
/// `root`: the AnnData group the additions go to ("" = the file's root; a MuData file's
/// modality, "mod/rna").
void apply_additions(hid_t file_root, const std::string& root, const std::string& input, const H5adAdditions& additions) {
  Handle group;
  const hid_t file = anndata_root(file_root, root, input, group);
  if (!additions.obs_columns.empty() || additions.drop_obs_column) {
    Handle obs = h5::open_group(file, "obs", input);
    std::vector<std::string> order = h5::string_array_attribute(obs.get(), "column-order");
    if (additions.drop_obs_column) {
      std::erase_if(order, [&](const std::string& name) {
        if (!additions.drop_obs_column(name)) return false;
        h5::unlink_if_exists(obs.get(), name);
        h5::unlink_if_exists(obs.get(), "__categories/" + name);
        return true;
      });
    }
    for (const auto& column : additions.obs_columns) {
      write_column(obs.get(), column);
      if (std::find(order.begin(), order.end(), column.name) == order.end()) order.push_back(column.name);
    }
    h5::write_string_array_attribute(obs.get(), "column-order", order);
  }
  if (!additions.obsm.empty()) {
    Handle obsm = ensure_dict_group(file, "obsm");
    for (const auto& [name, matrix] : additions.obsm) write_dense_matrix(obsm.get(), name, matrix);
  }
  for (const auto& [name, value] : additions.uns_strings) write_uns_string(file, name, value);
  for (const auto& [name, values] : additions.uns_string_arrays) write_uns_string_array(file, name, values);
}

/// The cells of an input to copy, and the group of its AnnData (a MuData file's modality).
struct CopyTarget {
  std::int64_t n_obs = 0;
  std::string modality;   ///< the input's AnnData group: "" or a MuData file's "mod/rna"
  bool extract = false;   ///< a MuData input written as .h5ad: the copy is its modality alone
  /// Where the additions go in the copy: the modality's group, or the root of an extracted one.
  [[nodiscard]] std::string root() const { return extract ? std::string() : modality; }
};

/// Check that `input` may be copied to `output`, and that additions fit its cells.
CopyTarget check_copy_target(const std::string& input, const std::string& output, bool in_place) {
  std::error_code error;
  if (!std::filesystem::exists(input, error)) throw InputError(fmt::format("{}: no such file", input));
  if (!in_place) check_outputs({output}, {input});
  H5adFile source(input);
  CopyTarget target;
  target.n_obs = source.n_obs();
  target.modality = source.group();
  if (!target.modality.empty()) {
    std::string extension = std::filesystem::path(output).extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    target.extract = extension == ".h5ad" && !in_place;
  }
  return target;
}

/// Write `input`'s AnnData group `group` (a MuData file's modality) as a file of its own at
/// `temporary`: every member (X, layers, raw, obs, var, obsm, uns, ...) copied as it is, the
/// root marked an AnnData, and the columns of the file's own /obs that the modality's obs lacks
/// (its labels, a joint clustering: H5adFile::global_obs_columns) added to obs, as train,
/// annotate and evaluate read them.
void extract_group(const std::string& input, const std::string& group, const std::string& temporary) {
  H5adAdditions global;
  try {
    const H5adFile source(input);
    std::vector<std::string> names;
    for (const auto& [offered, stored] : source.global_obs_columns()) names.push_back(offered);
    if (!names.empty()) global.obs_columns = source.read_obs_columns(names).columns;
  } catch (const InputError&) {
    global.obs_columns.clear();  // (a /obs that cannot be matched to the modality, cells named twice: the modality as it is)
  }
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  Handle source(H5Fopen(input.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!source) throw IoError(fmt::format("{}: cannot open to copy its {}", input, group));
  Handle from = h5::open_group(source.get(), group, input);
  Handle target(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!target) throw IoError(fmt::format("{}: cannot create {}", input, temporary));
  for (const std::string& member : h5::list_members(from.get())) {
    if (H5Ocopy(from.get(), member.c_str(), target.get(), member.c_str(), H5P_DEFAULT, H5P_DEFAULT) < 0) {
      throw IoError(fmt::format("{}: cannot copy {}/{} to {} (disk full?)", input, group, member, temporary));
    }
  }
  h5::write_encoding(target.get(), "anndata", "0.1.0");
  if (!global.obs_columns.empty()) apply_additions(target.get(), "", input, global);
  if (H5Fflush(target.get(), H5F_SCOPE_GLOBAL) < 0) throw IoError(fmt::format("{}: cannot flush (disk full?)", temporary));
}

/// Copy the bytes of `input` into `temporary` (created or truncated), kernel-side
/// (copy_file_range, else sendfile, else read/write), in chunks so that `cancel` stops it early.
void copy_bytes(const std::string& input, const std::string& temporary, const std::atomic<bool>& cancel) {
  const int from = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
  if (from < 0) throw IoError(fmt::format("{}: cannot open for copying: {}", input, std::strerror(errno)));
  const int to = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (to < 0) {
    const int saved = errno;
    ::close(from);
    throw IoError(fmt::format("{}: cannot create {}: {}", input, temporary, std::strerror(saved)));
  }
  struct Closer {
    int a, b;
    ~Closer() { ::close(a); ::close(b); }
  } closer{from, to};
  struct stat info {};
  if (::fstat(from, &info) != 0) throw IoError(fmt::format("{}: cannot stat: {}", input, std::strerror(errno)));
  const auto size = static_cast<std::uint64_t>(info.st_size);
  constexpr std::size_t kChunk = std::size_t{64} << 20;
  enum class Method { kCopyFileRange, kSendfile, kReadWrite } method = Method::kCopyFileRange;
  std::vector<char> buffer;
  std::uint64_t done = 0;
  while (done < size) {
    if (cancel.load(std::memory_order_relaxed)) return;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - done));
    ssize_t moved = -1;
    if (method == Method::kCopyFileRange) {
      moved = ::copy_file_range(from, nullptr, to, nullptr, want, 0);
      if (moved < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
        method = Method::kSendfile;
        continue;
      }
    } else if (method == Method::kSendfile) {
      moved = ::sendfile(to, from, nullptr, want);
      if (moved < 0 && (errno == ENOSYS || errno == EINVAL)) {
        method = Method::kReadWrite;
        continue;
      }
    } else {
      buffer.resize(want);
      moved = ::read(from, buffer.data(), want);
      for (ssize_t written = 0; moved > 0 && written < moved;) {
        const ssize_t n = ::write(to, buffer.data() + written, static_cast<std::size_t>(moved - written));
        if (n < 0 && errno != EINTR) throw IoError(fmt::format("{}: cannot write: {}", temporary, std::strerror(errno)));
        if (n > 0) written += n;
      }
    }
    if (moved < 0) {
      if (errno == EINTR) continue;
      throw IoError(fmt::format("{}: cannot copy to {}: {}", input, temporary, std::strerror(errno)));
    }
    if (moved == 0) throw IoError(fmt::format("{}: the file shrank while it was copied ({} of {} bytes)", input, done, size));
    // Start writing the copied range to disk now (asynchronously), so that the fsync before the
    // final rename has little left to wait for (best effort: an error here shows at that fsync).
    (void)::sync_file_range(to, static_cast<off64_t>(done), moved, SYNC_FILE_RANGE_WRITE);
    done += static_cast<std::uint64_t>(moved);
  }
}

/// Open the finished copy (the temporary file of `output`) for writing.
Handle open_copied(const OutputFile& output) {
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  Handle file(H5Fopen(output.temporary().c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  if (!file) throw IoError(fmt::format("{}: cannot open the copy for writing", output.path()));
  return file;
}

/// Copy `input` to the temporary file of `output` (its modality alone when `copied` says to
/// extract it) and open the copy for writing.
Handle open_copy(const std::string& input, const OutputFile& output, const CopyTarget& copied) {
  if (copied.extract) {
    extract_group(input, copied.modality, output.temporary());
  } else {
    const std::atomic<bool> never{false};
    copy_bytes(input, output.temporary(), never);
  }
  return open_copied(output);
}

/// Apply `additions` to the open copy `file` of `output` and close it, ready to commit.
void finish_additions(const std::string& input, const std::string& root, const OutputFile& output, Handle file, const H5adAdditions& additions) {
  auto lock = h5::hdf5_lock();
  try {
    apply_additions(file.get(), root, input, additions);
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) throw IoError(fmt::format("{}: cannot flush (disk full?)", output.path()));
  } catch (...) {
    file.reset();
    throw;
  }
  file.reset();
}

void check_additions_fit(const std::string& input, std::int64_t n_obs, const H5adAdditions& additions) {
  for (const auto& column : additions.obs_columns) {
    if (static_cast<std::int64_t>(column.size()) != n_obs) {
      throw InputError(fmt::format("obs column '{}' has {} rows but {} has {} cells", column.name, column.size(), input, n_obs));
    }
  }
  for (const auto& [name, matrix] : additions.obsm) {
    if (matrix.rows != n_obs) throw InputError(fmt::format("obsm '{}' has {} rows but {} has {} cells", name, matrix.rows, input, n_obs));
  }
}

}  // namespace

struct H5adWriter::Impl {
  std::string target;
  std::unique_ptr<OutputFile> output;  ///< removes the temporary file unless committed
  std::int64_t n_obs = 0;
  std::int64_t n_vars = 0;
  H5adWriteOptions options;
  Handle file;
  Handle x_group;
  Handle x_data;
  Handle x_indices;
  std::vector<std::int64_t> indptr{0};
  std::int64_t rows_written = 0;
  bool dense_x = false;
  bool committed = false;

  void open_x() {
    if (x_group) return;
    x_group = h5::create_group(file.get(), "X");
    h5::write_encoding(x_group.get(), "csr_matrix", "0.1.0");
    h5::write_int_array_attribute(x_group.get(), "shape", {n_obs, n_vars});
    if (options.x_as_float64) {
      x_data = h5::create_extendible_1d<double>(x_group.get(), "data", options.chunk_values, options.gzip_level);
    } else {
      x_data = h5::create_extendible_1d<float>(x_group.get(), "data", options.chunk_values, options.gzip_level);
    }
    x_indices = h5::create_extendible_1d<std::int32_t>(x_group.get(), "indices", options.chunk_values, options.gzip_level);
  }

  template <typename Value>
  void append(const CsrRows<Value>& block) {
    if (dense_x) throw InputError("X was already written as a dense array");
    if (block.first_row != rows_written) {
      throw InputError(fmt::format("{}: rows must be appended in order: got row {} after {} rows", target, block.first_row, rows_written));
    }
    if (block.n_cols != n_vars) throw InputError(fmt::format("{}: block has {} columns, the file has {}", target, block.n_cols, n_vars));
    if (rows_written + block.n_rows > n_obs) throw InputError(fmt::format("{}: more than {} rows appended", target, n_obs));
    auto lock = h5::hdf5_lock();
    open_x();
    const std::int64_t base = indptr.back();
    for (std::int64_t r = 1; r <= block.n_rows; ++r) indptr.push_back(base + block.indptr[static_cast<std::size_t>(r)]);
    if (options.x_as_float64) {
      std::vector<double> values(block.values.begin(), block.values.end());
      h5::append_1d(x_data.get(), values.data(), block.nnz());
    } else {
      std::vector<float> values(block.values.begin(), block.values.end());
      h5::append_1d(x_data.get(), values.data(), block.nnz());
    }
    h5::append_1d(x_indices.get(), block.indices.data(), block.nnz());
    rows_written += block.n_rows;
  }
};

H5adWriter::H5adWriter(std::string path, std::int64_t n_obs, std::int64_t n_vars, H5adWriteOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->target = std::move(path);
  impl_->output = std::make_unique<OutputFile>(impl_->target);
  impl_->n_obs = n_obs;
  impl_->n_vars = n_vars;
  impl_->options = options;
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  Handle fcpl = h5::untimed_file_plist();
  H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  impl_->file = Handle(H5Fcreate(impl_->output->temporary().c_str(), H5F_ACC_EXCL, fcpl.get(), H5P_DEFAULT));
  if (!impl_->file) throw IoError(fmt::format("{}: cannot create the output file (directory missing or not writable?)", impl_->target));
  h5::write_encoding(impl_->file.get(), "anndata", "0.1.0");
}

H5adWriter::~H5adWriter() {
  if (!impl_) return;
  auto lock = h5::hdf5_lock();
  impl_->x_data.reset();
  impl_->x_indices.reset();
  impl_->x_group.reset();
  impl_->file.reset();
}

void H5adWriter::append_rows(const CsrBlock& block) { impl_->append(block); }
void H5adWriter::append_rows(const CsrBlockF64& block) { impl_->append(block); }

void H5adWriter::write_dense_x(const std::vector<float>& values) {
  if (impl_->x_group) throw InputError("X was already started as a sparse matrix");
  DenseMatrix matrix{impl_->n_obs, impl_->n_vars, values};
  auto lock = h5::hdf5_lock();
  write_dense_matrix(impl_->file.get(), "X", matrix);
  impl_->dense_x = true;
}

void H5adWriter::write_obs(const DataFrame& obs) {
  if (static_cast<std::int64_t>(obs.n_rows()) != impl_->n_obs) {
    throw InputError(fmt::format("{}: obs has {} rows for {} cells", impl_->target, obs.n_rows(), impl_->n_obs));
  }
  auto lock = h5::hdf5_lock();
  write_frame(impl_->file.get(), "obs", obs);
}

void H5adWriter::write_var(const DataFrame& var) {
  if (static_cast<std::int64_t>(var.n_rows()) != impl_->n_vars) {
    throw InputError(fmt::format("{}: var has {} rows for {} genes", impl_->target, var.n_rows(), impl_->n_vars));
  }
  auto lock = h5::hdf5_lock();
  write_frame(impl_->file.get(), "var", var);
}

void H5adWriter::write_obsm(const std::string& name, const DenseMatrix& matrix) {
  if (matrix.rows != impl_->n_obs) throw InputError(fmt::format("obsm '{}' has {} rows for {} cells", name, matrix.rows, impl_->n_obs));
  auto lock = h5::hdf5_lock();
  Handle obsm = ensure_dict_group(impl_->file.get(), "obsm");
  write_dense_matrix(obsm.get(), name, matrix);
}

void H5adWriter::write_uns_string(const std::string& name, const std::string& value) {
  auto lock = h5::hdf5_lock();
  celltyper::write_uns_string(impl_->file.get(), name, value);
}

void H5adWriter::write_uns_string_array(const std::string& name, const std::vector<std::string>& values) {
  auto lock = h5::hdf5_lock();
  celltyper::write_uns_string_array(impl_->file.get(), name, values);
}

void H5adWriter::commit() {
  finish();
  impl_->output->commit();
  impl_->committed = true;
}

OutputFile& H5adWriter::output() { return *impl_->output; }

void H5adWriter::finish() {
  {
    auto lock = h5::hdf5_lock();
    const hid_t file = impl_->file.get();
    if (!impl_->dense_x) {
      impl_->open_x();
      if (impl_->rows_written != impl_->n_obs) {
        // Rows never appended are empty (all zero).
        impl_->indptr.resize(static_cast<std::size_t>(impl_->n_obs) + 1, impl_->indptr.back());
      }
      h5::write_1d(impl_->x_group.get(), "indptr", impl_->indptr.data(), static_cast<std::int64_t>(impl_->indptr.size()));
    }
    for (const char* frame : {"obs", "var"}) {
      if (!h5::exists(file, frame)) {
        DataFrame empty;
        const std::int64_t rows = std::string(frame) == "obs" ? impl_->n_obs : impl_->n_vars;
        for (std::int64_t i = 0; i < rows; ++i) empty.index.push_back(std::to_string(i));
        write_frame(file, frame, empty);
      }
    }
    for (const char* group : {"obsm", "varm", "obsp", "varp", "layers", "uns"}) ensure_dict_group(file, group);
    impl_->x_data.reset();
    impl_->x_indices.reset();
    impl_->x_group.reset();
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) throw IoError(fmt::format("{}: cannot flush the output (disk full?)", impl_->target));
    impl_->file.reset();
  }
}

void write_h5ad_with_additions(const std::string& input, const std::string& output, const H5adAdditions& additions, bool in_place) {
  // Validate before copying anything: the additions must fit the input's cells.
  const CopyTarget copied = check_copy_target(input, output, in_place);
  check_additions_fit(input, copied.n_obs, additions);
  OutputFile target(output);
  finish_additions(input, copied.root(), target, open_copy(input, target, copied), additions);
  target.commit();
}

void write_dataset_h5ad(const Dataset& dataset, H5adWriter& writer, const H5adAdditions& additions) {
  const std::string& output = writer.output().path();
  DataFrame obs = dataset.read_obs();
  if (additions.drop_obs_column) std::erase_if(obs.columns, [&](const Column& column) { return additions.drop_obs_column(column.name); });
  for (const Column& column : additions.obs_columns) {
    if (column.size() != obs.n_rows()) {
      throw InputError(fmt::format("{}: obs column {} has {} rows for {} cells", output, column.name, column.size(), obs.n_rows()));
    }
    std::erase_if(obs.columns, [&](const Column& existing) { return existing.name == column.name; });
    obs.columns.push_back(column);
  }
  // HDF5 reads '/' in a name as a group path (anndata refuses such column names): '_' instead
  DataFrame var = dataset.read_var();
  for (DataFrame* frame : {&obs, &var}) {
    for (Column& column : frame->columns) std::replace(column.name.begin(), column.name.end(), '/', '_');
  }
  const auto reader = dataset.open_matrix("X");
  for_each_block(*reader, stream_options(dataset, "X", std::size_t{32} << 20), [&](const CsrBlock& block) { writer.append_rows(block); });
  writer.write_obs(obs);
  writer.write_var(var);
  for (const auto& [name, matrix] : additions.obsm) writer.write_obsm(name, matrix);
  for (const auto& [name, value] : additions.uns_strings) writer.write_uns_string(name, value);
  for (const auto& [name, values] : additions.uns_string_arrays) writer.write_uns_string_array(name, values);
  writer.finish();
}

struct H5adCopy::Impl {
  std::string input;
  std::string output;
  std::unique_ptr<OutputFile> file;  ///< the copy's temporary file, removed unless committed
  std::int64_t n_obs = 0;
  CopyTarget copied;  ///< the AnnData's group (a MuData file's "mod/rna"), or its extraction
  std::atomic<bool> cancel{false};
  std::future<void> copying;
  bool prepared = false;
  bool committed = false;
};

H5adCopy::H5adCopy(const std::string& input, const std::string& output, bool in_place) : impl_(std::make_unique<Impl>()) {
  impl_->input = input;
  impl_->output = output;
  impl_->copied = check_copy_target(input, output, in_place);
  impl_->n_obs = impl_->copied.n_obs;
  impl_->file = std::make_unique<OutputFile>(output);
  // (a MuData modality to extract is copied when prepared: a few groups, not the file's bytes)
  if (!impl_->copied.extract) {
    impl_->copying =
        std::async(std::launch::async, [impl = impl_.get()] { copy_bytes(impl->input, impl->file->temporary(), impl->cancel); });
  }
}

H5adCopy::~H5adCopy() {
  if (!impl_ || impl_->committed) return;
  impl_->cancel = true;
  if (impl_->copying.valid()) impl_->copying.wait();
}

std::int64_t H5adCopy::n_obs() const { return impl_->n_obs; }

void H5adCopy::prepare(const H5adAdditions& additions) {
  if (impl_->prepared) throw InputError(fmt::format("{}: already written", impl_->output));
  check_additions_fit(impl_->input, impl_->n_obs, additions);
  if (impl_->copying.valid()) impl_->copying.get();  // rethrows a failed copy
  if (impl_->copied.extract) extract_group(impl_->input, impl_->copied.modality, impl_->file->temporary());
  finish_additions(impl_->input, impl_->copied.root(), *impl_->file, open_copied(*impl_->file), additions);
  impl_->prepared = true;
}

OutputFile& H5adCopy::output() { return *impl_->file; }

void H5adCopy::commit(const H5adAdditions& additions) {
  prepare(additions);
  impl_->file->commit();
  impl_->committed = true;
}

struct H5adObsmStream::Impl {
  std::string input;
  std::string output;
  std::unique_ptr<OutputFile> target;  ///< removes the temporary file unless committed
  std::string key;
  std::int64_t n_obs = 0;
  std::int64_t cols = 0;
  std::string root;  ///< the AnnData's group ("" or a MuData file's "mod/rna")
  Handle file;
  Handle dataset;
  bool committed = false;
};

H5adObsmStream::H5adObsmStream(const std::string& input, const std::string& output, const std::string& key, std::int64_t cols,
                               bool in_place)
    : impl_(std::make_unique<Impl>()) {
  impl_->input = input;
  impl_->output = output;
  impl_->key = key;
  impl_->cols = cols;
  const CopyTarget copied = check_copy_target(input, output, in_place);
  impl_->n_obs = copied.n_obs;
  impl_->root = copied.root();
  impl_->target = std::make_unique<OutputFile>(output);
  impl_->file = open_copy(input, *impl_->target, copied);
  auto lock = h5::hdf5_lock();
  Handle group;
  Handle obsm = ensure_dict_group(anndata_root(impl_->file.get(), impl_->root, input, group), "obsm");
  h5::unlink_if_exists(obsm.get(), key);
  const std::array<hsize_t, 2> dims{static_cast<hsize_t>(impl_->n_obs), static_cast<hsize_t>(cols)};
  Handle space(H5Screate_simple(2, dims.data(), nullptr));
  impl_->dataset = Handle(H5Dcreate2(obsm.get(), key.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, h5::untimed_dataset_plist().get(), H5P_DEFAULT));
  if (!impl_->dataset) throw IoError(fmt::format("{}: cannot create obsm/{}", output, key));
  h5::write_encoding(impl_->dataset.get(), "array", "0.2.0");
}

H5adObsmStream::~H5adObsmStream() {
  if (!impl_) return;
  auto lock = h5::hdf5_lock();
  impl_->dataset.reset();
  impl_->file.reset();
}

std::int64_t H5adObsmStream::n_obs() const { return impl_->n_obs; }

void H5adObsmStream::write_rows(std::int64_t first_row, std::int64_t n_rows, const float* values) {
  if (first_row < 0 || n_rows < 0 || first_row + n_rows > impl_->n_obs) {
    throw InputError(fmt::format("obsm/{}: rows {}..{} outside {} cells", impl_->key, first_row, first_row + n_rows, impl_->n_obs));
  }
  if (n_rows == 0 || impl_->cols == 0) return;
  auto lock = h5::hdf5_lock();
  Handle file_space(H5Dget_space(impl_->dataset.get()));
  const std::array<hsize_t, 2> start{static_cast<hsize_t>(first_row), 0};
  const std::array<hsize_t, 2> count{static_cast<hsize_t>(n_rows), static_cast<hsize_t>(impl_->cols)};
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Handle memory_space(H5Screate_simple(2, count.data(), nullptr));
  if (H5Dwrite(impl_->dataset.get(), H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(), H5P_DEFAULT, values) < 0) {
    throw IoError(fmt::format("{}: cannot write obsm/{} (disk full?)", impl_->output, impl_->key));
  }
}

void H5adObsmStream::commit(const H5adAdditions& additions) {
  {
    auto lock = h5::hdf5_lock();
    for (const auto& column : additions.obs_columns) {
      if (static_cast<std::int64_t>(column.size()) != impl_->n_obs) {
        throw InputError(fmt::format("obs column '{}' has {} rows for {} cells", column.name, column.size(), impl_->n_obs));
      }
    }
    apply_additions(impl_->file.get(), impl_->root, impl_->input, additions);
    impl_->dataset.reset();
    if (H5Fflush(impl_->file.get(), H5F_SCOPE_GLOBAL) < 0) throw IoError(fmt::format("{}: cannot flush (disk full?)", impl_->output));
    impl_->file.reset();
  }
  impl_->target->commit();
  impl_->committed = true;
}

}  // namespace celltyper
