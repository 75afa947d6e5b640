// Attention forward on CUDA (see mambakit/ops/cuda/attention.h): the tiled
// FlashAttention-2 kernel for len_q > 1 and a split-K kernel for one query.
#include <algorithm>

#include "attention_common.cuh"

namespace mk::ops::cuda {
namespace attn {
namespace {

// One block: queries i0 .. i0 + kBr - 1 of one (b, h) (for each bh of the
// block's y stride). Shared: Q (kBr, kD+4), K (kBc, kD+4), V (kBc, kD),
// P (kBr, kBc+4).
template <int kD, int kBr, int kBc>
__global__ void __launch_bounds__(kThreads) fwd_kernel(const Args a) {
  constexpr int TM = kBr / 16, TN = kBc / 8, kDc = kD / 32;
  constexpr int kLdQ = kD + 4, kLdK = kD + 4, kLdV = kD, kLdP = kBc + 4;
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);
  float* Ks = Qs + kBr * kLdQ;
  float* Vs = Ks + kBc * kLdK;
  float* Ps = Vs + kBc * kLdV;

  const int tid = threadIdx.x, ty = tid >> 3, tx = tid & 7;
  const int hd = a.head_dim;
  // Tiles with the most keys (the last queries) start first.
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kBr;
  const int rows_q = min(kBr, a.len_q - i0);
  // Last key any row of this tile sees (< len_k by the host check).
  const int64_t kmax = int64_t(i0 + rows_q - 1) + a.q_offset;
  const int n_kt = int(kmax / kBc) + 1;

  for (int bh = blockIdx.y; bh < a.bh; bh += gridDim.y) {
    const int b = bh / a.heads, h = bh % a.heads;
    __syncthreads();  // the previous bh's readers of Qs are done
    load_tile<kBr, kD, kLdQ>(Qs, a.q, q_off(a, b, i0, h), a.q_st, rows_q, hd);

    float m[TM], l[TM], o[TM][4 * kDc];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      m[i] = -INFINITY;
      l[i] = 0.f;
#pragma unroll
      for (int c = 0; c < 4 * kDc; ++c) o[i][c] = 0.f;
    }

    for (int kt = 0; kt < n_kt; ++kt) {
      const int j0 = kt * kBc;
      const int rows_k = kmax + 1 - j0 < kBc ? int(kmax + 1 - j0) : kBc;
      __syncthreads();  // the last tile's readers of Ks, Vs, Ps are done
      load_tile<kBc, kD, kLdK>(Ks, a.k, kv_off(a, b, j0, h), a.kv_st, rows_k, hd);
      load_tile<kBc, kD, kLdV>(Vs, a.v, kv_off(a, b, j0, h), a.kv_st, rows_k, hd);
      __syncthreads();

      float s[TM][TN];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int n = 0; n < TN; ++n) s[i][n] = 0.f;
      mma_abt<TM, TN, kD, kLdQ, kLdK>(Qs, Ks, ty, tx, s);

#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int r = ty * TM + i;
        const int64_t last = int64_t(i0 + r) + a.q_offset;  // last key row i0 + r sees
        float mt = -INFINITY;
#pragma unroll
        for (int n = 0; n < TN; ++n) {
          const int64_t j = j0 + tx + 8 * n;
          s[i][n] = (j <= last && j <= kmax) ? s[i][n] * a.sl2 : -INFINITY;
          mt = fmaxf(mt, s[i][n]);
        }
        mt = group8_max(mt);
        const float mn = fmaxf(m[i], mt);
        const float base = mn == -INFINITY ? 0.f : mn;  // a row with nothing seen yet
        const float corr = exp2f(m[i] - base);           // 0 on the first tile
        l[i] *= corr;
#pragma unroll
        for (int c = 0; c < 4 * kDc; ++c) o[i][c] *= corr;
#pragma unroll
        for (int n = 0; n < TN; ++n) {
          const float p = exp2f(s[i][n] - base);
          l[i] += p;  // this thread's share of the row sum; summed over the group at the end
          Ps[r * kLdP + tx + 8 * n] = p;
        }
        m[i] = mn;
      }
      __syncthreads();
      mma_ab<TM, kDc, kBc, kLdP, kLdV>(Ps, Vs, ty, tx, o);
    }

    // Every stored row sees key 0, so its sum is >= 1.
    float inv[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      l[i] = group8_sum(l[i]);
      inv[i] = 1.f / l[i];
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int row = i0 + ty * TM + i;
      if (row >= a.len_q) continue;
      float* dst = a.o + q_off(a, b, row, h);
#pragma unroll
      for (int mm = 0; mm < kDc; ++mm)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int d = 32 * mm + 4 * tx + e;
          if (d < hd) dst[d] = o[i][4 * mm + e] * inv[i];
        }
      if (a.lse && tx == 0) a.lse[int64_t(bh) * a.len_q + row] = m[i] * kLn2 + logf(l[i]);
    }
  }
}

