// Cell embeddings: against an independent float64 NumPy reference on real data, invariance
// to threads / block size / input encoding (bit-identical), and bad input.
#include <celltyper/cell_embedder.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>

namespace celltyper {
namespace {

/// Seeded pseudo-random unit vectors for every gene of a table (a stand-in gene store).
struct RandomGeneVectors {
  RandomGeneVectors(const GeneTable& table, int dims, unsigned seed = 7) : dims(dims) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    for (const auto& gene : table.genes()) {
      std::vector<float> v(static_cast<std::size_t>(dims));
      double norm = 0;
      for (auto& x : v) {
        x = normal(rng);
        norm += static_cast<double>(x) * x;
      }
      for (auto& x : v) x = static_cast<float>(x / std::sqrt(norm));
      vectors.emplace(gene.entrez_id, std::move(v));
    }
  }
  GeneVectorSource source() const {
    return {dims, [this](std::int64_t entrez) -> const float* {
              const auto it = vectors.find(entrez);
              return it == vectors.end() ? nullptr : it->second.data();
            },
            "random-test", "seeded random unit vectors"};
  }
  int dims;
  std::map<std::int64_t, std::vector<float>> vectors;
};

const GeneTable& human_table() {
  static const GeneTable table = [] {
    const std::string tsv = test::shared_data("gene-annotations/human_genes.tsv");
    return tsv.empty() ? GeneTable() : load_gene_table(tsv);
  }();
  return table;
}

void save_npy(const std::string& path, const void* data, const std::string& descr, std::int64_t rows, std::int64_t cols,
              std::size_t item) {
  std::string header = cols > 0 ? fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}), }}", descr, rows, cols)
                                 : fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({},), }}", descr, rows);
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  const char magic[] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.write(magic, 8);
  const auto length = static_cast<std::uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&length), 2);
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(static_cast<std::size_t>(rows * std::max<std::int64_t>(cols, 1)) * item));
}

std::vector<double> load_npy_f64(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint16_t header_length = 0;
  std::memcpy(&header_length, bytes.data() + 8, 2);
  const std::size_t offset = 10 + header_length;
  std::vector<double> values((bytes.size() - offset) / sizeof(double));
  std::memcpy(values.data(), bytes.data() + offset, values.size() * sizeof(double));
  return values;
}

MemorySink embed_in_memory(const Dataset& dataset, const GeneVectorSource& source, EmbedOptions options, EmbedResult* result = nullptr) {
  MemorySink sink;
  EmbedResult r = embed_dataset(dataset, human_table(), source, options, sink);
  if (result != nullptr) *result = r;
  return sink;
}

