// S4 DPLR kernel, its backward and the recurrent step on CUDA (see
// ops/cuda/ssm_conv.h; CPU reference kernels/cpu/dplr_kernel.cpp, whose
// half-representation formulas and names this file follows). Everything in
// double, as on the CPU.
//
// Forward
//   powers:  one warp per (copy, h), lanes over n: a <- a Abar, L times
//            from a = C (the structured row step), Ct = C - C Abar^L; the
//            backward also saves a at j = 0, S, 2S, ... (S ~ sqrt(L)).
//   cauchy:  one thread per (h, frequency): the Cauchy sums over n, the
//            Woodbury form -> spectrum (copies, H, L/2+1); the imaginary
//            parts of the DC and Nyquist bins are zeroed (FFTW's c2r, the
//            CPU op, never reads them; both are real in exact arithmetic).
//   Z2D of length L batched over copies*H, K = k / L in float.
// Backward
//   G = rfft(dK) (D2Z) scaled by m_k / L as the CPU op.
//   freq:    one block per h; per tile of 256 frequencies the threads first
//            form the Woodbury adjoints G00, G01, G10, G11 (sums over n) in
//            shared memory, then thread slots (n, part of the tile)
//            accumulate the Cauchy-sum gradients, kept per slot across
//            tiles and added in slot order at the end; dB is final here.
//   chain:   one warp per h: the reverse of the L row steps per copy
//            (C Abar^j recomputed segment by segment from the checkpoints
//            into a scratch row buffer), then the step constants' chain
//            (finish_step_grads) and the outputs.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common.cuh"
#include "cufft_plans.cuh"
#include "mambakit/ops/cuda/ssm_conv.h"
#include "ssm_complex.cuh"

