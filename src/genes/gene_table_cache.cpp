// Binary gene-table cache (gene_table_cache.hpp). Layout, little-endian:
//   "CTGTBIN3" | u64 checksum of every later byte | u64 source size | i64 source mtime (ns) |
//   u64 content hash | str source | str species | str Ensembl prefix | u64 genes | per gene:
//   i64 entrez, str symbol, name, gene_type, chromosome, summary_status, summary,
//   list ensembl_ids, uniprot_ids, aliases | u64 byte offset of the indexes | the table's
//   look-up indexes (GeneTable::save_indexes: key names and hash slots, 8-byte aligned)
// where str = u32 length + bytes and list = u32 count + str each. The genes are saved as the
// table holds them (normalised), so loading restores the table without redoing the
// normalisation or the content hash over every text (GeneTable::restore), and the indexes are
// used where they are mapped instead of being rebuilt; the checksum (multiplies in four lanes)
// vouches for the saved bytes.
#include <celltyper/error.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/gene_text.hpp>
#include <celltyper/output_file.hpp>

#include "huge_pages.hpp"

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

namespace celltyper {
namespace {

constexpr char kMagic[8] = {'C', 'T', 'G', 'T', 'B', 'I', 'N', '3'};
constexpr std::size_t kChecksumEnd = sizeof(kMagic) + sizeof(std::uint64_t);  // the checksum covers the bytes after it

/// A fast 64-bit checksum of `n` bytes (catches a damaged or truncated cache file; not a
/// cryptographic hash): four independent lanes of multiply-rotate over 32-byte strides (so the
/// multiplies overlap), folded together with the tail.
std::uint64_t checksum(const char* data, std::size_t n) {
  constexpr std::uint64_t kMultiply = 0xff51afd7ed558ccdULL;
  constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
  std::uint64_t lanes[4] = {kGolden ^ n, kGolden + 1, kGolden + 2, kGolden + 3};
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (std::size_t lane = 0; lane < 4; ++lane) {
      std::uint64_t word = 0;
      std::memcpy(&word, data + i + 8 * lane, 8);
      lanes[lane] ^= word * kMultiply;
      lanes[lane] = ((lanes[lane] << 31) | (lanes[lane] >> 33)) * kGolden;
    }
  }
  std::uint64_t h = lanes[0];
  for (std::size_t lane = 1; lane < 4; ++lane) h = ((h ^ lanes[lane]) * kMultiply) ^ (h >> 29);
  for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

struct SourceState {
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
};

std::optional<SourceState> source_state(const std::string& source) {
  std::error_code error;
  const auto size = std::filesystem::file_size(source, error);
  if (error) return std::nullopt;
  const auto time = std::filesystem::last_write_time(source, error);
  if (error) return std::nullopt;
  return SourceState{size, static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count())};
}

template <typename T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, const std::string& text) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(text.size()));
  out += text;
}

void put_list(std::string& out, const std::vector<std::string>& list) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(list.size()));
  for (const auto& item : list) put_string(out, item);
}

/// Reads the layout back; any overrun makes `ok` false (and every later read a no-op).
class Reader {
 public:
  Reader(const char* data, std::size_t size) : data_(data), end_(data + size) {}
  template <typename T>
  T get() {
    T value{};
    if (!take(sizeof(T))) return value;
    std::memcpy(&value, data_ - sizeof(T), sizeof(T));
    return value;
  }
  std::string get_string() {
    const auto n = get<std::uint32_t>();
    if (!take(n)) return {};
    return std::string(data_ - n, n);
  }
  /// Step over a string without copying it.
  void skip_string() { take(get<std::uint32_t>()); }
  std::vector<std::string> get_list() {
    const auto n = get<std::uint32_t>();
    std::vector<std::string> list;
    if (n > static_cast<std::size_t>(end_ - data_) / 4) {
      ok = false;
      return list;
    }
    list.reserve(n);
    for (std::uint32_t i = 0; i < n && ok; ++i) list.push_back(get_string());
    return list;
  }
  bool ok = true;
  [[nodiscard]] std::size_t remaining() const { return static_cast<std::size_t>(end_ - data_); }

 private:
  bool take(std::size_t n) {
    if (!ok || static_cast<std::size_t>(end_ - data_) < n) {
      ok = false;
      return false;
    }
    data_ += n;
    return true;
  }
  const char* data_;
  const char* end_;
};

}  // namespace

