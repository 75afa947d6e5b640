// Float products on AMX tiles as three-way bfloat16 splits
// (mambakit/ops/amx_matmul.h says why and how accurate).
//
// Compiled with AMX and AVX-512 BF16 flags (libmamba/CMakeLists.txt) and
// called only where mk::cpu_has_amx() holds. Like the per-ISA kernel
// copies, this object may define no weak symbol that another object also
// defines (the linker could keep this copy for all): no std containers or
// strings here, everything but amx_sgemm in the anonymous namespace.
//
// Layout. C is walked in passes of up to 1024 columns and K in panels of
// kKc; op(B)'s columns of the pass are packed once per panel, op(A) 32 rows
// at a time. Both are packed as 32 x 32 blocks of
// bfloat16, three planes each (the parts x0, x1, x2), 3072 values a block:
//   op(A): per block of 32 k, plane, row (32), k: two A tiles (rows 0-15,
//          16-31) of 16 rows x 32 k.
//   op(B): per block of 32 k, plane, half (columns 0-15, 16-31), k pair p
//          (16), column (16), k parity: two B tiles in AMX's pair layout
//          (row p holds k = 2p and 2p+1 of each column).
// The kernel holds a 32 x 32 block of C in four float tiles (tmm0-3), the
// plane's two A tiles in tmm4-5 and two B tiles in tmm6-7, and orders the
// six part products so that consecutive ones share an operand already in
// tiles: 14 tile loads per 24 products instead of 24 (measured 1.5x over
// the plain order on a Xeon with AMX, 2048 x 512 x 256).
#include "mambakit/ops/amx_matmul.h"

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

// (GCC spells the AMX macros __AMX_TILE__, __AMX_BF16__; clang __AMXTILE__, __AMXBF16__.)
#if !(defined(__AMX_TILE__) || defined(__AMXTILE__)) || \
    !(defined(__AMX_BF16__) || defined(__AMXBF16__)) || !defined(__AVX512BF16__)
#error "compile with -mamx-tile -mamx-bf16 -mavx512bf16 (libmamba/CMakeLists.txt)"
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
// GCC 12 bug 105593: false -Wmaybe-uninitialized from _mm512_undefined_*()
// inside the AVX-512 intrinsic headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace mk::ops {
namespace {

constexpr int kKc = 256;              // k per packed panel
// Columns of C (in 32-wide blocks) per pass: op(B)'s packed panel for them
// is at most 1.5 MiB, which each thread's buffer keeps for later calls
// (all of a 50,000-word vocabulary's head at once would be 77 MB); op(A)
// is packed again for each pass.
constexpr int kNcBlocks = 32;
constexpr int kBlock = 3 * 32 * 32;   // bfloat16 values per packed 32 x 32 block, 3 planes
constexpr int kPlane = 32 * 32;       // one plane of a block (two tiles)
constexpr int kTile = 16 * 32;        // one tile of 16 rows x 64 bytes

// Palette 1: eight tiles of 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void load_tile_config() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

// Per-thread packing buffers, grown as needed (64-byte aligned); null when
// the memory is not there (the caller then leaves the product to BLAS).
struct PackBuf {
  uint16_t* p = nullptr;
  size_t cap = 0;
  uint16_t* get(size_t n) {
    if (n > cap) {
      std::free(p);
      cap = 0;
      p = static_cast<uint16_t*>(std::aligned_alloc(64, (n * sizeof(uint16_t) + 63) / 64 * 64));
      if (p) cap = n;
    }
    return p;
  }
  ~PackBuf() { std::free(p); }
};
thread_local PackBuf a_buf, b_buf;

// Lanes [0, n) set, n clamped to [0, 16].
inline __mmask16 first_lanes(int n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// The bfloat16 nearest to each lane of x (ties to even), in the low 16 bits
// of the lane, and back to float.
inline __m512i bf16_bits(__m512 x) {
  return _mm512_cvtepu16_epi32(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
}
inline __m512 bits_value(__m512i b) { return _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)); }

// x = x0 + x1 + x2 in bfloat16 parts (each x - x0, x - x0 - x1 is exact in
// float), as bf16_bits lanes.
inline void split3(__m512 x, __m512i part[3]) {
  part[0] = bf16_bits(x);
  __m512 r = _mm512_sub_ps(x, bits_value(part[0]));
  part[1] = bf16_bits(r);
  r = _mm512_sub_ps(r, bits_value(part[1]));
  part[2] = bf16_bits(r);
}

// 16 lanes of bfloat16 bits from a (low halves) and 16 from b as 32 values
// in order: a's, then b's.
inline __m512i join16(__m512i a, __m512i b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)),
                            _mm512_cvtepi32_epi16(b), 1);
}

