// Causal self-attention mixer of the Transformer++ baseline (the Mamba
// paper's strong Transformer recipe: RoPE, no biases, SwiGLU MLP in the
// next layer, RMSNorm in the residual blocks). H = n_heads heads of size
// Dh = d_model / H:
//   q, k, v = x Wq^T, x Wk^T, x Wv^T      (B, L, H, Dh)
//   q, k    = RoPE(q), RoPE(k)            (base rope_theta, positions 0..L-1)
//   o       = causal softmax(q k^T / sqrt(Dh)) v   (ops/attention.h, tiled)
//   out     = o Wo^T
// Parameters under the prefix (HF Llama names): q_proj.weight, k_proj.weight,
// v_proj.weight, o_proj.weight, each (d_model, d_model).
// Saved for the backward: the input (kept by the caller), rotated q and k,
// v, o and the per-row logsumexp (B, H, L): O(L) memory beyond activations.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "mambakit/layers/linear.h"
#include "mambakit/layers/mixer.h"
#include "mambakit/ops/attention.h"

namespace mk {

template <typename T>
class AttentionMixer : public Mixer<T> {
 public:
  void declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) override;
  // PyTorch's default Linear init U(+-1/sqrt(d_model)); o_proj also scaled
  // by 1/sqrt(n_layer) (GPT-2's residual scaling, as the Mamba mixer does).
  void init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const override;
  void forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) override;
  void backward(ParamStore<T>& ps, const T* dout, T* dx) override;
  // KV cache: bufs[0] rotated keys, bufs[1] values, each (T, B, d_model),
  // growing by one token per step; pos is the next token's RoPE position.
  MixerState<T> make_state(int batch) const override;
  void step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) override;

 private:
  int dm_ = 0, heads_ = 0, hd_ = 0;
  double theta_ = 10000.0;
  Linear<T> q_, k_, v_, o_;
  int B_ = 0, L_ = 0;
  const T* x_in_ = nullptr;
  Buf<T> q_buf_, k_buf_, v_buf_, o_buf_, lse_;
  Buf<T> do_, dq_, dk_, dv_, tmp_;
  Buf<T> step_q_, step_o_;
  ops::AttentionParams<T> params(int batch, int len);
};

}  // namespace mk
