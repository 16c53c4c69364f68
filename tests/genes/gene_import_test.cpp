// Tests of importing gene vectors: TSV/CSV with any id kind, .npy (float32/float64) + gene list,
// HDF5 (gene store and named datasets), and malformed input.
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/gene_table.hpp>

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <string>

#include "support/test_support.hpp"

namespace celltyper {
namespace {

using test::TempDir;

std::string write_file(const TempDir& directory, const std::string& name, const std::string& text) {
  const std::string path = directory.file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

GeneTable small_table(const TempDir& directory) {
  return load_gene_table(write_file(directory, "genes.tsv",
                                    "entrez_id\tsymbol\tname\tgene_type\tensembl_ids\taliases\n"
                                    "915\tCD3D\tCD3 delta\tprotein-coding\tENSG00000167286\tT3D\n"
                                    "916\tCD3E\tCD3 epsilon\tprotein-coding\tENSG00000198851\tT3E\n"
                                    "4069\tLYZ\tlysozyme\tprotein-coding\tENSG00000090382\tLZM\n"));
}

template <typename Action>
std::string input_error_message(Action&& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  return {};
}

/// A NumPy .npy file (format 1.0, C order) of `rows` x `cols` values of type T.
template <typename T>
std::string npy_bytes(const std::vector<T>& values, int rows, int cols, bool fortran = false) {
  std::string header = fmt::format("{{'descr': '<f{}', 'fortran_order': {}, 'shape': ({}, {}), }}", sizeof(T),
                                   fortran ? "True" : "False", rows, cols);
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return bytes;
}

TEST(GeneImport, TsvWithHeaderAndMixedIds) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const std::string path = write_file(directory, "vectors.tsv",
                                      "gene\td0\td1\n"
                                      "CD3E\t3\t4\n"
                                      "ENSG00000167286.5\t0\t2\n"  // CD3D by Ensembl id
                                      "LZM\t1e-1\t0\n"             // LYZ by alias
                                      "916\t9\t9\n"                // CD3E again: duplicate
                                      "UNKNOWN1\t1\t1\n"
                                      "# a comment\n");
  const GeneImportResult result = import_gene_embeddings(path, table);
  EXPECT_EQ(result.n_rows, 5);
  EXPECT_EQ(result.n_unresolved, 1);
  EXPECT_EQ(result.unresolved_examples, (std::vector<std::string>{"UNKNOWN1"}));
  EXPECT_EQ(result.n_duplicates, 1);
  const GeneStore& store = result.store;
  EXPECT_EQ(store.entrez_ids(), (std::vector<std::int64_t>{915, 916, 4069}));
  EXPECT_EQ(store.symbols(), (std::vector<std::string>{"CD3D", "CD3E", "LYZ"}));
  EXPECT_EQ(store.ensembl_ids()[2], "ENSG00000090382");
  EXPECT_FLOAT_EQ(store.row(1)[0], 0.6F);
  EXPECT_FLOAT_EQ(store.row(0)[1], 1.0F);
  EXPECT_EQ(store.provenance().backend, "import");
  EXPECT_EQ(store.provenance().model, "vectors.tsv");
  EXPECT_EQ(store.provenance().gene_table_hash, table.content_hash_hex());

  GeneImportOptions strict;
  strict.allow_unresolved = false;
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(path, table, strict); }).find("1 of 5 gene ids are not in the gene table"),
            std::string::npos);
}

TEST(GeneImport, ExportLayoutUsesTheEntrezColumn) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  // `celltyper genes export --format tsv` layout: three id columns, then the numbers.
  const std::string path = write_file(directory, "exported.tsv",
                                      "entrez_id\tsymbol\tensembl_id\td0\td1\n"
                                      "916\tWRONGSYMBOL\t\t0\t1\n"
                                      "4069\tLYZ\tENSG00000090382\t1\t0\n");
  const GeneImportResult result = import_gene_embeddings(path, table);
  EXPECT_EQ(result.store.dims(), 2);
  EXPECT_EQ(result.store.entrez_ids(), (std::vector<std::int64_t>{916, 4069}));
  EXPECT_EQ(result.store.symbols()[0], "CD3E");
  EXPECT_FLOAT_EQ(result.store.row(0)[1], 1.0F);
}

TEST(GeneImport, CsvWithoutHeaderAndZeroRows) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const std::string path = write_file(directory, "v.csv", "\"CD3E\",1,0,0\nLYZ,0,0,0\nCD3D,0,-2,0\n");
  const GeneImportResult result = import_gene_embeddings(path, table);
  EXPECT_EQ(result.n_zero_rows, 1);
  EXPECT_EQ(result.store.dims(), 3);
  EXPECT_EQ(result.store.entrez_ids(), (std::vector<std::int64_t>{915, 916}));
  EXPECT_FLOAT_EQ(result.store.row(0)[1], -1.0F);
}

