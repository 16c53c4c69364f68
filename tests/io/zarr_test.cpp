// AnnData as Zarr (v2) directories: the layout anndata's write_zarr produces, written here file by
// file (.zgroup / .zattrs / .zarray JSON and chunk files) so that every detail is under the test's
// control: Blosc, zlib and uncompressed chunks, chunks split across row blocks, absent chunks (the
// fill value), vlen-utf8 and fixed-width unicode strings, categorical and nullable columns, CSR,
// CSC and dense matrices, and malformed stores.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/zarr.hpp>

#include "support/test_support.hpp"

#include <blosc.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace celltyper {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

void write_text(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}
void write_bytes(const fs::path& file, const std::vector<unsigned char>& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void group(const fs::path& dir, const Json& attributes = Json::object()) {
  write_text(dir / ".zgroup", R"({"zarr_format": 2})");
  write_text(dir / ".zattrs", attributes.dump());
}

enum class Codec { kNone, kZlib, kBlosc };

std::vector<unsigned char> compress(const std::vector<unsigned char>& raw, Codec codec, std::size_t typesize) {
  if (codec == Codec::kNone) return raw;
  if (codec == Codec::kZlib) {
    uLongf bound = compressBound(raw.size());
    std::vector<unsigned char> out(bound);
    EXPECT_EQ(compress2(out.data(), &bound, raw.data(), raw.size(), 6), Z_OK);
    out.resize(bound);
    return out;
  }
  std::vector<unsigned char> out(raw.size() + BLOSC_MAX_OVERHEAD);
  const int n = blosc_compress_ctx(5, 1, typesize, raw.size(), raw.data(), out.data(), out.size(), "lz4", 0, 1);
  EXPECT_GT(n, 0);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Json compressor_json(Codec codec) {
  if (codec == Codec::kNone) return nullptr;
  if (codec == Codec::kZlib) return {{"id", "zlib"}, {"level", 6}};
  return {{"id", "blosc"}, {"cname", "lz4"}, {"clevel", 5}, {"shuffle", 1}, {"blocksize", 0}};
}

/// A 1-D numeric array of `values` stored as `dtype` ("<f4", "<i4", "<i8", "|i1", "|b1"), in chunks of
/// `chunk`; chunks listed in `skip` are not written (they read as the fill value 0).
template <typename T>
void numbers(const fs::path& dir, const std::vector<T>& values, const std::string& dtype, std::int64_t chunk, Codec codec,
             const std::vector<std::int64_t>& skip = {}, const Json& attributes = {{"encoding-type", "array"}, {"encoding-version", "0.2.0"}}) {
  write_text(dir / ".zarray", Json{{"zarr_format", 2},  {"shape", {values.size()}}, {"chunks", {chunk}}, {"dtype", dtype},
                                   {"compressor", compressor_json(codec)}, {"fill_value", 0}, {"filters", nullptr}, {"order", "C"}}
                                  .dump());
  write_text(dir / ".zattrs", attributes.dump());
  for (std::int64_t c = 0; c * chunk < static_cast<std::int64_t>(values.size()); ++c) {
    if (std::find(skip.begin(), skip.end(), c) != skip.end()) continue;
    std::vector<unsigned char> raw(static_cast<std::size_t>(chunk) * sizeof(T), 0);  // a whole chunk, the tail zero
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(chunk), values.size() - static_cast<std::size_t>(c * chunk));
    std::memcpy(raw.data(), values.data() + c * chunk, n * sizeof(T));
    write_bytes(dir / std::to_string(c), compress(raw, codec, sizeof(T)));
  }
}

/// A 1-D string array: vlen-utf8 objects (anndata) or fixed-width "<U8" (numpy unicode).
void strings(const fs::path& dir, const std::vector<std::string>& values, bool vlen, Codec codec) {
  const std::size_t n = values.size();
  write_text(dir / ".zarray", Json{{"zarr_format", 2}, {"shape", {n}}, {"chunks", {n}}, {"dtype", vlen ? "|O" : "<U8"},
                                   {"compressor", compressor_json(codec)}, {"fill_value", vlen ? Json(0) : Json("")},
                                   {"filters", vlen ? Json::array({{{"id", "vlen-utf8"}}}) : Json(nullptr)}, {"order", "C"}}
                                  .dump());
  write_text(dir / ".zattrs", Json{{"encoding-type", "string-array"}, {"encoding-version", "0.2.0"}}.dump());
  std::vector<unsigned char> raw;
  const auto u32 = [&raw](std::uint32_t value) {
    for (int b = 0; b < 4; ++b) raw.push_back(static_cast<unsigned char>(value >> (8 * b)));
  };
  if (vlen) {
    u32(static_cast<std::uint32_t>(n));
    for (const auto& value : values) {
      u32(static_cast<std::uint32_t>(value.size()));
      raw.insert(raw.end(), value.begin(), value.end());
    }
  } else {  // ASCII only here: one UTF-32 code unit per byte
    for (const auto& value : values) {
      for (std::size_t i = 0; i < 8; ++i) u32(i < value.size() ? static_cast<unsigned char>(value[i]) : 0);
    }
  }
  write_bytes(dir / "0", compress(raw, codec, vlen ? 1 : 4));
}

// 5 cells x 4 genes, CSR.
const std::vector<std::int32_t> kIndptr{0, 2, 3, 3, 6, 7};
const std::vector<std::int32_t> kIndices{0, 2, 1, 0, 1, 3, 2};
const std::vector<float> kData{1, 2, 3, 4, 5, 6, 7};
const std::vector<std::vector<double>> kDense{{1, 0, 2, 0}, {0, 3, 0, 0}, {0, 0, 0, 0}, {4, 5, 0, 6}, {0, 0, 7, 0}};

/// A store with obs (vlen names, a categorical, a nullable integer, floats), var (fixed-width
/// names) and X as CSR in chunks of 3.
fs::path write_store(const fs::path& root, Codec codec) {
  group(root, {{"encoding-type", "anndata"}, {"encoding-version", "0.1.0"}});
  group(root / "obs", {{"_index", "_index"}, {"column-order", {"celltype", "n_genes", "score"}}, {"encoding-type", "dataframe"},
                       {"encoding-version", "0.2.0"}});
  strings(root / "obs" / "_index", {"AAAC-1", "AAAG-1", "AAAT-1", "AACA-1", "AACC-1"}, true, codec);
  group(root / "obs" / "celltype", {{"encoding-type", "categorical"}, {"encoding-version", "0.2.0"}, {"ordered", false}});
  numbers<std::int8_t>(root / "obs" / "celltype" / "codes", {0, 1, -1, 0, 1}, "|i1", 5, codec);
  strings(root / "obs" / "celltype" / "categories", {"B cell", "\xce\xb3\xce\xb4 T cell"}, true, codec);
  group(root / "obs" / "n_genes", {{"encoding-type", "nullable-integer"}, {"encoding-version", "0.1.0"}});
  numbers<std::int64_t>(root / "obs" / "n_genes" / "values", {2, 1, 0, 3, 1}, "<i8", 5, codec);
  numbers<std::uint8_t>(root / "obs" / "n_genes" / "mask", {0, 0, 1, 0, 0}, "|b1", 5, codec);
  numbers<double>(root / "obs" / "score", {0.5, 0.25, 0, 1, 2}, "<f8", 2, codec);
  group(root / "var", {{"_index", "gene"}, {"column-order", Json::array()}, {"encoding-type", "dataframe"}, {"encoding-version", "0.2.0"}});
  strings(root / "var" / "gene", {"CD3E", "MS4A1", "LYZ", "NKG7"}, false, codec);
  group(root / "X", {{"encoding-type", "csr_matrix"}, {"encoding-version", "0.1.0"}, {"shape", {5, 4}}});
  numbers(root / "X" / "data", kData, "<f4", 3, codec);
  numbers(root / "X" / "indices", kIndices, "<i4", 3, codec);
  numbers(root / "X" / "indptr", kIndptr, "<i4", 6, codec);
  return root;
}

TEST(Zarr, AnnDataStoresReadWithEveryCodec) {
  test::TempDir dir;
  for (const Codec codec : {Codec::kNone, Codec::kZlib, Codec::kBlosc}) {
    SCOPED_TRACE(static_cast<int>(codec));
    const fs::path root = write_store(dir.path() / fmt::format("store{}.zarr", static_cast<int>(codec)), codec);
    ASSERT_TRUE(is_zarr_anndata(root.string()));
    const auto dataset = open_dataset(root.string() + "/");
    EXPECT_EQ(dataset->format(), "zarr");
    EXPECT_EQ(dataset->n_obs(), 5);
    EXPECT_EQ(dataset->n_vars(), 4);
    EXPECT_EQ(test::dense_x(*dataset), kDense);
    const MatrixInfo info = dataset->matrix_info("X");
    EXPECT_EQ(info.encoding, MatrixEncoding::kCsr);
    EXPECT_EQ(info.nnz, 7);
    EXPECT_EQ(info.value_dtype, "float32");
    const DataFrame obs = dataset->read_obs();
    EXPECT_EQ(obs.index[3], "AACA-1");
    ASSERT_EQ(obs.columns.size(), 3U);
    EXPECT_EQ(obs.columns[0].kind, ColumnKind::kCategorical);
    EXPECT_EQ(obs.columns[0].value_as_string(1), "\xce\xb3\xce\xb4 T cell");
    EXPECT_TRUE(obs.columns[0].is_missing(2));
    EXPECT_EQ(obs.columns[1].kind, ColumnKind::kNullableInt);
    EXPECT_TRUE(obs.columns[1].is_missing(2));
    EXPECT_EQ(obs.columns[1].integers[3], 3);
    EXPECT_EQ(obs.columns[2].numbers[4], 2.0);
    EXPECT_EQ(dataset->read_obs_columns({"score"}).columns.size(), 1U);
    const DataFrame var = dataset->read_var();
    EXPECT_EQ(var.index_name, "gene");
    EXPECT_EQ(var.index, (std::vector<std::string>{"CD3E", "MS4A1", "LYZ", "NKG7"}));
    // Row blocks that start inside a chunk read the same rows, values and genes.
    const auto reader = dataset->open_matrix("X");
    for (std::int64_t first = 0; first < 5; ++first) {
      for (std::int64_t count = 1; first + count <= 5; ++count) {
        CsrBlock block;
        reader->read_rows(first, count, block);
        ASSERT_EQ(block.n_rows, count);
        for (std::int64_t r = 0; r < count; ++r) {
          std::vector<double> row(4, 0.0);
          for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
            row[static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])] = block.values[static_cast<std::size_t>(k)];
          }
          EXPECT_EQ(row, kDense[static_cast<std::size_t>(first + r)]) << first << "+" << r;
        }
      }
    }
  }
}

