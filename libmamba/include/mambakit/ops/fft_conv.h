// Long convolution by FFT (the CNN mode of S4/S4D): every channel h of u is
// convolved with its own kernel of the sequence's length,
//   causal:        y[b,t,h] = sum_{s<=t} K[h,t-s] u[b,s,h]
//   bidirectional: y[b,t,h] += sum_{s>=t} Krev[h,s-t] u[b,s,h]
// (Krev is the second kernel applied to the reversed sequence; both include
// the lag-0 tap). One real FFT of length 2L per (b, h): the zero padding
// makes the circular convolution linear, and the anti-causal taps live in
// the upper half of the same length-2L kernel, so bidirectional costs
// nothing extra. Float runs FFTW's fftw3f, double fftw3.
#pragma once
#include <mutex>

namespace mk::ops {

struct FftConvShape {
  int batch = 0, len = 0, channels = 0;  // B, L, H
};

// u (B, L, H), K (H, L), Krev (H, L) or null (causal) -> y (B, L, H) written.
template <typename T>
void fft_conv_forward(const FftConvShape& s, const T* u, const T* K, const T* Krev, T* y);

// dy (B, L, H) -> du (B, L, H) = correlation of dy with K (written),
// dK (H, L) = correlation of dy with u summed over the batch (written), and
// dKrev (H, L) likewise when Krev is used (null otherwise).
template <typename T>
void fft_conv_backward(const FftConvShape& s, const T* dy, const T* u, const T* K, const T* Krev,
                       T* du, T* dK, T* dKrev);

// FFTW's planner is not thread-safe: any code in the process that creates or
// destroys FFTW plans must hold this mutex while doing so.
std::mutex& fftw_planner_mutex();

}  // namespace mk::ops