// Transposes a 16 x 16 matrix of 32-bit values held as 16 rows.
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4g + q], 128-bit lane j: column 4j + q of rows 4g..4g+3
  __m512i u[16];
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  // row 4j + q of the result: lane j of u[q], u[4 + q], u[8 + q], u[12 + q]
  for (int q = 0; q < 4; ++q) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x44);
    const __m512i v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x44);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xEE);
    r[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + q] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    r[8 + q] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + q] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// 16 floats of a stored row, lanes past n zero (n <= 0: all zero, no load).
inline __m512 load_row(const float* p, int n) {
  if (n >= 16) return _mm512_loadu_ps(p);
  return n > 0 ? _mm512_maskz_loadu_ps(first_lanes(n), p) : _mm512_setzero_ps();
}

// 32 consecutive k of a stored row (n valid, the rest zero) as its three
// parts, each 32 bfloat16 in k order: a row of each plane of a block.
inline void split3_row32(const float* src, int n, __m512i part[3]) {
  __m512i lo[3], hi[3];
  split3(load_row(src, n), lo);
  split3(load_row(src + 16, n - 16), hi);
  for (int pl = 0; pl < 3; ++pl) part[pl] = join16(lo[pl], hi[pl]);
}

// Rows k and k+1 of an operand stored k-major (16 values each at src and
// src + ld, n of them valid; a row at or past kc is zero) as the tiles' pair
// words, one per part: row k's part in the low 16 bits, row k+1's above.
inline void pair_words(const float* src, size_t ld, int k, int kc, int n, __m512i w[3]) {
  __m512i even[3], odd[3];
  split3(k < kc ? load_row(src, n) : _mm512_setzero_ps(), even);
  split3(k + 1 < kc ? load_row(src + ld, n) : _mm512_setzero_ps(), odd);
  for (int pl = 0; pl < 3; ++pl) w[pl] = _mm512_or_si512(even[pl], _mm512_slli_epi32(odd[pl], 16));
}

// op(A)'s rows m0.. (rows valid: beyond, zero) and k0.., kc of them
// (padded with zeros to nkb blocks of 32), into out.
void pack_a(bool trans, const float* A, int lda, int m0, int rows, int k0, int kc, uint16_t* out) {
  const int nkb = (kc + 31) / 32;
  if (!trans) {  // row m of op(A) is stored row m: 32 k at a time, split in place
    for (int r = 0; r < 32; ++r) {
      const float* src = A + size_t(m0 + r) * lda + k0;
      for (int kb = 0; kb < nkb; ++kb) {
        const int rem = r < rows ? kc - kb * 32 : 0;
        __m512i parts[3];
        split3_row32(src + kb * 32, rem, parts);
        uint16_t* dst = out + size_t(kb) * kBlock + r * 32;
        for (int pl = 0; pl < 3; ++pl) _mm512_store_si512(dst + pl * kPlane, parts[pl]);
      }
    }
    return;
  }
  // op(A) = A^T: stored row k holds op(A)'s column k. Per 16 rows of op(A):
  // the k pairs (2p, 2p+1) as 32-bit words over the rows, then transposed.
  for (int h = 0; h < 2; ++h) {
    const int mrem = rows - 16 * h;
    for (int kb = 0; kb < nkb; ++kb) {
      __m512i w[3][16];
      for (int p = 0; p < 16; ++p) {
        const int k = kb * 32 + 2 * p;
        __m512i pw[3];
        pair_words(A + size_t(k0 + k) * lda + m0 + 16 * h, lda, k, kc, mrem, pw);
        for (int pl = 0; pl < 3; ++pl) w[pl][p] = pw[pl];
      }
      uint16_t* dst = out + size_t(kb) * kBlock + 16 * h * 32;
      for (int pl = 0; pl < 3; ++pl) {
        transpose16(w[pl]);
        for (int j = 0; j < 16; ++j) _mm512_store_si512(dst + pl * kPlane + j * 32, w[pl][j]);
      }
    }
  }
}

