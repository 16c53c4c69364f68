// The read-only HDF5 virtual file driver over RemoteFile, and open_file_readonly.
// Driver callbacks follow HDF5 1.10's H5FD_class_t (H5FDpublic.h); see H5FDsec2.c for the
// reference implementation of the same interface on POSIX files.
#include "io/hdf5_open.hpp"
#include "io/lzf_filter.hpp"

#include <celltyper/crash_guard.hpp>
#include <celltyper/error.hpp>

#include <fmt/format.h>

#include <H5FDpublic.h>

#include <cstring>
#include <filesystem>
#include <optional>

namespace celltyper::h5 {

namespace {

thread_local std::optional<std::string> t_remote_failure;

/// Driver-specific file access property: the remote file to read (a pointer to a shared_ptr
/// owned by open_file_readonly for the duration of H5Fopen; the driver keeps its own copy).
struct RemoteFapl {
  const std::shared_ptr<RemoteFile>* remote = nullptr;
};

struct RemoteDriverFile {
  H5FD_t pub;  // must come first: HDF5 sees a H5FD_t*
  std::shared_ptr<RemoteFile> remote;
  haddr_t eoa = 0;
};

RemoteDriverFile* as_remote(H5FD_t* file) { return reinterpret_cast<RemoteDriverFile*>(file); }
const RemoteDriverFile* as_remote(const H5FD_t* file) { return reinterpret_cast<const RemoteDriverFile*>(file); }

constexpr haddr_t kMaxAddress = (static_cast<haddr_t>(1) << 62) - 1;

H5FD_t* driver_open(const char* /*name*/, unsigned flags, hid_t fapl, haddr_t /*maxaddr*/) {
  if ((flags & (H5F_ACC_RDWR | H5F_ACC_TRUNC | H5F_ACC_CREAT | H5F_ACC_EXCL)) != 0) return nullptr;  // read-only
  const auto* info = static_cast<const RemoteFapl*>(H5Pget_driver_info(fapl));
  if (info == nullptr || info->remote == nullptr || !*info->remote) return nullptr;
  auto* file = new RemoteDriverFile{};
  file->remote = *info->remote;
  return &file->pub;
}

herr_t driver_close(H5FD_t* file) {
  delete as_remote(file);
  return 0;
}

int driver_compare(const H5FD_t* a, const H5FD_t* b) {
  const void* x = as_remote(a)->remote.get();
  const void* y = as_remote(b)->remote.get();
  return x < y ? -1 : (x > y ? 1 : 0);  // each open is its own file (its own cache and counters)
}

herr_t driver_query(const H5FD_t* /*file*/, unsigned long* flags) {
  if (flags != nullptr) *flags = H5FD_FEAT_DATA_SIEVE;  // small raw-data reads are sieved into larger ones
  return 0;
}

haddr_t driver_get_eoa(const H5FD_t* file, H5FD_mem_t /*type*/) { return as_remote(file)->eoa; }

herr_t driver_set_eoa(H5FD_t* file, H5FD_mem_t /*type*/, haddr_t address) {
  as_remote(file)->eoa = address;
  return 0;
}

haddr_t driver_get_eof(const H5FD_t* file, H5FD_mem_t /*type*/) { return static_cast<haddr_t>(as_remote(file)->remote->size()); }

herr_t driver_get_handle(H5FD_t* file, hid_t /*fapl*/, void** handle) {
  if (handle == nullptr) return -1;
  *handle = as_remote(file)->remote.get();
  return 0;
}

herr_t driver_read(H5FD_t* file, H5FD_mem_t /*type*/, hid_t /*dxpl*/, haddr_t address, size_t size, void* buffer) {
  RemoteFile& remote = *as_remote(file)->remote;
  try {
    // HDF5 may read past the end of the file (the superblock search, sieve buffers): zeros there.
    const std::uint64_t file_size = remote.size();
    std::size_t available = 0;
    if (address < file_size) available = static_cast<std::size_t>(std::min<std::uint64_t>(size, file_size - address));
    if (available > 0) remote.read(address, available, buffer);
    if (available < size) std::memset(static_cast<unsigned char*>(buffer) + available, 0, size - available);
    return 0;
  } catch (const std::exception& error) {  // never let an exception cross HDF5's C frames
    t_remote_failure = error.what();
    return -1;
  }
}

herr_t driver_write(H5FD_t* /*file*/, H5FD_mem_t, hid_t, haddr_t, size_t, const void*) { return -1; }

herr_t driver_truncate(H5FD_t* /*file*/, hid_t, hbool_t) { return 0; }

hid_t remote_driver_id() {
  static hid_t id = [] {
    static H5FD_class_t driver{};
    driver.name = "celltyper_remote";
    driver.maxaddr = kMaxAddress;
    driver.fc_degree = H5F_CLOSE_WEAK;
    driver.fapl_size = sizeof(RemoteFapl);
    driver.open = driver_open;
    driver.close = driver_close;
    driver.cmp = driver_compare;
    driver.query = driver_query;
    driver.get_eoa = driver_get_eoa;
    driver.set_eoa = driver_set_eoa;
    driver.get_eof = driver_get_eof;
    driver.get_handle = driver_get_handle;
    driver.read = driver_read;
    driver.write = driver_write;
    driver.truncate = driver_truncate;
    const H5FD_mem_t map[] = H5FD_FLMAP_DICHOTOMY;
    std::memcpy(driver.fl_map, map, sizeof(map));
    const hid_t registered = H5FDregister(&driver);
    if (registered < 0) throw IoError("HDF5 refused to register the remote file driver");
    return registered;
  }();
  return id;
}

}  // namespace

RemoteFile* remote_file_of(hid_t object) {
  Handle file(H5Iget_file_id(object));
  if (!file) return nullptr;
  Handle access(H5Fget_access_plist(file.get()));
  if (!access || H5Pget_driver(access.get()) != remote_driver_id()) return nullptr;
  void* handle = nullptr;
  if (H5Fget_vfd_handle(file.get(), H5P_DEFAULT, &handle) < 0) return nullptr;
  return static_cast<RemoteFile*>(handle);
}

OpenFile open_file_readonly(const std::string& path, const RemoteOptions& options) {
  OpenFile out;
  note_hdf5_object(path);
  if (!is_remote_path(path)) {
    auto lock = hdf5_lock();
    silence_hdf5_errors();
    detail::register_lzf_filter();
    out.file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    return out;
  }
  out.remote = std::make_shared<RemoteFile>(path, options);  // network: outside the HDF5 lock
  auto lock = hdf5_lock();
  silence_hdf5_errors();
  detail::register_lzf_filter();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  const RemoteFapl info{&out.remote};
  if (!fapl || H5Pset_driver(fapl.get(), remote_driver_id(), &info) < 0) throw IoError("HDF5: cannot set up the remote file driver");
  clear_remote_failure();
  out.file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!out.file) {
    rethrow_remote_failure();
    throw InputError(fmt::format("{}: not an HDF5 file, or truncated or corrupt ({} bytes)", path, out.remote->size()));
  }
  return out;
}

void rethrow_remote_failure() {
  if (!t_remote_failure) return;
  std::string message = std::move(*t_remote_failure);
  t_remote_failure.reset();
  throw IoError(message);
}

void clear_remote_failure() { t_remote_failure.reset(); }

}  // namespace celltyper::h5
