/// Column references on the command line: every flag naming an obs column takes "obs:COLUMN"
/// (or a bare "COLUMN").
#pragma once

#include <celltyper/error.hpp>

#include <fmt/format.h>

#include <string>

namespace celltyper::cli {

/// "obs:COL" or "COL" -> "COL"; any other "PREFIX:..." is refused naming `flag`.
inline std::string obs_column(const std::string& text, const char* flag) {
  if (text.rfind("obs:", 0) == 0) return text.substr(4);
  if (text.find(':') != std::string::npos) throw InputError(fmt::format("{} {}: only obs columns are supported (obs:COLUMN)", flag, text));
  return text;
}

}  // namespace celltyper::cli
