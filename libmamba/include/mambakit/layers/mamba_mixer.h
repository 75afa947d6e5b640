// The Mamba mixer (one "S6" layer), forward + backward + recurrent step.
//   in_proj:  (B,L,Dm) -> x, z (B,L,Di)
//   conv1d:   causal depthwise (kernel d_conv, bias) on x, then SiLU -> u
//   x_proj:   u -> dt_in (R), B (N), C (N)
//   dt_proj:  dt_in -> (Di) + dt_bias, softplus -> delta
//   scan:     y = selective_scan(u, delta, A=-exp(A_log), B, C, D) * silu(z)
//   out_proj: y -> (B,L,Dm)
// Saved for the backward (all (B*L, .) row-major): the mixer's input (kept
// by the caller), x, z, conv output before SiLU, u, dt_in, B, C, the
// pre-softplus dt, delta, the gated scan output y, and the scan's chunk
// states (never the full B*L*Di*N state history).
#pragma once
#include <random>
#include <string>
#include <vector>

#include "mambakit/layers/linear.h"
#include "mambakit/layers/mixer.h"
#include "mambakit/model_config.h"
#include "mambakit/ops/selective_scan.h"
#include "mambakit/params.h"

namespace mk {

template <typename T>
class MambaMixer : public Mixer<T> {
 public:
  void declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) override;
  // Initialisation as mamba_ssm: S4D-real A, D = 1, dt bias from logU(dt_min,dt_max).
  void init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const override;

  // x (B, L, Dm) -> out (B, L, Dm). Keeps x's address for the backward.
  void forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) override;
  // dout (B, L, Dm) -> dx (B, L, Dm) written; parameter grads accumulated.
  void backward(ParamStore<T>& ps, const T* dout, T* dx) override;

  // State buffers: [0] conv window (B, Di, K), last K inputs oldest first;
  // [1] SSM state (B, Di, N).
  MixerState<T> make_state(int batch) const override;
  // One token: x_t (B, Dm) -> out_t (B, Dm), state advanced in place.
  void step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) override;

 private:
  int dm_ = 0, di_ = 0, n_ = 0, r_ = 0, k_ = 0;
  double dt_min_ = 1e-3, dt_max_ = 1e-1, dt_floor_ = 1e-4;
  Linear<T> in_x_, in_z_, xp_dt_, xp_B_, xp_C_, dt_proj_, out_proj_;
  Linear<T> in_proj_, x_proj_;  // the fused parameters the splits view
  size_t conv_w_ = 0, conv_b_ = 0, A_log_ = 0, D_ = 0;

  ops::SelectiveScanParams<T> scan_params(const ParamStore<T>& ps) const;

  // Saved activations of the last forward (on the parameters' device).
  int B_ = 0, L_ = 0;
  const T* x_in_ = nullptr;
  Buf<T> x_, z_, u_, dtin_, Bm_, Cm_, delta_, y_, states_, A_;
  Buf<T> xdbl_;  // x_proj's output (dt_in | B | C) before the split
  // Backward scratch. Each buffer keeps one size from step to step: a Buf
  // zero-fills whatever a resize adds, so sharing one between shapes cost a
  // memset per layer and step.
  Buf<T> dy_, du_, ddelta_, dz_, dB_, dC_, ddtin_, dA_;
  Buf<T> dxdbl_;  // d(dt_in | B | C)
  // step() scratch.
  Buf<T> sbuf_[13];
};

}  // namespace mk
