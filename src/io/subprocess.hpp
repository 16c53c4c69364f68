/// Internal: running helper programs (headless Chromium for PNG export, Rscript for .rds input):
/// a throw-away scratch directory, finding an executable on PATH, and a run with its output to a
/// log file and a time limit.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

namespace celltyper::detail {

/// A directory under the system temp folder ("PREFIX-XXXXXX"), removed with its contents on
/// destruction. Throws IoError when it cannot be created.
class ScratchDirectory {
 public:
  explicit ScratchDirectory(const std::string& prefix);
  ~ScratchDirectory();
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A regular file the process may execute.
bool is_executable(const std::filesystem::path& path);

/// The first of `names` found as an executable in a PATH directory ("" when none).
std::string find_on_path(std::initializer_list<const char*> names);

/// Last non-empty line of a text file ("" when none), for error messages.
std::string last_line(const std::filesystem::path& path);

/// Run `argv` (argv[0] a path) with stdin from /dev/null and stdout / stderr appended to `log`, in
/// its own process group; kill the group after `timeout_seconds` (IoError). The child is killed
/// if celltyper dies first (PR_SET_PDEATHSIG): a Ctrl-C leaves no R or Chromium behind. Returns
/// the exit status (128 + signal when killed by one; 127 when it could not be started).
int run_with_timeout(const std::vector<std::string>& argv, const std::filesystem::path& log, int timeout_seconds);

}  // namespace celltyper::detail
