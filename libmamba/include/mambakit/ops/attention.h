// Causal multi-head attention, memory-efficient (FlashAttention's plan on
// the CPU): each query row streams over its visible keys in tiles with an
// online softmax (running max and sum), so no (L, L) score matrix exists;
// the forward saves the row's logsumexp, from which the backward recomputes
// every probability exactly.
//   o_i = sum_{j visible} softmax_j(scale q_i . k_j) v_j,
//   key j is visible to query i iff j <= i + q_offset.
// Rows are addressed by strides, so the same kernel serves a training batch
// (q, k, v all (B, L, H, Dh)) and a KV cache ((T, B, H, Dh) keys and values).
#pragma once

namespace mk::ops {

template <typename T>
struct AttentionParams {
  int batch = 0, len_q = 0, len_k = 0, heads = 0, head_dim = 0;
  long q_offset = 0;  // causal shift: query i sees keys 0 .. i + q_offset
  T scale = T(0);     // usually 1/sqrt(head_dim)
  // q and o: element (b, i, h, d) at b*q_sb + i*q_st + h*head_dim + d
  const T* q = nullptr;
  T* o = nullptr;
  long q_sb = 0, q_st = 0;
  // k and v: element (b, j, h, d) at b*kv_sb + j*kv_st + h*head_dim + d
  const T* k = nullptr;
  const T* v = nullptr;
  long kv_sb = 0, kv_st = 0;
  T* lse = nullptr;  // (B, H, len_q) logsumexp of the scaled scores, or null
};

// o (and lse if set) written.
template <typename T>
void attention_forward(const AttentionParams<T>& p);

// Given the forward's p (with o and lse filled) and dO in o's layout:
// dq (q's layout), dk and dv (k's layout), all written.
template <typename T>
void attention_backward(const AttentionParams<T>& p, const T* dout, T* dq, T* dk, T* dv);

}  // namespace mk::ops
