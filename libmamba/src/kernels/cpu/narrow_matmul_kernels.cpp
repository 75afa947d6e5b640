// The forward of a linear layer with few outputs (out <= kNarrowMaxOut),
// for float, compiled once per ISA with the activation loops
// (libmamba/CMakeLists.txt; MK_ACT_NS names the copy's namespace): Mamba's
// x_proj (d_inner -> dt_rank + 2 d_state, 512 -> 48 in the transformers
// script's model), small models' out_proj and heads. ops::linear_forward
// (matmul.cpp) calls it through the activation table on the AVX2 and
// AVX-512 copies.
//
// Why: OpenBLAS runs y = x W^T with N = 48 at about half the rate of the
// square products of the same step (60 GFLOPS against 115 with AVX-512).
// Here a group of rows times a block of output columns stays in registers
// over every k: y (rows, out) = x (rows, in) wt (in, out) [+ b].
//
// Bits: each element is one chain of multiply-adds in k from the bias (or
// 0), fused where the copy has FMA (AVX2 and AVX-512 then agree), whatever
// the blocking or the thread count.
#include "activations_isa.h"
#include "vec_simd.h"

namespace mk::ops::MK_ACT_NS {
namespace {

// Rows per group and column vectors per block: the accumulators (their
// product) fit the copy's registers beside the operands (32 vector
// registers with AVX-512, 16 otherwise).
#if defined(__AVX512F__)
constexpr int kFwdRows = 8, kFwdVecs = 3;
#else
constexpr int kFwdRows = 4, kFwdVecs = 2;
#endif

// Rows per unit of work of a thread in the forward.
constexpr int kRowBlock = 64;
// Below this many multiply-adds a call runs on one thread.
constexpr size_t kParallelMin = size_t(1) << 16;

// y[r, c0 + j] for R rows and CV vectors of columns.
template <int R, int CV>
void forward_block(const float* x, const float* wt, const float* b, float* y, int in, int out,
                   int c0) {
  Vec acc[R][CV];
  for (int v = 0; v < CV; ++v) {
    const Vec init = b ? load(b + c0 + v * kVW) : Vec{};
    for (int r = 0; r < R; ++r) acc[r][v] = init;
  }
  for (int k = 0; k < in; ++k) {
    const float* wk = wt + size_t(k) * out + c0;
    Vec w[CV];
    for (int v = 0; v < CV; ++v) w[v] = load(wk + v * kVW);
    for (int r = 0; r < R; ++r) {
      const float xr = x[size_t(r) * in + k];
      for (int v = 0; v < CV; ++v) acc[r][v] = fma(w[v], xr, acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < CV; ++v) store(y + size_t(r) * out + c0 + v * kVW, acc[r][v]);
}

// R rows of y: the columns in blocks of kFwdVecs vectors, then of one, then
// one by one.
template <int R>
void forward_rows(const float* x, const float* wt, const float* b, float* y, int in, int out) {
  int c0 = 0;
  for (; c0 + kFwdVecs * kVW <= out; c0 += kFwdVecs * kVW)
    forward_block<R, kFwdVecs>(x, wt, b, y, in, out, c0);
  for (; c0 + kVW <= out; c0 += kVW) forward_block<R, 1>(x, wt, b, y, in, out, c0);
  for (int c = c0; c < out; ++c)
    for (int r = 0; r < R; ++r) {
      float acc = b ? b[c] : 0.f;
      for (int k = 0; k < in; ++k) acc = scalar_fma(wt[size_t(k) * out + c], x[size_t(r) * in + k], acc);
      y[size_t(r) * out + c] = acc;
    }
}

void forward(const float* x, const float* wt, const float* b, float* y, int rows, int in,
             int out) {
  const int n_blocks = (rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) if (size_t(rows) * in * out > kParallelMin)
  for (int blk = 0; blk < n_blocks; ++blk) {
    const int r1 = rows < (blk + 1) * kRowBlock ? rows : (blk + 1) * kRowBlock;
    int r = blk * kRowBlock;
    for (; r + kFwdRows <= r1; r += kFwdRows)
      forward_rows<kFwdRows>(x + size_t(r) * in, wt, b, y + size_t(r) * out, in, out);
    for (; r < r1; ++r) forward_rows<1>(x + size_t(r) * in, wt, b, y + size_t(r) * out, in, out);
  }
}

}  // namespace

void narrow_linear_forward_f32(const float* x, const float* wt, const float* b, float* y, int rows,
                               int in, int out) {
  forward(x, wt, b, y, rows, in, out);
}

}  // namespace mk::ops::MK_ACT_NS
