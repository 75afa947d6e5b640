// CPU selective scan (Mamba's S6): a fused, chunked forward/backward that
// never stores h for every time step, a recurrent step, and a naive version
// that materialises all states (the reference the fused one is tested and
// benchmarked against).
//
// This file is compiled once per ISA (libmamba/CMakeLists.txt): MK_SCAN_ISA
// is 0 (scalar, no extra flags), 1 (AVX2+FMA) or 2 (AVX-512), and MK_SCAN_NS
// names the namespace of that copy. selective_scan.cpp checks the arguments
// and calls the copy that mk::active_isa() chose (cpu_isa.h). Nothing here
// may define an external inline function or template instance that another
// object also defines (the linker would keep one copy, perhaps the AVX-512
// one): helpers live in the anonymous namespace and containers use LocalVec.
//
// Plan of the fused kernels. Work is split into "lanes" of W consecutive
// channels (one SIMD vector: 16 floats with AVX-512, 8 with AVX2, 1 for the
// scalar/double path). With the (B, L, D) layout, u, delta, z, out for W
// channels are one contiguous load/store; B[b,t,n] and C[b,t,n] are scalar
// broadcasts; each state n of the W channels is one vector, so y accumulates
// across n with no horizontal reduction. Channels left over when D is not a
// multiple of W run through the same code with W = 1.
//   forward:  a thread walks its lanes span by span (kFwdSpan steps, half
//             a chunk); per lane and span all 16 states (N = 16) run over
//             the steps in one pass that reads the strided inputs and
//             stores the gated output as it goes; for other N the strided
//             inputs are first copied into a contiguous buffer and the
//             states run over it; state saved every kChunk steps
//             (chunk_states).
//   backward: per chunk (last to first) recompute the chunk's states and
//             exp(delta*A) from the saved start into a small per-thread
//             buffer (fits L1), then walk it backwards, again in register
//             groups whose carries and dA stay in registers. dB
//             and dC sum over channels: each lane's terms are added as
//             vectors per (step, state) and reduced across the vector once
//             per chunk, into the thread's own (B, L, N) partial sums,
//             which are added together at the end.
// The decay factors exp(delta*A), N per step and channel, dominate the cost:
// the SIMD paths compute them as 2^x with a short polynomial (Exp2K).
#include "selective_scan_isa.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(MK_SCAN_ISA) || !defined(MK_SCAN_NS)
#error "compile with MK_SCAN_ISA and MK_SCAN_NS defined (see libmamba/CMakeLists.txt)"
#endif
#if MK_SCAN_ISA == 2 && !defined(__AVX512F__)
#error "the AVX-512 scan needs -mavx512f"
#endif
#if MK_SCAN_ISA == 1 && !(defined(__AVX2__) && defined(__FMA__))
#error "the AVX2 scan needs -mavx2 -mfma"
#endif
#if MK_SCAN_ISA >= 1
#include <immintrin.h>
#endif
#if MK_SCAN_ISA == 2 && defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
// GCC 12 bug 105593: false -Wmaybe-uninitialized from _mm512_undefined_ps()
// inside the AVX-512 intrinsic headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace mk::ops::MK_SCAN_NS {
namespace {

// Containers of this file use an allocator of its own (internal linkage), so
// no std::vector<float> member compiled with this object's ISA flags can be
// merged with (and chosen by the linker instead of) the plain x86-64 copy
// of another object.
template <typename T>
struct LocalAlloc {
  using value_type = T;
  LocalAlloc() = default;
  template <typename U>
  LocalAlloc(const LocalAlloc<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, size_t) { ::operator delete(p); }
  friend bool operator==(LocalAlloc, LocalAlloc) { return true; }
  friend bool operator!=(LocalAlloc, LocalAlloc) { return false; }
};
template <typename T>
using LocalVec = std::vector<T, LocalAlloc<T>>;

// 16 steps: saved states are 1/16 of the full (B, L, D, N) tensor (at
// N = 16 as many floats as u), and the backward's per-thread buffers of the
// recomputed states and decay factors (2 * 16 * N * W floats = 32 KiB at
// N = 16, W = 16; half that with AVX2) stay in L1 on cores with 48 KiB of
// it. Measured on an Emerald Rapids against 64 steps (bench/README.md):
// forward+backward 9-10% faster with AVX2 and 0-12% with AVX-512 (its
// forward 7-19% faster, its backward from 3% slower to 11% faster) at B=2
// D=1536 L=2048 on 2 threads, 10-23% faster with both at B=8 D=512 L=256
// or 2048 on one; a one-thread training step about 5% faster for 5% more
// resident memory.
constexpr int kChunk = kScanChunk;

// Steps a lane of the forward runs before the thread's next lane does (a
// chunk is saved every kChunk steps all the same). Consecutive steps of a
// lane are D floats apart, and when D * 4 bytes is a multiple of 2 KiB
// (D = 512, 1536, ...) all of a stream's rows fall in two L1 sets; so do
// those of delta, u, z and out when the arrays start at the same offset
// modulo 4 KiB, as separate 64-byte aligned large allocations do. Over 16
// steps the 64 lines overflow those sets, and the next lane of the same
// cache lines (AVX2 has two per line) fetched them again from L2. Over 8
// steps they mostly stay. Measured on a 2-core Intel Xeon with AMX
// (bench/README.md) at B=2 D=1536 L=2048, 2 threads: AVX2 forward 15.8-20.5
// -> 15.4-15.5 ms over array placements (20.5 with the arrays 64-byte
// aligned at one offset), AVX-512 14.0 -> 11.4 ms; at B=8 D=512 L=256 on one
// thread the same. MK_FWD_SPAN=16 builds the walk of whole chunks.
#ifndef MK_FWD_SPAN
#define MK_FWD_SPAN 8
#endif
constexpr int kFwdSpan = MK_FWD_SPAN;
static_assert(kChunk % kFwdSpan == 0, "the forward's spans must tile its chunks");

// Below this many state updates (B*L*D*N) a call runs on one thread: waking
// the team costs more than the work.
constexpr size_t kParallelMinWork = kScanParallelMinWork;

// States per register group of the forward (state_group()).
#ifndef MK_AVX2_STATE_GROUP
#define MK_AVX2_STATE_GROUP 16
#endif
#ifndef MK_AVX512_STATE_GROUP
#define MK_AVX512_STATE_GROUP 16
#endif
constexpr int kAvx2StateGroup = MK_AVX2_STATE_GROUP;
constexpr int kAvx512StateGroup = MK_AVX512_STATE_GROUP;
#ifndef MK_AVX2_REVERSE_GROUP
#define MK_AVX2_REVERSE_GROUP 4
#endif
#ifndef MK_AVX512_REVERSE_GROUP
#define MK_AVX512_REVERSE_GROUP 16
#endif
constexpr int kAvx2ReverseGroup = MK_AVX2_REVERSE_GROUP;
// How far ahead the kernels prefetch (PrefetchAhead), in cache lines of
// lanes. Measured on an Emerald Rapids at the benchmark shape (B=2 D=1536
// L=2048, 2 threads): with 1 (the next line, and nothing for the first
// lanes of a chunk) the AVX-512 backward waited on its loads of delta and u
// and took as long as the AVX2 one; with 2 it is 22-35% faster, with 3 or 4
// no faster than 2; AVX2 and scalar about the same either way (64-step
// chunks then; with 16, 4 or 8 lines showed no consistent gain over 2 in
// three noisy rounds).
#ifndef MK_SCAN_AHEAD_LINES
#define MK_SCAN_AHEAD_LINES 2
#endif
constexpr int kAheadLines = MK_SCAN_AHEAD_LINES;

template <typename T>
size_t work_of(const SelectiveScanParams<T>& p) {
  return size_t(p.batch) * p.len * p.dim * p.dstate;
}

// ---------------------------------------------------------------------------
// SIMD wrappers: one type per vector width with the few operations the
// kernels need. All kernels are written once against this interface.
// ---------------------------------------------------------------------------

template <typename T>
struct Scalar {
  using elem = T;
  static constexpr int W = 1;
  T v;
  static Scalar load(const T* p) { return {*p}; }
  void store(T* p) const { *p = v; }
  static Scalar set1(T x) { return {x}; }
  static Scalar zero() { return {T(0)}; }
  friend Scalar operator+(Scalar a, Scalar b) { return {a.v + b.v}; }
  friend Scalar operator-(Scalar a, Scalar b) { return {a.v - b.v}; }
  friend Scalar operator*(Scalar a, Scalar b) { return {a.v * b.v}; }
  friend Scalar operator/(Scalar a, Scalar b) { return {a.v / b.v}; }
  static Scalar fma(Scalar a, Scalar b, Scalar c) { return {a.v * b.v + c.v}; }
  static Scalar exp(Scalar x) { return {std::exp(x.v)}; }
  // dst[n] += sum of the lanes of s[n], n < N.
  static void add_reduced(const Scalar* s, int N, T* dst) {
    for (int n = 0; n < N; ++n) dst[n] += s[n].v;
  }
  // One lane: the saved-state layout is the states in order.
  static void store_by_lane(const Scalar* s, int N, T* dst) { store_by_lane_rest(s, 0, N, dst); }
  static void load_by_lane(Scalar* s, int N, const T* src) { load_by_lane_rest(s, 0, N, src); }
};

// Coefficients of the vector exp: e^x = 2^k * e^r, x = k ln2 + r, |r| <= ln2/2.
// ln2 is split in two (Cody-Waite) so k*ln2_hi is exact and r keeps full
// precision; e^r is its Taylor polynomial of degree 7 (truncation error
// < 1e-8 relative on the interval, below float rounding). Arguments below
// ExpK::min (where e^x would be subnormal) give exactly 0.
#if MK_SCAN_ISA >= 1
struct ExpK {
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693359375f;
  static constexpr float ln2_lo = -2.12194440e-4f;
  static constexpr float min = -87.33654f;  // ln(FLT_MIN)
  [[maybe_unused]] static constexpr float max = 88.3762626647949f;  // AVX2 path
  static constexpr float c[8] = {1.f,      1.f,       1.f / 2,   1.f / 6,
                                 1.f / 24, 1.f / 120, 1.f / 720, 1.f / 5040};
};

// The scan's decay factors exp(delta*A) are computed as 2^(delta * A log2e)
// with A scaled once per lane (DecayExp below), which saves the range
// reduction's multiply and its two-part ln2 subtraction: 2^x = 2^k 2^r with
// k = round(x), r = x - k exact, |r| <= 1/2, and 2^r = 1 + r q(r) with q of
// degree 4 (a relative minimax fit, max error 1.6e-7 in float arithmetic,
// exactly 1 at r = 0, so a decay of 1 stays 1). x is clamped to [lo, hi]
// so 2^k stays a normal float; below lo the true value is < 2^-125 and the
// factor is that small instead of 0 (no different for the scan's sums).
// The clamp works on the bit patterns, as integers: a signed minimum with
// hi (positive floats order as their patterns do, and every negative one
// is a negative integer), then an unsigned minimum with lo (negative floats
// order by magnitude, above every positive one). Same values as the float
// min/max, on integer pipes: on a Zen 4, whose float min/max share the two
// multiply pipes with the FMAs, forward and backward 4% faster with
// AVX-512 at B=8 D=512 L=256 on one thread and at B=2 D=1536 L=2048 on
// two, 1-3% faster forward with AVX2. A NaN x (a NaN delta, or an infinite
// one times A = 0) gives a factor 2^lo or 2^hi, not NaN; the step's delta*u
// is NaN or infinite all the same, and so is h. Calls whose A has a NaN or
// infinity use the exact exp. The AVX2 copy rounds and clamps k instead of
// x, off the chain to the polynomial (F8::exp2_fast).
struct Exp2K {
  static constexpr float lo = -125.f, hi = 127.f;
  static constexpr float magic = 12582912.f;  // 1.5 * 2^23: x + magic rounds x to an integer
  static constexpr float q[5] = {6.931470037e-01f, 2.402224243e-01f, 5.550733954e-02f,
                                 9.671513923e-03f, 1.326471451e-03f};
};
#endif

// States n0..N of the N vectors s (lane l = channel l of the lane) in the
// saved-state layout, dst[l * N + n], and back, one element at a time: the
// scalar lanes, and the states after the blocks of 8 that the SIMD types
// transpose (store_by_lane, load_by_lane).
template <class V>
void store_by_lane_rest(const V* s, int n0, int N, typename V::elem* dst) {
  alignas(64) typename V::elem lanes[V::W];
  for (int n = n0; n < N; ++n) {
    s[n].store(lanes);
    for (int l = 0; l < V::W; ++l) dst[size_t(l) * N + n] = lanes[l];
  }
}
template <class V>
void load_by_lane_rest(V* s, int n0, int N, const typename V::elem* src) {
  alignas(64) typename V::elem lanes[V::W];
  for (int n = n0; n < N; ++n) {
    for (int l = 0; l < V::W; ++l) lanes[l] = src[size_t(l) * N + n];
    s[n] = V::load(lanes);
  }
}

#if MK_SCAN_ISA >= 1
// r[j] (j < 8) becomes the vector of element j of every input: an 8x8
// transpose of floats in 24 shuffles. It turns the state vectors of a lane
// (one vector per state, one element per channel) into the saved-state
// layout (per channel, consecutive states) and back.
inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    const int a = 4 * i;
    u[a] = _mm256_shuffle_ps(t[a], t[a + 2], 0x44);
    u[a + 1] = _mm256_shuffle_ps(t[a], t[a + 2], 0xEE);
    u[a + 2] = _mm256_shuffle_ps(t[a + 1], t[a + 3], 0x44);
    u[a + 3] = _mm256_shuffle_ps(t[a + 1], t[a + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
    r[j + 4] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
  }
}
#endif

#if MK_SCAN_ISA == 2
struct F16 {
  using elem = float;
  static constexpr int W = 16;
  __m512 v;
  static F16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  static F16 set1(float x) { return {_mm512_set1_ps(x)}; }
  static F16 zero() { return {_mm512_setzero_ps()}; }
  friend F16 operator+(F16 a, F16 b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend F16 operator-(F16 a, F16 b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend F16 operator*(F16 a, F16 b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend F16 operator/(F16 a, F16 b) { return {_mm512_div_ps(a.v, b.v)}; }
  static F16 fma(F16 a, F16 b, F16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  static F16 exp(F16 xv) {
    __m512 x = xv.v;
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(ExpK::log2e)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(ExpK::ln2_hi), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(ExpK::ln2_lo), r);
    __m512 p = _mm512_set1_ps(ExpK::c[7]);
    for (int i = 6; i >= 0; --i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ExpK::c[i]));
    // scalef multiplies by 2^k through the exponent and overflows to +inf
    // cleanly; the mask zeroes what would be subnormal (and -inf). NaN has
    // its mask bit set (NLT is true for unordered) and stays NaN.
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(ExpK::min), _CMP_NLT_UQ);
    return {_mm512_maskz_scalef_ps(keep, p, k)};
  }
  // 2^x (Exp2K), as F8::exp2_fast: k rounded by the magic-number addition
  // and applied as an integer add to the exponent field (cheaper than
  // roundscale + scalef on cores that split 512-bit operations).
  static F16 exp2_fast(F16 xv) {
    const __m512 magic = _mm512_set1_ps(Exp2K::magic);
    const __m512i below_hi = _mm512_min_epi32(_mm512_castps_si512(xv.v),
                                              _mm512_castps_si512(_mm512_set1_ps(Exp2K::hi)));
    const __m512 x = _mm512_castsi512_ps(
        _mm512_min_epu32(below_hi, _mm512_castps_si512(_mm512_set1_ps(Exp2K::lo))));
    const __m512 t = _mm512_add_ps(x, magic);
    const __m512 r = _mm512_sub_ps(x, _mm512_sub_ps(t, magic));
    __m512 q = _mm512_set1_ps(Exp2K::q[4]);
    for (int i = 3; i >= 0; --i) q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(Exp2K::q[i]));
    const __m512 p = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.f));
    const __m512i k_exp = _mm512_slli_epi32(_mm512_castps_si512(t), 23);
    return {_mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), k_exp))};
  }
  // The saved-state layout (dst[l * N + n] = lane l of s[n], n < N) and
  // back: each 8 states go through two transpose8x8, one per half of the
  // lanes (16 vector stores of 8 floats instead of 128 scalar ones).
  static void store_by_lane(const F16* s, int N, float* dst) {
    int n0 = 0;
    for (; n0 + 8 <= N; n0 += 8) {
      __m256 lo[8], hi[8];
      for (int j = 0; j < 8; ++j) {
        lo[j] = _mm512_extractf32x8_ps(s[n0 + j].v, 0);
        hi[j] = _mm512_extractf32x8_ps(s[n0 + j].v, 1);
      }
      transpose8x8(lo);
      transpose8x8(hi);
      for (int l = 0; l < 8; ++l) {
        _mm256_storeu_ps(dst + size_t(l) * N + n0, lo[l]);
        _mm256_storeu_ps(dst + size_t(l + 8) * N + n0, hi[l]);
      }
    }
    store_by_lane_rest(s, n0, N, dst);
  }
  static void load_by_lane(F16* s, int N, const float* src) {
    int n0 = 0;
    for (; n0 + 8 <= N; n0 += 8) {
      __m256 lo[8], hi[8];
      for (int l = 0; l < 8; ++l) {
        lo[l] = _mm256_loadu_ps(src + size_t(l) * N + n0);
        hi[l] = _mm256_loadu_ps(src + size_t(l + 8) * N + n0);
      }
      transpose8x8(lo);
      transpose8x8(hi);
      for (int j = 0; j < 8; ++j)
        s[n0 + j].v = _mm512_insertf32x8(_mm512_castps256_ps512(lo[j]), hi[j], 1);
    }
    load_by_lane_rest(s, n0, N, src);
  }
  // dst[n] += sum over lanes of s[n]. Groups of 16 states are reduced
  // together by a transpose-and-add tree (4 levels, 45 instructions for 16
  // sums instead of 16 separate horizontal reductions).
  static void add_reduced(const F16* s, int N, float* dst) {
    int n0 = 0;
    for (; n0 + 16 <= N; n0 += 16) {
      // The tree below leaves sum(slot 4e+k) in output lane 4k+e, so slot
      // 4e+k is fed with state 4k+e to get the sums in natural order.
      __m512 x[16];
      for (int sl = 0; sl < 16; ++sl) x[sl] = s[n0 + 4 * (sl % 4) + sl / 4].v;
      __m512 l1[8], l2[4], l3[2];
      for (int i = 0; i < 8; ++i)  // 256-bit halves
        l1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x44),
                              _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xEE));
      for (int j = 0; j < 4; ++j)  // 128-bit quarters
        l2[j] = _mm512_add_ps(_mm512_shuffle_f32x4(l1[2 * j], l1[2 * j + 1], 0x88),
                              _mm512_shuffle_f32x4(l1[2 * j], l1[2 * j + 1], 0xDD));
      for (int m = 0; m < 2; ++m)  // pairs within 128-bit lanes
        l3[m] = _mm512_add_ps(_mm512_shuffle_ps(l2[2 * m], l2[2 * m + 1], 0x44),
                              _mm512_shuffle_ps(l2[2 * m], l2[2 * m + 1], 0xEE));
      __m512 sum = _mm512_add_ps(_mm512_shuffle_ps(l3[0], l3[1], 0x88),
                                 _mm512_shuffle_ps(l3[0], l3[1], 0xDD));
      _mm512_storeu_ps(dst + n0, _mm512_add_ps(_mm512_loadu_ps(dst + n0), sum));
    }
    for (int n = n0; n < N; ++n) dst[n] += _mm512_reduce_add_ps(s[n].v);
  }
};
#endif

