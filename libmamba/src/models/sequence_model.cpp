#include "mambakit/models/sequence_model.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "mambakit/error.h"

namespace mk {

template <typename T>
SequenceModel<T>::SequenceModel(const ModelConfig& cfg) : SequenceModel(cfg, DeclareOnly{}) {
  ps_.finalize();
}

template <typename T>
std::vector<ParamEntry> SequenceModel<T>::layout(const ModelConfig& cfg) {
  return SequenceModel(cfg, DeclareOnly{}).ps_.entries();
}

template <typename T>
SequenceModel<T>::SequenceModel(const ModelConfig& cfg, DeclareOnly) : cfg_(cfg) {
  cfg_.validate();
  const int dm = cfg_.d_model;
  emb_ = ps_.declare("backbone.embeddings.weight", {cfg_.vocab_size, dm}, true);
  norms_.resize(cfg_.n_layer);
  for (int i = 0; i < cfg_.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i);
    norms_[i].declare(ps_, p + ".norm.weight", dm, cfg_.norm_eps);
    mixers_.push_back(make_layer_mixer<T>(cfg_.mixer_of(i), cfg_));
    mixers_[i]->declare(ps_, p + ".mixer", cfg_);
  }
  norm_f_.declare(ps_, "backbone.norm_f.weight", dm, cfg_.norm_eps);
  if (is_classifier()) {
    MK_CHECK(cfg_.pooling == "mean" || cfg_.pooling == "last",
             "ModelConfig: pooling must be 'mean' or 'last', got '" + cfg_.pooling + "'");
    if (is_pair_classifier()) {
      dense_w_ = ps_.declare("classifier.dense.weight", {dm, 4 * dm}, true);
      dense_b_ = ps_.declare("classifier.dense.bias", {dm}, false);
    }
    cls_w_ = ps_.declare("classifier.weight", {cfg_.n_classes, dm}, true);
    cls_b_ = ps_.declare("classifier.bias", {cfg_.n_classes}, false);
  }
  // Where each layer's parameters begin: the bucketed all-reduce sends a
  // layer's gradients as soon as its backward has finished.
  for (int i = 0; i < cfg_.n_layer; ++i)
    layer_begin_.push_back(ps_.entry("backbone.layers." + std::to_string(i) + ".norm.weight").offset);
  norm_f_begin_ = ps_.entry("backbone.norm_f.weight").offset;
}

template <typename T>
void SequenceModel<T>::init(uint64_t seed) {
  MK_CHECK(device() == Device::cpu, "SequenceModel::init: initialise on the CPU, then move with to()");
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 0.02);
  T* e = ps_.data() + emb_;
  for (size_t i = 0; i < size_t(cfg_.vocab_size) * cfg_.d_model; ++i) e[i] = T(nd(rng));
  for (int i = 0; i < cfg_.n_layer; ++i) {
    norms_[i].init(ps_);
    mixers_[i]->init(ps_, rng, cfg_.n_layer);
  }
  norm_f_.init(ps_);
  if (is_classifier()) {
    std::uniform_real_distribution<double> ud(-1.0 / std::sqrt(double(cfg_.d_model)),
                                              1.0 / std::sqrt(double(cfg_.d_model)));
    for (size_t i = 0; i < size_t(cfg_.n_classes) * cfg_.d_model; ++i) ps_.data()[cls_w_ + i] = T(ud(rng));
    if (is_pair_classifier()) {
      // PyTorch's Linear default bound, 1/sqrt(fan_in), fan_in = 4 d_model.
      std::uniform_real_distribution<double> dd(-0.5 / std::sqrt(double(cfg_.d_model)),
                                                0.5 / std::sqrt(double(cfg_.d_model)));
      for (size_t i = 0; i < size_t(4) * cfg_.d_model * cfg_.d_model; ++i) ps_.data()[dense_w_ + i] = T(dd(rng));
    }
  }
}

