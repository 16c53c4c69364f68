#include <celltyper/error.hpp>
#include <celltyper/file_checks.hpp>
#include <celltyper/parallel.hpp>
#include <celltyper/zarr.hpp>

#include "io/direct_read.hpp"
#include "io/matrix_readers.hpp"
#include "io/utf8.hpp"

#include <blosc.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <sstream>

namespace celltyper {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

/// A chunk decodes to at most this many bytes (anndata's are a few MB): a hostile header or shape
/// cannot make every core allocate gigabytes.
constexpr std::size_t kMaxDecodedBytes = std::size_t{1} << 30;
/// An array has at most this many chunks (a shape with chunks of 1 must not mean billions of files).
constexpr std::int64_t kMaxChunks = std::int64_t{1} << 24;

/// A member name taken from metadata (column-order, _index, a categories reference) names a member
/// of its group, never a path out of it.
std::string safe_member(const std::string& name, const std::string& where) {
  if (name.empty() || name == "." || name == ".." || name.front() == '.' || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos) {
    throw InputError(fmt::format("{}: '{}' is not a member name", where, name));
  }
  return name;
}

Json read_json(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", file.string()));
  std::stringstream text;
  text << in.rdbuf();
  Json value = Json::parse(text.str(), nullptr, false);
  if (value.is_discarded() || !value.is_object()) throw InputError(fmt::format("{}: not a JSON object", file.string()));
  return value;
}

bool is_group(const fs::path& dir) {
  std::error_code error;
  return fs::is_regular_file(dir / ".zgroup", error);
}
bool is_array(const fs::path& dir) {
  std::error_code error;
  return fs::is_regular_file(dir / ".zarray", error);
}
Json attributes_of(const fs::path& dir) {
  std::error_code error;
  return fs::is_regular_file(dir / ".zattrs", error) ? read_json(dir / ".zattrs") : Json::object();
}
std::string text_attribute(const Json& attributes, const char* key) {
  const auto found = attributes.find(key);
  return found != attributes.end() && found->is_string() ? found->get<std::string>() : std::string();
}

std::vector<unsigned char> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) throw InputError(fmt::format("{}: cannot open", file.string()));
  const std::streamoff size = in.tellg();
  std::vector<unsigned char> bytes(static_cast<std::size_t>(std::max<std::streamoff>(size, 0)));
  in.seekg(0);
  if (!bytes.empty() && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()))) {
    throw InputError(fmt::format("{}: read error", file.string()));
  }
  return bytes;
}

/// zlib (`gzip` false) or gzip stream inflated; `expected` bytes exactly when known (else at most
/// kMaxDecodedBytes). Throws InputError naming `file` when the stream is malformed.
std::vector<unsigned char> inflate_stream(const std::vector<unsigned char>& in, bool gzip, std::size_t expected, bool known,
                                          const fs::path& file) {
  // deflate expands at most ~1032 times: a smaller stream cannot hold the chunk (checked before the
  // output is allocated).
  if (known && in.size() * 1032 + 1024 < expected) {
    throw InputError(fmt::format("{}: {} stored bytes cannot inflate to a chunk of {} (corrupt or truncated?)", file.string(), in.size(), expected));
  }
  if (known && !gzip) {  // a zlib stream of known size: the project's (libdeflate) inflater
    std::vector<unsigned char> out(expected);
    if (!detail::inflate_exact(in.data(), in.size(), out.data(), expected)) {
      throw InputError(fmt::format("{}: the chunk does not inflate to {} bytes (corrupt or truncated?)", file.string(), expected));
    }
    return out;
  }
  z_stream stream{};
  if (inflateInit2(&stream, gzip ? 15 + 16 : 15) != Z_OK) throw IoError("zlib: inflateInit2 failed");
  std::vector<unsigned char> out(known ? expected : std::max<std::size_t>(in.size() * 4, 4096));
  stream.next_in = const_cast<unsigned char*>(in.data());
  stream.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size(), std::numeric_limits<uInt>::max()));
  int status = Z_OK;
  std::size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      if (known || out.size() >= kMaxDecodedBytes) break;
      out.resize(std::min(out.size() * 2, kMaxDecodedBytes));
    }
    stream.next_out = out.data() + produced;
    stream.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, std::numeric_limits<uInt>::max()));
    status = inflate(&stream, Z_NO_FLUSH);
    produced = static_cast<std::size_t>(stream.total_out);
    if (status == Z_STREAM_END) break;
    if (status != Z_OK && status != Z_BUF_ERROR) break;
    if (status == Z_BUF_ERROR && stream.avail_in == 0) break;
  }
  inflateEnd(&stream);
  if (status != Z_STREAM_END || (known && produced != expected)) {
    throw InputError(fmt::format("{}: the chunk does not inflate{} (corrupt or truncated?)", file.string(),
                                 known ? fmt::format(" to {} bytes", expected) : std::string()));
  }
  out.resize(produced);
  return out;
}

/// One Zarr v2 array: its metadata and its chunks, decoded on demand (thread-safe: no state
/// changes after construction).
class Array {
 public:
  enum class Kind { kFloat, kInt, kUInt, kBool, kVlenString, kFixedUnicode, kFixedBytes };

