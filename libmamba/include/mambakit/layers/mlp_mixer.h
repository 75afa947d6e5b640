// SwiGLU MLP (Shazeer 2020; the Transformer++ / Llama feed-forward), used as
// a mixer so a Transformer++ is the layer pattern [attention, mlp]:
//   out = down_proj(silu(gate_proj(x)) * up_proj(x))
// Width mlp_hidden (0: 8/3 d_model rounded up to a multiple of 8), no biases.
// Parameters under the prefix (HF Llama names): gate_proj.weight (F, Dm),
// up_proj.weight (F, Dm), down_proj.weight (Dm, F).
// Saved for the backward: the input (kept by the caller), gate and up
// outputs, and their SwiGLU product. step() is the same map on one token.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "mambakit/layers/linear.h"
#include "mambakit/layers/mixer.h"

namespace mk {

template <typename T>
class MLPMixer : public Mixer<T> {
 public:
  void declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) override;
  // U(+-1/sqrt(fan_in)); down_proj also scaled by 1/sqrt(n_layer).
  void init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const override;
  void forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) override;
  void backward(ParamStore<T>& ps, const T* dout, T* dx) override;
  MixerState<T> make_state(int batch) const override { return {}; }  // stateless
  void step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) override;

 private:
  int dm_ = 0, hidden_ = 0;
  Linear<T> gate_, up_, down_;
  int rows_ = 0;
  const T* x_in_ = nullptr;
  Buf<T> g_, u_, h_, dh_, dg_, du_;
};

}  // namespace mk
