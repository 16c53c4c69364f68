#include "io/hdf5_util.hpp"

#include "io/vlen_strings.hpp"

#include <celltyper/error.hpp>

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <type_traits>

namespace celltyper::h5 {

std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

namespace {

/// Per thread that calls HDF5 (catalogue workers open files on their own threads): with a
/// thread-safe libhdf5 the error stack and its automatic printing are per thread. Printing is
/// turned off when the thread first calls HDF5; when the thread ends, its stack is emptied: a
/// failed call (a corrupt file) leaves records on it that libhdf5 1.10 neither frees with the
/// thread nor can release at exit ("HDF5: infinite loop closing library" and a leak). This is
/// the backstop for calls made without an Hdf5Lock: every Hdf5Lock empties the stack when it is
/// released, so a worker ending while another thread holds the mutex (the try_lock below then
/// fails) leaves nothing behind.
struct ThreadErrorStack {
  ThreadErrorStack() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
  ~ThreadErrorStack() {
    // try_lock: the main thread's copy runs inside exit(), where waiting on a thread still
    // reading (a background copy) could hang the exit; the records are only memory.
    std::unique_lock lock(hdf5_mutex(), std::try_to_lock);
    if (lock.owns_lock()) H5Eclear2(H5E_DEFAULT);
  }
  ThreadErrorStack(const ThreadErrorStack&) = delete;
  ThreadErrorStack& operator=(const ThreadErrorStack&) = delete;
};

}  // namespace

void silence_hdf5_errors() { thread_local const ThreadErrorStack stack; }

void clear_hdf5_errors() noexcept { H5Eclear2(H5E_DEFAULT); }

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: H5Idec_ref(id_); break;
  }
  id_ = H5I_INVALID_HID;
}

namespace {

/// The file's name for messages ("" when unknown).
std::string file_name_of(hid_t object) {
  char name[4096];
  const ssize_t length = H5Fget_name(object, name, sizeof(name));
  if (length <= 0 || static_cast<std::size_t>(length) >= sizeof(name)) return {};
  return std::string(name, static_cast<std::size_t>(length));
}

}  // namespace

static std::string full_path(hid_t parent, const std::string& path);

