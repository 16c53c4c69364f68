// Combining gene stores (include/celltyper/gene_store_combine.hpp): the combined cosine is the
// weighted mean of the sources' cosines, the genes are those in every source, and the rotation
// orders the dimensions by decreasing energy without changing any cosine.
#include <celltyper/error.hpp>
#include <celltyper/gene_store_combine.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace celltyper {
namespace {

GeneStore random_store(std::vector<std::int64_t> ids, int dims, unsigned seed, const std::string& backend) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> matrix(ids.size() * static_cast<std::size_t>(dims));
  // A few strong directions, so that the principal axes are far from the identity.
  for (std::size_t i = 0; i < ids.size(); ++i)
    for (int d = 0; d < dims; ++d) matrix[i * static_cast<std::size_t>(dims) + static_cast<std::size_t>(d)] = normal(rng) * (d % 5 == 0 ? 4.0F : 1.0F);
  std::vector<std::string> symbols;
  for (const auto id : ids) symbols.push_back("G" + std::to_string(id));
  GeneStoreProvenance provenance;
  provenance.backend = backend;
  provenance.model = backend + "-model";
  provenance.dims = dims;
  return GeneStore(ids, symbols, std::vector<std::string>(ids.size()), std::move(matrix), dims, provenance);
}

double cosine(const GeneStore& store, std::int64_t a, std::int64_t b) {
  const float* x = store.row(store.find_entrez(a));
  const float* y = store.row(store.find_entrez(b));
  double dot = 0;
  for (int d = 0; d < store.dims(); ++d) dot += static_cast<double>(x[d]) * y[d];
  return dot;
}

TEST(GeneStoreCombine, CosineIsTheWeightedMeanOverTheGenesOfEveryStore) {
  std::vector<std::int64_t> ids_a;
  std::vector<std::int64_t> ids_b;
  for (std::int64_t i = 1; i <= 60; ++i) ids_a.push_back(i);
  for (std::int64_t i = 11; i <= 80; ++i) ids_b.push_back(i);
  const GeneStore a = random_store(ids_a, 24, 1, "lsa");
  const GeneStore b = random_store(ids_b, 16, 2, "use-lite");
  for (const bool rotate : {true, false}) {
    CombineOptions options;
    options.weights = {1.0, 3.0};
    options.principal_axes = rotate;
    const CombineResult result = combine_gene_stores({a, b}, options);
    EXPECT_EQ(result.n_common, 50);  // 11..60
    EXPECT_EQ(result.store.n_genes(), 50);
    EXPECT_EQ(result.store.dims(), 40);
    EXPECT_EQ(result.store.provenance().backend, "combined");
    for (const auto& [g, h] : std::vector<std::pair<std::int64_t, std::int64_t>>{{11, 12}, {20, 47}, {33, 60}, {60, 11}}) {
      const double expected = (1.0 * cosine(a, g, h) + 3.0 * cosine(b, g, h)) / 4.0;
      EXPECT_NEAR(cosine(result.store, g, h), expected, 2e-5) << g << "," << h << (rotate ? " rotated" : "");
    }
    if (rotate) {  // energy per column, non-increasing
      std::vector<double> energy(40, 0.0);
      for (std::int64_t i = 0; i < result.store.n_genes(); ++i)
        for (int d = 0; d < 40; ++d) energy[static_cast<std::size_t>(d)] += std::pow(result.store.row(i)[d], 2);
      for (std::size_t d = 1; d < energy.size(); ++d) EXPECT_LE(energy[d], energy[d - 1] + 1e-6) << "column " << d;
    }
  }
}

TEST(GeneStoreCombine, CenteringRemovesTheCommonDirection) {
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 1; i <= 50; ++i) ids.push_back(i);
  // A store whose rows share one large direction (like USE-lite's): offset + noise.
  const GeneStore noisy = random_store(ids, 16, 7, "noise");
  std::vector<float> matrix(noisy.matrix());
  for (std::size_t i = 0; i < matrix.size(); i += 16) matrix[i] += 10.0F;
  const GeneStore shared(ids, noisy.symbols(), noisy.ensembl_ids(), matrix, 16, noisy.provenance());
  EXPECT_GT(cosine(shared, 1, 2), 0.9);
  CombineOptions options;
  options.center = true;
  const CombineResult centered = combine_gene_stores({shared}, options);
  EXPECT_LT(std::abs(cosine(centered.store, 1, 2)), 0.6);
  // The mean of the centred rows is ~0 (before re-normalisation exactly 0).
  double mean_first = 0;
  for (std::int64_t i = 0; i < centered.store.n_genes(); ++i) mean_first += centered.store.row(i)[0];
  EXPECT_LT(std::abs(mean_first / 50.0), 0.2);
  EXPECT_THROW(combine_gene_stores({shared}), InputError);  // one store needs centring
}

TEST(GeneStoreCombine, DimsKeepsTheLeadingAxes) {
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 1; i <= 40; ++i) ids.push_back(i);
  CombineOptions options;
  options.dims = 8;
  const CombineResult result = combine_gene_stores({random_store(ids, 12, 3, "a"), random_store(ids, 12, 4, "b")}, options);
  EXPECT_EQ(result.store.dims(), 8);
  EXPECT_EQ(result.store.n_genes(), 40);
}

TEST(GeneStoreCombine, BadWeightsOrNoCommonGeneAreInputErrors) {
  const GeneStore a = random_store({1, 2, 3}, 4, 5, "a");
  const GeneStore b = random_store({4, 5, 6}, 4, 6, "b");
  EXPECT_THROW(combine_gene_stores({a, b}), InputError);  // no gene in both
  CombineOptions options;
  options.weights = {1.0, -1.0};
  EXPECT_THROW(combine_gene_stores({a, a}, options), InputError);
  options.weights = {1.0};
  EXPECT_THROW(combine_gene_stores({a, a}, options), InputError);
  EXPECT_THROW(combine_gene_stores({a}), InputError);
  EXPECT_THROW(combine_gene_stores({}), InputError);
}

}  // namespace
}  // namespace celltyper