#if MK_SCAN_ISA == 1
struct F8 {
  using elem = float;
  static constexpr int W = 8;
  __m256 v;
  static F8 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  static F8 set1(float x) { return {_mm256_set1_ps(x)}; }
  static F8 zero() { return {_mm256_setzero_ps()}; }
  friend F8 operator+(F8 a, F8 b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend F8 operator-(F8 a, F8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend F8 operator/(F8 a, F8 b) { return {_mm256_div_ps(a.v, b.v)}; }
  static F8 fma(F8 a, F8 b, F8 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static F8 exp(F8 xv) {
    __m256 x = xv.v;
    // Clamp so 2^k stays a normal float; what was below ExpK::min is zeroed
    // at the end (NaN compares false in the blend mask and stays NaN).
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(ExpK::min)),
                              _mm256_set1_ps(ExpK::max));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(ExpK::log2e)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(ExpK::ln2_hi), xc);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(ExpK::ln2_lo), r);
    __m256 p = _mm256_set1_ps(ExpK::c[7]);
    for (int i = 6; i >= 0; --i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(ExpK::c[i]));
    // k in [-126, 127]: 2^k built from the exponent bits.
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(ExpK::min), _CMP_LT_OQ);
    __m256 over = _mm256_cmp_ps(x, _mm256_set1_ps(ExpK::max), _CMP_GT_OQ);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
    y = _mm256_andnot_ps(under, y);
    __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return {_mm256_blendv_ps(y, x, isnan)};
  }
  // 2^x (Exp2K), with a shorter chain of dependent operations than
  // F16::exp2_fast: k is rounded by vroundps and r = x - k taken from it
  // (the magic-number addition needs two dependent subtractions for r); k,
  // not x, is clamped, off the path to the polynomial; and the polynomial
  // is evaluated in Estrin's order (three levels instead of five). Each
  // state's factor then waits about 22 cycles on a Zen 3 instead of about
  // 35. The forward and the backward's recompute start the factors of all
  // 16 states of a step at once, and on a Zen 3 they were bound by that
  // chain rather than by their FMAs: measured there (bench/README.md),
  // forward and forward+backward 8-12% faster at the bench shape on two
  // threads, 7% on one lane pair in L1. One more multiply (r*r) than
  // Horner's order; the same results up to the last bits (max relative
  // error 1.9e-7 against 1.7e-7). Not measured on Intel cores, where
  // vroundps is two micro-ops.
  static F8 exp2_fast(F8 xv) {
    const __m256 x = xv.v;
    const __m256 kf = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_sub_ps(x, kf);
    // k clamped to [lo, hi]: to hi as a float (a k past 2^31 would convert
    // to INT_MIN, as one below -2^31 does), to lo as an integer. Where that
    // changed k, |r| <= 1/2 still, and the factor is between 2^(lo - 1/2)
    // and 2^(hi + 1/2), a normal float. A NaN x gives some finite factor,
    // not NaN (as Exp2K says); the step's delta*u is NaN all the same.
    const __m256i k = _mm256_max_epi32(
        _mm256_cvtps_epi32(_mm256_min_ps(kf, _mm256_set1_ps(Exp2K::hi))),
        _mm256_set1_epi32(int(Exp2K::lo)));
    const __m256 r2 = _mm256_mul_ps(r, r);
    const __m256 e01 = _mm256_fmadd_ps(_mm256_set1_ps(Exp2K::q[0]), r, _mm256_set1_ps(1.f));
    const __m256 e23 = _mm256_fmadd_ps(_mm256_set1_ps(Exp2K::q[2]), r, _mm256_set1_ps(Exp2K::q[1]));
    const __m256 e45 = _mm256_fmadd_ps(_mm256_set1_ps(Exp2K::q[4]), r, _mm256_set1_ps(Exp2K::q[3]));
    const __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(e45, r2, e23), r2, e01);
    return {_mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(k, 23)))};
  }
  // The saved-state layout (dst[l * N + n] = lane l of s[n], n < N) and
  // back: each 8 states go through transpose8x8 (8 vector stores instead of
  // 64 scalar ones).
  static void store_by_lane(const F8* s, int N, float* dst) {
    int n0 = 0;
    for (; n0 + 8 <= N; n0 += 8) {
      __m256 r[8];
      for (int j = 0; j < 8; ++j) r[j] = s[n0 + j].v;
      transpose8x8(r);
      for (int l = 0; l < 8; ++l) _mm256_storeu_ps(dst + size_t(l) * N + n0, r[l]);
    }
    store_by_lane_rest(s, n0, N, dst);
  }
  static void load_by_lane(F8* s, int N, const float* src) {
    int n0 = 0;
    for (; n0 + 8 <= N; n0 += 8) {
      __m256 r[8];
      for (int l = 0; l < 8; ++l) r[l] = _mm256_loadu_ps(src + size_t(l) * N + n0);
      transpose8x8(r);
      for (int j = 0; j < 8; ++j) s[n0 + j].v = r[j];
    }
    load_by_lane_rest(s, n0, N, src);
  }
  // dst[n] += sum over lanes of s[n]. Groups of 8 states are reduced together
  // by a transpose-and-add tree (21 instructions for 8 sums instead of 8
  // separate horizontal reductions).
  static void add_reduced(const F8* s, int N, float* dst) {
    int n0 = 0;
    for (; n0 + 8 <= N; n0 += 8) {
      __m256 a[4], b[2];
      for (int i = 0; i < 4; ++i) {  // a[i] = pairwise sums of states 2i, 2i+1
        const __m256 x = s[n0 + 2 * i].v, y = s[n0 + 2 * i + 1].v;
        a[i] = _mm256_add_ps(_mm256_unpacklo_ps(x, y), _mm256_unpackhi_ps(x, y));
      }
      for (int j = 0; j < 2; ++j)  // b[j]: per 128-bit half, sums of states 4j..4j+3
        b[j] = _mm256_add_ps(_mm256_shuffle_ps(a[2 * j], a[2 * j + 1], 0x44),
                             _mm256_shuffle_ps(a[2 * j], a[2 * j + 1], 0xEE));
      const __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(b[0], b[1], 0x20),
                                       _mm256_permute2f128_ps(b[0], b[1], 0x31));
      _mm256_storeu_ps(dst + n0, _mm256_add_ps(_mm256_loadu_ps(dst + n0), sum));
    }
    for (int n = n0; n < N; ++n) {
      __m128 q = _mm_add_ps(_mm256_castps256_ps128(s[n].v), _mm256_extractf128_ps(s[n].v, 1));
      q = _mm_add_ps(q, _mm_movehl_ps(q, q));
      q = _mm_add_ss(q, _mm_movehdup_ps(q));
      dst[n] += _mm_cvtss_f32(q);
    }
  }
};
#endif