template <typename T>
void SequenceModel<T>::forward(const int32_t* ids, int batch, int len, const int32_t* lengths) {
  MK_CHECK(batch > 0 && len > 0, "SequenceModel::forward: empty batch");
  MK_CHECK(!is_pair_classifier() || batch % 2 == 0,
           "SequenceModel::forward: a pair classifier takes an even batch (the first documents of the "
           "pairs, then the second ones), got " + std::to_string(batch) + " sequences");
  lengths_.assign(batch, len);
  if (lengths)
    for (int b = 0; b < batch; ++b) {
      MK_CHECK(lengths[b] >= 1 && lengths[b] <= len,
               "SequenceModel::forward: length " + std::to_string(lengths[b]) + " of sequence " +
                   std::to_string(b) + " outside [1, " + std::to_string(len) + "]");
      lengths_[b] = lengths[b];
    }
  Backend<T>& be = ps_.backend();
  B_ = batch;
  L_ = len;
  logits_fresh_ = features_fresh_ = false;
  const int rows = batch * len, dm = cfg_.d_model, V = cfg_.vocab_size;
  const size_t nh = size_t(rows) * dm;
  ids_.from_host(be, ids, size_t(rows));
  resid_.resize(cfg_.n_layer + 1);
  normed_.resize(cfg_.n_layer);
  resid_[0].resize(be, nh);
  be.embedding_forward(ids_.data(), ps_.data() + emb_, resid_[0].data(), rows, V, dm);
  mix_out_.resize(be, nh);
  for (int i = 0; i < cfg_.n_layer; ++i) {
    normed_[i].resize(be, nh);
    norms_[i].forward(ps_, resid_[i].data(), normed_[i].data(), rows);
    mixers_[i]->forward(ps_, normed_[i].data(), mix_out_.data(), batch, len);
    resid_[i + 1].resize(be, nh);
    be.add(resid_[i].data(), mix_out_.data(), resid_[i + 1].data(), nh);
  }
  hf_.resize(be, nh);
  norm_f_.forward(ps_, resid_[cfg_.n_layer].data(), hf_.data(), rows);
  if (is_pair_classifier()) {
    pool_forward();
    pair_head_forward();
    return;
  }
  if (is_classifier()) {
    pool_forward();
    logits_.resize(be, size_t(batch) * cfg_.n_classes);
    be.linear_forward(pooled_.data(), ps_.data() + cls_w_, ps_.data() + cls_b_, logits_.data(), batch,
                      dm, cfg_.n_classes);
    return;
  }
  // Tied head: logits = hf E^T
  logits_.resize(be, size_t(rows) * V);
  be.gemm(false, true, rows, V, dm, T(1), hf_.data(), dm, ps_.data() + emb_, dm, T(0), logits_.data(), V);
}

template <typename T>
const std::vector<T>& SequenceModel<T>::logits() const {
  if (!logits_fresh_) {
    logits_host_ = logits_.to_host();
    logits_fresh_ = true;
  }
  return logits_host_;
}

template <typename T>
const std::vector<T>& SequenceModel<T>::features() const {
  if (!features_fresh_) {
    features_host_ = is_pair_classifier() ? hidden_.to_host() : pooled_.to_host();
    features_fresh_ = true;
  }
  return features_host_;
}

// Classifier pooling: mean over the first length_b positions, or the last
// of them. pooled (B, Dm).
template <typename T>
void SequenceModel<T>::pool_forward() {
  Backend<T>& be = ps_.backend();
  const int dm = cfg_.d_model;
  lengths_dev_.from_host(be, lengths_.data(), lengths_.size());
  pooled_.resize(be, size_t(B_) * dm);
  be.sequence_pool_forward(hf_.data(), lengths_dev_.data(), pooled_.data(), B_, L_, dm,
                           cfg_.pooling == "last");
}

// d pooled (B, Dm) -> d hf (B*L, Dm), written.
template <typename T>
void SequenceModel<T>::pool_backward(const T* dpooled, T* dhf) {
  ps_.backend().sequence_pool_backward(dpooled, lengths_dev_.data(), dhf, B_, L_, cfg_.d_model,
                                       cfg_.pooling == "last");
}