/// celltyper vs the NumPy reference on one real dataset: max |difference| <= 1e-5.
void compare_with_numpy(const std::string& relative, const std::string& matrix, int dims) {
  SCOPED_TRACE(relative);
  const std::string path = test::shared_data(relative);
  if (path.empty() || human_table().empty()) GTEST_SKIP() << "../shared/data is absent";
  if (test::run_program({test::system_python(), "-c", "import anndata, scipy"}).exit_code != 0) GTEST_SKIP() << "no anndata/scipy";
  const RandomGeneVectors vectors(human_table(), dims);
  const auto dataset = open_dataset(path);
  EmbedOptions options;
  options.matrix = matrix;
  EmbedResult result;
  const MemorySink sink = embed_in_memory(*dataset, vectors.source(), options, &result);
  EXPECT_EQ(result.normalization, Normalization::kLog1pCp10k);
  // Export the exact gene alignment for the reference.
  const AlignedGeneVectors aligned = align_gene_vectors(human_table(), result.genes, vectors.source(), dims);
  test::TempDir dir;
  save_npy(dir.file("genes.npy"), aligned.matrix.data(), "<f4", aligned.n_rows(), dims, 4);
  std::vector<std::int64_t> rows(aligned.var_to_row.begin(), aligned.var_to_row.end());
  save_npy(dir.file("rows.npy"), rows.data(), "<i8", static_cast<std::int64_t>(rows.size()), 0, 8);
  const auto run = test::run_program({test::system_python(), std::string(CELLTYPER_SOURCE_DIR) + "/tests/embed/numpy_reference.py", path,
                                      result.matrix, dir.file("genes.npy"), dir.file("rows.npy"), "log1p-cp10k", dir.file("ref.npy")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<double> reference = load_npy_f64(dir.file("ref.npy"));
  ASSERT_EQ(reference.size(), sink.values.size());
  double worst = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) worst = std::max(worst, std::fabs(reference[i] - static_cast<double>(sink.values[i])));
  std::printf("%s: %lld cells x %d dims, max |celltyper - numpy| = %.3g\n", relative.c_str(), static_cast<long long>(sink.rows), dims, worst);
  EXPECT_LE(worst, 1e-5);
}

TEST(CellEmbedderNumpy, Pbmc3k) { compare_with_numpy("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad", "X", 256); }
TEST(CellEmbedderNumpy, Savercat) { compare_with_numpy("savercat-pbmc-3tech/pbmc_prep_3tech.h5ad", "X", 128); }
TEST(CellEmbedderNumpy, CellbenchEnsembl) { compare_with_numpy("cellbench-mixology/cellbench_3cl_celseq2_dropseq.h5ad", "X", 64); }
TEST(CellEmbedderNumpy, Pbmc68kCountsLayer) { compare_with_numpy("pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad", "counts", 48); }

TEST(CellEmbedder, BitIdenticalAcrossThreadsAndBlockSizes) {
  CELLTYPER_REQUIRE_SHARED(path, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  const RandomGeneVectors vectors(human_table(), 200);  // not a multiple of the SIMD tile
  const auto dataset = open_dataset(path);
  EmbedOptions base;
  base.num_threads = 1;
  const MemorySink reference = embed_in_memory(*dataset, vectors.source(), base);
  for (const int threads : {2, 3}) {  // and block sizes from ~20 cells to the whole file
    for (const std::size_t limit : {std::size_t{1} << 17, std::size_t{4} << 20}) {
      EmbedOptions options;
      options.num_threads = threads;
      options.memory_limit_bytes = limit;
      const MemorySink other = embed_in_memory(*dataset, vectors.source(), options);
      ASSERT_EQ(other.values.size(), reference.values.size());
      EXPECT_EQ(std::memcmp(other.values.data(), reference.values.data(), reference.values.size() * sizeof(float)), 0)
          << threads << " threads, limit " << limit;
    }
  }
}

TEST(CellEmbedder, BitIdenticalForCsrCscAndDense) {
  const GeneTable& table = human_table();
  if (table.empty()) GTEST_SKIP() << "../shared/data is absent";
  const RandomGeneVectors vectors(table, 40);
  std::vector<std::vector<float>> outputs;
  for (const std::string name : {"csr_float32", "csc_float32", "dense_float32", "csr_int64", "csc_float64_idx64", "dense_float64_gzip"}) {
    const auto dataset = open_dataset(test::fixture("h5ad/" + name + ".h5ad"));
    EmbedOptions options;
    options.genes.column = "index";
    const MemorySink sink = embed_in_memory(*dataset, vectors.source(), options);
    outputs.push_back(sink.values);
    EXPECT_EQ(sink.empty[5], 1) << name << ": the all-zero cell 5 must be flagged";
  }
  for (std::size_t i = 1; i < outputs.size(); ++i) {
    ASSERT_EQ(outputs[i].size(), outputs[0].size());
    EXPECT_EQ(std::memcmp(outputs[i].data(), outputs[0].data(), outputs[0].size() * sizeof(float)), 0) << "encoding " << i;
  }
  // The empty cell's vector is exactly zero; others are unit length.
  for (int d = 0; d < 40; ++d) EXPECT_EQ(outputs[0][5 * 40 + d], 0.0f);
  double norm = 0;
  for (int d = 0; d < 40; ++d) norm += outputs[0][d] * outputs[0][d];
  EXPECT_NEAR(norm, 1.0, 1e-6);
}

TEST(CellEmbedder, KernelMatchesScalarSum) {
  // Odd dims exercise every SIMD tile size and the scalar tail.
  for (const int dims : {1, 15, 16, 17, 129, 300, 1024}) {
    std::mt19937 rng(dims);
    std::uniform_real_distribution<float> uniform(-1, 1);
    const int n_rows = 50;
    std::vector<float> matrix(static_cast<std::size_t>(n_rows * dims));
    for (auto& x : matrix) x = uniform(rng);
    std::vector<std::int32_t> rows{3, 7, 7, 49, 0, 12};
    std::vector<float> weights{0.5f, 2.0f, -1.0f, 0.25f, 3.0f, 1e-3f};
    std::vector<float> out(static_cast<std::size_t>(dims));
    detail::weighted_row_sum(matrix.data(), dims, rows.data(), weights.data(), static_cast<std::int64_t>(rows.size()), out.data());
    for (int d = 0; d < dims; ++d) {
      float expected = 0;
      for (std::size_t j = 0; j < rows.size(); ++j) expected = std::fma(weights[j], matrix[static_cast<std::size_t>(rows[j] * dims + d)], expected);
      EXPECT_EQ(out[static_cast<std::size_t>(d)], expected) << "dims " << dims << " d " << d;
    }
  }
}

TEST(CellEmbedder, RowNumberingDoesNotChangeResults) {
  // Sums run in var column order: renumbering the rows (as order_rows_by_use does from the data)
  // gives the same bytes, equal to the kernel over the cell's genes in column order.
  const int dims = 70;
  const int n_vars = 60;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-1, 1);
  AlignedGeneVectors genes;
  genes.dims = dims;
  std::int32_t rows = 0;
  for (int j = 0; j < n_vars; ++j) genes.var_to_row.push_back(j % 5 == 3 ? -1 : rows++);
  genes.var_to_row[40] = genes.var_to_row[10];  // two vars share a gene vector
  genes.matrix.resize(static_cast<std::size_t>(rows * dims));
  for (auto& x : genes.matrix) x = uniform(rng);
  CsrBlock block;
  block.n_cols = n_vars;
  block.n_rows = 150;
  for (int r = 0; r < block.n_rows; ++r) {
    for (int j = 0; j < n_vars; ++j) {
      if ((rng() % 100) < static_cast<unsigned>(r % 7 == 0 ? 0 : 10 + 50 * (j % 3 == 0))) {
        block.indices.push_back(j);
        block.values.push_back(static_cast<float>(1 + rng() % 9));
      }
    }
    block.indptr.push_back(static_cast<std::int64_t>(block.indices.size()));
  }
  CellEmbedderOptions options;
  options.num_threads = 2;
  std::vector<float> plain(static_cast<std::size_t>(block.n_rows * dims));
  std::vector<float> renumbered(plain.size());
  CellEmbedder(genes, options).embed(block, plain.data());
  AlignedGeneVectors reordered = genes;
  reordered.order_rows_by_use(block);
  ASSERT_NE(reordered.var_to_row, genes.var_to_row);
  CellEmbedder(reordered, options).embed(block, renumbered.data());
  EXPECT_EQ(std::memcmp(plain.data(), renumbered.data(), plain.size() * sizeof(float)), 0);
  // The per-cell kernel over the same entries in the same order gives the same vectors.
  for (int r = 0; r < block.n_rows; ++r) {
    std::vector<std::pair<std::int32_t, std::pair<std::int32_t, float>>> entries;  // (key, (row, weight))
    double total = 0;
    for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      total += block.values[static_cast<std::size_t>(k)];
    }
    for (auto k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
      const std::int32_t column = block.indices[static_cast<std::size_t>(k)];
      const std::int32_t row = genes.var_to_row[static_cast<std::size_t>(column)];
      if (row < 0) continue;
      const std::int32_t key = column;
      entries.push_back({key, {row, static_cast<float>(std::log1p(block.values[static_cast<std::size_t>(k)] * (1e4 / total)))}});
    }
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::int32_t> entry_rows;
    std::vector<float> entry_weights;
    for (const auto& [key, entry] : entries) {
      entry_rows.push_back(entry.first);
      entry_weights.push_back(entry.second);
    }
    std::vector<float> expected(static_cast<std::size_t>(dims), 0.0f);
    detail::weighted_row_sum(genes.matrix.data(), dims, entry_rows.data(), entry_weights.data(), static_cast<std::int64_t>(entry_rows.size()),
                             expected.data());
    double norm = 0;
    for (const float x : expected) norm += static_cast<double>(x) * x;
    const float inverse = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
    for (int d = 0; d < dims; ++d) {
      const float want = norm > 0 ? expected[static_cast<std::size_t>(d)] * inverse : 0.0f;
      ASSERT_EQ(plain[static_cast<std::size_t>(r * dims + d)], want) << "cell " << r << " dim " << d;
    }
  }
}