// The widest vector type for T on the build target.
template <typename T>
struct FastVec {
  using type = Scalar<T>;
};
#if MK_SCAN_ISA == 2
template <>
struct FastVec<float> {
  using type = F16;
};
#elif MK_SCAN_ISA == 1
template <>
struct FastVec<float> {
  using type = F8;
};
#endif

// The decay factor exp(delta*A) of the fused kernels. With Fast (the default
// for SIMD lanes) A is scaled by log2(e) once per lane in load_At and the
// factor is exp2_fast(delta * A log2e) (Exp2K); without it (scalar lanes,
// double, or an A with a NaN or infinity) A is used as is with the exact exp.
template <class V, bool Fast>
struct DecayExp {
  using T = typename V::elem;
  static constexpr bool kScaled = Fast && V::W > 1;
  static constexpr T kAScale = kScaled ? T(1.44269504088896341) : T(1);
  static V exp(V x) {
    if constexpr (kScaled)
      return V::exp2_fast(x);
    else
      return V::exp(x);
  }
  // d(loss)/d(delta) sums ga * A over the states; with scaled A the sum is
  // scaled back once per step.
  static V unscale(V sum_ga_A) {
    if constexpr (kScaled)
      return sum_ga_A * V::set1(T(0.693147180559945309));
    else
      return sum_ga_A;
  }
};

// Consecutive time steps of one lane are D elements apart, which for real
// sizes is more than a page, so the hardware prefetchers do not follow them;
// the kernels prefetch the rows of the lanes they will run next into L2
// themselves (PrefetchAhead; gather_span, forward_one_pass, recompute_chunk).
inline void prefetch_l2(const void* p) { __builtin_prefetch(p, 0, 2); }

template <class V>
V silu_of(V z, V* sig_out = nullptr) {
  using T = typename V::elem;
  // SIMD lanes use the fast 2^x (Exp2K; its clamp only bounds e^-z where the
  // sigmoid is already 0 or 1 to float precision); the exact exp otherwise.
  V e;
  if constexpr (V::W > 1)
    e = V::exp2_fast(z * V::set1(T(-1.44269504088896341)));
  else
    e = V::exp(V::zero() - z);
  V s = V::set1(1) / (V::set1(1) + e);
  if (sig_out) *sig_out = s;
  return z * s;
}

// Copies between N vectors h[n] (lane l = channel d0+l) and the (D, N) rows
// of a saved state at dst = &state[d0 * N]: element (l, n) at dst[l*N + n].
template <class V, class S>
void store_states(S& h, int N, typename V::elem* dst) {
  V::store_by_lane(&h[0], N, dst);
}
template <class V>
void load_states(V* h, int N, const typename V::elem* src) {
  V::load_by_lane(h, N, src);
}

// A[d0+l, n] * scale for the W lanes starting at channel d0, as N vectors
// (A is (D, N), so the W values of one n are strided; gathered once per lane).
template <class V>
void load_At(const typename V::elem* A, int d0, int N, V* At, typename V::elem scale) {
  using T = typename V::elem;
  alignas(64) T lanes[V::W];
  for (int n = 0; n < N; ++n) {
    for (int l = 0; l < V::W; ++l) lanes[l] = A[size_t(d0 + l) * N + n] * scale;
    At[n] = V::load(lanes);
  }
}

// ---------------------------------------------------------------------------
// Fused forward. A thread owns a run of lanes of one batch row and walks it
// span by span (kFwdSpan steps: all its lanes through span c before span
// c+1), so the lanes that share a cache line (two per line with AVX2) read
// it while it is still in cache. For one lane and span, with N = 16 on the
// SIMD paths, one pass over the steps (forward_one_pass) reads delta, u and
// z, runs all states and stores the gated output; otherwise three passes:
//   gather: delta, delta*u and D*u of the span's steps are copied into a
//           contiguous per-thread buffer (consecutive steps are D floats
//           apart: more than a page for real sizes, and at D = 1536 every
//           row of a stream falls in the same two L1 sets, so rows read in
//           one pass are gone by the next), while the rows of a lane
//           kAheadLines cache lines later are prefetched into L2;
//   passes: the states run in groups held in registers (forward_states)
//           over the buffered steps, adding C h into the buffered y;
//   gate:   y * silu(z) is stored to out.
// ---------------------------------------------------------------------------

// The (batch row, span of steps, lane) whose rows the steps of a lane's
// span prefetch, in the forward and the backward. The default is none (no
// steps).
struct PrefetchTarget {
  int b = 0, d0 = 0, t0 = 0, t1 = 0;
  int steps() const { return t1 - t0; }
};