template <int kD>
constexpr size_t fwd_smem_bytes() {
  using T = Tiles<kD>;
  return sizeof(float) * (size_t(T::kFwdQ) * (kD + 4) + size_t(T::kFwdK) * (kD + 4) +
                          size_t(T::kFwdK) * kD + size_t(T::kFwdQ) * (T::kFwdK + 4));
}

template <int kD>
void launch_fwd(const Args& a, int len_q, stream_t stream) {
  using T = Tiles<kD>;
  constexpr size_t smem = fwd_smem_bytes<kD>();
  auto kernel = fwd_kernel<kD, T::kFwdQ, T::kFwdK>;
  allow_smem(kernel, smem);
  const dim3 grid(unsigned((len_q + T::kFwdQ - 1) / T::kFwdQ), bh_blocks(a.bh));
  kernel<<<grid, kThreads, smem, stream>>>(a);
  MK_CUDA_LAUNCH_CHECK("cuda::attention_forward");
}

// ---------------------------------------------------------------------------
// One query per (b, h) (len_q == 1): the visible keys 0 .. q_offset are cut
// into n_split chunks of `chunk` keys, block (s, bh) takes chunk s; within
// the block, warp w takes keys w, w + 4, ... of the chunk (kU at a time, the
// loads of all kU issued before their dot products) with its own online
// softmax; the 4 warps are merged through shared memory. With one chunk the
// block writes o and lse; otherwise it writes (max, sum, unnormalised
// output) to ws (bh, n_split, kD + 2) and combine_kernel merges the chunks
// in order.
// ---------------------------------------------------------------------------

constexpr int kWarps = kThreads / 32;
constexpr int kU = 4;  // keys in flight per warp

template <int kD>
__global__ void __launch_bounds__(kThreads) decode_kernel(const Args a, int n_split, int64_t chunk,
                                                          float* ws) {
  constexpr int kDc = kD / 32;
  __shared__ float sm_m[kWarps], sm_l[kWarps], sm_acc[kWarps][kD];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int hd = a.head_dim;
  const int s = blockIdx.x;
  const int64_t js = int64_t(s) * chunk;
  const int64_t je = js + chunk < a.q_offset + 1 ? js + chunk : a.q_offset + 1;  // > js (host)

  for (int bh = blockIdx.y; bh < a.bh; bh += gridDim.y) {
    const int b = bh / a.heads, h = bh % a.heads;
    const float* qp = a.q + q_off(a, b, 0, h);
    const float* kb = a.k + kv_off(a, b, 0, h);
    const float* vb = a.v + kv_off(a, b, 0, h);
    float qr[kDc], acc[kDc];
#pragma unroll
    for (int mm = 0; mm < kDc; ++mm) {
      const int d = lane + 32 * mm;
      qr[mm] = d < hd ? qp[d] : 0.f;
      acc[mm] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int64_t j = js + warp; j < je; j += kWarps * kU) {
      float kr[kU][kDc], vr[kU][kDc], sc[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int64_t jj = j + u * kWarps;
        const bool on = jj < je;
#pragma unroll
        for (int mm = 0; mm < kDc; ++mm) {
          const int d = lane + 32 * mm;
          kr[u][mm] = on && d < hd ? kb[jj * a.kv_st + d] : 0.f;
          vr[u][mm] = on && d < hd ? vb[jj * a.kv_st + d] : 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        float t = 0.f;
#pragma unroll
        for (int mm = 0; mm < kDc; ++mm) t = fmaf(qr[mm], kr[u][mm], t);
        sc[u] = t;
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int u = 0; u < kU; ++u) sc[u] += __shfl_xor_sync(kFullMask, sc[u], o);
      float mx = m;
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        sc[u] = j + u * kWarps < je ? sc[u] * a.sl2 : -INFINITY;
        mx = fmaxf(mx, sc[u]);
      }
      // mx is finite: key j (u = 0) is always in range.
      const float corr = exp2f(m - mx);
      l *= corr;
#pragma unroll
      for (int mm = 0; mm < kDc; ++mm) acc[mm] *= corr;
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const float p = exp2f(sc[u] - mx);
        l += p;
#pragma unroll
        for (int mm = 0; mm < kDc; ++mm) acc[mm] = fmaf(p, vr[u][mm], acc[mm]);
      }
      m = mx;
    }

    __syncthreads();  // the previous bh's readers of sm_* are done
    if (lane == 0) {
      sm_m[warp] = m;
      sm_l[warp] = l;
    }
#pragma unroll
    for (int mm = 0; mm < kDc; ++mm) sm_acc[warp][lane + 32 * mm] = acc[mm];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm_m[w]);
    float L = 0.f, A = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = sm_m[w] == -INFINITY ? 0.f : exp2f(sm_m[w] - M);  // a warp with no key
      L = fmaf(f, sm_l[w], L);
      if (tid < kD) A = fmaf(f, sm_acc[w][tid], A);
    }
    if (n_split == 1) {
      if (tid < hd) a.o[q_off(a, b, 0, h) + tid] = A / L;
      if (tid == 0 && a.lse) a.lse[bh] = M * kLn2 + logf(L);
    } else {
      float* w = ws + (int64_t(bh) * n_split + s) * (kD + 2);
      if (tid < kD) w[2 + tid] = A;
      if (tid == 0) {
        w[0] = M;
        w[1] = L;
      }
    }
  }
}

