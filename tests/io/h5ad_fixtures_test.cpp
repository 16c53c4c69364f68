// h5ad / 10x readers against tiny fixtures written by real anndata 0.8 (tests/data/h5ad,
// generator tests/data/make_fixtures.py): every value, dtype, category and column must equal
// the fixture's expected JSON; every bad file must fail with an InputError naming the file.
#include <celltyper/dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/row_subset_dataset.hpp>
#include <celltyper/tenx.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>
#include <hdf5.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <tuple>

namespace celltyper {
namespace {

using nlohmann::json;

json load_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

/// A JSON number or "NaN" / "Infinity" / "-Infinity" as a double.
double number_of(const json& value) {
  if (value.is_string()) {
    const auto text = value.get<std::string>();
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (text == "Infinity") return std::numeric_limits<double>::infinity();
    if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
    ADD_FAILURE() << "unexpected number text " << text;
    return 0;
  }
  return value.get<double>();
}

bool same_number(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

/// Read all rows of a matrix as a dense row-major float64 array.
std::vector<double> dense_of(MatrixReader& reader) {
  CsrBlockF64 block;
  reader.read_rows(0, reader.n_rows(), block);
  std::vector<double> dense(static_cast<std::size_t>(reader.n_rows() * reader.n_cols()), 0.0);
  for (std::int64_t r = 0; r < block.n_rows; ++r) {
    for (std::int64_t k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      dense[static_cast<std::size_t>(r * reader.n_cols() + block.indices[static_cast<std::size_t>(k)])] = block.values[static_cast<std::size_t>(k)];
    }
  }
  return dense;
}

void expect_dense_equals(const std::vector<double>& got, const json& expected, std::int64_t cols, const std::string& what) {
  std::size_t r = 0;
  for (const auto& row : expected) {
    std::size_t c = 0;
    for (const auto& value : row) {
      const double want = number_of(value);
      const double have = got.at(r * static_cast<std::size_t>(cols) + c);
      EXPECT_TRUE(same_number(have, want)) << what << "[" << r << "," << c << "]: " << have << " != " << want;
      ++c;
    }
    ++r;
  }
  EXPECT_EQ(r * static_cast<std::size_t>(cols), got.size()) << what;
}

void expect_matrix(const Dataset& dataset, const std::string& source, const json& expected) {
  SCOPED_TRACE(source);
  const MatrixInfo info = dataset.matrix_info(source);
  const std::string encoding = expected["encoding"].get<std::string>();
  EXPECT_EQ(std::string(to_string(info.encoding)), encoding == "array" ? "dense" : encoding);
  EXPECT_EQ(info.value_dtype, expected["dtype"].get<std::string>());
  EXPECT_EQ(info.n_rows, expected["shape"][0].get<std::int64_t>());
  EXPECT_EQ(info.n_cols, expected["shape"][1].get<std::int64_t>());
  if (expected.contains("index_dtype")) EXPECT_EQ(info.index_dtype, expected["index_dtype"].get<std::string>());
  if (expected.contains("nnz")) EXPECT_EQ(info.nnz, expected["nnz"].get<std::int64_t>());
  if (expected.contains("compression")) {
    // h5py's names: "gzip" (celltyper: "gzip(4)"), "lzf", or null.
    const std::string want = expected["compression"].is_null() ? "none" : expected["compression"].get<std::string>();
    EXPECT_EQ(info.compression.substr(0, info.compression.find('(')), want) << info.compression;
  }
  if (expected.contains("chunked")) EXPECT_EQ(!info.chunks.empty(), expected["chunked"].get<bool>());
  auto reader = dataset.open_matrix(source);
  expect_dense_equals(dense_of(*reader), expected["dense"], info.n_cols, source);
}

void expect_frame(const DataFrame& frame, const json& expected, const std::string& what) {
  SCOPED_TRACE(what);
  if (expected.contains("index_name")) EXPECT_EQ(frame.index_name, expected["index_name"].get<std::string>());
  EXPECT_EQ(frame.index, expected["index"].get<std::vector<std::string>>());
  if (expected.contains("column_order")) {
    std::vector<std::string> names;
    for (const auto& column : frame.columns) names.push_back(column.name);
    EXPECT_EQ(names, expected["column_order"].get<std::vector<std::string>>());
  }
  for (const auto& want : expected["columns"]) {
    const std::string name = want["name"].get<std::string>();
    const Column* column = frame.find(name);
    ASSERT_NE(column, nullptr) << name;
    EXPECT_EQ(std::string(to_string(column->kind)), want["kind"].get<std::string>()) << name;
    if (want.contains("dtype") && column->kind != ColumnKind::kCategorical) EXPECT_EQ(column->dtype, want["dtype"].get<std::string>()) << name;
    if (want.contains("categories")) EXPECT_EQ(column->categories, want["categories"].get<std::vector<std::string>>()) << name;
    if (want.contains("ordered")) EXPECT_EQ(column->ordered, want["ordered"].get<bool>()) << name;
    const json& values = want["values"];
    ASSERT_EQ(values.size(), column->size()) << name;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const json& value = values[i];
      if (value.is_null()) {
        EXPECT_TRUE(column->is_missing(i)) << name << " row " << i;
        continue;
      }
      EXPECT_FALSE(column->is_missing(i) && !(column->kind == ColumnKind::kFloat)) << name << " row " << i;
      switch (column->kind) {
        case ColumnKind::kFloat: EXPECT_TRUE(same_number(column->numbers[i], number_of(value))) << name << " row " << i; break;
        case ColumnKind::kInt:
        case ColumnKind::kNullableInt: EXPECT_EQ(column->integers[i], value.get<std::int64_t>()) << name << " row " << i; break;
        case ColumnKind::kBool:
        case ColumnKind::kNullableBool: EXPECT_EQ(column->booleans[i] != 0, value.get<bool>()) << name << " row " << i; break;
        default: EXPECT_EQ(column->value_as_string(i), value.get<std::string>()) << name << " row " << i; break;
      }
    }
  }
}

std::vector<std::string> fixture_stems() {
  std::vector<std::string> stems;
  for (const auto& entry : std::filesystem::directory_iterator(test::fixture("h5ad"))) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = ".expected.json";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      stems.push_back(name.substr(0, name.size() - suffix.size()));
    }
  }
  std::sort(stems.begin(), stems.end());
  return stems;
}

