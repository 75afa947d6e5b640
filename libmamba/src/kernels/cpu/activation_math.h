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

// The same gradient from the forward's output y = softplus(x) >= 0 instead
// of x: sigmoid(x) = 1 - exp(-y), no division (the linear-and-softplus
// backward keeps y, which the scan needs anyway, and not x). Below y = 1/2
// the series of 1 - exp(-y) = y - y^2/2! + y^3/3! - ... to y^9/9! (the
// first term left out is below 1e-9 of the result), where the difference
// would cancel; from 1/2 to 20 one minus exp(-y) by exp_f's reduction and
// polynomial (exp_reduced_f) without its clamps, its split scale (2^n, n in
// [-29, -1], is one normal float) or its NaN test; within 3 ulp. Above 20
// exactly 1, as above; NaN stays NaN.
static inline float softplus_grad_from_output_f(float y) {
  const float t = y < 20.f ? y : 20.f;  // NaN goes to 20 here, back to NaN below
  // The series, as 1 - exp(-t) = t - t^2 q(-t), q in Estrin's order.
  const float x = -t, x2 = x * x, x4 = x2 * x2;
  const float q01 = (1.f / 6.f) * x + 0.5f;
  const float q23 = (1.f / 120.f) * x + (1.f / 24.f);
  const float q45 = (1.f / 5040.f) * x + (1.f / 720.f);
  const float q67 = (1.f / 362880.f) * x + (1.f / 40320.f);
  const float series = t - x2 * ((q67 * x2 + q45) * x4 + (q23 * x2 + q01));
  // exp(-t) = 2^n exp(r), n in [-29, 0].
  float n;
  const float p = vmath::exp_reduced_f(x, &n);
  const float g = t < 0.5f ? series : 1.f - p * vmath::pow2i(int32_t(n));
  const float g1 = y > 20.f ? 1.f : g;
  return y == y ? g1 : y;
}

}  // namespace mk::ops::act_math
