#include "mambakit/layers/attention_mixer.h"

#include <cmath>

#include "mambakit/error.h"

namespace mk {

template <typename T>
void AttentionMixer<T>::declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) {
  dm_ = cfg.d_model;
  heads_ = cfg.n_heads_resolved();
  MK_CHECK(dm_ % heads_ == 0 && (dm_ / heads_) % 2 == 0,
           "attention mixer: d_model " + std::to_string(dm_) + " must split into " +
               std::to_string(heads_) + " heads of even size (RoPE)");
  hd_ = dm_ / heads_;
  theta_ = cfg.rope_theta;
  q_.declare(ps, prefix + ".q_proj", dm_, dm_, false);
  k_.declare(ps, prefix + ".k_proj", dm_, dm_, false);
  v_.declare(ps, prefix + ".v_proj", dm_, dm_, false);
  o_.declare(ps, prefix + ".o_proj", dm_, dm_, false);
}

template <typename T>
void AttentionMixer<T>::init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const {
  const double bound = 1.0 / std::sqrt(double(dm_));
  auto fill = [&](const Linear<T>& lin, double b) {
    std::uniform_real_distribution<double> u(-b, b);
    for (size_t i = 0; i < size_t(dm_) * dm_; ++i) ps.data()[lin.w + i] = T(u(rng));
  };
  fill(q_, bound);
  fill(k_, bound);
  fill(v_, bound);
  fill(o_, bound / std::sqrt(double(std::max(1, n_layer))));
}

// Training-shape parameters over the saved q, k, v, o buffers.
template <typename T>
ops::AttentionParams<T> AttentionMixer<T>::params(int batch, int len) {
  ops::AttentionParams<T> p;
  p.batch = batch; p.len_q = len; p.len_k = len; p.heads = heads_; p.head_dim = hd_;
  p.scale = T(1.0 / std::sqrt(double(hd_)));
  p.q = q_buf_.data(); p.o = o_buf_.data(); p.q_sb = long(len) * dm_; p.q_st = dm_;
  p.k = k_buf_.data(); p.v = v_buf_.data(); p.kv_sb = long(len) * dm_; p.kv_st = dm_;
  p.lse = lse_.data();
  return p;
}

template <typename T>
void AttentionMixer<T>::forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) {
  MK_CHECK(batch > 0 && len > 0, "attention mixer: empty input");
  Backend<T>& be = ps.backend();
  B_ = batch;
  L_ = len;
  x_in_ = x;
  const int rows = batch * len;
  const size_t n = size_t(rows) * dm_;
  q_buf_.resize(be, n); k_buf_.resize(be, n); v_buf_.resize(be, n); o_buf_.resize(be, n);
  lse_.resize(be, size_t(batch) * heads_ * len);
  q_.forward(ps, x, q_buf_.data(), rows);
  k_.forward(ps, x, k_buf_.data(), rows);
  v_.forward(ps, x, v_buf_.data(), rows);
  const ops::RopeShape rs{batch, len, heads_, hd_, 0, theta_};
  be.rope_forward(rs, q_buf_.data(), q_buf_.data());
  be.rope_forward(rs, k_buf_.data(), k_buf_.data());
  be.attention_forward(params(batch, len));
  o_.forward(ps, o_buf_.data(), out, rows);
}

template <typename T>
void AttentionMixer<T>::backward(ParamStore<T>& ps, const T* dout, T* dx) {
  MK_CHECK(B_ > 0, "attention mixer: backward called before forward");
  Backend<T>& be = ps.backend();
  const int rows = B_ * L_;
  const size_t n = size_t(rows) * dm_;
  do_.resize(be, n); dq_.resize(be, n); dk_.resize(be, n); dv_.resize(be, n); tmp_.resize(be, n);
  o_.backward(ps, dout, o_buf_.data(), do_.data(), rows);
  be.attention_backward(params(B_, L_), do_.data(), dq_.data(), dk_.data(), dv_.data());
  const ops::RopeShape rs{B_, L_, heads_, hd_, 0, theta_};
  be.rope_backward(rs, dq_.data(), dq_.data());
  be.rope_backward(rs, dk_.data(), dk_.data());
  q_.backward(ps, dq_.data(), x_in_, dx, rows);
  k_.backward(ps, dk_.data(), x_in_, tmp_.data(), rows);
  be.axpy(T(1), tmp_.data(), dx, n);
  v_.backward(ps, dv_.data(), x_in_, tmp_.data(), rows);
  be.axpy(T(1), tmp_.data(), dx, n);
}

template <typename T>
MixerState<T> AttentionMixer<T>::make_state(int /*batch*/) const {
  MixerState<T> s;
  s.bufs.resize(2);  // empty caches, grown by step()
  return s;
}

template <typename T>
void AttentionMixer<T>::step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) {
  Backend<T>& be = ps.backend();
  const size_t width = size_t(batch) * dm_;
  MK_CHECK(st.bufs.size() == 2 && st.bufs[0].size() == size_t(st.pos) * width &&
               st.bufs[1].size() == st.bufs[0].size(),
           "attention mixer: KV cache does not match batch " + std::to_string(batch) + " at position " +
               std::to_string(st.pos));
  step_q_.resize(be, width);
  step_o_.resize(be, width);
  const size_t at = st.bufs[0].size();
  st.bufs[0].resize(be, at + width);
  st.bufs[1].resize(be, at + width);
  T* kt = st.bufs[0].data() + at;
  T* vt = st.bufs[1].data() + at;
  q_.forward(ps, x_t, step_q_.data(), batch);
  k_.forward(ps, x_t, kt, batch);
  v_.forward(ps, x_t, vt, batch);
  const ops::RopeShape rs{batch, 1, heads_, hd_, st.pos, theta_};
  be.rope_forward(rs, step_q_.data(), step_q_.data());
  be.rope_forward(rs, kt, kt);
  ops::AttentionParams<T> p;
  p.batch = batch; p.len_q = 1; p.len_k = int(st.pos + 1); p.heads = heads_; p.head_dim = hd_;
  p.q_offset = st.pos;
  p.scale = T(1.0 / std::sqrt(double(hd_)));
  p.q = step_q_.data(); p.o = step_o_.data(); p.q_sb = dm_; p.q_st = dm_;
  p.k = st.bufs[0].data(); p.v = st.bufs[1].data(); p.kv_sb = dm_; p.kv_st = long(width);
  be.attention_forward(p);
  o_.forward(ps, step_o_.data(), out_t, batch);
  ++st.pos;
}

template class AttentionMixer<float>;
template class AttentionMixer<double>;

}  // namespace mk