std::string gene_table_cache_dir() {
  if (const char* dir = std::getenv("CELLTYPER_CACHE_DIR"); dir != nullptr && dir[0] != '\0') {
    return std::string(dir) == "none" ? std::string() : std::string(dir);
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/celltyper";
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') return std::string(home) + "/.cache/celltyper";
  return {};
}

std::string gene_table_cache_path(const std::string& path) {
  const std::string dir = gene_table_cache_dir();
  if (dir.empty()) return {};
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(path, error);
  const std::string key = error ? path : absolute.lexically_normal().string();
  return fmt::format("{}/gene-table-{}.bin", dir, ContentHasher().bytes(key.data(), key.size()).hex());
}

void save_gene_table_binary(const GeneTable& table, const std::string& path, const std::string& source) {
  const auto state = source_state(source);
  if (!state) throw IoError(fmt::format("cannot read the size and time of {}", source));
  std::string out(kMagic, sizeof(kMagic));
  put<std::uint64_t>(out, 0);  // the checksum, filled in below
  put<std::uint64_t>(out, state->size);
  put<std::int64_t>(out, state->mtime);
  put<std::uint64_t>(out, table.content_hash());
  put_string(out, table.source());
  put_string(out, table.species());
  put_string(out, table.ensembl_prefix());
  put<std::uint64_t>(out, table.size());
  for (const Gene& gene : table.genes()) {
    put<std::int64_t>(out, gene.entrez_id);
    for (const std::string* text : {&gene.symbol, &gene.name, &gene.gene_type, &gene.chromosome, &gene.summary_status, &gene.summary}) {
      put_string(out, *text);
    }
    put_list(out, gene.ensembl_ids);
    put_list(out, gene.uniprot_ids);
    put_list(out, gene.aliases);
  }
  const std::size_t offset_at = out.size();
  put<std::uint64_t>(out, 0);  // where the indexes start, filled in below
  table.save_indexes(out);
  const std::uint64_t indexes_at = (offset_at + 8 + 7) / 8 * 8;  // save_indexes pads to 8 first
  std::memcpy(out.data() + offset_at, &indexes_at, sizeof(indexes_at));
  const std::uint64_t sum = checksum(out.data() + kChecksumEnd, out.size() - kChecksumEnd);
  std::memcpy(out.data() + sizeof(kMagic), &sum, sizeof(sum));
  write_output_file(path, out);
}

std::optional<GeneTable> load_gene_table_binary(const std::string& path, const std::string& source, GeneTableFields fields) {
  // Mapped with its pages populated in one call: no copy, no zero-filled buffer, no fault per page.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat info {};
  const bool sized = ::fstat(fd, &info) == 0 && info.st_size >= static_cast<off_t>(kChecksumEnd);
  void* mapped = sized ? ::mmap(nullptr, static_cast<std::size_t>(info.st_size), PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0) : MAP_FAILED;
  ::close(fd);
  if (mapped == MAP_FAILED) return std::nullopt;
  // The mapping lives as long as the table: its look-up indexes are used where they are mapped.
  const auto size_mapped = static_cast<std::size_t>(info.st_size);
  const std::shared_ptr<const void> mapping(mapped, [size_mapped](const void* data) { ::munmap(const_cast<void*>(data), size_mapped); });
  const std::string_view bytes(static_cast<const char*>(mapped), size_mapped);
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return std::nullopt;
  std::uint64_t sum = 0;
  std::memcpy(&sum, bytes.data() + sizeof(kMagic), sizeof(sum));
  if (sum != checksum(bytes.data() + kChecksumEnd, bytes.size() - kChecksumEnd)) return std::nullopt;
  const auto state = source_state(source);
  if (!state) return std::nullopt;
  Reader reader(bytes.data(), bytes.size());
  reader.get<std::uint64_t>();  // magic (8 bytes)
  reader.get<std::uint64_t>();  // checksum
  const auto size = reader.get<std::uint64_t>();
  const auto mtime = reader.get<std::int64_t>();
  if (!reader.ok || size != state->size || mtime != state->mtime) return std::nullopt;
  const auto hash = reader.get<std::uint64_t>();
  const std::string table_source = reader.get_string();
  const std::string species = reader.get_string();
  const std::string ensembl_prefix = reader.get_string();
  const auto n = reader.get<std::uint64_t>();
  constexpr std::size_t kMinGeneBytes = 8 + 6 * 4 + 3 * 4;  // an id, six empty texts, three empty lists
  if (!reader.ok || n > bytes.size() / kMinGeneBytes) return std::nullopt;
  std::vector<Gene> genes;
  detail::reserve_huge(genes, static_cast<std::size_t>(n));
  genes.resize(static_cast<std::size_t>(n));
  for (Gene& gene : genes) {
    gene.entrez_id = reader.get<std::int64_t>();
    const bool texts = fields == GeneTableFields::kAll;
    gene.symbol = reader.get_string();
    if (texts) gene.name = reader.get_string(); else reader.skip_string();
    gene.gene_type = reader.get_string();
    gene.chromosome = reader.get_string();
    if (texts) gene.summary_status = reader.get_string(); else reader.skip_string();
    if (texts) gene.summary = reader.get_string(); else reader.skip_string();
    gene.ensembl_ids = reader.get_list();
    gene.uniprot_ids = reader.get_list();
    gene.aliases = reader.get_list();
    if (!reader.ok) return std::nullopt;
  }
  const auto indexes_at = reader.get<std::uint64_t>();
  if (!reader.ok || indexes_at < bytes.size() - reader.remaining() || indexes_at >= bytes.size() || indexes_at % 8 != 0) {
    return std::nullopt;
  }
  try {
    return GeneTable::restore(std::move(genes), table_source, species, ensembl_prefix, hash, bytes.substr(indexes_at), mapping);
  } catch (const Error&) {
    return std::nullopt;
  }
}

GeneTable load_gene_table_cached(const std::string& path, GeneTableFields fields) {
  const std::string cache = path.empty() ? std::string() : gene_table_cache_path(path);
  if (!cache.empty()) {
    if (auto cached = load_gene_table_binary(cache, path, fields)) return std::move(*cached);
  }
  GeneTable table = load_gene_table(path);
  if (!cache.empty()) {
    try {
      std::error_code error;
      std::filesystem::create_directories(std::filesystem::path(cache).parent_path(), error);
      if (!error) save_gene_table_binary(table, cache, path);
    } catch (const Error&) {
      // an unwritable cache only costs speed
    }
  }
  return table;
}

std::string choose_gene_table_path(const std::string& requested) { return requested.empty() ? default_gene_table_path() : requested; }

GeneTable load_requested_gene_table(const std::string& requested, GeneTableFields fields) {
  const std::string path = choose_gene_table_path(requested);
  if (path.empty()) throw InputError("no gene table: pass --gene-table or install r-bioc-org.hs.eg.db (scripts/setup.sh)");
  return load_gene_table_cached(path, fields);
}

}  // namespace celltyper
