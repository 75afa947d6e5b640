// S4D (diagonal state space) convolution kernel and recurrent step.
// Per channel h and complex state n (one of each conjugate pair, so the
// real output is twice the real part), ZOH discretisation with step dt:
//   z_n    = exp(dt A_n)                 (Abar)
//   Bbar_n = (z_n - 1) / A_n             (B fixed at 1, folded into C)
//   K[c,h,l] = 2 Re( sum_n C[c,h,n] Bbar_n z_n^l ),  l = 0..L-1
// a Vandermonde product, computed in double whatever T. "copies" kernels
// share dt and A and differ in C (2 for the bidirectional S4D).
// Complex gradients follow the real-pair convention
//   dX = dLoss/dRe(X) + i dLoss/dIm(X).
#pragma once
#include <complex>

namespace mk::ops {

struct S4DKernelShape {
  int channels = 0;    // H
  int half_state = 0;  // N/2 complex states
  int len = 0;         // L
  int copies = 1;      // kernels per channel sharing dt and A
};

// dt (H) > 0, A (H, N/2), C (copies, H, N/2) -> K (copies, H, L) written.
template <typename T>
void s4d_kernel_forward(const S4DKernelShape& s, const T* dt, const std::complex<T>* A,
                        const std::complex<T>* C, T* K);

// dK (copies, H, L) -> ddt (H), dA (H, N/2), dC (copies, H, N/2), all written.
template <typename T>
void s4d_kernel_backward(const S4DKernelShape& s, const T* dt, const std::complex<T>* A,
                         const std::complex<T>* C, const T* dK, T* ddt, std::complex<T>* dA,
                         std::complex<T>* dC);

// One recurrent step for copies == 1: u (B, H), state (B, H, N/2) advanced:
//   h <- Abar h + Bbar u,  y = 2 Re(sum_n C_n h_n)   (y (B, H) written; no D)
template <typename T>
void s4d_step(const S4DKernelShape& s, int batch, const T* dt, const std::complex<T>* A,
              const std::complex<T>* C, const T* u, std::complex<T>* state, T* y);

}  // namespace mk::ops
