// A linear layer fused with its softplus, for float, compiled once per ISA
// with the activation loops (libmamba/CMakeLists.txt; MK_ACT_NS names the
// copy's namespace): Mamba's dt_proj, delta = softplus(dt_in W^T + b), whose
// input has only dt_rank (d_model / 16) columns. ops::linear_softplus_forward
// and _backward (linear_softplus.cpp) call these through the activation
// table.
//
// Why fused: the product has K = dt_rank (16 at d_model 256) in the forward
// and N = dt_rank in both products of the backward, shapes where a BLAS
// spends more time packing and zeroing than multiplying (OpenBLAS: 30-50
// GFLOPS against 115 on the square products of the same step). Apart, the
// product also writes the pre-activation, which the softplus reads back and
// the backward reads again. Fused, the forward forms each row's
// pre-activation in registers and writes delta alone; the backward takes the
// softplus's gradient from delta (sigmoid(x) = 1 - exp(-softplus(x)), no
// division), which the layer keeps for the scan anyway, so the
// pre-activation is never stored.
//
// Layout: rows are split into fixed blocks of kLinearSoftplusRowBlock that
// threads share out, and each block into groups of eight rows. The forward
// forms a group's pre-activations with row_matmul.h's product (W
// transposed, wt (in, out): output channels in vector lanes), then their
// softplus while they are in L1. The backward forms a group's activation
// gradients g (in L1), then dx = g W with the same product (W as stored,
// (out, in): the in columns in lanes), then dW^T += x^T g and db with the
// out channels in lanes.
//
// Arithmetic: the products are fused multiply-adds where the copy has FMA
// (AVX2, AVX-512) and a product then a sum in the scalar copy; the
// softplus and its gradient are activation_math.h's, with no contraction
// (this file is built with the activation loops' flags). Every sum has an
// order that depends on neither the vector width nor the thread count:
//  - the pre-activation: bias, then the in terms in order;
//  - dx[j, k]: the out channels in order;
//  - dW, db: each block takes its rows in groups of eight (the last block's
//    remainder one by one); a group's terms are summed in row order, then
//    added into the block's partial; the partials are added block by
//    block in order.
// So a copy gives the same bits on any thread count, and the AVX2 and
// AVX-512 copies the same bits as each other.
#include "activation_math.h"
#include "activations_isa.h"
#include "row_matmul.h"

namespace mk::ops::MK_ACT_NS {
namespace {

constexpr size_t kRowBlock = kLinearSoftplusRowBlock;
static_assert(kLinearSoftplusRowBlock % kLinearSoftplusGroup == 0, "whole groups per block");
// Rows per group (whose terms of dW and db the backward adds together).
constexpr int kGroup = kLinearSoftplusGroup;

// Below this many multiply-adds a call runs on one thread.
constexpr size_t kParallelMin = size_t(1) << 16;

void forward(const float* x, const float* wt, const float* b, float* y, int rows, int in,
             int out) {
  const size_t n_rows = size_t(rows), n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) if (n_rows * in * out > kParallelMin)
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    const size_t r1 = n_rows < (blk + 1) * kRowBlock ? n_rows : (blk + 1) * kRowBlock;
    // A group's pre-activations, then their softplus while they are in L1.
    for (size_t r0 = blk * kRowBlock; r0 < r1; r0 += kGroup) {
      const int n = int(r1 - r0 < size_t(kGroup) ? r1 - r0 : size_t(kGroup));
      float* yg = y + r0 * out;
      rows_times_matrix(x + r0 * in, wt, b, yg, n, in, out);
#pragma omp simd
      for (size_t i = 0; i < size_t(n) * out; ++i) yg[i] = act_math::softplus_f(yg[i]);
    }
  }
}

