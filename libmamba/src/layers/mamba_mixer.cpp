#include "mambakit/layers/mamba_mixer.h"

#include <algorithm>
#include <cmath>


namespace mk {

namespace {

template <typename T>
void uniform_fill(T* p, size_t n, double bound, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> d(-bound, bound);
  for (size_t i = 0; i < n; ++i) p[i] = T(d(rng));
}

}  // namespace

template <typename T>
void MambaMixer<T>::declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) {
  dm_ = cfg.d_model;
  di_ = cfg.d_inner();
  n_ = cfg.d_state;
  r_ = cfg.dt_rank_resolved();
  k_ = cfg.d_conv;
  dt_min_ = cfg.dt_min;
  dt_max_ = cfg.dt_max;
  dt_floor_ = cfg.dt_init_floor;
  in_proj_.declare(ps, prefix + ".in_proj", dm_, 2 * di_, false);
  // x and z as two products straight into their own buffers (no copy out of
  // a fused (rows, 2 Di) output).
  in_x_ = in_proj_.rows(0, di_);
  in_z_ = in_proj_.rows(di_, 2 * di_);
  conv_w_ = ps.declare(prefix + ".conv1d.weight", {di_, 1, k_}, true);
  conv_b_ = ps.declare(prefix + ".conv1d.bias", {di_}, false);
  x_proj_.declare(ps, prefix + ".x_proj", di_, r_ + 2 * n_, false);
  dt_proj_.declare(ps, prefix + ".dt_proj", r_, di_, true);
  A_log_ = ps.declare(prefix + ".A_log", {di_, n_}, false);
  D_ = ps.declare(prefix + ".D", {di_}, false);
  out_proj_.declare(ps, prefix + ".out_proj", di_, dm_, false);
}

template <typename T>
void MambaMixer<T>::init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const {
  T* p = ps.data();
  // PyTorch's default Linear/Conv1d init: U(+-1/sqrt(fan_in)).
  uniform_fill(p + in_proj_.w, size_t(2) * di_ * dm_, 1.0 / std::sqrt(double(dm_)), rng);
  uniform_fill(p + conv_w_, size_t(di_) * k_, 1.0 / std::sqrt(double(k_)), rng);
  uniform_fill(p + conv_b_, size_t(di_), 1.0 / std::sqrt(double(k_)), rng);
  uniform_fill(p + x_proj_.w, size_t(r_ + 2 * n_) * di_, 1.0 / std::sqrt(double(di_)), rng);
  uniform_fill(p + dt_proj_.w, size_t(di_) * r_, 1.0 / std::sqrt(double(r_)), rng);
  // dt ~ logUniform(dt_min, dt_max), floored; the bias is its inverse softplus
  // so that softplus(bias) == dt at initialisation.
  const double lo = std::log(dt_min_), hi = std::log(dt_max_), floor = dt_floor_;
  std::uniform_real_distribution<double> ud(lo, hi);
  for (int d = 0; d < di_; ++d) {
    double dt = std::max(std::exp(ud(rng)), floor);
    p[dt_proj_.b + d] = T(dt + std::log(-std::expm1(-dt)));
  }
  // S4D-real: A[d, n] = -(n + 1).
  for (int d = 0; d < di_; ++d)
    for (int n = 0; n < n_; ++n) p[A_log_ + size_t(d) * n_ + n] = T(std::log(double(n + 1)));
  std::fill(p + D_, p + D_ + di_, T(1));
  // Residual branches scaled by 1/sqrt(n_layer) (GPT-2 / mamba_ssm).
  uniform_fill(p + out_proj_.w, size_t(dm_) * di_,
               1.0 / std::sqrt(double(di_)) / std::sqrt(double(n_layer)), rng);
}

