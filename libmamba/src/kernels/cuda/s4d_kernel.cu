// S4D Vandermonde kernel, its backward and the recurrent step on CUDA (see
// ops/cuda/ssm_conv.h; CPU reference kernels/cpu/s4d_kernel.cpp).
//
// Forward: grid (L / (kFwdThreads * kFwdItems), H); a block first forms, in
// double, per state n: dt A_n, Cb[c,n] = C[c,n] (z_n - 1) / A_n and
// z_n^kFwdThreads (rounded to float); thread j then owns
// l = l0 + j + i kFwdThreads, i < kFwdItems, starting from the exactly
// computed z_n^(l0+j) (cexp_at) and stepping by z_n^kFwdThreads, so no power
// is more than kFwdItems-1 float multiplications from an exact one.
// Backward: one block per channel h; thread slots (n, segment of l) run
// Q = sum g[l] z^l and R = sum l g[l] z^l over their segment in runs of
// kRun steps (each run restarted from an exact power, summed in fp32, runs
// added in double), the segments are added in order per n, and the gradient
// formulas of the CPU op are evaluated in double; ddt[h] sums its per-state
// terms in order. Step: one warp per (b, h), lanes over n, double.
#include <cuda_runtime.h>

#include <string>

#include "common.cuh"
#include "mambakit/ops/cuda/ssm_conv.h"
#include "ssm_complex.cuh"

