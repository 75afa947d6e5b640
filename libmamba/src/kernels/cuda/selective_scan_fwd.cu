// Fused selective-scan forward: one block per (channel, batch row), chunks of
// kThreads * kItems steps, states in groups of kG scanned together (one
// barrier per group). See mambakit/ops/cuda/selective_scan.h for the plan.
#include <algorithm>

#include "selective_scan_common.cuh"

namespace mk::ops::cuda {
namespace scan_detail {

// kNState: 0 for any dstate (carries across chunks in shared memory, state
// groups in a runtime loop, the last group masked), or the dstate itself
// (16: groups unrolled, carries in registers, no masking, no per-chunk
// barrier).
template <typename T, int kThreads, int kNState>
__global__ void __launch_bounds__(kThreads, 512 / kThreads) scan_fwd_kernel(const ScanArgs<T> a) {
  constexpr int kG = 4;
  constexpr int kWarps = kThreads / 32;
  constexpr int kChunk = kThreads * kItems;
  static_assert(kNState % kG == 0, "the fast path needs whole state groups");
  const int d = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
  const int L = a.L, D = a.D;
  const int N = kNState ? kNState : a.N;
  const int n_groups = (N + kG - 1) / kG;

  __shared__ Pair tot[2][kWarps][kG];
  __shared__ Pair carry_s[kNState ? 1 : kMaxDState];
  Pair carry_r[kNState ? kNState : 1];
  if constexpr (kNState > 0) {
#pragma unroll
    for (int n = 0; n < kNState; ++n) carry_r[n] = identity_pair();
  } else {
    for (int n = tid; n < N; n += kThreads) carry_s[n] = identity_pair();
  }

  const T* u = a.u + b * a.u_sb + d * a.u_sr;
  const T* delta = a.delta + b * a.dl_sb + d * a.dl_sr;
  const T* z = a.z ? a.z + b * a.z_sb + d * a.z_sr : nullptr;
  const T* Bb = a.Bm + b * a.B_sb;
  const T* Cb = a.Cm + b * a.C_sb;
  const float* Ad = a.A + size_t(d) * N;
  T* out = a.out + (size_t(b) * D + d) * L;
  const float Dv = a.Dskip ? a.Dskip[d] : 0.f;
  const float bias = a.delta_bias ? a.delta_bias[d] : 0.f;
  int parity = 0;

  for (int c = 0; c < a.n_chunks; ++c) {
    // carry_s (initialised above, or written by thread 0 last chunk) visible
    if constexpr (kNState == 0) __syncthreads();
    const int t0 = c * kChunk + tid * kItems;
    const int valid = min(max(L - t0, 0), kItems);
    float uu[kItems], dl[kItems], y[kItems];
    load_items<kItems>(u + t0, valid, a.vec_u, uu);
    load_items<kItems>(delta + t0, valid, a.vec_delta, dl);
    prepare_delta<kItems>(dl, bias, a.softplus, valid);
#pragma unroll
    for (int i = 0; i < kItems; ++i) y[i] = Dv * uu[i];

    // The state entering this chunk, for the backward's recomputation.
    if (a.chunk_states) {
      float* cs = a.chunk_states + ((size_t(b) * D + d) * a.n_chunks + c) * N;
      if constexpr (kNState > 0) {
        if (tid == 0) {
#pragma unroll
          for (int n = 0; n < kNState; ++n) cs[n] = carry_r[n].b;
        }
      } else {
        for (int n = tid; n < N; n += kThreads) cs[n] = carry_s[n].b;
      }
    }

    // One group of kG states: discretise, scan, accumulate y. carry[j] holds
    // the group's carries in and out.
    auto group = [&](int g, Pair(&carry)[kG]) {
      float aa[kG][kItems], bb[kG][kItems];
      Pair agg[kG];
#pragma unroll
      for (int j = 0; j < kG; ++j) {
        const int n = g * kG + j;
        const bool on = kNState > 0 || n < N;  // masked states scan the identity
        const float A2 = on ? Ad[n] * kLog2e : 0.f;
        float Bv[kItems];
        if (on) {
          load_items<kItems>(Bb + n * a.B_sr + t0, valid, a.vec_B, Bv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Bv[i] = 0.f;
        }
        agg[j] = identity_pair();
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          aa[j][i] = exp2f(dl[i] * A2);  // exp(delta * A)
          bb[j][i] = dl[i] * uu[i] * Bv[i];
          agg[j] = combine(agg[j], Pair{aa[j][i], bb[j][i]});
        }
      }
      block_scan_forward<kThreads, kG>(agg, carry, tot[parity]);
      parity ^= 1;
#pragma unroll
      for (int j = 0; j < kG; ++j) {
        const int n = g * kG + j;
        if (kNState == 0 && n >= N) continue;
        float Cv[kItems];
        load_items<kItems>(Cb + n * a.C_sr + t0, valid, a.vec_C, Cv);
        float h = agg[j].b;  // the state before this thread's first step
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          h = fmaf(aa[j][i], h, bb[j][i]);
          y[i] = fmaf(Cv[i], h, y[i]);
        }
      }
    };

    if constexpr (kNState > 0) {
#pragma unroll
      for (int g = 0; g < kNState / kG; ++g) {
        Pair carry[kG];
#pragma unroll
        for (int j = 0; j < kG; ++j) carry[j] = carry_r[g * kG + j];
        group(g, carry);
#pragma unroll
        for (int j = 0; j < kG; ++j) carry_r[g * kG + j] = carry[j];
      }
    } else {
      for (int g = 0; g < n_groups; ++g) {
        Pair carry[kG];
#pragma unroll
        for (int j = 0; j < kG; ++j)
          carry[j] = g * kG + j < N ? carry_s[g * kG + j] : identity_pair();
        group(g, carry);
        // Written after the group's barrier, which every reader of the old
        // value (above, and the chunk_states copy) has passed.
        if (tid == 0) {
#pragma unroll
          for (int j = 0; j < kG; ++j)
            if (g * kG + j < N) carry_s[g * kG + j] = carry[j];
        }
      }
    }

    if (z) {
      float zz[kItems];
      load_items<kItems>(z + t0, valid, a.vec_z, zz);
#pragma unroll
      for (int i = 0; i < kItems; ++i) y[i] *= zz[i] * sigmoidf_(zz[i]);
    }
    store_items<kItems>(out + t0, valid, a.vec_seq_out, y);
  }

