// Internal: y (n, out) = x (n, in) m (in, out) [+ b] for the per-ISA
// kernels whose products have a narrow side (narrow_matmul_kernels.cpp:
// few outputs; linear_softplus_kernels.cpp: few inputs in the forward, few
// outputs in dx), with a group of rows times a block of output columns held
// in registers over every k. Each element is one chain of multiply-adds in
// k from the bias (or 0), fused where the copy has FMA, so its bits do not
// depend on the blocking, and the AVX2 and AVX-512 copies agree. In the
// copy's namespace, as vec_simd.h.
#pragma once

#include <cstddef>

#include "vec_simd.h"

namespace mk::ops::MK_ACT_NS {
namespace {

// Rows per group and column vectors per block: the accumulators (their
// product) fit the copy's registers beside the operands (32 vector
// registers with AVX-512, 16 otherwise).
#if defined(__AVX512F__)
constexpr int kRowGroup = 8, kColVecs = 3;
#else
constexpr int kRowGroup = 4, kColVecs = 2;
#endif

// y[r, c0 + ...] for R rows and CV vectors of columns.
template <int R, int CV>
void row_group_block(const float* x, const float* m, const float* b, float* y, int in, int out,
                     int c0) {
  Vec acc[R][CV];
  for (int v = 0; v < CV; ++v) {
    const Vec init = b ? load(b + c0 + v * kVW) : Vec{};
    for (int r = 0; r < R; ++r) acc[r][v] = init;
  }
  for (int k = 0; k < in; ++k) {
    const float* mk = m + size_t(k) * out + c0;
    Vec w[CV];
    for (int v = 0; v < CV; ++v) w[v] = load(mk + v * kVW);
    for (int r = 0; r < R; ++r) {
      const float xr = x[size_t(r) * in + k];
      for (int v = 0; v < CV; ++v) acc[r][v] = fma(w[v], xr, acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < CV; ++v) store(y + size_t(r) * out + c0 + v * kVW, acc[r][v]);
}

// R rows of y: the columns in blocks of kColVecs vectors, then of one, then
// one by one.
template <int R>
void row_group(const float* x, const float* m, const float* b, float* y, int in, int out) {
  int c0 = 0;
  for (; c0 + kColVecs * kVW <= out; c0 += kColVecs * kVW)
    row_group_block<R, kColVecs>(x, m, b, y, in, out, c0);
  for (; c0 + kVW <= out; c0 += kVW) row_group_block<R, 1>(x, m, b, y, in, out, c0);
  for (int c = c0; c < out; ++c)
    for (int r = 0; r < R; ++r) {
      float acc = b ? b[c] : 0.f;
      for (int k = 0; k < in; ++k)
        acc = scalar_fma(m[size_t(k) * out + c], x[size_t(r) * in + k], acc);
      y[size_t(r) * out + c] = acc;
    }
}

// All n rows, kRowGroup at a time, then one by one (on the calling thread).
inline void rows_times_matrix(const float* x, const float* m, const float* b, float* y, int n,
                              int in, int out) {
  int r = 0;
  for (; r + kRowGroup <= n; r += kRowGroup)
    row_group<kRowGroup>(x + size_t(r) * in, m, b, y + size_t(r) * out, in, out);
  for (; r < n; ++r) row_group<1>(x + size_t(r) * in, m, b, y + size_t(r) * out, in, out);
}

}  // namespace
}  // namespace mk::ops::MK_ACT_NS
