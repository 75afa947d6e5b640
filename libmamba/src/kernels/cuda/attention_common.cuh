// Pieces shared by the attention kernels (attention_fwd.cu, attention_bwd.cu):
// the checked arguments, the tile sizes per padded head dim, the tile loader
// and the two register-tiled shared-memory products. Private to
// src/kernels/cuda.
//
// Thread layout of every tiled kernel: 128 threads as a 16 x 8 grid,
// ty = tid / 8 (0..15), tx = tid % 8 (0..7); the 8 threads of a row group
// are 8 consecutive lanes of one warp, so row reductions are 3 shuffles.
// A thread owns rows ty*TM .. ty*TM + TM-1 of a tile, score columns
// tx + 8n (n < TN), and output columns 32m + 4tx + e (e < 4, m < kD/32).
#pragma once
#include <climits>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "mambakit/ops/cuda/attention.h"

namespace mk::ops::cuda::attn {

using namespace mk::cuda::detail;

constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Everything a kernel reads, resolved on the host.
struct Args {
  int heads, head_dim, len_q, len_k, bh;  // bh = batch * heads
  int64_t q_offset;
  float sl2;  // scale * log2(e): scores live in the log2 domain
  float scale;
  const float *q, *k, *v;
  float* o;
  float* lse;  // forward: written if set; backward: read (required)
  int64_t q_sb, q_st, kv_sb, kv_st;
  // backward
  const float* dout;
  const float* delta;  // (B, H, len_q) rowsum(dO * O)
  float *dq, *dk, *dv;
};

inline void check(const AttentionParams<float>& p, const char* where) {
  const std::string w(where);
  MK_CHECK(p.batch > 0 && p.len_q > 0 && p.len_k > 0 && p.heads > 0 && p.head_dim > 0,
           w + ": sizes must be positive");
  MK_CHECK(p.q && p.k && p.v && p.o, w + ": q, k, v and o are required");
  MK_CHECK(p.len_q - 1 + p.q_offset < p.len_k,
           w + ": the last query would see past the last key (len_q " + std::to_string(p.len_q) +
               ", q_offset " + std::to_string(p.q_offset) + ", len_k " + std::to_string(p.len_k) +
               ")");
  MK_CHECK(p.q_offset >= 0, w + ": q_offset must be >= 0");
  MK_CHECK(p.head_dim <= kAttentionMaxHeadDim,
           w + ": head_dim " + std::to_string(p.head_dim) + " is not supported (at most " +
               std::to_string(kAttentionMaxHeadDim) + ")");
  MK_CHECK(int64_t(p.batch) * p.heads <= INT_MAX,
           w + ": batch * heads = " + std::to_string(int64_t(p.batch) * p.heads) + " is too large");
}

inline Args make_args(const AttentionParams<float>& p) {
  Args a{};
  a.heads = p.heads;
  a.head_dim = p.head_dim;
  a.len_q = p.len_q;
  a.len_k = p.len_k;
  a.bh = p.batch * p.heads;
  a.q_offset = p.q_offset;
  a.scale = p.scale;
  a.sl2 = p.scale * kLog2e;
  a.q = p.q;
  a.k = p.k;
  a.v = p.v;
  a.o = p.o;
  a.lse = p.lse;
  a.q_sb = p.q_sb;
  a.q_st = p.q_st;
  a.kv_sb = p.kv_sb;
  a.kv_st = p.kv_st;
  return a;
}

// The padded head dim a kernel is built for: 32, 64, 96 or 128.
inline int padded_head_dim(int hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : hd <= 96 ? 96 : 128; }

// Calls f(std::integral_constant<int, kD>{}) for the padded head dim.
template <typename F>
void dispatch_head_dim(int hd, F&& f) {
  switch (padded_head_dim(hd)) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 96: f(std::integral_constant<int, 96>{}); break;
    default: f(std::integral_constant<int, 128>{}); break;
  }
}

// Tile sizes per padded head dim (rows x columns of the score tile each
// kernel forms): the larger head dims take narrower tiles so that the
// register blocks stay under ~160 registers and shared memory under ~80 KB.
template <int kD>
struct Tiles {
  static_assert(kD % 32 == 0 && kD <= 128, "padded head dim");
  static constexpr bool kWide = kD <= 64;
  // forward: kFwdQ queries x kFwdK keys
  static constexpr int kFwdQ = 64, kFwdK = kWide ? 64 : 32;
  // dK/dV: kDkvK keys (owned) x kDkvQ queries (streamed)
  static constexpr int kDkvK = kWide ? 64 : 32, kDkvQ = 32;
  // dQ: kDqQ queries (owned) x kDqK keys (streamed)
  static constexpr int kDqQ = kWide ? 64 : 32, kDqK = 32;
};

// Offsets of (b, row, h) for the q layout and the k layout.
__device__ __forceinline__ int64_t q_off(const Args& a, int b, int64_t i, int h) {
  return int64_t(b) * a.q_sb + i * a.q_st + int64_t(h) * a.head_dim;
}
__device__ __forceinline__ int64_t kv_off(const Args& a, int b, int64_t j, int h) {
  return int64_t(b) * a.kv_sb + j * a.kv_st + int64_t(h) * a.head_dim;
}