TEST(Zarr, CscDenseLayersRawAndAbsentChunks) {
  test::TempDir dir;
  const fs::path root = write_store(dir.path() / "store.zarr", Codec::kBlosc);
  // layers/counts: the same cells as CSC (genes' columns), raw/X dense with one more gene, a layer
  // whose middle chunk of values is absent (read as zeros).
  group(root / "layers", {{"encoding-type", "dict"}, {"encoding-version", "0.1.0"}});
  group(root / "layers" / "counts", {{"encoding-type", "csc_matrix"}, {"encoding-version", "0.1.0"}, {"shape", {5, 4}}});
  numbers<float>(root / "layers" / "counts" / "data", {1, 4, 3, 5, 2, 7, 6}, "<f4", 4, Codec::kBlosc);
  numbers<std::int64_t>(root / "layers" / "counts" / "indices", {0, 3, 1, 3, 0, 4, 3}, "<i8", 4, Codec::kBlosc);
  numbers<std::int64_t>(root / "layers" / "counts" / "indptr", {0, 2, 4, 6, 7}, "<i8", 5, Codec::kBlosc);
  group(root / "layers" / "holes", {{"encoding-type", "csr_matrix"}, {"encoding-version", "0.1.0"}, {"shape", {5, 4}}});
  numbers(root / "layers" / "holes" / "data", kData, "<f4", 3, Codec::kZlib, {1});  // values 3..5 absent: an incomplete store
  numbers(root / "layers" / "holes" / "indices", kIndices, "<i4", 3, Codec::kZlib);
  numbers(root / "layers" / "holes" / "indptr", kIndptr, "<i4", 6, Codec::kZlib);
  group(root / "raw", {{"encoding-type", "raw"}, {"encoding-version", "0.1.0"}});
  std::vector<double> dense;
  for (const auto& row : kDense) {
    dense.insert(dense.end(), row.begin(), row.end());
    dense.push_back(9);
  }
  write_text(root / "raw" / "X" / ".zarray", Json{{"zarr_format", 2}, {"shape", {5, 5}}, {"chunks", {2, 3}}, {"dtype", "<f8"},
                                                  {"compressor", compressor_json(Codec::kBlosc)}, {"fill_value", 0}, {"filters", nullptr}, {"order", "C"}}
                                                 .dump());
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 2; ++j) {
      std::vector<double> chunk(6, 0.0);
      for (int r = 0; r < 2; ++r) {
        for (int c = 0; c < 3; ++c) {
          if (2 * i + r < 5 && 3 * j + c < 5) chunk[static_cast<std::size_t>(r * 3 + c)] = dense[static_cast<std::size_t>((2 * i + r) * 5 + 3 * j + c)];
        }
      }
      std::vector<unsigned char> raw(chunk.size() * 8);
      std::memcpy(raw.data(), chunk.data(), raw.size());
      write_bytes(root / "raw" / "X" / fmt::format("{}.{}", i, j), compress(raw, Codec::kBlosc, 8));
    }
  }
  group(root / "raw" / "var", {{"_index", "_index"}, {"column-order", Json::array()}, {"encoding-type", "dataframe"}, {"encoding-version", "0.2.0"}});
  strings(root / "raw" / "var" / "_index", {"CD3E", "MS4A1", "LYZ", "NKG7", "MALAT1"}, true, Codec::kNone);

  const auto dataset = open_dataset(root.string());
  EXPECT_EQ(dataset->matrix_sources(), (std::vector<std::string>{"X", "raw/X", "layers/counts", "layers/holes"}));
  const auto rows_of = [&](const std::string& source) {
    const auto reader = dataset->open_matrix(source);
    CsrBlockF64 block;
    reader->read_rows(0, reader->n_rows(), block);
    std::vector<std::vector<double>> rows(static_cast<std::size_t>(block.n_rows), std::vector<double>(static_cast<std::size_t>(block.n_cols), 0.0));
    for (std::int64_t r = 0; r < block.n_rows; ++r) {
      for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
        rows[static_cast<std::size_t>(r)][static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])] = block.values[static_cast<std::size_t>(k)];
      }
    }
    return rows;
  };
  EXPECT_EQ(rows_of("layers/counts"), kDense);
  std::vector<std::vector<double>> raw_expected = kDense;
  for (auto& row : raw_expected) row.push_back(9);
  EXPECT_EQ(rows_of("raw/X"), raw_expected);
  EXPECT_EQ(dataset->read_var_of("raw/X").index.back(), "MALAT1");
  EXPECT_EQ(dataset->matrix_info("raw/X").encoding, MatrixEncoding::kDense);
  // A sparse matrix's values are never fill: their absent chunk is an error naming the file; an
  // absent chunk of a dense array is its fill value (zarr leaves out chunks of zeros).
  try {
    (void)rows_of("layers/holes");
    ADD_FAILURE() << "an absent chunk of values read";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("layers/holes/data/1: chunk file missing"), std::string::npos) << error.what();
  }
  fs::remove(root / "raw" / "X" / "1.1");  // rows 2-3 of genes 3-4: zeros ...
  raw_expected[2][3] = raw_expected[2][4] = raw_expected[3][3] = raw_expected[3][4] = 0;
  EXPECT_EQ(rows_of("raw/X"), raw_expected);
}