TEST(GeneImport, NpyFloat32AndFloat64WithGeneList) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const std::string list = write_file(directory, "genes.txt", "symbol\nLYZ\nCD3E\n");
  const std::string f4 = write_file(directory, "m4.npy", npy_bytes<float>({0, 2, 3, 4}, 2, 2));
  const std::string f8 = write_file(directory, "m8.npy", npy_bytes<double>({0, 2, 3, 4}, 2, 2));
  GeneImportOptions options;
  options.gene_list = list;
  for (const auto& path : {f4, f8}) {
    SCOPED_TRACE(path);
    const GeneImportResult result = import_gene_embeddings(path, table, options);
    EXPECT_EQ(result.store.entrez_ids(), (std::vector<std::int64_t>{916, 4069}));
    EXPECT_FLOAT_EQ(result.store.row(0)[0], 0.6F);
    EXPECT_FLOAT_EQ(result.store.row(1)[1], 1.0F);
  }
  // Errors: no gene list, wrong count, Fortran order, unsupported dtype, truncated data.
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(f4, table); }).find("needs a gene list"), std::string::npos);
  const std::string three = write_file(directory, "three.txt", "CD3E\nLYZ\nCD3D\n");
  options.gene_list = three;
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(f4, table, options); }).find("names 3 genes but"), std::string::npos);
  options.gene_list = list;
  const std::string fortran = write_file(directory, "f.npy", npy_bytes<float>({0, 2, 3, 4}, 2, 2, true));
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(fortran, table, options); }).find("Fortran order"), std::string::npos);
  std::string int_bytes = npy_bytes<float>({0, 2, 3, 4}, 2, 2);
  int_bytes.replace(int_bytes.find("<f4"), 3, "<i4");
  const std::string ints = write_file(directory, "i.npy", int_bytes);
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(ints, table, options); }).find("'<i4' is not supported"), std::string::npos);
  const std::string full = npy_bytes<float>({0, 2, 3, 4}, 2, 2);
  const std::string truncated = write_file(directory, "t.npy", full.substr(0, full.size() - 3));
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(truncated, table, options); }).find("truncated file?"), std::string::npos);
  const std::string garbage = write_file(directory, "g.npy", "hello world, not numpy");
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(garbage, table, options); }).find("bad magic"), std::string::npos);
}

TEST(GeneImport, Hdf5StoreAndNamedDatasets) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  GeneStoreProvenance provenance;
  provenance.backend = "lsa";
  provenance.text_recipe_hash = "feedfacefeedface";
  const GeneStore original({916, 4069, 1234567}, {"CD3E", "LYZ", "GONE"}, {"", "", ""}, {1, 0, 0, 1, 1, 1}, 2, provenance);
  const std::string store_path = directory.file("store.h5");
  original.save(store_path);
  const GeneImportResult from_store = import_gene_embeddings(store_path, table);
  EXPECT_EQ(from_store.store.entrez_ids(), (std::vector<std::int64_t>{916, 4069}));
  EXPECT_EQ(from_store.n_unresolved, 1);  // 1234567 is not in the table
  EXPECT_EQ(from_store.store.ensembl_ids()[0], "ENSG00000198851");  // refreshed from the table
  EXPECT_EQ(from_store.store.provenance().text_recipe_hash, "feedfacefeedface");
  EXPECT_EQ(from_store.store.provenance().extra["source_store"]["backend"], "lsa");

  const std::string script = R"(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + '/generic.h5', 'w') as f:
    f['vectors/emb'] = np.array([[1, 2], [3, 4]], dtype=np.float64)
    f['vectors/names'] = np.array([b'LYZ', b'CD3D'])
with h5py.File(sys.argv[1] + '/bad_shape.h5', 'w') as f:
    f['embeddings'] = np.zeros((3, 2), dtype=np.float32)
    f['ids'] = np.array([1, 2])
)";
  const auto made = test::run_program({test::system_python(), "-c", script, directory.path().string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  GeneImportOptions options;
  options.h5_matrix = "vectors/emb";
  options.h5_ids = "vectors/names";
  const GeneImportResult generic = import_gene_embeddings(directory.file("generic.h5"), table, options);
  EXPECT_EQ(generic.store.entrez_ids(), (std::vector<std::int64_t>{915, 4069}));
  EXPECT_FLOAT_EQ(generic.store.row(0)[0], 0.6F);
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(directory.file("generic.h5"), table); }).find("no matrix dataset found"),
            std::string::npos);
  EXPECT_NE(input_error_message([&] { import_gene_embeddings(directory.file("bad_shape.h5"), table); }).find("shape mismatch"),
            std::string::npos);
}

TEST(GeneImport, MalformedInputNamesFileAndLine) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const auto message = [&](const std::string& name, const std::string& content) {
    const std::string path = write_file(directory, name, content);
    return input_error_message([&] { import_gene_embeddings(path, table); });
  };
  EXPECT_NE(message("ragged.tsv", "CD3E\t1\t2\nLYZ\t1\n").find("ragged.tsv: line 2 has 1 values, expected 2"), std::string::npos);
  EXPECT_NE(message("text.tsv", "id\ta\tb\nCD3E\t1\tx\n").find("text.tsv: line 2, column 3: expected a number, found 'x'"),
            std::string::npos);
  EXPECT_NE(message("nan.tsv", "CD3E\t1\tnan\n").find("row 1 (gene 'CD3E') has a non-finite value"), std::string::npos);
  EXPECT_NE(message("none.tsv", "FOO\t1\t2\nBAR\t3\t4\n").find("none of its 2 gene ids resolves"), std::string::npos);
  EXPECT_NE(message("one.tsv", "CD3E\n").find("expected a gene id and at least one number"), std::string::npos);
  EXPECT_NE(message("empty.tsv", "").find("holds no vectors"), std::string::npos);
  EXPECT_NE(message("v.xyz", "CD3E\t1\n").find("cannot tell the format"), std::string::npos);
  EXPECT_THROW(import_gene_embeddings(directory.file("absent.tsv"), table), IoError);
  GeneImportOptions options;
  options.format = "parquet";
  EXPECT_THROW(import_gene_embeddings(write_file(directory, "x.tsv", "CD3E\t1\n"), table, options), InputError);
}

}  // namespace
}  // namespace celltyper