// Prefetch targets over a thread's sequence of tasks (task: lane k, of
// width V::W from channel c0, over span c of batch row b; a span is `span`
// steps: kFwdSpan in the forward, a chunk in the backward). The tasks run
// batch row by batch row from b0 (n_rows of them), in each the spans up
// (forward) or down (backward: reverse), in each span the n_lanes lanes
// up. A task's target is the task kAheadLines cache lines of lanes later in
// that order, so the last lanes of a span prefetch the first lanes of the
// next span or batch row; the last tasks have none.
template <class V>
struct PrefetchAhead {
  int b0, n_rows, c0, n_lanes, n_spans, len, span;
  bool reverse;
  long ahead;  // in tasks: kAheadLines cache lines of lanes
  PrefetchAhead(int b0_, int n_rows_, int c0_, int n_lanes_, int n_spans_, int len_, int span_,
                bool reverse_)
      : b0(b0_), n_rows(n_rows_), c0(c0_), n_lanes(n_lanes_), n_spans(n_spans_), len(len_),
        span(span_), reverse(reverse_) {
    constexpr int lanes_per_line = std::max(1, int(64 / sizeof(typename V::elem)) / V::W);
    ahead = long(kAheadLines) * lanes_per_line;
  }
  PrefetchTarget target(int b, int c, int k) const {
    const int c_place = reverse ? n_spans - 1 - c : c;
    const long task = (long(b - b0) * n_spans + c_place) * n_lanes + k + ahead;
    PrefetchTarget pf;
    if (task >= long(n_rows) * n_spans * n_lanes) return pf;
    const long row_span = task / n_lanes;
    const int place = int(row_span % n_spans);
    pf.b = b0 + int(row_span / n_spans);
    pf.d0 = c0 + int(task % n_lanes) * V::W;
    pf.t0 = (reverse ? n_spans - 1 - place : place) * span;
    pf.t1 = std::min(len, pf.t0 + span);
    return pf;
  }
};

// One lane's chunk of inputs, contiguous.
template <class V>
struct FwdChunk {
  std::vector<V> dl, du, y;  // (kChunk) each: delta, delta * u, running y
  FwdChunk() : dl(kChunk), du(kChunk), y(kChunk) {}
};

// A and h of a run of lanes (N vectors per lane).
template <class V>
struct FwdLanes {
  std::vector<V> At, h;
  FwdLanes(int n_lanes, int N) : At(size_t(n_lanes) * N), h(size_t(n_lanes) * N) {}
};

// The forward's prefetch of one step of its target: the rows of delta, u,
// z (may be null) and out at element q.
template <typename T>
inline void prefetch_forward_rows(const T* delta, const T* u, const T* z, const T* out, size_t q) {
  prefetch_l2(delta + q);
  prefetch_l2(u + q);
  if (z) prefetch_l2(z + q);
  prefetch_l2(out + q);
}

// Copies the span's delta, delta*u and D*u (the y the states add to) of the
// W channels at d0 into buf; prefetches the rows of pf.
template <class V>
void gather_span(const SelectiveScanParams<typename V::elem>& p, int b, int d0, int t0, int t1,
                  const typename V::elem* out, FwdChunk<V>& buf, const PrefetchTarget& pf) {
  const int L = p.len, D = p.dim;
  const V Dv = p.Dskip ? V::load(p.Dskip + d0) : V::zero();
  const size_t pf_off = (size_t(pf.b) * L + pf.t0) * D + pf.d0;
  for (int t = t0; t < t1; ++t) {
    const size_t off = (size_t(b) * L + t) * D;
    if (t - t0 < pf.steps())
      prefetch_forward_rows(p.delta, p.u, p.z, out, pf_off + size_t(t - t0) * D);
    const V dl = V::load(p.delta + off + d0), uu = V::load(p.u + off + d0);
    buf.dl[t - t0] = dl;
    buf.du[t - t0] = dl * uu;
    buf.y[t - t0] = Dv * uu;
  }
}

// States n0..n0+G of one lane over the n_steps buffered steps (G a
// compile-time constant: the states are copied into a local array indexed
// only by constants after unrolling, so they stay in registers), or with
// G = 0 all N states in memory. Bt and Ct point at the chunk's first row of
// B and C (rows of N).
template <class V, int G, bool Fast>
void forward_states(const typename V::elem* Bt, const typename V::elem* Ct, int N, int n0,
                    int n_steps, const V* At, V* hmem, FwdChunk<V>& buf) {
  const int NG = G ? G : N;
  V hloc[G ? G : 1];
  V* h = G ? hloc : hmem + n0;
  if constexpr (G > 0) {
#pragma GCC unroll 64
    for (int n = 0; n < G; ++n) hloc[n] = hmem[n0 + n];
  }
  // V stores are may_alias: locals keep GCC from reloading the pointers.
  const V* __restrict dlbuf = buf.dl.data();
  const V* __restrict dubuf = buf.du.data();
  V* __restrict ybuf = buf.y.data();
  for (int i = 0; i < n_steps; ++i) {
    const V dl = dlbuf[i], du = dubuf[i];
    const auto* Bi = Bt + size_t(i) * N + n0;
    const auto* Ci = Ct + size_t(i) * N + n0;
    // Two accumulators halve the length of the dependent FMA chain over n.
    V y0 = ybuf[i], y1 = V::zero();
#pragma GCC unroll 16
    for (int n = 0; n < NG; ++n) {
      const V a = DecayExp<V, Fast>::exp(dl * At[n0 + n]);
      h[n] = V::fma(a, h[n], du * V::set1(Bi[n]));
      if (n & 1)
        y1 = V::fma(h[n], V::set1(Ci[n]), y1);
      else
        y0 = V::fma(h[n], V::set1(Ci[n]), y0);
    }
    ybuf[i] = y0 + y1;
  }
  if constexpr (G > 0) {
#pragma GCC unroll 64
    for (int n = 0; n < G; ++n) hmem[n0 + n] = hloc[n];
  }
}

// States per register group of the forward. With 16 states (the usual N)
// both SIMD paths take all of them in one group and run a lane's span in
// one pass (forward_one_pass). Neither has the registers for 16 states and
// the exp's constants: GCC 12 spills 10 of them with AVX-512 and most with
// AVX2 to the stack (a load and a store per spilled state and step, served
// by store forwarding), and the one pass is faster all the same. Measured
// on a Zen 5 (bench shape, 2 threads; bench/README.md) against groups of 8
// with a gather pass and a gate pass: forward 13% (AVX2) and 16% (AVX-512)
// faster, 13-21% at B=8 D=512 L=256 on one thread (whole chunks then; the
// 8-step spans were measured on an Intel Xeon with AMX, kFwdSpan). Other N
// (no compile-time N) keep their states in memory and run the gather,
// state and gate passes. Building with
// MK_AVX2_STATE_GROUP or MK_AVX512_STATE_GROUP = 8 brings back the groups
// of 8 with those passes, for comparison.
template <class V, int NC>
constexpr int state_group() {
  if (NC == 0 || V::W == 1) return NC;
  constexpr int G = V::W == 8 ? kAvx2StateGroup : kAvx512StateGroup;
  return NC % G == 0 ? G : NC;
}

// Whether a lane's span runs in one pass (forward_one_pass) rather than
// gather, state groups and gate: when a compile-time N fits one group.
template <class V, int NC>
constexpr bool one_pass_forward() {
  return NC > 0 && V::W > 1 && state_group<V, NC>() == NC;
}

// Steps t0..t1 of the lane at channel d0 with all NC states in one register
// group (spilled where the registers run out): delta, u and z are read from
// their rows and the gated output stored as each step is done, so the
// strided loads overlap with the arithmetic of the states instead of
// waiting in a separate gather pass.
template <class V, int NC, bool Fast>
void forward_one_pass(const SelectiveScanParams<typename V::elem>& p, int b, int d0, int t0,
                      int t1, const V* At, V* hmem, typename V::elem* out,
                      const PrefetchTarget& pf) {
  using T = typename V::elem;
  const int L = p.len, D = p.dim;
  const V Dv = p.Dskip ? V::load(p.Dskip + d0) : V::zero();
  V h[NC];
#pragma GCC unroll 64
  for (int n = 0; n < NC; ++n) h[n] = hmem[n];
  const T* const delta = p.delta;
  const T* const u = p.u;
  const T* const z = p.z;
  const size_t pf_off = (size_t(pf.b) * L + pf.t0) * D + pf.d0;
  for (int t = t0; t < t1; ++t) {
    const size_t row = size_t(b) * L + t, off = row * D + d0;
    if (t - t0 < pf.steps())
      prefetch_forward_rows(delta, u, z, out, pf_off + size_t(t - t0) * D);
    const V dl = V::load(delta + off), uu = V::load(u + off);
    const V du = dl * uu;
    const T* Bi = p.Bm + row * NC;
    const T* Ci = p.Cm + row * NC;
    V y0 = Dv * uu, y1 = V::zero();
#pragma GCC unroll 64
    for (int n = 0; n < NC; ++n) {
      const V a = DecayExp<V, Fast>::exp(dl * At[n]);
      h[n] = V::fma(a, h[n], du * V::set1(Bi[n]));
      if (n & 1)
        y1 = V::fma(h[n], V::set1(Ci[n]), y1);
      else
        y0 = V::fma(h[n], V::set1(Ci[n]), y0);
    }
    V y = y0 + y1;
    if (z) y = y * silu_of(V::load(z + off));
    y.store(out + off);
  }
#pragma GCC unroll 64
  for (int n = 0; n < NC; ++n) hmem[n] = h[n];
}

// Steps t0..t1 of the lane at channel d0 in three passes: gather, the
// state groups over the buffered steps, and the gate.
template <class V, int NC, bool Fast>
void forward_passes(const SelectiveScanParams<typename V::elem>& p, int b, int d0, int t0, int t1,
                    const V* At, V* h, FwdChunk<V>& buf, typename V::elem* out,
                    const PrefetchTarget& pf) {
  const int L = p.len, D = p.dim, N = NC ? NC : p.dstate;
  gather_span(p, b, d0, t0, t1, out, buf, pf);
  const auto* Bt = p.Bm + (size_t(b) * L + t0) * N;
  const auto* Ct = p.Cm + (size_t(b) * L + t0) * N;
  constexpr int G = state_group<V, NC>();
  if constexpr (G == 0) {
    forward_states<V, 0, Fast>(Bt, Ct, N, 0, t1 - t0, At, h, buf);
  } else {
    for (int n0 = 0; n0 < N; n0 += G) forward_states<V, G, Fast>(Bt, Ct, N, n0, t1 - t0, At, h, buf);
  }
  for (int t = t0; t < t1; ++t) {
    const size_t off = (size_t(b) * L + t) * D + d0;
    V y = buf.y[t - t0];
    if (p.z) y = y * silu_of(V::load(p.z + off));
    y.store(out + off);
  }
}

