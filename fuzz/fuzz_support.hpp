// Shared by the libFuzzer targets: a per-process scratch file for parsers that read paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include <unistd.h>

namespace celltyper::fuzz {

/// Write `data` to a file of this process under $TMPDIR (or /tmp) named `name`; returns its path.
inline std::string scratch_file(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const char* dir = std::getenv("TMPDIR");
  const std::string path = std::string(dir != nullptr && dir[0] != '\0' ? dir : "/tmp") + "/celltyper-fuzz-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace celltyper::fuzz
