// Checks on input files before any work starts (file_checks.hpp).
#include <celltyper/error.hpp>
#include <celltyper/file_checks.hpp>

#include <fmt/format.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace celltyper {

void require_readable(const std::string& path, const char* what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  const int error = errno;
  if (error == EACCES || error == EPERM) throw IoError(fmt::format("{}: permission denied (cannot read the {})", path, what));
  throw IoError(fmt::format("{}: cannot read the {}: {}", path, what, std::strerror(error)));
}

}  // namespace celltyper
