/// @file report_pca.cpp
/// Principal components of cell embeddings for the report's cell map, and deterministic
/// subsampling of the cells to draw.

// Eigen's kernels are inlined with -march=native (AVX-512): GCC 12 reports false
// -Wmaybe-uninitialized inside the intrinsics headers (as in genes/lsa_svd.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <Eigen/Dense>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "celltyper/error.hpp"
#include "celltyper/report.hpp"

namespace celltyper {
namespace {

/// Dimensions up to which the covariance matrix is decomposed exactly (cost rows x dims^2).
constexpr Eigen::Index kExactMaxDims = 512;
/// Extra random directions of the randomised range finder.
constexpr Eigen::Index kOversampling = 10;
/// Power iterations of the randomised range finder (each one re-orthonormalised).
constexpr int kPowerIterations = 8;

/// Orthonormal basis of the columns of `matrix` (thin Q of a Householder QR).
Eigen::MatrixXd orthonormal_basis(const Eigen::MatrixXd& matrix) {
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(matrix);
  return qr.householderQ() * Eigen::MatrixXd::Identity(matrix.rows(), matrix.cols());
}

/// Columns: the top `k` right singular vectors of the centred data (dims x k).
Eigen::MatrixXd top_directions(const Eigen::MatrixXd& centred, Eigen::Index k) {
  const Eigen::Index dims = centred.cols();
  if (dims <= kExactMaxDims) {
    const Eigen::MatrixXd covariance = centred.transpose() * centred;
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);
    // Eigenvalues ascend: the last k columns, largest first.
    return solver.eigenvectors().rightCols(k).rowwise().reverse();
  }
  const Eigen::Index width = std::min<Eigen::Index>({k + kOversampling, dims, centred.rows()});
  // Raw engine output mapped to [-1, 1): the same test directions on every platform.
  std::mt19937_64 engine(20240611);
  Eigen::MatrixXd omega(dims, width);
  for (Eigen::Index j = 0; j < width; ++j) {
    for (Eigen::Index i = 0; i < dims; ++i) omega(i, j) = static_cast<double>(engine() >> 11) * 0x1.0p-52 - 1.0;
  }
  Eigen::MatrixXd basis = orthonormal_basis(centred * omega);
  for (int iteration = 0; iteration < kPowerIterations; ++iteration) {
    const Eigen::MatrixXd back = orthonormal_basis(centred.transpose() * basis);
    basis = orthonormal_basis(centred * back);
  }
  const Eigen::MatrixXd small = basis.transpose() * centred;  // width x dims
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(small, Eigen::ComputeThinV);
  return svd.matrixV().leftCols(k);
}

}  // namespace

PrincipalComponents principal_components(const DenseMatrix& data, int n_components,
                                         const std::vector<std::size_t>* rows) {
  const std::size_t n_rows = rows != nullptr ? rows->size() : static_cast<std::size_t>(data.rows);
  const auto dims = static_cast<Eigen::Index>(data.cols);
  if (n_rows < 2) throw InputError(fmt::format("principal components need at least 2 cells; got {}", n_rows));
  if (dims < 1) throw InputError("principal components need at least one dimension; the matrix has none");
  if (n_components < 1 || n_components > dims) {
    throw InputError(fmt::format("asked for {} principal components of a {}-dimensional matrix", n_components, dims));
  }
  Eigen::MatrixXd centred(static_cast<Eigen::Index>(n_rows), dims);
  for (std::size_t r = 0; r < n_rows; ++r) {
    const std::size_t source = rows != nullptr ? (*rows)[r] : r;
    if (source >= static_cast<std::size_t>(data.rows)) {
      throw InputError(fmt::format("row {} is outside the {}-row matrix", source, data.rows));
    }
    const float* values = data.row(static_cast<std::int64_t>(source));
    for (Eigen::Index c = 0; c < dims; ++c) {
      if (!std::isfinite(values[c])) {
        throw InputError(fmt::format("embedding has a non-finite value at cell {}, dimension {}", source, c));
      }
      centred(static_cast<Eigen::Index>(r), c) = values[c];
    }
  }
  const Eigen::RowVectorXd mean = centred.colwise().mean();
  centred.rowwise() -= mean;

  const Eigen::Index k = n_components;
  Eigen::MatrixXd directions = top_directions(centred, k);
  for (Eigen::Index j = 0; j < k; ++j) {
    Eigen::Index largest = 0;
    directions.col(j).cwiseAbs().maxCoeff(&largest);
    if (directions(largest, j) < 0) directions.col(j) *= -1.0;
  }
  const Eigen::MatrixXd scores = centred * directions;
  const double denominator = static_cast<double>(n_rows - 1);
  const double total_variance = centred.squaredNorm() / denominator;

  PrincipalComponents result;
  result.n_components = n_components;
  result.coordinates.resize(n_rows * static_cast<std::size_t>(k));
  for (std::size_t r = 0; r < n_rows; ++r) {
    for (Eigen::Index j = 0; j < k; ++j) {
      result.coordinates[r * static_cast<std::size_t>(k) + static_cast<std::size_t>(j)] =
          static_cast<float>(scores(static_cast<Eigen::Index>(r), j));
    }
  }
  result.components.resize(static_cast<std::size_t>(k * dims));
  for (Eigen::Index j = 0; j < k; ++j) {
    for (Eigen::Index c = 0; c < dims; ++c) result.components[static_cast<std::size_t>(j * dims + c)] = directions(c, j);
    const double variance = scores.col(j).squaredNorm() / denominator;
    result.explained_variance.push_back(variance);
    result.explained_variance_ratio.push_back(total_variance > 0.0 ? variance / total_variance : 0.0);
  }
  return result;
}

std::vector<std::size_t> subsample_rows(std::size_t n, std::size_t max_rows, std::uint64_t seed) {
  std::vector<std::size_t> rows(n);
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  if (n <= max_rows) return rows;
  // Partial Fisher-Yates shuffle; the modulo bias is below 2^-30 for any realistic n.
  std::mt19937_64 engine(seed);
  for (std::size_t i = 0; i < max_rows; ++i) {
    const std::size_t j = i + static_cast<std::size_t>(engine() % (n - i));
    std::swap(rows[i], rows[j]);
  }
  rows.resize(max_rows);
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace celltyper
