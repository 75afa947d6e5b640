#include "mambakit/layers/ssm_conv_mixer.h"

#include <cmath>

#include "mambakit/error.h"

namespace mk {

namespace ssm_detail {

template <typename T>
void init_log_dt(T* p, int H, double dt_min, double dt_max, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(std::log(dt_min), std::log(dt_max));
  for (int h = 0; h < H; ++h) p[h] = T(u(rng));
}

template <typename T>
void init_complex_normal(T* p, size_t n_complex, std::mt19937_64& rng) {
  std::normal_distribution<double> nd(0.0, std::sqrt(0.5));
  for (size_t i = 0; i < 2 * n_complex; ++i) p[i] = T(nd(rng));
}

template void init_log_dt<float>(float*, int, double, double, std::mt19937_64&);
template void init_log_dt<double>(double*, int, double, double, std::mt19937_64&);
template void init_complex_normal<float>(float*, size_t, std::mt19937_64&);
template void init_complex_normal<double>(double*, size_t, std::mt19937_64&);

}  // namespace ssm_detail

template <typename T>
void SSMConvMixer<T>::declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) {
  H_ = cfg.d_model;
  MK_CHECK(cfg.s4_d_state >= 2 && cfg.s4_d_state % 2 == 0,
           std::string(kind()) + " mixer: s4_d_state must be even, got " + std::to_string(cfg.s4_d_state));
  N2_ = cfg.s4_d_state / 2;
  copies_ = cfg.bidirectional ? 2 : 1;
  dt_min_ = cfg.dt_min;
  dt_max_ = cfg.dt_max;
  declare_ssm(ps, prefix, cfg);
  D_ = ps.declare(prefix + ".D", {H_}, false);
  out_.declare(ps, prefix + ".output_linear", H_, 2 * H_, true);
}

template <typename T>
void SSMConvMixer<T>::init(ParamStore<T>& ps, std::mt19937_64& rng, int /*n_layer*/) const {
  init_ssm(ps, rng);
  T* p = ps.data();
  std::normal_distribution<double> nd(0.0, 1.0);
  for (int h = 0; h < H_; ++h) p[D_ + h] = T(nd(rng));
  const double bound = 1.0 / std::sqrt(double(H_));
  std::uniform_real_distribution<double> ud(-bound, bound);
  for (size_t i = 0; i < size_t(2) * H_ * H_; ++i) p[out_.w + i] = T(ud(rng));
  for (int i = 0; i < 2 * H_; ++i) p[out_.b + i] = T(ud(rng));
}

template <typename T>
void SSMConvMixer<T>::forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) {
  MK_CHECK(batch > 0 && len > 0, std::string(kind()) + " mixer: empty input");
  Backend<T>& be = ps.backend();
  B_ = batch;
  L_ = len;
  x_in_ = x;
  const size_t rows = size_t(batch) * len, n = rows * H_;
  K_.resize(be, size_t(copies_) * H_ * len);
  kernel(ps, len, K_.data());
  y_.resize(be, n);
  be.fft_conv_forward(ops::FftConvShape{batch, len, H_}, x, K_.data(),
                      copies_ == 2 ? K_.data() + size_t(H_) * len : nullptr, y_.data());
  be.channel_scale_forward(x, ps.data() + D_, y_.data(), rows, size_t(H_));
  a_.resize(be, n);
  be.gelu_forward(y_.data(), a_.data(), n);
  z_.resize(be, 2 * n);
  out_.forward(ps, a_.data(), z_.data(), int(rows));
  be.glu_forward(z_.data(), out, rows, size_t(H_));
}

template <typename T>
void SSMConvMixer<T>::backward(ParamStore<T>& ps, const T* dout, T* dx) {
  MK_CHECK(B_ > 0, std::string(kind()) + " mixer: backward called before forward");
  Backend<T>& be = ps.backend();
  const size_t rows = size_t(B_) * L_, n = rows * H_;
  dz_.resize(be, 2 * n);
  be.glu_backward(dout, z_.data(), dz_.data(), rows, size_t(H_));
  da_.resize(be, n);
  out_.backward(ps, dz_.data(), a_.data(), da_.data(), int(rows));
  dy_.resize(be, n);
  be.gelu_backward(da_.data(), y_.data(), dy_.data(), n);
  dK_.resize(be, K_.size());
  const size_t HL = size_t(H_) * L_;
  be.fft_conv_backward(ops::FftConvShape{B_, L_, H_}, dy_.data(), x_in_, K_.data(),
                       copies_ == 2 ? K_.data() + HL : nullptr, dx, dK_.data(),
                       copies_ == 2 ? dK_.data() + HL : nullptr);
  be.channel_scale_backward(dy_.data(), x_in_, ps.data() + D_, dx, ps.grad() + D_, rows, size_t(H_));
  kernel_backward(ps, L_, dK_.data());
}

template <typename T>
MixerState<T> SSMConvMixer<T>::make_state(int batch) const {
  MixerState<T> s;
  s.bufs.emplace_back(cpu_memory(), size_t(2) * batch * H_ * N2_);
  return s;
}

template <typename T>
void SSMConvMixer<T>::step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) {
  if (copies_ != 1)
    throw Error(std::string(kind()) + " mixer: a bidirectional layer has no recurrent step "
                "(its anti-causal kernel needs future inputs); use forward() on whole sequences");
  MK_CHECK(st.bufs.size() == 1 && st.bufs[0].size() == size_t(2) * batch * H_ * N2_,
           std::string(kind()) + " mixer: state does not match batch " + std::to_string(batch));
  Backend<T>& be = ps.backend();
  st.bufs[0].bind(be);
  const size_t n = size_t(batch) * H_;
  y_.resize(be, n);
  a_.resize(be, n);
  z_.resize(be, 2 * n);
  ssm_step(ps, batch, x_t, st.bufs[0].data(), y_.data());
  be.channel_scale_forward(x_t, ps.data() + D_, y_.data(), size_t(batch), size_t(H_));
  be.gelu_forward(y_.data(), a_.data(), n);
  out_.forward(ps, a_.data(), z_.data(), batch);
  be.glu_forward(z_.data(), out_t, size_t(batch), size_t(H_));
  B_ = 0;  // step() overwrote the saved activations
  ++st.pos;
}

template class SSMConvMixer<float>;
template class SSMConvMixer<double>;

}  // namespace mk