template <int kD>
__global__ void __launch_bounds__(kThreads) combine_kernel(const Args a, int n_split,
                                                           const float* ws) {
  const int tid = threadIdx.x;
  for (int bh = blockIdx.x; bh < a.bh; bh += gridDim.x) {
    const int b = bh / a.heads, h = bh % a.heads;
    const float* w = ws + int64_t(bh) * n_split * (kD + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_split; ++s) M = fmaxf(M, w[s * (kD + 2)]);
    float L = 0.f, A = 0.f;
    for (int s = 0; s < n_split; ++s) {
      const float* ws_s = w + s * (kD + 2);
      const float f = exp2f(ws_s[0] - M);  // every chunk holds a key: ws_s[0] finite
      L = fmaf(f, ws_s[1], L);
      if (tid < kD) A = fmaf(f, ws_s[2 + tid], A);
    }
    if (tid < a.head_dim) a.o[q_off(a, b, 0, h) + tid] = A / L;
    if (tid == 0 && a.lse) a.lse[bh] = M * kLn2 + logf(L);
  }
}

int sm_count() {
  int dev = 0, n = 0;
  MK_CUDA_CHECK(cudaGetDevice(&dev));
  MK_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n > 0 ? n : 1;
}

template <int kD>
void launch_decode(const Args& a, stream_t stream) {
  const int64_t nvis = a.q_offset + 1;
  // Enough blocks for ~2 per SM, but at least 256 keys (64 per warp) a chunk.
  const int64_t want = std::max<int64_t>(1, (2 * int64_t(sm_count()) + a.bh - 1) / a.bh);
  int64_t n_split = std::min<int64_t>({want, (nvis + 255) / 256, 1024});
  n_split = std::max<int64_t>(n_split, 1);
  const int64_t chunk = (nvis + n_split - 1) / n_split;
  n_split = (nvis + chunk - 1) / chunk;  // every chunk non-empty
  const dim3 grid(unsigned(n_split), bh_blocks(a.bh));
  if (n_split == 1) {
    decode_kernel<kD><<<grid, kThreads, 0, stream>>>(a, 1, chunk, nullptr);
    MK_CUDA_LAUNCH_CHECK("cuda::attention_forward (decode)");
    return;
  }
  mk::cuda::DeviceBuffer<float> ws(size_t(a.bh) * size_t(n_split) * (kD + 2), stream);
  decode_kernel<kD><<<grid, kThreads, 0, stream>>>(a, int(n_split), chunk, ws.data());
  MK_CUDA_LAUNCH_CHECK("cuda::attention_forward (decode)");
  combine_kernel<kD><<<unsigned(std::min(a.bh, 65535 * 4)), kThreads, 0, stream>>>(
      a, int(n_split), ws.data());
  MK_CUDA_LAUNCH_CHECK("cuda::attention_forward (decode combine)");
}

}  // namespace
}  // namespace attn

void attention_forward(const mk::ops::AttentionParams<float>& p, stream_t stream) {
  attn::check(p, "cuda::attention_forward");
  mk::cuda::detail::require_device("cuda::attention_forward");
  const attn::Args a = attn::make_args(p);
  attn::dispatch_head_dim(p.head_dim, [&](auto kd) {
    constexpr int kD = decltype(kd)::value;
    if (p.len_q == 1)
      attn::launch_decode<kD>(a, stream);
    else
      attn::launch_fwd<kD>(a, p.len_q, stream);
  });
}

}  // namespace mk::ops::cuda
