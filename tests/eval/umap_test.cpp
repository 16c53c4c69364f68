// UMAP of the report's cell map: separates known clusters, is deterministic, and on real data
// preserves neighbourhoods as well as scanpy's own UMAP (umap-learn), judged by scikit-learn's
// trustworthiness.
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/report.hpp>

#include "support/test_support.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

namespace celltyper {
namespace {

/// Share of each point's `k` nearest 2-D neighbours that carry its label, averaged.
double neighbour_label_agreement(const std::vector<float>& xy, const std::vector<int>& labels, std::size_t k) {
  const std::size_t n = labels.size();
  double total = 0;
  std::vector<std::pair<float, std::size_t>> order(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      const float dx = xy[2 * i] - xy[2 * j];
      const float dy = xy[2 * i + 1] - xy[2 * j + 1];
      order[j] = {j == i ? 1e30f : dx * dx + dy * dy, j};
    }
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end());
    std::size_t same = 0;
    for (std::size_t m = 0; m < k; ++m) same += labels[order[m].second] == labels[i] ? 1 : 0;
    total += static_cast<double>(same) / static_cast<double>(k);
  }
  return total / static_cast<double>(n);
}

TEST(Umap, SeparatesClustersAndIsDeterministic) {
  // Three Gaussian blobs in 30 dimensions, 120 cells each.
  std::mt19937 engine(5);
  std::normal_distribution<float> normal;
  DenseMatrix data{360, 30, {}};
  std::vector<int> labels;
  for (int cluster = 0; cluster < 3; ++cluster) {
    std::vector<float> centre(30);
    for (auto& value : centre) value = 4.0f * normal(engine);
    for (int i = 0; i < 120; ++i) {
      for (int d = 0; d < 30; ++d) data.values.push_back(centre[static_cast<std::size_t>(d)] + normal(engine));
      labels.push_back(cluster);
    }
  }
  std::vector<std::size_t> rows(360);
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  const std::vector<float> layout = umap_2d(data, rows);
  ASSERT_EQ(layout.size(), 720u);
  EXPECT_TRUE(std::all_of(layout.begin(), layout.end(), [](float v) { return std::isfinite(v); }));
  EXPECT_GT(neighbour_label_agreement(layout, labels, 10), 0.99);
  const std::vector<float> again = umap_2d(data, rows);
  EXPECT_EQ(std::memcmp(layout.data(), again.data(), layout.size() * sizeof(float)), 0) << "same seed, other layout";
  UmapOptions other;
  other.seed = 1;
  EXPECT_NE(umap_2d(data, rows, other), layout);
  // A subset, in the caller's order.
  const std::vector<std::size_t> some{5, 200, 17, 300, 121, 250};
  EXPECT_EQ(umap_2d(data, some).size(), 12u);
  EXPECT_THROW(umap_2d(data, {1, 2}), InputError);
  data.values[7] = std::nanf("");
  EXPECT_THROW(umap_2d(data, rows), InputError);
}

TEST(Umap, PreservesNeighbourhoodsLikeScanpysUmapOnPbmc68k) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  if (test::run_program({test::system_python(), "-c", "import sklearn, anndata"}).exit_code != 0) GTEST_SKIP() << "no sklearn";
  H5adFile file(path);
  const DenseMatrix pca = file.read_obsm("X_pca");  // scanpy's 50 PCs: the input of its UMAP
  std::vector<std::size_t> rows(static_cast<std::size_t>(pca.rows));
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  const std::vector<float> layout = umap_2d(pca, rows);
  test::TempDir dir;
  {
    std::ofstream out(dir.file("layout.txt"));
    for (std::size_t i = 0; i < rows.size(); ++i) out << fmt::format("{} {}\n", layout[2 * i], layout[2 * i + 1]);
  }
  // Trustworthiness (k = 15) against the 50-PC space, and how often 2-D neighbours share a
  // bulk label, for ours, scanpy's X_umap and the first two PCs.
  const std::string script = fmt::format(
      "import anndata, numpy as np\n"
      "from sklearn.manifold import trustworthiness\n"
      "from sklearn.neighbors import NearestNeighbors\n"
      "a = anndata.read_h5ad('{}')\n"
      "X = a.obsm['X_pca']; y = a.obs['bulk_labels'].astype(str).values\n"
      "def agree(Z):\n"
      "    idx = NearestNeighbors(n_neighbors=16).fit(Z).kneighbors(Z, return_distance=False)[:, 1:]\n"
      "    return (y[idx] == y[:, None]).mean()\n"
      "for name, Z in [('celltyper', np.loadtxt('{}')), ('scanpy', a.obsm['X_umap']), ('pca2', X[:, :2])]:\n"
      "    print(name, trustworthiness(X, Z, n_neighbors=15), agree(Z))\n",
      path, dir.file("layout.txt"));
  const auto run = test::run_program({test::system_python(), "-c", script});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::map<std::string, std::pair<double, double>> scores;
  std::istringstream lines(run.out);
  std::string name;
  double trust = 0, agreement = 0;
  while (lines >> name >> trust >> agreement) scores[name] = {trust, agreement};
  ASSERT_EQ(scores.size(), 3u) << run.out;
  std::printf("pbmc68k_reduced, trustworthiness (k=15) / 2-D neighbour label agreement: celltyper UMAP %.3f / %.3f, scanpy UMAP %.3f / %.3f, "
              "PCA %.3f / %.3f\n",
              scores["celltyper"].first, scores["celltyper"].second, scores["scanpy"].first, scores["scanpy"].second, scores["pca2"].first,
              scores["pca2"].second);
  EXPECT_GT(scores["celltyper"].first, scores["pca2"].first + 0.02);  // measured 0.926 vs 0.886
  EXPECT_GT(scores["celltyper"].first, scores["scanpy"].first - 0.02);
  EXPECT_GT(scores["celltyper"].second, scores["scanpy"].second - 0.03);
}

}  // namespace
}  // namespace celltyper
