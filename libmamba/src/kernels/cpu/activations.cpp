// Elementwise activations: SiLU, softplus (PyTorch threshold 20), sigmoid.
// float loops run through the per-ISA copies of activation_kernels.cpp that
// mk::active_isa() chose; double keeps libm (it is the precision the tests
// take as reference) and plain loops here.
#include "mambakit/ops/activations.h"

#include <cmath>
#include <type_traits>

#include "activation_math.h"
#include "activations_isa.h"
#include "isa_dispatch.h"

namespace mk::ops {

namespace {

constexpr size_t kParallelMin = size_t(1) << 16;

inline float sigmoid_i(float x) { return act_math::sigmoid_f(x); }
inline double sigmoid_i(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline float softplus_i(float x) { return act_math::softplus_f(x); }
// Above the threshold log1p(exp(x)) equals x to working precision, and exp
// would overflow for large x; PyTorch switches at 20 too.
inline double softplus_i(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

}  // namespace

const ActivationKernels& active_activation_kernels() {
  return active_isa_table(act_scalar::activation_kernels_f32, act_avx2::activation_kernels_f32,
                          act_avx512::activation_kernels_f32);
}

template <typename T> T sigmoid(T x) { return sigmoid_i(x); }
template <typename T> T silu(T x) { return x * sigmoid_i(x); }
template <typename T> T softplus(T x) { return softplus_i(x); }

template <typename T>
void silu_forward(const T* x, T* y, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    active_activation_kernels().silu_forward(x, y, n);
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (size_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_i(x[i]);
  }
}

// silu'(x) = s + x s (1 - s), s = sigmoid(x)
template <typename T>
void silu_backward(const T* dy, const T* x, T* dx, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    active_activation_kernels().silu_backward(dy, x, dx, n);
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (size_t i = 0; i < n; ++i) {
      const T s = sigmoid_i(x[i]);
      dx[i] = dy[i] * s * (T(1) + x[i] * (T(1) - s));
    }
  }
}

template <typename T>
void softplus_forward(const T* x, T* y, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    active_activation_kernels().softplus_forward(x, y, n);
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (size_t i = 0; i < n; ++i) y[i] = softplus_i(x[i]);
  }
}

// d softplus / dx = sigmoid(x); above the threshold the forward is the
// identity, so the gradient is exactly 1 there (as PyTorch's backward).
template <typename T>
void softplus_backward(const T* dy, const T* x, T* dx, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    active_activation_kernels().softplus_backward(dy, x, dx, n);
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (size_t i = 0; i < n; ++i) dx[i] = x[i] > T(20) ? dy[i] : dy[i] * sigmoid_i(x[i]);
  }
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