// dst[r*kLd + d] (r < kRows, d < kD) = src[base + r*stride + d] where
// r < rows and d < hd, else 0 (padding rows and columns are zero, so they add
// nothing to a product). Consecutive threads take consecutive d: coalesced.
template <int kRows, int kD, int kLd>
__device__ __forceinline__ void load_tile(float* dst, const float* src, int64_t base,
                                          int64_t stride, int rows, int hd) {
#pragma unroll 4
  for (int idx = threadIdx.x; idx < kRows * kD; idx += kThreads) {
    const int r = idx / kD, d = idx % kD;
    float v = 0.f;
    if (r < rows && d < hd) v = src[base + r * stride + d];
    dst[r * kLd + d] = v;
  }
}

__device__ __forceinline__ float4 lds4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ float comp(const float4& v, int k) {
  return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}

// c[i][n] += sum_{d < kK} A[(ty*TM + i)*kLdA + d] * B[(tx + 8n)*kLdB + d]
// (A B^T: rows of A against rows of B, both d-contiguous in shared memory).
// The 8 lanes of a quarter-warp share ty and read 8 different rows of B
// whose starts are 4 banks apart (kLdB = 4 mod 32): conflict-free.
template <int TM, int TN, int kK, int kLdA, int kLdB>
__device__ __forceinline__ void mma_abt(const float* A, const float* B, int ty, int tx,
                                        float (&c)[TM][TN]) {
  static_assert(kK % 4 == 0 && kLdA % 4 == 0 && kLdB % 4 == 0, "float4 alignment");
  const float* a0 = A + ty * TM * kLdA;
  const float* b0 = B + tx * kLdB;
#pragma unroll 2
  for (int d = 0; d < kK; d += 4) {
    float4 a[TM], b[TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) a[i] = lds4(a0 + i * kLdA + d);
#pragma unroll
    for (int n = 0; n < TN; ++n) b[n] = lds4(b0 + 8 * n * kLdB + d);
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int n = 0; n < TN; ++n) {
        float s = c[i][n];
        s = fmaf(a[i].x, b[n].x, s);
        s = fmaf(a[i].y, b[n].y, s);
        s = fmaf(a[i].z, b[n].z, s);
        s = fmaf(a[i].w, b[n].w, s);
        c[i][n] = s;
      }
  }
}

// c[i][4m + e] += sum_{k < kK} A[(ty*TM + i)*kLdA + k] * B[k*kLdB + 32m + 4tx + e]
// (A B: rows of A against columns of B), m < kDc, e < 4. The 8 lanes of a
// quarter-warp read 128 consecutive bytes of a row of B: conflict-free.
template <int TM, int kDc, int kK, int kLdA, int kLdB>
__device__ __forceinline__ void mma_ab(const float* A, const float* B, int ty, int tx,
                                       float (&c)[TM][4 * kDc]) {
  static_assert(kK % 4 == 0 && kLdA % 4 == 0 && kLdB % 4 == 0, "float4 alignment");
  const float* a0 = A + ty * TM * kLdA;
  const float* b0 = B + 4 * tx;
#pragma unroll 2
  for (int k = 0; k < kK; k += 4) {
    float4 a[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) a[i] = lds4(a0 + i * kLdA + k);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      float4 b[kDc];
#pragma unroll
      for (int m = 0; m < kDc; ++m) b[m] = lds4(b0 + (k + kk) * kLdB + 32 * m);
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const float av = comp(a[i], kk);
#pragma unroll
        for (int m = 0; m < kDc; ++m) {
          c[i][4 * m] = fmaf(av, b[m].x, c[i][4 * m]);
          c[i][4 * m + 1] = fmaf(av, b[m].y, c[i][4 * m + 1]);
          c[i][4 * m + 2] = fmaf(av, b[m].z, c[i][4 * m + 2]);
          c[i][4 * m + 3] = fmaf(av, b[m].w, c[i][4 * m + 3]);
        }
      }
    }
  }
}

// Writes a thread's TM rows x (4 kDc) columns block of out (scaled by mul)
// to rows row0 + ty*TM + i (those < n_rows), columns d < hd, at
// ptr[off(row) + d] where off is the row's offset in its layout.
template <int TM, int kDc, typename Off>
__device__ __forceinline__ void store_rows(float* ptr, const float (&c)[TM][4 * kDc], float mul,
                                           int64_t row0, int n_rows, int hd, int ty, int tx,
                                           Off off) {
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t row = row0 + ty * TM + i;
    if (row >= n_rows) continue;
    float* dst = ptr + off(row);
#pragma unroll
    for (int m = 0; m < kDc; ++m)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = 32 * m + 4 * tx + e;
        if (d < hd) dst[d] = c[i][4 * m + e] * mul;
      }
  }
}

// Shuffle reductions over the 8 lanes of a row group (lanes 8g .. 8g+7).
__device__ __forceinline__ float group8_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFullMask, v, 1));
  v = fmaxf(v, __shfl_xor_sync(kFullMask, v, 2));
  v = fmaxf(v, __shfl_xor_sync(kFullMask, v, 4));
  return v;
}
__device__ __forceinline__ float group8_sum(float v) {
  v += __shfl_xor_sync(kFullMask, v, 1);
  v += __shfl_xor_sync(kFullMask, v, 2);
  v += __shfl_xor_sync(kFullMask, v, 4);
  return v;
}

// Dynamic shared memory above 48 KB must be asked for, per kernel.
template <typename K>
void allow_smem(K kernel, size_t bytes) {
  MK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(bytes)));
}

// Blocks along y for (b, h): kernels loop over bh in steps of gridDim.y.
inline unsigned bh_blocks(int bh) { return unsigned(bh < 65535 ? bh : 65535); }

}  // namespace mk::ops::cuda::attn
