// Results stores: append-only, fsynced JSONL files of finished embeddings or texts (checkpoints).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <fmt/format.h>

#include "celltyper/error.hpp"
#include "celltyper/openai.hpp"

namespace celltyper::openai {
namespace {

constexpr int kStoreVersion = 1;

const char* kind_name(ResultKind kind) { return kind == ResultKind::kEmbedding ? "embedding" : "text"; }

std::string dump_line(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string header_line(ResultKind kind, const std::string& model, int dimensions) {
  return dump_line({{"celltyper_results", kStoreVersion}, {"kind", kind_name(kind)}, {"model", model}, {"dimensions", dimensions}});
}

/// How far a store file was read.
struct ParsedStore {
  bool has_header = false;
  std::uint64_t complete_bytes = 0;  ///< bytes up to and including the last complete line
  std::uint64_t file_bytes = 0;
  std::size_t vector_length = 0;     ///< length of the stored vectors (0 before the first)
  std::size_t n_repeated = 0;
};

/// Parse the store at `path` into `results`. A last line without its newline is not parsed.
ParsedStore parse_store(const std::string& path, StoredResults& results) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw IoError(fmt::format("cannot read results store {}: {}", path, std::strerror(errno)));
  ParsedStore parsed;
  std::string line;
  std::size_t line_number = 0;
  std::string first_repeated;
  while (std::getline(file, line)) {
    ++line_number;
    if (file.eof()) {  // no newline after this line: a write cut short
      results.warnings.push_back(fmt::format("{}:{}: ignoring a truncated last line ({} bytes), probably from an "
                                             "interrupted run",
                                             path, line_number, line.size()));
      parsed.file_bytes = parsed.complete_bytes + line.size();
      break;
    }
    parsed.complete_bytes += line.size() + 1;
    parsed.file_bytes = parsed.complete_bytes;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& error) {
      throw InputError(fmt::format("{}:{}: not a JSON line: {}", path, line_number, error.what()));
    }
    if (!value.is_object()) throw InputError(fmt::format("{}:{}: expected a JSON object", path, line_number));
    if (!parsed.has_header) {
      if (!value.contains("celltyper_results") || !value.value("kind", nlohmann::json()).is_string() ||
          !value.value("model", nlohmann::json()).is_string() || !value.value("dimensions", nlohmann::json()).is_number_integer())
        throw InputError(fmt::format("{}:{}: not a celltyper results store (expected a header line "
                                     "{{\"celltyper_results\":1,\"kind\",\"model\",\"dimensions\"}})",
                                     path, line_number));
      if (value["celltyper_results"] != kStoreVersion)
        throw UnsupportedError(fmt::format("{}: results store version {} is not supported (expected {})", path,
                                           value["celltyper_results"].dump(), kStoreVersion));
      const std::string kind = value["kind"].get<std::string>();
      if (kind != "embedding" && kind != "text")
        throw InputError(fmt::format("{}:{}: unknown kind \"{}\" (expected embedding or text)", path, line_number, kind));
      results.kind = kind == "embedding" ? ResultKind::kEmbedding : ResultKind::kText;
      results.model = value["model"].get<std::string>();
      results.dimensions = value["dimensions"].get<int>();
      parsed.vector_length = results.dimensions > 0 ? static_cast<std::size_t>(results.dimensions) : 0;
      parsed.has_header = true;
      continue;
    }
    if (!value.contains("id") || !value["id"].is_string())
      throw InputError(fmt::format("{}:{}: result line has no string \"id\"", path, line_number));
    std::string id = value["id"].get<std::string>();
    if (results.contains(id)) {
      if (parsed.n_repeated++ == 0) first_repeated = fmt::format("{}:{} ({})", path, line_number, id);
      continue;
    }
    if (results.kind == ResultKind::kEmbedding) {
      if (!value.contains("embedding"))
        throw InputError(fmt::format("{}:{}: embedding store line has no \"embedding\"", path, line_number));
      std::vector<float> vector;
      try {
        vector = parse_embedding_json(value["embedding"]);
      } catch (const InputError& error) {
        throw InputError(fmt::format("{}:{}: {}", path, line_number, error.what()));
      }
      if (parsed.vector_length == 0) parsed.vector_length = vector.size();
      if (vector.size() != parsed.vector_length)
        throw InputError(fmt::format("{}:{}: embedding of {} has {} dimensions, expected {}", path, line_number, id,
                                     vector.size(), parsed.vector_length));
      results.embeddings.emplace(std::move(id), std::move(vector));
    } else {
      if (!value.contains("text") || !value["text"].is_string())
        throw InputError(fmt::format("{}:{}: text store line has no string \"text\"", path, line_number));
      results.texts.emplace(std::move(id), value["text"].get<std::string>());
    }
  }
  if (file.bad()) throw IoError(fmt::format("cannot read results store {}: {}", path, std::strerror(errno)));
  if (parsed.n_repeated > 0)
    results.warnings.push_back(fmt::format("{}: {} repeated ids ignored (the first result of each is kept), first at {}",
                                           path, parsed.n_repeated, first_repeated));
  return parsed;
}

void fsync_directory_of(const std::string& path) {
  std::filesystem::path directory = std::filesystem::path(path).parent_path();
  if (directory.empty()) directory = ".";
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the file itself is fsynced
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

StoredResults read_results_store(const std::string& path) {
  StoredResults results;
  const ParsedStore parsed = parse_store(path, results);
  if (!parsed.has_header && parsed.complete_bytes > 0)
    throw InputError(fmt::format("{}: not a celltyper results store (no header line)", path));
  return results;
}

ResultsStore::ResultsStore(std::string path, ResultKind kind, std::string model, int dimensions)
    : path_(std::move(path)) {
  if (dimensions < 0) throw InputError(fmt::format("dimensions {} is negative", dimensions));
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(fmt::format("cannot open results store {}: {}", path_, std::strerror(errno)));
  try {
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        throw InputError(fmt::format("results store {} is in use by another process", path_));
      throw IoError(fmt::format("cannot lock results store {}: {}", path_, std::strerror(errno)));
    }
    results_.kind = kind;
    results_.model = model;
    results_.dimensions = dimensions;
    StoredResults loaded;
    loaded.kind = kind;
    const ParsedStore parsed = parse_store(path_, loaded);
    if (parsed.file_bytes > parsed.complete_bytes) {
      if (::ftruncate(fd_, static_cast<off_t>(parsed.complete_bytes)) != 0 || ::fsync(fd_) != 0)
        throw IoError(fmt::format("cannot cut the truncated last line off {}: {}", path_, std::strerror(errno)));
    }
    if (parsed.has_header) {
      if (loaded.kind != kind || loaded.model != model || loaded.dimensions != dimensions)
        throw InputError(fmt::format("results store {} holds {} results of model {} (dimensions {}), not {} results of "
                                     "{} (dimensions {}); use another file",
                                     path_, kind_name(loaded.kind), loaded.model, loaded.dimensions, kind_name(kind),
                                     model, dimensions));
      results_ = std::move(loaded);
    } else {
      if (parsed.complete_bytes > 0)
        throw InputError(fmt::format("{}: not a celltyper results store (no header line)", path_));
      results_.warnings = std::move(loaded.warnings);
      append_lines(header_line(kind, model, dimensions));
      fsync_directory_of(path_);
    }
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

ResultsStore::~ResultsStore() {
  if (fd_ >= 0) ::close(fd_);
}

void ResultsStore::append_lines(const std::string& lines) {
  struct stat status {};
  if (::fstat(fd_, &status) != 0) throw IoError(fmt::format("cannot stat results store {}: {}", path_, std::strerror(errno)));
  const off_t size_before = status.st_size;
  std::size_t written = 0;
  int error = 0;
  while (written < lines.size()) {
    const ssize_t n = ::write(fd_, lines.data() + written, lines.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (error == 0 && ::fsync(fd_) != 0) error = errno;
  if (error != 0) {
    // Cut back to the last complete line so that nothing half-written stays behind.
    const bool restored = ::ftruncate(fd_, size_before) == 0;
    ::fsync(fd_);
    throw IoError(fmt::format("cannot write results store {}: {}{}", path_, std::strerror(error),
                              restored ? " (results stored before are intact)" : ""));
  }
}

void ResultsStore::append_embeddings(const std::vector<std::pair<std::string, std::vector<float>>>& results) {
  if (results_.kind != ResultKind::kEmbedding)
    throw InputError(fmt::format("results store {} holds texts, not embeddings", path_));
  std::size_t length = results_.dimensions > 0 ? static_cast<std::size_t>(results_.dimensions)
                                               : (results_.embeddings.empty() ? 0 : results_.embeddings.begin()->second.size());
  std::string lines;
  std::vector<std::size_t> fresh;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& [id, vector] = results[i];
    if (results_.contains(id) || !seen.insert(id).second) continue;
    if (length == 0) length = vector.size();
    if (vector.empty() || vector.size() != length)
      throw InputError(fmt::format("embedding of {} has {} dimensions; results store {} holds {}", id, vector.size(),
                                   path_, length));
    lines += dump_line({{"id", id}, {"embedding", encode_embedding_base64(vector)}});
    fresh.push_back(i);
  }
  if (fresh.empty()) return;
  append_lines(lines);
  for (const std::size_t i : fresh) results_.embeddings.emplace(results[i].first, results[i].second);
}

void ResultsStore::append_texts(const std::vector<std::pair<std::string, std::string>>& results) {
  if (results_.kind != ResultKind::kText)
    throw InputError(fmt::format("results store {} holds embeddings, not texts", path_));
  std::string lines;
  std::vector<std::size_t> fresh;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& [id, text] = results[i];
    if (results_.contains(id) || !seen.insert(id).second) continue;
    lines += dump_line({{"id", id}, {"text", text}});
    fresh.push_back(i);
  }
  if (fresh.empty()) return;
  append_lines(lines);
  for (const std::size_t i : fresh) results_.texts.emplace(results[i].first, results[i].second);
}

}  // namespace celltyper::openai