  Array(fs::path dir, std::string label) : dir_(std::move(dir)), label_(std::move(label)) {
    const Json meta = read_json(dir_ / ".zarray");
    const auto fail = [&](const std::string& what) { throw InputError(fmt::format("{}: {}", (dir_ / ".zarray").string(), what)); };
    try {
      if (meta.value("zarr_format", 0) != 2) fail("zarr_format is not 2");
      shape_ = meta.at("shape").get<std::vector<std::int64_t>>();
      chunks_ = meta.at("chunks").get<std::vector<std::int64_t>>();
      dtype_ = meta.at("dtype").get<std::string>();
      if (meta.contains("order") && meta["order"].is_string() && meta["order"] != "C" && shape_.size() > 1) {
        throw UnsupportedError(fmt::format("{}: Fortran-ordered arrays are not supported (re-save with order='C')", label_));
      }
      separator_ = meta.contains("dimension_separator") && meta["dimension_separator"].is_string() ? meta["dimension_separator"].get<std::string>() : ".";
      if (separator_ != "." && separator_ != "/") fail(fmt::format("dimension_separator '{}' is neither '.' nor '/'", separator_));
      if (meta.contains("fill_value")) {
        const Json& fill = meta["fill_value"];
        if (fill.is_number()) fill_ = fill.get<double>();
        if (fill.is_boolean()) fill_ = fill.get<bool>() ? 1.0 : 0.0;
        if (fill.is_string() && fill.get<std::string>() == "NaN") fill_ = std::numeric_limits<double>::quiet_NaN();
      }
      parse_compressor(meta.contains("compressor") ? meta["compressor"] : Json());
      if (meta.contains("filters") && meta["filters"].is_array()) {
        for (const Json& filter : meta["filters"]) {
          const std::string id = filter.is_object() ? filter.value("id", "") : "";
          if (id != "vlen-utf8") throw UnsupportedError(fmt::format("{}: filter '{}' is not supported", label_, id));
          vlen_utf8_ = true;
        }
      }
    } catch (const Json::exception& error) {
      fail(fmt::format("malformed metadata ({})", error.what()));
    }
    if (shape_.size() != chunks_.size() || shape_.size() > 2) fail(fmt::format("shape of rank {} with chunks of rank {}", shape_.size(), chunks_.size()));
    for (std::size_t d = 0; d < shape_.size(); ++d) {
      if (shape_[d] < 0 || chunks_[d] <= 0 || shape_[d] > (std::int64_t{1} << 40)) fail("a negative size or an empty chunk");
    }
    parse_dtype();
    chunk_elements_ = 1;
    for (const auto size : chunks_) {
      if (size > (std::int64_t{1} << 32) / std::max<std::int64_t>(chunk_elements_, 1)) fail("chunks over 2^32 elements");
      chunk_elements_ *= size;
    }
    std::int64_t n_chunks = 1;
    for (std::size_t d = 0; d < shape_.size(); ++d) {
      const std::int64_t along = (shape_[d] + chunks_[d] - 1) / chunks_[d];
      if (along > kMaxChunks / n_chunks) fail(fmt::format("over {} chunks (shape and chunks disagree with any real store)", kMaxChunks));
      n_chunks = std::max<std::int64_t>(n_chunks * along, 1);
    }
  }

  [[nodiscard]] const std::vector<std::int64_t>& shape() const { return shape_; }
  [[nodiscard]] const std::vector<std::int64_t>& chunks() const { return chunks_; }
  [[nodiscard]] std::int64_t length() const { return shape_.empty() ? 1 : shape_[0]; }
  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool is_string() const { return kind_ == Kind::kVlenString || kind_ == Kind::kFixedUnicode || kind_ == Kind::kFixedBytes; }
  [[nodiscard]] const std::string& label() const { return label_; }
  /// Treat an absent chunk as corruption rather than the fill value (a sparse matrix's values and
  /// indices, string arrays: anndata writes every chunk of them).
  void require_chunks() { require_chunks_ = true; }