// Steps t0..t1 (one span, within one chunk) of the lane at channel d0:
// saves the chunk's start state if the span starts the chunk, then runs the
// span in one pass or three (one_pass_forward).
template <class V, int NC, bool Fast>
void forward_span(const SelectiveScanParams<typename V::elem>& p, int b, int d0, int t0, int t1,
                   const V* At, V* h, FwdChunk<V>& buf, typename V::elem* out,
                   typename V::elem* chunk_states, const PrefetchTarget& pf) {
  const int L = p.len, D = p.dim, N = NC ? NC : p.dstate;
  const int n_chunks = (L + kChunk - 1) / kChunk, c = t0 / kChunk;
  if (chunk_states && t0 % kChunk == 0)
    store_states<V>(h, N, chunk_states + ((size_t(b) * n_chunks + c) * D + d0) * N);
  if constexpr (one_pass_forward<V, NC>())
    forward_one_pass<V, NC, Fast>(p, b, d0, t0, t1, At, h, out, pf);
  else
    forward_passes<V, NC, Fast>(p, b, d0, t0, t1, At, h, buf, out, pf);
}

// Lanes j0..j1 (LaneSplit numbering) of batch row b, span by span.
template <class V, class S1, int NC, bool Fast, class Split>
void forward_run(const SelectiveScanParams<typename V::elem>& p, int b, int j0, int j1,
                 const Split& split, typename V::elem* out, typename V::elem* chunk_states,
                 typename V::elem* final_state) {
  const int N = NC ? NC : p.dstate, D = p.dim;
  const int n_spans = (p.len + kFwdSpan - 1) / kFwdSpan;
  const int v0 = std::min(j0, split.n_vec), v1 = std::min(j1, split.n_vec);
  const int s0 = std::max(j0, split.n_vec) - split.n_vec, s1 = std::max(j1, split.n_vec) - split.n_vec;
  FwdLanes<V> vl(v1 - v0, N);
  FwdLanes<S1> sl(s1 - s0, N);
  FwdChunk<V> vbuf;
  FwdChunk<S1> sbuf;
  for (int k = v0; k < v1; ++k)
    load_At(p.A, k * V::W, N, vl.At.data() + size_t(k - v0) * N, DecayExp<V, Fast>::kAScale);
  for (int k = s0; k < s1; ++k)
    load_At(p.A, split.n_vec * V::W + k, N, sl.At.data() + size_t(k - s0) * N,
            DecayExp<S1, Fast>::kAScale);
  // The run's vector lanes and its scalar lanes are two task sequences.
  const PrefetchAhead<V> vpf(b, 1, v0 * V::W, v1 - v0, n_spans, p.len, kFwdSpan, false);
  const PrefetchAhead<S1> spf(b, 1, split.n_vec * V::W + s0, s1 - s0, n_spans, p.len, kFwdSpan,
                              false);
  for (int c = 0; c < n_spans; ++c) {
    const int t0 = c * kFwdSpan, t1 = std::min(p.len, t0 + kFwdSpan);
    for (int k = v0; k < v1; ++k)
      forward_span<V, NC, Fast>(p, b, k * V::W, t0, t1, vl.At.data() + size_t(k - v0) * N,
                                 vl.h.data() + size_t(k - v0) * N, vbuf, out, chunk_states,
                                 vpf.target(b, c, k - v0));
    for (int k = s0; k < s1; ++k)
      forward_span<S1, NC, Fast>(p, b, split.n_vec * V::W + k, t0, t1,
                                  sl.At.data() + size_t(k - s0) * N,
                                  sl.h.data() + size_t(k - s0) * N, sbuf, out, chunk_states,
                                  spf.target(b, c, k - s0));
  }
  if (!final_state) return;
  for (int k = v0; k < v1; ++k) {
    V* h = vl.h.data() + size_t(k - v0) * N;
    store_states<V>(h, N, final_state + (size_t(b) * D + k * V::W) * N);
  }
  for (int k = s0; k < s1; ++k) {
    S1* h = sl.h.data() + size_t(k - s0) * N;
    store_states<S1>(h, N, final_state + (size_t(b) * D + split.n_vec * V::W + k) * N);
  }
}

// ---------------------------------------------------------------------------
// Fused backward. Per chunk (last to first): recompute h and exp(delta*A)
// from the saved start, then walk the chunk backwards:
//   dh_t    = C_t dy_t + a_{t+1} dh_{t+1}     (carry = a_{t+1} dh_{t+1})
//   ga      = dh_t h_{t-1} a_t                (d loss / d(delta*A))
//   ddelta  = sum_n ga A_n + u sum_n dh_t B_tn
//   du      = delta sum_n dh_t B_tn + D dy
//   dA_n   += ga delta,  dB_tn += dh_t delta u,  dC_tn += dy h_t
// dB and dC sum over channels into this thread's (B, L, N) partial sums.
// The dB terms are added as vectors into per-thread (kChunk, N)
// accumulators while the thread runs all its lanes through one chunk (they
// stay in L2) and reduced across the vector once per chunk. The dC terms
// go the same way on both SIMD paths (kDcPerChunk; the scalar lanes add
// each step's terms into the partial sums directly). Measured against a
// transpose-add tree per step as the recompute makes them: on a Zen 3 the
// AVX2 backward 4% faster; on a Zen 4, with the reverse's dA in registers,
// the AVX2 backward 10.3 against 11.3-11.5 ms and the AVX-512 one 7.7-8.0
// against 8.2 ms at B=8 D=512 L=256 on one thread, 23.5-26.9 against
// 26.9-28.1 ms at B=2 D=1536 L=2048 on two over three array placements
// (before dA was in registers the tree had been the faster with AVX-512).
// ---------------------------------------------------------------------------

template <class V>
constexpr bool kDcPerChunk = V::W > 1;

// The AVX2 backward once ran a thread's lanes in overlapping pairs, the
// reverse of lane k in one loop with the gate and recompute of lane k+1,
// its carries in memory (all 16 registers taken): 7-23% faster on an Intel
// Xeon with AMX against the lane-by-lane walk as it was then, whose
// reverse kept dA in memory. Once reverse_states kept dA in registers the
// lane-by-lane walk was the faster on a Zen 4 (backward 31.0-31.8 against
// 33.1-35.3 ms at B=2 D=1536 L=2048 on 2 threads over four array
// placements, 10.3-10.7 against 11.4-11.6 ms at B=8 D=512 L=256 on one),
// and the pairs were removed (bench/README.md; git history before the
// commit that removed them).

// One lane's buffers of a chunk in the backward, in one block at offsets
// that depend on N alone.
template <class V>
struct ChunkBufs {
  // In order in the block: h (kChunk + 1, N) before step t0+i, at the
  // start; a (kChunk, N) exp(delta*A) at step t0+i; then kChunk vectors
  // each of y, the chunk's delta and u (contiguous), dy, dout * dsilu(z),
  // sum_n ga A_n and sum_n dh B_n.
  enum Row { kY, kDl, kUu, kDy, kGz, kDdl, kDhB, kRows };
  static constexpr size_t a_at(int N) { return size_t(kChunk + 1) * N; }
  static constexpr size_t row_at(int N, Row r) {
    return size_t(2 * kChunk + 1) * N + size_t(r) * kChunk;
  }
  static constexpr size_t size(int N) { return row_at(N, kRows); }
  std::vector<V> store;
  int N = 0;
  ChunkBufs() = default;
  explicit ChunkBufs(int N_) : store(size(N_)), N(N_) {}
  V* hbuf() { return store.data(); }
  V* abuf() { return store.data() + a_at(N); }
  V* row(Row r) { return store.data() + row_at(N, r); }
};

// Per-thread scratch of the backward for n_lanes lanes of width W.
template <class V>
struct BwdScratch {
  int N, n_lanes;
  std::vector<V> At, carry, dA, dD;  // per lane: (N), (N), (N), (1)
  ChunkBufs<V> lane;  // the chunk buffers of the lane at hand
  // (kChunk, N): per step and state, the dB (and with kDcPerChunk the dC)
  // terms of this thread's lanes summed as vectors; reduced across the
  // vector once per chunk.
  std::vector<V> accB, accC;
  std::vector<V> sC;  // (N) a step's dC terms when N is not a compile-time constant
  BwdScratch(int N_, int n_lanes_)
      : N(N_),
        n_lanes(n_lanes_),
        At(size_t(n_lanes_) * N_),
        carry(At.size()),
        dA(At.size()),
        dD(n_lanes_),
        lane(N_),
        accB(size_t(kChunk) * N_, V::zero()),
        accC(kDcPerChunk<V> ? size_t(kChunk) * N_ : 0, V::zero()),
        sC(kDcPerChunk<V> ? 0 : N_) {}
  static size_t bytes(int N, int n_lanes) {
    const size_t acc =
        size_t(kDcPerChunk<V> ? 2 * kChunk : kChunk) * N + (kDcPerChunk<V> ? 0 : N);
    return (size_t(n_lanes) * (3 * N + 1) + ChunkBufs<V>::size(N) + acc) *
           sizeof(V);
  }
};

// The per-step pieces of gate_backward, recompute_chunk and
// reverse_states (inlined: their loops are the kernels' inner loops).

// Fills ahead with the rows at pf's first step that the backward reads and
// writes (delta, u, dout, z, du, ddelta, dz; those that exist) and returns
// how many: a step i < pf.steps() prefetches ahead[m] + i * D.
template <typename T>
int backward_prefetch_rows(const SelectiveScanParams<T>& p, const SelectiveScanGrads<T>& g,
                           const T* dout, const PrefetchTarget& pf, const T* ahead[7]) {
  int n = 0;
  if (pf.steps() > 0)
    for (const T* q : {p.delta, p.u, dout, static_cast<const T*>(p.z),
                       static_cast<const T*>(g.du), static_cast<const T*>(g.ddelta),
                       static_cast<const T*>(g.dz)})
      if (q) ahead[n++] = q + (size_t(pf.b) * p.len + pf.t0) * p.dim + pf.d0;
  return n;
}

// dy = dout * silu(z) at one step, and dout * dsilu(z) into *gz (z at zz,
// or no gate: dy = dout).
template <class V>
[[gnu::always_inline]] inline V gate_step(V go, const typename V::elem* zz_at, V* gz) {
  if (!zz_at) return go;
  const V zz = V::load(zz_at);
  V sig;
  const V sz = silu_of(zz, &sig);
  // d silu/dz = sig * (1 + z (1 - sig)); dz = go * dsilu * y once y is recomputed
  *gz = go * sig * (V::set1(1) + zz * (V::set1(1) - sig));
  return go * sz;
}

