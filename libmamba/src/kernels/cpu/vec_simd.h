// Internal: the vector type and the few operations of the per-ISA kernels
// written with GCC's vector extensions (linear_softplus_kernels.cpp,
// narrow_matmul_kernels.cpp, row_matmul.h): one SIMD instruction per operation at the
// width of the copy being compiled (16 floats with AVX-512, 8 with AVX2,
// 4 with the x86-64 baseline). Everything is in the copy's namespace
// (MK_ACT_NS) and an anonymous one, so every copy has its own (nothing here
// may be one symbol for all copies: see selective_scan_kernels.cpp).
#pragma once

#include <immintrin.h>

#include <cstring>

namespace mk::ops::MK_ACT_NS {
namespace {

// The copy's vector: 16, 8 or 4 floats. GCC's vector extensions, so the
// arithmetic below is one SIMD instruction per operation at every width.
#if defined(__AVX512F__)
constexpr int kVW = 16;
#elif defined(__AVX__)
constexpr int kVW = 8;
#else
constexpr int kVW = 4;
#endif
typedef float Vec __attribute__((vector_size(kVW * sizeof(float))));

// a * b + c: one fused multiply-add where the copy has FMA (AVX2, AVX-512;
// exactly rounded, so those two agree), a product then a sum otherwise.
inline Vec fma(Vec a, Vec b, Vec c) {
#if defined(__AVX512F__)
  return _mm512_fmadd_ps(a, b, c);
#elif defined(__FMA__)
  return _mm256_fmadd_ps(a, b, c);
#else
  return a * b + c;
#endif
}
inline Vec splat(float s) {
#if defined(__AVX512F__)
  return _mm512_set1_ps(s);
#elif defined(__AVX__)
  return _mm256_set1_ps(s);
#else
  return _mm_set1_ps(s);
#endif
}
inline Vec fma(Vec a, float b, Vec c) { return fma(a, splat(b), c); }
// The scalar form, for the channels and columns past the last vector: the
// bits of a vector lane.
inline float scalar_fma(float a, float b, float c) {
#if defined(__FMA__) || defined(__AVX512F__)
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }

}  // namespace
}  // namespace mk::ops::MK_ACT_NS
