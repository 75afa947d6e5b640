// Small elementwise and layout ops shared by the layers, so that a layer runs
// the same sequence of ops on the CPU and on CUDA (mambakit/ops/cuda/
// elementwise.h has the same ops on device pointers). T = float or double.
// Matrices are row-major; strides are in elements. "Written" outputs are
// overwritten; "+=" outputs are accumulated into.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mk::ops {

// y = a + b  (n); y may be a or b (the same pointer, not a partial overlap).
template <typename T> void add(const T* a, const T* b, T* y, size_t n);
// y += alpha * x  (n)
template <typename T> void axpy(T alpha, const T* x, T* y, size_t n);
// y *= alpha  (n)
template <typename T> void scale(T alpha, T* y, size_t n);
// y = -exp(x)  (n), e.g. A = -exp(A_log); y may be x.
template <typename T> void neg_exp(const T* x, T* y, size_t n);
// y += a * b  (n)
template <typename T> void mul_acc(const T* a, const T* b, T* y, size_t n);

// Column block copy: dst[r, d0 + j] = src[r, c0 + j] for r < rows, j < w.
// src (rows, src_stride), dst (rows, dst_stride); needs c0 + w <= src_stride
// and d0 + w <= dst_stride. src and dst must not overlap.
template <typename T>
void copy_cols(const T* src, size_t rows, size_t src_stride, size_t c0, size_t w, T* dst,
               size_t dst_stride, size_t d0);

// x (batch, rows, cols) -> y (batch, cols, rows): y[b, c, r] = x[b, r, c].
// Not in place (x and y must not overlap).
template <typename T> void transpose(const T* x, T* y, size_t batch, size_t rows, size_t cols);

// Time reversal of each sequence: x, y (batch, len, width),
// y[b, len-1-t, :] = x[b, t, :]. Not in place. Runs a causal mixer
// backwards (the reverse half of a bidirectional Mamba); its own inverse,
// so the same op carries gradients back.
template <typename T> void reverse_time(const T* x, T* y, size_t batch, size_t len, size_t width);

// Per-channel scale (the D skip of S4/S4D): x, y (rows, H), D (H).
// y[r, h] += D[h] * x[r, h]
template <typename T>
void channel_scale_forward(const T* x, const T* D, T* y, size_t rows, size_t H);
// dx[r, h] += D[h] * dy[r, h];  dD[h] += sum_r dy[r, h] * x[r, h]
template <typename T>
void channel_scale_backward(const T* dy, const T* x, const T* D, T* dx, T* dD, size_t rows,
                            size_t H);

// Classifier pooling over the valid prefix of each sequence, as
// SequenceModel: h (B, L, D), lengths (B) with 1 <= lengths[b] <= L (null:
// every sequence has length L), pooled (B, D) written:
//   mean: pooled[b] = (sum_{t < len_b} h[b, t]) / len_b
//   last: pooled[b] = h[b, len_b - 1]
// A length outside [1, L] throws mk::Error.
template <typename T>
void sequence_pool_forward(const T* h, const int32_t* lengths, T* pooled, int B, int L, int D,
                           bool last);
// dpooled (B, D) -> dh (B, L, D), written entirely (zero where not pooled):
//   mean: dh[b, t] = dpooled[b] * (1 / len_b) for t < len_b
//   last: dh[b, len_b - 1] = dpooled[b]
template <typename T>
void sequence_pool_backward(const T* dpooled, const int32_t* lengths, T* dh, int B, int L, int D,
                            bool last);

}  // namespace mk::ops