TEST(CellEmbedder, NanInMatrixIsAClearError) {
  if (human_table().empty()) GTEST_SKIP() << "../shared/data is absent";
  const RandomGeneVectors vectors(human_table(), 16);
  const auto dataset = open_dataset(test::fixture("h5ad/nan_inf_negative.h5ad"));
  EmbedOptions options;
  options.normalization = NormalizationChoice::kNone;
  try {
    (void)embed_in_memory(*dataset, vectors.source(), options);
    ADD_FAILURE() << "NaN accepted";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("non-finite"), std::string::npos) << error.what();
  }
}

TEST(CellEmbedder, NoOverlapNamesColumnAndIdType) {
  if (human_table().empty()) GTEST_SKIP() << "../shared/data is absent";
  // Vectors exist for no human gene.
  GeneVectorSource none{16, [](std::int64_t) -> const float* { return nullptr; }, "none", "none"};
  const auto dataset = open_dataset(test::fixture("h5ad/csr_float32.h5ad"));
  try {
    (void)embed_in_memory(*dataset, none, {});
    ADD_FAILURE() << "no overlap accepted";
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("var column"), std::string::npos) << message;
    EXPECT_NE(message.find("ids"), std::string::npos) << message;
  }
}

TEST(CellEmbedder, DimsBeyondTheStoreAreRefused) {
  if (human_table().empty()) GTEST_SKIP() << "../shared/data is absent";
  const RandomGeneVectors vectors(human_table(), 16);
  const auto dataset = open_dataset(test::fixture("h5ad/csr_float32.h5ad"));
  EmbedOptions options;
  options.dims = 32;
  EXPECT_THROW((void)embed_in_memory(*dataset, vectors.source(), options), InputError);
}

