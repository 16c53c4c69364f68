// Model files: round trip of both classifiers, and clear errors for truncated, foreign, future and
// inconsistent files.
#include <celltyper/classifier.hpp>
#include <celltyper/error.hpp>
#include <celltyper/model_file.hpp>

#include "io/hdf5_util.hpp"
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace celltyper {
namespace {

CellTypeModel make_model(const std::string& type) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  const int d = 4;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  for (int i = 0; i < 60; ++i) {
    y.push_back(i % 3);
    for (int j = 0; j < d; ++j) x.push_back(normal(rng) + (j == i % 3 ? 3.0f : 0.0f));
  }
  CellTypeModel model;
  model.classifier = make_classifier(type);
  model.classifier->fit(x.data(), 60, d, y, 3);
  model.class_names = {"B", "NK", "T, CD4"};
  model.class_cl_ids = {"CL:0000236", "CL:0000623", ""};
  model.genes.entrez_ids = {7, 100, 2000};
  model.genes.symbols = {"A", "B", "C"};
  model.genes.ensembl_ids = {"ENSG1", "", "ENSG3"};
  model.genes.dims = d;
  for (int i = 0; i < 3 * d; ++i) model.genes.vectors.push_back(normal(rng));
  model.genes.store_identity = "0123456789abcdef";
  model.provenance = {{"seed", 4}, {"label_column", "obs:celltype"}};
  model.validation = {{"accuracy", 0.5}};
  return model;
}

std::string error_of(const std::string& path) {
  try {
    (void)load_model(path);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

TEST(ModelFile, RoundTripKeepsPredictionsExactly) {
  test::TempDir dir;
  for (const std::string type : {"logreg", "knn"}) {
    const CellTypeModel model = make_model(type);
    const std::string path = dir.file(type + ".h5");
    save_model(model, path);
    const CellTypeModel loaded = load_model(path);
    EXPECT_EQ(loaded.classifier->type(), type);
    EXPECT_EQ(loaded.class_names, model.class_names);
    EXPECT_EQ(loaded.class_cl_ids, model.class_cl_ids);
    EXPECT_EQ(loaded.genes.entrez_ids, model.genes.entrez_ids);
    EXPECT_EQ(loaded.genes.ensembl_ids, model.genes.ensembl_ids);
    EXPECT_EQ(loaded.genes.vectors, model.genes.vectors);
    EXPECT_EQ(loaded.genes.store_identity, "0123456789abcdef");
    EXPECT_EQ(loaded.provenance["seed"], 4);
    EXPECT_EQ(loaded.validation["accuracy"], 0.5);
    EXPECT_EQ(loaded.classifier->hyperparameters(), model.classifier->hyperparameters());
    const std::vector<float> query = {0.1f, 3, 0.2f, -1, 2, 2, 0, 0};
    EXPECT_EQ(loaded.classifier->predict_proba(query.data(), 2), model.classifier->predict_proba(query.data(), 2));
    // The gene source finds the stored rows.
    const auto source = loaded.genes.source();
    EXPECT_EQ(source.find(100), loaded.genes.vectors.data() + 4);
    EXPECT_EQ(source.find(101), nullptr);
    EXPECT_EQ(loaded.genes.gene_table().find_ensembl("ENSG3"), 2);
    // Saving twice gives the same bytes apart from the creation time: same parameters.
    EXPECT_TRUE(std::filesystem::exists(path));
  }
}

TEST(ModelFile, ReferenceSampleRoundTripsAndItsArraysAreShuffledBeforeDeflate) {
  // The reference sample is the bulk of a model file: its arrays are byte-shuffled then deflated
  // (sorted column indices compress ~40% smaller), and read back exactly.
  CellTypeModel model = make_model("logreg");
  ReferenceSample& sample = model.reference;
  for (std::int64_t g = 0; g < 500; ++g) sample.entrez_ids.push_back(1000 + 3 * g);
  for (std::int64_t g = 0; g < 500; ++g) sample.symbols.push_back(fmt::format("G{}", g));
  sample.ensembl_ids.assign(500, "");
  sample.aliases.assign(500, "");
  sample.symbols[3] = "GRK2";
  sample.aliases[3] = "ADRBK1|BARK1";  // (the training table's older names of the gene)
  std::mt19937 rng(8);
  sample.values.reset(0, 0, 500);
  for (int cell = 0; cell < 300; ++cell) {
    for (std::int32_t column = 0; column < 500; ++column) {
      if (rng() % 7 != 0) continue;
      sample.values.indices.push_back(column);
      sample.values.values.push_back(static_cast<double>(1 + rng() % 20));
    }
    sample.values.indptr.push_back(static_cast<std::int64_t>(sample.values.indices.size()));
    ++sample.values.n_rows;
    sample.labels.push_back(cell % 3);
  }
  sample.normalization = "log1p-cp10k";
  sample.matrix = "X";
  sample.n_reference_cells = 300;
  test::TempDir dir;
  const std::string path = dir.file("sample.h5");
  save_model(model, path);
  {
    h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    ASSERT_TRUE(file);
    for (const char* name : {"reference/indices", "reference/data"}) {
      h5::Handle dataset(H5Dopen2(file.get(), name, H5P_DEFAULT));
      ASSERT_TRUE(dataset) << name;
      EXPECT_EQ(h5::compression_name(dataset.get()), "shuffle+gzip(4)") << name;
    }
  }
  const CellTypeModel loaded = load_model(path);
  EXPECT_EQ(loaded.reference.labels, sample.labels);
  EXPECT_EQ(loaded.reference.entrez_ids, sample.entrez_ids);
  EXPECT_EQ(loaded.reference.aliases, sample.aliases);
  const GeneTable own = loaded.gene_table();  // (a query naming the gene by an older symbol finds it)
  EXPECT_EQ(own.gene(own.find_symbol("GRK2")).entrez_id, sample.entrez_ids[3]);
  EXPECT_TRUE(own.find_alias("ADRBK1").found());
  EXPECT_EQ(own.gene(own.find_alias("ADRBK1").gene).entrez_id, sample.entrez_ids[3]);
  const CsrBlockF64& values = loaded.reference.cell_values();
  EXPECT_EQ(std::vector<std::int64_t>(values.indptr.begin(), values.indptr.end()),
            std::vector<std::int64_t>(sample.values.indptr.begin(), sample.values.indptr.end()));
  EXPECT_EQ(std::vector<std::int32_t>(values.indices.begin(), values.indices.end()),
            std::vector<std::int32_t>(sample.values.indices.begin(), sample.values.indices.end()));
  EXPECT_EQ(std::vector<double>(values.values.begin(), values.values.end()),
            std::vector<double>(sample.values.values.begin(), sample.values.values.end()));
}

TEST(ModelFile, CorruptTruncatedForeignAndFutureFilesFailClearly) {
  test::TempDir dir;
  const std::string good = dir.file("good.h5");
  save_model(make_model("logreg"), good);
  // Truncated.
  const auto size = std::filesystem::file_size(good);
  std::filesystem::copy_file(good, dir.file("cut.h5"));
  std::filesystem::resize_file(dir.file("cut.h5"), size / 2);
  const std::string cut = error_of(dir.file("cut.h5"));
  EXPECT_NE(cut.find("cut.h5"), std::string::npos) << cut;
  EXPECT_NE(cut.find("truncated"), std::string::npos) << cut;
  // Not HDF5 at all.
  std::ofstream(dir.file("text.h5")) << "hello\n";
  EXPECT_EQ(error_of(dir.file("text.h5")),
            dir.file("text.h5") + ": not a celltyper model (not an HDF5 file, or truncated; make one with 'celltyper train')");
  // A foreign HDF5 file (an h5ad).
  const std::string foreign = error_of(test::fixture("h5ad/csr_float32.h5ad"));
  EXPECT_NE(foreign.find("not a celltyper model (root attribute format is '', expected 'celltyper-model')"), std::string::npos) << foreign;
  // Missing file.
  EXPECT_EQ(error_of(dir.file("absent.h5")), dir.file("absent.h5") + ": no such file (cannot open the model)");
  if (test::run_program({test::system_python(), "-c", "import h5py"}).exit_code != 0) GTEST_SKIP() << "no h5py";
  // A future version, and a classifier whose weights do not match its classes.
  std::filesystem::copy_file(good, dir.file("future.h5"));
  std::filesystem::copy_file(good, dir.file("broken.h5"));
  const std::string script = fmt::format(
      "import h5py, numpy as np\n"
      "f = h5py.File('{0}', 'r+'); f.attrs['version'] = np.array([99], dtype='int64'); f.close()\n"
      "f = h5py.File('{1}', 'r+'); w = f['classifier/float64_weights'][:]; del f['classifier/float64_weights']\n"
      "f['classifier/float64_weights'] = w[:-1]; f.close()\n"
      "import shutil; shutil.copy('{1}', '{2}')\n"
      "with open('{2}', 'r+b') as f: f.write(bytes(64))\n",  // (a model written before checksums: cleared)
      dir.file("future.h5"), dir.file("broken.h5"), dir.file("unchecked.h5"));
  const auto run = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(error_of(dir.file("future.h5")),
            dir.file("future.h5") + fmt::format(": model format version 99 is newer than this celltyper reads ({}); upgrade celltyper", kModelFormatVersion));
  const std::string altered = error_of(dir.file("broken.h5"));
  EXPECT_EQ(altered.rfind(dir.file("broken.h5") + ": the model file is damaged: its bytes differ from those it was written with (checksum ", 0), 0u)
      << altered;
  EXPECT_EQ(error_of(dir.file("unchecked.h5")), dir.file("unchecked.h5") + ": logistic regression weights are missing or not 3 x 5");
}

}  // namespace
}  // namespace celltyper