  /// "float32", "int64", "bool", "str", ...
  [[nodiscard]] std::string dtype_name() const {
    switch (kind_) {
      case Kind::kFloat: return fmt::format("float{}", item_bytes_ * 8);
      case Kind::kInt: return fmt::format("int{}", item_bytes_ * 8);
      case Kind::kUInt: return fmt::format("uint{}", item_bytes_ * 8);
      case Kind::kBool: return "bool";
      default: return "str";
    }
  }
  [[nodiscard]] std::string compression_name() const { return compression_; }
  [[nodiscard]] std::int64_t stored_bytes() const {
    std::int64_t bytes = 0;
    std::error_code error;
    for (auto it = fs::recursive_directory_iterator(dir_, error); !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_regular_file(error) && it->path().filename().string().rfind(".z", 0) != 0) bytes += static_cast<std::int64_t>(it->file_size(error));
    }
    return bytes;
  }

  /// Elements [offset, offset + count) of a 1-D numeric array, converted to T.
  template <typename T>
  void read(std::int64_t offset, std::int64_t count, T* out) const {
    if (shape_.size() != 1 || is_string()) throw InputError(fmt::format("{}: expected a 1-D array of numbers", label_));
    if (offset < 0 || count < 0 || offset + count > shape_[0]) {
      throw InputError(fmt::format("{}: elements {}..{} requested from {}", label_, offset, offset + count, shape_[0]));
    }
    if (count == 0) return;
    const std::int64_t width = chunks_[0];
    const std::int64_t first = offset / width;
    const std::int64_t last = (offset + count - 1) / width;
    parallel_for(last - first + 1, 0, [&](std::int64_t i) {
      const std::int64_t chunk = first + i;
      const std::int64_t begin = std::max(offset, chunk * width);
      const std::int64_t end = std::min(offset + count, (chunk + 1) * width);
      const std::vector<unsigned char> bytes = decoded_chunk({chunk});
      convert(bytes, begin - chunk * width, end - begin, out + (begin - offset));
    });
  }
  template <typename T>
  [[nodiscard]] std::vector<T> read_all() const {
    check_whole_read();
    std::vector<T> values(static_cast<std::size_t>(length()));
    read(0, length(), values.data());
    return values;
  }

  /// Rows [first, first + count) of a 2-D numeric array into row-major `out` (count x columns).
  template <typename T>
  void read_rows(std::int64_t first, std::int64_t count, T* out) const {
    if (shape_.size() != 2 || is_string()) throw InputError(fmt::format("{}: expected a 2-D array of numbers", label_));
    if (count <= 0) return;
    const std::int64_t columns = shape_[1];
    const std::int64_t chunk_rows = chunks_[0];
    const std::int64_t chunk_cols = chunks_[1];
    const std::int64_t row_first = first / chunk_rows;
    const std::int64_t row_last = (first + count - 1) / chunk_rows;
    const std::int64_t n_col_chunks = (columns + chunk_cols - 1) / chunk_cols;
    parallel_for((row_last - row_first + 1) * n_col_chunks, 0, [&](std::int64_t item) {
      const std::int64_t i = row_first + item / n_col_chunks;
      const std::int64_t j = item % n_col_chunks;
      const std::vector<unsigned char> bytes = decoded_chunk({i, j});
      const std::int64_t r_begin = std::max(first, i * chunk_rows);
      const std::int64_t r_end = std::min(first + count, (i + 1) * chunk_rows);
      const std::int64_t c_end = std::min(columns, (j + 1) * chunk_cols);
      for (std::int64_t r = r_begin; r < r_end; ++r) {
        convert(bytes, (r - i * chunk_rows) * chunk_cols, c_end - j * chunk_cols, out + (r - first) * columns + j * chunk_cols);
      }
    });
  }

  /// Every element of a 1-D string array.
  [[nodiscard]] std::vector<std::string> read_strings() const {
    if (shape_.size() != 1 || !is_string()) throw InputError(fmt::format("{}: expected a 1-D array of strings", label_));
    check_whole_read();
    std::vector<std::string> values(static_cast<std::size_t>(shape_[0]));
    const std::int64_t width = chunks_[0];
    const std::int64_t n_chunks = (shape_[0] + width - 1) / width;
    for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk) {
      const std::vector<unsigned char> bytes = decoded_chunk({chunk});
      const std::int64_t begin = chunk * width;
      const std::int64_t end = std::min(shape_[0], begin + width);
      if (bytes.empty()) continue;  // absent chunk: ""
      decode_strings(bytes, end - begin, values.data() + begin, chunk);
    }
    return values;
  }

 private:
  void parse_compressor(const Json& compressor) {
    if (compressor.is_null()) {
      compression_ = "none";
      return;
    }
    if (!compressor.is_object()) throw InputError(fmt::format("{}: malformed compressor", label_));
    codec_ = compressor.value("id", "");
    if (codec_ == "blosc") {
      compression_ = fmt::format("blosc({}, {})", compressor.value("cname", "?"), compressor.value("clevel", 0));
    } else if (codec_ == "zlib" || codec_ == "gzip") {
      compression_ = fmt::format("{}({})", codec_, compressor.value("level", 0));
    } else {
      throw UnsupportedError(fmt::format("{}: compressor '{}' is not supported (Blosc, zlib and gzip are; re-save with anndata's default)", label_, codec_));
    }
  }

  void parse_dtype() {
    const auto fail = [&] { throw UnsupportedError(fmt::format("{}: element type '{}' is not supported", label_, dtype_)); };
    if (dtype_.size() < 2) fail();
    const char order = dtype_[0];
    const char kind = dtype_[1];
    if (order == '>' && dtype_ != ">u1" && dtype_ != ">i1") fail();  // big-endian
    std::size_t size = 0;
    if (dtype_.size() > 2) {
      const std::string digits = dtype_.substr(2);
      if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 6) fail();
      size = static_cast<std::size_t>(std::stoul(digits));
    }
    item_bytes_ = size;
    switch (kind) {
      case 'f': kind_ = Kind::kFloat; if (size != 4 && size != 8) fail(); break;
      case 'i': kind_ = Kind::kInt; if (size != 1 && size != 2 && size != 4 && size != 8) fail(); break;
      case 'u': kind_ = Kind::kUInt; if (size != 1 && size != 2 && size != 4 && size != 8) fail(); break;
      case 'b': kind_ = Kind::kBool; if (size != 1) fail(); break;
      case 'O': kind_ = Kind::kVlenString; if (!vlen_utf8_) fail(); item_bytes_ = 0; break;
      case 'U': kind_ = Kind::kFixedUnicode; if (size == 0) fail(); item_bytes_ = 4 * size; break;
      case 'S': kind_ = Kind::kFixedBytes; if (size == 0) fail(); break;
      default: fail();
    }
  }

  /// An array read whole (obs / var columns, indptr, a CSC matrix) holds at most 2^31 numbers or
  /// 2^25 strings (33M cell names): a shape is only JSON, and a hostile one must not make us
  /// allocate terabytes.
  void check_whole_read() const {
    const std::int64_t limit = is_string() ? std::int64_t{1} << 25 : std::int64_t{1} << 31;
    if (length() > limit) throw InputError(fmt::format("{}: {} elements are too many to read whole (at most {})", label_, length(), limit));
  }

  fs::path chunk_path(const std::vector<std::int64_t>& index) const {
    if (index.empty() || shape_.empty()) return dir_ / "0";
    std::string key;
    for (std::size_t d = 0; d < index.size(); ++d) key += (d > 0 ? separator_ : std::string()) + std::to_string(index[d]);
    return dir_ / key;
  }

  /// The chunk's bytes after the compressor (C order, a whole chunk for fixed-size types), or
  /// empty when its file is absent (the fill value).
  std::vector<unsigned char> decoded_chunk(const std::vector<std::int64_t>& index) const {
    const fs::path file = chunk_path(index);
    std::error_code error;
    if (!fs::is_regular_file(file, error)) {
      if (require_chunks_ || kind_ == Kind::kVlenString) {
        throw InputError(fmt::format("{}: chunk file missing (store incomplete, or written with write_empty_chunks=False: re-save it with "
                                     "anndata's defaults)",
                                     file.string()));
      }
      return {};
    }
    const bool fixed = kind_ != Kind::kVlenString;
    const std::size_t expected = static_cast<std::size_t>(chunk_elements_) * item_bytes_;
    if (expected > kMaxDecodedBytes) {
      throw InputError(fmt::format("{}: chunks of {} bytes are over the 1 GiB celltyper decodes at once (re-save with smaller chunks, e.g. "
                                   "anndata's defaults)",
                                   label_, expected));
    }
    std::vector<unsigned char> raw = read_bytes(file);
    std::vector<unsigned char> out;
    if (codec_.empty()) {
      out = std::move(raw);
    } else if (codec_ == "blosc") {
      std::size_t nbytes = 0;
      if (raw.size() < BLOSC_MIN_HEADER_LENGTH || blosc_cbuffer_validate(raw.data(), raw.size(), &nbytes) < 0 ||
          (fixed && nbytes != expected) || nbytes > kMaxDecodedBytes) {  // (validate checks the header's sizes against the buffer)
        throw InputError(fmt::format("{}: not a Blosc buffer of {} bytes (corrupt or truncated?)", file.string(), fixed ? expected : nbytes));
      }
      out.resize(nbytes);
      if (nbytes > 0 && blosc_decompress_ctx(raw.data(), out.data(), nbytes, 1) != static_cast<int>(nbytes)) {
        throw InputError(fmt::format("{}: the Blosc chunk does not decompress (corrupt?)", file.string()));
      }
    } else {
      out = inflate_stream(raw, codec_ == "gzip", expected, fixed, file);
    }
    if (fixed && out.size() != expected) {
      throw InputError(fmt::format("{}: the chunk holds {} bytes, expected {} (corrupt?)", file.string(), out.size(), expected));
    }
    return out;
  }

  /// Elements [start, start + count) of a decoded chunk (empty: the fill value) converted to T.
  template <typename T>
  void convert(const std::vector<unsigned char>& bytes, std::int64_t start, std::int64_t count, T* out) const {
    if (bytes.empty()) {  // an absent chunk: the fill value (0 for integers it does not fit)
      T fill{};
      if constexpr (std::is_integral_v<T>) {
        const double limit = std::ldexp(1.0, std::numeric_limits<T>::digits);
        if (std::isfinite(fill_) && fill_ >= (std::is_signed_v<T> ? -limit : 0.0) && fill_ < limit) fill = static_cast<T>(fill_);
      } else {
        fill = static_cast<T>(fill_);
      }
      std::fill(out, out + count, fill);
      return;
    }
    const unsigned char* p = bytes.data() + static_cast<std::size_t>(start) * item_bytes_;
    const auto load = [&](auto tag) {
      using Stored = decltype(tag);
      for (std::int64_t i = 0; i < count; ++i) {
        Stored value;
        std::memcpy(&value, p + static_cast<std::size_t>(i) * sizeof(Stored), sizeof(Stored));
        if constexpr (std::is_floating_point_v<Stored> && std::is_integral_v<T>) {
          // a float column read as integers (codes, indices): out of range is an error, not UB
          // (2^digits is exact in floating point; T's maximum may not be)
          const double limit = std::ldexp(1.0, std::numeric_limits<T>::digits);
          const double low = std::is_signed_v<T> ? -limit : 0.0;
          if (!(static_cast<double>(value) >= low && static_cast<double>(value) < limit)) {
            throw InputError(fmt::format("{}: value {} is not a valid integer here", label_, value));
          }
        }
        out[i] = static_cast<T>(value);
      }
    };
    switch (kind_) {
      case Kind::kFloat: item_bytes_ == 4 ? load(float{}) : load(double{}); break;
      case Kind::kBool: load(std::uint8_t{}); break;
      case Kind::kInt:
        switch (item_bytes_) {
          case 1: load(std::int8_t{}); break;
          case 2: load(std::int16_t{}); break;
          case 4: load(std::int32_t{}); break;
          default: load(std::int64_t{}); break;
        }
        break;
      case Kind::kUInt:
        switch (item_bytes_) {
          case 1: load(std::uint8_t{}); break;
          case 2: load(std::uint16_t{}); break;
          case 4: load(std::uint32_t{}); break;
          default: load(std::uint64_t{}); break;
        }
        break;
      default: throw InputError(fmt::format("{}: strings where numbers are expected", label_));
    }
  }

  void decode_strings(const std::vector<unsigned char>& bytes, std::int64_t count, std::string* out, std::int64_t chunk) const {
    const auto fail = [&] { throw InputError(fmt::format("{}: chunk {} holds malformed strings (corrupt?)", label_, chunk)); };
    if (kind_ == Kind::kVlenString) {  // numcodecs VLenUTF8: item count, then (length, bytes) per item
      const auto u32 = [&](std::size_t at) {
        if (at + 4 > bytes.size()) fail();
        std::uint32_t value = 0;
        std::memcpy(&value, bytes.data() + at, 4);
        return static_cast<std::size_t>(value);
      };
      const std::size_t n = u32(0);
      if (n < static_cast<std::size_t>(count)) fail();
      std::size_t at = 4;
      for (std::int64_t i = 0; i < count; ++i) {
        const std::size_t length = u32(at);
        at += 4;
        if (length > bytes.size() - at) fail();
        out[i].assign(reinterpret_cast<const char*>(bytes.data() + at), length);
        at += length;
      }
      return;
    }
    for (std::int64_t i = 0; i < count; ++i) {
      const unsigned char* item = bytes.data() + static_cast<std::size_t>(i) * item_bytes_;
      std::string text;
      if (kind_ == Kind::kFixedBytes) {
        text.assign(reinterpret_cast<const char*>(item), item_bytes_);
      } else {  // UTF-32LE
        for (std::size_t c = 0; c < item_bytes_ / 4; ++c) {
          std::uint32_t code = 0;
          std::memcpy(&code, item + 4 * c, 4);
          if (code == 0) break;
          if (code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) fail();
          detail::append_utf8(text, code);
        }
      }
      const std::size_t nul = text.find('\0');
      if (nul != std::string::npos) text.resize(nul);
      out[i] = std::move(text);
    }
  }

  fs::path dir_;
  std::string label_;
  std::vector<std::int64_t> shape_;
  std::vector<std::int64_t> chunks_;
  std::string dtype_;
  std::string separator_ = ".";
  std::string codec_;
  std::string compression_ = "none";
  bool vlen_utf8_ = false;
  bool require_chunks_ = false;
  Kind kind_ = Kind::kFloat;
  std::size_t item_bytes_ = 4;
  std::int64_t chunk_elements_ = 1;
  double fill_ = 0.0;
};

