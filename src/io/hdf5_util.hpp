/// Internal: a thin RAII layer over the HDF5 C API used by the h5ad and 10x readers/writers.
/// All HDF5 calls go through one process-wide mutex (Debian's libhdf5 is built thread-safe,
/// but its global lock covers single calls only); callers hold `hdf5_lock()` around any
/// sequence of calls.
#pragma once

#include <celltyper/crash_guard.hpp>
#include <celltyper/dataframe.hpp>
#include <celltyper/error.hpp>
#include <celltyper/file_checks.hpp>

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace celltyper::h5 {

/// The process-wide HDF5 mutex (recursive: helpers call helpers).
std::recursive_mutex& hdf5_mutex();

/// Empty this thread's HDF5 error stack. We never read it (errors are reported by our own
/// messages), and records left on a worker thread's stack when it ends are leaked and make
/// libhdf5 print "HDF5: infinite loop closing library" at exit.
void clear_hdf5_errors() noexcept;

/// Holds the HDF5 mutex and tells the crash guard (crash_guard.hpp) that this thread is inside
/// the HDF5 library until it is released; on release, the thread's HDF5 error stack is emptied
/// (clear_hdf5_errors) while the mutex is still held.
class Hdf5Lock {
 public:
  Hdf5Lock() : lock_(hdf5_mutex()) { enter_hdf5(); }
  ~Hdf5Lock() {
    if (!lock_.owns_lock()) return;
    clear_hdf5_errors();
    leave_hdf5();
  }
  Hdf5Lock(const Hdf5Lock&) = delete;
  Hdf5Lock& operator=(const Hdf5Lock&) = delete;
  /// Release early (the destructor then does nothing).
  void unlock() {
    if (!lock_.owns_lock()) return;
    clear_hdf5_errors();
    leave_hdf5();
    lock_.unlock();
  }

 private:
  std::unique_lock<std::recursive_mutex> lock_;
};
inline Hdf5Lock hdf5_lock() { return {}; }

/// Turn off HDF5's automatic error printing (once per thread: Debian's libhdf5 is built
/// thread-safe, where this is a per-thread setting); we report our own errors.
void silence_hdf5_errors();

/// An owned HDF5 identifier closed with the matching H5*close on destruction.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  [[nodiscard]] hid_t get() const { return id_; }
  [[nodiscard]] bool valid() const { return id_ >= 0; }
  explicit operator bool() const { return valid(); }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

/// The error for a local HDF5 file that H5Fopen refused: IoError when another process holds a
/// write lock on it (HDF5's file locking, flock: h5py's 'r+' / 'a' mode, a writer still running),
/// else InputError "SUBJECT: HDF5 cannot open NOUN (truncated or corrupt?)".
[[noreturn]] void throw_open_failure(const std::string& path, const std::string& subject, std::string_view noun = "the file");

/// Creation property lists of what celltyper writes, without object timestamps (HDF5 stamps
/// every object header with its creation and change times by default): the same output written
/// twice from the same inputs is the same bytes.
Handle untimed_dataset_plist();
Handle untimed_group_plist();
Handle untimed_file_plist();

/// The absolute HDF5 path of an open object ("/X/data"), "" when unknown.
std::string object_name(hid_t object);

/// Does `parent/name` exist (a link that resolves)? Accepts nested paths "raw/X".
bool exists(hid_t parent, const std::string& path);
/// Object type at `path` (H5O_TYPE_GROUP, H5O_TYPE_DATASET, ...), or H5O_TYPE_UNKNOWN when absent.
H5O_type_t object_type(hid_t parent, const std::string& path);
/// Names of the members of a group, in creation order when tracked, else name order.
std::vector<std::string> list_members(hid_t group);

Handle open_group(hid_t parent, const std::string& path, const std::string& file_for_errors);
Handle open_dataset(hid_t parent, const std::string& path, const std::string& file_for_errors,
                    hid_t access_plist = H5P_DEFAULT);

/// Attributes.
bool has_attribute(hid_t object, const char* name);
/// String attribute (fixed or variable length), nullopt when absent or not a string.
std::optional<std::string> string_attribute(hid_t object, const char* name);
/// String-array attribute (e.g. column-order), empty when absent; a numeric empty array is empty.
std::vector<std::string> string_array_attribute(hid_t object, const char* name);
/// Integer-array attribute (e.g. shape), empty when absent.
std::vector<std::int64_t> int_array_attribute(hid_t object, const char* name);
std::optional<bool> bool_attribute(hid_t object, const char* name);

void write_string_attribute(hid_t object, const char* name, const std::string& value);
void write_string_array_attribute(hid_t object, const char* name, const std::vector<std::string>& values);
void write_int_array_attribute(hid_t object, const char* name, const std::vector<std::int64_t>& values);
void write_bool_attribute(hid_t object, const char* name, bool value);
/// Set anndata's encoding-type / encoding-version attributes.
void write_encoding(hid_t object, const char* type, const char* version);

/// Dataset metadata.
std::vector<std::int64_t> dataset_shape(hid_t dataset);
std::int64_t dataset_length(hid_t dataset);  ///< first dimension (1 for scalars)
/// Numpy-style name of a dataset's element type: "float32", "int64", "uint16", "bool", "str", ...
std::string dtype_name(hid_t dataset);
bool is_string_dataset(hid_t dataset);
/// "none", "gzip(4)", "lzf", "szip", "blosc", "filter(<id>)", joined with '+' when several.
std::string compression_name(hid_t dataset);
/// ": the data is compressed with X (HDF5 filter N), which celltyper cannot decode; re-save ..."
/// when a filter of `dataset` is not available here (blosc, zstd, ...), else "": what a failed
/// read adds to its message.
std::string missing_filter_note(hid_t dataset);
/// Chunk shape; empty when not chunked.
std::vector<std::int64_t> chunk_shape(hid_t dataset);
/// Bytes on disk.
std::int64_t storage_bytes(hid_t dataset);

/// Native memory type of T.
template <typename T> hid_t native_type();

/// Read elements [offset, offset + count) of a 1-D dataset (HDF5 converts the stored type).
template <typename T>
void read_1d(hid_t dataset, std::int64_t offset, std::int64_t count, T* out);
template <typename T>
std::vector<T> read_all_1d(hid_t dataset);
/// Read rows [row, row + count) of a 2-D dataset into row-major `out` (count x cols).
template <typename T>
void read_rows_2d(hid_t dataset, std::int64_t row, std::int64_t count, std::int64_t cols, T* out);
/// Read columns [col, col + count) of every one of the `rows` rows of a 2-D dataset into
/// row-major `out` (rows x count): cells of a matrix stored genes x cells (loom).
template <typename T>
void read_cols_2d(hid_t dataset, std::int64_t col, std::int64_t count, std::int64_t rows, T* out);
/// Read a 1-D array dataset into a typed column (string, float, int or bool; UnsupportedError
/// for other element types).
Column read_array_column(hid_t dataset, const std::string& name);
/// Read a 1-D string dataset (fixed or variable length, ASCII or UTF-8).
std::vector<std::string> read_strings(hid_t dataset);

/// Create datasets (1-D / 2-D) and write data in one go. `gzip_level` 0 = none; a compressed 1-D
/// dataset is byte-shuffled before deflate (read back by libhdf5, e.g. a model file's arrays).
template <typename T>
Handle write_1d(hid_t parent, const std::string& name, const T* data, std::int64_t count, int gzip_level = 0,
                std::int64_t chunk = 1 << 16);
template <typename T>
Handle write_2d(hid_t parent, const std::string& name, const T* data, std::int64_t rows, std::int64_t cols,
                int gzip_level = 0);
Handle write_strings(hid_t parent, const std::string& name, const std::vector<std::string>& values);
/// Create an extendible chunked 1-D dataset of T (for streaming appends).
template <typename T>
Handle create_extendible_1d(hid_t parent, const std::string& name, std::int64_t chunk, int gzip_level);
template <typename T>
void append_1d(hid_t dataset, const T* data, std::int64_t count);

/// Create a group (intermediate groups too), tracking creation order as anndata does.
Handle create_group(hid_t parent, const std::string& path);
/// Delete a link if present.
void unlink_if_exists(hid_t parent, const std::string& path);

}  // namespace celltyper::h5
