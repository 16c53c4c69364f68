/// Combining gene stores (see gene_store_combine.hpp).
#include <celltyper/error.hpp>
#include <celltyper/gene_store_combine.hpp>

// GCC 12 reports false -Wmaybe-uninitialized inside the AVX-512 intrinsics that Eigen expands
// to with -march=native (as in genes/lsa_svd.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Dense>
#include <fmt/format.h>

#include <cmath>
#include <numeric>

namespace celltyper {

CombineResult combine_gene_stores(const std::vector<GeneStore>& sources, const CombineOptions& options) {
  if (sources.empty() || (sources.size() < 2 && !options.center))
    throw InputError("combining needs at least 2 gene stores (or 1 with centring)");
  std::vector<double> weights = options.weights.empty() ? std::vector<double>(sources.size(), 1.0) : options.weights;
  if (weights.size() != sources.size())
    throw InputError(fmt::format("{} weights for {} gene stores", weights.size(), sources.size()));
  for (const double w : weights)
    if (!(w > 0.0) || !std::isfinite(w)) throw InputError(fmt::format("a weight must be a positive number, got {}", w));
  const double total_weight = std::accumulate(weights.begin(), weights.end(), 0.0);

  CombineResult result;
  // Genes in every source, in the first source's (ascending Entrez) order.
  std::vector<std::vector<std::int32_t>> rows(sources.size());
  const GeneStore& first = sources.front();
  for (std::int64_t i = 0; i < first.n_genes(); ++i) {
    const std::int64_t id = first.entrez_ids()[static_cast<std::size_t>(i)];
    std::vector<std::int32_t> found = {static_cast<std::int32_t>(i)};
    for (std::size_t s = 1; s < sources.size() && found.size() == s; ++s) {
      const std::int32_t row = sources[s].find_entrez(id);
      if (row >= 0) found.push_back(row);
    }
    if (found.size() != sources.size()) continue;
    for (std::size_t s = 0; s < sources.size(); ++s) rows[s].push_back(found[s]);
  }
  for (const GeneStore& source : sources) result.genes_per_source.push_back(source.n_genes());
  result.n_common = static_cast<std::int64_t>(rows.front().size());
  if (result.n_common == 0) throw InputError("no gene is in every gene store: nothing to combine");

  int dims = 0;
  for (const GeneStore& source : sources) dims += source.dims();
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Matrix x(result.n_common, dims);
  int column = 0;
  std::vector<double> mean_norms;
  for (std::size_t s = 0; s < sources.size(); ++s) {
    const GeneStore& source = sources[s];
    const int k = source.dims();
    Eigen::RowVectorXd mean = Eigen::RowVectorXd::Zero(k);
    if (options.center) {
      for (std::int64_t i = 0; i < source.n_genes(); ++i) mean += Eigen::Map<const Eigen::RowVectorXf>(source.row(i), k).cast<double>();
      mean /= static_cast<double>(source.n_genes());
      mean_norms.push_back(mean.norm());
    }
    const auto scale = std::sqrt(weights[s] / total_weight);
    for (std::int64_t g = 0; g < result.n_common; ++g) {
      Eigen::RowVectorXd row = Eigen::Map<const Eigen::RowVectorXf>(source.row(rows[s][static_cast<std::size_t>(g)]), k).cast<double>() - mean;
      const double norm = row.norm();
      if (norm > 0) row /= norm;  // a gene equal to the mean (never seen in practice) stays zero here
      x.block(g, column, 1, k) = (row * scale).cast<float>();
    }
    column += k;
  }
  nlohmann::json axes = nullptr;
  if (options.principal_axes) {
    // Principal axes of the uncentred rows: eigenvectors of X^T X (in double), largest first.
    const Eigen::MatrixXd gram = (x.transpose().cast<double>() * x.cast<double>());
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(gram);
    if (solver.info() != Eigen::Success) throw InputError("the eigen-decomposition of the combined vectors failed");
    const Eigen::MatrixXf rotation = solver.eigenvectors().rowwise().reverse().cast<float>();
    x = x * rotation;
    const Eigen::VectorXd values = solver.eigenvalues().reverse();
    std::vector<double> share;
    const double sum = values.sum();
    for (const int k : {16, 64, 128, 256, 512, 1024})
      if (k <= dims) share.push_back(values.head(k).sum() / sum);
    axes = {{"variance_share_of_first", {16, 64, 128, 256, 512, 1024}}, {"shares", share}};
  }

  std::vector<std::int64_t> ids;
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl;
  for (std::int64_t g = 0; g < result.n_common; ++g) {
    const std::int32_t row = rows.front()[static_cast<std::size_t>(g)];
    ids.push_back(first.entrez_ids()[static_cast<std::size_t>(row)]);
    symbols.push_back(first.symbols()[static_cast<std::size_t>(row)]);
    ensembl.push_back(first.ensembl_ids()[static_cast<std::size_t>(row)]);
  }
  GeneStoreProvenance provenance;
  provenance.backend = "combined";
  std::vector<std::string> models;
  nlohmann::json parts = nlohmann::json::array();
  for (std::size_t s = 0; s < sources.size(); ++s) {
    const GeneStoreProvenance& p = sources[s].provenance();
    models.push_back(fmt::format("{}:{}({})", p.backend, p.model, sources[s].dims()));
    parts.push_back({{"backend", p.backend}, {"model", p.model}, {"dims", sources[s].dims()}, {"weight", weights[s]},
                     {"n_genes", sources[s].n_genes()}, {"identity_hash", sources[s].identity_hash()},
                     {"text_recipe_hash", p.text_recipe_hash}});
  }
  provenance.model = fmt::format("{}", fmt::join(models, "+"));
  provenance.dims = dims;
  provenance.gene_table_hash = first.provenance().gene_table_hash;
  provenance.species = first.provenance().species;
  provenance.text_recipe_hash = first.provenance().text_recipe_hash;
  provenance.created_utc = utc_timestamp();
  provenance.celltyper_version = CELLTYPER_VERSION;
  provenance.extra["combine"] = {{"sources", parts},
                                 {"n_common_genes", result.n_common},
                                 {"principal_axes", options.principal_axes},
                                 {"centered", options.center},
                                 {"mean_row_norms", mean_norms},
                                 {"axes", axes},
                                 {"cosine", "weighted mean of the sources' cosines (before any truncation)"}};
  std::vector<float> matrix(x.data(), x.data() + x.size());
  GeneStore combined(std::move(ids), std::move(symbols), std::move(ensembl), std::move(matrix), dims, std::move(provenance));
  result.store = options.dims > 0 && options.dims < dims ? combined.truncated(options.dims) : std::move(combined);
  return result;
}

}  // namespace celltyper