/// A 1-D array as a typed column (string, float, int or bool).
Column array_column(const Array& array, const std::string& name) {
  Column column;
  column.name = name;
  column.dtype = array.dtype_name();
  if (array.is_string()) {
    column.kind = ColumnKind::kString;
    column.strings = array.read_strings();
  } else if (array.kind() == Array::Kind::kBool) {
    column.kind = ColumnKind::kBool;
    column.booleans = array.read_all<std::uint8_t>();
  } else if (array.kind() == Array::Kind::kFloat) {
    column.kind = ColumnKind::kFloat;
    column.numbers = array.read_all<double>();
  } else {
    column.kind = ColumnKind::kInt;
    column.integers = array.read_all<std::int64_t>();
  }
  return column;
}

/// Run `read`; memory exhausted by sizes a damaged store claims is an InputError naming it.
template <typename Read>
void guarded(const std::string& label, Read&& read) {
  try {
    read();
  } catch (const std::bad_alloc&) {
    throw InputError(fmt::format("{}: its sizes do not fit in memory (damaged store?)", label));
  }
}

/// Rows of a CSR matrix streamed from its data / indices arrays (indptr held in memory).
class ZarrCsrReader final : public MatrixReader {
 public:
  ZarrCsrReader(const fs::path& group, const std::string& label, MatrixInfo info)
      : label_(label), info_(std::move(info)), data_(group / "data", label + "/data"), indices_(group / "indices", label + "/indices") {
    data_.require_chunks();
    indices_.require_chunks();
    const Array indptr(group / "indptr", label + "/indptr");
    if (indptr.shape().size() != 1 || indptr.length() != info_.n_rows + 1) {
      throw InputError(fmt::format("{}/indptr has {} entries but the shape ({} x {}) needs {}", label_, indptr.length(), info_.n_rows, info_.n_cols,
                                   info_.n_rows + 1));
    }
    indptr_ = indptr.read_all<std::int64_t>();
    if (indptr_.front() != 0) throw InputError(fmt::format("{}/indptr[0] is {}, expected 0", label_, indptr_.front()));
    for (std::size_t i = 1; i < indptr_.size(); ++i) {
      if (indptr_[i] < indptr_[i - 1]) throw InputError(fmt::format("{}/indptr is not monotone at row {}", label_, i - 1));
      if (indptr_[i] - indptr_[i - 1] > info_.n_cols) {  // a row holds each gene once at most
        throw InputError(fmt::format("{}/indptr gives row {} {} values for {} genes", label_, i - 1, indptr_[i] - indptr_[i - 1], info_.n_cols));
      }
    }
    if (indptr_.back() != info_.nnz || indices_.length() != info_.nnz) {
      throw InputError(fmt::format("{}: indptr ends at {} but data has {} values and indices {}", label_, indptr_.back(), info_.nnz, indices_.length()));
    }
  }
  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { guarded(label_, [&] { read(first, count, out); }); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { guarded(label_, [&] { read(first, count, out); }); }
  std::vector<std::int64_t> row_nnz() override {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(info_.n_rows));
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = indptr_[i + 1] - indptr_[i];
    return counts;
  }

