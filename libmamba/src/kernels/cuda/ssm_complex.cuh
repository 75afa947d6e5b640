// Small complex arithmetic for the S4/S4D kernels (device and host), and
// loads/stores of interleaved (re, im) float arrays. Private to
// src/kernels/cuda.
#pragma once
#include <cuda_runtime.h>

namespace mk::cuda::detail {

template <typename R>
struct Cx {
  R re, im;
};
using cf = Cx<float>;
using cdbl = Cx<double>;

#define MK_CX_HD __host__ __device__ __forceinline__

template <typename R> MK_CX_HD Cx<R> cx(R re, R im = R(0)) { return Cx<R>{re, im}; }
template <typename R> MK_CX_HD Cx<R> operator+(Cx<R> a, Cx<R> b) { return {a.re + b.re, a.im + b.im}; }
template <typename R> MK_CX_HD Cx<R> operator-(Cx<R> a, Cx<R> b) { return {a.re - b.re, a.im - b.im}; }
template <typename R> MK_CX_HD Cx<R> operator-(Cx<R> a) { return {-a.re, -a.im}; }
template <typename R> MK_CX_HD Cx<R> operator*(Cx<R> a, Cx<R> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <typename R> MK_CX_HD Cx<R> operator*(R s, Cx<R> a) { return {s * a.re, s * a.im}; }
template <typename R> MK_CX_HD Cx<R> operator*(Cx<R> a, R s) { return {s * a.re, s * a.im}; }
template <typename R> MK_CX_HD Cx<R> operator+(Cx<R> a, R s) { return {a.re + s, a.im}; }
template <typename R> MK_CX_HD Cx<R> operator-(Cx<R> a, R s) { return {a.re - s, a.im}; }
template <typename R> MK_CX_HD Cx<R> operator+(R s, Cx<R> a) { return {s + a.re, a.im}; }
template <typename R> MK_CX_HD Cx<R> operator-(R s, Cx<R> a) { return {s - a.re, -a.im}; }
template <typename R> MK_CX_HD Cx<R>& operator+=(Cx<R>& a, Cx<R> b) {
  a.re += b.re;
  a.im += b.im;
  return a;
}
template <typename R> MK_CX_HD Cx<R>& operator-=(Cx<R>& a, Cx<R> b) {
  a.re -= b.re;
  a.im -= b.im;
  return a;
}
template <typename R> MK_CX_HD Cx<R> conj(Cx<R> a) { return {a.re, -a.im}; }
template <typename R> MK_CX_HD R norm2(Cx<R> a) { return a.re * a.re + a.im * a.im; }  // |a|^2
// Plain a / b = a conj(b) / |b|^2 (the CPU kernels divide the same way:
// they are built with -fcx-limited-range; values are far from overflow).
template <typename R> MK_CX_HD Cx<R> operator/(Cx<R> a, Cx<R> b) {
  const R d = R(1) / norm2(b);
  return {(a.re * b.re + a.im * b.im) * d, (a.im * b.re - a.re * b.im) * d};
}
template <typename R> MK_CX_HD Cx<R> operator/(R s, Cx<R> b) { return cx(s) / b; }
template <typename R> MK_CX_HD Cx<R> operator/(Cx<R> a, R s) { return {a.re / s, a.im / s}; }

MK_CX_HD cdbl to_d(cf a) { return {double(a.re), double(a.im)}; }
MK_CX_HD cf to_f(cdbl a) { return {float(a.re), float(a.im)}; }

// exp of a complex double.
__device__ __forceinline__ cdbl cexp_d(cdbl a) {
  double s, c;
  sincos(a.im, &s, &c);
  const double m = exp(a.re);
  return {m * c, m * s};
}

// Element i of an interleaved complex float array (4-byte aligned is enough).
__device__ __forceinline__ cf ld(const float* p, size_t i) { return {p[2 * i], p[2 * i + 1]}; }
__device__ __forceinline__ cdbl ldd(const float* p, size_t i) {
  return {double(p[2 * i]), double(p[2 * i + 1])};
}
__device__ __forceinline__ void st(float* p, size_t i, cf v) {
  p[2 * i] = v.re;
  p[2 * i + 1] = v.im;
}
__device__ __forceinline__ void std_(float* p, size_t i, cdbl v) {
  p[2 * i] = float(v.re);
  p[2 * i + 1] = float(v.im);
}

#undef MK_CX_HD

}  // namespace mk::cuda::detail