template <typename T>
void MambaMixer<T>::forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) {
  Backend<T>& be = ps.backend();
  B_ = batch;
  L_ = len;
  x_in_ = x;
  const int rows = batch * len;
  const size_t nd = size_t(rows) * di_;

  // in_proj -> x | z
  x_.resize(be, nd);
  z_.resize(be, nd);
  in_x_.forward(ps, x, x_.data(), rows);
  in_z_.forward(ps, x, z_.data(), rows);

  // causal conv + SiLU -> u, fused: the pre-activation is not kept (the
  // backward recomputes it from x_)
  u_.resize(be, nd);
  be.conv1d_silu_forward(ops::Conv1dShape{batch, len, di_, k_}, x_.data(), ps.data() + conv_w_,
                         ps.data() + conv_b_, u_.data());

  // x_proj -> dt_in | B | C ; dt_proj and softplus in one -> delta (the
  // pre-activation is not kept: the backward takes softplus's gradient
  // from delta)
  const int wx = r_ + 2 * n_;
  xdbl_.resize(be, size_t(rows) * wx);
  x_proj_.forward(ps, u_.data(), xdbl_.data(), rows);
  dtin_.resize(be, size_t(rows) * r_);
  Bm_.resize(be, size_t(rows) * n_);
  Cm_.resize(be, size_t(rows) * n_);
  be.copy_cols(xdbl_.data(), rows, wx, 0, r_, dtin_.data(), r_, 0);
  be.copy_cols(xdbl_.data(), rows, wx, r_, n_, Bm_.data(), n_, 0);
  be.copy_cols(xdbl_.data(), rows, wx, r_ + n_, n_, Cm_.data(), n_, 0);
  delta_.resize(be, nd);
  be.linear_softplus_forward(dtin_.data(), ps.data() + dt_proj_.w, ps.data() + dt_proj_.b,
                             delta_.data(), rows, r_, di_);

  // selective scan, gated by silu(z)
  A_.resize(be, size_t(di_) * n_);
  be.neg_exp(ps.data() + A_log_, A_.data(), A_.size());
  y_.resize(be, nd);
  states_.resize(be, be.scan_states_size(batch, len, di_, n_));
  be.selective_scan_forward(scan_params(ps), y_.data(), states_.data());

  out_proj_.forward(ps, y_.data(), out, rows);
}

template <typename T>
ops::SelectiveScanParams<T> MambaMixer<T>::scan_params(const ParamStore<T>& ps) const {
  ops::SelectiveScanParams<T> sp;
  sp.batch = B_; sp.len = L_; sp.dim = di_; sp.dstate = n_;
  sp.u = u_.data(); sp.delta = delta_.data(); sp.A = A_.data();
  sp.Bm = Bm_.data(); sp.Cm = Cm_.data(); sp.Dskip = ps.data() + D_; sp.z = z_.data();
  return sp;
}

template <typename T>
void MambaMixer<T>::backward(ParamStore<T>& ps, const T* dout, T* dx) {
  Backend<T>& be = ps.backend();
  const int rows = B_ * L_;
  const size_t nd = size_t(rows) * di_;
  T* g = ps.grad();

  // out_proj
  dy_.resize(be, nd);
  out_proj_.backward(ps, dout, y_.data(), dy_.data(), rows);

  // scan
  du_.resize(be, nd); ddelta_.resize(be, nd); dz_.resize(be, nd);
  dB_.resize(be, size_t(rows) * n_); dC_.resize(be, size_t(rows) * n_);
  dA_.assign_zero(be, size_t(di_) * n_);
  ops::SelectiveScanGrads<T> sg;
  sg.du = du_.data(); sg.ddelta = ddelta_.data(); sg.dA = dA_.data();
  sg.dB = dB_.data(); sg.dC = dC_.data(); sg.dD = g + D_; sg.dz = dz_.data();
  be.selective_scan_backward(scan_params(ps), states_.data(), dy_.data(), sg);
  // A = -exp(A_log)  =>  dA_log = dA * A
  be.mul_acc(dA_.data(), A_.data(), g + A_log_, dA_.size());

  // softplus and dt_proj in one
  ddtin_.resize(be, size_t(rows) * r_);
  be.linear_softplus_backward(ddelta_.data(), delta_.data(), dtin_.data(), ps.data() + dt_proj_.w,
                              ddtin_.data(), g + dt_proj_.w, g + dt_proj_.b, rows, r_, di_);

  // x_proj: gather d(dt_in | B | C) and add its input gradient into du
  const int wx = r_ + 2 * n_;
  Buf<T>& dxdbl = dxdbl_;  // (rows, wx)
  dxdbl.resize(be, size_t(rows) * wx);
  be.copy_cols(ddtin_.data(), rows, r_, 0, r_, dxdbl.data(), wx, 0);
  be.copy_cols(dB_.data(), rows, n_, 0, n_, dxdbl.data(), wx, r_);
  be.copy_cols(dC_.data(), rows, n_, 0, n_, dxdbl.data(), wx, r_ + n_);
  // x_proj's weight gradient; its input gradient is added into du by the
  // product itself (beta = 1: no temporary, no separate pass adding it).
  x_proj_.backward(ps, dxdbl.data(), u_.data(), nullptr, rows);
  be.gemm(false, false, rows, di_, wx, T(1), dxdbl.data(), wx, ps.data() + x_proj_.w, di_, T(1),
          du_.data(), di_);

  // SiLU and conv in one; d(in_proj's x half) goes to ddelta_, free by now
  be.conv1d_silu_backward(ops::Conv1dShape{B_, L_, di_, k_}, du_.data(), x_.data(),
                          ps.data() + conv_w_, ps.data() + conv_b_, ddelta_.data(), g + conv_w_,
                          g + conv_b_);

  // in_proj, as its two halves: dx = du W_x + dz W_z, each weight gradient
  // from its own half (no gather of d(x | z) into one buffer).
  in_x_.backward(ps, ddelta_.data(), x_in_, dx, rows);
  in_z_.backward(ps, dz_.data(), x_in_, nullptr, rows);
  be.gemm(false, false, rows, dm_, di_, T(1), dz_.data(), di_, ps.data() + in_z_.w, dm_, T(1),
          dx, dm_);
}