// op(B)'s columns n0.. (cols valid) and rows k0.. (kc), into out in the
// pair layout.
void pack_b(bool trans, const float* B, int ldb, int n0, int cols, int k0, int kc, uint16_t* out) {
  const int nkb = (kc + 31) / 32;
  for (int h = 0; h < 2; ++h) {
    const int nrem = cols - 16 * h;
    for (int kb = 0; kb < nkb; ++kb) {
      uint16_t* dst = out + size_t(kb) * kBlock + h * kTile;
      if (!trans) {  // stored row k is op(B)'s row k: pairs of rows interleaved
        for (int p = 0; p < 16; ++p) {
          const int k = kb * 32 + 2 * p;
          __m512i pw[3];
          pair_words(B + size_t(k0 + k) * ldb + n0 + 16 * h, ldb, k, kc, nrem, pw);
          for (int pl = 0; pl < 3; ++pl) _mm512_store_si512(dst + pl * kPlane + p * 32, pw[pl]);
        }
        continue;
      }
      // op(B) = B^T: stored row n holds op(B)'s column n, its k pairs already
      // adjacent; 16 columns' words transposed into rows of pairs.
      __m512i w[3][16];
      for (int c = 0; c < 16; ++c) {
        const float* src = B + size_t(n0 + 16 * h + c) * ldb + k0 + kb * 32;
        const int rem = c < nrem ? kc - kb * 32 : 0;
        __m512i parts[3];
        split3_row32(src, rem, parts);
        for (int pl = 0; pl < 3; ++pl) w[pl][c] = parts[pl];
      }
      for (int pl = 0; pl < 3; ++pl) {
        transpose16(w[pl]);
        for (int p = 0; p < 16; ++p) _mm512_store_si512(dst + pl * kPlane + p * 32, w[pl][p]);
      }
    }
  }
}

