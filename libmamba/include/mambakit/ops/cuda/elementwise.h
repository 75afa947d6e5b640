// Small elementwise, layout and gating ops on CUDA: the ops of
// mambakit/ops/elementwise.h, gated.h (GELU, GLU, SwiGLU) and
// pair_features.h on device pointers, with the same semantics (the CPU ops
// are the reference). T = float only (the only instantiation; arithmetic in
// fp32). Sizes of zero are no-ops; null pointers and bad sizes throw
// mk::Error, as does a call without a device. Every op is asynchronous on
// `stream` (nullptr: the legacy default stream).
//
// Where an output may alias an input it says so; otherwise outputs must not
// overlap inputs. 16-byte aligned pointers (and, for row ops, row lengths that
// are multiples of 4) take float4 loads and stores; any alignment works.
#pragma once
#include <cstddef>
#include <cstdint>

#include "mambakit/cuda/device.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

// --- elementwise (n) --------------------------------------------------------

// y = a + b; y may be a or b.
template <typename T> void add(const T* a, const T* b, T* y, size_t n, stream_t stream = nullptr);
// y += alpha * x
template <typename T> void axpy(T alpha, const T* x, T* y, size_t n, stream_t stream = nullptr);
// y *= alpha
template <typename T> void scale(T alpha, T* y, size_t n, stream_t stream = nullptr);
// y = -exp(x); y may be x.
template <typename T> void neg_exp(const T* x, T* y, size_t n, stream_t stream = nullptr);
// y += a * b
template <typename T> void mul_acc(const T* a, const T* b, T* y, size_t n, stream_t stream = nullptr);

// --- layout -----------------------------------------------------------------

// dst[r, d0 + j] = src[r, c0 + j], r < rows, j < w; src (rows, src_stride),
// dst (rows, dst_stride), strides in elements; c0 + w <= src_stride and
// d0 + w <= dst_stride (refused otherwise). One cudaMemcpy2DAsync.
template <typename T>
void copy_cols(const T* src, size_t rows, size_t src_stride, size_t c0, size_t w, T* dst,
               size_t dst_stride, size_t d0, stream_t stream = nullptr);
// x (batch, rows, cols) -> y (batch, cols, rows). Not in place (overlapping
// x and y are refused). 32x32 shared-memory tiles, coalesced both ways.
template <typename T>
void transpose(const T* x, T* y, size_t batch, size_t rows, size_t cols, stream_t stream = nullptr);

// x, y (batch, len, width): y[b, len-1-t, :] = x[b, t, :]. Not in place
// (overlapping x and y are refused).
template <typename T>
void reverse_time(const T* x, T* y, size_t batch, size_t len, size_t width, stream_t stream = nullptr);

// --- per-channel scale: x, y, dy, dx (rows, H), D, dD (H) -------------------

// y[r, h] += D[h] * x[r, h]
template <typename T>
void channel_scale_forward(const T* x, const T* D, T* y, size_t rows, size_t H,
                           stream_t stream = nullptr);
// dx[r, h] += D[h] * dy[r, h];  dD[h] += sum_r dy[r, h] x[r, h]
// (fixed-order reduction over row chunks, no atomics: run to run identical).
template <typename T>
void channel_scale_backward(const T* dy, const T* x, const T* D, T* dx, T* dD, size_t rows,
                            size_t H, stream_t stream = nullptr);

// --- sequence pooling: h, dh (B, L, D), pooled, dpooled (B, D) --------------
// lengths (B) is a DEVICE pointer (null: every length is L). As the CPU op,
// mean pools h[b, 0:len_b], last takes h[b, len_b - 1]. The lengths are not
// read on the host, so a length outside [1, L] cannot throw: it makes that
// sequence's outputs NaN (pooled[b] forward, all of dh[b] backward).
template <typename T>
void sequence_pool_forward(const T* h, const int32_t* lengths, T* pooled, int B, int L, int D,
                           bool last, stream_t stream = nullptr);
// dh written entirely (zeros where not pooled).
template <typename T>
void sequence_pool_backward(const T* dpooled, const int32_t* lengths, T* dh, int B, int L, int D,
                            bool last, stream_t stream = nullptr);

// --- gated activations (mambakit/ops/gated.h) -------------------------------

// y = x Phi(x) (exact erf form)
template <typename T> void gelu_forward(const T* x, T* y, size_t n, stream_t stream = nullptr);
// dx = dy (Phi(x) + x phi(x))  (written)
template <typename T>
void gelu_backward(const T* dy, const T* x, T* dx, size_t n, stream_t stream = nullptr);
// x (rows, 2w) -> y (rows, w): y = x[:, :w] * sigmoid(x[:, w:])
template <typename T>
void glu_forward(const T* x, T* y, size_t rows, size_t w, stream_t stream = nullptr);
// dy (rows, w) -> dx (rows, 2w) (written)
template <typename T>
void glu_backward(const T* dy, const T* x, T* dx, size_t rows, size_t w, stream_t stream = nullptr);
// y = silu(g) * u  (n)
template <typename T>
void swiglu_forward(const T* g, const T* u, T* y, size_t n, stream_t stream = nullptr);
// dg, du (n) written
template <typename T>
void swiglu_backward(const T* dy, const T* g, const T* u, T* dg, T* du, size_t n,
                     stream_t stream = nullptr);

// --- two-tower features (mambakit/ops/pair_features.h) ----------------------

// u, v (P, d) -> f (P, 4d) = [u, v, u*v, u-v]
template <typename T>
void pair_features_forward(const T* u, const T* v, T* f, int pairs, int d, stream_t stream = nullptr);
// df (P, 4d) -> du, dv (P, d) written
template <typename T>
void pair_features_backward(const T* df, const T* u, const T* v, T* du, T* dv, int pairs, int d,
                            stream_t stream = nullptr);

}  // namespace mk::ops::cuda