// Pair head: pooled rows p (u) and P + p (v) -> [u, v, u*v, u-v] -> Linear
// -> GELU -> Linear -> logits (P, C).
template <typename T>
void SequenceModel<T>::pair_head_forward() {
  Backend<T>& be = ps_.backend();
  const int dm = cfg_.d_model, P = B_ / 2, C = cfg_.n_classes;
  pair_in_.resize(be, size_t(P) * 4 * dm);
  // pooled_ holds the first documents in rows [0, P), the second in [P, 2P).
  be.pair_features_forward(pooled_.data(), pooled_.data() + size_t(P) * dm, pair_in_.data(), P, dm);
  dense_.resize(be, size_t(P) * dm);
  hidden_.resize(be, dense_.size());
  be.linear_forward(pair_in_.data(), ps_.data() + dense_w_, ps_.data() + dense_b_, dense_.data(), P,
                    4 * dm, dm);
  be.gelu_forward(dense_.data(), hidden_.data(), dense_.size());
  logits_.resize(be, size_t(P) * C);
  be.linear_forward(hidden_.data(), ps_.data() + cls_w_, ps_.data() + cls_b_, logits_.data(), P, dm, C);
}

template <typename T>
void SequenceModel<T>::pair_head_backward(const T* dlogits, T* dpooled) {
  Backend<T>& be = ps_.backend();
  const int dm = cfg_.d_model, P = B_ / 2, C = cfg_.n_classes;
  T* g = ps_.grad();
  Buf<T>& dhidden = dhead_a_;
  Buf<T>& ddense = dhead_b_;
  Buf<T>& din = dhead_c_;
  dhidden.resize(be, size_t(P) * dm);
  ddense.resize(be, dhidden.size());
  din.resize(be, size_t(P) * 4 * dm);
  be.linear_backward(dlogits, hidden_.data(), ps_.data() + cls_w_, dhidden.data(), g + cls_w_,
                     g + cls_b_, P, dm, C);
  be.gelu_backward(dhidden.data(), dense_.data(), ddense.data(), ddense.size());
  be.linear_backward(ddense.data(), pair_in_.data(), ps_.data() + dense_w_, din.data(), g + dense_w_,
                     g + dense_b_, P, 4 * dm, dm);
  be.pair_features_backward(din.data(), pooled_.data(), pooled_.data() + size_t(P) * dm, dpooled,
                            dpooled + size_t(P) * dm, P, dm);
}

template <typename T>
long SequenceModel<T>::upload_targets(const int32_t* targets) const {
  const int rows = logit_rows();
  long n = 0;
  for (int i = 0; i < rows; ++i) n += targets[i] >= 0;
  targets_.from_host(ps_.backend(), targets, size_t(rows));
  losses_.resize(ps_.backend(), size_t(rows));
  return n;
}

template <typename T>
double SequenceModel<T>::loss(const int32_t* targets) const {
  const int rows = logit_rows(), V = logit_width();
  const long n = upload_targets(targets);
  double sum = ps_.backend().softmax_xent(logits_.data(), targets_.data(), losses_.data(), nullptr,
                                          rows, V, T(0));
  return n ? sum / n : 0.0;
}

