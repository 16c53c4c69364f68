/// A one-line progress bar on stderr for long CLI work (rate and ETA), drawn only when stderr
/// is a terminal and --quiet is off; redrawn at most 10 times per second.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

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

/// Parse a byte count: "268435456", "256M", "1.5G", "64k" (binary units). Throws InputError.
std::size_t parse_bytes(const std::string& text);

}  // namespace celltyper::cli
