// Files that read without a structural error but would give a silent wrong answer (issue #19):
// a var index of row numbers read as Entrez ids, duplicate / unsorted column indices in a CSR
// row. Fixtures: tests/data/hostile/ (tests/data/make_hostile_fixtures.py).
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>

#include "io/matrix_readers.hpp"
#include "support/test_support.hpp"

#include <string>
#include <vector>

namespace celltyper {
namespace {

/// A table whose Entrez ids 1..20 are what row numbers would "match", plus dataset A's genes by
/// their Ensembl ids (as in var['gene_ids'] of the fixtures).
GeneTable row_number_trap_table() {
  std::vector<Gene> genes;
  for (std::int64_t id = 1; id <= 20; ++id) genes.push_back({.entrez_id = id, .symbol = "GENE" + std::to_string(id)});
  const std::vector<std::pair<std::string, std::string>> a = {
      {"CD3E", "ENSG00000198851"}, {"MS4A1", "ENSG00000156738"}, {"LYZ", "ENSG00000090382"}, {"CD14", "ENSG00000170458"},
      {"NKG7", "ENSG00000105374"}, {"GNLY", "ENSG00000115523"},  {"CD79A", "ENSG00000105369"}, {"HBB", "ENSG00000244734"},
      {"IL7R", "ENSG00000168685"}, {"S100A8", "ENSG00000143546"}};
  std::int64_t id = 1000;
  for (const auto& [symbol, ensembl] : a) genes.push_back({.entrez_id = id++, .symbol = symbol, .ensembl_ids = {ensembl}});
  return GeneTable(std::move(genes), "row-number trap");
}

std::string resolve_error(const GeneTable& table, const DataFrame& var, const GeneResolveOptions& options = {}) {
  try {
    (void)resolve_genes(table, var, options);
  } catch (const InputError& error) {
    return error.what();
  }
  return "";
}

TEST(HostileInput, RangeIndexVarIsNotReadAsEntrezIds) {
  const GeneTable table = row_number_trap_table();
  for (const char* name : {"hostile/var_range_index.h5ad", "hostile/var_missing.h5ad"}) {
    SCOPED_TRACE(name);
    const std::string path = test::fixture(name);
    const DataFrame var = H5adFile(path).read_var();
    ASSERT_EQ(var.index.front(), "0");
    const std::string message = resolve_error(table, var);
    EXPECT_EQ(message.rfind(path + ":/var: var has no gene names: its index holds row numbers ('0'..'9'", 0), 0u) << message;
    EXPECT_NE(message.find("--gene-column"), std::string::npos) << message;
    // inspect describes the file instead: nothing resolves, and a warning says why.
    GeneResolveOptions describe;
    describe.refuse_row_numbers = false;
    const GeneResolveResult result = resolve_genes(table, var, describe);
    EXPECT_EQ(result.n_matched(), 0u);
    ASSERT_FALSE(result.warnings.empty());
    EXPECT_NE(result.warnings.front().find("var has no gene names"), std::string::npos);
  }
}

TEST(HostileInput, RangeIndexWithAGeneIdColumnUsesTheColumn) {
  const GeneTable table = row_number_trap_table();
  const std::string path = test::fixture("hostile/var_range_index_gene_ids.h5ad");
  const DataFrame var = H5adFile(path).read_var();
  const GeneResolveResult result = resolve_genes(table, var);
  EXPECT_EQ(result.column, "gene_ids");
  EXPECT_EQ(result.n_matched(), 10u);
  ASSERT_EQ(result.candidates.size(), 2u);
  EXPECT_EQ(result.candidates[0].n_resolved, 0u) << "row numbers counted as Entrez matches";
  GeneResolveOptions index;
  index.column = "_index";
  EXPECT_EQ(resolve_error(table, var, index).rfind(path + ":/var: var column '_index' holds row numbers ('0'..'9'), not gene names", 0), 0u)
      << resolve_error(table, var, index);
}

TEST(HostileInput, RowNumberHeuristicSparesEntrezIds) {
  const GeneTable table = row_number_trap_table();
  auto var_of = [](std::vector<std::string> index) {
    DataFrame var;
    var.index = std::move(index);
    return var;
  };
  // Row numbers: 1..n, a subset of a RangeIndex (kept through subsetting), starting at 0.
  EXPECT_NE(resolve_error(table, var_of({"1", "2", "3", "4"})), "");
  EXPECT_NE(resolve_error(table, var_of({"0", "3", "7", "12"})), "");
  EXPECT_NE(resolve_error(table, var_of({"0", "500", "90000"})), "");
  // Entrez ids: not in increasing order, or far above the number of rows.
  EXPECT_EQ(resolve_error(table, var_of({"3", "1", "2", "4"})), "");
  EXPECT_EQ(resolve_error(table, var_of({"1", "2", "1000", "12345"})), "");
  const GeneResolveResult entrez = resolve_genes(table, var_of({"7", "1000", "1001", "20"}));
  EXPECT_EQ(entrez.id_type, GeneIdType::kEntrez);
  EXPECT_EQ(entrez.n_matched(), 4u);
}

/// Every row of X of `path`, as one block.
template <typename Value>
CsrRows<Value> read_all_rows(const std::string& path, bool direct_io) {
  H5adOpenOptions options;
  options.direct_io = direct_io;
  const H5adFile file(path, options);
  auto reader = file.open_matrix("X");
  CsrRows<Value> block;
  reader->read_rows(0, reader->n_rows(), block);
  return block;
}

TEST(HostileInput, DuplicateColumnInACsrRowIsRefused) {
  const std::string path = test::fixture("hostile/csr_duplicate_indices.h5ad");
  for (const bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "direct reads" : "HDF5 reads");
    try {
      (void)read_all_rows<float>(path, direct);
      ADD_FAILURE() << "duplicate entries were accepted";
    } catch (const InputError& error) {
      const std::string message = error.what();
      EXPECT_EQ(message.rfind(path + ": X stores the entry at row 0, column 0 twice", 0), 0u) << message;
      EXPECT_NE(message.find("sum_duplicates"), std::string::npos) << message;
    }
  }
}

/// One row of `columns` (values 1, 2, ...) in a block of a matrix with `n_cols` columns.
CsrRows<float> one_row(const std::vector<std::int32_t>& columns, std::int64_t n_cols) {
  CsrRows<float> block;
  block.reset(0, 1, n_cols);
  for (std::size_t k = 0; k < columns.size(); ++k) {
    block.indices.push_back(columns[k]);
    block.values.push_back(static_cast<float>(k + 1));
  }
  block.indptr.push_back(static_cast<std::int64_t>(columns.size()));
  return block;
}

TEST(HostileInput, EveryPositionOfACsrRowIsChecked) {
  // Rows of every length around the vector widths (8 with AVX2, 16 with AVX-512, scalar tails),
  // with the fault at every position: a column past the end, a negative one, two swapped
  // (sorted on read), one stored twice.
  for (std::int32_t length = 1; length <= 40; ++length) {
    std::vector<std::int32_t> good;
    for (std::int32_t k = 0; k < length; ++k) good.push_back(3 * k + 1);
    const std::int64_t n_cols = 3 * length + 1;
    {
      auto block = one_row(good, n_cols);
      detail::check_block_indices(block, "f", "X");
      EXPECT_EQ(std::vector<std::int32_t>(block.indices.begin(), block.indices.end()), good);
    }
    for (std::int32_t p = 0; p < length; ++p) {
      SCOPED_TRACE(testing::Message() << "length " << length << ", position " << p);
      for (const std::int32_t bad : {static_cast<std::int32_t>(n_cols), std::int32_t{-1}}) {
        auto columns = good;
        columns[static_cast<std::size_t>(p)] = bad;
        auto block = one_row(columns, n_cols);
        EXPECT_THROW(detail::check_block_indices(block, "f", "X"), InputError);
      }
      if (p == 0) continue;
      auto swapped = good;
      std::swap(swapped[static_cast<std::size_t>(p)], swapped[static_cast<std::size_t>(p) - 1]);
      auto block = one_row(swapped, n_cols);
      detail::check_block_indices(block, "f", "X");
      EXPECT_EQ(std::vector<std::int32_t>(block.indices.begin(), block.indices.end()), good);
      EXPECT_EQ(block.values[static_cast<std::size_t>(p)], static_cast<float>(p));  // values follow their columns
      auto twice = good;
      twice[static_cast<std::size_t>(p)] = twice[static_cast<std::size_t>(p) - 1];
      auto repeated = one_row(twice, n_cols);
      EXPECT_THROW(detail::check_block_indices(repeated, "f", "X"), InputError);
    }
  }
}

TEST(HostileInput, UnsortedCsrRowIsReadSorted) {
  const std::string good = test::fixture("h5ad/csr_float32.h5ad");
  const std::string unsorted = test::fixture("hostile/csr_unsorted_indices.h5ad");
  for (const bool direct : {true, false}) {
    const CsrBlock expected = read_all_rows<float>(good, direct);
    const CsrBlock actual = read_all_rows<float>(unsorted, direct);
    EXPECT_EQ(std::vector<std::int64_t>(actual.indptr.begin(), actual.indptr.end()),
              std::vector<std::int64_t>(expected.indptr.begin(), expected.indptr.end()));
    EXPECT_EQ(std::vector<std::int32_t>(actual.indices.begin(), actual.indices.end()),
              std::vector<std::int32_t>(expected.indices.begin(), expected.indices.end()));
    EXPECT_EQ(std::vector<float>(actual.values.begin(), actual.values.end()), std::vector<float>(expected.values.begin(), expected.values.end()));
    const CsrBlockF64 wide = read_all_rows<double>(unsorted, direct);
    EXPECT_EQ(std::vector<std::int32_t>(wide.indices.begin(), wide.indices.end()),
              std::vector<std::int32_t>(expected.indices.begin(), expected.indices.end()));
  }
}

}  // namespace
}  // namespace celltyper
