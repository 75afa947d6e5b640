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
// Here threads share out blocks of rows, and each block is row_matmul.h's
// product, y (rows, out) = x (rows, in) wt (in, out) [+ b], with its
// outputs in registers over every k (the same bits whatever the thread
// count).
#include "activations_isa.h"
#include "row_matmul.h"

namespace mk::ops::MK_ACT_NS {
namespace {

// Rows per unit of work of a thread.
constexpr int kRowBlock = 64;
// Below this many multiply-adds a call runs on one thread.
constexpr size_t kParallelMin = size_t(1) << 16;

void forward(const float* x, const float* wt, const float* b, float* y, int rows, int in,
             int out) {
  const int n_blocks = (rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) if (size_t(rows) * in * out > kParallelMin)
  for (int blk = 0; blk < n_blocks; ++blk) {
    const int r0 = blk * kRowBlock, r1 = rows < r0 + kRowBlock ? rows : r0 + kRowBlock;
    rows_times_matrix(x + size_t(r0) * in, wt, b, y + size_t(r0) * out, r1 - r0, in, out);
  }
}

}  // namespace

void narrow_linear_forward_f32(const float* x, const float* wt, const float* b, float* y, int rows,
                               int in, int out) {
  forward(x, wt, b, y, rows, in, out);
}

}  // namespace mk::ops::MK_ACT_NS
