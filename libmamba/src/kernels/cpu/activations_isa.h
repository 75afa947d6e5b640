// Internal: the per-ISA copies of the float activation loops
// (activation_kernels.cpp compiled three times, see libmamba/CMakeLists.txt)
// and the table activations.cpp and elementwise.cpp dispatch through.
#pragma once
#include <cstddef>

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
};

// The copy mk::active_isa() chose (activations.cpp).
const ActivationKernels& active_activation_kernels();

#define MK_DECLARE_ACT_ISA(ns) \
  namespace ns {               \
  const ActivationKernels& activation_kernels_f32(); \
  }
MK_DECLARE_ACT_ISA(act_scalar)
MK_DECLARE_ACT_ISA(act_avx2)
MK_DECLARE_ACT_ISA(act_avx512)
#undef MK_DECLARE_ACT_ISA

}  // namespace mk::ops