namespace mk::ops::cuda {

using namespace mk::cuda::detail;

namespace {

constexpr int kFwdThreads = 128, kFwdItems = 8;
constexpr int kBwdThreads = 256, kRun = 16;

void check(const S4DKernelShape& s, const char* where) {
  MK_CHECK(s.channels > 0 && s.half_state > 0 && s.len > 0 && (s.copies == 1 || s.copies == 2),
           std::string(where) + ": bad shape (H=" + std::to_string(s.channels) + ", N/2=" +
               std::to_string(s.half_state) + ", L=" + std::to_string(s.len) + ", copies=" +
               std::to_string(s.copies) + ")");
  MK_CHECK(s.half_state <= kS4DMaxHalfState,
           std::string(where) + ": N/2=" + std::to_string(s.half_state) + " above the CUDA limit " +
               std::to_string(kS4DMaxHalfState));
  MK_CHECK(s.channels <= 65535, std::string(where) + ": H=" + std::to_string(s.channels) +
                                    " above 65535");
  require_device(where);
}

// exp(l x) for x = dt A (double parts): the phase l Im x is reduced modulo
// 2 pi in double before the float sincos, and the float exp of l Re x is
// corrected by the part of the argument that float drops.
__device__ __forceinline__ cf cexp_at(double l, double xr, double xi) {
  constexpr double kTwoPiHi = 6.283185307179586232, kTwoPiLo = 2.4492935982947064e-16;
  constexpr double kInvTwoPi = 0.15915494309189533577;
  const double a = l * xr;
  const float af = float(a);
  const float m = expf(af) * (1.f + float(a - double(af)));
  const double ph = l * xi;
  const double k = rint(ph * kInvTwoPi);
  const float r = float(fma(-k, kTwoPiLo, fma(-k, kTwoPiHi, ph)));
  float sn, cs;
  sincosf(r, &sn, &cs);
  return {m * cs, m * sn};
}

template <int kCopies>
__global__ void __launch_bounds__(kFwdThreads)
    s4d_fwd_kernel(int H, int N, int L, const float* dt, const float* A, const float* C, float* K) {
  extern __shared__ double smem_d[];
  double* s_xr = smem_d;                                   // (N) Re dt A
  double* s_xi = s_xr + N;                                 // (N) Im dt A
  cf* s_zT = reinterpret_cast<cf*>(s_xi + N);              // (N) z^kFwdThreads
  cf* s_cb = s_zT + N;                                     // (kCopies, N)
  const int h = blockIdx.y;
  const double dth = double(dt[h]);
  for (int n = threadIdx.x; n < N; n += blockDim.x) {
    const cdbl a = ldd(A, size_t(h) * N + n);
    const cdbl x = dth * a;
    const cdbl z = cexp_d(x);
    s_xr[n] = x.re;
    s_xi[n] = x.im;
    s_zT[n] = to_f(cexp_d(double(kFwdThreads) * x));
#pragma unroll
    for (int c = 0; c < kCopies; ++c)
      s_cb[c * N + n] = to_f(ldd(C, (size_t(c) * H + h) * N + n) * (z - 1.0) / a);
  }
  __syncthreads();
  const int l0 = blockIdx.x * (kFwdThreads * kFwdItems) + threadIdx.x;
  if (l0 >= L) return;
  float acc[kCopies][kFwdItems];
#pragma unroll
  for (int c = 0; c < kCopies; ++c)
#pragma unroll
    for (int i = 0; i < kFwdItems; ++i) acc[c][i] = 0.f;
  for (int n = 0; n < N; ++n) {
    const cf s = cexp_at(double(l0), s_xr[n], s_xi[n]);
    const cf zT = s_zT[n];
    cf w[kCopies];
#pragma unroll
    for (int c = 0; c < kCopies; ++c) w[c] = s_cb[c * N + n] * s;
#pragma unroll
    for (int i = 0; i < kFwdItems; ++i) {
#pragma unroll
      for (int c = 0; c < kCopies; ++c) {
        acc[c][i] += w[c].re;
        if (i + 1 < kFwdItems) w[c] = w[c] * zT;
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kFwdItems; ++i) {
    const int l = l0 + i * kFwdThreads;
    if (l < L)
#pragma unroll
      for (int c = 0; c < kCopies; ++c) K[(size_t(c) * H + h) * L + l] = 2.f * acc[c][i];
  }
}

// Slots per channel: (segment s, state n) = s * N + n, P segments.
__host__ __device__ inline int bwd_segments(int N) { return N >= kBwdThreads ? 1 : kBwdThreads / N; }

template <int kCopies>
__global__ void __launch_bounds__(kBwdThreads)
    s4d_bwd_kernel(int H, int N, int L, const float* dt, const float* A, const float* C,
                   const float* dK, float* ddt, float* dA, float* dC) {
  extern __shared__ double smem_d[];
  const int P = bwd_segments(N), slots = P * N;
  double* part = smem_d;                       // (slots, kCopies, 4): Q re, Q im, R re, R im
  double* s_ddt = part + size_t(slots) * kCopies * 4;  // (N)
  const int h = blockIdx.x;
  const double dth = double(dt[h]);
  const int seg = (L + P - 1) / P;
  for (int slot = threadIdx.x; slot < slots; slot += blockDim.x) {
    const int n = slot % N, sgm = slot / N;
    const cdbl x = dth * ldd(A, size_t(h) * N + n);
    const cf z = to_f(cexp_d(x));
    const int lb = sgm * seg, le = min(L, lb + seg);
    double Q[kCopies][2], R[kCopies][2];
#pragma unroll
    for (int c = 0; c < kCopies; ++c) Q[c][0] = Q[c][1] = R[c][0] = R[c][1] = 0.0;
    for (int l1 = lb; l1 < le; l1 += kRun) {
      cf w = cexp_at(double(l1), x.re, x.im);
      float q[kCopies][2], r[kCopies][2];
#pragma unroll
      for (int c = 0; c < kCopies; ++c) q[c][0] = q[c][1] = r[c][0] = r[c][1] = 0.f;
      const int l2 = min(le, l1 + kRun);
      for (int l = l1; l < l2; ++l) {
        const float lf = float(l);
#pragma unroll
        for (int c = 0; c < kCopies; ++c) {
          const float g = dK[(size_t(c) * H + h) * L + l], lg = lf * g;
          q[c][0] = fmaf(g, w.re, q[c][0]);
          q[c][1] = fmaf(g, w.im, q[c][1]);
          r[c][0] = fmaf(lg, w.re, r[c][0]);
          r[c][1] = fmaf(lg, w.im, r[c][1]);
        }
        w = w * z;
      }
#pragma unroll
      for (int c = 0; c < kCopies; ++c) {
        Q[c][0] += q[c][0];
        Q[c][1] += q[c][1];
        R[c][0] += r[c][0];
        R[c][1] += r[c][1];
      }
    }
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      double* p = part + (size_t(slot) * kCopies + c) * 4;
      p[0] = Q[c][0];
      p[1] = Q[c][1];
      p[2] = R[c][0];
      p[3] = R[c][1];
    }
  }
  __syncthreads();
  // The CPU op's formulas (ops/s4d_kernel.h), in double.
  for (int n = threadIdx.x; n < N; n += blockDim.x) {
    const cdbl a = ldd(A, size_t(h) * N + n);
    const cdbl zn = cexp_d(dth * a);
    const cdbl zm1 = zn - 1.0;
    cdbl dAh = cx(0.0);
    double ddt_n = 0;
#pragma unroll
    for (int c = 0; c < kCopies; ++c) {
      cdbl q = cx(0.0), r = cx(0.0);
      for (int sgm = 0; sgm < P; ++sgm) {
        const double* p = part + (size_t(sgm * N + n) * kCopies + c) * 4;
        q += cdbl{p[0], p[1]};
        r += cdbl{p[2], p[3]};
      }
      const size_t ci = (size_t(c) * H + h) * N + n;
      const cdbl cn = ldd(C, ci);
      const cdbl M = cn / a * (q * zn + zm1 * r);
      std_(dC, ci, 2.0 * conj(zm1 / a * q));
      dAh += 2.0 * conj(dth * M - cn * zm1 * q / (a * a));
      ddt_n += 2.0 * (a * M).re;
    }
    std_(dA, size_t(h) * N + n, dAh);
    s_ddt[n] = ddt_n;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0;
    for (int n = 0; n < N; ++n) sum += s_ddt[n];
    ddt[h] = float(sum);
  }
}

// One warp per (b, h): h <- z h + (z - 1)/A u, y = 2 Re sum C h.
__global__ void s4d_step_kernel(long long BH, int H, int N, const float* dt, const float* A,
                                const float* C, const float* u, float* state, float* y) {
  const long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= BH) return;  // whole warps leave together
  const int h = int(warp % H);
  const double dth = double(dt[h]), ut = double(u[warp]);
  double acc = 0;
  for (int n = lane; n < N; n += 32) {
    const cdbl a = ldd(A, size_t(h) * N + n);
    const cdbl zn = cexp_d(dth * a);
    const size_t si = size_t(warp) * N + n;
    const cdbl x = zn * ldd(state, si) + (zn - 1.0) / a * ut;
    std_(state, si, x);
    acc += (ldd(C, size_t(h) * N + n) * x).re;
  }
  acc = warp_sum(acc);
  if (lane == 0) y[warp] = float(2 * acc);
}

size_t fwd_smem(int N, int copies) { return size_t(N) * (2 * sizeof(double) + (1 + copies) * sizeof(cf)); }
size_t bwd_smem(int N, int copies) {
  return (size_t(bwd_segments(N)) * N * copies * 4 + N) * sizeof(double);
}

}  // namespace

void s4d_kernel_forward(const S4DKernelShape& s, const float* dt, const float* A, const float* C,
                        float* K, stream_t stream) {
  check(s, "cuda s4d_kernel_forward");
  const int per_block = kFwdThreads * kFwdItems;
  const dim3 grid(unsigned((s.len + per_block - 1) / per_block), unsigned(s.channels));
  const size_t smem = fwd_smem(s.half_state, s.copies);
  if (s.copies == 1)
    s4d_fwd_kernel<1><<<grid, kFwdThreads, smem, stream>>>(s.channels, s.half_state, s.len, dt, A,
                                                           C, K);
  else
    s4d_fwd_kernel<2><<<grid, kFwdThreads, smem, stream>>>(s.channels, s.half_state, s.len, dt, A,
                                                           C, K);
  MK_CUDA_LAUNCH_CHECK("cuda s4d_kernel_forward");
}

void s4d_kernel_backward(const S4DKernelShape& s, const float* dt, const float* A, const float* C,
                         const float* dK, float* ddt, float* dA, float* dC, stream_t stream) {
  check(s, "cuda s4d_kernel_backward");
  const size_t smem = bwd_smem(s.half_state, s.copies);
  if (s.copies == 1)
    s4d_bwd_kernel<1><<<s.channels, kBwdThreads, smem, stream>>>(s.channels, s.half_state, s.len,
                                                                 dt, A, C, dK, ddt, dA, dC);
  else
    s4d_bwd_kernel<2><<<s.channels, kBwdThreads, smem, stream>>>(s.channels, s.half_state, s.len,
                                                                 dt, A, C, dK, ddt, dA, dC);
  MK_CUDA_LAUNCH_CHECK("cuda s4d_kernel_backward");
}

void s4d_step(const S4DKernelShape& s, int batch, const float* dt, const float* A, const float* C,
              const float* u, float* state, float* y, stream_t stream) {
  check(s, "cuda s4d_step");
  MK_CHECK(s.copies == 1, "cuda s4d_step: a bidirectional S4D has no recurrent form");
  MK_CHECK(batch > 0, "cuda s4d_step: batch must be positive");
  const long long BH = (long long)batch * s.channels;
  constexpr int kThreads = 256;
  const unsigned blocks = unsigned((BH * 32 + kThreads - 1) / kThreads);
  s4d_step_kernel<<<blocks, kThreads, 0, stream>>>(BH, s.channels, s.half_state, dt, A, C, u,
                                                   state, y);
  MK_CUDA_LAUNCH_CHECK("cuda s4d_step");
}

}  // namespace mk::ops::cuda
