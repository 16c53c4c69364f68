// Loom files as loompy, velocyto and the HCA DCP write them: /matrix genes x cells (chunked,
// gzip), /layers, /row_attrs (Gene, Accession, ...), /col_attrs (CellID, annotations). Written
// here with the HDF5 C API, so each layout detail (fixed-length strings with XML character
// references, chunk shapes that do not divide the matrix, 2-D attributes) is under the test's control.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/loom.hpp>

#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <zlib.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace celltyper {
namespace {

/// A little HDF5 writer for loom layouts (errors fail the test through the returned ids).
class LoomWriter {
 public:
  explicit LoomWriter(const std::string& path) : file_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {
    EXPECT_GE(file_, 0);
  }
  ~LoomWriter() { H5Fclose(file_); }
  void group(const char* name) { H5Gclose(H5Gcreate2(file_, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)); }
  /// A genes x cells matrix (row-major `values`) stored as `type`, chunked `chunk` with gzip, or
  /// contiguous when `chunk` is {0, 0}.
  void matrix(const char* name, const std::vector<float>& values, hsize_t genes, hsize_t cells, std::array<hsize_t, 2> chunk,
              hid_t type = H5T_NATIVE_FLOAT) {
    const std::array<hsize_t, 2> dims{genes, cells};
    const hid_t space = H5Screate_simple(2, dims.data(), nullptr);
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk[0] > 0) {
      H5Pset_chunk(plist, 2, chunk.data());
      H5Pset_deflate(plist, 2);
    }
    const hid_t dataset = H5Dcreate2(file_, name, type, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    EXPECT_GE(H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    H5Dclose(dataset);
    H5Pclose(plist);
    H5Sclose(space);
  }
  /// Fixed-length ASCII strings (loompy 2) or variable-length UTF-8 ones (loompy 3).
  void strings(const char* name, const std::vector<std::string>& values, bool fixed) {
    const hsize_t n = values.size();
    const hid_t space = H5Screate_simple(1, &n, nullptr);
    const hid_t type = H5Tcopy(H5T_C_S1);
    if (fixed) {
      std::size_t width = 1;
      for (const auto& value : values) width = std::max(width, value.size());
      H5Tset_size(type, width);
      std::vector<char> buffer(width * values.size(), '\0');
      for (std::size_t i = 0; i < values.size(); ++i) std::memcpy(buffer.data() + i * width, values[i].data(), values[i].size());
      const hid_t dataset = H5Dcreate2(file_, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      EXPECT_GE(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), 0);
      H5Dclose(dataset);
    } else {
      H5Tset_size(type, H5T_VARIABLE);
      H5Tset_cset(type, H5T_CSET_UTF8);
      std::vector<const char*> pointers;
      for (const auto& value : values) pointers.push_back(value.c_str());
      const hid_t dataset = H5Dcreate2(file_, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      EXPECT_GE(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), 0);
      H5Dclose(dataset);
    }
    H5Tclose(type);
    H5Sclose(space);
  }
  /// A float32 genes x cells matrix whose chunks are written as stored bytes (H5Dwrite_chunk):
  /// only the chunks `write` accepts (the others never written), deflated unless `skip_filter`
  /// (the filter mask then says deflate was skipped). `maxshape_cells` > 0: an extendible cell
  /// side, so chunks may be wider than the matrix.
  template <typename Accept>
  void raw_chunks(const char* name, const std::vector<float>& values, hsize_t genes, hsize_t cells, std::array<hsize_t, 2> chunk,
                  Accept write, bool skip_filter = false, hsize_t maxshape_cells = 0) {
    const std::array<hsize_t, 2> dims{genes, cells};
    const std::array<hsize_t, 2> maxdims{genes, maxshape_cells > 0 ? H5S_UNLIMITED : cells};
    const hid_t space = H5Screate_simple(2, dims.data(), maxdims.data());
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(plist, 2, chunk.data());
    H5Pset_deflate(plist, 2);
    const hid_t dataset = H5Dcreate2(file_, name, H5T_NATIVE_FLOAT, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    for (hsize_t g = 0; g < genes; g += chunk[0]) {
      for (hsize_t c = 0; c < cells; c += chunk[1]) {
        if (!write(g, c)) continue;
        std::vector<float> raw(chunk[0] * chunk[1], 0.0F);  // a whole chunk, zero beyond the matrix
        for (hsize_t r = 0; r < chunk[0] && g + r < genes; ++r) {
          for (hsize_t k = 0; k < chunk[1] && c + k < cells; ++k) raw[r * chunk[1] + k] = values[(g + r) * cells + c + k];
        }
        std::vector<unsigned char> stored(raw.size() * sizeof(float));
        std::memcpy(stored.data(), raw.data(), stored.size());
        if (!skip_filter) {
          uLongf bound = compressBound(stored.size());
          std::vector<unsigned char> deflated(bound);
          EXPECT_EQ(compress2(deflated.data(), &bound, stored.data(), stored.size(), 2), Z_OK);
          deflated.resize(bound);
          stored = std::move(deflated);
        }
        const std::array<hsize_t, 2> offset{g, c};
        EXPECT_GE(H5Dwrite_chunk(dataset, H5P_DEFAULT, skip_filter ? 1U : 0U, offset.data(), stored.size(), stored.data()), 0);
      }
    }
    H5Dclose(dataset);
    H5Pclose(plist);
    H5Sclose(space);
  }
  /// A chunked float32 matrix with byte shuffle before deflate, or a fill value of `fill` (both
  /// read by HDF5, not by celltyper's own chunk reader); only chunk (0, 0) is written.
  void filtered(const char* name, const std::vector<float>& values, hsize_t genes, hsize_t cells, std::array<hsize_t, 2> chunk, bool shuffle,
                float fill) {
    const std::array<hsize_t, 2> dims{genes, cells};
    const hid_t space = H5Screate_simple(2, dims.data(), nullptr);
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(plist, 2, chunk.data());
    if (shuffle) H5Pset_shuffle(plist);
    H5Pset_deflate(plist, 2);
    H5Pset_fill_value(plist, H5T_NATIVE_FLOAT, &fill);
    const hid_t dataset = H5Dcreate2(file_, name, H5T_NATIVE_FLOAT, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    const hid_t file_space = H5Dget_space(dataset);
    const std::array<hsize_t, 2> start{0, 0};
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, chunk.data(), nullptr);
    const hid_t memory_space = H5Screate_simple(2, chunk.data(), nullptr);
    std::vector<float> block(chunk[0] * chunk[1]);
    for (hsize_t r = 0; r < chunk[0]; ++r) {
      for (hsize_t k = 0; k < chunk[1]; ++k) block[r * chunk[1] + k] = values[r * cells + k];
    }
    EXPECT_GE(H5Dwrite(dataset, H5T_NATIVE_FLOAT, memory_space, file_space, H5P_DEFAULT, block.data()), 0);
    H5Sclose(memory_space);
    H5Sclose(file_space);
    H5Dclose(dataset);
    H5Pclose(plist);
    H5Sclose(space);
  }
  void numbers(const char* name, const std::vector<double>& values, std::vector<hsize_t> dims = {}) {
    if (dims.empty()) dims = {values.size()};
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t dataset = H5Dcreate2(file_, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    H5Dclose(dataset);
    H5Sclose(space);
  }

 private:
  hid_t file_;
};

constexpr hsize_t kGenes = 5;
constexpr hsize_t kCells = 7;

/// Gene g of cell c: a count for most pairs, zero for some, distinct per pair.
float value(hsize_t gene, hsize_t cell) { return (gene * 3 + cell) % 4 == 0 ? 0.0F : static_cast<float>(gene * 10 + cell); }

std::vector<float> genes_by_cells(float scale) {
  std::vector<float> values(kGenes * kCells);
  for (hsize_t g = 0; g < kGenes; ++g) {
    for (hsize_t c = 0; c < kCells; ++c) values[g * kCells + c] = scale * value(g, c);
  }
  return values;
}

/// A velocyto-like file: fixed-length strings (loompy 2), chunks 2 x 3 that divide neither side,
/// a spliced, an unspliced (uint16) and an ambiguous (contiguous) layer, a 2-D cell attribute.
void write_velocyto_like(const std::string& path) {
  LoomWriter loom(path);
  loom.matrix("matrix", genes_by_cells(1), kGenes, kCells, {2, 3});
  loom.group("layers");
  loom.matrix("layers/spliced", genes_by_cells(1), kGenes, kCells, {2, 3});
  loom.matrix("layers/unspliced", genes_by_cells(2), kGenes, kCells, {5, 7}, H5T_STD_U16LE);  // velocyto's integers
  loom.matrix("layers/ambiguous", genes_by_cells(3), kGenes, kCells, {0, 0});                  // contiguous: HDF5 reads it
  loom.group("row_attrs");
  loom.strings("row_attrs/Gene", {"CD3E", "MS4A1", "LYZ", "CD3E", "NKG7"}, true);
  loom.strings("row_attrs/Accession", {"ENSG00000198851", "ENSG00000105369", "ENSG00000090382", "ENSG00000198851", "ENSG00000105374"}, true);
  loom.strings("row_attrs/Chromosome", {"11", "11", "12", "11", "19"}, true);
  loom.group("col_attrs");
  loom.strings("col_attrs/CellID", {"s1:AAAC", "s1:AAAG", "s1:AAAT", "s1:AACA", "s1:AACC", "s1:AACG", "s1:AACT"}, true);
  loom.strings("col_attrs/ClusterName", {"T", "B", "&#947;&#948; T", "T", "B", "Mono", "&#x3b3;&#x3b4; T"}, true);
  loom.numbers("col_attrs/nUMI", {1, 2, 3, 4, 5, 6, 7});
  loom.numbers("col_attrs/_X_umap", std::vector<double>(kCells * 2, 0.5), {kCells, 2});
}

TEST(Loom, CellsAreTheStoredColumnsWithTheirAttributes) {
  test::TempDir dir;
  const std::string path = dir.file("velocyto.loom");
  write_velocyto_like(path);
  ASSERT_TRUE(is_loom(path));
  const auto dataset = open_dataset(path);
  EXPECT_EQ(dataset->format(), "loom");
  EXPECT_EQ(dataset->n_obs(), static_cast<std::int64_t>(kCells));
  EXPECT_EQ(dataset->n_vars(), static_cast<std::int64_t>(kGenes));
  EXPECT_EQ(dataset->matrix_sources(), (std::vector<std::string>{"X", "layers/ambiguous", "layers/spliced", "layers/unspliced"}));
  const MatrixInfo info = dataset->matrix_info("X");
  EXPECT_EQ(info.encoding, MatrixEncoding::kDense);
  EXPECT_EQ(info.value_dtype, "float32");
  EXPECT_EQ(info.chunks, (std::vector<std::int64_t>{2, 3}));

  const DataFrame var = dataset->read_var();
  EXPECT_EQ(var.index, (std::vector<std::string>{"CD3E", "MS4A1", "LYZ", "CD3E-1", "NKG7"}));  // made unique as scanpy does
  ASSERT_NE(var.find("Accession"), nullptr);
  EXPECT_EQ(var.find("Accession")->strings[2], "ENSG00000090382");
  const DataFrame obs = dataset->read_obs();
  EXPECT_EQ(obs.index_name, "CellID");
  EXPECT_EQ(obs.index[6], "s1:AACT");
  ASSERT_NE(obs.find("ClusterName"), nullptr);
  EXPECT_EQ(obs.find("ClusterName")->kind, ColumnKind::kCategorical);
  EXPECT_EQ(obs.find("ClusterName")->value_as_string(2), "\xce\xb3\xce\xb4 T");  // γδ T from loompy 2's character references
  EXPECT_EQ(obs.find("ClusterName")->value_as_string(6), "\xce\xb3\xce\xb4 T");
  ASSERT_NE(obs.find("nUMI"), nullptr);
  EXPECT_EQ(obs.find("nUMI")->numbers[4], 5.0);
  EXPECT_EQ(obs.find("_X_umap"), nullptr);  // 2-D attributes are no obs columns

  // Every block size reads the transposed matrix, and a layer is a matrix of its own.
  std::vector<std::vector<double>> expected(kCells, std::vector<double>(kGenes));
  for (hsize_t c = 0; c < kCells; ++c) {
    for (hsize_t g = 0; g < kGenes; ++g) expected[c][g] = value(g, c);
  }
  EXPECT_EQ(test::dense_x(*dataset), expected);
  for (const std::int64_t first : {0, 1, 2, 5}) {
    for (std::int64_t count = 1; first + count <= static_cast<std::int64_t>(kCells); ++count) {
      CsrBlockF64 block;
      dataset->open_matrix("X")->read_rows(first, count, block);
      ASSERT_EQ(block.n_rows, count);
      for (std::int64_t r = 0; r < count; ++r) {
        std::vector<double> row(kGenes, 0.0);
        for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
          row[static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])] = block.values[static_cast<std::size_t>(k)];
        }
        EXPECT_EQ(row, expected[static_cast<std::size_t>(first + r)]) << first << "+" << r;
      }
    }
  }
  // Layers, stored as uint16 (inflated and converted by celltyper) or contiguous (read by HDF5).
  for (const auto& [layer, scale] : {std::pair{"layers/unspliced", 2.0F}, std::pair{"layers/ambiguous", 3.0F}}) {
    const auto reader = dataset->open_matrix(layer);
    for (const std::int64_t first : {0, 3, 6}) {
      CsrBlock block;
      reader->read_rows(first, 1, block);
      std::int64_t expected_nnz = 0;
      for (hsize_t g = 0; g < kGenes; ++g) expected_nnz += value(g, static_cast<hsize_t>(first)) != 0.0F ? 1 : 0;
      ASSERT_EQ(block.nnz(), expected_nnz) << layer << " cell " << first;
      for (std::int64_t k = 0; k < block.nnz(); ++k) {
        EXPECT_EQ(block.values[static_cast<std::size_t>(k)], scale * value(static_cast<hsize_t>(block.indices[static_cast<std::size_t>(k)]), first)) << layer;
      }
    }
  }
  // Blocks are whole chunk columns (3 cells wide here) and cover every cell.
  const std::vector<RowRange> blocks = dataset->open_matrix("X")->plan_blocks(1);
  ASSERT_EQ(blocks.size(), 3U);
  EXPECT_EQ(blocks[0].end, 3);
  EXPECT_EQ(blocks[2].end, static_cast<std::int64_t>(kCells));
  EXPECT_THROW((void)dataset->open_matrix("layers/other"), InputError);
}

TEST(Loom, ChunksNeverWrittenFilterSkippedShuffledOrFilledReadAsHdf5Does) {
  // Layouts other than loompy's fully written gzip chunks: chunks never written (zeros), chunks
  // stored with the filter skipped (raw bytes), chunks wider than the matrix (an extendible cell
  // side), and two read through HDF5 rather than celltyper's chunk reader (byte shuffle before
  // deflate; a fill value of 7 for the chunks never written).
  test::TempDir dir;
  const std::string path = dir.file("layouts.loom");
  const std::vector<float> values = genes_by_cells(1);
  {
    LoomWriter loom(path);
    loom.raw_chunks("matrix", values, kGenes, kCells, {2, 3}, [](hsize_t g, hsize_t c) { return (g / 2 + c / 3) % 2 == 0; });
    loom.group("layers");
    loom.raw_chunks("layers/raw", values, kGenes, kCells, {2, 3}, [](hsize_t, hsize_t) { return true; }, true);
    loom.raw_chunks("layers/wide", values, kGenes, kCells, {2, 16}, [](hsize_t, hsize_t) { return true; }, false, 1);
    loom.filtered("layers/shuffled", values, kGenes, kCells, {kGenes, kCells}, true, 0.0F);
    loom.filtered("layers/filled", values, kGenes, kCells, {2, 3}, false, 7.0F);
    loom.group("row_attrs");
    loom.strings("row_attrs/Gene", {"CD3E", "MS4A1", "LYZ", "CD8A", "NKG7"}, false);
  }
  const auto dataset = open_dataset(path);
  const auto dense_of = [&](const std::string& source) {
    const auto reader = dataset->open_matrix(source);
    std::vector<std::vector<double>> rows(kCells, std::vector<double>(kGenes, 0.0));
    for (const RowRange& range : reader->plan_blocks(1)) {
      CsrBlockF64 block;
      reader->read_rows(range.begin, range.size(), block);
      for (std::int64_t r = 0; r < block.n_rows; ++r) {
        for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
          rows[static_cast<std::size_t>(range.begin + r)][static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])] =
              block.values[static_cast<std::size_t>(k)];
        }
      }
    }
    return rows;
  };
  std::vector<std::vector<double>> full(kCells, std::vector<double>(kGenes)), holes = full, filled = full;
  for (hsize_t c = 0; c < kCells; ++c) {
    for (hsize_t g = 0; g < kGenes; ++g) {
      full[c][g] = value(g, c);
      holes[c][g] = (g / 2 + c / 3) % 2 == 0 ? value(g, c) : 0.0;
      filled[c][g] = g < 2 && c < 3 ? value(g, c) : 7.0;
    }
  }
  EXPECT_EQ(dense_of("X"), holes);
  EXPECT_EQ(dense_of("layers/raw"), full);
  EXPECT_EQ(dense_of("layers/wide"), full);
  EXPECT_EQ(dense_of("layers/shuffled"), full);
  EXPECT_EQ(dense_of("layers/filled"), filled);
  EXPECT_EQ(dataset->open_matrix("layers/wide")->plan_blocks(1).size(), 1U);  // one chunk column: every cell
}