// The states of one step of the recompute: h (hn) from h before it (hp)
// and the decay factors (an), by the forward's expression; the dC terms
// dy h added into dc (kDcPerChunk) or stored there; returns y0 + sum_n C h.
template <class V, int NC, bool Fast>
[[gnu::always_inline]] inline V recompute_step(int N, V dl, V du, V dy, V y0, const V* At,
                                               const typename V::elem* Bt,
                                               const typename V::elem* Ct, const V* hp, V* hn,
                                               V* an, V* dc) {
  if constexpr (NC > 0) N = NC;
  V y1 = V::zero();  // two sums halve the chain of dependent FMAs
#pragma GCC unroll 16
  for (int n = 0; n < N; ++n) {
    const V a = DecayExp<V, Fast>::exp(dl * At[n]);
    const V h = V::fma(a, hp[n], du * V::set1(Bt[n]));
    an[n] = a;
    hn[n] = h;
    if constexpr (kDcPerChunk<V>)
      dc[n] = V::fma(dy, h, dc[n]);
    else
      dc[n] = dy * h;
    if (n & 1)
      y1 = V::fma(h, V::set1(Ct[n]), y1);
    else
      y0 = V::fma(h, V::set1(Ct[n]), y0);
  }
  return y0 + y1;
}

// States 0..G of one step of the reverse (G = 0: NG of them), the carries
// a_{t+1} dh_{t+1} in carry: dh = C dy + carry, then the carry into the
// step before, dA and dB's terms, and this step's sums over the states
// of ga A and dh B added to ddl and dhB.
template <class V, int G>
[[gnu::always_inline]] inline void reverse_step(int NG, V dl, V dy, V du,
                                                const typename V::elem* Bi,
                                                const typename V::elem* Ci, const V* hprev,
                                                const V* an, const V* At, V* carry, V* dA,
                                                V* accB, V& ddl, V& dhB) {
  if constexpr (G > 0) NG = G;
#pragma GCC unroll 16
  for (int n = 0; n < NG; ++n) {
    const V dh = V::fma(V::set1(Ci[n]), dy, carry[n]);
    // a_t dh_t is both the carry into step t-1 and, times h_{t-1}, ga: so
    // the recompute stores h_{t-1} alone (one store per state and step
    // fewer than storing a_t h_{t-1} as well).
    const V adh = an[n] * dh;
    const V ga = adh * hprev[n];
    dA[n] = V::fma(ga, dl, dA[n]);
    carry[n] = adh;
    ddl = V::fma(ga, At[n], ddl);
    dhB = V::fma(dh, V::set1(Bi[n]), dhB);
    accB[n] = V::fma(dh, du, accB[n]);
  }
}

// Recompute steps t0..t1 of one lane into s.lane.hbuf/abuf/ybuf, add the
// dC terms dy h into s.accC (kDcPerChunk) or, reduced across the vector,
// into the thread's partial sums dC_part, and copy the chunk's delta and u
// into s.lane.dlbuf/uubuf; hbuf[0] holds the saved state at t0 on entry.
// h is formed by the forward's expression, so the recomputed states are
// the forward's.
// The rows that a later lane's backward reads and writes (pf) are
// prefetched into L2 as this chunk's steps go by.
template <class V, int NC, bool Fast>
void recompute_chunk(const SelectiveScanParams<typename V::elem>& p, int b, int d0, int t0,
                     int t1, const V* At, const typename V::elem* dout,
                     const SelectiveScanGrads<typename V::elem>& g, BwdScratch<V>& s,
                     typename V::elem* dC_part, const PrefetchTarget& pf) {
  using T = typename V::elem;
  const int L = p.len, D = p.dim, N = NC ? NC : p.dstate;
  const V Dv = p.Dskip ? V::load(p.Dskip + d0) : V::zero();
  // Stores of V (may_alias vector types) could alias anything reachable
  // through s or p, so every pointer the loop uses is a local first.
  V* __restrict hbuf = s.lane.hbuf();
  V* __restrict abuf = s.lane.abuf();
  V* __restrict accC = s.accC.data();
  V* __restrict dlbuf = s.lane.row(ChunkBufs<V>::kDl);
  V* __restrict uubuf = s.lane.row(ChunkBufs<V>::kUu);
  V* __restrict ybuf = s.lane.row(ChunkBufs<V>::kY);
  const V* __restrict dybuf = s.lane.row(ChunkBufs<V>::kDy);
  const T* const delta = p.delta + d0;
  const T* const u = p.u + d0;
  const T* const Bm = p.Bm;
  const T* const Cm = p.Cm;
  const T* ahead[7];
  const int n_ahead = backward_prefetch_rows(p, g, dout, pf, ahead);
  for (int t = t0; t < t1; ++t) {
    const int i = t - t0;
    const size_t row = size_t(b) * L + t;
    if (i < pf.steps())
      for (int k = 0; k < n_ahead; ++k) prefetch_l2(ahead[k] + size_t(i) * D);
    const V dl = V::load(delta + row * D);
    const V uu = V::load(u + row * D);
    dlbuf[i] = dl;
    uubuf[i] = uu;
    const V du = dl * uu;
    const T* Bt = Bm + row * N;
    const T* Ct = Cm + row * N;
    const V* hp = hbuf + size_t(i) * N;
    V* hn = hbuf + size_t(i + 1) * N;
    V* an = abuf + size_t(i) * N;
    V sCloc[NC ? NC : 1];
    V* sC = NC ? sCloc : s.sC.data();
    V* dc = kDcPerChunk<V> ? accC + size_t(i) * N : sC;
    ybuf[i] = recompute_step<V, NC, Fast>(N, dl, du, dybuf[i], Dv * uu, At, Bt, Ct, hp, hn, an, dc);
    if constexpr (!kDcPerChunk<V>) V::add_reduced(sC, N, dC_part + row * N);
  }
}

// The backward of one lane (channels d0..d0+W) over one chunk, in four
// parts: gate_backward puts dy (and dout * dsilu(z)) of every step into
// s.lane.dybuf (gzbuf) before recompute_chunk, which adds each step's dC
// terms dy h (into s.accC or the thread's partial sums) as it recomputes h;
// reverse_chunk then runs the states in register groups (reverse_states),
// each walking the chunk backwards and adding its share of sum_n ga A_n and
// sum_n dh B_n into s.lane.ddlbuf, dhBbuf; the last group completes the sums
// and stores ddelta, du and dz.
template <class V>
void gate_backward(const SelectiveScanParams<typename V::elem>& p, int b, int d0, int t0, int t1,
                   const typename V::elem* dout, int k, BwdScratch<V>& s) {
  const int L = p.len, D = p.dim;
  V* const gzbuf = s.lane.row(ChunkBufs<V>::kGz);
  V* const dybuf = s.lane.row(ChunkBufs<V>::kDy);
  V dD = s.dD[k];
  for (int t = t0; t < t1; ++t) {
    const int i = t - t0;
    const size_t off = (size_t(b) * L + t) * D + d0;
    const V dy = gate_step(V::load(dout + off), p.z ? p.z + off : nullptr, &gzbuf[i]);
    if (p.Dskip) dD = V::fma(dy, V::load(p.u + off), dD);
    dybuf[i] = dy;
  }
  s.dD[k] = dD;
}

// Where the last state group of a chunk writes ddelta, du and dz.
template <class V>
struct ChunkGradOut {
  typename V::elem *ddelta, *du, *dz;  // the chunk's first row at the lane; dz null without z
  size_t stride;                       // elements between consecutive steps (D)
  V Dv;                                // the lane's D skip (0 without one)
};

// States n0..n0+G (G = 0: all N, in memory) of lane k over the chunk,
// backwards. carry (a_{t+1} dh_{t+1}) stays in registers for the chunk.
// The first group (First) starts the sums over n of each step, the others
// add to what the groups before left in s.lane.ddlbuf and dhBbuf.
// The last group of the chunk (Last) has the whole sums over n of each step
// as soon as it has added its own, and writes that step's ddelta, du and dz
// at once: no separate pass over the step buffers, and the strided stores
// overlap with the arithmetic of the next steps.
template <class V, int G, bool Fast, bool First, bool Last>
void reverse_states(const typename V::elem* Bt, const typename V::elem* Ct, int N, int n0,
                    int n_steps, int k, BwdScratch<V>& s, const ChunkGradOut<V>& out) {
  const int NG = G ? G : N;
  const V* At = s.At.data() + size_t(k) * N + n0;
  V* dAmem = s.dA.data() + size_t(k) * N + n0;
  V* cmem = s.carry.data() + size_t(k) * N + n0;
  V cloc[G ? G : 1];
  V* carry = G ? cloc : cmem;
  // dA of the group in a local array too: its stores then are not may_alias
  // stores GCC must make at every step (the group's 16 dA vectors were a
  // load and a store per state and step with AVX-512). Measured on a Zen 4
  // at B=8 D=512 L=256, one thread: the AVX-512 backward 8.7-9.1 -> 8.3-8.5
  // ms over four runs.
  constexpr bool kLocalDA = G > 0 && V::W > 1;
  V dAloc[kLocalDA ? G : 1];
  V* dA = kLocalDA ? dAloc : dAmem;
  if constexpr (G > 0) {
#pragma GCC unroll 64
    for (int n = 0; n < G; ++n) cloc[n] = cmem[n];
  }
  if constexpr (kLocalDA) {
#pragma GCC unroll 64
    for (int n = 0; n < G; ++n) dAloc[n] = dAmem[n];
  }
  const V* __restrict dlbuf = s.lane.row(ChunkBufs<V>::kDl);
  const V* __restrict dybuf = s.lane.row(ChunkBufs<V>::kDy);
  const V* __restrict uubuf = s.lane.row(ChunkBufs<V>::kUu);
  const V* __restrict hbuf = s.lane.hbuf();
  V* __restrict abuf = s.lane.abuf();
  V* __restrict accBbuf = s.accB.data();
  V* __restrict ddlbuf = s.lane.row(ChunkBufs<V>::kDdl);
  V* __restrict dhBbuf = s.lane.row(ChunkBufs<V>::kDhB);
  const V* __restrict gzbuf = s.lane.row(ChunkBufs<V>::kGz);
  const V* __restrict ybuf = s.lane.row(ChunkBufs<V>::kY);
  for (int i = n_steps - 1; i >= 0; --i) {
    const V dl = dlbuf[i], dy = dybuf[i];
    const V du = dl * uubuf[i];
    const auto* Bi = Bt + size_t(i) * N + n0;
    const auto* Ci = Ct + size_t(i) * N + n0;
    const V* hprev = hbuf + size_t(i) * N + n0;  // h_{t-1} (recompute_chunk)
    V* an = abuf + size_t(i) * N + n0;
    V* accB = accBbuf + size_t(i) * N + n0;
    V ddl = V::zero(), dhB = V::zero();
    reverse_step<V, G>(NG, dl, dy, du, Bi, Ci, hprev, an, At, carry, dA, accB, ddl, dhB);
    if constexpr (!First) {
      ddl = ddlbuf[i] + ddl;
      dhB = dhBbuf[i] + dhB;
    }
    if constexpr (Last) {
      const size_t off = size_t(i) * out.stride;
      if (out.dz) (gzbuf[i] * ybuf[i]).store(out.dz + off);
      V::fma(dhB, uubuf[i], DecayExp<V, Fast>::unscale(ddl)).store(out.ddelta + off);
      V::fma(dhB, dl, dy * out.Dv).store(out.du + off);
    } else {
      ddlbuf[i] = ddl;
      dhBbuf[i] = dhB;
    }
  }
  if constexpr (G > 0) {
#pragma GCC unroll 64
    for (int n = 0; n < G; ++n) cmem[n] = cloc[n];
  }
  if constexpr (kLocalDA) {
#pragma GCC unroll 64
    for (int n = 0; n < G; ++n) dAmem[n] = dAloc[n];
  }
}

