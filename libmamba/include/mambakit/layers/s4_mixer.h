// S4 mixer (Gu et al. 2022, "Efficiently Modeling Long Sequences with
// Structured State Spaces"): a diagonal-plus-low-rank SSM per channel
// h (H = d_model) with N/2 complex states (N = s4_d_state), in the S4 block
// of SSMConvMixer.
//   A = Lambda - P P^*, Lambda[h,n] = -exp(log_A_real[h,n]) + i A_imag[h,n]
//   bilinear discretisation with dt = exp(log_dt)
//   CNN mode: Cauchy kernel + Woodbury at the roots of unity, inverse FFT
//   (ops/dplr_kernel.h); RNN mode: x <- Abar x + Bbar u, y = 2 Re(C x).
// C is the SSM's own output matrix: the truncation C~ = C (I - Abar^L) of
// S4's Algorithm 1 is computed for each length (so any L gives the same
// SSM, and RNN and CNN modes agree), not stored as the parameter.
// Init HiPPO-LegS (layers/hippo.h): Lambda, P, B from its NPLR form, the
// same for every channel; C complex N(0, 1/2) per part; log_dt logU(dt_min, dt_max).
// Parameters under the prefix (no weight decay on any SSM parameter):
//   log_dt (H), log_A_real (H, N/2), A_imag (H, N/2),
//   P (H, N/2, 2), B (H, N/2, 2), C (H, N/2, 2) (complex as (re, im);
//   C is (2, H, N/2, 2) when bidirectional), then D, output_linear.
#pragma once
#include "mambakit/layers/ssm_conv_mixer.h"

namespace mk {

template <typename T>
class S4Mixer : public SSMConvMixer<T> {
 public:
  void kernel(const ParamStore<T>& ps, int len, T* K) const override;

 protected:
  const char* kind() const override { return "s4"; }
  void declare_ssm(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) override;
  void init_ssm(ParamStore<T>& ps, std::mt19937_64& rng) const override;
  void kernel_backward(ParamStore<T>& ps, int len, const T* dK) override;
  void ssm_step(const ParamStore<T>& ps, int batch, const T* u, T* state, T* y) const override;

 private:
  // dt (H) and Lambda (H, N/2, complex) from the parameters, into dt_, Lam_.
  void dt_and_Lambda(const ParamStore<T>& ps) const;
  size_t log_dt_ = 0, log_A_real_ = 0, A_imag_ = 0, P_ = 0, B_ = 0, C_ = 0;
  mutable Buf<T> dt_, Lam_;
  Buf<T> ddt_, dLam_, dP_, dB_, dC_;
};

}  // namespace mk
