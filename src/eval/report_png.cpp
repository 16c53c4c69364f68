/// @file report_png.cpp
/// PNG export of the report's plots: each plot is written as a one-plot HTML page and captured
/// with headless Chromium (`--headless --screenshot`), one process per plot, each with its own
/// throw-away profile directory so that concurrent runs never share state.

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "celltyper/error.hpp"
#include "celltyper/output_file.hpp"
#include "celltyper/report.hpp"

extern char** environ;

namespace celltyper {
namespace {

/// A directory under the system temp folder, removed with its contents on destruction.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "celltyper-png-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      throw IoError(fmt::format("cannot create a temporary directory {}: {}", pattern, std::strerror(errno)));
    }
    path_ = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

bool is_executable(const std::filesystem::path& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && access(path.c_str(), X_OK) == 0;
}

/// Last non-empty line of a text file ("" when none), for error messages.
std::string last_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::string last;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  return last;
}

/// Run `argv` with stdout/stderr appended to `log`, in its own process group; kill the group after
/// `timeout_seconds`. Returns the exit status (128 + signal when killed).
int run_with_timeout(const std::vector<std::string>& argv, const std::filesystem::path& log, int timeout_seconds) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error = posix_spawn(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawn_error != 0) throw IoError(fmt::format("cannot start {}: {}", argv[0], std::strerror(spawn_error)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) throw IoError(fmt::format("waiting for {} failed: {}", argv[0], std::strerror(errno)));
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      throw IoError(fmt::format("{} did not finish within {} s", argv[0], timeout_seconds));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// A page that shows one plot at the top-left corner, nothing else.
std::string plot_page(const ReportPlot& plot) {
  return fmt::format("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{}</title>"
                     "<style>html, body {{ margin: 0; padding: 0; background: #ffffff; overflow: hidden; }} svg {{ display: block; }}"
                     "</style></head>\n<body>\n{}</body></html>\n",
                     plot.name, plot.svg);
}

}  // namespace

std::string find_chromium() {
  if (const char* configured = std::getenv("CELLTYPER_CHROMIUM"); configured != nullptr && *configured != '\0') return configured;
  const char* path = std::getenv("PATH");
  std::stringstream directories(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string directory;
  std::vector<std::string> folders;
  while (std::getline(directories, directory, ':')) folders.push_back(directory.empty() ? "." : directory);
  for (const char* name : {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
    for (const auto& folder : folders) {
      const std::filesystem::path candidate = std::filesystem::path(folder) / name;
      if (is_executable(candidate)) return candidate.string();
    }
  }
  return {};
}

std::vector<std::filesystem::path> export_report_png(const ReportContent& content, const std::filesystem::path& directory,
                                                     const PngExportOptions& options) {
  const std::string chromium = options.chromium.empty() ? find_chromium() : options.chromium;
  if (chromium.empty()) {
    throw UnsupportedError(
        "PNG export renders the plots with headless Chromium, which was not found: install it (Debian: apt-get install chromium) "
        "or set CELLTYPER_CHROMIUM to its path; the HTML report needs no browser");
  }
  if (!is_executable(chromium)) throw UnsupportedError(fmt::format("Chromium '{}' is not an executable file", chromium));
  if (!(options.scale > 0.0 && options.scale <= 8.0)) throw InputError(fmt::format("PNG scale {} is outside (0, 8]", options.scale));
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) throw IoError(fmt::format("cannot create {}: {}", directory.string(), error.message()));

  const std::vector<ReportPlot> plots = report_plots(content);
  const ScratchDirectory scratch;
  // One Chromium per plot, `jobs` at a time: most of a capture is start-up latency, not CPU.
  const auto capture = [&](const ReportPlot& plot) {
    const std::filesystem::path page = scratch.path() / (plot.name + ".html");
    {
      std::ofstream out(page, std::ios::binary);
      out << plot_page(plot);
      if (!out) throw IoError(fmt::format("cannot write {}", page.string()));
    }
    const std::filesystem::path image = scratch.path() / (plot.name + ".png");
    const std::filesystem::path log = scratch.path() / (plot.name + ".log");
    const std::vector<std::string> argv = {
        chromium,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        "--mute-audio",
        // A profile per capture: concurrent Chromiums on one profile hand their work to each other.
        fmt::format("--user-data-dir={}", (scratch.path() / ("profile-" + plot.name)).string()),
        fmt::format("--force-device-scale-factor={}", options.scale),
        fmt::format("--window-size={},{}", plot.width, plot.height),
        fmt::format("--screenshot={}", image.string()),
        "file://" + page.string(),
    };
    const int status = run_with_timeout(argv, log, options.timeout_seconds);
    std::error_code missing;
    if (status != 0 || !std::filesystem::exists(image) || std::filesystem::file_size(image, missing) == 0) {
      throw IoError(fmt::format("{} could not render {} (exit status {}): {}", chromium, plot.name, status, last_line(log)));
    }
  };
  std::atomic<std::size_t> next{0};
  std::mutex failure_mutex;
  std::exception_ptr failure;
  const auto worker = [&] {
    while (true) {
      const std::size_t index = next.fetch_add(1);
      if (index >= plots.size()) return;
      {
        const std::lock_guard lock(failure_mutex);
        if (failure) return;
      }
      try {
        capture(plots[index]);
      } catch (...) {
        const std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
      }
    }
  };
  const int jobs = std::clamp(options.jobs, 1, 16);
  std::vector<std::thread> workers;
  for (int j = 1; j < jobs && static_cast<std::size_t>(j) < plots.size(); ++j) workers.emplace_back(worker);
  worker();
  for (auto& thread : workers) thread.join();
  if (failure) std::rethrow_exception(failure);

  std::vector<std::filesystem::path> written;
  for (const ReportPlot& plot : plots) {
    const std::filesystem::path image = scratch.path() / (plot.name + ".png");
    const std::filesystem::path target = directory / (plot.name + ".png");
    OutputFile output(target.string());
    std::filesystem::copy_file(image, output.temporary(), error);
    if (error) throw IoError(fmt::format("{}: cannot write: {}", target.string(), error.message()));
    output.commit();
    written.push_back(target);
  }
  return written;
}

}  // namespace celltyper
