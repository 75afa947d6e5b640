// Attention backward on CUDA (see mambakit/ops/cuda/attention.h):
// FlashAttention-2's backward with P recomputed from the saved logsumexp,
//   P_ij = exp(scale q_i.k_j - lse_i),  D_i = dO_i . O_i,
//   dS_ij = P_ij (dO_i . v_j - D_i),
//   dV_j = sum_i P_ij dO_i,  dK_j = scale sum_i dS_ij q_i,  dQ_i = scale sum_j dS_ij k_j,
// as three kernels, none with atomics: D; dK and dV per key tile; dQ per
// query tile. The two tiled kernels each recompute S and dO V^T for their
// tile pairs (two more products than with atomic dQ, but deterministic).
#include <algorithm>

#include "attention_common.cuh"

namespace mk::ops::cuda {
namespace attn {
namespace {

// delta[bh*len_q + i] = dO_i . O_i, one warp per row.
__global__ void __launch_bounds__(256) delta_kernel(const Args a, float* delta) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  const int64_t rows = int64_t(a.bh) * a.len_q;
  for (int64_t r = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows;
       r += warps) {
    const int i = int(r % a.len_q);
    const int bh = int(r / a.len_q);
    const int64_t off = q_off(a, bh / a.heads, i, bh % a.heads);
    float s = 0.f;
    for (int d = lane; d < a.head_dim; d += 32) s = fmaf(a.dout[off + d], a.o[off + d], s);
    s = warp_sum(s);
    if (lane == 0) delta[r] = s;
  }
}

// One block: keys j0 .. j0 + kBc - 1 of one (b, h) (for each bh of the
// block's y stride); loops over the query tiles that see any of them.
// Shared: K, V (kBc, kD+4); Q, dO (kBr, kD+4); P^T, dS^T (kBc, kBr+4);
// lse (log2 domain) and D of the query tile (kBr each).
// A thread owns key rows ty*TM + i and, in the score tile, queries tx + 8n.
template <int kD, int kBc, int kBr>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(const Args a) {
  constexpr int TM = kBc / 16, TN = kBr / 8, kDc = kD / 32;
  constexpr int kLd = kD + 4, kLdP = kBr + 4;
  extern __shared__ float4 smem4[];
  float* Ks = reinterpret_cast<float*>(smem4);
  float* Vs = Ks + kBc * kLd;
  float* Qs = Vs + kBc * kLd;
  float* dOs = Qs + kBr * kLd;
  float* Pt = dOs + kBr * kLd;
  float* dSt = Pt + kBc * kLdP;
  float* lse_s = dSt + kBc * kLdP;
  float* dl_s = lse_s + kBr;

  const int tid = threadIdx.x, ty = tid >> 3, tx = tid & 7;
  const int hd = a.head_dim;
  const int j0 = blockIdx.x * kBc;
  const int rows_k = min(kBc, a.len_k - j0);
  // First query that sees key j0: j0 <= i + q_offset.
  const int64_t i_first = j0 - a.q_offset > 0 ? j0 - a.q_offset : 0;
  const int qt0 = int(i_first / kBr);  // >= the number of query tiles if no query sees j0

  for (int bh = blockIdx.y; bh < a.bh; bh += gridDim.y) {
    const int b = bh / a.heads, h = bh % a.heads;
    __syncthreads();  // the previous bh's readers of Ks, Vs are done
    load_tile<kBc, kD, kLd>(Ks, a.k, kv_off(a, b, j0, h), a.kv_st, rows_k, hd);
    load_tile<kBc, kD, kLd>(Vs, a.v, kv_off(a, b, j0, h), a.kv_st, rows_k, hd);

    float dk[TM][4 * kDc], dv[TM][4 * kDc];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int c = 0; c < 4 * kDc; ++c) dk[i][c] = dv[i][c] = 0.f;

    for (int i0 = qt0 * kBr; i0 < a.len_q; i0 += kBr) {
      const int rows_q = min(kBr, a.len_q - i0);
      __syncthreads();  // the last tile's readers of Qs, dOs, Pt, dSt, lse_s, dl_s are done
      load_tile<kBr, kD, kLd>(Qs, a.q, q_off(a, b, i0, h), a.q_st, rows_q, hd);
      load_tile<kBr, kD, kLd>(dOs, a.dout, q_off(a, b, i0, h), a.q_st, rows_q, hd);
      for (int r = tid; r < kBr; r += kThreads) {
        const bool on = r < rows_q;
        const int64_t at = int64_t(bh) * a.len_q + i0 + r;
        lse_s[r] = on ? a.lse[at] * kLog2e : 0.f;
        dl_s[r] = on ? a.delta[at] : 0.f;
      }
      __syncthreads();

      float st[TM][TN], dpt[TM][TN];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int n = 0; n < TN; ++n) st[i][n] = dpt[i][n] = 0.f;
      mma_abt<TM, TN, kD, kLd, kLd>(Ks, Qs, ty, tx, st);    // S^T = K Q^T
      mma_abt<TM, TN, kD, kLd, kLd>(Vs, dOs, ty, tx, dpt);  // dP^T = V dO^T

#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int r = ty * TM + i;
        const int64_t j = j0 + r;
#pragma unroll
        for (int n = 0; n < TN; ++n) {
          const int c = tx + 8 * n;
          const int64_t qi = i0 + c;
          const bool on = c < rows_q && j <= qi + a.q_offset;  // then j < len_k too
          const float p = on ? exp2f(st[i][n] * a.sl2 - lse_s[c]) : 0.f;
          Pt[r * kLdP + c] = p;
          dSt[r * kLdP + c] = on ? p * (dpt[i][n] - dl_s[c]) : 0.f;  // 0 even if v_j is not finite
        }
      }
      __syncthreads();
      mma_ab<TM, kDc, kBr, kLdP, kLd>(Pt, dOs, ty, tx, dv);  // dV += P^T dO
      mma_ab<TM, kDc, kBr, kLdP, kLd>(dSt, Qs, ty, tx, dk);  // dK += dS^T Q
    }

