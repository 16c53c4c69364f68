// LSA, part 2: truncated SVD of a sparse matrix by randomised subspace iteration (Halko,
// Martinsson & Tropp 2011, Algorithms 4.4 + 5.1) with Cholesky-QR re-orthonormalisation.
//
// Determinism: every parallel loop runs over fixed row blocks (kRowBlock rows) or fixed Gram
// tiles and writes disjoint outputs; no reduction depends on the number of threads, so results
// are bit-identical at any thread count.
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/parallel.hpp>

#include "splitmix64.hpp"

// GCC 12 reports false -W(maybe-)uninitialized positives inside its AVX-512 intrinsics when
// Eigen's kernels are inlined with -march=native; the warning is noise for this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

namespace celltyper {

namespace {

using Matrix = Eigen::MatrixXd;
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMap = Eigen::Map<RowMatrix>;
using ConstRowMap = Eigen::Map<const RowMatrix>;

constexpr std::int64_t kRowBlock = 512;    // rows per work item of dense row-block loops
constexpr std::int64_t kSparseBlock = 256;  // rows per work item of sparse products
constexpr std::int64_t kGramTile = 128;     // Gram matrix tile width
// Sparse products gather rows of a dense factor; they stream it in chunks of rows so that the
// gathered part stays in cache (a chunk: at least kMinChunkRows rows, else kChunkBytes) and in
// column tiles of at most kMaxColumnTile (one tile for every supported sketch width: measured on
// the full human gene set, narrower tiles cost more in repeated index passes than they save).
constexpr std::int64_t kMaxColumnTile = 1040;
constexpr std::int64_t kChunkBytes = 16 << 20;
constexpr std::int64_t kMinChunkRows = 2048;

/// A read-only CSR matrix.
struct Csr {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  const std::int64_t* indptr = nullptr;
  const std::int32_t* indices = nullptr;
  const double* values = nullptr;
};

/// An owned CSR matrix (the transpose).
struct OwnedCsr {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<std::int64_t> indptr;
  std::vector<std::int32_t> indices;
  std::vector<double> values;
  [[nodiscard]] Csr view() const { return {rows, cols, indptr.data(), indices.data(), values.data()}; }
};

/// The transpose of `a` by counting sort (columns of each output row ascending).
OwnedCsr transpose(const Csr& a) {
  OwnedCsr t;
  t.rows = a.cols;
  t.cols = a.rows;
  const std::int64_t nnz = a.indptr[a.rows];
  t.indptr.assign(static_cast<std::size_t>(a.cols) + 1, 0);
  for (std::int64_t p = 0; p < nnz; ++p) ++t.indptr[static_cast<std::size_t>(a.indices[p]) + 1];
  for (std::int64_t c = 0; c < a.cols; ++c) t.indptr[static_cast<std::size_t>(c) + 1] += t.indptr[static_cast<std::size_t>(c)];
  t.indices.resize(static_cast<std::size_t>(nnz));
  t.values.resize(static_cast<std::size_t>(nnz));
  std::vector<std::int64_t> next(t.indptr.begin(), t.indptr.end() - 1);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    for (std::int64_t p = a.indptr[r]; p < a.indptr[r + 1]; ++p) {
      const auto position = static_cast<std::size_t>(next[static_cast<std::size_t>(a.indices[p])]++);
      t.indices[position] = static_cast<std::int32_t>(r);
      t.values[position] = a.values[p];
    }
  }
  return t;
}

std::int64_t n_blocks(std::int64_t rows, std::int64_t block) { return (rows + block - 1) / block; }

/// y[a.rows x l] = a * x[a.cols x l] (row-major), cache-blocked (see kChunkBytes): x is taken in
/// chunks of rows (and column tiles); each output element still sums its row's entries in index
/// order, so the result equals the plain row-by-row product bit for bit.
void multiply(const Csr& a, const double* x, std::int64_t l, double* y, int threads) {
  const std::int64_t n_tiles = n_blocks(l, kMaxColumnTile);
  const std::int64_t tile_w = n_blocks(l, n_tiles);  // equal tiles of at most kMaxColumnTile columns
  const std::int64_t chunk_rows = std::max<std::int64_t>(kMinChunkRows, kChunkBytes / (tile_w * static_cast<std::int64_t>(sizeof(double))));
  std::vector<std::int64_t> cursor(static_cast<std::size_t>(a.rows));
  for (std::int64_t c0 = 0; c0 < l; c0 += tile_w) {
    const std::int64_t width = std::min(tile_w, l - c0);
    std::copy(a.indptr, a.indptr + a.rows, cursor.begin());
    for (std::int64_t k0 = 0; k0 < a.cols; k0 += chunk_rows) {
      const std::int64_t k1 = std::min(a.cols, k0 + chunk_rows);
      parallel_for(n_blocks(a.rows, kSparseBlock), threads, [&](std::int64_t block) {
        const std::int64_t r0 = block * kSparseBlock;
        const std::int64_t r1 = std::min(a.rows, r0 + kSparseBlock);
        for (std::int64_t i = r0; i < r1; ++i) {
          double* __restrict out = y + i * l + c0;
          if (k0 == 0) std::fill_n(out, width, 0.0);
          std::int64_t p = cursor[static_cast<std::size_t>(i)];
          const std::int64_t end = a.indptr[i + 1];
          for (; p < end && a.indices[p] < k1; ++p) {
            const double value = a.values[p];
            const double* __restrict in = x + static_cast<std::int64_t>(a.indices[p]) * l + c0;
            for (std::int64_t t = 0; t < width; ++t) out[t] += value * in[t];
          }
          cursor[static_cast<std::size_t>(i)] = p;
        }
      });
    }
  }
}

/// G = Y^T Y for Y [rows x l] row-major, by fixed lower-triangle tiles (each tile one GEMM).
Matrix gram(const double* y, std::int64_t rows, std::int64_t l, int threads) {
  const ConstRowMap matrix(y, rows, l);
  Matrix g(l, l);
  const std::int64_t tiles = n_blocks(l, kGramTile);
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  for (std::int64_t i = 0; i < tiles; ++i) {
    for (std::int64_t j = 0; j <= i; ++j) pairs.emplace_back(i, j);
  }
  parallel_for(static_cast<std::int64_t>(pairs.size()), threads, [&](std::int64_t item) {
    const auto [ti, tj] = pairs[static_cast<std::size_t>(item)];
    const std::int64_t i0 = ti * kGramTile;
    const std::int64_t j0 = tj * kGramTile;
    const std::int64_t bi = std::min(kGramTile, l - i0);
    const std::int64_t bj = std::min(kGramTile, l - j0);
    g.block(i0, j0, bi, bj).noalias() = matrix.middleCols(i0, bi).transpose() * matrix.middleCols(j0, bj);
  });
  for (std::int64_t j = 0; j < l; ++j) {
    for (std::int64_t i = 0; i < j; ++i) g(i, j) = g(j, i);
  }
  return g;
}

/// One Cholesky QR pass on Y [rows x l] in place: G = Y^T Y (+ shift * trace(G) * I) = R^T R,
/// Y <- Y R^{-1}. Returns false, leaving Y unchanged, when the factorisation fails or (when
/// `check_condition`) R is so ill-conditioned that Y R^{-1} would not be orthonormal.
bool cholesky_qr_pass(double* y, std::int64_t rows, std::int64_t l, double shift, bool check_condition, int threads) {
  Matrix g = gram(y, rows, l, threads);
  if (shift > 0) g.diagonal().array() += shift * g.trace();
  const Eigen::LLT<Matrix> llt(g);
  if (llt.info() != Eigen::Success) return false;
  const Matrix r = llt.matrixU();
  const Eigen::VectorXd diagonal = r.diagonal().cwiseAbs();
  if (!(diagonal.minCoeff() > 0) || !std::isfinite(diagonal.maxCoeff())) return false;
  // cond(R) >= max|r_ii| / min|r_ii|; above ~1e6 a single pass loses orthogonality badly.
  if (check_condition && diagonal.minCoeff() < 1e-6 * diagonal.maxCoeff()) return false;
  parallel_for(n_blocks(rows, kRowBlock), threads, [&](std::int64_t block) {
    const std::int64_t r0 = block * kRowBlock;
    const std::int64_t count = std::min(kRowBlock, rows - r0);
    RowMap rows_block(y + r0 * l, count, l);
    r.triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(rows_block);
  });
  return true;
}

/// Householder QR (thin Q), the robust fallback for rank-deficient sketches.
void householder_orthonormalize(double* y, std::int64_t rows, std::int64_t l) {
  const Matrix copy = ConstRowMap(y, rows, l);
  const Eigen::HouseholderQR<Matrix> qr(copy);
  const Matrix q = qr.householderQ() * Matrix::Identity(rows, l);
  RowMap(y, rows, l) = q;
}

/// Orthonormalise the columns of Y [rows x l] in place: `passes` Cholesky QR passes (1 inside
/// power iterations, 2 = CholeskyQR2 for the final basis); when the first pass is too
/// ill-conditioned, shifted CholeskyQR3 (Fukaya et al. 2020); Householder QR when that fails.
void orthonormalize(double* y, std::int64_t rows, std::int64_t l, int passes, int threads) {
  int remaining = passes;
  if (cholesky_qr_pass(y, rows, l, 0.0, true, threads)) {
    --remaining;
  } else {
    const double unit_roundoff = std::numeric_limits<double>::epsilon() / 2;
    const double shift = 11.0 * (static_cast<double>(rows) * static_cast<double>(l) + static_cast<double>(l) * static_cast<double>(l + 1)) *
                         unit_roundoff;
    if (!cholesky_qr_pass(y, rows, l, shift, false, threads)) {
      householder_orthonormalize(y, rows, l);
      return;
    }
    remaining = 2;
  }
  for (; remaining > 0; --remaining) {
    if (!cholesky_qr_pass(y, rows, l, 0.0, true, threads)) {
      householder_orthonormalize(y, rows, l);
      return;
    }
  }
}

using detail::SplitMix64;  // one stream per row

/// Standard normal entries for Omega [rows x l] row-major: row i from its own stream seeded by
/// (seed, i), Box-Muller pairs, so every entry is fixed by (seed, i, j).
void fill_gaussian(double* out, std::int64_t rows, std::int64_t l, std::uint64_t seed, int threads) {
  parallel_for(n_blocks(rows, kRowBlock), threads, [&](std::int64_t block) {
    const std::int64_t r0 = block * kRowBlock;
    const std::int64_t r1 = std::min(rows, r0 + kRowBlock);
    for (std::int64_t i = r0; i < r1; ++i) {
      SplitMix64 generator{seed ^ (0xD1B54A32D192ED03ULL * static_cast<std::uint64_t>(i + 1))};
      double* row = out + i * l;
      for (std::int64_t j = 0; j < l; j += 2) {
        const double u1 = (static_cast<double>(generator.next() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        const double u2 = static_cast<double>(generator.next() >> 11) * 0x1.0p-53;         // [0, 1)
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const double angle = 2.0 * std::numbers::pi * u2;
        row[j] = radius * std::cos(angle);
        if (j + 1 < l) row[j + 1] = radius * std::sin(angle);
      }
    }
  });
}

/// out[rows x k] = Y[rows x l] * W[l x k] (W col-major), computed in place in Y's storage by
/// row blocks and then compacted: on return the first rows*k values of `y` hold the product.
void multiply_in_place(std::vector<double>& y, std::int64_t rows, std::int64_t l, const Matrix& w, int threads) {
  const std::int64_t k = w.cols();
  parallel_for(n_blocks(rows, kRowBlock), threads, [&](std::int64_t block) {
    const std::int64_t r0 = block * kRowBlock;
    const std::int64_t count = std::min(kRowBlock, rows - r0);
    RowMap rows_block(y.data() + r0 * l, count, l);
    const RowMatrix product = rows_block * w;
    rows_block.leftCols(k) = product;
  });
  for (std::int64_t i = 1; i < rows; ++i) std::memmove(y.data() + i * k, y.data() + i * l, static_cast<std::size_t>(k) * sizeof(double));
  y.resize(static_cast<std::size_t>(rows * k));
}

}  // namespace

RandomizedSvdResult randomized_svd(const CsrBlockF64& a_block, const RandomizedSvdOptions& options) {
  const std::int64_t m = a_block.n_rows;
  const std::int64_t n = a_block.n_cols;
  if (m < 1 || n < 1) throw InputError(fmt::format("randomized SVD: the matrix is empty ({} x {})", m, n));
  if (static_cast<std::int64_t>(a_block.indptr.size()) != m + 1 ||
      static_cast<std::int64_t>(a_block.indices.size()) != a_block.indptr.back() ||
      a_block.values.size() != a_block.indices.size()) {
    throw InputError("randomized SVD: inconsistent CSR arrays");
  }
  const std::int64_t k = options.rank;
  if (k < 1 || k > std::min(m, n)) {
    throw InputError(fmt::format("randomized SVD: rank must be in 1..{} (= min of the {} x {} shape), got {}",
                                 std::min(m, n), m, n, k));
  }
  if (options.oversampling < 0) throw InputError(fmt::format("randomized SVD: oversampling must be >= 0, got {}", options.oversampling));
  if (options.power_iterations < 0) {
    throw InputError(fmt::format("randomized SVD: power_iterations must be >= 0, got {}", options.power_iterations));
  }
  const int threads = options.num_threads;
  const std::int64_t l = std::min<std::int64_t>(k + options.oversampling, std::min(m, n));

  const Csr a{m, n, a_block.indptr.data(), a_block.indices.data(), a_block.values.data()};
  const OwnedCsr a_transpose = transpose(a);
  // Seek the subspace on the smaller side: C is (small x big); C = A^T when A has fewer columns.
  const bool column_side = n <= m;
  const Csr c = column_side ? a_transpose.view() : a;
  const Csr c_transpose = column_side ? a : a_transpose.view();
  const std::int64_t small_rows = c.rows;
  const std::int64_t big_rows = c.cols;

  std::vector<double> big(static_cast<std::size_t>(big_rows * l));      // Omega, then C^T Q
  std::vector<double> small(static_cast<std::size_t>(small_rows * l));  // Q
  fill_gaussian(big.data(), big_rows, l, options.seed, threads);
  multiply(c, big.data(), l, small.data(), threads);
  orthonormalize(small.data(), small_rows, l, options.power_iterations == 0 ? 2 : 1, threads);
  for (int iteration = 0; iteration < options.power_iterations; ++iteration) {
    multiply(c_transpose, small.data(), l, big.data(), threads);
    orthonormalize(big.data(), big_rows, l, 1, threads);
    multiply(c, big.data(), l, small.data(), threads);
    orthonormalize(small.data(), small_rows, l, iteration + 1 == options.power_iterations ? 2 : 1, threads);
  }
  // B^T = C^T Q [big x l]; B B^T = W diag(s^2) W^T; C ~ (Q W) diag(s) (B^T W diag(1/s))^T.
  multiply(c_transpose, small.data(), l, big.data(), threads);
  const Matrix g = gram(big.data(), big_rows, l, threads);
  const Eigen::SelfAdjointEigenSolver<Matrix> eigen(g);
  if (eigen.info() != Eigen::Success) throw InputError("randomized SVD: the eigen-decomposition of B B^T failed");
  Matrix w(l, k);
  RandomizedSvdResult result;
  result.rank = static_cast<int>(k);
  result.singular_values.resize(static_cast<std::size_t>(k));
  for (std::int64_t j = 0; j < k; ++j) {
    const std::int64_t source = l - 1 - j;  // eigenvalues come ascending
    w.col(j) = eigen.eigenvectors().col(source);
    result.singular_values[static_cast<std::size_t>(j)] = std::sqrt(std::max(0.0, eigen.eigenvalues()(source)));
  }
  Matrix w_over_s = w;  // W diag(1/s), 0 for s = 0
  Matrix w_times_s = w;
  for (std::int64_t j = 0; j < k; ++j) {
    const double s = result.singular_values[static_cast<std::size_t>(j)];
    w_over_s.col(j) *= s > 0 ? 1.0 / s : 0.0;
    w_times_s.col(j) *= s;
  }
  if (column_side) {
    // U_A diag(s) = A V_A = B^T W (big side); V_A = Q W (small side).
    if (options.compute_right) {
      result.right = small;
      multiply_in_place(result.right, small_rows, l, w, threads);
    }
    multiply_in_place(big, big_rows, l, w, threads);
    result.left_scaled = std::move(big);
  } else {
    // U_A diag(s) = Q W diag(s) (small side); V_A = B^T W diag(1/s) (big side).
    if (options.compute_right) {
      multiply_in_place(big, big_rows, l, w_over_s, threads);
      result.right = std::move(big);
    }
    multiply_in_place(small, small_rows, l, w_times_s, threads);
    result.left_scaled = std::move(small);
  }
  // Canonical signs: the largest-magnitude entry of each column of U diag(s) is positive.
  std::vector<double> largest(static_cast<std::size_t>(k), -1.0);
  std::vector<char> negative(static_cast<std::size_t>(k), 0);
  for (std::int64_t i = 0; i < m; ++i) {
    const double* row = result.left_scaled.data() + i * k;
    for (std::int64_t j = 0; j < k; ++j) {
      const double magnitude = std::abs(row[j]);
      if (magnitude > largest[static_cast<std::size_t>(j)]) {
        largest[static_cast<std::size_t>(j)] = magnitude;
        negative[static_cast<std::size_t>(j)] = row[j] < 0;
      }
    }
  }
  const auto flip = [&](std::vector<double>& values, std::int64_t rows) {
    for (std::int64_t i = 0; i < rows; ++i) {
      double* row = values.data() + i * k;
      for (std::int64_t j = 0; j < k; ++j) {
        if (negative[static_cast<std::size_t>(j)]) row[j] = -row[j];
      }
    }
  };
  flip(result.left_scaled, m);
  if (options.compute_right) flip(result.right, n);
  return result;
}

}  // namespace celltyper
