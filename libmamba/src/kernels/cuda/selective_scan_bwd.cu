// Fused selective-scan backward: one block per (channel, batch row), chunks
// from last to first. Per chunk and group of kG states:
//   1. recompute exp(delta*A) and delta*B*u, forward-scan them from the
//      state saved at the chunk start: every step's h_{t-1} (registers);
//   2. reverse-scan the adjoint. With g_t = C_t * dy_t and
//      s_t = dL/dh_t = g_t + a_{t+1} s_{t+1}, the quantity r_t = a_t s_t
//      obeys r_t = a_t r_{t+1} + a_t g_t: a scan of the pairs (a_t, a_t g_t)
//      in reverse order, each pair local to its step, whose exclusive value
//      at t is r_{t+1}; so s_t = g_t + r_{t+1}, and r carries across chunks;
//   3. per step and state:  dC += dy h,  dB += s delta u,  du += s delta B,
//      ddelta += s (h_{t-1} a A + B u),  dA += s h_{t-1} a delta.
// du, ddelta, dz sum over states in registers; dA sums in shared memory;
// dB and dC sum over channels, i.e. over blocks: each group's values are
// moved from the blocked (thread-consecutive) order to a striped one in
// shared memory so that every warp's fp32 atomics hit one 128-byte line.
#include <algorithm>

#include "selective_scan_common.cuh"

