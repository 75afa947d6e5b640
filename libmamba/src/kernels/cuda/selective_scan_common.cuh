// Pieces shared by the fused selective-scan kernels (forward in
// selective_scan_fwd.cu, backward in selective_scan_bwd.cu): the kernel
// arguments, the tiling, the SSM pair and its block-wide scans.
#pragma once
#include "common.cuh"
#include "mambakit/ops/cuda/selective_scan.h"

namespace mk::ops::cuda::scan_detail {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

// Each thread owns kItems consecutive time steps of a chunk: 8 fp32 are two
// 16-byte loads, 8 bf16 one.
constexpr int kItems = 8;
constexpr float kLog2e = 1.4426950408889634f;

// Threads per block for a sequence length: the chunk (threads * kItems)
// grows with L up to 1024 steps, so short sequences do not idle most of a
// block while long ones amortise each chunk's barriers. 128 threads at most:
// the backward needs ~168 registers a thread, and 3 blocks of 128 per SM
// keep 12 warps resident where one block of 256 would keep 8.
inline int threads_for_len(int len) { return len <= 256 ? 32 : len <= 512 ? 64 : 128; }

// Everything a scan kernel reads, resolved on the host (strides made
// explicit, 16-byte load eligibility decided once).
template <typename T>
struct ScanArgs {
  int B, L, D, N, n_chunks;
  const T *u, *delta, *Bm, *Cm, *z;
  const float *A, *Dskip, *delta_bias;
  int64_t u_sb, u_sr, dl_sb, dl_sr, B_sb, B_sr, C_sb, C_sr, z_sb, z_sr;
  bool softplus;
  // 16-byte loads allowed (pointer aligned and strides multiples of a vector)
  bool vec_u, vec_delta, vec_B, vec_C, vec_z, vec_seq_out;
  // forward outputs
  T* out;
  float* chunk_states;  // (B, D, n_chunks, N) or null
  float* final_state;   // (B, D, N) or null
  // backward
  const T* dout;
  T *du, *ddelta, *dz;
  float *dA, *dB, *dC, *dD, *ddelta_bias;
};

// {0, 0} means contiguous (rows, len).
inline SeqStride resolve_stride(SeqStride s, int rows, int len) {
  if (s.batch == 0 && s.row == 0) return {int64_t(rows) * len, int64_t(len)};
  return s;
}

// 16-byte loads at t0 (a multiple of kItems) need the row start aligned:
// base pointer aligned and the strides whole vectors.
template <typename T>
bool vec_ok(const T* p, SeqStride s, int batch) {
  constexpr int W = Vec16<T>::kWidth;
  return aligned16(p) && s.row % W == 0 && (batch == 1 || s.batch % W == 0);
}
template <typename T>
bool vec_ok_contiguous(const T* p, int len) {
  return aligned16(p) && len % Vec16<T>::kWidth == 0;
}

// Arguments for the kernels from checked params (outputs left null).
template <typename T>
ScanArgs<T> make_args(const SelectiveScanParams<T>& p) {
  ScanArgs<T> a{};
  a.B = p.batch;
  a.L = p.len;
  a.D = p.dim;
  a.N = p.dstate;
  const int chunk = threads_for_len(p.len) * kItems;
  a.n_chunks = (p.len + chunk - 1) / chunk;
  a.u = p.u;
  a.delta = p.delta;
  a.Bm = p.Bm;
  a.Cm = p.Cm;
  a.z = p.z;
  a.A = p.A;
  a.Dskip = p.Dskip;
  a.delta_bias = p.delta_bias;
  a.softplus = p.delta_softplus;
  const SeqStride us = resolve_stride(p.u_stride, p.dim, p.len);
  const SeqStride ds = resolve_stride(p.delta_stride, p.dim, p.len);
  const SeqStride bs = resolve_stride(p.B_stride, p.dstate, p.len);
  const SeqStride cs = resolve_stride(p.C_stride, p.dstate, p.len);
  const SeqStride zs = resolve_stride(p.z_stride, p.dim, p.len);
  a.u_sb = us.batch;
  a.u_sr = us.row;
  a.dl_sb = ds.batch;
  a.dl_sr = ds.row;
  a.B_sb = bs.batch;
  a.B_sr = bs.row;
  a.C_sb = cs.batch;
  a.C_sr = cs.row;
  a.z_sb = zs.batch;
  a.z_sr = zs.row;
  a.vec_u = vec_ok(p.u, us, p.batch);
  a.vec_delta = vec_ok(p.delta, ds, p.batch);
  a.vec_B = vec_ok(p.Bm, bs, p.batch);
  a.vec_C = vec_ok(p.Cm, cs, p.batch);
  a.vec_z = p.z && vec_ok(p.z, zs, p.batch);
  return a;
}

// h -> a*h + b. combine(x, y): x first, then y.
struct Pair {
  float a, b;
};
__device__ __forceinline__ Pair identity_pair() { return {1.f, 0.f}; }
__device__ __forceinline__ Pair combine(const Pair& x, const Pair& y) {
  return {x.a * y.a, fmaf(y.a, x.b, y.b)};
}

// Block-wide exclusive scan of kG independent sequences at once, in thread
// order. On entry v[j] is the thread's aggregate (its items combined in
// order) and carry[j] everything before this chunk; on return v[j] is
// carry o (aggregates of all lower threads) and carry[j] includes the whole
// block. Every thread computes the carry itself from the warp totals (the
// same values in the same order), so it needs no broadcast. One barrier:
// callers alternate between two `tot` buffers, so a buffer is rewritten only
// after a later barrier that every reader of it has passed.
template <int kThreads, int kG>
__device__ __forceinline__ void block_scan_forward(Pair (&v)[kG], Pair (&carry)[kG],
                                                   Pair (*tot)[kG]) {
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  Pair incl[kG], excl[kG];
#pragma unroll
  for (int j = 0; j < kG; ++j) incl[j] = v[j];
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
#pragma unroll
    for (int j = 0; j < kG; ++j) {
      const Pair o = {__shfl_up_sync(kFullMask, incl[j].a, off),
                      __shfl_up_sync(kFullMask, incl[j].b, off)};
      if (lane >= off) incl[j] = combine(o, incl[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < kG; ++j) {
    const Pair o = {__shfl_up_sync(kFullMask, incl[j].a, 1),
                    __shfl_up_sync(kFullMask, incl[j].b, 1)};
    excl[j] = lane == 0 ? identity_pair() : o;
    if (lane == 31) tot[warp][j] = incl[j];
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kG; ++j) {
    Pair run = carry[j], mine = carry[j];
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      if (w == warp) mine = run;
      run = combine(run, tot[w][j]);
    }
    v[j] = combine(mine, excl[j]);
    carry[j] = run;
  }
}

// The same in reverse thread order (the highest thread's items come first):
// used by the backward, whose adjoint recurrence runs from the end of the
// sequence to its start.
template <int kThreads, int kG>
__device__ __forceinline__ void block_scan_reverse(Pair (&v)[kG], Pair (&carry)[kG],
                                                   Pair (*tot)[kG]) {
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  Pair incl[kG], excl[kG];
#pragma unroll
  for (int j = 0; j < kG; ++j) incl[j] = v[j];
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
#pragma unroll
    for (int j = 0; j < kG; ++j) {
      const Pair o = {__shfl_down_sync(kFullMask, incl[j].a, off),
                      __shfl_down_sync(kFullMask, incl[j].b, off)};
      if (lane + off < 32) incl[j] = combine(o, incl[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < kG; ++j) {
    const Pair o = {__shfl_down_sync(kFullMask, incl[j].a, 1),
                    __shfl_down_sync(kFullMask, incl[j].b, 1)};
    excl[j] = lane == 31 ? identity_pair() : o;
    if (lane == 0) tot[warp][j] = incl[j];
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kG; ++j) {
    Pair run = carry[j], mine = carry[j];
#pragma unroll
    for (int w = kWarps - 1; w >= 0; --w) {
      if (w == warp) mine = run;
      run = combine(run, tot[w][j]);
    }
    v[j] = combine(mine, excl[j]);
    carry[j] = run;
  }
}

// delta as the scan uses it: optional bias, optional softplus; zero for
// steps past the end (so the step is the identity (1, 0) of the scan).
template <int kN>
__device__ __forceinline__ void prepare_delta(float (&dl)[kN], float bias, bool softplus,
                                              int valid) {
#pragma unroll
  for (int i = 0; i < kN; ++i) {
    const float x = dl[i] + bias;
    dl[i] = i < valid ? (softplus ? softplusf_(x) : x) : 0.f;
  }
}

}  // namespace mk::ops::cuda::scan_detail
