// S4 DPLR kernel (Cauchy + Woodbury at the roots of unity, inverse FFT), its
// backward, and the recurrent step (see ops/dplr_kernel.h).
//
// Half representation. The full state is x = [x_half; conj(x_half)] and a
// row vector v = [a; conj(a)], so P^* x = 2 Re(sum conj(P) x_half) and
// v P = 2 Re(sum a P) are real, and every structured product stays in
// half form.
//
// Row step used for Ct = C - C Abar^L (v <- v Abar, Abar = M1^-1 M2,
// M1 = D1 + dt/2 P P^*, D1 = 1 - dt/2 Lambda, M2 = I + dt/2 A; M1^-1 by
// Woodbury with q = 1 / (2/dt + S), S = P^* D1^-1 P):
//   b = a / D1;  t = 2 Re sum b P;  w = b - t q e   (e = conj(P) / D1)
//   s = 2 Re sum w P;  a' = w F - dt/2 s conj(P)    (F = 1 + dt/2 Lambda)
#include "mambakit/ops/dplr_kernel.h"

#include <cmath>
#include <string>
#include <vector>

#include "fftw_plans.h"
#include "mambakit/error.h"

namespace mk::ops {

namespace {

using cd = std::complex<double>;
using detail::AlignedBuf;

void check(const DplrKernelShape& s, const char* where) {
  MK_CHECK(s.channels > 0 && s.half_state > 0 && s.len > 0 && (s.copies == 1 || s.copies == 2),
           std::string(where) + ": bad shape (H=" + std::to_string(s.channels) + ", N/2=" +
               std::to_string(s.half_state) + ", L=" + std::to_string(s.len) + ", copies=" +
               std::to_string(s.copies) + ")");
}

// Small problems run on one thread: waking a team costs more than they do.
bool worth_threads(const DplrKernelShape& s, long len) {
  return long(s.channels) * s.half_state * len * s.copies >= (1L << 14);
}

// One channel's parameters and the constants of its structured step.
struct Channel {
  int N = 0;
  double dt = 0, q = 0, S = 0;
  std::vector<cd> lam, P, B, d1, inv_d1, f, e;

  template <typename T>
  void load(const DplrKernelShape& s, int h, const T* dts, const std::complex<T>* Lambda,
            const std::complex<T>* Ps, const std::complex<T>* Bs) {
    N = s.half_state;
    dt = double(dts[h]);
    lam.resize(N); P.resize(N); B.resize(N); d1.resize(N); inv_d1.resize(N); f.resize(N); e.resize(N);
    S = 0;
    for (int n = 0; n < N; ++n) {
      const size_t i = size_t(h) * N + n;
      lam[n] = cd(Lambda[i]);
      P[n] = cd(Ps[i]);
      B[n] = cd(Bs[i]);
      d1[n] = 1.0 - 0.5 * dt * lam[n];
      inv_d1[n] = 1.0 / d1[n];  // the steps below multiply by it L times
      f[n] = 1.0 + 0.5 * dt * lam[n];
      e[n] = std::conj(P[n]) / d1[n];
      S += 2.0 * (std::norm(P[n]) / d1[n]).real();
    }
    q = 1.0 / (2.0 / dt + S);
  }

