#include "cli/progress.hpp"

#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace celltyper::cli {

ProgressBar::ProgressBar(std::string label, std::string unit, std::int64_t total, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() {
  if (enabled_ && !finished_ && done_ > 0) std::fputc('\n', stderr);
}

void ProgressBar::update(std::int64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  draw(false);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  draw(true);
  std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::draw(bool final) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done_) / seconds : 0;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 28;
  const int filled = static_cast<int>(std::round(fraction * kWidth));
  const std::string bar = std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(kWidth - filled), '.');
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
  const std::string tail = final ? fmt::format("{:.1f} s", seconds) : fmt::format("ETA {:.0f} s", eta);
  fmt::print(stderr, "\r{} [{}] {:3.0f}% {}/{} {}  {:.0f} {}/s  {}   ", label_, bar, 100 * fraction, done_, total_, unit_, rate, unit_, tail);
  std::fflush(stderr);
}

bool progress_enabled(bool quiet) { return !quiet && isatty(STDERR_FILENO) != 0; }

void print_warnings(const std::vector<std::string>& warnings, bool quiet) {
  for (const auto& warning : warnings) {
    if (!warning.starts_with(kNotePrefix)) {
      fmt::print(stderr, "warning: {}\n", warning);
    } else if (!quiet) {
      fmt::print(stderr, "{}\n", warning);
    }
  }
}

std::size_t parse_bytes(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw InputError(fmt::format("'{}' is not a byte count (e.g. 268435456, 256M, 1G)", text));
  }
  std::string suffix = text.substr(used);
  double scale = 1;
  if (suffix == "k" || suffix == "K" || suffix == "KiB" || suffix == "KB") scale = 1024.0;
  else if (suffix == "m" || suffix == "M" || suffix == "MiB" || suffix == "MB") scale = 1024.0 * 1024;
  else if (suffix == "g" || suffix == "G" || suffix == "GiB" || suffix == "GB") scale = 1024.0 * 1024 * 1024;
  else if (suffix == "t" || suffix == "T" || suffix == "TiB" || suffix == "TB") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!suffix.empty() && suffix != "B") throw InputError(fmt::format("'{}' has an unknown unit '{}' (use k, M, G or T)", text, suffix));
  if (!(value > 0)) throw InputError(fmt::format("'{}' must be a positive byte count", text));
  const double bytes = value * scale;
  if (!(bytes <= static_cast<double>(kMaxByteCount))) throw InputError(fmt::format("'{}' is above the largest byte count, 1024T", text));
  return static_cast<std::size_t>(bytes);
}

std::size_t parse_memory_limit(const std::string& text) {
  const std::size_t bytes = parse_bytes(text);
  if (bytes < kMinMemoryLimitBytes) {
    throw InputError(fmt::format("'{}' is outside {} (a byte count such as 32M or 1G)", text, kMemoryLimitRange));
  }
  return bytes;
}

}  // namespace celltyper::cli