namespace mk::ops::cuda {

using namespace mk::cuda::detail;
using mk::cuda::DeviceBuffer;

namespace {

constexpr int kWarp = 32;
constexpr int kFreqThreads = 256;  // threads of the backward frequency kernel, = its tile
constexpr int kThreads = 256;

void check(const DplrKernelShape& s, const char* where) {
  MK_CHECK(s.channels > 0 && s.half_state > 0 && s.len > 0 && (s.copies == 1 || s.copies == 2),
           std::string(where) + ": bad shape (H=" + std::to_string(s.channels) + ", N/2=" +
               std::to_string(s.half_state) + ", L=" + std::to_string(s.len) + ", copies=" +
               std::to_string(s.copies) + ")");
  MK_CHECK(s.half_state <= kDplrMaxHalfState,
           std::string(where) + ": N/2=" + std::to_string(s.half_state) + " above the CUDA limit " +
               std::to_string(kDplrMaxHalfState));
  require_device(where);
}

// One channel's step constants in shared memory (N each), lanes over n.
struct Chan {
  cdbl *lam, *P, *inv_d1, *f, *e;
  double dt, q;
};

__device__ __forceinline__ Chan carve_channel(cdbl*& p, int N) {
  Chan ch;
  ch.lam = p; p += N;
  ch.P = p; p += N;
  ch.inv_d1 = p; p += N;
  ch.f = p; p += N;
  ch.e = p; p += N;
  return ch;
}

// Channel::load of the CPU op; every lane ends with the same q.
__device__ void load_channel(Chan& ch, int h, int N, const float* dts, const float* Lambda,
                             const float* Ps, int lane) {
  ch.dt = double(dts[h]);
  double S = 0;
  for (int n = lane; n < N; n += kWarp) {
    const size_t i = size_t(h) * N + n;
    const cdbl lam = ldd(Lambda, i), p = ldd(Ps, i);
    const cdbl d1 = 1.0 - 0.5 * ch.dt * lam;
    ch.lam[n] = lam;
    ch.P[n] = p;
    ch.inv_d1[n] = 1.0 / d1;
    ch.f[n] = 1.0 + 0.5 * ch.dt * lam;
    ch.e[n] = conj(p) / d1;
    S += 2.0 * (norm2(p) / d1).re;
  }
  S = warp_sum(S);
  ch.q = 1.0 / (2.0 / ch.dt + S);
}

// out = a Abar (row vector, half form), Channel::row_step; out != a.
__device__ void row_step(const Chan& ch, int N, int lane, const cdbl* a, cdbl* out) {
  double t = 0;
  for (int n = lane; n < N; n += kWarp) t += 2.0 * (a[n] * ch.inv_d1[n] * ch.P[n]).re;
  t = warp_sum(t);
  double s = 0;
  for (int n = lane; n < N; n += kWarp) {
    const cdbl w = a[n] * ch.inv_d1[n] - t * ch.q * ch.e[n];
    out[n] = w;
    s += 2.0 * (w * ch.P[n]).re;
  }
  s = warp_sum(s);
  for (int n = lane; n < N; n += kWarp) out[n] = out[n] * ch.f[n] - 0.5 * ch.dt * s * conj(ch.P[n]);
}

// The roots of unity of the rfft bins and the Cauchy denominators there.
struct Freq {
  cdbl w, alpha, c;
};
__device__ __forceinline__ Freq freq_at(int k, int L, double dt) {
  constexpr double kPi = 3.141592653589793238;
  double sn, cs;
  sincos(-2.0 * kPi * double(k) / double(L), &sn, &cs);
  Freq fr;
  fr.w = cdbl{cs, sn};
  fr.alpha = 2.0 / dt * (1.0 - fr.w);
  fr.c = 1.0 + fr.w;
  return fr;
}

// --- Powers of Abar ----------------------------------------------------------

// Block (one warp) per (c, h): Ct = C - C Abar^L; ckpt (copies, H, nseg, N)
// gets C Abar^(m S) when given.
__global__ void __launch_bounds__(kWarp)
    dplr_powers_kernel(int H, int N, int L, int S, int nseg, const float* dts,
                       const float* Lambda, const float* Ps, const float* C, cdbl* Ct,
                       cdbl* ckpt) {
  extern __shared__ double smem_d[];
  cdbl* p = reinterpret_cast<cdbl*>(smem_d);
  Chan ch = carve_channel(p, N);
  cdbl* a = p;
  cdbl* b = p + N;
  const int c = blockIdx.x / H, h = blockIdx.x % H, lane = threadIdx.x;
  load_channel(ch, h, N, dts, Lambda, Ps, lane);
  const size_t row = (size_t(c) * H + h) * N;
  for (int n = lane; n < N; n += kWarp) a[n] = ldd(C, row + n);
  for (int j = 0; j < L; ++j) {
    if (ckpt && j % S == 0) {
      cdbl* out = ckpt + ((size_t(c) * H + h) * nseg + j / S) * N;
      for (int n = lane; n < N; n += kWarp) out[n] = a[n];
    }
    row_step(ch, N, lane, a, b);
    cdbl* t = a;
    a = b;
    b = t;
  }
  for (int n = lane; n < N; n += kWarp) Ct[row + n] = ldd(C, row + n) - a[n];
}

// --- Forward: Cauchy sums and Woodbury at the roots of unity ----------------

template <int kCopies>
__global__ void dplr_cauchy_fwd_kernel(int H, int N, int L, int nf, const float* dts,
                                       const float* Lambda, const float* Ps, const float* Bs,
                                       const cdbl* Ct, cdbl* spec) {
  const size_t total = size_t(H) * nf;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const int h = int(i / nf), kf = int(i % nf);
    const Freq fr = freq_at(kf, L, double(dts[h]));
    cdbl k10 = cx(0.0), k11 = cx(0.0), k00[kCopies], k01[kCopies];
#pragma unroll
    for (int c = 0; c < kCopies; ++c) k00[c] = k01[c] = cx(0.0);
    for (int n = 0; n < N; ++n) {
      const size_t j = size_t(h) * N + n;
      const cdbl lam = ldd(Lambda, j), P = ldd(Ps, j), B = ldd(Bs, j);
      const cdbl r = 1.0 / (fr.alpha - fr.c * lam);
      const cdbl rc = 1.0 / (fr.alpha - fr.c * conj(lam));
      const cdbl u10 = conj(P) * B;
      k10 += u10 * r + conj(u10) * rc;
      k11 += norm2(P) * (r + rc);
#pragma unroll
      for (int c = 0; c < kCopies; ++c) {
        const cdbl ct = Ct[(size_t(c) * H + h) * N + n];
        const cdbl u00 = ct * B, u01 = ct * P;
        k00[c] += u00 * r + conj(u00) * rc;
        k01[c] += u01 * r + conj(u01) * rc;
      }
    }
    const bool real_bin = kf == 0 || (L % 2 == 0 && kf == L / 2);
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      cdbl v = 2.0 * (k00[c] - fr.c * k01[c] * k10 / (1.0 + fr.c * k11));
      if (real_bin) v.im = 0.0;
      spec[(size_t(c) * H + h) * nf + kf] = v;
    }
  }
}