namespace mk::ops::cuda {
namespace scan_detail {

// Index into the exchange buffer: one pad float per 32 makes the blocked
// writes (stride kItems across a warp) and the striped reads conflict-free.
__device__ __forceinline__ int xidx(int i) { return i + (i >> 5); }

// kNState: 0 for any dstate (state groups in a runtime loop, the last one
// masked) or 16 (groups unrolled, no masking). Registers are the limit here:
// B and C are re-read (from L1) where needed rather than held, and the
// reverse carries live in shared memory.
template <typename T, int kThreads, int kNState>
__global__ void __launch_bounds__(kThreads, 384 / kThreads) scan_bwd_kernel(const ScanArgs<T> a) {
  constexpr int kG = 2;
  constexpr int kWarps = kThreads / 32;
  constexpr int kChunk = kThreads * kItems;
  static_assert(kNState % kG == 0, "the fast path needs whole state groups");
  const int d = blockIdx.x, b = blockIdx.y, tid = threadIdx.x, lane = tid & 31;
  const int L = a.L, D = a.D;
  const int N = kNState ? kNState : a.N;
  const int n_groups = (N + kG - 1) / kG;

  __shared__ Pair tot_f[2][kWarps][kG], tot_r[2][kWarps][kG];
  __shared__ Pair carry_s[kNState ? kNState : kMaxDState];  // reverse carries across chunks
  __shared__ float dA_s[kNState ? kNState : kMaxDState];
  __shared__ float xch[2][kG][kChunk + kChunk / 32];  // dB, dC of one group
  __shared__ float red[32];
  for (int n = tid; n < N; n += kThreads) {
    carry_s[n] = identity_pair();
    dA_s[n] = 0.f;
  }

  const T* u = a.u + b * a.u_sb + d * a.u_sr;
  const T* delta = a.delta + b * a.dl_sb + d * a.dl_sr;
  const T* z = a.z ? a.z + b * a.z_sb + d * a.z_sr : nullptr;
  const T* Bb = a.Bm + b * a.B_sb;
  const T* Cb = a.Cm + b * a.C_sb;
  const float* Ad = a.A + size_t(d) * N;
  const size_t seq = (size_t(b) * D + d) * L;  // contiguous (B, D, L) row
  const T* dout = a.dout + seq;
  float* dBb = a.dB + size_t(b) * N * L;
  float* dCb = a.dC + size_t(b) * N * L;
  const float Dv = a.Dskip ? a.Dskip[d] : 0.f;
  const float bias = a.delta_bias ? a.delta_bias[d] : 0.f;
  float dD_acc = 0.f, dbias_acc = 0.f;
  int pf = 0, pr = 0;

  for (int c = a.n_chunks - 1; c >= 0; --c) {
    __syncthreads();  // carry_s, dA_s initialised / written in the last chunk
    const int t0 = c * kChunk + tid * kItems;
    const int valid = min(max(L - t0, 0), kItems);
    // dy: gradient of y before the gate; q: dout * silu'(z), so dz = q * y.
    float uu[kItems], dl[kItems], dy[kItems], q[kItems];
    load_items<kItems>(u + t0, valid, a.vec_u, uu);
    load_items<kItems>(delta + t0, valid, a.vec_delta, dl);
    prepare_delta<kItems>(dl, bias, a.softplus, valid);
    load_items<kItems>(dout + t0, valid, a.vec_seq_out, dy);
    if (z) {
      float zz[kItems];
      load_items<kItems>(z + t0, valid, a.vec_z, zz);
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const float sg = sigmoidf_(zz[i]);
        q[i] = dy[i] * sg * (1.f + zz[i] * (1.f - sg));
        dy[i] *= zz[i] * sg;
      }
    }
    // y (for dz) and du start from the skip term D*u.
    float du[kItems], ddl[kItems], y[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      du[i] = Dv * dy[i];
      ddl[i] = 0.f;
      y[i] = Dv * uu[i];
      dD_acc = fmaf(dy[i], uu[i], dD_acc);
    }
    const float* cs = a.chunk_states + ((size_t(b) * D + d) * a.n_chunks + c) * N;

    auto group = [&](int g) {
      float aa[kG][kItems], hp[kG][kItems];
      Pair agg[kG], carry[kG];
#pragma unroll
      for (int j = 0; j < kG; ++j) {
        const int n = g * kG + j;
        const bool on = kNState > 0 || n < N;
        float Bv[kItems];
        if (on) {
          load_items<kItems>(Bb + n * a.B_sr + t0, valid, a.vec_B, Bv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Bv[i] = 0.f;
        }
        const float A2 = on ? Ad[n] * kLog2e : 0.f;
        agg[j] = identity_pair();
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          aa[j][i] = exp2f(dl[i] * A2);
          hp[j][i] = dl[i] * uu[i] * Bv[i];  // b_t for now; h_{t-1} after the scan
          agg[j] = combine(agg[j], Pair{aa[j][i], hp[j][i]});
        }
        carry[j] = Pair{1.f, on ? cs[n] : 0.f};
      }
      // 1. States: h_{t-1} for each of this thread's steps.
      block_scan_forward<kThreads, kG>(agg, carry, tot_f[pf]);
      pf ^= 1;
#pragma unroll
      for (int j = 0; j < kG; ++j) {
        float h = agg[j].b;
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          const float bt = hp[j][i];
          hp[j][i] = h;
          h = fmaf(aa[j][i], h, bt);
        }
      }
      // 2. Adjoint: this thread's pairs in reverse order, then the block.
#pragma unroll
      for (int j = 0; j < kG; ++j) {
        const int n = g * kG + j;
        const bool on = kNState > 0 || n < N;
        float Cv[kItems];
        if (on) {
          load_items<kItems>(Cb + n * a.C_sr + t0, valid, a.vec_C, Cv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Cv[i] = 0.f;
        }
        agg[j] = identity_pair();
#pragma unroll
        for (int i = kItems - 1; i >= 0; --i)
          agg[j] = combine(agg[j], Pair{aa[j][i], aa[j][i] * Cv[i] * dy[i]});
        carry[j] = on ? carry_s[n] : identity_pair();
      }
      block_scan_reverse<kThreads, kG>(agg, carry, tot_r[pr]);
      pr ^= 1;
      // 3. Gradients, walking this thread's steps backwards.
#pragma unroll
      for (int j = 0; j < kG; ++j) {
        const int n = g * kG + j;
        const bool on = kNState > 0 || n < N;
        float Bv[kItems], Cv[kItems];
        if (on) {
          load_items<kItems>(Bb + n * a.B_sr + t0, valid, a.vec_B, Bv);
          load_items<kItems>(Cb + n * a.C_sr + t0, valid, a.vec_C, Cv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Bv[i] = Cv[i] = 0.f;
        }
        const float An = on ? Ad[n] : 0.f;
        float r = agg[j].b;  // r_{t+1} after this thread's last step
        float dA_part = 0.f;
#pragma unroll
        for (int i = kItems - 1; i >= 0; --i) {
          const float s = fmaf(Cv[i], dy[i], r);  // dL/dh_t
          const float dlu = dl[i] * uu[i];
          const float h = fmaf(aa[j][i], hp[j][i], dlu * Bv[i]);
          y[i] = fmaf(Cv[i], h, y[i]);
          xch[0][j][xidx(tid * kItems + i)] = s * dlu;    // dB
          xch[1][j][xidx(tid * kItems + i)] = dy[i] * h;  // dC
          du[i] = fmaf(s * dl[i], Bv[i], du[i]);
          const float sha = s * hp[j][i] * aa[j][i];
          ddl[i] = fmaf(sha, An, fmaf(s * Bv[i], uu[i], ddl[i]));
          dA_part = fmaf(sha, dl[i], dA_part);
          r = aa[j][i] * s;
        }
        dA_part = warp_sum(dA_part);
        if (lane == 0 && on) atomicAdd(&dA_s[n], dA_part);
        // Every thread holds the same carry; one writes it. Its readers
        // (above) all passed the reverse scan's barrier first.
        if (tid == 0 && on) carry_s[n] = carry[j];
      }
      __syncthreads();  // exchange buffer complete
#pragma unroll
      for (int j = 0; j < kG; ++j) {
        const int n = g * kG + j;
        if (kNState == 0 && n >= N) continue;
#pragma unroll
        for (int k = 0; k < kItems; ++k) {
          const int tl = k * kThreads + tid, t = c * kChunk + tl;
          if (t < L) {
            atomicAdd(dBb + size_t(n) * L + t, xch[0][j][xidx(tl)]);
            atomicAdd(dCb + size_t(n) * L + t, xch[1][j][xidx(tl)]);
          }
        }
      }
      __syncthreads();  // before the next group rewrites the buffer
    };

    if constexpr (kNState > 0) {
#pragma unroll 1
      for (int g = 0; g < kNState / kG; ++g) group(g);
    } else {
      for (int g = 0; g < n_groups; ++g) group(g);
    }

    if (z) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) y[i] *= q[i];  // dz
      store_items<kItems>(a.dz + seq + t0, valid, a.vec_seq_out, y);
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      // Back through softplus: d softplus(x)/dx = sigmoid(x) = 1 - exp(-softplus(x)).
      if (a.softplus) ddl[i] *= -expm1f(-dl[i]);
      if (i < valid) dbias_acc += ddl[i];
    }
    store_items<kItems>(a.du + seq + t0, valid, a.vec_seq_out, du);
    store_items<kItems>(a.ddelta + seq + t0, valid, a.vec_seq_out, ddl);
  }

