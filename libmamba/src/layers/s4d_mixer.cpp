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
void S4DMixer<T>::dt_and_A(const ParamStore<T>& ps, std::vector<T>& dt,
                           std::vector<std::complex<T>>& A) const {
  const int H = this->H_, N2 = this->N2_;
  const T* p = ps.data();
  dt.resize(H);
  A.resize(size_t(H) * N2);
  for (int h = 0; h < H; ++h) dt[h] = std::exp(p[log_dt_ + h]);
  for (size_t i = 0; i < A.size(); ++i) A[i] = {-std::exp(p[log_A_real_ + i]), p[A_imag_ + i]};
}

template <typename T>
void S4DMixer<T>::kernel(const ParamStore<T>& ps, int len, T* K) const {
  std::vector<T> dt;
  std::vector<std::complex<T>> A;
  dt_and_A(ps, dt, A);
  ops::s4d_kernel_forward(ops::S4DKernelShape{this->H_, this->N2_, len, this->copies_}, dt.data(),
                          A.data(), reinterpret_cast<const std::complex<T>*>(ps.data() + C_), K);
}

// dt = exp(log_dt): d log_dt = ddt dt; Re A = -exp(log_A_real): d log_A_real = Re(dA) Re(A).
template <typename T>
void S4DMixer<T>::kernel_backward(ParamStore<T>& ps, int len, const T* dK) {
  const int H = this->H_, N2 = this->N2_;
  std::vector<T> dt;
  std::vector<std::complex<T>> A;
  dt_and_A(ps, dt, A);
  ddt_.resize(H);
  dA_.resize(A.size());
  dC_.resize(size_t(this->copies_) * H * N2);
  ops::s4d_kernel_backward(ops::S4DKernelShape{H, N2, len, this->copies_}, dt.data(), A.data(),
                           reinterpret_cast<const std::complex<T>*>(ps.data() + C_), dK, ddt_.data(),
                           dA_.data(), dC_.data());
  T* g = ps.grad();
  for (int h = 0; h < H; ++h) g[log_dt_ + h] += ddt_[h] * dt[h];
  for (size_t i = 0; i < A.size(); ++i) {
    g[log_A_real_ + i] += dA_[i].real() * A[i].real();
    g[A_imag_ + i] += dA_[i].imag();
  }
  for (size_t i = 0; i < dC_.size(); ++i) {
    g[C_ + 2 * i] += dC_[i].real();
    g[C_ + 2 * i + 1] += dC_[i].imag();
  }
}

template <typename T>
void S4DMixer<T>::ssm_step(const ParamStore<T>& ps, int batch, const T* u, std::complex<T>* state,
                           T* y) const {
  std::vector<T> dt;
  std::vector<std::complex<T>> A;
  dt_and_A(ps, dt, A);
  ops::s4d_step(ops::S4DKernelShape{this->H_, this->N2_, 1, 1}, batch, dt.data(), A.data(),
                reinterpret_cast<const std::complex<T>*>(ps.data() + C_), u, state, y);
}

template class S4DMixer<float>;
template class S4DMixer<double>;

}  // namespace mk