__global__ void scale_to_float_kernel(const double* x, float* y, size_t n, int L) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    y[i] = float(x[i] / L);
}

__global__ void to_double_kernel(const float* x, double* y, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    y[i] = double(x[i]);
}

// --- Backward: frequency part ------------------------------------------------

// Slots (segment of a tile, n) = sg * N + n; N <= kFreqThreads.
__host__ __device__ inline int freq_segments(int N) { return kFreqThreads / N; }

template <int kCopies>
struct FreqAcc {
  static constexpr int kDoubles = 2 * (3 + 2 * kCopies) + 1;
  cdbl gu10, gu11, gu00[kCopies], gu01[kCopies], lam;
  double dt;
};

template <int kCopies>
__global__ void __launch_bounds__(kFreqThreads)
    dplr_bwd_freq_kernel(int H, int N, int L, int nf, const float* dts, const float* Lambda,
                         const float* Ps, const float* Bs, const cdbl* Ct, const cdbl* Gf,
                         cdbl* GW, double* gdt_freq, float* dB) {
  constexpr int nW = 2 * kCopies + 2;  // G00[c], G01[c], ..., G10, G11
  extern __shared__ double smem_d[];
  cdbl* sW = reinterpret_cast<cdbl*>(smem_d);  // (kFreqThreads, nW); later the slot partials
  const int h = blockIdx.x, tid = threadIdx.x;
  const double dt = double(dts[h]);
  const int P = freq_segments(N), slots = P * N, tsz = (kFreqThreads + P - 1) / P;
  const bool has_slot = tid < slots;
  const int n = tid % N, sg = tid / N;
  FreqAcc<kCopies> acc;
  acc.gu10 = acc.gu11 = acc.lam = cx(0.0);
  acc.dt = 0;
#pragma unroll
  for (int c = 0; c < kCopies; ++c) acc.gu00[c] = acc.gu01[c] = cx(0.0);
  cdbl lam = cx(0.0), Pn = cx(0.0), Bn = cx(0.0), ct[kCopies];
#pragma unroll
  for (int c = 0; c < kCopies; ++c) ct[c] = cx(0.0);
  if (has_slot) {
    const size_t j = size_t(h) * N + n;
    lam = ldd(Lambda, j);
    Pn = ldd(Ps, j);
    Bn = ldd(Bs, j);
#pragma unroll
    for (int c = 0; c < kCopies; ++c) ct[c] = Ct[(size_t(c) * H + h) * N + n];
  }
  const cdbl u10 = conj(Pn) * Bn;
  const double u11 = norm2(Pn);

  for (int k0 = 0; k0 < nf; k0 += kFreqThreads) {
    // 1. The Woodbury adjoints of frequency k0 + tid.
    {
      const int kf = k0 + tid;
      if (kf < nf) {
        const Freq fr = freq_at(kf, L, dt);
        cdbl k10 = cx(0.0), k11 = cx(0.0), k01[kCopies];
#pragma unroll
        for (int c = 0; c < kCopies; ++c) k01[c] = cx(0.0);
        for (int m = 0; m < N; ++m) {
          const size_t j = size_t(h) * N + m;
          const cdbl lm = ldd(Lambda, j), pm = ldd(Ps, j), bm = ldd(Bs, j);
          const cdbl r = 1.0 / (fr.alpha - fr.c * lm);
          const cdbl rc = 1.0 / (fr.alpha - fr.c * conj(lm));
          const cdbl v10 = conj(pm) * bm;
          k10 += v10 * r + conj(v10) * rc;
          k11 += norm2(pm) * (r + rc);
#pragma unroll
          for (int c = 0; c < kCopies; ++c) {
            const cdbl v01 = Ct[(size_t(c) * H + h) * N + m] * pm;
            k01[c] += v01 * r + conj(v01) * rc;
          }
        }
        const cdbl den = 1.0 + fr.c * k11;
        const bool once = kf == 0 || (L % 2 == 0 && kf == L / 2);
        const double scale = (once ? 1.0 : 2.0) / L;
        cdbl G10 = cx(0.0), G11 = cx(0.0);
        cdbl* w = sW + size_t(tid) * nW;
#pragma unroll
        for (int c = 0; c < kCopies; ++c) {
          const cdbl Gc = Gf[(size_t(c) * H + h) * nf + kf] * scale;
          w[2 * c] = 2.0 * Gc;
          w[2 * c + 1] = conj(-2.0 * fr.c * k10 / den) * Gc;
          G10 += conj(-2.0 * fr.c * k01[c] / den) * Gc;
          G11 += conj(2.0 * fr.c * fr.c * k01[c] * k10 / (den * den)) * Gc;
        }
        w[2 * kCopies] = G10;
        w[2 * kCopies + 1] = G11;
      }
    }
    __syncthreads();
    // 2. Slot (sg, n) accumulates frequencies k0 + [sg tsz, (sg+1) tsz).
    if (has_slot) {
      const int jb = sg * tsz, je = min(min(kFreqThreads, jb + tsz), nf - k0);
      for (int jj = jb; jj < je; ++jj) {
        const int kf = k0 + jj;
        const Freq fr = freq_at(kf, L, dt);
        const cdbl kap = 2.0 / (dt * dt) * (1.0 - fr.w);
        const cdbl r = 1.0 / (fr.alpha - fr.c * lam);
        const cdbl rc = 1.0 / (fr.alpha - fr.c * conj(lam));
        const cdbl* w = sW + size_t(jj) * nW;
        const cdbl G10 = w[2 * kCopies], G11 = w[2 * kCopies + 1];
        cdbl E = conj(u10) * G10 + u11 * G11;
        cdbl Ep = u10 * G10 + u11 * G11;
        acc.gu10 += conj(r) * G10 + rc * conj(G10);
        acc.gu11 += conj(r) * G11 + rc * conj(G11);
#pragma unroll
        for (int c = 0; c < kCopies; ++c) {
          const cdbl G00 = w[2 * c], G01 = w[2 * c + 1];
          const cdbl u00 = ct[c] * Bn, u01 = ct[c] * Pn;
          E += conj(u00) * G00 + conj(u01) * G01;
          Ep += u00 * G00 + u01 * G01;
          acc.gu00[c] += conj(r) * G00 + rc * conj(G00);
          acc.gu01[c] += conj(r) * G01 + rc * conj(G01);
        }
        const cdbl r2 = r * r, rc2 = rc * rc;
        acc.lam += E * conj(fr.c * r2) + conj(Ep) * fr.c * rc2;
        acc.dt += (conj(E) * r2 * kap).re + (conj(Ep) * rc2 * kap).re;
      }
    }
    __syncthreads();
  }
  // Slot partials into shared memory (over the tile buffer), then per n in slot order.
  double* part = smem_d;  // (slots, kDoubles)
  double* s_gdt = part + size_t(kFreqThreads) * FreqAcc<kCopies>::kDoubles;  // (N)
  if (has_slot) {
    double* q = part + size_t(tid) * FreqAcc<kCopies>::kDoubles;
    int k = 0;
    auto put = [&](cdbl v) {
      q[k++] = v.re;
      q[k++] = v.im;
    };
    put(acc.gu10);
    put(acc.gu11);
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      put(acc.gu00[c]);
      put(acc.gu01[c]);
    }
    put(acc.lam);
    q[k] = acc.dt;
  }
  __syncthreads();
  if (tid < N) {
    FreqAcc<kCopies> t;
    t.gu10 = t.gu11 = t.lam = cx(0.0);
    t.dt = 0;
#pragma unroll
    for (int c = 0; c < kCopies; ++c) t.gu00[c] = t.gu01[c] = cx(0.0);
    for (int s = 0; s < P; ++s) {
      const double* q = part + size_t(s * N + tid) * FreqAcc<kCopies>::kDoubles;
      int k = 0;
      auto get = [&]() {
        const cdbl v{q[k], q[k + 1]};
        k += 2;
        return v;
      };
      t.gu10 += get();
      t.gu11 += get();
#pragma unroll
      for (int c = 0; c < kCopies; ++c) {
        t.gu00[c] += get();
        t.gu01[c] += get();
      }
      t.lam += get();
      t.dt += q[k];
    }
    // u10 = conj(P) B, u11 = |P|^2; u00 = Ct B, u01 = Ct P, Ct = C - C Abar^L.
    cdbl gB = Pn * t.gu10;
    cdbl gP = conj(t.gu10) * Bn + 2.0 * t.gu11.re * Pn;
    cdbl* gw = GW + (size_t(h) * N + tid) * (2 + kCopies);
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      gB += conj(ct[c]) * t.gu00[c];
      gP += conj(ct[c]) * t.gu01[c];
      gw[2 + c] = -(conj(Bn) * t.gu00[c] + conj(Pn) * t.gu01[c]);  // d/d(C Abar^L), ga
    }
    gw[0] = t.lam;
    gw[1] = gP;
    std_(dB, size_t(h) * N + tid, gB);
    s_gdt[tid] = t.dt;
  }
  __syncthreads();
  if (tid == 0) {
    double sum = 0;
    for (int m = 0; m < N; ++m) sum += s_gdt[m];
    gdt_freq[h] = sum;
  }
}

