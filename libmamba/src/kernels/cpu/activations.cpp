// Elementwise activations: SiLU, softplus (PyTorch threshold 20), sigmoid.
#include "mambakit/ops/activations.h"

#include <cmath>

#include "vec_math.h"

namespace mk::ops {

namespace {

constexpr size_t kParallelMin = size_t(1) << 16;

// Local inline forms so the loops below vectorise; the exported scalar
// functions forward to these, so a scalar call and a vector lane agree
// exactly. float uses the vectorisable exp/log1p of vec_math.h; double keeps
// libm (it is the precision the tests take as reference).
inline float exp_i(float x) { return vmath::exp_f(x); }
inline double exp_i(double x) { return std::exp(x); }

template <typename T> inline T sigmoid_i(T x) { return T(1) / (T(1) + exp_i(-x)); }
// Above the threshold log1p(exp(x)) equals x to working precision, and exp
// would overflow for large x; PyTorch switches at 20 too.
inline double softplus_i(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
// log1p(exp(x)) = max(x, 0) + log1p(exp(-|x|)): exp never overflows and
// log1p's argument stays in (0, 1], the range of vmath::log1p_unit_f.
inline float softplus_i(float x) {
  const float sp = (x > 0.f ? x : 0.f) + vmath::log1p_unit_f(vmath::exp_f(-std::fabs(x)));
  return x > 20.f ? x : sp;
}

}  // namespace

template <typename T> T sigmoid(T x) { return sigmoid_i(x); }
template <typename T> T silu(T x) { return x * sigmoid_i(x); }
template <typename T> T softplus(T x) { return softplus_i(x); }

template <typename T>
void silu_forward(const T* x, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_i(x[i]);
}

// silu'(x) = s + x s (1 - s), s = sigmoid(x)
template <typename T>
void silu_backward(const T* dy, const T* x, T* dx, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    const T s = sigmoid_i(x[i]);
    dx[i] = dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <typename T>
void softplus_forward(const T* x, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = softplus_i(x[i]);
}

// d softplus / dx = sigmoid(x); above the threshold the forward is the
// identity, so the gradient is exactly 1 there (as PyTorch's backward).
template <typename T>
void softplus_backward(const T* dy, const T* x, T* dx, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) dx[i] = x[i] > T(20) ? dy[i] : dy[i] * sigmoid_i(x[i]);
}

#define MK_INSTANTIATE(T)                                           \
  template void silu_forward<T>(const T*, T*, size_t);             \
  template void silu_backward<T>(const T*, const T*, T*, size_t);  \
  template void softplus_forward<T>(const T*, T*, size_t);         \
  template void softplus_backward<T>(const T*, const T*, T*, size_t); \
  template T silu<T>(T);                                           \
  template T softplus<T>(T);                                       \
  template T sigmoid<T>(T);
MK_INSTANTIATE(float)
MK_INSTANTIATE(double)
#undef MK_INSTANTIATE

}  // namespace mk::ops
