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
void S4Mixer<T>::dt_and_Lambda(const ParamStore<T>& ps) const {
  const int H = this->H_, N2 = this->N2_;
  Backend<T>& be = ps.backend();
  dt_.resize(be, H);
  Lam_.resize(be, size_t(2) * H * N2);
  be.ssm_diag_prepare(H, N2, ps.data() + log_dt_, ps.data() + log_A_real_, ps.data() + A_imag_,
                      dt_.data(), Lam_.data());
}

template <typename T>
void S4Mixer<T>::kernel(const ParamStore<T>& ps, int len, T* K) const {
  dt_and_Lambda(ps);
  ps.backend().dplr_kernel_forward(ops::DplrKernelShape{this->H_, this->N2_, len, this->copies_},
                                   dt_.data(), Lam_.data(), ps.data() + P_, ps.data() + B_,
                                   ps.data() + C_, K);
}

template <typename T>
void S4Mixer<T>::kernel_backward(ParamStore<T>& ps, int len, const T* dK) {
  const int H = this->H_, N2 = this->N2_;
  Backend<T>& be = ps.backend();
  dt_and_Lambda(ps);
  const size_t n = size_t(2) * H * N2;  // reals in an (H, N/2) complex array
  ddt_.resize(be, H);
  dLam_.resize(be, n);
  dP_.resize(be, n);
  dB_.resize(be, n);
  dC_.resize(be, size_t(this->copies_) * n);
  be.dplr_kernel_backward(ops::DplrKernelShape{H, N2, len, this->copies_}, dt_.data(), Lam_.data(),
                          ps.data() + P_, ps.data() + B_, ps.data() + C_, dK, ddt_.data(), dLam_.data(),
                          dP_.data(), dB_.data(), dC_.data());
  T* g = ps.grad();
  be.ssm_diag_prepare_backward(H, N2, dt_.data(), Lam_.data(), ddt_.data(), dLam_.data(), g + log_dt_,
                               g + log_A_real_, g + A_imag_);
  be.axpy(T(1), dP_.data(), g + P_, n);
  be.axpy(T(1), dB_.data(), g + B_, n);
  be.axpy(T(1), dC_.data(), g + C_, dC_.size());
}

template <typename T>
void S4Mixer<T>::ssm_step(const ParamStore<T>& ps, int batch, const T* u, T* state, T* y) const {
  dt_and_Lambda(ps);
  ps.backend().dplr_step(ops::DplrKernelShape{this->H_, this->N2_, 1, 1}, batch, dt_.data(),
                         Lam_.data(), ps.data() + P_, ps.data() + B_, ps.data() + C_, u, state, y);
}

template class S4Mixer<float>;
template class S4Mixer<double>;

}  // namespace mk
