#include "mambakit/layers/s4_mixer.h"

#include <cmath>

#include "mambakit/layers/hippo.h"
#include "mambakit/ops/dplr_kernel.h"

namespace mk {

template <typename T>
void S4Mixer<T>::declare_ssm(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) {
  const int H = this->H_, N2 = this->N2_;
  log_dt_ = ps.declare(prefix + ".log_dt", {H}, false);
  log_A_real_ = ps.declare(prefix + ".log_A_real", {H, N2}, false);
  A_imag_ = ps.declare(prefix + ".A_imag", {H, N2}, false);
  P_ = ps.declare(prefix + ".P", {H, N2, 2}, false);
  B_ = ps.declare(prefix + ".B", {H, N2, 2}, false);
  C_ = this->copies_ == 1 ? ps.declare(prefix + ".C", {H, N2, 2}, false)
                          : ps.declare(prefix + ".C", {2, H, N2, 2}, false);
}

template <typename T>
void S4Mixer<T>::init_ssm(ParamStore<T>& ps, std::mt19937_64& rng) const {
  const int H = this->H_, N2 = this->N2_;
  const HippoNplr nplr = hippo_legs_nplr(2 * N2);
  T* p = ps.data();
  ssm_detail::init_log_dt(p + log_dt_, H, this->dt_min_, this->dt_max_, rng);
  for (int h = 0; h < H; ++h)
    for (int n = 0; n < N2; ++n) {
      const size_t i = size_t(h) * N2 + n;
      p[log_A_real_ + i] = T(std::log(-nplr.Lambda[n].real()));
      p[A_imag_ + i] = T(nplr.Lambda[n].imag());
      p[P_ + 2 * i] = T(nplr.P[n].real());
      p[P_ + 2 * i + 1] = T(nplr.P[n].imag());
      p[B_ + 2 * i] = T(nplr.B[n].real());
      p[B_ + 2 * i + 1] = T(nplr.B[n].imag());
    }
  ssm_detail::init_complex_normal(p + C_, size_t(this->copies_) * H * N2, rng);
}

template <typename T>
void S4Mixer<T>::dt_and_Lambda(const ParamStore<T>& ps, std::vector<T>& dt,
                               std::vector<std::complex<T>>& Lambda) const {
  const int H = this->H_, N2 = this->N2_;
  const T* p = ps.data();
  dt.resize(H);
  Lambda.resize(size_t(H) * N2);
  for (int h = 0; h < H; ++h) dt[h] = std::exp(p[log_dt_ + h]);
  for (size_t i = 0; i < Lambda.size(); ++i) Lambda[i] = {-std::exp(p[log_A_real_ + i]), p[A_imag_ + i]};
}

template <typename T>
void S4Mixer<T>::kernel(const ParamStore<T>& ps, int len, T* K) const {
  std::vector<T> dt;
  std::vector<std::complex<T>> Lam;
  dt_and_Lambda(ps, dt, Lam);
  ops::dplr_kernel_forward(ops::DplrKernelShape{this->H_, this->N2_, len, this->copies_}, dt.data(),
                           Lam.data(), cplx(ps, P_), cplx(ps, B_), cplx(ps, C_), K);
}

template <typename T>
void S4Mixer<T>::kernel_backward(ParamStore<T>& ps, int len, const T* dK) {
  const int H = this->H_, N2 = this->N2_;
  std::vector<T> dt;
  std::vector<std::complex<T>> Lam;
  dt_and_Lambda(ps, dt, Lam);
  const size_t n = size_t(H) * N2;
  ddt_.resize(H);
  dLam_.resize(n);
  dP_.resize(n);
  dB_.resize(n);
  dC_.resize(size_t(this->copies_) * n);
  ops::dplr_kernel_backward(ops::DplrKernelShape{H, N2, len, this->copies_}, dt.data(), Lam.data(),
                            cplx(ps, P_), cplx(ps, B_), cplx(ps, C_), dK, ddt_.data(), dLam_.data(),
                            dP_.data(), dB_.data(), dC_.data());
  T* g = ps.grad();
  for (int h = 0; h < H; ++h) g[log_dt_ + h] += ddt_[h] * dt[h];
  for (size_t i = 0; i < n; ++i) {
    g[log_A_real_ + i] += dLam_[i].real() * Lam[i].real();
    g[A_imag_ + i] += dLam_[i].imag();
  }
  auto add = [&](size_t off, const std::vector<std::complex<T>>& d) {
    for (size_t i = 0; i < d.size(); ++i) {
      g[off + 2 * i] += d[i].real();
      g[off + 2 * i + 1] += d[i].imag();
    }
  };
  add(P_, dP_);
  add(B_, dB_);
  add(C_, dC_);
}

template <typename T>
void S4Mixer<T>::ssm_step(const ParamStore<T>& ps, int batch, const T* u, std::complex<T>* state,
                          T* y) const {
  std::vector<T> dt;
  std::vector<std::complex<T>> Lam;
  dt_and_Lambda(ps, dt, Lam);
  ops::dplr_step(ops::DplrKernelShape{this->H_, this->N2_, 1, 1}, batch, dt.data(), Lam.data(),
                 cplx(ps, P_), cplx(ps, B_), cplx(ps, C_), u, state, y);
}

template class S4Mixer<float>;
template class S4Mixer<double>;

}  // namespace mk
