// S4D mixer (diagonal S4; Gu et al. 2022, "On the Parameterization and
// Initialization of Diagonal State Space Models") in the S4 block of
// SSMConvMixer. Per channel h (H = d_model) and state n < N/2 (N = s4_d_state):
//   A[h,n] = -exp(log_A_real[h,n]) + i A_imag[h,n],  dt[h] = exp(log_dt[h])
//   ZOH: Abar = exp(dt A), Bbar = (Abar - 1)/A; B is fixed at 1 and folded
//   into C, as the S4 repository's S4D does.
//   CNN mode: K[l] = 2 Re sum_n C_n Bbar_n Abar_n^l (ops/s4d_kernel.h), then
//   FFT convolution; RNN mode: h <- Abar h + Bbar u, y = 2 Re(C h).
// Parameters under the prefix (no weight decay on any SSM parameter):
//   log_dt (H)          logU(dt_min, dt_max) init (ModelConfig dt_min/dt_max)
//   log_A_real (H, N/2) log(1/2)
//   A_imag (H, N/2)     S4D-Lin: pi n;  S4D-Inv: N/pi (N/(2n+1) - 1)
//   C (H, N/2, 2)       complex as (re, im), N(0, 1/2) each; (2, H, N/2, 2)
//                       when bidirectional: [0] causal, [1] anti-causal
//   then D, output_linear (see ssm_conv_mixer.h).
#pragma once
#include "mambakit/layers/ssm_conv_mixer.h"

namespace mk {

template <typename T>
class S4DMixer : public SSMConvMixer<T> {
 public:
  void kernel(const ParamStore<T>& ps, int len, T* K) const override;

 protected:
  const char* kind() const override { return "s4d"; }
  void declare_ssm(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) override;
  void init_ssm(ParamStore<T>& ps, std::mt19937_64& rng) const override;
  void kernel_backward(ParamStore<T>& ps, int len, const T* dK) override;
  void ssm_step(const ParamStore<T>& ps, int batch, const T* u, T* state, T* y) const override;

 private:
  // dt (H) and A (H, N/2, complex) from the parameters, into dt_ and A_.
  void dt_and_A(const ParamStore<T>& ps) const;
  std::string init_ = "lin";
  size_t log_dt_ = 0, log_A_real_ = 0, A_imag_ = 0, C_ = 0;
  mutable Buf<T> dt_, A_;
  Buf<T> ddt_, dA_, dC_;
};

}  // namespace mk
