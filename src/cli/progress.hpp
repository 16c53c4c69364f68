/// A one-line progress bar on stderr for long CLI work (rate and ETA), drawn only when stderr
/// is a terminal and --quiet is off; redrawn at most 10 times per second.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace celltyper::cli {

class ProgressBar {
 public:
  /// `unit`: what is counted ("cells"). `enabled` = false draws nothing.
  ProgressBar(std::string label, std::string unit, std::int64_t total, bool enabled);
  ~ProgressBar();
  void update(std::int64_t done);
  /// Change the total (when it is known only once the work has started).
  void set_total(std::int64_t total) { total_ = total; }
  /// Draw the final state and end the line.
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  std::string unit_;
  std::int64_t total_ = 0;
  std::int64_t done_ = 0;
  bool enabled_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

/// Whether progress should be drawn: stderr is a terminal and not --quiet.
bool progress_enabled(bool quiet);

/// Print each of `warnings` on stderr as "warning: ..." (always: --quiet silences progress and
/// summaries, never a warning about the results); notes (kNotePrefix, dataset.hpp) as
/// "note: ...", unless `quiet`.
void print_warnings(const std::vector<std::string>& warnings, bool quiet);

/// Largest byte count accepted (1024 TiB; larger values would overflow on the way to size_t).
constexpr std::size_t kMaxByteCount = std::size_t{1} << 50;
/// Bounds of a memory limit (`--memory-limit`): 1 MiB .. 1024 TiB.
constexpr std::size_t kMinMemoryLimitBytes = std::size_t{1} << 20;
constexpr const char* kMemoryLimitRange = "[1M - 1024T]";

/// Parse a byte count: "268435456", "256M", "1.5G", "2T" (binary units), positive and at most
/// kMaxByteCount. Throws InputError.
std::size_t parse_bytes(const std::string& text);

/// `parse_bytes` of a memory limit, at least 1M (smaller would starve a block). Throws InputError.
std::size_t parse_memory_limit(const std::string& text);

}  // namespace celltyper::cli
