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
// threads share out. The forward takes W transposed, wt (in, out): its
// loops run over output channels, the contiguous axis of y, with a block
// of channels in registers over the in terms. The backward forms a group
// of eight rows' activation gradients g (in L1), then dx = g W four rows at
// a time with the in columns in vector lanes (W as stored, (out, in)), then
// dW^T += x^T g and db with the out channels in lanes.
//
// Arithmetic: the products are fused multiply-adds where the copy has FMA
// (AVX2, AVX-512) and a product then a sum in the scalar copy; the
// softplus and its gradient are activation_math.h's, with no contraction
// (this file is built with the activation loops' flags). Every sum has an
// order that depends on neither the vector width nor the thread count:
//  - the pre-activation: bias, then the in terms in order;
//  - dx[j, k]: two partial sums over the out channels (even, odd), each in
//    order, then added;
//  - dW, db: each block takes its rows in groups of eight (the last block's
//    remainder one by one); a group's terms are summed in row order, then
//    added into the block's partial; the partials are added block by
//    block in order.
// So a copy gives the same bits on any thread count, and the AVX2 and
// AVX-512 copies the same bits as each other.
#include "activation_math.h"
#include "activations_isa.h"
#include "vec_simd.h"

namespace mk::ops::MK_ACT_NS {
namespace {

constexpr size_t kRowBlock = kLinearSoftplusRowBlock;
static_assert(kLinearSoftplusRowBlock % kLinearSoftplusGroup == 0, "whole groups per block");
// Channels per register block of the pre-activation: four vectors.
constexpr int kBlockVecs = 4, kBlockCh = kBlockVecs * kVW;
// Width of dx's partial sums (fixed, so the sums are the same on every copy).
constexpr int kDotLanes = 16, kDotVecs = kDotLanes / kVW;
// Rows whose terms of dW and db the backward adds together.
constexpr int kGroup = kLinearSoftplusGroup;
static_assert(kGroup % 4 == 0, "dx goes four rows at a time");

// Below this many multiply-adds a call runs on one thread.
constexpr size_t kParallelMin = size_t(1) << 16;

// pre[d] = b[d] + sum_k x[k] wt[k, d] for d < out (b may be null).
void pre_activation(const float* x, const float* wt, const float* b, int in, int out,
                    float* pre) {
  int d0 = 0;
  for (; d0 + kBlockCh <= out; d0 += kBlockCh) {
    Vec acc[kBlockVecs];
    for (int v = 0; v < kBlockVecs; ++v) acc[v] = b ? load(b + d0 + v * kVW) : Vec{};
    for (int k = 0; k < in; ++k) {
      const float xk = x[k];
      const float* wk = wt + size_t(k) * out + d0;
      for (int v = 0; v < kBlockVecs; ++v) acc[v] = fma(load(wk + v * kVW), xk, acc[v]);
    }
    for (int v = 0; v < kBlockVecs; ++v) store(pre + d0 + v * kVW, acc[v]);
  }
  for (int d = d0; d < out; ++d) {
    float acc = b ? b[d] : 0.f;
    for (int k = 0; k < in; ++k) acc = scalar_fma(x[k], wt[size_t(k) * out + d], acc);
    pre[d] = acc;
  }
}

void forward(const float* x, const float* wt, const float* b, float* y, int rows, int in,
             int out) {
  const size_t n_rows = size_t(rows), n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) if (n_rows * in * out > kParallelMin)
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    const size_t r1 = n_rows < (blk + 1) * kRowBlock ? n_rows : (blk + 1) * kRowBlock;
    for (size_t row = blk * kRowBlock; row < r1; ++row) {
      float* yr = y + row * out;
      pre_activation(x + row * in, wt, b, in, out, yr);
#pragma omp simd
      for (int d = 0; d < out; ++d) yr[d] = act_math::softplus_f(yr[d]);
    }
  }
}

// dx of NR rows whose activation gradients are g (NR rows of out):
// dx[j, k] = sum_d g[j, d] W[d, k], vectorised over k (16 at a time, then
// one by one), each as two partial sums over d (even d, odd d, in order)
// added at the end.
template <int NR>
void dx_rows(const float* g, const float* W, int in, int out, float* dx) {
  constexpr int kKV = kDotLanes / kVW;  // vectors per 16 columns
  int k0 = 0;
  for (; k0 + kDotLanes <= in; k0 += kDotLanes) {
    Vec acc0[NR][kKV] = {}, acc1[NR][kKV] = {};
    int d = 0;
    for (; d + 2 <= out; d += 2) {
      const float* wd = W + size_t(d) * in + k0;
      Vec w0[kKV], w1[kKV];
      for (int v = 0; v < kKV; ++v) w0[v] = load(wd + v * kVW);
      for (int v = 0; v < kKV; ++v) w1[v] = load(wd + in + v * kVW);
      for (int j = 0; j < NR; ++j) {
        const float g0 = g[size_t(j) * out + d], g1 = g[size_t(j) * out + d + 1];
        for (int v = 0; v < kKV; ++v) acc0[j][v] = fma(w0[v], g0, acc0[j][v]);
        for (int v = 0; v < kKV; ++v) acc1[j][v] = fma(w1[v], g1, acc1[j][v]);
      }
    }
    if (d < out) {
      const float* wd = W + size_t(d) * in + k0;
      for (int j = 0; j < NR; ++j) {
        const float g0 = g[size_t(j) * out + d];
        for (int v = 0; v < kKV; ++v) acc0[j][v] = fma(load(wd + v * kVW), g0, acc0[j][v]);
      }
    }
    for (int j = 0; j < NR; ++j)
      for (int v = 0; v < kKV; ++v) store(dx + size_t(j) * in + k0 + v * kVW, acc0[j][v] + acc1[j][v]);
  }
  for (int k = k0; k < in; ++k)
    for (int j = 0; j < NR; ++j) {
      float s[2] = {0.f, 0.f};
      for (int d = 0; d < out; ++d) s[d & 1] = scalar_fma(g[size_t(j) * out + d], W[size_t(d) * in + k], s[d & 1]);
      dx[size_t(j) * in + k] = s[0] + s[1];
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
  const float* xg = x + r0 * in;
  if (n == kGroup) {
    // dx four rows at a time: their sums and the W row they share fit the
    // registers of every copy.
    if (dx)
      for (int j = 0; j < kGroup; j += 4)
        dx_rows<4>(g + size_t(j) * out, W, in, out, dx + (r0 + j) * in);
    dw_rows<kGroup>(g, xg, in, out, dwt, db);
  } else {
    for (int j = 0; j < n; ++j) {
      if (dx) dx_rows<1>(g + size_t(j) * out, W, in, out, dx + (r0 + j) * in);
      dw_rows<1>(g + size_t(j) * out, xg + size_t(j) * in, in, out, dwt, db);
    }
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
