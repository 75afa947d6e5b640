#include "fftw_plans.h"

#include <fftw3.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "mambakit/error.h"
#include "mambakit/ops/fft_conv.h"

namespace mk::ops {

std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

namespace detail {
namespace {

// Type-specific FFTW entry points (fftw3 for double, fftw3f for float).
template <typename R> struct Api;
template <> struct Api<double> {
  static void* plan_r2c(int n, double* in, std::complex<double>* out) {
    return fftw_plan_dft_r2c_1d(n, in, reinterpret_cast<fftw_complex*>(out), FFTW_ESTIMATE);
  }
  static void* plan_c2r(int n, std::complex<double>* in, double* out) {
    return fftw_plan_dft_c2r_1d(n, reinterpret_cast<fftw_complex*>(in), out, FFTW_ESTIMATE);
  }
  static void r2c(void* p, const double* in, std::complex<double>* out) {
    fftw_execute_dft_r2c(static_cast<fftw_plan>(p), const_cast<double*>(in),
                         reinterpret_cast<fftw_complex*>(out));
  }
  static void c2r(void* p, std::complex<double>* in, double* out) {
    fftw_execute_dft_c2r(static_cast<fftw_plan>(p), reinterpret_cast<fftw_complex*>(in), out);
  }
  static void destroy(void* p) { fftw_destroy_plan(static_cast<fftw_plan>(p)); }
  static void cleanup() { fftw_cleanup(); }
};
template <> struct Api<float> {
  static void* plan_r2c(int n, float* in, std::complex<float>* out) {
    return fftwf_plan_dft_r2c_1d(n, in, reinterpret_cast<fftwf_complex*>(out), FFTW_ESTIMATE);
  }
  static void* plan_c2r(int n, std::complex<float>* in, float* out) {
    return fftwf_plan_dft_c2r_1d(n, reinterpret_cast<fftwf_complex*>(in), out, FFTW_ESTIMATE);
  }
  static void r2c(void* p, const float* in, std::complex<float>* out) {
    fftwf_execute_dft_r2c(static_cast<fftwf_plan>(p), const_cast<float*>(in),
                          reinterpret_cast<fftwf_complex*>(out));
  }
  static void c2r(void* p, std::complex<float>* in, float* out) {
    fftwf_execute_dft_c2r(static_cast<fftwf_plan>(p), reinterpret_cast<fftwf_complex*>(in), out);
  }
  static void destroy(void* p) { fftwf_destroy_plan(static_cast<fftwf_plan>(p)); }
  static void cleanup() { fftwf_cleanup(); }
};

// The process-wide plans of one precision, keyed by size. std::map never moves
// its nodes, so references handed out stay valid until exit. At exit the
// destructor destroys every plan and then lets FFTW free its planner state
// (twiddle tables, wisdom): without it each plan's memory is still held when
// the process ends, which LeakSanitizer reports as leaks.
template <typename R>
struct PlanCache {
  std::map<int, RealFftPlan<R>> plans;
  PlanCache() = default;
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;
  ~PlanCache() {
    for (auto& [n, p] : plans) {
      Api<R>::destroy(p.fwd);
      Api<R>::destroy(p.inv);
    }
    Api<R>::cleanup();
  }
};

}  // namespace

template <typename R>
void RealFftPlan<R>::forward(const R* x, std::complex<R>* X) const { Api<R>::r2c(fwd, x, X); }

template <typename R>
void RealFftPlan<R>::inverse(std::complex<R>* X, R* x) const { Api<R>::c2r(inv, X, x); }

template <typename R>
const RealFftPlan<R>& real_fft_plan(int n) {
  MK_CHECK(n > 0, "real_fft_plan: FFT size must be positive, got " + std::to_string(n));
  // The mutex is created before the cache so that it outlives it (function
  // statics are destroyed in reverse order of construction).
  std::mutex& planner = fftw_planner_mutex();
  static PlanCache<R> cache;
  std::lock_guard<std::mutex> lock(planner);
  auto it = cache.plans.find(n);
  if (it != cache.plans.end()) return it->second;
  // Plan on AlignedBuf arrays: every later execution uses AlignedBuf too, so
  // the alignment FFTW may have specialised for always holds.
  AlignedBuf<R> x{size_t(n)};
  AlignedBuf<std::complex<R>> X(size_t(n / 2 + 1));
  RealFftPlan<R> p;
  p.n = n;
  p.fwd = Api<R>::plan_r2c(n, x.data(), X.data());
  p.inv = Api<R>::plan_c2r(n, X.data(), x.data());
  if (!p.fwd || !p.inv) {
    if (p.fwd) Api<R>::destroy(p.fwd);
    if (p.inv) Api<R>::destroy(p.inv);
    throw Error("real_fft_plan: FFTW could not plan a real FFT of size " + std::to_string(n));
  }
  return cache.plans.emplace(n, p).first->second;
}

template struct RealFftPlan<float>;
template struct RealFftPlan<double>;
template const RealFftPlan<float>& real_fft_plan<float>(int);
template const RealFftPlan<double>& real_fft_plan<double>(int);

}  // namespace detail
}  // namespace mk::ops
