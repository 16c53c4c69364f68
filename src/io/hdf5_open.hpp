/// Internal: the one place h5ad / 10x readers open an HDF5 file read-only. Local paths go to
/// HDF5's default (sec2) driver; http(s):// and s3:// URLs go to celltyper's read-only virtual
/// file driver "celltyper_remote" (H5FD class over RemoteFile: Range requests + block cache).
///
/// HDF5 calls are serialised (`hdf5_lock()`, and libhdf5's own global lock), so the driver's
/// reads run under the caller's lock; a transfer failure inside HDF5 is recorded per thread and turned
/// back into the RemoteFile's own message by `rethrow_remote_failure` (HDF5 itself only says
/// "read failed").
#pragma once

#include <celltyper/remote.hpp>

#include "io/hdf5_util.hpp"

#include <memory>
#include <string>

namespace celltyper::h5 {

/// An open HDF5 file and, for a URL, the remote reader behind it (shared with the driver).
struct OpenFile {
  std::shared_ptr<RemoteFile> remote;  ///< null for a local file
  Handle file;
};

/// Open `path` (local path or URL) read-only. For a URL the remote file is contacted first
/// (outside the HDF5 lock: 404 / 403 / timeouts fail here with the URL and status). Throws
/// InputError when the bytes are not an HDF5 file; the caller need not hold the HDF5 lock.
OpenFile open_file_readonly(const std::string& path, const RemoteOptions& options = RemoteOptions::from_environment());

/// The RemoteFile behind an open file (any object of it) when it was opened through the remote
/// driver; nullptr for a local file.
RemoteFile* remote_file_of(hid_t object);

/// If a remote read failed inside HDF5 on this thread since the last call, throw IoError with
/// that failure's message (and clear it); else return.
void rethrow_remote_failure();
/// Forget a remote failure recorded on this thread.
void clear_remote_failure();

/// Run `action`; when it throws a celltyper::Error after a remote read failed inside HDF5,
/// throw the remote failure's message instead (which names the URL and the HTTP status).
template <typename Action>
auto with_remote_errors(Action&& action) -> decltype(action()) {
  clear_remote_failure();
  try {
    return action();
  } catch (const Error&) {
    rethrow_remote_failure();
    throw;
  }
}

}  // namespace celltyper::h5
