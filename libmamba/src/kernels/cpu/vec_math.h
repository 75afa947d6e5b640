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

#include <cmath>
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

// exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln2 / 2 (Cody-Waite: ln 2
// in two parts, the first with few enough bits that n * ln2_hi is exact).
// exp(r) by Cephes' degree-7 polynomial. 2^n is applied as two factors
// 2^(n/2) 2^(n - n/2), each a normal float, so results in the subnormal
// range and overflow to inf come out of ordinary rounding.
static inline float exp_f(float x) {
  // Beyond these exp is 0 or inf in float; clamping keeps n small, and a NaN
  // (sent to the low end, so that converting n to int stays defined) is
  // put back at the end.
  float xc = x > 89.f ? 89.f : x;
  xc = xc >= -104.f ? xc : -104.f;
  // Round to nearest by the 1.5 * 2^23 trick (SSE2 has no vector round).
  constexpr float kShift = 12582912.f;
  const float n = (xc * 1.44269504088896341f + kShift) - kShift;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  // The polynomial in Estrin's order (pairs, then powers of r^2): a chain of
  // 6 dependent operations instead of Horner's 10, so that a vector loop
  // has more of its iterations in flight (the chain, not the number of
  // operations, bounds the softplus and SiLU loops).
  const float r2 = r * r;
  const float p01 = 1.6666665459e-1f * r + 5.0000001201e-1f;
  const float p23 = 8.3333451907e-3f * r + 4.1665795894e-2f;
  const float p45 = 1.9875691500e-4f * r + 1.3981999507e-3f;
  float p = (p45 * r2 + p23) * r2 + p01;
  p = p * r2 + r + 1.f;
  const int32_t k = int32_t(n), k1 = k / 2;
  const float y = p * pow2i(k1) * pow2i(k - k1);
  return x == x ? y : x;
}

// exp(x) - 1 without the cancellation of exp_f(x) - 1 near 0: for |x| < 1/2
// the series x + x^2 (1/2! + x/3! + ... + x^7/9!), whose first term left
// out is below 1e-9 of the result there, in Estrin's order; beyond, exp_f's
// value less 1 (exp(x) is then at least e^-1/2 > 1/2 or above e^1/2, so the
// subtraction loses no more than one bit: within 3 ulp). inf, -inf and NaN
// give inf, -1 and NaN.
static inline float expm1_f(float x) {
  const float x2 = x * x, x4 = x2 * x2;
  const float q01 = (1.f / 6.f) * x + 0.5f;
  const float q23 = (1.f / 120.f) * x + (1.f / 24.f);
  const float q45 = (1.f / 5040.f) * x + (1.f / 720.f);
  const float q67 = (1.f / 362880.f) * x + (1.f / 40320.f);
  const float q = (q67 * x2 + q45) * x4 + (q23 * x2 + q01);
  const float series = x + x2 * q;
  return std::fabs(x) < 0.5f ? series : exp_f(x) - 1.f;
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