template <typename T>
double SequenceModel<T>::backward(const int32_t* targets, double grad_scale) {
  MK_CHECK(B_ > 0, "SequenceModel::backward called before forward");
  Backend<T>& be = ps_.backend();
  const int rows = logit_rows(), dm = cfg_.d_model, V = logit_width();
  const size_t nh = size_t(B_) * L_ * dm;
  const long n = upload_targets(targets);
  const double scale = n ? grad_scale / n : 0.0;
  // dlogits overwrite the logits (they are not needed again).
  double sum = be.softmax_xent(logits_.data(), targets_.data(), losses_.data(), logits_.data(), rows,
                               V, T(scale));
  logits_fresh_ = false;
  T* gE = ps_.grad() + emb_;
  dh_.resize(be, nh);
  if (is_pair_classifier()) {
    dpooled_.resize(be, size_t(B_) * dm);
    pair_head_backward(logits_.data(), dpooled_.data());
    pool_backward(dpooled_.data(), dh_.data());
  } else if (is_classifier()) {
    // Head: d pooled = dlogits W ; dW += dlogits^T pooled ; then un-pool.
    dpooled_.resize(be, size_t(B_) * dm);
    be.linear_backward(logits_.data(), pooled_.data(), ps_.data() + cls_w_, dpooled_.data(),
                       ps_.grad() + cls_w_, ps_.grad() + cls_b_, B_, dm, cfg_.n_classes);
    pool_backward(dpooled_.data(), dh_.data());
  } else {
    // Tied head: dhf = dlogits E ; dE += dlogits^T hf
    be.gemm(false, false, rows, dm, V, T(1), logits_.data(), V, ps_.data() + emb_, dm, T(0),
            dh_.data(), dm);
    be.gemm(true, false, V, dm, rows, T(1), logits_.data(), V, hf_.data(), dm, T(1), gE, dm);
  }
  const int trows = B_ * L_;
  // Final norm: dh = d resid[n_layer]
  dtmp_.resize(be, nh);
  norm_f_.backward(ps_, dh_.data(), resid_[cfg_.n_layer].data(), dtmp_.data(), trows);
  dh_.swap(dtmp_);
  grads_ready(norm_f_begin_);  // the head's and the final norm's
  dnorm_.resize(be, nh);
  for (int i = cfg_.n_layer - 1; i >= 0; --i) {
    // resid[i+1] = resid[i] + mixer(norm(resid[i]))
    mixers_[i]->backward(ps_, dh_.data(), dnorm_.data());
    norms_[i].backward(ps_, dnorm_.data(), resid_[i].data(), dtmp_.data(), trows);
    be.axpy(T(1), dtmp_.data(), dh_.data(), nh);
    grads_ready(layer_begin_[i]);
  }
  // The tied embedding is final only now: the LM head added to it first.
  be.embedding_backward(ids_.data(), dh_.data(), gE, trows, cfg_.vocab_size, dm);
  grads_ready(0);
  // The logits now hold gradients; mark them consumed.
  B_ = 0;
  return n ? sum / n : 0.0;
}

template <typename T>
typename SequenceModel<T>::State SequenceModel<T>::make_state(int batch) const {
  State s;
  s.batch = batch;
  for (const auto& m : mixers_) s.layers.push_back(m->make_state(batch));
  return s;
}

template <typename T>
void SequenceModel<T>::step(const int32_t* ids_t, State& st, T* logits_t) {
  MK_CHECK(!is_classifier(), "SequenceModel::step: a classifier model has no generation step");
  Backend<T>& be = ps_.backend();
  const int b = st.batch, dm = cfg_.d_model, V = cfg_.vocab_size;
  const size_t nh = size_t(b) * dm;
  step_ids_.from_host(be, ids_t, size_t(b));
  step_h_.resize(be, nh);
  step_n_.resize(be, nh);
  step_o_.resize(be, nh);
  step_logits_.resize(be, size_t(b) * V);
  be.embedding_forward(step_ids_.data(), ps_.data() + emb_, step_h_.data(), b, V, dm);
  for (int i = 0; i < cfg_.n_layer; ++i) {
    norms_[i].forward(ps_, step_h_.data(), step_n_.data(), b);
    mixers_[i]->step(ps_, step_n_.data(), step_o_.data(), st.layers[i], b);
    be.axpy(T(1), step_o_.data(), step_h_.data(), nh);
  }
  norm_f_.forward(ps_, step_h_.data(), step_n_.data(), b);
  be.gemm(false, true, b, V, dm, T(1), step_n_.data(), dm, ps_.data() + emb_, dm, T(0),
          step_logits_.data(), V);
  step_logits_.to_host(logits_t);
}

template class SequenceModel<float>;
template class SequenceModel<double>;

}  // namespace mk