// C's 32 x 32 block at c (row stride ldc floats) += or = the nkb packed
// blocks of a times those of b.
void kernel_32x32(const uint16_t* a, const uint16_t* b, int nkb, float* c, int ldc, bool load_c) {
  const size_t stride = size_t(ldc) * sizeof(float);
  if (load_c) {
    _tile_loadd(0, c, stride);
    _tile_loadd(1, c + 16, stride);
    _tile_loadd(2, c + size_t(16) * ldc, stride);
    _tile_loadd(3, c + size_t(16) * ldc + 16, stride);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int kb = 0; kb < nkb; ++kb) {
    const uint16_t* ak = a + size_t(kb) * kBlock;
    const uint16_t* bk = b + size_t(kb) * kBlock;
#define MK_AMX_LOAD_A(i)                          \
  _tile_loadd(4, ak + (i) * kPlane, 64);          \
  _tile_loadd(5, ak + (i) * kPlane + kTile, 64);
#define MK_AMX_LOAD_B(j)                          \
  _tile_loadd(6, bk + (j) * kPlane, 64);          \
  _tile_loadd(7, bk + (j) * kPlane + kTile, 64);
#define MK_AMX_MUL                                \
  _tile_dpbf16ps(0, 4, 6);                        \
  _tile_dpbf16ps(1, 4, 7);                        \
  _tile_dpbf16ps(2, 5, 6);                        \
  _tile_dpbf16ps(3, 5, 7);
    // Smallest parts first; each step reloads one operand.
    MK_AMX_LOAD_A(2) MK_AMX_LOAD_B(0) MK_AMX_MUL  // A2 B0
    MK_AMX_LOAD_A(1) MK_AMX_MUL                   // A1 B0
    MK_AMX_LOAD_B(1) MK_AMX_MUL                   // A1 B1
    MK_AMX_LOAD_A(0) MK_AMX_MUL                   // A0 B1
    MK_AMX_LOAD_B(2) MK_AMX_MUL                   // A0 B2
    MK_AMX_LOAD_B(0) MK_AMX_MUL                   // A0 B0
#undef MK_AMX_LOAD_A
#undef MK_AMX_LOAD_B
#undef MK_AMX_MUL
  }
  _tile_stored(0, c, stride);
  _tile_stored(1, c + 16, stride);
  _tile_stored(2, c + size_t(16) * ldc, stride);
  _tile_stored(3, c + size_t(16) * ldc + 16, stride);
}

}  // namespace

bool amx_sgemm(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
               const float* B, int ldb, bool accumulate, float* C, int ldc) {
  const int n_nb = (N + 31) / 32;
  const int chunk_nb = n_nb < kNcBlocks ? n_nb : kNcBlocks;
  // Both buffers at their largest (the first panel's) before C is touched.
  const size_t max_panel = size_t((K < kKc ? K : kKc) + 31) / 32 * kBlock;
  uint16_t* const bp = b_buf.get(max_panel * chunk_nb);
  uint16_t* const ap = a_buf.get(max_panel);
  if (!bp || !ap) return false;
  load_tile_config();
  alignas(64) float edge[32 * 32];  // C's blocks that overhang M or N
  for (int nb0 = 0; nb0 < n_nb; nb0 += kNcBlocks) {
    const int nb1 = n_nb - nb0 < kNcBlocks ? n_nb : nb0 + kNcBlocks;
    for (int k0 = 0; k0 < K; k0 += kKc) {
      const int kc = K - k0 < kKc ? K - k0 : kKc, nkb = (kc + 31) / 32;
      const size_t panel = size_t(nkb) * kBlock;  // one 32-wide block over the panel
      for (int nb = nb0; nb < nb1; ++nb)
        pack_b(trans_b, B, ldb, nb * 32, N - nb * 32, k0, kc, bp + (nb - nb0) * panel);
      const bool load_c = accumulate || k0 > 0;
      for (int m0 = 0; m0 < M; m0 += 32) {
        const int rows = M - m0 < 32 ? M - m0 : 32;
        pack_a(trans_a, A, lda, m0, rows, k0, kc, ap);
        for (int nb = nb0; nb < nb1; ++nb) {
          const int n0 = nb * 32, cols = N - n0 < 32 ? N - n0 : 32;
          const uint16_t* b = bp + (nb - nb0) * panel;
          float* c = C + size_t(m0) * ldc + n0;
          if (rows == 32 && cols == 32) {
            kernel_32x32(ap, b, nkb, c, ldc, load_c);
            continue;
          }
          if (load_c) {
            std::memset(edge, 0, sizeof edge);
            for (int i = 0; i < rows; ++i)
              std::memcpy(edge + i * 32, c + size_t(i) * ldc, cols * sizeof(float));
          }
          kernel_32x32(ap, b, nkb, edge, 32, load_c);
          for (int i = 0; i < rows; ++i)
            std::memcpy(c + size_t(i) * ldc, edge + i * 32, cols * sizeof(float));
        }
      }
    }
  }
  _tile_release();
  return true;
}

}  // namespace mk::ops
