// Internal: the per-ISA copies of the float activation loops and of the
// kernels built with their flags (activation_kernels.cpp, the conv with its
// SiLU, the linear layer with its softplus, the narrow linear forward: each
// compiled three times, see libmamba/CMakeLists.txt) and the table that
// activations.cpp, elementwise.cpp, conv1d.cpp, linear_softplus.cpp and
// matmul.cpp dispatch through.
#pragma once
#include <cstddef>

#include "mambakit/ops/conv1d.h"

namespace mk::ops {

// Plain function pointers only, as ScanKernels (selective_scan_isa.h).
struct ActivationKernels {
  void (*silu_forward)(const float* x, float* y, size_t n);
  void (*silu_backward)(const float* dy, const float* x, float* dx, size_t n);
  void (*softplus_forward)(const float* x, float* y, size_t n);
  void (*softplus_backward)(const float* dy, const float* x, float* dx, size_t n);
  // y = -exp(x): a Mamba layer's A from A_log (ops::neg_exp), formed at
  // every token of generation.
  void (*neg_exp)(const float* x, float* y, size_t n);
  // The conv fused with its SiLU (conv1d_silu_kernels.cpp), K <=
  // kConvSiluMaxK, with the kernel transposed to wt (K, D); the backward's
  // scratch holds conv1d_silu_scratch_size() floats.
  void (*conv1d_silu_forward)(const Conv1dShape& s, const float* x, const float* wt,
                              const float* bias, float* y);
  void (*conv1d_silu_backward)(const Conv1dShape& s, const float* dy, const float* x,
                               const float* wt, const float* bias, float* dx, float* dw,
                               float* dbias, float* scratch);
  // y = softplus(x W^T + b) with W (out, in) transposed to wt (in, out)
  // (linear_softplus_kernels.cpp); the backward, from the forward's y,
  // writes dx (unless null) and leaves the sums of dW^T (in, out) and db
  // (out) at the start of its scratch of linear_softplus_scratch_size()
  // floats.
  void (*linear_softplus_forward)(const float* x, const float* wt, const float* b, float* y,
                                  int rows, int in, int out);
  void (*linear_softplus_backward)(const float* dy, const float* y, const float* x,
                                   const float* W, float* dx, int rows, int in, int out,
                                   float* scratch);
  // The forward of a linear layer with few outputs
  // (narrow_matmul_kernels.cpp): y (rows, out) = x wt (+ b) with W
  // transposed to wt (in, out).
  void (*narrow_linear_forward)(const float* x, const float* wt, const float* b, float* y,
                                int rows, int in, int out);
};

// Taps the fused conv kernels are built for (Mamba uses 4).
constexpr int kConvSiluMaxK = 4;
// Rows per block of the fused kernels: the unit of work of a thread and of
// the backward's partial sums of dw and dbias (so those do not depend on
// the thread count).
constexpr size_t kConvSiluRowBlock = 64;
// Per block: the partial sums (K + 1 rows of D) and the ring of activation
// gradients (K rows of D); then the sums over the blocks (K + 1 rows of D).
inline size_t conv1d_silu_scratch_size(const Conv1dShape& s) {
  const size_t rows = size_t(s.B) * s.L, blocks = (rows + kConvSiluRowBlock - 1) / kConvSiluRowBlock;
  return (blocks * size_t(2 * s.K + 1) + size_t(s.K + 1)) * s.D;
}

// Rows per block of the fused linear-and-softplus kernels: the unit of work
// of a thread and of the backward's partial sums of dW and db; and the rows
// per group within a block whose terms are summed before they are added.
constexpr size_t kLinearSoftplusRowBlock = 128;
constexpr int kLinearSoftplusGroup = 8;
// Per block: the partial sums (in + 1 rows of out) and the activation
// gradients of one group.
inline size_t linear_softplus_scratch_size(int rows, int in, int out) {
  const size_t blocks = (size_t(rows) + kLinearSoftplusRowBlock - 1) / kLinearSoftplusRowBlock;
  return (blocks > 0 ? blocks : 1) * size_t(in + 1 + kLinearSoftplusGroup) * out;
}

// Outputs up to which, and rows from which, ops::linear_forward runs the
// narrow kernel instead of the BLAS.
constexpr int kNarrowMaxOut = 64;
constexpr int kNarrowMinRows = 16;

// The copy mk::active_isa() chose (activations.cpp).
const ActivationKernels& active_activation_kernels();

#define MK_DECLARE_ACT_ISA(ns)                                                               \
  namespace ns {                                                                             \
  const ActivationKernels& activation_kernels_f32();                                         \
  void conv1d_silu_forward_f32(const Conv1dShape& s, const float* x, const float* wt,        \
                               const float* bias, float* y);                                 \
  void conv1d_silu_backward_f32(const Conv1dShape& s, const float* dy, const float* x,       \
                                const float* wt, const float* bias, float* dx, float* dw,    \
                                float* dbias, float* scratch);                               \
  void linear_softplus_forward_f32(const float* x, const float* wt, const float* b, float* y,   \
                                   int rows, int in, int out);                                 \
  void linear_softplus_backward_f32(const float* dy, const float* y, const float* x,           \
                                    const float* W, float* dx, int rows, int in, int out,      \
                                    float* scratch);                                           \
  void narrow_linear_forward_f32(const float* x, const float* wt, const float* b, float* y,     \
                                 int rows, int in, int out);                                   \
  }
MK_DECLARE_ACT_ISA(act_scalar)
MK_DECLARE_ACT_ISA(act_avx2)
MK_DECLARE_ACT_ISA(act_avx512)
#undef MK_DECLARE_ACT_ISA

}  // namespace mk::ops
