// libFuzzer target: celltyper's reading of AnnData Zarr stores. The input drives a generator of
// Zarr directories with hostile content: .zarray metadata with any shape, chunk shape, element type,
// compressor (none, zlib, Blosc, unsupported) and fill value, sometimes not JSON at all; chunk
// files well-formed, truncated, corrupt, of the wrong size, or absent; vlen-utf8 string chunks
// whose counts and lengths lie; obs / var frames with any encoding, column-order naming absent
// columns, categorical codes outside their categories; X as CSR / CSC groups with any shape
// attribute, indptr and indices, or a dense array. celltyper then opens the store, reads obs and
// var, streams every matrix it lists and summarises X. Anything but a celltyper::Error is a finding.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/inspect.hpp>

#include "fuzz_support.hpp"

#include <blosc.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

/// Reads decisions from the fuzz input; zeros once it runs out.
class Choices {
 public:
  Choices(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() { return position_ < size_ ? data_[position_++] : 0; }
  std::uint32_t below(std::uint32_t n) { return n == 0 ? 0 : static_cast<std::uint32_t>(word() % n); }
  std::uint32_t word() { return static_cast<std::uint32_t>(byte()) | static_cast<std::uint32_t>(byte()) << 8; }
  bool flag() { return (byte() & 1) != 0; }
  std::int64_t integer() {
    switch (below(8)) {
      case 0: return -1;
      case 1: return static_cast<std::int64_t>(word()) << 32 | word();
      default: return below(12);
    }
  }
  std::string text() {
    static const char* const kWords[] = {"", "_index", "celltype", "CD3E", "MS4A1", "0", "X", "csr_matrix", "csc_matrix", "array",
                                         "categorical", "string-array", "nullable-integer", "dataframe", "\xff\xfe", ".", "..", "codes"};
    return kWords[below(sizeof(kWords) / sizeof(kWords[0]))];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

void write_file(const fs::path& file, const void* data, std::size_t size) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
}
void write_json(const fs::path& file, const Json& value, Choices& in) {
  // Sometimes not JSON; invalid UTF-8 in names replaced (the harness's own dump would throw).
  const std::string text = in.below(16) == 0 ? std::string("{\"shape\": [") : value.dump(-1, ' ', false, Json::error_handler_t::replace);
  write_file(file, text.data(), text.size());
}
void group(const fs::path& dir, const Json& attributes, Choices& in) {
  write_json(dir / ".zgroup", {{"zarr_format", 2}}, in);
  write_json(dir / ".zattrs", attributes, in);
}

/// A 1-D (or 2-D when `columns` > 0) array of `length` elements: numbers or strings.
void array(const fs::path& dir, Choices& in, std::int64_t length, std::int64_t columns = 0, bool strings = false) {
  static const char* const kNumeric[] = {"<f4", "<f8", "<i4", "<i8", "|i1", "|u1", "<u2", "|b1", ">f4", "<c8"};
  const bool vlen = strings && in.below(4) != 0;
  const std::string dtype = strings ? (vlen ? "|O" : (in.flag() ? "<U4" : "|S3")) : kNumeric[in.below(sizeof(kNumeric) / sizeof(kNumeric[0]))];
  const std::int64_t chunk = 1 + static_cast<std::int64_t>(in.below(6));
  const std::int64_t chunk_cols = 1 + static_cast<std::int64_t>(in.below(4));
  const std::uint32_t codec = in.below(4);  // none, zlib, blosc, zstd (unsupported)
  Json meta = {{"zarr_format", 2}, {"dtype", dtype}, {"order", "C"}, {"fill_value", in.flag() ? Json(0) : Json("NaN")}};
  meta["shape"] = columns > 0 ? Json::array({length, columns}) : Json::array({length});
  meta["chunks"] = columns > 0 ? Json::array({chunk, chunk_cols}) : Json::array({chunk});
  if (in.below(8) == 0) meta["shape"] = Json::array({in.integer()});
  if (in.below(8) == 0) meta["chunks"] = columns > 0 ? Json::array({std::int64_t{1} << in.below(31), chunk_cols}) : Json::array({std::int64_t{1} << in.below(31)});
  meta["compressor"] = codec == 0 ? Json(nullptr) : codec == 1 ? Json{{"id", "zlib"}, {"level", 1}} : codec == 2 ? Json{{"id", "blosc"}, {"cname", "lz4"}} : Json{{"id", "zstd"}};
  meta["filters"] = vlen ? Json::array({{{"id", "vlen-utf8"}}}) : Json(nullptr);
  if (in.below(10) == 0) meta["dimension_separator"] = "/";
  write_json(dir / ".zarray", meta, in);
  write_json(dir / ".zattrs", {{"encoding-type", strings ? "string-array" : "array"}}, in);
  std::size_t item = 4;
  if (dtype == "<f8" || dtype == "<i8") item = 8;
  if (dtype == "|i1" || dtype == "|u1" || dtype == "|b1") item = 1;
  if (dtype == "<u2") item = 2;
  if (dtype == "<U4") item = 16;
  if (dtype == "|S3") item = 3;
  const std::int64_t chunk_rows_n = length <= 0 ? 0 : (length + chunk - 1) / chunk;
  const std::int64_t chunk_cols_n = columns <= 0 ? 1 : (columns + chunk_cols - 1) / chunk_cols;
  for (std::int64_t i = 0; i < chunk_rows_n && i < 16; ++i) {
    for (std::int64_t j = 0; j < chunk_cols_n && j < 8; ++j) {
      const std::uint32_t kind = in.below(6);  // 0 absent, 1 wrong size, 2 truncated, 3 corrupt, else well-formed
      if (kind == 0) continue;
      std::vector<unsigned char> raw;
      const std::int64_t elements = chunk * (columns > 0 ? chunk_cols : 1);
      if (vlen) {
        const auto u32 = [&raw](std::uint32_t value) {
          for (int b = 0; b < 4; ++b) raw.push_back(static_cast<unsigned char>(value >> (8 * b)));
        };
        u32(in.below(4) == 0 ? in.word() : static_cast<std::uint32_t>(elements));
        for (std::int64_t e = 0; e < elements; ++e) {
          const std::string value = in.text();
          u32(in.below(8) == 0 ? in.word() << 8 : static_cast<std::uint32_t>(value.size()));
          raw.insert(raw.end(), value.begin(), value.end());
        }
      } else {
        raw.resize(static_cast<std::size_t>(elements) * item);
        for (auto& byte : raw) byte = in.below(3) == 0 ? in.byte() : 0;
        if (kind == 1) raw.resize(in.below(static_cast<std::uint32_t>(raw.size() + 2)));
      }
      std::vector<unsigned char> stored = raw;
      if (codec == 1) {
        uLongf bound = compressBound(raw.size());
        stored.resize(bound);
        compress(stored.data(), &bound, raw.data(), raw.size());
        stored.resize(bound);
      } else if (codec == 2) {
        stored.resize(raw.size() + BLOSC_MAX_OVERHEAD);
        const int n = blosc_compress_ctx(1, 1, 1, raw.size(), raw.data(), stored.data(), stored.size(), "lz4", 0, 1);
        stored.resize(static_cast<std::size_t>(std::max(n, 0)));
      }
      if (kind == 2 && !stored.empty()) stored.resize(in.below(static_cast<std::uint32_t>(stored.size())));
      if (kind == 3 && !stored.empty()) stored[in.below(static_cast<std::uint32_t>(stored.size()))] ^= static_cast<unsigned char>(1 + in.byte());
      const std::string key = columns > 0 ? std::to_string(i) + (meta.contains("dimension_separator") ? "/" : ".") + std::to_string(j) : std::to_string(i);
      write_file(dir / key, stored.data(), stored.size());
    }
  }
}

void frame(const fs::path& dir, Choices& in, std::int64_t rows) {
  if (in.below(8) == 0) return;
  Json attributes = {{"_index", in.flag() ? "_index" : in.text()}, {"encoding-type", in.below(8) == 0 ? in.text() : "dataframe"}};
  attributes["column-order"] = in.below(8) == 0 ? Json::array({in.text()}) : Json::array({"celltype", "score"});
  group(dir, attributes, in);
  array(dir / "_index", in, rows + (in.below(8) == 0 ? 1 : 0), 0, in.below(4) != 0);
  group(dir / "celltype", {{"encoding-type", in.below(6) == 0 ? in.text() : "categorical"}, {"ordered", in.flag()}}, in);
  array(dir / "celltype" / "codes", in, rows);
  array(dir / "celltype" / "categories", in, 1 + in.below(3), 0, in.flag());
  array(dir / "score", in, rows);
}

void matrix(const fs::path& dir, Choices& in, std::int64_t rows, std::int64_t columns) {
  if (in.below(5) == 0) {
    array(dir, in, rows, columns);
    return;
  }
  Json shape = Json::array({rows, columns});
  if (in.below(6) == 0) shape = Json::array({in.integer(), in.integer()});
  group(dir, {{"encoding-type", in.flag() ? "csr_matrix" : "csc_matrix"}, {"shape", shape}}, in);
  const std::int64_t nnz = in.below(12);
  array(dir / "data", in, nnz);
  array(dir / "indices", in, nnz);
  array(dir / "indptr", in, (in.flag() ? rows : columns) + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string root = celltyper::fuzz::scratch_file("store.zarr.tmp", nullptr, 0) + "-dir.zarr";
  Choices in(data, size);
  std::error_code error;
  fs::remove_all(root, error);
  const std::int64_t rows = in.below(7);
  const std::int64_t columns = in.below(6);
  group(root, {{"encoding-type", "anndata"}, {"encoding-version", "0.1.0"}}, in);
  frame(fs::path(root) / "obs", in, rows);
  frame(fs::path(root) / "var", in, columns);
  matrix(fs::path(root) / "X", in, rows, columns);
  if (in.below(4) == 0) {
    group(fs::path(root) / "layers", {{"encoding-type", "dict"}}, in);
    matrix(fs::path(root) / "layers" / "counts", in, rows, columns);
  }
  try {
    const auto dataset = celltyper::open_dataset(root);
    (void)dataset->read_obs();
    (void)dataset->read_var();
    for (const auto& source : dataset->matrix_sources()) {
      (void)dataset->read_var_of(source);
      const auto reader = dataset->open_matrix(source);
      celltyper::for_each_block(*reader, {std::size_t{1} << 12, false}, [](const celltyper::CsrBlock&) {});
    }
    celltyper::InspectOptions options;
    (void)celltyper::inspect_dataset(*dataset, options);
  } catch (const celltyper::Error&) {
  }
  return 0;
}