 private:
  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    detail::check_row_range(first, count, info_.n_rows, label_);
    out.reset(first, count, info_.n_cols);
    const std::int64_t begin = indptr_[static_cast<std::size_t>(first)];
    const std::int64_t end = indptr_[static_cast<std::size_t>(first + count)];
    out.values.resize(static_cast<std::size_t>(end - begin));
    data_.read(begin, end - begin, out.values.data());
    std::vector<std::int64_t> columns(static_cast<std::size_t>(end - begin));
    indices_.read(begin, end - begin, columns.data());
    out.indices.resize(columns.size());
    for (std::size_t k = 0; k < columns.size(); ++k) {
      if (columns[k] < 0 || columns[k] >= info_.n_cols) {
        throw InputError(fmt::format("{}/indices: value {} outside 0..{} (value {} of the matrix)", label_, columns[k], info_.n_cols - 1,
                                     begin + static_cast<std::int64_t>(k)));
      }
      out.indices[k] = static_cast<std::int32_t>(columns[k]);
    }
    for (std::int64_t r = 1; r <= count; ++r) out.indptr.push_back(indptr_[static_cast<std::size_t>(first + r)] - begin);
    detail::check_block_indices(out, label_, "indices");
  }

  std::string label_;
  MatrixInfo info_;
  Array data_;
  Array indices_;
  std::vector<std::int64_t> indptr_;
};

/// Rows of a dense 2-D array.
class ZarrDenseReader final : public MatrixReader {
 public:
  ZarrDenseReader(const fs::path& dir, const std::string& label, MatrixInfo info) : label_(label), info_(std::move(info)), data_(dir, label) {}
  const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { guarded(label_, [&] { read(first, count, out); }); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { guarded(label_, [&] { read(first, count, out); }); }
  std::vector<std::int64_t> row_nnz() override { return std::vector<std::int64_t>(static_cast<std::size_t>(info_.n_rows), info_.n_cols); }

 private:
  template <typename Value>
  void read(std::int64_t first, std::int64_t count, CsrRows<Value>& out) {
    detail::check_row_range(first, count, info_.n_rows, label_);
    const std::int64_t columns = info_.n_cols;
    Buffer<Value> dense(static_cast<std::size_t>(count * columns));
    data_.read_rows(first, count, dense.data());
    out.reset(first, count, columns);
    for (std::int64_t r = 0; r < count; ++r) {
      const Value* row = dense.data() + r * columns;
      for (std::int64_t c = 0; c < columns; ++c) {
        if (row[c] != Value{0}) {
          out.indices.push_back(static_cast<std::int32_t>(c));
          out.values.push_back(row[c]);
        }
      }
      out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
    }
  }

  std::string label_;
  MatrixInfo info_;
  Array data_;
};

class ZarrAnnData final : public Dataset {
 public:
  explicit ZarrAnnData(const std::string& path) : path_(path), root_(path) {
    if (!is_group(root_)) throw InputError(fmt::format("{}: not a Zarr group (no .zgroup)", path));
    sources_ = list_sources();
    const std::vector<std::string>& sources = sources_;
    if (sources.empty()) throw InputError(fmt::format("{}: no matrix found: X is missing and there is no raw/X or layer", path));
    const MatrixInfo first = matrix_info(sources.front());
    n_obs_ = first.n_rows;
    n_vars_ = sources.front() == "X" ? first.n_cols : std::max<std::int64_t>(frame_rows("var"), 0);
    for (const auto& [frame, expected] : {std::pair<std::string, std::int64_t>{"obs", n_obs_}, {"var", n_vars_}}) {
      const std::int64_t rows = frame_rows(frame);
      if (rows >= 0 && rows != expected) {
        throw InputError(fmt::format("{}: {} has {} rows but X has shape {} x {}: shape mismatch", path_, frame, rows, n_obs_, n_vars_));
      }
    }
    if (first.encoding == MatrixEncoding::kCsr) (void)open_matrix(sources.front());  // validates indptr now
  }