// --- Backward: the reverse chain through C Abar^L ---------------------------

struct ChainGrad {
  cdbl *lam, *P, *Ge, *Gd1;  // shared, N each
  double dt_lane;            // this lane's share of dLoss/d dt
  double Gq;                 // same on every lane
};

// Reverse of row_step (row_step_backward of the CPU op): ga_out -> ga_in.
__device__ void row_step_backward(const Chan& ch, int N, int lane, const cdbl* a,
                                  const cdbl* ga_out, cdbl* ga_in, cdbl* gw, ChainGrad& g) {
  const double dt = ch.dt, q = ch.q;
  double t = 0;
  for (int n = lane; n < N; n += kWarp) t += 2.0 * (a[n] * ch.inv_d1[n] * ch.P[n]).re;
  t = warp_sum(t);
  double s = 0;
  for (int n = lane; n < N; n += kWarp)
    s += 2.0 * ((a[n] * ch.inv_d1[n] - t * q * ch.e[n]) * ch.P[n]).re;
  s = warp_sum(s);
  // a' = w F - dt/2 s conj(P)
  double gs = 0;
  for (int n = lane; n < N; n += kWarp) {
    const cdbl w = a[n] * ch.inv_d1[n] - t * q * ch.e[n];
    const cdbl go = ga_out[n];
    gw[n] = conj(ch.f[n]) * go;
    const cdbl gf = conj(w) * go;
    g.lam[n] += 0.5 * dt * gf;
    g.dt_lane += (conj(gf) * ch.lam[n]).re * 0.5;
    gs += (conj(go) * conj(ch.P[n])).re * (-0.5 * dt);
    g.P[n] += conj(go) * (-0.5 * dt * s);
    g.dt_lane += (conj(go) * conj(ch.P[n])).re * (-0.5 * s);
  }
  gs = warp_sum(gs);
  // s = 2 Re sum w P ; w = b - t q e
  double gtq = 0;
  for (int n = lane; n < N; n += kWarp) {
    const cdbl w = a[n] * ch.inv_d1[n] - t * q * ch.e[n];
    gw[n] += 2.0 * gs * conj(ch.P[n]);
    g.P[n] += 2.0 * gs * conj(w);
    gtq -= (conj(gw[n]) * ch.e[n]).re;
    g.Ge[n] -= t * q * gw[n];
  }
  gtq = warp_sum(gtq);
  const double gt = gtq * q;
  g.Gq += gtq * t;
  // t = 2 Re sum b P ; b = a / D1
  for (int n = lane; n < N; n += kWarp) {
    const cdbl b = a[n] * ch.inv_d1[n];
    const cdbl gb = gw[n] + 2.0 * gt * conj(ch.P[n]);
    g.P[n] += 2.0 * gt * conj(b);
    ga_in[n] = conj(ch.inv_d1[n]) * gb;
    g.Gd1[n] += conj(-b * ch.inv_d1[n]) * gb;
  }
}

