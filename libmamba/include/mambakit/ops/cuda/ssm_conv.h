// The convolution mode of S4 and S4D on CUDA: the FFT long convolution, the
// S4D (diagonal) and S4 (DPLR) kernels with their backward and recurrent
// steps, and the parameter preparation they share. Same semantics, shapes
// and written/accumulated outputs as the CPU ops
//   mambakit/ops/fft_conv.h, s4d_kernel.h, dplr_kernel.h, ssm_prepare.h
// in fp32 device memory. Complex arrays are interleaved (re, im) float pairs
// (the memory of std::complex<float>), read and written as two floats, so
// they need only 4-byte alignment (a complex view at an odd offset of a
// flat parameter buffer is fine).
//
// All calls are asynchronous on `stream` (nullptr: the legacy default
// stream); scratch comes from the caching allocator on that stream. Every
// reduction runs in a fixed order: results are deterministic run to run.
//
// fft_conv: cuFFT real transforms of a length n >= 2L with no prime factor
// above 7 (n = 2L when 2L is such a size), batched over B*H rows. The
// (B, L, H) layout has channels contiguous; the op transposes explicitly
// (32x32 shared-memory tiles, zero padding fused in) into (B*H, n) rows,
// because a strided cuFFT cannot express the padding and contiguous rows
// are cuFFT's fast case. Plans are cached per (device, stream, transform,
// n, batch) behind a mutex: a plan (and its work area) is used by one
// stream only, and enqueues of one plan are serialised. fp32 FFTs: errors
// are those of a float FFT of length n (about 1e-6 relative).
//
// s4d_kernel: the powers z^l = exp(l dt A) are formed from exact arguments
// (l dt Im A reduced modulo 2 pi in double, then sincosf/expf), not by l
// repeated multiplications; no power is more than 7 (forward) or 15
// (backward) float multiplications away from such a start. The per-channel
// constants (C (z-1)/A, z^128) and the gradient formulas are evaluated in
// double, as on the CPU. The forward sums over the state in fp32; the
// backward sums over l in fp32 runs of 16, added in double. Step: double.
// Forward: grid (L/1024, H); backward: one block per channel.
//
// dplr_kernel: all arithmetic in double, as the CPU op: C Abar^L by L
// structured steps (one warp per (copy, channel)), the Cauchy sums and
// Woodbury correction one thread per (channel, frequency), the inverse real
// FFT by cuFFT (Z2D). The backward recomputes the powers C Abar^j from
// checkpoints every ~sqrt(L) steps (O(sqrt(L) N) memory per channel instead
// of O(L N)) and runs the reverse chain one warp per channel.
//
// Scratch (caching allocator): fft_conv about 3 (B + 1) H n floats for the
// backward; dplr (copies H L) doubles and complex doubles for the FFT, plus
// (copies H (L/S + 1) + H S) N/2 complex doubles of checkpoints and rows
// (S = ceil(sqrt(L))).
// The dplr cost is the sequential chain: L structured steps per channel
// (forward), about 2L more in the backward, one warp each.
//
// Supported: copies 1 or 2; half_state (N/2) <= 512 for S4D and <= 256 for
// S4; H <= 65535 for the S4D kernel; every size positive; the rest is
// refused with mk::Error before any launch. Without a device every op throws
// mk::Error naming the reason.
#pragma once

#include "mambakit/cuda/device.h"
#include "mambakit/ops/dplr_kernel.h"
#include "mambakit/ops/fft_conv.h"
#include "mambakit/ops/s4d_kernel.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;
using mk::ops::DplrKernelShape;
using mk::ops::FftConvShape;
using mk::ops::S4DKernelShape;

constexpr int kS4DMaxHalfState = 512;
constexpr int kDplrMaxHalfState = 256;

// --- FFT long convolution (ops/fft_conv.h) ----------------------------------
// u (B, L, H), K (H, L), Krev (H, L) or null (causal) -> y (B, L, H) written.
void fft_conv_forward(const FftConvShape& s, const float* u, const float* K, const float* Krev,
                      float* y, stream_t stream = nullptr);
// dy (B, L, H) -> du (B, L, H), dK (H, L), dKrev (H, L, when Krev is given),
// all written.
void fft_conv_backward(const FftConvShape& s, const float* dy, const float* u, const float* K,
                       const float* Krev, float* du, float* dK, float* dKrev,
                       stream_t stream = nullptr);
// Destroys every cached cuFFT plan (and its work area). Call only while no
// FFT is in flight, e.g. after synchronising the device.
void fft_plan_cache_clear();

// --- S4D (ops/s4d_kernel.h) -------------------------------------------------
// dt (H) > 0, A (H, N/2) complex, C (copies, H, N/2) complex -> K (copies, H, L) written.
void s4d_kernel_forward(const S4DKernelShape& s, const float* dt, const float* A, const float* C,
                        float* K, stream_t stream = nullptr);
// dK (copies, H, L) -> ddt (H), dA (H, N/2), dC (copies, H, N/2), all written.
void s4d_kernel_backward(const S4DKernelShape& s, const float* dt, const float* A, const float* C,
                         const float* dK, float* ddt, float* dA, float* dC,
                         stream_t stream = nullptr);
// copies == 1: u (B, H), state (B, H, N/2) complex advanced, y (B, H) written.
void s4d_step(const S4DKernelShape& s, int batch, const float* dt, const float* A, const float* C,
              const float* u, float* state, float* y, stream_t stream = nullptr);

// --- S4 / DPLR (ops/dplr_kernel.h) ------------------------------------------
// dt (H); Lambda, P, B (H, N/2); C (copies, H, N/2) complex -> K (copies, H, L) written.
void dplr_kernel_forward(const DplrKernelShape& s, const float* dt, const float* Lambda,
                         const float* P, const float* B, const float* C, float* K,
                         stream_t stream = nullptr);
// dK (copies, H, L) -> ddt (H), dLambda, dP, dB (H, N/2), dC (copies, H, N/2), all written.
void dplr_kernel_backward(const DplrKernelShape& s, const float* dt, const float* Lambda,
                          const float* P, const float* B, const float* C, const float* dK,
                          float* ddt, float* dLambda, float* dP, float* dB, float* dC,
                          stream_t stream = nullptr);
// copies == 1: u (B, H), state (B, H, N/2) complex advanced, y (B, H) written.
void dplr_step(const DplrKernelShape& s, int batch, const float* dt, const float* Lambda,
               const float* P, const float* B, const float* C, const float* u, float* state,
               float* y, stream_t stream = nullptr);

// --- Parameter preparation (ops/ssm_prepare.h) ------------------------------
// dt (H) = exp(log_dt); A (H, N2) complex = (-exp(log_A_real), A_imag); written.
void ssm_diag_prepare(int H, int N2, const float* log_dt, const float* log_A_real,
                      const float* A_imag, float* dt, float* A, stream_t stream = nullptr);
// Accumulated: g_log_dt += ddt dt; g_log_A_real += Re(dA) Re(A); g_A_imag += Im(dA).
void ssm_diag_prepare_backward(int H, int N2, const float* dt, const float* A, const float* ddt,
                               const float* dA, float* g_log_dt, float* g_log_A_real,
                               float* g_A_imag, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
