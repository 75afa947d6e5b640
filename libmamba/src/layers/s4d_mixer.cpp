#include "mambakit/layers/s4d_mixer.h"

#include <cmath>

#include "mambakit/ops/s4d_kernel.h"

namespace mk {

template <typename T>
void S4DMixer<T>::declare_ssm(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) {
  init_ = cfg.s4d_init;
  const int H = this->H_, N2 = this->N2_;
  log_dt_ = ps.declare(prefix + ".log_dt", {H}, false);
  log_A_real_ = ps.declare(prefix + ".log_A_real", {H, N2}, false);
  A_imag_ = ps.declare(prefix + ".A_imag", {H, N2}, false);
  C_ = this->copies_ == 1 ? ps.declare(prefix + ".C", {H, N2, 2}, false)
                          : ps.declare(prefix + ".C", {2, H, N2, 2}, false);
}

template <typename T>
void S4DMixer<T>::init_ssm(ParamStore<T>& ps, std::mt19937_64& rng) const {
  const int H = this->H_, N2 = this->N2_, N = 2 * N2;
  T* p = ps.data();
  ssm_detail::init_log_dt(p + log_dt_, H, this->dt_min_, this->dt_max_, rng);
  for (int h = 0; h < H; ++h)
    for (int n = 0; n < N2; ++n) {
      p[log_A_real_ + size_t(h) * N2 + n] = T(std::log(0.5));
      const double im = init_ == "inv" ? N / M_PI * (double(N) / (2 * n + 1) - 1) : M_PI * n;
      p[A_imag_ + size_t(h) * N2 + n] = T(im);
    }
  ssm_detail::init_complex_normal(p + C_, size_t(this->copies_) * H * N2, rng);
}

template <typename T>
void S4DMixer<T>::dt_and_A(const ParamStore<T>& ps) const {
  const int H = this->H_, N2 = this->N2_;
  Backend<T>& be = ps.backend();
  dt_.resize(be, H);
  A_.resize(be, size_t(2) * H * N2);
  be.ssm_diag_prepare(H, N2, ps.data() + log_dt_, ps.data() + log_A_real_, ps.data() + A_imag_,
                      dt_.data(), A_.data());
}

template <typename T>
void S4DMixer<T>::kernel(const ParamStore<T>& ps, int len, T* K) const {
  dt_and_A(ps);
  ps.backend().s4d_kernel_forward(ops::S4DKernelShape{this->H_, this->N2_, len, this->copies_},
                                  dt_.data(), A_.data(), ps.data() + C_, K);
}

// dt = exp(log_dt): d log_dt = ddt dt; Re A = -exp(log_A_real): d log_A_real
// = Re(dA) Re(A) (ssm_diag_prepare_backward); C is its own parameter.
template <typename T>
void S4DMixer<T>::kernel_backward(ParamStore<T>& ps, int len, const T* dK) {
  const int H = this->H_, N2 = this->N2_;
  Backend<T>& be = ps.backend();
  dt_and_A(ps);
  ddt_.resize(be, H);
  dA_.resize(be, A_.size());
  dC_.resize(be, size_t(2) * this->copies_ * H * N2);
  be.s4d_kernel_backward(ops::S4DKernelShape{H, N2, len, this->copies_}, dt_.data(), A_.data(),
                         ps.data() + C_, dK, ddt_.data(), dA_.data(), dC_.data());
  T* g = ps.grad();
  be.ssm_diag_prepare_backward(H, N2, dt_.data(), A_.data(), ddt_.data(), dA_.data(), g + log_dt_,
                               g + log_A_real_, g + A_imag_);
  be.axpy(T(1), dC_.data(), g + C_, dC_.size());
}

template <typename T>
void S4DMixer<T>::ssm_step(const ParamStore<T>& ps, int batch, const T* u, T* state, T* y) const {
  dt_and_A(ps);
  ps.backend().s4d_step(ops::S4DKernelShape{this->H_, this->N2_, 1, 1}, batch, dt_.data(), A_.data(),
                        ps.data() + C_, u, state, y);
}

template class S4DMixer<float>;
template class S4DMixer<double>;

}  // namespace mk