  const std::string& path() const override { return path_; }
  std::string format() const override { return "zarr"; }
  std::int64_t n_obs() const override { return n_obs_; }
  std::int64_t n_vars() const override { return n_vars_; }
  DataFrame read_obs() const override { return read_frame("obs", nullptr, n_obs_); }
  DataFrame read_obs_columns(const std::vector<std::string>& names) const override {
    const std::vector<std::string> present = obs_column_names();
    for (const auto& name : names) {
      if (std::find(present.begin(), present.end(), name) == present.end()) return Dataset::read_obs_columns(names);
    }
    return read_frame("obs", &names, n_obs_);
  }
  std::vector<std::string> obs_column_names() const override { return column_order("obs"); }
  DataFrame read_var() const override { return read_frame("var", nullptr, n_vars_); }
  DataFrame read_var_of(const std::string& source) const override {
    if (source == "raw/X" && is_group(root_ / "raw" / "var")) return read_frame("raw/var", nullptr, matrix_info(source).n_cols);
    return read_var();
  }
  std::vector<std::string> matrix_sources() const override { return sources_; }
  /// What a matrix is, described once (its metadata read and its chunk files' sizes summed) and
  /// then kept: verbs ask for it again at every reader they open.
  MatrixInfo matrix_info(const std::string& source) const override {
    check_source(source);
    {
      const std::lock_guard lock(infos_mutex_);
      if (const auto found = infos_.find(source); found != infos_.end()) return found->second;
    }
    MatrixInfo info = describe(source);
    const std::lock_guard lock(infos_mutex_);
    return infos_.emplace(source, std::move(info)).first->second;
  }
  std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override {
    MatrixInfo info = matrix_info(source);
    const fs::path dir = root_ / source;
    const std::string label = fmt::format("{}/{}", path_, source);
    if (info.encoding == MatrixEncoding::kDense) return std::make_unique<ZarrDenseReader>(dir, label, std::move(info));
    if (info.encoding == MatrixEncoding::kCsr) return std::make_unique<ZarrCsrReader>(dir, label, std::move(info));
    CsrBlockF64 csr;
    guarded(label, [&] { csr = read_csc_as_csr(dir, label, info); });
    return detail::make_memory_reader(std::move(csr), info);
  }

 private:
  /// X, raw/X, then the layers by name: the matrices the store holds.
  std::vector<std::string> list_sources() const {
    std::vector<std::string> sources;
    const auto present = [&](const fs::path& dir) { return is_array(dir) || is_group(dir); };
    if (present(root_ / "X")) sources.emplace_back("X");
    if (present(root_ / "raw" / "X")) sources.emplace_back("raw/X");
    std::error_code error;
    if (is_group(root_ / "layers")) {
      std::vector<std::string> layers;
      for (const auto& entry : fs::directory_iterator(root_ / "layers", error)) {
        if (present(entry.path())) layers.push_back(entry.path().filename().string());
      }
      std::sort(layers.begin(), layers.end());
      for (const auto& layer : layers) sources.push_back("layers/" + layer);
    }
    return sources;
  }
  MatrixInfo describe(const std::string& source) const {
    const fs::path dir = root_ / source;
    const std::string label = fmt::format("{}/{}", path_, source);
    MatrixInfo info;
    info.source = source;
    const Json attributes = attributes_of(dir);
    info.encoding_version = text_attribute(attributes, "encoding-version");
    if (is_array(dir)) {
      const Array array(dir, label);
      if (array.shape().size() != 2 || array.is_string()) throw InputError(fmt::format("{}: expected a 2-D array of numbers", label));
      info.encoding = MatrixEncoding::kDense;
      info.n_rows = array.shape()[0];
      info.n_cols = array.shape()[1];
      if (info.n_rows > std::int64_t{2147483647} || info.n_cols > std::int64_t{2147483647}) {
        throw InputError(fmt::format("{} has a side over 2^31 - 1", label));
      }
      info.nnz = info.n_rows * info.n_cols;
      info.value_dtype = array.dtype_name();
      info.compression = array.compression_name();
      info.chunks = array.chunks();
      info.stored_bytes = array.stored_bytes();
      return info;
    }
    const std::string encoding = text_attribute(attributes, "encoding-type");
    if (encoding == "csr_matrix") {
      info.encoding = MatrixEncoding::kCsr;
    } else if (encoding == "csc_matrix") {
      info.encoding = MatrixEncoding::kCsc;
    } else {
      throw InputError(fmt::format("{} has encoding-type '{}' (expected csr_matrix, csc_matrix or a dense array)", label,
                                   encoding.empty() ? std::string("(none)") : encoding));
    }
    const auto shape = attributes.find("shape");
    if (shape == attributes.end() || !shape->is_array() || shape->size() != 2 || !(*shape)[0].is_number_integer() ||
        !(*shape)[1].is_number_integer() || (*shape)[0].get<std::int64_t>() < 0 || (*shape)[1].get<std::int64_t>() < 0) {
      throw InputError(fmt::format("{} has no valid 'shape' attribute", label));
    }
    info.n_rows = (*shape)[0].get<std::int64_t>();
    info.n_cols = (*shape)[1].get<std::int64_t>();
    if (info.n_cols > std::int64_t{2147483647} || info.n_rows > std::int64_t{2147483647}) {
      throw InputError(fmt::format("{} has a side over 2^31 - 1", label));
    }
    for (const char* part : {"data", "indices", "indptr"}) {
      if (!is_array(dir / part)) throw InputError(fmt::format("{}/{} is missing", label, part));
    }
    const Array data(dir / "data", label + "/data");
    const Array indices(dir / "indices", label + "/indices");
    if (data.shape().size() != 1 || data.is_string()) throw InputError(fmt::format("{}/data: expected a 1-D array of numbers", label));
    if (indices.shape().size() != 1 || indices.is_string() || indices.kind() == Array::Kind::kFloat) {
      throw InputError(fmt::format("{}/indices: expected a 1-D array of integers", label));
    }
    info.nnz = data.length();
    info.value_dtype = data.dtype_name();
    info.index_dtype = indices.dtype_name();
    info.compression = data.compression_name();
    info.chunks = data.chunks();
    info.stored_bytes = data.stored_bytes() + indices.stored_bytes() + Array(dir / "indptr", label + "/indptr").stored_bytes();
    return info;
  }