  // a' = a Abar (row vector, half form); out may not alias a.
  void row_step(const cd* a, cd* out) const {
    double t = 0;
    for (int n = 0; n < N; ++n) t += 2.0 * (a[n] * inv_d1[n] * P[n]).real();
    double s = 0;
    for (int n = 0; n < N; ++n) {
      out[n] = a[n] * inv_d1[n] - t * q * e[n];  // w
      s += 2.0 * (out[n] * P[n]).real();
    }
    for (int n = 0; n < N; ++n) out[n] = out[n] * f[n] - 0.5 * dt * s * std::conj(P[n]);
  }
};

// Gradient accumulators of one channel.
struct ChannelGrad {
  std::vector<cd> lam, P, B, Ge, Gd1;
  double dt = 0, Gq = 0;
  explicit ChannelGrad(int N) : lam(N, 0.0), P(N, 0.0), B(N, 0.0), Ge(N, 0.0), Gd1(N, 0.0) {}
};

// Reverse of Channel::row_step: ga_out = dLoss/da' -> ga_in = dLoss/da
// (written); parameter parts accumulated into g (the e, D1 and q parts are
// gathered in Ge, Gd1, Gq and chained once per channel by finish_step_grads).
void row_step_backward(const Channel& ch, const cd* a, const cd* ga_out, cd* ga_in,
                       std::vector<cd>& gw, ChannelGrad& g) {
  const int N = ch.N;
  const double dt = ch.dt, q = ch.q;
  double t = 0;
  for (int n = 0; n < N; ++n) t += 2.0 * (a[n] * ch.inv_d1[n] * ch.P[n]).real();
  double s = 0;
  for (int n = 0; n < N; ++n) s += 2.0 * ((a[n] * ch.inv_d1[n] - t * q * ch.e[n]) * ch.P[n]).real();
  // a' = w F - dt/2 s conj(P)
  double gs = 0;
  for (int n = 0; n < N; ++n) {
    const cd w = a[n] * ch.inv_d1[n] - t * q * ch.e[n];
    const cd go = ga_out[n];
    gw[n] = std::conj(ch.f[n]) * go;
    const cd gf = std::conj(w) * go;
    g.lam[n] += 0.5 * dt * gf;
    g.dt += (std::conj(gf) * ch.lam[n]).real() * 0.5;
    gs += (std::conj(go) * std::conj(ch.P[n])).real() * (-0.5 * dt);
    g.P[n] += std::conj(go) * (-0.5 * dt * s);
    g.dt += (std::conj(go) * std::conj(ch.P[n])).real() * (-0.5 * s);
  }
  // s = 2 Re sum w P ; w = b - t q e
  double gtq = 0;
  for (int n = 0; n < N; ++n) {
    const cd w = a[n] * ch.inv_d1[n] - t * q * ch.e[n];
    gw[n] += 2.0 * gs * std::conj(ch.P[n]);
    g.P[n] += 2.0 * gs * std::conj(w);
    gtq -= (std::conj(gw[n]) * ch.e[n]).real();
    g.Ge[n] -= t * q * gw[n];
  }
  const double gt = gtq * q;
  g.Gq += gtq * t;
  // t = 2 Re sum b P ; b = a / D1
  for (int n = 0; n < N; ++n) {
    const cd b = a[n] * ch.inv_d1[n];
    const cd gb = gw[n] + 2.0 * gt * std::conj(ch.P[n]);
    g.P[n] += 2.0 * gt * std::conj(b);
    ga_in[n] = std::conj(ch.inv_d1[n]) * gb;
    g.Gd1[n] += std::conj(-b * ch.inv_d1[n]) * gb;
  }
}

// Chains the gradients of the step constants q, S, e, D1 to Lambda, P, dt.
void finish_step_grads(const Channel& ch, ChannelGrad& g) {
  const double dt = ch.dt, q = ch.q;
  g.dt += g.Gq * q * q * 2.0 / (dt * dt);  // q = 1/(2/dt + S)
  const double gS = -g.Gq * q * q;
  for (int n = 0; n < ch.N; ++n) {
    const cd inv = 1.0 / ch.d1[n];
    g.P[n] += gS * 4.0 * inv.real() * ch.P[n];                  // S = sum 2|P|^2 Re(1/D1)
    g.Gd1[n] += gS * 2.0 * std::conj(-std::norm(ch.P[n]) * inv * inv);
    g.P[n] += std::conj(g.Ge[n]) * inv;                          // e = conj(P) / D1
    g.Gd1[n] += std::conj(-inv * inv) * ch.P[n] * g.Ge[n];
    g.lam[n] += -0.5 * dt * g.Gd1[n];                            // D1 = 1 - dt/2 Lambda
    g.dt += (std::conj(g.Gd1[n]) * ch.lam[n]).real() * -0.5;
  }
}

// The roots of unity of the rfft bins and the Cauchy denominators there.
struct Frequency {
  cd w, alpha, c;
  Frequency(int k, int L, double dt) {
    w = std::polar(1.0, -2.0 * M_PI * double(k) / double(L));
    alpha = 2.0 / dt * (1.0 - w);
    c = 1.0 + w;
  }
};

// C_c Abar^j for j = 0..L (rows of a, (L+1, N)).
void powers_of_abar(const Channel& ch, const cd* C, int L, std::vector<cd>& a) {
  const int N = ch.N;
  a.resize(size_t(L + 1) * N);
  for (int n = 0; n < N; ++n) a[n] = C[n];
  for (int j = 0; j < L; ++j) ch.row_step(&a[size_t(j) * N], &a[size_t(j + 1) * N]);
}

template <typename T>
std::vector<cd> channel_C(const DplrKernelShape& s, const std::complex<T>* C, int c, int h) {
  const int N = s.half_state;
  std::vector<cd> out(N);
  for (int n = 0; n < N; ++n) out[n] = cd(C[(size_t(c) * s.channels + h) * N + n]);
  return out;
}

}  // namespace

template <typename T>
void dplr_kernel_forward(const DplrKernelShape& s, const T* dt, const std::complex<T>* Lambda,
                         const std::complex<T>* P, const std::complex<T>* B,
                         const std::complex<T>* C, T* K) {
  check(s, "dplr_kernel_forward");
  const int H = s.channels, N = s.half_state, L = s.len, nf = L / 2 + 1, nc = s.copies;
  const auto& plan = detail::real_fft_plan<double>(L);
#pragma omp parallel if (worth_threads(s, L))
  {
    Channel ch;
    std::vector<cd> a, r(N), rc(N);
    std::vector<std::vector<cd>> Ct(nc);
    AlignedBuf<cd> Kf(nf);
    AlignedBuf<double> k(L);
#pragma omp for schedule(static)
    for (int h = 0; h < H; ++h) {
      ch.load(s, h, dt, Lambda, P, B);
      for (int c = 0; c < nc; ++c) {
        Ct[c] = channel_C(s, C, c, h);
        powers_of_abar(ch, Ct[c].data(), L, a);
        for (int n = 0; n < N; ++n) Ct[c][n] -= a[size_t(L) * N + n];
      }
      std::vector<std::vector<cd>> spec(nc, std::vector<cd>(nf));
      for (int kf = 0; kf < nf; ++kf) {
        const Frequency fr(kf, L, ch.dt);
        cd k10 = 0, k11 = 0;
        for (int n = 0; n < N; ++n) {
          r[n] = 1.0 / (fr.alpha - fr.c * ch.lam[n]);
          rc[n] = 1.0 / (fr.alpha - fr.c * std::conj(ch.lam[n]));
          const cd u10 = std::conj(ch.P[n]) * ch.B[n];
          k10 += u10 * r[n] + std::conj(u10) * rc[n];
          k11 += std::norm(ch.P[n]) * (r[n] + rc[n]);
        }
        for (int c = 0; c < nc; ++c) {
          cd k00 = 0, k01 = 0;
          for (int n = 0; n < N; ++n) {
            const cd u00 = Ct[c][n] * ch.B[n], u01 = Ct[c][n] * ch.P[n];
            k00 += u00 * r[n] + std::conj(u00) * rc[n];
            k01 += u01 * r[n] + std::conj(u01) * rc[n];
          }
          spec[c][kf] = 2.0 * (k00 - fr.c * k01 * k10 / (1.0 + fr.c * k11));
        }
      }
      for (int c = 0; c < nc; ++c) {
        for (int kf = 0; kf < nf; ++kf) Kf[kf] = spec[c][kf];
        plan.inverse(Kf.data(), k.data());
        T* out = K + (size_t(c) * H + h) * L;
        for (int l = 0; l < L; ++l) out[l] = T(k[l] / L);
      }
    }
  }
}

// Backward. With G = dLoss/dKhat (real-pair form) = m_k/L rfft(dK) (m_k = 2
// except for the bins FFTW's c2r uses once), the Woodbury step is
// holomorphic in the k's; each Cauchy sum sum u r + conj(u) r' (r' the
// conjugate-pole denominator) gives du = conj(r) G + r' conj(G) and, through
// r = 1/(alpha - c Lambda), dLambda = E conj(c r^2) + conj(E') c r'^2 with
// E = sum conj(u) G, E' = sum u G.
template <typename T>
void dplr_kernel_backward(const DplrKernelShape& s, const T* dt, const std::complex<T>* Lambda,
                          const std::complex<T>* P, const std::complex<T>* B,
                          const std::complex<T>* C, const T* dK, T* ddt,
                          std::complex<T>* dLambda, std::complex<T>* dP, std::complex<T>* dB,
                          std::complex<T>* dC) {
  check(s, "dplr_kernel_backward");
  const int H = s.channels, N = s.half_state, L = s.len, nf = L / 2 + 1, nc = s.copies;
  const auto& plan = detail::real_fft_plan<double>(L);
#pragma omp parallel if (worth_threads(s, L))
  {
    Channel ch;
    std::vector<cd> a, r(N), rc(N), ga(N), ga2(N), gw(N);
    AlignedBuf<cd> Gf(nf);
    AlignedBuf<double> x(L);
#pragma omp for schedule(static)
    for (int h = 0; h < H; ++h) {
      ch.load(s, h, dt, Lambda, P, B);
      ChannelGrad g(N);
      std::vector<std::vector<cd>> Ct(nc), G(nc, std::vector<cd>(nf)), gu00(nc, std::vector<cd>(N, 0.0)),
          gu01(nc, std::vector<cd>(N, 0.0));
      std::vector<cd> gu10(N, 0.0), gu11(N, 0.0);
      for (int c = 0; c < nc; ++c) {
        Ct[c] = channel_C(s, C, c, h);
        powers_of_abar(ch, Ct[c].data(), L, a);
        for (int n = 0; n < N; ++n) Ct[c][n] -= a[size_t(L) * N + n];
        const T* dk = dK + (size_t(c) * H + h) * L;
        for (int l = 0; l < L; ++l) x[l] = double(dk[l]);
        plan.forward(x.data(), Gf.data());
        for (int kf = 0; kf < nf; ++kf) {
          const bool once = kf == 0 || (L % 2 == 0 && kf == L / 2);
          G[c][kf] = Gf[kf] * ((once ? 1.0 : 2.0) / L);
        }
      }
      std::vector<cd> k00(nc), k01(nc), G00(nc), G01(nc);
      for (int kf = 0; kf < nf; ++kf) {
        const Frequency fr(kf, L, ch.dt);
        const cd kap = 2.0 / (ch.dt * ch.dt) * (1.0 - fr.w);  // d alpha / d dt = -kap
        cd k10 = 0, k11 = 0;
        for (int n = 0; n < N; ++n) {
          r[n] = 1.0 / (fr.alpha - fr.c * ch.lam[n]);
          rc[n] = 1.0 / (fr.alpha - fr.c * std::conj(ch.lam[n]));
          const cd u10 = std::conj(ch.P[n]) * ch.B[n];
          k10 += u10 * r[n] + std::conj(u10) * rc[n];
          k11 += std::norm(ch.P[n]) * (r[n] + rc[n]);
        }
        const cd den = 1.0 + fr.c * k11;
        cd G10 = 0, G11 = 0;
        for (int c = 0; c < nc; ++c) {
          k00[c] = k01[c] = 0;
          for (int n = 0; n < N; ++n) {
            const cd u00 = Ct[c][n] * ch.B[n], u01 = Ct[c][n] * ch.P[n];
            k00[c] += u00 * r[n] + std::conj(u00) * rc[n];
            k01[c] += u01 * r[n] + std::conj(u01) * rc[n];
          }
          const cd Gc = G[c][kf];
          G00[c] = 2.0 * Gc;
          G01[c] = std::conj(-2.0 * fr.c * k10 / den) * Gc;
          G10 += std::conj(-2.0 * fr.c * k01[c] / den) * Gc;
          G11 += std::conj(2.0 * fr.c * fr.c * k01[c] * k10 / (den * den)) * Gc;
        }
        for (int n = 0; n < N; ++n) {
          const cd u10 = std::conj(ch.P[n]) * ch.B[n];
          const double u11 = std::norm(ch.P[n]);
          cd E = std::conj(u10) * G10 + u11 * G11;
          cd Ep = u10 * G10 + u11 * G11;
          gu10[n] += std::conj(r[n]) * G10 + rc[n] * std::conj(G10);
          gu11[n] += std::conj(r[n]) * G11 + rc[n] * std::conj(G11);
          for (int c = 0; c < nc; ++c) {
            const cd u00 = Ct[c][n] * ch.B[n], u01 = Ct[c][n] * ch.P[n];
            E += std::conj(u00) * G00[c] + std::conj(u01) * G01[c];
            Ep += u00 * G00[c] + u01 * G01[c];
            gu00[c][n] += std::conj(r[n]) * G00[c] + rc[n] * std::conj(G00[c]);
            gu01[c][n] += std::conj(r[n]) * G01[c] + rc[n] * std::conj(G01[c]);
          }
          const cd r2 = r[n] * r[n], rc2 = rc[n] * rc[n];
          g.lam[n] += E * std::conj(fr.c * r2) + std::conj(Ep) * fr.c * rc2;
          g.dt += (std::conj(E) * r2 * kap).real() + (std::conj(Ep) * rc2 * kap).real();
        }
      }
      // u10 = conj(P) B, u11 = |P|^2
      for (int n = 0; n < N; ++n) {
        g.B[n] += ch.P[n] * gu10[n];
        g.P[n] += std::conj(gu10[n]) * ch.B[n] + 2.0 * gu11[n].real() * ch.P[n];
      }
      for (int c = 0; c < nc; ++c) {
        // u00 = Ct B, u01 = Ct P; Ct = C - C Abar^L
        for (int n = 0; n < N; ++n) {
          g.B[n] += std::conj(Ct[c][n]) * gu00[c][n];
          g.P[n] += std::conj(Ct[c][n]) * gu01[c][n];
          ga[n] = -(std::conj(ch.B[n]) * gu00[c][n] + std::conj(ch.P[n]) * gu01[c][n]);
        }
        std::complex<T>* gc = dC + (size_t(c) * H + h) * N;
        for (int n = 0; n < N; ++n) gc[n] = std::complex<T>(-ga[n]);
        const std::vector<cd> Cc = channel_C(s, C, c, h);
        powers_of_abar(ch, Cc.data(), L, a);
        for (int j = L - 1; j >= 0; --j) {
          row_step_backward(ch, &a[size_t(j) * N], ga.data(), ga2.data(), gw, g);
          std::swap(ga, ga2);
        }
        for (int n = 0; n < N; ++n) gc[n] += std::complex<T>(ga[n]);
      }
      finish_step_grads(ch, g);
      for (int n = 0; n < N; ++n) {
        const size_t i = size_t(h) * N + n;
        dLambda[i] = std::complex<T>(g.lam[n]);
        dP[i] = std::complex<T>(g.P[n]);
        dB[i] = std::complex<T>(g.B[n]);
      }
      ddt[h] = T(g.dt);
    }
  }
}

// Column step: y = M2 x + dt B u = F x - dt/2 P s + dt B u (s = 2 Re sum conj(P) x),
// x' = M1^-1 y = y / D1 - (P / D1) q t,  t = 2 Re sum conj(P) y / D1.
template <typename T>
void dplr_step(const DplrKernelShape& s, int batch, const T* dt, const std::complex<T>* Lambda,
               const std::complex<T>* P, const std::complex<T>* B, const std::complex<T>* C,
               const T* u, std::complex<T>* state, T* y) {
  check(s, "dplr_step");
  MK_CHECK(s.copies == 1, "dplr_step: a bidirectional S4 has no recurrent form");
  const int H = s.channels, N = s.half_state;
#pragma omp parallel if (worth_threads(s, batch))
  {
    Channel ch;
    std::vector<cd> v(N);
#pragma omp for schedule(static)
    for (int h = 0; h < H; ++h) {
      ch.load(s, h, dt, Lambda, P, B);
      for (int b = 0; b < batch; ++b) {
        const size_t bh = size_t(b) * H + h;
        std::complex<T>* x = state + bh * N;
        const double ut = double(u[bh]);
        double sx = 0;
        for (int n = 0; n < N; ++n) sx += 2.0 * (std::conj(ch.P[n]) * cd(x[n])).real();
        double t = 0;
        for (int n = 0; n < N; ++n) {
          v[n] = ch.f[n] * cd(x[n]) - 0.5 * ch.dt * sx * ch.P[n] + ch.dt * ut * ch.B[n];
          t += 2.0 * (std::conj(ch.P[n]) * v[n] / ch.d1[n]).real();
        }
        double out = 0;
        for (int n = 0; n < N; ++n) {
          const cd xn = (v[n] - ch.P[n] * ch.q * t) / ch.d1[n];
          x[n] = std::complex<T>(xn);
          out += 2.0 * (cd(C[size_t(h) * N + n]) * xn).real();
        }
        y[bh] = T(out);
      }
    }
  }
}

#define MK_DPLR(T)                                                                                  \
  template void dplr_kernel_forward<T>(const DplrKernelShape&, const T*, const std::complex<T>*,   \
                                       const std::complex<T>*, const std::complex<T>*,              \
                                       const std::complex<T>*, T*);                                 \
  template void dplr_kernel_backward<T>(const DplrKernelShape&, const T*, const std::complex<T>*,  \
                                        const std::complex<T>*, const std::complex<T>*,             \
                                        const std::complex<T>*, const T*, T*, std::complex<T>*,     \
                                        std::complex<T>*, std::complex<T>*, std::complex<T>*);      \
  template void dplr_step<T>(const DplrKernelShape&, int, const T*, const std::complex<T>*,        \
                             const std::complex<T>*, const std::complex<T>*,                        \
                             const std::complex<T>*, const T*, std::complex<T>*, T*);
MK_DPLR(float)
MK_DPLR(double)
#undef MK_DPLR

}  // namespace mk::ops