TEST(CellEmbedder, ScaledDataIsRefusedUnderAuto) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc68k_reduced/10x_pbmc68k_reduced.h5ad");
  const RandomGeneVectors vectors(human_table(), 16);
  const auto dataset = open_dataset(path);
  EmbedOptions as_x;
  as_x.matrix = "X";
  try {
    (void)embed_in_memory(*dataset, vectors.source(), as_x);
    ADD_FAILURE() << "scaled X accepted";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("scaled"), std::string::npos) << error.what();
  }
  // raw (log1p CP10k already) is used as is: named, or by --layer auto (the default), which
  // passes over the scaled X when there are no counts.
  EmbedOptions raw;
  raw.matrix = "raw";
  EmbedResult result;
  (void)embed_in_memory(*dataset, vectors.source(), raw, &result);
  EXPECT_EQ(result.normalization, Normalization::kNone);
  EmbedResult chosen;
  (void)embed_in_memory(*dataset, vectors.source(), {}, &chosen);
  EXPECT_EQ(chosen.matrix, "raw/X");
  EXPECT_EQ(chosen.normalization, Normalization::kNone);
}

TEST(CellEmbedder, SinksWriteLoadableFiles) {
  if (human_table().empty()) GTEST_SKIP() << "../shared/data is absent";
  if (test::run_program({test::system_python(), "-c", "import anndata"}).exit_code != 0) GTEST_SKIP() << "no anndata";
  const RandomGeneVectors vectors(human_table(), 24);
  const std::string input = test::fixture("h5ad/csr_float32.h5ad");
  const auto dataset = open_dataset(input);
  test::TempDir dir;
  EmbedOptions options;
  const MemorySink memory = embed_in_memory(*dataset, vectors.source(), options);
  auto npy = make_npy_sink(dir.file("e.npy"));
  (void)embed_dataset(*dataset, human_table(), vectors.source(), options, *npy);
  auto obsm = make_h5ad_obsm_sink(input, dir.file("out.h5ad"), "X_celltyper");
  (void)embed_dataset(*dataset, human_table(), vectors.source(), options, *obsm);
  auto hdf5 = make_hdf5_sink(dir.file("e.h5"), dataset->read_obs().index);
  (void)embed_dataset(*dataset, human_table(), vectors.source(), options, *hdf5);
  const std::string check = fmt::format(
      "import anndata, numpy as np, h5py, json\n"
      "a = np.load('{0}'); b = anndata.read_h5ad('{1}'); h = h5py.File('{2}', 'r')\n"
      "assert a.dtype == np.float32 and a.shape == (12, 24), a.shape\n"
      "assert np.array_equal(a, b.obsm['X_celltyper']) and np.array_equal(a, h['embeddings'][:])\n"
      "assert list(b.obs['celltyper_embedding_empty']) == [i == 5 for i in range(12)]\n"
      "p = json.loads(b.uns['celltyper_embedding']); assert p['dims'] == 24 and p['normalization'] == 'log1p-cp10k', p\n"
      "print(float(a.sum()))\n",
      dir.file("e.npy"), dir.file("out.h5ad"), dir.file("e.h5"));
  const auto run = test::run_program({test::system_python(), "-c", check});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  double sum = 0;
  for (const float v : memory.values) sum += v;
  EXPECT_NEAR(std::stod(run.out), sum, 1e-3);
}

}  // namespace
}  // namespace celltyper