template <typename T>
MixerState<T> MambaMixer<T>::make_state(int batch) const {
  MixerState<T> s;
  s.bufs.emplace_back(cpu_memory(), size_t(batch) * di_ * k_);
  s.bufs.emplace_back(cpu_memory(), size_t(batch) * di_ * n_);
  return s;
}

template <typename T>
void MambaMixer<T>::step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st,
                         int batch) {
  Backend<T>& be = ps.backend();
  for (auto& b : st.bufs) b.bind(be);
  const int wx = r_ + 2 * n_;
  const size_t nd = size_t(batch) * di_;
  Buf<T>& xz = sbuf_[0];
  Buf<T>& xs = sbuf_[1];
  Buf<T>& zs = sbuf_[2];
  Buf<T>& xc = sbuf_[3];
  Buf<T>& u = sbuf_[4];
  Buf<T>& xdbl = sbuf_[5];
  Buf<T>& dtin = sbuf_[6];
  Buf<T>& Bt = sbuf_[7];
  Buf<T>& Ct = sbuf_[8];
  Buf<T>& dtpre = sbuf_[9];
  Buf<T>& delta = sbuf_[10];
  Buf<T>& y = sbuf_[11];
  Buf<T>& A = sbuf_[12];
  xz.resize(be, nd * 2); xs.resize(be, nd); zs.resize(be, nd); xc.resize(be, nd); u.resize(be, nd);
  xdbl.resize(be, size_t(batch) * wx); dtin.resize(be, size_t(batch) * r_);
  Bt.resize(be, size_t(batch) * n_); Ct.resize(be, size_t(batch) * n_);
  dtpre.resize(be, nd); delta.resize(be, nd); y.resize(be, nd); A.resize(be, size_t(di_) * n_);
  in_proj_.forward(ps, x_t, xz.data(), batch);
  be.copy_cols(xz.data(), batch, 2 * di_, 0, di_, xs.data(), di_, 0);
  be.copy_cols(xz.data(), batch, 2 * di_, di_, di_, zs.data(), di_, 0);
  be.conv1d_step(batch, di_, k_, xs.data(), st.bufs[0].data(), ps.data() + conv_w_,
                 ps.data() + conv_b_, xc.data());
  be.silu_forward(xc.data(), u.data(), nd);
  x_proj_.forward(ps, u.data(), xdbl.data(), batch);
  be.copy_cols(xdbl.data(), batch, wx, 0, r_, dtin.data(), r_, 0);
  be.copy_cols(xdbl.data(), batch, wx, r_, n_, Bt.data(), n_, 0);
  be.copy_cols(xdbl.data(), batch, wx, r_ + n_, n_, Ct.data(), n_, 0);
  dt_proj_.forward(ps, dtin.data(), dtpre.data(), batch);
  be.softplus_forward(dtpre.data(), delta.data(), nd);
  be.neg_exp(ps.data() + A_log_, A.data(), A.size());
  be.selective_scan_step(batch, di_, n_, u.data(), delta.data(), A.data(), Bt.data(), Ct.data(),
                         ps.data() + D_, zs.data(), st.bufs[1].data(), y.data());
  out_proj_.forward(ps, y.data(), out_t, batch);
  ++st.pos;
}

template class MambaMixer<float>;
template class MambaMixer<double>;

}  // namespace mk