// The terms of NR rows (activation gradients g, NR rows of out; inputs xg,
// NR rows of in) added into dwt (in rows of out: dW transposed) and db:
// per element, the rows' terms summed in order, then added.
template <int NR>
void dw_rows(const float* g, const float* xg, int in, int out, float* dwt, float* db) {
  int d = 0;
  for (; d + kVW <= out; d += kVW) {
    Vec v[NR];
    for (int j = 0; j < NR; ++j) v[j] = load(g + size_t(j) * out + d);
    Vec sum = v[0];
    for (int j = 1; j < NR; ++j) sum = sum + v[j];
    store(db + d, load(db + d) + sum);
    for (int k = 0; k < in; ++k) {
      float* wk = dwt + size_t(k) * out + d;
      Vec t = v[0] * splat(xg[k]);
      for (int j = 1; j < NR; ++j) t = fma(v[j], xg[size_t(j) * in + k], t);
      store(wk, load(wk) + t);
    }
  }
  for (; d < out; ++d) {
    float sum = g[d];
    for (int j = 1; j < NR; ++j) sum = sum + g[size_t(j) * out + d];
    db[d] = db[d] + sum;
    for (int k = 0; k < in; ++k) {
      float t = g[d] * xg[k];
      for (int j = 1; j < NR; ++j)
        t = scalar_fma(g[size_t(j) * out + d], xg[size_t(j) * in + k], t);
      dwt[size_t(k) * out + d] = dwt[size_t(k) * out + d] + t;
    }
  }
}

// Rows [r0, r0 + n) of a block (n <= kGroup): their activation gradients g
// (n rows of out) from the forward's output y, then dx of each (unless dx
// is null), then their terms of dW and db added into the block's partials.
// A group short of kGroup rows (the end of the last block) goes row by row.
void backward_group(const float* dy, const float* y, const float* x, const float* W, float* dx,
                    size_t r0, int n, int in, int out, float* g, float* dwt, float* db) {
  for (int j = 0; j < n; ++j) {
    float* gj = g + size_t(j) * out;
    const float* dyr = dy + (r0 + j) * out;
    const float* yr = y + (r0 + j) * out;
#pragma omp simd
    for (int d = 0; d < out; ++d) gj[d] = dyr[d] * act_math::softplus_grad_from_output_f(yr[d]);
  }
  // dx = g W: W (out, in) is the matrix, in columns.
  if (dx) rows_times_matrix(g, W, nullptr, dx + r0 * in, n, out, in);
  const float* xg = x + r0 * in;
  if (n == kGroup) {
    dw_rows<kGroup>(g, xg, in, out, dwt, db);
  } else {
    for (int j = 0; j < n; ++j)
      dw_rows<1>(g + size_t(j) * out, xg + size_t(j) * in, in, out, dwt, db);
  }
}

// Leaves the sums over all rows of dW (transposed, in rows of out) and db
// in scratch's first (in + 1) * out floats.
void backward(const float* dy, const float* y, const float* x, const float* W, float* dx,
              int rows, int in, int out, float* scratch) {
  const size_t n_rows = size_t(rows), n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
  const size_t part_size = size_t(in + 1) * out, stride = part_size + size_t(kGroup) * out;
#pragma omp parallel for schedule(static) if (n_rows * in * out > kParallelMin)
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    float* part = scratch + blk * stride;  // dW^T (in, out), then db (out)
    float* g = part + part_size;
    for (size_t i = 0; i < part_size; ++i) part[i] = 0.f;
    const size_t r1 = n_rows < (blk + 1) * kRowBlock ? n_rows : (blk + 1) * kRowBlock;
    for (size_t r0 = blk * kRowBlock; r0 < r1; r0 += kGroup) {
      const int n = int(r1 - r0 < size_t(kGroup) ? r1 - r0 : size_t(kGroup));
      backward_group(dy, y, x, W, dx, r0, n, in, out, g, part, part + size_t(in) * out);
    }
  }
  // The partials added into the first block's, block by block in order.
  for (size_t blk = 1; blk < n_blocks; ++blk) {
    const float* part = scratch + blk * stride;
#pragma omp simd
    for (size_t i = 0; i < part_size; ++i) scratch[i] = scratch[i] + part[i];
  }
}

}  // namespace

void linear_softplus_forward_f32(const float* x, const float* wt, const float* b, float* y,
                                 int rows, int in, int out) {
  forward(x, wt, b, y, rows, in, out);
}

void linear_softplus_backward_f32(const float* dy, const float* y, const float* x,
                                  const float* W, float* dx, int rows, int in, int out,
                                  float* scratch) {
  backward(dy, y, x, W, dx, rows, in, out, scratch);
}

}  // namespace mk::ops::MK_ACT_NS
