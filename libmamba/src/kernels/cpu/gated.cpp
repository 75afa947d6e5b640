// GELU, GLU and SwiGLU (see ops/gated.h).
#include "mambakit/ops/gated.h"

#include <cmath>

namespace mk::ops {

namespace {

constexpr size_t kParallelMin = size_t(1) << 16;

template <typename T> inline T sigm(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <typename T> inline T phi_cdf(T x) { return T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2))); }
template <typename T> inline T phi_pdf(T x) { return T(0.5 * M_2_SQRTPI * M_SQRT1_2) * std::exp(T(-0.5) * x * x); }

}  // namespace

template <typename T>
void gelu_forward(const T* x, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * phi_cdf(x[i]);
}

template <typename T>
void gelu_backward(const T* dy, const T* x, T* dx, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * (phi_cdf(x[i]) + x[i] * phi_pdf(x[i]));
}

template <typename T>
void glu_forward(const T* x, T* y, size_t rows, size_t w) {
#pragma omp parallel for schedule(static) if (rows * w > kParallelMin)
  for (size_t r = 0; r < rows; ++r) {
    const T* a = x + r * 2 * w;
    for (size_t j = 0; j < w; ++j) y[r * w + j] = a[j] * sigm(a[w + j]);
  }
}

// d a = dy s, d b = dy a s (1 - s), s = sigmoid(b)
template <typename T>
void glu_backward(const T* dy, const T* x, T* dx, size_t rows, size_t w) {
#pragma omp parallel for schedule(static) if (rows * w > kParallelMin)
  for (size_t r = 0; r < rows; ++r) {
    const T* a = x + r * 2 * w;
    T* d = dx + r * 2 * w;
    for (size_t j = 0; j < w; ++j) {
      const T s = sigm(a[w + j]), g = dy[r * w + j];
      d[j] = g * s;
      d[w + j] = g * a[j] * s * (T(1) - s);
    }
  }
}

template <typename T>
void swiglu_forward(const T* g, const T* u, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = g[i] * sigm(g[i]) * u[i];
}

template <typename T>
void swiglu_backward(const T* dy, const T* g, const T* u, T* dg, T* du, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    const T s = sigm(g[i]);
    du[i] = dy[i] * g[i] * s;
    dg[i] = dy[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
  }
}

#define MK_GATED(T)                                                                   \
  template void gelu_forward<T>(const T*, T*, size_t);                               \
  template void gelu_backward<T>(const T*, const T*, T*, size_t);                    \
  template void glu_forward<T>(const T*, T*, size_t, size_t);                        \
  template void glu_backward<T>(const T*, const T*, T*, size_t, size_t);             \
  template void swiglu_forward<T>(const T*, const T*, T*, size_t);                   \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, size_t);
MK_GATED(float)
MK_GATED(double)
#undef MK_GATED

}  // namespace mk::ops
