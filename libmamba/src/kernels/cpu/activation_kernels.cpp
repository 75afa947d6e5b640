// The float SiLU and softplus loops, forward and backward, and -exp(x),
// compiled once per ISA (libmamba/CMakeLists.txt; MK_ACT_NS names the
// copy's namespace). They are plain loops over the formulas of
// activation_math.h, which GCC vectorises: four lanes with the x86-64
// baseline, eight with AVX2, sixteen with AVX-512. In a small Mamba's
// training step the four activation loops took about a tenth of the time
// with four lanes. The copies compute the same bits
// (no FP contraction, see activation_math.h); only their width differs.
// As in selective_scan_kernels.cpp, nothing here may define a symbol that
// another object defines too: helpers are static or in the anonymous
// namespace.
#include "activation_math.h"
#include "activations_isa.h"

namespace mk::ops::MK_ACT_NS {
namespace {

// Below this many elements a loop runs on one thread.
constexpr size_t kParallelMin = size_t(1) << 16;

void silu_forward(const float* x, float* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * act_math::sigmoid_f(x[i]);
}

void silu_backward(const float* dy, const float* x, float* dx, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * act_math::silu_grad_f(x[i]);
}

void softplus_forward(const float* x, float* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = act_math::softplus_f(x[i]);
}

void softplus_backward(const float* dy, const float* x, float* dx, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * act_math::softplus_grad_f(x[i]);
}

void neg_exp(const float* x, float* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = -vmath::exp_f(x[i]);
}

const ActivationKernels kKernels{silu_forward,     silu_backward,           softplus_forward,
                                 softplus_backward, neg_exp,                 conv1d_silu_forward_f32,
                                 conv1d_silu_backward_f32};

}  // namespace

const ActivationKernels& activation_kernels_f32() { return kKernels; }

}  // namespace mk::ops::MK_ACT_NS
