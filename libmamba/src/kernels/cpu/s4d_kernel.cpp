// S4D Vandermonde kernel, its backward, and the recurrent step
// (see ops/s4d_kernel.h).
#include "mambakit/ops/s4d_kernel.h"

#include <string>
#include <vector>

#include "mambakit/error.h"

namespace mk::ops {

namespace {

using cd = std::complex<double>;

void check(const S4DKernelShape& s, const char* where) {
  MK_CHECK(s.channels > 0 && s.half_state > 0 && s.len > 0 && (s.copies == 1 || s.copies == 2),
           std::string(where) + ": bad shape (H=" + std::to_string(s.channels) + ", N/2=" +
               std::to_string(s.half_state) + ", L=" + std::to_string(s.len) + ", copies=" +
               std::to_string(s.copies) + ")");
}

// Split real/imaginary arrays so the inner loops over n vectorise.
struct Split {
  std::vector<double> re, im;
  explicit Split(int n) : re(n), im(n) {}
  void set(int i, cd v) { re[i] = v.real(); im[i] = v.imag(); }
  cd get(int i) const { return {re[i], im[i]}; }
};

// w <- w * z elementwise
inline void cmul_inplace(Split& w, const Split& z, int n) {
  for (int i = 0; i < n; ++i) {
    const double r = w.re[i] * z.re[i] - w.im[i] * z.im[i];
    const double m = w.re[i] * z.im[i] + w.im[i] * z.re[i];
    w.re[i] = r;
    w.im[i] = m;
  }
}

// Small problems run on one thread: waking a team costs more than they do.
bool worth_threads(const S4DKernelShape& s) {
  return long(s.channels) * s.half_state * s.len * s.copies >= (1L << 15);
}

}  // namespace

template <typename T>
void s4d_kernel_forward(const S4DKernelShape& s, const T* dt, const std::complex<T>* A,
                        const std::complex<T>* C, T* K) {
  check(s, "s4d_kernel_forward");
  const int H = s.channels, N = s.half_state, L = s.len;
#pragma omp parallel if (worth_threads(s))
  {
    Split z(N), w(N);
    std::vector<Split> cb(s.copies, Split(N));
#pragma omp for schedule(static)
    for (int h = 0; h < H; ++h) {
      for (int n = 0; n < N; ++n) {
        const cd a(A[size_t(h) * N + n]);
        const cd zn = std::exp(double(dt[h]) * a);
        z.set(n, zn);
        w.set(n, 1.0);
        for (int c = 0; c < s.copies; ++c)
          cb[c].set(n, cd(C[(size_t(c) * H + h) * N + n]) * (zn - 1.0) / a);
      }
      for (int l = 0; l < L; ++l) {
        for (int c = 0; c < s.copies; ++c) {
          double acc = 0;
          for (int n = 0; n < N; ++n) acc += cb[c].re[n] * w.re[n] - cb[c].im[n] * w.im[n];
          K[(size_t(c) * H + h) * L + l] = T(2 * acc);
        }
        cmul_inplace(w, z, N);
      }
    }
  }
}

// Loss = sum_l g[l] K[l] = 2 Re F, F = sum_n C_n (z_n-1)/A_n Q(z_n) with
// Q(z) = sum_l g[l] z^l and R(z) = z Q'(z) = sum_l l g[l] z^l. F is
// holomorphic in C, A, z, so the real-pair gradient of X is 2 conj(dF/dX):
//   dF/dC  = (z-1)/A Q
//   z dF/dz = C/A (Q z + (z-1) R)              =: M
//   dF/dA  = dt M - C (z-1) Q / A^2           (z = exp(dt A): dz/dA = dt z)
//   dF/ddt = A M                               (dz/ddt = A z)
template <typename T>
void s4d_kernel_backward(const S4DKernelShape& s, const T* dt, const std::complex<T>* A,
                         const std::complex<T>* C, const T* dK, T* ddt, std::complex<T>* dA,
                         std::complex<T>* dC) {
  check(s, "s4d_kernel_backward");
  const int H = s.channels, N = s.half_state, L = s.len;
#pragma omp parallel if (worth_threads(s))
  {
    Split z(N), w(N), Q(N), R(N);
#pragma omp for schedule(static)
    for (int h = 0; h < H; ++h) {
      const double dth = double(dt[h]);
      std::vector<cd> dAh(N, 0.0);
      double ddth = 0;
      for (int n = 0; n < N; ++n) z.set(n, std::exp(dth * cd(A[size_t(h) * N + n])));
      for (int c = 0; c < s.copies; ++c) {
        const T* g = dK + (size_t(c) * H + h) * L;
        for (int n = 0; n < N; ++n) { w.set(n, 1.0); Q.set(n, 0.0); R.set(n, 0.0); }
        for (int l = 0; l < L; ++l) {
          const double gl = double(g[l]), lgl = double(l) * gl;
          for (int n = 0; n < N; ++n) {
            Q.re[n] += gl * w.re[n];
            Q.im[n] += gl * w.im[n];
            R.re[n] += lgl * w.re[n];
            R.im[n] += lgl * w.im[n];
          }
          cmul_inplace(w, z, N);
        }
        for (int n = 0; n < N; ++n) {
          const cd a(A[size_t(h) * N + n]), zn = z.get(n), q = Q.get(n), r = R.get(n);
          const cd cn(C[(size_t(c) * H + h) * N + n]);
          const cd zm1 = zn - 1.0;
          const cd M = cn / a * (q * zn + zm1 * r);
          dC[(size_t(c) * H + h) * N + n] = std::complex<T>(2.0 * std::conj(zm1 / a * q));
          dAh[n] += 2.0 * std::conj(dth * M - cn * zm1 * q / (a * a));
          ddth += 2.0 * (a * M).real();
        }
      }
      for (int n = 0; n < N; ++n) dA[size_t(h) * N + n] = std::complex<T>(dAh[n]);
      ddt[h] = T(ddth);
    }
  }
}

template <typename T>
void s4d_step(const S4DKernelShape& s, int batch, const T* dt, const std::complex<T>* A,
              const std::complex<T>* C, const T* u, std::complex<T>* state, T* y) {
  check(s, "s4d_step");
  MK_CHECK(s.copies == 1, "s4d_step: a bidirectional S4D has no recurrent form");
  const int H = s.channels, N = s.half_state;
#pragma omp parallel for schedule(static) if (long(batch) * H * N >= (1L << 15))
  for (long bh = 0; bh < long(batch) * H; ++bh) {
    const int h = int(bh % H);
    const double dth = double(dt[h]);
    const double ut = double(u[bh]);
    std::complex<T>* st = state + size_t(bh) * N;
    double acc = 0;
    for (int n = 0; n < N; ++n) {
      const cd a(A[size_t(h) * N + n]);
      const cd zn = std::exp(dth * a);
      const cd x = zn * cd(st[n]) + (zn - 1.0) / a * ut;
      st[n] = std::complex<T>(x);
      acc += (cd(C[size_t(h) * N + n]) * x).real();
    }
    y[bh] = T(2 * acc);
  }
}

#define MK_S4D(T)                                                                                   \
  template void s4d_kernel_forward<T>(const S4DKernelShape&, const T*, const std::complex<T>*,     \
                                      const std::complex<T>*, T*);                                  \
  template void s4d_kernel_backward<T>(const S4DKernelShape&, const T*, const std::complex<T>*,    \
                                       const std::complex<T>*, const T*, T*, std::complex<T>*,      \
                                       std::complex<T>*);                                           \
  template void s4d_step<T>(const S4DKernelShape&, int, const T*, const std::complex<T>*,          \
                            const std::complex<T>*, const T*, std::complex<T>*, T*);
MK_S4D(float)
MK_S4D(double)
#undef MK_S4D

}  // namespace mk::ops