    store_rows<TM, kDc>(a.dk, dk, a.scale, j0, a.len_k, hd, ty, tx,
                        [&](int64_t j) { return kv_off(a, b, j, h); });
    store_rows<TM, kDc>(a.dv, dv, 1.f, j0, a.len_k, hd, ty, tx,
                        [&](int64_t j) { return kv_off(a, b, j, h); });
  }
}

// One block: queries i0 .. i0 + kBr - 1 of one (b, h); loops over the key
// tiles they see. Shared: Q, dO (kBr, kD+4); K, V (kBc, kD+4); dS (kBr, kBc+4).
// A thread owns query rows ty*TM + i and, in the score tile, keys tx + 8n.
template <int kD, int kBr, int kBc>
__global__ void __launch_bounds__(kThreads) dq_kernel(const Args a) {
  constexpr int TM = kBr / 16, TN = kBc / 8, kDc = kD / 32;
  constexpr int kLd = kD + 4, kLdS = kBc + 4;
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);
  float* dOs = Qs + kBr * kLd;
  float* Ks = dOs + kBr * kLd;
  float* Vs = Ks + kBc * kLd;
  float* dSs = Vs + kBc * kLd;

  const int tid = threadIdx.x, ty = tid >> 3, tx = tid & 7;
  const int hd = a.head_dim;
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kBr;  // the longest tiles first
  const int rows_q = min(kBr, a.len_q - i0);
  const int64_t kmax = int64_t(i0 + rows_q - 1) + a.q_offset;  // last key seen (< len_k)
  const int n_kt = int(kmax / kBc) + 1;

  for (int bh = blockIdx.y; bh < a.bh; bh += gridDim.y) {
    const int b = bh / a.heads, h = bh % a.heads;
    __syncthreads();  // the previous bh's readers of Qs, dOs are done
    load_tile<kBr, kD, kLd>(Qs, a.q, q_off(a, b, i0, h), a.q_st, rows_q, hd);
    load_tile<kBr, kD, kLd>(dOs, a.dout, q_off(a, b, i0, h), a.q_st, rows_q, hd);
    float lse2[TM], dl[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int r = ty * TM + i;
      const int64_t at = int64_t(bh) * a.len_q + i0 + r;
      lse2[i] = r < rows_q ? a.lse[at] * kLog2e : 0.f;
      dl[i] = r < rows_q ? a.delta[at] : 0.f;
    }
    float dq[TM][4 * kDc];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int c = 0; c < 4 * kDc; ++c) dq[i][c] = 0.f;

    for (int kt = 0; kt < n_kt; ++kt) {
      const int j0 = kt * kBc;
      const int rows_k = kmax + 1 - j0 < kBc ? int(kmax + 1 - j0) : kBc;
      __syncthreads();  // the last tile's readers of Ks, Vs, dSs are done
      load_tile<kBc, kD, kLd>(Ks, a.k, kv_off(a, b, j0, h), a.kv_st, rows_k, hd);
      load_tile<kBc, kD, kLd>(Vs, a.v, kv_off(a, b, j0, h), a.kv_st, rows_k, hd);
      __syncthreads();

      float s[TM][TN], dp[TM][TN];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int n = 0; n < TN; ++n) s[i][n] = dp[i][n] = 0.f;
      mma_abt<TM, TN, kD, kLd, kLd>(Qs, Ks, ty, tx, s);    // S = Q K^T
      mma_abt<TM, TN, kD, kLd, kLd>(dOs, Vs, ty, tx, dp);  // dP = dO V^T