class H5adFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(H5adFixture, ReadsExactlyWhatAnndataWrote) {
  const std::string stem = GetParam();
  const json expected = load_json(test::fixture("h5ad/" + stem + ".expected.json"));
  const auto dataset = open_dataset(test::fixture("h5ad/" + stem + ".h5ad"));
  EXPECT_EQ(dataset->format(), "h5ad");
  EXPECT_EQ(dataset->n_obs(), expected["shape"][0].get<std::int64_t>());
  EXPECT_EQ(dataset->n_vars(), expected["shape"][1].get<std::int64_t>());
  if (!expected["X"].is_null()) expect_matrix(*dataset, "X", expected["X"]);
  expect_frame(dataset->read_obs(), expected["obs"], "obs");
  expect_frame(dataset->read_var(), expected["var"], "var");
  if (expected.contains("raw") && !expected["raw"].is_null()) {
    expect_matrix(*dataset, "raw/X", expected["raw"]["X"]);
    expect_frame(dataset->read_var_of("raw/X"), expected["raw"]["var"], "raw/var");
  }
  const auto& file = dynamic_cast<const H5adFile&>(*dataset);
  if (expected.contains("layers")) {
    std::vector<std::string> names;
    for (const auto& layer : expected["layers"]) {
      names.push_back(layer["name"].get<std::string>());
      expect_matrix(*dataset, "layers/" + names.back(), layer);
    }
    EXPECT_EQ(file.keys("layers"), names);
  }
  if (expected.contains("obsm")) {
    for (const auto& entry : expected["obsm"]) {
      const DenseMatrix matrix = file.read_obsm(entry["name"].get<std::string>());
      std::vector<double> widened(matrix.values.begin(), matrix.values.end());
      // obsm is read as float32: compare against the expected values rounded to float32.
      json rounded = entry["dense"];
      for (auto& row : rounded) {
        for (auto& value : row) value = static_cast<double>(static_cast<float>(number_of(value)));
      }
      expect_dense_equals(widened, rounded, matrix.cols, "obsm/" + entry["name"].get<std::string>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFixtures, H5adFixture, ::testing::ValuesIn(fixture_stems()),
                         [](const auto& info) { return info.param; });

TEST(H5adFixtures, CscAndDenseStreamLikeCsr) {
  // The same data in three encodings gives identical blocks at any block size.
  H5adFile csr(test::fixture("h5ad/csr_float32.h5ad"));
  H5adFile csc(test::fixture("h5ad/csc_float32.h5ad"));
  H5adFile dense(test::fixture("h5ad/dense_float32.h5ad"));
  auto a = csr.open_matrix("X");
  auto b = csc.open_matrix("X");
  auto c = dense.open_matrix("X");
  for (std::int64_t first = 0; first < a->n_rows(); first += 5) {
    const std::int64_t count = std::min<std::int64_t>(5, a->n_rows() - first);
    CsrBlock x;
    CsrBlock y;
    CsrBlock z;
    a->read_rows(first, count, x);
    b->read_rows(first, count, y);
    c->read_rows(first, count, z);
    EXPECT_EQ(x.indptr, y.indptr);
    EXPECT_EQ(x.indices, y.indices);
    EXPECT_EQ(x.values, y.values);
    EXPECT_EQ(x.indptr, z.indptr);
    EXPECT_EQ(x.indices, z.indices);
    EXPECT_EQ(x.values, z.values);
  }
  EXPECT_EQ(a->row_nnz(), b->row_nnz());
}

// A CSC matrix larger than its gather cache is read in windows of rows, one pass over its
// columns each: whatever the order and size of the reads, and whether or not the blocks were
// announced (for_each_block's expect_reads, a row subset's runs), the rows are the CSR file's.
TEST(H5adFixtures, CscRowsGatheredInWindowsAreTheRowsOfCsr) {
  H5adFile csr(test::fixture("h5ad/csr_float32.h5ad"));
  const auto a = csr.open_matrix("X");
  const auto rows_of = [](MatrixReader& reader, std::int64_t first, std::int64_t count) {
    CsrBlockF64 block;
    reader.read_rows(first, count, block);
    return std::make_tuple(block.indptr, block.indices, block.values);
  };
  // Streamed blocks joined into one CSR (the two layouts plan blocks of different sizes).
  struct Rows {
    std::vector<std::int64_t> first_rows;
    std::vector<std::int64_t> lengths;
    std::vector<std::int32_t> indices;
    std::vector<float> values;
    bool operator==(const Rows&) const = default;
  };
  const auto stream_rows = [](MatrixReader& reader, const BlockStreamOptions& options) {
    Rows rows;
    for_each_block(reader, options, [&rows](const CsrBlock& block) {
      for (std::int64_t r = 0; r < block.n_rows; ++r) {
        rows.first_rows.push_back(block.first_row + r);
        rows.lengths.push_back(block.indptr[static_cast<std::size_t>(r) + 1] - block.indptr[static_cast<std::size_t>(r)]);
      }
      rows.indices.insert(rows.indices.end(), block.indices.begin(), block.indices.end());
      rows.values.insert(rows.values.end(), block.values.begin(), block.values.end());
    });
    return rows;
  };
  for (const std::size_t cache : {std::size_t{1}, std::size_t{80}, std::size_t{200}, std::size_t{1} << 20}) {
    SCOPED_TRACE(cache);
    H5adOpenOptions options;
    options.csc_gather_bytes = cache;  // 1 byte: each read alone; 80: a row or two; 1 MB: the whole matrix
    H5adFile csc(test::fixture("h5ad/csc_float32.h5ad"), options);
    const auto b = csc.open_matrix("X");
    const std::int64_t n = a->n_rows();
    // Forwards, backwards, in steps, overlapping the last window, and every row at once.
    for (std::int64_t first = 0; first < n; ++first) EXPECT_EQ(rows_of(*a, first, 1), rows_of(*b, first, 1)) << first;
    for (std::int64_t first = n - 1; first >= 0; --first) EXPECT_EQ(rows_of(*a, first, 1), rows_of(*b, first, 1)) << first;
    for (std::int64_t first = 0; first + 3 <= n; first += 2) EXPECT_EQ(rows_of(*a, first, 3), rows_of(*b, first, 3)) << first;
    EXPECT_EQ(rows_of(*a, 0, n), rows_of(*b, 0, n));
    EXPECT_EQ(rows_of(*a, 4, 0), rows_of(*b, 4, 0));
    // Announced blocks, every row or scattered ranges, with and without the read-ahead thread.
    for (const bool prefetch : {false, true}) {
      BlockStreamOptions stream;
      stream.memory_limit_bytes = 40;  // (blocks of a row or two)
      stream.prefetch = prefetch;
      for (const std::vector<RowRange>& ranges : {std::vector<RowRange>{}, std::vector<RowRange>{{1, 3}, {5, 6}, {8, 12}}}) {
        stream.rows = ranges;
        const Rows expected = stream_rows(*a, stream);
        EXPECT_EQ(expected.first_rows.size(), ranges.empty() ? 12U : 7U);
        EXPECT_TRUE(stream_rows(*b, stream) == expected) << prefetch << " " << ranges.size();
      }
      // A subset, read through the wrapper (its runs of base rows announced).
      const RowSubsetDataset csr_subset(csr, {0, 2, 3, 4, 9, 11}, "subset");
      const RowSubsetDataset csc_subset(csc, {0, 2, 3, 4, 9, 11}, "subset");
      stream.rows.clear();
      const Rows expected = stream_rows(*csr_subset.open_matrix("X"), stream);
      EXPECT_EQ(expected.first_rows.size(), 6U);
      EXPECT_TRUE(stream_rows(*csc_subset.open_matrix("X"), stream) == expected) << prefetch;
    }
  }
}

// An entry stored twice in a CSC matrix read in windows is refused naming its own row, whichever
// window holds it (each window numbers its rows from 0).
TEST(H5adFixtures, CscDuplicateEntriesReadInWindowsNameTheirRow) {
  test::TempDir dir;
  const std::string path = dir.file("csc_duplicate.h5ad");
  std::filesystem::copy_file(test::fixture("h5ad/csc_float32.h5ad"), path);
  std::int64_t row = -1;
  std::int64_t column = -1;
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t indptr_set = H5Dopen2(file, "X/indptr", H5P_DEFAULT);
    const hid_t indices_set = H5Dopen2(file, "X/indices", H5P_DEFAULT);
    std::vector<std::int64_t> indptr(11);
    const hid_t space = H5Dget_space(indices_set);
    std::vector<std::int32_t> indices(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    H5Sclose(space);
    ASSERT_GE(H5Dread(indptr_set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, indptr.data()), 0);
    ASSERT_GE(H5Dread(indices_set, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, indices.data()), 0);
    for (std::size_t c = 0; c + 1 < indptr.size() && row < 0; ++c) {
      if (indptr[c + 1] - indptr[c] < 2) continue;
      // the column's last entry repeats the row of the one before it
      const auto last = static_cast<std::size_t>(indptr[c + 1] - 1);
      indices[last] = indices[last - 1];
      row = indices[last];
      column = static_cast<std::int64_t>(c);
    }
    ASSERT_GE(row, 0);
    ASSERT_GE(H5Dwrite(indices_set, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, indices.data()), 0);
    H5Dclose(indptr_set);
    H5Dclose(indices_set);
    H5Fclose(file);
  }
  const std::string expected = fmt::format("stores the entry at row {}, column {} twice", row, column);
  for (const std::size_t cache : {std::size_t{1}, std::size_t{80}, std::size_t{1} << 20}) {
    SCOPED_TRACE(cache);
    H5adOpenOptions options;
    options.csc_gather_bytes = cache;
    H5adFile csc(path, options);
    const auto reader = csc.open_matrix("X");
    CsrBlock block;
    try {  // backwards, one row at a time: the window holding the row is not the first
      for (std::int64_t first = reader->n_rows() - 1; first >= 0; --first) reader->read_rows(first, 1, block);
      FAIL() << "expected InputError";
    } catch (const InputError& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
  }
}

TEST(H5adFixtures, BadFilesFailWithOneClearError) {
  const json bad = load_json(test::fixture("h5ad/bad_files.json"));
  for (const auto& [name, description] : bad["files"].items()) {
    SCOPED_TRACE(name);
    const std::string path = test::fixture("h5ad/" + name);
    try {
      const auto dataset = open_dataset(path);
      auto reader = dataset->open_matrix("X");
      CsrBlock block;
      reader->read_rows(0, reader->n_rows(), block);
      ADD_FAILURE() << "no error for " << name << " (" << description["problem"] << ")";
    } catch (const InputError& error) {
      EXPECT_NE(std::string(error.what()).find(name), std::string::npos) << error.what();
    }
  }
}

// A failed HDF5 call leaves error records on the calling thread's stack; libhdf5 1.10 cannot free
// them when the thread ends ("HDF5: infinite loop closing library" at exit), and the thread-exit
// clean-up only runs when no other thread holds the HDF5 mutex at that moment. Every Hdf5Lock
// empties the stack on release, so a catalogue worker has nothing left whenever it ends.
TEST(H5adFixtures, AFailedReadLeavesNoHdf5ErrorRecordsOnItsThread) {
  const json bad = load_json(test::fixture("h5ad/bad_files.json"));
  std::size_t failed = 0;
  for (const auto& [name, description] : bad["files"].items()) {
    SCOPED_TRACE(name);
    const std::string path = test::fixture("h5ad/" + name);
    ssize_t records = -1;
    std::thread worker([&] {
      try {
        const auto dataset = open_dataset(path);
        auto reader = dataset->open_matrix("X");
        CsrBlock block;
        reader->read_rows(0, reader->n_rows(), block);
      } catch (const std::exception&) {  // (InputError expected; any other would fail the count below)
        ++failed;
      }
      records = H5Eget_num(H5E_DEFAULT);
    });
    worker.join();
    EXPECT_EQ(records, 0);
  }
  EXPECT_EQ(failed, bad["files"].size());
}

TEST(H5adFixtures, ZeroCellsOpenAndStreamNothing) {
  H5adFile file(test::fixture("h5ad/zero_cells.h5ad"));
  EXPECT_EQ(file.n_obs(), 0);
  auto reader = file.open_matrix("X");
  EXPECT_TRUE(reader->plan_blocks(1 << 20).empty());
}

// ---- 10x -------------------------------------------------------------------------------

class TenxFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(TenxFixture, ReadsCountsBarcodesAndFeatures) {
  const std::string name = GetParam();
  const json expected = load_json(test::fixture("tenx/" + name + ".expected.json"));
  const std::string path = test::fixture("tenx/" + name + (name.find("mtx") != std::string::npos ? "" : ".h5"));
  const auto dataset = open_dataset(path);
  EXPECT_EQ(dataset->format(), name.find("mtx") != std::string::npos ? "10x-mtx" : "10x-h5");
  EXPECT_EQ(dataset->n_obs(), expected["shape"][0].get<std::int64_t>());
  EXPECT_EQ(dataset->n_vars(), expected["shape"][1].get<std::int64_t>());
  EXPECT_EQ(dataset->matrix_info("X").nnz, expected["nnz"].get<std::int64_t>());
  EXPECT_EQ(dataset->read_obs().index, expected["barcodes"].get<std::vector<std::string>>());
  const DataFrame var = dataset->read_var();
  EXPECT_EQ(var.index, make_unique_names(expected["feature_names"].get<std::vector<std::string>>()));
  EXPECT_EQ(var.at("gene_ids", "var").strings, expected["feature_ids"].get<std::vector<std::string>>());
  if (expected.contains("feature_types") && !expected["feature_types"].is_null() && var.find("feature_types") != nullptr) {
    const Column& types = var.at("feature_types", "var");
    const auto want = expected["feature_types"].get<std::vector<std::string>>();
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(types.value_as_string(i), want[i]);
  }
  auto reader = dataset->open_matrix("X");
  expect_dense_equals(dense_of(*reader), expected["dense"], reader->n_cols(), name);
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, TenxFixture, ::testing::Values("v2", "v3", "v2_mtx", "v3_mtx"));

TEST(Tenx, MakeUniqueNamesFollowsScanpy) {
  EXPECT_EQ(make_unique_names({"A", "B", "A", "A", "A-1"}), (std::vector<std::string>{"A", "B", "A-2", "A-3", "A-1"}));
  EXPECT_EQ(make_unique_names({"X", "X"}), (std::vector<std::string>{"X", "X-1"}));
}

TEST(Tenx, MissingPartsAreNamed) {
  test::TempDir dir;
  try {
    (void)open_dataset(dir.path().string());
    ADD_FAILURE() << "empty directory accepted";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("matrix.mtx"), std::string::npos);
  }
}

}  // namespace
}  // namespace celltyper