// One warp per h. Shared: the channel (5 N), ga, ga2, gw (3 N), the
// gradients lam, P, Ge, Gd1 (4 N). rows: (H, S, N) scratch.
template <int kCopies>
__global__ void __launch_bounds__(kWarp)
    dplr_bwd_chain_kernel(int H, int N, int L, int S, int nseg, const float* dts,
                          const float* Lambda, const float* Ps, const cdbl* ckpt, const cdbl* GW,
                          const double* gdt_freq, cdbl* rows, float* ddt, float* dLambda,
                          float* dP, float* dC) {
  extern __shared__ double smem_d[];
  cdbl* p = reinterpret_cast<cdbl*>(smem_d);
  Chan ch = carve_channel(p, N);
  cdbl* ga = p;
  cdbl* ga2 = p + N;
  cdbl* gw = p + 2 * N;
  ChainGrad g;
  g.lam = p + 3 * N;
  g.P = p + 4 * N;
  g.Ge = p + 5 * N;
  g.Gd1 = p + 6 * N;
  g.dt_lane = 0;
  g.Gq = 0;
  const int h = blockIdx.x, lane = threadIdx.x;
  load_channel(ch, h, N, dts, Lambda, Ps, lane);
  const double dt = ch.dt, q = ch.q;
  for (int n = lane; n < N; n += kWarp) {
    const cdbl* gwh = GW + (size_t(h) * N + n) * (2 + kCopies);
    g.lam[n] = gwh[0];
    g.P[n] = gwh[1];
    g.Ge[n] = g.Gd1[n] = cx(0.0);
  }
  cdbl* row = rows + size_t(h) * S * N;
  for (int c = 0; c < kCopies; ++c) {
    const size_t ci = (size_t(c) * H + h) * N;
    for (int n = lane; n < N; n += kWarp) {
      ga[n] = GW[(size_t(h) * N + n) * (2 + kCopies) + 2 + c];
      std_(dC, ci + n, -ga[n]);  // the CPU op stores this part in T first
    }
    for (int m = nseg - 1; m >= 0; --m) {
      const int jb = m * S, cnt = min(S, L - jb);
      const cdbl* ck = ckpt + ((size_t(c) * H + h) * nseg + m) * N;
      for (int n = lane; n < N; n += kWarp) row[n] = ck[n];
      for (int j = 1; j < cnt; ++j) row_step(ch, N, lane, row + size_t(j - 1) * N, row + size_t(j) * N);
      for (int j = cnt - 1; j >= 0; --j) {
        row_step_backward(ch, N, lane, row + size_t(j) * N, ga, ga2, gw, g);
        cdbl* t = ga;
        ga = ga2;
        ga2 = t;
      }
    }
    for (int n = lane; n < N; n += kWarp) {
      const cf prev = ld(dC, ci + n);
      st(dC, ci + n, cf{prev.re + float(ga[n].re), prev.im + float(ga[n].im)});
    }
  }
  // finish_step_grads: q = 1/(2/dt + S), S = sum 2|P|^2 Re(1/D1), e = conj(P)/D1, D1 = 1 - dt/2 Lambda.
  const double gdt_q = g.Gq * q * q * 2.0 / (dt * dt);
  const double gS = -g.Gq * q * q;
  for (int n = lane; n < N; n += kWarp) {
    const cdbl inv = ch.inv_d1[n], P = ch.P[n];
    g.P[n] += gS * 4.0 * inv.re * P;
    g.Gd1[n] += gS * 2.0 * conj(-norm2(P) * inv * inv);
    g.P[n] += conj(g.Ge[n]) * inv;
    g.Gd1[n] += conj(-inv * inv) * P * g.Ge[n];
    g.lam[n] += -0.5 * dt * g.Gd1[n];
    g.dt_lane += (conj(g.Gd1[n]) * ch.lam[n]).re * -0.5;
    const size_t i = size_t(h) * N + n;
    std_(dLambda, i, g.lam[n]);
    std_(dP, i, g.P[n]);
  }
  const double gdt_lanes = warp_sum(g.dt_lane);
  if (lane == 0) ddt[h] = float(gdt_freq[h] + gdt_lanes + gdt_q);
}

