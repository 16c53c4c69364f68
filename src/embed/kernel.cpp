// The hot loop of GenePT-w: a sparse row (gene rows + weights) times the dense gene matrix.
// Vectorised by hand for AVX-512 (tiles of 256 floats held in 16 zmm registers across the
// cell's genes, then 128 in 8, then 16), with an AVX2 path (tiles of 64 in 8 ymm) and a portable fallback. Every path
// computes each output component as the same left-to-right float32 sum over j, so results do
// not depend on which path or tile ran.
#include <celltyper/cell_embedder.hpp>

#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace celltyper::detail {

void weighted_row_sum(const float* matrix, int dims, const std::int32_t* rows, const float* weights, std::int64_t n,
                      float* out) {
  int d = 0;
#if defined(__AVX512F__)
  // No software prefetch: the gene rows' loads are independent of the accumulators, so the core
  // already overlaps them; prefetching 4 rows ahead cost 10-15% (session 6, bench/embed kernel).
  // One pass over the cell's genes per 256 components halves the row-index and weight loads of
  // two 128-wide passes.
  for (; d + 256 <= dims; d += 256) {
    __m512 a[16];
    for (auto& x : a) x = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < n; ++j) {
      const float* e = matrix + static_cast<std::int64_t>(rows[j]) * dims + d;
      const __m512 w = _mm512_set1_ps(weights[j]);
#pragma GCC unroll 16
      for (int t = 0; t < 16; ++t) a[t] = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 16 * t), a[t]);
    }
#pragma GCC unroll 16
    for (int t = 0; t < 16; ++t) _mm512_storeu_ps(out + d + 16 * t, a[t]);
  }
  for (; d + 128 <= dims; d += 128) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (std::int64_t j = 0; j < n; ++j) {
      const float* e = matrix + static_cast<std::int64_t>(rows[j]) * dims + d;
      const __m512 w = _mm512_set1_ps(weights[j]);
      a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e), a0);
      a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 16), a1);
      a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 32), a2);
      a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 48), a3);
      a4 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 64), a4);
      a5 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 80), a5);
      a6 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 96), a6);
      a7 = _mm512_fmadd_ps(w, _mm512_loadu_ps(e + 112), a7);
    }
    _mm512_storeu_ps(out + d, a0);
    _mm512_storeu_ps(out + d + 16, a1);
    _mm512_storeu_ps(out + d + 32, a2);
    _mm512_storeu_ps(out + d + 48, a3);
    _mm512_storeu_ps(out + d + 64, a4);
    _mm512_storeu_ps(out + d + 80, a5);
    _mm512_storeu_ps(out + d + 96, a6);
    _mm512_storeu_ps(out + d + 112, a7);
  }
  for (; d + 16 <= dims; d += 16) {
    __m512 a = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < n; ++j) {
      a = _mm512_fmadd_ps(_mm512_set1_ps(weights[j]), _mm512_loadu_ps(matrix + static_cast<std::int64_t>(rows[j]) * dims + d), a);
    }
    _mm512_storeu_ps(out + d, a);
  }
#elif defined(__AVX2__)
  for (; d + 64 <= dims; d += 64) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (std::int64_t j = 0; j < n; ++j) {
      const float* e = matrix + static_cast<std::int64_t>(rows[j]) * dims + d;
      const __m256 w = _mm256_set1_ps(weights[j]);
      a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e), a0);
      a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e + 8), a1);
      a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e + 16), a2);
      a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e + 24), a3);
      a4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e + 32), a4);
      a5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e + 40), a5);
      a6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e + 48), a6);
      a7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(e + 56), a7);
    }
    _mm256_storeu_ps(out + d, a0);
    _mm256_storeu_ps(out + d + 8, a1);
    _mm256_storeu_ps(out + d + 16, a2);
    _mm256_storeu_ps(out + d + 24, a3);
    _mm256_storeu_ps(out + d + 32, a4);
    _mm256_storeu_ps(out + d + 40, a5);
    _mm256_storeu_ps(out + d + 48, a6);
    _mm256_storeu_ps(out + d + 56, a7);
  }
#endif
  // Remaining components (and the whole vector without SIMD): same per-component j order.
  // Fused multiply-add keeps results identical to the SIMD paths.
  for (; d < dims; ++d) {
    float a = 0.0f;
    for (std::int64_t j = 0; j < n; ++j) a = __builtin_fmaf(weights[j], matrix[static_cast<std::int64_t>(rows[j]) * dims + d], a);
    out[d] = a;
  }
}

}  // namespace celltyper::detail