  // Parameter gradients: one atomic per block and parameter (blocks of other
  // batch rows add to the same d).
  if (a.dD) {
    const float s = block_sum(dD_acc, red);
    if (tid == 0) atomicAdd(a.dD + d, s);
  }
  if (a.ddelta_bias) {
    const float s = block_sum(dbias_acc, red);
    if (tid == 0) atomicAdd(a.ddelta_bias + d, s);
  }
  __syncthreads();
  for (int n = tid; n < N; n += kThreads) atomicAdd(a.dA + size_t(d) * N + n, dA_s[n]);
}

template <typename T, int kThreads>
void launch_bwd(const ScanArgs<T>& a, stream_t stream) {
  const dim3 grid(unsigned(a.D), unsigned(a.B));
  if (a.N == 16)
    scan_bwd_kernel<T, kThreads, 16><<<grid, kThreads, 0, stream>>>(a);
  else
    scan_bwd_kernel<T, kThreads, 0><<<grid, kThreads, 0, stream>>>(a);
  MK_CUDA_LAUNCH_CHECK("selective_scan_backward");
}

template <typename T>
void dispatch_bwd(const ScanArgs<T>& a, stream_t stream) {
  switch (threads_for_len(a.L)) {
    case 32: launch_bwd<T, 32>(a, stream); break;
    case 64: launch_bwd<T, 64>(a, stream); break;
    default: launch_bwd<T, 128>(a, stream); break;
  }
}

}  // namespace scan_detail

template <typename T>
void selective_scan_backward(const SelectiveScanParams<T>& p, const float* chunk_states,
                             const T* dout, const SelectiveScanGrads<T>& g, stream_t stream) {
  selective_scan_check(p);
  const char* missing = !chunk_states ? "chunk_states (run the forward with a buffer of "
                                        "selective_scan_states_size floats)"
                        : !dout       ? "dout"
                        : !g.du       ? "du"
                        : !g.ddelta   ? "ddelta"
                        : !g.dA       ? "dA"
                        : !g.dB       ? "dB"
                        : !g.dC       ? "dC"
                        : (p.Dskip && !g.dD) ? "dD (Dskip is given)"
                        : (p.z && !g.dz)     ? "dz (z is given)"
                        : (p.delta_bias && !g.ddelta_bias) ? "ddelta_bias (delta_bias is given)"
                                                           : nullptr;
  MK_CHECK(!missing, std::string("cuda::selective_scan_backward: ") + (missing ? missing : "") +
                         " is null");
  mk::cuda::detail::require_device("cuda::selective_scan_backward");
  scan_detail::ScanArgs<T> a = scan_detail::make_args(p);
  a.chunk_states = const_cast<float*>(chunk_states);
  a.dout = dout;
  a.du = g.du;
  a.ddelta = g.ddelta;
  a.dz = p.z ? g.dz : nullptr;
  a.dA = g.dA;
  a.dB = g.dB;
  a.dC = g.dC;
  a.dD = p.Dskip ? g.dD : nullptr;
  a.ddelta_bias = p.delta_bias ? g.ddelta_bias : nullptr;
  // dout and the written gradients share the contiguous (B, D, L) layout.
  a.vec_seq_out = scan_detail::vec_ok_contiguous(dout, p.len) &&
                  scan_detail::vec_ok_contiguous(g.du, p.len) &&
                  scan_detail::vec_ok_contiguous(g.ddelta, p.len) &&
                  (!p.z || scan_detail::vec_ok_contiguous(g.dz, p.len));
  // dB, dC are sums over channels: zeroed, then every block adds its share.
  const size_t bnl = size_t(p.batch) * p.dstate * p.len;
  mk::cuda::memset_async(g.dB, 0, bnl * sizeof(float), stream);
  mk::cuda::memset_async(g.dC, 0, bnl * sizeof(float), stream);
  scan_detail::dispatch_bwd(a, stream);
}

template void selective_scan_backward<float>(const SelectiveScanParams<float>&, const float*,
                                             const float*, const SelectiveScanGrads<float>&,
                                             stream_t);
template void selective_scan_backward<mk::cuda::bf16>(
    const SelectiveScanParams<mk::cuda::bf16>&, const float*, const mk::cuda::bf16*,
    const SelectiveScanGrads<mk::cuda::bf16>&, stream_t);

}  // namespace mk::ops::cuda