// --- Step ---------------------------------------------------------------------

// One warp per (b, h): the CPU op's column step, in double.
__global__ void dplr_step_kernel(long long BH, int H, int N, const float* dts, const float* Lambda,
                                 const float* Ps, const float* Bs, const float* C, const float* u,
                                 float* state, float* y) {
  const long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= BH) return;  // whole warps leave together
  const int h = int(warp % H);
  const double dt = double(dts[h]), ut = double(u[warp]);
  double S = 0, sx = 0;
  for (int n = lane; n < N; n += kWarp) {
    const size_t i = size_t(h) * N + n;
    const cdbl lam = ldd(Lambda, i), P = ldd(Ps, i);
    const cdbl d1 = 1.0 - 0.5 * dt * lam;
    S += 2.0 * (norm2(P) / d1).re;
    sx += 2.0 * (conj(P) * ldd(state, size_t(warp) * N + n)).re;
  }
  S = warp_sum(S);
  sx = warp_sum(sx);
  const double q = 1.0 / (2.0 / dt + S);
  auto v_at = [&](int n, cdbl& P, cdbl& d1) {
    const size_t i = size_t(h) * N + n;
    const cdbl lam = ldd(Lambda, i);
    P = ldd(Ps, i);
    d1 = 1.0 - 0.5 * dt * lam;
    const cdbl f = 1.0 + 0.5 * dt * lam;
    return f * ldd(state, size_t(warp) * N + n) - 0.5 * dt * sx * P + dt * ut * ldd(Bs, i);
  };
  double t = 0;
  for (int n = lane; n < N; n += kWarp) {
    cdbl P, d1;
    const cdbl v = v_at(n, P, d1);
    t += 2.0 * (conj(P) * v / d1).re;
  }
  t = warp_sum(t);
  double out = 0;
  for (int n = lane; n < N; n += kWarp) {
    cdbl P, d1;
    const cdbl v = v_at(n, P, d1);
    const cdbl xn = (v - P * q * t) / d1;
    std_(state, size_t(warp) * N + n, xn);
    out += 2.0 * (ldd(C, size_t(h) * N + n) * xn).re;
  }
  out = warp_sum(out);
  if (lane == 0) y[warp] = float(out);
}

