// The float sigmoid, SiLU and softplus formulas, shared by the exported
// scalar functions (activations.cpp) and the per-ISA loops
// (activation_kernels.cpp), so that a scalar call and a vector lane of any
// ISA give the same bits. Both files are compiled with -ffp-contract=off
// (libmamba/CMakeLists.txt): no multiply-add is fused in one and not in the
// other. Static for the reason given in vec_math.h.
#pragma once

#include <cmath>

#include "vec_math.h"

namespace mk::ops::act_math {

static inline float sigmoid_f(float x) { return 1.f / (1.f + vmath::exp_f(-x)); }

// log1p(exp(x)) = max(x, 0) + log1p(exp(-|x|)): exp never overflows and
// log1p's argument stays in (0, 1], the range of vmath::log1p_unit_f. Above
// 20 the result is x to working precision (PyTorch's threshold too).
static inline float softplus_f(float x) {
  const float sp = (x > 0.f ? x : 0.f) + vmath::log1p_unit_f(vmath::exp_f(-std::fabs(x)));
  return x > 20.f ? x : sp;
}

// silu'(x) = s + x s (1 - s), s = sigmoid(x)
static inline float silu_grad_f(float x) {
  const float s = sigmoid_f(x);
  return s * (1.f + x * (1.f - s));
}

// softplus'(x) = sigmoid(x); above the threshold the forward is the
// identity, so the gradient is exactly 1 there (as PyTorch's backward).
static inline float softplus_grad_f(float x) { return x > 20.f ? 1.f : sigmoid_f(x); }

// The same gradient from the forward's output y = softplus(x) instead of x:
// sigmoid(x) = 1 - exp(-softplus(x)), no division (the linear-and-softplus
// backward keeps y, which the scan needs anyway, and not x). Above the
// threshold y is x and the gradient exactly 1, as above.
static inline float softplus_grad_from_output_f(float y) {
  return y > 20.f ? 1.f : -vmath::expm1_f(-y);
}

}  // namespace mk::ops::act_math