#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int r = ty * TM + i;
        const int64_t last = int64_t(i0 + r) + a.q_offset;
#pragma unroll
        for (int n = 0; n < TN; ++n) {
          const int c = tx + 8 * n;
          const bool on = r < rows_q && j0 + c <= last;  // then j < len_k too
          const float p = on ? exp2f(s[i][n] * a.sl2 - lse2[i]) : 0.f;
          dSs[r * kLdS + c] = on ? p * (dp[i][n] - dl[i]) : 0.f;
        }
      }
      __syncthreads();
      mma_ab<TM, kDc, kBc, kLdS, kLd>(dSs, Ks, ty, tx, dq);  // dQ += dS K
    }

    store_rows<TM, kDc>(a.dq, dq, a.scale, i0, a.len_q, hd, ty, tx,
                        [&](int64_t i) { return q_off(a, b, i, h); });
  }
}

template <int kD>
void launch_bwd(const Args& a, stream_t stream) {
  using T = Tiles<kD>;
  {
    constexpr int kBc = T::kDkvK, kBr = T::kDkvQ;
    constexpr size_t smem = sizeof(float) * (2 * size_t(kBc) * (kD + 4) +
                                             2 * size_t(kBr) * (kD + 4) +
                                             2 * size_t(kBc) * (kBr + 4) + 2 * size_t(kBr));
    auto kernel = dkdv_kernel<kD, kBc, kBr>;
    allow_smem(kernel, smem);
    const dim3 grid(unsigned((a.len_k + kBc - 1) / kBc), bh_blocks(a.bh));
    kernel<<<grid, kThreads, smem, stream>>>(a);
    MK_CUDA_LAUNCH_CHECK("cuda::attention_backward (dk, dv)");
  }
  {
    constexpr int kBr = T::kDqQ, kBc = T::kDqK;
    constexpr size_t smem = sizeof(float) * (2 * size_t(kBr) * (kD + 4) +
                                             2 * size_t(kBc) * (kD + 4) +
                                             size_t(kBr) * (kBc + 4));
    auto kernel = dq_kernel<kD, kBr, kBc>;
    allow_smem(kernel, smem);
    const dim3 grid(unsigned((a.len_q + kBr - 1) / kBr), bh_blocks(a.bh));
    kernel<<<grid, kThreads, smem, stream>>>(a);
    MK_CUDA_LAUNCH_CHECK("cuda::attention_backward (dq)");
  }
}

}  // namespace
}  // namespace attn

void attention_backward(const mk::ops::AttentionParams<float>& p, const float* dout, float* dq,
                        float* dk, float* dv, stream_t stream) {
  attn::check(p, "cuda::attention_backward");
  MK_CHECK(p.lse, "cuda::attention_backward: the forward's logsumexp (lse) is required");
  MK_CHECK(dout && dq && dk && dv, "cuda::attention_backward: dout, dq, dk and dv are required");
  mk::cuda::detail::require_device("cuda::attention_backward");
  attn::Args a = attn::make_args(p);
  a.dout = dout;
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  const size_t rows = size_t(a.bh) * size_t(p.len_q);
  mk::cuda::DeviceBuffer<float> delta(rows, stream);
  a.delta = delta.data();
  constexpr int kDeltaThreads = 256;
  attn::delta_kernel<<<mk::cuda::detail::grid_for(rows * 32, kDeltaThreads), kDeltaThreads, 0,
                       stream>>>(a, delta.data());
  MK_CUDA_LAUNCH_CHECK("cuda::attention_backward (delta)");
  attn::dispatch_head_dim(p.head_dim, [&](auto kd) { attn::launch_bwd<decltype(kd)::value>(a, stream); });
}

}  // namespace mk::ops::cuda