  if (a.final_state) {
    float* fs = a.final_state + (size_t(b) * D + d) * N;
    if constexpr (kNState > 0) {
      if (tid == 0) {
#pragma unroll
        for (int n = 0; n < kNState; ++n) fs[n] = carry_r[n].b;
      }
    } else {
      __syncthreads();
      for (int n = tid; n < N; n += kThreads) fs[n] = carry_s[n].b;
    }
  }
}

template <typename T, int kThreads>
void launch_fwd(const ScanArgs<T>& a, stream_t stream) {
  const dim3 grid(unsigned(a.D), unsigned(a.B));
  if (a.N == 16)
    scan_fwd_kernel<T, kThreads, 16><<<grid, kThreads, 0, stream>>>(a);
  else
    scan_fwd_kernel<T, kThreads, 0><<<grid, kThreads, 0, stream>>>(a);
  MK_CUDA_LAUNCH_CHECK("selective_scan_forward");
}

template <typename T>
void dispatch_fwd(const ScanArgs<T>& a, stream_t stream) {
  switch (threads_for_len(a.L)) {
    case 32: launch_fwd<T, 32>(a, stream); break;
    case 64: launch_fwd<T, 64>(a, stream); break;
    default: launch_fwd<T, 128>(a, stream); break;
  }
}

}  // namespace scan_detail

template <typename T>
void selective_scan_forward(const SelectiveScanParams<T>& p, T* out, float* chunk_states,
                            float* final_state, stream_t stream) {
  selective_scan_check(p);
  MK_CHECK(out, "cuda::selective_scan_forward: out is null");
  mk::cuda::detail::require_device("cuda::selective_scan_forward");
  scan_detail::ScanArgs<T> a = scan_detail::make_args(p);
  a.out = out;
  a.vec_seq_out = scan_detail::vec_ok_contiguous(out, p.len);
  a.chunk_states = chunk_states;
  a.final_state = final_state;
  scan_detail::dispatch_fwd(a, stream);
}

template void selective_scan_forward<float>(const SelectiveScanParams<float>&, float*, float*,
                                            float*, stream_t);
template void selective_scan_forward<mk::cuda::bf16>(const SelectiveScanParams<mk::cuda::bf16>&,
                                                     mk::cuda::bf16*, float*, float*, stream_t);

}  // namespace mk::ops::cuda
