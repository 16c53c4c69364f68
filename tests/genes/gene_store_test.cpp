// Tests of GeneStore: construction rules, HDF5 round trip, integrity errors on damaged or foreign
// files, identity hash, truncation, nearest neighbours, default path, export.
#include <celltyper/error.hpp>
#include <celltyper/gene_store.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_support.hpp"

namespace celltyper {
namespace {

using test::TempDir;

/// Four genes in 3 dimensions, given out of Entrez order.
GeneStore small_store() {
  GeneStoreProvenance provenance;
  provenance.backend = "test";
  provenance.model = "hand-made";
  provenance.text_recipe_hash = "0123456789abcdef";
  provenance.species = "Homo sapiens";
  provenance.created_utc = "2024-01-02T03:04:05Z";
  provenance.celltyper_version = "0.0.0";
  provenance.extra = {{"note", "unit test"}, {"numbers", {1, 2, 3}}};
  return GeneStore({916, 915, 4069, 917}, {"CD3E", "CD3D", "LYZ", "CD3G"}, {"ENSG00000198851", "ENSG00000167286", "", "ENSG00000160654"},
                   {3, 4, 0,     // CD3E -> (0.6, 0.8, 0)
                    3, 4, 0.5,   // CD3D
                    0, 0, -2,    // LYZ
                    1, 1, 0},    // CD3G
                   3, provenance);
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

TEST(GeneStore, ConstructionSortsAndNormalises) {
  const GeneStore store = small_store();
  EXPECT_EQ(store.n_genes(), 4);
  EXPECT_EQ(store.dims(), 3);
  EXPECT_EQ(store.entrez_ids(), (std::vector<std::int64_t>{915, 916, 917, 4069}));
  EXPECT_EQ(store.symbols(), (std::vector<std::string>{"CD3D", "CD3E", "CD3G", "LYZ"}));
  EXPECT_EQ(store.ensembl_ids()[3], "");
  EXPECT_FLOAT_EQ(store.row(1)[0], 0.6F);
  EXPECT_FLOAT_EQ(store.row(1)[1], 0.8F);
  EXPECT_FLOAT_EQ(store.row(3)[2], -1.0F);
  EXPECT_EQ(store.find_entrez(4069), 3);
  EXPECT_EQ(store.find_entrez(1), -1);
  EXPECT_EQ(store.find_gene("CD3E"), 1);
  EXPECT_EQ(store.find_gene("cd3g"), 2);
  EXPECT_EQ(store.find_gene("916"), 1);
  EXPECT_EQ(store.find_gene("ENSG00000167286.3"), 0);
  EXPECT_EQ(store.find_gene("NOPE"), -1);
  EXPECT_EQ(store.provenance().dims, 3);

  EXPECT_NE(input_error_message([] { GeneStore({1, 1}, {"A", "B"}, {"", ""}, {1, 0, 0, 1}, 2, {}); }).find("Entrez id 1 appears twice"),
            std::string::npos);
  EXPECT_NE(input_error_message([] { GeneStore({1, 2}, {"A", "B"}, {"", ""}, {1, 0, 0, 0}, 2, {}); }).find("B (2) is all zero"),
            std::string::npos);
  EXPECT_NE(input_error_message([] { GeneStore({1}, {"A"}, {""}, {NAN, 1}, 2, {}); }).find("non-finite"), std::string::npos);
  EXPECT_NE(input_error_message([] { GeneStore({1}, {"A"}, {""}, {1, 2, 3}, 2, {}); }).find("do not make a 1 x 2 store"),
            std::string::npos);
  EXPECT_THROW(GeneStore({}, {}, {}, {}, 0, {}), InputError);
}

TEST(GeneStore, SaveLoadRoundTrip) {
  TempDir directory;
  const GeneStore store = small_store();
  const std::string path = directory.file("store.h5");
  store.save(path);
  const GeneStore back = GeneStore::load(path);
  EXPECT_EQ(back.entrez_ids(), store.entrez_ids());
  EXPECT_EQ(back.symbols(), store.symbols());
  EXPECT_EQ(back.ensembl_ids(), store.ensembl_ids());
  EXPECT_EQ(back.matrix(), store.matrix());
  EXPECT_EQ(back.identity_hash(), store.identity_hash());
  EXPECT_EQ(back.provenance().to_json(), store.provenance().to_json());
  EXPECT_EQ(GeneStoreProvenance::from_json(store.provenance().to_json()).to_json(), store.provenance().to_json());
  // `genes info` reads the attributes only, and says what loading the store says.
  EXPECT_EQ(GeneStore::read_info(path), back.info_json());
  EXPECT_THROW((void)GeneStore::read_info(directory.file("absent.h5")), IoError);
  // Atomic write: only the store in the directory; saving again replaces it.
  store.save(path);
  std::size_t n_files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(directory.path())) ++n_files;
  EXPECT_EQ(n_files, 1U);
  EXPECT_THROW(store.save(directory.file("missing/dir/store.h5")), IoError);
}

TEST(GeneStore, IdentityHashDependsOnContentOnly) {
  const GeneStore store = small_store();
  GeneStoreProvenance other;
  other.backend = "something else";
  const GeneStore same_content(store.entrez_ids(), store.symbols(), store.ensembl_ids(), store.matrix(), 3, other);
  EXPECT_EQ(same_content.identity_hash(), store.identity_hash());
  std::vector<float> changed = store.matrix();
  changed[0] = 0.5F;
  const GeneStore different(store.entrez_ids(), store.symbols(), store.ensembl_ids(), changed, 3, other);
  EXPECT_NE(different.identity_hash(), store.identity_hash());
  EXPECT_EQ(store.identity_hash().size(), 16U);
}

TEST(GeneStore, TruncateAndNearest) {
  const GeneStore store = small_store();
  const GeneStore two = store.truncated(2);
  EXPECT_EQ(two.dims(), 2);
  EXPECT_EQ(two.n_genes(), 3);  // LYZ (0, 0, -1) has an all-zero prefix: dropped
  EXPECT_EQ(two.find_entrez(4069), -1);
  EXPECT_EQ(two.provenance().extra["truncation"]["n_dropped_zero_rows"], 1);
  EXPECT_EQ(two.provenance().dims, 3);
  EXPECT_NEAR(two.row(0)[0], 0.6, 1e-6);  // CD3D (3, 4, 0.5) -> (0.6, 0.8)
  EXPECT_THROW(store.truncated(0), InputError);
  EXPECT_THROW(store.truncated(4), InputError);

  const auto nearest = store.nearest(store.find_gene("CD3E"), 10);
  ASSERT_EQ(nearest.size(), 3U);
  EXPECT_EQ(store.symbols()[static_cast<std::size_t>(nearest[0].first)], "CD3D");
  EXPECT_EQ(store.symbols()[static_cast<std::size_t>(nearest[1].first)], "CD3G");
  EXPECT_EQ(store.symbols()[static_cast<std::size_t>(nearest[2].first)], "LYZ");
  EXPECT_NEAR(nearest[2].second, 0.0, 1e-7);
  EXPECT_NEAR(nearest[1].second, (0.6 + 0.8) / std::sqrt(2.0), 1e-6);
  EXPECT_EQ(store.nearest(0, 1).size(), 1U);
  EXPECT_THROW(store.nearest(4, 1), InputError);
}

TEST(GeneStore, IntegrityErrorsNameTheFile) {
  TempDir directory;
  const std::string good = directory.file("good.h5");
  small_store().save(good);
  // Damaged copies made with h5py.
  const std::string script = R"(
import shutil, sys, h5py, numpy as np
good, out = sys.argv[1], sys.argv[2]
def copy(name):
    path = out + '/' + name
    shutil.copy(good, path)
    return h5py.File(path, 'r+')
with copy('nan.h5') as f: f['embeddings'][0, 0] = np.nan
with copy('norm.h5') as f: f['embeddings'][1, :] = f['embeddings'][1, :] * 2
with copy('dup.h5') as f: f['genes/entrez_id'][1] = f['genes/entrez_id'][0]
with copy('shape.h5') as f:
    del f['genes/symbol']
    f['genes/symbol'] = np.array([b'A', b'B', b'C'])
with copy('version.h5') as f: f.attrs['format_version'] = np.array([99])
with copy('unsorted.h5') as f:
    ids = f['genes/entrez_id'][:]
    f['genes/entrez_id'][0], f['genes/entrez_id'][1] = ids[1], ids[0]
with h5py.File(out + '/foreign.h5', 'w') as f: f['x'] = np.zeros(3)
)";
  const auto made = test::run_program({test::system_python(), "-c", script, good, directory.path().string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  {
    std::ifstream in(good, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(directory.file("truncated.h5"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    std::ofstream(directory.file("text.h5")) << "not hdf5\n";
  }
  const auto message = [&](const std::string& name) {
    return input_error_message([&] { GeneStore::load(directory.file(name)); });
  };
  EXPECT_NE(message("nan.h5").find("nan.h5: /embeddings row 0 (gene CD3D) has a non-finite value at column 0"), std::string::npos)
      << message("nan.h5");
  EXPECT_NE(message("norm.h5").find("norm.h5: /embeddings row 1 (gene CD3E) has norm 2"), std::string::npos) << message("norm.h5");
  EXPECT_NE(message("dup.h5").find("dup.h5: /genes/entrez_id repeats 915"), std::string::npos) << message("dup.h5");
  EXPECT_NE(message("shape.h5").find("shape.h5: /genes/symbol has shape [3] but /embeddings has 4 rows"), std::string::npos)
      << message("shape.h5");
  EXPECT_NE(message("foreign.h5").find("foreign.h5: not a celltyper gene store"), std::string::npos) << message("foreign.h5");
  EXPECT_NE(message("truncated.h5").find("truncated.h5"), std::string::npos) << message("truncated.h5");
  EXPECT_NE(message("text.h5").find("text.h5: not a gene store (not an HDF5 file"), std::string::npos) << message("text.h5");
  EXPECT_THROW(GeneStore::load(directory.file("version.h5")), UnsupportedError);
  EXPECT_THROW(GeneStore::load(directory.file("absent.h5")), IoError);
  EXPECT_THROW(GeneStore::load(directory.path().string()), InputError);
  // Rows out of Entrez order are put back in order on load.
  const GeneStore unsorted = GeneStore::load(directory.file("unsorted.h5"));
  EXPECT_EQ(unsorted.entrez_ids(), (std::vector<std::int64_t>{915, 916, 917, 4069}));
  EXPECT_EQ(unsorted.symbols()[0], "CD3E");  // the ids were swapped, not the symbols
}

TEST(GeneStore, DefaultPathFollowsEnvironmentThenExecutable) {
  const char* saved = std::getenv("CELLTYPER_GENE_STORE");
  const std::string saved_value = saved != nullptr ? saved : "";
  setenv("CELLTYPER_GENE_STORE", "/somewhere/store.h5", 1);
  EXPECT_EQ(default_gene_store_path(), "/somewhere/store.h5");
  EXPECT_NE(input_error_message([] { resolve_gene_store_path(""); }).find("no gene store at /somewhere/store.h5"), std::string::npos);
  EXPECT_NE(input_error_message([] { resolve_gene_store_path(""); }).find("(named by CELLTYPER_GENE_STORE): correct or unset the variable"),
            std::string::npos);
  unsetenv("CELLTYPER_GENE_STORE");
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
  EXPECT_EQ(default_gene_store_path(), (exe.parent_path() / "share/celltyper/gene_embeddings.h5").string());
  EXPECT_NE(input_error_message([] { resolve_gene_store_path(""); }).find("(the default; set --genes or CELLTYPER_GENE_STORE): run scripts/setup.sh"),
            std::string::npos);
  if (!saved_value.empty()) setenv("CELLTYPER_GENE_STORE", saved_value.c_str(), 1);
  TempDir directory;
  const std::string path = directory.file("s.h5");
  EXPECT_NE(input_error_message([&] { resolve_gene_store_path(path); }).find("does not exist"), std::string::npos);
  small_store().save(path);
  EXPECT_EQ(resolve_gene_store_path(path), path);
}

TEST(GeneStore, ExportNpyIsReadByNumpy) {
  TempDir directory;
  const GeneStore store = small_store();
  const std::string prefix = directory.file("out");
  export_gene_store_npy(store, prefix);
  export_gene_store_tsv(store, prefix);
  const std::string script = R"(
import sys, numpy as np
m = np.load(sys.argv[1] + '.npy')
assert m.dtype == np.float32 and m.shape == (4, 3) and m.flags['C_CONTIGUOUS'], (m.dtype, m.shape)
genes = open(sys.argv[1] + '.genes.tsv').read().split('\n')
assert genes[0] == 'entrez_id\tsymbol\tensembl_id' and genes[2].startswith('916\tCD3E\t'), genes
t = np.loadtxt(sys.argv[1] + '.tsv', delimiter='\t', skiprows=1, usecols=(3, 4, 5), dtype=np.float32)
assert (t == m).all(), (t, m)
print(m[1, 0], m[1, 1])
)";
  const auto result = test::run_program({test::system_python(), "-c", script, prefix});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "0.6 0.8\n");
}

}  // namespace
}  // namespace celltyper
