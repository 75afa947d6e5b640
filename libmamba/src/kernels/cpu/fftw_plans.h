// Private to the CPU kernels: cached FFTW real-FFT plans and 64-byte aligned
// scratch. FFTW's planner is not thread-safe, so plans are created once per
// size under a mutex (ops::fftw_planner_mutex(), shared with any other code
// that plans); executing a plan on new arrays (fftw_execute_dft_r2c/c2r) is
// thread-safe, which lets OpenMP threads share one plan with their own
// buffers. Every buffer handed to a plan must come from AlignedBuf so its
// alignment matches the arrays the plan was made for.
#pragma once
#include <complex>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace mk::ops::detail {

// Owning, 64-byte aligned, uninitialised array (not copyable).
template <typename U>
class AlignedBuf {
 public:
  AlignedBuf() = default;
  explicit AlignedBuf(size_t n) { resize(n); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  AlignedBuf(AlignedBuf&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  ~AlignedBuf() { std::free(p_); }
  void resize(size_t n) {
    if (n <= n_) return;
    std::free(p_);
    const size_t bytes = (n * sizeof(U) + 63) / 64 * 64;
    p_ = static_cast<U*>(std::aligned_alloc(64, bytes));
    if (!p_) throw std::bad_alloc();
    n_ = n;
  }
  U* data() { return p_; }
  U& operator[](size_t i) { return p_[i]; }

 private:
  U* p_ = nullptr;
  size_t n_ = 0;
};

// A pair of unnormalised real FFT plans of size n: forward r2c (n reals ->
// n/2+1 complex, input preserved) and inverse c2r (n/2+1 complex -> n reals,
// input destroyed). R is float (fftw3f) or double (fftw3).
template <typename R>
struct RealFftPlan {
  int n = 0;
  void* fwd = nullptr;
  void* inv = nullptr;
  // X = rfft(x): x (n), X (n/2+1)
  void forward(const R* x, std::complex<R>* X) const;
  // x = n * irfft(X): X (n/2+1) is overwritten, x (n)
  void inverse(std::complex<R>* X, R* x) const;
};

// The cached plan for size n (created on first use, destroyed at exit).
template <typename R>
const RealFftPlan<R>& real_fft_plan(int n);

}  // namespace mk::ops::detail