TEST(Zarr, Anndata07CategoricalsNameTheirCategories) {
  // anndata 0.7 wrote a categorical column as plain codes whose 'categories' attribute names an
  // array under __categories: read as labels, not as the integers 0, 1, ...
  test::TempDir dir;
  const fs::path root = write_store(dir.path() / "old.zarr", Codec::kZlib);
  write_text(root / "obs" / ".zattrs", Json{{"_index", "_index"}, {"column-order", {"celltype"}}, {"encoding-type", "dataframe"}}.dump());
  fs::remove_all(root / "obs" / "celltype");
  numbers<std::int8_t>(root / "obs" / "celltype", {1, 0, 1, -1, 0}, "|i1", 5, Codec::kZlib, {}, {{"categories", "__categories/celltype"}});
  group(root / "obs" / "__categories");
  strings(root / "obs" / "__categories" / "celltype", {"B cell", "T cell"}, true, Codec::kZlib);
  const DataFrame obs = open_dataset(root.string())->read_obs();
  ASSERT_EQ(obs.columns.size(), 1U);
  EXPECT_EQ(obs.columns[0].kind, ColumnKind::kCategorical);
  EXPECT_EQ(obs.columns[0].value_as_string(0), "T cell");
  EXPECT_TRUE(obs.columns[0].is_missing(3));
}

