// Parameter preparation shared by the S4D and S4 layers: their stored
// parameters are log_dt (H), log_A_real (H, N/2) and A_imag (H, N/2), and the
// kernels take dt > 0 and a complex A (S4D) or Lambda (S4) with negative
// real part:
//   dt[h] = exp(log_dt[h])
//   A[i]  = -exp(log_A_real[i]) + i A_imag[i],   i < H * N/2
// Complex arrays are interleaved (re, im) pairs of T (the memory of
// std::complex<T>). T = float or double. The CUDA float forms are declared
// in ops/cuda/ssm_conv.h.
#pragma once

namespace mk::ops {

// log_dt (H), log_A_real (H, N2), A_imag (H, N2) -> dt (H), A (H, N2) complex, written.
template <typename T>
void ssm_diag_prepare(int H, int N2, const T* log_dt, const T* log_A_real, const T* A_imag, T* dt,
                      T* A);

// The chain rule back through ssm_diag_prepare, from ddt (H) and dA (H, N2)
// complex (real-pair convention dA = dL/dRe A + i dL/dIm A), given the
// prepared dt and A. Accumulated (+=):
//   g_log_dt[h]     += ddt[h] dt[h]
//   g_log_A_real[i] += Re(dA[i]) Re(A[i])
//   g_A_imag[i]     += Im(dA[i])
template <typename T>
void ssm_diag_prepare_backward(int H, int N2, const T* dt, const T* A, const T* ddt, const T* dA,
                               T* g_log_dt, T* g_log_A_real, T* g_A_imag);

}  // namespace mk::ops