// States per register group of the reverse (as state_group() for the
// forward): the carries of the group plus the step's operands and sums.
// A group's carries and dA take 2G registers. With AVX2's 16, groups of 4
// leave room for the step's operands, sums and temporaries, and the loop
// has no spills; groups of 8 kept the carries in registers, but GCC 12
// stored and reloaded all 8 dA sums at every step
// (tools/check-scan-spills.py lists a build's loops and their spills).
// Measured on an Intel Xeon with AMX (bench/README.md): backward no slower
// with 4 (0.5-1 ms faster over four rounds at B=2 D=1536 L=2048 on two
// threads, the same at B=8 D=512 L=256 on one); a Zen 4 had measured 4 and
// 8 the same. AVX-512 keeps groups of 16: GCC spills 10 of their 16 dA
// sums, but a Zen 4 measured groups of 8 (no spills) 10% slower, and this
// Intel core the same.
template <class V, int NC>
constexpr int reverse_group() {
  if (NC == 0 || V::W == 1) return NC;
  constexpr int G = V::W == 8 ? kAvx2ReverseGroup : MK_AVX512_REVERSE_GROUP;
  return NC % G == 0 ? G : NC;
}

template <class V, int NC, bool Fast>
void reverse_chunk(const SelectiveScanParams<typename V::elem>& p, int b, int d0, int t0,
                   int t1, const typename V::elem* dout,
                   const SelectiveScanGrads<typename V::elem>& g, int k, BwdScratch<V>& s) {
  const int L = p.len, D = p.dim, N = NC ? NC : p.dstate;
  const auto* Bt = p.Bm + (size_t(b) * L + t0) * N;
  const auto* Ct = p.Cm + (size_t(b) * L + t0) * N;
  const size_t off = (size_t(b) * L + t0) * D + d0;
  const ChunkGradOut<V> out{g.ddelta + off, g.du + off, p.z ? g.dz + off : nullptr, size_t(D),
                            p.Dskip ? V::load(p.Dskip + d0) : V::zero()};
  constexpr int G = reverse_group<V, NC>();
  if constexpr (G == 0) {
    reverse_states<V, 0, Fast, true, true>(Bt, Ct, N, 0, t1 - t0, k, s, out);
  } else {
    // The first group starts the sums over states; the last stores them.
    for (int n0 = 0; n0 + G < N; n0 += G) {
      if (n0 == 0)
        reverse_states<V, G, Fast, true, false>(Bt, Ct, N, n0, t1 - t0, k, s, out);
      else
        reverse_states<V, G, Fast, false, false>(Bt, Ct, N, n0, t1 - t0, k, s, out);
    }
    if (N == G)
      reverse_states<V, G, Fast, true, true>(Bt, Ct, N, 0, t1 - t0, k, s, out);
    else
      reverse_states<V, G, Fast, false, true>(Bt, Ct, N, N - G, t1 - t0, k, s, out);
  }
}

// Backward for n_lanes consecutive lanes of width W starting at channel c0
// (all batch rows). dB/dC go to this thread's partial sums (B, L, N); dA and
// dD, owned by these channels, are accumulated into g directly.
template <class V, int NC, bool Fast>
void backward_lanes(const SelectiveScanParams<typename V::elem>& p, int c0, int n_lanes,
                    const typename V::elem* chunk_states, const typename V::elem* dout,
                    const SelectiveScanGrads<typename V::elem>& g, typename V::elem* dB_part,
                    typename V::elem* dC_part) {
  using T = typename V::elem;
  const int L = p.len, D = p.dim, N = NC ? NC : p.dstate;
  const int n_chunks = (L + kChunk - 1) / kChunk;
  // value-initialised: carry, dA, dD start at 0
  BwdScratch<V> s(N, n_lanes);
  for (int k = 0; k < n_lanes; ++k)
    load_At(p.A, c0 + k * V::W, N, s.At.data() + size_t(k) * N, DecayExp<V, Fast>::kAScale);

  const PrefetchAhead<V> ahead(0, p.batch, c0, n_lanes, n_chunks, L, kChunk, true);
  for (int b = 0; b < p.batch; ++b) {
    std::fill(s.carry.begin(), s.carry.end(), V::zero());
    for (int c = n_chunks - 1; c >= 0; --c) {
      const int t0 = c * kChunk, t1 = std::min(L, t0 + kChunk);
      const T* const states_c = chunk_states + (size_t(b) * n_chunks + c) * D * N;
      for (int k = 0; k < n_lanes; ++k) {
        const int d0 = c0 + k * V::W;
        load_states<V>(s.lane.hbuf(), N, states_c + size_t(d0) * N);
        gate_backward(p, b, d0, t0, t1, dout, k, s);
        recompute_chunk<V, NC, Fast>(p, b, d0, t0, t1, s.At.data() + size_t(k) * N, dout, g, s,
                                     dC_part, ahead.target(b, c, k));
        reverse_chunk<V, NC, Fast>(p, b, d0, t0, t1, dout, g, k, s);
      }
      // The chunk's dB, dC terms of all these lanes, reduced across the
      // vector into this thread's partial sums.
      for (int t = t0; t < t1; ++t) {
        const size_t row = size_t(b) * L + t, i = size_t(t - t0) * N;
        V::add_reduced(s.accB.data() + i, N, dB_part + row * N);
        std::fill(s.accB.begin() + i, s.accB.begin() + i + N, V::zero());
        if constexpr (kDcPerChunk<V>) {
          V::add_reduced(s.accC.data() + i, N, dC_part + row * N);
          std::fill(s.accC.begin() + i, s.accC.begin() + i + N, V::zero());
        }
      }
    }
  }
  // dA (D, N) and dD (D) are accumulated.
  alignas(64) T lanes[V::W];
  for (int k = 0; k < n_lanes; ++k) {
    const int d0 = c0 + k * V::W;
    for (int n = 0; n < N; ++n) {
      s.dA[size_t(k) * N + n].store(lanes);
      for (int l = 0; l < V::W; ++l) g.dA[size_t(d0 + l) * N + n] += lanes[l];
    }
    if (p.Dskip) {
      s.dD[k].store(lanes);
      for (int l = 0; l < V::W; ++l) g.dD[d0 + l] += lanes[l];
    }
  }
}

// Channels are covered by n_vec lanes of width V::W followed by D % W scalar
// channels; lane j of a batch row starts at channel start(j).
template <class V>
struct LaneSplit {
  int n_vec, n_tail;
  explicit LaneSplit(int D) : n_vec(D / V::W), n_tail(D % V::W) {}
  int count() const { return n_vec + n_tail; }
  bool is_vec(int j) const { return j < n_vec; }
  int start(int j) const { return j < n_vec ? j * V::W : n_vec * V::W + (j - n_vec); }
};

// [begin, end) of part `tid` when n items are split evenly over nt parts.
inline std::pair<int, int> part_range(int n, int tid, int nt) {
  return {int(int64_t(n) * tid / nt), int(int64_t(n) * (tid + 1) / nt)};
}

template <typename T>
int backward_threads(const SelectiveScanParams<T>& p, int n_lanes) {
  if (work_of(p) < kParallelMinWork) return 1;
  return std::max(1, std::min(omp_get_max_threads(), n_lanes));
}

// Each thread takes a contiguous range of the (batch row, lane) tasks and
// runs it as one run of lanes per batch row.
template <typename T, int NC, bool Fast>
void forward_impl(const SelectiveScanParams<T>& p, T* out, T* chunk_states, T* final_state) {
  using V = typename FastVec<T>::type;
  using S1 = Scalar<T>;
  const LaneSplit<V> split(p.dim);
  const int per_row = split.count(), tasks = p.batch * per_row;
  const int n_threads =
      work_of(p) < kParallelMinWork ? 1 : std::max(1, std::min(omp_get_max_threads(), tasks));
#pragma omp parallel num_threads(n_threads)
  {
    const auto [k0, k1] = part_range(tasks, omp_get_thread_num(), omp_get_num_threads());
    for (int k = k0; k < k1;) {
      const int b = k / per_row, j0 = k % per_row, j1 = std::min(per_row, j0 + (k1 - k));
      forward_run<V, S1, NC, Fast>(p, b, j0, j1, split, out, chunk_states, final_state);
      k += j1 - j0;
    }
  }
}

// Each thread takes a contiguous range of the vector lanes and of the scalar
// tail channels (dA/dD are per channel, so no two threads write the same).
template <typename T, int NC, bool Fast>
void backward_impl(const SelectiveScanParams<T>& p, const T* chunk_states, const T* dout,
                   const SelectiveScanGrads<T>& g) {
  using V = typename FastVec<T>::type;
  using S1 = Scalar<T>;
  const LaneSplit<V> split(p.dim);
  const size_t bln = size_t(p.batch) * p.len * p.dstate;
  const int n_threads = backward_threads(p, split.count());
  LocalVec<T> part(2 * bln * n_threads, T(0));  // per thread: dB (B,L,N), dC (B,L,N)
#pragma omp parallel num_threads(n_threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    T* dB_part = part.data() + 2 * bln * tid;
    T* dC_part = dB_part + bln;
    const auto [v0, v1] = part_range(split.n_vec, tid, nt);
    const auto [s0, s1] = part_range(split.n_tail, tid, nt);
    if (v1 > v0)
      backward_lanes<V, NC, Fast>(p, v0 * V::W, v1 - v0, chunk_states, dout, g, dB_part, dC_part);
    if (s1 > s0)
      backward_lanes<S1, NC, Fast>(p, split.n_vec * V::W + s0, s1 - s0, chunk_states, dout, g,
                             dB_part, dC_part);
#pragma omp barrier
    // Sum the per-thread partials (dB, dC are written, not accumulated).
#pragma omp for schedule(static)
    for (size_t e = 0; e < bln; ++e) {
      T sb = 0, sc = 0;
      for (int k = 0; k < nt; ++k) {
        sb += part[2 * bln * k + e];
        sc += part[2 * bln * k + bln + e];
      }
      g.dB[e] = sb;
      g.dC[e] = sc;
    }
  }
}

