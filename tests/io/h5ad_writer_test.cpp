// The h5ad writer, checked by real anndata (tests/io/anndata_check.py): files celltyper
// writes must load in anndata 0.8 with the same values, categories and column order.
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/memory_dataset.hpp>

#include "support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace celltyper {
namespace {

using nlohmann::json;

bool anndata_available() {
  static const bool available = test::run_program({test::system_python(), "-c", "import anndata"}).exit_code == 0;
  return available;
}

json load_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

void save_json(const json& value, const std::string& path) { std::ofstream(path) << value.dump(1); }

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

/// Run anndata_check.py; on failure print what it said.
void expect_anndata_reads(const std::string& h5ad, const std::string& expected_json) {
  const auto result = test::run_program({test::system_python(), std::string(CELLTYPER_SOURCE_DIR) + "/tests/io/anndata_check.py", h5ad, expected_json});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
}

/// Copy a fixture into a new file through the reader and the writer (X streamed in blocks).
TEST(H5adWriter, RewrittenFixtureLoadsInAnndataWithSameContent) {
  if (!anndata_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import anndata";
  test::TempDir dir;
  for (const std::string& stem : std::vector<std::string>{"full", "csr_float32", "csc_int32", "dense_float64", "legacy_v07"}) {
    SCOPED_TRACE(stem);
    H5adFile source(test::fixture("h5ad/" + stem + ".h5ad"));
    json expected = load_json(test::fixture("h5ad/" + stem + ".expected.json"));
    const std::string out = dir.file(stem + ".h5ad");
    {
      H5adWriteOptions options;
      options.x_as_float64 = expected["X"]["dtype"] == "float64";
      options.gzip_level = stem == "full" ? 4 : 0;
      H5adWriter writer(out, source.n_obs(), source.n_vars(), options);
      auto reader = source.open_matrix("X");
      for (std::int64_t first = 0; first < reader->n_rows(); first += 5) {
        CsrBlockF64 block;
        reader->read_rows(first, std::min<std::int64_t>(5, reader->n_rows() - first), block);
        writer.append_rows(block);
      }
      writer.write_obs(source.read_obs());
      writer.write_var(source.read_var());
      for (const auto& name : source.keys("obsm")) writer.write_obsm(name, source.read_obsm(name));
      writer.commit();
    }
    // What celltyper writes: X as CSR (float32 unless asked), no raw / layers.
    json& x = expected["X"];
    x["encoding"] = "csr_matrix";
    if (x["dtype"] != "float64") x["dtype"] = "float32";
    for (const char* key : {"index_dtype", "indptr_dtype", "nnz", "chunked", "compression"}) x.erase(key);
    expected.erase("raw");
    expected.erase("layers");
    if (expected.contains("obsm")) {
      for (auto& entry : expected["obsm"]) {
        entry["dtype"] = "float32";
        entry.erase("chunked");
        entry.erase("compression");
      }
    }
    const std::string expected_path = dir.file(stem + ".expected.json");
    save_json(expected, expected_path);
    expect_anndata_reads(out, expected_path);
    // And our own reader agrees.
    H5adFile again(out);
    EXPECT_EQ(again.n_obs(), source.n_obs());
    EXPECT_EQ(again.read_obs().columns.size(), source.read_obs().columns.size());
  }
}

TEST(H5adWriter, AdditionsGoToACopyAndLoadInAnndata) {
  if (!anndata_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import anndata";
  test::TempDir dir;
  const std::string input = test::fixture("h5ad/full.h5ad");
  const std::string before = file_bytes(input);
  H5adFile source(input);
  const auto n = static_cast<std::size_t>(source.n_obs());
  std::vector<std::string> labels;
  std::vector<double> scores;
  for (std::size_t i = 0; i < n; ++i) {
    labels.push_back(i % 3 == 0 ? "T cell" : (i % 3 == 1 ? "B cell" : "monocyte"));
    scores.push_back(0.5 + 0.03125 * static_cast<double>(i));
  }
  H5adAdditions additions;
  additions.obs_columns.push_back(Column::categorical("celltyper_label", labels));
  additions.obs_columns.push_back(Column::from_floats("celltyper_score", scores, "float32"));
  additions.obs_columns.push_back(Column::from_floats("total_counts", std::vector<double>(n, 1.0)));  // replaces
  DenseMatrix embedding{source.n_obs(), 4, {}};
  for (std::int64_t i = 0; i < embedding.rows * embedding.cols; ++i) embedding.values.push_back(static_cast<float>(i) * 0.25f);
  additions.obsm["X_celltyper"] = embedding;
  additions.uns_strings["celltyper_version"] = "test";
  const std::string out = dir.file("annotated.h5ad");
  write_h5ad_with_additions(input, out, additions);
  EXPECT_EQ(file_bytes(input), before) << "the input was modified";

  json expected = load_json(test::fixture("h5ad/full.expected.json"));
  json& obs = expected["obs"];
  obs["column_order"].push_back("celltyper_label");
  obs["column_order"].push_back("celltyper_score");
  json label_values = json::array();
  for (const auto& label : labels) label_values.push_back(label);
  obs["columns"].push_back({{"name", "celltyper_label"}, {"kind", "categorical"}, {"categories", {"B cell", "T cell", "monocyte"}},
                            {"ordered", false}, {"values", label_values}});
  obs["columns"].push_back({{"name", "celltyper_score"}, {"kind", "float"}, {"dtype", "float32"}, {"values", scores}});
  for (auto& column : obs["columns"]) {
    if (column["name"] == "total_counts") column["values"] = std::vector<double>(n, 1.0);
  }
  json dense = json::array();
  for (std::int64_t r = 0; r < embedding.rows; ++r) {
    json row = json::array();
    for (std::int64_t c = 0; c < embedding.cols; ++c) row.push_back(embedding.at(r, c));
    dense.push_back(row);
  }
  expected["obsm"].push_back({{"name", "X_celltyper"}, {"encoding", "array"}, {"dtype", "float32"}, {"shape", {embedding.rows, 4}}, {"dense", dense}});
  std::sort(expected["obsm"].begin(), expected["obsm"].end(), [](const json& a, const json& b) { return a["name"] < b["name"]; });
  const std::string expected_path = dir.file("annotated.expected.json");
  save_json(expected, expected_path);
  expect_anndata_reads(out, expected_path);
}

TEST(H5adWriter, RefusesToOverwriteInputUnlessInPlace) {
  test::TempDir dir;
  const std::string copy = dir.file("copy.h5ad");
  std::filesystem::copy_file(test::fixture("h5ad/csr_float32.h5ad"), copy);
  H5adAdditions additions;
  additions.obs_columns.push_back(Column::from_ints("x", std::vector<std::int64_t>(12, 7)));
  EXPECT_THROW(write_h5ad_with_additions(copy, copy, additions), InputError);
  write_h5ad_with_additions(copy, copy, additions, /* in_place = */ true);
  H5adFile file(copy);
  EXPECT_EQ(file.read_obs().at("x", "obs").integers, std::vector<std::int64_t>(12, 7));
}

TEST(H5adFile, ReadsOnlyTheObsColumnsAskedFor) {
  test::TempDir dir;
  const std::string path = dir.file("wide.h5ad");
  H5adAdditions additions;
  additions.obs_columns.push_back(Column::from_ints("donor", std::vector<std::int64_t>(12, 3)));
  additions.obs_columns.push_back(Column::from_floats("n_counts", std::vector<double>(12, 2.5)));
  write_h5ad_with_additions(test::fixture("h5ad/csr_float32.h5ad"), path, additions);
  const H5adFile file(path);
  const DataFrame whole = file.read_obs();
  ASSERT_EQ(whole.columns.size(), 3U);

  // The index and the named columns, in obs's order, whatever order they were asked in.
  const DataFrame some = file.read_obs_columns({"n_counts", "cell_type"});
  EXPECT_EQ(some.index, whole.index);
  ASSERT_EQ(some.columns.size(), 2U);
  EXPECT_EQ(some.columns[0].name, "cell_type");
  EXPECT_EQ(some.columns[1].name, "n_counts");
  EXPECT_EQ(some.at("cell_type", "obs").value_as_string(4), whole.at("cell_type", "obs").value_as_string(4));
  EXPECT_EQ(some.at("n_counts", "obs").numbers, std::vector<double>(12, 2.5));
  const DataFrame names_only = file.read_obs_columns({});
  EXPECT_EQ(names_only.index, whole.index);
  EXPECT_TRUE(names_only.columns.empty());

  // A missing column names every column of obs, not only those asked for.
  const auto message_of = [](const Dataset& dataset) {
    try {
      (void)dataset.read_obs_columns({"cell_type", "batch"});
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  const std::string message = message_of(file);
  EXPECT_NE(message.find("no column 'batch'"), std::string::npos) << message;
  EXPECT_NE(message.find("cell_type, donor, n_counts"), std::string::npos) << message;

  // Any other dataset (the interface's default: the whole frame, then the named columns).
  CsrBlockF64 empty;
  empty.reset(0, file.n_obs(), file.n_vars());
  for (std::int64_t row = 0; row < file.n_obs(); ++row) empty.indptr.push_back(0);
  const MemoryDataset memory("memory", whole, file.read_var(), std::move(empty));
  const DataFrame from_memory = memory.read_obs_columns({"n_counts", "cell_type"});
  ASSERT_EQ(from_memory.columns.size(), 2U);
  EXPECT_EQ(from_memory.columns[0].name, "cell_type");
  EXPECT_EQ(from_memory.index, whole.index);
  EXPECT_EQ(message_of(memory), "obs of memory: no column 'batch' (available: cell_type, donor, n_counts)");
}

TEST(H5adWriter, WrongLengthsAreRejectedBeforeWriting) {
  test::TempDir dir;
  H5adAdditions additions;
  additions.obs_columns.push_back(Column::from_ints("x", {1, 2, 3}));
  const std::string out = dir.file("out.h5ad");
  EXPECT_THROW(write_h5ad_with_additions(test::fixture("h5ad/csr_float32.h5ad"), out, additions), InputError);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a temporary file was left behind";
}

TEST(H5adWriter, AbandonedWriterLeavesNothing) {
  test::TempDir dir;
  const std::string out = dir.file("never.h5ad");
  {
    H5adWriter writer(out, 3, 2);
    CsrBlock block;
    block.reset(0, 1, 2);
    block.indices = {1};
    block.values = {2.0f};
    block.indptr = {0, 1};
    writer.append_rows(block);
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(H5adCopy, BackgroundCopyCommitsTheSameFileAsTheOneStepWrite) {
  test::TempDir dir;
  const std::string input = test::fixture("h5ad/full.h5ad");
  const auto n = static_cast<std::size_t>(H5adFile(input).n_obs());
  H5adAdditions additions;
  std::vector<std::string> labels;
  for (std::size_t i = 0; i < n; ++i) labels.push_back(i % 2 == 0 ? "T cell" : "B cell");
  additions.obs_columns.push_back(Column::categorical("celltyper_label", labels));
  const std::string one_step = dir.file("one_step.h5ad");
  const std::string two_steps = dir.file("two_steps.h5ad");
  write_h5ad_with_additions(input, one_step, additions);
  {
    H5adCopy copy(input, two_steps);
    EXPECT_EQ(copy.n_obs(), static_cast<std::int64_t>(n));
    copy.commit(additions);
    EXPECT_THROW(copy.commit(additions), InputError) << "a second commit";
  }
  for (const std::string& path : {one_step, two_steps}) {
    const DataFrame obs = H5adFile(path).read_obs();
    const Column& column = obs.at("celltyper_label", path);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(column.value_as_string(i), labels[i]) << path << " row " << i;
  }
  EXPECT_EQ(std::filesystem::file_size(one_step), std::filesystem::file_size(two_steps));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 2)
      << "a temporary file was left behind";
}

TEST(H5adCopy, AbandonedOrRejectedCopyLeavesNothingAndKeepsTheOldOutput) {
  test::TempDir dir;
  const std::string input = test::fixture("h5ad/csr_float32.h5ad");
  const std::string out = dir.file("out.h5ad");
  { H5adCopy abandoned(input, out); }  // e.g. annotation failed: the copy stops, the temporary goes
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a temporary file was left behind";
  std::ofstream(out) << "previous result";
  {
    H5adCopy copy(input, out);
    H5adAdditions wrong;
    wrong.obs_columns.push_back(Column::from_ints("x", {1, 2, 3}));
    EXPECT_THROW(copy.commit(wrong), InputError);
  }
  EXPECT_EQ(file_bytes(out), "previous result");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);
  EXPECT_THROW(H5adCopy(dir.file("missing.h5ad"), dir.file("x.h5ad")), InputError);
}

}  // namespace
}  // namespace celltyper
