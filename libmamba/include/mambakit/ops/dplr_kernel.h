// S4 (diagonal plus low rank) convolution kernel and recurrent step.
// Per channel h, with N/2 complex states (one of each conjugate pair; every
// sum over the full state is the half sum plus its conjugate, so kernels
// and outputs are real):
//   A    = Lambda - P P^*                       (rank 1)
//   Abar = (I - dt/2 A)^-1 (I + dt/2 A),  Bbar = (I - dt/2 A)^-1 dt B   (bilinear)
//   K[l] = C Abar^l Bbar,  l = 0..L-1
// The kernel follows S4's Algorithm 1: its generating function at the
// roots of unity w_k = exp(-2 pi i k / L),
//   Khat(w) = Ct (I - Abar w)^-1 Bbar,   Ct = C (I - Abar^L),
// is, with r_n = 1 / (2/dt (1-w) - (1+w) Lambda_n) and c = 1 + w,
//   Khat = 2 [k00 - c k01 k10 / (1 + c k11)]   (Woodbury)
//   k00 = sum r Ct B,  k01 = sum r Ct P,  k10 = sum r P^* B,  k11 = sum r P^* P
// (Cauchy sums; written without the 2/(1+w) factor of the paper so that
// w = -1 needs no special case), then K = inverse real FFT of Khat.
// Ct needs C Abar^L: L applications of the O(N) structured step (Woodbury
// for the inverse), recomputed in the backward. All arithmetic in double.
// Complex gradients: dX = dLoss/dRe(X) + i dLoss/dIm(X).
#pragma once
#include <complex>

namespace mk::ops {

struct DplrKernelShape {
  int channels = 0;    // H
  int half_state = 0;  // N/2
  int len = 0;         // L
  int copies = 1;      // kernels per channel sharing dt, Lambda, P, B (different C)
};

// dt (H) > 0; Lambda, P, B (H, N/2); C (copies, H, N/2) -> K (copies, H, L) written.
template <typename T>
void dplr_kernel_forward(const DplrKernelShape& s, const T* dt, const std::complex<T>* Lambda,
                         const std::complex<T>* P, const std::complex<T>* B,
                         const std::complex<T>* C, T* K);

// dK (copies, H, L) -> ddt (H), dLambda, dP, dB (H, N/2), dC (copies, H, N/2), all written.
template <typename T>
void dplr_kernel_backward(const DplrKernelShape& s, const T* dt, const std::complex<T>* Lambda,
                          const std::complex<T>* P, const std::complex<T>* B,
                          const std::complex<T>* C, const T* dK, T* ddt,
                          std::complex<T>* dLambda, std::complex<T>* dP, std::complex<T>* dB,
                          std::complex<T>* dC);

// One recurrent step (copies == 1): u (B, H), state (B, H, N/2) advanced:
//   x <- Abar x + Bbar u,  y = 2 Re(sum_n C_n x_n)   (y (B, H) written; no D)
// Abar is applied in its structured form (diagonal plus rank 1, Woodbury),
// O(N) per channel, equal to the dense (I - dt/2 A)^-1 (I + dt/2 A).
template <typename T>
void dplr_step(const DplrKernelShape& s, int batch, const T* dt, const std::complex<T>* Lambda,
               const std::complex<T>* P, const std::complex<T>* B, const std::complex<T>* C,
               const T* u, std::complex<T>* state, T* y);

}  // namespace mk::ops