// --- Host side ----------------------------------------------------------------

int checkpoint_stride(int L) { return std::max(1, int(std::ceil(std::sqrt(double(L))))); }

size_t powers_smem(int N) { return size_t(7) * N * sizeof(cdbl); }
size_t chain_smem(int N) { return size_t(12) * N * sizeof(cdbl); }
size_t freq_smem(int N, int copies) {
  const size_t tile = size_t(kFreqThreads) * (2 * copies + 2) * sizeof(cdbl);
  const size_t part = (size_t(kFreqThreads) * (2 * (3 + 2 * copies) + 1) + N) * sizeof(double);
  return std::max(tile, part);
}

template <typename Kernel>
void allow_smem(Kernel k, size_t bytes) {
  if (bytes > 48 * 1024)
    MK_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

void launch_powers(const DplrKernelShape& s, const float* dt, const float* Lambda, const float* P,
                   const float* C, cdbl* Ct, cdbl* ckpt, int S, int nseg, stream_t stream) {
  const size_t smem = powers_smem(s.half_state);
  allow_smem(dplr_powers_kernel, smem);
  dplr_powers_kernel<<<unsigned(s.copies * s.channels), kWarp, smem, stream>>>(
      s.channels, s.half_state, s.len, S, nseg, dt, Lambda, P, C, Ct, ckpt);
  MK_CUDA_LAUNCH_CHECK("cuda dplr: powers of Abar");
}

}  // namespace

void dplr_kernel_forward(const DplrKernelShape& s, const float* dt, const float* Lambda,
                         const float* P, const float* B, const float* C, float* K,
                         stream_t stream) {
  check(s, "cuda dplr_kernel_forward");
  const int H = s.channels, N = s.half_state, L = s.len, nf = L / 2 + 1, nc = s.copies;
  DeviceBuffer<cdbl> Ct(size_t(nc) * H * N, stream), spec(size_t(nc) * H * nf, stream);
  DeviceBuffer<double> k(size_t(nc) * H * L, stream);
  launch_powers(s, dt, Lambda, P, C, Ct.data(), nullptr, 1, 0, stream);
  const unsigned grid = grid_for(size_t(H) * nf, kThreads);
  if (nc == 1)
    dplr_cauchy_fwd_kernel<1><<<grid, kThreads, 0, stream>>>(H, N, L, nf, dt, Lambda, P, B,
                                                              Ct.data(), spec.data());
  else
    dplr_cauchy_fwd_kernel<2><<<grid, kThreads, 0, stream>>>(H, N, L, nf, dt, Lambda, P, B,
                                                              Ct.data(), spec.data());
  MK_CUDA_LAUNCH_CHECK("cuda dplr_kernel_forward: cauchy");
  fft_exec(FftKind::Z2D, L, (long long)nc * H, spec.data(), k.data(), stream);
  scale_to_float_kernel<<<grid_for(k.size(), kThreads), kThreads, 0, stream>>>(k.data(), K,
                                                                                k.size(), L);
  MK_CUDA_LAUNCH_CHECK("cuda dplr_kernel_forward: scale");
}

