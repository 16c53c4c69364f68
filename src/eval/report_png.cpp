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
#include "io/subprocess.hpp"


namespace celltyper {
namespace {

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
  return detail::find_on_path({"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"});
}

std::vector<std::filesystem::path> export_report_png(const ReportContent& content, const std::filesystem::path& directory,
                                                     const PngExportOptions& options) {
  const std::string chromium = options.chromium.empty() ? find_chromium() : options.chromium;
  if (chromium.empty()) {
    throw UnsupportedError(
        "PNG export renders the plots with headless Chromium, which was not found: install it (Debian: apt-get install chromium) "
        "or set CELLTYPER_CHROMIUM to its path; the HTML report needs no browser");
  }
  if (!detail::is_executable(chromium)) throw UnsupportedError(fmt::format("Chromium '{}' is not an executable file", chromium));
  if (!(options.scale > 0.0 && options.scale <= 8.0)) throw InputError(fmt::format("PNG scale {} is outside (0, 8]", options.scale));
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) throw IoError(fmt::format("cannot create {}: {}", directory.string(), error.message()));

  const std::vector<ReportPlot> plots = report_plots(content);
  const detail::ScratchDirectory scratch("celltyper-png");
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
    const int status = detail::run_with_timeout(argv, log, options.timeout_seconds);
    std::error_code missing;
    if (status != 0 || !std::filesystem::exists(image) || std::filesystem::file_size(image, missing) == 0) {
      throw IoError(fmt::format("{} could not render {} (exit status {}): {}", chromium, plot.name, status, detail::last_line(log)));
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
