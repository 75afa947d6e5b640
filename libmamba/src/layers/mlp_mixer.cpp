#include "mambakit/layers/mlp_mixer.h"

#include <cmath>

#include "mambakit/error.h"

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
  Backend<T>& be = ps.backend();
  rows_ = batch * len;
  x_in_ = x;
  const size_t n = size_t(rows_) * hidden_;
  g_.resize(be, n); u_.resize(be, n); h_.resize(be, n);
  gate_.forward(ps, x, g_.data(), rows_);
  up_.forward(ps, x, u_.data(), rows_);
  be.swiglu_forward(g_.data(), u_.data(), h_.data(), n);
  down_.forward(ps, h_.data(), out, rows_);
}

template <typename T>
void MLPMixer<T>::backward(ParamStore<T>& ps, const T* dout, T* dx) {
  MK_CHECK(rows_ > 0, "mlp mixer: backward called before forward");
  Backend<T>& be = ps.backend();
  const size_t n = size_t(rows_) * hidden_;
  dh_.resize(be, n); dg_.resize(be, n); du_.resize(be, n);
  down_.backward(ps, dout, h_.data(), dh_.data(), rows_);
  be.swiglu_backward(dh_.data(), g_.data(), u_.data(), dg_.data(), du_.data(), n);
  gate_.backward(ps, dg_.data(), x_in_, dx, rows_);
  // up_proj's input gradient lands in dh_ (free now), then adds into dx.
  dh_.resize(be, size_t(rows_) * dm_);
  up_.backward(ps, du_.data(), x_in_, dh_.data(), rows_);
  be.axpy(T(1), dh_.data(), dx, size_t(rows_) * dm_);
}

template <typename T>
void MLPMixer<T>::step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) {
  Backend<T>& be = ps.backend();
  const size_t n = size_t(batch) * hidden_;
  g_.resize(be, n); u_.resize(be, n); h_.resize(be, n);
  gate_.forward(ps, x_t, g_.data(), batch);
  up_.forward(ps, x_t, u_.data(), batch);
  be.swiglu_forward(g_.data(), u_.data(), h_.data(), n);
  down_.forward(ps, h_.data(), out_t, batch);
  rows_ = 0;  // step() overwrote the saved activations
  ++st.pos;
}

template class MLPMixer<float>;
template class MLPMixer<double>;

}  // namespace mk
