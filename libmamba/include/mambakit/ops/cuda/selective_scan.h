// The selective scan (Mamba's S6) on CUDA: the same recurrence as
// mambakit/ops/selective_scan.h, as one fused kernel per direction.
//
//   dA  = exp(delta[b,d,t] * A[d,n])
//   h_n = dA * h_n + delta[b,d,t] * B[b,n,t] * u[b,d,t]
//   y   = sum_n C[b,n,t] * h_n + D[d] * u[b,d,t]
//   out = y * silu(z[b,d,t])            (if z is given, else out = y)
//
// Layout. The CPU op stores sequences as (B, L, D); on the GPU the kernel
// wants time contiguous, so a block owning channel (b, d) reads its chunk of
// L with 16-byte coalesced loads: u, delta, z are (B, D, L) and B, C are
// (B, N, L), each given by a (batch, row) stride pair with unit stride along
// L, so views (x and z as halves of in_proj's (B, 2D, L) output, say) need no
// copy. Outputs and gradients are contiguous (B, D, L) and (B, N, L).
//
// Plan (forward): grid (D, B), one block per channel; the sequence runs in
// chunks of kThreads * kItems steps. Per chunk, u and delta (and z) are read
// once into registers; per group of states, exp(delta*A) and delta*B*u are
// formed in registers, each thread combines its items sequentially, and one
// block-wide scan under (a1,b1) o (a2,b2) = (a1 a2, a2 b1 + b2) (warp
// shuffles, then the warp totals) gives every thread its prefix, starting
// from the carry of the previous chunk. y accumulates over states in
// registers; only y and the state at each chunk start (chunk_states) are
// written. Backward: chunks last to first; per chunk and state group the
// states are recomputed from the saved chunk start by the same forward scan,
// then a reverse scan carries dh back; du, ddelta, dz sum over n in
// registers, dA, dD, d(delta_bias) are block-reduced, dB and dC (shared by
// all channels) are summed across blocks with fp32 atomics.
//
// Types: T (u, delta, B, C, z, out, du, ddelta, dz) is float or bf16; the
// state and all arithmetic are fp32; A, D, delta_bias and the parameter
// gradients dA, dD, ddelta_bias are fp32; dB and dC are fp32 (atomic sums).
// Sizes: any batch, len, dim >= 1; dstate 1..256 (16 has a fast path).
// Because dB/dC use atomics, the backward's dB and dC may differ in the last
// bits between runs; everything else is deterministic.
#pragma once
#include <cstddef>
#include <cstdint>

#include "mambakit/cuda/device.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

// Element (b, r, t) of a strided sequence tensor is at b*batch + r*row + t,
// where r is the channel d (u, delta, z) or the state n (B, C). {0, 0} means
// contiguous: batch = rows * len, row = len.
struct SeqStride {
  int64_t batch = 0, row = 0;
};

constexpr int kMaxDState = 256;

template <typename T>
struct SelectiveScanParams {
  int batch = 0, len = 0, dim = 0, dstate = 0;  // B, L, D, N
  const T* u = nullptr;           // (B, D, L) strided
  const T* delta = nullptr;       // (B, D, L) strided; positive, or raw if delta_softplus
  const float* A = nullptr;       // (D, N) contiguous, negative (= -exp(A_log))
  const T* Bm = nullptr;          // (B, N, L) strided
  const T* Cm = nullptr;          // (B, N, L) strided
  const float* Dskip = nullptr;   // (D) or null
  const T* z = nullptr;           // (B, D, L) strided, or null
  SeqStride u_stride, delta_stride, B_stride, C_stride, z_stride;
  // Fused: delta := softplus(delta + delta_bias[d]) (bias optional) before
  // the scan, as the Mamba block does; the backward then returns the
  // gradient w.r.t. the raw delta (and accumulates ddelta_bias).
  const float* delta_bias = nullptr;  // (D) or null
  bool delta_softplus = false;
};

template <typename T>
struct SelectiveScanGrads {
  T* du = nullptr;               // (B, D, L) written
  T* ddelta = nullptr;           // (B, D, L) written
  float* dA = nullptr;           // (D, N)    accumulated
  float* dB = nullptr;           // (B, N, L) written
  float* dC = nullptr;           // (B, N, L) written
  float* dD = nullptr;           // (D)       accumulated (if Dskip given)
  T* dz = nullptr;               // (B, D, L) written (if z given)
  float* ddelta_bias = nullptr;  // (D)       accumulated (if delta_bias given)
};

// Time steps per chunk for this sequence length (the kernel's block tiling:
// 256 steps for L <= 256, 512 for L <= 512, else 1024).
int selective_scan_chunk_len(int len);
// Floats of the chunk_states buffer: B * D * ceil(L / chunk_len(L)) * N.
size_t selective_scan_states_size(int batch, int len, int dim, int dstate);

// Throws mk::Error if sizes, pointers or strides are inconsistent, or the
// shape is one this kernel does not support (dstate > 256).
template <typename T>
void selective_scan_check(const SelectiveScanParams<T>& p);

// out (B, D, L). chunk_states (B, D, n_chunks, N) receives the state at the
// start of every chunk (null when no backward follows); final_state (B, D, N),
// if non-null, the state after the last step. All device pointers.
template <typename T>
void selective_scan_forward(const SelectiveScanParams<T>& p, T* out, float* chunk_states,
                            float* final_state, stream_t stream = nullptr);

// dout (B, D, L) contiguous.
template <typename T>
void selective_scan_backward(const SelectiveScanParams<T>& p, const float* chunk_states,
                             const T* dout, const SelectiveScanGrads<T>& g,
                             stream_t stream = nullptr);

// One recurrent step, layouts as the CPU op: state (B, D, N) fp32 updated in
// place; u_t, delta_t (already positive), z_t, out_t: (B, D); B_t, C_t: (B, N);
// A (D, N), Dskip (D) fp32; z_t and Dskip may be null.
template <typename T>
void selective_scan_step(int batch, int dim, int dstate, const T* u_t, const T* delta_t,
                         const float* A, const T* B_t, const T* C_t, const float* Dskip,
                         const T* z_t, float* state, T* out_t, stream_t stream = nullptr);

// Baseline that materialises every state: states (B, D, L, N) fp32 is written
// by the forward (one thread per (b, d, n) walking t, then a second kernel
// forming y) and read by the backward. fp32 only; delta_softplus and
// delta_bias are not supported here. For tests and the benchmark.
void selective_scan_naive_forward(const SelectiveScanParams<float>& p, float* out, float* states,
                                  stream_t stream = nullptr);
// Grads as the fused op (du, ddelta, dz written; dA, dD accumulated).
void selective_scan_naive_backward(const SelectiveScanParams<float>& p, const float* states,
                                   const float* dout, const SelectiveScanGrads<float>& g,
                                   stream_t stream = nullptr);

}  // namespace mk::ops::cuda
