#include "mambakit/layers/mlp_mixer.h"

#include <cmath>

#include "mambakit/error.h"
#include "mambakit/ops/gated.h"

namespace mk {

template <typename T>
void MLPMixer<T>::declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) {
  dm_ = cfg.d_model;
  hidden_ = cfg.mlp_hidden_resolved();
  gate_.declare(ps, prefix + ".gate_proj", dm_, hidden_, false);
  up_.declare(ps, prefix + ".up_proj", dm_, hidden_, false);
  down_.declare(ps, prefix + ".down_proj", hidden_, dm_, false);
}

template <typename T>
void MLPMixer<T>::init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const {
  auto fill = [&](const Linear<T>& lin, double b) {
    std::uniform_real_distribution<double> u(-b, b);
    for (size_t i = 0; i < size_t(lin.in) * lin.out; ++i) ps.data()[lin.w + i] = T(u(rng));
  };
  fill(gate_, 1.0 / std::sqrt(double(dm_)));
  fill(up_, 1.0 / std::sqrt(double(dm_)));
  fill(down_, 1.0 / std::sqrt(double(hidden_)) / std::sqrt(double(std::max(1, n_layer))));
}

template <typename T>
void MLPMixer<T>::forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) {
  MK_CHECK(batch > 0 && len > 0, "mlp mixer: empty input");
  rows_ = batch * len;
  x_in_ = x;
  const size_t n = size_t(rows_) * hidden_;
  g_.resize(n); u_.resize(n); h_.resize(n);
  gate_.forward(ps, x, g_.data(), rows_);
  up_.forward(ps, x, u_.data(), rows_);
  ops::swiglu_forward(g_.data(), u_.data(), h_.data(), n);
  down_.forward(ps, h_.data(), out, rows_);
}

template <typename T>
void MLPMixer<T>::backward(ParamStore<T>& ps, const T* dout, T* dx) {
  MK_CHECK(rows_ > 0, "mlp mixer: backward called before forward");
  const size_t n = size_t(rows_) * hidden_;
  dh_.resize(n); dg_.resize(n); du_.resize(n); tmp_.resize(size_t(rows_) * dm_);
  down_.backward(ps, dout, h_.data(), dh_.data(), rows_);
  ops::swiglu_backward(dh_.data(), g_.data(), u_.data(), dg_.data(), du_.data(), n);
  gate_.backward(ps, dg_.data(), x_in_, dx, rows_);
  up_.backward(ps, du_.data(), x_in_, tmp_.data(), rows_);
  for (size_t i = 0; i < tmp_.size(); ++i) dx[i] += tmp_[i];
}

template <typename T>
void MLPMixer<T>::step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) {
  const size_t n = size_t(batch) * hidden_;
  std::vector<T> g(n), u(n), h(n);
  gate_.forward(ps, x_t, g.data(), batch);
  up_.forward(ps, x_t, u.data(), batch);
  ops::swiglu_forward(g.data(), u.data(), h.data(), n);
  down_.forward(ps, h.data(), out_t, batch);
  ++st.pos;
}

template class MLPMixer<float>;
template class MLPMixer<double>;

}  // namespace mk
