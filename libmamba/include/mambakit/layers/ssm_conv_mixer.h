// The S4 repository's standard block around a convolutional SSM (shared by
// S4D and S4), on channels H = d_model:
//   y   = K * u + D u          K the SSM kernel (causal; plus an anti-causal
//                              kernel on the reversed sequence when
//                              bidirectional), by FFT convolution
//   out = GLU(output_linear(GELU(y)))   output_linear: H -> 2H with bias
// Subclasses supply the kernel (CNN mode, from their parameters), its
// backward, and the recurrent step (RNN mode) of the same SSM.
// Parameters under the prefix: the subclass's SSM parameters, then
//   D (H), output_linear.weight (2H, H), output_linear.bias (2H).
// Saved for the backward: the input u (kept by the caller), the kernel
// (copies, H, L), y before GELU, GELU(y), and the output linear's result.
#pragma once
#include <complex>
#include <random>
#include <string>
#include <vector>

#include "mambakit/layers/linear.h"
#include "mambakit/layers/mixer.h"

namespace mk {

template <typename T>
class SSMConvMixer : public Mixer<T> {
 public:
  void declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) override;
  // D ~ N(0, 1), output_linear as PyTorch's default (U(+-1/sqrt(H))), then
  // the subclass's SSM init.
  void init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const override;
  // x (B, L, H) -> out (B, L, H). Keeps x's address for the backward.
  void forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) override;
  void backward(ParamStore<T>& ps, const T* dout, T* dx) override;
  // bufs[0]: the SSM state (B, H, N/2) complex, as interleaved (re, im).
  MixerState<T> make_state(int batch) const override;
  // Throws mk::Error for a bidirectional mixer (it needs the future).
  void step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) override;

  int channels() const { return H_; }
  int half_state() const { return N2_; }
  int copies() const { return copies_; }
  // The kernel of the SSM for length L: K (copies, H, L), on the
  // parameters' device.
  virtual void kernel(const ParamStore<T>& ps, int len, T* K) const = 0;

 protected:
  virtual const char* kind() const = 0;
  virtual void declare_ssm(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) = 0;
  virtual void init_ssm(ParamStore<T>& ps, std::mt19937_64& rng) const = 0;
  // dK (copies, H, L) -> SSM parameter gradients accumulated.
  virtual void kernel_backward(ParamStore<T>& ps, int len, const T* dK) = 0;
  // u (B, H), state (B, H, N/2) complex as (re, im) pairs, advanced ->
  // y (B, H) without the D term.
  virtual void ssm_step(const ParamStore<T>& ps, int batch, const T* u, T* state, T* y) const = 0;

  int H_ = 0, N2_ = 0, copies_ = 1;
  double dt_min_ = 1e-3, dt_max_ = 1e-1;

 private:
  size_t D_ = 0;
  Linear<T> out_;
  int B_ = 0, L_ = 0;
  const T* x_in_ = nullptr;
  Buf<T> K_, y_, a_, z_;
  Buf<T> dz_, da_, dy_, dK_;
};

// Helpers shared by the SSM mixers.
namespace ssm_detail {
// log dt ~ U(log dt_min, log dt_max), one per channel.
template <typename T>
void init_log_dt(T* p, int H, double dt_min, double dt_max, std::mt19937_64& rng);
// Complex N(0, 1/2) per real and imaginary part (torch.randn's cfloat).
template <typename T>
void init_complex_normal(T* p, size_t n_complex, std::mt19937_64& rng);
}  // namespace ssm_detail

}  // namespace mk