TEST(Loom, AnndataNamesAndRowNumbersWhenNoCellIsNamed) {
  test::TempDir dir;
  const std::string path = dir.file("anndata.loom");
  {
    LoomWriter loom(path);
    loom.matrix("matrix", genes_by_cells(1), kGenes, kCells, {kGenes, kCells});
    loom.group("row_attrs");
    loom.strings("row_attrs/var_names", {"CD3E", "MS4A1", "LYZ", "CD8A", "NKG7"}, false);
    loom.group("col_attrs");
    loom.numbers("col_attrs/n_counts", std::vector<double>(kCells, 1.0));
  }
  const auto dataset = open_dataset(path);
  EXPECT_EQ(dataset->read_var().index[3], "CD8A");
  EXPECT_EQ(dataset->read_obs().index, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"}));
  EXPECT_EQ(test::dense_x(*dataset)[6][4], value(4, 6));
  // write_loom names the attribute after var's index: "gene", or a name of the user's ("hgnc":
  // the one text attribute whose values are all different), beside other text attributes.
  for (const char* name : {"gene", "hgnc"}) {
    const std::string named = dir.file(std::string(name) + ".loom");
    {
      LoomWriter loom(named);
      loom.matrix("matrix", genes_by_cells(1), kGenes, kCells, {kGenes, kCells});
      loom.group("row_attrs");
      loom.strings(("row_attrs/" + std::string(name)).c_str(), {"CD3E", "MS4A1", "LYZ", "CD8A", "NKG7"}, false);
      loom.strings("row_attrs/chromosome", {"11", "11", "12", "2", "19"}, false);
      loom.group("col_attrs");
      loom.strings("col_attrs/cell", {"a", "b", "c", "d", "e", "f", "g"}, false);
    }
    const auto read = open_dataset(named);
    EXPECT_EQ(read->read_var().index_name, name);
    EXPECT_EQ(read->read_var().index[3], "CD8A");
    EXPECT_EQ(read->read_obs().index[6], "g");
  }
}

TEST(Loom, MalformedFilesAreOneClearError) {
  test::TempDir dir;
  const auto message_of = [](const std::string& path) {
    try {
      const auto dataset = open_dataset(path);
      (void)dataset->open_matrix("X");
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  {
    LoomWriter loom(dir.file("short_attr.loom"));
    loom.matrix("matrix", genes_by_cells(1), kGenes, kCells, {2, 2});
    loom.group("row_attrs");
    loom.strings("row_attrs/Gene", {"CD3E", "MS4A1", "LYZ"}, false);
  }
  EXPECT_NE(message_of(dir.file("short_attr.loom")).find("/row_attrs/Gene has 3 values but the matrix has 5 genes (rows)"), std::string::npos)
      << message_of(dir.file("short_attr.loom"));
  {
    LoomWriter loom(dir.file("no_names.loom"));
    loom.matrix("matrix", genes_by_cells(1), kGenes, kCells, {2, 2});
    loom.group("row_attrs");
    loom.numbers("row_attrs/Start", {1, 2, 3, 4, 5});
  }
  EXPECT_NE(message_of(dir.file("no_names.loom")).find("no gene names: /row_attrs holds Start"), std::string::npos)
      << message_of(dir.file("no_names.loom"));
  {
    LoomWriter loom(dir.file("layer_shape.loom"));
    loom.matrix("matrix", genes_by_cells(1), kGenes, kCells, {2, 2});
    loom.group("layers");
    loom.matrix("layers/spliced", std::vector<float>(kGenes * 2, 1.0F), kGenes, 2, {2, 2});
    loom.group("row_attrs");
    loom.strings("row_attrs/Gene", {"CD3E", "MS4A1", "LYZ", "CD8A", "NKG7"}, false);
  }
  EXPECT_NE(message_of(dir.file("layer_shape.loom")).find("/layers/spliced is 5 x 2 (genes x cells) but /matrix is 5 x 7"), std::string::npos)
      << message_of(dir.file("layer_shape.loom"));
  {  // chunks of 2^25 cells (a file of a few KB): refused, not allocated on every core
    LoomWriter loom(dir.file("huge_chunks.loom"));
    loom.raw_chunks("matrix", genes_by_cells(1), kGenes, kCells, {1, hsize_t{1} << 25}, [](hsize_t, hsize_t) { return false; }, false, 1);
    loom.group("row_attrs");
    loom.strings("row_attrs/Gene", {"CD3E", "MS4A1", "LYZ", "CD8A", "NKG7"}, false);
  }
  EXPECT_NE(message_of(dir.file("huge_chunks.loom")).find("over the 64 MiB celltyper decodes at once"), std::string::npos)
      << message_of(dir.file("huge_chunks.loom"));
}

}  // namespace
}  // namespace celltyper