/// Whether every link of `path` exists (H5Lexists fails on a missing intermediate group), each
/// checked on the way: a link out of the file (an external link, a user-defined one) is refused
/// before anything follows it, also behind a soft link (whose own path is walked, to a depth of
/// 16): its target may be any path (a FIFO blocks forever; another user's file), and readers that
/// take byte offsets from the object would read them from the wrong file.
static bool links_exist_in_file(hid_t parent, const std::string& path, int depth) {
  std::size_t start = !path.empty() && path.front() == '/' ? 1 : 0;
  while (true) {
    const std::size_t slash = path.find('/', start);
    const std::string prefix = path.substr(0, slash);
    if (prefix.empty() || prefix == "/") return false;
    if (H5Lexists(parent, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    H5L_info_t link{};
    if (H5Lget_info(parent, prefix.c_str(), &link, H5P_DEFAULT) < 0) return false;
    if (link.type != H5L_TYPE_HARD && link.type != H5L_TYPE_SOFT) {
      throw InputError(fmt::format("{}: '{}' is {} to another file: celltyper reads nothing outside the file it is given (copy the data "
                                   "into the file, e.g. h5py's File.copy)",
                                   file_name_of(parent), full_path(parent, prefix),
                                   link.type == H5L_TYPE_EXTERNAL ? "an external link" : "a user-defined link"));
    }
    if (link.type == H5L_TYPE_SOFT) {
      if (depth >= 16) throw InputError(fmt::format("{}: '{}': soft links nested too deep", file_name_of(parent), full_path(parent, prefix)));
      std::string target(link.u.val_size, '\0');
      if (H5Lget_val(parent, prefix.c_str(), target.data(), target.size(), H5P_DEFAULT) < 0) return false;
      target.resize(std::strlen(target.c_str()));
      // (a relative target is relative to the group holding the link; a dangling one: H5Oexists says)
      const std::size_t holder = prefix.rfind('/');
      const bool relative = target.empty() || target.front() != '/';
      (void)links_exist_in_file(parent, relative && holder != std::string::npos ? prefix.substr(0, holder + 1) + target : target, depth + 1);
    }
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

bool exists(hid_t parent, const std::string& path) {
  // (paths relative to `parent`: an absolute one is not looked up, as before)
  return !path.empty() && path.front() != '/' && links_exist_in_file(parent, path, 0) && H5Oexists_by_name(parent, path.c_str(), H5P_DEFAULT) > 0;
}

H5O_type_t object_type(hid_t parent, const std::string& path) {
  if (!exists(parent, path)) return H5O_TYPE_UNKNOWN;
  H5O_info_t info;
  if (H5Oget_info_by_name2(parent, path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return H5O_TYPE_UNKNOWN;
  return info.type;
}

namespace {
herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> list_members(hid_t group) {
  std::vector<std::string> names;
  hsize_t index = 0;
  if (H5Literate(group, H5_INDEX_CRT_ORDER, H5_ITER_INC, &index, collect_name, &names) < 0) {
    names.clear();
    index = 0;
    H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, &names);
  }
  return names;
}

Handle untimed_dataset_plist() {
  Handle plist(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_obj_track_times(plist.get(), 0);
  return plist;
}

Handle untimed_group_plist() {
  Handle plist(H5Pcreate(H5P_GROUP_CREATE));
  H5Pset_obj_track_times(plist.get(), 0);
  return plist;
}

Handle untimed_file_plist() {
  Handle plist(H5Pcreate(H5P_FILE_CREATE));
  H5Pset_obj_track_times(plist.get(), 0);  // (the root group's)
  return plist;
}

void throw_open_failure(const std::string& path, const std::string& subject, std::string_view noun) {
  // A write lock taken by another process: our shared lock cannot be had either.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) throw IoError(fmt::format("{}: permission denied (cannot read {})", subject, noun));
  if (fd >= 0) {
    const bool locked = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    if (locked) {
      throw IoError(fmt::format("{}: locked by another process that has it open for writing (HDF5 file locking): let it finish or "
                                "close the file there (h5py mode 'r+' / 'a'); on a file system without working locks set "
                                "HDF5_USE_FILE_LOCKING=FALSE",
                                subject));
    }
  }
  throw InputError(fmt::format("{}: HDF5 cannot open {} (truncated or corrupt?)", subject, noun));
}

std::string object_name(hid_t object) {
  char name[1024];
  const ssize_t length = H5Iget_name(object, name, sizeof(name));
  if (length <= 0 || static_cast<std::size_t>(length) >= sizeof(name)) return {};
  return std::string(name, static_cast<std::size_t>(length));
}

/// `path` below `parent` as an absolute HDF5 path ("/var/_index"), for the crash guard's message.
static std::string full_path(hid_t parent, const std::string& path) {
  if (!path.empty() && path.front() == '/') return path;
  const std::string base = object_name(parent);
  if (base.empty()) return path;
  return base == "/" ? "/" + path : base + "/" + path;
}

Handle open_group(hid_t parent, const std::string& path, const std::string& file_for_errors) {
  note_hdf5_object(file_for_errors, full_path(parent, path));
  if (object_type(parent, path) != H5O_TYPE_GROUP) {
    throw InputError(fmt::format("{}: '{}' is missing or not a group", file_for_errors, path));
  }
  Handle group(H5Gopen2(parent, path.c_str(), H5P_DEFAULT));
  if (!group) throw InputError(fmt::format("{}: cannot open group '{}'", file_for_errors, path));
  return group;
}

Handle open_dataset(hid_t parent, const std::string& path, const std::string& file_for_errors, hid_t access_plist) {
  note_hdf5_object(file_for_errors, full_path(parent, path));
  if (object_type(parent, path) != H5O_TYPE_DATASET) {
    throw InputError(fmt::format("{}: dataset '{}' is missing", file_for_errors, path));
  }
  Handle dataset(H5Dopen2(parent, path.c_str(), access_plist));
  if (!dataset) throw InputError(fmt::format("{}: cannot open dataset '{}'", file_for_errors, path));
  // Values stored outside the file (external raw storage: any path, /etc/passwd read as numbers;
  // a virtual dataset's sources, read as fill values when missing) are refused likewise.
  const Handle create(H5Dget_create_plist(dataset.get()));
  if (create && (H5Pget_layout(create.get()) == H5D_VIRTUAL || H5Pget_external_count(create.get()) > 0)) {
    throw InputError(fmt::format("{}: dataset '{}' keeps its values outside the file ({}): celltyper reads nothing outside the file it is "
                                 "given (write the values into the file, e.g. h5py's File.copy)",
                                 file_for_errors, full_path(parent, path),
                                 H5Pget_layout(create.get()) == H5D_VIRTUAL ? "a virtual dataset" : "external raw storage"));
  }
  return dataset;
}

bool has_attribute(hid_t object, const char* name) { return H5Aexists(object, name) > 0; }

namespace {

std::vector<std::string> read_string_values(hid_t object_or_attr, bool is_attribute, hid_t file_type, std::size_t count) {
  std::vector<std::string> out(count);
  if (count == 0) return out;
  const bool variable = H5Tis_variable_str(file_type) > 0;
  const H5T_cset_t cset = H5Tget_cset(file_type);
  Handle memory_type(H5Tcopy(H5T_C_S1));
  H5Tset_cset(memory_type.get(), cset);
  if (variable) {
    if (!is_attribute) {  // datasets: the stored heap IDs and collections read and checked by celltyper
      if (auto direct = detail::read_vlen_strings(object_or_attr, count)) return std::move(*direct);
    }
    H5Tset_size(memory_type.get(), H5T_VARIABLE);
    std::vector<char*> pointers(count, nullptr);
    const herr_t status = is_attribute ? H5Aread(object_or_attr, memory_type.get(), pointers.data())
                                       : H5Dread(object_or_attr, memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data());
    if (status < 0) throw IoError("HDF5 failed to read variable-length strings" + (is_attribute ? std::string() : missing_filter_note(object_or_attr)));
    for (std::size_t i = 0; i < count; ++i) {
      if (pointers[i] != nullptr) out[i] = pointers[i];
    }
    Handle space(H5Screate_simple(1, std::array<hsize_t, 1>{count}.data(), nullptr));
    H5Dvlen_reclaim(memory_type.get(), space.get(), H5P_DEFAULT, pointers.data());
  } else {
    const std::size_t width = H5Tget_size(file_type);
    H5Tset_size(memory_type.get(), width);
    H5Tset_strpad(memory_type.get(), H5T_STR_NULLPAD);
    std::vector<char> buffer(width * count);
    const herr_t status = is_attribute ? H5Aread(object_or_attr, memory_type.get(), buffer.data())
                                       : H5Dread(object_or_attr, memory_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data());
    if (status < 0) throw IoError("HDF5 failed to read fixed-length strings" + (is_attribute ? std::string() : missing_filter_note(object_or_attr)));
    for (std::size_t i = 0; i < count; ++i) {
      const char* begin = buffer.data() + i * width;
      out[i].assign(begin, strnlen(begin, width));
    }
  }
  return out;
}

std::size_t space_elements(hid_t space) {
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

}  // namespace

std::optional<std::string> string_attribute(hid_t object, const char* name) {
  if (!has_attribute(object, name)) return std::nullopt;
  Handle attribute(H5Aopen(object, name, H5P_DEFAULT));
  Handle type(H5Aget_type(attribute.get()));
  if (H5Tget_class(type.get()) != H5T_STRING) return std::nullopt;
  Handle space(H5Aget_space(attribute.get()));
  const auto values = read_string_values(attribute.get(), true, type.get(), std::max<std::size_t>(1, space_elements(space.get())));
  return values.empty() ? std::string() : values.front();
}

std::vector<std::string> string_array_attribute(hid_t object, const char* name) {
  if (!has_attribute(object, name)) return {};
  Handle attribute(H5Aopen(object, name, H5P_DEFAULT));
  Handle type(H5Aget_type(attribute.get()));
  Handle space(H5Aget_space(attribute.get()));
  const std::size_t n = space_elements(space.get());
  if (H5Tget_class(type.get()) != H5T_STRING) return {};
  if (H5Sget_simple_extent_type(space.get()) == H5S_SCALAR) return read_string_values(attribute.get(), true, type.get(), 1);
  return read_string_values(attribute.get(), true, type.get(), n);
}

std::vector<std::int64_t> int_array_attribute(hid_t object, const char* name) {
  if (!has_attribute(object, name)) return {};
  Handle attribute(H5Aopen(object, name, H5P_DEFAULT));
  Handle type(H5Aget_type(attribute.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER && H5Tget_class(type.get()) != H5T_FLOAT) return {};
  Handle space(H5Aget_space(attribute.get()));
  std::vector<std::int64_t> values(std::max<std::size_t>(1, space_elements(space.get())));
  if (H5Aread(attribute.get(), H5T_NATIVE_INT64, values.data()) < 0) return {};
  return values;
}

std::optional<bool> bool_attribute(hid_t object, const char* name) {
  if (!has_attribute(object, name)) return std::nullopt;
  Handle attribute(H5Aopen(object, name, H5P_DEFAULT));
  Handle type(H5Aget_type(attribute.get()));
  // numpy bools are stored by h5py as an enum over int8 {FALSE=0, TRUE=1}.
  std::int8_t value = 0;
  if (H5Aread(attribute.get(), H5T_NATIVE_INT8, &value) < 0) return std::nullopt;
  return value != 0;
}

namespace {
Handle variable_string_type() {
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

void replace_attribute(hid_t object, const char* name) {
  if (has_attribute(object, name)) H5Adelete(object, name);
}

/// h5py's boolean type: an int8 enum {FALSE: 0, TRUE: 1}.
Handle bool_type() {
  Handle type(H5Tenum_create(H5T_NATIVE_INT8));
  std::int8_t value = 0;
  H5Tenum_insert(type.get(), "FALSE", &value);
  value = 1;
  H5Tenum_insert(type.get(), "TRUE", &value);
  return type;
}
}  // namespace

void write_string_attribute(hid_t object, const char* name, const std::string& value) {
  replace_attribute(object, name);
  Handle type = variable_string_type();
  Handle space(H5Screate(H5S_SCALAR));
  Handle attribute(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  const char* pointer = value.c_str();
  if (!attribute || H5Awrite(attribute.get(), type.get(), &pointer) < 0) {
    throw IoError(fmt::format("cannot write attribute '{}'", name));
  }
}

void write_string_array_attribute(hid_t object, const char* name, const std::vector<std::string>& values) {
  replace_attribute(object, name);
  if (values.empty()) {
    // h5py stores an empty list as an empty float64 array; anndata reads that back as [].
    const hsize_t zero = 0;
    Handle space(H5Screate_simple(1, &zero, nullptr));
    Handle attribute(H5Acreate2(object, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!attribute) throw IoError(fmt::format("cannot write attribute '{}'", name));
    return;
  }
  Handle type = variable_string_type();
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle attribute(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& value : values) pointers.push_back(value.c_str());
  if (!attribute || H5Awrite(attribute.get(), type.get(), pointers.data()) < 0) {
    throw IoError(fmt::format("cannot write attribute '{}'", name));
  }
}

void write_int_array_attribute(hid_t object, const char* name, const std::vector<std::int64_t>& values) {
  replace_attribute(object, name);
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle attribute(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attribute || H5Awrite(attribute.get(), H5T_NATIVE_INT64, values.data()) < 0) {
    throw IoError(fmt::format("cannot write attribute '{}'", name));
  }
}

void write_bool_attribute(hid_t object, const char* name, bool value) {
  replace_attribute(object, name);
  Handle type = bool_type();
  Handle space(H5Screate(H5S_SCALAR));
  Handle attribute(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  const std::int8_t stored = value ? 1 : 0;
  if (!attribute || H5Awrite(attribute.get(), type.get(), &stored) < 0) {
    throw IoError(fmt::format("cannot write attribute '{}'", name));
  }
}

void write_encoding(hid_t object, const char* type, const char* version) {
  write_string_attribute(object, "encoding-type", type);
  write_string_attribute(object, "encoding-version", version);
}

std::vector<std::int64_t> dataset_shape(hid_t dataset) {
  Handle space(H5Dget_space(dataset));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank <= 0) return {};
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

std::int64_t dataset_length(hid_t dataset) {
  const auto shape = dataset_shape(dataset);
  return shape.empty() ? 1 : shape.front();
}

std::string dtype_name(hid_t dataset) {
  Handle type(H5Dget_type(dataset));
  const H5T_class_t type_class = H5Tget_class(type.get());
  const std::size_t size = H5Tget_size(type.get());
  switch (type_class) {
    case H5T_INTEGER:
      return fmt::format("{}int{}", H5Tget_sign(type.get()) == H5T_SGN_NONE ? "u" : "", size * 8);
    case H5T_FLOAT: return fmt::format("float{}", size * 8);
    case H5T_STRING: return "str";
    case H5T_ENUM: return "bool";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    default: return "unknown";
  }
}

bool is_string_dataset(hid_t dataset) {
  Handle type(H5Dget_type(dataset));
  return H5Tget_class(type.get()) == H5T_STRING;
}

std::string compression_name(hid_t dataset) {
  Handle plist(H5Dget_create_plist(dataset));
  const int n = H5Pget_nfilters(plist.get());
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0;
    std::size_t n_values = 8;
    std::array<unsigned, 8> values{};
    std::array<char, 64> name{};
    const H5Z_filter_t filter = H5Pget_filter2(plist.get(), static_cast<unsigned>(i), &flags, &n_values, values.data(),
                                               name.size(), name.data(), nullptr);
    switch (filter) {
      case H5Z_FILTER_DEFLATE: names.push_back(fmt::format("gzip({})", n_values > 0 ? values[0] : 0)); break;
      case H5Z_FILTER_SHUFFLE: names.emplace_back("shuffle"); break;
      case H5Z_FILTER_FLETCHER32: names.emplace_back("fletcher32"); break;
      case H5Z_FILTER_SZIP: names.emplace_back("szip"); break;
      case 32000: names.emplace_back("lzf"); break;
      case 32001: names.emplace_back("blosc"); break;
      case 32015: names.emplace_back("zstd"); break;
      default: names.push_back(fmt::format("filter({})", filter)); break;
    }
  }
  if (names.empty()) return "none";
  return fmt::format("{}", fmt::join(names, "+"));
}

std::string missing_filter_note(hid_t dataset) {
  if (H5Iget_type(dataset) != H5I_DATASET) return "";
  Handle plist(H5Dget_create_plist(dataset));
  const int n = H5Pget_nfilters(plist.get());
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0;
    std::size_t n_values = 0;
    const H5Z_filter_t filter = H5Pget_filter2(plist.get(), static_cast<unsigned>(i), &flags, &n_values, nullptr, 0, nullptr, nullptr);
    if (filter >= 0 && H5Zfilter_avail(filter) <= 0) {
      return fmt::format(": the data is compressed with {} (HDF5 filter {}), which celltyper cannot decode; re-save the file with gzip "
                         "(in Python: adata.write_h5ad(path, compression=\"gzip\"))",
                         compression_name(dataset), filter);
    }
  }
  return "";
}

std::vector<std::int64_t> chunk_shape(hid_t dataset) {
  Handle plist(H5Dget_create_plist(dataset));
  if (H5Pget_layout(plist.get()) != H5D_CHUNKED) return {};
  std::array<hsize_t, 8> dims{};
  const int rank = H5Pget_chunk(plist.get(), static_cast<int>(dims.size()), dims.data());
  return {dims.begin(), dims.begin() + std::max(rank, 0)};
}

std::int64_t storage_bytes(hid_t dataset) { return static_cast<std::int64_t>(H5Dget_storage_size(dataset)); }

template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> hid_t native_type<std::int8_t>() { return H5T_NATIVE_INT8; }
template <> hid_t native_type<std::uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t native_type<std::int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t native_type<std::int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<std::uint32_t>() { return H5T_NATIVE_UINT32; }

template <typename T>
void read_1d(hid_t dataset, std::int64_t offset, std::int64_t count, T* out) {
  if (count <= 0) return;
  Handle file_space(H5Dget_space(dataset));
  const hsize_t start = static_cast<hsize_t>(offset);
  const hsize_t n = static_cast<hsize_t>(count);
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr) < 0) {
    throw IoError("HDF5 hyperslab selection failed");
  }
  Handle memory_space(H5Screate_simple(1, &n, nullptr));
  if (H5Dread(dataset, native_type<T>(), memory_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    throw IoError(fmt::format("HDF5 failed to read elements {}..{}{}", offset, offset + count, missing_filter_note(dataset)));
  }
}

template <typename T>
std::vector<T> read_all_1d(hid_t dataset) {
  Handle space(H5Dget_space(dataset));
  std::vector<T> values(space_elements(space.get()));
  if (!values.empty() && H5Dread(dataset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
    throw IoError("HDF5 failed to read a dataset" + missing_filter_note(dataset));
  }
  return values;
}

namespace {
/// The [start_row, +rows) x [start_col, +cols) block of a 2-D dataset into row-major `out`;
/// `what` names it in the error ("rows 3..7").
template <typename T>
void read_block_2d(hid_t dataset, std::int64_t start_row, std::int64_t rows, std::int64_t start_col, std::int64_t cols, T* out,
                   const std::string& what) {
  if (rows <= 0 || cols <= 0) return;
  Handle file_space(H5Dget_space(dataset));
  const std::array<hsize_t, 2> start{static_cast<hsize_t>(start_row), static_cast<hsize_t>(start_col)};
  const std::array<hsize_t, 2> n{static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, n.data(), nullptr) < 0) {
    throw IoError("HDF5 hyperslab selection failed");
  }
  Handle memory_space(H5Screate_simple(2, n.data(), nullptr));
  if (H5Dread(dataset, native_type<T>(), memory_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    throw IoError(fmt::format("HDF5 failed to read {}{}", what, missing_filter_note(dataset)));
  }
}
}  // namespace

template <typename T>
void read_rows_2d(hid_t dataset, std::int64_t row, std::int64_t count, std::int64_t cols, T* out) {
  read_block_2d(dataset, row, count, 0, cols, out, fmt::format("rows {}..{}", row, row + count));
}

template <typename T>
void read_cols_2d(hid_t dataset, std::int64_t col, std::int64_t count, std::int64_t rows, T* out) {
  read_block_2d(dataset, 0, rows, col, count, out, fmt::format("columns {}..{}", col, col + count));
}

Column read_array_column(hid_t dataset, const std::string& name) {
  Column column;
  column.name = name;
  column.dtype = h5::dtype_name(dataset);
  if (column.dtype == "str") {
    column.kind = ColumnKind::kString;
    column.strings = h5::read_strings(dataset);
  } else if (column.dtype == "bool") {
    column.kind = ColumnKind::kBool;
    column.booleans = h5::read_all_1d<std::uint8_t>(dataset);
  } else if (column.dtype.rfind("float", 0) == 0) {
    column.kind = ColumnKind::kFloat;
    column.numbers = h5::read_all_1d<double>(dataset);
  } else if (column.dtype.rfind("int", 0) == 0 || column.dtype.rfind("uint", 0) == 0) {
    column.kind = ColumnKind::kInt;
    column.integers = h5::read_all_1d<std::int64_t>(dataset);
  } else {
    throw UnsupportedError(fmt::format("column '{}' has unsupported element type {}", name, column.dtype));
  }
  return column;
}
std::vector<std::string> read_strings(hid_t dataset) {
  Handle type(H5Dget_type(dataset));
  Handle space(H5Dget_space(dataset));
  const std::size_t n = H5Sget_simple_extent_type(space.get()) == H5S_SCALAR ? 1 : space_elements(space.get());
  return read_string_values(dataset, false, type.get(), n);
}

namespace {
/// `shuffle`: HDF5's byte-shuffle filter before deflate (byte k of every value stored together),
/// which compresses index arrays far better (a model's reference sample: column indices 30 -> 17
/// MB). Only for datasets read through libhdf5: the direct chunk reader of h5ad matrices
/// (direct_read.cpp) takes deflate alone.
Handle chunked_plist(int gzip_level, int rank, const hsize_t* chunk_dims, bool shuffle = false) {
  Handle plist = untimed_dataset_plist();
  H5Pset_chunk(plist.get(), rank, chunk_dims);
  if (gzip_level > 0 && shuffle) H5Pset_shuffle(plist.get());
  if (gzip_level > 0) H5Pset_deflate(plist.get(), static_cast<unsigned>(gzip_level));
  return plist;
}

template <typename T> hid_t file_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  else if constexpr (std::is_same_v<T, double>) return H5T_IEEE_F64LE;
  else if constexpr (std::is_same_v<T, std::int8_t>) return H5T_STD_I8LE;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_STD_U8LE;
  else if constexpr (std::is_same_v<T, std::int32_t>) return H5T_STD_I32LE;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return H5T_STD_U32LE;
  else return H5T_STD_I64LE;
}
}  // namespace

template <typename T>
Handle write_1d(hid_t parent, const std::string& name, const T* data, std::int64_t count, int gzip_level, std::int64_t chunk) {
  const hsize_t n = static_cast<hsize_t>(count);
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle plist = untimed_dataset_plist();
  if (gzip_level > 0 && count > 0) {
    const hsize_t chunk_dim = static_cast<hsize_t>(std::clamp<std::int64_t>(chunk, 1, count));
    plist = chunked_plist(gzip_level, 1, &chunk_dim, true);
  }
  Handle dataset(H5Dcreate2(parent, name.c_str(), file_type<T>(), space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT));
  if (!dataset) throw IoError(fmt::format("cannot create dataset '{}'", name));
  if (count > 0 && H5Dwrite(dataset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    throw IoError(fmt::format("cannot write dataset '{}' (disk full?)", name));
  }
  return dataset;
}

template <typename T>
Handle write_2d(hid_t parent, const std::string& name, const T* data, std::int64_t rows, std::int64_t cols, int gzip_level) {
  const std::array<hsize_t, 2> dims{static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  Handle space(H5Screate_simple(2, dims.data(), nullptr));
  Handle plist = untimed_dataset_plist();
  if (gzip_level > 0 && rows > 0 && cols > 0) {
    const std::array<hsize_t, 2> chunk{static_cast<hsize_t>(std::clamp<std::int64_t>((1 << 16) / std::max<std::int64_t>(cols, 1), 1, rows)),
                                       static_cast<hsize_t>(cols)};
    plist = chunked_plist(gzip_level, 2, chunk.data());
  }
  Handle dataset(H5Dcreate2(parent, name.c_str(), file_type<T>(), space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT));
  if (!dataset) throw IoError(fmt::format("cannot create dataset '{}'", name));
  if (rows * cols > 0 && H5Dwrite(dataset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    throw IoError(fmt::format("cannot write dataset '{}' (disk full?)", name));
  }
  return dataset;
}

Handle write_strings(hid_t parent, const std::string& name, const std::vector<std::string>& values) {
  Handle type = variable_string_type();
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle dataset(H5Dcreate2(parent, name.c_str(), type.get(), space.get(), H5P_DEFAULT, untimed_dataset_plist().get(), H5P_DEFAULT));
  if (!dataset) throw IoError(fmt::format("cannot create dataset '{}'", name));
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& value : values) pointers.push_back(value.c_str());
  if (!values.empty() && H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0) {
    throw IoError(fmt::format("cannot write dataset '{}' (disk full?)", name));
  }
  write_encoding(dataset.get(), "string-array", "0.2.0");
  return dataset;
}

template <typename T>
Handle create_extendible_1d(hid_t parent, const std::string& name, std::int64_t chunk, int gzip_level) {
  const hsize_t zero = 0;
  const hsize_t unlimited = H5S_UNLIMITED;
  Handle space(H5Screate_simple(1, &zero, &unlimited));
  const hsize_t chunk_dim = static_cast<hsize_t>(std::max<std::int64_t>(chunk, 1));
  Handle plist = chunked_plist(gzip_level, 1, &chunk_dim);
  Handle dataset(H5Dcreate2(parent, name.c_str(), file_type<T>(), space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT));
  if (!dataset) throw IoError(fmt::format("cannot create dataset '{}'", name));
  return dataset;
}

template <typename T>
void append_1d(hid_t dataset, const T* data, std::int64_t count) {
  if (count <= 0) return;
  const hsize_t old_size = static_cast<hsize_t>(dataset_length(dataset));
  const hsize_t new_size = old_size + static_cast<hsize_t>(count);
  if (H5Dset_extent(dataset, &new_size) < 0) throw IoError("cannot extend dataset");
  Handle file_space(H5Dget_space(dataset));
  const hsize_t n = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &old_size, nullptr, &n, nullptr);
  Handle memory_space(H5Screate_simple(1, &n, nullptr));
  if (H5Dwrite(dataset, native_type<T>(), memory_space.get(), file_space.get(), H5P_DEFAULT, data) < 0) {
    throw IoError("cannot append to dataset (disk full?)");
  }
}

Handle create_group(hid_t parent, const std::string& path) {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  Handle gcpl = untimed_group_plist();
  H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  Handle group(H5Gcreate2(parent, path.c_str(), lcpl.get(), gcpl.get(), H5P_DEFAULT));
  if (!group) throw IoError(fmt::format("cannot create group '{}'", path));
  return group;
}

void unlink_if_exists(hid_t parent, const std::string& path) {
  if (exists(parent, path)) H5Ldelete(parent, path.c_str(), H5P_DEFAULT);
}

#define CELLTYPER_H5_INSTANTIATE(T)                                                                     \
  template void read_1d<T>(hid_t, std::int64_t, std::int64_t, T*);                                      \
  template std::vector<T> read_all_1d<T>(hid_t);                                                        \
  template void read_rows_2d<T>(hid_t, std::int64_t, std::int64_t, std::int64_t, T*);                   \
  template void read_cols_2d<T>(hid_t, std::int64_t, std::int64_t, std::int64_t, T*);                   \
  template Handle write_1d<T>(hid_t, const std::string&, const T*, std::int64_t, int, std::int64_t);    \
  template Handle write_2d<T>(hid_t, const std::string&, const T*, std::int64_t, std::int64_t, int);    \
  template Handle create_extendible_1d<T>(hid_t, const std::string&, std::int64_t, int);                \
  template void append_1d<T>(hid_t, const T*, std::int64_t);
CELLTYPER_H5_INSTANTIATE(float)
CELLTYPER_H5_INSTANTIATE(double)
CELLTYPER_H5_INSTANTIATE(std::int8_t)
CELLTYPER_H5_INSTANTIATE(std::uint8_t)
CELLTYPER_H5_INSTANTIATE(std::int32_t)
CELLTYPER_H5_INSTANTIATE(std::uint32_t)
CELLTYPER_H5_INSTANTIATE(std::int64_t)
#undef CELLTYPER_H5_INSTANTIATE

}  // namespace celltyper::h5
