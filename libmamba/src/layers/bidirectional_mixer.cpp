#include "mambakit/layers/bidirectional_mixer.h"

#include "mambakit/error.h"

namespace mk {

template <typename T>
BidirectionalMixer<T>::BidirectionalMixer(const std::string& kind)
    : kind_(kind), forward_(make_mixer<T>(kind)), reverse_(make_mixer<T>(kind)) {}

template <typename T>
void BidirectionalMixer<T>::declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) {
  dm_ = cfg.d_model;
  forward_->declare(ps, prefix, cfg);
  reverse_->declare(ps, prefix + ".reverse", cfg);
}

template <typename T>
void BidirectionalMixer<T>::init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const {
  forward_->init(ps, rng, n_layer);
  reverse_->init(ps, rng, n_layer);
}

template <typename T>
void BidirectionalMixer<T>::forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) {
  MK_CHECK(batch > 0 && len > 0, "bidirectional " + kind_ + " mixer: empty input");
  Backend<T>& be = ps.backend();
  B_ = batch, L_ = len;
  const size_t n = size_t(batch) * len * dm_;
  x_rev_.resize(be, n);
  out_rev_.resize(be, n);
  forward_->forward(ps, x, out, batch, len);
  be.reverse_time(x, x_rev_.data(), size_t(batch), size_t(len), size_t(dm_));
  reverse_->forward(ps, x_rev_.data(), out_rev_.data(), batch, len);
  // out += reverse_time(out_rev), through d_rev_ (backward scratch, free now).
  d_rev_.resize(be, n);
  be.reverse_time(out_rev_.data(), d_rev_.data(), size_t(batch), size_t(len), size_t(dm_));
  be.axpy(T(1), d_rev_.data(), out, n);
}

template <typename T>
void BidirectionalMixer<T>::backward(ParamStore<T>& ps, const T* dout, T* dx) {
  MK_CHECK(B_ > 0, "bidirectional " + kind_ + " mixer: backward called before forward");
  Backend<T>& be = ps.backend();
  const size_t n = size_t(B_) * L_ * dm_;
  forward_->backward(ps, dout, dx);
  d_rev_.resize(be, n);
  dx_rev_.resize(be, n);
  be.reverse_time(dout, d_rev_.data(), size_t(B_), size_t(L_), size_t(dm_));
  reverse_->backward(ps, d_rev_.data(), dx_rev_.data());
  // dx += reverse_time(dx_rev); out_rev_ is free scratch now.
  be.reverse_time(dx_rev_.data(), out_rev_.data(), size_t(B_), size_t(L_), size_t(dm_));
  be.axpy(T(1), out_rev_.data(), dx, n);
}

template <typename T>
void BidirectionalMixer<T>::step(ParamStore<T>&, const T*, T*, MixerState<T>&, int) {
  throw Error("bidirectional " + kind_ +
              " mixer: no recurrent step (its reverse half reads future inputs); use forward() on "
              "whole sequences");
}

template class BidirectionalMixer<float>;
template class BidirectionalMixer<double>;

}  // namespace mk