  void check_source(const std::string& source) const {
    if (std::find(sources_.begin(), sources_.end(), source) == sources_.end()) {
      throw InputError(fmt::format("{}: no matrix '{}' (available: {})", path_, source, fmt::join(sources_, ", ")));
    }
  }

  /// A CSC matrix read whole and turned into CSR (rows = cells).
  static CsrBlockF64 read_csc_as_csr(const fs::path& dir, const std::string& label, const MatrixInfo& info) {
    Array data(dir / "data", label + "/data");
    Array indices(dir / "indices", label + "/indices");
    data.require_chunks();
    indices.require_chunks();
    const Array indptr_array(dir / "indptr", label + "/indptr");
    if (info.n_rows > (std::int64_t{1} << 28)) throw InputError(fmt::format("{}: a CSC matrix of {} cells is too large to read whole", label, info.n_rows));
    if (indptr_array.length() != info.n_cols + 1 || indices.length() != info.nnz) {
      throw InputError(fmt::format("{}: indptr has {} entries for {} columns, indices {} for {} values", label, indptr_array.length(), info.n_cols,
                                   indices.length(), info.nnz));
    }
    const std::vector<std::int64_t> indptr = indptr_array.read_all<std::int64_t>();
    const std::vector<std::int64_t> rows = indices.read_all<std::int64_t>();
    const std::vector<double> values = data.read_all<double>();
    if (indptr.front() != 0 || indptr.back() != info.nnz) throw InputError(fmt::format("{}/indptr does not run from 0 to {}", label, info.nnz));
    CsrBlockF64 csr;
    csr.reset(0, info.n_rows, info.n_cols);
    std::vector<std::int64_t> offsets(static_cast<std::size_t>(info.n_rows) + 1, 0);
    for (const auto row : rows) {
      if (row < 0 || row >= info.n_rows) throw InputError(fmt::format("{}/indices: row {} outside 0..{}", label, row, info.n_rows - 1));
      ++offsets[static_cast<std::size_t>(row) + 1];
    }
    std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
    csr.indices.resize(rows.size());
    csr.values.resize(rows.size());
    std::vector<std::int64_t> next(offsets.begin(), offsets.end() - 1);
    for (std::int64_t column = 0; column < info.n_cols; ++column) {
      const auto begin = indptr[static_cast<std::size_t>(column)];
      const auto end = indptr[static_cast<std::size_t>(column) + 1];
      if (begin > end || end > info.nnz) throw InputError(fmt::format("{}/indptr is not monotone at column {}", label, column));
      for (std::int64_t k = begin; k < end; ++k) {
        const auto at = static_cast<std::size_t>(next[static_cast<std::size_t>(rows[static_cast<std::size_t>(k)])]++);
        csr.indices[at] = static_cast<std::int32_t>(column);
        csr.values[at] = values[static_cast<std::size_t>(k)];
      }
    }
    for (std::size_t r = 1; r < offsets.size(); ++r) csr.indptr.push_back(offsets[r]);
    detail::check_block_indices(csr, label, "indices");
    return csr;
  }

  std::vector<std::string> column_order(const std::string& frame) const {
    const fs::path dir = root_ / frame;
    if (!is_group(dir)) return {};
    const Json attributes = attributes_of(dir);
    std::vector<std::string> order;
    const auto found = attributes.find("column-order");
    if (found != attributes.end() && found->is_array()) {
      for (const Json& name : *found) {
        if (!name.is_string()) throw InputError(fmt::format("{}/{}: column-order holds a non-string", path_, frame));
        order.push_back(safe_member(name.get<std::string>(), fmt::format("{}/{}: column-order", path_, frame)));
      }
      return order;
    }
    // No column-order (not written by anndata): every member but the index, by name.
    const std::string index = index_name(dir);
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(dir, error)) {
      const std::string name = entry.path().filename().string();
      if (name != index && name.front() != '.' && name != "__categories" && (is_array(entry.path()) || is_group(entry.path()))) order.push_back(name);
    }
    std::sort(order.begin(), order.end());
    return order;
  }

  std::int64_t frame_rows(const std::string& frame) const {
    const fs::path dir = root_ / frame;
    if (!is_group(dir)) return -1;
    const std::string index = index_name(dir);
    if (!is_array(dir / index)) throw InputError(fmt::format("{}/{} has no index array '{}'", path_, frame, index));
    return Array(dir / index, fmt::format("{}/{}/{}", path_, frame, index)).length();
  }

  static std::string index_name(const fs::path& dir) {
    const std::string name = text_attribute(attributes_of(dir), "_index");
    return name.empty() ? "_index" : safe_member(name, (dir / ".zattrs").string() + ": _index");
  }

