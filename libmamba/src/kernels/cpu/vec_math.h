// exp and log1p for float in plain arithmetic, so that loops calling them
// vectorise (with the library's default x86-64 flags: four lanes of SSE2).
// glibc's expf/log1pf are scalar calls; in a training step of a small Mamba
// the softplus and SiLU loops spent more time in them than in the scan.
//
// The functions are static (internal linkage): the per-ISA copies of the
// activation kernels (activation_kernels.cpp) include this header too, and
// an inline function with external linkage would be one symbol for all of
// them, of which the linker keeps any one copy (perhaps the AVX-512 one).
//
// Accuracy (checked against double in test_activations.cpp): exp_f within
// 2 ulp everywhere including subnormal results, 0 below, inf above the
// float range, NaN for NaN; log1p_unit_f within 2 ulp on [0, 1]. Every
// operation is IEEE (no -ffast-math), so a value is the same scalar or in
// a vector lane, whatever the thread count.
#pragma once

#include <cstdint>
#include <cstring>

namespace mk::ops::vmath {

// 2^k for an integer k in [-126, 127], from its exponent bits.
static inline float pow2i(int32_t k) {
  const int32_t bits = (k + 127) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// exp(x) for x in [-104, 89] as 2^n exp(r): n = round(x / ln 2) (a float
// holding an integer) and r, |r| <= ln2 / 2 (Cody-Waite: ln 2 in two parts,
// the first with few enough bits that n * ln2_hi is exact); exp(r) by
// Cephes' degree-7 polynomial, in Estrin's order (pairs, then powers of
// r^2): a chain of 6 dependent operations instead of Horner's 10, so that a
// vector loop has more of its iterations in flight (the chain, not the
// number of operations, bounds the softplus and SiLU loops).
static inline float exp_reduced_f(float x, float* n_out) {
  // Round to nearest by the 1.5 * 2^23 trick (SSE2 has no vector round).
  constexpr float kShift = 12582912.f;
  const float n = (x * 1.44269504088896341f + kShift) - kShift;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  const float r2 = r * r;
  const float p01 = 1.6666665459e-1f * r + 5.0000001201e-1f;
  const float p23 = 8.3333451907e-3f * r + 4.1665795894e-2f;
  const float p45 = 1.9875691500e-4f * r + 1.3981999507e-3f;
  float p = (p45 * r2 + p23) * r2 + p01;
  p = p * r2 + r + 1.f;
  *n_out = n;
  return p;
}

// exp(x): exp_reduced_f's, with 2^n applied as two factors 2^(n/2)
// 2^(n - n/2), each a normal float, so results in the subnormal range and
// overflow to inf come out of ordinary rounding.
static inline float exp_f(float x) {
  // Beyond these exp is 0 or inf in float; clamping keeps n small, and a NaN
  // (sent to the low end, so that converting n to int stays defined) is
  // put back at the end.
  float xc = x > 89.f ? 89.f : x;
  xc = xc >= -104.f ? xc : -104.f;
  float n;
  const float p = exp_reduced_f(xc, &n);
  const int32_t k = int32_t(n), k1 = k / 2;
  const float y = p * pow2i(k1) * pow2i(k - k1);
  return x == x ? y : x;
}

// log1p(t) for t in [0, 1]: with s = t / (2 + t) in [0, 1/3],
// log1p(t) = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...); eight terms reach
// float precision at s = 1/3, and small t keeps full relative accuracy.
static inline float log1p_unit_f(float t) {
  const float s = t / (2.f + t), z = s * s;
  // Estrin's order, as in exp_f.
  const float z2 = z * z;
  const float q01 = (1.f / 5.f) * z + 1.f / 3.f;
  const float q23 = (1.f / 9.f) * z + 1.f / 7.f;
  const float q45 = (1.f / 13.f) * z + 1.f / 11.f;
  const float q = ((1.f / 15.f) * z2 + q45) * (z2 * z2) + (q23 * z2 + q01);
  return 2.f * s + 2.f * s * (q * z);
}

}  // namespace mk::ops::vmath
