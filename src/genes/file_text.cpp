#include "genes/file_text.hpp"

#include <celltyper/error.hpp>

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace celltyper {

std::string read_whole_file(const std::string& path, std::string_view what) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw IoError(fmt::format("cannot open {} {}: {}", what, path, std::strerror(errno)));
  std::string text;
  std::array<char, 1 << 16> buffer{};
  std::size_t n_read = 0;
  while ((n_read = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) text.append(buffer.data(), n_read);
  if (std::ferror(file.get())) throw IoError(fmt::format("cannot read {} {}: {}", what, path, std::strerror(errno)));
  return text;
}

std::string read_only_sqlite_uri(const std::string& path) {
  std::string uri = "file:";
  for (const char character : path) {
    const auto byte = static_cast<unsigned char>(character);
    if (std::isalnum(byte) != 0 || std::strchr("/-._~", character) != nullptr) {
      uri += character;
    } else {
      uri += fmt::format("%{:02X}", byte);
    }
  }
  return uri + "?mode=ro&immutable=1";
}

}  // namespace celltyper