// The fast decay exp (DecayExp) is used for float when A is finite.
template <typename T>
bool fast_decay_ok(const SelectiveScanParams<T>& p) {
  if (!std::is_same<T, float>::value) return false;
  const size_t n = size_t(p.dim) * p.dstate;
  bool finite = true;
  for (size_t i = 0; i < n; ++i) finite &= std::isfinite(p.A[i]);
  return finite;
}

template <typename T>
void forward(const SelectiveScanParams<T>& p, T* out, T* chunk_states, T* final_state) {
  const bool fast = fast_decay_ok(p);
  if (p.dstate == 16 && fast)
    forward_impl<T, 16, true>(p, out, chunk_states, final_state);
  else if (p.dstate == 16)
    forward_impl<T, 16, false>(p, out, chunk_states, final_state);
  else if (fast)
    forward_impl<T, 0, true>(p, out, chunk_states, final_state);
  else
    forward_impl<T, 0, false>(p, out, chunk_states, final_state);
}

template <typename T>
void backward(const SelectiveScanParams<T>& p, const T* chunk_states, const T* dout,
              const SelectiveScanGrads<T>& g) {
  const bool fast = fast_decay_ok(p);
  if (p.dstate == 16 && fast)
    backward_impl<T, 16, true>(p, chunk_states, dout, g);
  else if (p.dstate == 16)
    backward_impl<T, 16, false>(p, chunk_states, dout, g);
  else if (fast)
    backward_impl<T, 0, true>(p, chunk_states, dout, g);
  else
    backward_impl<T, 0, false>(p, chunk_states, dout, g);
}

template <typename T>
size_t backward_workspace_bytes(int batch, int len, int dim, int dstate, int threads) {
  using V = typename FastVec<T>::type;
  const LaneSplit<V> split(dim);
  SelectiveScanParams<T> p;  // sizes only, to pick the thread count as the backward does
  p.batch = batch;
  p.len = len;
  p.dim = dim;
  p.dstate = dstate;
  const int nt = work_of(p) < kParallelMinWork ? 1 : std::max(1, std::min(threads, split.count()));
  size_t bytes = 0;
  for (int tid = 0; tid < nt; ++tid) {
    const auto [v0, v1] = part_range(split.n_vec, tid, nt);
    const auto [s0, s1] = part_range(split.n_tail, tid, nt);
    bytes += 2 * size_t(batch) * len * dstate * sizeof(T);  // dB, dC partials
    if (v1 > v0)
      bytes += BwdScratch<V>::bytes(dstate, v1 - v0);
    if (s1 > s0) bytes += BwdScratch<Scalar<T>>::bytes(dstate, s1 - s0);
  }
  return bytes;
}

// One recurrent step. A channel's N states are contiguous in the (B, D, N)
// state, so with SIMD lanes they run W at a time with the vector exp (A is
// not pre-scaled here: the exact-range exp, not exp2_fast); states past the
// last multiple of W, the scalar path and double run one at a time. (With
// glibc's scalar expf the step was half of a 4-layer model's generation
// time.)
// Threads only from kParallelMinWork state updates on, as the fused
// kernels: one token of a batch-1 model is a few microseconds of work, less
// than waking a team (with 4096 as the bound, generation at batch 1 was
// slower on two threads than on one).
template <typename T>
void step(int batch, int dim, int dstate, const T* u_t, const T* delta_t, const T* A,
          const T* B_t, const T* C_t, const T* Dskip, const T* z_t, T* state, T* out_t) {
  using V = typename FastVec<T>::type;
  const int N = dstate;
  const int n_vec = V::W > 1 ? N / V::W * V::W : 0;
#pragma omp parallel for collapse(2) schedule(static) if (size_t(batch) * dim * N >= kParallelMinWork)
  for (int b = 0; b < batch; ++b)
    for (int d = 0; d < dim; ++d) {
      const size_t bd = size_t(b) * dim + d;
      const T dl = delta_t[bd], uu = u_t[bd];
      T* h = state + bd * N;
      const T* Ad = A + size_t(d) * N;
      const T* Bb = B_t + size_t(b) * N;
      const T* Cb = C_t + size_t(b) * N;
      T y = Dskip ? Dskip[d] * uu : T(0);
      if constexpr (V::W > 1) {
        const V dlv = V::set1(dl), dlu = V::set1(dl * uu);
        V acc = V::zero();
        for (int n = 0; n < n_vec; n += V::W) {
          const V hn = V::fma(V::exp(dlv * V::load(Ad + n)), V::load(h + n), dlu * V::load(Bb + n));
          hn.store(h + n);
          acc = V::fma(V::load(Cb + n), hn, acc);
        }
        alignas(64) T lanes[V::W];
        acc.store(lanes);
        for (int l = 0; l < V::W; ++l) y += lanes[l];
      }
      for (int n = n_vec; n < N; ++n) {
        h[n] = std::exp(dl * Ad[n]) * h[n] + dl * uu * Bb[n];
        y += Cb[n] * h[n];
      }
      if (z_t) {
        const T z = z_t[bd];
        y *= z / (T(1) + std::exp(-z));
      }
      out_t[bd] = y;
    }
}

// ---------------------------------------------------------------------------
// Naive reference: scalar loops, every state stored in states (B, L, D, N).
// ---------------------------------------------------------------------------
template <typename T>
void naive_forward(const SelectiveScanParams<T>& p, T* out, T* states) {
  const int L = p.len, D = p.dim, N = p.dstate;
#pragma omp parallel for collapse(2) schedule(static) if (work_of(p) >= kParallelMinWork)
  for (int b = 0; b < p.batch; ++b)
    for (int d = 0; d < D; ++d)
      for (int t = 0; t < L; ++t) {
        const size_t row = size_t(b) * L + t, bld = row * D + d;
        const T dl = p.delta[bld], uu = p.u[bld];
        T* h = states + bld * N;
        const T* hprev = t > 0 ? states + (bld - D) * N : nullptr;
        T y = 0;
        for (int n = 0; n < N; ++n) {
          const T a = std::exp(dl * p.A[size_t(d) * N + n]);
          h[n] = (hprev ? a * hprev[n] : T(0)) + dl * p.Bm[row * N + n] * uu;
          y += p.Cm[row * N + n] * h[n];
        }
        if (p.Dskip) y += p.Dskip[d] * uu;
        if (p.z) y *= p.z[bld] / (T(1) + std::exp(-p.z[bld]));
        out[bld] = y;
      }
}

template <typename T>
void naive_backward(const SelectiveScanParams<T>& p, const T* states, const T* dout,
                    const SelectiveScanGrads<T>& g) {
  const int L = p.len, D = p.dim, N = p.dstate;
  const size_t bln = size_t(p.batch) * L * N;
  const int n_threads =
      work_of(p) < kParallelMinWork ? 1 : std::max(1, std::min(omp_get_max_threads(), D));
  LocalVec<T> part(2 * bln * n_threads, T(0));  // per thread: dB, dC (B, L, N)
#pragma omp parallel num_threads(n_threads)
  {
    T* dBp = part.data() + 2 * bln * omp_get_thread_num();
    T* dCp = dBp + bln;
    LocalVec<T> dh_next(N), dA(N);
#pragma omp for schedule(static)
    for (int d = 0; d < D; ++d) {
      std::fill(dA.begin(), dA.end(), T(0));
      T dD = 0;
      for (int b = 0; b < p.batch; ++b) {
        std::fill(dh_next.begin(), dh_next.end(), T(0));  // a_{t+1} * dh_{t+1}
        for (int t = L - 1; t >= 0; --t) {
          const size_t row = size_t(b) * L + t, bld = row * D + d;
          const T dl = p.delta[bld], uu = p.u[bld];
          const T* h = states + bld * N;
          const T* hprev = t > 0 ? states + (bld - D) * N : nullptr;
          T dy = dout[bld];
          if (p.z) {
            const T z = p.z[bld], sig = T(1) / (T(1) + std::exp(-z));
            T y = p.Dskip ? p.Dskip[d] * uu : T(0);
            for (int n = 0; n < N; ++n) y += p.Cm[row * N + n] * h[n];
            g.dz[bld] = dout[bld] * y * sig * (T(1) + z * (T(1) - sig));
            dy = dout[bld] * z * sig;
          }
          T ddl = 0, du = p.Dskip ? p.Dskip[d] * dy : T(0);
          if (p.Dskip) dD += dy * uu;
          for (int n = 0; n < N; ++n) {
            const T a = std::exp(dl * p.A[size_t(d) * N + n]);
            const T Bn = p.Bm[row * N + n];
            const T dh = p.Cm[row * N + n] * dy + dh_next[n];
            dCp[row * N + n] += dy * h[n];
            dBp[row * N + n] += dh * dl * uu;
            const T hp = hprev ? hprev[n] : T(0);
            ddl += dh * (hp * a * p.A[size_t(d) * N + n] + Bn * uu);
            dA[n] += dh * hp * a * dl;
            du += dh * dl * Bn;
            dh_next[n] = a * dh;
          }
          g.ddelta[bld] = ddl;
          g.du[bld] = du;
        }
      }
      for (int n = 0; n < N; ++n) g.dA[size_t(d) * N + n] += dA[n];
      if (p.Dskip) g.dD[d] += dD;
    }
    const int nt = omp_get_num_threads();
#pragma omp for schedule(static)
    for (size_t e = 0; e < bln; ++e) {
      T sb = 0, sc = 0;
      for (int k = 0; k < nt; ++k) {
        sb += part[2 * bln * k + e];
        sc += part[2 * bln * k + bln + e];
      }
      g.dB[e] = sb;
      g.dC[e] = sc;
    }
  }
}

template <typename T>
ScanKernels<T> make_table() {
  ScanKernels<T> k;
  k.forward = &forward<T>;
  k.backward = &backward<T>;
  k.backward_workspace_bytes = &backward_workspace_bytes<T>;
  k.step = &step<T>;
  k.naive_forward = &naive_forward<T>;
  k.naive_backward = &naive_backward<T>;
  return k;
}

}  // namespace

const ScanKernels<float>& kernels_f32() {
  static const ScanKernels<float> k = make_table<float>();
  return k;
}
const ScanKernels<double>& kernels_f64() {
  static const ScanKernels<double> k = make_table<double>();
  return k;
}

}  // namespace mk::ops::MK_SCAN_NS
