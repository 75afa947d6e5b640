// Causal multi-head attention on CUDA, as mambakit/ops/attention.h: the same
// params struct, strides and semantics, fp32 only, device pointers.
//
//   o_i = sum_{j <= i + q_offset} softmax_j(scale q_i . k_j) v_j
//   q, o, dout, dq: element (b, i, h, d) at b*q_sb + i*q_st + h*head_dim + d
//   k, v, dk, dv:   element (b, j, h, d) at b*kv_sb + j*kv_st + h*head_dim + d
//   lse:            (B, H, len_q) logsumexp of the scaled scores
//
// Plan (FlashAttention-2 on fp32 SIMT cores). Forward: grid (query tiles,
// B*H); a block of 128 threads owns 64 queries of one (b, h), keeps its Q
// tile in shared memory and streams the visible K/V tiles through shared
// memory with an online softmax (running max and sum per row, in the log2
// domain); each thread owns a 4 x (tile/8) block of scores and a
// 4 x (head_dim/8) block of the output in registers. Only O and lse are
// written. A single query (len_q == 1, KV-cache decoding) takes a split-K
// path instead: the visible keys are cut into chunks over blocks (warps
// within a block take keys in turn), each chunk's (max, sum, partial output)
// is combined in a fixed order.
// Backward: no atomics, deterministic. D_i = dO_i . O_i first; then one
// kernel over key tiles (each block owns dK, dV of its keys and loops over
// the query tiles that see them, recomputing P from the saved lse) and one
// over query tiles (each block owns dQ of its queries and loops over the
// visible key tiles). No (L, L) matrix is ever stored.
//
// Supported: batch, heads, len_q, len_k >= 1 with batch*heads < 2^31;
// head_dim 1..128 (padded inside to 32, 64, 96 or 128); any strides; causal
// shift q_offset >= 0 with len_q - 1 + q_offset < len_k (as the CPU op).
// Anything else is refused with mk::Error before the device is touched.
#pragma once

#include "mambakit/cuda/device.h"
#include "mambakit/ops/attention.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

constexpr int kAttentionMaxHeadDim = 128;

// o (and lse if p.lse is set) written.
void attention_forward(const mk::ops::AttentionParams<float>& p, stream_t stream = nullptr);

// Given the forward's p (o and lse filled; p.lse is required) and dout in
// o's layout: dq (q's layout), dk and dv (k's layout) written, every row of
// them (keys no query sees get 0).
void attention_backward(const mk::ops::AttentionParams<float>& p, const float* dout, float* dq,
                        float* dk, float* dv, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
