// FFT long convolution, forward and backward (see ops/fft_conv.h).
#include "mambakit/ops/fft_conv.h"

#include <complex>
#include <string>

#include "fftw_plans.h"
#include "mambakit/error.h"

namespace mk::ops {

namespace {

using detail::AlignedBuf;
using detail::RealFftPlan;

void check(const FftConvShape& s, const char* where) {
  MK_CHECK(s.batch > 0 && s.len > 0 && s.channels > 0,
           std::string(where) + ": sizes must be positive (B=" + std::to_string(s.batch) +
               ", L=" + std::to_string(s.len) + ", H=" + std::to_string(s.channels) + ")");
}

// Small problems run on one thread: waking a team costs more than they do.
bool worth_threads(const FftConvShape& s) { return long(s.batch) * s.channels * s.len >= (1L << 15); }

// Lays channel h's kernel out over the circular length 2L: the causal taps at
// 0..L-1, the anti-causal taps Krev[m] at 2L-m (lag -m); Krev[0] joins K[0].
template <typename T>
void circular_kernel(const T* K, const T* Krev, int L, T* k) {
  for (int j = 0; j < L; ++j) k[j] = K[j];
  for (int j = L; j < 2 * L; ++j) k[j] = T(0);
  if (Krev) {
    k[0] += Krev[0];
    for (int m = 1; m < L; ++m) k[2 * L - m] = Krev[m];
  }
}

// Row stride of the kernel spectra: L+1 rounded up to 64 bytes, so that
// every row is as aligned as the arrays the FFT plan was made for.
template <typename T>
size_t spectrum_stride(int L) {
  const size_t per = 64 / sizeof(std::complex<T>);
  return (size_t(L) + 1 + per - 1) / per * per;
}

// Spectra of all kernels: Kf (H, spectrum_stride), first L+1 of each row used.
template <typename T>
void kernel_spectra(const FftConvShape& s, const T* K, const T* Krev, const RealFftPlan<T>& plan,
                    AlignedBuf<std::complex<T>>& Kf) {
  const int L = s.len;
  const size_t nf = spectrum_stride<T>(L);
  Kf.resize(size_t(s.channels) * nf);
#pragma omp parallel if (worth_threads(s))
  {
    AlignedBuf<T> k(size_t(2) * L);
#pragma omp for schedule(static)
    for (int h = 0; h < s.channels; ++h) {
      circular_kernel(K + size_t(h) * L, Krev ? Krev + size_t(h) * L : nullptr, L, k.data());
      plan.forward(k.data(), Kf.data() + size_t(h) * nf);
    }
  }
}

// Column h of batch b of a (B, L, H) array into x[0..L), zero padded to 2L.
template <typename T>
void load_column(const T* a, const FftConvShape& s, int b, int h, T* x) {
  const size_t H = s.channels;
  const T* p = a + size_t(b) * s.len * H + h;
  for (int t = 0; t < s.len; ++t) x[t] = p[t * H];
  for (int t = s.len; t < 2 * s.len; ++t) x[t] = T(0);
}

template <typename T>
void store_column(const T* x, const FftConvShape& s, int b, int h, T* a) {
  const size_t H = s.channels;
  T* p = a + size_t(b) * s.len * H + h;
  for (int t = 0; t < s.len; ++t) p[t * H] = x[t];
}

}  // namespace

template <typename T>
void fft_conv_forward(const FftConvShape& s, const T* u, const T* K, const T* Krev, T* y) {
  check(s, "fft_conv_forward");
  const int L = s.len, n = 2 * L, nf = L + 1;
  const auto& plan = detail::real_fft_plan<T>(n);
  AlignedBuf<std::complex<T>> Kf;
  kernel_spectra(s, K, Krev, plan, Kf);
  const T inv_n = T(1) / T(n);
  const long pairs = long(s.batch) * s.channels;
#pragma omp parallel if (worth_threads(s))
  {
    AlignedBuf<T> x(n);
    AlignedBuf<std::complex<T>> X(nf);
#pragma omp for schedule(static)
    for (long bh = 0; bh < pairs; ++bh) {
      const int b = int(bh / s.channels), h = int(bh % s.channels);
      load_column(u, s, b, h, x.data());
      plan.forward(x.data(), X.data());
      const std::complex<T>* kf = Kf.data() + size_t(h) * spectrum_stride<T>(L);
      for (int f = 0; f < nf; ++f) X[f] *= kf[f] * inv_n;
      plan.inverse(X.data(), x.data());
      store_column(x.data(), s, b, h, y);
    }
  }
}

// y = k (*) u circularly over 2L, so
//   du = correlation of dy with k:  DU = DY conj(Kf)
//   dk = correlation of dy with u:  DK = sum_b DY conj(U)
// with dk's lags 0..L-1 the causal taps and 2L-m the anti-causal tap m.
template <typename T>
void fft_conv_backward(const FftConvShape& s, const T* dy, const T* u, const T* K, const T* Krev,
                       T* du, T* dK, T* dKrev) {
  check(s, "fft_conv_backward");
  MK_CHECK(!Krev || dKrev, "fft_conv_backward: a bidirectional convolution needs dKrev");
  const int L = s.len, n = 2 * L, nf = L + 1;
  const auto& plan = detail::real_fft_plan<T>(n);
  AlignedBuf<std::complex<T>> Kf;
  kernel_spectra(s, K, Krev, plan, Kf);
  const T inv_n = T(1) / T(n);
  // One thread per channel: it owns dK[h] and needs no reduction.
#pragma omp parallel if (worth_threads(s))
  {
    AlignedBuf<T> x(n);
    AlignedBuf<std::complex<T>> X(nf), Y(nf), acc(nf);
#pragma omp for schedule(static)
    for (int h = 0; h < s.channels; ++h) {
      const std::complex<T>* kf = Kf.data() + size_t(h) * spectrum_stride<T>(L);
      for (int f = 0; f < nf; ++f) acc[f] = 0;
      for (int b = 0; b < s.batch; ++b) {
        load_column(dy, s, b, h, x.data());
        plan.forward(x.data(), Y.data());
        load_column(u, s, b, h, x.data());
        plan.forward(x.data(), X.data());
        for (int f = 0; f < nf; ++f) {
          acc[f] += Y[f] * std::conj(X[f]);
          X[f] = Y[f] * std::conj(kf[f]) * inv_n;
        }
        plan.inverse(X.data(), x.data());
        store_column(x.data(), s, b, h, du);
      }
      for (int f = 0; f < nf; ++f) acc[f] *= inv_n;
      plan.inverse(acc.data(), x.data());
      T* dk = dK + size_t(h) * L;
      for (int j = 0; j < L; ++j) dk[j] = x[j];
      if (Krev) {
        T* dkr = dKrev + size_t(h) * L;
        dkr[0] = x[0];
        for (int m = 1; m < L; ++m) dkr[m] = x[2 * L - m];
      }
    }
  }
}

template void fft_conv_forward<float>(const FftConvShape&, const float*, const float*, const float*, float*);
template void fft_conv_forward<double>(const FftConvShape&, const double*, const double*, const double*, double*);
template void fft_conv_backward<float>(const FftConvShape&, const float*, const float*, const float*,
                                       const float*, float*, float*, float*);
template void fft_conv_backward<double>(const FftConvShape&, const double*, const double*, const double*,
                                        const double*, double*, double*, double*);

}  // namespace mk::ops