  Column read_column(const fs::path& frame, const std::string& frame_label, const std::string& name) const {
    const fs::path dir = frame / name;
    const std::string label = frame_label + "/" + name;
    if (is_array(dir)) {
      const Json attributes = attributes_of(dir);
      // anndata 0.7: categorical codes name their categories ("__categories/NAME") in an attribute.
      if (const std::string categories = text_attribute(attributes, "categories"); !categories.empty()) {
        const std::string member = categories.rfind("__categories/", 0) == 0 ? categories.substr(13) : categories;
        const fs::path categories_dir = frame / "__categories" / safe_member(member, label + ": categories");
        const Json category_attributes = attributes_of(categories_dir);  // anndata 0.7 keeps `ordered` there
        const auto ordered = [](const Json& attrs) { return attrs.contains("ordered") && attrs["ordered"].is_boolean() && attrs["ordered"].get<bool>(); };
        return categorical_column(Array(dir, label), Array(categories_dir, fmt::format("{}/__categories/{}", frame_label, member)), name, label,
                                  ordered(attributes) || ordered(category_attributes));
      }
      const std::string encoding = text_attribute(attributes, "encoding-type");
      if (!encoding.empty() && encoding != "array" && encoding != "string-array") {
        throw InputError(fmt::format("{} has unknown encoding-type '{}'", label, encoding));
      }
      return array_column(Array(dir, label), name);
    }
    if (!is_group(dir)) throw InputError(fmt::format("{} is missing", label));
    const Json attributes = attributes_of(dir);
    const std::string encoding = text_attribute(attributes, "encoding-type");
    Column column;
    column.name = name;
    if (encoding == "categorical") {
      column = categorical_column(Array(dir / "codes", label + "/codes"), Array(dir / "categories", label + "/categories"), name, label,
                                  attributes.contains("ordered") && attributes["ordered"].is_boolean() && attributes["ordered"].get<bool>());
    } else if (encoding == "nullable-integer" || encoding == "nullable-boolean" || encoding == "nullable-string-array") {
      column = array_column(Array(dir / "values", label + "/values"), name);
      column.mask = Array(dir / "mask", label + "/mask").read_all<std::uint8_t>();
      if (column.kind == ColumnKind::kInt) column.kind = ColumnKind::kNullableInt;
      if (column.kind == ColumnKind::kBool) column.kind = ColumnKind::kNullableBool;
      if (column.mask.size() != column.size()) throw InputError(fmt::format("{}: mask has {} entries for {} values", label, column.mask.size(), column.size()));
    } else {
      throw InputError(fmt::format("{} has unknown encoding-type '{}'", label, encoding.empty() ? std::string("(none)") : encoding));
    }
    return column;
  }

  static Column categorical_column(const Array& codes, const Array& categories, const std::string& name, const std::string& label, bool ordered) {
    Column column;
    column.name = name;
    column.kind = ColumnKind::kCategorical;
    column.dtype = "category";
    column.ordered = ordered;
    if (codes.is_string() || codes.kind() == Array::Kind::kFloat) throw InputError(fmt::format("{}/codes: expected integers", label));
    for (const std::int64_t code : codes.read_all<std::int64_t>()) {
      column.codes.push_back(static_cast<std::int32_t>(std::clamp<std::int64_t>(code, -2, std::numeric_limits<std::int32_t>::max())));
    }
    column.categories_dtype = categories.dtype_name();
    if (categories.is_string()) {
      column.categories = categories.read_strings();
    } else if (categories.kind() == Array::Kind::kFloat) {
      for (const double value : categories.read_all<double>()) column.categories.push_back(fmt::format("{}", value));
    } else {
      for (const std::int64_t value : categories.read_all<std::int64_t>()) column.categories.push_back(fmt::format("{}", value));
    }
    const auto n = static_cast<std::int32_t>(column.categories.size());
    for (std::size_t i = 0; i < column.codes.size(); ++i) {
      if (column.codes[i] < -1 || column.codes[i] >= n) {
        throw InputError(fmt::format("{}: code {} at row {} is outside the {} categories", label, column.codes[i], i, n));
      }
    }
    return column;
  }

  DataFrame read_frame(const std::string& frame_path, const std::vector<std::string>* only, std::int64_t expected_rows) const {
    DataFrame frame;
    frame.origin = fmt::format("{}/{}", path_, frame_path);
    const fs::path dir = root_ / frame_path;
    if (!is_group(dir)) {
      constexpr std::int64_t kMaxGeneratedIndex = 10'000'000;
      if (expected_rows > kMaxGeneratedIndex) throw InputError(fmt::format("{}: {} is missing", path_, frame_path));
      for (std::int64_t i = 0; i < expected_rows; ++i) frame.index.push_back(std::to_string(i));
      return frame;
    }
    const std::string encoding = text_attribute(attributes_of(dir), "encoding-type");
    if (!encoding.empty() && encoding != "dataframe") {
      throw InputError(fmt::format("{}: {} has encoding-type '{}', expected 'dataframe'", path_, frame_path, encoding));
    }
    frame.index_name = index_name(dir);
    const std::string label = fmt::format("{}/{}", path_, frame_path);
    if (!is_array(dir / frame.index_name)) throw InputError(fmt::format("{} has no index array '{}'", label, frame.index_name));
    const Column index = array_column(Array(dir / frame.index_name, label + "/" + frame.index_name), frame.index_name);
    if (index.kind == ColumnKind::kString) {
      frame.index = index.strings;
    } else {
      for (std::size_t i = 0; i < index.size(); ++i) frame.index.push_back(index.value_as_string(i));
    }
    for (const auto& name : column_order(frame_path)) {
      if (only != nullptr && std::find(only->begin(), only->end(), name) == only->end()) continue;
      Column column = read_column(dir, label, name);
      if (column.size() != frame.index.size()) {
        throw InputError(fmt::format("{}/{} has {} rows but the index has {}", label, name, column.size(), frame.index.size()));
      }
      frame.columns.push_back(std::move(column));
    }
    if (expected_rows >= 0 && static_cast<std::int64_t>(frame.index.size()) != expected_rows) {
      throw InputError(fmt::format("{} has {} rows but X has {}", label, frame.index.size(), expected_rows));
    }
    return frame;
  }

  std::string path_;
  fs::path root_;
  std::vector<std::string> sources_;
  mutable std::mutex infos_mutex_;
  mutable std::map<std::string, MatrixInfo> infos_;
  std::int64_t n_obs_ = 0;
  std::int64_t n_vars_ = 0;
};

}  // namespace

bool is_zarr_anndata(const std::string& path) {
  std::error_code error;
  if (!fs::is_directory(path, error) || !is_group(path)) return false;
  for (const char* member : {"X", "obs", "var"}) {
    if (is_group(fs::path(path) / member) || is_array(fs::path(path) / member)) return true;
  }
  return false;
}

std::unique_ptr<Dataset> open_zarr(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  return std::make_unique<ZarrAnnData>(trimmed);
}

}  // namespace celltyper