TEST(Zarr, MalformedStoresAreOneClearError) {
  test::TempDir dir;
  const auto message_of = [](const fs::path& path) {
    try {
      const auto dataset = open_dataset(path.string());
      (void)dataset->read_obs();
      (void)test::dense_x(*dataset);
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  {
    const fs::path root = write_store(dir.path() / "corrupt.zarr", Codec::kBlosc);
    std::ofstream(root / "X" / "data" / "1", std::ios::binary | std::ios::trunc) << "not blosc at all, just text";
    EXPECT_NE(message_of(root).find("X/data/1: not a Blosc buffer"), std::string::npos) << message_of(root);
  }
  {
    const fs::path root = write_store(dir.path() / "truncated.zarr", Codec::kZlib);
    const fs::path chunk = root / "X" / "indices" / "0";
    fs::resize_file(chunk, fs::file_size(chunk) / 2);
    EXPECT_NE(message_of(root).find("X/indices/0: the chunk does not inflate to 12 bytes"), std::string::npos) << message_of(root);
  }
  {
    const fs::path root = write_store(dir.path() / "index.zarr", Codec::kNone);
    numbers<std::int32_t>(root / "X" / "indices", {0, 2, 1, 0, 1, 4, 2}, "<i4", 3, Codec::kNone);  // gene 4 of 4
    EXPECT_NE(message_of(root).find("X/indices: value 4 outside 0..3"), std::string::npos) << message_of(root);
  }
  {
    const fs::path root = write_store(dir.path() / "codec.zarr", Codec::kNone);
    Json meta = Json::parse(test::read_file((root / "X" / "data" / ".zarray").string()));
    meta["compressor"] = {{"id", "zstd"}, {"level", 1}};
    write_text(root / "X" / "data" / ".zarray", meta.dump());
    EXPECT_NE(message_of(root).find("compressor 'zstd' is not supported"), std::string::npos) << message_of(root);
  }
  {
    const fs::path root = write_store(dir.path() / "json.zarr", Codec::kNone);
    write_text(root / "obs" / ".zattrs", "{\"_index\": ");
    EXPECT_NE(message_of(root).find("obs/.zattrs: not a JSON object"), std::string::npos) << message_of(root);
  }
  {  // names from metadata stay inside their group
    const fs::path root = write_store(dir.path() / "escape.zarr", Codec::kNone);
    write_text(root / "obs" / ".zattrs", Json{{"_index", "_index"}, {"column-order", {"../X/indptr"}}, {"encoding-type", "dataframe"}}.dump());
    EXPECT_NE(message_of(root).find("'../X/indptr' is not a member name"), std::string::npos) << message_of(root);
  }
  {  // a shape of 2^31 in chunks of one: refused before 2^31 files are looked for
    const fs::path root = write_store(dir.path() / "chunks.zarr", Codec::kNone);
    Json meta = Json::parse(test::read_file((root / "X" / "indptr" / ".zarray").string()));
    meta["shape"] = {std::int64_t{1} << 31};
    meta["chunks"] = {1};
    write_text(root / "X" / "indptr" / ".zarray", meta.dump());
    EXPECT_NE(message_of(root).find("over 16777216 chunks"), std::string::npos) << message_of(root);
  }
  {
    const fs::path root = write_store(dir.path() / "shape.zarr", Codec::kNone);
    numbers<double>(root / "obs" / "score", {0.5, 0.25}, "<f8", 2, Codec::kNone);
    EXPECT_NE(message_of(root).find("obs/score has 2 rows but the index has 5"), std::string::npos) << message_of(root);
  }
}

}  // namespace
}  // namespace celltyper