void dplr_kernel_backward(const DplrKernelShape& s, const float* dt, const float* Lambda,
                          const float* P, const float* B, const float* C, const float* dK,
                          float* ddt, float* dLambda, float* dP, float* dB, float* dC,
                          stream_t stream) {
  check(s, "cuda dplr_kernel_backward");
  const int H = s.channels, N = s.half_state, L = s.len, nf = L / 2 + 1, nc = s.copies;
  const int S = checkpoint_stride(L), nseg = (L + S - 1) / S;
  DeviceBuffer<cdbl> Ct(size_t(nc) * H * N, stream), ckpt(size_t(nc) * H * nseg * N, stream),
      Gf(size_t(nc) * H * nf, stream), GW(size_t(H) * N * (2 + nc), stream),
      rows(size_t(H) * S * N, stream);
  DeviceBuffer<double> x(size_t(nc) * H * L, stream), gdt_freq(H, stream);
  launch_powers(s, dt, Lambda, P, C, Ct.data(), ckpt.data(), S, nseg, stream);
  to_double_kernel<<<grid_for(x.size(), kThreads), kThreads, 0, stream>>>(dK, x.data(), x.size());
  MK_CUDA_LAUNCH_CHECK("cuda dplr_kernel_backward: dK to double");
  fft_exec(FftKind::D2Z, L, (long long)nc * H, x.data(), Gf.data(), stream);
  const size_t fsm = freq_smem(N, nc), csm = chain_smem(N);
  if (nc == 1) {
    allow_smem(dplr_bwd_freq_kernel<1>, fsm);
    dplr_bwd_freq_kernel<1><<<H, kFreqThreads, fsm, stream>>>(
        H, N, L, nf, dt, Lambda, P, B, Ct.data(), Gf.data(), GW.data(), gdt_freq.data(), dB);
    MK_CUDA_LAUNCH_CHECK("cuda dplr_kernel_backward: frequencies");
    allow_smem(dplr_bwd_chain_kernel<1>, csm);
    dplr_bwd_chain_kernel<1><<<H, kWarp, csm, stream>>>(H, N, L, S, nseg, dt, Lambda, P,
                                                         ckpt.data(), GW.data(), gdt_freq.data(),
                                                         rows.data(), ddt, dLambda, dP, dC);
  } else {
    allow_smem(dplr_bwd_freq_kernel<2>, fsm);
    dplr_bwd_freq_kernel<2><<<H, kFreqThreads, fsm, stream>>>(
        H, N, L, nf, dt, Lambda, P, B, Ct.data(), Gf.data(), GW.data(), gdt_freq.data(), dB);
    MK_CUDA_LAUNCH_CHECK("cuda dplr_kernel_backward: frequencies");
    allow_smem(dplr_bwd_chain_kernel<2>, csm);
    dplr_bwd_chain_kernel<2><<<H, kWarp, csm, stream>>>(H, N, L, S, nseg, dt, Lambda, P,
                                                         ckpt.data(), GW.data(), gdt_freq.data(),
                                                         rows.data(), ddt, dLambda, dP, dC);
  }
  MK_CUDA_LAUNCH_CHECK("cuda dplr_kernel_backward: reverse chain");
}

void dplr_step(const DplrKernelShape& s, int batch, const float* dt, const float* Lambda,
               const float* P, const float* B, const float* C, const float* u, float* state,
               float* y, stream_t stream) {
  check(s, "cuda dplr_step");
  MK_CHECK(s.copies == 1, "cuda dplr_step: a bidirectional S4 has no recurrent form");
  MK_CHECK(batch > 0, "cuda dplr_step: batch must be positive");
  const long long BH = (long long)batch * s.channels;
  const unsigned blocks = unsigned((BH * kWarp + kThreads - 1) / kThreads);
  dplr_step_kernel<<<blocks, kThreads, 0, stream>>>(BH, s.channels, s.half_state, dt, Lambda, P,
                                                    B, C, u, state, y);
  MK_CUDA_LAUNCH_CHECK("cuda dplr_step");
}

}  // namespace mk::ops::cuda
